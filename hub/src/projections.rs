//! Running the domain's projections over the event log: one supervised actor each, a durable
//! cursor per edge, lag metrics, poison events kept aside, and the offline rebuild.
//!
//! Each projection has its own sled tree, `projection/<name>`. The runner owns these key tags in
//! it: `v` → the projection's format version (another version's tree is cleared and rebuilt from
//! the log), `c ++ edge` → the last sequence applied (u64 BE), `p ++ edge ++ 0 ++ seq` → why
//! that event could not be applied (kept for inspection, never retried), and for the accounting
//! projection `r ++ edge` → the last reading entered by hand applied (entry id, u64 BE) and
//! `q ++ id` → why that entry could not be applied. Every other key is the projection's (see
//! `outpost_domain::projection`).
//!
//! Readings entered by hand (`crate::manual`) are applied by the accounting runner between the
//! events of their machine's edge: a new one right after what the runner has applied of that
//! edge, its place (`anchor`) written to the trail before it is applied; on a rebuild each is
//! applied at its place again. Per edge, entries are applied in id order and their anchors never
//! go down.
//!
//! Invariants:
//! - A projection's writes and its cursors go into the tree in one atomic batch: after a crash it
//!   resumes exactly after what it stored, so nothing is applied twice or skipped.
//! - Events are applied per edge in sequence order, each once; a gap in the sequence (events the
//!   hub never received) is passed to the projection as `missing_before`.
//! - A poison event is logged, counted (`outpost_projection_poison_events_total`) and stored
//!   under `p`; the cursor moves past it.
//! - A rebuild clears the tree and replays the whole log; with the same log and config it writes
//!   the same bytes (`outpost-hub projections rebuild` prints both digests).

use std::collections::BTreeMap;
use std::time::Duration;

use outpost_actors::{ChildSpec, OwnedTask, Restart};
use outpost_domain::StoredEvent;
use outpost_domain::projection::{self, Change, Projection};
use outpost_domain::site::Floor;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use sha2::{Digest, Sha256};
use tokio::sync::broadcast;

use crate::eventlog::{self, EventLog, EventLogError};
use crate::metrics;

/// Events read from the log per step and edge.
const READ_BATCH: usize = 1024;
/// Events applied per edge before the runner stores and moves on to the next edge.
const STEP_BUDGET: usize = 8192;

/// The tree of projection `name`: `projection/<name>`, or `projection/<name>@<generation>` once
/// a tree that made sled panic was abandoned (see [`Runner::open`]).
pub fn tree(db: &sled::Db, name: &str) -> Result<sled::Tree, sled::Error> {
    match generation(db, name)? {
        0 => db.open_tree(format!("projection/{name}")),
        generation => db.open_tree(format!("projection/{name}@{generation}")),
    }
}

fn generation_key(name: &str) -> String {
    format!("projection-generation/{name}")
}

fn generation(db: &sled::Db, name: &str) -> Result<u32, sled::Error> {
    Ok(db
        .get(generation_key(name))?
        .and_then(|v| v.as_ref().try_into().ok().map(u32::from_be_bytes))
        .unwrap_or(0))
}

/// Leaves projection `name`'s tree behind for a new, empty one (the log rebuilds it). The old
/// tree's pages stay in the file: sled cannot be asked to drop a tree it panics on.
fn abandon_tree(db: &sled::Db, name: &str) -> Result<u32, sled::Error> {
    let next = generation(db, name)?.saturating_add(1);
    db.insert(generation_key(name), &next.to_be_bytes())?;
    db.flush()?;
    Ok(next)
}

/// The projection's format version (`v`, u32 BE).
const VERSION_KEY: &[u8] = b"v";

