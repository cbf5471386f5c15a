//! `outpost-sim bench console`: what the web console costs the hub, on this machine, in one run.
//! Prints one JSON document.
//!
//! - `floor_page`: the API requests the floor page makes when it opens (`GET /api/v1/devices?
//!   kind=egm&limit=10000` and `GET /api/v1/sites/all/days/today`), one after the other, on a hub
//!   with 1,000 slot machines (a gaming day of hourly meter readings each) and 1,000 TVs; p50/p99
//!   of the two together. Goal: p99 ≤ 200 ms.
//! - `tv_wall`: the TV wall's requests (`GET /api/v1/devices?kind=tv&limit=10000`,
//!   `GET /api/v1/cards`) on the same hub.
//! - baseline for both: the console's page itself (`GET /`, a static file from memory).
//! - `live_update`: hub commit → the browser: Chromium (Playwright) logged in to the console,
//!   listening through the console's own stream code while an edge delivers events; delay =
//!   arrival in the page (after the next frame) − the event's hub commit time. Goal: p99 ≤ 1 s.
//!   Next to it, the same delay to a plain SSE client in this process.

use std::time::Duration;

use serde_json::json;

use crate::delivery::percentile;
use crate::hub::{stream_delays, timed_get, timed_gets, write_floor};
use outpost_harness::harness::{RunningSite, wait_until};
use outpost_harness::site::{SiteLayout, SiteSpec};

/// Options of `bench console`.
#[derive(Debug, Clone, clap::Args)]
pub struct ConsoleBenchArgs {
    /// Smaller and shorter runs (a smoke test of the benchmark itself).
    #[arg(long)]
    pub quick: bool,
    /// Also write the JSON here.
    #[arg(long)]
    pub out: Option<std::path::PathBuf>,
    /// Slot machines on the floor.
    #[arg(long, default_value_t = 1_000)]
    pub machines: usize,
    /// TVs on the wall.
    #[arg(long, default_value_t = 1_000)]
    pub tvs: usize,
    /// Page loads measured per page.
    #[arg(long, default_value_t = 100)]
    pub loads: usize,
    /// Where `console-latency.mjs` and its playwright-core are (`sim/browser`).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../browser"))]
    pub browser_dir: std::path::PathBuf,
    /// Chromium.
    #[arg(long, default_value = "/usr/bin/chromium")]
    pub chromium: std::path::PathBuf,
}

fn figures(ms: &[f64], baseline: &[f64]) -> serde_json::Value {
    json!({
        "p50_ms": percentile(ms, 0.5),
        "p99_ms": percentile(ms, 0.99),
        "baseline_p99_ms": percentile(baseline, 0.99),
        "goal_p99_ms": 200,
    })
}

