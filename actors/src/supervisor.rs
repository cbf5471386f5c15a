//! A supervisor actor with restart strategies, on top of ractor's supervision events.
//!
//! What it owns: an ordered list of children, each built from a [`ChildSpec`] that can build it
//! again. What it guarantees:
//! - A child that fails (panics, returns an error, or fails to start) is restarted after a backoff
//!   that grows with its consecutive failures; a child that ran for `stable_after` before failing
//!   starts from the initial backoff again.
//! - One-for-one restarts only the failed child. Rest-for-one stops the children started after it
//!   (youngest first) and starts them again, in order, after the failed one.
//! - More than `intensity.max_restarts` restarts within `intensity.within` make the supervisor stop
//!   its children and fail itself, so that its own parent decides (escalation).
//! - A child that stops cleanly is not restarted unless its spec says [`Restart::Permanent`].
//! - A child that stops with a reason starting with [`PLANNED_RESTART`] is restarted at once (with
//!   its younger siblings under rest-for-one) and counts neither against the intensity nor as a
//!   failure: planned work, such as compacting a store, is not a fault. One that asks again within
//!   [`PLANNED_RESTART_PACE`] of starting waits that long first, so it cannot spin.
//! - Stopping the supervisor stops its children youngest first, each within `shutdown_timeout`
//!   (then it is killed).
//! - Every restart is one `warn` log line with the cause and is counted in
//!   `outpost_actor_restarts_total{actor}`; `outpost_actor_up{actor}` and [`Readiness`] follow each
//!   child.
//!
//! A note for child authors: on a clean stop ractor does not drop the child's state; it hands it
//! to the supervisor inside the `ActorTerminated` event, which the supervisor may handle only
//! after it finished stopping the other children. Release shared resources (tasks, handles to the
//! outbox, listeners) in `post_stop`, and in `Drop` for the failure path, where ractor drops it.
//!
//! What it never does: restart a child while an older timer for it is pending (each scheduled
//! restart carries a generation; stale ones are ignored), or act on events of a child it no longer
//! tracks.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use ractor::{
    Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SpawnErr,
    SupervisionEvent,
};

use crate::backoff::Backoff;
use crate::metrics::{ACTOR_RESTARTS, ACTOR_UP};
use crate::readiness::Readiness;

/// A child that stops with a reason starting with this asks for a planned restart (a compaction,
/// say): it and, under rest-for-one, its younger siblings start again at once, and it counts
/// neither against the restart intensity nor in `outpost_actor_restarts_total`.
pub const PLANNED_RESTART: &str = "planned restart: ";

/// A child that asks for a planned restart within this long of starting is restarted after this
/// long (not at once): planned restarts stay out of the intensity, and must not spin.
pub const PLANNED_RESTART_PACE: Duration = Duration::from_millis(250);

/// Which children restart when one fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Only the failed child.
    OneForOne,
    /// The failed child and every child started after it (they depend on it).
    RestForOne,
}

/// When a child is restarted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restart {
    /// Always, even after a clean stop.
    Permanent,
    /// After a failure, not after a clean stop.
    Transient,
    /// Never.
    Temporary,
}

/// N restarts in T, then escalate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Intensity {
    pub max_restarts: u32,
    pub within: Duration,
}

/// How a supervisor restarts its children.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RestartPolicy {
    pub backoff: Backoff,
    pub intensity: Intensity,
    /// A child that ran this long before failing is considered to have been healthy.
    pub stable_after: Duration,
    pub shutdown_timeout: Duration,
}

type StartFn =
    Arc<dyn Fn(ActorCell) -> BoxFuture<'static, Result<ActorCell, SpawnErr>> + Send + Sync>;

/// How to (re)build one child.
#[derive(Clone)]
pub struct ChildSpec {
    name: String,
    restart: Restart,
    start: StartFn,
}

impl fmt::Debug for ChildSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildSpec")
            .field("name", &self.name)
            .field("restart", &self.restart)
            .finish_non_exhaustive()
    }
}

impl ChildSpec {
    /// A transient child built by `build` each time it (re)starts. `build` returns the actor and
    /// its arguments; it must capture whatever it needs to do that again.
    pub fn new<A, F>(name: impl Into<String>, build: F) -> Self
    where
        A: Actor,
        F: Fn() -> (A, A::Arguments) + Send + Sync + 'static,
    {
        let start: StartFn = Arc::new(move |supervisor: ActorCell| {
            let (actor, args) = build();
            Box::pin(async move {
                let (actor_ref, _) = Actor::spawn_linked(None, actor, args, supervisor).await?;
                Ok(actor_ref.get_cell())
            })
        });
        Self {
            name: name.into(),
            restart: Restart::Transient,
            start,
        }
    }

