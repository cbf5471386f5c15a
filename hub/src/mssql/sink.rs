//! The events stream: every event the hub committed, written to `outpost.events` in batches.
//!
//! The sink reads the hub's log from its own cursor per edge (tree `mssql/events`: edge → the
//! last sequence written, u64 BE) and never holds up ingest: the log does not wait for it.
//!
//! Invariants:
//! - A batch is one transaction at SQL Server (stage, then insert the rows whose key is not there
//!   yet); the cursor moves only after SQL Server answered the commit. A crash or a lost answer
//!   between the two replays the batch, which the key `(edge, seq)` makes change nothing — so the
//!   cursor is kept in the hub, not in SQL Server, and every row is there exactly once.
//! - Per edge, events are written in sequence order; every edge gets a share of each batch.
//! - A failed write is retried: `retry` errors after a backoff with jitter (bounded), `blocking`
//!   ones every `blocked_retry` (logged with the server's message number, `outpost_mssql_blocked`
//!   set); neither loops at full speed.

use std::collections::BTreeMap;
use std::time::Duration;

use outpost_actors::backoff::Backoff;
use outpost_domain::StoredEvent;
use outpost_domain::readable::readable;
use outpost_domain::site::Floor;

use super::sql::Table;
use super::target::{ErrorClass, Row, SqlError, Target, Value, Write};
use crate::eventlog::{EventLog, EventLogError};
use crate::metrics;

/// The stream's name (the `stream` label).
pub const STREAM: &str = "events";

/// Why the sink stopped (its actor restarts it).
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("mssql sink cursor store: {0}")]
    Store(#[from] sled::Error),
    #[error(transparent)]
    Log(#[from] EventLogError),
    #[error("mssql sink cursor for edge {edge} holds {len} bytes, not 8")]
    Cursor { edge: String, len: usize },
    #[error(transparent)]
    Trail(#[from] crate::manual::TrailError),
    #[error("cannot start the thread watching the store: {0}")]
    Watch(String),
}

/// What one step did.
#[derive(Debug)]
pub enum StepError {
    Sql(SqlError),
    Sink(SinkError),
}

impl From<SinkError> for StepError {
    fn from(e: SinkError) -> Self {
        StepError::Sink(e)
    }
}

/// How failed writes are tried again.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub backoff: Backoff,
    pub blocked_retry: Duration,
}

/// The events sink over a [`Target`].
pub struct EventsSink<T> {
    target: T,
    table: Table,
    eventlog: EventLog,
    floor: Floor,
    tree: sled::Tree,
    cursors: BTreeMap<String, u64>,
    batch_rows: usize,
}

/// Microseconds since the epoch as a UTC `DATETIME2` value (clamped to what it can hold).
pub fn utc(us: i64) -> time::PrimitiveDateTime {
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1_000).unwrap_or(
        if us < 0 {
            time::OffsetDateTime::UNIX_EPOCH
        } else {
            time::macros::datetime!(9999-12-31 23:59:59.999999 UTC)
        },
    );
    time::PrimitiveDateTime::new(at.date(), at.time())
}

/// The row of `stored`, an event of `edge`.
pub fn event_row(floor: &Floor, edge: &str, stored: &StoredEvent) -> Row {
    let readable = readable(floor, edge, stored);
    let kind = readable.what.type_name();
    let body = serde_json::to_string(&readable).unwrap_or_else(|e| {
        // A readable event is plain data; this cannot fail, but a row is still owed.
        format!("{{\"error\":\"{e}\"}}")
    });
    vec![
        Value::Text(edge.to_owned()),
        Value::BigInt(i64::try_from(stored.event.seq).unwrap_or(i64::MAX)),
        Value::Text(stored.event.device.clone()),
        Value::Text(readable.class.clone()),
        Value::Text(kind.to_owned()),
        Value::Time(utc(stored.happened_us())),
        Value::Time(utc(stored.hub_received_us)),
        Value::Text(body),
    ]
}

impl<T: Target> EventsSink<T> {
    pub fn open(
        target: T,
        table: Table,
        eventlog: EventLog,
        floor: Floor,
        batch_rows: usize,
    ) -> Result<Self, SinkError> {
        let tree = eventlog.durable().db().open_tree("mssql/events")?;
        // An edge adopted from another hub starts where that hub's sink wrote up to.
        let mut cursors = crate::cluster::adopted(eventlog.durable().db())?;
        for entry in tree.iter() {
            let (key, value) = entry?;
            let edge = String::from_utf8_lossy(&key).into_owned();
            let bytes: [u8; 8] = value.as_ref().try_into().map_err(|_| SinkError::Cursor {
                edge: edge.clone(),
                len: value.len(),
            })?;
            cursors.insert(edge, u64::from_be_bytes(bytes));
        }
        Ok(Self {
            target,
            table,
            eventlog,
            floor,
            tree,
            cursors,
            batch_rows: batch_rows.max(1),
        })
    }

