//! The streams of the hub's own stores — alerts, commands and guest visits — which change in
//! place and are small next to the event log.
//!
//! Such a stream watches its store's tree (sled's subscriber, drained at once into a set of keys
//! to write, so the store's writers never wait on it) and, when it starts, looks at every key of
//! the store. For each key it keeps a digest of the row it last wrote (tree `mssql/<stream>`:
//! store key → 8 bytes), so a key whose row did not change since is not sent again.
//!
//! Invariants:
//! - A key changed while the sink runs is written (the watch is set before the first look at
//!   the store); a key changed while it did not is written on its start (every key is looked
//!   at then, and a row whose digest differs is sent).
//! - Digests are stored only after SQL Server answered the commit; keys of a failed batch are
//!   written again at the next attempt. Rows are written from each key's current value by
//!   natural key, so a row sent twice changes nothing.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use sha2::{Digest, Sha256};

use super::sink::{SinkError, StepError, Stream, utc, written};
use super::sql::Table;
use super::tables;
use super::target::{Row, Target, Value, Write};
use crate::commands::CommandLog;
use crate::hikcentral::visits::Visit;

/// The alerts stream's name.
pub const ALERTS: &str = "alerts";
/// The commands stream's name.
pub const COMMANDS: &str = "commands";
/// The guest visits stream's name.
pub const VISITS: &str = "visits";
/// The player sessions stream's name.
pub const PLAYER_SESSIONS: &str = "player-sessions";
/// The handpay workflow stream's name.
pub const HANDPAY_STEPS: &str = "handpay-steps";
/// The counted drop stream's name.
pub const COUNTED_DROPS: &str = "counted-drops";

/// The row a store's key stands for.
pub trait StoreRows: Send + Sync + 'static {
    fn stream(&self) -> &'static str;
    /// The store's tree.
    fn tree(&self, db: &sled::Db) -> Result<sled::Tree, sled::Error>;
    fn table(&self) -> &Table;
    /// The row of `key` holding `value`; `None` for keys that are not records.
    fn row(&self, key: &[u8], value: &[u8]) -> Option<Row>;
}

/// A stream watching one of the hub's stores.
pub struct WatchedSink<T, R> {
    target: T,
    rows: R,
    tree: sled::Tree,
    digests: sled::Tree,
    dirty: Arc<Mutex<BTreeSet<Vec<u8>>>>,
    batch_rows: usize,
    _watch: Watch,
}

/// The thread draining a store's subscriber; stops when dropped.
struct Watch(Arc<AtomicBool>);

impl Drop for Watch {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// The first 8 bytes of SHA-256 over the row's values as text.
fn digest(row: &Row) -> [u8; 8] {
    let hash = Sha256::digest(format!("{row:?}").as_bytes());
    let mut out = [0u8; 8];
    out.copy_from_slice(&hash[..8]);
    out
}

fn lock(set: &Mutex<BTreeSet<Vec<u8>>>) -> std::sync::MutexGuard<'_, BTreeSet<Vec<u8>>> {
    set.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<T: Target, R: StoreRows> WatchedSink<T, R> {
    pub fn open(target: T, rows: R, db: &sled::Db, batch_rows: usize) -> Result<Self, SinkError> {
        let tree = rows.tree(db)?;
        let digests = db.open_tree(format!("mssql/{}", rows.stream()))?;
        let dirty = Arc::new(Mutex::new(BTreeSet::new()));
        // The watch first, then every key: nothing changed in between is missed.
        let mut subscriber = tree.watch_prefix(Vec::new());
        let stop = Arc::new(AtomicBool::new(false));
        std::thread::Builder::new()
            .name(format!("mssql-watch-{}", rows.stream()))
            .spawn({
                let (dirty, stop) = (dirty.clone(), stop.clone());
                move || {
                    while !stop.load(Ordering::Relaxed) {
                        match subscriber.next_timeout(std::time::Duration::from_millis(200)) {
                            Ok(sled::Event::Insert { key, .. } | sled::Event::Remove { key }) => {
                                lock(&dirty).insert(key.to_vec());
                            }
                            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
                        }
                    }
                }
            })
            .map_err(|e| SinkError::Watch(e.to_string()))?;
        {
            let mut all = lock(&dirty);
            for key in tree.iter().keys() {
                all.insert(key?.to_vec());
            }
        }
        Ok(Self {
            target,
            rows,
            tree,
            digests,
            dirty,
            batch_rows: batch_rows.max(1),
            _watch: Watch(stop),
        })
    }
}

impl<T: Target, R: StoreRows> Stream for WatchedSink<T, R> {
    fn name(&self) -> &'static str {
        self.rows.stream()
    }

