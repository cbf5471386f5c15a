//! Reconciliation through real processes, with the simulator as ground truth: four machines play
//! the same way, then each suffers one fault. A bill whose exception the machine never raised is a
//! bills discrepancy of its value; a RAM clear makes the day unverifiable and says why; a meter
//! that jumps is a discrepancy of the jump; comms lost across a bill loses nothing (the machine
//! queues its exceptions), so that day balances and names the comms loss.

#![allow(clippy::unwrap_used)] // In tests a panic is a failed test with its message.

use std::path::Path;
use std::time::Duration;

use outpost_harness::harness::{EgmSimProcess, RunningSite, wait_projection_caught_up, wait_until};
use outpost_harness::site::{
    SiteLayout, SiteSpec, gaming_day_start_hour_far_from_now, sas_pty_line_toml,
};
use serde_json::json;

fn exe() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_outpost-sim"))
}

async fn day(site: &RunningSite, device: &str) -> serde_json::Value {
    let (status, text) = fetch_day(site, device).await;
    assert_eq!(status, 200, "{text}");
    serde_json::from_str(&text).unwrap()
}

async fn fetch_day(site: &RunningSite, device: &str) -> (u16, String) {
    site.api(
        "GET",
        &format!("/api/v1/machines/edge-01/{device}/days/today"),
        "",
    )
    .await
    .unwrap()
}

