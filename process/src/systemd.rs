//! systemd's notify protocol (`Type=notify`, `WatchdogSec=`), through the `sd-notify` crate.
//!
//! Invariants:
//! - `READY=1` is sent once the process serves: its root supervisor started, or it is up and
//!   waiting for a store that does not open (it answers `/readyz` with the reason, and the store
//!   is retried; see [`crate::store`]). Either way `STATUS=` says which.
//! - `WATCHDOG=1` is sent only while the supervision tree answers: every tick asks the root
//!   supervisor for its children and feeds the watchdog only if the answer comes within a third
//!   of `WatchdogSec`. A root that stopped, or a tree wedged (a supervisor stuck starting a child,
//!   a runtime starved), stops the feeding, and systemd restarts the process. Before a root is
//!   registered (start-up, waiting for a store) the tick itself is the proof: the runtime runs.
//! - A device that is down is not ill health: its actor lives and retries, so the watchdog is fed.
//! - Without `NOTIFY_SOCKET` (not under systemd) every call is a no-op.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use outpost_actors::supervisor::SupervisorMsg;
use ractor::ActorRef;

/// The root supervisor the watchdog asks; `None` before it starts and after it stops.
static ROOT: Mutex<Option<ActorRef<SupervisorMsg>>> = Mutex::new(None);

fn send(states: &[sd_notify::NotifyState<'_>]) {
    if let Err(err) = sd_notify::notify(states) {
        // Not fatal: the process works without systemd; systemd will notice on its own.
        tracing::warn!(%err, "cannot notify systemd");
    }
}

/// `READY=1` with a status line. Sent again it does no harm (systemd ignores repeats).
pub fn ready(status: &str) {
    send(&[
        sd_notify::NotifyState::Ready,
        sd_notify::NotifyState::Status(status),
    ]);
}

/// `STATUS=` only.
pub fn status(status: &str) {
    send(&[sd_notify::NotifyState::Status(status)]);
}

/// `STOPPING=1`: the tree is being stopped on request.
pub fn stopping() {
    send(&[
        sd_notify::NotifyState::Stopping,
        sd_notify::NotifyState::Status("stopping"),
    ]);
}

/// Registers (or, with `None`, forgets) the root supervisor the watchdog asks.
pub(crate) fn set_root(root: Option<ActorRef<SupervisorMsg>>) {
    *ROOT.lock().unwrap_or_else(PoisonError::into_inner) = root;
}

fn root() -> Option<ActorRef<SupervisorMsg>> {
    ROOT.lock().unwrap_or_else(PoisonError::into_inner).clone()
}

/// Whether `root` answers a question about its children within `deadline`.
pub async fn tree_answers(root: &ActorRef<SupervisorMsg>, deadline: Duration) -> bool {
    ractor::call_t!(root, SupervisorMsg::Children, deadline.as_millis() as u64).is_ok()
}

/// Feeds systemd's watchdog for as long as the process runs, if systemd asked for one
/// (`WATCHDOG_USEC`); returns at once otherwise. Spawn it on the process's runtime.
pub async fn watchdog() {
    let Some(period) = sd_notify::watchdog_enabled() else {
        return;
    };
    let tick = period / 3;
    tracing::info!(
        watchdog_ms = period.as_millis() as u64,
        "systemd watchdog on"
    );
    let mut unhealthy_since: Option<std::time::Instant> = None;
    loop {
        tokio::time::sleep(tick).await;
        let healthy = match root() {
            Some(root) => tree_answers(&root, tick).await,
            None => true,
        };
        if healthy {
            if let Some(since) = unhealthy_since.take() {
                tracing::info!(
                    after_ms = since.elapsed().as_millis() as u64,
                    "supervision tree answers again; feeding the systemd watchdog"
                );
            }
            send(&[sd_notify::NotifyState::Watchdog]);
        } else if unhealthy_since.is_none() {
            unhealthy_since = Some(std::time::Instant::now());
            tracing::error!(
                deadline_ms = tick.as_millis() as u64,
                "the root supervisor did not answer; not feeding the systemd watchdog"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use outpost_actors::{ChildSpec, Readiness, Supervisor, SupervisorSpec, supervisor::Strategy};
    use ractor::{Actor, ActorProcessingErr};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Fails right after its first start; every later start hangs in `pre_start`, which keeps
    /// its supervisor busy starting it.
    struct FailsThenHangs {
        starts: Arc<AtomicUsize>,
    }

    impl Actor for FailsThenHangs {
        type Msg = ();
        type State = ();
        type Arguments = ();

        async fn pre_start(&self, _: ActorRef<()>, (): ()) -> Result<(), ActorProcessingErr> {
            if self.starts.fetch_add(1, Ordering::SeqCst) > 0 {
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
            Ok(())
        }

        async fn post_start(&self, _: ActorRef<()>, (): &mut ()) -> Result<(), ActorProcessingErr> {
            Err("fails once started".into())
        }
    }

    struct Idle;

    impl Actor for Idle {
        type Msg = ();
        type State = ();
        type Arguments = ();

        async fn pre_start(&self, _: ActorRef<()>, (): ()) -> Result<(), ActorProcessingErr> {
            Ok(())
        }
    }

    fn spec(children: Vec<ChildSpec>) -> SupervisorSpec {
        SupervisorSpec {
            name: "root".into(),
            strategy: Strategy::OneForOne,
            policy: outpost_actors::RestartPolicy {
                backoff: outpost_actors::Backoff {
                    initial: Duration::from_millis(10),
                    max: Duration::from_millis(10),
                    multiplier: 2.0,
                    jitter: 0.0,
                },
                intensity: outpost_actors::Intensity {
                    max_restarts: 100,
                    within: Duration::from_secs(60),
                },
                stable_after: Duration::from_secs(60),
                shutdown_timeout: Duration::from_secs(1),
            },
            children,
            readiness: Readiness::new(),
        }
    }

    #[tokio::test]
    async fn a_running_tree_answers_and_a_stopped_root_does_not() {
        let (root, handle) = Actor::spawn(
            None,
            Supervisor,
            spec(vec![ChildSpec::new("idle", || (Idle, ()))]),
        )
        .await
        .unwrap();
        assert!(tree_answers(&root, Duration::from_millis(500)).await);
        root.stop(None);
        handle.await.unwrap();
        assert!(!tree_answers(&root, Duration::from_millis(500)).await);
    }

    #[tokio::test]
    async fn a_supervisor_stuck_starting_a_child_does_not_answer_so_the_watchdog_is_not_fed() {
        let starts = Arc::new(AtomicUsize::new(0));
        let counted = starts.clone();
        let child = ChildSpec::new("stuck", move || {
            (
                FailsThenHangs {
                    starts: counted.clone(),
                },
                (),
            )
        });
        let (root, _handle) = Actor::spawn(None, Supervisor, spec(vec![child]))
            .await
            .unwrap();
        // The child failed once; its restart hangs inside the supervisor.
        for _ in 0..200 {
            if starts.load(Ordering::SeqCst) >= 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(starts.load(Ordering::SeqCst), 2, "the child was restarted");
        assert!(!tree_answers(&root, Duration::from_millis(300)).await);
        root.kill();
    }
}