    fn lag(&self) -> u64 {
        lock(&self.dirty).len() as u64
    }

    async fn step(&mut self) -> Result<usize, StepError> {
        let keys: Vec<Vec<u8>> = {
            let mut dirty = lock(&self.dirty);
            let keys: Vec<Vec<u8>> = dirty.iter().take(self.batch_rows).cloned().collect();
            for key in &keys {
                dirty.remove(key);
            }
            keys
        };
        if keys.is_empty() {
            return Ok(0);
        }
        let mut rows = Vec::new();
        let mut digests = Vec::new();
        for key in &keys {
            let Some(value) = self.tree.get(key).map_err(SinkError::from)? else {
                continue; // removed: the table keeps what it had
            };
            let Some(row) = self.rows.row(key, &value) else {
                continue;
            };
            let digest = digest(&row);
            let stored = self.digests.get(key).map_err(SinkError::from)?;
            if stored.as_deref() == Some(digest.as_slice()) {
                continue;
            }
            rows.push(row);
            digests.push((key.clone(), digest));
        }
        if !rows.is_empty() {
            let written_now = self
                .target
                .write(&[Write {
                    table: self.rows.table(),
                    rows: &rows,
                }])
                .await;
            if let Err(err) = written_now {
                lock(&self.dirty).extend(keys);
                return Err(StepError::Sql(err));
            }
            let mut batch = sled::Batch::default();
            for (key, digest) in &digests {
                batch.insert(key.as_slice(), digest.as_slice());
            }
            self.digests.apply_batch(batch).map_err(SinkError::from)?;
            written(self.rows.stream(), rows.len());
        }
        Ok(keys.len())
    }
}

fn text(v: impl Into<String>) -> Value {
    Value::Text(v.into())
}

fn optional_text(v: Option<impl Into<String>>) -> Value {
    v.map_or(Value::Null, |v| Value::Text(v.into()))
}

fn time_us(us: i64) -> Value {
    Value::Time(utc(us))
}

fn time_ms(ms: i64) -> Value {
    Value::Time(utc(ms.saturating_mul(1_000)))
}

/// Alerts: `a ++ n` → the alert as JSON.
pub struct AlertRows(Table);

impl Default for AlertRows {
    fn default() -> Self {
        Self(tables::alerts())
    }
}

impl StoreRows for AlertRows {
    fn stream(&self) -> &'static str {
        ALERTS
    }

    fn tree(&self, db: &sled::Db) -> Result<sled::Tree, sled::Error> {
        db.open_tree(crate::alerts::TREE)
    }

    fn table(&self) -> &Table {
        &self.0
    }

    fn row(&self, key: &[u8], value: &[u8]) -> Option<Row> {
        if key.first() != Some(&b'a') {
            return None;
        }
        let a: outpost_domain::alerts::Alert = serde_json::from_slice(value).ok()?;
        Some(vec![
            text(a.id),
            text(a.rule),
            text(a.site),
            text(a.edge),
            text(a.device),
            text(a.detail),
            text(a.state),
            time_us(a.fired_us),
            a.resolved_us.map_or(Value::Null, time_us),
            optional_text(a.acknowledged_by),
            a.acknowledged_us.map_or(Value::Null, time_us),
            optional_text(a.acknowledged_note),
        ])
    }
}

/// Commands and their fate: id → the stored command (its arguments read from their file when
/// they were too large for the store).
pub struct CommandRows {
    table: Table,
    log: CommandLog,
}

impl CommandRows {
    pub fn new(log: CommandLog) -> Self {
        Self {
            table: tables::commands(),
            log,
        }
    }
}

impl StoreRows for CommandRows {
    fn stream(&self) -> &'static str {
        COMMANDS
    }

    fn tree(&self, db: &sled::Db) -> Result<sled::Tree, sled::Error> {
        db.open_tree(crate::commands::TREE)
    }

    fn table(&self) -> &Table {
        &self.table
    }

    fn row(&self, key: &[u8], _value: &[u8]) -> Option<Row> {
        let id = std::str::from_utf8(key).ok()?;
        let c = self.log.get(id).ok()??;
        let result = c
            .result
            .as_ref()
            .and_then(|r| serde_json::to_string(r).ok());
        Some(vec![
            text(c.id),
            text(c.issuer),
            text(c.edge),
            text(c.device),
            text(c.kind.as_str()),
            text(c.op),
            text(c.args.to_string()),
            time_ms(c.created_ms),
            time_ms(c.deadline_ms),
            text(c.status.as_str()),
            optional_text(c.detail),
            optional_text(result),
            time_ms(c.updated_ms),
        ])
    }
}

