//! `chaos-tests`: faults for the delivery path, in two kinds.
//!
//! - A deterministic simulation ([`simulate`]): the real edge outbox, the real uplink session, the
//!   real hub session and the real event log over quinn, with quinn's UDP replaced by turmoil's
//!   simulated network ([`TurmoilUdp`]). One seed fixes the fault schedule: random packet loss,
//!   random latency (so packets reorder), partitions, and `kill -9`-like restarts of the hub and
//!   the edge (turmoil drops the host's runtime and starts it again over the same data
//!   directory). The invariant checked after the faults end and the backlog drains: every event
//!   the edge accepted is committed at the hub exactly once, the hub's log is the sequence
//!   1..=last without gaps or repeats, and last equals the edge's last sequence.
//! - The tools of the real-process suite (`tests/chaos_*.rs`, run on the `outpost-chaos` binary,
//!   which is `outpost-sim`): the one [`checker`] every scenario ends with, a disk that forgets
//!   what was not synced when the power is cut ([`power_loss_fs`]), and the network faults a
//!   kernel without netem allows ([`network`]).
//!
//! What the simulation does not make deterministic: the outbox writer and the event-log writer
//! are real threads over a real disk (sled and fdatasync), so two runs of one seed schedule the
//! same faults and traffic but may interleave commits differently. A failing seed still replays
//! the same scenario.

pub mod checker;
pub mod floor;
pub mod network;
pub mod power_loss_fs;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use outpost_edge::CommandRouter;
use outpost_edge::EdgeShared;
use outpost_edge::Session;
use outpost_edge::{Outbox, OutboxLimits};
use outpost_hub::EventLog;
use outpost_link::{EventBody, EventClass};
use rand::{Rng, SeedableRng};

type ReadableFuture = Pin<Box<dyn std::future::Future<Output = std::io::Result<()>> + Send>>;

/// quinn's UDP socket over turmoil's simulated network, dropping a fraction of outgoing datagrams.
pub struct TurmoilUdp {
    socket: Arc<turmoil::net::UdpSocket>,
    readable: Mutex<Option<ReadableFuture>>,
    loss: f64,
    rng: Mutex<rand::rngs::StdRng>,
}

impl std::fmt::Debug for TurmoilUdp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TurmoilUdp")
            .field("loss", &self.loss)
            .finish()
    }
}

impl TurmoilUdp {
    pub fn new(socket: turmoil::net::UdpSocket, loss: f64, seed: u64) -> Self {
        Self {
            socket: Arc::new(socket),
            readable: Mutex::new(None),
            loss,
            rng: Mutex::new(rand::rngs::StdRng::seed_from_u64(seed)),
        }
    }
}

#[derive(Debug)]
struct AlwaysWritable;

