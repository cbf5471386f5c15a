//! The Prometheus alert rules in `deploy/prometheus/`: `promtool check rules` accepts them,
//! `promtool test rules` shows each alert firing for the series it is about and not for the
//! healthy one beside it (`alerts.test.yml`), every alert has a test and a runbook paragraph in
//! `docs/operations.md`.
//!
//! `.ci/run` installs `promtool` (Debian's `prometheus`); without it this test fails saying so.

#![allow(clippy::unwrap_used)] // In tests a panic is a failed test with its message.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn promtool(args: &[&str]) -> String {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(root().join("deploy/prometheus"))
        .output()
        .unwrap_or_else(|e| {
            panic!("promtool does not run ({e}); `bash .ci/run` installs it (apt-get install prometheus)")
        });
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {}:\n{said}", args.join(" "));
    said
}

fn alert_names(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
        .map(|n| n.trim().to_owned())
        .collect()
}

#[test]
fn the_alert_rules_check_and_each_alert_fires_in_its_case_and_not_in_a_healthy_series() {
    let said = promtool(&["check", "rules", "alerts.yml"]);
    assert!(said.contains("SUCCESS"), "{said}");
    let said = promtool(&["test", "rules", "alerts.test.yml"]);
    assert!(said.contains("SUCCESS"), "{said}");
    println!("{said}");

    let rules = std::fs::read_to_string(root().join("deploy/prometheus/alerts.yml")).unwrap();
    let tests = std::fs::read_to_string(root().join("deploy/prometheus/alerts.test.yml")).unwrap();
    let runbooks = std::fs::read_to_string(root().join("docs/operations.md")).unwrap();
    let alerts = alert_names(&rules);
    assert!(alerts.len() >= 20, "{alerts:?}");
    for alert in &alerts {
        assert!(
            tests.contains(&format!("alertname: {alert}\n")),
            "{alert} has no test in alerts.test.yml"
        );
        assert!(
            runbooks.contains(&format!("### {alert}\n")),
            "{alert} has no runbook paragraph (### {alert}) in docs/operations.md"
        );
    }
}

/// `systemd-analyze verify` of a unit, with its `/usr/bin/<binary>` replaced by the one built here
/// (verify checks the executables exist). Anything it says is a finding: it exits 0 even for an
/// unknown key or a bad value, and only prints them.
fn verify_unit(unit: &str, binary: &str) -> String {
    let text = std::fs::read_to_string(root().join("deploy/systemd").join(unit)).unwrap();
    let built = env!("CARGO_BIN_EXE_outpost-sim");
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join(unit);
    std::fs::write(&path, text.replace(&format!("/usr/bin/{binary}"), built)).unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .unwrap_or_else(|e| {
            panic!("systemd-analyze does not run ({e}); it is in Debian's systemd")
        });
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn the_systemd_units_verify_cleanly_and_are_notify_units_with_a_watchdog_and_a_sandbox() {
    for (unit, binary) in [
        ("outpost-edge.service", "outpost-edge"),
        ("outpost-hub.service", "outpost-hub"),
    ] {
        let said = verify_unit(unit, binary);
        assert!(
            said.trim().is_empty(),
            "systemd-analyze verify {unit}:\n{said}"
        );
        let text = std::fs::read_to_string(root().join("deploy/systemd").join(unit)).unwrap();
        for line in [
            "Type=notify",
            "WatchdogSec=30s",
            "NoNewPrivileges=true",
            "ProtectSystem=strict",
            "CapabilityBoundingSet=",
            "User=outpost",
            "LimitNOFILE=8192",
            "SystemCallFilter=@system-service",
        ] {
            assert!(text.lines().any(|l| l == line), "{unit} has `{line}`");
        }
    }
}

#[test]
fn systemd_analyze_verify_reports_a_broken_unit_so_the_check_above_can_fail() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("broken.service");
    std::fs::write(
        &path,
        "[Service]\nType=notifyy\nExecStart=/bin/true\nWatchdogSecs=30s\n",
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("notifyy") && said.contains("WatchdogSecs"),
        "{said}"
    );
}