/// Guest visits (HikCentral): id → the visit as JSON.
pub struct VisitRows(Table);

impl Default for VisitRows {
    fn default() -> Self {
        Self(tables::guest_visits())
    }
}

impl StoreRows for VisitRows {
    fn stream(&self) -> &'static str {
        VISITS
    }

    fn tree(&self, db: &sled::Db) -> Result<sled::Tree, sled::Error> {
        db.open_tree(crate::hikcentral::visits::TREE)
    }

    fn table(&self) -> &Table {
        &self.0
    }

    fn row(&self, _key: &[u8], value: &[u8]) -> Option<Row> {
        let v: Visit = serde_json::from_slice(value).ok()?;
        let last_note = v.history.last().map(|h| h.note.clone());
        Some(vec![
            text(v.id),
            text(v.guest_name),
            text(v.access_level),
            time_ms(v.begin_ms),
            time_ms(v.end_ms),
            text(v.state.as_str()),
            text(v.created_by),
            time_ms(v.created_ms),
            text(v.person_code),
            optional_text(v.person_id),
            optional_text(v.cancelled_by),
            optional_text(v.last_error),
            optional_text(last_note),
            time_ms(v.updated_ms),
        ])
    }
}

/// Player sessions: `s ++ n` → the session as JSON (other keys are the store's indexes).
pub struct PlayerSessionRows {
    table: Table,
    floor: outpost_domain::site::Floor,
}

impl PlayerSessionRows {
    pub fn new(floor: outpost_domain::site::Floor) -> Self {
        Self {
            table: tables::player_sessions(),
            floor,
        }
    }
}

impl StoreRows for PlayerSessionRows {
    fn stream(&self) -> &'static str {
        PLAYER_SESSIONS
    }

    fn tree(&self, db: &sled::Db) -> Result<sled::Tree, sled::Error> {
        db.open_tree(crate::sessions::TREE)
    }

    fn table(&self) -> &Table {
        &self.table
    }

    fn row(&self, key: &[u8], value: &[u8]) -> Option<Row> {
        if key.first() != Some(&b's') || key.len() != 9 {
            return None;
        }
        let s: crate::sessions::Session = serde_json::from_slice(value).ok()?;
        let denomination = u64::from(self.floor.terms(&s.edge, &s.device).denomination);
        let by = |code: u8| -> Value {
            let Some(close) = &s.close_meters else {
                return Value::Null;
            };
            let delta = match (s.open_meters.get(&code), close.get(&code)) {
                (Some(open), Some(close)) => close.0.saturating_sub(open.0),
                _ => 0,
            };
            Value::BigInt(i64::try_from(delta).unwrap_or(i64::MAX))
        };
        let money = |code: u8| match by(code) {
            Value::BigInt(credits) => Value::BigInt(
                credits.saturating_mul(i64::try_from(denomination).unwrap_or(i64::MAX)),
            ),
            other => other,
        };
        Some(vec![
            text(s.id),
            text(s.player),
            text(s.edge),
            text(s.device),
            text(s.opened_by),
            time_us(s.opened_us),
            optional_text(s.closed_by),
            s.closed_us.map_or(Value::Null, time_us),
            text(self.floor.currency.code.clone()),
            money(outpost_sas::egm::meter::COIN_IN),
            money(outpost_sas::egm::meter::COIN_OUT),
            by(outpost_sas::egm::meter::GAMES_PLAYED),
        ])
    }
}

/// The handpay workflow: `edge/device/seq` → the people's steps (JSON).
pub struct HandpayStepRows(Table);

impl Default for HandpayStepRows {
    fn default() -> Self {
        Self(tables::handpay_steps())
    }
}

