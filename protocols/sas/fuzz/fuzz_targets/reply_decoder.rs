//! Arbitrary bytes from a serial line, in arbitrary pieces, against every kind of expectation; as
//! requests (the EGM simulator's side) through the marked encoding and the request framer; and as
//! LP 2F payloads.
//!
//! Asserted, beyond "no panic": a reply fed in pieces decodes as it does fed whole; a request that
//! decodes encodes back to the same bytes (SAS requests are canonical: fixed layout and CRC);
//! marked-encoding decode inverts encode; the framer never yields a frame longer than
//! `MAX_REQUEST`, and in wake-up framing every frame it yields starts with a wake-up byte.

#![no_main]

use libfuzzer_sys::fuzz_target;
use outpost_sas::meters::selected_meters;
use outpost_sas::reply::ReplyLength;
use outpost_sas::wire::{Framed, Framing, MAX_REQUEST, RequestFramer, Symbol};
use outpost_sas::{Expectation, ReplyDecoder, Request};

/// The decoder's final verdict on `bytes` fed in pieces of `split`.
fn verdict(expectation: Expectation, bytes: &[u8], split: usize) -> String {
    let mut decoder = ReplyDecoder::new(expectation);
    for piece in bytes.chunks(split.max(1)) {
        let _ = decoder.feed(piece);
    }
    format!("{:?}", decoder.finish())
}

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
        assert_eq!(
            verdict(expectation, bytes, bytes.len()),
            verdict(expectation, bytes, split),
            "a reply's verdict depends on how its bytes arrived"
        );
    }
    if let Ok(request) = Request::decode(bytes) {
        let frame = request.encode().expect("a decoded request encodes");
        assert_eq!(frame.bytes, bytes, "a decoded request encodes back to its bytes");
    }
    for framing in [Framing::WakeupBit, Framing::Lenient] {
        let mut framer = RequestFramer::new(framing);
        for (i, &byte) in bytes.iter().enumerate() {
            let symbol = if control & 2 == 2 && i % usize::from(control % 7 + 1) == 0 {
                Symbol::wakeup(byte)
            } else {
                Symbol::plain(byte)
            };
            if let Some(Framed::Request(frame)) = framer.push(symbol) {
                assert!(frame.len() <= MAX_REQUEST);
            }
        }
        let _ = framer.silence();
    }
    let marked = outpost_sas::wire::encode_marked(bytes);
    let mut decoder = outpost_sas::wire::MarkDecoder::new();
    let mut symbols: Vec<Symbol> = Vec::new();
    for piece in marked.chunks(split) {
        decoder.feed(piece, &mut symbols);
    }
    let plain: Vec<u8> = symbols.iter().map(|s| s.byte).collect();
    assert_eq!(plain, bytes, "the marked encoding decodes to what was encoded");
    let _ = selected_meters(bytes, &[0x00, 0x0D, 0x0C]);
});
