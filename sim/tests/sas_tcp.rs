//! SAS over TCP (serial-over-IP converters): the simulator as a converter, chirps with the
//! wake-up bit in the marked encoding, and an edge line that polls through TCP and comes back after
//! the converter restarts.

#![allow(clippy::unwrap_used)] // In tests a panic is a failed test with its message.

use std::path::Path;
use std::time::{Duration, Instant};

use outpost_harness::harness::{EgmSimProcess, RunningSite, scrape, wait_until};
use outpost_harness::site::{SiteLayout, SiteSpec};
use tokio::io::AsyncReadExt;

fn exe() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_outpost-sim"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unpolled_egm_chirps_its_address_with_the_wakeup_bit_after_five_seconds() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = EgmSimProcess::spawn(
        exe(),
        &["--tcp", "127.0.0.1:0", "--address", "5", "--play-rate", "0"],
        &tmp.path().join("egm.log"),
    )
    .await
    .unwrap();
    let mut host = tokio::net::TcpStream::connect(sim.line.trim())
        .await
        .unwrap();
    let connected = Instant::now();
    let mut buf = [0u8; 3];
    tokio::time::timeout(Duration::from_secs(10), host.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let waited = connected.elapsed();
    assert_eq!(buf, [0xFF, 0x00, 0x05], "address 5 with the wake-up bit");
    assert!(
        waited >= Duration::from_millis(4_500),
        "not before 5 s of silence: {waited:?}"
    );
    // And again 200 ms later.
    tokio::time::timeout(Duration::from_secs(2), host.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(buf, [0xFF, 0x00, 0x05]);
    sim.kill().await;
}

async fn ok_polls(admin: std::net::SocketAddr) -> f64 {
    let mut total = 0.0;
    for device in ["egm-a", "egm-b"] {
        total += scrape(
            admin,
            &format!("outpost_sas_polls_total{{device=\"{device}\",result=\"ok\"}}"),
        )
        .await
        .unwrap_or(0.0);
    }
    total
}

/// Waits until more than `floor` polls were answered; returns how many.
async fn wait_polls_above(admin: std::net::SocketAddr, floor: f64) -> f64 {
    wait_until("polls to be answered", Duration::from_secs(30), || async {
        ok_polls(admin).await > floor
    })
    .await
    .unwrap();
    ok_polls(admin).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_edge_polls_through_a_tcp_converter_and_reconnects_after_it_restarts() {
    let tmp = tempfile::tempdir().unwrap();
    let addr = outpost_harness::harness::free_local_addr()
        .unwrap()
        .to_string();
    let args = [
        "--tcp",
        addr.as_str(),
        "--address",
        "1",
        "--count",
        "2",
        "--play-rate",
        "2",
    ];
    let sim = EgmSimProcess::spawn(exe(), &args, &tmp.path().join("egm-1.log"))
        .await
        .unwrap();
    let devices = format!(
        "[[devices]]\nkind = \"sas_line\"\nid = \"line-tcp\"\ntransport = \"tcp\"\nconnect = \"{addr}\"\n\
         egms = [{{ id = \"egm-a\", address = 1 }}, {{ id = \"egm-b\", address = 2 }}]\n"
    );
    let layout = SiteLayout::prepare(tmp.path(), &SiteSpec::single("edge-01", &devices)).unwrap();
    let admin = layout.edges[0].admin;
    let site = RunningSite::start(exe(), layout).await.unwrap();

    let before = wait_polls_above(admin, 20.0).await;
    // A playing machine is read once it is quiet, or after 5 s at most.
    wait_until(
        "a meter reading stored",
        Duration::from_secs(15),
        || async {
            scrape(
                admin,
                "outpost_sas_events_total{device=\"egm-a\",kind=\"meters\"}",
            )
            .await
            .unwrap_or(0.0)
                >= 1.0
        },
    )
    .await
    .unwrap();

    // The converter goes away and comes back on the same address.
    sim.kill().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let stalled = ok_polls(admin).await;
    let sim = EgmSimProcess::spawn(exe(), &args, &tmp.path().join("egm-2.log"))
        .await
        .unwrap();
    let after = wait_polls_above(admin, stalled + 20.0).await;
    assert!(after > before);
    assert!(site.stop().await.unwrap(), "stopped cleanly");
    sim.kill().await;
}
