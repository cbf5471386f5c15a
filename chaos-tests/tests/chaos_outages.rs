//! Faults at the edges of the system, real processes: noisy serial lines, a TV that drops off
//! the network, hangs, answers slowly and loses power, and HikCentral down (503s, connections
//! dropped before and after it commits, its database full), while the floor plays. Each outside
//! party is its own witness:
//!
//! - the slot machines (on lines that drop, corrupt, delay, BUSY and NACK replies): the floor's
//!   strict check (`chaos_tests::floor`): every exception a machine counts as delivered at the hub
//!   once and in order, the edge's sequence whole, the money equal;
//! - the TV (`outpost-sim tv`, which records every key it was sent): a remote-control key per
//!   command, each a different key, issued through the hub's API while the TV is faulted. Each
//!   command must end (by its 45 s deadline at the latest); no key may arrive twice (at most once) or unasked; a command reported
//!   `succeeded` must have arrived, one `expired` or `rejected` must not (a `failed` or
//!   `interrupted` one may have);
//! - HikCentral (the simulator in this process, which records every call): every visit the API
//!   accepted ends active with one person at HikCentral, created once, with its face and level.
//!
//! Not here: SQL Server outages. The hub's sink needs a server that runs its `MERGE`s, and the
//! TDS server we can run (pysqlbridge) takes `#temp` tables only; the outage and `kill -9` of the
//! sink are tested in-process (`hub/tests/mssql_kill9.rs`).
//!
//! The hub is also killed (`kill -9`) in two of the four rounds, while commands are in flight
//! (`OUTPOST_CHAOS_KILL_HUB=0` leaves it running). Found here and fixed: a command whose result the
//! hub had committed to its event log just before the kill stayed `delivered` for good — the
//! command log was written after the event log, and nothing applied the result again after the
//! restart (seed 18134728452272820901 under load). The event log now marks each committed result
//! in the same batch as its event, and the hub applies what is still marked when it starts
//! (`hub/tests/command_results.rs`).
//!
//! `OUTPOST_CHAOS_SEED` replays a schedule.

#![allow(clippy::unwrap_used)] // In tests a panic is a failed test with its message.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::time::Duration;

use chaos_tests::floor::{FloorSpec, PreparedFloor, env_or};
use outpost_harness::harness::{RunningSite, TvSimProcess, scrape, wait_until};
use outpost_harness::site::tv_toml;
use outpost_harness::visits_driver::{
    audit_provisioned, config_for, config_toml, new_visit, photo,
};
use outpost_hub::{Visit, VisitState};
use outpost_simulators::hikcentral::state::{Faults, Profile};
use outpost_simulators::hikcentral::{CertKind, HikSim, start};
use rand::{Rng, SeedableRng};
use serde_json::json;

fn exe() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_outpost-chaos"))
}

/// Keys `A`..`Z` (Android codes 29–54): none of them changes what the TV shows or runs.
const FIRST_KEY: u16 = 29;
const KEYS: u16 = 26;
const VISITS: usize = 36;

/// The TV's faults, one phase each, in an order the seed picks.
fn tv_phases(rng: &mut impl Rng) -> Vec<(&'static str, serde_json::Value)> {
    let mut phases = vec![
        ("network down", json!({"drop": true})),
        ("adbd hung", json!({"hang": true})),
        ("slow answers", json!({"slow_ms": 700})),
        ("power off", json!({"power": false})),
    ];
    for i in (1..phases.len()).rev() {
        phases.swap(i, rng.random_range(0..=i));
    }
    phases
}

/// HikCentral's outages, in an order the seed picks.
fn hik_phases(rng: &mut impl Rng) -> Vec<(&'static str, Faults)> {
    let mut phases = vec![
        (
            "503 to everything",
            Faults {
                http_error_rate: 1.0,
                http_error_status: Some(503),
                ..Faults::default()
            },
        ),
        (
            "connections dropped before it commits",
            Faults {
                drop_before_commit_rate: 1.0,
                ..Faults::default()
            },
        ),
        (
            "connections dropped after it commits, one in three",
            Faults {
                commit_then_drop_rate: 0.33,
                latency_ms: 20,
                ..Faults::default()
            },
        ),
        (
            "database full",
            Faults {
                db_full: true,
                ..Faults::default()
            },
        ),
    ];
    for i in (1..phases.len()).rev() {
        phases.swap(i, rng.random_range(0..=i));
    }
    phases
}

/// Each key command's deadline: a command ends by it at the latest (expired if it never ran).
const DEADLINE_SECONDS: u64 = 45;

