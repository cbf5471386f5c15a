//! Outpost in the peer benchmark: a hub and an edge as processes (both sides durable), the
//! generator a synthetic device inside the edge (the same [`outpost_edge::Pacer`] schedule the
//! peers' publisher follows), the sink the hub's durable commit.
//!
//! Latency is read from the hub's `outpost_hub_event_delivery_seconds` (device append call →
//! durable commit at the hub) into the same buckets the peers' sinks fill.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use outpost_harness::harness::{
    Binaries, RunningSite, scrape, wait_edge_drained, wait_until_every,
};
use outpost_harness::site::{SiteLayout, SiteSpec};
use serde_json::json;

use super::latency::Buckets;
use super::peer::EVENT_BYTES;
use super::{Partition, Protocol, proc_memory};

fn synthetic(rate: f64, count: u64) -> String {
    format!(
        "[[devices]]\nkind = \"synthetic\"\nid = \"generator\"\nrate_per_second = {rate:.1}\npayload_bytes = {EVENT_BYTES}\nclass = \"money\"\ncount = {count}\n"
    )
}

async fn start(exe: &Binaries, dir: &Path, devices: &str) -> anyhow::Result<RunningSite> {
    let spec = SiteSpec::single("bench-edge", devices);
    Ok(RunningSite::start_with(exe.clone(), SiteLayout::prepare(dir, &spec)?).await?)
}

fn edge_pid(site: &RunningSite) -> Option<u32> {
    site.edges.first()?.as_ref()?.pid()
}

async fn metric(admin: SocketAddr, series: &str) -> f64 {
    scrape(admin, series).await.unwrap_or(0.0)
}

async fn committed(site: &RunningSite) -> f64 {
    metric(
        site.layout.hub_admin,
        "outpost_hub_committed_seq{edge=\"bench-edge\"}",
    )
    .await
}

/// How long after the drain the edge's memory is read again (what it kept, not what it was
/// still using).
pub const SETTLE: Duration = Duration::from_secs(5);

/// Edge RSS with no device: connected and idle.
pub async fn idle_rss(exe: &Binaries, dir: &Path) -> anyhow::Result<u64> {
    let site = start(exe, dir, "").await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss = edge_pid(&site).map_or(0, |pid| proc_memory(pid).rss);
    site.stop().await?;
    Ok(rss)
}

/// Accepted (outbox) and delivered (hub commit) events/s with the generator as fast as the outbox
/// takes it; the edge's peak RSS; disk bytes per delivered event on each side.
pub async fn throughput(
    exe: &Binaries,
    dir: &Path,
    seconds: f64,
) -> anyhow::Result<serde_json::Value> {
    let site = start(exe, dir, &synthetic(1_000_000.0, 0)).await?;
    let edge_admin = site.layout.edges[0].admin;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (a0, c0, t0) = (
        metric(edge_admin, "outpost_outbox_last_seq").await,
        committed(&site).await,
        Instant::now(),
    );
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    let (a1, c1, elapsed) = (
        metric(edge_admin, "outpost_outbox_last_seq").await,
        committed(&site).await,
        t0.elapsed().as_secs_f64(),
    );
    let memory = edge_pid(&site).map(proc_memory).unwrap_or_default();
    let hub_memory = site
        .hub
        .as_ref()
        .and_then(|hub| hub.pid())
        .map(proc_memory)
        .unwrap_or_default();
    let edge_disk = outpost_storage::dir_allocated_bytes(&site.layout.edges[0].data_dir);
    let center_disk = outpost_storage::dir_allocated_bytes(&site.layout.hub_data_dir);
    site.stop().await?;
    Ok(json!({
        "accepted_per_second": (a1 - a0) / elapsed,
        "delivered_per_second": (c1 - c0) / elapsed,
        "seconds": elapsed,
        "edge_rss_peak_bytes": memory.peak,
        "center_rss_peak_bytes": hub_memory.peak,
        "delivered": c1,
        "edge_disk_bytes_per_event": edge_disk as f64 / c1.max(1.0),
        "center_disk_bytes_per_event": center_disk as f64 / c1.max(1.0),
    }))
}

/// The hub's delivery histogram, as buckets.
async fn delivery_histogram(hub_admin: SocketAddr) -> Buckets {
    let Ok((200, body)) = outpost_process::admin::get(hub_admin, "/metrics").await else {
        return Buckets::default();
    };
    let cumulative: Vec<(f64, u64)> = body
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("outpost_hub_event_delivery_seconds_bucket{le=\"")?;
            let (le, value) = rest.split_once("\"} ")?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, value.trim().parse::<f64>().ok()? as u64))
        })
        .collect();
    Buckets::from_cumulative(&cumulative)
}

