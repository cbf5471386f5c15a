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

#[test]
fn hikcentral_sign_prints_the_vendor_sdk_string_to_sign_and_signature_of_vector_v1() {
    let out = hub(&[
        "hikcentral",
        "sign",
        "--path",
        "/artemis/api/resource/v1/person/single/add",
        "--app-key",
        "12345678",
        "--app-secret",
        "abcdefghijklmnopqrst",
        "--timestamp",
        "1700000000000",
        "--nonce",
        "2b9f0c6e-8f1a-4c3b-9d2e-7a6b5c4d3e2f",
        "--header",
        "Accept:*/*",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(
            r#""POST\n*/*\napplication/json\nx-ca-key:12345678\nx-ca-nonce:2b9f0c6e-8f1a-4c3b-9d2e-7a6b5c4d3e2f\nx-ca-timestamp:1700000000000\n/artemis/api/resource/v1/person/single/add""#
        ),
        "{text}"
    );
    assert!(
        text.contains("x-ca-signature: zlXB3xd8PUmphFq0ClOoWRzkdlE0q+bH5zGyL/3AAGc="),
        "{text}"
    );
    assert!(
        !text.contains("abcdefghijklmnopqrst"),
        "the secret is never printed"
    );
}

#[test]
fn hikcentral_sign_signs_the_body_md5_and_query_and_refuses_a_malformed_header() {
    let tmp = tempfile::tempdir().unwrap();
    let body = tmp.path().join("body.json");
    std::fs::write(&body, br#"{"personCode":"visit-42","personFamilyName":"Doe","personGivenName":"Jane","orgIndexCode":"1","beginTime":"2025-01-01T09:00:00+00:00","endTime":"2025-01-01T18:00:00+00:00"}"#).unwrap();
    let out = hub(&[
        "hikcentral",
        "sign",
        "--path",
        "/artemis/api/resource/v1/org/advance/orgList?pageSize=10&pageNo=1",
        "--app-key",
        "12345678",
        "--app-secret",
        "s",
        "--timestamp",
        "1",
        "--nonce",
        "n",
        "--body-file",
        body.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Content-MD5: Fct1APRrwWJzh50xnEeohQ=="),
        "{text}"
    );
    assert!(text.contains(r#"/orgList?pageNo=1&pageSize=10""#), "{text}");

    let bad = hub(&[
        "hikcentral",
        "sign",
        "--path",
        "/artemis/api/x",
        "--app-key",
        "k",
        "--app-secret",
        "s",
        "--timestamp",
        "1",
        "--nonce",
        "n",
        "--header",
        "no-colon",
    ]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("Name:Value"));
}
