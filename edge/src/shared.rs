//! What the edge's actors share: the open outbox (filled by the outbox actor, read by the actors
//! started after it) and the directory of running device actors.
//!
//! Invariant: the root supervisor is rest-for-one and starts the outbox before the uplink and the
//! devices, so whoever reads the outbox slot in `pre_start` sees the current outbox; when the
//! outbox restarts, they are restarted after it and read the new one.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use outpost_command::{CommandReply, DeviceCommand};
use ractor::{ActorId, ActorRef, RpcReplyPort};

use crate::outbox::Outbox;

/// A request to a device actor.
pub enum DeviceMsg {
    /// Run `command`; answer with the device's typed answer, or an error saying why it was
    /// refused or failed.
    Execute {
        command: DeviceCommand,
        reply: RpcReplyPort<Result<CommandReply, DeviceError>>,
    },
    /// A device's own timer (telemetry, self-healing); others ignore it.
    Tick,
}

/// Why a device refused or failed an operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceError {
    /// Not run: the command is not for this kind of device.
    #[error(transparent)]
    Refused(#[from] outpost_command::CommandError),
    /// Run, and it did not work.
    #[error("{0}")]
    Failed(String),
}

/// A running device actor.
#[derive(Clone)]
pub struct DeviceEntry {
    pub kind: &'static str,
    pub actor: ActorRef<DeviceMsg>,
}

#[derive(Clone, Default)]
pub struct EdgeShared {
    outbox: Arc<RwLock<Option<Outbox>>>,
    devices: Arc<RwLock<HashMap<String, DeviceEntry>>>,
    /// Bulk payloads for the hub; outlives uplink restarts.
    pub bulk: crate::bulk::BulkQueue,
    /// The edge's ADB key (loaded or made at start when TVs are configured).
    pub adb_key: Option<Arc<rsa::RsaPrivateKey>>,
    /// The edge's data directory (`None` in tests that run devices without one).
    pub data_dir: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for EdgeShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EdgeShared").finish_non_exhaustive()
    }
}

impl EdgeShared {
    pub fn outbox(&self) -> Option<Outbox> {
        self.outbox
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn set_outbox(&self, outbox: Option<Outbox>) {
        *self.outbox.write().unwrap_or_else(PoisonError::into_inner) = outbox;
    }

    pub fn device(&self, id: &str) -> Option<DeviceEntry> {
        self.devices
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .cloned()
    }

    /// Puts device `id` in the directory (commands reach it) for as long as the returned
    /// registration lives; device actors keep it in their state.
    pub fn register_device(
        &self,
        id: &str,
        kind: &'static str,
        actor: ActorRef<DeviceMsg>,
    ) -> DeviceRegistration {
        let actor_id = actor.get_id();
        self.devices
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id.to_owned(), DeviceEntry { kind, actor });
        DeviceRegistration {
            shared: self.clone(),
            id: id.to_owned(),
            actor: Some(actor_id),
        }
    }
}

/// A device's entry in the directory. Released explicitly (`post_stop`) or when dropped, and then
/// only if the entry is still this actor's: on a clean stop ractor hands the old state to the
/// supervisor, which may drop it after the restarted device registered again.
pub struct DeviceRegistration {
    shared: EdgeShared,
    id: String,
    /// `None` once released.
    actor: Option<ActorId>,
}

impl DeviceRegistration {
    pub fn release(&mut self) {
        let Some(actor) = self.actor.take() else {
            return;
        };
        let mut devices = self
            .shared
            .devices
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if devices
            .get(&self.id)
            .is_some_and(|entry| entry.actor.get_id() == actor)
        {
            devices.remove(&self.id);
        }
    }
}

impl Drop for DeviceRegistration {
    fn drop(&mut self) {
        self.release();
    }
}
