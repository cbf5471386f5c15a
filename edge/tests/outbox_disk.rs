//! How much disk the outbox uses for what it stores, while a backlog builds up and then drains
//! with new events coming (its own test binary: it measures the directory while it works).
//!
//! sled's file is a high-water mark: pages of trimmed events are reused, but the file does not
//! shrink until the outbox is compacted (when it is empty, see `compact.rs`). So the measure is the
//! disk against the most stored since the outbox was opened, not against what is left.

#![allow(clippy::unwrap_used)] // In tests a panic is a failed test with its message.

use std::path::Path;

use outpost_edge::Outbox;
use outpost_link::EventClass;

mod common;

use common::{limits, synthetic};

/// Bytes the directory occupies on disk (allocated blocks, as `du` counts them).
fn disk_bytes(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let meta = entry.metadata().unwrap();
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                total += meta.blocks() * 512;
            }
        }
    }
    total
}

async fn append_many(outbox: &Outbox, count: usize, bytes: usize) -> u64 {
    let appends = (0..count).map(|_| outbox.append("syn-1", EventClass::Money, synthetic(bytes)));
    futures::future::join_all(appends)
        .await
        .into_iter()
        .map(Result::unwrap)
        .max()
        .unwrap_or(0)
}

/// What the outbox says it stores (`outpost_outbox_bytes`: events with their framing).
fn stored_bytes() -> u64 {
    let metrics = outpost_actors::metrics::render();
    metrics
        .lines()
        .find_map(|line| line.strip_prefix("outpost_outbox_bytes "))
        .and_then(|value| value.trim().parse::<f64>().ok())
        .map_or(0, |bytes| bytes as u64)
}

async fn drain_and_measure(event: usize, backlog: usize) -> f64 {
    let tmp = tempfile::tempdir().unwrap();
    let (outbox, _writer, _) = Outbox::open(tmp.path(), limits(1 << 30), |_| {}).unwrap();
    let mut worst = Worst::default();
    let mut last = 0;
    for _ in 0..backlog / 1000 {
        last = append_many(&outbox, 1000, event).await;
        worst.sample(disk_bytes(tmp.path()), stored_bytes());
    }
    let backlog_end = last;
    let mut acked = 0u64;
    // The hub comes back: acks in steps of 250 while the live stream adds 50 per step.
    while acked < backlog_end {
        acked = (acked + 250).min(last);
        outbox.ack(acked).await.unwrap();
        last = last.max(append_many(&outbox, 50, event).await);
        worst.sample(disk_bytes(tmp.path()), stored_bytes());
    }
    println!(
        "{event}-byte events, backlog {backlog_end}: worst {:.2} × ({} bytes on disk, at most {} bytes stored)",
        worst.ratio, worst.disk, worst.peak
    );
    worst.ratio
}

/// The worst disk use against the most stored so far.
#[derive(Default)]
struct Worst {
    peak: u64,
    ratio: f64,
    disk: u64,
}

impl Worst {
    fn sample(&mut self, disk: u64, stored: u64) {
        self.peak = self.peak.max(stored);
        let ratio = disk as f64 / self.peak.max(FLOOR) as f64;
        if ratio > self.ratio {
            (self.ratio, self.disk) = (ratio, disk);
        }
    }
}

/// Below this much stored, sled's fixed overhead (a few segments, its snapshot) weighs on any
/// ratio.
const FLOOR: u64 = 16 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filling_and_draining_a_backlog_never_takes_more_than_two_point_six_times_the_most_stored()
{
    for (event, backlog) in [(2000, 12_000), (200, 120_000)] {
        let ratio = drain_and_measure(event, backlog).await;
        // Measured 2.09-2.17 at worst from 16 MiB stored on; from 8 MiB it was 2.47-2.61 (sled's
        // fixed overhead still counts there, and CI's load moved it across 2.6 once). The budget
        // assumes 3.5 (`room.rs`).
        assert!(
            ratio <= 2.6,
            "{event}-byte events: disk use {ratio:.2} × the most stored"
        );
    }
}
