//! Any bytes given to the envelope decoder and everything that reads a decoded envelope: no
//! panic, whatever a server sends.
#![no_main]

use libfuzzer_sys::fuzz_target;
use outpost_artemis::api::{PersonInfo, member_id};
use outpost_artemis::{Envelope, classify_code};

fuzz_target!(|data: &[u8]| {
    if let Ok(envelope) = Envelope::parse(data) {
        let _ = classify_code(&envelope.code);
        let _ = envelope.data_id("personId");
        if let Some(value) = &envelope.data {
            let _ = PersonInfo::from_value(value);
        }
        if let Ok(page) = envelope.page() {
            for item in &page.list {
                let _ = member_id(item);
                let _ = PersonInfo::from_value(item);
            }
        }
    }
});
