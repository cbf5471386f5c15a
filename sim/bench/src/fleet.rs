//! `outpost-sim bench fleet`: one hub, many edges. The hub runs as its own process (both sides
//! of each event durable as in production on the hub's side); N edges are simulated in this
//! process, each with its own certificate from the site's PKI and its own QUIC connection (its
//! own UDP socket), each speaking the real link protocol ([`EdgeSession`], the pure state machine
//! the edge's uplink drives) from an in-memory generator of 200-byte events.
//!
//! Phases, in one run:
//! - `connect`: the N edges connect at once (time until every session is established), then sit
//!   idle: the hub's RSS per connected edge against its RSS before.
//! - `solo`: one more edge alone at full speed while the N sit idle: the baseline the fleet is
//!   compared with.
//! - `max`: every edge sends as fast as the hub takes it: events committed per second in total
//!   and per edge (from the hub's committed sequences), the hub's CPU per event and peak RSS.
//! - `storm`: every edge produces at a fixed rate; the hub is killed (`kill -9`) and started again
//!   after an outage; the edges reconnect with the edge's own backoff (200 ms doubling to 30 s,
//!   ±20 %, the defaults): time until all are back and until every backlog is committed.
//!
//! After each phase the hub's `outpost_hub_committed_seq` of every edge must equal what the edge
//! produced, and `outpost_hub_missing_events_total` must be 0: the benchmark fails otherwise.
//!
//! The simulated edges keep nothing on disk (their events are a function of the sequence, so a
//! resend after a reconnect is the same event): what is measured is the hub and the link, not the
//! edge's outbox (`bench peers` measures that).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use outpost_actors::Backoff;
use outpost_harness::harness::{RunningSite, scrape_sum};
use outpost_harness::site::{SiteLayout, SiteSpec};
use outpost_link::io::{
    Duplex, FramedRecv, LinkIoError, client_config, close, next_on, peer_silent, sleep_until,
    write_frame,
};
use outpost_link::session::{EdgeConfig, EdgeOutput, EdgeSession};
use outpost_link::{ControlFrame, Event, EventBody, EventClass, EventFrame, Hello};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::peers::proc_memory;

/// Options of `bench fleet`.
#[derive(Debug, Clone, clap::Args)]
pub struct FleetArgs {
    /// 50 edges and short phases (a smoke test of the benchmark itself).
    #[arg(long)]
    pub quick: bool,
    /// Also write the JSON here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Directory for the site (PKI, hub data).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Simulated edges.
    #[arg(long, default_value_t = 1_000)]
    pub edges: usize,
    /// Seconds the full-speed phases measure (after 2 s of warm-up).
    #[arg(long, default_value_t = 20)]
    pub seconds: u64,
    /// Seconds the hub stays down in the storm.
    #[arg(long, default_value_t = 20)]
    pub outage_seconds: u64,
    /// Events/s each edge produces during the storm.
    #[arg(long, default_value_t = 20.0)]
    pub outage_rate: f64,
    /// The edges' longest reconnect backoff, ms (the edge's default).
    #[arg(long, default_value_t = 30_000)]
    pub reconnect_max_ms: u64,
}

const EVENT_BYTES: usize = 200;
const WARM_UP: Duration = Duration::from_secs(2);
/// The edge's defaults (`config/defaults/edge.toml`).
const KEEPALIVE: Duration = Duration::from_millis(500);
const DEAD_AFTER: Duration = Duration::from_millis(1_500);
const IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// The edge's batches; a window of 4,096 events rather than the edge's 65,536, so that a thousand
/// simulated edges' unacknowledged events fit one process's memory (about 1 MiB each).
const LINK: EdgeConfig = EdgeConfig {
    window_events: 4_096,
    batch_max_events: 1_024,
    welcome_timeout: Duration::from_secs(10),
};
const RECONNECT_INITIAL: Duration = Duration::from_millis(200);