fn restore_into(
    tree: &sled::Tree,
    projection: &mut dyn Projection,
    cursors: &mut BTreeMap<String, u64>,
    manual_applied: &mut BTreeMap<String, u64>,
) -> Result<(), RunError> {
    for entry in tree.iter() {
        let (key, value) = entry?;
        let number = || {
            value
                .as_ref()
                .try_into()
                .map(u64::from_be_bytes)
                .unwrap_or(0)
        };
        let edge = || String::from_utf8_lossy(&key[1..]).into_owned();
        match key.first() {
            Some(b'c') => {
                cursors.insert(edge(), number());
            }
            Some(b'r') => {
                manual_applied.insert(edge(), number());
            }
            Some(b'p') | Some(b'q') | Some(b'v') => {}
            _ if crate::feed::is_feed_key(&key) => {}
            _ => projection.restore(&key, &value)?,
        }
    }
    Ok(())
}

fn manual_applied_key(edge: &str) -> Vec<u8> {
    [&b"r"[..], edge.as_bytes()].concat()
}

fn cursor_key(edge: &str) -> Vec<u8> {
    [&b"c"[..], edge.as_bytes()].concat()
}

fn poison_key(edge: &str, seq: u64) -> Vec<u8> {
    let mut key = vec![b'p'];
    key.extend_from_slice(edge.as_bytes());
    key.push(0);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// What went wrong running a projection.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("projection store: {0}")]
    Store(#[from] sled::Error),
    #[error(transparent)]
    Log(#[from] EventLogError),
    #[error(transparent)]
    Restore(#[from] projection::RestoreError),
    #[error("unknown projection {0:?} (there are: {list})", list = projection::NAMES.join(", "))]
    Unknown(String),
    #[error(
        "projection {0} did not restore and was cleared: it is rebuilt from the log on its restart"
    )]
    Rebuild(&'static str),
    #[error(transparent)]
    Trail(#[from] crate::manual::TrailError),
}

/// Where committed marks come from: the live log's durable ones, or the store's (offline).
pub trait Source: Send + Sync {
    fn marks(&self) -> Result<BTreeMap<String, u64>, EventLogError>;
    fn read(&self, edge: &str, from: u64, max: usize) -> Result<Vec<StoredEvent>, EventLogError>;
}

impl Source for EventLog {
    fn marks(&self) -> Result<BTreeMap<String, u64>, EventLogError> {
        Ok(self.committed_marks().into_iter().collect())
    }
    fn read(&self, edge: &str, from: u64, max: usize) -> Result<Vec<StoredEvent>, EventLogError> {
        EventLog::read(self, edge, from, max)
    }
}

/// The store read offline (no writer running).
pub struct Offline(pub sled::Db);

impl Source for Offline {
    fn marks(&self) -> Result<BTreeMap<String, u64>, EventLogError> {
        Ok(eventlog::marks(&self.0)?.into_iter().collect())
    }
    fn read(&self, edge: &str, from: u64, max: usize) -> Result<Vec<StoredEvent>, EventLogError> {
        eventlog::read_events(&self.0, edge, from, max)
    }
}

/// One projection and its cursors.
pub struct Runner {
    projection: Box<dyn Projection>,
    tree: sled::Tree,
    cursors: BTreeMap<String, u64>,
    changes: Option<broadcast::Sender<Change>>,
    /// Readings entered by hand: the accounting projection's only.
    manual: Option<ManualInputs>,
    /// The change feed, when something follows this projection (see [`crate::feed`]).
    feed: Option<crate::feed::Writer>,
    /// Edges adopted from another hub: where their cursor starts (see [`crate::cluster`]).
    adopted: BTreeMap<String, u64>,
}

/// Whether `key` is one the runner keeps in a projection's tree (not the projection's own).
fn runner_key(key: &[u8]) -> bool {
    matches!(key.first(), Some(b'v' | b'c' | b'p' | b'q' | b'r')) || crate::feed::is_feed_key(key)
}

/// The accounting runner's view of the trail of readings entered by hand.
struct ManualInputs {
    trail: crate::manual::Trail,
    /// Per edge, the last entry applied.
    applied: BTreeMap<String, u64>,
    /// The highest id read from the trail.
    seen: u64,
    /// Entries read and not applied yet, per edge, in id order.
    pending: BTreeMap<String, Vec<crate::manual::ManualEntry>>,
}

impl ManualInputs {
    /// Reads what the trail gained since the last look.
    fn load(&mut self) -> Result<(), RunError> {
        for entry in self.trail.after(self.seen)? {
            self.seen = self.seen.max(entry.id);
            if entry.id > self.applied.get(&entry.edge).copied().unwrap_or(0) {
                self.pending
                    .entry(entry.edge.clone())
                    .or_default()
                    .push(entry);
            }
        }
        Ok(())
    }
}

impl Runner {
    /// Opens `projection`'s tree and restores it (cursors and state). A tree written by another
    /// version of the projection, or one that does not decode, is cleared and rebuilt from the
    /// log (the log is the truth; the projection is only derived from it). A tree that makes sled
    /// panic (seen once after a power cut: "cannot find pid … in view_for_key") is abandoned for
    /// a new one, rebuilt from the log the same way.
    pub fn open(
        db: &sled::Db,
        projection: Box<dyn Projection>,
        changes: Option<broadcast::Sender<Change>>,
    ) -> Result<Self, RunError> {
        let name = projection.name();
        let opened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            Self::open_tree(db, projection, changes)
        }));
        match opened {
            Ok(result) => result,
            Err(panic) => {
                let reason = panic
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| panic.downcast_ref::<&str>().copied())
                    .unwrap_or("(no message)")
                    .to_owned();
                let generation = abandon_tree(db, name)?;
                tracing::error!(projection = name, %reason, generation, "the projection's store panicked as it opened: abandoning that tree and rebuilding the projection from the event log");
                metrics::PROJECTION_TREES_ABANDONED.inc();
                Err(RunError::Rebuild(name))
            }
        }
    }

    fn open_tree(
        db: &sled::Db,
        projection: Box<dyn Projection>,
        changes: Option<broadcast::Sender<Change>>,
    ) -> Result<Self, RunError> {
        let name = projection.name();
        let version = projection.version();
        let tree = tree(db, name)?;
        let stored_version = tree
            .get(VERSION_KEY)?
            .and_then(|v| v.as_ref().try_into().ok().map(u32::from_be_bytes));
        let mut projection = projection;
        if stored_version != Some(version) {
            if !tree.is_empty() {
                tracing::warn!(projection = name, stored = ?stored_version, version, "projection written by another version: rebuilding it from the event log");
            }
            tree.clear()?;
            tree.insert(VERSION_KEY, &version.to_be_bytes())?;
        }
        let mut cursors = BTreeMap::new();
        let mut manual_applied = BTreeMap::new();
        if let Err(err) = restore_into(
            &tree,
            projection.as_mut(),
            &mut cursors,
            &mut manual_applied,
        ) {
            tracing::error!(projection = name, %err, "projection does not restore: rebuilding it from the event log");
            tree.clear()?;
            tree.insert(VERSION_KEY, &version.to_be_bytes())?;
            return Err(RunError::Rebuild(name));
        }
        let manual = if name == projection::ACCOUNTING {
            Some(ManualInputs {
                trail: crate::manual::Trail::open(db)?,
                applied: manual_applied,
                seen: 0,
                pending: BTreeMap::new(),
            })
        } else {
            None
        };
        Ok(Self {
            projection,
            tree,
            cursors,
            changes,
            manual,
            feed: None,
            adopted: crate::cluster::adopted(db)?,
        })
    }

    /// Keeps the projection's change feed (for the MSSQL sink), or removes it when `enabled` is
    /// false so that enabling it later starts a new epoch listing everything.
    pub fn with_feed(mut self, enabled: bool) -> Result<Self, RunError> {
        if enabled {
            let now = outpost_process::clock::unix_us().max(1) as u64;
            self.feed = Some(crate::feed::Writer::open(&self.tree, now, |key| {
                !runner_key(key)
            })?);
        } else {
            crate::feed::remove(&self.tree)?;
            self.feed = None;
        }
        Ok(self)
    }

    /// Applies one reading entered by hand; one that cannot be applied is kept aside under `q`.
    fn apply_manual(
        &mut self,
        entry: &crate::manual::ManualEntry,
        changes: &mut Vec<Change>,
        poison: &mut Vec<(Vec<u8>, Vec<u8>)>,
    ) {
        let tree = &self.tree;
        let stored = |key: &[u8]| tree.get(key).ok().flatten().map(|v| v.to_vec());
        if let Err(err) = self.projection.apply_manual(
            &entry.edge,
            &entry.device,
            &entry.reading(),
            &stored,
            changes,
        ) {
            let name = self.projection.name();
            tracing::error!(projection = name, edge = %entry.edge, device = %entry.device, entry = entry.id, %err, "reading entered by hand cannot be applied: kept aside, skipped");
            metrics::PROJECTION_POISON.with_label_values(&[name]).inc();
            poison.push((
                [&b"q"[..], &entry.id.to_be_bytes()].concat(),
                err.0.into_bytes(),
            ));
        }
    }

    /// Applies the pending entries of `edge` whose place is at or before `cursor` (giving new
    /// ones their place: `cursor`). Returns the last id applied, if any.
    fn apply_manual_up_to(
        &mut self,
        edge: &str,
        cursor: u64,
        before_seq: bool,
        changes: &mut Vec<Change>,
        poison: &mut Vec<(Vec<u8>, Vec<u8>)>,
    ) -> Result<Option<u64>, RunError> {
        let mut last = None;
        loop {
            let Some(manual) = self.manual.as_mut() else {
                return Ok(last);
            };
            let Some(first) = manual.pending.get(edge).and_then(|p| p.first()) else {
                return Ok(last);
            };
            let entry = match first.anchor {
                // Placed before the event at `cursor` (which is about to be applied).
                Some(anchor) if before_seq && anchor < cursor => first.clone(),
                Some(anchor) if !before_seq && anchor <= cursor => first.clone(),
                // New: its place is here, once everything before it is applied.
                None if !before_seq => manual.trail.anchor(first.id, cursor)?,
                _ => return Ok(last),
            };
            if let Some(pending) = manual.pending.get_mut(edge) {
                pending.remove(0);
            }
            self.apply_manual(&entry, changes, poison);
            if let Some(manual) = self.manual.as_mut() {
                manual.applied.insert(edge.to_owned(), entry.id);
            }
            last = Some(entry.id);
        }
    }

    pub fn name(&self) -> &'static str {
        self.projection.name()
    }

    /// The last sequence of `edge` applied (where an adopted edge began here, before any).
    fn cursor(&self, edge: &str) -> u64 {
        self.cursors
            .get(edge)
            .or_else(|| self.adopted.get(edge))
            .copied()
            .unwrap_or(0)
    }

    /// Applies what the log holds beyond the cursors, storing as it goes. Returns the events
    /// applied.
    pub fn step(&mut self, source: &dyn Source) -> Result<usize, RunError> {
        let name = self.projection.name();
        let mut applied = 0;
        if let Some(manual) = self.manual.as_mut() {
            manual.load()?;
        }
        for (edge, committed) in source.marks()? {
            let mut cursor = self.cursor(&edge);
            let mut done_here = 0;
            let mut changes = Vec::new();
            let mut poison = Vec::new();
            let mut manual_done = None;
            while cursor < committed && done_here < STEP_BUDGET {
                let events = source.read(&edge, cursor + 1, READ_BATCH)?;
                if events.is_empty() {
                    break;
                }
                for event in events {
                    let seq = event.event.seq;
                    if let Some(id) =
                        self.apply_manual_up_to(&edge, seq, true, &mut changes, &mut poison)?
                    {
                        manual_done = Some(id);
                    }
                    let missing = seq.saturating_sub(cursor + 1);
                    if let Err(err) = self.projection.apply(&edge, missing, &event, &mut changes) {
                        tracing::error!(
                            projection = name,
                            edge = %edge,
                            seq,
                            device = %event.event.device,
                            %err,
                            "projection cannot apply this event: kept aside, skipped"
                        );
                        metrics::PROJECTION_POISON.with_label_values(&[name]).inc();
                        poison.push((poison_key(&edge, seq), err.0.into_bytes()));
                    }
                    cursor = seq;
                    done_here += 1;
                }
            }
            if let Some(id) =
                self.apply_manual_up_to(&edge, cursor, false, &mut changes, &mut poison)?
            {
                manual_done = Some(id);
            }
            if done_here == 0 && manual_done.is_none() {
                continue;
            }
            let mut writes = Vec::new();
            self.projection.flush(&mut writes);
            let mut batch = sled::Batch::default();
            if let Some(feed) = self.feed.as_mut() {
                for (key, _) in &writes {
                    feed.record(&mut batch, key);
                }
                feed.seal(&mut batch);
            }
            for (key, value) in writes.into_iter().chain(poison) {
                batch.insert(key, value);
            }
            batch.insert(cursor_key(&edge), &cursor.to_be_bytes());
            if let Some(id) = manual_done {
                batch.insert(manual_applied_key(&edge), &id.to_be_bytes());
            }
            self.tree.apply_batch(batch)?;
            self.cursors.insert(edge, cursor);
            applied += done_here;
            metrics::PROJECTION_APPLIED
                .with_label_values(&[name])
                .inc_by(done_here as u64);
            if let Some(tx) = &self.changes {
                for change in changes {
                    // Nobody listening is fine.
                    let _ = tx.send(change);
                }
            }
        }
        Ok(applied)
    }

    /// Events behind, and how long the oldest of them has waited (seconds).
    pub fn lag(&self, source: &dyn Source, now_us: i64) -> Result<(u64, f64), RunError> {
        let mut behind = 0;
        let mut oldest: Option<i64> = None;
        for (edge, committed) in source.marks()? {
            let cursor = self.cursor(&edge);
            if committed > cursor {
                behind += committed - cursor;
                if let Some(first) = source.read(&edge, cursor + 1, 1)?.first() {
                    oldest = Some(
                        oldest.map_or(first.hub_received_us, |o| o.min(first.hub_received_us)),
                    );
                }
            }
        }
        let seconds = oldest.map_or(0.0, |t| (now_us - t).max(0) as f64 / 1e6);
        Ok((behind, seconds))
    }
}

