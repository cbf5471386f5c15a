//! Writes the seed corpus of the link's fuzz target: one file per kind of frame the link carries,
//! several frames in a row, and stored chunks.
//!
//! `cargo run -p outpost-link --example fuzz_seeds -- protocols/link/fuzz/seeds/frame_decoder`

use outpost_link::outpost_command::{DeviceCommand, DeviceKind};
use outpost_link::{
    BulkHeader, CommandOutcome, CommandRequest, CommandResult, ControlFrame, Event, EventBatch,
    EventBody, EventClass, EventFrame, Hello, Welcome, encode,
};

fn event(seq: u64, body: EventBody) -> Event {
    Event {
        seq,
        device: "egm-1".into(),
        class: EventClass::Money,
        wall_us: 1_700_000_000_000_000,
        mono_us: seq * 1000,
        boot_id: 42,
        body,
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args().nth(1).ok_or("usage: fuzz_seeds DIR")?;
    std::fs::create_dir_all(&dir)?;
    let hello = ControlFrame::Hello(Hello {
        edge_id: "edge-01".into(),
        boot_id: 42,
        wall_ms: 1_700_000_000_000,
        last_seq: 120,
        trimmed_seq: 100,
        devices: vec![outpost_link::DeviceInfo {
            id: "tv-1".into(),
            kind: "tv".into(),
        }],
        software: "outpost-edge 0.1.0".into(),
    });
    let welcome = ControlFrame::Welcome(Welcome {
        committed_seq: 100,
        hub_wall_ms: 1,
        clock_offset_ms: -3,
    });
    let command = ControlFrame::Command(CommandRequest {
        id: "cmd-1".into(),
        device: "tv-1".into(),
        command: DeviceCommand::parse(DeviceKind::Tv, "volume", serde_json::json!({"level": 7}))?,
        remaining_ms: 60_000,
        issuer: "ops".into(),
    });
    let batch = EventFrame::Batch(EventBatch {
        events: vec![
            event(
                101,
                EventBody::Synthetic {
                    payload: vec![1, 2, 3],
                },
            ),
            event(
                102,
                EventBody::CommandResult(CommandResult::new("cmd-1", CommandOutcome::Failed, "no")),
            ),
            event(103, EventBody::Shed),
        ],
    });
    let ack = EventFrame::Ack { committed_seq: 103 };
    let bulk = BulkHeader {
        id: "tv-1-shot".into(),
        device: "tv-1".into(),
        content_type: "image/png".into(),
        len: 10,
        sha256: "00".repeat(32),
    };
    let mut all = Vec::new();
    let mut write = |name: &str, bytes: Vec<u8>| -> std::io::Result<()> {
        all.extend_from_slice(&bytes);
        // A leading byte picks the fuzz target's piece size; 0x07 is a useful one.
        let mut seeded = vec![7u8];
        seeded.extend_from_slice(&bytes);
        std::fs::write(format!("{dir}/{name}"), seeded)
    };
    for (name, frame) in [("hello", hello), ("welcome", welcome), ("command", command)] {
        let mut bytes = Vec::new();
        encode(&frame, &mut bytes)?;
        write(name, bytes)?;
    }
    for (name, frame) in [("batch", batch), ("ack", ack)] {
        let mut bytes = Vec::new();
        encode(&frame, &mut bytes)?;
        write(name, bytes)?;
    }
    let mut bytes = Vec::new();
    encode(&bulk, &mut bytes)?;
    write("bulk-header", bytes)?;
    std::fs::write(format!("{dir}/all"), all)?;
    Ok(())
}
