//! The event log: the hub's source of truth, keyed by (edge, seq), with a committed high-water
//! mark per edge.
//!
//! The rule for each edge's sequence is [`outpost_link::session::Ledger`] (pure, shared with the
//! link's deterministic simulation); this module makes its decisions durable.
//!
//! Invariants:
//! - An event is committed at most once: a sequence at or below the edge's high-water mark is a
//!   duplicate (counted, dropped). That, with the edge's at-least-once delivery, makes each event's
//!   effect happen exactly once.
//! - A sequence above `high-water + 1` is a gap: events were lost before reaching the hub. It is
//!   logged at error level and counted (`outpost_hub_gaps_total`, `outpost_hub_missing_events_total`)
//!   — never silent — and the event is committed.
//! - [`EventLog::commit`] answers only after the events and the new high-water mark are in one sled
//!   batch that was flushed and fdatasynced; only then may the edge be acknowledged. Requests that
//!   arrive during a commit share the next one.
//! - A failed commit fails every request of the batch and stops the writer; the hub then exits
//!   (systemd restarts it) rather than acknowledge anything it could not store.
//! - At most [`EventLog::in_flight_limit`] events (4 × `max_batch`) are submitted and not yet
//!   committed, from all edges together: [`EventLog::submit`] waits for room (first come, first
//!   served), so the hub's memory for events on their way to disk does not grow with the number
//!   of edges, and an edge that waits stops reading its stream (QUIC flow control then holds the
//!   edge back). A commit covers at most about `max_batch` events.
//! - At most [`READING_SLOTS`] sessions at once hold a batch they read and have not submitted yet
//!   ([`EventLog::reading_slot`]): a thousand edges waiting for room do not each hold a decoded
//!   batch.
//!
//! Events reach the writer no larger than [`outpost_link::MAX_EVENT_BYTES`] (the link refuses
//! larger ones), so each fits a chunk of [`outpost_storage::MAX_VALUE_BYTES`] with the hub's
//! additions (checked at compile time below).
//!
//! On disk: `b'e' ++ edge ++ 0x00 ++ first seq (u64 BE)` → a chunk of the [`StoredEvent`]s one
//! commit accepted from that edge (`outpost_storage::chunk`, sequences increasing);
//! `b'h' ++ edge` → committed seq (u64 BE);
//! `b'p' ++ edge` → the sequences (u64 BE each, increasing) of the edge's command results
//! committed here and not known to be recorded by the command log. Rewritten in the same batch as
//! an event that adds a result, so a hub that dies before the command log has the result applies
//! it at its next start ([`crate::CommandLog::recover_results`]); results the command log has
//! durably leave the list ([`EventLog::results_applied`]; should that write be lost, a restart
//! applies them again, which changes nothing). Every list is encoded under one lock from the one
//! in-memory set, so a list written never lacks a result that is committed and not applied.
//!
//! The default tree is only ever appended to and overwritten, never removed from: a key per result
//! inserted and removed again made sled split and merge the tree's last leaves all the time, and a
//! power cut during that left a tree sled could not read ("merging_child" assertion, 2026-12-07).

use std::collections::HashMap;
use std::sync::Arc;

use outpost_link::session::Ledger;
use outpost_link::{CommandResult, Event, EventBody};
use outpost_storage::chunk::{self, ChunkBuilder};
use outpost_storage::{Batch, DurableDb, MAX_VALUE_BYTES, recv_batch_weighted};
use tokio::sync::{mpsc, oneshot};

use crate::metrics;

// A stored event adds two varints and a frame header to the edge's event; a chunk its own header.
const _: () = assert!(outpost_link::MAX_EVENT_BYTES + 32 + 8 <= MAX_VALUE_BYTES);

pub use outpost_domain::StoredEvent;

/// Sessions that may hold a read batch waiting for room in the log at once.
pub const READING_SLOTS: usize = 64;