/// How the edges produce events, from `since` on.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Pace {
    /// Nothing new.
    Stopped { since: Instant },
    /// As fast as the hub takes them.
    Unlimited { since: Instant },
    /// `per_second` each.
    Steady { per_second: f64, since: Instant },
}

impl Pace {
    fn since(self) -> Instant {
        match self {
            Pace::Stopped { since } | Pace::Unlimited { since } | Pace::Steady { since, .. } => {
                since
            }
        }
    }
}

/// One simulated edge's events: sequence `n` exists once produced, and is always the same event.
#[derive(Debug)]
struct Generator {
    produced: u64,
    /// What had been produced when the pace last changed.
    base: u64,
    pace: Pace,
}

impl Generator {
    /// Changes the pace as of its `since` (an edge busy elsewhere may see the change late: what
    /// it produces does not depend on when it looked).
    fn set_pace(&mut self, pace: Pace) {
        self.settle(pace.since());
        self.base = self.produced;
        self.pace = pace;
    }

    /// The highest sequence that exists by `now` (for [`Pace::Unlimited`]: what was taken).
    fn settle(&mut self, now: Instant) -> u64 {
        if let Pace::Steady { per_second, since } = self.pace {
            let due = self.base
                + (now.saturating_duration_since(since).as_secs_f64() * per_second) as u64;
            self.produced = self.produced.max(due);
        }
        self.produced
    }

    /// Events `from..` (at most `max`) that exist by `now`, if there is one.
    fn take(&mut self, from: u64, max: usize, now: Instant, boot_id: u128) -> Option<Vec<Event>> {
        let last = match self.pace {
            Pace::Unlimited { .. } => from + max as u64 - 1,
            _ => self.settle(now).min(from + max as u64 - 1),
        };
        if last < from {
            return None;
        }
        self.produced = self.produced.max(last);
        let wall_us = outpost_process::clock::unix_us();
        Some(
            (from..=last)
                .map(|seq| Event {
                    seq,
                    device: "generator".into(),
                    class: EventClass::Money,
                    wall_us,
                    mono_us: 0,
                    boot_id,
                    body: EventBody::Synthetic {
                        payload: vec![(seq % 251) as u8; EVENT_BYTES],
                    },
                })
                .collect(),
        )
    }

    /// When event `from` will exist, if the pace says (none: when the pace changes).
    fn due_at(&self, from: u64) -> Option<Instant> {
        match self.pace {
            Pace::Steady { per_second, since } if per_second > 0.0 => Some(
                since
                    + Duration::from_secs_f64((from.saturating_sub(self.base)) as f64 / per_second),
            ),
            _ => None,
        }
    }
}

/// What one simulated edge shows the benchmark.
#[derive(Debug, Default)]
struct Counters {
    produced: AtomicU64,
    acked: AtomicU64,
    connected: AtomicBool,
    failed_sessions: AtomicU64,
}

struct SimEdge {
    id: String,
    hub: SocketAddr,
    endpoint: quinn::Endpoint,
    client: quinn::ClientConfig,
    boot_id: u128,
    counters: Arc<Counters>,
    backoff: Backoff,
}

impl SimEdge {
    async fn run_forever(self, mut pace: watch::Receiver<Pace>) {
        let mut generator = Generator {
            produced: 0,
            base: 0,
            pace: *pace.borrow_and_update(),
        };
        let mut attempt = 0u32;
        loop {
            let started = Instant::now();
            let result = self.session(&mut generator, &mut pace).await;
            self.counters.connected.store(false, Ordering::SeqCst);
            if pace.has_changed().is_err() {
                return;
            }
            if let Err(err) = result {
                tracing::info!(edge = %self.id, %err, attempt, "simulated edge: session failed");
                self.counters
                    .failed_sessions
                    .fetch_add(1, Ordering::Relaxed);
            }
            if started.elapsed() > Duration::from_secs(30) {
                attempt = 0;
            }
            attempt = attempt.saturating_add(1);
            tokio::time::sleep(self.backoff.delay(attempt)).await;
        }
    }

