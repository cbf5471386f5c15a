//! `outpost-sim bench hub`: the hub's domain measured on this machine, in one run, each figure
//! next to a baseline. Prints one JSON document.
//!
//! - `replay`: events/s each projection replays from the log (`projections rebuild`), against
//!   reading and decoding the same log with nothing applied.
//! - `lag_at_10k_per_second`: commit → stored in the projection, per event, while the event log
//!   commits 10,000 events/s durably; each projection on its own thread as in the hub, against a
//!   projection that applies nothing.
//! - `device_list`: `GET /api/v1/devices?limit=10000` on a hub that knows 10,000 devices, p50/p99,
//!   against `GET /api/v1/edges`.
//! - `reconciliation`: `GET /api/v1/sites/all/days/{day}` for 1,000 machines × one gaming day of
//!   24 hourly intervals.
//! - `stream`: 100 live-stream subscribers while an edge delivers 2,000 events/s; delay from
//!   hub commit to each subscriber in the first and the last quarter of the run (no growth means
//!   nobody falls behind).

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use outpost_domain::StoredEvent;
use outpost_domain::projection::{self, Change, Poison, Projection, RestoreError};
use outpost_domain::site::Floor;
use outpost_link::{Event, EventBody, EventClass, MeterReading, SasEvent, TvEvent};
use serde_json::json;

use crate::delivery::percentile;
use outpost_harness::harness::{RunningSite, wait_until};
use outpost_harness::site::{SiteLayout, SiteSpec};

/// Options of `bench hub`.
#[derive(Debug, Clone, clap::Args)]
pub struct HubBenchArgs {
    /// Smaller and shorter runs (a smoke test of the benchmark itself).
    #[arg(long)]
    pub quick: bool,
    /// Also write the JSON here.
    #[arg(long)]
    pub out: Option<std::path::PathBuf>,
    /// Slot machines on the floor (one gaming day each).
    #[arg(long, default_value_t = 1_000)]
    pub machines: usize,
    /// Devices in all (the rest are TVs).
    #[arg(long, default_value_t = 10_000)]
    pub devices: usize,
    /// Events/s an edge delivers while the API and the stream are measured.
    #[arg(long, default_value_t = 200.0)]
    pub rate: f64,
}

const HOUR_US: i64 = 3_600_000_000;

/// The events of `machines` slot machines on `edge` over the 24 hours from `day_start_us`: per
/// hour a $20 bill, three games and a meter reading, so every interval reconciles.
fn floor_events(machines: usize, machine_base: usize, day_start_us: i64) -> Vec<(String, Event)> {
    let mut out = Vec::new();
    let mut seq = 0u64;
    for m in 0..machines {
        let device = format!("egm-{}", machine_base + m);
        let (mut coin_in, mut games, mut drop) = (0u64, 0u64, 0u64);
        for hour in 0..=24 {
            let t = day_start_us + hour * HOUR_US + (m as i64 % 60) * 1_000_000;
            let mut push = |body: SasEvent, at: i64| {
                seq += 1;
                out.push((
                    device.clone(),
                    Event {
                        seq,
                        device: device.clone(),
                        class: EventClass::Money,
                        wall_us: at,
                        mono_us: 0,
                        boot_id: 1,
                        body: EventBody::Sas(body),
                    },
                ))
            };
            if hour > 0 {
                drop += 2_000;
                push(SasEvent::Exception { code: 0x4A }, t - 50_000_000);
                for _ in 0..3 {
                    coin_in += 5;
                    games += 1;
                    push(SasEvent::Exception { code: 0x7E }, t - 40_000_000);
                    push(SasEvent::Exception { code: 0x7F }, t - 39_000_000);
                }
            }
            let meters = [(0x00, coin_in), (0x05, games), (0x24, drop), (0x0C, 100)]
                .iter()
                .map(|&(code, value)| MeterReading {
                    code,
                    value,
                    bytes: 4,
                })
                .collect();
            push(SasEvent::Meters { game: 0, meters }, t);
        }
    }
    out
}

