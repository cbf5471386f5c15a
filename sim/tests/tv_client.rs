//! The edge's ADB client against the TV simulator, fault by fault: it authenticates with its key
//! (offered once, then recognised by signature), reads and writes, pushes, and fails cleanly —
//! with the error that names the cause and within its timeout — when the TV refuses the key,
//! hangs, drops connections or is powered off; slow replies still complete.

#![allow(clippy::unwrap_used)] // In tests a panic is a failed test with its message.

use std::time::{Duration, Instant};

use outpost_edge::{AdbConnection, AdbError};
use outpost_simulators::tv::{TvFaults, start};

fn key() -> rsa::RsaPrivateKey {
    outpost_adb::auth::generate_key().unwrap()
}

const TIMEOUT: Duration = Duration::from_millis(800);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_authenticates_runs_commands_and_pushes_with_its_own_key() {
    let (fleet, addrs) = start("127.0.0.1:0".parse().unwrap(), 1, 0.2).await.unwrap();
    let key = key();
    let mut adb = AdbConnection::connect(addrs[0], &key, "edge@test", TIMEOUT)
        .await
        .unwrap();
    assert_eq!(adb.banner.get("ro.product.model"), Some("MetroView 55"));
    assert_eq!(
        adb.shell("getprop ro.product.model").await.unwrap(),
        "MetroView 55\n"
    );
    let data = vec![42u8; 150_000];
    adb.push("/sdcard/a.bin", 0o644, &data).await.unwrap();
    let sum = adb.shell("sha256sum /sdcard/a.bin").await.unwrap();
    assert!(
        sum.starts_with(&outpost_adb::tv::hex_sha256(&data)),
        "{sum}"
    );
    let png = adb.run("exec:screencap -p").await.unwrap();
    assert!(png.starts_with(b"\x89PNG"));
    // The second connection is recognised by its signature alone.
    let mut again = AdbConnection::connect(addrs[0], &key, "edge@test", TIMEOUT)
        .await
        .unwrap();
    assert_eq!(again.shell("echo ok").await.unwrap(), "ok\n");
    assert!(fleet.tv(0).unwrap().connections >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_key_is_unauthorized() {
    let (fleet, addrs) = start("127.0.0.1:0".parse().unwrap(), 1, 0.2).await.unwrap();
    fleet.set_faults(
        0,
        TvFaults {
            reject_auth: true,
            ..TvFaults::default()
        },
    );
    let err = AdbConnection::connect(addrs[0], &key(), "edge@test", TIMEOUT)
        .await
        .unwrap_err();
    assert!(matches!(err, AdbError::Unauthorized), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_tv_times_out_within_the_limit() {
    let (fleet, addrs) = start("127.0.0.1:0".parse().unwrap(), 1, 0.2).await.unwrap();
    fleet.set_faults(
        0,
        TvFaults {
            hang: true,
            ..TvFaults::default()
        },
    );
    let started = Instant::now();
    let err = AdbConnection::connect(addrs[0], &key(), "edge@test", TIMEOUT)
        .await
        .unwrap_err();
    assert!(started.elapsed() < TIMEOUT * 3, "{:?}", started.elapsed());
    assert!(
        matches!(err, AdbError::Timeout(_)),
        "a hung TV is not an unauthorized one: {err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_replies_still_complete() {
    let (fleet, addrs) = start("127.0.0.1:0".parse().unwrap(), 1, 0.2).await.unwrap();
    fleet.set_faults(
        0,
        TvFaults {
            slow_ms: 100,
            ..TvFaults::default()
        },
    );
    let started = Instant::now();
    let mut adb = AdbConnection::connect(addrs[0], &key(), "edge@test", TIMEOUT)
        .await
        .unwrap();
    assert_eq!(adb.shell("echo slow").await.unwrap(), "slow\n");
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "the delay applied"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_connections_and_power_off_end_the_session_and_power_on_brings_it_back() {
    let (fleet, addrs) = start("127.0.0.1:0".parse().unwrap(), 1, 0.2).await.unwrap();
    let key = key();
    let mut adb = AdbConnection::connect(addrs[0], &key, "edge@test", TIMEOUT)
        .await
        .unwrap();
    fleet.set_faults(
        0,
        TvFaults {
            drop: true,
            ..TvFaults::default()
        },
    );
    assert!(adb.shell("echo x").await.is_err());
    assert!(
        AdbConnection::connect(addrs[0], &key, "edge@test", TIMEOUT)
            .await
            .is_err()
    );
    fleet.set_faults(0, TvFaults::default());
    fleet.set_power(0, false).unwrap();
    assert!(
        AdbConnection::connect(addrs[0], &key, "edge@test", TIMEOUT)
            .await
            .is_err()
    );
    fleet.set_power(0, true).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut adb = AdbConnection::connect(addrs[0], &key, "edge@test", TIMEOUT)
        .await
        .unwrap();
    assert_eq!(adb.shell("echo back").await.unwrap(), "back\n");
    assert_eq!(fleet.tv(0).unwrap().boots, 2);
}
