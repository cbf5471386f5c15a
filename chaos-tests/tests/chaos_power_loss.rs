//! Power loss, real processes: the hub's and the edge's data directories are each on a
//! power-loss disk (`chaos_tests::power_loss_fs`), which forgets every write not made durable by
//! `fsync`/`fdatasync` when the power is cut. While the floor plays (slot machines on pty lines
//! and a 100 events/s money stream), the power of the edge, of the hub or of both is cut at
//! random moments: the process is killed (-9), its disk forgets, and it starts again on what is
//! left. Every start must open its stores; at the end the checker must find no acknowledged
//! event lost, none doubled, none out of order, and the machines' money at the hub equal to the
//! machines' own meters.
//!
//! Needs root and `/dev/fuse` (CI runs as root); skipped with a message otherwise.
//! `OUTPOST_CHAOS_CUTS` sets the number of cuts (24), `OUTPOST_CHAOS_SEED` replays a schedule.

#![allow(clippy::unwrap_used)] // In tests a panic is a failed test with its message.

use std::path::Path;
use std::time::Duration;

use chaos_tests::floor::{FloorSpec, PreparedFloor, env_or};
use rand::{Rng, SeedableRng};

fn exe() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_outpost-chaos"))
}

#[derive(Debug, Clone, Copy)]
enum Victim {
    Edge,
    Hub,
    Both,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_acknowledged_event_is_lost_doubled_or_reordered_over_power_cuts_of_edge_and_hub() {
    if !nix::unistd::Uid::effective().is_root() || !Path::new("/dev/fuse").exists() {
        println!("skipped: the power-loss disk needs root and /dev/fuse");
        return;
    }
    let seed: u64 = env_or("OUTPOST_CHAOS_SEED", rand::random());
    let cuts: u32 = env_or("OUTPOST_CHAOS_CUTS", 24);
    println!("power-loss seed {seed} (replay with OUTPOST_CHAOS_SEED={seed}), {cuts} cuts");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);

    let (_guard, dir) = chaos_tests::floor::scenario_dir();
    let prepared = PreparedFloor::prepare(exe(), dir.as_path(), &FloorSpec::new(seed))
        .await
        .unwrap();
    let (mut hub_disk, mut edge_disk) = prepared.mount_disks(2 << 30, 1 << 30).unwrap();
    let mut floor = prepared.start(exe()).await.unwrap();

    for cut in 1..=cuts {
        let after = Duration::from_millis(rng.random_range(200..1_500));
        let victim = match rng.random_range(0..5) {
            0 | 1 => Victim::Edge,
            2 | 3 => Victim::Hub,
            _ => Victim::Both,
        };
        println!("cut {cut}: {victim:?} after {} ms", after.as_millis());
        tokio::time::sleep(after).await;
        if matches!(victim, Victim::Hub | Victim::Both) {
            floor.site.kill9_hub().await.unwrap();
            hub_disk.cut().unwrap();
        }
        if matches!(victim, Victim::Edge | Victim::Both) {
            floor.kill9_edge(true).await.unwrap();
            edge_disk.cut().unwrap();
        }
        // The power comes back: each store must open on what the disk kept.
        if floor.site.hub.is_none() {
            floor
                .site
                .start_hub()
                .await
                .unwrap_or_else(|e| panic!("cut {cut}: the hub starts again on its disk: {e}"));
        }
        if floor.site.edges[0].is_none() {
            floor
                .start_edge()
                .await
                .unwrap_or_else(|e| panic!("cut {cut}: the edge starts again on its disk: {e}"));
        }
    }

    let report = floor.finish().await.unwrap();
    let (hub, edge) = (hub_disk.counters(), edge_disk.counters());
    println!(
        "after {cuts} cuts (hub disk: {} cuts, {} syncs, {} KiB forgotten; edge disk: {} cuts, \
         {} syncs, {} KiB forgotten), {} events from the edge:\n{report}",
        hub.cuts,
        hub.syncs,
        hub.bytes_forgotten >> 10,
        edge.cuts,
        edge.syncs,
        edge.bytes_forgotten >> 10,
        report.last_seq
    );
    assert!(report.valid(), "seed {seed}:\n{report}");
    assert!(
        hub.bytes_forgotten > 0 && edge.bytes_forgotten > 0,
        "the cuts forgot something on both sides (else they tested nothing)"
    );
}
