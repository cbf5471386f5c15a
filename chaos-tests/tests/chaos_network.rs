//! A bad network, real processes: the edge runs in a network namespace of its own and reaches the
//! hub over a veth pair through a UDP fault proxy. While the floor plays (slot machines on pty
//! lines and a 100 events/s money stream), the link goes through phases, in an order the seed
//! picks (the partition last): random loss (iptables `statistic`, 20 % each way), a full partition longer than the
//! session's dead-peer timeout, then heal; a bandwidth cap (`tbf`, 96 kbit/s, below what the
//! floor sends: fewer events reach the hub each second than the floor makes); and delay with
//! reordering and duplication from the proxy (up to 40 ms, 5 % duplicated). Every phase but the
//! partition is also combined with the proxy's faults. The checker must find nothing lost,
//! doubled or out of order, nothing indeterminate (no process restarts), and the money equal.
//!
//! Needs root, `ip`, `iptables` and `tc` (`.ci/run` installs iptables); skipped with a message
//! otherwise. `OUTPOST_CHAOS_SEED` replays a schedule.

#![allow(clippy::unwrap_used)] // In tests a panic is a failed test with its message.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use chaos_tests::floor::{FloorSpec, PreparedFloor, env_or};
use chaos_tests::network::{EdgeNetwork, FaultProxy, ProxyFaults};
use outpost_harness::harness::scrape;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

fn exe() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_outpost-chaos"))
}

/// The hub's committed sequence for the edge (0 if it cannot be read in 5 s).
async fn committed(hub_admin: SocketAddr) -> f64 {
    tokio::time::timeout(
        Duration::from_secs(5),
        scrape(hub_admin, "outpost_hub_committed_seq{edge=\"edge-01\"}"),
    )
    .await
    .ok()
    .flatten()
    .unwrap_or(0.0)
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    Loss,
    Partition,
    Cap,
    Jitter,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_lost_doubled_or_reordered_through_loss_partitions_a_cap_and_reordering() {
    if !chaos_tests::network::available() {
        println!("skipped: network faults need root, ip, iptables and tc");
        return;
    }
    let seed: u64 = env_or("OUTPOST_CHAOS_SEED", rand::random());
    println!("network seed {seed} (replay with OUTPOST_CHAOS_SEED={seed})");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);

    let (_guard, dir) = chaos_tests::floor::scenario_dir();
    let mut prepared = PreparedFloor::prepare(exe(), dir.as_path(), &FloorSpec::new(seed))
        .await
        .unwrap();
    let network = EdgeNetwork::create(std::process::id() as u16).unwrap();
    let proxy = FaultProxy::start(
        SocketAddr::from((network.host, 0)),
        prepared.layout.hub_link,
        seed,
    )
    .await
    .unwrap();
    prepared
        .edge_on_network(network.prefix(), network.edge.into(), proxy.addr)
        .unwrap();
    let edge_admin = prepared.layout.edges[0].admin;
    let hub_admin = prepared.layout.hub_admin;
    let floor = prepared.start(exe()).await.unwrap();

    // The partition goes last: the other phases are measured on a connected edge (after a
    // partition the edge needs a reconnection, which under loss or the cap can take seconds).
    let mut phases = [Phase::Loss, Phase::Cap, Phase::Jitter, Phase::Partition];
    phases[..3].shuffle(&mut rng);
    let jitter = ProxyFaults {
        max_delay: Duration::from_millis(40),
        duplicate: 0.05,
    };
    for phase in phases {
        let length = Duration::from_millis(rng.random_range(5_000..8_000));
        let with_jitter = !matches!(phase, Phase::Partition) && rng.random_bool(0.5);
        println!(
            "phase {phase:?} for {} ms{}",
            length.as_millis(),
            if with_jitter {
                ", with the proxy's delay and duplicates"
            } else {
                ""
            }
        );
        proxy.set(if with_jitter || matches!(phase, Phase::Jitter) {
            jitter
        } else {
            ProxyFaults::default()
        });
        match phase {
            Phase::Loss => network.loss(20).unwrap(),
            Phase::Partition => network.partition().unwrap(),
            Phase::Cap => network.cap(Some(96)).unwrap(),
            Phase::Jitter => {}
        }
        let committed_before = committed(hub_admin).await;
        tokio::time::sleep(length).await;
        // Read at the hub (loopback): the edge's own endpoint is behind the capped link.
        let rate = (committed(hub_admin).await - committed_before) / length.as_secs_f64();
        println!("  events committed at the hub: {rate:.0}/s");
        if matches!(phase, Phase::Cap) {
            assert!(
                rate < 70.0,
                "the cap held the edge back ({rate:.0} events/s got through; the floor offers over 100)"
            );
        }
        if matches!(phase, Phase::Partition) {
            // The edge noticed: its session ended, it kept storing.
            let connected = tokio::time::timeout(
                Duration::from_secs(10),
                scrape(edge_admin, "outpost_uplink_connected"),
            )
            .await
            .ok()
            .flatten();
            println!("  edge connected at the end of the partition: {connected:?}");
            assert_eq!(connected, Some(0.0), "the edge saw the partition");
        }
        network.heal().unwrap();
        network.cap(None).unwrap();
        proxy.set(ProxyFaults::default());
    }

    let report = floor.finish().await.unwrap();
    let counters = proxy.counters();
    println!(
        "proxy: {} datagrams, {} delayed, {} duplicated; {} events from the edge:\n{report}",
        counters.forwarded, counters.delayed, counters.duplicated, report.last_seq
    );
    assert_eq!(
        report.machine_indeterminate(),
        0,
        "no restart, nothing indeterminate"
    );
    assert!(report.valid(), "seed {seed}:\n{report}");
    assert!(
        counters.duplicated > 0 && counters.delayed > 0,
        "the proxy did its faults"
    );
}
