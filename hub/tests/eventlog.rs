//! The event log under many edges at once: what is submitted and not yet committed is bounded
//! (4 × `max_batch` events from all edges together), and everyone still gets through.

#![allow(clippy::unwrap_used)] // In tests a panic is a failed test with its message.

use std::sync::Arc;

use outpost_hub::EventLog;
use outpost_link::{Event, EventBody, EventClass};
use outpost_storage::DurableDb;

fn events(from: u64, count: u64) -> Vec<Event> {
    (from..from + count)
        .map(|seq| Event {
            seq,
            device: "syn-1".into(),
            class: EventClass::Money,
            wall_us: 1,
            mono_us: seq,
            boot_id: 7,
            body: EventBody::Synthetic {
                payload: vec![seq as u8; 200],
            },
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_edges_submitting_at_once_all_commit_through_the_in_flight_limit() {
    let dir = tempfile::tempdir().unwrap();
    let durable = Arc::new(DurableDb::open(&dir.path().join("db")).unwrap());
    let log = EventLog::start(durable, 64, |err| panic!("event log failed: {err}")).unwrap();
    assert_eq!(log.in_flight_limit(), 256);
    let mut edges = Vec::new();
    for e in 0..50 {
        let log = log.clone();
        edges.push(tokio::spawn(async move {
            let edge = format!("edge-{e:02}");
            let mut answers = Vec::new();
            // Pipelined as a session does: ten batches submitted before any answer is read.
            for batch in 0..10 {
                answers.push(
                    log.submit(&edge, events(batch * 100 + 1, 100), 0)
                        .await
                        .unwrap(),
                );
            }
            let mut last = 0;
            for answer in answers {
                let outcome = answer.await.unwrap().unwrap();
                assert!(
                    outcome.committed_seq > last,
                    "{edge}: acknowledgements go forward"
                );
                last = outcome.committed_seq;
            }
            (edge, last)
        }));
    }
    for edge in edges {
        let (edge, last) = edge.await.unwrap();
        assert_eq!(last, 1_000, "{edge}");
        assert_eq!(log.committed_seq(&edge).unwrap(), 1_000, "{edge}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_larger_than_the_whole_limit_still_commits() {
    let dir = tempfile::tempdir().unwrap();
    let durable = Arc::new(DurableDb::open(&dir.path().join("db")).unwrap());
    let log = EventLog::start(durable, 16, |err| panic!("event log failed: {err}")).unwrap();
    let outcome = log.commit("edge-01", events(1, 1_000), 0).await.unwrap();
    assert_eq!((outcome.accepted, outcome.committed_seq), (1_000, 1_000));
    let outcome = log.commit("edge-01", events(1_001, 5), 0).await.unwrap();
    assert_eq!(outcome.committed_seq, 1_005);
}