impl StoreRows for HandpayStepRows {
    fn stream(&self) -> &'static str {
        HANDPAY_STEPS
    }

    fn tree(&self, db: &sled::Db) -> Result<sled::Tree, sled::Error> {
        db.open_tree(crate::handpays::TREE)
    }

    fn table(&self) -> &Table {
        &self.0
    }

    fn row(&self, key: &[u8], value: &[u8]) -> Option<Row> {
        let id = std::str::from_utf8(key).ok()?;
        let mut parts = id.rsplitn(3, '/');
        let seq: i64 = parts.next()?.parse().ok()?;
        let device = parts.next()?;
        let edge = parts.next()?;
        let s: crate::handpays::Steps = serde_json::from_slice(value).ok()?;
        let at = |us: Option<i64>| us.map_or(Value::Null, time_us);
        Some(vec![
            text(edge),
            text(device),
            Value::BigInt(seq),
            optional_text(s.verified_by),
            at(s.verified_us),
            optional_text(s.approved_by),
            at(s.approved_us),
            optional_text(s.paid_by),
            at(s.paid_us),
            optional_text(s.reset_command),
            text(serde_json::to_string(&s.notes).unwrap_or_default()),
        ])
    }
}

/// Counted drop: `edge ++ 0 ++ device ++ 0 ++ day ++ 0 ++ n (u32 BE)` → an entry (JSON).
pub struct CountedDropRows {
    table: Table,
    currency: String,
}

impl CountedDropRows {
    pub fn new(floor: &outpost_domain::site::Floor) -> Self {
        Self {
            table: tables::counted_drops(),
            currency: floor.currency.code.clone(),
        }
    }
}

