//! What an operator (or anything that reaches the API) sends as a command: a device kind, an
//! operation name and any JSON as arguments.
//!
//! Asserted, beyond "no panic": a command that parses writes its arguments back in a form that
//! parses to the same command, and its bincode (the link's encoding) decodes to the same command;
//! its answer-in-words is never empty.

#![no_main]

use libfuzzer_sys::fuzz_target;
use outpost_command::{DeviceCommand, DeviceKind};

fuzz_target!(|data: &[u8]| {
    let [kind, op, json @ ..] = data else {
        return;
    };
    let kind = DeviceKind::ALL[usize::from(*kind) % DeviceKind::ALL.len()];
    let ops = kind.operations();
    let op = ops.get(usize::from(*op)).map_or("no-such-op", |o| o.name);
    let Ok(args) = serde_json::from_slice::<serde_json::Value>(json) else {
        return;
    };
    match DeviceCommand::parse(kind, op, args) {
        Ok(command) => {
            assert_eq!(command.op(), op);
            let again = DeviceCommand::parse(kind, op, command.args()).expect("written-back args parse");
            assert_eq!(again, command);
            let config = bincode::config::standard();
            let bytes = bincode::serde::encode_to_vec(&command, config).expect("encodes");
            let (back, used): (DeviceCommand, usize) =
                bincode::serde::decode_from_slice(&bytes, config).expect("decodes");
            assert_eq!(used, bytes.len());
            assert_eq!(back, command);
        }
        Err(error) => assert!(!error.to_string().is_empty()),
    }
});