/// Most command results of one edge waiting for the command log (their list stays one value
/// under the store's limit). Only a command log that cannot write for a long time reaches it;
/// the oldest is then forgotten, loudly (its command ends at its deadline instead).
pub const MAX_PENDING_RESULTS: usize = 640;

const _: () = assert!(MAX_PENDING_RESULTS * 8 <= MAX_VALUE_BYTES);

/// What a commit did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommitOutcome {
    /// The edge's high-water mark after this commit: acknowledge this.
    pub committed_seq: u64,
    pub accepted: usize,
    pub duplicates: usize,
    /// Sequence numbers skipped (data lost before the hub).
    pub missing: u64,
    /// Command results among the accepted events.
    pub command_results: Vec<CommittedResult>,
}

/// A command result committed in the event log, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedResult {
    pub edge: String,
    pub seq: u64,
    pub result: CommandResult,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum EventLogError {
    #[error("event log storage: {0}")]
    Storage(String),
    #[error("event log is closed")]
    Closed,
    #[error("stored event does not decode: {0}")]
    Corrupt(String),
}

struct CommitRequest {
    edge: String,
    events: Vec<Event>,
    clock_offset_ms: i64,
    reply: oneshot::Sender<Result<CommitOutcome, EventLogError>>,
    /// The request's room in the in-flight limit, given back once it is committed.
    room: tokio::sync::OwnedSemaphorePermit,
}

/// Handle to the event log; clones share one writer thread.
#[derive(Clone)]
pub struct EventLog {
    tx: mpsc::Sender<CommitRequest>,
    durable: Arc<DurableDb>,
    /// Each edge's committed sequence as far as it is durable. Not read from sled: a batch applied
    /// there is visible before its flush, and a hub that told an edge such a number in `Welcome`
    /// and then lost power would have let the edge drop events the hub no longer has.
    committed: Arc<std::sync::Mutex<HashMap<String, u64>>>,
    /// Bumped after every successful commit: projections and the live stream wait on it.
    commits: tokio::sync::watch::Sender<u64>,
    /// Room for events submitted and not yet committed.
    in_flight: Arc<tokio::sync::Semaphore>,
    /// Room for batches read and not yet submitted.
    reading: Arc<tokio::sync::Semaphore>,
    in_flight_limit: usize,
    pending: Arc<std::sync::Mutex<PendingResults>>,
}

/// Command results committed and not known to be in the command log, per edge. A list is
/// encoded while this is locked, and written to the store (or into the batch that commits its new
/// result) before it is unlocked.
#[derive(Debug, Default)]
struct PendingResults {
    by_edge: HashMap<String, std::collections::BTreeSet<u64>>,
}

fn lock_pending(
    pending: &std::sync::Mutex<PendingResults>,
) -> std::sync::MutexGuard<'_, PendingResults> {
    pending
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn lock_committed(
    committed: &std::sync::Mutex<HashMap<String, u64>>,
) -> std::sync::MutexGuard<'_, HashMap<String, u64>> {
    committed
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl std::fmt::Debug for EventLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventLog").finish_non_exhaustive()
    }
}

fn chunk_prefix(edge: &str) -> Vec<u8> {
    let mut prefix = Vec::with_capacity(edge.len() + 2);
    prefix.push(b'e');
    prefix.extend_from_slice(edge.as_bytes());
    prefix.push(0);
    prefix
}

fn pending_key(edge: &str) -> Vec<u8> {
    [&b"p"[..], edge.as_bytes()].concat()
}

fn encode_pending(seqs: &std::collections::BTreeSet<u64>) -> Vec<u8> {
    seqs.iter().flat_map(|s| s.to_be_bytes()).collect()
}

fn storage(e: impl std::fmt::Display) -> EventLogError {
    EventLogError::Storage(e.to_string())
}

