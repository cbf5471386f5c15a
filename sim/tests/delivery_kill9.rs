//! Real processes under `kill -9`: a steady stream of money events while the edge and the hub are
//! killed at random moments, ten times each. After the drain, the hub has every event the edge
//! accepted, each exactly once, in order, without gaps.

#![allow(clippy::unwrap_used)] // In tests a panic is a failed test with its message.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use outpost_harness::harness::{RunningSite, scrape, wait_edge_drained};
use outpost_harness::site::{SiteLayout, SiteSpec};
use outpost_hub::EventLog;
use outpost_storage::DurableDb;
use rand::{Rng, SeedableRng};

const DEVICES: &str = r#"
[[devices]]
kind = "synthetic"
id = "coin-in"
rate_per_second = 400.0
payload_bytes = 200
class = "money"
"#;

fn exe() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_outpost-sim"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_lost_or_committed_twice_when_edge_and_hub_are_killed() {
    let seed: u64 = std::env::var("OUTPOST_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    println!("chaos seed {seed} (replay with OUTPOST_CHAOS_SEED={seed})");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);

    let tmp = tempfile::tempdir().unwrap();
    let layout = SiteLayout::prepare(tmp.path(), &SiteSpec::single("edge-01", DEVICES)).unwrap();
    let edge_admin = layout.edges[0].admin;
    let hub_admin = layout.hub_admin;
    let mut site = RunningSite::start(exe(), layout).await.unwrap();

    for round in 0..20 {
        tokio::time::sleep(Duration::from_millis(rng.random_range(200..900))).await;
        if round % 2 == 0 {
            site.kill9_edge(0).await.unwrap();
            site.start_edge(0).await.unwrap();
        } else {
            site.kill9_hub().await.unwrap();
            site.start_hub().await.unwrap();
        }
    }

    // Drain: one last kill, then the edge comes back without its device and delivers its backlog.
    site.restart_edge_without(0, DEVICES).await.unwrap();
    wait_edge_drained(edge_admin, Duration::from_secs(60))
        .await
        .unwrap();
    let last = scrape(edge_admin, "outpost_outbox_last_seq").await.unwrap();
    let committed = scrape(hub_admin, "outpost_hub_committed_seq{edge=\"edge-01\"}")
        .await
        .unwrap();
    assert_eq!(committed, last, "hub committed seq equals edge last seq");
    assert_eq!(scrape(hub_admin, "outpost_hub_gaps_total").await, Some(0.0));
    let hub_data = site.layout.hub_data_dir.clone();
    assert!(site.stop().await.unwrap(), "both stopped cleanly");

    // The event log itself: every sequence from 1 to the last, once, in order.
    let durable = Arc::new(DurableDb::open(&hub_data.join("db")).unwrap());
    let log = EventLog::start(durable, 64, |_| {}).unwrap();
    let events = log.read("edge-01", 0, usize::MAX).unwrap();
    let seqs: Vec<u64> = events.iter().map(|e| e.event.seq).collect();
    let expected: Vec<u64> = (1..=last as u64).collect();
    assert_eq!(seqs.len(), expected.len(), "events committed");
    assert!(
        seqs == expected,
        "the log is 1..={last} without gaps or repeats"
    );
    assert!(last > 1000.0, "the stream ran: {last} events");
    println!("{last} events delivered exactly once through 10 edge and 10 hub kills");
}
