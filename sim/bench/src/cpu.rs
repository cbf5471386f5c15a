//! `outpost-sim bench cpu`: CPU per delivered event on the edge and on the hub, as instructions
//! counted by valgrind's callgrind — the same count for the same binary and input whatever else
//! the machine is doing (cycles and seconds are not; `perf stat` has no hardware counters here).
//!
//! Method: a hub and an edge as processes, each under `valgrind --tool=callgrind` with its
//! instrumentation switched on once both are ready, both sides durable, the edge's synthetic
//! device producing 200-byte money events at a fixed rate until its count, the run ending once
//! the hub committed them all, with a clean stop. Two runs that differ only in the count
//! (`small`, `large`); per event = (instructions of the large run − of the small − what the large
//! run's extra seconds cost idle) ÷ (large − small), so what is not per event cancels out. The
//! idle cost is measured the same way with no device, over one period and twice that. The edge's
//! count includes the generator (the synthetic device lives in the edge). Left out everywhere:
//! the spinning in sled's lazy statics ([`Instructions::work`]).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use outpost_harness::harness::{RunningSite, scrape, wait_until_every};
use outpost_harness::site::{SiteLayout, SiteSpec};
use serde_json::{Value, json};

/// Options of `bench cpu`.
#[derive(Debug, Clone, clap::Args)]
pub struct CpuBenchArgs {
    /// Fewer events (a smoke test of the benchmark itself).
    #[arg(long)]
    pub quick: bool,
    /// Also write the JSON here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Directory for the benchmark's files.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Events/s the synthetic device produces (under valgrind both processes run tens of times
    /// slower than natively).
    #[arg(long, default_value_t = 500.0)]
    pub rate: f64,
}

const EVENT_BYTES: usize = 200;
const EDGE: &str = "bench-edge";

/// One run's instruction counts and what it delivered.
#[derive(Debug, Clone, Copy)]
struct Counted {
    events: u64,
    /// Instructions of work (see [`Instructions::work`]).
    edge: u64,
    hub: u64,
    /// Instructions spent spinning, left out of the above.
    edge_spinning: u64,
    hub_spinning: u64,
    seconds: f64,
}

/// Runs the benchmark and prints its JSON.
pub async fn run(args: CpuBenchArgs) -> anyhow::Result<()> {
    let valgrind = crate::peers::apt_program("valgrind", "valgrind")?;
    let exe = std::env::current_exe()?;
    let base = crate::bench_dir(args.dir.as_deref(), "outpost-cpu-")?;
    let (small, large, idle_seconds) = if args.quick {
        (200, 1_200, 5.0)
    } else {
        (1_000, 11_000, 20.0)
    };
    eprintln!("bench: idle, {idle_seconds} s and twice that");
    let idle_short = counted(
        &valgrind,
        &exe,
        &base.path().join("idle1"),
        None,
        idle_seconds,
    )
    .await?;
    let idle_long = counted(
        &valgrind,
        &exe,
        &base.path().join("idle2"),
        None,
        2.0 * idle_seconds,
    )
    .await?;
    eprintln!("bench: {small} events at {} /s", args.rate);
    let few = counted(
        &valgrind,
        &exe,
        &base.path().join("small"),
        Some((args.rate, small)),
        0.0,
    )
    .await?;
    eprintln!("bench: {large} events at {} /s", args.rate);
    let many = counted(
        &valgrind,
        &exe,
        &base.path().join("large"),
        Some((args.rate, large)),
        0.0,
    )
    .await?;

    let per_second = |side: fn(&Counted) -> u64| {
        (side(&idle_long) as f64 - side(&idle_short) as f64)
            / (idle_long.seconds - idle_short.seconds)
    };
    anyhow::ensure!(
        many.events > few.events,
        "the large run counted {} events, the small {}: nothing to divide by",
        many.events,
        few.events
    );
    let events = (many.events - few.events) as f64;
    // The large run also lasted longer: take out what its extra seconds cost idle.
    let extra_seconds = many.seconds - few.seconds;
    let per_event = |side: fn(&Counted) -> u64| {
        (side(&many) as f64 - side(&few) as f64 - per_second(side) * extra_seconds) / events
    };
    let report = json!({
        "method": "instructions counted by valgrind --tool=callgrind in each process from the \
                   moment both are ready to their stop, less sled's spinning; per event: the \
                   difference between two runs that differ only in the number of events, less \
                   what the longer run's extra seconds cost idle, divided by the difference in \
                   events",
        "rate_per_second": args.rate,
        "event_bytes": EVENT_BYTES,
        "runs": [run_json(&idle_short), run_json(&idle_long), run_json(&few), run_json(&many)],
        "edge_instructions_per_event": per_event(|c| c.edge),
        "hub_instructions_per_event": per_event(|c| c.hub),
        "edge_idle_instructions_per_second": per_second(|c| c.edge),
        "hub_idle_instructions_per_second": per_second(|c| c.hub),
        "valgrind": version(&valgrind),
    });
    let text = serde_json::to_string_pretty(&report)?;
    println!("{text}");
    if let Some(out) = args.out {
        std::fs::write(&out, format!("{text}\n"))
            .with_context(|| format!("writing {}", out.display()))?;
    }
    Ok(())
}

