//! The Grafana dashboards and the alert rules in `deploy/` against a real Prometheus (Debian's,
//! installed by `.ci/run`) scraping a running demo site (hub and edge): every panel's query and
//! every alert's expression is accepted by Prometheus, every metric they name has series, and
//! every panel shows data on a healthy site except the few that are empty by design (listed
//! below with why). Also the shape of each dashboard: a datasource variable, unique ids, no panel
//! without a query.

#![allow(clippy::unwrap_used)] // In tests a panic is a failed test with its message.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use outpost_harness::harness::DemoProcess;

fn exe() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_outpost-sim"))
}

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

/// Panel queries that show nothing on a healthy site, by design.
const EMPTY_WHEN_HEALTHY: &[(&str, &str)] = &[
    ("outpost_tv_up == 0", "no TV is down"),
    (
        "count(outpost_sas_link_up == 0)",
        "no machine's link is down",
    ),
    ("count(outpost_tv_up == 0)", "no TV is down"),
    (
        "count by (instance) (outpost_actor_up == 0)",
        "no actor is down",
    ),
    (
        "sum by (endpoint) (rate(outpost_hikcentral_requests_total{code!=\"0\"}[5m])) * 60",
        "HikCentral answers every request with code 0",
    ),
];

/// `(dashboard file, panel title, expr)` for every query of every dashboard.
fn dashboard_queries() -> Vec<(String, String, String)> {
    let mut queries = Vec::new();
    let mut uids = BTreeSet::new();
    for entry in std::fs::read_dir(deploy().join("grafana")).unwrap() {
        let path = entry.unwrap().path();
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let dashboard: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
                .unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(
            uids.insert(dashboard["uid"].as_str().unwrap().to_owned()),
            "{file}: uid used twice"
        );
        assert_eq!(
            dashboard["templating"]["list"][0]["name"], "datasource",
            "{file}: a datasource variable, so it imports into any Grafana"
        );
        let mut ids = BTreeSet::new();
        for panel in dashboard["panels"].as_array().unwrap() {
            assert!(
                ids.insert(panel["id"].as_u64().unwrap()),
                "{file}: panel id twice"
            );
            if panel["type"] == "row" {
                continue;
            }
            let title = panel["title"].as_str().unwrap().to_owned();
            let targets = panel["targets"].as_array().unwrap();
            assert!(!targets.is_empty(), "{file}: {title} has no query");
            for target in targets {
                queries.push((
                    file.clone(),
                    title.clone(),
                    target["expr"].as_str().unwrap().to_owned(),
                ));
            }
        }
    }
    queries
}

fn alert_exprs() -> Vec<String> {
    std::fs::read_to_string(deploy().join("prometheus/alerts.yml"))
        .unwrap()
        .lines()
        .filter_map(|l| l.trim().strip_prefix("expr: "))
        .map(str::to_owned)
        .collect()
}

/// Metric names in a PromQL expression: `outpost_…` and `process_…` words, histograms by their
/// base name.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
        if word.starts_with("outpost_") || word.starts_with("process_") {
            names.insert(word.to_owned());
        }
    }
    names
}

/// `GET http://{prometheus}{path}` with `query` parameters, as JSON (`Null` if it cannot be had).
async fn get_json(
    client: &reqwest::Client,
    prometheus: &str,
    path: &str,
    query: &[(&str, &str)],
) -> serde_json::Value {
    let Ok(answer) = client
        .get(format!("http://{prometheus}{path}"))
        .query(query)
        .send()
        .await
    else {
        return serde_json::Value::Null;
    };
    let text = answer.text().await.unwrap_or_default();
    serde_json::from_str(&text).unwrap_or(serde_json::Value::Null)
}

async fn query(client: &reqwest::Client, prometheus: &str, expr: &str) -> serde_json::Value {
    get_json(client, prometheus, "/api/v1/query", &[("query", expr)]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_query_and_alert_runs_in_prometheus_against_a_running_site_and_shows_data()
{
    let queries = dashboard_queries();
    assert!(queries.len() > 60, "dashboards for every area");
    let tmp = tempfile::tempdir().unwrap();
    let mut demo = DemoProcess::start(exe(), &tmp.path().join("site"), &["--duration", "120"])
        .await
        .unwrap();
    let targets = demo.metrics_admins();
    assert_eq!(
        targets.len(),
        2,
        "the demo prints the hub's and the edge's metrics"
    );

    let prometheus = outpost_harness::harness::free_local_addr()
        .unwrap()
        .to_string();
    let config = tmp.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\n\
             scrape_configs:\n  - job_name: outpost\n    static_configs:\n      - targets: [{}]\n",
            targets
                .iter()
                .map(|t| format!("'{t}'"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    )
    .unwrap();
    let log = std::fs::File::create(tmp.path().join("prometheus.log")).unwrap();
    let _server = tokio::process::Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", tmp.path().join("tsdb").display()))
        .arg(format!("--web.listen-address={prometheus}"))
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| {
            panic!("prometheus does not run ({e}); `bash .ci/run` installs it (apt-get install prometheus)")
        });

    outpost_process::install_crypto_provider();
    let client = reqwest::Client::new();
    // Both targets scraped, and enough samples for rate() and increase().
    outpost_harness::harness::wait_until(
        "Prometheus scraping both processes",
        Duration::from_secs(30),
        || async {
            query(&client, &prometheus, "sum(up)").await["data"]["result"][0]["value"][1].as_str()
                == Some("2")
        },
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(6)).await;

    let names = get_json(&client, &prometheus, "/api/v1/label/__name__/values", &[]).await;
    let known: BTreeSet<String> = names["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap().to_owned())
        .collect();

    let mut problems = Vec::new();
    for (file, title, expr) in &queries {
        let answer = query(&client, &prometheus, expr).await;
        if answer["status"] != "success" {
            problems.push(format!(
                "{file} / {title}: `{expr}` refused: {}",
                answer["error"]
            ));
            continue;
        }
        for name in metric_names(expr) {
            if !known.contains(&name) {
                problems.push(format!("{file} / {title}: `{name}` has no series"));
            }
        }
        let empty = answer["data"]["result"]
            .as_array()
            .is_none_or(|r| r.is_empty());
        let allowed = EMPTY_WHEN_HEALTHY.iter().any(|(e, _)| e == expr);
        if empty && !allowed {
            problems.push(format!(
                "{file} / {title}: `{expr}` shows no data on a healthy site"
            ));
        }
        if !empty && allowed {
            problems.push(format!(
                "{file} / {title}: `{expr}` is listed as empty when healthy but shows data"
            ));
        }
    }
    for expr in alert_exprs() {
        let answer = query(&client, &prometheus, &expr).await;
        if answer["status"] != "success" {
            problems.push(format!("alert `{expr}` refused: {}", answer["error"]));
        }
        for name in metric_names(&expr) {
            if !known.contains(&name) && name != "outpost_alerts_firing" {
                problems.push(format!("alert `{expr}`: `{name}` has no series"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    println!(
        "{} dashboard queries and {} alert expressions checked against Prometheus",
        queries.len(),
        alert_exprs().len()
    );
    demo.child.start_kill().unwrap();
}
