//! `outpost-sim bench hikcentral`: guest-visit provisioning measured against the HikCentral
//! simulator with 50 ms of latency per request. Prints one JSON document.
//!
//! - `throughput`: visits provisioned per second by the hub's jobs (durable store, pinned TLS,
//!   `max_concurrent_requests` in flight), next to a baseline: the same calls (add person, face,
//!   person read-back, access level, reapplication) made one visit at a time by the same client,
//!   with no store — what a straightforward script does. Also per-visit latency (created → active).
//! - `db_full_recovery`: HikCentral answers code 5 until cleared; the breaker opens; after the
//!   clear, how long until the next probe and until every waiting visit is active.

use std::time::{Duration, Instant};

use outpost_artemis::api;
use outpost_hub::ArtemisClient;
use outpost_hub::VisitState;
use outpost_process::clock::unix_ms;
use serde_json::json;

use crate::delivery::percentile;

use outpost_harness::visits_driver::{HubVisits, config_for, new_visit, wait_all};
use outpost_simulators::hikcentral::state::{Faults, Profile};
use outpost_simulators::hikcentral::{CertKind, HikSim, start};

/// Options of `bench hikcentral`.
#[derive(Debug, Clone, clap::Args)]
pub struct HikBenchArgs {
    /// Visits per measurement.
    #[arg(long, default_value_t = 200)]
    pub visits: usize,
    /// Latency the simulator adds to every request, ms.
    #[arg(long, default_value_t = 50)]
    pub latency_ms: u64,
    /// Requests in flight to HikCentral (the hub's `max_concurrent_requests`).
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// First open period of the code-5 breaker, ms (the default config says 60000).
    #[arg(long, default_value_t = 2000)]
    pub db_full_initial_ms: u64,
    /// How long HikCentral stays full in the recovery measurement, ms.
    #[arg(long, default_value_t = 5000)]
    pub db_full_for_ms: u64,
    /// Also write the JSON here.
    #[arg(long)]
    pub out: Option<std::path::PathBuf>,
}

const KEY: &str = "12345678";
const SECRET: &str = "abcdefghijklmnopqrst";

