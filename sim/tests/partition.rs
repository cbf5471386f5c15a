//! A partition is noticed in seconds, not after QUIC's 10 s idle timeout: the edge and the hub
//! each end the session once nothing has been heard for `dead_after_ms` (1.5 s), the edge stops
//! reporting a round-trip time, and after the heal the edge reconnects and delivers what it
//! stored meanwhile, without a gap.
//!
//! The edge reaches the hub through a UDP relay in the test that drops everything while
//! partitioned (this kernel has no netem, and the test needs no root).

#![allow(clippy::unwrap_used)] // In tests a panic is a failed test with its message.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use outpost_harness::harness::{RunningSite, scrape, wait_until};
use outpost_harness::site::{SiteLayout, SiteSpec};
use tokio::net::UdpSocket;

const DEVICES: &str = r#"
[[devices]]
kind = "synthetic"
id = "coin-in"
rate_per_second = 100.0
payload_bytes = 100
class = "money"
"#;

/// A UDP relay for one client: what it receives goes to `upstream` and back, unless partitioned.
struct Relay {
    addr: SocketAddr,
    partitioned: Arc<AtomicBool>,
}

async fn relay(upstream: SocketAddr) -> Relay {
    let front = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let back = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    back.connect(upstream).await.unwrap();
    let addr = front.local_addr().unwrap();
    let partitioned = Arc::new(AtomicBool::new(false));
    let client = Arc::new(std::sync::Mutex::new(None::<SocketAddr>));
    {
        let (front, back, partitioned, client) = (
            front.clone(),
            back.clone(),
            partitioned.clone(),
            client.clone(),
        );
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            while let Ok((n, from)) = front.recv_from(&mut buf).await {
                *client.lock().unwrap() = Some(from);
                if !partitioned.load(Ordering::Relaxed) {
                    let _ = back.send(&buf[..n]).await;
                }
            }
        });
    }
    {
        let partitioned = partitioned.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            while let Ok(n) = back.recv(&mut buf).await {
                let to = *client.lock().unwrap();
                if let (Some(to), false) = (to, partitioned.load(Ordering::Relaxed)) {
                    let _ = front.send_to(&buf[..n], to).await;
                }
            }
        });
    }
    Relay { addr, partitioned }
}

/// How long until `check` holds, polled every 50 ms, at most `limit`.
async fn time_until<F, Fut>(limit: Duration, check: F) -> Option<Duration>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while started.elapsed() < limit {
        if check().await {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_sides_notice_a_partition_within_seconds_and_the_edge_catches_up_after_it() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = SiteLayout::prepare(tmp.path(), &SiteSpec::single("edge-01", DEVICES)).unwrap();
    let relay = relay(layout.hub_link).await;
    let config = &layout.edges[0].config;
    let text = std::fs::read_to_string(config).unwrap();
    let text = text.replace(
        &format!("hub = \"{}\"", layout.hub_link),
        &format!("hub = \"{}\"", relay.addr),
    );
    std::fs::write(config, text).unwrap();
    let (edge, hub) = (layout.edges[0].admin, layout.hub_admin);
    let site = RunningSite::start(Path::new(env!("CARGO_BIN_EXE_outpost-sim")), layout)
        .await
        .unwrap();
    wait_until("the session", Duration::from_secs(20), || async {
        scrape(edge, "outpost_uplink_connected").await == Some(1.0)
            && scrape(hub, "outpost_hub_edges_connected").await == Some(1.0)
    })
    .await
    .unwrap();
    let rtt = scrape(edge, "outpost_uplink_rtt_seconds").await.unwrap();
    assert!(
        rtt.is_finite() && rtt > 0.0,
        "a live session has a round trip: {rtt}"
    );

    relay.partitioned.store(true, Ordering::Relaxed);
    let limit = Duration::from_secs(6); // dead_after_ms is 1.5 s; QUIC's idle timeout is 10 s
    let (edge_noticed, hub_noticed) = tokio::join!(
        time_until(limit, || async {
            scrape(edge, "outpost_uplink_connected").await == Some(0.0)
        }),
        time_until(limit, || async {
            scrape(hub, "outpost_hub_edges_connected").await == Some(0.0)
        })
    );
    println!(
        "partition noticed by the edge after {edge_noticed:?}, by the hub after {hub_noticed:?}"
    );
    assert!(edge_noticed.is_some(), "the edge noticed within {limit:?}");
    assert!(hub_noticed.is_some(), "the hub noticed within {limit:?}");
    let rtt = scrape(edge, "outpost_uplink_rtt_seconds").await.unwrap();
    assert!(
        rtt.is_nan(),
        "no round trip is reported without a session: {rtt}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;

    let stored_meanwhile = scrape(edge, "outpost_outbox_last_seq").await.unwrap();
    relay.partitioned.store(false, Ordering::Relaxed);
    wait_until("the edge to reconnect", Duration::from_secs(30), || async {
        scrape(edge, "outpost_uplink_connected").await == Some(1.0)
    })
    .await
    .unwrap();
    wait_until(
        "what the edge stored during the partition at the hub",
        Duration::from_secs(30),
        || async {
            scrape(hub, "outpost_hub_committed_seq{edge=\"edge-01\"}")
                .await
                .is_some_and(|committed| committed >= stored_meanwhile)
        },
    )
    .await
    .unwrap();
    assert_eq!(
        scrape(hub, "outpost_hub_missing_events_total").await,
        Some(0.0),
        "nothing lost across the partition"
    );
    assert!(site.stop().await.unwrap());
}