    async fn session(
        &self,
        generator: &mut Generator,
        pace: &mut watch::Receiver<Pace>,
    ) -> Result<(), LinkIoError> {
        if pace.has_changed().unwrap_or(false) {
            generator.set_pace(*pace.borrow_and_update());
        }
        self.counters
            .produced
            .store(generator.settle(Instant::now()), Ordering::SeqCst);
        let connection = self
            .endpoint
            .connect_with(self.client.clone(), self.hub, "localhost")?
            .await?;
        let result = tokio::select! {
            r = self.drive(&connection, generator, pace) => r,
            e = connection.closed() => Err(e.into()),
            e = peer_silent(&connection, DEAD_AFTER) => Err(e),
        };
        connection.close(close::SHUTDOWN.into(), b"session ended");
        result
    }

    async fn drive(
        &self,
        connection: &quinn::Connection,
        generator: &mut Generator,
        pace: &mut watch::Receiver<Pace>,
    ) -> Result<(), LinkIoError> {
        let (mut control_send, control_recv) = connection.open_bi().await?;
        let mut control_recv = FramedRecv::new(control_recv);
        let now = Instant::now();
        let hello = Hello {
            edge_id: self.id.clone(),
            boot_id: self.boot_id,
            wall_ms: outpost_process::clock::unix_ms(),
            last_seq: generator.settle(now),
            trimmed_seq: self.counters.acked.load(Ordering::SeqCst),
            devices: Vec::new(),
            software: "outpost-sim bench fleet".into(),
        };
        let mut session = EdgeSession::start(LINK, hello, now.into_std());
        let mut events: Option<Duplex> = None;
        let mut reading: Option<(u64, usize)> = None;
        loop {
            while let Some(output) = session.poll_output() {
                match output {
                    EdgeOutput::Control(frame) => write_frame(&mut control_send, &frame).await?,
                    EdgeOutput::Events(frame) => {
                        let (send, _) = events
                            .as_mut()
                            .ok_or_else(|| LinkIoError::Protocol("no events stream".into()))?;
                        write_frame(send, &frame).await?;
                        tokio::task::yield_now().await;
                    }
                    EdgeOutput::AdoptSequence(seq) => {
                        generator.produced = generator.produced.max(seq);
                    }
                    EdgeOutput::Trim(seq) => self.counters.acked.store(seq, Ordering::SeqCst),
                    EdgeOutput::Read { from, max } => reading = Some((from, max)),
                    EdgeOutput::Established { .. } => {
                        self.counters.connected.store(true, Ordering::SeqCst);
                        let (send, recv) = connection.open_bi().await?;
                        events = Some((send, FramedRecv::new(recv)));
                    }
                    EdgeOutput::HubLostEvents {
                        hub_committed,
                        edge_trimmed,
                    } => {
                        return Err(LinkIoError::Protocol(format!(
                            "the hub holds {hub_committed}, less than the {edge_trimmed} it acknowledged"
                        )));
                    }
                    EdgeOutput::Closed(error) => return Err(error.into()),
                    // Nobody issues commands or sends payloads in this benchmark.
                    EdgeOutput::Run(_) | EdgeOutput::BulkSettled { .. } => {}
                }
            }
            let now = Instant::now();
            if let Some((from, max)) = reading
                && let Some(batch) = generator.take(from, max, now, self.boot_id)
            {
                reading = None;
                self.counters
                    .produced
                    .store(generator.produced, Ordering::SeqCst);
                session.handle_outbox(batch);
                continue;
            }
            self.counters
                .produced
                .store(generator.settle(now), Ordering::SeqCst);
            let due = reading
                .and_then(|(from, _)| generator.due_at(from))
                .map(Instant::into_std);
            let timeout = session.poll_timeout();
            tokio::select! {
                frame = control_recv.next::<ControlFrame>() => match frame? {
                    Some(frame) => session.handle_control(frame),
                    None => return Ok(()),
                },
                frame = next_on::<EventFrame>(&mut events) => match frame? {
                    Some(frame) => session.handle_events(frame),
                    None => return Ok(()),
                },
                changed = pace.changed() => match changed {
                    Ok(()) => generator.set_pace(*pace.borrow_and_update()),
                    // The benchmark is over.
                    Err(_) => return Ok(()),
                },
                () = sleep_until(due), if due.is_some() => {}
                () = sleep_until(timeout), if timeout.is_some() => {
                    session.handle_timeout(Instant::now().into_std());
                }
            }
        }
    }
}

