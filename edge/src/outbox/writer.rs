//! The outbox's single writer thread: assigns sequence numbers, applies the budget, group-commits,
//! trims. Everything that changes the outbox goes through here, in order.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use outpost_link::{Event, EventBody, EventClass, MAX_EVENT_BYTES};
use outpost_process::clock::unix_ms;
use outpost_storage::chunk::{self, ChunkBuilder};
use outpost_storage::{Batch, DurableDb, MAX_VALUE_BYTES, key_seq, recv_batch, seq_key};
use tokio::sync::{mpsc, oneshot, watch};

use super::{OutboxError, OutboxLimits, Recovered};
use crate::metrics;

pub(crate) const EVENT: u8 = b'e';
pub(crate) const COMMAND: u8 = b'c';
/// Per device, the sequence of its last stored event (key: this byte, then the device id),
/// written in the same batch as the events: see [`super::Outbox::last_seq_of`].
pub(crate) const DEVICE_LAST: u8 = b'd';
const META_LAST: &[u8] = b"mlast";
const META_ACKED: &[u8] = b"macked";

/// What the edge has recorded about a command id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandMark {
    /// Accepted and about to run (or running). Found at start-up, it means the edge restarted
    /// while it ran: the outcome is unknown and it is never run again.
    Started,
    /// Its result is in the outbox.
    Finished,
}

impl CommandMark {
    fn to_byte(self) -> u8 {
        match self {
            CommandMark::Started => 1,
            CommandMark::Finished => 2,
        }
    }

    fn from_byte(b: u8) -> Option<Self> {
        match b {
            1 => Some(CommandMark::Started),
            2 => Some(CommandMark::Finished),
            _ => None,
        }
    }
}

pub(crate) enum WriterMsg {
    Append {
        device: String,
        class: EventClass,
        body: EventBody,
        /// When the device called `append` (µs since the Unix epoch).
        called_us: i64,
        reply: oneshot::Sender<Result<u64, OutboxError>>,
    },
    Trim {
        through: u64,
    },
    Adopt {
        committed_seq: u64,
        reply: oneshot::Sender<Result<u64, OutboxError>>,
    },
    MarkCommand {
        id: String,
        mark: CommandMark,
        reply: oneshot::Sender<Result<Option<CommandMark>, OutboxError>>,
    },
    /// Look again at the waiting appends: the disk may have room again (another program freed
    /// it) though nothing was acknowledged — and with nothing admitted, nothing will be.
    Retry,
}

struct PendingAppend {
    device: String,
    class: EventClass,
    body: EventBody,
    /// When the device called `append`: the event's wall time.
    called_us: i64,
    reply: oneshot::Sender<Result<u64, OutboxError>>,
}

type AppendReply = (oneshot::Sender<Result<u64, OutboxError>>, u64);
type MarkReply = (
    oneshot::Sender<Result<Option<CommandMark>, OutboxError>>,
    Option<CommandMark>,
);

/// The directory size over which an empty outbox compacts while the disk is under the floor: more
/// than a freshly compacted outbox takes, so a disk another program filled does not make the outbox
/// compact again and again.
const FLOOR_COMPACT_ABOVE_BYTES: u64 = 4 * 1024 * 1024;

pub(crate) struct Writer {
    durable: DurableDb,
    /// How a batch reaches the disk (the disk itself, or a test's failing one).
    disk: Box<dyn outpost_storage::Commit>,
    limits: OutboxLimits,
    /// The budget in force: the configured one, or less when the disk holds less.
    room: super::room::DiskRoom,
    last_seq: u64,
    acked_seq: u64,
    stored_bytes: u64,
    boot_id: u128,
    /// Money and audit appends waiting for space, in arrival order.
    parked: VecDeque<PendingAppend>,
    /// Below this sequence there is no unshed telemetry left to shed.
    shed_cursor: u64,
    /// The sequence at which the directory size is next measured (see `compaction_due`).
    next_compaction_check: u64,
    /// First sequence and wall time (ms) of the first event of every stored chunk, oldest first:
    /// the age of the oldest unacknowledged event without reading sled on every commit.
    chunk_times: VecDeque<(u64, i64)>,
    /// Events admitted since the last commit: full chunks, and the one being filled.
    sealed: Vec<(u64, Vec<u8>)>,
    chunk: ChunkBuilder,
    /// The last sequence admitted per device since the last commit.
    device_last: HashMap<String, u64>,
}