/// Reads every edge's stored list of pending results, and folds in the one-key-per-result markers
/// of the hub before 2026-12-07 (`b'r' ++ edge ++ 0x00 ++ seq`), removing them. A list whose
/// length is no whole number of sequences (damage) is logged and read as far as it goes.
fn stored_pending(db: &sled::Db) -> Result<PendingResults, EventLogError> {
    let mut pending = PendingResults::default();
    for entry in db.scan_prefix(b"p") {
        let (key, value) = entry.map_err(storage)?;
        let edge = String::from_utf8_lossy(&key[1..]).into_owned();
        if value.len() % 8 != 0 {
            tracing::error!(edge = %edge, bytes = value.len(), "the list of pending command results is damaged; read as far as it goes");
        }
        let seqs = value
            .chunks_exact(8)
            .filter_map(|b| b.try_into().ok().map(u64::from_be_bytes))
            .collect();
        pending.by_edge.insert(edge, seqs);
    }
    let mut legacy = std::collections::HashSet::new();
    for entry in db.scan_prefix(b"r") {
        let (key, _) = entry.map_err(storage)?;
        if let Some((edge, seq)) = parse_legacy_marker(&key) {
            pending.by_edge.entry(edge.clone()).or_default().insert(seq);
            legacy.insert(edge);
        }
    }
    for edge in legacy {
        pending.write(db, &edge)?;
    }
    for entry in db.scan_prefix(b"r") {
        let (key, _) = entry.map_err(storage)?;
        db.remove(&key).map_err(storage)?;
    }
    Ok(pending)
}

/// The edge and sequence a marker of the hub before 2026-12-07 names, if it is one.
fn parse_legacy_marker(key: &[u8]) -> Option<(String, u64)> {
    let rest = key.strip_prefix(b"r")?;
    let (edge, seq) = rest.split_at_checked(rest.len().checked_sub(9)?)?;
    let seq = seq.strip_prefix(&[0])?;
    Some((
        String::from_utf8(edge.to_vec()).ok()?,
        u64::from_be_bytes(seq.try_into().ok()?),
    ))
}

fn hwm_key(edge: &str) -> Vec<u8> {
    [&b"h"[..], edge.as_bytes()].concat()
}

/// Every edge's high-water mark as stored.
fn stored_marks(db: &sled::Db) -> Result<HashMap<String, u64>, EventLogError> {
    let mut marks = HashMap::new();
    for entry in db.scan_prefix(b"h") {
        let (key, value) = entry.map_err(|e| EventLogError::Storage(e.to_string()))?;
        let edge = String::from_utf8_lossy(&key[1..]).into_owned();
        let seq: [u8; 8] = value
            .as_ref()
            .try_into()
            .map_err(|_| EventLogError::Corrupt(format!("high-water mark of {edge}")))?;
        marks.insert(edge, u64::from_be_bytes(seq));
    }
    Ok(marks)
}

fn read_hwm(db: &sled::Db, edge: &str) -> Result<u64, EventLogError> {
    match db.get(hwm_key(edge)) {
        Ok(Some(v)) => v
            .as_ref()
            .try_into()
            .map(u64::from_be_bytes)
            .map_err(|_| EventLogError::Corrupt(format!("high-water mark of {edge}"))),
        Ok(None) => Ok(0),
        Err(e) => Err(EventLogError::Storage(e.to_string())),
    }
}

