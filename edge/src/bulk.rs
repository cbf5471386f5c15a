//! Bulk payloads (screenshots, log bundles, media) waiting to go to the hub, each on a QUIC stream
//! of its own so that it never holds up events.
//!
//! Invariants: a payload stays queued until the hub confirms it (`BulkStored`) or refuses it
//! (`BulkRefused`, not retried); after a reconnect every unconfirmed payload is sent again (the hub
//! stores by id, so a repeat overwrites identical bytes); the queue holds at most
//! [`MAX_QUEUED_BYTES`]. The queue is in memory: bulk payloads do not survive an edge restart (they
//! are re-requested, unlike events).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use outpost_link::{BulkHeader, MAX_BULK_BYTES};
use tokio::sync::Notify;

/// Bytes the queue may hold.
pub const MAX_QUEUED_BYTES: u64 = 256 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BulkError {
    #[error("payload of {len} bytes exceeds the limit of {MAX_BULK_BYTES}")]
    TooLarge { len: u64 },
    #[error("the bulk queue is full ({MAX_QUEUED_BYTES} bytes waiting for the hub)")]
    QueueFull,
}

struct Queued {
    header: BulkHeader,
    bytes: Arc<Vec<u8>>,
    /// The session that last sent it (0: not sent yet).
    sent_in: u64,
}

#[derive(Default)]
struct State {
    items: BTreeMap<String, Queued>,
    bytes: u64,
}

/// The edge's queue of bulk payloads. Cheap to clone.
#[derive(Clone, Default)]
pub struct BulkQueue {
    state: Arc<Mutex<State>>,
    added: Arc<Notify>,
}

impl std::fmt::Debug for BulkQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BulkQueue")
            .field("pending", &self.pending())
            .finish()
    }
}

impl BulkQueue {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `bytes` from `device`; returns the id events can refer to.
    pub fn submit(
        &self,
        device: &str,
        content_type: &str,
        bytes: Vec<u8>,
    ) -> Result<String, BulkError> {
        let len = bytes.len() as u64;
        if len > MAX_BULK_BYTES {
            return Err(BulkError::TooLarge { len });
        }
        let sha256 = {
            use sha2::Digest;
            hex::encode(sha2::Sha256::digest(&bytes))
        };
        let device_part: String = device
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .take(64)
            .collect();
        let id = format!("{device_part}-{:016x}", rand::random::<u64>());
        {
            let mut state = self.lock();
            if state.bytes + len > MAX_QUEUED_BYTES {
                return Err(BulkError::QueueFull);
            }
            state.bytes += len;
            state.items.insert(
                id.clone(),
                Queued {
                    header: BulkHeader {
                        id: id.clone(),
                        device: device.to_owned(),
                        content_type: content_type.to_owned(),
                        len,
                        sha256,
                    },
                    bytes: Arc::new(bytes),
                    sent_in: 0,
                },
            );
        }
        self.added.notify_one();
        Ok(id)
    }

    /// Payloads waiting for the hub's confirmation.
    pub fn pending(&self) -> usize {
        self.lock().items.len()
    }

    /// The next payload not yet sent in `session`, marked as sent in it.
    pub(crate) fn next_unsent(&self, session: u64) -> Option<(BulkHeader, Arc<Vec<u8>>)> {
        let mut state = self.lock();
        let item = state.items.values_mut().find(|q| q.sent_in != session)?;
        item.sent_in = session;
        Some((item.header.clone(), item.bytes.clone()))
    }

    /// The hub stored (or refused) `id`: it leaves the queue.
    pub(crate) fn settled(&self, id: &str) {
        let mut state = self.lock();
        if let Some(item) = state.items.remove(id) {
            state.bytes -= item.header.len;
        }
    }

    /// Resolves when a payload is added (or at once if one was added since the last wait).
    pub(crate) async fn added(&self) {
        self.added.notified().await;
    }
}