fn read_u64(db: &sled::Db, key: &[u8]) -> Result<u64, OutboxError> {
    Ok(match db.get(key)? {
        Some(v) => {
            let bytes: [u8; 8] = v.as_ref().try_into().map_err(|_| {
                OutboxError::Storage(format!("meta key {key:?} holds {} bytes, not 8", v.len()))
            })?;
            u64::from_be_bytes(bytes)
        }
        None => 0,
    })
}

impl Writer {
    pub(crate) fn recover(durable: DurableDb, limits: OutboxLimits) -> Result<Self, OutboxError> {
        let db = durable.db();
        let mut last_seq = read_u64(db, META_LAST)?;
        let acked_seq = read_u64(db, META_ACKED)?;
        let mut stored_bytes = 0u64;
        let mut chunk_times = VecDeque::new();
        for entry in db.range(seq_key(EVENT, 0)..seq_key(EVENT, u64::MAX)) {
            let (key, value) = entry?;
            let last = chunk::last_seq(&value);
            if let Some(last) = last {
                last_seq = last_seq.max(last);
            }
            if last.is_some_and(|last| last <= acked_seq) {
                // Delivered, kept on disk while it was under the floor (see `trim`).
                continue;
            }
            stored_bytes += value.len() as u64;
            if let (Some(first), Ok(Some(event))) = (key_seq(&key), chunk::first::<Event>(&value)) {
                chunk_times.push_back((first, event.wall_us / 1000));
            }
        }
        let writer = Self {
            room: super::room::DiskRoom::new(durable.path(), limits.budget_bytes),
            limits,
            last_seq,
            acked_seq,
            stored_bytes,
            boot_id: super::boot_id(),
            parked: VecDeque::new(),
            shed_cursor: acked_seq + 1,
            sealed: Vec::new(),
            chunk_times,
            next_compaction_check: 0,
            chunk: ChunkBuilder::new(MAX_VALUE_BYTES),
            device_last: HashMap::new(),
            durable,
            disk: Box::new(outpost_storage::Disk),
        };
        writer.publish_gauges();
        Ok(writer)
    }

    /// Commits through `disk` from now on.
    pub(crate) fn commit_through(&mut self, disk: Box<dyn outpost_storage::Commit>) {
        self.disk = disk;
    }

    pub(crate) fn disk_bytes(&self) -> u64 {
        self.durable.disk_bytes()
    }

    pub(crate) fn db(&self) -> sled::Db {
        self.durable.db().clone()
    }

    /// Everything but events: the sequence numbers and the command marks.
    pub(crate) fn non_event_entries(&self) -> Result<Vec<(sled::IVec, sled::IVec)>, OutboxError> {
        let mut kept = Vec::new();
        for entry in self.durable.db().iter() {
            let (key, value) = entry?;
            if key.first() != Some(&EVENT) {
                kept.push((key, value));
            }
        }
        Ok(kept)
    }

    /// Whether the outbox is empty and its directory is over the compaction threshold. The
    /// directory is measured at most once per 10,000 events, or at every idle turn while the disk
    /// is under the floor (see `room.rs`): then the threshold is [`FLOOR_COMPACT_ABOVE_BYTES`].
    pub(crate) fn compaction_due(&mut self) -> Option<u64> {
        if self.last_seq != self.acked_seq {
            return None;
        }
        let below_floor = self.room.below_floor();
        if self.last_seq < self.next_compaction_check && !below_floor {
            return None;
        }
        self.next_compaction_check = self.last_seq + 10_000;
        let disk_bytes = self.durable.disk_bytes();
        let threshold = if below_floor {
            FLOOR_COMPACT_ABOVE_BYTES.min(self.limits.compact_above_bytes)
        } else {
            self.limits.compact_above_bytes
        };
        (disk_bytes > threshold).then_some(disk_bytes)
    }

    pub(crate) fn recovered(&self) -> Recovered {
        Recovered {
            last_seq: self.last_seq,
            acked_seq: self.acked_seq,
            stored_bytes: self.stored_bytes,
        }
    }

