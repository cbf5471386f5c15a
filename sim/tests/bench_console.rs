//! `outpost-sim bench console --quick` runs and reports what it measures (a smoke test of the
//! benchmark; its figures are read by people, not asserted here, except that each was measured).

#![allow(clippy::unwrap_used)] // In tests a panic is a failed test with its message.

use outpost_harness::harness::bench_json;

#[test]
fn the_console_benchmark_times_both_pages_and_the_live_update_in_chromium() {
    let exe = std::path::Path::new(env!("CARGO_BIN_EXE_outpost-sim"));
    let report = bench_json(exe, ["console", "--quick"]).unwrap();
    for page in ["floor_page", "tv_wall"] {
        for figure in ["p50_ms", "p99_ms", "baseline_p99_ms"] {
            assert!(
                report[page]["figures"][figure].as_f64().unwrap() > 0.0,
                "{page} {figure}: {report}"
            );
        }
    }
    let browser = &report["live_update"]["browser"];
    assert!(
        browser["items"].as_u64().unwrap_or(0) > 0,
        "Chromium received live updates: {report}"
    );
    assert!(browser["p99_ms"].as_f64().is_some(), "{report}");
}
