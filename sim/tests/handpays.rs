//! The handpay workflow through real processes: a jackpot locks a simulated machine up, the hub
//! lists the handpay in money, an attendant verifies it, a second person with the supervisor role
//! approves it (the verifier cannot), paying it resets the machine, and the machine's reset is
//! recorded beside who paid.

#![allow(clippy::unwrap_used)] // In tests a panic is a failed test with its message.

use std::path::Path;
use std::time::Duration;

use outpost_harness::harness::{RunningSite, start_sas_line_site, wait_until};

const SUPER_1: &str = "supervisor-token-one-0123456789";
const SUPER_2: &str = "supervisor-token-two-0123456789";

fn exe() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_outpost-sim"))
}

async fn as_token(
    site: &RunningSite,
    token: &str,
    path: &str,
    body: &str,
) -> (u16, serde_json::Value) {
    let (status, text) = site.api_as(token, "POST", path, body).await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handpay_is_verified_approved_by_a_second_person_and_paid_which_resets_the_machine() {
    let tmp = tempfile::tempdir().unwrap();
    let (sim, site) = start_sas_line_site(
        exe(),
        tmp.path(),
        &["egm-1"],
        &["--play-rate", "0"],
        "",
        format!(
            "[[api.tokens]]\nname = \"floor-super\"\ntoken = \"{SUPER_1}\"\nrole = \"supervisor\"\n\n\
             [[api.tokens]]\nname = \"shift-super\"\ntoken = \"{SUPER_2}\"\nrole = \"supervisor\"\n"
        ),
    )
    .await
    .unwrap();
    wait_until(
        "the machine to be online",
        Duration::from_secs(30),
        || async {
            let (_, text) = site
                .api("GET", "/api/v1/devices?status=online", "")
                .await
                .unwrap();
            text.contains("\"egm-1\"")
        },
    )
    .await
    .unwrap();
    sim.post("/bill", &serde_json::json!({"address": 1, "credits": 100}))
        .await
        .unwrap();
    let hit = sim
        .post(
            "/jackpot",
            &serde_json::json!({"address": 1, "credits": 1500}),
        )
        .await
        .unwrap();
    assert!(hit.contains("true"), "{hit}");

    let mut id = String::new();
    wait_until(
        "the handpay to be listed",
        Duration::from_secs(20),
        || async {
            let (_, text) = site
                .api("GET", "/api/v1/handpays?state=pending", "")
                .await
                .unwrap();
            let list: serde_json::Value = serde_json::from_str(&text).unwrap();
            list.as_array()
                .is_some_and(|l| l.len() == 1 && l[0]["amount"] == "15.00")
        },
    )
    .await
    .unwrap();
    let (_, text) = site.api("GET", "/api/v1/handpays", "").await.unwrap();
    let list: serde_json::Value = serde_json::from_str(&text).unwrap();
    id.push_str(list[0]["id"].as_str().unwrap());
    let step = |name: &str| format!("/api/v1/handpays/{id}/{name}");

    // Out of order, and the operator's role is too low to approve.
    let (status, body) = as_token(&site, SUPER_1, &step("approve"), "{}").await;
    assert_eq!(status, 409, "{body}");
    let (status, body) = as_token(&site, &site.layout.api_token, &step("pay"), "{}").await;
    assert_eq!(status, 409, "not approved: {body}");
    // A supervisor verifies; the same person may not approve.
    let (status, body) =
        as_token(&site, SUPER_1, &step("verify"), r#"{"note": "ID checked"}"#).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "verified");
    let (status, body) = as_token(&site, SUPER_1, &step("approve"), "{}").await;
    assert_eq!(status, 403, "{body}");
    assert!(body.to_string().contains("second person"), "{body}");
    let (status, body) = as_token(&site, &site.layout.api_token, &step("approve"), "{}").await;
    assert_eq!(status, 403, "an operator cannot approve: {body}");
    let (status, body) = as_token(&site, SUPER_2, &step("approve"), "{}").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["approved_by"], "shift-super");
    // Paying resets the machine.
    let (status, body) = as_token(&site, &site.layout.api_token, &step("pay"), "{}").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "paid");
    assert_eq!(body["paid_by"], "site-operator");
    assert!(body["reset_command"].as_str().unwrap().starts_with("cmd-"));
    wait_until(
        "the machine to be reset",
        Duration::from_secs(20),
        || async {
            let state = sim.state().await.unwrap();
            state["egms"][0]["handpay"].is_null()
        },
    )
    .await
    .unwrap();
    wait_until(
        "the machine's reset to be recorded",
        Duration::from_secs(20),
        || async {
            let (_, text) = site
                .api("GET", "/api/v1/handpays?state=paid", "")
                .await
                .unwrap();
            let list: serde_json::Value = serde_json::from_str(&text).unwrap();
            list[0]["reset_at_machine"].is_string()
        },
    )
    .await
    .unwrap();
    let (status, body) = as_token(&site, &site.layout.api_token, &step("pay"), "{}").await;
    assert_eq!(status, 409, "paid once: {body}");
    let (status, _) = as_token(
        &site,
        SUPER_1,
        "/api/v1/handpays/edge-01/egm-1/999999/verify",
        "{}",
    )
    .await;
    assert_eq!(status, 404);
    assert!(site.stop().await.unwrap());
    sim.kill().await;
}
