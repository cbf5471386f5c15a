//! The chunk format: what a store writes is what it reads back, old chunks stay readable, and
//! bytes that are not a chunk are an error, never a panic.

#![allow(clippy::unwrap_used)] // In tests a panic is a failed test with its message.

use outpost_storage::chunk::{self, ChunkBuilder, ChunkError, ITEM_VERSION};
use proptest::prelude::*;

#[test]
fn items_come_back_in_order_with_their_sizes_and_the_first_alone() {
    let mut builder = ChunkBuilder::new(1024);
    let a = builder.push(7, &("seven".to_owned(), 7u64)).unwrap();
    let b = builder.push(8, &("eight".to_owned(), 8u64)).unwrap();
    assert_eq!(builder.first(), 7);
    let value = builder.take();
    assert!(builder.is_empty());
    assert_eq!(chunk::last_seq(&value), Some(8));
    let items = chunk::decode::<(String, u64)>(&value).unwrap();
    assert_eq!(
        items,
        vec![(("seven".into(), 7), a), (("eight".into(), 8), b)]
    );
    assert_eq!(
        chunk::first::<(String, u64)>(&value).unwrap(),
        Some(("seven".into(), 7))
    );
}

#[test]
fn a_chunk_never_grows_past_its_limit() {
    let mut builder = ChunkBuilder::new(64);
    builder.push(1, &vec![0u8; 20]).unwrap();
    let err = builder.push(2, &vec![0u8; 40]).unwrap_err();
    assert!(matches!(err, ChunkError::TooLarge { .. }), "{err}");
    assert!(8 + builder.len() <= 64);
    assert_eq!(chunk::decode::<Vec<u8>>(&builder.take()).unwrap().len(), 1);
}

#[test]
fn the_stored_layout_is_the_one_written_since_the_first_release() {
    // [last seq u64 BE][u32 BE length][version 1][bincode, big-endian standard config]
    let mut value = 5u64.to_be_bytes().to_vec();
    value.extend_from_slice(&[0, 0, 0, 3, 1, 2, 0x2a]);
    assert_eq!(ITEM_VERSION, 1);
    let items = chunk::decode::<(u8, u8)>(&value).unwrap();
    assert_eq!(items, vec![((2, 42), 7)]);
}

#[test]
fn damaged_chunks_are_errors() {
    let mut builder = ChunkBuilder::new(1024);
    builder.push(1, &42u64).unwrap();
    let value = builder.take();
    assert!(matches!(
        chunk::decode::<u64>(&value[..value.len() - 1]),
        Err(ChunkError::Truncated(_))
    ));
    let mut other = value.clone();
    other[12] = 9;
    assert!(matches!(
        chunk::decode::<u64>(&other),
        Err(ChunkError::UnsupportedVersion(9))
    ));
    assert!(matches!(
        chunk::decode::<u64>(&[1, 2]),
        Err(ChunkError::Truncated(2))
    ));
}

proptest! {
    #[test]
    fn any_bytes_decode_or_fail_without_panicking(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = chunk::decode::<Vec<String>>(&bytes);
        let _ = chunk::first::<(u64, String)>(&bytes);
    }

    #[test]
    fn what_is_pushed_is_what_is_decoded(items in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..50), 1..30)) {
        let mut builder = ChunkBuilder::new(1 << 20);
        for (seq, item) in items.iter().enumerate() {
            builder.push(seq as u64 + 1, item).unwrap();
        }
        let decoded: Vec<Vec<u8>> = chunk::decode(&builder.take()).unwrap().into_iter().map(|(i, _)| i).collect();
        prop_assert_eq!(decoded, items);
    }
}

#[test]
fn a_hostile_length_claim_is_refused_before_anything_is_allocated() {
    // The fuzzer's find (64 bytes that exhausted memory): an item whose string claims 1 GiB.
    // The decoder refuses the claim against its limit instead of allocating it and then finding
    // the bytes are not there.
    let mut value = 1u64.to_be_bytes().to_vec();
    let body = [ITEM_VERSION, 0xFC, 0x40, 0x00, 0x00, 0x00];
    value.extend_from_slice(&(body.len() as u32).to_be_bytes());
    value.extend_from_slice(&body);
    match chunk::decode::<String>(&value) {
        Err(ChunkError::Malformed(reason)) => assert!(reason.contains("Limit"), "{reason}"),
        other => panic!("{other:?}"),
    }
}
