//! Loading configuration: defaults, layering, environment overrides and located errors.

#![allow(clippy::unwrap_used)] // In tests a panic is a failed test with its message.

use std::collections::BTreeMap;

use outpost_config::{
    ConfigError, ConfigFile, EdgeConfig, HubConfig, Location, LogFormat, SimConfig, load_file,
    load_str,
};

fn no_env() -> BTreeMap<String, String> {
    BTreeMap::new()
}

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn problems<T: ConfigFile + std::fmt::Debug>(
    text: &str,
    env: &BTreeMap<String, String>,
) -> Vec<outpost_config::Problem> {
    match load_str::<T>("site.toml", text, env) {
        Ok(c) => panic!("expected problems, loaded {c:?}"),
        Err(e) => e.problems().to_vec(),
    }
}

#[test]
fn every_embedded_default_loads_and_validates() {
    let edge: EdgeConfig = load_str("default", EdgeConfig::DEFAULT_TOML, &no_env()).unwrap();
    assert_eq!(edge.edge.id, "edge-01");
    let hub: HubConfig = load_str("default", HubConfig::DEFAULT_TOML, &no_env()).unwrap();
    assert_eq!(hub.admin.listen.port(), 9100);
    let sim: SimConfig = load_str("default", SimConfig::DEFAULT_TOML, &no_env()).unwrap();
    assert_eq!(sim.admin.listen.port(), 9102);
}

#[test]
fn an_empty_file_means_all_defaults() {
    let edge: EdgeConfig = load_str("empty.toml", "", &no_env()).unwrap();
    assert_eq!(edge.supervision.max_restarts, 10);
    assert_eq!(edge.log.format, LogFormat::Human);
}

#[test]
fn user_keys_are_laid_over_defaults_table_by_table() {
    let edge: EdgeConfig = load_str("site.toml", "[edge]\nid = \"metro-07\"\n", &no_env()).unwrap();
    assert_eq!(edge.edge.id, "metro-07");
    // The other key of the same section keeps its default.
    assert_eq!(
        edge.edge.data_dir,
        std::path::PathBuf::from("/var/lib/outpost-edge")
    );
}

#[test]
fn unknown_key_is_reported_with_file_line_and_the_keys_that_exist() {
    let found = problems::<EdgeConfig>(
        "[edge]\nid = \"a\"\n\n[admin]\nlisten_addr = \"x\"\n",
        &no_env(),
    );
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].key, "admin.listen_addr");
    assert_eq!(
        found[0].location,
        Location::File {
            path: "site.toml".into(),
            line: 5,
            column: 1
        }
    );
    assert!(
        found[0].message.contains("expected one of: listen"),
        "{}",
        found[0].message
    );
}

#[test]
fn every_unknown_key_is_reported_not_just_the_first() {
    let found = problems::<HubConfig>("typo = 1\n[log]\nlevle = \"info\"\n", &no_env());
    let keys: Vec<&str> = found.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys, ["log.levle", "typo"]);
}

#[test]
fn wrong_type_names_the_key_and_what_was_expected() {
    let found = problems::<EdgeConfig>("[supervision]\nmax_restarts = \"many\"\n", &no_env());
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].key, "supervision.max_restarts");
    assert!(matches!(found[0].location, Location::File { line: 2, .. }));
    assert!(
        found[0].message.contains("expected u32"),
        "{}",
        found[0].message
    );
}

#[test]
fn bad_enum_value_lists_the_accepted_ones() {
    let found = problems::<EdgeConfig>("[log]\nformat = \"xml\"\n", &no_env());
    assert_eq!(found[0].key, "log.format");
    assert!(found[0].message.contains("human"), "{}", found[0].message);
    assert!(found[0].message.contains("json"), "{}", found[0].message);
}

