//! `kill -9` of the hub while it writes to SQL Server: every row there exactly once in effect.
//!
//! The "hub" is this test binary run again as a child process: it takes events into its event
//! log (meter readings of four machines, as fast as it can), runs the accounting projection with
//! its change feed, and runs the events and accounting sinks. "SQL Server" is the parent: an
//! in-memory target behind a TCP socket, applying each batch whole and then answering, so a kill
//! lands before a batch, in it, or between its commit and the hub storing its cursor. The parent
//! kills the child at random moments, again and again, then lets a last child drain and checks
//! that SQL Server holds every committed event once and exactly the accounting rows a fresh sink
//! writes from the final store. `OUTPOST_CHAOS_SEED` replays a schedule.

#![allow(clippy::unwrap_used)] // In tests a panic is a failed test with its message.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write as _};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use outpost_domain::site::Floor;
use outpost_hub::mssql::{
    AccountingRows, EventsSink, FeedSink, MemoryTarget, Row, SqlError, Stream, Table, Target,
    Value, Write, tables,
};
use outpost_link::{Event, EventBody, EventClass, MeterReading, SasEvent};

const EDGE: &str = "edge-k9";
const CHILD: &str = "OUTPOST_KILL9_HUB_DIR";
const PORT: &str = "OUTPOST_KILL9_SQL_PORT";
const DRAIN: &str = "OUTPOST_KILL9_DRAIN";

fn encode(value: &Value) -> serde_json::Value {
    match value {
        Value::BigInt(v) => serde_json::json!({ "i": v }),
        Value::Text(v) => serde_json::json!({ "s": v }),
        Value::Time(v) => serde_json::json!({ "t": outpost_hub::mssql::target::iso8601(*v) }),
        Value::Null => serde_json::Value::Null,
    }
}

fn decode(value: &serde_json::Value) -> Value {
    if let Some(v) = value.get("i").and_then(serde_json::Value::as_i64) {
        Value::BigInt(v)
    } else if let Some(v) = value.get("s").and_then(serde_json::Value::as_str) {
        Value::Text(v.to_owned())
    } else if let Some(v) = value.get("t").and_then(serde_json::Value::as_str) {
        Value::Time(
            time::PrimitiveDateTime::parse(
                v,
                &time::format_description::well_known::Iso8601::DEFAULT,
            )
            .unwrap(),
        )
    } else {
        Value::Null
    }
}

/// The hub's side: sends each batch to the parent and waits for its answer.
struct RemoteTarget {
    port: u16,
}

impl Target for RemoteTarget {
    async fn write(&mut self, batch: &[Write<'_>]) -> Result<(), SqlError> {
        let request: Vec<serde_json::Value> = batch
            .iter()
            .map(|w| {
                let rows: Vec<Vec<serde_json::Value>> = w
                    .rows
                    .iter()
                    .map(|row| row.iter().map(encode).collect())
                    .collect();
                serde_json::json!({ "table": w.table.name, "rows": rows })
            })
            .collect();
        let port = self.port;
        tokio::task::spawn_blocking(move || {
            let io = |e: std::io::Error| SqlError::Io(e.to_string());
            let mut stream = TcpStream::connect(("127.0.0.1", port)).map_err(io)?;
            let mut line = serde_json::to_string(&request).unwrap_or_default();
            line.push('\n');
            stream.write_all(line.as_bytes()).map_err(io)?;
            let mut answer = String::new();
            BufReader::new(stream).read_line(&mut answer).map_err(io)?;
            if answer.trim() == "ok" {
                Ok(())
            } else {
                Err(SqlError::Io(format!("answer {answer:?}")))
            }
        })
        .await
        .map_err(|e| SqlError::Io(e.to_string()))?
    }
}

/// SQL Server's side: applies each batch to `target` whole, then answers.
fn serve(listener: TcpListener, target: MemoryTarget) {
    let by_name: BTreeMap<String, Table> = tables::all()
        .into_iter()
        .map(|t| (t.name.clone(), t))
        .collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        let mut line = String::new();
        if BufReader::new(&stream).read_line(&mut line).is_err() || line.is_empty() {
            continue; // killed while sending: nothing applied
        }
        let Ok(request) = serde_json::from_str::<Vec<serde_json::Value>>(&line) else {
            continue;
        };
        let parts: Vec<(Table, Vec<Row>)> = request
            .iter()
            .map(|part| {
                let table = by_name[part["table"].as_str().unwrap()].clone();
                let rows = part["rows"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|row| row.as_array().unwrap().iter().map(decode).collect())
                    .collect();
                (table, rows)
            })
            .collect();
        let batch: Vec<Write<'_>> = parts
            .iter()
            .map(|(table, rows)| Write { table, rows })
            .collect();
        let mut target = target.clone();
        if runtime.block_on(target.write(&batch)).is_ok() {
            // Committed; the answer takes a moment, as a server's does: a kill in it replays.
            std::thread::sleep(Duration::from_millis(2));
            let _ = stream.write_all(b"ok\n");
        }
    }
}

fn reading(seq: u64) -> Event {
    let machine = seq % 4;
    let round = seq / 4;
    Event {
        seq,
        device: format!("egm-{machine}"),
        class: EventClass::Money,
        // A reading every 20 s per machine, from 2026-11-30 10:00 UTC: a few hours in a run.
        wall_us: 1_796_032_800_000_000 + round as i64 * 20_000_000,
        mono_us: 0,
        boot_id: 1,
        body: EventBody::Sas(SasEvent::Meters {
            game: 0,
            meters: vec![
                MeterReading {
                    code: 0x00,
                    value: round * 25,
                    bytes: 4,
                },
                MeterReading {
                    code: 0x05,
                    value: round,
                    bytes: 4,
                },
            ],
        }),
    }
}