    /// Events committed and not yet written.
    pub fn lag(&self) -> u64 {
        self.eventlog
            .committed_marks()
            .iter()
            .map(|(edge, committed)| committed.saturating_sub(self.cursor(edge)))
            .sum()
    }

    /// The last sequence of `edge` written.
    pub fn cursor(&self, edge: &str) -> u64 {
        self.cursors.get(edge).copied().unwrap_or(0)
    }

    /// Writes the next batch; returns how many events it held (0: nothing to write).
    pub async fn step(&mut self) -> Result<usize, StepError> {
        let marks: BTreeMap<String, u64> = self.eventlog.committed_marks().into_iter().collect();
        let behind: Vec<(&String, u64)> = marks
            .iter()
            .filter(|(edge, committed)| **committed > self.cursor(edge))
            .map(|(edge, committed)| (edge, *committed))
            .collect();
        if behind.is_empty() {
            return Ok(0);
        }
        let share = (self.batch_rows / behind.len()).max(1);
        let mut rows = Vec::new();
        let mut moved: Vec<(String, u64)> = Vec::new();
        for (edge, committed) in behind {
            let room = self.batch_rows.saturating_sub(rows.len()).min(share);
            if room == 0 {
                break;
            }
            let from = self.cursor(edge) + 1;
            let events = self
                .eventlog
                .read(edge, from, room)
                .map_err(SinkError::from)?;
            let mut last = None;
            for stored in events.iter().filter(|s| s.event.seq <= committed) {
                rows.push(event_row(&self.floor, edge, stored));
                last = Some(stored.event.seq);
            }
            if let Some(last) = last {
                moved.push((edge.clone(), last));
            }
        }
        if rows.is_empty() {
            return Ok(0);
        }
        self.target
            .write(&[Write {
                table: &self.table,
                rows: &rows,
            }])
            .await
            .map_err(StepError::Sql)?;
        let mut batch = sled::Batch::default();
        for (edge, last) in &moved {
            batch.insert(edge.as_bytes(), &last.to_be_bytes());
            self.cursors.insert(edge.clone(), *last);
        }
        self.tree.apply_batch(batch).map_err(SinkError::from)?;
        written(STREAM, rows.len());
        Ok(rows.len())
    }
}

impl<T: Target> Stream for EventsSink<T> {
    fn name(&self) -> &'static str {
        STREAM
    }

    fn lag(&self) -> u64 {
        EventsSink::lag(self)
    }

    async fn step(&mut self) -> Result<usize, StepError> {
        EventsSink::step(self).await
    }
}

/// Counts a batch of `rows` written by `stream` and when.
pub(super) fn written(stream: &str, rows: usize) {
    metrics::MSSQL_ROWS
        .with_label_values(&[stream])
        .inc_by(rows as u64);
    metrics::MSSQL_LAST_SUCCESS
        .with_label_values(&[stream])
        .set(outpost_process::clock::unix_ms() / 1000);
}

/// One stream the sink writes: where it reads from, with its own durable cursor.
pub trait Stream: Send {
    /// Its name (the `stream` label).
    fn name(&self) -> &'static str;
    /// What it has not written yet (events, or changed keys).
    fn lag(&self) -> u64;
    /// Writes the next batch; returns how many rows or events it held (0: nothing to write).
    fn step(&mut self) -> impl std::future::Future<Output = Result<usize, StepError>> + Send;
}

