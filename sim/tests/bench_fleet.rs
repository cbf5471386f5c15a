//! `outpost-sim bench fleet --quick`: fifty simulated edges, each with its own certificate and
//! QUIC connection, against one hub process (a smoke test of the benchmark: the figures are read
//! by people). The benchmark itself fails unless every edge's events are at the hub exactly, with
//! no gap, after each phase; asserted here is that each phase measured something.

#![allow(clippy::unwrap_used)] // In tests a panic is a failed test with its message.

use outpost_harness::harness::bench_json;

#[test]
fn fifty_edges_connect_stream_and_come_back_after_the_hub_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::path::Path::new(env!("CARGO_BIN_EXE_outpost-sim"));
    let dir_arg = dir.path().as_os_str();
    let report = bench_json(
        exe,
        [
            "fleet".as_ref(),
            "--quick".as_ref(),
            "--dir".as_ref(),
            dir_arg,
        ],
    )
    .unwrap();
    assert_eq!(report["edges"], 50, "{report}");
    assert!(
        report["solo"]["events_per_second"].as_f64().unwrap() > 0.0,
        "{report}"
    );
    let fleet = &report["max"];
    assert!(
        fleet["events_per_second"].as_f64().unwrap() > 0.0,
        "{report}"
    );
    let storm = &report["storm"];
    assert!(storm["backlog_events"].as_u64().unwrap() > 0, "{report}");
    assert!(
        storm["seconds_until_drained"].as_f64().unwrap()
            >= storm["seconds_until_all_back"].as_f64().unwrap(),
        "{report}"
    );
    assert_eq!(
        report["events_committed"], report["events_produced"],
        "{report}"
    );
}
