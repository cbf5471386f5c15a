//! Any status and body as an HTTP relay board's answer (the first two bytes are the status).
//! Asserted, beyond "no panic": the answer is a state exactly when the status is 200, the body is
//! at most 4 KiB, and it is a JSON object with one key, `on`, whose value is a boolean — and then
//! the state is that boolean (an object with `on` twice is refused); an error quotes at most 200 characters of the body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use outpost_edge::{RelayError, parse_relay_answer};
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};

/// A JSON object's entries in order, duplicates kept (serde_json's `Value` keeps only the last).
struct Entries(Vec<(String, serde_json::Value)>);

impl<'de> Deserialize<'de> for Entries {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Collect;
        impl<'de> Visitor<'de> for Collect {
            type Value = Entries;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    entries.push(entry);
                }
                Ok(Entries(entries))
            }
        }
        deserializer.deserialize_map(Collect)
    }
}

fuzz_target!(|data: &[u8]| {
    let (status, body) = match data {
        [high, low, body @ ..] => (u16::from_be_bytes([*high, *low]) % 1000, body),
        _ => return,
    };
    let expected = if status == 200 && body.len() <= 4096 {
        match serde_json::from_slice::<Entries>(body) {
            Ok(Entries(entries)) => match entries.as_slice() {
                [(key, value)] if key == "on" => value.as_bool(),
                _ => None,
            },
            Err(_) => None,
        }
    } else {
        None
    };
    match parse_relay_answer(status, body) {
        Ok(on) => assert_eq!(Some(on), expected, "status {status}"),
        Err(err) => {
            assert_eq!(expected, None, "refused a good answer: {err}");
            if let RelayError::Status { excerpt, .. } | RelayError::BadAnswer { excerpt, .. } = &err {
                assert!(excerpt.chars().count() <= 201, "{excerpt}");
            }
        }
    }
});
