//! The outbox: durable appends with group commit, gap-free sequences, trims on ack, back-pressure
//! by class, command marks, recovery after reopening.

#![allow(clippy::unwrap_used)] // In tests a panic is a failed test with its message.

use std::path::Path;
use std::time::Duration;

use outpost_edge::{CommandMark, Outbox, OutboxError, OutboxLimits, OutboxWriter};
use outpost_link::{EventBody, EventClass};

mod common;

use common::{append_each, limits, synthetic};

fn open(dir: &Path, budget_bytes: u64) -> (Outbox, OutboxWriter) {
    let (outbox, writer, _) = Outbox::open(dir, limits(budget_bytes), |_| {}).unwrap();
    (outbox, writer)
}

/// Appends `count` money events of `bytes` each, all at once, and returns their sequences sorted.
async fn append_concurrently(outbox: &Outbox, count: usize, bytes: usize) -> Vec<u64> {
    let appends: Vec<_> = (0..count)
        .map(|_| {
            let outbox = outbox.clone();
            tokio::spawn(async move {
                outbox
                    .append("syn-1", EventClass::Money, synthetic(bytes))
                    .await
            })
        })
        .collect();
    let mut seqs = Vec::new();
    for append in appends {
        seqs.push(append.await.unwrap().unwrap());
    }
    seqs.sort_unstable();
    seqs
}

#[tokio::test]
async fn appends_get_consecutive_sequence_numbers_from_one() {
    let tmp = tempfile::tempdir().unwrap();
    let (outbox, _writer) = open(tmp.path(), 1 << 30);
    for expected in 1..=5 {
        let seq = outbox
            .append("syn-1", EventClass::Telemetry, synthetic(10))
            .await
            .unwrap();
        assert_eq!(seq, expected);
    }
    assert_eq!(outbox.durable_seq(), 5);
}

#[tokio::test]
async fn concurrent_appends_share_commits() {
    let tmp = tempfile::tempdir().unwrap();
    let (outbox, _writer) = open(tmp.path(), 1 << 30);
    let seqs = append_concurrently(&outbox, 2000, 200).await;
    assert_eq!(
        seqs,
        (1..=2000).collect::<Vec<u64>>(),
        "every append got its own sequence"
    );
    assert!(
        outbox.commits() < 1000,
        "{} commits for 2000 appends",
        outbox.commits()
    );
}

#[tokio::test]
async fn events_and_sequence_survive_reopening() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let (outbox, writer) = open(tmp.path(), 1 << 30);
        append_each(&outbox, "egm-1", EventClass::Money, 3, 50).await;
        outbox.ack(1).await.unwrap();
        drop(outbox);
        writer.join().unwrap();
    }
    let (outbox, _writer, recovered) = Outbox::open(tmp.path(), limits(1 << 30), |_| {}).unwrap();
    assert_eq!((recovered.last_seq, recovered.acked_seq), (3, 1));
    let stored: Vec<u64> = outbox
        .read_from(1, 100, 1 << 20)
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(stored, [2, 3], "acked events are gone, the others remain");
    assert_eq!(
        outbox
            .append("egm-1", EventClass::Money, synthetic(1))
            .await
            .unwrap(),
        4
    );
}

#[tokio::test]
async fn each_devices_last_sequence_survives_its_acknowledgement_and_a_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let (outbox, writer) = open(tmp.path(), 1 << 30);
        assert_eq!(outbox.last_seq_of("egm-1").unwrap(), None);
        append_each(&outbox, "egm-1", EventClass::Money, 2, 50).await;
        append_each(&outbox, "egm-2", EventClass::Money, 1, 50).await;
        assert_eq!(outbox.last_seq_of("egm-1").unwrap(), Some(2));
        outbox.ack(3).await.unwrap();
        drop(outbox);
        writer.join().unwrap();
    }
    let (outbox, _writer) = open(tmp.path(), 1 << 30);
    assert_eq!(outbox.last_seq_of("egm-1").unwrap(), Some(2));
    assert_eq!(outbox.last_seq_of("egm-2").unwrap(), Some(3));
    assert_eq!(outbox.last_seq_of("egm-3").unwrap(), None);
}

#[tokio::test]
async fn ack_trims_and_never_goes_backwards_or_past_the_end() {
    let tmp = tempfile::tempdir().unwrap();
    let (outbox, _writer) = open(tmp.path(), 1 << 30);
    append_each(&outbox, "syn-1", EventClass::Telemetry, 10, 10).await;
    outbox.ack(6).await.unwrap();
    outbox.ack(4).await.unwrap();
    outbox.ack(1000).await.unwrap();
    // Acks are applied in order by the writer; a later append proves they were processed.
    outbox
        .append("syn-1", EventClass::Telemetry, synthetic(10))
        .await
        .unwrap();
    assert_eq!(outbox.acked_seq(), 10);
    let left: Vec<u64> = outbox
        .read_from(0, 100, 1 << 20)
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(left, [11]);
}