    /// A nested supervisor as a child (its name is the spec's name: give it its full path,
    /// `edge/devices`, so its own children's paths are full too).
    pub fn supervisor(spec: SupervisorSpec) -> Self {
        let name = spec.name.clone();
        Self::new(name, move || (Supervisor, spec.clone())).restart(Restart::Permanent)
    }

    pub fn restart(mut self, restart: Restart) -> Self {
        self.restart = restart;
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

/// The path of child `child` of supervisor `parent`, the label of its metrics: `parent/child`,
/// or the child's own name when it is a path under the parent already (a nested supervisor
/// named `edge/devices` under `edge` is `edge/devices`, not `edge/edge/devices`).
pub fn child_path(parent: &str, child: &str) -> String {
    match child
        .strip_prefix(parent)
        .and_then(|rest| rest.strip_prefix('/'))
    {
        Some(rest) if !rest.is_empty() => child.to_owned(),
        _ => format!("{parent}/{child}"),
    }
}

/// Everything a supervisor needs to start, and to be started again by its own parent.
#[derive(Debug, Clone)]
pub struct SupervisorSpec {
    /// Path-like name (`edge`, `edge/devices`); children are named `<name>/<child>` in metrics,
    /// logs and readiness.
    pub name: String,
    pub strategy: Strategy,
    pub policy: RestartPolicy,
    pub children: Vec<ChildSpec>,
    pub readiness: Readiness,
}

/// Why a supervisor failed.
#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    #[error(
        "supervisor {supervisor}: {restarts} restarts within {within:?} exceed its limit; last: {child} failed: {cause}"
    )]
    IntensityExceeded {
        supervisor: String,
        child: String,
        cause: String,
        restarts: usize,
        within: Duration,
    },
}

/// What a supervisor can be asked.
#[derive(Debug)]
pub enum SupervisorMsg {
    /// A backoff elapsed: start child `index` (and, under rest-for-one, those after it).
    Restart { index: usize, generation: u64 },
    /// The children as they are now.
    Children(RpcReplyPort<Vec<ChildInfo>>),
}

/// One child, as seen by its supervisor.
#[derive(Debug, Clone)]
pub struct ChildInfo {
    pub name: String,
    /// `None` while backing off, or after a clean stop.
    pub cell: Option<ActorCell>,
    pub restarts: u64,
}

/// The supervisor actor. Spawn it with a [`SupervisorSpec`] as arguments.
#[derive(Debug, Clone, Copy, Default)]
pub struct Supervisor;

struct Slot {
    spec: ChildSpec,
    /// `<supervisor>/<child>`
    path: String,
    cell: Option<ActorCell>,
    started_at: Instant,
    consecutive_failures: u32,
    generation: u64,
    restarts: u64,
    finished: bool,
}

/// The supervisor's state (opaque).
pub struct SupervisorState {
    name: String,
    strategy: Strategy,
    policy: RestartPolicy,
    slots: Vec<Slot>,
    recent_restarts: VecDeque<Instant>,
    readiness: Readiness,
}

impl SupervisorState {
    fn slot_of(&self, id: ActorId) -> Option<usize> {
        self.slots
            .iter()
            .position(|s| s.cell.as_ref().is_some_and(|c| c.get_id() == id))
    }

    fn mark(&self, index: usize, up: bool) {
        let path = &self.slots[index].path;
        self.readiness.set(path, up);
        ACTOR_UP.with_label_values(&[path]).set(i64::from(up));
        // Exported at 0 from the child's first start, so `increase()` sees its first restart.
        ACTOR_RESTARTS.with_label_values(&[path]).inc_by(0);
    }

    fn forget(&self, index: usize) {
        let path = &self.slots[index].path;
        self.readiness.remove(path);
        ACTOR_UP.with_label_values(&[path]).set(0);
    }

    /// Under rest-for-one, stops the children younger than `index` so they restart after it.
    async fn stop_younger(&mut self, index: usize, reason: &str) {
        if self.strategy != Strategy::RestForOne {
            return;
        }
        self.stop_children_from(index + 1, reason).await;
        for younger in index + 1..self.slots.len() {
            self.slots[younger].generation += 1;
            if !self.slots[younger].finished {
                self.mark(younger, false);
            }
        }
    }