/// Writes `stream` for ever, woken by `commits` (and every second); returns only when the
/// stream's own store fails.
pub async fn run<S: Stream>(
    mut stream: S,
    policy: RetryPolicy,
    mut commits: tokio::sync::watch::Receiver<u64>,
) -> SinkError {
    let name = stream.name();
    let mut failures = 0u32;
    let mut last_error: Option<(ErrorClass, Option<u32>)> = None;
    loop {
        metrics::MSSQL_LAG_EVENTS
            .with_label_values(&[name])
            .set(i64::try_from(stream.lag()).unwrap_or(i64::MAX));
        match stream.step().await {
            Ok(0) => {
                // Caught up: wait for the next commit (or look again in a second).
                let _ = tokio::time::timeout(Duration::from_secs(1), commits.changed()).await;
            }
            Ok(_) => {
                if failures > 0 {
                    tracing::info!(stream = name, failures, "writing to SQL Server again");
                }
                failures = 0;
                last_error = None;
                metrics::MSSQL_BLOCKED.with_label_values(&[name]).set(0);
            }
            Err(StepError::Sink(e)) => return e,
            Err(StepError::Sql(err)) => {
                let class = err.class();
                failures = failures.saturating_add(1);
                metrics::MSSQL_ERRORS
                    .with_label_values(&[class.as_str()])
                    .inc();
                let seen = Some((class, err.number()));
                if last_error != seen || failures.is_power_of_two() {
                    tracing::warn!(
                        stream = name,
                        class = class.as_str(),
                        number = err.number(),
                        failures,
                        lag = stream.lag(),
                        %err,
                        "write to SQL Server failed; the hub keeps taking events and writes them once it can"
                    );
                }
                last_error = seen;
                let wait = match class {
                    ErrorClass::Retry => policy.backoff.delay(failures),
                    ErrorClass::Blocking => {
                        metrics::MSSQL_BLOCKED.with_label_values(&[name]).set(1);
                        policy.blocked_retry
                    }
                };
                tokio::time::sleep(wait).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use outpost_link::{Event, EventBody, EventClass, SasEvent};

    use super::*;
    use crate::mssql::target::MemoryTarget;

    fn floor() -> Floor {
        Floor::simple()
    }

    fn events(from: u64, to: u64) -> Vec<Event> {
        (from..=to)
            .map(|seq| Event {
                seq,
                device: format!("egm-{}", seq % 3),
                class: EventClass::Money,
                wall_us: 1_764_489_600_000_000 + seq as i64 * 1_000,
                mono_us: 0,
                boot_id: 1,
                body: EventBody::Sas(SasEvent::Exception { code: 0x11 }),
            })
            .collect()
    }

    async fn log() -> (tempfile::TempDir, EventLog) {
        let dir = tempfile::tempdir().unwrap();
        let durable = Arc::new(outpost_storage::DurableDb::open(dir.path()).unwrap());
        let log = EventLog::start(durable, 4096, |_| {}).unwrap();
        (dir, log)
    }

    fn sink(log: &EventLog, target: &MemoryTarget, batch_rows: usize) -> EventsSink<MemoryTarget> {
        EventsSink::open(
            target.clone(),
            Table::events(),
            log.clone(),
            floor(),
            batch_rows,
        )
        .unwrap()
    }

    /// Every (edge, seq) in the target, checked to be there once.
    fn keys(target: &MemoryTarget) -> Vec<(String, i64)> {
        let keys: Vec<(String, i64)> = target
            .rows("outpost.events")
            .into_iter()
            .map(|row| match (&row[0], &row[1]) {
                (Value::Text(edge), Value::BigInt(seq)) => (edge.clone(), *seq),
                other => panic!("key {other:?}"),
            })
            .collect();
        let unique: std::collections::BTreeSet<_> = keys.iter().cloned().collect();
        assert_eq!(unique.len(), keys.len(), "no row twice");
        keys
    }

    fn expected(edges: &[(&str, i64)]) -> Vec<(String, i64)> {
        let mut all: Vec<(String, i64)> = edges
            .iter()
            .flat_map(|(edge, last)| (1..=*last).map(move |seq| (edge.to_string(), seq)))
            .collect();
        all.sort();
        all
    }

    async fn drain(sink: &mut EventsSink<MemoryTarget>) -> Vec<usize> {
        let mut sizes = Vec::new();
        loop {
            match sink.step().await {
                Ok(0) => return sizes,
                Ok(n) => sizes.push(n),
                Err(StepError::Sql(e)) => panic!("{e}"),
                Err(StepError::Sink(e)) => panic!("{e}"),
            }
        }
    }

    #[tokio::test]
    async fn every_committed_event_reaches_the_table_once_in_batches_no_larger_than_configured() {
        let (_dir, log) = log().await;
        log.commit("edge-1", events(1, 2_500), 0).await.unwrap();
        log.commit("edge-2", events(1, 700), 0).await.unwrap();
        let target = MemoryTarget::default();
        let mut sink = sink(&log, &target, 1_000);
        assert_eq!(sink.lag(), 3_200);
        let sizes = drain(&mut sink).await;
        assert!(sizes.iter().all(|&n| n <= 1_000), "{sizes:?}");
        assert_eq!(sizes.iter().sum::<usize>(), 3_200);
        assert_eq!(
            keys(&target),
            expected(&[("edge-1", 2_500), ("edge-2", 700)])
        );
        assert_eq!(sink.lag(), 0);
        let row = &target.rows("outpost.events")[0];
        assert_eq!(row[3], Value::Text("money".into()));
        assert_eq!(
            row[4],
            Value::Text("sas.door".into()),
            "exception 11: a door opened"
        );
    }

    #[tokio::test]
    async fn an_edge_with_a_large_backlog_does_not_keep_another_waiting() {
        let (_dir, log) = log().await;
        log.commit("edge-1", events(1, 5_000), 0).await.unwrap();
        log.commit("edge-2", events(1, 10), 0).await.unwrap();
        let target = MemoryTarget::default();
        let mut sink = sink(&log, &target, 1_000);
        sink.step().await.unwrap();
        assert_eq!(
            sink.cursor("edge-2"),
            10,
            "the small edge is written in the first batch"
        );
    }

    #[tokio::test]
    async fn a_batch_whose_answer_was_lost_after_the_commit_is_written_again_and_changes_nothing() {
        let (_dir, log) = log().await;
        log.commit("edge-1", events(1, 300), 0).await.unwrap();
        let target = MemoryTarget::default();
        let mut sink = sink(&log, &target, 100);
        target.lose_answers(1);
        assert!(matches!(
            sink.step().await,
            Err(StepError::Sql(SqlError::Io(_)))
        ));
        assert_eq!(
            sink.cursor("edge-1"),
            0,
            "the cursor moves only after an answer"
        );
        drain(&mut sink).await;
        assert_eq!(keys(&target), expected(&[("edge-1", 300)]));
        assert_eq!(target.writes(), (4, 400), "the first 100 went twice");
    }

    #[tokio::test]
    async fn a_sink_opened_again_after_a_crash_goes_on_from_its_durable_cursor() {
        let (_dir, log) = log().await;
        log.commit("edge-1", events(1, 250), 0).await.unwrap();
        let target = MemoryTarget::default();
        let mut first = sink(&log, &target, 100);
        first.step().await.unwrap();
        first.step().await.unwrap();
        drop(first); // the hub dies here
        log.commit("edge-1", events(251, 400), 0).await.unwrap();
        let mut second = sink(&log, &target, 100);
        assert_eq!(second.cursor("edge-1"), 200);
        drain(&mut second).await;
        assert_eq!(keys(&target), expected(&[("edge-1", 400)]));
        assert_eq!(target.writes().1, 400, "nothing written twice");
    }

    fn policy() -> RetryPolicy {
        RetryPolicy {
            backoff: Backoff {
                initial: Duration::from_millis(100),
                max: Duration::from_secs(2),
                multiplier: 2.0,
                jitter: 0.0,
            },
            blocked_retry: Duration::from_secs(60),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_outage_under_load_holds_up_no_commit_and_loses_nothing() {
        let (_dir, log) = log().await;
        let target = MemoryTarget::default();
        target.down(SqlError::Connect {
            addr: "sql:1433".into(),
            reason: "connection refused".into(),
        });
        let running = tokio::spawn(run(
            sink(&log, &target, 500),
            policy(),
            log.subscribe_commits(),
        ));
        // Ingest goes on while SQL Server is away.
        for round in 0..60u64 {
            log.commit("edge-1", events(round * 100 + 1, round * 100 + 100), 0)
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        assert!(keys(&target).is_empty());
        target.up();
        for _ in 0..600 {
            if keys(&target).len() == 6_000 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(keys(&target), expected(&[("edge-1", 6_000)]));
        running.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn a_blocking_error_is_tried_again_only_every_blocked_retry() {
        let (_dir, log) = log().await;
        log.commit("edge-1", events(1, 10), 0).await.unwrap();
        let target = MemoryTarget::default();
        target.down(SqlError::Server {
            number: 18456,
            severity: 14,
            state: 1,
            message: "Login failed for user 'outpost'.".into(),
        });
        let running = tokio::spawn(run(
            sink(&log, &target, 500),
            policy(),
            log.subscribe_commits(),
        ));
        tokio::time::sleep(Duration::from_secs(299)).await;
        let attempts = target.attempts();
        assert_eq!(attempts, 5, "at 0, 60, 120, 180 and 240 s");
        target.up();
        tokio::time::sleep(Duration::from_secs(61)).await;
        assert_eq!(keys(&target).len(), 10, "written at the next try");
        running.abort();
    }
}
