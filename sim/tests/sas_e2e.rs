//! Slot machines end to end, as real processes: 16 simulated EGMs on 4 pty lines play with
//! injected faults (dropped, late, corrupted, BUSY and NACKed replies), meters rolling over and a
//! power loss, and the hub killed (-9) and restarted mid-play; the edge polls them and delivers to
//! the hub. Afterwards the hub's committed events hold every exception each machine delivered, once
//! and in order, the meter readings add up (rollover-aware) to what the simulator really added,
//! and each machine's gaming days read through the API equal the simulator's lifetime meters and
//! reconcile. Commands reach a machine and come back.

#![allow(clippy::unwrap_used)] // In tests a panic is a failed test with its message.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use outpost_domain::accounting::Bucket;
use outpost_domain::projection::{AccountingProjection, Change, Projection};
use outpost_harness::harness::{EgmSimProcess, RunningSite, scrape, wait_edge_drained, wait_until};
use outpost_harness::site::{SiteLayout, SiteSpec, sas_pty_line_toml};
use outpost_hub::EventLog;
use outpost_link::{EventBody, SasEvent};
use outpost_sas::egm::{REPORTED_METERS, meter};
use outpost_simulators::egm::FaultRates;
use outpost_storage::DurableDb;

const LINES: usize = 4;
const PER_LINE: u8 = 4;
const FAULTS: &str = "drop=0.02,late=0.02,corrupt=0.02,busy=0.01,nack=0.01";

fn exe() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_outpost-sim"))
}

/// A decimal amount (`"12.34"`) in cents.
fn cents(amount: &str) -> i128 {
    let (whole, fraction) = amount.split_once('.').unwrap_or((amount, "0"));
    whole.parse::<i128>().unwrap() * 100 + fraction.parse::<i128>().unwrap()
}

fn device(line: usize, address: u8) -> String {
    format!("egm-{line}-{address}")
}