#[test]
fn out_of_range_values_are_all_reported_with_the_value_found() {
    let text = "[supervision]\njitter = 1.5\nbackoff_initial_ms = 500\nbackoff_max_ms = 100\n";
    let found = problems::<EdgeConfig>(text, &no_env());
    let rendered: Vec<String> = found.iter().map(ToString::to_string).collect();
    assert_eq!(found.len(), 2, "{rendered:?}");
    assert_eq!(
        rendered[0],
        "site.toml:4:1: key `supervision.backoff_max_ms`: expected at least backoff_initial_ms (500), found 100"
    );
    assert_eq!(
        rendered[1],
        "site.toml:2:1: key `supervision.jitter`: expected a fraction from 0.0 to 1.0, found 1.5"
    );
}

#[test]
fn invalid_edge_id_is_refused() {
    let found = problems::<EdgeConfig>("[edge]\nid = \"Edge_01\"\n", &no_env());
    assert_eq!(found[0].key, "edge.id");
    assert!(matches!(found[0].location, Location::File { line: 2, .. }));
}

#[test]
fn syntax_error_points_at_line_and_column() {
    let found = problems::<EdgeConfig>("[edge]\nid = \"unterminated\n", &no_env());
    assert_eq!(found.len(), 1);
    assert!(
        matches!(found[0].location, Location::File { line: 2, .. }),
        "{:?}",
        found[0]
    );
    assert!(found[0].message.starts_with("not valid TOML"));
}

#[test]
fn environment_overrides_file_and_defaults() {
    let e = env(&[
        ("OUTPOST_ADMIN__LISTEN", "0.0.0.0:9999"),
        ("OUTPOST_SUPERVISION__MAX_RESTARTS", "3"),
        ("OUTPOST_EDGE__ID", "42"),
    ]);
    let edge: EdgeConfig =
        load_str("site.toml", "[admin]\nlisten = \"127.0.0.1:1\"\n", &e).unwrap();
    assert_eq!(edge.admin.listen.to_string(), "0.0.0.0:9999");
    assert_eq!(edge.supervision.max_restarts, 3);
    // A string key takes the variable's text as is, even when it looks like a number.
    assert_eq!(edge.edge.id, "42");
}

#[test]
fn environment_problem_names_the_variable() {
    let e = env(&[("OUTPOST_SUPERVISION__MAX_RESTARTS", "lots")]);
    let found = problems::<EdgeConfig>("", &e);
    assert_eq!(
        found[0].location,
        Location::Env {
            var: "OUTPOST_SUPERVISION__MAX_RESTARTS".into()
        }
    );
}

#[test]
fn unknown_key_from_environment_is_an_error() {
    let e = env(&[("OUTPOST_ADMIN__LISTN", "1")]);
    let found = problems::<EdgeConfig>("", &e);
    assert_eq!(found[0].key, "admin.listn");
    assert_eq!(
        found[0].location,
        Location::Env {
            var: "OUTPOST_ADMIN__LISTN".into()
        }
    );
}

#[test]
fn environment_for_another_binarys_section_is_ignored() {
    // OUTPOST_HUB__* is the hub's; the edge does not have a [hub] section.
    let e = env(&[("OUTPOST_HUB__DATA_DIR", "/tmp/x")]);
    assert!(load_str::<EdgeConfig>("site.toml", "", &e).is_ok());
}

#[test]
fn unreadable_file_says_which_file() {
    let err = load_file::<EdgeConfig>(std::path::Path::new("/nonexistent/edge.toml"), &no_env())
        .unwrap_err();
    assert!(matches!(err, ConfigError::Unreadable { .. }));
    assert!(err.to_string().contains("/nonexistent/edge.toml"));
}

#[test]
fn a_file_on_disk_is_located_by_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hub.toml");
    std::fs::write(&path, "[pki]\ndir = 7\n").unwrap();
    let err = load_file::<HubConfig>(&path, &no_env()).unwrap_err();
    let line = err.to_string();
    assert!(
        line.starts_with(&format!("{}:2:1: key `pki.dir`", path.display())),
        "{line}"
    );
}

