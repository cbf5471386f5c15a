//! Durable sled: what is committed is there after reopening.

#![allow(clippy::unwrap_used)] // In tests a panic is a failed test with its message.

use outpost_storage::{DurableDb, key_seq, seq_key};

#[test]
fn committed_writes_survive_reopening() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("outbox");
    {
        let db = DurableDb::open(&path).unwrap();
        db.db().insert(seq_key(b'e', 1), &b"hello"[..]).unwrap();
        db.commit().unwrap();
    }
    let db = DurableDb::open(&path).unwrap();
    assert_eq!(
        db.db().get(seq_key(b'e', 1)).unwrap().unwrap(),
        &b"hello"[..]
    );
    assert!(db.disk_bytes() > 0);
}

#[test]
fn sequence_keys_sort_numerically() {
    assert!(seq_key(b'e', 255) < seq_key(b'e', 256));
    assert_eq!(key_seq(&seq_key(b'e', 1 << 40)), Some(1 << 40));
    assert_eq!(key_seq(b"short"), None);
}

#[test]
fn a_database_locked_by_a_live_handle_is_an_error_not_a_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let _first = DurableDb::open(tmp.path()).unwrap();
    let second = DurableDb::open(tmp.path());
    assert!(second.is_err());
}