    pub(crate) fn run(
        mut self,
        mut rx: mpsc::Receiver<WriterMsg>,
        durable_seq: watch::Sender<u64>,
        acked_shared: Arc<AtomicU64>,
        commits: Arc<AtomicU64>,
    ) -> Result<(), OutboxError> {
        while let Some(messages) = recv_batch(&mut rx, self.limits.max_batch) {
            let mut batch = Batch::default();
            let mut appended: Vec<AppendReply> = Vec::new();
            let mut marked: Vec<MarkReply> = Vec::new();
            let mut marks_in_batch: HashMap<String, CommandMark> = HashMap::new();
            let mut adopted: Vec<oneshot::Sender<Result<u64, OutboxError>>> = Vec::new();
            for message in messages {
                match message {
                    WriterMsg::Trim { through } => {
                        if self.trim(through)? {
                            acked_shared.store(self.acked_seq, Ordering::Release);
                            self.admit_parked(&mut appended)?;
                        }
                    }
                    WriterMsg::Retry => {
                        if !self.parked.is_empty() {
                            self.admit_parked(&mut appended)?;
                        }
                    }
                    WriterMsg::Append {
                        device,
                        class,
                        body,
                        called_us,
                        reply,
                    } => {
                        let pending = PendingAppend {
                            device,
                            class,
                            body,
                            called_us,
                            reply,
                        };
                        if !self.parked.is_empty() && pending.class != EventClass::Telemetry {
                            self.parked.push_back(pending);
                        } else {
                            self.admit(pending, &mut appended)?;
                        }
                    }
                    WriterMsg::Adopt {
                        committed_seq,
                        reply,
                    } => {
                        if committed_seq > self.last_seq {
                            tracing::error!(
                                hub_committed = committed_seq,
                                last_seq = self.last_seq,
                                "the hub has more of this edge than its outbox ever held (disk replaced?); continuing after the hub's sequence"
                            );
                            self.last_seq = committed_seq;
                            self.acked_seq = committed_seq;
                            self.chunk_times.clear();
                            acked_shared.store(committed_seq, Ordering::Release);
                            batch.insert(META_ACKED, committed_seq.to_be_bytes())?;
                        }
                        adopted.push(reply);
                    }
                    WriterMsg::MarkCommand { id, mark, reply } => {
                        let key = [&[COMMAND][..], id.as_bytes()].concat();
                        let previous = match marks_in_batch.get(&id) {
                            Some(m) => Some(*m),
                            None => self
                                .durable
                                .db()
                                .get(&key)?
                                .and_then(|v| v.first().copied())
                                .and_then(CommandMark::from_byte),
                        };
                        let keep = match (previous, mark) {
                            (Some(CommandMark::Finished), _) => CommandMark::Finished,
                            (_, new) => new,
                        };
                        let mut value = vec![keep.to_byte()];
                        value.extend_from_slice(&unix_ms().to_be_bytes());
                        if let Err(refused) = batch.insert(key, value) {
                            // An id too long to store (from the network): refuse this mark only.
                            let _ = reply.send(Err(refused.into()));
                            continue;
                        }
                        marks_in_batch.insert(id, keep);
                        marked.push((reply, previous));
                    }
                }
            }
            metrics::OUTBOX_WAITING.set(self.parked.len() as i64);
            if appended.is_empty() && marked.is_empty() && adopted.is_empty() {
                self.publish_gauges();
                if let Some(disk_bytes) = self.compaction_due() {
                    return Err(OutboxError::CompactionDue { disk_bytes });
                }
                continue;
            }
            if !self.chunk.is_empty() {
                self.sealed.push((self.chunk.first(), self.chunk.take()));
            }
            for (first, value) in self.sealed.drain(..) {
                batch.insert(seq_key(EVENT, first), value)?;
            }
            for (device, seq) in self.device_last.drain() {
                let key = [&[DEVICE_LAST][..], device.as_bytes()].concat();
                batch.insert(key, seq.to_be_bytes())?;
            }
            batch.insert(META_LAST, self.last_seq.to_be_bytes())?;
            let committed = self
                .disk
                .commit(&self.durable, batch)
                .map_err(OutboxError::from);
            match committed {
                Ok(took) => {
                    commits.fetch_add(1, Ordering::Relaxed);
                    metrics::OUTBOX_FLUSH_SECONDS.observe(took.as_secs_f64());
                    durable_seq.send_replace(self.last_seq);
                    for (reply, seq) in appended {
                        // A producer that gave up waiting is fine: the event is stored anyway.
                        let _ = reply.send(Ok(seq));
                    }
                    for (reply, previous) in marked {
                        let _ = reply.send(Ok(previous));
                    }
                    for reply in adopted {
                        let _ = reply.send(Ok(self.last_seq));
                    }
                    self.publish_gauges();
                }
                Err(err) => {
                    tracing::error!(%err, "outbox commit failed; failing every append of the batch");
                    for (reply, _) in appended {
                        let _ = reply.send(Err(err.clone()));
                    }
                    for (reply, _) in marked {
                        let _ = reply.send(Err(err.clone()));
                    }
                    for reply in adopted {
                        let _ = reply.send(Err(err.clone()));
                    }
                    for pending in self.parked.drain(..) {
                        let _ = pending.reply.send(Err(err.clone()));
                    }
                    return Err(err);
                }
            }
        }
        Ok(())
    }

