//! The streams that follow the hub's projections: the accounting (hours, days, reconciliations,
//! meters, sessions), the handpays, and the readings entered by hand.
//!
//! A projection stream reads its projection's change feed ([`crate::feed`]) from its own cursor
//! (tree `mssql/<stream>`, key `feed`: epoch and sequence), turns each key written into the rows
//! it stands for — always from the key's current value — and writes them in one transaction.
//! The readings entered by hand are read from their trail by id (key `id`).
//!
//! Invariants:
//! - The cursor moves only after SQL Server answered the commit; the feed's entries up to it are
//!   removed after that. A crash or a lost answer in between writes the same keys again, which
//!   the tables' natural keys make change nothing (an unchanged row is not updated and leaves no
//!   trail).
//! - Rows are written from the projection's current values, so a key changed twice before the
//!   sink reads it is written once, as it is now; a correction updates the hour, its day and its
//!   reconciliation, each keeping the version it replaced in its trail.
//! - A projection rebuilt from the log starts a new feed epoch listing all its keys: the stream
//!   writes them all again, changing nothing that did not change.
//! - A stored value that does not decode is logged and skipped (the projection rebuilds such a
//!   store itself); it never stops the stream.

use std::collections::BTreeMap;

use outpost_domain::accounting::{self, Bucket, MachineBook, MachineSession};
use outpost_domain::projection::{self, Handpay, decode, device_key};
use outpost_domain::site::Floor;
use outpost_sas::egm::meter;

use super::sink::utc;
use super::sink::{SinkError, StepError, Stream, written};
use super::sql::Table;
use super::tables;
use super::target::{Row, Target, Value, Write};
use crate::feed::{self, Position};
use crate::manual::{ManualEntry, Trail};
use crate::metrics;

/// The accounting stream's name.
pub const ACCOUNTING: &str = "accounting";
/// The handpays stream's name.
pub const HANDPAYS: &str = "handpays";
/// The stream of readings entered by hand.
pub const MANUAL: &str = "manual";

const FEED_CURSOR: &[u8] = b"feed";
const ID_CURSOR: &[u8] = b"id";

fn big(v: impl TryInto<i64>) -> Value {
    Value::BigInt(v.try_into().unwrap_or(i64::MAX))
}

fn text(v: impl Into<String>) -> Value {
    Value::Text(v.into())
}

fn json(v: &impl serde::Serialize) -> Value {
    Value::Text(serde_json::to_string(v).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}")))
}

/// `edge`, `device` and what follows them in a key made by [`device_key`] (`tag ++ edge ++ 0 ++
/// device [++ 0 ++ rest]`).
fn split_key(key: &[u8]) -> Option<(String, String, &[u8])> {
    let body = key.get(1..)?;
    let edge_end = body.iter().position(|&b| b == 0)?;
    let after = &body[edge_end + 1..];
    let (device, rest) = match after.iter().position(|&b| b == 0) {
        Some(end) => (&after[..end], &after[end + 1..]),
        None => (after, &after[after.len()..]),
    };
    Some((
        String::from_utf8_lossy(&body[..edge_end]).into_owned(),
        String::from_utf8_lossy(device).into_owned(),
        rest,
    ))
}

/// The rows a projection's keys stand for.
pub trait Rows: Send + Sync {
    fn stream(&self) -> &'static str;
    fn projection(&self) -> &'static str;
    fn tables(&self) -> &[Table];
    /// Adds the rows `key` stands for, per table (by the index in [`Self::tables`]), reading
    /// the key's value and whatever else it needs from `tree`.
    fn rows(
        &self,
        tree: &sled::Tree,
        key: &[u8],
        out: &mut [BTreeMap<Row, Row>],
    ) -> Result<(), RowsError>;
}

