//! `outpost-sim bench tv`: TVs at fleet scale. Prints one JSON document.
//!
//! 200 simulated TVs (4 simulator processes × 50) behind 4 edges (processes) and one hub; 1,000
//! operations (5 key presses per TV, all different) issued at the hub's API at once. Completion
//! time is the hub's own: command created → result stored (p50/p99/max); failures are commands
//! not `succeeded`; "lost or executed twice" is read from the TVs themselves: each must have
//! received exactly its 5 keys, once each. Baseline: the same 1,000 key presses sent straight
//! from one process with the edge's ADB client over warm connections (one per TV, 200 in
//! parallel) — the floor without the hub, the link and the outbox. Also a screenshot's round trip: command issued
//! → PNG stored at the hub.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::delivery::percentile;

use outpost_harness::harness::{RunningSite, TvSimProcess, wait_until};
use outpost_harness::site::{SiteLayout, SiteSpec, tv_toml};

/// Options of `bench tv`.
#[derive(Debug, Clone, clap::Args)]
pub struct TvBenchArgs {
    #[arg(long, default_value_t = 4)]
    pub edges: usize,
    #[arg(long, default_value_t = 50)]
    pub tvs_per_edge: u16,
    /// Operations per TV.
    #[arg(long, default_value_t = 5)]
    pub ops_per_tv: usize,
    /// Also write the JSON here.
    #[arg(long)]
    pub out: Option<std::path::PathBuf>,
}

/// Key codes the benchmark presses (harmless for the player: d-pad keys).
const KEYS: [u32; 5] = [19, 20, 21, 22, 23];

