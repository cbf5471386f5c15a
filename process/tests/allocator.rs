//! The allocator gives freed memory back to the system: large blocks freed between live small
//! ones leave holes in glibc's heap that stay resident unless the thresholds are fixed (then
//! those blocks were mapped on their own) or the heap is trimmed. Each test is a process of its
//! own under nextest, so the resident set is the test's.

#![allow(clippy::unwrap_used)] // In tests a panic is a failed test with its message.
#![cfg(all(target_os = "linux", target_env = "gnu"))]

use std::time::Duration;

const BLOCK: usize = 1024 * 1024;
const BLOCKS: usize = 64;

/// The allocator's settings are the process's: these tests mean something only one per process.
fn alone() -> bool {
    let alone = std::env::var("NEXTEST_EXECUTION_MODE").as_deref() == Ok("process-per-test");
    if !alone {
        println!("skipped: needs a process of its own (cargo nextest)");
    }
    alone
}

fn resident_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

/// Allocates `BLOCKS` touched blocks of 1 MiB, each followed by a small block that stays alive,
/// frees the large ones, and answers how much of them is still resident.
fn resident_after_freeing_large_blocks() -> usize {
    // One large block freed first: glibc's dynamic threshold rises above it, so without a fixed
    // threshold the next ones come from the heap.
    drop(std::hint::black_box(vec![1u8; BLOCK]));
    let before = resident_bytes();
    let mut keep = Vec::new();
    let mut large = Vec::new();
    for _ in 0..BLOCKS {
        large.push(std::hint::black_box(vec![1u8; BLOCK]));
        keep.push(std::hint::black_box(vec![1u8; 64]));
    }
    let with = resident_bytes();
    assert!(
        with >= before + BLOCKS * BLOCK * 9 / 10,
        "the blocks were touched"
    );
    drop(large);
    std::thread::sleep(Duration::from_millis(300));
    let after = resident_bytes();
    drop(keep);
    after.saturating_sub(before)
}

#[test]
fn with_fixed_thresholds_freed_large_blocks_leave_the_resident_set() {
    if !alone() {
        return;
    }
    outpost_process::allocator::tune();
    let kept = resident_after_freeing_large_blocks();
    assert!(kept < BLOCKS * BLOCK / 4, "{kept} bytes still resident");
}

#[test]
fn the_trimmer_hands_back_holes_in_the_heap() {
    if !alone() {
        return;
    }
    outpost_process::allocator::trim_every(Duration::from_millis(50));
    let kept = resident_after_freeing_large_blocks();
    assert!(kept < BLOCKS * BLOCK / 4, "{kept} bytes still resident");
}

#[test]
fn without_either_the_holes_stay_resident() {
    if !alone() {
        return;
    }
    // The control: shows the two tests above can fail.
    let kept = resident_after_freeing_large_blocks();
    assert!(
        kept > BLOCKS * BLOCK / 2,
        "only {kept} bytes still resident"
    );
}
