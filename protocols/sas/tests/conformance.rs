//! The malformed and edge cases of reference §4.3 that the codec decides (the host state machine's
//! cases come with it), plus property tests: round trips, CRC residue, chunked feeding.

#![allow(clippy::unwrap_used)] // In tests a panic is a failed test with its message.

use outpost_sas::meters::{MeterError, selected_meters};
use outpost_sas::reply::ReplyLength;
use outpost_sas::{
    Bcd, BcdError, Expectation, MeterDelta, Reply, ReplyDecoder, ReplyError, Request, crc16_kermit,
};
use proptest::prelude::*;

fn decode(expectation: Expectation, bytes: &[u8]) -> Result<Reply, ReplyError> {
    let mut decoder = ReplyDecoder::new(expectation);
    decoder.feed(bytes);
    decoder.finish()
}

fn credits() -> Expectation {
    Expectation::Data {
        address: 1,
        command: 0x1A,
        length: ReplyLength::Fixed(8),
    }
}

fn meters_2f() -> Expectation {
    Expectation::Data {
        address: 1,
        command: 0x2F,
        length: ReplyLength::Variable { max: 0x3E },
    }
}

const CREDITS: [u8; 8] = [0x01, 0x1A, 0x00, 0x00, 0x12, 0x34, 0x45, 0x2D];

#[test]
fn a_flipped_bit_anywhere_is_a_crc_error() {
    for byte in 2..CREDITS.len() {
        for bit in 0..8 {
            let mut bad = CREDITS;
            bad[byte] ^= 1 << bit;
            assert_eq!(
                decode(credits(), &bad),
                Err(ReplyError::BadCrc { len: 8 }),
                "byte {byte} bit {bit}"
            );
        }
    }
}

#[test]
fn a_frame_that_stops_midway_is_truncated() {
    assert_eq!(
        decode(credits(), &CREDITS[..5]),
        Err(ReplyError::Truncated {
            expected: 8,
            got: 5
        })
    );
}

#[test]
fn bytes_after_a_complete_reply_are_reported() {
    let mut long = CREDITS.to_vec();
    long.extend_from_slice(&[0x00, 0x07]);
    assert_eq!(decode(credits(), &long), Err(ReplyError::TrailingBytes(2)));
}

#[test]
fn a_reply_from_another_address_is_skipped_then_nothing_is_left() {
    let other = [0x02, 0x1A, 0x00, 0x00, 0x12, 0x34, 0x00, 0x00];
    assert!(matches!(
        decode(credits(), &other),
        Err(ReplyError::NoReply { skipped: 8 })
    ));
}

#[test]
fn a_wrong_command_echo_is_an_error() {
    let wrong = [0x01, 0x1B, 0x00];
    assert_eq!(
        decode(credits(), &wrong),
        Err(ReplyError::WrongCommand {
            expected: 0x1A,
            got: 0x1B
        })
    );
}

#[test]
fn nack_and_busy_are_recognised() {
    assert_eq!(decode(credits(), &[0x81]), Ok(Reply::Nack));
    assert_eq!(decode(credits(), &[0x01, 0x00]), Ok(Reply::Busy));
}

#[test]
fn a_real_time_event_can_answer_a_long_poll() {
    assert_eq!(
        decode(credits(), &[0x01, 0xFF, 0x51, 0x10, 0xE6]),
        Ok(Reply::RealTimeEvent {
            code: 0x51,
            data: vec![]
        })
    );
}

#[test]
fn a_rom_signature_can_answer_a_general_poll() {
    let gp = Expectation::GeneralPoll {
        address: 1,
        real_time: false,
    };
    assert_eq!(
        decode(gp, &[0x01, 0x21, 0xAB, 0xCD, 0xE2, 0x13]),
        Ok(Reply::RomSignature(0xABCD))
    );
}

#[test]
fn garbage_before_the_frame_is_skipped_by_resyncing_on_the_address() {
    let mut noisy = vec![0x1A, 0x55];
    noisy.extend_from_slice(&CREDITS);
    assert_eq!(
        decode(credits(), &noisy),
        Ok(Reply::Data {
            command: 0x1A,
            payload: vec![0, 0, 0x12, 0x34]
        })
    );
}

#[test]
fn a_length_byte_over_the_maximum_is_refused() {
    assert_eq!(
        decode(meters_2f(), &[0x01, 0x2F, 0xFF]),
        Err(ReplyError::LengthTooLarge {
            command: 0x2F,
            declared: 0xFF,
            max: 0x3E
        })
    );
}