/// SHA-256 of every key and value in projection `name`'s tree, in key order, leaving out its
/// change feed (which depends on who follows it, not on the log).
pub fn digest(db: &sled::Db, name: &str) -> Result<String, RunError> {
    let tree = tree(db, name)?;
    let mut hash = Sha256::new();
    for entry in tree.iter() {
        let (key, value) = entry?;
        if crate::feed::is_feed_key(&key) {
            continue;
        }
        hash.update((key.len() as u64).to_be_bytes());
        hash.update(&key);
        hash.update((value.len() as u64).to_be_bytes());
        hash.update(&value);
    }
    Ok(hex::encode(hash.finalize()))
}

/// What a rebuild did.
#[derive(Debug, Clone)]
pub struct Rebuilt {
    pub name: &'static str,
    pub before: String,
    pub after: String,
    pub events: usize,
}

/// Clears projection `name` and replays the whole log into it (the hub must not be running).
pub fn rebuild(db: &sled::Db, name: &str, floor: &Floor) -> Result<Rebuilt, RunError> {
    let projection =
        projection::by_name(name, floor).ok_or_else(|| RunError::Unknown(name.to_owned()))?;
    let name = projection.name();
    let before = digest(db, name)?;
    tree(db, name)?.clear()?;
    let mut runner = Runner::open(db, projection, None)?;
    let source = Offline(db.clone());
    let mut events = 0;
    loop {
        let n = runner.step(&source)?;
        if n == 0 {
            break;
        }
        events += n;
    }
    db.flush()?;
    Ok(Rebuilt {
        name,
        before,
        after: digest(db, name)?,
        events,
    })
}