#[tokio::test]
async fn read_from_respects_event_and_byte_limits() {
    let tmp = tempfile::tempdir().unwrap();
    let (outbox, _writer) = open(tmp.path(), 1 << 30);
    append_each(&outbox, "syn-1", EventClass::Telemetry, 10, 100).await;
    assert_eq!(outbox.read_from(3, 4, 1 << 20).unwrap().len(), 4);
    assert_eq!(outbox.read_from(3, 100, 250).unwrap().len(), 2);
    assert_eq!(
        outbox.read_from(3, 100, 1).unwrap().len(),
        1,
        "at least one event"
    );
}

#[tokio::test]
async fn full_outbox_sheds_oldest_telemetry_as_tombstones_without_gaps() {
    let tmp = tempfile::tempdir().unwrap();
    let (outbox, _writer) = open(tmp.path(), 3_000);
    let money = outbox
        .append("egm-1", EventClass::Money, synthetic(200))
        .await
        .unwrap();
    append_each(&outbox, "tv-1", EventClass::Telemetry, 40, 200).await;
    let events = outbox.read_from(0, 1000, 1 << 20).unwrap();
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=41).collect::<Vec<u64>>(), "no gaps");
    assert_eq!(events[0].seq, money);
    assert!(
        matches!(events[0].body, EventBody::Synthetic { .. }),
        "money is never shed"
    );
    assert_eq!(
        events[1].body,
        EventBody::Shed,
        "the oldest telemetry went first"
    );
    assert!(
        matches!(events[40].body, EventBody::Synthetic { .. }),
        "the newest is kept"
    );
    let stored: usize = events.iter().map(outpost_link::encode_len).sum();
    assert!(
        stored <= 3_000,
        "{stored} bytes stored over a 3000-byte budget"
    );
}

#[tokio::test]
async fn full_outbox_makes_money_wait_until_the_hub_acknowledges() {
    let tmp = tempfile::tempdir().unwrap();
    let (outbox, _writer) = open(tmp.path(), 1_000);
    let last = append_each(&outbox, "egm-1", EventClass::Money, 4, 200).await;
    let waiting = {
        let outbox = outbox.clone();
        tokio::spawn(async move {
            outbox
                .append("egm-1", EventClass::Money, synthetic(200))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !waiting.is_finished(),
        "a money append was accepted over the budget"
    );
    outbox.ack(last).await.unwrap();
    let seq = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(seq, last + 1);
}

#[tokio::test]
async fn command_marks_remember_the_first_sighting() {
    let tmp = tempfile::tempdir().unwrap();
    let (outbox, _writer) = open(tmp.path(), 1 << 20);
    assert_eq!(
        outbox
            .mark_command("cmd-1", CommandMark::Started)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        outbox
            .mark_command("cmd-1", CommandMark::Started)
            .await
            .unwrap(),
        Some(CommandMark::Started)
    );
    outbox
        .mark_command("cmd-1", CommandMark::Finished)
        .await
        .unwrap();
    assert_eq!(
        outbox
            .mark_command("cmd-1", CommandMark::Started)
            .await
            .unwrap(),
        Some(CommandMark::Finished),
        "finished stays finished"
    );
}

#[tokio::test]
async fn an_ack_inside_a_group_commit_keeps_the_events_after_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (outbox, writer) = open(tmp.path(), 1 << 30);
    // Concurrent appends share commits, so several events are stored together.
    append_concurrently(&outbox, 500, 20).await;
    assert!(outbox.commits() < 500);
    outbox.ack(250).await.unwrap();
    outbox
        .append("syn-1", EventClass::Money, synthetic(20))
        .await
        .unwrap();
    let seqs: Vec<u64> = outbox
        .read_from(0, 1000, 1 << 20)
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(seqs, (251..=501).collect::<Vec<u64>>());
    let from_middle: Vec<u64> = outbox
        .read_from(400, 10, 1 << 20)
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(from_middle, (400..410).collect::<Vec<u64>>());

    // And after reopening, the same.
    drop(outbox);
    writer.join().unwrap();
    let (outbox, _writer) = open(tmp.path(), 1 << 30);
    let seqs: Vec<u64> = outbox
        .read_from(0, 1000, 1 << 20)
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(seqs, (251..=501).collect::<Vec<u64>>());
}

#[tokio::test]
async fn an_empty_outbox_over_its_disk_threshold_is_compacted_on_reopen_keeping_sequence_and_marks()
{
    let tmp = tempfile::tempdir().unwrap();
    let limits = OutboxLimits {
        compact_above_bytes: 2 * 1024 * 1024,
        ..limits(1 << 30)
    };
    let (fatal_tx, fatal_rx) = std::sync::mpsc::channel();
    let (outbox, writer, _) = Outbox::open(tmp.path(), limits, move |e| {
        let _ = fatal_tx.send(e);
    })
    .unwrap();
    outbox
        .mark_command("cmd-9", CommandMark::Finished)
        .await
        .unwrap();
    for _ in 0..20 {
        append_concurrently(&outbox, 1000, 200).await;
    }
    let last = outbox.durable_seq();
    assert_eq!(last, 20_000);
    outbox.ack(last).await.unwrap();
    // The writer asks to be reopened: empty, and over the threshold.
    let err = fatal_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(matches!(err, OutboxError::CompactionDue { .. }), "{err}");
    drop(outbox);
    let _ = writer.join();

    let before = outpost_storage::dir_bytes(tmp.path());
    let (outbox, _writer, recovered) = Outbox::open(tmp.path(), limits, |_| {}).unwrap();
    let after = outpost_storage::dir_bytes(tmp.path());
    assert!(after < before / 2, "{before} bytes before, {after} after");
    assert_eq!((recovered.last_seq, recovered.acked_seq), (last, last));
    assert_eq!(
        outbox
            .mark_command("cmd-9", CommandMark::Started)
            .await
            .unwrap(),
        Some(CommandMark::Finished),
        "command marks survive"
    );
    assert_eq!(
        outbox
            .append("syn-1", EventClass::Money, synthetic(1))
            .await
            .unwrap(),
        last + 1
    );
}

#[tokio::test]
async fn an_event_over_four_kib_is_refused_and_the_largest_allowed_ones_stay_in_the_log() {
    let tmp = tempfile::tempdir().unwrap();
    let (outbox, _writer) = open(tmp.path(), 1 << 30);
    let refused = outbox
        .append("syn-1", EventClass::Money, synthetic(5000))
        .await;
    assert!(
        matches!(refused, Err(OutboxError::EventTooLarge { limit, .. }) if limit == outpost_link::MAX_EVENT_BYTES),
        "{refused:?}"
    );
    // The largest payload config check accepts, many at once: chunks hold one each, every page
    // of sled stays in its log, and they read back in order.
    let largest = outpost_config::MAX_SYNTHETIC_PAYLOAD_BYTES;
    let seqs = append_concurrently(&outbox, 600, largest).await;
    assert_eq!(seqs, (1..=600).collect::<Vec<_>>());
    assert_eq!(outpost_storage::blob_files(tmp.path()), 0);
    let read = outbox.read_from(1, 1000, usize::MAX).unwrap();
    assert_eq!(
        read.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=600).collect::<Vec<_>>()
    );
}