#[test]
fn meters_2f_read_4_and_5_byte_values_and_refuse_bad_bcd_and_unrequested_codes() {
    let payload = [
        0x0D, 0x00, 0x00, 0x0D, 0x00, 0x00, 0x01, 0x23, 0x45, 0x00, 0x00, 0x00, 0x00, 0x99,
    ];
    let read = selected_meters(&payload, &[0x0D, 0x00]).unwrap();
    assert_eq!(read.game, 0);
    assert_eq!(
        read.meters[0],
        (
            0x0D,
            Bcd {
                value: 12_345,
                bytes: 5
            }
        )
    );
    assert_eq!(
        read.meters[1],
        (
            0x00,
            Bcd {
                value: 99,
                bytes: 4
            }
        )
    );
    assert_eq!(
        selected_meters(&payload, &[0x0D]),
        Err(MeterError::Unrequested(0x00))
    );
    let mut bad = payload;
    bad[13] = 0x9A;
    assert!(matches!(
        selected_meters(&bad, &[0x0D, 0x00]),
        Err(MeterError::Bcd {
            code: 0x00,
            source: BcdError::InvalidNibble { .. }
        })
    ));
}

#[test]
fn a_general_poll_answer_equal_to_the_address_waits_for_silence() {
    // EGM 0x11: "11" alone is exception 11 (door opened); "11 21 …" would be a ROM signature.
    let gp = Expectation::GeneralPoll {
        address: 0x11,
        real_time: false,
    };
    let mut decoder = ReplyDecoder::new(gp);
    assert_eq!(decoder.feed(&[0x11]), None);
    assert_eq!(decoder.finish(), Ok(Reply::Exception(0x11)));
}

#[test]
fn silence_after_a_general_poll_means_no_activity_only_in_real_time_mode() {
    let rte = Expectation::GeneralPoll {
        address: 1,
        real_time: true,
    };
    assert_eq!(ReplyDecoder::new(rte).finish(), Ok(Reply::Exception(0)));
    let plain = Expectation::GeneralPoll {
        address: 1,
        real_time: false,
    };
    assert!(matches!(
        ReplyDecoder::new(plain).finish(),
        Err(ReplyError::NoReply { .. })
    ));
}

#[test]
fn requests_with_a_bad_address_or_length_are_refused() {
    assert!(Request::long(128, 0x1A).encode().is_err());
    assert!(
        Request::LongPoll {
            address: 1,
            command: 0x01,
            data: vec![9]
        }
        .encode()
        .is_err()
    );
    assert!(Request::long(1, 0xEE).encode().is_err());
    assert!(
        Request::decode(&[0x01, 0x01, 0x51, 0x09]).is_err(),
        "bad CRC"
    );
}

#[test]
fn meter_deltas_see_rollover_and_resets() {
    let m = |value| Bcd { value, bytes: 4 };
    assert_eq!(
        MeterDelta::between(m(100), m(150)),
        MeterDelta::Increase {
            by: 50,
            rolled_over: false
        }
    );
    assert_eq!(
        MeterDelta::between(m(99_999_990), m(5)),
        MeterDelta::Increase {
            by: 15,
            rolled_over: true
        }
    );
    assert_eq!(
        MeterDelta::between(m(5_000), m(10)),
        MeterDelta::Reset {
            from: 5_000,
            to: 10
        }
    );
}

proptest! {
    #[test]
    fn bcd_round_trips_and_rejects_hex_nibbles(value in 0u64..100_000_000, bad in 0x0Au8..=0x0F) {
        let bytes = Bcd::encode(value, 4).unwrap();
        prop_assert_eq!(Bcd::decode(&bytes).unwrap().value, value);
        let mut broken = bytes.clone();
        broken[3] = (broken[3] & 0xF0) | bad;
        prop_assert!(Bcd::decode(&broken).is_err());
    }

    #[test]
    fn every_encoded_request_with_a_crc_has_residue_zero(game in 0u16..10_000, codes in prop::collection::vec(any::<u8>(), 1..=10)) {
        let frame = Request::selected_meters(1, game, &codes).unwrap().encode().unwrap();
        prop_assert_eq!(crc16_kermit(&frame.bytes), 0);
        prop_assert_eq!(Request::decode(&frame.bytes).unwrap().encode().unwrap(), frame);
    }

    #[test]
    fn data_replies_round_trip_through_any_chunking(payload in prop::collection::vec(any::<u8>(), 0..0x3E), chunk in 1usize..8) {
        let mut body = vec![payload.len() as u8];
        body.extend_from_slice(&payload);
        let reply = Reply::Data { command: 0x2F, payload: body };
        let bytes = reply.encode(1);
        prop_assert_eq!(crc16_kermit(&bytes), 0);
        let mut decoder = ReplyDecoder::new(meters_2f());
        for piece in bytes.chunks(chunk) {
            decoder.feed(piece);
        }
        prop_assert_eq!(decoder.finish(), Ok(reply));
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_decoders(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        for expectation in [credits(), meters_2f(), Expectation::GeneralPoll { address: 1, real_time: true }, Expectation::Ack { address: 1, command: 1 }] {
            let mut decoder = ReplyDecoder::new(expectation);
            decoder.feed(&bytes);
            let _ = decoder.finish();
        }
        let _ = Request::decode(&bytes);
        let _ = selected_meters(&bytes, &bytes);
    }
}