/// Delay from hub commit to the console in Chromium, through the console's own stream code.
async fn browser_delays(
    args: &ConsoleBenchArgs,
    site: &RunningSite,
    seconds: u64,
) -> anyhow::Result<serde_json::Value> {
    let script = args.browser_dir.join("console-latency.mjs");
    anyhow::ensure!(
        args.chromium.exists()
            && args
                .browser_dir
                .join("node_modules/playwright-core")
                .exists(),
        "the browser measurement needs {} and playwright-core in {} (`bash .ci/run` installs both)",
        args.chromium.display(),
        args.browser_dir.display()
    );
    let viewer = site
        .layout
        .console_user("viewer")
        .ok_or_else(|| anyhow::anyhow!("the site has no viewer"))?;
    let input = json!({
        "url": format!("http://{}/", site.layout.hub_api),
        "user": viewer.name,
        "password": viewer.password,
        "seconds": seconds,
    });
    let output = tokio::process::Command::new("node")
        .arg(&script)
        .current_dir(&args.browser_dir)
        .env("OUTPOST_CONSOLE", input.to_string())
        .env("OUTPOST_CHROMIUM", &args.chromium)
        .kill_on_drop(true)
        .output()
        .await?;
    anyhow::ensure!(
        output.status.success(),
        "{}: {}",
        script.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(serde_json::from_slice(&output.stdout)?)
}

/// Runs the console benchmark and prints its JSON.
pub async fn run(args: ConsoleBenchArgs) -> anyhow::Result<()> {
    let exe = std::env::current_exe()?;
    let base = tempfile::Builder::new()
        .prefix("outpost-bench-console-")
        .tempdir()?;
    let (machines, tvs, loads, seconds) = if args.quick {
        (100, 100, 10, 4)
    } else {
        (args.machines, args.tvs, args.loads, 15)
    };
    let calendar = outpost_domain::calendar::Calendar::new("UTC", 6)?;
    let today = calendar.gaming_day(outpost_process::clock::unix_us());
    let (day_start, _) = calendar.day_bounds(today);
    let spec = SiteSpec::single(
        "edge-01",
        "[[devices]]\nkind = \"synthetic\"\nid = \"ticker\"\nrate_per_second = 50.0\npayload_bytes = 200\nclass = \"telemetry\"\n",
    );
    let layout = SiteLayout::prepare(&base.path().join("site"), &spec)?;
    let db_dir = layout.hub_data_dir.join("db");
    std::fs::create_dir_all(&db_dir)?;
    eprintln!("bench: writing {machines} machines × today's gaming day and {tvs} TVs");
    write_floor(&db_dir, machines, machines + tvs, day_start).await?;
    let site = RunningSite::start(&exe, layout).await?;
    let total = machines + tvs;
    wait_until("the hub to know its devices", Duration::from_secs(180), || async {
        matches!(site.api("GET", "/api/v1/devices?limit=1", "").await, Ok((200, text)) if text.contains(&format!("\"total\":{}", total + 1)))
    })
    .await?;
    let (_, floor) = site.api("GET", "/api/v1/sites/all/days/today", "").await?;
    let floor: serde_json::Value = serde_json::from_str(&floor)?;
    let on_floor = floor["machines"].as_array().map_or(0, Vec::len);
    anyhow::ensure!(
        on_floor == machines,
        "the floor has {on_floor} machines, not {machines}"
    );

    for (kind, count) in [("egm", machines), ("tv", tvs)] {
        let (_, page) = site
            .api("GET", &format!("/api/v1/devices?kind={kind}&limit=1"), "")
            .await?;
        let page: serde_json::Value = serde_json::from_str(&page)?;
        anyhow::ensure!(
            page["total"] == count,
            "the hub lists {} devices of kind {kind}, not {count}",
            page["total"]
        );
    }
    eprintln!("bench: {loads} loads of the floor page and of the TV wall");
    let baseline = timed_get(&site, "/", loads).await?;
    let floor_ms = timed_gets(
        &site,
        &[
            "/api/v1/devices?kind=egm&limit=10000",
            "/api/v1/sites/all/days/today",
        ],
        loads,
    )
    .await?;
    let wall_ms = timed_gets(
        &site,
        &["/api/v1/devices?kind=tv&limit=10000", "/api/v1/cards"],
        loads,
    )
    .await?;

    eprintln!("bench: live updates, {seconds} s");
    let sse = stream_delays(&site, 1, seconds).await?;
    let browser = match browser_delays(&args, &site, seconds).await {
        Ok(figures) => figures,
        Err(e) => json!({"skipped": e.to_string()}),
    };
    site.stop().await?;

    let result = json!({
        "machine": "this machine: 2 cores; hub, edge, Chromium and the client share them",
        "hub": format!("{machines} slot machines with today's gaming day (24 hourly meter readings each) and {tvs} TVs, an edge delivering 50 events/s"),
        "floor_page": {
            "method": "GET /api/v1/devices?kind=egm&limit=10000 then GET /api/v1/sites/all/days/today, as the floor page opens; baseline GET / (the console page)",
            "figures": figures(&floor_ms, &baseline),
        },
        "tv_wall": {
            "method": "GET /api/v1/devices?kind=tv&limit=10000 then GET /api/v1/cards; baseline GET /",
            "figures": figures(&wall_ms, &baseline),
        },
        "live_update": {
            "browser": browser,
            "plain_sse_client": sse,
            "goal_p99_ms": 1000,
        },
    });
    let text = serde_json::to_string_pretty(&result)?;
    println!("{text}");
    if let Some(out) = args.out {
        std::fs::write(out, text)?;
    }
    Ok(())
}
