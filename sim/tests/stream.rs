//! The hub's live stream and command conveniences through real processes: committed events reach
//! a Server-Sent Events subscriber within a second, a reconnect with `Last-Event-ID` misses
//! nothing and repeats nothing, an unknown place gets a `reset`; `POST /commands?wait=` answers
//! with the result; `GET /commands` lists by device and status; the edge reports its outbox.

#![allow(clippy::unwrap_used)] // In tests a panic is a failed test with its message.

use std::path::Path;
use std::time::Duration;

use outpost_harness::harness::{RunningSite, wait_until};
use outpost_harness::site::{SiteLayout, SiteSpec};

const DEVICES: &str = r#"
[[devices]]
kind = "synthetic"
id = "syn-1"
rate_per_second = 20.0
payload_bytes = 50
class = "telemetry"
"#;

fn exe() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_outpost-sim"))
}

/// One SSE item as received.
#[derive(Debug, Clone, Default)]
struct Item {
    id: String,
    kind: String,
    data: String,
}

/// Reads SSE items from a response until `count` arrived or `within` passed.
async fn read_items(response: &mut reqwest::Response, count: usize, within: Duration) -> Vec<Item> {
    let mut items = Vec::new();
    let mut buffer = String::new();
    let until = tokio::time::Instant::now() + within;
    while items.len() < count {
        let chunk = match tokio::time::timeout_at(until, response.chunk()).await {
            Ok(Ok(Some(chunk))) => chunk,
            _ => break,
        };
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let mut item = Item::default();
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("id:") {
                    item.id = v.trim().to_owned();
                } else if let Some(v) = line.strip_prefix("event:") {
                    item.kind = v.trim().to_owned();
                } else if let Some(v) = line.strip_prefix("data:") {
                    item.data.push_str(v.trim_start());
                }
            }
            if !item.kind.is_empty() {
                items.push(item);
            }
        }
    }
    items
}

