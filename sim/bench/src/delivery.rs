//! `outpost-sim bench delivery`: the delivery path measured on this machine, in one run, next to
//! the physical limit of its disk. Prints one JSON document.
//!
//! What it measures (each with the method in the JSON, so the numbers can be checked):
//! - `outbox_appends`: durable outbox appends/s of 200-byte events from many concurrent producers,
//!   against `raw_fdatasync`: 200-byte records written to a plain file, `fdatasync` per batch.
//! - `end_to_end`: events/s committed at the hub with both sides durable (real processes).
//! - `latency_*`: the hub's receive time (stamped on its batch before the commit) minus the
//!   device's append call at the edge, per event, at a fixed rate.
//! - `drain`: time for a reconnecting edge to deliver a backlog.
//! - `edge_rss_bytes`: the edge process's resident memory, idle and after the drain.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use outpost_edge::{Outbox, OutboxLimits};
use outpost_link::{EventBody, EventClass};
use serde_json::json;

use outpost_harness::harness::{RunningSite, scrape, wait_until_every};
use outpost_harness::site::{SiteLayout, SiteSpec};

/// Options of `bench delivery`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Smaller and shorter runs (a smoke test of the benchmark itself).
    #[arg(long)]
    pub quick: bool,
    /// Also write the JSON here.
    #[arg(long)]
    pub out: Option<std::path::PathBuf>,
    /// Directory for the benchmark's files (same disk as production data, ideally).
    #[arg(long)]
    pub dir: Option<std::path::PathBuf>,
    /// Events/s the end-to-end run offers (0: as fast as the edge accepts).
    #[arg(long, default_value_t = 60_000.0)]
    pub e2e_rate: f64,
}

const EVENT_BYTES: usize = 200;

