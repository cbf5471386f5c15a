//! A machine's denomination from the machine itself (LP 1F), through real processes: a simulated
//! machine with 5-cent credits on a hub whose config says 1 cent. The edge asks the machine who it
//! is; the hub counts its credits at 5 cents, so a $20 bill (400 credits) is $20 in the day's
//! figures and the day balances. A machine the config names keeps the config's value. A cash-out
//! ticket is counted in cents (SAS's ticket meters), not in credits.

#![allow(clippy::unwrap_used)] // In tests a panic is a failed test with its message.

use std::path::Path;
use std::time::Duration;

use outpost_harness::harness::{RunningSite, start_sas_line_site, wait_until};
use outpost_harness::site::gaming_day_start_hour_far_from_now;
use serde_json::json;

fn exe() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_outpost-sim"))
}

async fn get(site: &RunningSite, path: &str) -> serde_json::Value {
    let (_, text) = site.api("GET", path, "").await.unwrap();
    serde_json::from_str(&text).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credits_are_counted_at_the_denomination_the_machine_reports_unless_the_config_sets_one() {
    let tmp = tempfile::tempdir().unwrap();
    let hour = gaming_day_start_hour_far_from_now();
    let (sim, site) = start_sas_line_site(
        exe(),
        tmp.path(),
        &["nickel", "pinned"],
        &["--play-rate", "0", "--denom", "5"],
        "meter_interval_ms = 1000",
        format!(
            "[accounting]\ndenomination = 1\ngaming_day_start_hour = {hour}\n\n\
             [[machines]]\nedge = \"edge-01\"\ndevice = \"pinned\"\ndenomination = 1\n"
        ),
    )
    .await
    .unwrap();

    // Both machines answered (each reports on its own poll schedule).
    wait_until("both machines' identities", Duration::from_secs(30), || async {
        get(&site, "/api/v1/devices/edge-01/nickel").await["egm"]["identity"]
            ["denomination_cents"]
            == 5
            && !get(&site, "/api/v1/devices/edge-01/pinned").await["egm"]["denomination"]
                .is_null()
    })
    .await
    .unwrap();
    let nickel = get(&site, "/api/v1/devices/edge-01/nickel").await;
    assert_eq!(nickel["egm"]["denomination"], "0.05", "{nickel}");
    assert_eq!(nickel["egm"]["denomination_source"], "machine");
    assert_eq!(nickel["egm"]["identity"]["paytable"], "OP0001");
    let pinned = get(&site, "/api/v1/devices/edge-01/pinned").await;
    assert_eq!(pinned["egm"]["denomination"], "0.01", "{pinned}");
    assert_eq!(pinned["egm"]["denomination_source"], "config");

    wait_until("a first interval", Duration::from_secs(30), || async {
        get(&site, "/api/v1/machines/edge-01/nickel/days/today").await["reconciliation"]
            ["intervals"]
            .as_u64()
            .unwrap_or(0)
            >= 1
    })
    .await
    .unwrap();
    // $20 at 5 cents a credit.
    sim.post("/bill", &json!({"address": 1, "credits": 400}))
        .await
        .unwrap();
    wait_until("the bill in the day", Duration::from_secs(20), || async {
        get(&site, "/api/v1/machines/edge-01/nickel/days/today").await["figures"]["drop"] == "20.00"
    })
    .await
    .unwrap();
    let day = get(&site, "/api/v1/machines/edge-01/nickel/days/today").await;
    assert_eq!(day["reconciliation"]["verdict"], "balanced", "{day}");

    // The player cashes out to a ticket: SAS counts tickets in cents, whatever the credit.
    sim.post("/cashout", &json!({"address": 1})).await.unwrap();
    wait_until("the ticket in the day", Duration::from_secs(20), || async {
        get(&site, "/api/v1/machines/edge-01/nickel/days/today").await["figures"]["tickets_out"]
            == "20.00"
    })
    .await
    .unwrap();
    let floor = get(&site, "/api/v1/sites/all/days/today").await;
    assert_eq!(floor["figures"]["tickets_out"], "20.00", "{floor}");
    assert_eq!(
        floor["figures"]["drop"], "20.00",
        "credits scaled per machine: {floor}"
    );
    let log = get(&site, "/api/v1/machines/edge-01/nickel/transactions").await;
    let text = log.to_string();
    assert!(
        text.contains("\"direction\":\"out\"") && text.contains("\"step\":\"printed\""),
        "the cash-out ticket in the transaction log: {text}"
    );
    // The day's history as CSV: a header and one row per gaming day, in money.
    let (status, csv) = site
        .api("GET", "/api/v1/machines/edge-01/nickel/days?format=csv", "")
        .await
        .unwrap();
    assert_eq!(status, 200, "{csv}");
    let lines: Vec<&str> = csv.lines().collect();
    assert!(
        lines[0].starts_with("day,currency,coin_in,coin_out,jackpot,drop,tickets_in,tickets_out"),
        "{csv}"
    );
    let today = day["day"].as_str().unwrap();
    let row = lines.iter().find(|l| l.starts_with(today)).unwrap();
    let cells: Vec<&str> = row.split(',').collect();
    assert_eq!(
        (cells[5], cells[7]),
        ("20.00", "20.00"),
        "drop and tickets out: {row}"
    );
    assert!(site.stop().await.unwrap());
}
