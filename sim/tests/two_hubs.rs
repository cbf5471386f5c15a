//! Past one hub (docs/scaling.md): two hubs, each with its own edges, sharing a CA, the edge
//! registry, the API tokens and a directory (`[cluster]`) of which hub owns which edge.
//!
//! An edge is moved from hub A to hub B while its device keeps sending: the directory is changed
//! and hub A restarted (it refuses the edge from then on), hub B adopts the edge at the sequence
//! hub A committed (`outpost-hub edges adopt`), the edge is pointed at hub B. Then: hub A's log
//! holds the edge's events `1..=N`, hub B's `N+1..=last`, nothing twice, no gap; either hub's API
//! answers for an edge of the other; and both hubs' MSSQL event streams, written into one target,
//! hold every event of every edge exactly once.

#![allow(clippy::unwrap_used)] // In tests a panic is a failed test with its message.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use outpost_domain::site::Floor;
use outpost_harness::harness::{RunningSite, scrape, wait_edge_drained, wait_until};
use outpost_harness::site::{SiteLayout, SiteSpec};
use outpost_hub::EventLog;
use outpost_hub::mssql::{EventsSink, MemoryTarget, Stream, Table, Value};
use outpost_storage::DurableDb;

const DEVICES: &str = r#"
[[devices]]
kind = "synthetic"
id = "coin-in"
rate_per_second = 100.0
payload_bytes = 100
class = "money"
"#;

fn exe() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_outpost-sim"))
}

/// The `[cluster]` table both hubs share, with `edge-x` owned by `x_owner`.
fn cluster(me: &str, a: &SiteLayout, b: &SiteLayout, x_owner: &str) -> String {
    format!(
        "\n[cluster]\nhub_id = \"{me}\"\n\
         hubs = [{{ id = \"hub-a\", api_url = \"http://{a_api}\" }}, {{ id = \"hub-b\", api_url = \"http://{b_api}\" }}]\n\
         edges = [{{ edge = \"edge-a1\", hub = \"hub-a\" }}, {{ edge = \"edge-x\", hub = \"{x_owner}\" }}, {{ edge = \"edge-b1\", hub = \"hub-b\" }}]\n",
        a_api = a.hub_api,
        b_api = b.hub_api,
    )
}

/// Writes `config` with its `[cluster]` table (anything from `[cluster]` on) replaced.
fn set_cluster(config: &Path, table: &str) {
    let text = std::fs::read_to_string(config).unwrap();
    let kept = text.split("\n[cluster]\n").next().unwrap().to_owned();
    std::fs::write(config, kept + table).unwrap();
}