/// One telemetry event for each of `tvs` TVs.
fn tv_events(tvs: usize, first_seq: u64, at: i64) -> Vec<(String, Event)> {
    (0..tvs)
        .map(|i| {
            let device = format!("tv-{i}");
            (
                device.clone(),
                Event {
                    seq: first_seq + i as u64,
                    device,
                    class: EventClass::Telemetry,
                    wall_us: at,
                    mono_us: 0,
                    boot_id: 1,
                    body: EventBody::Tv(TvEvent::Telemetry {
                        answers: true,
                        screen_on: Some(true),
                        volume: Some(7),
                        input: Some("hdmi1".into()),
                        app: Some("com.example.player".into()),
                        ethernet: "up".into(),
                    }),
                },
            )
        })
        .collect()
}

/// Writes a floor into the hub database at `db_dir`: `machines` machines on edges of 100, one
/// gaming day each, and `devices - machines` TVs on one more edge. Returns events written.
pub(crate) async fn write_floor(
    db_dir: &Path,
    machines: usize,
    devices: usize,
    day_start_us: i64,
) -> anyhow::Result<usize> {
    let durable = Arc::new(outpost_storage::DurableDb::open(db_dir)?);
    let log = outpost_hub::EventLog::start(durable.clone(), 8192, |_| {})?;
    let mut written = 0;
    for edge_index in 0..machines.div_ceil(100) {
        let edge = format!("floor-{edge_index:02}");
        let count = (machines - edge_index * 100).min(100);
        let events = floor_events(count, edge_index * 100, day_start_us);
        for chunk in events.chunks(4096) {
            let batch: Vec<Event> = chunk.iter().map(|(_, e)| e.clone()).collect();
            written += batch.len();
            log.commit(&edge, batch, 0).await?;
        }
    }
    let tvs = devices.saturating_sub(machines);
    let events = tv_events(tvs, 1, day_start_us);
    for chunk in events.chunks(4096) {
        let batch: Vec<Event> = chunk.iter().map(|(_, e)| e.clone()).collect();
        written += batch.len();
        log.commit("screens", batch, 0).await?;
    }
    durable.commit()?;
    Ok(written)
}

/// A projection wrapper that records, when its writes are handed over for storing, how long
/// each event has waited since the hub committed it.
struct Timed {
    inner: Box<dyn Projection>,
    pending: Vec<i64>,
    lags_ms: Arc<Mutex<Vec<f64>>>,
}

impl Projection for Timed {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn restore(&mut self, key: &[u8], value: &[u8]) -> Result<(), RestoreError> {
        self.inner.restore(key, value)
    }
    fn apply(
        &mut self,
        edge: &str,
        missing: u64,
        event: &StoredEvent,
        changes: &mut Vec<Change>,
    ) -> Result<(), Poison> {
        self.pending.push(event.hub_received_us);
        self.inner.apply(edge, missing, event, changes)
    }
    fn flush(&mut self, writes: &mut Vec<(Vec<u8>, Vec<u8>)>) {
        self.inner.flush(writes);
        let now = outpost_process::clock::unix_us();
        let mut lags = self
            .lags_ms
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for t in self.pending.drain(..) {
            lags.push((now - t) as f64 / 1000.0);
        }
    }
}

/// Applies nothing: the baseline (reading the log and storing a cursor).
struct Nothing(&'static str);

impl Projection for Nothing {
    fn name(&self) -> &'static str {
        self.0
    }
    fn restore(&mut self, _: &[u8], _: &[u8]) -> Result<(), RestoreError> {
        Ok(())
    }
    fn apply(
        &mut self,
        _: &str,
        _: u64,
        _: &StoredEvent,
        _: &mut Vec<Change>,
    ) -> Result<(), Poison> {
        Ok(())
    }
    fn flush(&mut self, _: &mut Vec<(Vec<u8>, Vec<u8>)>) {}
}

fn lag_figures(mut lags: Vec<f64>) -> serde_json::Value {
    lags.sort_by(f64::total_cmp);
    json!({
        "events": lags.len(),
        "p50_ms": percentile(&lags, 0.50),
        "p99_ms": percentile(&lags, 0.99),
        "max_ms": percentile(&lags, 1.0),
    })
}

