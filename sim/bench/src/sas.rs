//! `outpost-sim bench sas`: the SAS host measured on this machine. Prints one JSON document.
//!
//! - `poll_jitter`: 32 simulated EGMs on 8 pty lines (separate simulator processes), polled by a
//!   real edge process with the default 200 ms schedule. The simulators time every poll to each
//!   machine; the figure is the interval minus 200 ms (p50/p99/max), i.e. how late the host is.
//! - `edge_cpu`: the edge process's CPU time over the window, per EGM (as a share of one core),
//!   next to the same edge idle with no devices (the baseline).
//! - `decoder`: MB/s of the reply decoder over a corpus of real replies (LP 2F meters, LP 1A,
//!   exceptions, ACKs), against CRC-16/KERMIT alone over the same bytes: the least work any
//!   decoder must do.

use std::time::{Duration, Instant};

use outpost_sas::egm::REPORTED_METERS;
use outpost_sas::reply::Expectation;
use outpost_sas::{Bcd, Reply, ReplyDecoder, Request};
use serde_json::json;

use outpost_harness::harness::{EgmSimProcess, RunningSite, scrape_sum};
use outpost_harness::site::{SiteLayout, SiteSpec};

/// Options of `bench sas`.
#[derive(Debug, Clone, clap::Args)]
pub struct SasBenchArgs {
    /// Shorter runs (a smoke test of the benchmark itself).
    #[arg(long)]
    pub quick: bool,
    /// Lines (one simulator process each).
    #[arg(long, default_value_t = 8)]
    pub lines: usize,
    /// EGMs per line.
    #[arg(long, default_value_t = 4)]
    pub per_line: u8,
    /// Also write the JSON here.
    #[arg(long)]
    pub out: Option<std::path::PathBuf>,
}

fn corpus() -> Vec<(Expectation, Vec<u8>)> {
    let mut out = Vec::new();
    let meters: Vec<u8> = REPORTED_METERS.to_vec();
    let request = Request::selected_meters(1, 0, &meters).ok();
    if let Some(request) = request
        && let Some(expectation) = Expectation::for_request(&request, false)
    {
        let mut payload = vec![0u8, 0x00, 0x00];
        for (i, &code) in meters.iter().enumerate() {
            payload.push(code);
            payload.extend(Bcd::encode(12_345_678 + i as u64, 4).unwrap_or_default());
        }
        payload[0] = (payload.len() - 1) as u8;
        let reply = Reply::Data {
            command: 0x2F,
            payload,
        };
        out.push((expectation, reply.encode(1)));
    }
    if let Some(expectation) = Expectation::for_request(&Request::long(1, 0x1A), false) {
        out.push((
            expectation,
            Reply::Data {
                command: 0x1A,
                payload: vec![0x00, 0x00, 0x12, 0x34],
            }
            .encode(1),
        ));
    }
    if let Some(expectation) = Expectation::for_request(&Request::general_poll(1), false) {
        out.push((expectation, vec![0x7E]));
    }
    if let Some(expectation) = Expectation::for_request(&Request::shutdown(1), false) {
        out.push((expectation, vec![0x01]));
    }
    out
}

fn decoder_figures(seconds: f64) -> serde_json::Value {
    let corpus = corpus();
    let bytes_per_round: usize = corpus.iter().map(|(_, r)| r.len()).sum();
    let window = Duration::from_secs_f64(seconds);

    let started = Instant::now();
    let mut rounds = 0u64;
    let mut decoded = 0u64;
    while started.elapsed() < window {
        for _ in 0..1000 {
            for (expectation, reply) in &corpus {
                let mut decoder = ReplyDecoder::new(*expectation);
                decoder.feed(std::hint::black_box(reply));
                decoded += u64::from(decoder.finish().is_ok());
            }
        }
        rounds += 1000;
    }
    let ours = (rounds as f64 * bytes_per_round as f64) / started.elapsed().as_secs_f64();

    let started = Instant::now();
    let mut base_rounds = 0u64;
    let mut sink = 0u16;
    while started.elapsed() < window {
        for _ in 0..1000 {
            for (_, reply) in &corpus {
                sink ^= outpost_sas::crc16_kermit(std::hint::black_box(reply));
            }
        }
        base_rounds += 1000;
    }
    std::hint::black_box(sink);
    let crc = (base_rounds as f64 * bytes_per_round as f64) / started.elapsed().as_secs_f64();
    json!({
        "method": "ReplyDecoder::new + feed + finish per reply over a corpus of LP 2F (8 meters), LP 1A, exception and ACK replies, vs crc16_kermit alone over the same bytes",
        "replies_decoded_ok": decoded,
        "decoder_mb_per_s": ours / 1e6,
        "crc_only_mb_per_s": crc / 1e6,
        "ratio_decoder_vs_crc_only": ours / crc,
    })
}

