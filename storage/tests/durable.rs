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

/// A snapshot write cut short (a full disk, a power cut) leaves `snap.<lsn>.generating`; sled
/// reads it at open as if it were finished and refuses to open. Seen in CI: an edge whose disk
/// filled up could not open its outbox again after the space came back.
#[test]
fn a_snapshot_sled_began_and_never_finished_does_not_stop_the_database_opening() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("outbox");
    {
        let db = DurableDb::open(&path).unwrap();
        for seq in 1..=500 {
            db.db().insert(seq_key(b'e', seq), &b"money"[..]).unwrap();
        }
        db.commit().unwrap();
    }
    // What a snapshot write that met ENOSPC leaves, named to sort after every finished one.
    std::fs::write(path.join("snap.7FFFFFFFFFFFFFFF.generating"), b"").unwrap();
    let raw = sled::Config::new()
        .path(&path)
        .segment_size(outpost_storage::SEGMENT_BYTES)
        .open();
    assert!(
        raw.is_err(),
        "sled itself refuses such a database (if it opens now, sled was fixed)"
    );
    drop(raw);
    let db = DurableDb::open(&path).unwrap();
    for seq in [1, 250, 500] {
        assert_eq!(
            db.db().get(seq_key(b'e', seq)).unwrap().unwrap(),
            &b"money"[..]
        );
    }
    assert!(!path.join("snap.7FFFFFFFFFFFFFFF.generating").exists());
}