async fn post_command(site: &RunningSite, key: u16) -> String {
    let body = json!({
        "edge": "edge-01", "device": "tv-1", "op": "key", "args": {"key": key},
        "deadline_seconds": DEADLINE_SECONDS,
    });
    let (status, text) = site
        .api("POST", "/api/v1/commands", &body.to_string())
        .await
        .unwrap();
    assert_eq!(status, 201, "key {key}: {text}");
    let record: serde_json::Value = serde_json::from_str(&text).unwrap();
    record["id"].as_str().unwrap().to_owned()
}

async fn command_status(site: &RunningSite, id: &str) -> Option<String> {
    let (status, text) = site
        .api("GET", &format!("/api/v1/commands/{id}"), "")
        .await
        .ok()?;
    if status != 200 {
        return None;
    }
    let record: serde_json::Value = serde_json::from_str(&text).ok()?;
    record["status"].as_str().map(str::to_owned)
}

async fn post_visit(site: &RunningSite, i: usize, now: i64) -> String {
    let v = new_visit("o", i, now - 60_000, now + 86_400_000);
    let body = json!({
        "id": v.id, "guest_name": v.guest_name, "access_level": v.access_level,
        "begin": v.begin, "end": v.end, "photo": v.photo,
    });
    // The hub may be restarting under the test: retry the create; a retry after a create that
    // was stored is answered 409, which is an accepted visit too.
    for _ in 0..100 {
        match site.api("POST", "/api/v1/visits", &body.to_string()).await {
            Ok((201 | 409, _)) => return v.id.unwrap().to_ascii_lowercase(),
            Ok((status, text)) if status < 500 => panic!("visit {i}: {status} {text}"),
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    panic!("visit {i}: the hub did not take it in 20 s");
}

async fn visits(site: &RunningSite) -> Option<Vec<Visit>> {
    let (status, body) = site.api("GET", "/api/v1/visits", "").await.ok()?;
    if status != 200 {
        return None;
    }
    serde_json::from_str(&body).ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn machines_tvs_and_hikcentral_each_see_every_request_once_through_their_own_faults() {
    outpost_process::install_crypto_provider();
    let seed: u64 = env_or("OUTPOST_CHAOS_SEED", rand::random());
    let kill_hub_too = env_or("OUTPOST_CHAOS_KILL_HUB", 1u8) == 1;
    println!("outages seed {seed} (replay with OUTPOST_CHAOS_SEED={seed})");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let (_guard, dir) = chaos_tests::floor::scenario_dir();

    let tv = TvSimProcess::spawn(
        exe(),
        &[
            "--listen",
            "127.0.0.1:0",
            "--count",
            "1",
            "--boot-seconds",
            "1",
        ],
        &dir.join("tv-sim.log"),
    )
    .await
    .unwrap();
    let hik = start(
        "127.0.0.1:0".parse().unwrap(),
        HikSim::new(
            "12345678",
            "abcdefghijklmnopqrst",
            Profile::Current,
            900,
            seed,
        ),
        CertKind::SelfSignedCa,
    )
    .await
    .unwrap();

    let mut spec = FloorSpec::new(seed);
    spec.serial_faults = "drop=0.02,late=0.01,corrupt=0.02,busy=0.01,nack=0.01".into();
    spec.extra_devices_toml = tv_toml(
        "tv-1",
        tv.tv(0),
        None,
        "telemetry_interval_ms = 300\nop_timeout_ms = 1000",
        "enabled = false",
    );
    spec.hub_extra_toml = config_toml(&config_for(&hik, "12345678", "abcdefghijklmnopqrst"));
    let prepared = PreparedFloor::prepare(exe(), dir.as_path(), &spec)
        .await
        .unwrap();
    let mut floor = prepared.start(exe()).await.unwrap();
    let edge_admin = floor.site.layout.edges[0].admin;
    wait_until("tv-1 up", Duration::from_secs(20), || async {
        scrape(edge_admin, "outpost_tv_up{device=\"tv-1\"}").await == Some(1.0)
    })
    .await
    .unwrap();

    // Four rounds; in each the TV and HikCentral are in one of their faults while keys and
    // visits are sent, and the hub is killed in the middle of the second and the fourth.
    let now = outpost_process::clock::unix_ms();
    let tv_faults = tv_phases(&mut rng);
    let hik_faults = hik_phases(&mut rng);
    let mut commands: BTreeMap<u16, String> = BTreeMap::new();
    let mut accepted_visits = Vec::new();
    let mut photos = HashMap::new();
    let mut key = FIRST_KEY;
    let mut visit = 0;
    for (round, ((tv_what, tv_fault), (hik_what, hik_fault))) in
        tv_faults.into_iter().zip(hik_faults).enumerate()
    {
        let kill_hub = kill_hub_too && round % 2 == 1;
        println!("round {round}: tv {tv_what}, hikcentral {hik_what}, hub killed: {kill_hub}");
        match tv_fault.get("power") {
            Some(_) => tv.post("/tv/0/power", &json!({"on": false})).await.unwrap(),
            None => tv.post("/tv/0/faults", &tv_fault).await.unwrap(),
        }
        hik.sim.set_faults(hik_fault);
        let per_round_keys = KEYS.div_ceil(4);
        let per_round_visits = VISITS / 4;
        for step in 0..per_round_keys.max(per_round_visits as u16) {
            if step < per_round_keys && key < FIRST_KEY + KEYS {
                commands.insert(key, post_command(&floor.site, key).await);
                key += 1;
            }
            if usize::from(step) < per_round_visits {
                let id = post_visit(&floor.site, visit, now).await;
                photos.insert(id, photo(visit));
                accepted_visits.push(visit);
                visit += 1;
            }
            if kill_hub && step == 3 {
                floor.site.kill9_hub().await.unwrap();
                floor.site.start_hub().await.unwrap();
            }
            tokio::time::sleep(Duration::from_millis(rng.random_range(100..400))).await;
        }
        // Heal.
        match tv_fault.get("power") {
            Some(_) => tv.post("/tv/0/power", &json!({"on": true})).await.unwrap(),
            None => tv.post("/tv/0/faults", &json!({})).await.unwrap(),
        }
        hik.sim.set_faults(Faults::default());
        tokio::time::sleep(Duration::from_millis(rng.random_range(500..1500))).await;
    }

    // Every command ends; every visit becomes active.
    let mut statuses: BTreeMap<u16, String> = BTreeMap::new();
    let site = &floor.site;
    let ended = wait_until(
        "every key command to end",
        Duration::from_secs(DEADLINE_SECONDS + 75),
        || async {
            for id in commands.values() {
                match command_status(site, id).await.as_deref() {
                    Some("pending" | "delivered") | None => return false,
                    Some(_) => {}
                }
            }
            true
        },
    )
    .await;
    for (key, id) in &commands {
        statuses.insert(
            *key,
            command_status(site, id)
                .await
                .unwrap_or_else(|| "unreadable".into()),
        );
    }
    if let Err(err) = ended {
        let mut records = Vec::new();
        for id in commands.values() {
            if let Ok((_, text)) = site.api("GET", &format!("/api/v1/commands/{id}"), "").await {
                records.push(text);
            }
        }
        panic!(
            "seed {seed}: {err}; statuses {statuses:?}; records:\n{}",
            records.join("\n")
        );
    }
    wait_until(
        "every visit to be active",
        Duration::from_secs(120),
        || async {
            visits(site).await.is_some_and(|v| {
                v.len() == accepted_visits.len() && v.iter().all(|v| v.state == VisitState::Active)
            })
        },
    )
    .await
    .unwrap();
    let active = visits(site).await.unwrap();
    let hik_audit = audit_provisioned(&hik, &active, &photos);

    let tv_state = tv.get("/tv/0").await.unwrap();
    let arrived: Vec<u16> = tv_state["keys"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|k| k.as_u64().map(|k| k as u16))
        .collect();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for status in statuses.values() {
        *counts.entry(status.as_str()).or_default() += 1;
    }
    println!("key commands: {counts:?}; keys at the TV: {arrived:?}");

    let report = floor.finish().await.unwrap();
    tv.kill().await;
    println!("{} events from the edge:\n{report}", report.last_seq);

    // The TV: at most once, nothing unasked, and each status true to what the TV saw.
    let mut seen = BTreeSet::new();
    for key in &arrived {
        assert!(
            seen.insert(*key),
            "seed {seed}: key {key} arrived twice: {arrived:?}"
        );
        assert!(
            commands.contains_key(key),
            "seed {seed}: key {key} arrived unasked"
        );
    }
    for (key, status) in &statuses {
        match status.as_str() {
            "succeeded" => assert!(
                seen.contains(key),
                "seed {seed}: key {key} reported succeeded, the TV never saw it"
            ),
            "expired" | "rejected" => assert!(
                !seen.contains(key),
                "seed {seed}: key {key} reported {status} (not run), the TV saw it"
            ),
            "failed" | "interrupted" => {}
            other => panic!("seed {seed}: key {key} ended {other}"),
        }
    }
    assert!(
        counts.get("succeeded").copied().unwrap_or(0) >= 1,
        "seed {seed}: the TV was healthy between the rounds and at the end, yet no key succeeded: {counts:?}"
    );
    hik_audit.unwrap_or_else(|e| panic!("seed {seed}: HikCentral: {e}"));
    assert_eq!(
        report.machine_indeterminate(),
        0,
        "a crash leaves nothing indeterminate"
    );
    assert!(report.valid(), "seed {seed}:\n{report}");
}
