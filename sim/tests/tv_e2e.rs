//! TVs and relays end to end: the TV simulator (a process), an edge and a hub (processes), every
//! TV operation issued through the hub's API with its result coming back, the screenshot fetched
//! from the hub, a pushed file verified; and the self-healing ladder: an app that left the front
//! is restarted, and a TV whose network died is power-cycled by its relay and comes back.

#![allow(clippy::unwrap_used)] // In tests a panic is a failed test with its message.

use std::path::Path;
use std::time::Duration;

use base64::Engine;
use outpost_harness::harness::{RunningSite, TvSimProcess, scrape, wait_until};
use outpost_harness::site::{SiteLayout, SiteSpec, http_relay_toml, tv_toml};
use serde_json::json;

fn exe() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_outpost-sim"))
}

const FAST_LADDER: &str = "unhealthy_checks = 2\nreconnect_wait_ms = 300\nrestart_app_wait_ms = 600\nreboot_wait_ms = 1500\npower_cycle_wait_ms = 2500\nround_pause_ms = 5000\nround_pause_max_ms = 20000";

/// One simulator process with two TVs: tv-1 (behind relay-1, fast ladder) and tv-2 (no relay,
/// no ladder, for the operations).
async fn start(tmp: &Path) -> (TvSimProcess, RunningSite) {
    let sim = TvSimProcess::spawn(
        exe(),
        &[
            "--listen",
            "127.0.0.1:0",
            "--count",
            "2",
            "--boot-seconds",
            "1",
        ],
        &tmp.join("tv-sim.log"),
    )
    .await
    .unwrap();
    let relay_url = format!("http://{}/tv/0/power", sim.control);
    let devices = format!(
        "{}{}{}",
        http_relay_toml("relay-1", &relay_url, 500),
        tv_toml(
            "tv-1",
            sim.tv(0),
            Some("relay-1"),
            "telemetry_interval_ms = 300\nop_timeout_ms = 1000",
            FAST_LADDER
        ),
        tv_toml(
            "tv-2",
            sim.tv(1),
            None,
            "telemetry_interval_ms = 500\nop_timeout_ms = 2000",
            "enabled = false"
        ),
    );
    let layout =
        SiteLayout::prepare(&tmp.join("site"), &SiteSpec::single("edge-01", &devices)).unwrap();
    let site = RunningSite::start(exe(), layout).await.unwrap();
    (sim, site)
}