/// The simulated edges of one phase and how to steer them.
struct Fleet {
    ids: Vec<String>,
    counters: Vec<Arc<Counters>>,
    pace: watch::Sender<Pace>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Fleet {
    fn start(layout: &SiteLayout, ids: &[String], reconnect_max: Duration) -> anyhow::Result<Self> {
        let (pace, _) = watch::channel(Pace::Stopped {
            since: Instant::now(),
        });
        let mut counters = Vec::new();
        let mut tasks = Vec::new();
        let ca = layout.pki_dir.join("ca.pem");
        for (index, id) in ids.iter().enumerate() {
            let cert = layout.pki_dir.join("edges").join(format!("{id}.pem"));
            let key = layout.pki_dir.join("edges").join(format!("{id}.key"));
            let client = client_config(&ca, &cert, &key, KEEPALIVE, IDLE_TIMEOUT)
                .with_context(|| format!("client configuration of {id}"))?;
            let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse()?)
                .with_context(|| format!("UDP socket of {id} (file descriptors?)"))?;
            let edge_counters = Arc::new(Counters::default());
            let edge = SimEdge {
                id: id.clone(),
                hub: layout.hub_link,
                endpoint,
                client,
                boot_id: (u128::from(std::process::id()) << 64) | index as u128,
                counters: edge_counters.clone(),
                backoff: Backoff {
                    initial: RECONNECT_INITIAL,
                    max: reconnect_max,
                    multiplier: 2.0,
                    jitter: 0.2,
                },
            };
            counters.push(edge_counters);
            tasks.push(tokio::spawn(edge.run_forever(pace.subscribe())));
        }
        Ok(Self {
            ids: ids.to_vec(),
            counters,
            pace,
            tasks,
        })
    }

    fn stop_producing(&self) {
        self.pace.send_replace(Pace::Stopped {
            since: Instant::now(),
        });
    }

    fn produce(&self, per_second: Option<f64>) {
        let since = Instant::now();
        self.pace.send_replace(match per_second {
            Some(per_second) => Pace::Steady { per_second, since },
            None => Pace::Unlimited { since },
        });
    }

    fn connected(&self) -> usize {
        self.counters
            .iter()
            .filter(|c| c.connected.load(Ordering::SeqCst))
            .count()
    }

    fn acked(&self) -> Vec<u64> {
        self.counters
            .iter()
            .map(|c| c.acked.load(Ordering::SeqCst))
            .collect()
    }

    fn backlog(&self) -> u64 {
        self.counters
            .iter()
            .map(|c| {
                c.produced
                    .load(Ordering::SeqCst)
                    .saturating_sub(c.acked.load(Ordering::SeqCst))
            })
            .sum()
    }

    fn failed_sessions(&self) -> u64 {
        self.counters
            .iter()
            .map(|c| c.failed_sessions.load(Ordering::Relaxed))
            .sum()
    }

    fn produced(&self) -> u64 {
        self.counters
            .iter()
            .map(|c| c.produced.load(Ordering::SeqCst))
            .sum()
    }