impl quinn::UdpPoller for AlwaysWritable {
    fn poll_writable(self: Pin<&mut Self>, _cx: &mut Context) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl quinn::AsyncUdpSocket for TurmoilUdp {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn quinn::UdpPoller>> {
        Box::pin(AlwaysWritable)
    }

    fn try_send(&self, transmit: &quinn::udp::Transmit) -> std::io::Result<()> {
        let lost = self.loss > 0.0
            && self
                .rng
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .random_bool(self.loss);
        if lost {
            return Ok(());
        }
        match self
            .socket
            .try_send_to(transmit.contents, transmit.destination)
        {
            Ok(_) => Ok(()),
            // A full simulated link drops the datagram, as a real one would.
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn poll_recv(
        &self,
        cx: &mut Context,
        bufs: &mut [std::io::IoSliceMut<'_>],
        meta: &mut [quinn::udp::RecvMeta],
    ) -> Poll<std::io::Result<usize>> {
        loop {
            match self.socket.try_recv_from(&mut bufs[0]) {
                Ok((len, addr)) => {
                    meta[0] = quinn::udp::RecvMeta {
                        addr,
                        len,
                        stride: len,
                        ..Default::default()
                    };
                    return Poll::Ready(Ok(1));
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    let mut slot = self.readable.lock().unwrap_or_else(PoisonError::into_inner);
                    let future = slot.get_or_insert_with(|| {
                        let socket = self.socket.clone();
                        Box::pin(async move { socket.readable().await })
                    });
                    match future.as_mut().poll(cx) {
                        Poll::Ready(Ok(())) => {
                            *slot = None;
                            continue;
                        }
                        Poll::Ready(Err(e)) => {
                            *slot = None;
                            return Poll::Ready(Err(e));
                        }
                        Poll::Pending => return Poll::Pending,
                    }
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    fn may_fragment(&self) -> bool {
        false
    }
}

/// A scenario's knobs.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub seed: u64,
    /// Fraction of datagrams each side drops.
    pub loss: f64,
    /// Simulated seconds of traffic under faults.
    pub fault_seconds: u64,
    /// Events the edge offers per simulated second.
    pub rate: u64,
}

impl Scenario {
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            loss: 0.02,
            fault_seconds: 10,
            rate: 500,
        }
    }
}

/// What a successful run saw.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub accepted: u64,
    /// Bulk payloads delivered and verified byte for byte.
    pub bulk: u64,
    pub committed: u64,
    pub hub_restarts: u32,
    pub edge_restarts: u32,
    pub partitions: u32,
}

/// A broken invariant, with the seed that replays it.
#[derive(Debug, thiserror::Error)]
#[error("seed {seed}: {what} (replay: OUTPOST_SIM_SEED={seed} cargo nextest run -p chaos-tests)")]
pub struct Violation {
    pub seed: u64,
    pub what: String,
}

const HUB_PORT: u16 = 7000;

/// State the hosts share with the checker (they run in one process).
#[derive(Default)]
struct Shared {
    stop_producing: AtomicBool,
    /// Payload counters the edge's outbox accepted (appends that returned a sequence).
    accepted: Mutex<Vec<u64>>,
    next_payload: AtomicU64,
    outbox: Mutex<Option<Outbox>>,
    eventlog: Mutex<Option<EventLog>>,
    /// Bulk payloads queued at the edge, and what was queued.
    bulk: outpost_edge::BulkQueue,
    bulk_submitted: Mutex<Vec<(String, Vec<u8>)>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Opens a database another (just killed) incarnation may still be closing.
fn open_retrying<T, E: std::fmt::Display>(
    mut open: impl FnMut() -> Result<T, E>,
) -> Result<T, String> {
    let mut last = String::new();
    for _ in 0..500 {
        match open() {
            Ok(v) => return Ok(v),
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Err(last)
}

fn endpoint_config(seed: u64) -> quinn::EndpointConfig {
    let reset = ring_key(seed);
    let mut config = quinn::EndpointConfig::new(Arc::new(reset));
    let mut rng_seed = [0u8; 32];
    rng_seed[..8].copy_from_slice(&seed.to_le_bytes());
    config.rng_seed(Some(rng_seed));
    config
}

fn ring_key(seed: u64) -> ring::hmac::Key {
    ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &seed.to_be_bytes())
}

fn uplink_config(pki: &Path, hub: SocketAddr) -> outpost_config::UplinkConfig {
    outpost_config::UplinkConfig {
        hub,
        server_name: "localhost".into(),
        ca: pki.join("ca.pem"),
        cert: pki.join("edges").join("edge-01.pem"),
        key: pki.join("edges").join("edge-01.key"),
        reconnect_initial_ms: 100,
        reconnect_max_ms: 1000,
        batch_max_events: 64,
        window_events: 512,
        keepalive_ms: 500,
        idle_timeout_ms: 3000,
        dead_after_ms: 1500,
    }
}

/// Runs one scenario and checks the delivery invariant.
pub fn simulate(scenario: &Scenario) -> Result<Outcome, Violation> {
    let seed = scenario.seed;
    let violation = |what: String| Violation { seed, what };
    outpost_process::install_crypto_provider();
    outpost_process::telemetry::init_logging("error", outpost_process::telemetry::LogStyle::Human);
    let dir = tempfile::tempdir().map_err(|e| violation(e.to_string()))?;
    let pki = dir.path().join("pki");
    outpost_hub::pki::init(&pki, &["localhost".to_owned()])
        .map_err(|e| violation(e.to_string()))?;
    outpost_hub::pki::issue_edge(&pki, "edge-01", false).map_err(|e| violation(e.to_string()))?;
    let shared = Arc::new(Shared::default());

    let mut sim = turmoil::Builder::new()
        .simulation_duration(Duration::from_secs(scenario.fault_seconds + 600))
        .min_message_latency(Duration::from_millis(1))
        .max_message_latency(Duration::from_millis(25))
        .rng_seed(seed)
        .build();

    let hub_dir = dir.path().join("hub");
    {
        let (shared, pki, hub_dir) = (shared.clone(), pki.clone(), hub_dir.clone());
        let loss = scenario.loss;
        sim.host("hub", move || {
            let (shared, pki, hub_dir) = (shared.clone(), pki.clone(), hub_dir.clone());
            async move { run_hub(shared, &pki, &hub_dir, loss, seed).await }
        });
    }
    let edge_dir = dir.path().join("edge");
    {
        let (shared, pki, edge_dir) = (shared.clone(), pki.clone(), edge_dir.clone());
        let (loss, rate) = (scenario.loss, scenario.rate);
        sim.host("edge", move || {
            let (shared, pki, edge_dir) = (shared.clone(), pki.clone(), edge_dir.clone());
            async move { run_edge(shared, &pki, &edge_dir, loss, rate, seed).await }
        });
    }
    {
        let shared = shared.clone();
        let fault_seconds = scenario.fault_seconds;
        sim.client("checker", async move {
            tokio::time::sleep(Duration::from_secs(fault_seconds)).await;
            shared.stop_producing.store(true, Ordering::SeqCst);
            // Drain: wait until the edge's outbox is fully acknowledged.
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                let outbox = lock(&shared.outbox).clone();
                if let Some(outbox) = outbox
                    && outbox.durable_seq() > 0
                    && outbox.acked_seq() == outbox.durable_seq()
                    && shared.bulk.pending() == 0
                {
                    return Ok(());
                }
            }
        });
    }

    let mut faults = rand::rngs::StdRng::seed_from_u64(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let mut outcome = Outcome::default();
    let fault_end = Duration::from_secs(scenario.fault_seconds);
    let mut next_fault = Duration::from_millis(faults.random_range(500..3000));
    let mut partitioned_until: Option<Duration> = None;
    loop {
        let done = sim.step().map_err(|e| {
            let outbox = lock(&shared.outbox).clone();
            let eventlog = lock(&shared.eventlog).clone();
            violation(format!(
                "simulation failed: {e}; edge last {:?} acked {:?}, hub committed {:?}",
                outbox.as_ref().map(Outbox::durable_seq),
                outbox.as_ref().map(Outbox::acked_seq),
                eventlog.map(|l| l.committed_seq("edge-01")),
            ))
        })?;
        if done {
            break;
        }
        let now = sim.elapsed();
        if let Some(until) = partitioned_until
            && now >= until
        {
            sim.repair("edge", "hub");
            partitioned_until = None;
        }
        if now >= next_fault && now < fault_end {
            match faults.random_range(0..3) {
                0 => {
                    sim.bounce("hub");
                    outcome.hub_restarts += 1;
                }
                1 => {
                    sim.bounce("edge");
                    outcome.edge_restarts += 1;
                }
                _ => {
                    if partitioned_until.is_none() {
                        sim.partition("edge", "hub");
                        partitioned_until =
                            Some(now + Duration::from_millis(faults.random_range(200..5000)));
                        outcome.partitions += 1;
                    }
                }
            }
            next_fault = now + Duration::from_millis(faults.random_range(500..3000));
        }
    }
    if partitioned_until.is_some() {
        sim.repair("edge", "hub");
    }

    // The invariant.
    let outbox = lock(&shared.outbox)
        .clone()
        .ok_or_else(|| violation("edge never opened its outbox".into()))?;
    let last = outbox.durable_seq();
    let eventlog = lock(&shared.eventlog)
        .clone()
        .ok_or_else(|| violation("hub never opened its log".into()))?;
    let committed = eventlog
        .committed_seq("edge-01")
        .map_err(|e| violation(e.to_string()))?;
    if committed != last {
        return Err(violation(format!(
            "hub committed {committed}, edge's last sequence is {last}"
        )));
    }
    let events = eventlog
        .read("edge-01", 0, usize::MAX)
        .map_err(|e| violation(e.to_string()))?;
    let seqs: Vec<u64> = events.iter().map(|e| e.event.seq).collect();
    if seqs != (1..=last).collect::<Vec<u64>>() {
        let first_bad = seqs.iter().zip(1..).find(|(s, want)| **s != *want);
        return Err(violation(format!(
            "hub log is not 1..={last} in order: {} events, first mismatch {first_bad:?}",
            seqs.len()
        )));
    }
    let mut delivered: Vec<u64> = events
        .iter()
        .filter_map(|e| match &e.event.body {
            EventBody::Synthetic { payload } => {
                payload.first_chunk::<8>().map(|b| u64::from_be_bytes(*b))
            }
            _ => None,
        })
        .collect();
    let total = delivered.len();
    delivered.sort_unstable();
    delivered.dedup();
    if delivered.len() != total {
        return Err(violation(format!(
            "{} payloads committed twice",
            total - delivered.len()
        )));
    }
    let accepted = lock(&shared.accepted).clone();
    let missing: Vec<u64> = accepted
        .iter()
        .filter(|p| delivered.binary_search(p).is_err())
        .copied()
        .collect();
    if !missing.is_empty() {
        return Err(violation(format!(
            "{} accepted events never reached the hub (first: payload {})",
            missing.len(),
            missing[0]
        )));
    }
    for (id, bytes) in lock(&shared.bulk_submitted).iter() {
        let stored = std::fs::read(hub_dir.join("bulk").join("edge-01").join(id)).map_err(|e| {
            violation(format!(
                "bulk payload {id} was confirmed but is not stored: {e}"
            ))
        })?;
        if &stored != bytes {
            return Err(violation(format!(
                "bulk payload {id} stored with different bytes"
            )));
        }
    }
    outcome.bulk = lock(&shared.bulk_submitted).len() as u64;
    outcome.accepted = accepted.len() as u64;
    outcome.committed = committed;
    Ok(outcome)
}

async fn run_hub(
    shared: Arc<Shared>,
    pki: &Path,
    dir: &Path,
    loss: f64,
    seed: u64,
) -> Result<(), Box<dyn std::error::Error>> {
    // The previous incarnation's handle must go, or its writer keeps the database locked.
    drop(lock(&shared.eventlog).take());
    let db_dir = dir.join("db");
    let durable = Arc::new(open_retrying(|| {
        outpost_storage::DurableDb::open_with_cache(&db_dir, 8 << 20)
    })?);
    let eventlog = EventLog::start(durable.clone(), 1024, |_| {})?;
    *lock(&shared.eventlog) = Some(eventlog.clone());
    let context = Arc::new(outpost_hub::LinkContext {
        eventlog,
        commands: outpost_hub::CommandLog::open(durable.clone())?,
        edges: outpost_hub::EdgeDirectory::open(durable.db())?,
        sessions: Arc::new(outpost_hub::Sessions::with_receive_budget(256 << 20)),
        pki_dir: pki.to_owned(),
        bulk_dir: dir.join("bulk"),
        dead_after: Duration::from_secs(2),
        directory: Default::default(),
    });
    let socket = turmoil::net::UdpSocket::bind(("0.0.0.0", HUB_PORT)).await?;
    let server = outpost_link::io::server_config(
        &pki.join("ca.pem"),
        &pki.join("hub.pem"),
        &pki.join("hub.key"),
        Duration::from_millis(500),
        Duration::from_millis(3000),
        outpost_hub::MIN_RECEIVE_WINDOW,
    )?;
    let mut config = endpoint_config(seed);
    config
        .cid_generator(move || Box::new(quinn_proto::HashedConnectionIdGenerator::from_key(seed)));
    let endpoint = quinn::Endpoint::new_with_abstract_socket(
        config,
        Some(server),
        Arc::new(TurmoilUdp::new(socket, loss, seed ^ 1)),
        Arc::new(quinn::TokioRuntime),
    )?;
    outpost_hub::serve_endpoint(endpoint, context).await;
    Ok(())
}

async fn run_edge(
    shared: Arc<Shared>,
    pki: &Path,
    dir: &Path,
    loss: f64,
    rate: u64,
    seed: u64,
) -> Result<(), Box<dyn std::error::Error>> {
    drop(lock(&shared.outbox).take());
    let outbox_dir: PathBuf = dir.join("outbox");
    let limits = OutboxLimits {
        budget_bytes: 64 << 20,
        max_batch: 256,
        compact_above_bytes: u64::MAX,
    };
    let (outbox, _writer, _) = open_retrying(|| Outbox::open(&outbox_dir, limits, |_| {}))?;
    *lock(&shared.outbox) = Some(outbox.clone());
    let socket = turmoil::net::UdpSocket::bind(("0.0.0.0", 0)).await?;
    let mut endpoint = quinn::Endpoint::new_with_abstract_socket(
        endpoint_config(seed ^ 2),
        None,
        Arc::new(TurmoilUdp::new(socket, loss, seed ^ 3)),
        Arc::new(quinn::TokioRuntime),
    )?;
    let config = uplink_config(pki, SocketAddr::new(turmoil::lookup("hub"), HUB_PORT));
    endpoint.set_default_client_config(outpost_link::io::client_config(
        &config.ca,
        &config.cert,
        &config.key,
        Duration::from_millis(config.keepalive_ms),
        Duration::from_millis(config.idle_timeout_ms),
    )?);
    let session = Session {
        edge_id: "edge-01".into(),
        config,
        devices: vec![],
        outbox: outbox.clone(),
        router: CommandRouter::new(outbox.clone(), EdgeShared::default()),
        endpoint,
        bulk: shared.bulk.clone(),
    };
    tokio::spawn(session.run_forever());
    // Every 10 ms of simulated time, a tick's worth of events is appended concurrently.
    let per_tick = (rate / 100).max(1);
    let mut tick = 0u64;
    while !shared.stop_producing.load(Ordering::SeqCst) {
        tick += 1;
        if tick.is_multiple_of(50) {
            // A screenshot-sized payload now and then, on streams of its own.
            let bytes: Vec<u8> = (0..4096u32)
                .map(|i| (i as u64 ^ tick ^ seed) as u8)
                .collect();
            if let Ok(id) = shared.bulk.submit("tv-1", "image/png", bytes.clone()) {
                lock(&shared.bulk_submitted).push((id, bytes));
            }
        }
        let appends = (0..per_tick).map(|_| {
            let payload = shared.next_payload.fetch_add(1, Ordering::SeqCst);
            let body = EventBody::Synthetic {
                payload: payload.to_be_bytes().to_vec(),
            };
            let outbox = outbox.clone();
            async move {
                (
                    payload,
                    outbox.append("syn-1", EventClass::Money, body).await,
                )
            }
        });
        for (payload, result) in futures::future::join_all(appends).await {
            // Accepted = the append returned a sequence: only then may a device be acknowledged.
            if result.is_ok() {
                lock(&shared.accepted).push(payload);
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    std::future::pending::<()>().await;
    Ok(())
}
