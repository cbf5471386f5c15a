//! Any bytes, in any pieces, through the ADB message decoder, both sync decoders and the public
//! key parser: no panic, whatever a peer sends.
#![no_main]

use libfuzzer_sys::fuzz_target;
use outpost_adb::{Banner, Decoder, Side, SyncDecoder};

fuzz_target!(|data: &[u8]| {
    let cut = data.first().map(|b| usize::from(*b).max(1)).unwrap_or(1);
    let mut decoder = Decoder::new(outpost_adb::message::MAX_PAYLOAD);
    for piece in data.chunks(cut) {
        decoder.push(piece);
        while let Ok(Some(message)) = decoder.next_message() {
            let _ = Banner::parse(&message.payload);
        }
    }
    for side in [Side::Device, Side::Host] {
        let mut sync = SyncDecoder::new(side);
        for piece in data.chunks(cut) {
            sync.push(piece);
            while let Ok(Some(_)) = sync.next_packet() {}
        }
    }
    let _ = outpost_adb::auth::parse_android_public_key(data);
});