#[test]
fn devices_are_read_by_kind_and_checked_one_by_one() {
    let text = r#"
[[devices]]
kind = "synthetic"
id = "syn-1"
rate_per_second = 10.0
payload_bytes = 200
class = "money"

[[devices]]
kind = "synthetic"
id = "syn-1"
rate_per_second = 0.0
payload_bytes = 200
class = "telemetry"
"#;
    let found = problems::<EdgeConfig>(text, &no_env());
    let rendered: Vec<String> = found.iter().map(ToString::to_string).collect();
    assert_eq!(
        rendered,
        [
            "site.toml:11:1: key `devices[1].id`: expected an id no other device of this edge has, found \"syn-1\"",
            "site.toml:12:1: key `devices[1].rate_per_second`: expected more than 0 and at most 1000000, found 0.0",
        ]
    );
}

#[test]
fn unknown_device_field_and_kind_are_errors() {
    let found = problems::<EdgeConfig>(
        "[[devices]]\nkind = \"synthetic\"\nid = \"a\"\nrate_per_second = 1.0\npayload_bytes = 1\nclass = \"money\"\nrate = 5\n",
        &no_env(),
    );
    assert!(
        found[0].message.contains("unknown field `rate`"),
        "{found:?}"
    );
    let found = problems::<EdgeConfig>("[[devices]]\nkind = \"toaster\"\nid = \"a\"\n", &no_env());
    assert!(found[0].message.contains("toaster"), "{found:?}");
    assert!(
        matches!(found[0].location, Location::File { line: 2, .. }),
        "{found:?}"
    );
}

#[test]
fn api_tokens_never_show_in_debug_output() {
    let text =
        "[[api.tokens]]\nname = \"ops\"\ntoken = \"s3cr3t-s3cr3t-s3cr3t\"\nrole = \"operator\"\n";
    let hub: HubConfig = load_str("hub.toml", text, &no_env()).unwrap();
    let shown = format!("{hub:?}");
    assert!(
        shown.contains("ops") && !shown.contains("s3cr3t"),
        "{shown}"
    );
}

#[test]
fn a_tv_must_name_a_relay_of_its_edge_and_an_http_relay_needs_a_url() {
    let text = r#"
[[devices]]
kind = "tv"
id = "tv-1"
address = "10.0.0.9:5555"
relay = "relay-9"
[[devices]]
kind = "relay"
id = "relay-1"
bank = "http"
"#;
    let err = load_str::<EdgeConfig>("edge.toml", text, &no_env())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("devices[0].relay") && err.contains("relay-9"),
        "{err}"
    );
    assert!(err.contains("devices[1].url"), "{err}");
}

#[test]
fn a_synthetic_payload_over_what_an_event_may_carry_is_refused() {
    let device = |bytes: usize| {
        format!(
            "[[devices]]\nkind = \"synthetic\"\nid = \"a\"\nrate_per_second = 1.0\npayload_bytes = {bytes}\nclass = \"money\"\n"
        )
    };
    let found = problems::<EdgeConfig>(&device(3585), &no_env());
    assert!(
        found.len() == 1 && found[0].message.contains("at most 3584"),
        "{found:?}"
    );
    assert!(load_str::<EdgeConfig>("site.toml", &device(3584), &no_env()).is_ok());
}

#[test]
fn an_outbox_compacting_below_sixteen_mib_is_refused() {
    let found = problems::<EdgeConfig>("[outbox]\ncompact_above_bytes = 0\n", &no_env());
    assert_eq!(found[0].key, "outbox.compact_above_bytes", "{found:?}");
    assert!(found[0].message.contains("at least 16777216"), "{found:?}");
}