impl EventLog {
    /// Starts the writer over `durable`. `on_fatal` runs once if a commit fails.
    pub fn start(
        durable: Arc<DurableDb>,
        max_batch: usize,
        on_fatal: impl FnOnce(EventLogError) + Send + 'static,
    ) -> Result<Self, EventLogError> {
        let max_batch = max_batch.max(1);
        let in_flight_limit = max_batch.saturating_mul(4);
        let (tx, rx) = mpsc::channel(in_flight_limit);
        let writer_db = durable.clone();
        // What the store holds at start is durable (nothing was applied yet by this process).
        let committed = Arc::new(std::sync::Mutex::new(stored_marks(durable.db())?));
        let writer_committed = committed.clone();
        let pending = Arc::new(std::sync::Mutex::new(stored_pending(durable.db())?));
        let writer_pending = pending.clone();
        let (commits, _) = tokio::sync::watch::channel(0u64);
        let writer_commits = commits.clone();
        std::thread::Builder::new()
            .name("eventlog-writer".into())
            .spawn(move || {
                if let Err(err) = run_writer(
                    &writer_db,
                    rx,
                    max_batch,
                    &writer_committed,
                    &writer_commits,
                    &writer_pending,
                ) {
                    tracing::error!(%err, "event log writer stopped");
                    on_fatal(err);
                }
            })
            .map_err(|e| EventLogError::Storage(format!("cannot start the writer: {e}")))?;
        Ok(Self {
            tx,
            durable,
            committed,
            commits,
            in_flight: Arc::new(tokio::sync::Semaphore::new(in_flight_limit)),
            in_flight_limit,
            reading: Arc::new(tokio::sync::Semaphore::new(READING_SLOTS)),
            pending,
        })
    }

