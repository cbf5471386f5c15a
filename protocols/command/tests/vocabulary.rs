//! The command vocabulary: what parses, what is refused and why, and that both encodings give the
//! same command back.

use outpost_command::{
    CommandError, CommandReply, DeviceCommand, DeviceKind, RelayCommand, TvCommand, TvKey,
    catalogue,
};
use proptest::prelude::*;
use serde_json::json;

fn bincode_round_trip(command: &DeviceCommand) -> DeviceCommand {
    let config = bincode::config::standard();
    let bytes = bincode::serde::encode_to_vec(command, config).expect("encodes");
    let (back, used) = bincode::serde::decode_from_slice(&bytes, config).expect("decodes");
    assert_eq!(used, bytes.len());
    back
}

#[test]
fn every_documented_example_parses_and_round_trips() {
    for operation in catalogue() {
        let args: serde_json::Value =
            serde_json::from_str(operation.example).expect("example is JSON");
        let command = DeviceCommand::parse(operation.kind, operation.name, args)
            .unwrap_or_else(|e| panic!("{} {}: {e}", operation.kind, operation.name));
        assert_eq!(command.op(), operation.name);
        assert_eq!(command.kind(), operation.kind);
        let again =
            DeviceCommand::parse(command.kind(), command.op(), command.args()).expect("reparses");
        assert_eq!(again, command);
        assert_eq!(bincode_round_trip(&command), command);
    }
}

#[test]
fn operation_names_are_distinct_within_each_kind() {
    for kind in DeviceKind::ALL {
        let mut names: Vec<_> = kind.operations().iter().map(|o| o.name).collect();
        let all = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), all, "{kind}");
    }
}

#[test]
fn a_missing_args_object_counts_as_empty() {
    let command =
        DeviceCommand::parse(DeviceKind::Egm, "disable", serde_json::Value::Null).expect("parses");
    assert_eq!(command.op(), "disable");
}

#[test]
fn an_unknown_operation_names_the_ones_that_exist() {
    let err = DeviceCommand::parse(DeviceKind::Relay, "toggle", json!({})).expect_err("refused");
    assert!(matches!(err, CommandError::UnknownOperation { .. }));
    assert_eq!(
        err.to_string(),
        "a relay has no operation \"toggle\"; its operations are: on, off, cycle, state"
    );
}

