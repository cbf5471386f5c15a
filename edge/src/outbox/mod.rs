//! The outbox: every event an edge accepts, on disk, until the hub has durably committed it.
//!
//! Invariants (tested in `edge/tests/outbox_*.rs`):
//! - **Durable before acknowledged.** [`Outbox::append`] resolves with the event's sequence number
//!   only after the event is in sled *and* sled's data file is fdatasynced. Appends that arrive while
//!   a commit runs share the next one (group commit, at most `max_batch` per commit).
//! - **Sequence without gaps.** Sequence numbers start at 1 and increase by one per accepted event,
//!   across restarts (`last_seq` is stored in the same sled batch as the events).
//! - **Trim only on the hub's word.** Events are removed only up to a sequence the hub acknowledged
//!   ([`Outbox::ack`]); `acked_seq` never decreases.
//! - **Back-pressure by class.** When the stored bytes would exceed the budget (the configured one,
//!   or less when the disk holds less: see [`room`]), money and audit
//!   appends wait (in order) until acks free space; telemetry sheds the oldest stored telemetry,
//!   replacing each shed event by an `EventBody::Shed` tombstone under the same sequence number, so
//!   the hub sees no gap; every shed event is counted.
//! - **Fail loudly, restart clean.** A failed commit (disk full, I/O error) fails every append of
//!   that batch and stops the writer; the outbox actor then fails and its supervisor reopens it from
//!   disk, which is the only source of truth.
//!
//! On-disk format (one sled tree, so one batch is atomic): `b'e' ++ first seq (u64 BE)` → a chunk,
//! the events of one commit (`outpost_storage::chunk`); `b'm' ++ "last"` → last assigned seq; `b'm' ++ "acked"` → acked seq; `b'c' ++
//! command id` → command state (see [`CommandMark`]).

pub mod actor;
mod compact;
pub mod room;
mod writer;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use outpost_link::{Event, EventBody, EventClass};
use outpost_storage::chunk;
use outpost_storage::{DurableDb, StorageError};
use tokio::sync::{mpsc, oneshot, watch};

pub use writer::CommandMark;
use writer::{Writer, WriterMsg};

/// How often appends waiting for room are looked at again without an acknowledgement.
const RETRY_PARKED: std::time::Duration = std::time::Duration::from_millis(500);

/// Why an outbox operation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OutboxError {
    #[error("outbox storage: {0}")]
    Storage(String),
    #[error("outbox is closed (restarting)")]
    Closed,
    #[error("stored event {seq} does not decode: {reason}")]
    Corrupt { seq: u64, reason: String },
    #[error("event of {size} bytes is larger than the {limit} bytes an event may have")]
    EventTooLarge { size: usize, limit: usize },
    #[error("event of {size} bytes exceeds the outbox budget of {budget} bytes")]
    TooLarge { size: usize, budget: u64 },
    #[error("outbox is empty but holds {disk_bytes} bytes on disk; reopening it to compact")]
    CompactionDue { disk_bytes: u64 },
    /// The file system is full (filled by something else: the outbox's own budget keeps room).
    #[error("the disk is full: {0}")]
    DiskFull(String),
}

impl OutboxError {
    /// The outbox is being reopened (it restarts, or the disk is full): the caller's event was not
    /// stored and its device must not be acknowledged; it is not the caller's fault, so a device
    /// stops with a planned restart (uncounted) and comes back with the outbox.
    pub fn outbox_restarting(&self) -> bool {
        matches!(self, OutboxError::Closed | OutboxError::DiskFull(_))
    }
}

impl From<StorageError> for OutboxError {
    fn from(e: StorageError) -> Self {
        if e.is_disk_full() {
            OutboxError::DiskFull(e.to_string())
        } else {
            OutboxError::Storage(e.to_string())
        }
    }
}

impl From<sled::Error> for OutboxError {
    fn from(e: sled::Error) -> Self {
        match &e {
            sled::Error::Io(io) if outpost_storage::is_disk_full(io) => {
                OutboxError::DiskFull(e.to_string())
            }
            _ => OutboxError::Storage(e.to_string()),
        }
    }
}

/// Sizing of an outbox.
#[derive(Debug, Clone, Copy)]
pub struct OutboxLimits {
    /// Bytes the stored events may occupy (their encoded size).
    pub budget_bytes: u64,
    /// Most appends one commit covers.
    pub max_batch: usize,
    /// When the outbox is empty and its directory holds more than this, it is compacted.
    pub compact_above_bytes: u64,
}

/// A handle to the outbox. Cheap to clone; all clones talk to one writer thread.
#[derive(Clone)]
pub struct Outbox {
    tx: mpsc::Sender<WriterMsg>,
    db: sled::Db,
    durable_seq: watch::Receiver<u64>,
    acked_seq: Arc<AtomicU64>,
    commits: Arc<AtomicU64>,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("durable_seq", &*self.durable_seq.borrow())
            .field("acked_seq", &self.acked_seq.load(Ordering::Relaxed))
            .finish()
    }
}