    /// Waits until `done` holds, checking every 50 ms; the seconds it took.
    async fn wait(
        &self,
        what: &str,
        timeout: Duration,
        done: impl Fn(&Self) -> bool,
    ) -> anyhow::Result<f64> {
        let started = Instant::now();
        while !done(self) {
            if started.elapsed() > timeout {
                anyhow::bail!(
                    "{what}: not within {} s ({} of {} edges connected, {} events not acknowledged)",
                    timeout.as_secs(),
                    self.connected(),
                    self.ids.len(),
                    self.backlog()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(started.elapsed().as_secs_f64())
    }

    async fn drained(&self, timeout: Duration) -> anyhow::Result<f64> {
        self.wait("every event acknowledged", timeout, |f| f.backlog() == 0)
            .await
    }

    /// Checks the hub's committed sequence of every edge (one scrape) against what the edge
    /// produced, and that the hub saw no gap. Returns the events committed in all.
    async fn check_hub(&self, admin: SocketAddr) -> anyhow::Result<u64> {
        let committed = committed_by_edge(admin).await?;
        let mut total = 0;
        for (id, counters) in self.ids.iter().zip(&self.counters) {
            let produced = counters.produced.load(Ordering::SeqCst);
            let at_hub = committed.get(id.as_str()).copied().unwrap_or(0);
            anyhow::ensure!(
                at_hub == produced,
                "edge {id}: produced {produced}, the hub committed {at_hub}"
            );
            total += at_hub;
        }
        let missing = scrape_sum(admin, "outpost_hub_missing_events_total")
            .await
            .unwrap_or(0.0);
        anyhow::ensure!(missing == 0.0, "the hub counted {missing} missing events");
        Ok(total)
    }

    fn stop(self) {
        drop(self.pace);
        for task in self.tasks {
            task.abort();
        }
    }
}

/// Each edge's durably committed sequence at the hub (`outpost_hub_committed_seq`, one scrape).
async fn committed_by_edge(
    admin: SocketAddr,
) -> anyhow::Result<std::collections::HashMap<String, u64>> {
    let (status, body) = outpost_process::admin::get(admin, "/metrics")
        .await
        .context("the hub's metrics")?;
    anyhow::ensure!(status == 200, "the hub's /metrics answered {status}");
    Ok(body
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("outpost_hub_committed_seq{edge=\"")?;
            let (edge, value) = rest.split_once("\"} ")?;
            Some((edge.to_owned(), value.trim().parse::<f64>().ok()? as u64))
        })
        .collect())
}

/// CPU seconds process `pid` used so far (user + system).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // After the command name in parentheses: state is field 3, utime 14, stime 15.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let per_second = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as f64;
    (ticks(11) + ticks(12)) / per_second
}

/// Lets this process open a socket per edge (and the hub's files are its own).
fn raise_open_files(needed: u64) -> anyhow::Result<()> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    if soft >= needed {
        return Ok(());
    }
    anyhow::ensure!(
        hard >= needed,
        "{needed} open files needed, the hard limit is {hard} (raise it with ulimit -Hn)"
    );
    setrlimit(Resource::RLIMIT_NOFILE, needed, hard)?;
    Ok(())
}

/// What a full-speed phase measured, from the hub's side (its durable commits, not the edges'
/// acknowledgements, which a busy edge reads late).
struct Speed {
    /// Events committed per second in all.
    total: f64,
    /// Each edge's events committed per second, ascending.
    per_edge: Vec<f64>,
    hub_cpu_us_per_event: f64,
}

/// Full speed for `seconds` after the warm-up.
async fn full_speed(
    fleet: &Fleet,
    admin: SocketAddr,
    hub_pid: u32,
    seconds: u64,
) -> anyhow::Result<Speed> {
    fleet.produce(None);
    tokio::time::sleep(WARM_UP).await;
    let (before, cpu_before, started) = (
        committed_by_edge(admin).await?,
        cpu_seconds(hub_pid),
        Instant::now(),
    );
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let (after, cpu_after, took) = (
        committed_by_edge(admin).await?,
        cpu_seconds(hub_pid),
        started.elapsed(),
    );
    fleet.stop_producing();
    let mut per_edge: Vec<f64> = fleet
        .ids
        .iter()
        .map(|id| {
            let delta = after.get(id).copied().unwrap_or(0) - before.get(id).copied().unwrap_or(0);
            delta as f64 / took.as_secs_f64()
        })
        .collect();
    per_edge.sort_by(f64::total_cmp);
    let total: f64 = per_edge.iter().sum();
    Ok(Speed {
        total,
        per_edge,
        hub_cpu_us_per_event: (cpu_after - cpu_before) * 1e6
            / (total * took.as_secs_f64()).max(1.0),
    })
}

