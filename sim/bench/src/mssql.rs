//! `outpost-sim bench mssql`: the MSSQL sink measured on this machine, in one run, each figure
//! next to a baseline. Prints one JSON document.
//!
//! - `wire`: rows/s and the hub's CPU per row writing `outpost.events`-shaped rows over TDS to
//!   `pysqlbridge` (an independent TDS server; only `#temp` tables are writable there, so both
//!   sides write into a `#temp` copy) through the sink's batching path (staged in statements of
//!   up to 2,000 parameters, one transaction per batch, inserted where the key is missing),
//!   against one parameterised `INSERT` per row — the obvious way, and not idempotent — on the
//!   same server in the same run.
//! - `wire_across_a_wan`: the same, through a proxy that holds each chunk for half of
//!   `--wan-rtt-ms` each way (a chain's central SQL Server across a WAN, as docs/scaling.md
//!   has it): what one round trip per row costs when round trips are not free.
//! - `lag_at_10k_per_second`: the events stream's delay from hub commit to written, per event,
//!   while the event log commits 10,000 events/s durably and the sink writes into the in-memory
//!   target (so this measures the hub's side: reading the log, building rows, batching).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use outpost_domain::site::Floor;
use outpost_hub::mssql::{
    Connection, EventsSink, MemoryTarget, RetryPolicy, Row, SqlError, Table, Target, TdsTarget,
    Value, Write,
};
use outpost_link::{Event, EventBody, EventClass, SasEvent};
use serde_json::json;

use crate::delivery::percentile;
use crate::sas::cpu_seconds;

/// Options of `bench mssql`.
#[derive(Debug, Clone, clap::Args)]
pub struct MssqlBenchArgs {
    /// Smaller and shorter runs (a smoke test of the benchmark itself).
    #[arg(long)]
    pub quick: bool,
    /// Also write the JSON here.
    #[arg(long)]
    pub out: Option<std::path::PathBuf>,
    /// Rows each side writes over TDS (pysqlbridge checks a missing key by scanning: the batched
    /// side slows as the table grows there, which SQL Server's key index does not).
    #[arg(long, default_value_t = 2_000)]
    pub rows: usize,
    /// Rows each side writes across the WAN (one round trip per row is slow there).
    #[arg(long, default_value_t = 600)]
    pub wan_rows: usize,
    /// Round trip time of the WAN case, in milliseconds.
    #[arg(long, default_value_t = 20)]
    pub wan_rtt_ms: u64,
    /// Rows per batch on the batching side (the sink's `batch_rows`).
    #[arg(long, default_value_t = 1_000)]
    pub batch_rows: usize,
    /// Seconds of 10,000 events/s for the lag measurement.
    #[arg(long, default_value_t = 20)]
    pub seconds: u64,
    /// The Python with pysqlbridge (default: `OUTPOST_PEERS_PYTHON`, else target/peers-venv).
    #[arg(long)]
    pub python: Option<std::path::PathBuf>,
}

const PASSWORD: &str = "bench-Pw-1!";

fn row(seq: i64) -> Row {
    let at = outpost_hub::mssql::sink::utc(1_796_032_800_000_000 + seq * 1_000);
    vec![
        Value::Text("edge-bench".into()),
        Value::BigInt(seq),
        Value::Text(format!("egm-{:03}", seq % 500)),
        Value::Text("money".into()),
        Value::Text("sas.bill".into()),
        Value::Time(at),
        Value::Time(at),
        Value::Text(format!("{{\"bill\":\"20.00\",\"seq\":{seq}}}")),
    ]
}

fn self_cpu() -> f64 {
    cpu_seconds(Some(std::process::id()))
}

