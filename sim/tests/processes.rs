//! Real processes: hub and edge started the way the demo starts them, probed over HTTP, stopped
//! with SIGTERM; the demo itself (its site kept and started again, no orphans after kill -9); and
//! the metrics a running site exports: every name `deploy/` uses exists from start-up, and all of
//! them follow the naming rules.

#![allow(clippy::unwrap_used)] // In tests a panic is a failed test with its message.

use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

use outpost_harness::harness::{DemoProcess, SiteProcess};
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

fn run_demo(args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(exe())
        .arg("demo")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The password on the console line the demo prints.
fn console_password(stdout: &str) -> String {
    stdout
        .lines()
        .find(|l| l.starts_with("  console  "))
        .and_then(|l| l.split("password: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn demo_starts_a_site_reports_where_to_look_stops_cleanly_and_starts_the_same_site_again() {
    let tmp = tempfile::tempdir().unwrap();
    let site = tmp.path().join("site");
    let site_arg = site.to_str().unwrap();
    let (ok, stdout, stderr) = run_demo(&["--duration", "1", "--dir", site_arg]);
    assert!(ok, "{stdout}\n{stderr}");
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
    assert!(
        stdout.contains(&format!(
            "cargo run --release --bin outpost-sim -- demo --dir {site_arg}`"
        )),
        "it says how to start the site again: {stdout}"
    );
    // Every log path it printed is still there after it exited.
    let logs: Vec<&str> = stdout
        .split_whitespace()
        .filter(|w| w.starts_with(site_arg) && w.ends_with(".log"))
        .collect();
    assert!(site.join("logs/hub.log").is_file() && site.join("logs/edge.log").is_file());
    for log in logs {
        assert!(Path::new(log).is_file(), "{log} printed and gone");
    }

    // Again in the same directory: the same site (users, data), its logs continued.
    let (ok, again, stderr) = run_demo(&["--duration", "1", "--dir", site_arg]);
    assert!(ok, "{again}\n{stderr}");
    assert!(again.contains("again"), "{again}");
    assert!(!console_password(&stdout).is_empty(), "{stdout}");
    assert_eq!(
        console_password(&again),
        console_password(&stdout),
        "same users"
    );
    let hub_log = std::fs::read_to_string(site.join("logs/hub.log")).unwrap();
    assert_eq!(
        hub_log.matches("hub starting").count(),
        2,
        "one hub log across both runs"
    );

    // A directory with something else in it is refused, and left alone.
    let other = tmp.path().join("other");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("notes.txt"), "mine").unwrap();
    let (ok, _, stderr) = run_demo(&["--duration", "1", "--dir", other.to_str().unwrap()]);
    assert!(!ok && stderr.contains("no demo site"), "{stderr}");
    assert_eq!(std::fs::read_dir(&other).unwrap().count(), 1);
}

/// The processes whose parent is `pid`.
fn children_of(pid: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/stat"))
                .ok()
                .and_then(|stat| {
                    // pid (comm) state ppid ...: comm may hold spaces, so read after the last ')'.
                    let rest = &stat[stat.rfind(')')? + 1..];
                    rest.split_whitespace().nth(1)?.parse::<u32>().ok()
                })
                == Some(pid)
        })
        .collect()
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        !stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z')
    })
}

#[tokio::test]
async fn a_demo_killed_with_sigkill_leaves_no_process_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let mut demo = DemoProcess::start(exe(), &tmp.path().join("site"), &[])
        .await
        .unwrap();
    let pid = demo.child.id().unwrap();
    let children = children_of(pid);
    // Hub, edge, two SAS lines, HikCentral and the TVs.
    assert!(children.len() >= 6, "the demo's processes: {children:?}");
    demo.child.start_kill().unwrap();
    demo.child.wait().await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let left: Vec<u32> = children.iter().copied().filter(|p| alive(*p)).collect();
        if left.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still running 30 s after the demo was killed: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
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
        // Valid, but the hub's example token is a placeholder everyone has read: it says so.
        let said = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            said.contains("warning: api token night-shift is still the example's placeholder"),
            kind == "hub",
            "{said}"
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
async fn every_metric_the_alert_rules_and_dashboards_use_is_exported_from_start_up_and_all_follow_the_naming_rules()
 {
    let tmp = tempfile::tempdir().unwrap();
    let mut demo = DemoProcess::start(exe(), &tmp.path().join("site"), &["--duration", "5"])
        .await
        .unwrap();
    let metrics = demo.metrics_admins();
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
    let problems = naming_problems(&exported);
    assert!(
        problems.is_empty(),
        "metrics that break the naming rules:\n{}",
        problems.join("\n")
    );
    assert!(demo.child.wait().await.unwrap().success());
}

/// Label names an operator may group by: bounded sets (kinds, states, results, routes as
/// templates) or one per configured thing (edge, device, line, actor, stream). Anything else,
/// a visit, a command, a user, a path, an address, is unbounded and must not be a label.
const BOUNDED_LABELS: &[&str] = &[
    "actor",
    "binary",
    "class",
    "code",
    "commit",
    "device",
    "edge",
    "endpoint",
    "kind",
    "le",
    "line",
    "method",
    "op",
    "projection",
    "reason",
    "result",
    "route",
    "server",
    "state",
    "status",
    "step",
    "store",
    "stream",
    "version",
];