pub async fn run(args: TvBenchArgs) -> anyhow::Result<()> {
    let exe = std::env::current_exe()?;
    let tmp = tempfile::Builder::new()
        .prefix("outpost-bench-tv-")
        .tempdir()?;
    let n = args.tvs_per_edge;
    let ops_per_tv = args.ops_per_tv.min(KEYS.len());
    let mut sims = Vec::new();
    for e in 0..args.edges {
        let listen = "127.0.0.1:0";
        let count = n.to_string();
        sims.push(
            TvSimProcess::spawn(
                &exe,
                &["--listen", listen, "--count", &count],
                &tmp.path().join(format!("tv-sim-{e}.log")),
            )
            .await?,
        );
    }
    let edge_ids: Vec<String> = (1..=args.edges).map(|e| format!("edge-{e:02}")).collect();
    let mut spec = SiteSpec::single("edge-01", "");
    spec.edge_ids = edge_ids.clone();
    spec.edge_devices_toml = sims
        .iter()
        .enumerate()
        .map(|(e, sim)| {
            (0..n)
                .map(|i| {
                    tv_toml(
                        &format!("tv-{}-{i:03}", e + 1),
                        sim.tv(i),
                        None,
                        "telemetry_interval_ms = 5000\nop_timeout_ms = 3000",
                        "",
                    )
                })
                .collect::<String>()
        })
        .collect();
    let layout = SiteLayout::prepare(&tmp.path().join("site"), &spec)?;
    let site = RunningSite::start(&exe, layout).await?;
    for (e, edge) in site.layout.edges.iter().enumerate() {
        let admin = edge.admin;
        let device = format!("tv-{}-{:03}", e + 1, n - 1);
        wait_until("the edge's TVs up", Duration::from_secs(120), || async {
            outpost_harness::harness::scrape(
                admin,
                &format!("outpost_tv_up{{device=\"{device}\"}}"),
            )
            .await
                == Some(1.0)
        })
        .await?;
    }

    // Ours: 1,000 commands issued at once (through 50 API connections at a time: the operations
    // are all in flight at the hub together; the HTTP requests that carry them are pooled).
    let started = Instant::now();
    let site = std::sync::Arc::new(site);
    let pool = std::sync::Arc::new(tokio::sync::Semaphore::new(50));
    let mut posts = Vec::new();
    for (e, edge) in edge_ids.iter().enumerate() {
        for i in 0..n {
            for key in KEYS.iter().take(ops_per_tv) {
                let (site, pool) = (site.clone(), pool.clone());
                let body = json!({"edge": edge, "device": format!("tv-{}-{i:03}", e + 1), "op": "key", "args": {"key": key}});
                posts.push(tokio::spawn(async move {
                    let _permit = pool.acquire().await.map_err(|e| e.to_string())?;
                    let (status, text) = site
                        .api("POST", "/api/v1/commands", &body.to_string())
                        .await
                        .map_err(|e| e.to_string())?;
                    if status != 201 {
                        return Err(format!("{status} {text}"));
                    }
                    let record: serde_json::Value =
                        serde_json::from_str(&text).map_err(|e| e.to_string())?;
                    Ok(record["id"].as_str().unwrap_or_default().to_owned())
                }));
            }
        }
    }
    let mut ids = Vec::new();
    let mut failures = Vec::new();
    for post in posts {
        match post.await? {
            Ok(id) => ids.push(id),
            Err(e) => failures.push(e),
        }
    }
    let issued = started.elapsed();
    let mut polls = Vec::new();
    for id in ids {
        let (site, pool) = (site.clone(), pool.clone());
        polls.push(tokio::spawn(async move {
            let deadline = Instant::now() + Duration::from_secs(120);
            loop {
                let record: serde_json::Value = {
                    let _permit = pool.acquire().await.map_err(|e| e.to_string())?;
                    let (_, text) = site
                        .api("GET", &format!("/api/v1/commands/{id}"), "")
                        .await
                        .map_err(|e| e.to_string())?;
                    serde_json::from_str(&text).map_err(|e| e.to_string())?
                };
                if !matches!(record["status"].as_str(), Some("pending" | "delivered")) {
                    return Ok(record);
                }
                if Instant::now() > deadline {
                    return Err(format!("{id} not final: {record}"));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }));
    }
    let mut completion = Vec::new();
    for poll in polls {
        match poll.await? {
            Ok(record) if record["status"] == "succeeded" => {
                let created = record["created_ms"].as_i64().unwrap_or(0);
                let updated = record["updated_ms"].as_i64().unwrap_or(0);
                completion.push((updated - created) as f64 / 1000.0);
            }
            Ok(record) => failures.push(record.to_string()),
            Err(e) => failures.push(e),
        }
    }
    let wall = started.elapsed();
    completion.sort_by(f64::total_cmp);

    // What the TVs received: each its keys, once.
    let mut wrong = Vec::new();
    for (e, sim) in sims.iter().enumerate() {
        let state = sim.get("/state").await?;
        for tv in state.as_array().cloned().unwrap_or_default() {
            let mut keys: Vec<u64> = tv["keys"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .filter_map(|k| k.as_u64())
                .collect();
            keys.sort_unstable();
            let want: Vec<u64> = KEYS
                .iter()
                .take(ops_per_tv)
                .map(|k| u64::from(*k))
                .collect();
            if keys != want {
                wrong.push(format!("edge {} tv {}: {keys:?}", e + 1, tv["index"]));
            }
        }
    }

    // A screenshot's round trip, 10 times.
    let mut shots = Vec::new();
    for _ in 0..10 {
        let t = Instant::now();
        let record = site
            .command(
                "edge-01",
                "tv-1-000",
                "screenshot",
                json!({}),
                Duration::from_secs(30),
            )
            .await
            .map_err(|e| anyhow::anyhow!(e))?;
        let id = record["result"]["screenshot"]["bulk_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        wait_until(
            "screenshot stored at the hub",
            Duration::from_secs(30),
            || async {
                matches!(
                    site.api("GET", &format!("/api/v1/bulk/edge-01/{id}"), "")
                        .await,
                    Ok((200, _))
                )
            },
        )
        .await?;
        shots.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    shots.sort_by(f64::total_cmp);

    // Baseline: the same key presses straight over ADB, one connection per TV.
    let key = std::sync::Arc::new(outpost_adb::auth::generate_key()?);
    let addrs: Vec<SocketAddr> = sims.iter().flat_map(|s| (0..n).map(|i| s.tv(i))).collect();
    let ready = std::sync::Arc::new(tokio::sync::Barrier::new(addrs.len() + 1));
    let mut tasks = Vec::new();
    for addr in addrs {
        let key = key.clone();
        let ready = ready.clone();
        tasks.push(tokio::spawn(async move {
            let mut times = Vec::new();
            let mut adb =
                outpost_edge::AdbConnection::connect(addr, &key, "bench", Duration::from_secs(10))
                    .await
                    .map_err(|e| e.to_string())?;
            // Connections are warm on the edge too: time only the key presses.
            ready.wait().await;
            let t0 = Instant::now();
            for k in KEYS.iter().take(ops_per_tv) {
                adb.shell(&format!("input keyevent {k}"))
                    .await
                    .map_err(|e| e.to_string())?;
                times.push(t0.elapsed().as_secs_f64());
            }
            Ok::<_, String>(times)
        }));
    }
    ready.wait().await;
    let started_baseline = Instant::now();
    let mut baseline = Vec::new();
    let mut baseline_failures = 0;
    for task in tasks {
        match task.await? {
            Ok(times) => baseline.extend(times),
            Err(_) => baseline_failures += 1,
        }
    }
    let baseline_wall = started_baseline.elapsed();
    baseline.sort_by(f64::total_cmp);

    let total = completion.len() + failures.len();
    let report = json!({
        "machine": "2 cores; hub, 4 edges and 4 TV simulator processes on the same cores",
        "tvs": args.edges * usize::from(n),
        "edges": args.edges,
        "operations": total,
        "ours": {
            "completion_seconds": {
                "p50": percentile(&completion, 0.5),
                "p99": percentile(&completion, 0.99),
                "max": completion.last().copied().unwrap_or(0.0),
            },
            "wall_seconds": wall.as_secs_f64(),
            "all_issued_after_seconds": issued.as_secs_f64(),
            "failures": failures.len(),
            "tvs_with_lost_or_repeated_keys": wrong.len(),
            "first_problems": failures.iter().chain(wrong.iter()).take(5).collect::<Vec<_>>(),
        },
        "baseline_direct_adb": {
            "completion_seconds": {
                "p50": percentile(&baseline, 0.5),
                "p99": percentile(&baseline, 0.99),
            },
            "wall_seconds": baseline_wall.as_secs_f64(),
            "failures": baseline_failures,
        },
        "p99_ratio_ours_to_baseline": percentile(&completion, 0.99) / percentile(&baseline, 0.99).max(1e-9),
        "screenshot_round_trip_ms": {
            "p50": percentile(&shots, 0.5),
            "max": shots.last().copied().unwrap_or(0.0),
        },
    });
    let text = serde_json::to_string_pretty(&report)?;
    println!("{text}");
    if let Some(out) = &args.out {
        std::fs::write(out, format!("{text}\n"))?;
    }
    if let Ok(site) = std::sync::Arc::try_unwrap(site) {
        site.stop().await?;
    }
    for sim in sims {
        sim.kill().await;
    }
    Ok(())
}
