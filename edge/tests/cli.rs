//! The `outpost-edge` binary's command-line contract.

#![allow(clippy::unwrap_used)] // In tests a panic is a failed test with its message.

use std::process::Command;

use outpost_config::{ConfigFile, EdgeConfig};

fn edge(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_outpost-edge"))
        .args(args)
        .output()
        .expect("outpost-edge runs")
}

#[test]
fn help_lists_run_and_config() {
    let out = edge(&["--help"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("run") && text.contains("config"), "{text}");
}

#[test]
fn version_names_the_version_and_the_commit_it_was_built_from() {
    let out = edge(&["--version"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.trim(),
        format!(
            "outpost-edge {} (commit {})",
            env!("CARGO_PKG_VERSION"),
            outpost_process::metrics::COMMIT
        )
    );
    assert_ne!(outpost_process::metrics::COMMIT, "", "{text}");
}

#[test]
fn config_default_prints_the_embedded_defaults() {
    let out = edge(&["config", "default"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        EdgeConfig::DEFAULT_TOML
    );
}

#[test]
fn run_with_an_invalid_config_exits_2_before_starting_anything() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("edge.toml");
    std::fs::write(&file, "[edge]\nid = \"Not Valid\"\n").unwrap();
    let out = edge(&["run", "--config", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains(":2:1: key `edge.id`"));
}