pub async fn run(args: HikBenchArgs) -> anyhow::Result<()> {
    let tmp = tempfile::Builder::new()
        .prefix("outpost-bench-hik-")
        .tempdir()?;
    let configure = |sim: &outpost_simulators::hikcentral::RunningHikSim| {
        let mut config = config_for(sim, KEY, SECRET);
        config.max_concurrent_requests = args.concurrency;
        config.retry_initial_ms = 200;
        config.retry_max_ms = 5_000;
        config.db_full_initial_ms = args.db_full_initial_ms;
        config.db_full_max_ms = args.db_full_initial_ms * 8;
        config.request_timeout_ms = 10_000;
        config
    };
    let latency = Faults {
        latency_ms: args.latency_ms,
        ..Faults::default()
    };

    // Baseline: one visit at a time, same client, no store.
    let sim = start(
        "127.0.0.1:0".parse()?,
        HikSim::new(KEY, SECRET, Profile::Current, 900, 1),
        CertKind::SelfSignedCa,
    )
    .await?;
    sim.sim.set_faults(latency.clone());
    let config = configure(&sim);
    let client = ArtemisClient::new(&config)?;
    let now = unix_ms();
    let baseline_n = (args.visits / 4).max(10);
    let started = Instant::now();
    for i in 0..baseline_n {
        let v = new_visit("b", i, now, now + 3_600_000);
        let person = api::NewPerson {
            code: format!("B{i}"),
            family_name: "Visitor".into(),
            given_name: format!("Guest{i}"),
            org_index_code: "1".into(),
            begin: time::OffsetDateTime::now_utc(),
            end: time::OffsetDateTime::now_utc() + Duration::from_secs(3600),
        };
        let id = client
            .call(api::PERSON_ADD, &person.body())
            .await?
            .data_id("personId")
            .ok_or_else(|| anyhow::anyhow!("no person id"))?;
        client
            .call(api::FACE_UPDATE, &api::face_body(&id, &v.photo))
            .await?;
        client
            .call(api::PERSON_BY_ID, &api::person_id_body(&id))
            .await?;
        client
            .call(
                api::LEVEL_ADD_PERSONS,
                &api::level_members_body(&v.access_level, &id),
            )
            .await?;
        client
            .call(api::REAPPLICATION, &api::reapplication_body(&[&id]))
            .await?;
    }
    let baseline_rate = baseline_n as f64 / started.elapsed().as_secs_f64();
    drop(sim);

    // Ours: the hub's durable jobs.
    let sim = start(
        "127.0.0.1:0".parse()?,
        HikSim::new(KEY, SECRET, Profile::Current, 900, 2),
        CertKind::SelfSignedCa,
    )
    .await?;
    sim.sim.set_faults(latency.clone());
    let hub = HubVisits::start(&configure(&sim), &tmp.path().join("hub")).await?;
    let now = unix_ms();
    let started = Instant::now();
    let mut ids = Vec::new();
    for i in 0..args.visits {
        ids.push(
            hub.visits
                .create(new_visit("o", i, now, now + 3_600_000), "bench")
                .await?
                .id,
        );
    }
    let took = wait_all(&hub.visits, &ids, Duration::from_secs(600), |v| {
        v.state == VisitState::Active
    })
    .await
    .map_err(|e| anyhow::anyhow!(e))?;
    let rate = args.visits as f64 / took.as_secs_f64();
    let _ = started;
    let mut latencies: Vec<f64> = hub
        .visits
        .list(Some(VisitState::Active))?
        .iter()
        .filter_map(|v| {
            v.history
                .iter()
                .find(|h| h.state == VisitState::Active)
                .map(|h| (h.at_ms - v.created_ms) as f64 / 1000.0)
        })
        .collect();
    latencies.sort_by(f64::total_cmp);
    let calls = sim.sim.calls().len() as f64 / args.visits as f64;
    drop(hub);
    drop(sim);

    // Recovery after code 5 clears.
    let sim = start(
        "127.0.0.1:0".parse()?,
        HikSim::new(KEY, SECRET, Profile::Current, 900, 3),
        CertKind::SelfSignedCa,
    )
    .await?;
    sim.sim.set_faults(Faults {
        db_full: true,
        ..latency.clone()
    });
    let hub = HubVisits::start(&configure(&sim), &tmp.path().join("hub-full")).await?;
    let n = (args.visits / 2).max(10);
    let mut ids = Vec::new();
    let now = unix_ms();
    for i in 0..n {
        ids.push(
            hub.visits
                .create(new_visit("f", i, now, now + 3_600_000), "bench")
                .await?
                .id,
        );
    }
    let opened = Instant::now();
    while !hub.visits.breaker_open() {
        if opened.elapsed() > Duration::from_secs(60) {
            anyhow::bail!("the breaker never opened");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(args.db_full_for_ms)).await;
    let code5_while_full = sim
        .sim
        .calls()
        .iter()
        .filter(|c| c.code.as_deref() == Some("5"))
        .count();
    sim.sim.set_faults(latency.clone());
    let cleared = Instant::now();
    let cleared_ms = unix_ms();
    let recovered = wait_all(&hub.visits, &ids, Duration::from_secs(600), |v| {
        v.state == VisitState::Active
    })
    .await
    .map_err(|e| anyhow::anyhow!(e))?;
    let first_success_ms = sim
        .sim
        .calls()
        .iter()
        .filter(|c| c.at_ms >= cleared_ms && c.code.as_deref() == Some("0"))
        .map(|c| c.at_ms)
        .min()
        .unwrap_or(cleared_ms);
    let _ = cleared;

    let report = json!({
        "machine": "2 cores; simulator, hub jobs and TLS in one process",
        "latency_ms_per_request": args.latency_ms,
        "throughput": {
            "visits": args.visits,
            "concurrency": args.concurrency,
            "visits_per_second": rate,
            "requests_per_visit": calls,
            "created_to_active_seconds": {
                "p50": percentile(&latencies, 0.5),
                "p99": percentile(&latencies, 0.99),
                "max": latencies.last().copied().unwrap_or(0.0),
            },
            "baseline_sequential_visits_per_second": baseline_rate,
            "baseline_visits": baseline_n,
            "ratio_to_baseline": rate / baseline_rate,
        },
        "db_full_recovery": {
            "visits_waiting": n,
            "full_for_ms": args.db_full_for_ms,
            "breaker_first_open_ms": args.db_full_initial_ms,
            "code_5_answers_while_full": code5_while_full,
            "first_success_after_clear_seconds": (first_success_ms - cleared_ms) as f64 / 1000.0,
            "all_active_after_clear_seconds": recovered.as_secs_f64(),
        },
    });
    let text = serde_json::to_string_pretty(&report)?;
    println!("{text}");
    if let Some(out) = &args.out {
        std::fs::write(out, format!("{text}\n"))?;
    }
    Ok(())
}
