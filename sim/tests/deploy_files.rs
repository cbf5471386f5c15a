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
