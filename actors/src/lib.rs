//! Supervision for Outpost's actors, on ractor and nothing else.
//!
//! ractor gives parents supervision events but no restart strategies; [`supervisor`] adds them
//! (one-for-one, rest-for-one, backoff with jitter, an intensity limit that escalates). [`task`]
//! is the one way an actor owns a tokio task. [`metrics`] holds the process's one metric registry
//! (and the supervisors' own metrics); [`readiness`] what `/readyz` reports. What every Outpost
//! process does around its tree (logging, the admin server, start-up, stores) is
//! `outpost-process`.

pub mod backoff;
pub mod metrics;
pub mod readiness;
pub mod supervisor;
pub mod task;

pub use backoff::Backoff;
pub use readiness::Readiness;
pub use supervisor::{
    ChildInfo, ChildSpec, Intensity, PLANNED_RESTART, Restart, RestartPolicy, Strategy, Supervisor,
    SupervisorError, SupervisorMsg, SupervisorSpec,
};
pub use task::OwnedTask;