#[test]
fn one_token_under_two_names_is_refused_without_showing_it() {
    let text = "[[api.tokens]]\nname = \"a\"\ntoken = \"0123456789abcdef-secret\"\nrole = \"viewer\"\n\
                [[api.tokens]]\nname = \"b\"\ntoken = \"0123456789abcdef-secret\"\nrole = \"admin\"\n";
    let found = problems::<HubConfig>(text, &no_env());
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].key, "api.tokens[1].token");
    assert!(
        matches!(found[0].location, Location::File { line: 7, .. }),
        "{found:?}"
    );
    let shown = found[0].to_string();
    assert!(
        !shown.contains("secret"),
        "the token is never shown: {shown}"
    );
}

#[test]
fn certificate_files_that_do_not_exist_are_refused_by_config_check() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = tmp.path().join("ca.pem");
    std::fs::write(&ca, "pem").unwrap();
    let file = tmp.path().join("edge.toml");
    std::fs::write(
        &file,
        format!(
            "[uplink]\nca = {:?}\ncert = {:?}\nkey = {:?}\n",
            ca.display().to_string(),
            tmp.path().join("missing.pem").display().to_string(),
            ca.display().to_string()
        ),
    )
    .unwrap();
    let err = outpost_config::load_file::<EdgeConfig>(&file, &no_env()).unwrap_err();
    let found = err.problems();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].key, "uplink.cert");
    assert!(found[0].message.contains("missing.pem"), "{found:?}");
    assert!(
        matches!(found[0].location, Location::File { line: 3, .. }),
        "{found:?}"
    );
}

#[test]
fn a_wrong_value_inside_a_device_names_its_key_and_line() {
    let text = "[[devices]]\nkind = \"synthetic\"\nid = \"a\"\nrate_per_second = \"fast\"\n\
                payload_bytes = 1\nclass = \"money\"\n";
    let found = problems::<EdgeConfig>(text, &no_env());
    assert_eq!(found[0].key, "devices[0].rate_per_second", "{found:?}");
    assert!(
        matches!(found[0].location, Location::File { line: 4, .. }),
        "{found:?}"
    );
    let text = "[[devices]]\nkind = \"synthetic\"\nid = \"a\"\nrate_per_second = 1.0\n\
                payload_bytes = 1\nclass = \"money\"\nrate = 5\n";
    let found = problems::<EdgeConfig>(text, &no_env());
    assert_eq!(found[0].key, "devices[0].rate", "{found:?}");
    assert!(
        matches!(found[0].location, Location::File { line: 7, .. }),
        "{found:?}"
    );
}

#[test]
fn the_floor_and_alert_rules_are_checked_and_every_problem_named() {
    let text = r#"
[accounting]
currency = "dollars"
time_zone = "Mars/Olympus"
gaming_day_start_hour = 24

[[sites]]
id = "north"
edges = ["edge-1"]
time_zone = "Europe/Berlin"
gaming_day_start_hour = 6

[[sites]]
id = "south"
edges = ["edge-1"]
time_zone = "UTC"
gaming_day_start_hour = 6

[[machines]]
edge = "edge-1"
device = "egm-1"
par_percent = 120.0

[[alerts.rules]]
rule = "comms_lost"

[[alerts.rules]]
rule = "door_open_out_of_hours"
open_hours = "8 to 2"

[[alerts.rules]]
rule = "gossip"

[[alerts.webhooks]]
url = "ftp://ops"
secret = "short"
"#;
    let found = problems::<HubConfig>(text, &no_env());
    let keys: Vec<String> = found.iter().map(ToString::to_string).collect();
    for needle in [
        "accounting.currency",
        "accounting.time_zone",
        "accounting.gaming_day_start_hour",
        "sites[1].edges",
        "machines[0].par_percent",
        "site.toml:25:1: key `alerts.rules[0].rule`: expected after_minutes",
        "alerts.rules[1].open_hours",
        "alerts.rules[2].rule",
        "alerts.webhooks[0].url",
        "alerts.webhooks[0].secret",
    ] {
        assert!(
            keys.iter().any(|k| k.contains(needle)),
            "{needle} in {keys:#?}"
        );
    }
}
