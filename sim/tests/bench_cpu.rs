//! `outpost-sim bench cpu --quick` counts instructions per delivered event on the edge and on the
//! hub under callgrind (a smoke test of the benchmark: the figures are read by people; asserted
//! is that each was measured and is in a plausible range — no event is free, and none costs a
//! second of CPU).

#![allow(clippy::unwrap_used)] // In tests a panic is a failed test with its message.

use std::process::Command;

use outpost_harness::harness::bench_json;

#[test]
fn the_cpu_benchmark_counts_instructions_per_event_on_both_sides() {
    let valgrind = Command::new("valgrind").arg("--version").output();
    if !valgrind.is_ok_and(|o| o.status.success()) {
        println!("skipped: valgrind is not installed (`bash .ci/run` installs it)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let exe = std::path::Path::new(env!("CARGO_BIN_EXE_outpost-sim"));
    let dir_arg = dir.path().as_os_str();
    let report = bench_json(
        exe,
        [
            "cpu".as_ref(),
            "--quick".as_ref(),
            "--dir".as_ref(),
            dir_arg,
        ],
    )
    .unwrap();
    for side in ["edge", "hub"] {
        let per_event = report[format!("{side}_instructions_per_event")]
            .as_f64()
            .unwrap();
        assert!(
            (1_000.0..10_000_000.0).contains(&per_event),
            "{side}: {per_event} instructions per event: {report}"
        );
    }
    let runs = report["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 4, "{report}");
    assert!(runs[3]["events"].as_u64().unwrap() > runs[2]["events"].as_u64().unwrap());
}
