//! A hub that dies without a word (`kill -9`) and comes back is noticed by its edges at once: the
//! restarted hub answers their packets with a QUIC stateless reset (same reset key), so they do not
//! wait for their idle timeout.

#![allow(clippy::unwrap_used)] // In tests a panic is a failed test with its message.

use std::path::Path;
use std::time::{Duration, Instant};

use outpost_harness::harness::{RunningSite, scrape, wait_until_every};
use outpost_harness::site::{SiteLayout, SiteSpec};

const DEVICES: &str = r#"
[[devices]]
kind = "synthetic"
id = "syn-1"
rate_per_second = 200.0
payload_bytes = 100
class = "money"
"#;

const SERIES: &str = "outpost_hub_committed_seq{edge=\"edge-01\"}";

/// A hub and an edge that has been streaming for a second.
async fn streaming_site(dir: &Path) -> RunningSite {
    let layout = SiteLayout::prepare(dir, &SiteSpec::single("edge-01", DEVICES)).unwrap();
    let site = RunningSite::start(Path::new(env!("CARGO_BIN_EXE_outpost-sim")), layout)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    site
}

/// The hub's committed sequence for edge-01 once the edge is gone: its session closed and the
/// mark unchanged across two scrapes 300 ms apart (a batch the hub received before the edge left
/// can still be committing when the edge's process has exited; CI once read 205 then saw 206).
async fn settled_committed_seq(site: &RunningSite) -> f64 {
    let admin = site.layout.hub_admin;
    wait_until_every(
        "the hub to see edge-01 gone",
        Duration::from_secs(10),
        Duration::from_millis(20),
        || async {
            scrape(admin, "outpost_hub_edge_connected{edge=\"edge-01\"}").await == Some(0.0)
        },
    )
    .await
    .unwrap();
    let mut last = scrape(admin, SERIES).await.unwrap();
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = scrape(admin, SERIES).await.unwrap();
        if now == last {
            return now;
        }
        last = now;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_resumes_within_seconds_after_the_hub_is_killed_and_restarted() {
    let tmp = tempfile::tempdir().unwrap();
    let series = SERIES;
    let mut site = streaming_site(tmp.path()).await;
    site.kill9_hub().await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    site.start_hub().await.unwrap();
    let restarted = Instant::now();
    let before = scrape(site.layout.hub_admin, series).await.unwrap_or(0.0);
    // The idle timeout is 10 s; well under it means the reset worked.
    wait_until_every(
        "the edge to resume (within 5 s)",
        Duration::from_secs(5),
        Duration::from_millis(20),
        || async { scrape(site.layout.hub_admin, series).await.unwrap_or(0.0) > before },
    )
    .await
    .unwrap();
    println!("resumed {:?} after the restart", restarted.elapsed());
    assert!(site.stop().await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_hub_exports_each_edges_committed_sequence_before_the_edge_is_back() {
    let tmp = tempfile::tempdir().unwrap();
    let series = SERIES;
    let mut site = streaming_site(tmp.path()).await;
    site.stop_edge(0).await.unwrap();
    let committed = settled_committed_seq(&site).await;
    assert!(committed > 0.0);
    site.kill9_hub().await.unwrap();
    site.start_hub().await.unwrap();
    assert_eq!(
        scrape(site.layout.hub_admin, series).await,
        Some(committed),
        "the stored high-water mark, with the edge still away"
    );
    assert!(site.stop().await.unwrap());
}