    /// Waits for one of the [`READING_SLOTS`]: hold it from reading a batch off the network until
    /// that batch is submitted.
    pub async fn reading_slot(&self) -> Result<tokio::sync::OwnedSemaphorePermit, EventLogError> {
        self.reading
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| EventLogError::Closed)
    }

    /// Events submitted and not yet committed, from all edges together, at most.
    pub fn in_flight_limit(&self) -> usize {
        self.in_flight_limit
    }

    /// Queues `events` of `edge` for the next commit; the receiver answers after it.
    pub async fn submit(
        &self,
        edge: &str,
        events: Vec<Event>,
        clock_offset_ms: i64,
    ) -> Result<oneshot::Receiver<Result<CommitOutcome, EventLogError>>, EventLogError> {
        let (reply, answer) = oneshot::channel();
        // A batch larger than the whole limit waits for all of it.
        let weight = events.len().clamp(1, self.in_flight_limit) as u32;
        let room = self
            .in_flight
            .clone()
            .acquire_many_owned(weight)
            .await
            .map_err(|_| EventLogError::Closed)?;
        self.tx
            .send(CommitRequest {
                edge: edge.to_owned(),
                events,
                clock_offset_ms,
                reply,
                room,
            })
            .await
            .map_err(|_| EventLogError::Closed)?;
        Ok(answer)
    }

    /// Commits `events` of `edge` and returns what happened.
    pub async fn commit(
        &self,
        edge: &str,
        events: Vec<Event>,
        clock_offset_ms: i64,
    ) -> Result<CommitOutcome, EventLogError> {
        self.submit(edge, events, clock_offset_ms)
            .await?
            .await
            .map_err(|_| EventLogError::Closed)?
    }

    /// Every edge's committed high-water mark as stored, so `outpost_hub_committed_seq{edge}`
    /// tells the truth from start-up, not from the edge's next event.
    pub fn publish_committed(&self) -> Result<usize, EventLogError> {
        let marks = lock_committed(&self.committed);
        for (edge, seq) in marks.iter() {
            metrics::COMMITTED_SEQ
                .with_label_values(&[edge])
                .set(*seq as i64);
        }
        Ok(marks.len())
    }

    /// The durably committed high-water mark of `edge` (0 if it never sent anything): what the
    /// hub may tell the edge it holds.
    pub fn committed_seq(&self, edge: &str) -> Result<u64, EventLogError> {
        Ok(lock_committed(&self.committed)
            .get(edge)
            .copied()
            .unwrap_or(0))
    }

    /// Every edge's durably committed high-water mark.
    pub fn committed_marks(&self) -> HashMap<String, u64> {
        lock_committed(&self.committed).clone()
    }

    /// A receiver that changes after every commit.
    pub fn subscribe_commits(&self) -> tokio::sync::watch::Receiver<u64> {
        self.commits.subscribe()
    }

    /// Command results committed in the log whose application to the command log is not known to
    /// be durable, oldest first per edge. A sequence that names no result in the log (only damage
    /// could make one) is logged and forgotten, not allowed to keep the hub from starting.
    pub fn unapplied_results(&self) -> Result<Vec<CommittedResult>, EventLogError> {
        let db = self.durable.db();
        let listed: Vec<(String, Vec<u64>)> = lock_pending(&self.pending)
            .by_edge
            .iter()
            .map(|(edge, seqs)| (edge.clone(), seqs.iter().copied().collect()))
            .collect();
        let mut out = Vec::new();
        let mut unknown = Vec::new();
        for (edge, seqs) in listed {
            for seq in seqs {
                let found = read_events(db, &edge, seq, 1)?
                    .into_iter()
                    .next()
                    .and_then(|stored| match stored.event {
                        Event {
                            seq: found,
                            body: EventBody::CommandResult(result),
                            ..
                        } if found == seq => Some(result),
                        _ => None,
                    });
                match found {
                    Some(result) => out.push(CommittedResult {
                        edge: edge.clone(),
                        seq,
                        result,
                    }),
                    None => {
                        tracing::error!(edge = %edge, seq, "a pending command result names no result in the event log; forgotten");
                        unknown.push((edge.clone(), seq));
                    }
                }
            }
        }
        self.forget(unknown.iter().map(|(edge, seq)| (edge.as_str(), *seq)))?;
        Ok(out)
    }

    /// Forgets `results`: the command log has them durably (written now, durable with the next
    /// commit).
    pub fn results_applied(&self, results: &[CommittedResult]) -> Result<(), EventLogError> {
        self.forget(results.iter().map(|r| (r.edge.as_str(), r.seq)))
    }

    fn forget<'a>(
        &self,
        results: impl Iterator<Item = (&'a str, u64)>,
    ) -> Result<(), EventLogError> {
        let mut pending = lock_pending(&self.pending);
        let mut changed = std::collections::BTreeSet::new();
        for (edge, seq) in results {
            if let Some(seqs) = pending.by_edge.get_mut(edge)
                && seqs.remove(&seq)
            {
                changed.insert(edge);
            }
        }
        for edge in changed {
            pending.write(self.durable.db(), edge)?;
        }
        Ok(())
    }

    /// Committed events of `edge` from `from_seq` on, at most `max`.
    pub fn read(
        &self,
        edge: &str,
        from_seq: u64,
        max: usize,
    ) -> Result<Vec<StoredEvent>, EventLogError> {
        read_events(self.durable.db(), edge, from_seq, max)
    }

    /// The database the log lives in (projections keep their trees beside it).
    pub fn durable(&self) -> &Arc<DurableDb> {
        &self.durable
    }
}

/// Events of `edge` stored in `db` from `from_seq` on, at most `max` (also for offline tools,
/// which read without a writer).
pub fn read_events(
    db: &sled::Db,
    edge: &str,
    from_seq: u64,
    max: usize,
) -> Result<Vec<StoredEvent>, EventLogError> {
    let mut out = Vec::new();
    let prefix = chunk_prefix(edge);
    for entry in outpost_storage::chunks_from(db, &prefix, from_seq) {
        let (_, value) = entry.map_err(|e| EventLogError::Storage(e.to_string()))?;
        let stored = chunk::decode::<StoredEvent>(&value)
            .map_err(|e| EventLogError::Corrupt(e.to_string()))?;
        for (event, _) in stored {
            if event.event.seq < from_seq {
                continue;
            }
            if out.len() >= max {
                return Ok(out);
            }
            out.push(event);
        }
    }
    Ok(out)
}

