//! Supervision and process conventions shared by `outpost-edge`, `outpost-hub` and `outpost-sim`.
//!
//! ractor gives parents supervision events but no restart strategies; [`supervisor`] adds them
//! (one-for-one, rest-for-one, backoff with jitter, an intensity limit that escalates). The other
//! modules are what every Outpost process does the same way: logging ([`telemetry`]), metrics and
//! readiness ([`metrics`], [`readiness`]), the admin HTTP server ([`admin`]) and start-up chores
//! ([`process`]).

pub mod admin;
pub mod backoff;
pub mod clock;
pub mod metrics;
pub mod process;
pub mod readiness;
pub mod store;
pub mod supervisor;
pub mod telemetry;

pub use backoff::Backoff;
pub use readiness::Readiness;
pub use supervisor::{
    ChildInfo, ChildSpec, Intensity, PLANNED_RESTART, Restart, RestartPolicy, Strategy, Supervisor,
    SupervisorError, SupervisorMsg, SupervisorSpec,
};