fn log_seqs(data_dir: &Path, edge: &str) -> Vec<u64> {
    let durable = Arc::new(DurableDb::open(&data_dir.join("db")).unwrap());
    let log = EventLog::start(durable, 64, |_| {}).unwrap();
    log.read(edge, 0, usize::MAX)
        .unwrap()
        .iter()
        .map(|e| e.event.seq)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_moved_to_another_hub_goes_on_from_the_committed_sequence_and_both_hubs_answer() {
    let tmp = tempfile::tempdir().unwrap();
    let mut spec_a = SiteSpec::single("edge-a1", DEVICES);
    spec_a.edge_ids.push("edge-x".into());
    let a = SiteLayout::prepare(&tmp.path().join("a"), &spec_a).unwrap();
    let mut b =
        SiteLayout::prepare(&tmp.path().join("b"), &SiteSpec::single("edge-b1", DEVICES)).unwrap();
    // One chain: hub B gets hub A's CA, registry and tokens; its edge is issued by that CA.
    std::fs::remove_dir_all(&b.pki_dir).unwrap();
    let copy = std::process::Command::new("cp")
        .arg("-r")
        .arg(&a.pki_dir)
        .arg(&b.pki_dir)
        .status()
        .unwrap();
    assert!(copy.success());
    outpost_hub::pki::issue_edge(&b.pki_dir, "edge-b1", true).unwrap();
    let b_toml = std::fs::read_to_string(&b.hub_config).unwrap();
    std::fs::write(&b.hub_config, b_toml.replace(&b.api_token, &a.api_token)).unwrap();
    b.api_token = a.api_token.clone();
    set_cluster(&a.hub_config, &cluster("hub-a", &a, &b, "hub-a"));
    set_cluster(&b.hub_config, &cluster("hub-b", &a, &b, "hub-a"));
    let (a_admin, b_admin) = (a.hub_admin, b.hub_admin);
    let x_admin = a.edges[1].admin;
    let x_config = a.edges[1].config.clone();
    let (a_data, b_data) = (a.hub_data_dir.clone(), b.hub_data_dir.clone());
    let (a_link, b_link) = (a.hub_link, b.hub_link);
    let mut site_a = RunningSite::start(exe(), a).await.unwrap();
    let mut site_b = RunningSite::start(exe(), b).await.unwrap();
    let committed = |admin, edge: &'static str| async move {
        scrape(
            admin,
            &format!("outpost_hub_committed_seq{{edge=\"{edge}\"}}"),
        )
        .await
        .unwrap_or(0.0) as u64
    };
    wait_until(
        "edge-x delivers to hub A",
        Duration::from_secs(30),
        || async { committed(a_admin, "edge-x").await > 300 },
    )
    .await
    .unwrap();

    // The move. Hub A first lets go of edge-x: from its restart on, it refuses it.
    set_cluster(
        &site_a.layout.hub_config,
        &cluster("hub-a", &site_a.layout, &site_b.layout, "hub-b"),
    );
    set_cluster(
        &site_b.layout.hub_config,
        &cluster("hub-b", &site_a.layout, &site_b.layout, "hub-b"),
    );
    site_a.stop_hub().await.unwrap();
    site_a.start_hub().await.unwrap();
    wait_until("hub A refuses edge-x", Duration::from_secs(30), || async {
        scrape(a_admin, "outpost_hub_refused_total{reason=\"elsewhere\"}")
            .await
            .unwrap_or(0.0)
            >= 1.0
    })
    .await
    .unwrap();
    let n = committed(a_admin, "edge-x").await;
    // Hub B adopts edge-x at what hub A committed (the tool runs with hub B stopped).
    site_b.stop_hub().await.unwrap();
    let adopted = std::process::Command::new(exe())
        .args([
            "hub",
            "edges",
            "adopt",
            "edge-x",
            "--from-seq",
            &n.to_string(),
            "--config",
        ])
        .arg(&site_b.layout.hub_config)
        .output()
        .unwrap();
    assert!(
        adopted.status.success(),
        "{}",
        String::from_utf8_lossy(&adopted.stderr)
    );
    site_b.start_hub().await.unwrap();
    // The edge is pointed at hub B (its outbox kept what hub A did not take).
    site_a.stop_edge(1).await.unwrap();
    let text = std::fs::read_to_string(&x_config).unwrap();
    std::fs::write(
        &x_config,
        text.replace(
            &format!("hub = \"{a_link}\""),
            &format!("hub = \"{b_link}\""),
        ),
    )
    .unwrap();
    site_a.start_edge(1).await.unwrap();
    wait_until(
        "edge-x delivers to hub B",
        Duration::from_secs(30),
        || async { committed(b_admin, "edge-x").await > n + 300 },
    )
    .await
    .unwrap();
    site_a.restart_edge_without(1, DEVICES).await.unwrap();
    wait_edge_drained(x_admin, Duration::from_secs(60))
        .await
        .unwrap();
    let last = scrape(x_admin, "outpost_outbox_last_seq").await.unwrap() as u64;
    assert_eq!(committed(b_admin, "edge-x").await, last);
    assert_eq!(scrape(b_admin, "outpost_hub_gaps_total").await, Some(0.0));

    // Either hub answers for an edge of the other (handed on, with the caller's token): the
    // same answer as the owner's own.
    for (asked, owner, edge) in [(&site_a, &site_b, "edge-x"), (&site_b, &site_a, "edge-a1")] {
        let path = format!("/api/v1/edges/{edge}/events?limit=5");
        let (status, body) = asked.api("GET", &path, "").await.unwrap();
        assert_eq!(status, 200, "{path}: {body}");
        assert!(body.contains("\"seq\""), "{body}");
        assert_eq!(owner.api("GET", &path, "").await.unwrap(), (status, body));
    }
    let (status, body) = site_a
        .api(
            "POST",
            "/api/v1/commands",
            r#"{"edge":"edge-x","device":"coin-in","op":"ping"}"#,
        )
        .await
        .unwrap();
    assert_eq!(
        status, 421,
        "a command for hub B's edge names hub B: {body}"
    );
    assert!(body.contains("hub-b"), "{body}");

    site_a.stop().await.unwrap();
    site_b.stop().await.unwrap();
    let (at_a, at_b) = (log_seqs(&a_data, "edge-x"), log_seqs(&b_data, "edge-x"));
    assert_eq!(at_a, (1..=n).collect::<Vec<_>>(), "hub A: 1..={n}");
    assert_eq!(
        at_b,
        (n + 1..=last).collect::<Vec<_>>(),
        "hub B: {}..={last}",
        n + 1
    );

    // Both hubs' event streams into one target: every event of every edge once.
    let target = MemoryTarget::default();
    for data in [&a_data, &b_data] {
        let durable = Arc::new(DurableDb::open(&data.join("db")).unwrap());
        let log = EventLog::start(durable, 64, |_| {}).unwrap();
        let mut sink =
            EventsSink::open(target.clone(), Table::events(), log, Floor::simple(), 1_000).unwrap();
        while sink.step().await.unwrap() > 0 {}
        assert_eq!(Stream::lag(&sink), 0);
    }
    let rows = target.rows("outpost.events");
    let x: Vec<i64> = rows
        .iter()
        .filter(|r| r[0] == Value::Text("edge-x".into()))
        .map(|r| match r[1] {
            Value::BigInt(seq) => seq,
            _ => -1,
        })
        .collect();
    assert_eq!(
        x,
        (1..=last as i64).collect::<Vec<_>>(),
        "edge-x once, whole"
    );
    assert_eq!(
        target.writes().1 as usize,
        rows.len(),
        "no row was offered twice: the hubs' logs do not overlap"
    );
    println!(
        "edge-x: {n} events at hub A, {} at hub B; {} rows in all",
        last - n,
        rows.len()
    );
}