/// Projection lag while the log commits `rate` events/s for `seconds`.
async fn lag(dir: &Path, rate: u64, seconds: u64) -> anyhow::Result<serde_json::Value> {
    let durable = Arc::new(outpost_storage::DurableDb::open(dir)?);
    let log = outpost_hub::EventLog::start(durable.clone(), 8192, |_| {})?;
    let db = durable.db().clone();
    let floor = Floor::simple();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut threads = Vec::new();
    let mut results = Vec::new();
    let names: Vec<&'static str> = projection::NAMES
        .iter()
        .copied()
        .chain(["baseline"])
        .collect();
    for name in names {
        let lags = Arc::new(Mutex::new(Vec::new()));
        results.push((name, lags.clone()));
        let inner: Box<dyn Projection> = match projection::by_name(name, &floor) {
            Some(p) => p,
            None => Box::new(Nothing("baseline")),
        };
        let mut runner = outpost_hub::ProjectionRunner::open(
            &db,
            Box::new(Timed {
                inner,
                pending: Vec::new(),
                lags_ms: lags,
            }),
            None,
        )?;
        let log = log.clone();
        let stop = stop.clone();
        let mut commits = log.subscribe_commits();
        let handle = tokio::runtime::Handle::current();
        threads.push(std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // As the hub's actor: step on every commit.
                let _ = handle.block_on(async {
                    tokio::time::timeout(Duration::from_millis(250), commits.changed()).await
                });
                if let Err(err) = runner.step(&log) {
                    eprintln!("bench: projection {name}: {err}");
                    return;
                }
            }
        }));
    }
    // 10 ms ticks of rate/100 events: SAS exceptions and meter readings of 100 machines.
    let per_tick = (rate / 100).max(1) as usize;
    let mut seq = 0u64;
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    while started.elapsed() < Duration::from_secs(seconds) {
        tick.tick().await;
        let now = outpost_process::clock::unix_us();
        let batch: Vec<Event> = (0..per_tick)
            .map(|i| {
                seq += 1;
                let body = if seq.is_multiple_of(50) {
                    SasEvent::Meters {
                        game: 0,
                        meters: vec![MeterReading {
                            code: 0x00,
                            value: seq,
                            bytes: 4,
                        }],
                    }
                } else {
                    SasEvent::Exception { code: 0x7E }
                };
                Event {
                    seq,
                    device: format!("egm-{}", i % 100),
                    class: EventClass::Money,
                    wall_us: now,
                    mono_us: 0,
                    boot_id: 1,
                    body: EventBody::Sas(body),
                }
            })
            .collect();
        log.commit("live", batch, 0).await?;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in threads {
        let _ = tokio::task::spawn_blocking(move || t.join()).await;
    }
    let mut out = serde_json::Map::new();
    out.insert(
        "method".into(),
        json!(format!("{rate} SAS events/s committed durably in 10 ms ticks for {seconds} s; each projection on its own thread stepping on every commit; lag = stored in the projection − committed to the log, per event; baseline applies nothing")),
    );
    for (name, lags) in results {
        let lags = std::mem::take(
            &mut *lags
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        out.insert(name.into(), lag_figures(lags));
    }
    Ok(serde_json::Value::Object(out))
}

pub(crate) async fn timed_get(
    site: &RunningSite,
    path: &str,
    times: usize,
) -> anyhow::Result<Vec<f64>> {
    timed_gets(site, &[path], times).await
}

/// Times GETting `paths` one after the other (as a page opening), `times` times; sorted ms.
pub(crate) async fn timed_gets(
    site: &RunningSite,
    paths: &[&str],
    times: usize,
) -> anyhow::Result<Vec<f64>> {
    let mut ms = Vec::with_capacity(times);
    for _ in 0..times {
        let started = Instant::now();
        for path in paths {
            let (status, _) = site.api("GET", path, "").await?;
            anyhow::ensure!(status == 200, "GET {path}: {status}");
        }
        ms.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    ms.sort_by(f64::total_cmp);
    Ok(ms)
}

/// Delay from hub commit to each of `subscribers` SSE clients while events flow.
pub(crate) async fn stream_delays(
    site: &RunningSite,
    subscribers: usize,
    seconds: u64,
) -> anyhow::Result<serde_json::Value> {
    outpost_process::install_crypto_provider();
    let client = reqwest::Client::new();
    let delays: Arc<Mutex<Vec<(f64, f64)>>> = Arc::default();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..subscribers {
        let mut response = client
            .get(format!(
                "http://{}/api/v1/stream?kinds=event",
                site.layout.hub_api
            ))
            .bearer_auth(&site.layout.api_token)
            .send()
            .await?;
        let delays = delays.clone();
        tasks.push(tokio::spawn(async move {
            let mut buffer = String::new();
            while started.elapsed() < Duration::from_secs(seconds) {
                let Ok(Ok(Some(chunk))) =
                    tokio::time::timeout(Duration::from_secs(1), response.chunk()).await
                else {
                    continue;
                };
                buffer.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = buffer.find("\n\n") {
                    let block: String = buffer.drain(..end + 2).collect();
                    let Some(data) = block.lines().find_map(|l| l.strip_prefix("data:")) else {
                        continue;
                    };
                    let Ok(value) = serde_json::from_str::<serde_json::Value>(data.trim()) else {
                        continue;
                    };
                    let Some(received) = value["received"]
                        .as_str()
                        .and_then(|t| outpost_domain::calendar::parse_rfc3339(t).ok())
                    else {
                        continue;
                    };
                    let now = outpost_process::clock::unix_us();
                    delays
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .push((
                            started.elapsed().as_secs_f64(),
                            (now - received) as f64 / 1000.0,
                        ));
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let all = std::mem::take(
        &mut *delays
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    let quarter = seconds as f64 / 4.0;
    let window = |from: f64, to: f64| {
        let mut ms: Vec<f64> = all
            .iter()
            .filter(|(t, _)| *t >= from && *t < to)
            .map(|(_, d)| *d)
            .collect();
        ms.sort_by(f64::total_cmp);
        json!({"items": ms.len(), "p50_ms": percentile(&ms, 0.5), "p99_ms": percentile(&ms, 0.99), "max_ms": percentile(&ms, 1.0)})
    };
    Ok(json!({
        "method": format!("{subscribers} SSE subscribers of every event while a synthetic device delivers; delay = arrival at the subscriber − hub commit (the event's `received`)"),
        "subscribers": subscribers,
        "first_quarter": window(quarter * 0.2, quarter),
        "last_quarter": window(quarter * 3.0, quarter * 4.0),
    }))
}

/// Runs the hub benchmark and prints its JSON.
pub async fn run(args: HubBenchArgs) -> anyhow::Result<()> {
    let exe = std::env::current_exe()?;
    let base = tempfile::Builder::new()
        .prefix("outpost-bench-hub-")
        .tempdir()?;
    let (machines, devices, lag_seconds, subscribers, stream_seconds) = if args.quick {
        (100, 500, 2, 10, 4)
    } else {
        (args.machines, args.devices.max(args.machines), 10, 100, 12)
    };
    // Yesterday's gaming day (UTC, from 06:00: the default calendar).
    let calendar = outpost_domain::calendar::Calendar::new("UTC", 6)?;
    let today = calendar.gaming_day(outpost_process::clock::unix_us());
    let day = today.yesterday()?;
    let (day_start, _) = calendar.day_bounds(day);

    let rate = args.rate;
    let spec = SiteSpec::single(
        "edge-01",
        &format!(
            "[[devices]]\nkind = \"synthetic\"\nid = \"ticker\"\nrate_per_second = {rate:.1}\npayload_bytes = 200\nclass = \"telemetry\"\n"
        ),
    );
    let layout = SiteLayout::prepare(&base.path().join("site"), &spec)?;
    let db_dir = layout.hub_data_dir.join("db");
    std::fs::create_dir_all(&db_dir)?;
    eprintln!(
        "bench: writing {machines} machines × one gaming day and {} TVs",
        devices - machines
    );
    let events = write_floor(&db_dir, machines, devices, day_start).await?;

    eprintln!("bench: replaying {events} events");
    let mut replay = serde_json::Map::new();
    {
        let db = outpost_storage::DurableDb::open(&db_dir)?;
        let floor = Floor::simple();
        let started = Instant::now();
        let offline_db = db.db().clone();
        let mut read = 0usize;
        // Baseline: read and decode every event, apply nothing.
        let marks: Vec<(String, u64)> = offline_db
            .scan_prefix(b"h")
            .filter_map(Result::ok)
            .map(|(k, v)| {
                let seq = v.as_ref().try_into().map(u64::from_be_bytes).unwrap_or(0);
                (String::from_utf8_lossy(&k[1..]).into_owned(), seq)
            })
            .collect();
        for (edge, _) in &marks {
            let mut from = 1;
            loop {
                let page = outpost_hub::read_events(&offline_db, edge, from, 4096)?;
                let Some(last) = page.last() else { break };
                from = last.event.seq + 1;
                read += page.len();
            }
        }
        let baseline = read as f64 / started.elapsed().as_secs_f64();
        replay.insert(
            "baseline_read_events_per_second".into(),
            json!(baseline.round()),
        );
        for name in projection::NAMES {
            let started = Instant::now();
            let done = outpost_hub::rebuild_projection(db.db(), name, &floor)?;
            let rate = done.events as f64 / started.elapsed().as_secs_f64();
            // Again: a rebuild of a rebuilt projection must store the same bytes.
            let again = outpost_hub::rebuild_projection(db.db(), name, &floor)?;
            replay.insert(
                name.into(),
                json!({"events": done.events, "events_per_second": rate.round(), "vs_baseline": (rate / baseline * 100.0).round() / 100.0, "second_rebuild_identical": again.before == again.after}),
            );
        }
        db.commit()?;
    }

    eprintln!("bench: projection lag at 10k/s");
    let lag = lag(&base.path().join("lag"), 10_000, lag_seconds).await?;

    eprintln!("bench: a hub with {devices} devices");
    let site = RunningSite::start(&exe, layout).await?;
    wait_until("the hub to know its devices", Duration::from_secs(120), || async {
        matches!(site.api("GET", "/api/v1/devices?limit=1", "").await, Ok((200, text)) if text.contains(&format!("\"total\":{}", devices)) || text.contains(&format!("\"total\":{}", devices + 1)))
    })
    .await?;
    let list = timed_get(
        &site,
        "/api/v1/devices?limit=10000",
        if args.quick { 10 } else { 100 },
    )
    .await?;
    let edges = timed_get(&site, "/api/v1/edges", if args.quick { 10 } else { 100 }).await?;
    let day_path = format!("/api/v1/sites/all/days/{day}");
    let recon = timed_get(&site, &day_path, 5).await?;
    let (_, text) = site.api("GET", &day_path, "").await?;
    let report: serde_json::Value = serde_json::from_str(&text)?;
    eprintln!("bench: {subscribers} live-stream subscribers");
    let stream = stream_delays(&site, subscribers, stream_seconds).await?;
    site.stop().await?;

    let result = json!({
        "machine": "this machine: 2 cores; generator, hub and clients share them",
        "replay": replay,
        "lag_at_10k_per_second": lag,
        "device_list": {
            "method": format!("GET /api/v1/devices?limit=10000 on a hub that knows {devices} devices (with an edge delivering {rate} events/s); baseline GET /api/v1/edges"),
            "p50_ms": percentile(&list, 0.5),
            "p99_ms": percentile(&list, 0.99),
            "baseline_p99_ms": percentile(&edges, 0.99),
        },
        "reconciliation": {
            "method": format!("GET {day_path}: {machines} machines × 24 hourly intervals, every machine reconciled"),
            "best_s": percentile(&recon, 0.0) / 1000.0,
            "worst_s": percentile(&recon, 1.0) / 1000.0,
            "machines": report["machines"].as_array().map_or(0, Vec::len),
            "balanced": report["balanced"],
            "discrepancies": report["discrepancies"],
        },
        "stream": stream,
    });
    let text = serde_json::to_string_pretty(&result)?;
    println!("{text}");
    if let Some(out) = args.out {
        std::fs::write(out, text)?;
    }
    Ok(())
}
