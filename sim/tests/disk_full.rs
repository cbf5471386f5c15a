//! A disk that fills up is back-pressure, not a crash loop: the edge's data directory is a 24 MiB
//! tmpfs, a money stream of 1,500-byte events offers 3 MB/s and the hub is away. The outbox stops
//! at the budget the disk allows (`outpost_outbox_budget_bytes`), money waits with its device
//! unacknowledged, the outbox never fails, the disk is never full; when the hub comes back the
//! edge delivers everything and goes on, and the hub holds `1..=last` exactly once.
//!
//! Needs root (mount); skipped with a message otherwise. CI runs as root.

#![allow(clippy::unwrap_used)] // In tests a panic is a failed test with its message.

use std::path::Path;
use std::time::Duration;

use outpost_harness::harness::{RunningSite, scrape, wait_edge_drained, wait_until};
use outpost_harness::power_cut::{CutDisk, SmallDisk};
use outpost_harness::site::{SiteLayout, SiteSpec};

const DEVICES: &str = r#"
[[devices]]
kind = "synthetic"
id = "note-in"
rate_per_second = 2000.0
payload_bytes = 1500
class = "money"
"#;

/// Whether any outbox restart was counted.
async fn outbox_restarts(admin: std::net::SocketAddr) -> f64 {
    let (_, metrics) = outpost_process::admin::get(admin, "/metrics")
        .await
        .unwrap();
    metrics
        .lines()
        .filter(|l| l.starts_with("outpost_actor_restarts_total") && l.contains("outbox"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>()
        + 0.0 // a sum of nothing is -0.0
}

fn free_bytes(dir: &Path) -> u64 {
    let fs = nix::sys::statvfs::statvfs(dir).unwrap();
    fs.blocks_available() * fs.fragment_size()
}

/// One edge running `devices` with its data directory on a 24 MiB tmpfs, and a hub (neither
/// started). `None`, and SKIPPED said, without the privileges to mount. Fields drop in order, so
/// the tmpfs is unmounted before the directory under it is removed.
struct SmallDiskSite {
    _disk: SmallDisk,
    layout: SiteLayout,
    edge: std::net::SocketAddr,
    hub: std::net::SocketAddr,
    data: std::path::PathBuf,
    tmp: tempfile::TempDir,
}

fn small_disk_site(devices: &str) -> Option<SmallDiskSite> {
    if let Err(e) = CutDisk::check_privileges() {
        println!("SKIPPED: {e}");
        return None;
    }
    let tmp = tempfile::tempdir().unwrap();
    let layout = SiteLayout::prepare(tmp.path(), &SiteSpec::single("edge-01", devices)).unwrap();
    let data = layout.edges[0].data_dir.clone();
    Some(SmallDiskSite {
        _disk: SmallDisk::mount(&data, 24).unwrap(),
        edge: layout.edges[0].admin,
        hub: layout.hub_admin,
        layout,
        data,
        tmp,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_makes_money_wait_and_the_edge_delivers_all_once_the_hub_is_back() {
    let Some(small) = small_disk_site(DEVICES) else {
        return;
    };
    let (edge, hub, data, layout) = (small.edge, small.hub, small.data.clone(), small.layout);
    let check = std::process::Command::new(env!("CARGO_BIN_EXE_outpost-sim"))
        .args(["edge", "config", "check"])
        .arg(&layout.edges[0].config)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "{said}");
    assert!(
        said.contains("warning: outbox.budget_bytes is 268435456 but the file system"),
        "config check says the budget is more than the disk: {said}"
    );
    let mut site = RunningSite::stopped(Path::new(env!("CARGO_BIN_EXE_outpost-sim")), layout);
    site.start_edge(0).await.unwrap();

    wait_until(
        "money to wait for room",
        Duration::from_secs(60),
        || async {
            scrape(edge, "outpost_outbox_waiting_appends")
                .await
                .is_some_and(|w| w > 0.0)
        },
    )
    .await
    .unwrap();
    // Stay full for a while: nothing fails, the disk keeps room.
    let mut least_free = u64::MAX;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        least_free = least_free.min(free_bytes(&data));
        assert!(
            scrape(edge, "outpost_outbox_last_seq").await.is_some(),
            "the edge is up"
        );
    }
    let budget = scrape(edge, "outpost_outbox_budget_bytes").await.unwrap();
    let stored = scrape(edge, "outpost_outbox_bytes").await.unwrap();
    let stored_seq = scrape(edge, "outpost_outbox_last_seq").await.unwrap();
    println!(
        "full: budget {budget} bytes (configured 268435456), stored {stored} bytes in {stored_seq} \
         events, least free {least_free} bytes"
    );
    assert!(
        budget < 24.0 * 1024.0 * 1024.0,
        "the budget follows the disk: {budget}"
    );
    assert!(
        stored <= budget,
        "stored {stored} within the budget {budget}"
    );
    assert!(least_free > 0, "the disk never filled up");
    assert_eq!(outbox_restarts(edge).await, 0.0, "the outbox never failed");
    assert_eq!(
        scrape(edge, "outpost_storage_open_failed{store=\"outbox\"}").await,
        Some(0.0)
    );

    // Catch up at full speed while the device goes on offering 3 MB/s: sled's files churn
    // hardest here, and the disk still never fills.
    site.start_hub().await.unwrap();
    let catch_up = std::time::Instant::now();
    let mut least_free_catching_up = u64::MAX;
    loop {
        least_free_catching_up = least_free_catching_up.min(free_bytes(&data));
        let committed = scrape(hub, "outpost_hub_committed_seq{edge=\"edge-01\"}").await;
        if committed.is_some_and(|c| c >= stored_seq + 12_000.0) {
            break;
        }
        assert!(
            catch_up.elapsed() < Duration::from_secs(90),
            "the backlog and 12,000 more reach the hub within 90 s (at {committed:?})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "caught up and 12,000 more in {:.1} s, least free {least_free_catching_up} bytes",
        catch_up.elapsed().as_secs_f64()
    );
    assert!(least_free_catching_up > 0, "the disk never filled up");
    assert_eq!(outbox_restarts(edge).await, 0.0, "the outbox never failed");

    // Drain without the device and check the log.
    site.restart_edge_without(0, DEVICES).await.unwrap();
    let last = wait_edge_drained(edge, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(
        scrape(hub, "outpost_hub_committed_seq{edge=\"edge-01\"}").await,
        Some(last as f64)
    );
    assert_eq!(
        scrape(hub, "outpost_hub_missing_events_total").await,
        Some(0.0)
    );
    assert_eq!(outbox_restarts(edge).await, 0.0);
    println!("delivered {last} events, none lost");
    assert!(site.stop().await.unwrap());
}

/// The outbox's files take more than its stored bytes, and each recovery after a `kill -9` in the
/// middle of delivery leaves more (sled does not reuse every segment): before the floor, eight
/// kills in 20 s took a 24 MiB disk to 0 bytes free and the edge could never open its outbox
/// again. The floor stops admitting while the disk is under its reserve and compacts once all is
/// delivered, so every restart opens, and once delivered the disk has its reserve back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_killed_again_and_again_while_it_delivers_on_a_small_disk_always_opens_again() {
    let Some(small) = small_disk_site(DEVICES) else {
        return;
    };
    let (edge, hub, data, layout) = (small.edge, small.hub, small.data.clone(), small.layout);
    let mut site = RunningSite::stopped(Path::new(env!("CARGO_BIN_EXE_outpost-sim")), layout);
    site.start_edge(0).await.unwrap();
    wait_until("a full outbox", Duration::from_secs(60), || async {
        scrape(edge, "outpost_outbox_waiting_appends")
            .await
            .is_some_and(|w| w > 0.0)
    })
    .await
    .unwrap();
    site.start_hub().await.unwrap();

    let outbox_bytes = || outpost_storage::dir_bytes(&data.join("outbox"));
    // Compactions of each edge process, read before it is killed (the counter is per process).
    let compactions = || async {
        scrape(edge, "outpost_outbox_compactions_total")
            .await
            .unwrap_or(0.0)
    };
    let (mut grew_to, mut compacted, mut least_free) = (0u64, 0.0, u64::MAX);
    for round in 0..16u64 {
        tokio::time::sleep(Duration::from_millis(700 + (round % 4) * 333)).await;
        least_free = least_free.min(free_bytes(&data));
        grew_to = grew_to.max(outbox_bytes());
        compacted += compactions().await;
        site.kill9_edge(0).await.unwrap();
        let opened = site.start_edge(0).await;
        assert!(opened.is_ok(), "round {round}: {opened:?}");
    }
    println!(
        "16 kills: the files grew to {grew_to} bytes, least free {least_free} bytes, \
         {compacted} compactions counted before the kills"
    );
    assert!(least_free > 0, "the disk never filled up");

    site.restart_edge_without(0, DEVICES).await.unwrap();
    let last = wait_edge_drained(edge, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(
        scrape(hub, "outpost_hub_committed_seq{edge=\"edge-01\"}").await,
        Some(last as f64)
    );
    assert_eq!(
        scrape(hub, "outpost_hub_missing_events_total").await,
        Some(0.0),
        "nothing the edge acknowledged was lost"
    );
    // However the kills fell, a delivered outbox gives the disk its reserve back (compacting if
    // it must).
    let size = {
        let fs = nix::sys::statvfs::statvfs(&data).unwrap();
        fs.blocks() * fs.fragment_size()
    };
    let reserve = outpost_edge::disk_reserve_bytes(size);
    let room = wait_until("the reserve back", Duration::from_secs(60), || async {
        free_bytes(&data) >= reserve
    })
    .await;
    assert!(
        room.is_ok(),
        "the delivered outbox left {} bytes free, under the reserve of {reserve} (files {} bytes)",
        free_bytes(&data),
        outbox_bytes()
    );
    println!("delivered {last} events, none lost; least free {least_free} bytes");
    assert!(site.stop().await.unwrap());
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(25)..].join("\n")
}

/// Writes zeros into `path` until the file system says it is full.
fn fill(path: &Path) -> u64 {
    use std::io::Write;
    let mut file = std::fs::File::create(path).unwrap();
    let block = vec![0u8; 64 * 1024];
    let mut written = 0;
    while file.write_all(&block).is_ok() {
        written += block.len() as u64;
    }
    let _ = file.sync_all();
    written
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disk_filled_by_someone_else_stops_the_money_not_the_edge_and_it_recovers() {
    let devices = DEVICES.replace("rate_per_second = 2000.0", "rate_per_second = 300.0");
    let Some(small) = small_disk_site(&devices) else {
        return;
    };
    let (edge, hub, data, layout) = (small.edge, small.hub, small.data.clone(), small.layout);
    let tmp = &small.tmp;
    let mut site = RunningSite::start(Path::new(env!("CARGO_BIN_EXE_outpost-sim")), layout)
        .await
        .unwrap();
    let committed = || async {
        scrape(hub, "outpost_hub_committed_seq{edge=\"edge-01\"}")
            .await
            .unwrap_or(0.0)
    };
    wait_until("events at the hub", Duration::from_secs(30), || async {
        committed().await > 500.0
    })
    .await
    .unwrap();

    // Another program fills the disk.
    let ballast = data.join("ballast");
    let filled = fill(&ballast);
    println!("ballast of {filled} bytes; free now {}", free_bytes(&data));
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert!(
        scrape(edge, "outpost_outbox_last_seq").await.is_some(),
        "the edge is up while the disk is full; its log ends:\n{}",
        log_tail(&tmp.path().join("edge-01.log"))
    );
    let stalled = committed().await;

    // Either the floor saw the disk fill first (nothing more admitted), or a commit met `ENOSPC`
    // first and the outbox waits to open again; both say so.
    let below_reserve = scrape(edge, "outpost_outbox_disk_below_reserve").await;
    let open_failed = scrape(edge, "outpost_storage_open_failed{store=\"outbox\"}").await;
    assert!(
        below_reserve == Some(1.0) || open_failed == Some(1.0),
        "the outbox says it waits for the disk (below reserve {below_reserve:?}, open failed \
         {open_failed:?})"
    );

    // Space returns: the edge goes on by itself, within seconds.
    std::fs::remove_file(&ballast).unwrap();
    let freed = std::time::Instant::now();
    let flowing = wait_until("events flowing again", Duration::from_secs(30), || async {
        committed().await > stalled + 100.0
    })
    .await;
    assert!(
        flowing.is_ok(),
        "{flowing:?}; the edge's log ends:\n{}",
        log_tail(&tmp.path().join("edge-01.log"))
    );
    let recovered = freed.elapsed();
    let restarts = outbox_restarts(edge).await;
    assert_eq!(
        restarts, 0.0,
        "a full disk is not counted as a failure of the outbox"
    );
    site.restart_edge_without(0, &devices).await.unwrap();
    let last = wait_edge_drained(edge, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(committed().await, last as f64);
    assert_eq!(
        scrape(hub, "outpost_hub_missing_events_total").await,
        Some(0.0),
        "nothing the edge acknowledged was lost"
    );
    println!(
        "disk full for 8 s at {stalled} events (below reserve {below_reserve:?}, open failed \
         {open_failed:?}); flowing again {:.1} s after space returned; \
         delivered {last} events, none lost; counted outbox restarts: {restarts}",
        recovered.as_secs_f64()
    );
    assert!(site.stop().await.unwrap());
}
