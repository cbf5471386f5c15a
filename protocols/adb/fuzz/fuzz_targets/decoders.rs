//! Any bytes, in any pieces, through the ADB message decoder, both sync decoders, the public key
//! parser and the TV telemetry parsers. Asserted, beyond "no panic":
//! - feeding the bytes in pieces gives exactly what feeding them whole gives (messages, packets
//!   and the first error);
//! - every decoded message and sync packet decodes again, unchanged, from its own encoding;
//! - telemetry reads only what the text says: a volume is a number the text names after
//!   `volume is `, a foreground app has no whitespace and no `/`;
//! - the bytes as JSON arguments of every TV operation: what parses becomes a shell line made only
//!   of letters, digits, spaces and `._/-` (nothing a shell would interpret), and a push's path
//!   likewise.
#![no_main]

use libfuzzer_sys::fuzz_target;
use outpost_adb::message::MAX_PAYLOAD;
use outpost_adb::tv::{TvAction, action, telemetry};
use outpost_command::{DeviceCommand, DeviceKind, TvCommand};
use outpost_adb::{Banner, Decoder, Message, Side, SyncDecoder, SyncPacket};

type Messages = (Vec<Message>, Option<String>);

fn messages(pieces: &[&[u8]]) -> Messages {
    let mut decoder = Decoder::new(MAX_PAYLOAD);
    let mut out = Vec::new();
    for piece in pieces {
        decoder.push(piece);
        loop {
            match decoder.next_message() {
                Ok(Some(message)) => out.push(message),
                Ok(None) => break,
                Err(err) => return (out, Some(err.to_string())),
            }
        }
    }
    (out, None)
}

fn packets(side: Side, pieces: &[&[u8]]) -> (Vec<SyncPacket>, Option<String>) {
    let mut decoder = SyncDecoder::new(side);
    let mut out = Vec::new();
    for piece in pieces {
        decoder.push(piece);
        loop {
            match decoder.next_packet() {
                Ok(Some(packet)) => out.push(packet),
                Ok(None) => break,
                Err(err) => return (out, Some(err.to_string())),
            }
        }
    }
    (out, None)
}

fuzz_target!(|data: &[u8]| {
    let cut = data.first().map(|b| usize::from(*b).max(1)).unwrap_or(1);
    let pieces: Vec<&[u8]> = data.chunks(cut).collect();

    let whole = messages(&[data]);
    assert_eq!(messages(&pieces), whole, "pieces and whole disagree");
    for message in &whole.0 {
        let _ = Banner::parse(&message.payload);
        let again = messages(&[&message.encode()]);
        assert_eq!(again, (vec![message.clone()], None), "message round trip");
    }

    for side in [Side::Device, Side::Host] {
        let whole = packets(side, &[data]);
        assert_eq!(packets(side, &pieces), whole, "sync pieces and whole disagree");
        for packet in &whole.0 {
            let again = packets(side, &[&packet.encode()]);
            assert_eq!(again, (vec![packet.clone()], None), "sync round trip");
        }
    }

    let _ = outpost_adb::auth::parse_android_public_key(data);

    if let Ok(args) = serde_json::from_slice::<serde_json::Value>(data) {
        let safe = |line: &str| {
            line.chars()
                .all(|c| c.is_ascii_alphanumeric() || " ._/-".contains(c))
        };
        for operation in DeviceKind::Tv.operations() {
            let Ok(DeviceCommand::Tv(command)) =
                DeviceCommand::parse(DeviceKind::Tv, operation.name, args.clone())
            else {
                continue;
            };
            if let TvAction::Shell(line) = action(&command) {
                assert!(safe(&line), "{line:?}");
            }
            if let TvCommand::Push(push) = &command {
                assert!(safe(push.path().as_str()), "{:?}", push.path().as_str());
            }
        }
    }

    let text = String::from_utf8_lossy(data);
    if let Some(level) = telemetry::volume(&text) {
        let named = text.lines().any(|line| {
            line.split("volume is ")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .is_some_and(|word| word.parse::<u8>() == Ok(level))
        });
        assert!(named, "volume {level} is not in the text");
    }
    if let Some(app) = telemetry::foreground_app(&text) {
        assert!(!app.contains('/') && !app.contains(char::is_whitespace), "{app:?}");
        assert!(text.contains("mResumedActivity"));
    }
    if telemetry::screen_on(&text).is_some() {
        assert!(text.contains("mWakefulness="));
    }
});