/// The child: a hub taking events and writing them to the parent until killed (or, with
/// `DRAIN`, until everything committed is written).
async fn hub(dir: &str, port: u16, drain: bool) {
    let durable = Arc::new(outpost_storage::DurableDb::open(std::path::Path::new(dir)).unwrap());
    let log = outpost_hub::EventLog::start(durable, 4096, |_| {}).unwrap();
    let db = log.durable().db().clone();
    let floor = Floor::simple();
    if !drain {
        let log = log.clone();
        tokio::spawn(async move {
            let mut next = log.committed_marks().get(EDGE).copied().unwrap_or(0) + 1;
            loop {
                let events: Vec<Event> = (next..next + 200).map(reading).collect();
                log.commit(EDGE, events, 0).await.unwrap();
                next += 200;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
    }
    let projection = outpost_domain::projection::by_name("accounting", &floor).unwrap();
    let mut runner = outpost_hub::ProjectionRunner::open(&db, projection, None)
        .unwrap()
        .with_feed(true)
        .unwrap();
    let mut events = EventsSink::open(
        RemoteTarget { port },
        Table::events(),
        log.clone(),
        floor.clone(),
        500,
    )
    .unwrap();
    let mut accounting =
        FeedSink::open(RemoteTarget { port }, AccountingRows::new(floor), db, 200).unwrap();
    loop {
        while runner.step(&log).unwrap() > 0 {}
        let wrote = events.step().await.unwrap() + accounting.step().await.unwrap();
        if drain && wrote == 0 && events.lag() == 0 && accounting.lag() == 0 {
            println!(
                "drained: committed {}",
                log.committed_marks().get(EDGE).copied().unwrap_or(0)
            );
            return;
        }
        if wrote == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_killed_again_and_again_mid_batch_leaves_every_row_in_sql_server_once() {
    if let Ok(dir) = std::env::var(CHILD) {
        let port = std::env::var(PORT).unwrap().parse().unwrap();
        hub(&dir, port, std::env::var_os(DRAIN).is_some()).await;
        return;
    }
    let seed: u64 = std::env::var("OUTPOST_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    println!("OUTPOST_CHAOS_SEED={seed}");
    let mut rng = seed | 1;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let sql = MemoryTarget::default();
    std::thread::spawn({
        let sql = sql.clone();
        move || serve(listener, sql)
    });
    let exe = std::env::current_exe().unwrap();
    let child = |drain: bool| {
        let mut command = Command::new(&exe);
        command
            .args([
                "--exact",
                "a_hub_killed_again_and_again_mid_batch_leaves_every_row_in_sql_server_once",
                "--nocapture",
            ])
            .env(CHILD, dir.path())
            .env(PORT, port.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if drain {
            command.env(DRAIN, "1");
        }
        command.spawn().unwrap()
    };
    let kills = 12;
    for _ in 0..kills {
        let mut hub = child(false);
        std::thread::sleep(Duration::from_millis(400 + next() % 1_200));
        hub.kill().unwrap(); // SIGKILL
        hub.wait().unwrap();
    }
    let started = Instant::now();
    let out = child(true).wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "the last hub drains: {said}");
    let committed: i64 = said
        .lines()
        .find_map(|l| l.strip_prefix("drained: committed "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("{said}"));
    let keys: Vec<(String, i64)> = sql
        .rows("outpost.events")
        .into_iter()
        .map(|row| match (&row[0], &row[1]) {
            (Value::Text(edge), Value::BigInt(seq)) => (edge.clone(), *seq),
            other => panic!("{other:?}"),
        })
        .collect();
    let expected: Vec<(String, i64)> = (1..=committed).map(|s| (EDGE.to_owned(), s)).collect();
    let (batches, offered) = sql.writes();
    println!(
        "{kills} kills; {committed} events committed; {batches} batches with {offered} rows offered; drained in {:?}",
        started.elapsed()
    );
    assert!(committed > 1_000, "the hub took events between kills");
    assert_eq!(keys, expected, "every committed event once, none missing");

    // The accounting rows are what a sink writing the final store from scratch writes.
    let durable = Arc::new(outpost_storage::DurableDb::open(dir.path()).unwrap());
    let log = outpost_hub::EventLog::start(durable, 4096, |_| {}).unwrap();
    let fresh = MemoryTarget::default();
    // The feed started afresh (removed, then kept again: a new epoch listing every key), so
    // the sink, whose cursor is of the old epoch, writes everything the store holds.
    let projection = outpost_domain::projection::by_name("accounting", &Floor::simple()).unwrap();
    let _runner = outpost_hub::ProjectionRunner::open(log.durable().db(), projection, None)
        .unwrap()
        .with_feed(false)
        .unwrap()
        .with_feed(true)
        .unwrap();
    let mut sink = FeedSink::open(
        fresh.clone(),
        AccountingRows::new(Floor::simple()),
        log.durable().db().clone(),
        10_000,
    )
    .unwrap();
    while sink.step().await.unwrap() > 0 {}
    for table in [
        "outpost.meter_hours",
        "outpost.machine_days",
        "outpost.machine_meters",
    ] {
        assert!(!fresh.rows(table).is_empty(), "{table}");
        assert_eq!(sql.rows(table), fresh.rows(table), "{table}");
    }
}
