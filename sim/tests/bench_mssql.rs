//! `outpost-sim bench mssql --quick` runs and reports what it measures (a smoke test of the
//! benchmark; its figures are read by people, not asserted here, except that both ways wrote).

#![allow(clippy::unwrap_used)] // In tests a panic is a failed test with its message.

use outpost_harness::harness::bench_json;

#[test]
fn the_mssql_benchmark_measures_both_ways_and_the_lag_and_prints_them_as_json() {
    let Some(python) = std::env::var_os("OUTPOST_PEERS_PYTHON") else {
        println!(
            "SKIPPED: OUTPOST_PEERS_PYTHON with pysqlbridge is not set up (bash .ci/run does it)"
        );
        return;
    };
    let exe = std::path::Path::new(env!("CARGO_BIN_EXE_outpost-sim"));
    let report = bench_json(
        exe,
        [
            "mssql".as_ref(),
            "--quick".as_ref(),
            "--python".as_ref(),
            python.as_os_str(),
        ],
    )
    .unwrap();
    for figure in [
        "batched_rows_per_second",
        "baseline_insert_per_row_rows_per_second",
        "staged_only_rows_per_second",
    ] {
        assert!(
            report["wire"][figure].as_f64().unwrap() > 0.0,
            "{figure}: {report}"
        );
    }
    assert_eq!(report["lag_at_10k_per_second"]["events"], 30_000);
    assert!(
        report["lag_at_10k_per_second"]["commit_to_written_ms"]["p99"]
            .as_f64()
            .is_some()
    );
}
