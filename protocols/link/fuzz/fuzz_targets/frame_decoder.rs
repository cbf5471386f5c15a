//! Arbitrary bytes, in arbitrary pieces, to every decoder that reads link bytes from outside: the
//! streaming frame decoder (control and event frames), single frame bodies, bulk headers, the
//! sessions (a frame that decodes is handed to both), and stored chunks.
//!
//! Asserted, beyond "no panic": feeding the bytes in pieces gives exactly the frames (and the
//! error) feeding them whole gives; a body that decodes re-encodes to a body that decodes to the
//! same message (bincode's varints are canonical on encode, so bytes may differ only where the
//! input was not); the sessions never emit an acknowledgement or trim beyond what was sent.

#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use outpost_link::session::{EdgeConfig, EdgeOutput, EdgeSession, HubConfig, HubOutput, HubSession};
use outpost_link::{BulkHeader, ControlFrame, EventFrame, FrameDecoder, Hello, decode_one, encode};
use outpost_storage::chunk;

fn frames<T: serde::de::DeserializeOwned>(data: &[u8], split: usize) -> (Vec<T>, Option<String>) {
    let mut decoder = FrameDecoder::new(64 * 1024);
    let mut out = Vec::new();
    for piece in data.chunks(split) {
        decoder.push(piece);
        loop {
            match decoder.next_frame::<T>() {
                Ok(Some(frame)) => out.push(frame),
                Ok(None) => break,
                Err(e) => return (out, Some(e.to_string())),
            }
        }
    }
    let end = decoder.finish().err().map(|e| e.to_string());
    (out, end)
}

fn round_trip<T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug>(body: &[u8]) {
    if let Ok(message) = decode_one::<T>(body) {
        let mut again = Vec::new();
        encode(&message, &mut again).expect("a decoded message encodes");
        let back = decode_one::<T>(&again[4..]).expect("an encoded message decodes");
        assert_eq!(back, message);
    }
}

fuzz_target!(|data: &[u8]| {
    let split = data.first().map_or(1, |b| usize::from(*b).max(1));
    let whole: (Vec<ControlFrame>, _) = frames(data, data.len().max(1));
    let pieces: (Vec<ControlFrame>, _) = frames(data, split);
    assert_eq!(whole, pieces, "control frames depend on how the bytes arrived");
    let whole: (Vec<EventFrame>, _) = frames(data, data.len().max(1));
    let pieces: (Vec<EventFrame>, _) = frames(data, split);
    assert_eq!(whole, pieces, "event frames depend on how the bytes arrived");

    round_trip::<ControlFrame>(data);
    round_trip::<EventFrame>(data);
    round_trip::<BulkHeader>(data);

    // Whatever frames decode, fed to both sessions after a handshake: acks and trims stay within
    // what was sent.
    let now = Instant::now();
    let mut hub = HubSession::new(
        HubConfig { hello_timeout: Duration::from_secs(10), max_commits_in_flight: 4 },
        "edge-f",
        now,
    );
    let hello = Hello {
        edge_id: "edge-f".into(),
        boot_id: 0,
        wall_ms: 0,
        last_seq: 100,
        trimmed_seq: 0,
        devices: vec![],
        software: String::new(),
    };
    hub.handle_control(ControlFrame::Hello(hello.clone()));
    while let Some(out) = hub.poll_output() {
        if let HubOutput::Admit(_) = out {
            hub.welcome(0, 0, 0);
        }
    }
    let config = EdgeConfig { window_events: 16, batch_max_events: 4, welcome_timeout: Duration::from_secs(10) };
    let mut edge = EdgeSession::start(config, hello, now);
    edge.handle_control(ControlFrame::Welcome(outpost_link::Welcome {
        committed_seq: 0,
        hub_wall_ms: 0,
        clock_offset_ms: 0,
    }));
    for frame in whole.0 {
        hub.handle_events(frame.clone());
        while let Some(out) = hub.poll_output() {
            if let HubOutput::Commit(events) = out {
                let last = events.last().map_or(0, |e| e.seq);
                hub.handle_committed(last);
            }
        }
        edge.handle_events(frame);
        while let Some(out) = edge.poll_output() {
            if let EdgeOutput::Trim(seq) = out {
                assert_eq!(seq, 0, "the edge trimmed on an ack for events it never sent");
            }
        }
    }
    let _ = chunk::decode::<outpost_link::Event>(data);
});
