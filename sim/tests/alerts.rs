//! Alerts through real processes: a slot machine loses power, the hub's `comms_lost` rule fires
//! once (however often it is evaluated), a signed webhook delivery arrives, the alert is listed,
//! acknowledged by an operator (once), and resolves when the machine is back.

#![allow(clippy::unwrap_used)] // In tests a panic is a failed test with its message.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use outpost_harness::harness::{scrape, start_sas_line_site, wait_until};

const SECRET: &str = "webhook-secret-0123456789";

fn exe() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_outpost-sim"))
}

type Received = Arc<Mutex<Vec<(String, serde_json::Value)>>>;

/// A webhook receiver: records each delivery's signature and body, answers 500 to the first
/// (so a retry must follow) and 200 to the rest.
async fn receiver() -> (std::net::SocketAddr, Received) {
    let received: Received = Arc::default();
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post({
            let received = received.clone();
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let received = received.clone();
                let calls = calls.clone();
                async move {
                    if calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                        return axum::http::StatusCode::INTERNAL_SERVER_ERROR;
                    }
                    let signature = headers
                        .get("x-outpost-signature")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    assert_eq!(
                        signature,
                        outpost_hub::alert_signature(SECRET, &body),
                        "signed with the secret"
                    );
                    received
                        .lock()
                        .unwrap()
                        .push((signature, serde_json::from_slice(&body).unwrap()));
                    axum::http::StatusCode::OK
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, received)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn comms_lost_fires_once_reaches_the_webhook_signed_is_acknowledged_and_resolves() {
    let tmp = tempfile::tempdir().unwrap();
    let (hook, received) = receiver().await;
    let (sim, site) = start_sas_line_site(
        exe(),
        tmp.path(),
        &["egm-1"],
        &["--play-rate", "0"],
        "",
        format!(
            "[alerts]\nevaluate_every_ms = 200\n\n\
             [[alerts.rules]]\nrule = \"comms_lost\"\nafter_seconds = 1\n\n\
             [[alerts.webhooks]]\nurl = \"http://{hook}/hook\"\nsecret = \"{SECRET}\"\n"
        ),
    )
    .await
    .unwrap();
    let hub_admin = site.layout.hub_admin;
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

    // The machine loses power for 6 s.
    sim.post("/power", &serde_json::json!({"address": 1, "off_ms": 6000}))
        .await
        .unwrap();
    wait_until("the alert to fire", Duration::from_secs(15), || async {
        let (_, text) = site.api("GET", "/api/v1/alerts", "").await.unwrap();
        text.contains("comms_lost")
    })
    .await
    .unwrap();
    let series = "outpost_alerts_firing{device=\"egm-1\",rule=\"comms_lost\",site=\"default\"}";
    assert_eq!(scrape(hub_admin, series).await, Some(1.0));
    let (_, text) = site.api("GET", "/api/v1/alerts", "").await.unwrap();
    let firing: serde_json::Value = serde_json::from_str(&text).unwrap();
    let alerts = firing.as_array().unwrap();
    assert_eq!(alerts.len(), 1, "one alert however often evaluated: {text}");
    let id = alerts[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(alerts[0]["device"], "egm-1");

    // An operator acknowledges it, once.
    let path = format!("/api/v1/alerts/{id}/acknowledge");
    let (status, text) = site
        .api("POST", &path, r#"{"note": "attendant on the way"}"#)
        .await
        .unwrap();
    assert_eq!(status, 200, "{text}");
    assert!(
        text.contains("site-operator") && text.contains("attendant on the way"),
        "{text}"
    );
    let (status, text) = site.api("POST", &path, "{}").await.unwrap();
    assert_eq!(status, 409, "{text}");
    let (status, _) = site
        .api("POST", "/api/v1/alerts/alert-999/acknowledge", "{}")
        .await
        .unwrap();
    assert_eq!(status, 404);
    let (status, text) = site
        .api("GET", "/api/v1/alerts?state=maybe", "")
        .await
        .unwrap();
    assert_eq!(status, 400, "{text}");

    // Power comes back: the alert resolves.
    wait_until("the alert to resolve", Duration::from_secs(30), || async {
        let (_, text) = site
            .api("GET", "/api/v1/alerts?state=resolved", "")
            .await
            .unwrap();
        text.contains(&id)
    })
    .await
    .unwrap();
    assert_eq!(scrape(hub_admin, series).await, Some(0.0));

    // The webhook got fired, acknowledged and resolved, in order, after a retry of the first.
    wait_until(
        "three webhook deliveries",
        Duration::from_secs(20),
        || async { received.lock().unwrap().len() >= 3 },
    )
    .await
    .unwrap();
    let whats: Vec<String> = received
        .lock()
        .unwrap()
        .iter()
        .map(|(_, body)| body["what"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(whats, ["fired", "acknowledged", "resolved"]);
    assert!(
        scrape(
            hub_admin,
            "outpost_alert_webhook_deliveries_total{result=\"failed\"}"
        )
        .await
        .unwrap()
            >= 1.0,
        "the first delivery was refused and retried"
    );
    assert!(site.stop().await.unwrap());
    sim.kill().await;
}
