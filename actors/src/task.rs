//! The one way an actor owns a tokio task (a driver loop, a ticker, an accept loop).
//!
//! Invariants: the task never outlives its owner — it is aborted when the [`OwnedTask`] drops,
//! which happens when the owner's state drops, however the owner stopped; and a task that ends the
//! owner's work ([`OwnedTask::ending_owner`]) stops the owner with the task's reason, so the
//! supervisor sees it and applies its policy (a reason starting with
//! [`crate::PLANNED_RESTART`] is a planned restart).

use std::future::Future;

use ractor::ActorRef;
use tokio::task::JoinHandle;

/// A task owned by an actor's state. Dropping it aborts the task.
#[derive(Debug)]
pub struct OwnedTask(JoinHandle<()>);

impl OwnedTask {
    /// Runs `work` for as long as the owner lives; its end does not concern the owner.
    pub fn spawn(work: impl Future<Output = ()> + Send + 'static) -> Self {
        Self(tokio::spawn(work))
    }

    /// Runs `work`, the owner's reason to live: when it returns, `owner` stops — cleanly for
    /// `None`, with the reason otherwise.
    pub fn ending_owner<M: ractor::Message>(
        owner: ActorRef<M>,
        work: impl Future<Output = Option<String>> + Send + 'static,
    ) -> Self {
        Self(tokio::spawn(async move {
            let reason = work.await;
            owner.stop(reason);
        }))
    }

    /// Stops the task now (a clean stop hands the owner's state to its supervisor instead of
    /// dropping it, so `post_stop` calls this).
    pub fn abort(&self) {
        self.0.abort();
    }
}

impl Drop for OwnedTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}