fn check<'a>(day: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    day["reconciliation"]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_injected_fault_gives_the_expected_verdict_with_the_right_amount() {
    let tmp = tempfile::tempdir().unwrap();
    let line_a =
        EgmSimProcess::spawn_pty_line(exe(), 3, &["--play-rate", "0"], &tmp.path().join("a.log"))
            .await
            .unwrap();
    let line_b =
        EgmSimProcess::spawn_pty_line(exe(), 1, &["--play-rate", "0"], &tmp.path().join("b.log"))
            .await
            .unwrap();
    let ids_a: Vec<String> = ["silent-bill", "ram-clear", "meter-jump"]
        .map(String::from)
        .into();
    let mut devices = sas_pty_line_toml("line-a", &line_a.line, &ids_a, "meter_interval_ms = 1000");
    devices += &sas_pty_line_toml(
        "line-b",
        &line_b.line,
        &["comms-lost".to_owned()],
        "meter_interval_ms = 1000",
    );
    let mut spec = SiteSpec::single("edge-01", &devices);
    // The gaming day starts 12 hours from now, so this test never spans two of them.
    let hour = gaming_day_start_hour_far_from_now();
    spec.hub_extra_toml = format!(
        "[accounting]\ngaming_day_start_hour = {hour}\n\n\
         [alerts]\nevaluate_every_ms = 200\n\n\
         [[alerts.rules]]\nrule = \"drop_variance\"\nthreshold = \"1.00\"\n"
    );
    let layout = SiteLayout::prepare(tmp.path(), &spec).unwrap();
    let hub_admin = layout.hub_admin;
    let site = RunningSite::start(exe(), layout).await.unwrap();
    let machines = ["silent-bill", "ram-clear", "meter-jump", "comms-lost"];
    wait_until(
        "a first interval on every machine",
        Duration::from_secs(30),
        || async {
            // Before the edge's first handshake the hub does not know its machines (404).
            let mut all = true;
            for m in machines {
                let (_, text) = fetch_day(&site, m).await;
                all &= serde_json::from_str::<serde_json::Value>(&text).unwrap_or_default()
                    ["reconciliation"]["intervals"]
                    .as_u64()
                    .unwrap_or(0)
                    >= 1;
            }
            all
        },
    )
    .await
    .unwrap();

    // The same play everywhere: a $20 bill and two games.
    for (sim, address) in [(&line_a, 1), (&line_a, 2), (&line_a, 3), (&line_b, 1)] {
        sim.post("/bill", &json!({"address": address, "credits": 2000}))
            .await
            .unwrap();
        for _ in 0..2 {
            sim.post("/game", &json!({"address": address, "bet": 5, "win": 0}))
                .await
                .unwrap();
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;

    // The faults.
    line_a
        .post("/meter", &json!({"address": 1, "meter": 0x24, "add": 2000}))
        .await
        .unwrap();
    line_a
        .post(
            "/power",
            &json!({"address": 2, "off_ms": 1500, "ram_clear": true}),
        )
        .await
        .unwrap();
    line_a
        .post("/meter", &json!({"address": 3, "meter": 0x05, "add": 100}))
        .await
        .unwrap();
    line_b
        .post("/power", &json!({"address": 1, "off_ms": 4000}))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    line_b
        .post("/bill", &json!({"address": 1, "credits": 2000}))
        .await
        .unwrap();

    // Back to normal: every machine answers, a few readings go by, the hub catches up.
    tokio::time::sleep(Duration::from_secs(7)).await;
    wait_projection_caught_up(hub_admin, "accounting", Duration::from_secs(20))
        .await
        .unwrap();

    let silent = day(&site, "silent-bill").await;
    assert_eq!(
        silent["reconciliation"]["verdict"], "discrepancy",
        "{silent}"
    );
    assert_eq!(check(&silent, "bills")["difference"], "20.00", "{silent}");
    assert_eq!(check(&silent, "games")["verdict"], "balanced");

    let cleared = day(&site, "ram-clear").await;
    assert_eq!(
        cleared["reconciliation"]["verdict"], "unverifiable",
        "{cleared}"
    );
    assert!(
        cleared["reconciliation"]["reasons"]
            .to_string()
            .contains("meter reset"),
        "{cleared}"
    );

    let jumped = day(&site, "meter-jump").await;
    assert_eq!(
        jumped["reconciliation"]["verdict"], "discrepancy",
        "{jumped}"
    );
    assert_eq!(check(&jumped, "games")["difference"], "100", "{jumped}");
    assert_eq!(check(&jumped, "bills")["verdict"], "balanced");

    // The same, on demand, for a window: the last hour up to now holds every interval above.
    let now = outpost_process::clock::unix_us();
    let window = format!(
        "/api/v1/machines/edge-01/silent-bill/reconciliation?from={}&to={}",
        outpost_domain::calendar::rfc3339_utc(now - 3_600_000_000),
        outpost_domain::calendar::rfc3339_utc(now + 1_000_000)
    );
    let (status, text) = site.api("GET", &window, "").await.unwrap();
    assert_eq!(status, 200, "{text}");
    let on_demand: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        check(&on_demand, "bills")["difference"],
        "20.00",
        "{on_demand}"
    );
    let (status, _) = site
        .api(
            "GET",
            "/api/v1/machines/edge-01/silent-bill/reconciliation?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z",
            "",
        )
        .await
        .unwrap();
    assert_eq!(status, 400, "an empty window");

    let lost = day(&site, "comms-lost").await;
    assert_eq!(lost["reconciliation"]["verdict"], "balanced", "{lost}");
    assert_eq!(
        check(&lost, "bills")["metered"],
        "40.00",
        "both bills: {lost}"
    );
    assert!(
        lost["reconciliation"]["reasons"]
            .to_string()
            .contains("comms with the machine were lost"),
        "{lost}"
    );

    // The count room: the silent bill's machine holds what its meters say; the other is $5 short,
    // then corrected (with a reason; the original is kept).
    let count = |device: &str, body: &str| {
        let path = format!("/api/v1/machines/edge-01/{device}/days/today/counted-drop");
        let body = body.to_owned();
        let site = &site;
        async move {
            let (status, text) = site.api("POST", &path, &body).await.unwrap();
            (
                status,
                serde_json::from_str::<serde_json::Value>(&text).unwrap(),
            )
        }
    };
    let (status, v) = count("silent-bill", r#"{"amount": "40.00"}"#).await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["variance"], "0.00");
    let (status, v) = count("comms-lost", r#"{"amount": "35.00"}"#).await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(
        (v["variance"].as_str(), v["variance_percent"].as_str()),
        (Some("-5.00"), Some("-12.50"))
    );
    wait_until(
        "the drop variance alert",
        Duration::from_secs(10),
        || async {
            let (_, text) = site
                .api("GET", "/api/v1/alerts?rule=drop_variance", "")
                .await
                .unwrap();
            text.contains("comms-lost") && !text.contains("silent-bill")
        },
    )
    .await
    .unwrap();
    let (status, v) = count("comms-lost", r#"{"amount": "40.00"}"#).await;
    assert_eq!(status, 400, "a correction says why: {v}");
    let (status, v) = count(
        "comms-lost",
        r#"{"amount": "40.00", "note": "recount: a $5 bill stuck in the box"}"#,
    )
    .await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["variance"], "0.00");
    assert_eq!(
        v["trail"].as_array().unwrap().len(),
        2,
        "the original is kept: {v}"
    );
    assert_eq!(v["trail"][0]["amount"], "35.00");
    for bad in [
        r#"{"amount": "-3"}"#,
        r#"{"amount": "1.234"}"#,
        r#"{"amount": "lots"}"#,
    ] {
        let (status, v) = count("silent-bill", bad).await;
        assert_eq!(status, 400, "{bad}: {v}");
    }
    let day = silent["day"].as_str().unwrap();
    for when in [day, "today"] {
        let (status, text) = site
            .api(
                "GET",
                &format!("/api/v1/sites/all/days/{when}/variance"),
                "",
            )
            .await
            .unwrap();
        assert_eq!(status, 200, "{text}");
        let report: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(report["day"], day);
        assert_eq!(report["not_counted"], 2, "{report}");
        assert_eq!(report["variance"], "0.00", "{report}");
    }
    let (status, _) = site
        .api("GET", "/api/v1/sites/all/days/someday/variance", "")
        .await
        .unwrap();
    assert_eq!(status, 400);
    assert!(site.stop().await.unwrap());
    line_a.kill().await;
    line_b.kill().await;
}
