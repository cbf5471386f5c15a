//! Interop with independent Artemis clients: PyPI `hikvision-openapi-signer` (signing forms C/D,
//! with Content-MD5 and Date) and `hikcentral-openapi` (form B, its own person / face / access
//! level flow) against our HikCentral simulator over HTTPS. Every call is accepted; a replayed
//! nonce and a body changed after signing are refused. The Python environment comes from
//! `.ci/run` (`OUTPOST_PEERS_PYTHON`).

#![allow(clippy::unwrap_used)] // In tests a panic is a failed test with its message.

use std::path::Path;
use std::time::Duration;

use outpost_harness::harness::peers_python;
use outpost_simulators::hikcentral::state::Profile;
use outpost_simulators::hikcentral::{CertKind, HikSim, start};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn independent_python_clients_are_accepted_and_replays_and_tampering_are_refused() {
    outpost_process::install_crypto_provider();
    let sim = HikSim::new("12345678", "abcdefghijklmnopqrst", Profile::Current, 900, 1);
    let running = start(
        "127.0.0.1:0".parse().unwrap(),
        sim.clone(),
        CertKind::SelfSignedCa,
    )
    .await
    .unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/hikcentral_peers.py");
    let output = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new(peers_python())
            .arg(&script)
            .arg("127.0.0.1")
            .arg(running.addr.port().to_string())
            .arg("12345678")
            .arg("abcdefghijklmnopqrst")
            .output(),
    )
    .await
    .expect("the Python clients finished within 120 s")
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "python clients failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let calls = sim.calls();
    let refused: Vec<_> = calls.iter().filter(|c| c.http_status == 401).collect();
    assert_eq!(
        refused.len(),
        2,
        "exactly the replay and the tampered body: {refused:?}"
    );
    assert!(
        refused
            .iter()
            .any(|c| c.fault.as_deref().unwrap_or("").contains("replayed"))
    );
    assert!(
        refused
            .iter()
            .any(|c| c.fault.as_deref().unwrap_or("").contains("Content-MD5"))
    );
    let accepted: Vec<_> = calls.iter().filter(|c| c.http_status == 200).collect();
    assert!(
        accepted.len() >= 12,
        "both flows ran: {} calls",
        accepted.len()
    );
    assert!(
        accepted.iter().all(|c| c.code.as_deref() == Some("0")),
        "every other call succeeded: {accepted:?}"
    );
    let forms: std::collections::BTreeSet<String> = accepted
        .iter()
        .map(|c| c.signed_headers.join(","))
        .collect();
    assert!(forms.contains("x-ca-key"), "form B seen: {forms:?}");
    assert!(
        forms.contains("x-ca-key,x-ca-nonce,x-ca-timestamp"),
        "form C/D seen: {forms:?}"
    );
    let snapshot = sim.snapshot();
    let codes: Vec<&str> = snapshot["persons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["personCode"].as_str().unwrap())
        .collect();
    assert_eq!(codes, vec!["PYSIGN1"], "the client flow deleted its person");
}