/// Units Prometheus names in base units; these are not.
const NOT_BASE_UNITS: &[&str] = &[
    "_ms",
    "_millis",
    "_milliseconds",
    "_us",
    "_microseconds",
    "_minutes",
    "_hours",
    "_days",
    "_kb",
    "_mb",
    "_gb",
    "_kilobytes",
    "_megabytes",
    "_percent",
];

/// What a Prometheus exposition breaks of the naming rules: prefix (`outpost_`, or the standard
/// `process_`), `_total` on counters and only on counters, histograms in base units (`_seconds`,
/// `_bytes`), no non-base units, gauges about time named `_seconds` (or counted in `_events`),
/// only bounded label names, and no label value that looks like an id (a route must be a
/// template, not a path with an id in it).
fn naming_problems(exposition: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let mut types = std::collections::BTreeMap::new();
    for line in exposition.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut words = rest.split_whitespace();
            if let (Some(name), Some(kind)) = (words.next(), words.next()) {
                types.insert(name.to_owned(), kind.to_owned());
            }
        }
    }
    for (name, kind) in &types {
        if !(name.starts_with("outpost_") || name.starts_with("process_")) {
            problems.push(format!(
                "{name}: neither outpost_ nor the standard process_"
            ));
        }
        match kind.as_str() {
            "counter" if !name.ends_with("_total") => {
                problems.push(format!("{name}: a counter without _total"))
            }
            "gauge" | "histogram" | "summary" if name.ends_with("_total") => {
                problems.push(format!("{name}: a {kind} named _total"))
            }
            "histogram" | "summary"
                if !(name.ends_with("_seconds") || name.ends_with("_bytes")) =>
            {
                problems.push(format!("{name}: a {kind} not in seconds or bytes"))
            }
            _ => {}
        }
        if let Some(unit) = NOT_BASE_UNITS
            .iter()
            .find(|u| name.ends_with(*u) || name.contains(&format!("{u}_")))
        {
            problems.push(format!("{name}: {unit} is not a base unit"));
        }
        let about_time = [
            "timestamp",
            "latency",
            "duration",
            "oldest",
            "age",
            "rtt",
            "lag",
            "elapsed",
        ]
        .iter()
        .any(|w| name.split('_').any(|part| part == *w));
        if kind == "gauge"
            && about_time
            && !(name.ends_with("_seconds") || name.ends_with("_events"))
        {
            problems.push(format!("{name}: a gauge about time not in _seconds"));
        }
    }
    let looks_like_an_id = |value: &str| {
        value.split(['/', ':', '-', '.']).any(|part| {
            (part.len() >= 12 && part.chars().all(|c| c.is_ascii_hexdigit()))
                || (part.len() >= 4 && part.chars().all(|c| c.is_ascii_digit()))
        })
    };
    let mut series_per_metric: std::collections::BTreeMap<&str, usize> = Default::default();
    for line in exposition
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let name = line.split(['{', ' ']).next().unwrap_or_default();
        *series_per_metric.entry(name).or_default() += 1;
        let Some(labels) = line
            .split_once('{')
            .and_then(|(_, r)| r.rsplit_once('}'))
            .map(|(l, _)| l)
        else {
            continue;
        };
        for pair in labels.split("\",").filter(|p| !p.is_empty()) {
            let Some((label, value)) = pair.split_once("=\"") else {
                continue;
            };
            let value = value.trim_end_matches('"');
            if !BOUNDED_LABELS.contains(&label) {
                problems.push(format!("{name}: label {label} is not a bounded label"));
            }
            if !["version", "commit", "le", "code"].contains(&label) && looks_like_an_id(value) {
                problems.push(format!("{name}: {label}=\"{value}\" looks like an id"));
            }
        }
    }
    for (name, count) in series_per_metric {
        if count > 300 {
            problems.push(format!("{name}: {count} series on one demo process"));
        }
    }
    problems.sort();
    problems.dedup();
    problems
}

#[test]
fn the_naming_rules_catch_what_they_are_for() {
    let bad = "\
# TYPE outpost_events counter
outpost_events 1
# TYPE outpost_commit_ms histogram
outpost_commit_ms_bucket{le=\"1\"} 1
# TYPE outpost_queue_total gauge
outpost_queue_total 1
# TYPE outpost_link_last_seen_timestamp gauge
outpost_link_last_seen_timestamp 1
# TYPE outpost_http_requests_total counter
outpost_http_requests_total{route=\"/api/v1/visits/4f1c2b9a7d3e\",visit=\"v1\"} 1
# TYPE my_thing gauge
my_thing 1
";
    let problems = naming_problems(bad);
    for expected in [
        "outpost_events: a counter without _total",
        "outpost_commit_ms: a histogram not in seconds or bytes",
        "outpost_commit_ms: _ms is not a base unit",
        "outpost_queue_total: a gauge named _total",
        "outpost_link_last_seen_timestamp: a gauge about time not in _seconds",
        "outpost_http_requests_total: label visit is not a bounded label",
        "outpost_http_requests_total: route=\"/api/v1/visits/4f1c2b9a7d3e\" looks like an id",
        "my_thing: neither outpost_ nor the standard process_",
    ] {
        assert!(
            problems.iter().any(|p| p == expected),
            "missed `{expected}` in {problems:#?}"
        );
    }
    assert!(
        naming_problems("# TYPE outpost_ok_total counter\noutpost_ok_total{edge=\"edge-01\"} 1\n")
            .is_empty()
    );
}