/// Forwards TCP connections on a local port to `upstream`, holding each chunk for `delay` in
/// each direction (a round trip of twice `delay`). Returns the port.
async fn delaying_proxy(upstream: u16, delay: Duration) -> anyhow::Result<u16> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await else {
                continue;
            };
            let (client_read, client_write) = client.into_split();
            let (server_read, server_write) = server.into_split();
            tokio::spawn(pump(client_read, server_write, delay));
            tokio::spawn(pump(server_read, client_write, delay));
        }
    });
    Ok(port)
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay: Duration,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                tokio::time::sleep(delay).await;
                if to.write_all(&buffer[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Rows/s and CPU seconds per row of this process for each way, against the server on `port`.
async fn wire(
    args: &MssqlBenchArgs,
    bridge: &outpost_harness::sqlbridge::SqlBridge,
    port: u16,
    rows: usize,
) -> anyhow::Result<serde_json::Value> {
    let connection = Connection {
        host: "127.0.0.1".into(),
        port,
        database: "master".into(),
        user: "outpost".into(),
        password: PASSWORD.into(),
        encrypt: true,
        ca_file: None,
        trust_server_certificate: true,
        timeout: Duration::from_secs(60),
    };
    let all: Vec<Row> = (1..=rows as i64).map(row).collect();

    let mut ours = TdsTarget::new(&connection);
    let table = Table::events().named("#events_batched");
    ours.batch(&table.create("#events_batched")).await?;
    let (cpu, bridge_cpu, started) = (self_cpu(), cpu_seconds(Some(bridge.pid())), Instant::now());
    for chunk in all.chunks(args.batch_rows.max(1)) {
        ours.write(&[Write {
            table: &table,
            rows: chunk,
        }])
        .await?;
    }
    let ours_s = started.elapsed().as_secs_f64();
    let ours_cpu = self_cpu() - cpu;
    let ours_server_cpu = cpu_seconds(Some(bridge.pid())) - bridge_cpu;
    let counted = ours
        .query_text("SELECT COUNT(*) FROM #events_batched", &[])
        .await?;
    anyhow::ensure!(
        counted.first().and_then(|r| r.first().cloned().flatten()) == Some(rows.to_string()),
        "the batched side wrote {counted:?} rows, not {rows}"
    );

    // The transfer alone: the same staging statements, without moving the rows into place (on
    // SQL Server that is an index seek per row; pysqlbridge has no indexes and scans).
    let mut staging = TdsTarget::new(&connection);
    staging.batch(&table.create_stage()).await?;
    let (cpu, started) = (self_cpu(), Instant::now());
    for chunk in all.chunks(args.batch_rows.max(1)) {
        staging.batch(&table.clear_stage()).await?;
        for statement in chunk.chunks(table.rows_per_statement()) {
            let params: Vec<&dyn outpost_hub::mssql::ToSql> = statement
                .iter()
                .flat_map(|row| row.iter().map(|v| v as &dyn outpost_hub::mssql::ToSql))
                .collect();
            staging
                .execute(&table.stage_insert(statement.len()), &params)
                .await?;
        }
    }
    let staged_s = started.elapsed().as_secs_f64();
    let staged_cpu = self_cpu() - cpu;

    let mut baseline = TdsTarget::new(&connection);
    baseline.batch(&table.create("#events_single")).await?;
    let columns = table
        .columns
        .iter()
        .map(|(name, _)| format!("[{name}]"))
        .collect::<Vec<_>>()
        .join(", ");
    let insert = format!(
        "INSERT INTO #events_single ({columns}) VALUES (@P1, @P2, @P3, @P4, @P5, @P6, @P7, @P8)"
    );
    let (cpu, bridge_cpu, started) = (self_cpu(), cpu_seconds(Some(bridge.pid())), Instant::now());
    for row in &all {
        let params: Vec<&dyn outpost_hub::mssql::ToSql> = row
            .iter()
            .map(|v| v as &dyn outpost_hub::mssql::ToSql)
            .collect();
        baseline.execute(&insert, &params).await?;
    }
    let base_s = started.elapsed().as_secs_f64();
    let base_cpu = self_cpu() - cpu;
    let base_server_cpu = cpu_seconds(Some(bridge.pid())) - bridge_cpu;
    let counted = baseline
        .query_text("SELECT COUNT(*) FROM #events_single", &[])
        .await?;
    anyhow::ensure!(
        counted.first().and_then(|r| r.first().cloned().flatten()) == Some(rows.to_string()),
        "the baseline wrote {counted:?} rows, not {rows}"
    );
    let (ours_rate, base_rate) = (rows as f64 / ours_s, rows as f64 / base_s);
    Ok(json!({
        "server": "pysqlbridge (Python TDS server, TLS), #temp tables",
        "rows": rows,
        "batch_rows": args.batch_rows,
        "batched_rows_per_second": ours_rate,
        "batched_hub_cpu_us_per_row": ours_cpu / rows as f64 * 1e6,
        "batched_server_cpu_us_per_row": ours_server_cpu / rows as f64 * 1e6,
        "baseline_insert_per_row_rows_per_second": base_rate,
        "baseline_hub_cpu_us_per_row": base_cpu / rows as f64 * 1e6,
        "baseline_server_cpu_us_per_row": base_server_cpu / rows as f64 * 1e6,
        "ratio_rows_per_second": ours_rate / base_rate,
        "staged_only_rows_per_second": rows as f64 / staged_s,
        "staged_only_hub_cpu_us_per_row": staged_cpu / rows as f64 * 1e6,
        "ratio_staged_only_rows_per_second": rows as f64 / staged_s / base_rate,
        "ratio_hub_cpu_per_row": if ours_cpu > 0.0 { base_cpu / ours_cpu } else { f64::NAN },
    }))
}

/// The in-memory target, noting when each event's row was written.
#[derive(Clone)]
struct Timed {
    inner: MemoryTarget,
    written: Arc<Mutex<Vec<(i64, Instant)>>>,
}

impl Target for Timed {
    async fn write(&mut self, batch: &[Write<'_>]) -> Result<(), SqlError> {
        self.inner.write(batch).await?;
        let now = Instant::now();
        let mut written = self.written.lock().unwrap_or_else(|p| p.into_inner());
        for part in batch {
            for row in part.rows {
                if let Some(Value::BigInt(seq)) = row.get(1) {
                    written.push((*seq, now));
                }
            }
        }
        Ok(())
    }
}

/// Delay from commit to written at 10,000 events/s, and what the sink kept up with.
async fn lag(seconds: u64, batch_rows: usize) -> anyhow::Result<serde_json::Value> {
    let dir = tempfile::tempdir()?;
    let durable = Arc::new(outpost_storage::DurableDb::open(dir.path())?);
    let log = outpost_hub::EventLog::start(durable, 4096, |_| {})?;
    let target = Timed {
        inner: MemoryTarget::default(),
        written: Arc::default(),
    };
    let sink = EventsSink::open(
        target.clone(),
        Table::events(),
        log.clone(),
        Floor::simple(),
        batch_rows,
    )?;
    let policy = RetryPolicy {
        backoff: outpost_actors::backoff::Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(2),
            multiplier: 2.0,
            jitter: 0.2,
        },
        blocked_retry: Duration::from_secs(60),
    };
    let running = tokio::spawn(outpost_hub::mssql::sink::run(
        sink,
        policy,
        log.subscribe_commits(),
    ));
    // 100 events every 10 ms: 10,000/s.
    let mut committed: Vec<Instant> = Vec::new();
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let total = seconds * 100;
    for round in 0..total {
        tick.tick().await;
        let first = round * 100 + 1;
        let events: Vec<Event> = (first..first + 100)
            .map(|seq| Event {
                seq,
                device: format!("egm-{:03}", seq % 500),
                class: EventClass::Money,
                wall_us: 1_796_032_800_000_000 + seq as i64 * 100,
                mono_us: 0,
                boot_id: 1,
                body: EventBody::Sas(SasEvent::Exception { code: 0x4F }),
            })
            .collect();
        log.commit("edge-bench", events, 0).await?;
        let at = Instant::now();
        committed.extend(std::iter::repeat_n(at, 100));
    }
    let offered_for = started.elapsed().as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs(60);
    let expected = committed.len();
    while target.written.lock().map(|w| w.len()).unwrap_or(0) < expected {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the sink did not catch up within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    running.abort();
    let written = target.written.lock().map(|w| w.clone()).unwrap_or_default();
    let mut millis: Vec<f64> = written
        .iter()
        .filter_map(|(seq, at)| {
            let committed_at = committed.get(usize::try_from(*seq).ok()?.checked_sub(1)?)?;
            Some(at.saturating_duration_since(*committed_at).as_secs_f64() * 1000.0)
        })
        .collect();
    millis.sort_by(f64::total_cmp);
    Ok(json!({
        "events": expected,
        "offered_events_per_second": expected as f64 / offered_for,
        "batch_rows": batch_rows,
        "commit_to_written_ms": {
            "p50": percentile(&millis, 0.50),
            "p99": percentile(&millis, 0.99),
            "max": millis.last().copied().unwrap_or(0.0),
        },
        "goal_p99_ms": 2_000,
    }))
}

pub async fn run(args: MssqlBenchArgs) -> anyhow::Result<()> {
    let rows = if args.quick { 600 } else { args.rows };
    let wan_rows = if args.quick { 100 } else { args.wan_rows };
    let seconds = if args.quick { 3 } else { args.seconds };
    let python = args
        .python
        .clone()
        .or_else(|| std::env::var_os("OUTPOST_PEERS_PYTHON").map(Into::into))
        .unwrap_or_else(|| "target/peers-venv/bin/python".into());
    let dir = tempfile::tempdir()?;
    let bridge = outpost_harness::sqlbridge::SqlBridge::start(
        &python,
        &dir.path().join("bridge"),
        "outpost",
        PASSWORD,
    )?;
    let wan = delaying_proxy(bridge.port, Duration::from_millis(args.wan_rtt_ms) / 2).await?;
    let mut across = wire(&args, &bridge, wan, wan_rows).await?;
    across["rtt_ms"] = json!(args.wan_rtt_ms);
    let report = json!({
        "bench": "mssql",
        "wire": wire(&args, &bridge, bridge.port, rows).await?,
        "wire_across_a_wan": across,
        "lag_at_10k_per_second": lag(seconds, args.batch_rows).await?,
    });
    let text = serde_json::to_string_pretty(&report)?;
    println!("{text}");
    if let Some(out) = &args.out {
        std::fs::write(out, format!("{text}\n"))?;
    }
    Ok(())
}
