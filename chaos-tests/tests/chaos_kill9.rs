//! `kill -9` loops, real processes: while the floor plays (slot machines on pty lines and a
//! 100 events/s money stream), the edge and the hub are killed at random moments, 30 times in
//! all, and started again at once. Nothing may be indeterminate here: a crash is not a power cut,
//! so a restarted edge knows its last poll and repeats it (an implied NACK) instead of
//! acknowledging a reply it never stored. The checker must find every exception each machine
//! counts as delivered at the hub exactly once, in order, the edge's sequence whole, and the
//! money equal. (The simulators are the witnesses and are not killed.)
//!
//! `OUTPOST_CHAOS_KILLS` sets the number of kills (30), `OUTPOST_CHAOS_SEED` replays a schedule.

#![allow(clippy::unwrap_used)] // In tests a panic is a failed test with its message.

use std::path::Path;
use std::time::Duration;

use chaos_tests::floor::{FloorSpec, PreparedFloor, env_or};
use rand::{Rng, SeedableRng};

fn exe() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_outpost-chaos"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_exception_a_machine_counts_as_delivered_is_at_the_hub_once_through_kill9_loops() {
    let seed: u64 = env_or("OUTPOST_CHAOS_SEED", rand::random());
    let kills: u32 = env_or("OUTPOST_CHAOS_KILLS", 30);
    println!("kill -9 seed {seed} (replay with OUTPOST_CHAOS_SEED={seed}), {kills} kills");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);

    let (_guard, dir) = chaos_tests::floor::scenario_dir();
    let prepared = PreparedFloor::prepare(exe(), dir.as_path(), &FloorSpec::new(seed))
        .await
        .unwrap();
    let mut floor = prepared.start(exe()).await.unwrap();
    let (mut edge_kills, mut hub_kills) = (0, 0);
    for kill in 1..=kills {
        let after = Duration::from_millis(rng.random_range(150..900));
        let edge = rng.random_bool(0.6);
        println!(
            "kill {kill}: {} after {} ms",
            if edge { "edge" } else { "hub" },
            after.as_millis()
        );
        tokio::time::sleep(after).await;
        if edge {
            edge_kills += 1;
            floor.kill9_edge(false).await.unwrap();
            floor.start_edge().await.unwrap();
        } else {
            hub_kills += 1;
            floor.site.kill9_hub().await.unwrap();
            floor.site.start_hub().await.unwrap();
        }
    }

    let report = floor.finish().await.unwrap();
    println!(
        "after {edge_kills} edge and {hub_kills} hub kills, {} events from the edge:\n{report}",
        report.last_seq
    );
    assert_eq!(
        report.machine_indeterminate(),
        0,
        "a crash leaves nothing indeterminate"
    );
    assert!(report.valid(), "seed {seed}:\n{report}");
}
