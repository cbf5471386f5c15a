//! Meters entered by hand, through real processes with the simulator as ground truth: a machine
//! takes a bill and loses power (the edge loses it); an attendant reads its meters at the machine
//! and enters them with a typo; a supervisor corrects them. The day's drop is what the
//! machine really took, the trail keeps the typo beside its correction, the day says why it
//! cannot be verified, and a rebuild of the accounting from the log stores the same bytes.

#![allow(clippy::unwrap_used)] // In tests a panic is a failed test with its message.

use std::path::Path;
use std::time::Duration;

use outpost_harness::harness::{
    EgmSimProcess, RunningSite, start_sas_line_site, wait_projection_caught_up, wait_until,
};
use outpost_harness::site::gaming_day_start_hour_far_from_now;
use serde_json::json;

const SUPERVISOR: &str = "supervisor-token-manual-0123456789";
const MANUAL: &str = "/api/v1/machines/edge-01/egm-1/meters/manual";

fn exe() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_outpost-sim"))
}

async fn get(site: &RunningSite, path: &str) -> serde_json::Value {
    let (status, text) = site.api("GET", path, "").await.unwrap();
    assert_eq!(status, 200, "{path}: {text}");
    serde_json::from_str(&text).unwrap()
}

async fn status_of(site: &RunningSite) -> String {
    get(site, "/api/v1/devices/edge-01/egm-1").await["status"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// The simulator's meter `code` of the machine at address 1.
async fn sim_meter(sim: &EgmSimProcess, code: u8) -> u64 {
    let state = sim.state().await.unwrap();
    state["egms"][0]["meters"][code.to_string()]
        .as_u64()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meters_entered_by_hand_while_the_link_is_down_and_corrected_give_the_true_day() {
    let tmp = tempfile::tempdir().unwrap();
    // The gaming day starts 12 hours from now, so this test never spans two of them.
    let hour = gaming_day_start_hour_far_from_now();
    let (sim, site) = start_sas_line_site(
        exe(),
        tmp.path(),
        &["egm-1"],
        &["--play-rate", "0"],
        "meter_interval_ms = 1000",
        format!(
            "[accounting]\ngaming_day_start_hour = {hour}\n\n\
             [[api.tokens]]\nname = \"floor-super\"\ntoken = \"{SUPERVISOR}\"\nrole = \"supervisor\"\n"
        ),
    )
    .await
    .unwrap();
    let (hub_admin, hub_config) = (site.layout.hub_admin, site.layout.hub_config.clone());
    wait_until("a first interval", Duration::from_secs(30), || async {
        let (_, text) = site
            .api("GET", "/api/v1/machines/edge-01/egm-1/days/today", "")
            .await
            .unwrap();
        serde_json::from_str::<serde_json::Value>(&text).unwrap_or_default()["reconciliation"]
            ["intervals"]
            .as_u64()
            .unwrap_or(0)
            >= 1
    })
    .await
    .unwrap();
    let drop_at_start = sim_meter(&sim, 0x24).await;
    sim.post("/bill", &json!({"address": 1, "credits": 2000}))
        .await
        .unwrap();

    let reading = |drop: u64, coin_in: u64, read_at: &str| {
        json!({
            "read_at": read_at,
            "meters": {"total_drop": drop, "coin_in": coin_in},
            "reason": "link down; read at the machine by the slot tech",
        })
        .to_string()
    };
    let now = || outpost_domain::calendar::rfc3339_utc(outpost_process::clock::unix_us());
    // While the machine is online its meters are read electronically.
    let (status, text) = site
        .api("POST", MANUAL, &reading(1, 1, &now()))
        .await
        .unwrap();
    assert_eq!(status, 409, "{text}");
    assert!(text.contains("meter_refresh"), "{text}");

    // The machine loses power for 10 s: the edge loses it.
    sim.post("/power", &json!({"address": 1, "off_ms": 10_000}))
        .await
        .unwrap();
    wait_until("comms lost", Duration::from_secs(8), || async {
        status_of(&site).await == "comms_lost"
    })
    .await
    .unwrap();
    let true_drop = sim_meter(&sim, 0x24).await;
    let coin_in = sim_meter(&sim, 0x00).await;
    assert_eq!(true_drop, drop_at_start + 2000);

    // Bad entries change nothing.
    for (body, needle) in [
        (
            json!({"read_at": now(), "meters": {"drop": 5}, "reason": "x"}).to_string(),
            "no meter named",
        ),
        (reading(1, 1, "2999-01-01T00:00:00Z"), "in the future"),
        (reading(1, 1, "yesterday"), "read_at"),
        (
            json!({"read_at": now(), "meters": {"coin_in": 1}, "reason": "  "}).to_string(),
            "reason",
        ),
        (
            json!({"read_at": now(), "meters": {"coin_in": 100_000_000u64}, "reason": "r"})
                .to_string(),
            "8-digit",
        ),
    ] {
        let (status, text) = site.api("POST", MANUAL, &body).await.unwrap();
        assert_eq!(status, 400, "{body}: {text}");
        assert!(text.contains(needle), "{needle}: {text}");
    }
    let (status, text) = site
        .api(
            "POST",
            "/api/v1/machines/edge-01/egm-9/meters/manual",
            &reading(1, 1, &now()),
        )
        .await
        .unwrap();
    assert_eq!(status, 404, "{text}");
    assert_eq!(get(&site, MANUAL).await, json!([]), "nothing half-applied");

    // The attendant's typo: 50.00 too much drop.
    let (status, text) = site
        .api("POST", MANUAL, &reading(true_drop + 5000, coin_in, &now()))
        .await
        .unwrap();
    assert_eq!(status, 201, "{text}");
    let entry: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(entry["applied"], true, "{entry}");
    assert_eq!(entry["by"], "site-operator");
    let id = entry["id"].as_u64().unwrap();

    // Corrections need a supervisor and the entry's own meters.
    let correction = |drop: u64| {
        json!({"meters": {"total_drop": drop}, "reason": "typo: 50.00 too much"}).to_string()
    };
    let corrections = format!("{MANUAL}/{id}/corrections");
    let (status, text) = site
        .api("POST", &corrections, &correction(true_drop))
        .await
        .unwrap();
    assert_eq!(status, 403, "an operator cannot correct: {text}");
    let (status, text) = site
        .api_as(
            SUPERVISOR,
            "POST",
            &corrections,
            &json!({"meters": {"games_played": 1}, "reason": "r"}).to_string(),
        )
        .await
        .unwrap();
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("has no games_played"), "{text}");
    let (status, text) = site
        .api_as(
            SUPERVISOR,
            "POST",
            &format!("{MANUAL}/999999/corrections"),
            &correction(true_drop),
        )
        .await
        .unwrap();
    assert_eq!(status, 404, "{text}");
    let (status, text) = site
        .api_as(SUPERVISOR, "POST", &corrections, &correction(true_drop))
        .await
        .unwrap();
    assert_eq!(status, 201, "{text}");
    let fix: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(fix["corrects"], id);
    assert_eq!(fix["by"], "floor-super");
    assert_eq!(fix["applied"], true);

    // Power is back: the edge reads the machine again.
    wait_until("comms restored", Duration::from_secs(30), || async {
        status_of(&site).await == "online"
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    wait_projection_caught_up(hub_admin, "accounting", Duration::from_secs(20))
        .await
        .unwrap();

    let day = get(&site, "/api/v1/machines/edge-01/egm-1/days/today").await;
    assert_eq!(
        day["figures"]["drop"], "20.00",
        "the bill, the typo corrected away: {day}"
    );
    assert_eq!(day["reconciliation"]["verdict"], "unverifiable", "{day}");
    let reasons = day["reconciliation"]["reasons"].to_string();
    assert!(reasons.contains("entered by hand"), "{reasons}");
    assert!(reasons.contains("correction"), "{reasons}");
    let trail = get(&site, MANUAL).await;
    assert_eq!(trail.as_array().unwrap().len(), 2, "{trail}");
    assert_eq!(
        trail[0]["meters"]["total_drop"],
        true_drop + 5000,
        "the original is kept as entered: {trail}"
    );
    assert_eq!(trail[0]["corrected_by"], json!([fix["id"]]));
    assert_eq!(trail[0]["units"]["total_drop"], "credits");

    // A rebuild from the log applies the entries at their places again: the same bytes.
    let mut site = site;
    site.stop_edge(0).await.unwrap();
    wait_projection_caught_up(hub_admin, "accounting", Duration::from_secs(20))
        .await
        .unwrap();
    // Stopped, not killed: a kill -9 may lose sled's last unflushed batch, and the live tree
    // would then be behind the log rather than different from it.
    site.stop_hub().await.unwrap();
    let out = std::process::Command::new(exe())
        .args(["hub", "projections", "rebuild", "accounting", "--config"])
        .arg(&hub_config)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("(identical)"), "{said}");
    site.start_hub().await.unwrap();
    let again = get(&site, "/api/v1/machines/edge-01/egm-1/days/today").await;
    assert_eq!(again["figures"], day["figures"]);
    assert!(site.stop().await.unwrap());
}