async fn all_states(sims: &[EgmSimProcess]) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for sim in sims {
        out.push(sim.state().await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_egms_on_four_lines_deliver_every_exception_once_and_meters_that_add_up() {
    let tmp = tempfile::tempdir().unwrap();
    let seed: u64 = std::env::var("OUTPOST_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    println!("seed {seed} (replay with OUTPOST_CHAOS_SEED={seed})");

    // The simulators start without play: the first meter reading is every meter's baseline.
    let mut sims = Vec::new();
    for line in 0..LINES {
        let log = tmp.path().join(format!("egm-line-{line}.log"));
        let seed = (seed + line as u64).to_string();
        let args = ["--play-rate", "0", "--faults", FAULTS, "--seed", &seed];
        sims.push(
            EgmSimProcess::spawn_pty_line(exe(), PER_LINE, &args, &log)
                .await
                .unwrap(),
        );
    }
    // Meters close to their rollover on two machines.
    for (line, address, code) in [(0, 1, meter::COIN_IN), (1, 2, meter::TOTAL_BILLS)] {
        sims[line]
            .post(
                "/rollover",
                &serde_json::json!({"address": address, "meter": code, "below": 3}),
            )
            .await
            .unwrap();
    }

    let mut devices = String::new();
    for (line, sim) in sims.iter().enumerate() {
        let ids: Vec<String> = (1..=PER_LINE).map(|a| device(line, a)).collect();
        devices += &sas_pty_line_toml(
            &format!("line-{line}"),
            &sim.line,
            &ids,
            "meter_interval_ms = 1000",
        );
    }
    let layout = SiteLayout::prepare(tmp.path(), &SiteSpec::single("edge-01", &devices)).unwrap();
    let edge_admin = layout.edges[0].admin;
    let hub_data = layout.hub_data_dir.clone();
    let mut site = RunningSite::start(exe(), layout).await.unwrap();

    // Every machine's baseline reading is durable before play starts.
    wait_until(
        "a first meter reading of every EGM",
        Duration::from_secs(30),
        || async {
            let mut all = true;
            for line in 0..LINES {
                for a in 1..=PER_LINE {
                    let series = format!(
                        "outpost_sas_events_total{{device=\"{}\",kind=\"meters\"}}",
                        device(line, a)
                    );
                    all &= scrape(edge_admin, &series).await.unwrap_or(0.0) >= 1.0;
                }
            }
            all
        },
    )
    .await
    .unwrap();
    // Per machine, when it last answered a poll; per line, the poll times.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    for line in 0..LINES {
        for a in 1..=PER_LINE {
            let series = format!(
                "outpost_sas_last_poll_timestamp_seconds{{device=\"{}\"}}",
                device(line, a)
            );
            let at = scrape(edge_admin, &series).await.unwrap();
            assert!((now - at).abs() < 30.0, "{series} is {at}, now {now}");
        }
    }
    let polls = outpost_harness::harness::scrape_sum(edge_admin, "outpost_sas_poll_seconds_count")
        .await
        .unwrap();
    assert!(polls > 0.0, "polls timed per line");
    // Actor labels are paths in the tree, no segment repeated (`edge/devices/sas/line-1/…`).
    let (_, text) = outpost_process::admin::get(edge_admin, "/metrics")
        .await
        .unwrap();
    let actors: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("outpost_actor_up{actor=\""))
        .filter_map(|l| l.split('"').next())
        .collect();
    assert!(actors.contains(&"edge/devices"), "{actors:?}");
    assert!(
        actors.iter().any(|a| a.starts_with("edge/devices/sas/")),
        "{actors:?}"
    );
    for actor in &actors {
        let segments: Vec<&str> = actor.split('/').collect();
        assert!(
            segments.windows(2).all(|w| w[0] != w[1]) && !actor.contains("edge/edge"),
            "actor label {actor} repeats a segment"
        );
    }
    for sim in &sims {
        sim.post("/play", &serde_json::json!({"rate": 1.0}))
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_secs(6)).await;

    // A power loss (no RAM clear) while the faults are paused on that line, so the reply the
    // host got last before it is not one the simulator dropped.
    sims[2]
        .post("/faults", &serde_json::json!({}))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    sims[2]
        .post("/power", &serde_json::json!({"address": 3, "off_ms": 2500}))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rates = serde_json::to_value(FaultRates::parse(FAULTS).unwrap()).unwrap();
    sims[2].post("/faults", &rates).await.unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;

    // The hub dies mid-play (kill -9) and comes back: the edge resends what was not acknowledged
    // (duplicates the hub drops), and the projections resume from their cursors.
    site.kill9_hub().await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    site.start_hub().await.unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;

    // A command through the hub: disable play on one machine; the machine says so.
    let (status, body) = site
        .api(
            "POST",
            "/api/v1/commands",
            &format!(
                r#"{{"edge":"edge-01","device":"{}","op":"disable"}}"#,
                device(3, 4)
            ),
        )
        .await
        .unwrap();
    assert_eq!(status, 201, "{body}");
    let id = serde_json::from_str::<serde_json::Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    wait_until(
        "the disable command to succeed",
        Duration::from_secs(20),
        || async {
            let (_, text) = site
                .api("GET", &format!("/api/v1/commands/{id}"), "")
                .await
                .unwrap();
            text.contains("\"succeeded\"")
        },
    )
    .await
    .unwrap();
    let state = sims[3].state().await.unwrap();
    assert_eq!(
        state["egms"][3]["play_enabled"], false,
        "{}",
        state["egms"][3]
    );

    // Stop play; wait until every exception is acknowledged and a last meter reading is durable.
    for sim in &sims {
        sim.post("/play", &serde_json::json!({"rate": 0.0}))
            .await
            .unwrap();
    }
    wait_until(
        "every exception to be delivered",
        Duration::from_secs(30),
        || async {
            all_states(&sims).await.iter().all(|s| {
                s["egms"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|m| m["pending"] == 0)
            })
        },
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    wait_edge_drained(edge_admin, Duration::from_secs(30))
        .await
        .unwrap();
    let states = all_states(&sims).await;

    // What the hub understood: every machine's gaming days, read through the API once the
    // projections have caught up with the log.
    let hub_admin = site.layout.hub_admin;
    wait_until(
        "the projections to apply every committed event",
        Duration::from_secs(20),
        || async {
            let mut caught_up = true;
            for name in ["devices", "accounting", "device-events"] {
                let series = format!("outpost_projection_lag_events{{projection=\"{name}\"}}");
                caught_up &= scrape(hub_admin, &series).await == Some(0.0);
            }
            caught_up
        },
    )
    .await
    .unwrap();
    let mut hub_days: std::collections::BTreeMap<String, serde_json::Value> = Default::default();
    for line in 0..LINES {
        for a in 1..=PER_LINE {
            let id = device(line, a);
            let (status, text) = site
                .api("GET", &format!("/api/v1/machines/edge-01/{id}/days"), "")
                .await
                .unwrap();
            assert_eq!(status, 200, "{text}");
            hub_days.insert(id, serde_json::from_str(&text).unwrap());
        }
    }
    let (status, text) = site
        .api("GET", "/api/v1/devices?kind=egm", "")
        .await
        .unwrap();
    assert_eq!(status, 200, "{text}");
    let listed: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(listed["total"], 16, "{text}");
    assert!(
        listed["devices"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["status"] == "online" || d["status"] == "handpay"),
        "every machine is back online: {text}"
    );
    let (status, text) = site
        .api("GET", "/api/v1/sites/all/days/today", "")
        .await
        .unwrap();
    assert_eq!(status, 200, "{text}");
    assert!(site.stop().await.unwrap(), "hub and edge stopped cleanly");
    for sim in sims {
        sim.kill().await;
    }

    // What the hub committed.
    let durable = Arc::new(DurableDb::open(&hub_data.join("db")).unwrap());
    let log = EventLog::start(durable, 64, |_| {}).unwrap();
    let events = log.read("edge-01", 0, usize::MAX).unwrap();
    // The accounting replayed offline over the whole log: every meter's increase per machine.
    let mut accounting = AccountingProjection::new(outpost_domain::site::Floor::simple());
    let mut filed = Vec::new();
    let mut exceptions: std::collections::BTreeMap<String, Vec<u8>> = Default::default();
    let mut link_downs = 0;
    for stored in &events {
        let event = &stored.event;
        accounting.apply("edge-01", 0, stored, &mut filed).unwrap();
        match &event.body {
            EventBody::Sas(SasEvent::Exception { code }) => exceptions
                .entry(event.device.clone())
                .or_default()
                .push(*code),
            EventBody::Sas(SasEvent::Link { up: false }) => link_downs += 1,
            _ => {}
        }
    }

    // Each machine's hours as last filed, summed.
    let mut hours: std::collections::BTreeMap<(String, i64), Bucket> = Default::default();
    for change in filed {
        if let Change::Bucket { device, bucket, .. } = change {
            hours.insert((device, bucket.hour_us), *bucket);
        }
    }
    let mut totals: std::collections::BTreeMap<String, Bucket> = Default::default();
    for ((device, _), bucket) in &hours {
        totals.entry(device.clone()).or_default().add(bucket);
    }

    let mut games = 0u128;
    let mut faults = 0u64;
    let mut overflowed = 0usize;
    for (line, state) in states.iter().enumerate() {
        for key in ["drop", "late", "corrupt", "busy", "nack"] {
            faults += state["line"][key].as_u64().unwrap();
        }
        for machine in state["egms"].as_array().unwrap() {
            let address = machine["address"].as_u64().unwrap() as u8;
            let id = device(line, address);
            let delivered: Vec<u8> = machine["delivered"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_u64().unwrap() as u8)
                .collect();
            assert_eq!(
                exceptions.get(&id).cloned().unwrap_or_default(),
                delivered,
                "{id}: the hub has each delivered exception once, in order"
            );
            // An exception the EGM itself lost to a queue overflow was never sent (70 was,
            // and is in `delivered`); count them to show the host kept up.
            overflowed += machine["overflowed"].as_array().unwrap().len();
            // The hub's gaming days add up to what the simulator really added, in money
            // (one-cent credits), and every day reconciles.
            let days = &hub_days[&id];
            let total = |field: &str| -> i128 {
                days.as_array()
                    .unwrap()
                    .iter()
                    .map(|d| cents(d["figures"][field].as_str().unwrap()))
                    .sum()
            };
            let lifetime =
                |code: u8| machine["lifetime"][code.to_string()].as_u64().unwrap() as i128;
            assert_eq!(total("coin_in"), lifetime(meter::COIN_IN), "{id} coin in");
            assert_eq!(
                total("coin_out"),
                lifetime(meter::COIN_OUT),
                "{id} coin out"
            );
            assert_eq!(total("jackpot"), lifetime(meter::JACKPOT), "{id} jackpot");
            assert_eq!(total("drop"), lifetime(meter::TOTAL_BILLS), "{id} drop");
            let played: u64 = days
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d["figures"]["games_played"].as_u64().unwrap())
                .sum();
            assert_eq!(played as i128, lifetime(meter::GAMES_PLAYED), "{id} games");
            for day in days.as_array().unwrap() {
                assert_eq!(day["verdict"], "balanced", "{id}: {day}");
            }
            for code in REPORTED_METERS {
                if code == meter::CURRENT_CREDITS {
                    continue; // goes down as well as up: not an accumulating meter
                }
                let lifetime: u128 = machine["lifetime"][code.to_string()]
                    .as_u64()
                    .map(u128::from)
                    .unwrap();
                let total = &totals[&id];
                assert_eq!(total.flags.meter_resets, 0, "{id}: {:?}", total.flags);
                assert_eq!(
                    total.meter(code),
                    lifetime,
                    "{id} meter {code:#04x}: the hub's increase equals what was played"
                );
                let book = accounting.book("edge-01", &id).unwrap();
                assert_eq!(
                    book.last[&code].0,
                    machine["meters"][code.to_string()].as_u64().unwrap(),
                    "{id} meter {code:#04x}: last reading is the final value"
                );
            }
            games += machine["lifetime"][meter::GAMES_PLAYED.to_string()]
                .as_u64()
                .map(u128::from)
                .unwrap();
        }
    }
    let rolled = totals[&device(0, 1)].flags.rollovers + totals[&device(1, 2)].flags.rollovers;
    assert!(rolled >= 1, "a meter rolled over on the way");
    assert!(link_downs >= 1, "the power loss was seen as a link down");
    assert!(faults > 20, "faults were injected: {faults}");
    assert!(games > 150, "the machines played: {games} games");
    assert_eq!(
        overflowed, 0,
        "the host polled fast enough to keep every exception"
    );
    println!(
        "{} events, {games} games, {faults} faults injected, {link_downs} link downs, all accounted for",
        events.len()
    );
}