/// Why a key gave no rows.
#[derive(Debug, thiserror::Error)]
pub enum RowsError {
    #[error("projection store: {0}")]
    Store(#[from] sled::Error),
    #[error(transparent)]
    Decode(#[from] projection::RestoreError),
}

fn put(out: &mut BTreeMap<Row, Row>, table: &Table, row: Row) {
    out.insert(row[..table.key_columns].to_vec(), row);
}

/// Hours, days, reconciliations, meters and machine sessions, from the accounting projection.
pub struct AccountingRows {
    floor: Floor,
    tables: Vec<Table>,
}

impl AccountingRows {
    pub fn new(floor: Floor) -> Self {
        Self {
            floor,
            tables: vec![
                tables::meter_hours(),
                tables::machine_days(),
                tables::reconciliations(),
                tables::machine_meters(),
                tables::machine_sessions(),
            ],
        }
    }

    fn hour(&self, edge: &str, device: &str, bucket: &Bucket) -> Row {
        let site = self.floor.site_of(edge);
        let terms = self.floor.terms(edge, device);
        let f = accounting::figures(bucket, terms.denomination, terms.par_bp);
        let flags = &bucket.flags;
        vec![
            text(edge),
            text(device),
            Value::Time(utc(bucket.hour_us)),
            text(site.id.clone()),
            text(site.calendar.gaming_day(bucket.hour_us).to_string()),
            text(self.floor.currency.code.clone()),
            big(self.floor.currency.minor_per_major()),
            big(terms.denomination),
            big(f.coin_in),
            big(f.coin_out),
            big(f.jackpot),
            big(f.handpaid_cancelled),
            big(f.drop),
            big(f.tickets_in_cents),
            big(f.tickets_out_cents),
            big(f.net_win),
            big(f.games_played),
            big(f.games_won),
            big(bucket.events.bills.values().sum::<u64>() + bucket.events.bills_unnamed),
            big(bucket.events.handpays),
            big(bucket.intervals),
            big(flags.meter_resets),
            big(flags.comms_lost),
            big(flags.missing_events),
            big(flags.manual_readings),
            big(flags.corrections),
            json(&bucket.metered),
            json(&bucket.adjusted),
        ]
    }

    /// The day of `bucket` for its machine: the sum of the day's hours, and its reconciliation.
    fn day(
        &self,
        tree: &sled::Tree,
        edge: &str,
        device: &str,
        bucket: &Bucket,
        out: &mut [BTreeMap<Row, Row>],
    ) -> Result<(), RowsError> {
        let site = self.floor.site_of(edge);
        let day = site.calendar.gaming_day(bucket.hour_us);
        let day_key = vec![text(edge), text(device), text(day.to_string())];
        if out[1].contains_key(&day_key) {
            return Ok(()); // another hour of this day in the batch: summed once
        }
        let (start, end) = site.calendar.day_bounds(day);
        let mut from = device_key(b'b', edge, device);
        from.push(0);
        let mut to = from.clone();
        from.extend_from_slice(&projection::time_key(start));
        to.extend_from_slice(&projection::time_key(end));
        let mut hours = Vec::new();
        for entry in tree.range(from..to) {
            let (key, value) = entry?;
            hours.push(decode::<Bucket>(projection::ACCOUNTING, &key, &value)?);
        }
        let total = Bucket::sum(&hours);
        let terms = self.floor.terms(edge, device);
        let f = accounting::figures(&total, terms.denomination, terms.par_bp);
        let currency = &self.floor.currency;
        let day_text = day.to_string();
        put(
            &mut out[1],
            &self.tables[1],
            vec![
                text(edge),
                text(device),
                text(day_text.clone()),
                text(site.id.clone()),
                text(currency.code.clone()),
                big(currency.minor_per_major()),
                big(terms.denomination),
                big(f.coin_in),
                big(f.coin_out),
                big(f.jackpot),
                big(f.drop),
                big(f.tickets_in_cents),
                big(f.tickets_out_cents),
                big(f.net_win),
                big(f.games_played),
                big(f.games_won),
                big(total.events.handpays),
                big(hours.len()),
            ],
        );
        let rec = accounting::reconcile(&total, terms.denomination, currency.minor_per_major());
        let verdict = serde_json::to_value(rec.verdict)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let checks: Vec<serde_json::Value> = rec
            .checks
            .iter()
            .map(|c| {
                serde_json::json!({
                    "name": c.name,
                    "metered": c.metered.to_string(),
                    "counted": c.counted.to_string(),
                    "difference": c.difference().to_string(),
                    "money": c.money,
                    "verdict": c.verdict,
                })
            })
            .collect();
        put(
            &mut out[2],
            &self.tables[2],
            vec![
                text(edge),
                text(device),
                text(day_text),
                text(site.id.clone()),
                text(verdict),
                json(&checks),
                json(&rec.reasons),
                big(rec.intervals),
            ],
        );
        Ok(())
    }

    fn session(&self, edge: &str, device: &str, session: &MachineSession) -> Option<Row> {
        let (closed_us, close) = (session.closed_us?, session.close_meters.as_ref()?);
        let by = |code: u8| {
            let (Some(open), Some(close)) = (session.open_meters.get(&code), close.get(&code))
            else {
                return 0;
            };
            close.0.saturating_sub(open.0)
        };
        let denomination = u64::from(self.floor.terms(edge, device).denomination);
        Some(vec![
            text(edge),
            text(device),
            big(session.opened_seq),
            Value::Time(utc(session.opened_us)),
            Value::Time(utc(closed_us)),
            text(self.floor.currency.code.clone()),
            big(by(meter::COIN_IN).saturating_mul(denomination)),
            big(by(meter::COIN_OUT).saturating_mul(denomination)),
            big(by(meter::GAMES_PLAYED)),
        ])
    }
}

impl Rows for AccountingRows {
    fn stream(&self) -> &'static str {
        ACCOUNTING
    }

    fn projection(&self) -> &'static str {
        projection::ACCOUNTING
    }

