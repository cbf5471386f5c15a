//! Real processes: hub and edge started the way the demo starts them, probed over HTTP, stopped
//! with SIGTERM; and the demo itself.

#![allow(clippy::unwrap_used)] // In tests a panic is a failed test with its message.

use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

use outpost_harness::harness::SiteProcess;
use outpost_harness::site::{SiteLayout, SiteSpec};

fn exe() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_outpost-sim"))
}

fn run_args(kind: &str, config: &Path) -> Vec<OsString> {
    vec![kind.into(), "run".into(), "--config".into(), config.into()]
}

#[tokio::test]
async fn hub_and_edge_serve_metrics_health_and_readiness_then_stop_cleanly_on_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    let site = SiteLayout::prepare(tmp.path(), &SiteSpec::single("edge-07", "")).unwrap();
    let mut hub = SiteProcess::spawn(
        "hub",
        exe(),
        &run_args("hub", &site.hub_config),
        site.hub_admin,
        &tmp.path().join("hub.log"),
    )
    .unwrap();
    let mut edge = SiteProcess::spawn(
        "edge",
        exe(),
        &run_args("edge", &site.edges[0].config),
        site.edges[0].admin,
        &tmp.path().join("edge.log"),
    )
    .unwrap();
    hub.wait_ready(Duration::from_secs(20)).await.unwrap();
    edge.wait_ready(Duration::from_secs(20)).await.unwrap();

    for (process, binary, component) in [
        (&hub, "outpost-hub", "hub/admin"),
        (&edge, "outpost-edge", "edge/uplink"),
    ] {
        let (status, body) = outpost_process::admin::get(process.admin, "/healthz")
            .await
            .unwrap();
        assert_eq!((status, body.as_str()), (200, "ok\n"));
        let (status, body) = outpost_process::admin::get(process.admin, "/readyz")
            .await
            .unwrap();
        assert_eq!(status, 200);
        assert!(body.contains(&format!("\"{component}\":true")), "{body}");
        let (status, body) = outpost_process::admin::get(process.admin, "/metrics")
            .await
            .unwrap();
        assert_eq!(status, 200);
        assert!(
            body.contains(&format!("outpost_build_info{{binary=\"{binary}\"")),
            "{body}"
        );
        assert!(body.contains("\nprocess_resident_memory_bytes "));
        // Ours are outpost_*; the process's own the standard process_* (nothing else).
        let unprefixed: Vec<&str> = body
            .lines()
            .filter(|l| {
                !l.starts_with('#') && !l.starts_with("outpost_") && !l.starts_with("process_")
            })
            .collect();
        assert!(
            unprefixed.is_empty(),
            "metrics neither outpost_* nor process_*: {unprefixed:?}"
        );
    }

    let edge_status = edge.terminate(Duration::from_secs(10)).await.unwrap();
    let hub_status = hub.terminate(Duration::from_secs(10)).await.unwrap();
    assert!(edge_status.success(), "edge exit: {edge_status}");
    assert!(hub_status.success(), "hub exit: {hub_status}");
    let log = std::fs::read_to_string(tmp.path().join("edge.log")).unwrap();
    assert!(log.contains("SIGTERM received"), "{log}");
}

#[tokio::test]
async fn json_log_format_writes_one_json_object_per_line() {
    let tmp = tempfile::tempdir().unwrap();
    let site = SiteLayout::prepare(tmp.path(), &SiteSpec::single("edge-01", "")).unwrap();
    let mut args = run_args("edge", &site.edges[0].config);
    args.push("--log-format".into());
    args.push("json".into());
    let log = tmp.path().join("edge.log");
    let mut edge = SiteProcess::spawn("edge", exe(), &args, site.edges[0].admin, &log).unwrap();
    edge.wait_ready(Duration::from_secs(20)).await.unwrap();
    assert!(
        edge.terminate(Duration::from_secs(10))
            .await
            .unwrap()
            .success()
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.lines().count() >= 2, "{text}");
    for line in text.lines() {
        assert!(
            line.starts_with('{') && line.ends_with('}'),
            "not JSON: {line}"
        );
        assert!(line.contains("\"level\":"), "{line}");
    }
    assert!(
        text.contains("\"edge\":\"edge-01\""),
        "edge id is a field: {text}"
    );
}

