//! The ADB codec: messages and sync packets round-trip through any chunking, bad headers are
//! refused, and the Android public-key format carries a key that verifies its signatures.

use outpost_adb::auth::{
    android_public_key, generate_key, key_from_pem, key_to_pem, parse_android_public_key,
    sign_token, verify_token,
};
use outpost_adb::message::{MAX_PAYLOAD, checksum};
use outpost_adb::{
    Banner, Command, DecodeError, Decoder, Message, Side, SyncDecoder, SyncError, SyncPacket,
};
use proptest::prelude::*;

fn command() -> impl Strategy<Value = Command> {
    prop_oneof![
        Just(Command::Cnxn),
        Just(Command::Auth),
        Just(Command::Open),
        Just(Command::Okay),
        Just(Command::Clse),
        Just(Command::Wrte),
    ]
}

proptest! {
    #[test]
    fn messages_round_trip_through_any_chunking(
        messages in proptest::collection::vec((command(), any::<u32>(), any::<u32>(), proptest::collection::vec(any::<u8>(), 0..600)), 1..6),
        cut in 1usize..50,
    ) {
        let messages: Vec<Message> = messages.into_iter().map(|(c, a, b, p)| Message::new(c, a, b, p)).collect();
        let bytes: Vec<u8> = messages.iter().flat_map(Message::encode).collect();
        let mut decoder = Decoder::new(MAX_PAYLOAD);
        let mut out = Vec::new();
        for chunk in bytes.chunks(cut) {
            decoder.push(chunk);
            while let Some(m) = decoder.next_message().expect("valid stream") {
                out.push(m);
            }
        }
        prop_assert_eq!(out, messages);
        prop_assert_eq!(decoder.pending(), 0);
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_decoders(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let mut decoder = Decoder::new(MAX_PAYLOAD);
        decoder.push(&bytes);
        while let Ok(Some(_)) = decoder.next_message() {}
        for side in [Side::Device, Side::Host] {
            let mut sync = SyncDecoder::new(side);
            sync.push(&bytes);
            while let Ok(Some(_)) = sync.next_packet() {}
        }
    }

    #[test]
    fn sync_packets_round_trip_through_any_chunking(data in proptest::collection::vec(any::<u8>(), 0..3000), cut in 1usize..40) {
        let packets = vec![
            SyncPacket::Send("/sdcard/Movies/ad.mp4,33188".into()),
            SyncPacket::Data(data),
            SyncPacket::Done(1_700_000_000),
            SyncPacket::Quit,
        ];
        let bytes: Vec<u8> = packets.iter().flat_map(SyncPacket::encode).collect();
        let mut decoder = SyncDecoder::new(Side::Device);
        let mut out = Vec::new();
        for chunk in bytes.chunks(cut) {
            decoder.push(chunk);
            while let Some(p) = decoder.next_packet().expect("valid stream") {
                out.push(p);
            }
        }
        prop_assert_eq!(out, packets);
    }
}

#[test]
fn a_header_with_the_wrong_magic_is_refused() {
    let mut bytes = Message::new(Command::Okay, 1, 2, vec![]).encode();
    bytes[20] ^= 1;
    let mut decoder = Decoder::new(MAX_PAYLOAD);
    decoder.push(&bytes);
    assert!(matches!(
        decoder.next_message(),
        Err(DecodeError::BadMagic { .. })
    ));
}

#[test]
fn a_payload_over_the_limit_is_refused_before_it_is_buffered() {
    let bytes = Message::new(Command::Wrte, 1, 2, vec![0u8; 100]).encode();
    let mut decoder = Decoder::new(64);
    decoder.push(&bytes[..24]);
    assert!(matches!(
        decoder.next_message(),
        Err(DecodeError::TooLong { length: 100, .. })
    ));
}

#[test]
fn a_wrong_checksum_is_refused_and_a_zero_checksum_is_not_checked() {
    let mut bytes = Message::new(Command::Wrte, 1, 2, b"hello".to_vec()).encode();
    assert_eq!(checksum(b"hello"), 532);
    bytes[16] ^= 1;
    let mut decoder = Decoder::new(MAX_PAYLOAD);
    decoder.push(&bytes);
    assert!(matches!(
        decoder.next_message(),
        Err(DecodeError::BadChecksum { .. })
    ));
    bytes[16..20].copy_from_slice(&[0, 0, 0, 0]);
    let mut decoder = Decoder::new(MAX_PAYLOAD);
    decoder.push(&bytes);
    assert!(
        decoder
            .next_message()
            .expect("no checksum to check")
            .is_some()
    );
}

#[test]
fn an_unknown_sync_id_and_an_oversized_chunk_are_refused() {
    let mut decoder = SyncDecoder::new(Side::Device);
    decoder.push(b"LIST\x00\x00\x00\x00");
    assert!(decoder.next_packet().is_err());
    let mut decoder = SyncDecoder::new(Side::Device);
    decoder.push(b"DATA\x00\x00\x02\x00");
    assert!(decoder.next_packet().is_err());
}

#[test]
fn the_stat_reply_is_read_by_the_host_side() {
    let reply = SyncPacket::StatReply {
        mode: 0o100644,
        size: 1234,
        mtime: 99,
    };
    let mut decoder = SyncDecoder::new(Side::Host);
    decoder.push(&reply.encode());
    assert_eq!(decoder.next_packet().expect("valid"), Some(reply));
}

#[test]
fn a_banner_gives_its_properties_and_features() {
    let banner = Banner::parse(
        b"device::ro.product.name=tv;ro.product.model=Metro TV;features=cmd,stat_v2\0",
    );
    assert_eq!(banner.system_type, "device");
    assert_eq!(banner.get("ro.product.model"), Some("Metro TV"));
    assert_eq!(banner.features(), vec!["cmd", "stat_v2"]);
}

#[test]
fn a_token_signature_verifies_with_the_key_sent_in_android_format_and_not_with_another() {
    let key = generate_key().expect("key");
    let token = [7u8; 20];
    let signature = sign_token(&key, &token).expect("signs");
    let blob = android_public_key(&key.to_public_key(), "edge@site").expect("encodes");
    let mut wire = blob.into_bytes();
    wire.push(0);
    let (public, name) = parse_android_public_key(&wire).expect("parses");
    assert_eq!(name, "edge@site");
    assert!(verify_token(&public, &token, &signature));
    assert!(!verify_token(&public, &[8u8; 20], &signature));
    let pem = key_to_pem(&key).expect("pem");
    assert_eq!(key_from_pem(&pem).expect("reads back"), key);
}

#[test]
fn a_malformed_public_key_blob_is_an_error() {
    assert!(parse_android_public_key(b"not base64 !!!").is_err());
    assert!(parse_android_public_key(b"QUFBQQ== name\0").is_err());
}

#[test]
fn a_sync_path_that_is_not_utf8_is_refused_not_changed() {
    let mut packet = b"SEND".to_vec();
    packet.extend_from_slice(&5u32.to_le_bytes());
    packet.extend_from_slice(b"/a\xff\xfeb");
    let mut device = SyncDecoder::new(Side::Device);
    device.push(&packet);
    assert_eq!(
        device.next_packet(),
        Err(SyncError::NotUtf8 { what: "SEND path" })
    );
}

#[test]
fn a_device_message_that_is_not_utf8_is_kept_readable_within_its_limit() {
    let mut packet = b"FAIL".to_vec();
    packet.extend_from_slice(&1024u32.to_le_bytes());
    packet.extend_from_slice(&[0xFF; 1024]);
    let mut host = SyncDecoder::new(Side::Host);
    host.push(&packet);
    let Ok(Some(SyncPacket::Fail(text))) = host.next_packet() else {
        panic!("not read");
    };
    assert!(text.len() <= 1024 && text.starts_with('\u{FFFD}'));
    let mut again = SyncDecoder::new(Side::Host);
    again.push(&SyncPacket::Fail(text.clone()).encode());
    assert_eq!(again.next_packet(), Ok(Some(SyncPacket::Fail(text))));
}