/// A disk whose `fail_at`-th commit fails after the batch was applied (the fsync fails).
struct FailingDisk {
    commits: usize,
    fail_at: usize,
}

impl outpost_storage::Commit for FailingDisk {
    fn commit(
        &mut self,
        db: &outpost_storage::DurableDb,
        batch: outpost_storage::Batch,
    ) -> Result<Duration, outpost_storage::StorageError> {
        self.commits += 1;
        db.apply(batch)?;
        if self.commits == self.fail_at {
            return Err(outpost_storage::StorageError::Io {
                path: db.path().to_path_buf(),
                source: std::io::Error::from_raw_os_error(5), // EIO
            });
        }
        db.commit()
    }
}

#[tokio::test]
async fn a_failed_commit_fails_its_appends_and_every_later_one_and_reopening_loses_no_acknowledged_event()
 {
    let tmp = tempfile::tempdir().unwrap();
    let (fatal_tx, fatal_rx) = std::sync::mpsc::channel();
    let disk = Box::new(FailingDisk {
        commits: 0,
        fail_at: 3,
    });
    let (outbox, writer, _) = Outbox::open_on(tmp.path(), limits(1 << 30), disk, move |err| {
        let _ = fatal_tx.send(err);
    })
    .unwrap();
    let mut acknowledged = Vec::new();
    let mut refused = 0;
    for n in 0..6u8 {
        match outbox
            .append("egm-1", EventClass::Money, synthetic(usize::from(n) + 1))
            .await
        {
            Ok(seq) => {
                assert_eq!(refused, 0, "nothing is acknowledged after a failed commit");
                acknowledged.push(seq);
            }
            Err(_) => refused += 1,
        }
    }
    assert_eq!(acknowledged, [1, 2], "one commit per sequential append");
    assert_eq!(refused, 4, "the failed batch and every append after it");
    let fatal = fatal_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("the owner is told");
    assert!(fatal.to_string().contains("Input/output error"), "{fatal}");
    drop(outbox);
    assert!(writer.join().is_err(), "the writer ended with the failure");

    // The batch was applied but not known durable: reopening may find it (at least once: the
    // device was not acknowledged, so it sends again), never loses 1 and 2, and never leaves a gap.
    let (outbox, _writer, recovered) = Outbox::open(tmp.path(), limits(1 << 30), |_| {}).unwrap();
    assert!((2..=3).contains(&recovered.last_seq), "{recovered:?}");
    let stored = outbox.read_from(1, 100, 1 << 20).unwrap();
    let seqs: Vec<u64> = stored.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=recovered.last_seq).collect::<Vec<_>>());
    assert_eq!(stored[0].body, synthetic(1));
    assert_eq!(stored[1].body, synthetic(2));
    let next = outbox
        .append("egm-1", EventClass::Money, synthetic(9))
        .await
        .unwrap();
    assert_eq!(next, recovered.last_seq + 1);
}