    /// Stops children `from..` youngest first; each gets `shutdown_timeout`, then is killed.
    async fn stop_children_from(&mut self, from: usize, reason: &str) {
        for index in (from..self.slots.len()).rev() {
            if let Some(cell) = self.slots[index].cell.take() {
                let timeout = Some(self.policy.shutdown_timeout);
                if cell
                    .stop_and_wait(Some(reason.to_owned()), timeout)
                    .await
                    .is_err()
                {
                    tracing::warn!(actor = %self.slots[index].path, "actor did not stop in time; killed");
                    cell.kill();
                }
            }
        }
    }
}

impl Supervisor {
    async fn start_child(
        &self,
        myself: &ActorRef<SupervisorMsg>,
        state: &mut SupervisorState,
        index: usize,
    ) -> Result<(), ActorProcessingErr> {
        let slot = &mut state.slots[index];
        slot.started_at = Instant::now();
        match (slot.spec.start)(myself.get_cell()).await {
            Ok(cell) => {
                tracing::debug!(actor = %slot.path, "actor started");
                slot.cell = Some(cell);
                state.mark(index, true);
                Ok(())
            }
            Err(err) => {
                self.child_failed(myself, state, index, format!("failed to start: {err}"))
                    .await
            }
        }
    }

    /// A child stopped asking to be restarted ([`PLANNED_RESTART`]): restarted at once with its
    /// younger siblings (rest-for-one), neither counted against the intensity nor as a failure.
    async fn planned_restart(
        &self,
        myself: &ActorRef<SupervisorMsg>,
        state: &mut SupervisorState,
        index: usize,
        reason: &str,
    ) {
        state.slots[index].cell = None;
        state.mark(index, false);
        state
            .stop_younger(index, "rest-for-one: an older sibling restarts as planned")
            .await;
        let slot = &mut state.slots[index];
        slot.generation += 1;
        let generation = slot.generation;
        // A child that asks again soon after it started (a device whose outbox is still
        // reopening) is restarted after a pause, so a planned restart cannot become a busy loop.
        if slot.started_at.elapsed() < PLANNED_RESTART_PACE {
            tracing::debug!(actor = %slot.path, %reason, "planned restart, paced");
            myself.send_after(PLANNED_RESTART_PACE, move || SupervisorMsg::Restart {
                index,
                generation,
            });
            return;
        }
        tracing::info!(actor = %slot.path, %reason, "planned restart");
        let _ = myself.send_message(SupervisorMsg::Restart { index, generation });
    }

    async fn child_failed(
        &self,
        myself: &ActorRef<SupervisorMsg>,
        state: &mut SupervisorState,
        index: usize,
        cause: String,
    ) -> Result<(), ActorProcessingErr> {
        let now = Instant::now();
        state.slots[index].cell = None;
        state.mark(index, false);

        let within = state.policy.intensity.within;
        state.recent_restarts.push_back(now);
        while state
            .recent_restarts
            .front()
            .is_some_and(|t| now.duration_since(*t) > within)
        {
            state.recent_restarts.pop_front();
        }
        let restarts = state.recent_restarts.len();
        if restarts > state.policy.intensity.max_restarts as usize {
            let err = SupervisorError::IntensityExceeded {
                supervisor: state.name.clone(),
                child: state.slots[index].path.clone(),
                cause,
                restarts,
                within,
            };
            tracing::error!(supervisor = %state.name, %err, "restart intensity exceeded; escalating");
            state.stop_children_from(0, "supervisor escalating").await;
            for i in 0..state.slots.len() {
                state.mark(i, false);
            }
            return Err(err.into());
        }

        state
            .stop_younger(index, "rest-for-one: an older sibling failed")
            .await;

        let policy = state.policy;
        let slot = &mut state.slots[index];
        if now.duration_since(slot.started_at) >= policy.stable_after {
            slot.consecutive_failures = 0;
        }
        slot.consecutive_failures = slot.consecutive_failures.saturating_add(1);
        slot.generation += 1;
        slot.restarts += 1;
        let delay = policy.backoff.delay(slot.consecutive_failures);
        ACTOR_RESTARTS.with_label_values(&[&slot.path]).inc();
        tracing::warn!(
            actor = %slot.path,
            %cause,
            attempt = slot.consecutive_failures,
            backoff_ms = delay.as_millis() as u64,
            "actor failed; restarting after backoff"
        );
        let generation = slot.generation;
        myself.send_after(delay, move || SupervisorMsg::Restart { index, generation });
        Ok(())
    }
}