    fn frame(
        &self,
        seq: u64,
        wall_us: i64,
        device: &str,
        class: EventClass,
        body: EventBody,
    ) -> Result<Vec<u8>, OutboxError> {
        let event = Event {
            seq,
            device: device.to_owned(),
            class,
            wall_us,
            mono_us: super::mono_us(),
            boot_id: self.boot_id,
            body,
        };
        {
            let mut frame = Vec::with_capacity(256);
            chunk::encode_item(&event, &mut frame)
                .map_err(|e| OutboxError::Storage(format!("cannot encode event: {e}")))?;
            Ok(frame)
        }
    }

    fn admit(
        &mut self,
        pending: PendingAppend,
        appended: &mut Vec<AppendReply>,
    ) -> Result<(), OutboxError> {
        let seq = self.last_seq + 1;
        let wall_us = pending.called_us;
        let mut bytes = self.frame(
            seq,
            wall_us,
            &pending.device,
            pending.class,
            pending.body.clone(),
        )?;
        if bytes.len() > MAX_EVENT_BYTES {
            let _ = pending.reply.send(Err(OutboxError::EventTooLarge {
                size: bytes.len(),
                limit: MAX_EVENT_BYTES,
            }));
            return Ok(());
        }
        if bytes.len() as u64 > self.limits.budget_bytes {
            let _ = pending.reply.send(Err(OutboxError::TooLarge {
                size: bytes.len(),
                budget: self.limits.budget_bytes,
            }));
            return Ok(());
        }
        let budget = self.room.budget();
        let below_floor = self.room.below_floor();
        if below_floor || self.stored_bytes + bytes.len() as u64 > budget {
            match pending.class {
                EventClass::Money | EventClass::Audit => {
                    self.parked.push_back(pending);
                    return Ok(());
                }
                EventClass::Telemetry => {
                    // Under the floor, rewriting stored chunks would only take more of the disk.
                    if !below_floor {
                        self.shed_until(bytes.len() as u64)?;
                    }
                    if below_floor || self.stored_bytes + bytes.len() as u64 > budget {
                        bytes = self.frame(
                            seq,
                            wall_us,
                            &pending.device,
                            pending.class,
                            EventBody::Shed,
                        )?;
                        metrics::OUTBOX_SHED.inc();
                    }
                }
            }
        }
        self.last_seq = seq;
        self.stored_bytes += bytes.len() as u64;
        self.room.wrote(bytes.len() as u64);
        if !self.chunk.fits(bytes.len()) {
            self.sealed.push((self.chunk.first(), self.chunk.take()));
        }
        if self.chunk.is_empty() {
            self.chunk_times.push_back((seq, wall_us / 1000));
        }
        self.chunk.push_frame(seq, &bytes);
        self.device_last.insert(pending.device, seq);
        appended.push((pending.reply, seq));
        Ok(())
    }

    fn admit_parked(&mut self, appended: &mut Vec<AppendReply>) -> Result<(), OutboxError> {
        while let Some(pending) = self.parked.pop_front() {
            let before = self.parked.len();
            self.admit(pending, appended)?;
            if self.parked.len() > before {
                // It went back to the queue (to the end): put it first again and wait for more acks.
                if let Some(back) = self.parked.pop_back() {
                    self.parked.push_front(back);
                }
                break;
            }
        }
        Ok(())
    }