async fn ok(
    site: &RunningSite,
    device: &str,
    op: &str,
    args: serde_json::Value,
) -> serde_json::Value {
    let record = site
        .command("edge-01", device, op, args, Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(record["status"], "succeeded", "{op}: {record}");
    // The typed answer: `{"<what>": {...fields}}`; its fields are what the tests read.
    let result = record["result"]
        .as_object()
        .unwrap_or_else(|| panic!("{op}: {record}"));
    assert_eq!(result.len(), 1, "{record}");
    result.values().next().unwrap().clone()
}

/// The hub's refusal of an operation (status and message).
async fn refusal(site: &RunningSite, device: &str, op: &str, args: serde_json::Value) -> String {
    site.command("edge-01", device, op, args, Duration::from_secs(5))
        .await
        .expect_err("the hub refuses it")
}

async fn tv_up(site: &RunningSite, device: &str) -> bool {
    scrape(
        site.layout.edges[0].admin,
        &format!("outpost_tv_up{{device=\"{device}\"}}"),
    )
    .await
        == Some(1.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_tv_operation_runs_through_the_hub_and_its_result_comes_back() {
    let tmp = tempfile::tempdir().unwrap();
    let (sim, site) = start(tmp.path()).await;
    wait_until("tv-2 up", Duration::from_secs(20), || tv_up(&site, "tv-2"))
        .await
        .unwrap();

    assert_eq!(
        ok(&site, "tv-2", "volume", json!({"level": 11})).await["level"],
        11
    );
    ok(&site, "tv-2", "volume_up", json!({})).await;
    ok(&site, "tv-2", "volume_down", json!({})).await;
    ok(&site, "tv-2", "mute", json!({})).await;
    ok(&site, "tv-2", "mute", json!({})).await;
    ok(&site, "tv-2", "key", json!({"key": "dpad_up"})).await;
    ok(&site, "tv-2", "key", json!({"key": 22})).await;
    ok(&site, "tv-2", "input", json!({"source": "hdmi3"})).await;
    ok(&site, "tv-2", "pause", json!({})).await;
    ok(&site, "tv-2", "play", json!({})).await;
    ok(&site, "tv-2", "next", json!({})).await;
    ok(&site, "tv-2", "power", json!({"on": false})).await;
    ok(&site, "tv-2", "power", json!({"on": true})).await;
    ok(
        &site,
        "tv-2",
        "launch",
        json!({"package": "com.metro.signage"}),
    )
    .await;
    let tv = sim.get("/tv/1").await.unwrap();
    assert_eq!(tv["volume"], 11, "{tv}");
    assert_eq!(tv["muted"], false);
    assert_eq!(tv["input"], "hdmi3");
    assert_eq!(tv["playing"], true, "pause then play");
    assert_eq!(tv["screen_on"], true, "power off then on");
    let keys: Vec<u64> = tv["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|k| k.as_u64())
        .collect();
    for code in [24, 25, 164, 19, 22, 245, 127, 126, 87, 223, 224] {
        assert!(keys.contains(&code), "key {code} reached the TV: {keys:?}");
    }

    // Bad arguments are refused at the hub, with what to send instead.
    let refused = refusal(&site, "tv-2", "volume", json!({"level": 99})).await;
    assert!(
        refused.starts_with("400") && refused.contains("0 to 15"),
        "{refused}"
    );
    let refused = refusal(&site, "tv-2", "input", json!({"source": "scart"})).await;
    assert!(refused.contains("hdmi1"), "{refused}");

    // A screenshot goes to the hub's bulk store and shows the state we set.
    let shot = ok(&site, "tv-2", "screenshot", json!({})).await;
    let id = shot["bulk_id"].as_str().unwrap().to_owned();
    wait_until("screenshot at the hub", Duration::from_secs(10), || async {
        matches!(
            site.api("GET", &format!("/api/v1/bulk/edge-01/{id}"), "")
                .await,
            Ok((200, _))
        )
    })
    .await
    .unwrap();
    let stored = std::fs::read(site.layout.hub_data_dir.join("bulk/edge-01").join(&id)).unwrap();
    assert_eq!(
        outpost_adb::tv::hex_sha256(&stored),
        shot["sha256"].as_str().unwrap()
    );
    let reader = png::Decoder::new(std::io::Cursor::new(stored))
        .read_info()
        .unwrap();
    let texts: Vec<(String, String)> = reader
        .info()
        .uncompressed_latin1_text
        .iter()
        .map(|t| (t.keyword.clone(), t.text.clone()))
        .collect();
    assert!(
        texts.contains(&("input".into(), "hdmi3".into())),
        "{texts:?}"
    );
    assert!(texts.contains(&("volume".into(), "11".into())), "{texts:?}");

    // A push is verified by the TV's own checksum.
    let media: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
    let sha = outpost_adb::tv::hex_sha256(&media);
    let pushed = ok(
        &site,
        "tv-2",
        "push",
        json!({"path": "/sdcard/Movies/ad.mp4", "data_base64": base64::engine::general_purpose::STANDARD.encode(&media), "sha256": sha}),
    )
    .await;
    assert_eq!(pushed["sha256"], sha.as_str(), "the TV's checksum matched");
    assert_eq!(pushed["bytes"], media.len());
    let tv = sim.get("/tv/1").await.unwrap();
    assert_eq!(tv["files"]["/sdcard/Movies/ad.mp4"][0], sha);
    let refused = refusal(
        &site,
        "tv-2",
        "push",
        json!({"path": "/sdcard/x.mp4", "data_base64": "AAAA", "sha256": "00".repeat(32)}),
    )
    .await;
    assert!(refused.contains("damaged"), "{refused}");

    // Reboot: the TV goes away and comes back.
    ok(&site, "tv-2", "reboot", json!({})).await;
    wait_until("tv-2 rebooted", Duration::from_secs(10), || async {
        sim.get("/tv/1").await.unwrap()["boots"] == 2
    })
    .await
    .unwrap();
    wait_until(
        "tv-2 answers after its reboot",
        Duration::from_secs(20),
        || async {
            site.command(
                "edge-01",
                "tv-2",
                "volume",
                json!({"level": 3}),
                Duration::from_secs(5),
            )
            .await
            .is_ok_and(|r| r["status"] == "succeeded")
        },
    )
    .await
    .unwrap();
}

/// Injects `fault` into tv-1, waits until it is down, then until the ladder's power cycles
/// reached `cycles` and it is up again.
async fn fault_until_power_cycled(
    sim: &TvSimProcess,
    site: &RunningSite,
    fault: serde_json::Value,
    cycles: f64,
) {
    let admin = site.layout.edges[0].admin;
    sim.post("/tv/0/faults", &fault).await.unwrap();
    wait_until("tv-1 down", Duration::from_secs(10), || async {
        !tv_up(site, "tv-1").await
    })
    .await
    .unwrap();
    wait_until("power-cycled and back", Duration::from_secs(40), || async {
        scrape(
            admin,
            "outpost_tv_recovery_steps_total{device=\"tv-1\",step=\"power_cycle\"}",
        )
        .await
            >= Some(cycles)
            && tv_up(site, "tv-1").await
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ladder_restarts_the_app_then_power_cycles_a_tv_whose_network_died() {
    let tmp = tempfile::tempdir().unwrap();
    let (sim, site) = start(tmp.path()).await;
    let admin = site.layout.edges[0].admin;
    wait_until("tv-1 up", Duration::from_secs(20), || tv_up(&site, "tv-1"))
        .await
        .unwrap();
    // Per TV: when it last answered, and its steps, exported at 0 before any was taken.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let seen = scrape(
        admin,
        "outpost_tv_last_seen_timestamp_seconds{device=\"tv-1\"}",
    )
    .await
    .unwrap();
    assert!(
        (now - seen).abs() < 30.0,
        "tv-1 last seen {seen}, now {now}"
    );
    assert_eq!(
        scrape(
            admin,
            "outpost_tv_recovery_steps_total{device=\"tv-2\",step=\"power_cycle\"}"
        )
        .await,
        Some(0.0)
    );

    // The player app leaves the front (someone pressed HOME): reconnect, then restart the app.
    ok(&site, "tv-1", "key", json!({"key": "home"})).await;
    wait_until("app restarted", Duration::from_secs(20), || async {
        scrape(
            admin,
            "outpost_tv_recovery_steps_total{device=\"tv-1\",step=\"restart_app\"}",
        )
        .await
            >= Some(1.0)
            && tv_up(&site, "tv-1").await
    })
    .await
    .unwrap();
    let tv = sim.get("/tv/0").await.unwrap();
    assert_eq!(tv["app"], "com.metro.signage");
    assert_eq!(tv["boots"], 1, "no reboot was needed");

    // The TV's network dies: ADB cannot help, the relay power-cycles it, and it comes back.
    fault_until_power_cycled(&sim, &site, json!({"drop": true}), 1.0).await;
    let tv = sim.get("/tv/0").await.unwrap();
    assert_eq!(tv["boots"], 2, "one power cycle: {tv}");
    assert_eq!(tv["powered"], true);
    assert_eq!(
        scrape(admin, "outpost_relay_state{device=\"relay-1\"}").await,
        Some(1.0)
    );
    assert_eq!(
        scrape(
            admin,
            "outpost_tv_recovery_steps_total{device=\"tv-1\",step=\"reboot\"}"
        )
        .await,
        Some(0.0),
        "reboot needs ADB: skipped"
    );

    // The operator sees each step in the edge's events at the hub.
    let (status, text) = site
        .api(
            "GET",
            "/api/v1/edges/edge-01/events?device=tv-1&limit=1000",
            "",
        )
        .await
        .unwrap();
    assert_eq!(status, 200, "{text}");
    let events: serde_json::Value = serde_json::from_str(&text).unwrap();
    let steps: Vec<String> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "tv.recovery")
        .filter_map(|e| e["step"].as_str().map(str::to_owned))
        .collect();
    for step in ["reconnect", "restart_app", "recovered", "power_cycle"] {
        assert!(steps.iter().any(|s| s == step), "{step} in {steps:?}");
    }
    let (_, text) = site
        .api("GET", "/api/v1/edges/edge-01/events?device=relay-1", "")
        .await
        .unwrap();
    assert!(
        text.contains("power cycle"),
        "the relay's switching is recorded: {text}"
    );

    // A hung adbd: reads, never answers. Same ladder, same cure.
    fault_until_power_cycled(&sim, &site, json!({"hang": true}), 2.0).await;

    // The relay's own operations.
    assert_eq!(ok(&site, "relay-1", "state", json!({})).await["on"], true);
    let refused = refusal(&site, "relay-1", "cycle", json!({"off_ms": "soon"})).await;
    assert!(refused.contains("off_ms"), "{refused}");
    assert!(site.stop().await.unwrap());
}