fn mib(bytes: u64) -> f64 {
    (bytes as f64 / 1048576.0 * 10.0).round() / 10.0
}

/// Runs the benchmark and prints its JSON.
pub async fn run(args: FleetArgs) -> anyhow::Result<()> {
    let (edges, seconds, outage) = if args.quick {
        (
            args.edges.min(50),
            args.seconds.min(3),
            args.outage_seconds.min(3),
        )
    } else {
        (args.edges, args.seconds, args.outage_seconds)
    };
    raise_open_files(edges as u64 + 1_024)?;
    let exe = std::env::current_exe()?;
    let base = crate::bench_dir(args.dir.as_deref(), "outpost-fleet-")?;
    let ids: Vec<String> = (1..=edges).map(|i| format!("fleet-{i:04}")).collect();
    let solo = vec!["fleet-solo".to_string()];
    let mut spec = SiteSpec::single("fleet-solo", "");
    spec.edge_ids.extend(ids.iter().cloned());
    eprintln!("bench fleet: issuing {} edge certificates", edges + 1);
    let started = Instant::now();
    let layout = SiteLayout::prepare(&base.path().join("site"), &spec)?;
    let pki_seconds = started.elapsed().as_secs_f64();
    let reconnect_max = Duration::from_millis(args.reconnect_max_ms);
    let mut site = RunningSite::stopped(&exe, layout.clone());
    let result = phases(
        &args,
        &mut site,
        &layout,
        &solo,
        &ids,
        seconds,
        outage,
        reconnect_max,
    )
    .await;
    let stopped = site.stop().await;
    let mut report = result?;
    anyhow::ensure!(stopped?, "the hub did not stop cleanly");
    report["edges"] = json!(edges);
    report["pki_issue_seconds"] = json!(pki_seconds);
    let text = serde_json::to_string_pretty(&report)?;
    println!("{text}");
    if let Some(out) = &args.out {
        std::fs::write(out, format!("{text}\n"))
            .with_context(|| format!("cannot write {}", out.display()))?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn phases(
    args: &FleetArgs,
    site: &mut RunningSite,
    layout: &SiteLayout,
    solo_ids: &[String],
    ids: &[String],
    seconds: u64,
    outage: u64,
    reconnect_max: Duration,
) -> anyhow::Result<Value> {
    let admin = layout.hub_admin;
    site.start_hub().await?;
    let hub_pid = |site: &RunningSite| site.hub.as_ref().and_then(|h| h.pid()).unwrap_or(0);
    let pid = hub_pid(site);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_started = proc_memory(pid).rss;

    let n = ids.len();
    eprintln!("bench fleet: {n} edges connect");
    let fleet = Fleet::start(layout, ids, reconnect_max)?;
    let connect_seconds = fleet
        .wait("every edge connected", Duration::from_secs(180), |f| {
            f.connected() == n
        })
        .await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss_connected = proc_memory(pid).rss;

    eprintln!("bench fleet: one more edge alone at full speed for {seconds} s (the others idle)");
    let solo = Fleet::start(layout, solo_ids, reconnect_max)?;
    solo.wait("the solo edge connected", Duration::from_secs(30), |f| {
        f.connected() == 1
    })
    .await?;
    let solo_speed = full_speed(&solo, admin, pid, seconds).await?;
    solo.drained(Duration::from_secs(120)).await?;
    solo.check_hub(admin).await?;
    solo.stop();

    eprintln!("bench fleet: {n} edges at full speed for {seconds} s");
    let failed_before = fleet.failed_sessions();
    let speed = full_speed(&fleet, admin, pid, seconds).await?;
    let failed_at_max = fleet.failed_sessions() - failed_before;
    let drain_after_max = fleet.drained(Duration::from_secs(300)).await?;
    fleet.check_hub(admin).await?;
    let peak_after_max = proc_memory(pid).peak;
    let spread = |p: f64| crate::delivery::percentile(&speed.per_edge, p);

    eprintln!(
        "bench fleet: storm: {} events/s per edge, the hub killed for {outage} s",
        args.outage_rate
    );
    fleet.produce(Some(args.outage_rate));
    tokio::time::sleep(Duration::from_secs(2)).await;
    site.kill9_hub().await?;
    let acked_at_kill: u64 = fleet.acked().iter().sum();
    tokio::time::sleep(Duration::from_secs(outage)).await;
    fleet.stop_producing();
    let restart = Instant::now();
    site.start_hub().await?;
    let hub_ready_seconds = restart.elapsed().as_secs_f64();
    let pid = hub_pid(site);
    let reconnected = fleet
        .wait(
            "every edge back after the restart",
            Duration::from_secs(300),
            |f| f.connected() == n,
        )
        .await?;
    let storm_drained = fleet.drained(Duration::from_secs(300)).await?;
    let committed = fleet.check_hub(admin).await?;
    let produced = fleet.produced();
    let backlog = produced - acked_at_kill;
    let duplicates = scrape_sum(admin, "outpost_hub_duplicates_total")
        .await
        .unwrap_or(0.0);
    let failed_sessions = fleet.failed_sessions() - failed_before - failed_at_max;
    let storm_peak = proc_memory(pid).peak;
    fleet.stop();

    let per_edge_bytes = rss_connected.saturating_sub(rss_started) as f64 / n.max(1) as f64;
    Ok(json!({
        "event_bytes": EVENT_BYTES,
        "solo": {
            "events_per_second": solo_speed.total.round(),
            "hub_cpu_us_per_event": (solo_speed.hub_cpu_us_per_event * 100.0).round() / 100.0,
        },
        "connect": {
            "seconds_until_all_connected": connect_seconds,
            "hub_rss_mib_started": mib(rss_started),
            "hub_rss_mib_connected_idle": mib(rss_connected),
            "hub_rss_kib_per_connected_edge": (per_edge_bytes / 1024.0).round(),
        },
        "max": {
            "events_per_second": speed.total.round(),
            "vs_solo": (speed.total / solo_speed.total.max(1.0) * 100.0).round() / 100.0,
            "per_edge_events_per_second_min_p50_max": [spread(0.0).round(), spread(0.5).round(), spread(1.0).round()],
            "hub_cpu_us_per_event": (speed.hub_cpu_us_per_event * 100.0).round() / 100.0,
            "hub_rss_mib_peak": mib(peak_after_max),
            "drain_seconds_after_stop": drain_after_max,
            "sessions_ended": failed_at_max,
        },
        "storm": {
            "events_per_second_per_edge": args.outage_rate,
            "outage_seconds": outage,
            "reconnect_backoff_ms": [RECONNECT_INITIAL.as_millis() as u64, reconnect_max.as_millis() as u64],
            "backlog_events": backlog,
            "hub_ready_seconds": hub_ready_seconds,
            "seconds_until_all_back": hub_ready_seconds + reconnected,
            "seconds_until_drained": hub_ready_seconds + reconnected + storm_drained,
            "duplicates_dropped_by_hub": duplicates,
            "sessions_ended_or_failed": failed_sessions,
            "hub_rss_mib_peak": mib(storm_peak),
        },
        "events_produced": produced,
        "events_committed": committed,
    }))
}
