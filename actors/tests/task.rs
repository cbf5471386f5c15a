//! `OwnedTask`: a task never outlives its owner, and a task that is the owner's work stops it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use outpost_actors::OwnedTask;
use ractor::{Actor, ActorProcessingErr, ActorRef, ActorStatus};

struct Owner;

impl Actor for Owner {
    type Msg = ();
    type State = OwnedTask;
    type Arguments = Option<String>;

    async fn pre_start(
        &self,
        myself: ActorRef<()>,
        reason: Option<String>,
    ) -> Result<OwnedTask, ActorProcessingErr> {
        Ok(OwnedTask::ending_owner(myself, async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            reason
        }))
    }
}

#[tokio::test]
async fn a_task_that_ends_its_owners_work_stops_the_owner_with_its_reason() {
    let (owner, handle) = Actor::spawn(None, Owner, Some("port closed".into()))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), handle)
        .await
        .expect("the owner stopped")
        .unwrap();
    assert_eq!(owner.get_status(), ActorStatus::Stopped);
}

#[tokio::test]
async fn a_dropped_task_is_aborted_and_never_runs_on() {
    let ran_on = Arc::new(AtomicBool::new(false));
    let flag = ran_on.clone();
    let task = OwnedTask::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        flag.store(true, Ordering::SeqCst);
    });
    drop(task);
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(!ran_on.load(Ordering::SeqCst));
}
