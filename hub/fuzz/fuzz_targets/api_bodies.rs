//! Any bytes as the body of `POST /api/v1/commands` and `POST /api/v1/visits`, read exactly as the
//! handlers read them. Asserted, beyond "no panic":
//! - a command body accepted for a device kind gives a command of that kind whose canonical JSON
//!   parses back to the same command, and a deadline within the hub's limit;
//! - a visit accepted is one the hub can store and HikCentral can take: id of 1-15 lowercase
//!   letters and digits, a trimmed name of 1-64 printable characters, an end after its begin and
//!   after now, at most 31 days long, a photo of at most 200 KiB.
#![no_main]

use libfuzzer_sys::fuzz_target;
use outpost_command::{DeviceCommand, DeviceKind};
use outpost_hub::{MAX_DEADLINE_SECONDS, NewCommand, NewVisit, validate_visit};

/// 2026-11-30T00:00:00Z: fixed, so a run is repeatable.
const NOW_MS: i64 = 1_795_996_800_000;

fuzz_target!(|data: &[u8]| {
    if let Ok(new) = NewCommand::from_body(data) {
        for kind in DeviceKind::ALL {
            let Ok((command, deadline)) = new.command(kind, 60) else {
                continue;
            };
            assert_eq!(command.kind(), kind);
            assert!((1..=MAX_DEADLINE_SECONDS).contains(&deadline));
            let again = DeviceCommand::parse(kind, command.op(), command.args())
                .expect("a command's canonical form parses");
            assert_eq!(again, command);
        }
    }
    if let Ok(new) = serde_json::from_slice::<NewVisit>(data)
        && let Ok((visit, photo)) = validate_visit(&new, "fuzz", NOW_MS)
    {
        assert!((1..=15).contains(&visit.id.len()), "{visit:?}");
        assert!(visit.id.chars().all(|c| c.is_ascii_digit() || c.is_ascii_lowercase()));
        let name = visit.guest_name.as_str();
        assert_eq!(name, name.trim());
        assert!((1..=64).contains(&name.chars().count()) && !name.chars().any(char::is_control));
        assert!(visit.begin_ms < visit.end_ms && visit.end_ms > NOW_MS);
        assert!(visit.end_ms - visit.begin_ms <= 31 * 86_400_000);
        assert!(photo.len() <= 200 * 1024 && photo.len() == visit.photo_bytes);
    }
});
