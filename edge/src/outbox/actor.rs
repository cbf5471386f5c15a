//! The outbox as a supervised actor: opens the outbox, publishes it to its younger siblings, and
//! fails (to be reopened from disk by its supervisor) if a commit fails.
//!
//! An outbox that does not open (damaged files, an unreadable disk) holds the start here: the
//! actor waits and retries (see `outpost_process::store`), so its younger siblings — the uplink and
//! every device — do not start and no device is acknowledged, while the admin server (older)
//! answers `/readyz` with `storage/outbox` down and `/metrics` with
//! `outpost_storage_open_failed{store="outbox"} 1`.

use std::path::PathBuf;
use std::time::Duration;

use outpost_actors::Readiness;
use ractor::{Actor, ActorProcessingErr, ActorRef};

use super::{Outbox, OutboxError, OutboxLimits, OutboxWriter};
use crate::shared::EdgeShared;

#[derive(Debug, Clone, Copy, Default)]
pub struct OutboxActor;

#[derive(Debug, Clone)]
pub struct OutboxArgs {
    pub dir: PathBuf,
    pub limits: OutboxLimits,
    pub shared: EdgeShared,
    pub readiness: Readiness,
}

pub enum OutboxMsg {
    WriterFailed(OutboxError),
}

pub struct OutboxState {
    shared: EdgeShared,
    writer: Option<OutboxWriter>,
    /// Held for its drop (metrics refresh ends with the actor).
    _ticker: outpost_actors::OwnedTask,
}

impl Drop for OutboxState {
    fn drop(&mut self) {
        // Younger siblings were stopped first (rest-for-one); with the slot cleared, the writer
        // ends when the last handle is dropped.
        self.shared.set_outbox(None);
    }
}

impl Actor for OutboxActor {
    type Msg = OutboxMsg;
    type State = OutboxState;
    type Arguments = OutboxArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: OutboxArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let dir = args.dir.clone();
        let limits = args.limits;
        let notify = myself.clone();
        let what_to_do = format!(
            "Check the disk (dmesg, free space). To give up the events stored there and start an \
             empty outbox: outpost-edge store set-aside --config <this edge's config> (moves {} \
             aside, deletes nothing).",
            dir.display()
        );
        let open_dir = dir.clone();
        let (outbox, writer, _) = outpost_process::store::open_until_it_opens(
            "outbox",
            dir.clone(),
            Some(args.readiness.clone()),
            &what_to_do,
            |err: &OutboxError| matches!(err, OutboxError::DiskFull(_)),
            move || {
                let notify = notify.clone();
                Outbox::open(&open_dir, limits, move |err| {
                    let _ = notify.send_message(OutboxMsg::WriterFailed(err));
                })
            },
        )
        .await;
        args.shared.set_outbox(Some(outbox));
        let ticker = outpost_actors::OwnedTask::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(1));
            loop {
                every.tick().await;
                crate::metrics::refresh_oldest_unacked();
                outpost_process::store::report_blob_files("outbox", &dir);
            }
        });
        Ok(OutboxState {
            shared: args.shared,
            writer: Some(writer),
            _ticker: ticker,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        _state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            // Planned work, not a fault: restarted at once, not counted (see compact.rs).
            OutboxMsg::WriterFailed(OutboxError::CompactionDue { disk_bytes }) => {
                myself.stop(Some(format!(
                    "{}compacting the empty outbox ({disk_bytes} bytes on disk)",
                    outpost_actors::PLANNED_RESTART
                )));
                Ok(())
            }
            // Not a fault of the outbox either: sled cannot go on after a failed write, so it is
            // reopened, at once and uncounted; opening waits (devices stay unacknowledged, what is
            // stored stays) until there is room again.
            OutboxMsg::WriterFailed(OutboxError::DiskFull(reason)) => {
                tracing::error!(%reason, "the disk is full; the outbox reopens when there is room (money waits, nothing stored is lost)");
                myself.stop(Some(format!(
                    "{}the disk is full: {reason}",
                    outpost_actors::PLANNED_RESTART
                )));
                Ok(())
            }
            OutboxMsg::WriterFailed(err) => Err(format!("outbox writer failed: {err}").into()),
        }
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        state.shared.set_outbox(None);
        if let Some(writer) = state.writer.take() {
            // Waits for the last commit; bounded so a stuck disk cannot hang the shutdown.
            let joined = tokio::time::timeout(
                Duration::from_secs(10),
                tokio::task::spawn_blocking(move || writer.join()),
            )
            .await;
            match joined {
                Ok(Ok(Ok(()) | Err(OutboxError::CompactionDue { .. }))) => {
                    tracing::info!("outbox closed")
                }
                Ok(Ok(Err(err))) => tracing::warn!(%err, "outbox writer ended with an error"),
                _ => tracing::warn!("outbox writer did not finish within 10 s"),
            }
        }
        Ok(())
    }
}