/// Runs the delivery benchmark and prints its JSON.
pub async fn delivery(args: BenchArgs) -> anyhow::Result<()> {
    let exe = std::env::current_exe()?;
    let base = crate::bench_dir(args.dir.as_deref(), "outpost-bench-")?;
    let (seconds, backlog) = if args.quick {
        (1.0, 20_000u64)
    } else {
        (5.0, 1_000_000u64)
    };

    eprintln!("bench: outbox appends");
    let appends = outbox_appends(&base.path().join("outbox"), seconds, 512).await?;
    eprintln!("bench: raw fdatasync baseline");
    let raw_64 = raw_fdatasync(&base.path().join("raw64"), seconds, 64)?;
    let raw_512 = raw_fdatasync(&base.path().join("raw512"), seconds, 512)?;
    let outbox_rate = appends["events_per_second"].as_f64().unwrap_or(0.0);
    let raw_rate = raw_512["records_per_second"].as_f64().unwrap_or(1.0);

    settle().await;
    eprintln!("bench: end-to-end throughput");
    let e2e = end_to_end(&exe, &base.path().join("e2e"), seconds * 2.0, args.e2e_rate).await?;
    settle().await;
    eprintln!("bench: latency at 1k/s");
    let lat_1k = latency(&exe, &base.path().join("lat1k"), 1_000.0, seconds * 2.0).await?;
    settle().await;
    eprintln!("bench: latency at 10k/s");
    let lat_10k = latency(&exe, &base.path().join("lat10k"), 10_000.0, seconds * 2.0).await?;
    settle().await;
    eprintln!("bench: drain of a {backlog}-event backlog");
    let drain = drain(&exe, &base.path().join("drain"), backlog).await?;

    let report = json!({
        "machine": { "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0), "dir": base.path().display().to_string() },
        "event_bytes": EVENT_BYTES,
        "outbox_appends": appends,
        "raw_fdatasync_64_per_sync": raw_64,
        "raw_fdatasync_512_per_sync": raw_512,
        "outbox_vs_raw_512_ratio": outbox_rate / raw_rate,
        "end_to_end": e2e,
        "latency_at_1k_per_second": lat_1k,
        "latency_at_10k_per_second": lat_10k,
        "drain": drain,
    });
    let text = serde_json::to_string_pretty(&report)?;
    println!("{text}");
    if let Some(out) = &args.out {
        std::fs::write(out, format!("{text}\n"))?;
    }
    Ok(())
}

/// Lets the disk finish the previous phase's writeback, so it does not stall the next one.
async fn settle() {
    let _ = tokio::task::spawn_blocking(nix::unistd::sync).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// Many producers appending 200-byte money events for `seconds`.
async fn outbox_appends(
    dir: &Path,
    seconds: f64,
    producers: usize,
) -> anyhow::Result<serde_json::Value> {
    let limits = OutboxLimits {
        budget_bytes: 8 << 30,
        max_batch: 4096,
        compact_above_bytes: u64::MAX,
    };
    let (outbox, writer, _) = Outbox::open(dir, limits, |_| {})?;
    let count = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let tasks: Vec<_> = (0..producers)
        .map(|_| {
            let outbox = outbox.clone();
            let count = count.clone();
            tokio::spawn(async move {
                while Instant::now() < deadline {
                    let payload = vec![0x5a; EVENT_BYTES];
                    if outbox
                        .append("bench", EventClass::Money, EventBody::Synthetic { payload })
                        .await
                        .is_err()
                    {
                        return;
                    }
                    count.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let events = count.load(Ordering::Relaxed);
    let commits = outbox.commits();
    drop(outbox);
    tokio::task::spawn_blocking(move || writer.join()).await??;
    Ok(json!({
        "method": format!("{producers} concurrent producers, each awaiting durability before its next append"),
        "events": events,
        "seconds": elapsed,
        "events_per_second": events as f64 / elapsed,
        "commits": commits,
        "events_per_commit": events as f64 / commits.max(1) as f64,
    }))
}

/// The disk's limit: 200-byte records appended to a file, `fdatasync` after every `batch`.
pub(crate) fn raw_fdatasync(
    dir: &Path,
    seconds: f64,
    batch: usize,
) -> anyhow::Result<serde_json::Value> {
    std::fs::create_dir_all(dir)?;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("records"))?;
    let buffer = vec![0x5au8; EVENT_BYTES * batch];
    let started = Instant::now();
    let mut records = 0u64;
    let mut syncs = 0u64;
    while started.elapsed().as_secs_f64() < seconds {
        file.write_all(&buffer)?;
        file.sync_data()?;
        records += batch as u64;
        syncs += 1;
    }
    let elapsed = started.elapsed().as_secs_f64();
    Ok(json!({
        "method": format!("write {batch} records of {EVENT_BYTES} bytes, then fdatasync; repeat"),
        "batch": batch,
        "records_per_second": records as f64 / elapsed,
        "fdatasyncs_per_second": syncs as f64 / elapsed,
    }))
}

fn synthetic(id: &str, rate: f64, count: u64) -> String {
    format!(
        "[[devices]]\nkind = \"synthetic\"\nid = \"{id}\"\nrate_per_second = {rate:.1}\npayload_bytes = {EVENT_BYTES}\nclass = \"money\"\ncount = {count}\n"
    )
}

async fn committed(site: &RunningSite) -> f64 {
    let series = format!(
        "outpost_hub_committed_seq{{edge=\"{}\"}}",
        site.layout.edges[0].id
    );
    scrape(site.layout.hub_admin, &series).await.unwrap_or(0.0)
}

/// Committed events/s at the hub while a synthetic device produces as fast as the edge accepts.
async fn end_to_end(
    exe: &Path,
    dir: &Path,
    seconds: f64,
    rate: f64,
) -> anyhow::Result<serde_json::Value> {
    let offered = if rate > 0.0 { rate } else { 1_000_000.0 };
    let spec = SiteSpec::single("bench-edge", &synthetic("flood", offered, 0));
    let site = RunningSite::start(exe, SiteLayout::prepare(dir, &spec)?).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (c0, t0) = (committed(&site).await, Instant::now());
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    let (c1, elapsed) = (committed(&site).await, t0.elapsed().as_secs_f64());
    let edge_admin = site.layout.edges[0].admin;
    let depth = scrape(edge_admin, "outpost_outbox_depth_events")
        .await
        .unwrap_or(0.0);
    site.stop().await?;
    Ok(json!({
        "method": "hub and edge as processes on this machine, fsync on both sides; one synthetic money device offering `offered_per_second` (1e6 = as fast as the outbox accepts); committed sequence at the hub sampled over the window; a growing edge backlog means the offer was not sustained",
        "offered_per_second": offered,
        "events_per_second": (c1 - c0) / elapsed,
        "seconds": elapsed,
        "edge_backlog_at_end": depth,
    }))
}

/// The `p` quantile (0.0-1.0) of sorted values, nearest rank; 0 for none. The benchmarks share it.
pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// Per-event latency (the device's append call at the edge → the hub's receive stamp) at `rate`.
async fn latency(
    exe: &Path,
    dir: &Path,
    rate: f64,
    seconds: f64,
) -> anyhow::Result<serde_json::Value> {
    let spec = SiteSpec::single("bench-edge", &synthetic("steady", rate, 0));
    let layout = SiteLayout::prepare(dir, &spec)?;
    let hub_data = layout.hub_data_dir.clone();
    let edge_id = layout.edges[0].id.clone();
    let site = RunningSite::start(exe, layout).await?;
    tokio::time::sleep(Duration::from_secs_f64(seconds + 1.0)).await;
    site.stop().await?;
    let durable = Arc::new(outpost_storage::DurableDb::open(&hub_data.join("db"))?);
    let log = outpost_hub::EventLog::start(durable, 64, |_| {})?;
    let events = log.read(&edge_id, 0, usize::MAX)?;
    // Skip the first second (connection set-up) so the figures describe the steady state.
    let skip = rate as usize;
    let mut millis: Vec<f64> = events
        .iter()
        .skip(skip)
        .map(|e| (e.hub_received_us - e.event.wall_us) as f64 / 1000.0)
        .collect();
    millis.sort_by(f64::total_cmp);
    Ok(json!({
        "method": "synthetic device at a fixed rate (10 ms ticks); latency = the hub's receive stamp (before its commit) − the device's append call at the edge, same clock; first second skipped",
        "rate_per_second": rate,
        "events": millis.len(),
        "p50_ms": percentile(&millis, 0.50),
        "p99_ms": percentile(&millis, 0.99),
        "p999_ms": percentile(&millis, 0.999),
        "max_ms": percentile(&millis, 1.0),
    }))
}

/// A backlog built while the hub is down, then delivered when it comes back.
async fn drain(exe: &Path, dir: &Path, backlog: u64) -> anyhow::Result<serde_json::Value> {
    let spec = SiteSpec::single("bench-edge", &synthetic("backlog", 1_000_000.0, backlog));
    let layout = SiteLayout::prepare(dir, &spec)?;
    let edge_admin = layout.edges[0].admin;
    let outbox_dir = layout.edges[0].data_dir.join("outbox");
    let mut site = RunningSite::start(exe, layout).await?;
    site.kill9_hub().await?;
    let rss_idle = scrape(edge_admin, "process_resident_memory_bytes")
        .await
        .unwrap_or(0.0);
    let built = Instant::now();
    let seq_reaches = |series: &'static str| async move {
        scrape(edge_admin, series).await.unwrap_or(0.0) as u64 >= backlog
    };
    wait_until_every(
        "the backlog to be built",
        Duration::from_secs(600),
        Duration::from_millis(200),
        || seq_reaches("outpost_outbox_last_seq"),
    )
    .await?;
    let build_seconds = built.elapsed().as_secs_f64();
    let depth = scrape(edge_admin, "outpost_outbox_depth_events")
        .await
        .unwrap_or(0.0);
    let disk_full = outpost_storage::dir_bytes(&outbox_dir);
    let restarted = Instant::now();
    site.start_hub().await?;
    // The edge notices the hub is back when its old connection times out or is reset; then it
    // reconnects (backoff). Timed apart from the transfer itself.
    wait_until_every(
        "the edge to reconnect",
        Duration::from_secs(120),
        Duration::from_millis(10),
        || async { scrape(edge_admin, "outpost_uplink_connected").await == Some(1.0) },
    )
    .await?;
    let reconnect_seconds = restarted.elapsed().as_secs_f64();
    let started = Instant::now();
    wait_until_every(
        "the backlog to drain",
        Duration::from_secs(600),
        Duration::from_millis(20),
        || seq_reaches("outpost_outbox_acked_seq"),
    )
    .await?;
    let drain_seconds = started.elapsed().as_secs_f64();
    let rss_after = scrape(edge_admin, "process_resident_memory_bytes")
        .await
        .unwrap_or(0.0);
    let committed = committed(&site).await;
    // Give an empty, oversized outbox time to be compacted (a restart of the outbox actor).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let disk_after = outpost_storage::dir_bytes(&outbox_dir);
    let rss_settled = scrape(edge_admin, "process_resident_memory_bytes")
        .await
        .unwrap_or(0.0);
    let compactions = scrape(edge_admin, "outpost_outbox_compactions_total")
        .await
        .unwrap_or(0.0);
    site.stop().await?;
    Ok(json!({
        "method": "hub killed; edge builds the backlog; hub restarted; reconnect_seconds until the edge's session is back, then drain_seconds until its outbox is fully acknowledged",
        "reconnect_seconds": reconnect_seconds,
        "backlog_events": depth,
        "backlog_build_seconds": build_seconds,
        "drain_seconds": drain_seconds,
        "drain_events_per_second": depth / drain_seconds,
        "hub_committed_seq": committed,
        "edge_rss_bytes_idle": rss_idle,
        "edge_rss_bytes_after_drain": rss_after,
        "outbox_disk_bytes_full": disk_full,
        "outbox_disk_bytes_after_drain": disk_after,
        "edge_rss_bytes_3s_after_drain": rss_settled,
        "outbox_compactions": compactions,
    }))
}