#[test]
fn a_value_past_its_limit_is_refused_with_the_limit_and_an_example() {
    let err =
        DeviceCommand::parse(DeviceKind::Tv, "volume", json!({"level": 16})).expect_err("refused");
    let text = err.to_string();
    assert!(text.contains("a volume level is 0 to 15, not 16"), "{text}");
    assert!(
        text.contains(r#"{"op": "volume", "args": {"level": 7}}"#),
        "{text}"
    );
}

#[test]
fn a_misspelt_argument_is_refused_rather_than_ignored() {
    let err =
        DeviceCommand::parse(DeviceKind::Tv, "volume", json!({"levle": 3})).expect_err("refused");
    assert!(err.to_string().contains("levle"), "{err}");
    let err =
        DeviceCommand::parse(DeviceKind::Egm, "enable", json!({"now": true})).expect_err("refused");
    assert!(err.to_string().contains("now"), "{err}");
}

#[test]
fn a_relay_cycle_of_any_length_up_to_ten_minutes_is_accepted_by_the_vocabulary() {
    // The relay's own min_off_ms is the edge's to enforce (it stretches the cycle); the vocabulary
    // only bounds what can be asked.
    for ms in [0, 1, 600_000] {
        DeviceCommand::parse(DeviceKind::Relay, "cycle", json!({"off_ms": ms})).expect("accepted");
    }
    let err = DeviceCommand::parse(DeviceKind::Relay, "cycle", json!({"off_ms": 600_001}))
        .expect_err("refused");
    assert!(err.to_string().contains("at most 600000"), "{err}");
    let err = DeviceCommand::parse(DeviceKind::Relay, "cycle", json!({"off_ms": 1.5}))
        .expect_err("refused");
    assert!(
        matches!(err, CommandError::InvalidArguments { .. }),
        "{err}"
    );
    let plain = DeviceCommand::parse(DeviceKind::Relay, "cycle", json!({})).expect("accepted");
    assert_eq!(
        plain,
        DeviceCommand::Relay(RelayCommand::Cycle(Default::default()))
    );
}

#[test]
fn keys_are_named_in_any_case_or_given_by_code() {
    let key = |v: serde_json::Value| match DeviceCommand::parse(
        DeviceKind::Tv,
        "key",
        json!({ "key": v }),
    ) {
        Ok(DeviceCommand::Tv(TvCommand::Key(args))) => Ok(args.key.get()),
        Ok(other) => panic!("{other:?}"),
        Err(e) => Err(e.to_string()),
    };
    assert_eq!(key(json!("home")), Ok(3));
    assert_eq!(key(json!("KEYCODE_HOME")), Ok(3));
    assert_eq!(key(json!(288)), Ok(288));
    assert!(key(json!(0)).is_err_and(|e| e.contains("1 to 288")));
    assert!(key(json!(289)).is_err());
    assert!(key(json!("jump")).is_err_and(|e| e.contains("dpad_up")));
    // A named key is written back by name, a code by number.
    let named = DeviceCommand::parse(DeviceKind::Tv, "key", json!({"key": "KEYCODE_BACK"}))
        .expect("parses");
    assert_eq!(named.args(), json!({"key": "back"}));
    assert_eq!(TvKey::code(200).map(|k| k.name()), Ok(None));
}

#[test]
fn a_push_whose_data_does_not_match_its_sha256_is_refused() {
    let err = DeviceCommand::parse(
        DeviceKind::Tv,
        "push",
        json!({"path": "/sdcard/a.txt", "data_base64": "aGVsbG8=", "sha256": "00".repeat(32)}),
    )
    .expect_err("refused");
    assert!(
        err.to_string().contains("refusing to push a damaged file"),
        "{err}"
    );
    let err = DeviceCommand::parse(
        DeviceKind::Tv,
        "push",
        json!({"path": "/sdcard/../etc/x", "data_base64": "", "sha256": "00".repeat(32)}),
    )
    .expect_err("refused");
    assert!(err.to_string().contains("no .."), "{err}");
}

#[test]
fn an_unsafe_package_name_is_refused() {
    for bad in ["com", "com.example;reboot", "1com.x", "com..x", ""] {
        assert!(
            DeviceCommand::parse(DeviceKind::Tv, "launch", json!({ "package": bad })).is_err(),
            "{bad}"
        );
    }
}

#[test]
fn a_command_for_another_kind_names_both_kinds() {
    let command = DeviceCommand::parse(DeviceKind::Synthetic, "ping", json!({})).expect("parses");
    assert_eq!(
        command.wrong_kind(DeviceKind::Relay).to_string(),
        "a relay cannot run a synthetic command"
    );
}

#[test]
fn replies_are_json_objects_named_by_what_they_say() {
    let reply = CommandReply::RomSignature {
        seed: 0x1234,
        signature: 0xBEEF,
    };
    assert_eq!(
        serde_json::to_value(&reply).expect("serializes"),
        json!({"rom_signature": {"seed": 4660, "signature": 48879}})
    );
    assert_eq!(reply.to_string(), "ROM signature BEEF (seed 1234)");
    assert_eq!(
        serde_json::to_value(CommandReply::Pong {}).expect("serializes"),
        json!({"pong": {}})
    );
    let relay = CommandReply::Relay {
        on: true,
        off_ms: None,
    };
    let config = bincode::config::standard();
    let bytes = bincode::serde::encode_to_vec(&relay, config).expect("encodes");
    let (back, _): (CommandReply, usize) =
        bincode::serde::decode_from_slice(&bytes, config).expect("decodes");
    assert_eq!(back, relay);
    let long = CommandReply::sent(&"x".repeat(1000));
    assert!(
        matches!(long, CommandReply::Sent { shell } if shell.chars().count() == CommandReply::MAX_TEXT_CHARS + 1)
    );
}

fn any_json() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        (0u64..1000).prop_map(serde_json::Value::from),
        "[a-z_0-9./]{0,12}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(2, 8, 4, |inner| {
        prop::collection::btree_map(
            prop_oneof![
                Just("level".to_owned()),
                Just("key".to_owned()),
                Just("off_ms".to_owned()),
                Just("seed".to_owned()),
                Just("enable".to_owned()),
                Just("on".to_owned()),
                Just("source".to_owned()),
                Just("package".to_owned()),
                "[a-z]{1,6}"
            ],
            inner,
            0..3,
        )
        .prop_map(|m| serde_json::Value::Object(m.into_iter().collect()))
    })
}

proptest! {
    #[test]
    fn whatever_an_operator_sends_is_parsed_or_refused_and_what_parses_round_trips(
        kind in prop::sample::select(DeviceKind::ALL.to_vec()),
        op_index in 0usize..20,
        args in any_json(),
    ) {
        let ops = kind.operations();
        let op = ops.get(op_index).map_or("nonsense", |o| o.name);
        if let Ok(command) = DeviceCommand::parse(kind, op, args) {
            prop_assert_eq!(command.op(), op);
            let again = DeviceCommand::parse(kind, op, command.args());
            prop_assert_eq!(again.as_ref(), Ok(&command));
            prop_assert_eq!(bincode_round_trip(&command), command);
        }
    }
}
