//! Frame codec: round trips, limits and hostile input.

#![allow(clippy::unwrap_used)] // In tests a panic is a failed test with its message.

use outpost_link::{
    ControlFrame, Event, EventBatch, EventBody, EventClass, EventFrame, FrameDecoder, FrameError,
    Hello, decode_one, encode,
};
use proptest::prelude::*;

fn event(seq: u64, payload: Vec<u8>) -> Event {
    Event {
        seq,
        device: "syn-1".into(),
        class: EventClass::Telemetry,
        wall_us: 1_700_000_000_000_000,
        mono_us: seq * 10,
        boot_id: 0xdead_beef,
        body: EventBody::Synthetic { payload },
    }
}

#[test]
fn hello_round_trips() {
    let hello = ControlFrame::Hello(Hello {
        edge_id: "edge-01".into(),
        boot_id: u128::MAX,
        wall_ms: -5,
        last_seq: 42,
        trimmed_seq: 40,
        devices: vec![],
        software: "outpost-edge 0.1.0".into(),
    });
    let mut bytes = Vec::new();
    encode(&hello, &mut bytes).unwrap();
    let mut decoder = FrameDecoder::default();
    decoder.push(&bytes);
    assert_eq!(decoder.next_frame::<ControlFrame>().unwrap(), Some(hello));
    assert_eq!(decoder.next_frame::<ControlFrame>().unwrap(), None);
    decoder.finish().unwrap();
}

#[test]
fn frame_longer_than_the_limit_is_refused_before_it_is_buffered() {
    let mut decoder = FrameDecoder::new(1024);
    decoder.push(&(1025u32).to_be_bytes());
    assert_eq!(
        decoder.next_frame::<EventFrame>(),
        Err(FrameError::TooLarge {
            len: 1025,
            limit: 1024
        })
    );
}

#[test]
fn unknown_version_is_refused() {
    let mut decoder = FrameDecoder::default();
    decoder.push(&[0, 0, 0, 2, 9, 0]);
    assert_eq!(
        decoder.next_frame::<EventFrame>(),
        Err(FrameError::UnsupportedVersion(9))
    );
}

#[test]
fn trailing_bytes_inside_a_frame_are_refused() {
    let mut bytes = Vec::new();
    encode(&EventFrame::Ack { committed_seq: 7 }, &mut bytes).unwrap();
    bytes.push(0);
    let len = (bytes.len() - 4) as u32;
    bytes[..4].copy_from_slice(&len.to_be_bytes());
    let mut decoder = FrameDecoder::default();
    decoder.push(&bytes);
    assert_eq!(
        decoder.next_frame::<EventFrame>(),
        Err(FrameError::TrailingBytes(1))
    );
}

#[test]
fn a_huge_length_inside_the_body_does_not_allocate_it() {
    // A batch claiming 2^60 events in a 16-byte frame.
    let body = [
        outpost_link::FRAME_VERSION,
        0,
        0xff,
        0xff,
        0xff,
        0xff,
        0xff,
        0xff,
        0xff,
        0x0f,
    ];
    assert!(matches!(
        decode_one::<EventFrame>(&body),
        Err(FrameError::Malformed(_))
    ));
}

#[test]
fn stream_ending_inside_a_frame_is_reported() {
    let mut bytes = Vec::new();
    encode(&EventFrame::Ack { committed_seq: 7 }, &mut bytes).unwrap();
    let mut decoder = FrameDecoder::default();
    decoder.push(&bytes[..bytes.len() - 1]);
    assert_eq!(decoder.next_frame::<EventFrame>().unwrap(), None);
    assert!(matches!(decoder.finish(), Err(FrameError::Truncated(_))));
}

proptest! {
    #[test]
    fn batches_round_trip_through_any_chunking(
        payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 1..20),
        chunk in 1usize..64,
    ) {
        let batch = EventFrame::Batch(EventBatch {
            events: payloads.into_iter().enumerate().map(|(i, p)| event(i as u64 + 1, p)).collect(),
        });
        let mut bytes = Vec::new();
        encode(&batch, &mut bytes).unwrap();
        encode(&EventFrame::Ack { committed_seq: 3 }, &mut bytes).unwrap();
        let mut decoder = FrameDecoder::default();
        let mut frames = Vec::new();
        for piece in bytes.chunks(chunk) {
            decoder.push(piece);
            while let Some(frame) = decoder.next_frame::<EventFrame>().unwrap() {
                frames.push(frame);
            }
        }
        decoder.finish().unwrap();
        prop_assert_eq!(frames, vec![batch, EventFrame::Ack { committed_seq: 3 }]);
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_decoder(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let mut decoder = FrameDecoder::new(4096);
        decoder.push(&bytes);
        for _ in 0..8 {
            match decoder.next_frame::<ControlFrame>() {
                Ok(Some(_)) => continue,
                Ok(None) | Err(_) => break,
            }
        }
        let _ = decode_one::<EventFrame>(&bytes);
    }
}

#[test]
fn a_decoder_gives_back_a_large_frames_room_once_it_is_read() {
    let batch = EventFrame::Batch(EventBatch {
        events: (1..=1024).map(|seq| event(seq, vec![7; 200])).collect(),
    });
    let mut bytes = Vec::new();
    encode(&batch, &mut bytes).unwrap();
    assert!(bytes.len() > 200_000);
    let mut decoder = FrameDecoder::default();
    for chunk in bytes.chunks(64 * 1024) {
        decoder.push(chunk);
    }
    assert!(decoder.held_bytes() >= bytes.len());
    let decoded: EventFrame = decoder.next_frame().unwrap().unwrap();
    assert_eq!(decoded, batch);
    assert_eq!(decoder.buffered(), 0);
    assert_eq!(
        decoder.held_bytes(),
        0,
        "an idle session keeps no batch's worth of memory"
    );
}