/// Sets `edge`'s high-water mark in `db` (offline: `outpost-hub edges adopt`, with the hub
/// stopped; the live log moves marks only by committing events).
pub fn set_mark(db: &sled::Db, edge: &str, seq: u64) -> Result<(), EventLogError> {
    db.insert(hwm_key(edge), &seq.to_be_bytes())
        .map_err(|e| EventLogError::Storage(e.to_string()))?;
    Ok(())
}

/// Every edge's high-water mark as stored in `db` (offline tools).
pub fn marks(db: &sled::Db) -> Result<HashMap<String, u64>, EventLogError> {
    stored_marks(db)
}

impl PendingResults {
    fn encoded(&self, edge: &str) -> Vec<u8> {
        self.by_edge
            .get(edge)
            .map(encode_pending)
            .unwrap_or_default()
    }

    /// Writes `edge`'s list to the store as it is now.
    fn write(&self, db: &sled::Db, edge: &str) -> Result<(), EventLogError> {
        let value = self.encoded(edge);
        outpost_storage::check_entry(&pending_key(edge), &value).map_err(storage)?;
        db.insert(pending_key(edge), value).map_err(storage)?;
        Ok(())
    }

    /// Adds a result committed by `batch` and puts the edge's new list in it; past
    /// [`MAX_PENDING_RESULTS`] the oldest goes.
    fn add(&mut self, edge: &str, seq: u64, batch: &mut Batch) -> Result<(), EventLogError> {
        let seqs = self.by_edge.entry(edge.to_owned()).or_default();
        seqs.insert(seq);
        while seqs.len() > MAX_PENDING_RESULTS {
            if let Some(oldest) = seqs.pop_first() {
                tracing::error!(edge = %edge, seq = oldest, "too many command results wait for the command log; the oldest is forgotten (its command ends at its deadline)");
            }
        }
        batch
            .insert(pending_key(edge), self.encoded(edge))
            .map_err(storage)
    }
}

