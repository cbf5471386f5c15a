//! Commands through real processes: issued at the hub's API, run once on the edge, result back as
//! an event; validated at the API; redelivered after a reconnect; never run after their deadline.

#![allow(clippy::unwrap_used)] // In tests a panic is a failed test with its message.

use std::path::Path;
use std::time::{Duration, Instant};

use outpost_harness::harness::{RunningSite, wait_until};
use outpost_harness::site::{SiteLayout, SiteSpec};

const DEVICES: &str = r#"
[[devices]]
kind = "synthetic"
id = "syn-1"
rate_per_second = 5.0
payload_bytes = 50
class = "telemetry"
"#;

fn exe() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_outpost-sim"))
}

async fn site(dir: &Path) -> RunningSite {
    let layout = SiteLayout::prepare(dir, &SiteSpec::single("edge-01", DEVICES)).unwrap();
    let site = RunningSite::start(exe(), layout).await.unwrap();
    wait_connected(&site).await;
    site
}

/// Waits until the hub lists the edge as connected (it learns the edge's devices from its Hello).
async fn wait_connected(site: &RunningSite) {
    wait_until("the edge to connect", Duration::from_secs(20), || async {
        let (_, body) = site.api("GET", "/api/v1/edges", "").await.unwrap();
        body.contains("\"connected\":true")
    })
    .await
    .unwrap();
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

async fn issue(site: &RunningSite, body: &str) -> (u16, serde_json::Value) {
    let (status, text) = site.api("POST", "/api/v1/commands", body).await.unwrap();
    (status, json(&text))
}

async fn wait_status(site: &RunningSite, id: &str, wanted: &str) -> serde_json::Value {
    let started = Instant::now();
    loop {
        let (status, text) = site
            .api("GET", &format!("/api/v1/commands/{id}"), "")
            .await
            .unwrap();
        assert_eq!(status, 200, "{text}");
        let record = json(&text);
        if record["status"] == wanted {
            return record;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "command never became {wanted}: {record}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_runs_on_the_device_and_its_result_comes_back() {
    let tmp = tempfile::tempdir().unwrap();
    let site = site(tmp.path()).await;
    let (status, record) = issue(&site, r#"{"edge":"edge-01","device":"syn-1","op":"ping"}"#).await;
    assert_eq!(status, 201, "{record}");
    assert_eq!(record["status"], "pending");
    assert_eq!(record["issuer"], "site-operator");
    let done = wait_status(&site, record["id"].as_str().unwrap(), "succeeded").await;
    assert_eq!(done["detail"], "pong");
    assert_eq!(done["result"], serde_json::json!({"pong": {}}));
    // Counted once issued and once by its final status, never by the steps in between.
    let admin = site.layout.hub_admin;
    let metric = |name: &'static str| outpost_harness::harness::scrape(admin, name);
    assert_eq!(metric("outpost_commands_issued_total").await, Some(1.0));
    assert_eq!(
        metric("outpost_commands_total{status=\"succeeded\"}").await,
        Some(1.0)
    );
    assert_eq!(
        metric("outpost_commands_total{status=\"failed\"}").await,
        Some(0.0)
    );
    assert_eq!(
        metric("outpost_commands_total{status=\"pending\"}").await,
        None
    );
    assert_eq!(
        metric("outpost_commands_total{status=\"delivered\"}").await,
        None
    );
    assert!(site.stop().await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_refuses_what_cannot_run_with_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let site = site(tmp.path()).await;
    let (status, body) = issue(&site, r#"{"edge":"edge-01","device":"tv-9","op":"ping"}"#).await;
    assert_eq!(
        (status, body["error"].as_str().unwrap()),
        (404, "edge edge-01 has no device tv-9")
    );
    let (status, body) = issue(
        &site,
        r#"{"edge":"edge-01","device":"syn-1","op":"reboot"}"#,
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("its operations are: ping"),
        "{body}"
    );
    let (status, body) = issue(
        &site,
        r#"{"edge":"edge-01","device":"syn-1","op":"ping","deadline_seconds":0}"#,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = issue(&site, r#"{"edge":"edge-01""#).await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = issue(&site, r#"{"edge":"nowhere","device":"syn-1","op":"ping"}"#).await;
    assert_eq!(status, 404);
    let (status, _) = outpost_process::admin::request(
        site.layout.hub_api,
        "POST",
        "/api/v1/commands",
        &[],
        br#"{"edge":"edge-01","device":"syn-1","op":"ping"}"#,
    )
    .await
    .unwrap();
    assert_eq!(status, 401);
    let (status, _) = outpost_process::admin::request(
        site.layout.hub_api,
        "GET",
        "/api/v1/commands/x",
        &[("Authorization", "Bearer not-a-token-not-a-token")],
        b"",
    )
    .await
    .unwrap();
    assert_eq!(status, 401);
    // A 10 MB body without a token is refused for the token, before the body is read (only its
    // first kilobyte is sent).
    let announce_big_body = |auth: Option<String>| async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(site.layout.hub_api)
            .await
            .unwrap();
        let auth = auth
            .map(|a| format!("Authorization: {a}\r\n"))
            .unwrap_or_default();
        let head = format!(
            "POST /api/v1/commands HTTP/1.1\r\nHost: hub\r\n{auth}Content-Type: \
             application/json\r\nContent-Length: 10485760\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(&[b' '; 1024]).await.unwrap();
        let mut answer = [0u8; 12];
        stream.read_exact(&mut answer).await.unwrap();
        String::from_utf8_lossy(&answer[9..12])
            .parse::<u16>()
            .unwrap()
    };
    assert_eq!(announce_big_body(None).await, 401);
    // With a token, a body that stops arriving after a kilobyte is cut off after 10 s.
    let started = std::time::Instant::now();
    let status = announce_big_body(Some(format!("Bearer {}", site.layout.api_token))).await;
    assert!(
        (400..500).contains(&status) && started.elapsed() < Duration::from_secs(15),
        "{status} after {:?}",
        started.elapsed()
    );
    assert!(site.stop().await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_issued_while_the_edge_is_away_runs_when_it_returns_unless_expired() {
    let tmp = tempfile::tempdir().unwrap();
    let mut site = site(tmp.path()).await;
    site.stop_edge(0).await.unwrap();
    let (_, patient) = issue(
        &site,
        r#"{"edge":"edge-01","device":"syn-1","op":"ping","deadline_seconds":600}"#,
    )
    .await;
    let (_, hasty) = issue(
        &site,
        r#"{"edge":"edge-01","device":"syn-1","op":"ping","deadline_seconds":1}"#,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    site.start_edge(0).await.unwrap();
    let done = wait_status(&site, patient["id"].as_str().unwrap(), "succeeded").await;
    assert_eq!(done["detail"], "pong");
    wait_status(&site, hasty["id"].as_str().unwrap(), "expired").await;
    assert!(site.stop().await.unwrap());
}

/// Arguments to try against an operation: its example, then objects made of its own fields and
/// a stranger, with values at and past the limits: each value in each field, then random mixtures
/// (deterministic: the same probes every run).
fn probes(example: &serde_json::Value, seed: u64) -> Vec<serde_json::Value> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut fields: Vec<String> = example
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    fields.push("junk".into());
    let values = serde_json::json!([
        null,
        true,
        false,
        -1,
        0,
        1,
        7,
        15,
        16,
        22,
        288,
        289,
        4660,
        65535,
        65536,
        600000,
        600001,
        1.5,
        "",
        "home",
        "KEYCODE_HOME",
        "Home",
        "hdmi1",
        "scart",
        "com.example.player",
        "com..x",
        "1com.x",
        "/sdcard/a.txt",
        "/sdcard/../etc",
        "relative",
        [],
        {}
    ]);
    let values = values.as_array().unwrap();
    let mut out = vec![example.clone(), serde_json::json!({})];
    // Every value in every field, one at a time, then random mixtures.
    for field in &fields {
        for value in values {
            let mut object = example.as_object().cloned().unwrap_or_default();
            object.insert(field.clone(), value.clone());
            out.push(serde_json::Value::Object(object));
        }
    }
    for _ in 0..40 {
        let mut object = example.as_object().cloned().unwrap_or_default();
        if rng.random_bool(0.3) {
            object.clear();
        }
        for _ in 0..rng.random_range(1..=2) {
            let field = &fields[rng.random_range(0..fields.len())];
            let value = &values[rng.random_range(0..values.len())];
            object.insert(field.clone(), value.clone());
        }
        out.push(serde_json::Value::Object(object));
    }
    out
}

#[tokio::test]
async fn the_api_contract_is_valid_openapi_and_the_argument_schemas_agree_with_the_parser() {
    use outpost_command::{DeviceCommand, DeviceKind};
    let tmp = tempfile::tempdir().unwrap();
    let layout = SiteLayout::prepare(tmp.path(), &SiteSpec::single("edge-01", "")).unwrap();
    let site = RunningSite::start(exe(), layout).await.unwrap();
    let (status, doc) = outpost_process::admin::get(site.layout.hub_api, "/api/v1/openapi.json")
        .await
        .unwrap();
    assert_eq!(status, 200);
    let paths = json(&doc)["paths"].clone();
    for (path, method) in [
        ("/api/v1/commands", "post"),
        ("/api/v1/commands/{id}", "get"),
        ("/api/v1/operations", "get"),
        ("/api/v1/edges", "get"),
        ("/api/v1/edges/{edge}/events", "get"),
        ("/api/v1/devices", "get"),
        ("/api/v1/devices/{edge}/{device}", "get"),
        ("/api/v1/machines/{edge}/{device}/days/{day}", "get"),
        ("/api/v1/machines/{edge}/{device}/days", "get"),
        ("/api/v1/sites/{site}/days/{day}", "get"),
        ("/api/v1/bulk/{edge}/{id}", "get"),
        ("/api/v1/visits", "post"),
        ("/api/v1/visits/{id}/retry", "post"),
        ("/api/v1/openapi.json", "get"),
        ("/api/v1/", "get"),
    ] {
        assert!(
            paths[path][method].is_object(),
            "{method} {path} is documented"
        );
    }
    // The first URL the demo prints: the index, without a token, naming every documented endpoint.
    for url in ["/api/v1/", "/api/v1"] {
        let (status, index) = outpost_process::admin::get(site.layout.hub_api, url)
            .await
            .unwrap();
        assert_eq!(status, 200, "{url}: {index}");
        let index = json(&index);
        assert_eq!(index["openapi"], "/api/v1/openapi.json");
        let listed: Vec<(String, String)> = index["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                let method = e["method"].as_str().unwrap().to_ascii_lowercase();
                (e["path"].as_str().unwrap().to_owned(), method)
            })
            .collect();
        for (path, item) in paths.as_object().unwrap() {
            let methods = item
                .as_object()
                .unwrap()
                .keys()
                .filter(|k| ["get", "post", "put", "delete", "patch"].contains(&k.as_str()));
            for method in methods {
                assert!(
                    listed.contains(&(path.clone(), method.clone())),
                    "{method} {path} is in the index"
                );
            }
        }
    }
    let (status, operations) = site.api("GET", "/api/v1/operations", "").await.unwrap();
    assert_eq!(status, 200, "{operations}");
    let listed = json(&operations);
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), outpost_command::catalogue().count());
    let (status, tv_only) = site
        .api("GET", "/api/v1/operations?kind=tv", "")
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert!(
        json(&tv_only)
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["kind"] == "tv")
    );
    let (status, _) = site
        .api("GET", "/api/v1/operations?kind=toaster", "")
        .await
        .unwrap();
    assert_eq!(status, 400);

    // Probes: each operation's example and arguments around its limits, plus the canonical form
    // of every probe the parser accepts.
    let mut all = Vec::new();
    for (n, operation) in listed.iter().enumerate() {
        let kind: DeviceKind = operation["kind"].as_str().unwrap().parse().unwrap();
        let op = operation["op"].as_str().unwrap().to_owned();
        for args in probes(&operation["example"], n as u64) {
            let parsed = DeviceCommand::parse(kind, &op, args.clone());
            if let Ok(command) = &parsed {
                all.push((kind, op.clone(), command.args(), true));
            }
            all.push((kind, op.clone(), args, parsed.is_ok()));
        }
    }
    let write = |name: &str, text: &str| {
        let path = tmp.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let probes_json: Vec<_> = all
        .iter()
        .map(|(kind, op, args, _)| serde_json::json!({"kind": kind, "op": op, "args": args}))
        .collect();
    let output = std::process::Command::new(outpost_harness::harness::peers_python())
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/openapi_check.py"))
        .arg(write("doc.json", &doc))
        .arg(write("operations.json", &operations))
        .arg(write(
            "probes.json",
            &serde_json::to_string(&probes_json).unwrap(),
        ))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "the independent validator refused the contract: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let verdicts: Vec<bool> = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(verdicts.len(), all.len());
    let mut parser_only = 0;
    for ((kind, op, args, parses), schema_valid) in all.iter().zip(verdicts) {
        // A form that satisfies the schema is never refused by the hub (a push's SHA-256 must
        // also match its data, which a schema cannot say).
        if schema_valid && op != "push" {
            assert!(
                parses,
                "{kind} {op} {args}: the schema allows it, the parser refuses it"
            );
        }
        // The parser is at most more lenient than the schema (key names in any case).
        if *parses && !schema_valid {
            parser_only += 1;
            assert!(
                op == "key",
                "{kind} {op} {args}: the parser takes it, the schema refuses it"
            );
        }
    }
    println!(
        "{} probes agree ({parser_only} accepted only by the lenient key parser)",
        all.len()
    );
    assert!(site.stop().await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_edge_with_nothing_to_send_still_gets_its_commands() {
    let tmp = tempfile::tempdir().unwrap();
    let quiet = DEVICES.replace("rate_per_second = 5.0", "rate_per_second = 0.001");
    let layout = SiteLayout::prepare(tmp.path(), &SiteSpec::single("edge-01", &quiet)).unwrap();
    let site = RunningSite::start(exe(), layout).await.unwrap();
    wait_connected(&site).await;
    let (status, record) = issue(&site, r#"{"edge":"edge-01","device":"syn-1","op":"ping"}"#).await;
    assert_eq!(status, 201, "{record}");
    wait_status(&site, record["id"].as_str().unwrap(), "succeeded").await;
    assert!(site.stop().await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_checks_the_edge_id_and_knows_unknown_edges() {
    let tmp = tempfile::tempdir().unwrap();
    let site = site(tmp.path()).await;
    wait_until("events at the hub", Duration::from_secs(20), || async {
        let (_, body) = site
            .api("GET", "/api/v1/edges/edge-01/events?limit=1", "")
            .await
            .unwrap();
        body.contains("\"seq\":1")
    })
    .await
    .unwrap();
    // A NUL after a real id once read that edge's events (a key-prefix alias).
    for path in [
        "/api/v1/edges/edge-01%00/events",
        "/api/v1/edges/EDGE-01/events",
        "/api/v1/bulk/edge-01%00/x.png",
    ] {
        let (status, body) = site.api("GET", path, "").await.unwrap();
        assert_eq!(status, 400, "{path}: {body}");
        assert!(body.contains("lowercase letters"), "{path}: {body}");
    }
    for path in ["/api/v1/edges/edge-99/events", "/api/v1/bulk/edge-99/x.png"] {
        let (status, body) = site.api("GET", path, "").await.unwrap();
        assert_eq!(status, 404, "{path}: {body}");
        assert!(body.contains("never connected"), "{path}: {body}");
    }
    let (status, body) = issue(
        &site,
        r#"{"edge":"edge-01\u0000","device":"syn-1","op":"ping"}"#,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = issue(&site, r#"{"edge":"edge-99","device":"syn-1","op":"ping"}"#).await;
    assert_eq!(status, 404, "{body}");
    assert!(site.stop().await.unwrap());
}
