//! Every golden frame of `sas_vectors.json` decodes and re-encodes byte for byte.

#![allow(clippy::unwrap_used)] // In tests a panic is a failed test with its message.

use outpost_sas::reply::ReplyLength;
use outpost_sas::{Expectation, Reply, ReplyDecoder, Request, crc16_kermit};

const VECTORS: &str = include_str!("sas_vectors.json");

fn vectors(side: &str) -> Vec<(String, Vec<u8>)> {
    let doc: serde_json::Value = serde_json::from_str(VECTORS).unwrap();
    doc[side]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            let bytes = hex::decode(v["bytes"].as_str().unwrap().replace(' ', "")).unwrap();
            (v["what"].as_str().unwrap().to_owned(), bytes)
        })
        .collect()
}

#[test]
fn crc_is_kermit_with_the_catalogue_check_value() {
    assert_eq!(crc16_kermit(b"123456789"), 0x2189);
}

#[test]
fn every_host_frame_decodes_and_re_encodes_byte_for_byte() {
    let frames = vectors("host_to_egm");
    assert_eq!(frames.len(), 21);
    for (what, bytes) in frames {
        let request = Request::decode(&bytes).unwrap_or_else(|e| panic!("{what}: {e}"));
        let frame = request.encode().unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(frame.bytes, bytes, "{what}");
        assert!(frame.wakeup_first, "{what}");
    }
}

#[test]
fn typed_constructors_build_the_golden_frames() {
    let cases: Vec<(Request, &str)> = vec![
        (Request::general_poll(1), "81"),
        (Request::general_poll(0), "80"),
        (Request::long(1, 0x1A), "011A"),
        (Request::shutdown(1), "01015108"),
        (Request::startup(1), "0102CA3A"),
        (Request::bill_acceptor(1, true), "0106EE7C"),
        (Request::bill_acceptor(1, false), "0107676D"),
        (Request::real_time_events(1, true), "010E0145D1"),
        (Request::real_time_events(1, false), "010E00CCC0"),
        (Request::rom_signature(1, 0), "012100005C45"),
        (Request::enable_game(1, 1, true).unwrap(), "010900010176FA"),
        (Request::enable_game(1, 1, false).unwrap(), "0109000100FFEB"),
        (Request::rom_signature(1, 0x1234), "01211234DA94"),
        (
            Request::selected_meters(1, 0, &[0x00, 0x01, 0x0C]).unwrap(),
            "012F05000000010CFB3C",
        ),
        (
            Request::selected_meters(1, 0, &[0x0C]).unwrap(),
            "012F0300000CE7E1",
        ),
        (
            Request::legacy_bonus(1, 1000, 0).unwrap(),
            "018A0000100000EC36",
        ),
        (Request::handpay_reset(1), "019475CB"),
        (Request::aft_interrogate(1), "017202FF000F22"),
        (
            Request::aft_lock_status(1, 0xFF, 0, 0).unwrap(),
            "0174FF0000001AF9",
        ),
    ];
    for (request, want) in cases {
        let got = hex::encode_upper(request.encode().unwrap().bytes);
        assert_eq!(got, want, "{request:?}");
    }
}

fn expectation_for(what: &str, bytes: &[u8]) -> Expectation {
    let address = 1;
    if what.starts_with("GP answer") || what.starts_with("21 ROM") {
        return Expectation::GeneralPoll {
            address,
            real_time: false,
        };
    }
    if what.starts_with("ACK") || what.starts_with("NACK") || what.starts_with("BUSY") {
        return Expectation::Ack {
            address,
            command: 0x01,
        };
    }
    if what.starts_with("RTE") {
        return Expectation::Data {
            address,
            command: 0x1A,
            length: ReplyLength::Fixed(8),
        };
    }
    Expectation::for_request(&Request::long(address, bytes[1]), false).unwrap()
}

#[test]
fn every_egm_frame_is_classified_and_re_encodes_byte_for_byte() {
    for (what, bytes) in vectors("egm_to_host") {
        let mut decoder = ReplyDecoder::new(expectation_for(&what, &bytes));
        decoder.feed(&bytes);
        let reply = decoder.finish().unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(reply.encode(1), bytes, "{what}: {reply:?}");
        match what.as_str() {
            w if w.starts_with("RTE event 51") => assert_eq!(
                reply,
                Reply::RealTimeEvent {
                    code: 0x51,
                    data: vec![]
                }
            ),
            w if w.starts_with("21 ROM") => assert_eq!(reply, Reply::RomSignature(0xABCD)),
            w if w.starts_with("ACK") => assert_eq!(reply, Reply::Ack),
            w if w.starts_with("NACK") => assert_eq!(reply, Reply::Nack),
            w if w.starts_with("BUSY") => assert_eq!(reply, Reply::Busy),
            _ => {}
        }
    }
}