/// A projection actor's arguments.
#[derive(Clone)]
pub struct ProjectionArgs {
    pub name: &'static str,
    /// Device states for the API, kept by the devices projection.
    pub shared: projection::SharedStates,
    pub floor: Floor,
    pub eventlog: EventLog,
    pub changes: broadcast::Sender<Change>,
    /// Keep the projection's change feed (something follows it: the MSSQL sink).
    pub feed: bool,
}

impl ProjectionArgs {
    pub fn child_spec(self) -> ChildSpec {
        let name = self.name;
        ChildSpec::new(format!("projection/{name}"), move || {
            (ProjectionActor, self.clone())
        })
        .restart(Restart::Permanent)
    }
}

/// Runs one projection: applies what is committed whenever the log commits (and at least every
/// 250 ms), and publishes its lag.
pub struct ProjectionActor;

pub struct ProjectionState {
    _task: OwnedTask,
}

/// How often lag is measured even when nothing is committed.
const TICK: Duration = Duration::from_millis(250);

impl Actor for ProjectionActor {
    type Msg = ();
    type State = ProjectionState;
    type Arguments = ProjectionArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        let projection: Box<dyn Projection> = if args.name == projection::DEVICES {
            Box::new(projection::DevicesProjection::sharing(
                args.shared.clone(),
                args.floor.reported_denominations(),
            ))
        } else {
            projection::by_name(args.name, &args.floor)
                .ok_or_else(|| RunError::Unknown(args.name.to_owned()))?
        };
        let db = args.eventlog.durable().db().clone();
        let mut runner =
            Runner::open(&db, projection, Some(args.changes.clone()))?.with_feed(args.feed)?;
        let log = args.eventlog.clone();
        let mut commits = log.subscribe_commits();
        let task = OwnedTask::ending_owner(myself, async move {
            let name = runner.name();
            loop {
                // sled is synchronous, and a first replay can take a while: off the runtime.
                let stepped = tokio::task::spawn_blocking({
                    let log = log.clone();
                    move || {
                        let result = (|| -> Result<(), RunError> {
                            while runner.step(&log)? > 0 {}
                            let (events, seconds) =
                                runner.lag(&log, outpost_process::clock::unix_us())?;
                            metrics::PROJECTION_LAG_EVENTS
                                .with_label_values(&[name])
                                .set(events as i64);
                            metrics::PROJECTION_LAG_SECONDS
                                .with_label_values(&[name])
                                .set(seconds);
                            Ok(())
                        })();
                        (runner, result)
                    }
                })
                .await;
                let result = match stepped {
                    Ok((back, result)) => {
                        runner = back;
                        result
                    }
                    Err(err) => return Some(format!("projection {name}: {err}")),
                };
                if let Err(err) = result {
                    tracing::error!(projection = name, %err, "projection stopped");
                    return Some(format!("projection {name}: {err}"));
                }
                tokio::select! {
                    changed = commits.changed() => if changed.is_err() { return None },
                    () = tokio::time::sleep(TICK) => {}
                }
            }
        });
        Ok(ProjectionState { _task: task })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use outpost_link::{Event, EventBody, EventClass, SasEvent};