fn run_json(c: &Counted) -> Value {
    json!({
        "events": c.events,
        "edge_instructions": c.edge,
        "hub_instructions": c.hub,
        "edge_spinning_instructions_left_out": c.edge_spinning,
        "hub_spinning_instructions_left_out": c.hub_spinning,
        "seconds": c.seconds,
    })
}

/// One run: hub and edge under callgrind, `device` = (rate, count) or none (then it stays up
/// `idle_seconds`), stopped cleanly; the instructions each executed.
async fn counted(
    valgrind: &Path,
    exe: &Path,
    dir: &Path,
    device: Option<(f64, u64)>,
    idle_seconds: f64,
) -> anyhow::Result<Counted> {
    let devices = device.map_or(String::new(), |(rate, count)| {
        format!(
            "[[devices]]\nkind = \"synthetic\"\nid = \"generator\"\nrate_per_second = {rate:.1}\n\
             payload_bytes = {EVENT_BYTES}\nclass = \"money\"\ncount = {count}\n"
        )
    });
    let layout = SiteLayout::prepare(dir, &SiteSpec::single(EDGE, &devices))?;
    let hub_out = dir.join("callgrind.hub");
    let edge_out = dir.join("callgrind.edge");
    let mut site = RunningSite::stopped(exe, layout);
    site.hub_prefix = callgrind(valgrind, &hub_out);
    site.edge_prefix = callgrind(valgrind, &edge_out);
    site.ready_timeout = Duration::from_secs(600);
    site.start_hub().await?;
    site.start_edge(0).await?;
    // Counting starts once both are ready: start-up (sled's threads spinning on its lazy
    // statics while valgrind runs one thread at a time, the hub hashing its console passwords)
    // is neither per event nor repeatable.
    let hub = site.layout.hub_admin;
    let series = format!("outpost_hub_committed_seq{{edge=\"{EDGE}\"}}");
    for pid in [
        site.hub.as_ref().and_then(|p| p.pid()),
        site.edges[0].as_ref().and_then(|p| p.pid()),
    ] {
        collect_from_now(valgrind, pid.context("a process without a pid")?)?;
    }
    let committed_before = scrape(hub, &series).await.unwrap_or(0.0) as u64;
    let started = Instant::now();
    let events = match device {
        Some((_, count)) => {
            wait_until_every(
                "the hub to commit every event",
                Duration::from_secs(3600),
                Duration::from_millis(500),
                || async { scrape(hub, &series).await.unwrap_or(0.0) as u64 >= count },
            )
            .await?;
            count.saturating_sub(committed_before)
        }
        None => {
            tokio::time::sleep(Duration::from_secs_f64(idle_seconds)).await;
            0
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    // A clean stop, with time: callgrind writes its counts when the process exits.
    let grace = Duration::from_secs(600);
    if let Some(edge) = site.edges[0].take() {
        edge.terminate(grace).await?;
    }
    if let Some(hub) = site.hub.take() {
        hub.terminate(grace).await?;
    }
    let edge = read_counts(valgrind, &edge_out)?;
    let hub = read_counts(valgrind, &hub_out)?;
    Ok(Counted {
        events,
        edge: edge.work(),
        hub: hub.work(),
        edge_spinning: edge.spinning,
        hub_spinning: hub.spinning,
        seconds,
    })
}

fn callgrind(valgrind: &Path, out: &Path) -> Vec<OsString> {
    let mut file = OsString::from("--callgrind-out-file=");
    file.push(out);
    vec![
        valgrind.as_os_str().to_owned(),
        "--tool=callgrind".into(),
        "--quiet".into(),
        "--instr-atstart=no".into(),
        file,
    ]
}

/// Turns callgrind's instrumentation on in process `pid` (`callgrind_control -i on`): it counts from now.
fn collect_from_now(valgrind: &Path, pid: u32) -> anyhow::Result<()> {
    let control = valgrind.with_file_name("callgrind_control");
    let out = std::process::Command::new(&control)
        .args(["-i", "on", &pid.to_string()])
        .output()
        .with_context(|| format!("running {}", control.display()))?;
    anyhow::ensure!(
        out.status.success(),
        "callgrind_control -i on {pid}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// What a callgrind output file counted: all instructions, and those spent spinning in sled's
/// lazy statics.
#[derive(Debug, Clone, Copy)]
struct Instructions {
    total: u64,
    spinning: u64,
}

impl Instructions {
    /// The work done: sled's lazy statics spin on an atomic while another thread initialises
    /// them; natively that is a moment, but valgrind runs one thread at a time, so a thread that
    /// spins holds the CPU for whole time slices while the initialiser waits (up to billions of
    /// instructions in one run, none of them work).
    fn work(&self) -> u64 {
        self.total.saturating_sub(self.spinning)
    }
}

/// Reads a callgrind output file: its total, and from `callgrind_annotate` the instructions of
/// `sled::lazy::Lazy::deref` with what it calls (the spin: in an unoptimised build the atomic
/// operations it spins on are calls of their own; the one-time initialisation is in there too,
/// and small).
fn read_counts(valgrind: &Path, file: &Path) -> anyhow::Result<Instructions> {
    let total = instructions(file)?;
    let annotate = valgrind.with_file_name("callgrind_annotate");
    let out = std::process::Command::new(&annotate)
        .args(["--auto=no", "--threshold=100", "--inclusive=yes"])
        .arg(file)
        .output()
        .with_context(|| format!("running {}", annotate.display()))?;
    anyhow::ensure!(out.status.success(), "{} failed", annotate.display());
    let spinning = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|line| line.contains("sled::lazy::Lazy<T,F> as core::ops::deref::Deref>::deref"))
        .filter_map(|line| {
            line.split_whitespace()
                .next()?
                .replace(',', "")
                .parse::<u64>()
                .ok()
        })
        .sum();
    Ok(Instructions { total, spinning })
}

/// The total instructions in a callgrind output file (its `summary:` or `totals:` line).
fn instructions(file: &Path) -> anyhow::Result<u64> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("reading callgrind's output {}", file.display()))?;
    text.lines()
        .find_map(|line| {
            let rest = line
                .strip_prefix("summary:")
                .or_else(|| line.strip_prefix("totals:"))?;
            rest.split_whitespace().next()?.parse().ok()
        })
        .with_context(|| format!("no instruction total in {}", file.display()))
}

fn version(valgrind: &Path) -> String {
    std::process::Command::new(valgrind)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}