async fn open(site: &RunningSite, query: &str, last_event_id: Option<&str>) -> reqwest::Response {
    outpost_process::install_crypto_provider();
    let client = reqwest::Client::new();
    let mut request = client
        .get(format!(
            "http://{}/api/v1/stream{query}",
            site.layout.hub_api
        ))
        .bearer_auth(&site.layout.api_token);
    if let Some(id) = last_event_id {
        request = request.header("Last-Event-ID", id);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    response
}

fn n_of(id: &str) -> u64 {
    id.rsplit_once('-').unwrap().1.parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_is_live_resumable_and_says_when_it_cannot_resume() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = SiteLayout::prepare(tmp.path(), &SiteSpec::single("edge-01", DEVICES)).unwrap();
    let site = RunningSite::start(exe(), layout).await.unwrap();

    // Live: each event arrives within a second of its commit at the hub.
    let mut live = open(&site, "?kinds=event&device=syn-1", None).await;
    let items = read_items(&mut live, 40, Duration::from_secs(20)).await;
    assert!(items.len() >= 40, "events arrive: {}", items.len());
    let arrived = outpost_process::clock::unix_us();
    let last: serde_json::Value = serde_json::from_str(&items.last().unwrap().data).unwrap();
    assert_eq!(last["type"], "synthetic");
    assert_eq!(last["device"], "syn-1");
    let received =
        outpost_domain::calendar::parse_rfc3339(last["received"].as_str().unwrap()).unwrap();
    assert!(
        arrived - received < 1_000_000,
        "committed at {received}, here at {arrived}"
    );
    // Ids count up by one: nothing in between was left out.
    for pair in items.windows(2) {
        assert_eq!(n_of(&pair[1].id), n_of(&pair[0].id) + 1, "{pair:?}");
    }

    // Away for a while, then back with Last-Event-ID: exactly what was missed, in order.
    let resume_from = items.last().unwrap().id.clone();
    drop(live);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut again = open(&site, "?kinds=event&device=syn-1", Some(&resume_from)).await;
    let more = read_items(&mut again, 30, Duration::from_secs(10)).await;
    assert!(more.len() >= 30);
    assert_eq!(
        n_of(&more[0].id),
        n_of(&resume_from) + 1,
        "resumes right after"
    );
    assert_eq!(more[0].kind, "event");

    // A place this hub never had: reset first, then live items.
    let mut other = open(&site, "", Some("1-5")).await;
    let first = read_items(&mut other, 1, Duration::from_secs(5)).await;
    assert_eq!(first[0].kind, "reset", "{first:?}");

    // Bad filters are refused by name.
    let (status, text) = site
        .api("GET", "/api/v1/stream?kinds=gossip", "")
        .await
        .unwrap();
    assert_eq!(status, 400);
    assert!(text.contains("gossip"), "{text}");
    assert!(site.stop().await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_can_wait_for_its_result_and_commands_are_listed_by_device_and_status() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = SiteLayout::prepare(tmp.path(), &SiteSpec::single("edge-01", DEVICES)).unwrap();
    let site = RunningSite::start(exe(), layout).await.unwrap();
    wait_until("the edge to connect", Duration::from_secs(20), || async {
        let (_, body) = site.api("GET", "/api/v1/edges", "").await.unwrap();
        body.contains("\"connected\":true")
    })
    .await
    .unwrap();
    let (status, text) = site
        .api(
            "POST",
            "/api/v1/commands?wait=5s",
            r#"{"edge":"edge-01","device":"syn-1","op":"ping"}"#,
        )
        .await
        .unwrap();
    assert_eq!(status, 201, "{text}");
    let record: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        record["status"], "succeeded",
        "answered with the result: {record}"
    );
    assert_eq!(record["result"]["pong"], serde_json::json!({}));

    for query in [
        "?device=syn-1&status=succeeded",
        "?edge=edge-01&issuer=site-operator",
        "?issuer=test",
    ] {
        let (status, text) = site
            .api("GET", &format!("/api/v1/commands{query}"), "")
            .await
            .unwrap();
        assert_eq!(status, 200, "{text}");
        let page: serde_json::Value = serde_json::from_str(&text).unwrap();
        let ids: Vec<&str> = page["commands"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap())
            .collect();
        if query.contains("issuer=test") {
            assert!(ids.is_empty(), "nobody called test issued anything");
        } else {
            assert_eq!(ids, [record["id"].as_str().unwrap()], "{query}");
        }
    }
    for (query, needle) in [
        ("?status=done", "done"),
        ("?since=yesterday", "yesterday"),
        ("?before=cmd-nope", "cmd-nope"),
    ] {
        let (status, text) = site
            .api("GET", &format!("/api/v1/commands{query}"), "")
            .await
            .unwrap();
        assert!(status == 400 || status == 404, "{query}: {status} {text}");
        assert!(text.contains(needle), "{text}");
    }
    // The edge reports its outbox to the hub every 5 s, so the hub knows how far behind it is.
    wait_until(
        "the edge's outbox report",
        Duration::from_secs(15),
        || async {
            let (_, body) = site.api("GET", "/api/v1/edges", "").await.unwrap();
            let edges: serde_json::Value = serde_json::from_str(&body).unwrap();
            edges[0]["outbox_depth_events"].is_u64() && edges[0]["oldest_unacked_seconds"].is_f64()
        },
    )
    .await
    .unwrap();
    // "Last seen" is the last frame, not the last handshake: the reports keep it moving.
    wait_until(
        "last seen to move past the handshake",
        Duration::from_secs(15),
        || async {
            let (_, body) = site.api("GET", "/api/v1/edges", "").await.unwrap();
            let edges: serde_json::Value = serde_json::from_str(&body).unwrap();
            let seen = time::OffsetDateTime::parse(
                edges[0]["last_seen"].as_str().unwrap_or_default(),
                &time::format_description::well_known::Rfc3339,
            );
            let hello = edges[0]["last_hello_ms"].as_i64().unwrap_or(i64::MAX);
            seen.is_ok_and(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64 - hello >= 4_000)
        },
    )
    .await
    .unwrap();
    let (status, text) = site
        .api(
            "POST",
            "/api/v1/commands?wait=2h",
            r#"{"edge":"edge-01","device":"syn-1","op":"ping"}"#,
        )
        .await
        .unwrap();
    assert_eq!(status, 400, "{text}");
    assert!(site.stop().await.unwrap());
}