/// Latency at a fixed `rate` over `seconds`, the first second skipped.
pub async fn latency(
    exe: &Binaries,
    dir: &Path,
    rate: f64,
    seconds: f64,
) -> anyhow::Result<serde_json::Value> {
    let site = start(exe, dir, &synthetic(rate, 0)).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = delivery_histogram(site.layout.hub_admin).await;
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    let after = delivery_histogram(site.layout.hub_admin).await;
    site.stop().await?;
    Ok(after.since(&before).summary())
}

/// A `backlog`-event backlog built behind a partition of the link (at least `partition` long),
/// then delivered once it heals.
pub async fn drain(
    exe: &Binaries,
    dir: &Path,
    backlog: u64,
    partition: Duration,
) -> anyhow::Result<serde_json::Value> {
    let site = start(exe, dir, &synthetic(1_000_000.0, backlog)).await?;
    let cut = Partition::cut(site.layout.hub_link.port(), Protocol::Udp)?;
    let cut_at = Instant::now();
    let edge_admin = site.layout.edges[0].admin;
    wait_until_every(
        "the backlog to be built",
        Duration::from_secs(3600),
        Duration::from_millis(100),
        || async { metric(edge_admin, "outpost_outbox_last_seq").await as u64 >= backlog },
    )
    .await?;
    let built_seconds = cut_at.elapsed().as_secs_f64();
    tokio::time::sleep(partition.saturating_sub(cut_at.elapsed())).await;
    let before = committed(&site).await;
    let memory_behind = edge_pid(&site).map(proc_memory).unwrap_or_default();
    drop(cut);
    let healed = Instant::now();
    wait_until_every(
        "the backlog to drain",
        Duration::from_secs(3600),
        Duration::from_millis(20),
        || async { committed(&site).await as u64 >= backlog },
    )
    .await?;
    let drain_seconds = healed.elapsed().as_secs_f64();
    let memory = edge_pid(&site).map(proc_memory).unwrap_or_default();
    tokio::time::sleep(SETTLE).await;
    let settled = edge_pid(&site).map(proc_memory).unwrap_or_default();
    site.stop().await?;
    Ok(json!({
        "backlog": backlog,
        "partition_seconds": cut_at.elapsed().as_secs_f64() - drain_seconds,
        "backlog_build_seconds": built_seconds,
        "delivered_during_partition": before,
        "drain_seconds": drain_seconds,
        "drain_per_second": (backlog as f64 - before) / drain_seconds,
        // The phase waits until the hub committed the whole backlog.
        "acknowledged_not_delivered": 0,
        "edge_rss_bytes_with_backlog": memory_behind.rss,
        "edge_rss_bytes_after_drain": memory.rss,
        "edge_rss_bytes_settled": settled.rss,
        "edge_rss_peak_bytes": settled.peak,
    }))
}

/// `kill -9` of the edge half-way through `seconds` of full load, then a restart on the same
/// store; afterwards the generator stops (a graceful restart without it) and the edge drains.
/// Every sequence number the edge stored (acknowledged to the device) must be at the hub once.
pub async fn kill(exe: &Binaries, dir: &Path, seconds: f64) -> anyhow::Result<serde_json::Value> {
    let devices = synthetic(1_000_000.0, 0);
    let mut site = start(exe, dir, &devices).await?;
    tokio::time::sleep(Duration::from_secs_f64(seconds / 2.0)).await;
    site.kill9_edge(0).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    site.start_edge(0).await?;
    tokio::time::sleep(Duration::from_secs_f64(seconds / 2.0)).await;
    site.stop_edge(0).await?;
    let config = site.layout.edges[0].config.clone();
    let text = std::fs::read_to_string(&config)?;
    std::fs::write(&config, text.replace(&devices, ""))?;
    site.start_edge(0).await?;
    let last = wait_edge_drained(site.layout.edges[0].admin, Duration::from_secs(600)).await?;
    let hub_data = site.layout.hub_data_dir.clone();
    site.stop().await?;
    let durable = std::sync::Arc::new(outpost_storage::DurableDb::open(&hub_data.join("db"))?);
    let log = outpost_hub::EventLog::start(durable, 64, |_| {})?;
    let mut times = vec![0u8; last as usize + 1];
    let mut unexpected = 0u64;
    for stored in log.read("bench-edge", 0, usize::MAX)? {
        match times.get_mut(stored.event.seq as usize) {
            Some(t) => *t = t.saturating_add(1),
            None => unexpected += 1,
        }
    }
    let lost = times.iter().skip(1).filter(|&&t| t == 0).count();
    let duplicated: u64 = times.iter().map(|&t| u64::from(t.saturating_sub(1))).sum();
    Ok(json!({
        "acknowledged": last,
        "lost": lost,
        "duplicated": duplicated,
        "unexpected": unexpected,
    }))
}
