//! The power-loss disk itself, mounted for real: it forgets exactly what was not synced, so a
//! program that acknowledges after `write()` loses acknowledged records on it and one that
//! acknowledges after `fdatasync` loses none; a sled store synced before its acknowledgements
//! opens after every cut with all of them.
//!
//! Needs root and `/dev/fuse` (CI runs as root); skipped with a message otherwise.

#![allow(clippy::unwrap_used)] // In tests a panic is a failed test with its message.

use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;

use chaos_tests::power_loss_fs::PowerLossDisk;

fn disk(dir: &Path, capacity: u64) -> Option<PowerLossDisk> {
    if !nix::unistd::Uid::effective().is_root() || !Path::new("/dev/fuse").exists() {
        println!("skipped: the power-loss disk needs root and /dev/fuse");
        return None;
    }
    let mount = dir.join("disk");
    std::fs::create_dir_all(&mount).unwrap();
    Some(PowerLossDisk::mount(&mount, capacity).unwrap())
}

#[test]
fn a_cut_forgets_what_was_not_synced_and_keeps_what_was() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(mut disk) = disk(tmp.path(), 64 << 20) else {
        return;
    };
    let root = disk.mount_point().to_owned();
    std::fs::create_dir(root.join("db")).unwrap();

    let mut synced = std::fs::File::create(root.join("db/synced")).unwrap();
    synced.write_all(b"durable").unwrap();
    synced.sync_data().unwrap();
    synced.write_all(b" and then some").unwrap();
    drop(synced);

    std::fs::write(root.join("db/never-synced"), b"gone").unwrap();

    // Write, rename over, no sync: the classic lost update.
    std::fs::write(root.join("db/conf.tmp"), b"new config").unwrap();
    std::fs::rename(root.join("db/conf.tmp"), root.join("db/conf")).unwrap();

    assert_eq!(
        std::fs::read(root.join("db/synced")).unwrap(),
        b"durable and then some"
    );
    disk.cut().unwrap();

    assert_eq!(std::fs::read(root.join("db/synced")).unwrap(), b"durable");
    assert_eq!(std::fs::read(root.join("db/never-synced")).unwrap(), b"");
    assert_eq!(std::fs::read(root.join("db/conf")).unwrap(), b"");
    assert!(!root.join("db/conf.tmp").exists());
    let counters = disk.counters();
    assert_eq!(counters.cuts, 1);
    assert!(counters.bytes_forgotten > 0, "{counters:?}");
}

/// Appends 8-byte records, acknowledging each after `write()` or after `fdatasync`, and cuts
/// the power at once: returns how many acknowledged records the disk lost.
fn acknowledged_then_lost(disk: &mut PowerLossDisk, sync_before_ack: bool) -> u64 {
    let path = disk.mount_point().join(format!("log-{sync_before_ack}"));
    let file = std::fs::File::create(&path).unwrap();
    let mut acknowledged = 0u64;
    for record in 0..200u64 {
        file.write_all_at(&record.to_le_bytes(), record * 8)
            .unwrap();
        if sync_before_ack {
            file.sync_data().unwrap();
        }
        acknowledged += 1;
    }
    drop(file);
    disk.cut().unwrap();
    let kept = std::fs::read(&path).unwrap().len() as u64 / 8;
    acknowledged - kept
}

#[test]
fn a_program_that_acknowledges_before_fdatasync_loses_records_and_one_after_loses_none() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(mut disk) = disk(tmp.path(), 64 << 20) else {
        return;
    };
    assert_eq!(acknowledged_then_lost(&mut disk, false), 200);
    assert_eq!(acknowledged_then_lost(&mut disk, true), 0);
}

#[test]
fn a_full_disk_refuses_the_write_and_says_so_in_statfs() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(disk) = disk(tmp.path(), 1 << 20) else {
        return;
    };
    let path = disk.mount_point().join("big");
    let mut file = std::fs::File::create(&path).unwrap();
    let mut written = 0usize;
    let error = loop {
        match file.write_all(&[1u8; 64 << 10]) {
            Ok(()) => written += 64 << 10,
            Err(e) => break e,
        }
        assert!(written <= 2 << 20, "a 1 MiB disk took {written} bytes");
    };
    assert_eq!(error.raw_os_error(), Some(nix::libc::ENOSPC), "{error}");
    assert!(written >= 900 << 10, "only {written} bytes fitted");
    drop(file);
    let stat = nix::sys::statvfs::statvfs(disk.mount_point()).unwrap();
    assert!(
        stat.blocks_available() * stat.fragment_size() < 64 << 10,
        "almost nothing left: {} blocks of {}",
        stat.blocks_available(),
        stat.fragment_size()
    );
    std::fs::remove_file(&path).unwrap();
    let stat = nix::sys::statvfs::statvfs(disk.mount_point()).unwrap();
    assert!(stat.blocks_available() * stat.fragment_size() > 900 << 10);
}

#[test]
fn a_durable_store_opens_after_every_cut_with_everything_it_flushed() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(mut disk) = disk(tmp.path(), 256 << 20) else {
        return;
    };
    let path = disk.mount_point().join("store");
    let mut flushed = 0u64;
    for cut in 0..5u64 {
        let db = outpost_storage::DurableDb::open(&path).unwrap();
        let tree = db.db().open_tree("records").unwrap();
        for i in 0..100u64 {
            let key = (cut * 1_000 + i).to_be_bytes();
            db.insert(&tree, key, [7u8; 100]).unwrap();
            if i % 10 == 9 {
                db.commit().unwrap();
                flushed = cut * 1_000 + i;
            }
        }
        // Written after the last commit: may be lost.
        db.insert(&tree, (cut * 1_000 + 500).to_be_bytes(), [1u8])
            .unwrap();
        drop(tree);
        // The power goes: no orderly close (sled's threads are stopped by the drop, which
        // writes nothing a commit did not).
        drop(db);
        disk.cut().unwrap();
        let db = outpost_storage::DurableDb::open(&path).unwrap();
        let tree = db.db().open_tree("records").unwrap();
        for done in 0..=cut {
            for i in 0..100u64 {
                let key = done * 1_000 + i;
                if key <= flushed {
                    assert!(
                        tree.get(key.to_be_bytes()).unwrap().is_some(),
                        "cut {cut}: record {key} kept"
                    );
                }
            }
        }
    }
    assert_eq!(disk.counters().cuts, 5);
}