#[test]
fn demo_starts_a_site_reports_where_to_look_and_stops_cleanly() {
    let out = std::process::Command::new(exe())
        .args(["demo", "--duration", "1"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("Outpost demo site is up"), "{stdout}");
    // The console comes first, with a user and password to log in with.
    let console = stdout.lines().nth(1).unwrap_or_default();
    assert!(
        console.starts_with("  console  http://")
            && console.contains("user: admin")
            && console.contains("password: "),
        "{stdout}"
    );
    assert!(stdout.contains("/metrics"), "{stdout}");
    assert!(stdout.contains("Demo stopped cleanly."), "{stdout}");
}

#[test]
fn sim_config_default_and_check_agree() {
    let out = std::process::Command::new(exe())
        .args(["config", "default"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("sim.toml");
    std::fs::write(&file, &out.stdout).unwrap();
    let check = std::process::Command::new(exe())
        .args(["config", "check", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(check.status.success());
}

#[test]
fn the_example_configs_in_deploy_are_valid() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    // The example names certificates under /etc/outpost; `config check` wants them to exist.
    let tmp = tempfile::tempdir().unwrap();
    let pem = tmp.path().join("any.pem");
    std::fs::write(&pem, "pem").unwrap();
    for kind in ["edge", "hub"] {
        let file = root.join("deploy/examples").join(format!("{kind}.toml"));
        let out = std::process::Command::new(exe())
            .args([kind, "config", "check", file.to_str().unwrap()])
            .env("OUTPOST_UPLINK__CA", &pem)
            .env("OUTPOST_UPLINK__CERT", &pem)
            .env("OUTPOST_UPLINK__KEY", &pem)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Every `outpost_*` name the alert rules and dashboards in `deploy/` use (histograms by their
/// base name).
fn names_used_in_deploy() -> std::collections::BTreeSet<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy");
    let mut files = vec![root.join("prometheus/alerts.yml")];
    for entry in std::fs::read_dir(root.join("grafana")).unwrap() {
        files.push(entry.unwrap().path());
    }
    let mut names = std::collections::BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let mut rest = text.as_str();
        while let Some(at) = rest.find("outpost_") {
            rest = &rest[at..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            let name = &rest[..end];
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(name);
            names.insert(base.to_owned());
            rest = &rest[end..];
        }
    }
    names
}

#[tokio::test]
async fn every_metric_the_alert_rules_and_dashboards_use_is_exported_from_start_up() {
    use tokio::io::AsyncBufReadExt;
    let mut demo = tokio::process::Command::new(exe())
        .args(["demo", "--duration", "5"])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(demo.stdout.take().unwrap()).lines();
    let mut metrics = Vec::new();
    while let Some(line) = lines.next_line().await.unwrap() {
        if (line.contains("hub   metrics") || line.contains("edge  metrics"))
            && let Some(url) = line.split_whitespace().find(|w| w.starts_with("http://"))
        {
            metrics.push(
                url.trim_start_matches("http://")
                    .trim_end_matches("/metrics")
                    .to_owned(),
            );
        }
        if line.starts_with("Stopping in") {
            break;
        }
    }
    assert_eq!(
        metrics.len(),
        2,
        "the demo prints the hub's and the edge's metrics"
    );
    let mut exported = String::new();
    for admin in &metrics {
        let (status, body) = outpost_process::admin::get(admin.parse().unwrap(), "/metrics")
            .await
            .unwrap();
        assert_eq!(status, 200);
        exported.push_str(&body);
    }
    let missing: Vec<String> = names_used_in_deploy()
        .into_iter()
        // One series per firing alert: absent while none fires, by design.
        .filter(|n| n != "outpost_alerts_firing")
        .filter(|n| {
            !exported.lines().any(|l| {
                ["_bucket", "_sum", "_count", ""].iter().any(|suffix| {
                    l.strip_prefix(n.as_str())
                        .and_then(|r| r.strip_prefix(suffix))
                        .is_some_and(|r| r.starts_with('{') || r.starts_with(' '))
                })
            })
        })
        .collect();
    assert!(
        missing.is_empty(),
        "used in deploy/ but not exported by a freshly started demo site: {missing:?}"
    );
    while lines.next_line().await.unwrap().is_some() {}
    assert!(demo.wait().await.unwrap().success());
}
