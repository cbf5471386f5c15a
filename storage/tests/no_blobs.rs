//! The bound that keeps every sled page in its log (see the crate docs): the worst workloads with
//! the largest entries the store accepts never make a blob file, and entries a little over the
//! bound do — so the detector works and the bound is where the docs say it is. sled removes a
//! blob file once its page is rewritten, so the directory is looked at after every write.
//!
//! Measured with a scratch probe of the same workloads (3,000 writes, 128-byte keys): values of
//! 7,000 bytes never made a blob, 7,800 did in random order (17 entries of 7.9 KB are over the
//! 131,020-byte threshold), 16 KiB made 665 in order. The limit is 6,144.

#![allow(clippy::unwrap_used)] // In tests a panic is a failed test with its message.

use outpost_storage::{Batch, DurableDb, MAX_KEY_BYTES, MAX_VALUE_BYTES, StorageError};
use rand::{Rng, SeedableRng};

/// A key of the longest length whose order is `n`'s.
fn key(n: u64) -> Vec<u8> {
    let mut key = vec![b'k'; MAX_KEY_BYTES];
    key[MAX_KEY_BYTES - 8..].copy_from_slice(&n.to_be_bytes());
    key
}

fn value(n: u64, len: usize) -> Vec<u8> {
    (0..len).map(|i| (n as usize + i) as u8).collect()
}

fn insert_all(db: &DurableDb, keys: impl IntoIterator<Item = u64>, len: usize) {
    for n in keys {
        db.insert(db.db(), key(n), value(n, len)).unwrap();
        assert_no_blobs(db, "an insert");
    }
    db.commit().unwrap();
}

fn assert_no_blobs(db: &DurableDb, after: &str) {
    assert_eq!(db.blob_files(), 0, "no page left sled's log after {after}");
}

#[test]
fn the_largest_entries_in_order_never_leave_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let db = DurableDb::open(&dir.path().join("db")).unwrap();
    for round in 0..20u64 {
        insert_all(&db, round * 100..(round + 1) * 100, MAX_VALUE_BYTES);
    }
    assert_no_blobs(&db, "2,000 appends");
}

#[test]
fn the_largest_entries_in_random_order_and_overwritten_never_leave_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let db = DurableDb::open(&dir.path().join("db")).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for _ in 0..20 {
        let keys: Vec<u64> = (0..100).map(|_| rng.random_range(0..600)).collect();
        insert_all(&db, keys, MAX_VALUE_BYTES);
    }
    assert_no_blobs(&db, "2,000 random inserts and overwrites");
}

#[test]
fn a_queue_of_the_largest_entries_trimmed_from_the_front_never_leaves_the_log() {
    // The outbox's pattern: append at the back, remove acknowledged entries at the front, so
    // leaves empty, merge into their neighbours and split again.
    let dir = tempfile::tempdir().unwrap();
    let db = DurableDb::open(&dir.path().join("db")).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let (mut head, mut tail) = (0u64, 0u64);
    for _ in 0..150 {
        let appended = rng.random_range(1..40);
        insert_all(&db, tail..tail + appended, MAX_VALUE_BYTES);
        tail += appended;
        let trimmed = rng.random_range(0..=(tail - head).min(45));
        let mut batch = Batch::default();
        for n in head..head + trimmed {
            batch.remove(key(n));
        }
        db.apply(batch).unwrap();
        db.commit().unwrap();
        assert_no_blobs(&db, "a trim");
        head += trimmed;
    }
    assert_no_blobs(&db, "a queue through which thousands of entries passed");
}

#[test]
fn random_deletes_between_the_largest_entries_never_leave_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let db = DurableDb::open(&dir.path().join("db")).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(13);
    insert_all(&db, 0..1500, MAX_VALUE_BYTES);
    for _ in 0..10 {
        let mut batch = Batch::default();
        for _ in 0..100 {
            batch.remove(key(rng.random_range(0..1500)));
        }
        db.apply(batch).unwrap();
        let refill: Vec<u64> = (0..60).map(|_| rng.random_range(0..1500)).collect();
        insert_all(&db, refill, MAX_VALUE_BYTES);
    }
    assert_no_blobs(&db, "deletes and refills");
}

#[test]
fn two_writers_racing_into_one_range_never_leave_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let db = std::sync::Arc::new(DurableDb::open(&dir.path().join("db")).unwrap());
    let writers: Vec<_> = (0..2u64)
        .map(|w| {
            let db = db.clone();
            std::thread::spawn(move || {
                for n in 0..800u64 {
                    let k = n * 2 + w;
                    db.insert(db.db(), key(k), value(k, MAX_VALUE_BYTES))
                        .unwrap();
                    assert_no_blobs(&db, "a racing insert");
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    db.commit().unwrap();
    assert_no_blobs(&db, "two racing writers");
}

#[test]
fn entries_a_little_over_the_bound_do_leave_the_log() {
    // The control: written straight into sled, past our checks. If this ever stops making blobs,
    // sled's threshold moved and the bound in the crate docs must be worked out again.
    let dir = tempfile::tempdir().unwrap();
    let db = DurableDb::open(&dir.path().join("db")).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut most = 0;
    for _ in 0..20 {
        for _ in 0..100 {
            let n = rng.random_range(0..600);
            db.db().insert(key(n), value(n, 8 * 1024)).unwrap();
            most = most.max(db.blob_files());
        }
        db.commit().unwrap();
    }
    assert!(
        most > 0,
        "a page of 17 entries of 8 KiB is over the blob threshold"
    );
}

#[test]
fn entries_over_the_limits_are_refused_before_they_reach_sled() {
    let dir = tempfile::tempdir().unwrap();
    let db = DurableDb::open(&dir.path().join("db")).unwrap();
    let mut batch = Batch::default();
    let refused = batch.insert(b"k", vec![0u8; MAX_VALUE_BYTES + 1]);
    assert!(matches!(
        refused,
        Err(StorageError::EntryTooLarge {
            key_bytes: 1,
            value_bytes
        }) if value_bytes == MAX_VALUE_BYTES + 1
    ));
    let refused = db.insert(db.db(), vec![b'k'; MAX_KEY_BYTES + 1], b"v");
    assert!(matches!(refused, Err(StorageError::EntryTooLarge { .. })));
    assert!(db.db().is_empty(), "nothing was written");
    batch.insert(b"k", vec![0u8; MAX_VALUE_BYTES]).unwrap();
    db.apply(batch).unwrap();
    assert_eq!(db.db().len(), 1, "an entry at the limit is stored");
}
