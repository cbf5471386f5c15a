//! Arbitrary bytes from a serial line, in arbitrary pieces, against every kind of expectation, and
//! as requests (the EGM simulator's side) and LP 2F payloads. Nothing may panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use outpost_sas::meters::selected_meters;
use outpost_sas::reply::ReplyLength;
use outpost_sas::{Expectation, ReplyDecoder, Request};

fuzz_target!(|data: &[u8]| {
    let Some((&control, bytes)) = data.split_first() else {
        return;
    };
    let address = (control & 0x7f).max(1);
    let split = usize::from(control >> 4).max(1);
    let expectations = [
        Expectation::GeneralPoll { address, real_time: control & 1 == 1 },
        Expectation::Ack { address, command: 0x01 },
        Expectation::Data { address, command: 0x1A, length: ReplyLength::Fixed(8) },
        Expectation::Data { address, command: 0x2F, length: ReplyLength::Variable { max: 0x3E } },
    ];
    for expectation in expectations {
        let mut decoder = ReplyDecoder::new(expectation);
        for piece in bytes.chunks(split) {
            let _ = decoder.feed(piece);
        }
        let _ = decoder.finish();
    }
    if let Ok(request) = Request::decode(bytes) {
        let _ = request.encode();
    }
    let _ = selected_meters(bytes, &[0x00, 0x0D, 0x0C]);
});