impl Actor for Supervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = SupervisorSpec;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        spec: SupervisorSpec,
    ) -> Result<Self::State, ActorProcessingErr> {
        let now = Instant::now();
        let slots = spec
            .children
            .into_iter()
            .map(|child| Slot {
                path: child_path(&spec.name, &child.name),
                spec: child,
                cell: None,
                started_at: now,
                consecutive_failures: 0,
                generation: 0,
                restarts: 0,
                finished: false,
            })
            .collect();
        Ok(SupervisorState {
            name: spec.name,
            strategy: spec.strategy,
            policy: spec.policy,
            slots,
            recent_restarts: VecDeque::new(),
            readiness: spec.readiness,
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        for index in 0..state.slots.len() {
            state.mark(index, false);
        }
        for index in 0..state.slots.len() {
            // A child that failed to start is already scheduled for restart; start the others.
            if state.slots[index].cell.is_none() && state.slots[index].generation == 0 {
                self.start_child(&myself, state, index).await?;
            }
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            SupervisorMsg::Restart { index, generation } => {
                let Some(slot) = state.slots.get(index) else {
                    return Ok(());
                };
                if slot.generation != generation || slot.cell.is_some() || slot.finished {
                    return Ok(());
                }
                let last = match state.strategy {
                    Strategy::OneForOne => index,
                    Strategy::RestForOne => state.slots.len() - 1,
                };
                for i in index..=last {
                    let slot = &state.slots[i];
                    if slot.cell.is_none() && !slot.finished {
                        self.start_child(&myself, state, i).await?;
                        if state.slots[i].cell.is_none() {
                            // It failed again and is scheduled; its younger siblings wait for it.
                            break;
                        }
                    }
                }
            }
            SupervisorMsg::Children(reply) => {
                let children = state
                    .slots
                    .iter()
                    .map(|s| ChildInfo {
                        name: s.spec.name.clone(),
                        cell: s.cell.clone(),
                        restarts: s.restarts,
                    })
                    .collect();
                // The asker may have given up waiting; nothing to do then.
                let _ = reply.send(children);
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match event {
            SupervisionEvent::ActorFailed(cell, err) => {
                let Some(index) = state.slot_of(cell.get_id()) else {
                    return Ok(());
                };
                if state.slots[index].spec.restart == Restart::Temporary {
                    tracing::error!(actor = %state.slots[index].path, cause = %err, "temporary actor failed; not restarted");
                    state.slots[index].cell = None;
                    state.slots[index].finished = true;
                    state.forget(index);
                    return Ok(());
                }
                self.child_failed(&myself, state, index, err.to_string())
                    .await
            }
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                let Some(index) = state.slot_of(cell.get_id()) else {
                    return Ok(());
                };
                let reason = reason.unwrap_or_else(|| "no reason given".to_owned());
                if reason.starts_with(PLANNED_RESTART)
                    && state.slots[index].spec.restart != Restart::Temporary
                {
                    self.planned_restart(&myself, state, index, &reason).await;
                    return Ok(());
                }
                if state.slots[index].spec.restart == Restart::Permanent {
                    return self
                        .child_failed(
                            &myself,
                            state,
                            index,
                            format!("stopped ({reason}) but is permanent"),
                        )
                        .await;
                }
                tracing::info!(actor = %state.slots[index].path, %reason, "actor stopped cleanly; not restarted");
                state.slots[index].cell = None;
                state.slots[index].finished = true;
                state.forget(index);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        state.stop_children_from(0, "supervisor stopping").await;
        for index in 0..state.slots.len() {
            state.forget(index);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_childs_path_is_under_its_parent_without_repeating_it() {
        assert_eq!(super::child_path("edge", "uplink"), "edge/uplink");
        assert_eq!(super::child_path("edge", "edge/devices"), "edge/devices");
        assert_eq!(
            super::child_path("edge/devices", "edge/devices/sas/line-1"),
            "edge/devices/sas/line-1"
        );
        assert_eq!(super::child_path("edge", "edgeless"), "edge/edgeless");
    }
}