/// User + system CPU seconds of a process (NaN when it cannot be read).
pub(crate) fn cpu_seconds(pid: Option<u32>) -> f64 {
    pid.and_then(|pid| outpost_process::metrics::cpu_seconds(Some(pid)))
        .unwrap_or(f64::NAN)
}

/// Runs the SAS benchmark and prints its JSON.
pub async fn run(args: SasBenchArgs) -> anyhow::Result<()> {
    let exe = std::env::current_exe()?;
    let tmp = tempfile::Builder::new()
        .prefix("outpost-bench-sas-")
        .tempdir()?;
    let window = if args.quick { 5.0 } else { 30.0 };
    let egms = args.lines * usize::from(args.per_line);

    // Baseline: the same edge with no devices.
    let idle_layout =
        SiteLayout::prepare(&tmp.path().join("idle"), &SiteSpec::single("edge-01", ""))?;
    let idle = RunningSite::start(&exe, idle_layout).await?;
    let idle_pid = idle.edges[0].as_ref().and_then(|e| e.pid());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = cpu_seconds(idle_pid);
    tokio::time::sleep(Duration::from_secs_f64(window / 3.0)).await;
    let idle_cpu = (cpu_seconds(idle_pid) - before) / (window / 3.0);
    idle.stop().await?;

    let mut sims = Vec::new();
    for line in 0..args.lines {
        let log = tmp.path().join(format!("egm-{line}.log"));
        let seed = line.to_string();
        sims.push(
            EgmSimProcess::spawn_pty_line(
                &exe,
                args.per_line,
                &["--play-rate", "0.5", "--seed", &seed],
                &log,
            )
            .await?,
        );
    }
    let mut devices = String::new();
    for (line, sim) in sims.iter().enumerate() {
        let ids: Vec<String> = (1..=args.per_line)
            .map(|a| format!("egm-{line}-{a}"))
            .collect();
        devices +=
            &outpost_harness::site::sas_pty_line_toml(&format!("line-{line}"), &sim.line, &ids, "");
    }
    let layout = SiteLayout::prepare(
        &tmp.path().join("site"),
        &SiteSpec::single("edge-01", &devices),
    )?;
    let admin = layout.edges[0].admin;
    let site = RunningSite::start(&exe, layout).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    for sim in &sims {
        sim.post("/intervals", &json!({})).await?;
    }
    let pid = site.edges[0].as_ref().and_then(|e| e.pid());
    let cpu_before = cpu_seconds(pid);
    let polls_before = scrape_sum(admin, "outpost_sas_poll_seconds_count")
        .await
        .unwrap_or(0.0);
    tokio::time::sleep(Duration::from_secs_f64(window)).await;
    let cpu = (cpu_seconds(pid) - cpu_before) / window;
    let polls = scrape_sum(admin, "outpost_sas_poll_seconds_count")
        .await
        .unwrap_or(0.0)
        - polls_before;
    let mut per_line = Vec::new();
    let mut worst_p99 = 0u64;
    let mut worst_max = 0u64;
    let mut p50s = Vec::new();
    for sim in &sims {
        let (status, body) = outpost_process::admin::get(sim.control, "/intervals").await?;
        anyhow::ensure!(status == 200, "/intervals: {status} {body}");
        let figures: outpost_simulators::egm::PollIntervals = serde_json::from_str(&body)?;
        worst_p99 = worst_p99.max(figures.p99_us);
        worst_max = worst_max.max(figures.max_us);
        p50s.push(figures.p50_us);
        per_line.push(figures);
    }
    site.stop().await?;
    for sim in sims {
        sim.kill().await;
    }
    let schedule_us = 200_000u64;
    p50s.sort_unstable();
    let report = json!({
        "machine": {"cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)},
        "poll_jitter": {
            "method": format!("{} EGMs on {} pty lines, one simulator process per line; intervals between polls of one EGM as the simulator saw them, minus the 200 ms schedule; {window} s window", egms, args.lines),
            "polls_in_window": polls,
            "polls_per_second": polls / window,
            "p50_late_ms": p50s.get(p50s.len() / 2).map(|p| p.saturating_sub(schedule_us) as f64 / 1000.0),
            "p99_late_ms_worst_line": worst_p99.saturating_sub(schedule_us) as f64 / 1000.0,
            "max_late_ms": worst_max.saturating_sub(schedule_us) as f64 / 1000.0,
            "per_line": per_line,
        },
        "edge_cpu": {
            "method": "utime + stime of the edge process (/proc/<pid>/stat) over the window, minus the same edge idle without devices",
            "cores_with_egms": cpu,
            "cores_idle_baseline": idle_cpu,
            "percent_of_a_core_per_egm": (cpu - idle_cpu).max(0.0) / egms as f64 * 100.0,
        },
        "decoder": decoder_figures(if args.quick { 0.5 } else { 2.0 }),
    });
    let text = serde_json::to_string_pretty(&report)?;
    println!("{text}");
    if let Some(out) = &args.out {
        std::fs::write(out, &text)?;
    }
    Ok(())
}
