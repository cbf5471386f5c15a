//! The outbox's age gauge follows the oldest unacknowledged event (its own test binary: the
//! gauge is process-wide).

#![allow(clippy::unwrap_used)] // In tests a panic is a failed test with its message.

use std::time::Duration;

use outpost_edge::Outbox;
use outpost_edge::{OUTBOX_OLDEST_UNACKED, refresh_oldest_unacked};
use outpost_link::EventClass;

mod common;

use common::{append_each, limits};

#[tokio::test]
async fn oldest_unacked_age_grows_while_waiting_and_drops_to_zero_when_acknowledged() {
    let tmp = tempfile::tempdir().unwrap();
    let limits = limits(1 << 20);
    let (outbox, writer, _) = Outbox::open(tmp.path(), limits, |_| {}).unwrap();
    append_each(&outbox, "egm-1", EventClass::Money, 3, 10).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    refresh_oldest_unacked();
    assert!(
        OUTBOX_OLDEST_UNACKED.get() >= 1.0,
        "{}",
        OUTBOX_OLDEST_UNACKED.get()
    );

    outbox.ack(2).await.unwrap();
    append_each(&outbox, "egm-1", EventClass::Money, 1, 10).await;
    refresh_oldest_unacked();
    assert!(
        OUTBOX_OLDEST_UNACKED.get() >= 1.0,
        "event 3 is still waiting"
    );

    outbox.ack(4).await.unwrap();
    outbox
        .mark_command("sync", outpost_edge::CommandMark::Finished)
        .await
        .unwrap();
    refresh_oldest_unacked();
    assert_eq!(OUTBOX_OLDEST_UNACKED.get(), 0.0);

    // After reopening, the age is known again from what is stored.
    append_each(&outbox, "egm-1", EventClass::Money, 1, 10).await;
    drop(outbox);
    writer.join().unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (_outbox, _writer, _) = Outbox::open(tmp.path(), limits, |_| {}).unwrap();
    refresh_oldest_unacked();
    assert!(
        OUTBOX_OLDEST_UNACKED.get() >= 1.0,
        "{}",
        OUTBOX_OLDEST_UNACKED.get()
    );
}
