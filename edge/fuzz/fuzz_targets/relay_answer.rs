//! Any status and body as an HTTP relay board's answer (the first two bytes are the status).
//! Asserted, beyond "no panic": the answer is a state exactly when the status is 200, the body is
//! at most 4 KiB, and it is a JSON object with one key, `on`, whose value is a boolean — and then
//! the state is that boolean (a duplicated `on` is refused); an error quotes at most 200 characters of the body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use outpost_edge::{RelayError, parse_relay_answer};

fuzz_target!(|data: &[u8]| {
    let (status, body) = match data {
        [high, low, body @ ..] => (u16::from_be_bytes([*high, *low]) % 1000, body),
        _ => return,
    };
    let expected = if status == 200 && body.len() <= 4096 {
        match serde_json::from_slice::<serde_json::Value>(body) {
            Ok(serde_json::Value::Object(map)) if map.len() == 1 => {
                map.get("on").and_then(serde_json::Value::as_bool)
            }
            _ => None,
        }
    } else {
        None
    };
    match parse_relay_answer(status, body) {
        Ok(on) => assert_eq!(Some(on), expected, "status {status}"),
        Err(err) => {
            // serde_json's map keeps the last of duplicate keys; the answer's parser refuses them.
            let duplicate = matches!(&err, RelayError::BadAnswer { reason, .. } if reason.contains("duplicate field"));
            assert!(expected.is_none() || duplicate, "refused a good answer: {err}");
            if let RelayError::Status { excerpt, .. } | RelayError::BadAnswer { excerpt, .. } = &err {
                assert!(excerpt.chars().count() <= 201, "{excerpt}");
            }
        }
    }
});
