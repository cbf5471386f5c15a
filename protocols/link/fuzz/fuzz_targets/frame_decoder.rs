//! Feeds arbitrary bytes, in arbitrary pieces, to every decoder that reads link bytes from outside:
//! the streaming frame decoder (control and event frames), single frame bodies, bulk headers and
//! stored chunks. Nothing may panic or allocate past the frame limit.

#![no_main]

use libfuzzer_sys::fuzz_target;
use outpost_link::{BulkHeader, ControlFrame, EventFrame, FrameDecoder, chunk, decode_one};

fuzz_target!(|data: &[u8]| {
    let split = data.first().map_or(1, |b| usize::from(*b).max(1));
    let mut control = FrameDecoder::new(64 * 1024);
    let mut events = FrameDecoder::new(64 * 1024);
    for piece in data.chunks(split) {
        control.push(piece);
        events.push(piece);
        while let Ok(Some(_)) = control.next_frame::<ControlFrame>() {}
        while let Ok(Some(_)) = events.next_frame::<EventFrame>() {}
    }
    let _ = control.finish();
    let _ = decode_one::<EventFrame>(data);
    let _ = decode_one::<BulkHeader>(data);
    let _ = chunk::decode::<outpost_link::Event>(data);
});
