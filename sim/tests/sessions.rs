//! Player sessions through real processes: a card bound to a simulated machine opens a session on
//! its meters; what is played until the card comes out is the session's totals, in money; the
//! machine's transaction log shows the same play as business events.

#![allow(clippy::unwrap_used)] // In tests a panic is a failed test with its message.

use std::path::Path;
use std::time::Duration;

use outpost_harness::harness::{start_sas_line_site, wait_until};
use serde_json::json;

fn exe() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_outpost-sim"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_totals_what_was_played_between_the_card_going_in_and_out() {
    let tmp = tempfile::tempdir().unwrap();
    let (sim, site) = start_sas_line_site(
        exe(),
        tmp.path(),
        &["egm-1"],
        &["--play-rate", "0"],
        "meter_interval_ms = 1000",
        "[[device_tags]]\nedge = \"edge-01\"\ndevice = \"egm-1\"\ntags = [\"high-limit\"]\n".into(),
    )
    .await
    .unwrap();
    let path = "/api/v1/machines/edge-01/egm-1/session";
    wait_until(
        "a meter reading to open on",
        Duration::from_secs(30),
        || async {
            let (status, _) = site
                .api("POST", path, r#"{"player": "card-42"}"#)
                .await
                .unwrap();
            status == 201
        },
    )
    .await
    .unwrap();
    let (status, text) = site
        .api("POST", path, r#"{"player": "card-7"}"#)
        .await
        .unwrap();
    assert_eq!(status, 409, "one session per machine: {text}");
    let (status, text) = site.api("GET", path, "").await.unwrap();
    assert_eq!(status, 200, "{text}");
    assert!(
        text.contains("\"state\":\"open\"") && text.contains("card-42"),
        "{text}"
    );

    sim.post("/bill", &json!({"address": 1, "credits": 2000}))
        .await
        .unwrap();
    for _ in 0..3 {
        sim.post("/game", &json!({"address": 1, "bet": 5, "win": 0}))
            .await
            .unwrap();
    }
    // The next readings carry the play.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (status, text) = site
        .api("POST", &format!("{path}/close"), "")
        .await
        .unwrap();
    assert_eq!(status, 200, "{text}");
    let closed: serde_json::Value = serde_json::from_str(&text).unwrap();
    let totals = &closed["totals"];
    assert_eq!(totals["coin_in"], "0.15", "{closed}");
    assert_eq!(totals["drop"], "20.00", "{closed}");
    assert_eq!(totals["games_played"], 3, "{closed}");
    assert_eq!(totals["net_win"], "0.15", "{closed}");

    let (status, _) = site
        .api("POST", &format!("{path}/close"), "")
        .await
        .unwrap();
    assert_eq!(status, 404, "nothing open");

    // The machine's transaction log tells the same story, newest first, as people read it.
    let (status, text) = site
        .api("GET", "/api/v1/machines/edge-01/egm-1/transactions", "")
        .await
        .unwrap();
    assert_eq!(status, 200, "{text}");
    let log: serde_json::Value = serde_json::from_str(&text).unwrap();
    let events = log["events"].as_array().unwrap();
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types.iter().filter(|t| **t == "sas.game_start").count(),
        3,
        "{types:?}"
    );
    let bill = events.iter().find(|e| e["type"] == "sas.bill").unwrap();
    assert_eq!(
        (bill["amount"].as_str(), bill["currency"].as_str()),
        (Some("20.00"), Some("USD"))
    );
    assert!(
        !types.contains(&"sas.meters"),
        "meter readings are not transactions"
    );
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] > w[1]),
        "newest first: {seqs:?}"
    );
    let (status, text) = site
        .api("GET", "/api/v1/players/card-42/sessions", "")
        .await
        .unwrap();
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("\"state\":\"closed\""), "{text}");
    let (status, text) = site
        .api("GET", "/api/v1/players/card-nobody/sessions", "")
        .await
        .unwrap();
    assert_eq!(status, 404, "{text}");
    assert!(text.contains("bound"), "says how players appear: {text}");
    for bad in [r#"{"player": ""}"#, r#"{"card": "x"}"#, "not json"] {
        let (status, _) = site.api("POST", path, bad).await.unwrap();
        assert_eq!(status, 400, "{bad}");
    }
    let (status, text) = site
        .api("GET", "/api/v1/sessions?player=card-42", "")
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&text)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // A session the machine reports itself: 9E, two games, a reading, 9F.
    let played = |day: serde_json::Value| day["figures"]["games_played"].as_u64().unwrap_or(0);
    let day = || async {
        let (_, text) = site
            .api("GET", "/api/v1/machines/edge-01/egm-1/days/today", "")
            .await
            .unwrap();
        serde_json::from_str::<serde_json::Value>(&text).unwrap_or_default()
    };
    let before = played(day().await);
    sim.post("/exception", &json!({"address": 1, "code": 0x9E}))
        .await
        .unwrap();
    let (status, text) = site.api("GET", path, "").await.unwrap();
    wait_until(
        "the machine's session open",
        Duration::from_secs(10),
        || async {
            let (_, text) = site.api("GET", path, "").await.unwrap();
            text.contains("(machine)")
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}: {status} {text}"));
    for _ in 0..2 {
        sim.post("/game", &json!({"address": 1, "bet": 5, "win": 0}))
            .await
            .unwrap();
    }
    wait_until(
        "a reading with the games",
        Duration::from_secs(10),
        || async { played(day().await) == before + 2 },
    )
    .await
    .unwrap();
    sim.post("/exception", &json!({"address": 1, "code": 0x9F}))
        .await
        .unwrap();
    let machine_sessions = "/api/v1/sessions?edge=edge-01&device=egm-1&player=(machine)";
    wait_until(
        "the machine's session closed",
        Duration::from_secs(10),
        || async {
            let (_, text) = site.api("GET", machine_sessions, "").await.unwrap();
            text.contains("\"state\":\"closed\"")
        },
    )
    .await
    .unwrap();
    let (_, text) = site.api("GET", machine_sessions, "").await.unwrap();
    let list: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(list[0]["totals"]["games_played"], 2, "{list}");
    assert_eq!(list[0]["totals"]["coin_in"], "0.10", "{list}");
    assert_eq!(list[0]["opened_by"], "machine (9E)");

    // Tags from the hub config find devices on the floor.
    for (tag, total) in [("high-limit", 1), ("penny", 0)] {
        let (status, text) = site
            .api("GET", &format!("/api/v1/devices?tag={tag}"), "")
            .await
            .unwrap();
        assert_eq!(status, 200);
        let page: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(page["total"], total, "{tag}: {text}");
    }
    assert!(site.stop().await.unwrap());
    sim.kill().await;
}
