//! `outpost-sim bench mssql --quick` runs and reports what it measures (a smoke test of the
//! benchmark; its figures are read by people, not asserted here, except that both ways wrote).

#![allow(clippy::unwrap_used)] // In tests a panic is a failed test with its message.

use std::process::Command;

#[test]
fn the_mssql_benchmark_measures_both_ways_and_the_lag_and_prints_them_as_json() {
    let Some(python) = std::env::var_os("OUTPOST_PEERS_PYTHON") else {
        println!(
            "SKIPPED: OUTPOST_PEERS_PYTHON with pysqlbridge is not set up (bash .ci/run does it)"
        );
        return;
    };
    let out = Command::new(env!("CARGO_BIN_EXE_outpost-sim"))
        .args(["bench", "mssql", "--quick", "--python"])
        .arg(python)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(&said).unwrap();
    for figure in [
        "batched_rows_per_second",
        "baseline_insert_per_row_rows_per_second",
        "staged_only_rows_per_second",
    ] {
        assert!(
            report["wire"][figure].as_f64().unwrap() > 0.0,
            "{figure}: {said}"
        );
    }
    assert_eq!(report["lag_at_10k_per_second"]["events"], 30_000);
    assert!(
        report["lag_at_10k_per_second"]["commit_to_written_ms"]["p99"]
            .as_f64()
            .is_some()
    );
}
