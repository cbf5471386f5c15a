//! Full disks, real processes: the hub's and the edge's data directories are each on a disk whose
//! size the test changes while they run (`chaos_tests::power_loss_fs`, no power cut here). While
//! the floor plays, first the hub's disk, then the edge's, shrinks to what is already used plus
//! 256 KiB for 8 s, so writes that grow a file fail with `ENOSPC`, then grows back. A full disk
//! must be back-pressure, not loss: the checker must find nothing lost, doubled or out of order,
//! nothing indeterminate, and the money equal. The hub's disk must have been really full; the
//! edge never fills its disk (it stops storing at a reserve of free space and its devices wait),
//! so its own gauge `outpost_outbox_disk_below_reserve` must have been seen at 1. The hub
//! stops when a commit fails (its store cannot be trusted after a write error) and is started
//! again as systemd's `Restart=always` would: the test counts those restarts.
//!
//! Needs root and `/dev/fuse`; skipped with a message otherwise. `OUTPOST_CHAOS_SEED` replays the
//! floor.

#![allow(clippy::unwrap_used)] // In tests a panic is a failed test with its message.

use std::path::Path;
use std::time::Duration;

use chaos_tests::floor::{Floor, FloorSpec, PreparedFloor, env_or};
use chaos_tests::power_loss_fs::PowerLossDisk;
use outpost_harness::harness::scrape;

fn exe() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_outpost-chaos"))
}

const ROOM: u64 = 256 << 10;

/// What a disk looked like while it was full.
struct WhileFull {
    /// The free bytes `statfs` showed at the fullest moment seen.
    least_free: u64,
    /// Whether the edge's `outpost_outbox_disk_below_reserve` was seen at 1.
    edge_below_reserve: bool,
}

/// Shrinks `disk` to what it uses plus [`ROOM`] for `hold`, then gives it `capacity` again,
/// restarting what exits meanwhile (as systemd would, every 2 s at most).
async fn fill_for(
    floor: &mut Floor,
    disk: &PowerLossDisk,
    capacity: u64,
    hold: Duration,
) -> WhileFull {
    disk.set_capacity(disk.used() + ROOM);
    let edge_admin = floor.site.layout.edges[0].admin;
    let mut seen = WhileFull {
        least_free: u64::MAX,
        edge_below_reserve: false,
    };
    let until = tokio::time::Instant::now() + hold;
    while tokio::time::Instant::now() < until {
        let stat = nix::sys::statvfs::statvfs(disk.mount_point()).unwrap();
        seen.least_free = seen
            .least_free
            .min(stat.blocks_available() * stat.fragment_size());
        let gauge = scrape(edge_admin, "outpost_outbox_disk_below_reserve").await;
        seen.edge_below_reserve |= gauge == Some(1.0);
        tokio::time::sleep(Duration::from_millis(200)).await;
        restart(floor).await;
    }
    disk.set_capacity(capacity);
    seen
}

/// Restarts what exited, after systemd's `RestartSec=2`.
async fn restart(floor: &mut Floor) {
    let exited = floor.site.hub.as_mut().is_some_and(|p| p.has_exited())
        || floor.site.edges[0].as_mut().is_some_and(|p| p.has_exited());
    if exited {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let started = floor.restart_what_exited().await.unwrap();
        println!("  {started} process(es) exited by themselves and were started again");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_at_the_hub_or_the_edge_holds_events_back_and_loses_none() {
    if !nix::unistd::Uid::effective().is_root() || !Path::new("/dev/fuse").exists() {
        println!("skipped: the sized disks need root and /dev/fuse");
        return;
    }
    let seed: u64 = env_or("OUTPOST_CHAOS_SEED", rand::random());
    println!("disk-full seed {seed} (replay with OUTPOST_CHAOS_SEED={seed})");
    let (_guard, dir) = chaos_tests::floor::scenario_dir();
    let prepared = PreparedFloor::prepare(exe(), dir.as_path(), &FloorSpec::new(seed))
        .await
        .unwrap();
    let (hub_size, edge_size) = (2u64 << 30, 1u64 << 30);
    let (hub_disk, edge_disk) = prepared.mount_disks(hub_size, edge_size).unwrap();
    let mut floor = prepared.start(exe()).await.unwrap();

    tokio::time::sleep(Duration::from_secs(2)).await;
    println!("the hub's disk full for 8 s");
    let hub = fill_for(&mut floor, &hub_disk, hub_size, Duration::from_secs(8)).await;
    for _ in 0..15 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        restart(&mut floor).await;
    }
    println!("the edge's disk full for 8 s");
    let edge = fill_for(&mut floor, &edge_disk, edge_size, Duration::from_secs(8)).await;
    for _ in 0..15 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        restart(&mut floor).await;
    }

    let report = floor.finish().await.unwrap();
    println!(
        "least free while full: hub {} KiB, edge {} KiB; {} events from the edge:\n{report}",
        hub.least_free >> 10,
        edge.least_free >> 10,
        report.last_seq
    );
    // The hub writes until the disk is full; the edge stops storing at its own reserve (1 MiB of
    // free space), before the disk is full, and its devices wait: with only ROOM free it may
    // write nothing more at all, so what proves its disk full is its own gauge.
    // Sampled every 200 ms: a page or two may show free when the hub's write failed.
    assert!(
        hub.least_free < 64 << 10,
        "the hub's disk was full (else the test tested nothing): {} bytes free",
        hub.least_free
    );
    assert!(
        edge.least_free <= ROOM && edge.edge_below_reserve,
        "the edge saw its disk under the reserve ({} bytes free, gauge seen at 1: {})",
        edge.least_free,
        edge.edge_below_reserve
    );
    assert_eq!(
        report.machine_indeterminate(),
        0,
        "no restart, nothing indeterminate"
    );
    assert!(report.valid(), "seed {seed}:\n{report}");
}
