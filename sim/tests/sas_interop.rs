//! Interop with an independent SAS host: PyPI `sas-comm-py` drives our EGM simulator over a pty
//! (lenient framing: it cannot send a wake-up bit) and reads credits and LP 2F meters, and its
//! LP 01 is acknowledged. The Python environment comes from `.ci/run` (`OUTPOST_PEERS_PYTHON`).

#![allow(clippy::unwrap_used)] // In tests a panic is a failed test with its message.

use std::path::Path;

use outpost_harness::harness::{EgmSimProcess, peers_python};

fn exe() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_outpost-sim"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sas_comm_py_reads_credits_and_meters_from_the_simulator_and_shuts_it_down() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = EgmSimProcess::spawn(
        exe(),
        &["--pty", "--lenient", "--address", "3", "--play-rate", "0"],
        &tmp.path().join("egm.log"),
    )
    .await
    .unwrap();
    sim.post("/bill", &serde_json::json!({"address": 3, "credits": 100}))
        .await
        .unwrap();
    sim.post(
        "/game",
        &serde_json::json!({"address": 3, "bet": 5, "win": 20}),
    )
    .await
    .unwrap();

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/sas_comm_py_host.py");
    let output = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        tokio::process::Command::new(peers_python())
            .arg(&script)
            .arg(&sim.line)
            .arg("3")
            .output(),
    )
    .await
    .expect("sas-comm-py finished within 60 s")
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "sas-comm-py failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let read: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(read["credits"], 115, "LP 1A: 100 in, 5 bet, 20 won");
    assert_eq!(read["meters"]["0"], 5, "coin in");
    assert_eq!(read["meters"]["1"], 20, "coin out");
    assert_eq!(read["meters"]["12"], 115, "current credits");
    assert_eq!(
        read["shutdown_ack"], "03",
        "LP 01 is ACKed with the address"
    );

    let state = sim.state().await.unwrap();
    assert_eq!(
        state["egms"][0]["play_enabled"], false,
        "play is locked out"
    );
    assert_eq!(state["line"]["discarded_bytes"], 0, "every byte framed");
    sim.kill().await;
}