    /// Replaces the oldest stored telemetry by tombstones until `need` more bytes fit.
    fn shed_until(&mut self, need: u64) -> Result<(), OutboxError> {
        let budget = self.room.budget();
        let db = self.durable.db().clone();
        let from = self.shed_cursor.max(self.acked_seq + 1);
        for entry in outpost_storage::chunks_from(&db, &[EVENT], from) {
            if self.stored_bytes + need <= budget {
                break;
            }
            let (key, value) = entry?;
            let first = key_seq(&key).unwrap_or_default();
            let mut events: Vec<Event> = chunk::decode::<Event>(&value)
                .map_err(|e| OutboxError::Corrupt {
                    seq: first,
                    reason: e.to_string(),
                })?
                .into_iter()
                .map(|(event, _)| event)
                .collect();
            let mut shed = 0u64;
            let mut freed = 0u64;
            for event in events.iter_mut() {
                if self.stored_bytes + need <= budget + freed {
                    break;
                }
                self.shed_cursor = event.seq + 1;
                if event.seq <= self.acked_seq
                    || event.class != EventClass::Telemetry
                    || event.body == EventBody::Shed
                {
                    continue;
                }
                let before = outpost_link::encode_len(event) as u64;
                event.body = EventBody::Shed;
                freed += before.saturating_sub(outpost_link::encode_len(event) as u64);
                shed += 1;
            }
            if shed > 0 {
                let mut rebuilt = ChunkBuilder::new(MAX_VALUE_BYTES);
                for event in &events {
                    rebuilt
                        .push(event.seq, event)
                        .map_err(|e| OutboxError::Storage(format!("cannot encode chunk: {e}")))?;
                }
                let rewritten = rebuilt.take();
                self.stored_bytes = self.stored_bytes - value.len() as u64 + rewritten.len() as u64;
                self.room.wrote(rewritten.len() as u64);
                self.durable.insert(&db, key, rewritten)?;
                metrics::OUTBOX_SHED.inc_by(shed);
            }
        }
        Ok(())
    }

    /// Removes events up to `through`. Returns whether anything changed.
    fn trim(&mut self, through: u64) -> Result<bool, OutboxError> {
        let through = if through > self.last_seq {
            tracing::warn!(
                acked = through,
                last_seq = self.last_seq,
                "hub acknowledged beyond the last sequence; clamped"
            );
            self.last_seq
        } else {
            through
        };
        if through <= self.acked_seq {
            return Ok(false);
        }
        // Under the floor, delivered chunks stay where they are: removing them makes sled write
        // (and, while it cleans segments, write a lot), and the disk has no room for that. They
        // go with the compaction once all is delivered, or with the first trim above the floor.
        let keep_on_disk = self.room.below_floor();
        let db = self.durable.db();
        let mut batch = Batch::default();
        let mut freed = 0u64;
        // Whole chunks go; a chunk still holding unacknowledged events stays until they are.
        let from = if keep_on_disk { self.acked_seq + 1 } else { 0 };
        for entry in outpost_storage::chunks_from(db, &[EVENT], from) {
            let (key, value) = entry?;
            if key_seq(&key).is_some_and(|first| first > through) {
                break;
            }
            match chunk::last_seq(&value) {
                Some(last) if last <= through => {
                    if last > self.acked_seq {
                        freed += value.len() as u64;
                    }
                    if !keep_on_disk {
                        batch.remove(key);
                    }
                }
                _ => break,
            }
        }
        batch.insert(META_ACKED, through.to_be_bytes())?;
        self.durable.apply(batch)?;
        self.stored_bytes = self.stored_bytes.saturating_sub(freed);
        // Forget chunks wholly acknowledged: those whose successor starts at or before through+1.
        while self
            .chunk_times
            .get(1)
            .is_some_and(|(next_first, _)| *next_first <= through + 1)
        {
            self.chunk_times.pop_front();
        }
        if through >= self.last_seq {
            self.chunk_times.clear();
        }
        self.acked_seq = through;
        self.shed_cursor = self.shed_cursor.max(through + 1);
        self.publish_gauges();
        Ok(true)
    }

    fn publish_gauges(&self) {
        metrics::OUTBOX_LAST_SEQ.set(self.last_seq as i64);
        metrics::OUTBOX_ACKED_SEQ.set(self.acked_seq as i64);
        metrics::OUTBOX_DEPTH.set(self.last_seq.saturating_sub(self.acked_seq) as i64);
        metrics::OUTBOX_BYTES.set(self.stored_bytes as i64);
        // The chunk holding the first unacknowledged event; its first event's time stands for it
        // (a commit's events are milliseconds apart).
        let oldest = (self.last_seq > self.acked_seq)
            .then(|| self.chunk_times.front().map(|(_, wall_ms)| *wall_ms))
            .flatten();
        metrics::set_oldest_unacked(oldest);
    }
}