/// The writer thread of an open outbox; joining it waits for the last commit.
pub struct OutboxWriter {
    thread: Option<std::thread::JoinHandle<Result<(), OutboxError>>>,
}

impl OutboxWriter {
    /// Waits for the writer to finish (after every handle is dropped) and returns how it ended.
    pub fn join(mut self) -> Result<(), OutboxError> {
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(OutboxError::Storage("outbox writer panicked".into())),
            None => Ok(()),
        }
    }
}

/// What [`Outbox::open`] found on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recovered {
    pub last_seq: u64,
    pub acked_seq: u64,
    pub stored_bytes: u64,
}

impl Outbox {
    /// Opens the outbox in directory `dir` and starts its writer thread. `on_fatal` is called (once,
    /// from the writer thread) if a commit fails, so the owner can restart the outbox.
    pub fn open(
        dir: &Path,
        limits: OutboxLimits,
        on_fatal: impl FnOnce(OutboxError) + Send + 'static,
    ) -> Result<(Self, OutboxWriter, Recovered), OutboxError> {
        Self::open_on(dir, limits, Box::new(outpost_storage::Disk), on_fatal)
    }

    /// [`Outbox::open`], committing through `disk` (tests give one that fails).
    pub fn open_on(
        dir: &Path,
        limits: OutboxLimits,
        disk: Box<dyn outpost_storage::Commit>,
        on_fatal: impl FnOnce(OutboxError) + Send + 'static,
    ) -> Result<(Self, OutboxWriter, Recovered), OutboxError> {
        compact::recover_interrupted(dir)?;
        // The uplink reads what was just written; older pages are rarely needed again.
        let durable = DurableDb::open_with_cache(dir, 16 * 1024 * 1024)?;
        let mut writer = Writer::recover(durable, limits)?;
        let mut recovered = writer.recovered();
        if let Some(disk_bytes) = writer.compaction_due() {
            let kept = writer.non_event_entries()?;
            drop(writer);
            compact::rebuild(dir, kept)?;
            let durable = DurableDb::open_with_cache(dir, 16 * 1024 * 1024)?;
            writer = Writer::recover(durable, limits)?;
            recovered = writer.recovered();
            crate::metrics::OUTBOX_COMPACTIONS.inc();
            tracing::info!(
                dir = %dir.display(),
                before_bytes = disk_bytes,
                after_bytes = writer.disk_bytes(),
                last_seq = recovered.last_seq,
                "outbox compacted"
            );
        }
        writer.commit_through(disk);
        let db = writer.db();
        let (durable_tx, durable_seq) = watch::channel(recovered.last_seq);
        let acked_seq = Arc::new(AtomicU64::new(recovered.acked_seq));
        let (tx, rx) = mpsc::channel(limits.max_batch.max(1) * 4);
        // Appends waiting for the disk are looked at again every RETRY_PARKED, so room made by
        // someone else is used without an acknowledgement to wake them. The ticker holds only a
        // weak sender: it ends with the outbox.
        let ticker = tx.downgrade();
        std::thread::Builder::new()
            .name("outbox-retry".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(RETRY_PARKED);
                    let Some(tx) = ticker.upgrade() else { return };
                    // A full queue is a busy writer: it looks at the waiting appends anyway.
                    let _ = tx.try_send(WriterMsg::Retry);
                }
            })
            .map_err(|e| OutboxError::Storage(format!("cannot start the retry thread: {e}")))?;
        let acked = acked_seq.clone();
        let commits = Arc::new(AtomicU64::new(0));
        let commit_count = commits.clone();
        let thread = std::thread::Builder::new()
            .name("outbox-writer".into())
            .spawn(move || {
                let result = writer.run(rx, durable_tx, acked, commit_count);
                if let Err(err) = &result {
                    on_fatal(err.clone());
                }
                result
            })
            .map_err(|e| OutboxError::Storage(format!("cannot start the writer thread: {e}")))?;
        tracing::info!(
            dir = %dir.display(),
            last_seq = recovered.last_seq,
            acked_seq = recovered.acked_seq,
            stored_bytes = recovered.stored_bytes,
            "outbox opened"
        );
        Ok((
            Self {
                tx,
                db,
                durable_seq,
                acked_seq,
                commits,
            },
            OutboxWriter {
                thread: Some(thread),
            },
            recovered,
        ))
    }

    /// Stores an event durably and returns its sequence number. Money and audit events wait here
    /// while the outbox is over its budget.
    pub async fn append(
        &self,
        device: &str,
        class: EventClass,
        body: EventBody,
    ) -> Result<u64, OutboxError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(WriterMsg::Append {
                device: device.to_owned(),
                class,
                body,
                called_us: outpost_process::clock::unix_us(),
                reply,
            })
            .await
            .map_err(|_| OutboxError::Closed)?;
        answer.await.map_err(|_| OutboxError::Closed)?
    }

    /// The hub has durably committed everything up to and including `committed_seq`.
    pub async fn ack(&self, committed_seq: u64) -> Result<(), OutboxError> {
        self.tx
            .send(WriterMsg::Trim {
                through: committed_seq,
            })
            .await
            .map_err(|_| OutboxError::Closed)
    }

    /// Records, durably, that command `id` is about to run. Returns the mark it already had if it
    /// was seen before (then it must not run again).
    pub async fn mark_command(
        &self,
        id: &str,
        mark: CommandMark,
    ) -> Result<Option<CommandMark>, OutboxError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(WriterMsg::MarkCommand {
                id: id.to_owned(),
                mark,
                reply,
            })
            .await
            .map_err(|_| OutboxError::Closed)?;
        answer.await.map_err(|_| OutboxError::Closed)?
    }

    /// The hub has committed up to `committed_seq` but this outbox never assigned that far (its
    /// disk was replaced or wiped): continue numbering after it, so new events are not mistaken
    /// for duplicates. Returns the last sequence afterwards.
    pub async fn adopt_hub_sequence(&self, committed_seq: u64) -> Result<u64, OutboxError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(WriterMsg::Adopt {
                committed_seq,
                reply,
            })
            .await
            .map_err(|_| OutboxError::Closed)?;
        answer.await.map_err(|_| OutboxError::Closed)?
    }

    /// Ids of commands marked started and never finished: the edge stopped while they ran.
    pub fn unfinished_commands(&self) -> Result<Vec<String>, OutboxError> {
        let mut ids = Vec::new();
        for entry in self.db.scan_prefix([writer::COMMAND]) {
            let (key, value) = entry?;
            if value.first() == Some(&1) {
                ids.push(String::from_utf8_lossy(&key[1..]).into_owned());
            }
        }
        Ok(ids)
    }

    /// The sequence number of `device`'s last stored event (kept even after the hub acknowledged
    /// it), or `None` if it never stored one. Written in the same commit as the event: what a
    /// recovered outbox answers here was durable with it.
    pub fn last_seq_of(&self, device: &str) -> Result<Option<u64>, OutboxError> {
        let key = [&[writer::DEVICE_LAST][..], device.as_bytes()].concat();
        Ok(self
            .db
            .get(key)?
            .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
            .map(u64::from_be_bytes))
    }

    /// Highest sequence number that is durable.
    pub fn durable_seq(&self) -> u64 {
        *self.durable_seq.borrow()
    }

    /// Group commits performed since the outbox was opened.
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    pub fn acked_seq(&self) -> u64 {
        self.acked_seq.load(Ordering::Acquire)
    }

    /// Waits until an event after `seq` is durable (returns at once if one is).
    pub async fn wait_beyond(&self, seq: u64) -> Result<u64, OutboxError> {
        let mut rx = self.durable_seq.clone();
        let value = rx
            .wait_for(|durable| *durable > seq)
            .await
            .map_err(|_| OutboxError::Closed)?;
        Ok(*value)
    }

    /// Stored events from `from_seq` on, at most `max_events` and about `max_bytes` (at least one
    /// event is returned if there is one). Only durable, unacknowledged events are returned.
    pub fn read_from(
        &self,
        from_seq: u64,
        max_events: usize,
        max_bytes: usize,
    ) -> Result<Vec<Event>, OutboxError> {
        let durable = self.durable_seq();
        // Acknowledged events may still sit in a partly acknowledged chunk: never return them.
        let from_seq = from_seq.max(self.acked_seq() + 1);
        let mut events = Vec::new();
        let mut bytes = 0usize;
        for entry in outpost_storage::chunks_from(&self.db, &[writer::EVENT], from_seq) {
            let (key, value) = entry?;
            let first = outpost_storage::key_seq(&key).unwrap_or_default();
            if first > durable {
                break;
            }
            let decoded = chunk::decode::<Event>(&value).map_err(|e| OutboxError::Corrupt {
                seq: first,
                reason: e.to_string(),
            })?;
            for (event, size) in decoded {
                if event.seq < from_seq {
                    continue;
                }
                if event.seq > durable {
                    return Ok(events);
                }
                bytes += size;
                events.push(event);
                if events.len() >= max_events || bytes >= max_bytes {
                    return Ok(events);
                }
            }
        }
        Ok(events)
    }
}

/// Random per process start: with `mono_us`, orders events across wall-clock jumps.
pub fn boot_id() -> u128 {
    static BOOT: std::sync::OnceLock<u128> = std::sync::OnceLock::new();
    *BOOT.get_or_init(rand::random)
}

/// Monotonic microseconds since this process started, the `mono_us` of events.
pub fn mono_us() -> u64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_micros() as u64
}
