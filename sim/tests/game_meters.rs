//! Each game's meters, through real processes: a simulated machine with three games played in
//! turn; the edge learns how many games it has (LP 51) and reads each game's meters (LP 2F for
//! game N); the hub's gaming day shows each game's coin in and games played, equal to what was
//! played on it.

#![allow(clippy::unwrap_used)] // In tests a panic is a failed test with its message.

use std::path::Path;
use std::time::Duration;

use outpost_harness::harness::{RunningSite, start_sas_line_site, wait_until};
use outpost_harness::site::gaming_day_start_hour_far_from_now;
use serde_json::json;

const DAY: &str = "/api/v1/machines/edge-01/egm-1/days/today";

fn exe() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_outpost-sim"))
}

async fn day(site: &RunningSite) -> serde_json::Value {
    let (_, text) = site.api("GET", DAY, "").await.unwrap();
    serde_json::from_str(&text).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_game_shows_what_was_played_on_it() {
    let tmp = tempfile::tempdir().unwrap();
    let hour = gaming_day_start_hour_far_from_now();
    let (sim, site) = start_sas_line_site(
        exe(),
        tmp.path(),
        &["egm-1"],
        &["--play-rate", "0", "--games", "3"],
        "meter_interval_ms = 1000\ngame_meter_interval_ms = 1000",
        format!("[accounting]\ngaming_day_start_hour = {hour}\n"),
    )
    .await
    .unwrap();

    // Every game has its baseline reading (and a second, so each shows in the day).
    wait_until("each game read twice", Duration::from_secs(30), || async {
        day(&site).await["games"].as_array().map_or(0, Vec::len) == 3
    })
    .await
    .unwrap();
    sim.post("/bill", &json!({"address": 1, "credits": 100}))
        .await
        .unwrap();
    // Bets of 1..=6 credits: game 1 gets 1 and 4, game 2 gets 2 and 5, game 3 gets 3 and 6.
    for bet in 1..=6 {
        sim.post("/game", &json!({"address": 1, "bet": bet, "win": 0}))
            .await
            .unwrap();
    }
    wait_until("the games in the day", Duration::from_secs(20), || async {
        let day = day(&site).await;
        day["figures"]["games_played"] == 6
            && day["games"].as_array().is_some_and(|g| {
                g.iter()
                    .map(|g| g["games_played"].as_u64().unwrap_or(0))
                    .sum::<u64>()
                    == 6
            })
    })
    .await
    .unwrap();
    let day = day(&site).await;
    let games = day["games"].as_array().unwrap();
    let coin_in: Vec<&str> = games
        .iter()
        .map(|g| g["coin_in"].as_str().unwrap())
        .collect();
    assert_eq!(coin_in, ["0.05", "0.07", "0.09"], "{day}");
    assert!(games.iter().all(|g| g["games_played"] == 2), "{day}");
    assert_eq!(
        day["figures"]["coin_in"], "0.21",
        "the machine's own meter: {day}"
    );
    assert!(site.stop().await.unwrap());
}
