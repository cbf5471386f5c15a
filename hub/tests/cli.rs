//! The `outpost-hub` binary's command-line contract.

#![allow(clippy::unwrap_used)] // In tests a panic is a failed test with its message.

use std::process::Command;

use outpost_config::{ConfigFile, HubConfig};

fn hub(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_outpost-hub"))
        .args(args)
        .output()
        .expect("outpost-hub runs")
}

#[test]
fn help_lists_run_config_and_pki() {
    let out = hub(&["--help"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for word in ["run", "config", "pki"] {
        assert!(text.contains(word), "{text}");
    }
}

#[test]
fn config_default_prints_the_embedded_defaults_which_pass_config_check() {
    let out = hub(&["config", "default"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        HubConfig::DEFAULT_TOML
    );
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("hub.toml");
    std::fs::write(&file, &out.stdout).unwrap();
    let check = hub(&["config", "check", file.to_str().unwrap()]);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
}

#[test]
fn config_check_exits_non_zero_and_points_at_the_line() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("hub.toml");
    std::fs::write(&file, "[hub]\n\ndata_dri = \"/x\"\n").unwrap();
    let check = hub(&["config", "check", file.to_str().unwrap()]);
    assert_eq!(check.status.code(), Some(2));
    let err = String::from_utf8_lossy(&check.stderr);
    assert!(
        err.contains(&format!(
            "{}:3:1: key `hub.data_dri`: unknown key",
            file.display()
        )),
        "{err}"
    );
}

#[test]
fn pki_commands_init_issue_and_revoke() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("pki");
    let dir = dir.to_str().unwrap();
    assert!(hub(&["pki", "init", "--dir", dir]).status.success());
    let issued = hub(&["pki", "issue-edge", "--dir", dir, "--id", "casino-7"]);
    assert!(issued.status.success());
    assert!(String::from_utf8_lossy(&issued.stdout).contains("issued edge casino-7"));
    let again = hub(&["pki", "issue-edge", "--dir", dir, "--id", "casino-7"]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--replace"));
    assert!(
        hub(&["pki", "revoke", "--dir", dir, "--id", "casino-7"])
            .status
            .success()
    );
    let list = hub(&["pki", "list", "--dir", dir]);
    assert!(String::from_utf8_lossy(&list.stdout).contains("revoked"));
}
