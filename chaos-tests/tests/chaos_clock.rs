//! The edge's wall clock jumps, real processes: the edge runs under libfaketime, whose offset the
//! test changes while the edge runs (as NTP stepping a board's clock, or a board that booted with
//! a wrong one would): six hours forward, then twelve back (six hours behind the real time), then
//! right again, while the floor plays. The monotonic clock is left alone, as NTP leaves it. The
//! checker must find nothing lost, doubled or out of order, and the money equal; and the hub's log
//! must show the jumps (events stamped hours ahead and hours behind), or the test tested nothing.
//!
//! Needs Debian's `libfaketime` (`.ci/run` installs it); skipped with a message otherwise.
//! `OUTPOST_CHAOS_SEED` replays the floor.

#![allow(clippy::unwrap_used)] // In tests a panic is a failed test with its message.

use std::path::Path;
use std::time::Duration;

use chaos_tests::floor::{FloorSpec, PreparedFloor, env_or};

const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";
const HOUR_US: i64 = 3_600_000_000;

fn exe() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_outpost-chaos"))
}

/// Sets the edge's clock offset (`+6h`, `-6h`, `+0`), atomically: libfaketime reads the file at
/// every clock reading and must never see it half written.
fn set_offset(file: &Path, offset: &str) {
    let next = file.with_extension("next");
    std::fs::write(&next, format!("{offset}\n")).unwrap();
    std::fs::rename(&next, file).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_lost_doubled_or_reordered_when_the_edges_clock_jumps_hours_both_ways() {
    if !Path::new(LIBFAKETIME).exists() {
        println!("skipped: needs {LIBFAKETIME} (Debian's libfaketime)");
        return;
    }
    let seed: u64 = env_or("OUTPOST_CHAOS_SEED", rand::random());
    println!("clock seed {seed} (replay with OUTPOST_CHAOS_SEED={seed})");
    let (_guard, dir) = chaos_tests::floor::scenario_dir();
    let clock = dir.as_path().join("edge-clock");
    set_offset(&clock, "+0");
    let mut prepared = PreparedFloor::prepare(exe(), dir.as_path(), &FloorSpec::new(seed))
        .await
        .unwrap();
    prepared.edge_under(vec![
        "env".into(),
        format!("LD_PRELOAD={LIBFAKETIME}"),
        format!("FAKETIME_TIMESTAMP_FILE={}", clock.display()),
        "FAKETIME_NO_CACHE=1".into(),
        "FAKETIME_DONT_FAKE_MONOTONIC=1".into(),
    ]);
    let started_us = outpost_process::clock::unix_us();
    let floor = prepared.start(exe()).await.unwrap();

    for (offset, hold) in [("+0", 3), ("+6h", 6), ("-6h", 6), ("+0", 4)] {
        println!("edge clock {offset} for {hold} s");
        set_offset(&clock, offset);
        tokio::time::sleep(Duration::from_secs(hold)).await;
    }

    let report = floor.finish().await.unwrap();
    let ended_us = outpost_process::clock::unix_us();
    let (earliest, latest) = report.edge_wall_us;
    println!(
        "{} events from the edge, stamped from {:+.1} h to {:+.1} h of the real time:\n{report}",
        report.last_seq,
        (earliest - started_us) as f64 / HOUR_US as f64,
        (latest - ended_us) as f64 / HOUR_US as f64,
    );
    assert!(
        latest > ended_us + 5 * HOUR_US && earliest < started_us - 5 * HOUR_US,
        "the edge's clock jumped both ways (else the test tested nothing)"
    );
    assert_eq!(
        report.machine_indeterminate(),
        0,
        "no restart, nothing indeterminate"
    );
    assert!(report.valid(), "seed {seed}:\n{report}");
}