fn run_writer(
    durable: &DurableDb,
    mut rx: mpsc::Receiver<CommitRequest>,
    max_batch: usize,
    committed: &std::sync::Mutex<HashMap<String, u64>>,
    commits: &tokio::sync::watch::Sender<u64>,
    pending: &std::sync::Mutex<PendingResults>,
) -> Result<(), EventLogError> {
    let db = durable.db();
    let mut hwm: HashMap<String, u64> = HashMap::new();
    while let Some(requests) = recv_batch_weighted(&mut rx, max_batch, |r| r.events.len()) {
        let mut batch = Batch::default();
        let mut outcomes: Vec<(
            oneshot::Sender<Result<CommitOutcome, EventLogError>>,
            CommitOutcome,
        )> = Vec::with_capacity(requests.len());
        let mut touched: Vec<String> = Vec::new();
        let mut called_us: Vec<i64> = Vec::new();
        // Given back once the batch is committed (or failed).
        let mut rooms = Vec::with_capacity(requests.len());
        let received = outpost_process::clock::unix_us();
        for request in requests {
            let high = match hwm.get(&request.edge) {
                Some(h) => *h,
                None => read_hwm(db, &request.edge)?,
            };
            rooms.push(request.room);
            let mut ledger = Ledger::new(high);
            let admission = ledger.admit(request.events);
            for gap in &admission.gaps {
                tracing::error!(
                    edge = %request.edge,
                    after = gap.after,
                    next = gap.next,
                    missing = gap.missing(),
                    "GAP in the event sequence: events were lost before the hub"
                );
                metrics::GAPS.inc();
                metrics::MISSING_EVENTS.inc_by(gap.missing());
                metrics::EDGE_GAPS.with_label_values(&[&request.edge]).inc();
                metrics::EDGE_MISSING_EVENTS
                    .with_label_values(&[&request.edge])
                    .inc_by(gap.missing());
            }
            if admission.duplicates > 0 {
                metrics::EDGE_DUPLICATES
                    .with_label_values(&[&request.edge])
                    .inc_by(admission.duplicates as u64);
            }
            let high_now = admission.committed;
            let mut outcome = CommitOutcome {
                duplicates: admission.duplicates,
                missing: admission.missing(),
                ..CommitOutcome::default()
            };
            let mut chunk = ChunkBuilder::new(MAX_VALUE_BYTES);
            let chunk_key =
                |first: u64| [chunk_prefix(&request.edge), first.to_be_bytes().to_vec()].concat();
            for event in admission.accepted {
                match &event.body {
                    EventBody::CommandResult(result) => {
                        lock_pending(pending).add(&request.edge, event.seq, &mut batch)?;
                        outcome.command_results.push(CommittedResult {
                            edge: request.edge.clone(),
                            seq: event.seq,
                            result: result.clone(),
                        })
                    }
                    EventBody::Shed => {
                        metrics::SHED_EVENTS.inc();
                        metrics::EDGE_SHED_EVENTS
                            .with_label_values(&[&request.edge])
                            .inc();
                    }
                    EventBody::Synthetic { .. }
                    | EventBody::Sas(_)
                    | EventBody::Tv(_)
                    | EventBody::Relay(_) => {}
                }
                let seq = event.seq;
                called_us.push(event.wall_us);
                let stored = StoredEvent {
                    event,
                    hub_received_us: received,
                    clock_offset_ms: request.clock_offset_ms,
                };
                let mut frame = Vec::with_capacity(256);
                chunk::encode_item(&stored, &mut frame)
                    .map_err(|e| EventLogError::Storage(format!("cannot encode event: {e}")))?;
                if !chunk.fits(frame.len()) {
                    batch
                        .insert(chunk_key(chunk.first()), chunk.take())
                        .map_err(|e| EventLogError::Storage(e.to_string()))?;
                }
                chunk.push_frame(seq, &frame);
                outcome.accepted += 1;
            }
            if !chunk.is_empty() {
                batch
                    .insert(chunk_key(chunk.first()), chunk.take())
                    .map_err(|e| EventLogError::Storage(e.to_string()))?;
            }
            outcome.committed_seq = high_now;
            if high_now != high {
                batch
                    .insert(hwm_key(&request.edge), high_now.to_be_bytes())
                    .map_err(|e| EventLogError::Storage(e.to_string()))?;
                touched.push(request.edge.clone());
            }
            hwm.insert(request.edge, high_now);
            outcomes.push((request.reply, outcome));
        }
        let result = durable
            .apply(batch)
            .and_then(|()| durable.commit())
            .map_err(|e| EventLogError::Storage(e.to_string()));
        match result {
            Ok(took) => {
                metrics::COMMIT_SECONDS.observe(took.as_secs_f64());
                let durable_at = outpost_process::clock::unix_us();
                for called in called_us {
                    metrics::DELIVERY_SECONDS.observe((durable_at - called).max(0) as f64 / 1e6);
                }
                {
                    let mut durable_marks = lock_committed(committed);
                    for edge in &touched {
                        if let Some(h) = hwm.get(edge) {
                            durable_marks.insert(edge.clone(), *h);
                        }
                    }
                }
                for edge in touched {
                    if let Some(h) = hwm.get(&edge) {
                        metrics::COMMITTED_SEQ
                            .with_label_values(&[&edge])
                            .set(*h as i64);
                    }
                }
                commits.send_modify(|n| *n += 1);
                for (reply, outcome) in outcomes {
                    metrics::EVENTS_COMMITTED.inc_by(outcome.accepted as u64);
                    metrics::DUPLICATES.inc_by(outcome.duplicates as u64);
                    let _ = reply.send(Ok(outcome));
                }
            }
            Err(err) => {
                for (reply, _) in outcomes {
                    let _ = reply.send(Err(err.clone()));
                }
                return Err(err);
            }
        }
    }
    Ok(())
}