    fn event(seq: u64, device: &str, body: EventBody) -> Event {
        Event {
            seq,
            device: device.into(),
            class: EventClass::Money,
            wall_us: 1_764_489_600_000_000 + seq as i64 * 1_000_000,
            mono_us: 0,
            boot_id: 1,
            body,
        }
    }

    fn exception(seq: u64, code: u8) -> Event {
        event(seq, "egm-1", EventBody::Sas(SasEvent::Exception { code }))
    }

    /// Fails on every event of device `bad`.
    struct Picky(Vec<u64>);

    impl Projection for Picky {
        fn name(&self) -> &'static str {
            "devices"
        }
        fn restore(&mut self, _: &[u8], _: &[u8]) -> Result<(), projection::RestoreError> {
            Ok(())
        }
        fn apply(
            &mut self,
            _: &str,
            _: u64,
            e: &StoredEvent,
            _: &mut Vec<Change>,
        ) -> Result<(), projection::Poison> {
            if e.event.device == "bad" {
                return Err(projection::Poison("bad device".into()));
            }
            self.0.push(e.event.seq);
            Ok(())
        }
        fn flush(&mut self, _: &mut Vec<(Vec<u8>, Vec<u8>)>) {}
    }

    async fn log_with(events: Vec<Event>) -> (tempfile::TempDir, EventLog) {
        let dir = tempfile::tempdir().unwrap();
        let durable = Arc::new(outpost_storage::DurableDb::open(dir.path()).unwrap());
        let log = EventLog::start(durable, 64, |_| {}).unwrap();
        log.commit("edge-1", events, 0).await.unwrap();
        (dir, log)
    }

    use std::sync::Arc;

    #[tokio::test]
    async fn a_poison_event_is_kept_aside_and_the_projection_goes_on() {
        let (_dir, log) = log_with(vec![
            exception(1, 0x11),
            event(2, "bad", EventBody::Shed),
            exception(3, 0x12),
        ])
        .await;
        let db = log.durable().db().clone();
        let mut runner = Runner::open(&db, Box::new(Picky(Vec::new())), None).unwrap();
        assert_eq!(runner.step(&log).unwrap(), 3);
        assert_eq!(runner.step(&log).unwrap(), 0, "nothing is retried");
        let kept = tree(&db, "devices")
            .unwrap()
            .get(poison_key("edge-1", 2))
            .unwrap();
        assert_eq!(kept.as_deref(), Some(&b"bad device"[..]));
        assert_eq!(runner.lag(&log, 0).unwrap().0, 0);
    }

    #[tokio::test]
    async fn a_projection_that_does_not_restore_is_cleared_and_rebuilt_from_the_log() {
        let (_dir, log) = log_with(vec![exception(1, 0x11), exception(2, 0x12)]).await;
        let db = log.durable().db().clone();
        let floor = Floor::simple();
        let fresh = || projection::by_name("devices", &floor).unwrap();
        let mut runner = Runner::open(&db, fresh(), None).unwrap();
        runner.step(&log).unwrap();
        let live = digest(&db, "devices").unwrap();
        // A stored state that no longer decodes (a format change, a bad disk).
        let key = outpost_domain::projection::device_key(b'd', "edge-1", "egm-1");
        tree(&db, "devices")
            .unwrap()
            .insert(key, &b"garbage"[..])
            .unwrap();
        assert!(matches!(
            Runner::open(&db, fresh(), None),
            Err(RunError::Rebuild("devices"))
        ));
        let mut again = Runner::open(&db, fresh(), None).unwrap();
        assert_eq!(again.step(&log).unwrap(), 2, "replayed from the start");
        assert_eq!(digest(&db, "devices").unwrap(), live);
        // Another version's tree is rebuilt the same way.
        tree(&db, "devices")
            .unwrap()
            .insert(VERSION_KEY, &7u32.to_be_bytes())
            .unwrap();
        let mut third = Runner::open(&db, fresh(), None).unwrap();
        assert_eq!(third.step(&log).unwrap(), 2);
        assert_eq!(digest(&db, "devices").unwrap(), live);
    }

    /// Panics as it restores, as sled did on a tree a power cut had broken (its version is the
    /// devices projection's, so the tree is not cleared first).
    struct Panicky(u32);

    impl Projection for Panicky {
        fn name(&self) -> &'static str {
            "devices"
        }
        fn version(&self) -> u32 {
            self.0
        }
        fn restore(&mut self, _: &[u8], _: &[u8]) -> Result<(), projection::RestoreError> {
            panic!("cannot find pid 37 in view_for_key, looking for key [118] in tree")
        }
        fn apply(
            &mut self,
            _: &str,
            _: u64,
            _: &StoredEvent,
            _: &mut Vec<Change>,
        ) -> Result<(), projection::Poison> {
            Ok(())
        }
        fn flush(&mut self, _: &mut Vec<(Vec<u8>, Vec<u8>)>) {}
    }

    #[tokio::test]
    async fn a_projection_store_that_panics_as_it_opens_is_left_for_a_new_one_rebuilt_from_the_log()
    {
        let (_dir, log) = log_with(vec![exception(1, 0x11), exception(2, 0x12)]).await;
        let db = log.durable().db().clone();
        let floor = Floor::simple();
        let fresh = || projection::by_name("devices", &floor).unwrap();
        let mut runner = Runner::open(&db, fresh(), None).unwrap();
        runner.step(&log).unwrap();
        let live = digest(&db, "devices").unwrap();
        drop(runner);
        assert!(matches!(
            Runner::open(&db, Box::new(Panicky(fresh().version())), None),
            Err(RunError::Rebuild("devices"))
        ));
        let mut again = Runner::open(&db, fresh(), None).unwrap();
        assert_eq!(again.step(&log).unwrap(), 2, "replayed from the start");
        assert_eq!(digest(&db, "devices").unwrap(), live, "into a new tree");
        assert_eq!(generation(&db, "devices").unwrap(), 1);
    }

    #[tokio::test]
    async fn a_reopened_projection_resumes_after_what_it_stored() {
        let (_dir, log) = log_with(vec![exception(1, 0x11), exception(2, 0x12)]).await;
        let db = log.durable().db().clone();
        let mut first = Runner::open(&db, Box::new(Picky(Vec::new())), None).unwrap();
        first.step(&log).unwrap();
        log.commit("edge-1", vec![exception(3, 0x11)], 0)
            .await
            .unwrap();
        let mut second = Runner::open(&db, Box::new(Picky(Vec::new())), None).unwrap();
        assert_eq!(second.step(&log).unwrap(), 1, "only the new event");
    }

    #[tokio::test]
    async fn a_rebuild_from_the_log_stores_the_same_bytes_as_the_live_run() {
        let mut events = vec![event(
            1,
            "egm-1",
            EventBody::Sas(SasEvent::Meters {
                game: 0,
                meters: vec![outpost_link::MeterReading {
                    code: 0x24,
                    value: 0,
                    bytes: 4,
                }],
            }),
        )];
        events.push(exception(2, 0x4A));
        events.push(exception(3, 0x11));
        events.push(event(
            5, // a gap: 4 never arrived
            "egm-1",
            EventBody::Sas(SasEvent::Meters {
                game: 0,
                meters: vec![outpost_link::MeterReading {
                    code: 0x24,
                    value: 4_000,
                    bytes: 4,
                }],
            }),
        ));
        let (_dir, log) = log_with(events).await;
        let db = log.durable().db().clone();
        let floor = Floor::simple();
        for name in projection::NAMES {
            // Live, in two steps with a commit in between.
            let mut runner =
                Runner::open(&db, projection::by_name(name, &floor).unwrap(), None).unwrap();
            runner.step(&log).unwrap();
        }
        log.commit("edge-1", vec![exception(6, 0x12)], 0)
            .await
            .unwrap();
        for name in projection::NAMES {
            let mut runner =
                Runner::open(&db, projection::by_name(name, &floor).unwrap(), None).unwrap();
            runner.step(&log).unwrap();
            let live = digest(&db, name).unwrap();
            let rebuilt = rebuild(&db, name, &floor).unwrap();
            assert_eq!(rebuilt.before, live);
            assert_eq!(rebuilt.after, live, "{name}");
            assert_eq!(rebuilt.events, 5);
        }
    }
}