    fn tables(&self) -> &[Table] {
        &self.tables
    }

    fn rows(
        &self,
        tree: &sled::Tree,
        key: &[u8],
        out: &mut [BTreeMap<Row, Row>],
    ) -> Result<(), RowsError> {
        let Some(value) = tree.get(key)? else {
            return Ok(());
        };
        let Some((edge, device, rest)) = split_key(key) else {
            return Ok(());
        };
        match key.first() {
            Some(b'b') => {
                let bucket: Bucket = decode(projection::ACCOUNTING, key, &value)?;
                let row = self.hour(&edge, &device, &bucket);
                put(&mut out[0], &self.tables[0], row);
                self.day(tree, &edge, &device, &bucket, out)?;
            }
            Some(b'm') => {
                let book: MachineBook = decode(projection::ACCOUNTING, key, &value)?;
                for (code, (value, _)) in &book.last {
                    let row = vec![
                        text(edge.clone()),
                        text(device.clone()),
                        big(*code),
                        text(outpost_sas::names::meter_name(*code)),
                        big(*value),
                        big(book.last_seq),
                    ];
                    put(&mut out[3], &self.tables[3], row);
                }
            }
            Some(b's') if rest.len() == 8 => {
                let session: MachineSession = decode(projection::ACCOUNTING, key, &value)?;
                if let Some(row) = self.session(&edge, &device, &session) {
                    put(&mut out[4], &self.tables[4], row);
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// Handpays, from the handpays projection.
pub struct HandpayRows {
    floor: Floor,
    tables: Vec<Table>,
}

impl HandpayRows {
    pub fn new(floor: Floor) -> Self {
        Self {
            floor,
            tables: vec![tables::handpays()],
        }
    }
}

impl Rows for HandpayRows {
    fn stream(&self) -> &'static str {
        HANDPAYS
    }

    fn projection(&self) -> &'static str {
        projection::HANDPAYS
    }

    fn tables(&self) -> &[Table] {
        &self.tables
    }

    fn rows(
        &self,
        tree: &sled::Tree,
        key: &[u8],
        out: &mut [BTreeMap<Row, Row>],
    ) -> Result<(), RowsError> {
        if key.first() != Some(&b'h') {
            return Ok(());
        }
        let Some(value) = tree.get(key)? else {
            return Ok(());
        };
        let h: Handpay = decode(projection::HANDPAYS, key, &value)?;
        let denomination = u64::from(self.floor.terms(&h.edge, &h.device).denomination);
        let row = vec![
            text(h.edge.clone()),
            text(h.device.clone()),
            big(h.seq),
            text(if h.reset_us.is_some() {
                "reset"
            } else {
                "pending"
            }),
            big(h.credits),
            text(self.floor.currency.code.clone()),
            big(h.credits.saturating_mul(denomination)),
            Value::Time(utc(h.pending_us)),
            h.reset_us.map_or(Value::Null, |us| Value::Time(utc(us))),
            h.reset_seq.map_or(Value::Null, big),
        ];
        put(&mut out[0], &self.tables[0], row);
        Ok(())
    }
}

/// A stream following a projection's change feed.
pub struct FeedSink<T, R> {
    target: T,
    rows: R,
    db: sled::Db,
    cursor: sled::Tree,
    position: Position,
    batch_keys: usize,
}

fn cursor_tree(db: &sled::Db, stream: &str) -> Result<sled::Tree, sled::Error> {
    db.open_tree(format!("mssql/{stream}"))
}

impl<T: Target, R: Rows> FeedSink<T, R> {
    pub fn open(target: T, rows: R, db: sled::Db, batch_keys: usize) -> Result<Self, SinkError> {
        let cursor = cursor_tree(&db, rows.stream())?;
        let position = cursor
            .get(FEED_CURSOR)?
            .and_then(|v| Position::from_bytes(&v))
            .unwrap_or_default();
        Ok(Self {
            target,
            rows,
            db,
            cursor,
            position,
            batch_keys: batch_keys.max(1),
        })
    }

    fn tree(&self) -> Result<sled::Tree, sled::Error> {
        crate::projections::tree(&self.db, self.rows.projection())
    }

    /// Where the stream is in its projection's feed.
    pub fn position(&self) -> Position {
        self.position
    }
}

impl<T: Target, R: Rows> Stream for FeedSink<T, R> {
    fn name(&self) -> &'static str {
        self.rows.stream()
    }

    fn lag(&self) -> u64 {
        self.tree()
            .and_then(|tree| feed::behind(&tree, self.position))
            .unwrap_or(0)
    }

    async fn step(&mut self) -> Result<usize, StepError> {
        let tree = self.tree().map_err(SinkError::from)?;
        let read = feed::read(&tree, self.position, self.batch_keys).map_err(SinkError::from)?;
        if read.restarted && read.next.seq > 0 {
            tracing::info!(
                stream = self.rows.stream(),
                projection = self.rows.projection(),
                "the projection's feed started afresh (first run, or the projection was rebuilt): writing all of it again"
            );
        }
        if read.keys.is_empty() {
            return Ok(0);
        }
        let mut out: Vec<BTreeMap<Row, Row>> = vec![BTreeMap::new(); self.rows.tables().len()];
        for key in &read.keys {
            if let Err(err) = self.rows.rows(&tree, key, &mut out) {
                tracing::error!(
                    stream = self.rows.stream(),
                    key = %String::from_utf8_lossy(key),
                    %err,
                    "a stored value gives no rows: skipped"
                );
                metrics::MSSQL_SKIPPED
                    .with_label_values(&[self.rows.stream()])
                    .inc();
            }
        }
        let rows: Vec<Vec<Row>> = out
            .into_iter()
            .map(|by_key| by_key.into_values().collect())
            .collect();
        let batch: Vec<Write<'_>> = self
            .rows
            .tables()
            .iter()
            .zip(&rows)
            .map(|(table, rows)| Write { table, rows })
            .collect();
        let count: usize = rows.iter().map(Vec::len).sum();
        if count > 0 {
            self.target.write(&batch).await.map_err(StepError::Sql)?;
        }
        self.cursor
            .insert(FEED_CURSOR, &read.next.to_bytes())
            .map_err(SinkError::from)?;
        self.position = read.next;
        feed::trim(&tree, read.next).map_err(SinkError::from)?;
        written(self.rows.stream(), count);
        // The keys read count as work done even when they gave no rows.
        Ok(read.keys.len())
    }
}

/// Readings entered by hand, from their trail, by id.
pub struct ManualSink<T> {
    target: T,
    trail: Trail,
    table: Table,
    cursor: sled::Tree,
    last_id: u64,
    batch_rows: usize,
}

/// The row of a reading entered by hand.
pub fn manual_row(entry: &ManualEntry) -> Row {
    vec![
        big(entry.id),
        text(entry.edge.clone()),
        text(entry.device.clone()),
        Value::Time(utc(entry.read_at_us)),
        Value::Time(utc(entry.entered_us)),
        text(entry.by.clone()),
        text(entry.reason.clone()),
        entry.corrects.map_or(Value::Null, big),
        json(
            &entry
                .meters
                .iter()
                .map(|(code, value)| (outpost_sas::names::meter_name(*code), *value))
                .collect::<BTreeMap<_, _>>(),
        ),
    ]
}

impl<T: Target> ManualSink<T> {
    pub fn open(target: T, db: &sled::Db, batch_rows: usize) -> Result<Self, SinkError> {
        let cursor = cursor_tree(db, MANUAL)?;
        let last_id = cursor
            .get(ID_CURSOR)?
            .and_then(|v| v.as_ref().try_into().ok().map(u64::from_be_bytes))
            .unwrap_or(0);
        Ok(Self {
            target,
            trail: Trail::open(db).map_err(SinkError::Trail)?,
            table: tables::manual_readings(),
            cursor,
            last_id,
            batch_rows: batch_rows.max(1),
        })
    }
}

impl<T: Target> Stream for ManualSink<T> {
    fn name(&self) -> &'static str {
        MANUAL
    }

    fn lag(&self) -> u64 {
        self.trail
            .after(self.last_id)
            .map_or(0, |entries| entries.len() as u64)
    }

    async fn step(&mut self) -> Result<usize, StepError> {
        let entries = self
            .trail
            .after(self.last_id)
            .map_err(|e| StepError::Sink(SinkError::Trail(e)))?;
        let entries = &entries[..entries.len().min(self.batch_rows)];
        let Some(last) = entries.last().map(|e| e.id) else {
            return Ok(0);
        };
        let rows: Vec<Row> = entries.iter().map(manual_row).collect();
        self.target
            .write(&[Write {
                table: &self.table,
                rows: &rows,
            }])
            .await
            .map_err(StepError::Sql)?;
        self.cursor
            .insert(ID_CURSOR, &last.to_be_bytes())
            .map_err(SinkError::from)?;
        self.last_id = last;
        written(MANUAL, rows.len());
        Ok(rows.len())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::Arc;

    use outpost_link::{Event, EventBody, EventClass, MeterReading, SasEvent};

    use super::*;
    use crate::eventlog::EventLog;
    use crate::mssql::target::MemoryTarget;
    use crate::projections::Runner;

    /// 2026-11-30 10:00 UTC.
    const T0: i64 = 1_796_032_800_000_000;

    fn event(seq: u64, at_s: i64, body: SasEvent) -> Event {
        Event {
            seq,
            device: "egm-1".into(),
            class: EventClass::Money,
            wall_us: T0 + at_s * 1_000_000,
            mono_us: 0,
            boot_id: 1,
            body: EventBody::Sas(body),
        }
    }

    fn meters(seq: u64, at_s: i64, coin_in: u64, games: u64) -> Event {
        let reading = |code, value| MeterReading {
            code,
            value,
            bytes: 4,
        };
        event(
            seq,
            at_s,
            SasEvent::Meters {
                game: 0,
                meters: vec![
                    reading(meter::COIN_IN, coin_in),
                    reading(meter::GAMES_PLAYED, games),
                ],
            },
        )
    }

    async fn log() -> (tempfile::TempDir, EventLog) {
        let dir = tempfile::tempdir().unwrap();
        let durable = Arc::new(outpost_storage::DurableDb::open(dir.path()).unwrap());
        let log = EventLog::start(durable, 4096, |_| {}).unwrap();
        (dir, log)
    }

    /// Applies everything committed to `name`, keeping its feed.
    fn project(log: &EventLog, name: &str) {
        let db = log.durable().db().clone();
        let projection = projection::by_name(name, &Floor::simple()).unwrap();
        let mut runner = Runner::open(&db, projection, None)
            .unwrap()
            .with_feed(true)
            .unwrap();
        while runner.step(log).unwrap() > 0 {}
    }

    async fn drain<S: Stream>(stream: &mut S) -> usize {
        let mut steps = 0;
        loop {
            match stream.step().await {
                Ok(0) => return steps,
                Ok(_) => steps += 1,
                Err(StepError::Sql(e)) => panic!("{e}"),
                Err(StepError::Sink(e)) => panic!("{e}"),
            }
        }
    }

    fn accounting(log: &EventLog, target: &MemoryTarget) -> FeedSink<MemoryTarget, AccountingRows> {
        let db = log.durable().db().clone();
        FeedSink::open(
            target.clone(),
            AccountingRows::new(Floor::simple()),
            db,
            100,
        )
        .unwrap()
    }

    fn column(table: &Table, row: &Row, name: &str) -> Value {
        let at = table.columns.iter().position(|(c, _)| *c == name).unwrap();
        row[at].clone()
    }

    #[tokio::test]
    async fn an_hour_its_day_and_its_reconciliation_reach_sql_server_in_money() {
        let (_dir, log) = log().await;
        log.commit(
            "edge-1",
            vec![meters(1, 0, 0, 0), meters(2, 600, 1_000, 10)],
            0,
        )
        .await
        .unwrap();
        project(&log, projection::ACCOUNTING);
        let target = MemoryTarget::default();
        let mut sink = accounting(&log, &target);
        assert!(sink.lag() > 0);
        drain(&mut sink).await;
        assert_eq!(sink.lag(), 0);
        let denomination = i64::from(Floor::simple().terms("edge-1", "egm-1").denomination);
        let hours = tables::meter_hours();
        let rows = target.rows(&hours.name);
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!(
            column(&hours, &rows[0], "coin_in_minor"),
            Value::BigInt(1_000 * denomination)
        );
        assert_eq!(column(&hours, &rows[0], "games_played"), Value::BigInt(10));
        assert_eq!(column(&hours, &rows[0], "hour_start"), Value::Time(utc(T0)));
        let days = tables::machine_days();
        let rows = target.rows(&days.name);
        assert_eq!(rows.len(), 1);
        assert_eq!(
            column(&days, &rows[0], "gaming_day"),
            Value::Text("2026-11-30".into())
        );
        assert_eq!(
            column(&days, &rows[0], "net_win_minor"),
            Value::BigInt(1_000 * denomination)
        );
        assert_eq!(target.rows(&tables::reconciliations().name).len(), 1);
        let meters = target.rows(&tables::machine_meters().name);
        assert_eq!(meters.len(), 2, "coin in and games played");
        assert!(
            meters
                .iter()
                .any(|r| r[3] == Value::Text("games_played".into()) && r[4] == Value::BigInt(10)),
            "{meters:?}"
        );
    }

    #[tokio::test]
    async fn an_hour_that_changes_is_updated_in_place_and_what_it_said_before_is_in_the_trail() {
        let (_dir, log) = log().await;
        log.commit(
            "edge-1",
            vec![meters(1, 0, 0, 0), meters(2, 600, 1_000, 10)],
            0,
        )
        .await
        .unwrap();
        project(&log, projection::ACCOUNTING);
        let target = MemoryTarget::default();
        let mut sink = accounting(&log, &target);
        drain(&mut sink).await;
        log.commit("edge-1", vec![meters(3, 1_200, 3_000, 25)], 0)
            .await
            .unwrap();
        project(&log, projection::ACCOUNTING);
        drain(&mut sink).await;
        let hours = tables::meter_hours();
        let rows = target.rows(&hours.name);
        assert_eq!(rows.len(), 1, "the same hour");
        assert_eq!(column(&hours, &rows[0], "games_played"), Value::BigInt(25));
        let trail = target.trail("outpost.meter_hours_trail");
        assert_eq!(trail.len(), 1);
        assert_eq!(column(&hours, &trail[0], "games_played"), Value::BigInt(10));
        assert_eq!(target.trail("outpost.machine_days_trail").len(), 1);
    }

    #[tokio::test]
    async fn keys_written_again_after_a_lost_answer_or_a_rebuild_change_nothing() {
        let (_dir, log) = log().await;
        log.commit(
            "edge-1",
            vec![meters(1, 0, 0, 0), meters(2, 600, 1_000, 10)],
            0,
        )
        .await
        .unwrap();
        project(&log, projection::ACCOUNTING);
        let target = MemoryTarget::default();
        let mut sink = accounting(&log, &target);
        target.lose_answers(1);
        assert!(matches!(sink.step().await, Err(StepError::Sql(_))));
        let before = sink.position();
        drain(&mut sink).await;
        assert_ne!(sink.position(), before, "written again, then moved on");
        let db = log.durable().db().clone();
        crate::projections::rebuild(&db, projection::ACCOUNTING, &Floor::simple()).unwrap();
        project(&log, projection::ACCOUNTING);
        let writes = target.writes().0;
        drain(&mut sink).await;
        assert!(
            target.writes().0 > writes,
            "the rebuilt projection was written again"
        );
        assert_eq!(target.rows(&tables::meter_hours().name).len(), 1);
        assert!(
            target.trail("outpost.meter_hours_trail").is_empty(),
            "nothing changed"
        );
        assert!(target.trail("outpost.machine_days_trail").is_empty());
        assert!(target.trail("outpost.reconciliations_trail").is_empty());
    }

    #[tokio::test]
    async fn a_stream_reopened_after_a_crash_goes_on_from_its_cursor_and_the_feed_is_trimmed() {
        let (_dir, log) = log().await;
        log.commit(
            "edge-1",
            vec![meters(1, 0, 0, 0), meters(2, 600, 1_000, 10)],
            0,
        )
        .await
        .unwrap();
        project(&log, projection::ACCOUNTING);
        let target = MemoryTarget::default();
        let mut first = accounting(&log, &target);
        drain(&mut first).await;
        let at = first.position();
        drop(first);
        let tree = crate::projections::tree(log.durable().db(), projection::ACCOUNTING).unwrap();
        assert_eq!(
            tree.scan_prefix(b"k").count(),
            0,
            "entries written are removed"
        );
        let mut second = accounting(&log, &target);
        assert_eq!(second.position(), at);
        assert_eq!(drain(&mut second).await, 0, "nothing to write again");
    }

    #[tokio::test]
    async fn a_handpay_is_written_pending_and_then_updated_when_the_machine_resets_it() {
        let (_dir, log) = log().await;
        log.commit(
            "edge-1",
            vec![event(
                1,
                0,
                SasEvent::Handpay {
                    credits: 120_000,
                    raw: Vec::new(),
                },
            )],
            0,
        )
        .await
        .unwrap();
        project(&log, projection::HANDPAYS);
        let target = MemoryTarget::default();
        let db = log.durable().db().clone();
        let mut sink =
            FeedSink::open(target.clone(), HandpayRows::new(Floor::simple()), db, 100).unwrap();
        drain(&mut sink).await;
        let table = tables::handpays();
        let rows = target.rows(&table.name);
        assert_eq!(
            column(&table, &rows[0], "state"),
            Value::Text("pending".into())
        );
        assert_eq!(column(&table, &rows[0], "reset_at"), Value::Null);
        log.commit(
            "edge-1",
            vec![event(
                2,
                300,
                SasEvent::Exception {
                    code: outpost_sas::names::exception::HANDPAY_RESET,
                },
            )],
            0,
        )
        .await
        .unwrap();
        project(&log, projection::HANDPAYS);
        drain(&mut sink).await;
        let rows = target.rows(&table.name);
        assert_eq!(rows.len(), 1);
        assert_eq!(
            column(&table, &rows[0], "state"),
            Value::Text("reset".into())
        );
        assert_eq!(column(&table, &rows[0], "reset_seq"), Value::BigInt(2));
    }

    #[tokio::test]
    async fn readings_entered_by_hand_reach_sql_server_once_with_who_and_why() {
        let (_dir, log) = log().await;
        let db = log.durable().db().clone();
        let trail = Trail::open(&db).unwrap();
        for reason in ["link down", "typo in coin in"] {
            trail
                .record(ManualEntry {
                    id: 0,
                    edge: "edge-1".into(),
                    device: "egm-1".into(),
                    read_at_us: T0,
                    meters: [(meter::COIN_IN, 5_000)].into_iter().collect(),
                    by: "cage-1".into(),
                    reason: reason.into(),
                    entered_us: T0 + 60_000_000,
                    corrects: None,
                    anchor: None,
                })
                .unwrap();
        }
        let target = MemoryTarget::default();
        let mut sink = ManualSink::open(target.clone(), &db, 1).unwrap();
        target.lose_answers(1);
        assert!(sink.step().await.is_err());
        drain(&mut sink).await;
        let rows = target.rows(&tables::manual_readings().name);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0][5], Value::Text("cage-1".into()));
        assert_eq!(rows[1][6], Value::Text("typo in coin in".into()));
        assert_eq!(rows[0][7], Value::Null);
        assert_eq!(rows[0][8], Value::Text("{\"coin_in\":5000}".into()));
        assert_eq!(
            target.writes(),
            (3, 3),
            "the first written twice, kept once"
        );
    }
}