impl StoreRows for CountedDropRows {
    fn stream(&self) -> &'static str {
        COUNTED_DROPS
    }

    fn tree(&self, db: &sled::Db) -> Result<sled::Tree, sled::Error> {
        db.open_tree(crate::counts::TREE)
    }

    fn table(&self) -> &Table {
        &self.table
    }

    fn row(&self, key: &[u8], value: &[u8]) -> Option<Row> {
        let (head, n) = key.split_at_checked(key.len().checked_sub(4)?)?;
        let mut parts = head.strip_suffix(&[0])?.split(|&b| b == 0);
        let (edge, device, day) = (parts.next()?, parts.next()?, parts.next()?);
        let entry: crate::counts::CountEntry = serde_json::from_slice(value).ok()?;
        Some(vec![
            text(String::from_utf8_lossy(edge)),
            text(String::from_utf8_lossy(device)),
            text(String::from_utf8_lossy(day)),
            Value::BigInt(i64::from(u32::from_be_bytes(n.try_into().ok()?))),
            text(self.currency.clone()),
            Value::BigInt(i64::try_from(entry.amount).unwrap_or(i64::MAX)),
            text(entry.by),
            time_us(entry.at_us),
            text(entry.note),
        ])
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::mssql::target::MemoryTarget;
    use outpost_domain::alerts::Alert;

    fn alert(n: u64, state: &str, acknowledged_by: Option<&str>) -> Alert {
        Alert {
            id: format!("alert-{n}"),
            rule: "door_open".into(),
            site: "main".into(),
            edge: "edge-1".into(),
            device: "egm-1".into(),
            detail: "main door open".into(),
            state: state.into(),
            fired_us: 1_796_032_800_000_000,
            resolved_us: (state == "resolved").then_some(1_796_032_860_000_000),
            acknowledged_by: acknowledged_by.map(str::to_owned),
            acknowledged_us: acknowledged_by.map(|_| 1_796_032_830_000_000),
            acknowledged_note: acknowledged_by.map(|_| "slot tech on the way".to_owned()),
        }
    }

    fn store(tree: &sled::Tree, alert: &Alert) {
        let n: u64 = alert.id.trim_start_matches("alert-").parse().unwrap();
        tree.insert(
            [&b"a"[..], &n.to_be_bytes()].concat(),
            serde_json::to_vec(alert).unwrap(),
        )
        .unwrap();
    }

    async fn drain<S: Stream>(stream: &mut S) {
        for _ in 0..100 {
            if stream.lag() == 0 && stream.step().await.unwrap() == 0 {
                return;
            }
            stream.step().await.unwrap();
        }
        panic!("never caught up");
    }

    /// Waits until the watch has seen what was written (it runs on its own thread).
    async fn settle<S: Stream>(stream: &S, lag: u64) {
        for _ in 0..200 {
            if stream.lag() >= lag {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("the watch saw {} changes, not {lag}", stream.lag());
    }

    #[tokio::test]
    async fn alerts_already_stored_and_alerts_that_change_later_reach_sql_server_as_they_are_now() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let tree = db.open_tree(crate::alerts::TREE).unwrap();
        store(&tree, &alert(1, "firing", None));
        tree.insert(b"n", &2u64.to_be_bytes()).unwrap();
        let target = MemoryTarget::default();
        let mut sink = WatchedSink::open(target.clone(), AlertRows::default(), &db, 100).unwrap();
        drain(&mut sink).await;
        assert_eq!(
            target.rows("outpost.alerts").len(),
            1,
            "the counter is not an alert"
        );
        store(&tree, &alert(1, "firing", Some("supervisor-ana")));
        store(&tree, &alert(2, "firing", None));
        settle(&sink, 2).await;
        drain(&mut sink).await;
        let rows = target.rows("outpost.alerts");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0][9], Value::Text("supervisor-ana".into()));
        assert_eq!(rows[1][8], Value::Null, "not resolved");
        assert_eq!(rows[1][9], Value::Null, "not acknowledged");
    }

    #[tokio::test]
    async fn a_record_sql_server_has_is_not_sent_again_when_the_hub_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let tree = db.open_tree(crate::alerts::TREE).unwrap();
        store(&tree, &alert(1, "firing", None));
        let target = MemoryTarget::default();
        let mut sink = WatchedSink::open(target.clone(), AlertRows::default(), &db, 100).unwrap();
        drain(&mut sink).await;
        drop(sink);
        let mut again = WatchedSink::open(target.clone(), AlertRows::default(), &db, 100).unwrap();
        assert_eq!(again.lag(), 1, "every key is looked at on start");
        drain(&mut again).await;
        assert_eq!(target.writes(), (1, 1), "one write of one row");
    }

    #[tokio::test]
    async fn a_batch_that_failed_is_sent_again() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let tree = db.open_tree(crate::alerts::TREE).unwrap();
        store(&tree, &alert(1, "resolved", None));
        let target = MemoryTarget::default();
        let mut sink = WatchedSink::open(target.clone(), AlertRows::default(), &db, 100).unwrap();
        target.fail_next(crate::mssql::SqlError::Timeout(
            std::time::Duration::from_secs(30),
        ));
        assert!(matches!(sink.step().await, Err(StepError::Sql(_))));
        assert_eq!(sink.lag(), 1);
        drain(&mut sink).await;
        let rows = target.rows("outpost.alerts");
        assert_eq!(rows[0][6], Value::Text("resolved".into()));
        assert!(matches!(rows[0][8], Value::Time(_)));
    }

    #[tokio::test]
    async fn a_command_and_its_fate_reach_sql_server_with_who_issued_it() {
        let dir = tempfile::tempdir().unwrap();
        let durable = Arc::new(outpost_storage::DurableDb::open(dir.path()).unwrap());
        let log = CommandLog::open(durable.clone()).unwrap();
        let db = durable.db().clone();
        let target = MemoryTarget::default();
        let mut sink =
            WatchedSink::open(target.clone(), CommandRows::new(log.clone()), &db, 100).unwrap();
        log.create(crate::commands::CommandRecord {
            id: "cmd-1".into(),
            issuer: "operator-li".into(),
            edge: "edge-1".into(),
            device: "egm-1".into(),
            kind: outpost_command::DeviceKind::Egm,
            op: "disable".into(),
            args: serde_json::json!({}),
            created_ms: 1_796_032_800_000,
            deadline_ms: 1_796_032_860_000,
            status: crate::commands::CommandStatus::Pending,
            detail: None,
            result: None,
            updated_ms: 1_796_032_800_000,
        })
        .await
        .unwrap();
        settle(&sink, 1).await;
        drain(&mut sink).await;
        log.update("cmd-1", crate::commands::CommandStatus::Delivered, None)
            .unwrap();
        settle(&sink, 1).await;
        drain(&mut sink).await;
        let rows = target.rows("outpost.commands");
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0][1], Value::Text("operator-li".into()));
        assert_eq!(rows[0][4], Value::Text("egm".into()));
        assert_eq!(rows[0][9], Value::Text("delivered".into()));
    }

    #[tokio::test]
    async fn a_player_session_is_written_open_and_then_closed_with_its_meters_in_money() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let tree = db.open_tree(crate::sessions::TREE).unwrap();
        let mut session = crate::sessions::Session {
            id: "session-1".into(),
            player: "card-77".into(),
            edge: "edge-1".into(),
            device: "egm-1".into(),
            opened_by: "host-kim".into(),
            opened_us: 1_796_032_800_000_000,
            open_meters: [(0x00, (1_000, 4)), (0x05, (10, 4))].into_iter().collect(),
            closed_by: None,
            closed_us: None,
            close_meters: None,
        };
        let key = [&b"s"[..], &1u64.to_be_bytes()].concat();
        tree.insert(&key, serde_json::to_vec(&session).unwrap())
            .unwrap();
        tree.insert(b"c-index", &1u64.to_be_bytes()).unwrap();
        let floor = outpost_domain::site::Floor::simple();
        let denomination = i64::from(floor.terms("edge-1", "egm-1").denomination);
        let target = MemoryTarget::default();
        let mut sink =
            WatchedSink::open(target.clone(), PlayerSessionRows::new(floor), &db, 100).unwrap();
        drain(&mut sink).await;
        let rows = target.rows("outpost.player_sessions");
        assert_eq!(rows.len(), 1, "the index key is not a session");
        assert_eq!(rows[0][7], Value::Null, "open");
        assert_eq!(rows[0][9], Value::Null, "no meters while open");
        session.closed_by = Some("host-kim".into());
        session.closed_us = Some(1_796_036_400_000_000);
        session.close_meters = Some([(0x00, (1_500, 4)), (0x05, (60, 4))].into_iter().collect());
        tree.insert(&key, serde_json::to_vec(&session).unwrap())
            .unwrap();
        settle(&sink, 1).await;
        drain(&mut sink).await;
        let rows = target.rows("outpost.player_sessions");
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0][9], Value::BigInt(500 * denomination), "coin in");
        assert_eq!(rows[0][10], Value::BigInt(0), "no coin out meter: nothing");
        assert_eq!(rows[0][11], Value::BigInt(50), "games");
    }

    #[tokio::test]
    async fn drop_counts_and_their_corrections_reach_sql_server_each_once_with_who_counted() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let counts = crate::counts::Counts::open(&db).unwrap();
        let entry = |amount: i128, by: &str, note: &str| crate::counts::CountEntry {
            amount,
            by: by.into(),
            at_us: 1_796_032_800_000_000,
            note: note.into(),
        };
        counts
            .enter(
                "edge-1",
                "egm-1",
                "2026-11-30",
                entry(52_000, "count-ann", ""),
            )
            .unwrap();
        counts
            .enter(
                "edge-1",
                "egm-1",
                "2026-11-30",
                entry(53_000, "count-bo", "a $10 bill stuck in the stacker"),
            )
            .unwrap();
        let floor = outpost_domain::site::Floor::simple();
        let target = MemoryTarget::default();
        let mut sink =
            WatchedSink::open(target.clone(), CountedDropRows::new(&floor), &db, 100).unwrap();
        drain(&mut sink).await;
        let rows = target.rows("outpost.counted_drops");
        assert_eq!(rows.len(), 2, "{rows:?}");
        assert_eq!(rows[0][2], Value::Text("2026-11-30".into()));
        assert_eq!(rows[0][3], Value::BigInt(0));
        assert_eq!(rows[1][5], Value::BigInt(53_000));
        assert_eq!(rows[1][6], Value::Text("count-bo".into()));
    }

    #[tokio::test]
    async fn a_handpays_steps_reach_sql_server_as_they_are_taken() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let tree = db.open_tree(crate::handpays::TREE).unwrap();
        let mut steps = crate::handpays::Steps {
            verified_by: Some("attendant-cy".into()),
            verified_us: Some(1_796_032_800_000_000),
            ..Default::default()
        };
        tree.insert("edge-1/egm-1/42", serde_json::to_vec(&steps).unwrap())
            .unwrap();
        let target = MemoryTarget::default();
        let mut sink =
            WatchedSink::open(target.clone(), HandpayStepRows::default(), &db, 100).unwrap();
        drain(&mut sink).await;
        steps.approved_by = Some("supervisor-di".into());
        steps.approved_us = Some(1_796_032_860_000_000);
        tree.insert("edge-1/egm-1/42", serde_json::to_vec(&steps).unwrap())
            .unwrap();
        settle(&sink, 1).await;
        drain(&mut sink).await;
        let rows = target.rows("outpost.handpay_steps");
        assert_eq!(rows.len(), 1);
        assert_eq!(
            &rows[0][..3],
            &[
                Value::Text("edge-1".into()),
                Value::Text("egm-1".into()),
                Value::BigInt(42)
            ]
        );
        assert_eq!(rows[0][3], Value::Text("attendant-cy".into()));
        assert_eq!(rows[0][5], Value::Text("supervisor-di".into()));
        assert_eq!(rows[0][7], Value::Null, "not paid yet");
    }
}
