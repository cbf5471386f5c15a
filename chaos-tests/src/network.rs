//! Network faults for real processes, on a kernel without `netem`: the edge in a network
//! namespace of its own, reached over a veth pair, with iptables loss and partitions and a `tbf`
//! bandwidth cap inside the namespace; and a UDP fault proxy in the test process for what the
//! kernel cannot do here — delay, reordering and duplication.
//!
//! Invariants:
//! - Only UDP is faulted (the link is QUIC): the edge's admin endpoint (TCP) stays reachable, so a
//!   test can read the edge's own figures during a partition.
//! - The namespace, with its veth pair, its rules and its qdisc, is deleted when the
//!   [`EdgeNetwork`] is dropped.
//! - The proxy's faults come from a seeded generator: one seed, one sequence of decisions (the
//!   arrival times of packets still vary run to run).
//!
//! Needs root (`ip netns`, iptables, tc).

use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use tokio::net::UdpSocket;

/// Why a network fault could not be set up or changed.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error(transparent)]
    Command(#[from] outpost_harness::power_cut::CommandFailed),
    #[error("the fault proxy on {addr}: {source}")]
    Proxy {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

fn run(program: &str, args: &[&str]) -> Result<(), NetworkError> {
    Ok(outpost_harness::power_cut::run_command(program, args)?)
}

/// Whether this machine can make namespaces and rules (root, `ip`, `iptables`, `tc`).
pub fn available() -> bool {
    nix::unistd::Uid::effective().is_root()
        && ["ip", "iptables", "tc"].iter().all(|tool| {
            Command::new(tool)
                .arg("-V")
                .output()
                .is_ok_and(|o| o.status.success())
        })
}

/// A network namespace for the edge, joined to the host by a veth pair (`/30`).
#[derive(Debug)]
pub struct EdgeNetwork {
    name: String,
    /// The host's end: the hub (or the proxy) listens here.
    pub host: Ipv4Addr,
    /// The edge's end, inside the namespace.
    pub edge: Ipv4Addr,
    edge_link: String,
}

impl EdgeNetwork {
    /// Creates namespace `op-<tag>` with `10.<a>.<b>.1` (host) and `.2` (edge); `tag` must be
    /// unique on the machine while it exists (tests pass their process id).
    pub fn create(tag: u16) -> Result<Self, NetworkError> {
        let name = format!("op-{tag}");
        let (host_link, edge_link) = (format!("oph{tag}"), format!("ope{tag}"));
        let (a, b) = (200 + (tag >> 14) as u8, (tag >> 6) as u8);
        let c = ((tag & 0x3F) as u8) * 4;
        let host = Ipv4Addr::new(10, a, b, c + 1);
        let edge = Ipv4Addr::new(10, a, b, c + 2);
        // A namespace left by a killed run of the same tag goes first.
        let _ = run("ip", &["netns", "del", &name]);
        let _ = run("ip", &["link", "del", &host_link]);
        run("ip", &["netns", "add", &name])?;
        let network = Self {
            name: name.clone(),
            host,
            edge,
            edge_link: edge_link.clone(),
        };
        run(
            "ip",
            &[
                "link", "add", &host_link, "type", "veth", "peer", "name", &edge_link,
            ],
        )?;
        run("ip", &["link", "set", &edge_link, "netns", &name])?;
        run(
            "ip",
            &["addr", "add", &format!("{host}/30"), "dev", &host_link],
        )?;
        run("ip", &["link", "set", &host_link, "up"])?;
        network.exec(
            "ip",
            &["addr", "add", &format!("{edge}/30"), "dev", &edge_link],
        )?;
        network.exec("ip", &["link", "set", &edge_link, "up"])?;
        network.exec("ip", &["link", "set", "lo", "up"])?;
        Ok(network)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The command prefix that runs a program inside the namespace.
    pub fn prefix(&self) -> Vec<String> {
        ["ip", "netns", "exec", &self.name]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    fn exec(&self, program: &str, args: &[&str]) -> Result<(), NetworkError> {
        let mut all = vec!["netns", "exec", &self.name, program];
        all.extend_from_slice(args);
        run("ip", &all)
    }

    /// Drops `percent` of the UDP datagrams in each direction, at random (iptables `statistic`).
    pub fn loss(&self, percent: u32) -> Result<(), NetworkError> {
        self.heal()?;
        let probability = format!("{:.4}", f64::from(percent.min(100)) / 100.0);
        for chain in ["INPUT", "OUTPUT"] {
            self.exec(
                "iptables",
                &[
                    "-A",
                    chain,
                    "-p",
                    "udp",
                    "-m",
                    "statistic",
                    "--mode",
                    "random",
                    "--probability",
                    &probability,
                    "-j",
                    "DROP",
                ],
            )?;
        }
        Ok(())
    }

    /// Cuts the edge off: every UDP datagram in or out is dropped.
    pub fn partition(&self) -> Result<(), NetworkError> {
        self.heal()?;
        for chain in ["INPUT", "OUTPUT"] {
            self.exec("iptables", &["-A", chain, "-p", "udp", "-j", "DROP"])?;
        }
        Ok(())
    }

    /// Removes the loss and partition rules.
    pub fn heal(&self) -> Result<(), NetworkError> {
        self.exec("iptables", &["-F"])
    }

    /// Caps what the edge sends at `kbit` per second (`tbf` on its end of the pair), or lifts the
    /// cap (`None`).
    pub fn cap(&self, kbit: Option<u32>) -> Result<(), NetworkError> {
        let _ = self.exec("tc", &["qdisc", "del", "dev", &self.edge_link, "root"]);
        if let Some(kbit) = kbit {
            self.exec(
                "tc",
                &[
                    "qdisc",
                    "add",
                    "dev",
                    &self.edge_link,
                    "root",
                    "tbf",
                    "rate",
                    &format!("{kbit}kbit"),
                    "burst",
                    "16kbit",
                    "latency",
                    "200ms",
                ],
            )?;
        }
        Ok(())
    }
}

impl Drop for EdgeNetwork {
    fn drop(&mut self) {
        if let Err(e) = run("ip", &["netns", "del", &self.name]) {
            tracing::warn!(error = %e, "network namespace not deleted");
        }
    }
}

/// What the fault proxy does to each datagram, in both directions.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProxyFaults {
    /// Each datagram waits a random time up to this before it is sent on: datagrams overtake
    /// each other (reordering).
    pub max_delay: Duration,
    /// The share of datagrams sent twice (the copy after its own random delay).
    pub duplicate: f64,
}

/// What the proxy did, for a test's report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProxyCounters {
    pub forwarded: u64,
    pub delayed: u64,
    pub duplicated: u64,
}

#[derive(Debug, Default)]
struct Counters {
    forwarded: AtomicU64,
    delayed: AtomicU64,
    duplicated: AtomicU64,
}

/// A UDP proxy for one client (the edge): datagrams to `addr` go to the upstream (the hub) and
/// the answers back, each delayed and duplicated as [`ProxyFaults`] says.
#[derive(Debug)]
pub struct FaultProxy {
    pub addr: SocketAddr,
    faults: Arc<Mutex<ProxyFaults>>,
    counters: Arc<Counters>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl FaultProxy {
    /// Listens on `listen` and forwards to `upstream`; faults start off.
    pub async fn start(
        listen: SocketAddr,
        upstream: SocketAddr,
        seed: u64,
    ) -> Result<Self, NetworkError> {
        let proxy_err = |addr| move |source| NetworkError::Proxy { addr, source };
        let front = Arc::new(UdpSocket::bind(listen).await.map_err(proxy_err(listen))?);
        let addr = front.local_addr().map_err(proxy_err(listen))?;
        let back = Arc::new(
            UdpSocket::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
                .await
                .map_err(proxy_err(upstream))?,
        );
        back.connect(upstream).await.map_err(proxy_err(upstream))?;
        let faults = Arc::new(Mutex::new(ProxyFaults::default()));
        let counters = Arc::new(Counters::default());
        let client = Arc::new(Mutex::new(None::<SocketAddr>));
        let rng = Arc::new(Mutex::new(rand::rngs::StdRng::seed_from_u64(seed)));
        let to_hub = {
            let (front, back, client) = (front.clone(), back.clone(), client.clone());
            let (faults, counters, rng) = (faults.clone(), counters.clone(), rng.clone());
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65_536];
                while let Ok((n, from)) = front.recv_from(&mut buf).await {
                    *client.lock().unwrap_or_else(PoisonError::into_inner) = Some(from);
                    let sink = Sink::Connected(back.clone());
                    forward(&buf[..n], sink, &faults, &counters, &rng);
                }
            })
        };
        let to_edge = {
            let (faults, counters) = (faults.clone(), counters.clone());
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65_536];
                while let Ok(n) = back.recv(&mut buf).await {
                    let to = *client.lock().unwrap_or_else(PoisonError::into_inner);
                    if let Some(to) = to {
                        forward(
                            &buf[..n],
                            Sink::To(front.clone(), to),
                            &faults,
                            &counters,
                            &rng,
                        );
                    }
                }
            })
        };
        Ok(Self {
            addr,
            faults,
            counters,
            tasks: vec![to_hub, to_edge],
        })
    }

    pub fn set(&self, faults: ProxyFaults) {
        *self.faults.lock().unwrap_or_else(PoisonError::into_inner) = faults;
    }

    pub fn counters(&self) -> ProxyCounters {
        ProxyCounters {
            forwarded: self.counters.forwarded.load(Ordering::Relaxed),
            delayed: self.counters.delayed.load(Ordering::Relaxed),
            duplicated: self.counters.duplicated.load(Ordering::Relaxed),
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

#[derive(Clone)]
enum Sink {
    Connected(Arc<UdpSocket>),
    To(Arc<UdpSocket>, SocketAddr),
}

impl Sink {
    async fn send(&self, bytes: &[u8]) {
        let _ = match self {
            Sink::Connected(socket) => socket.send(bytes).await,
            Sink::To(socket, to) => socket.send_to(bytes, to).await,
        };
    }
}

/// Sends `bytes` on at once or after a random delay, once or twice.
fn forward(
    bytes: &[u8],
    sink: Sink,
    faults: &Mutex<ProxyFaults>,
    counters: &Arc<Counters>,
    rng: &Mutex<rand::rngs::StdRng>,
) {
    let faults = *faults.lock().unwrap_or_else(PoisonError::into_inner);
    let (delays, copies) = {
        let mut rng = rng.lock().unwrap_or_else(PoisonError::into_inner);
        let copies = if rng.random_bool(faults.duplicate.clamp(0.0, 1.0)) {
            2
        } else {
            1
        };
        let max = faults.max_delay.as_micros() as u64;
        let delays: Vec<u64> = (0..copies)
            .map(|_| {
                if max == 0 {
                    0
                } else {
                    rng.random_range(0..=max)
                }
            })
            .collect();
        (delays, copies)
    };
    counters.forwarded.fetch_add(1, Ordering::Relaxed);
    if copies > 1 {
        counters.duplicated.fetch_add(1, Ordering::Relaxed);
    }
    for delay in delays {
        let bytes = bytes.to_vec();
        let sink = sink.clone();
        if delay == 0 {
            tokio::spawn(async move { sink.send(&bytes).await });
        } else {
            counters.delayed.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_micros(delay)).await;
                sink.send(&bytes).await;
            });
        }
    }
}
