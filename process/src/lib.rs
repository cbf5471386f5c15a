//! What every Outpost process does the same way around its supervision tree: start-up chores and
//! shutdown signals ([`run`], re-exported here), logging ([`telemetry`]), process metrics
//! ([`metrics`]), the admin HTTP server ([`admin`]: `/healthz`, `/readyz`, `/metrics`), opening a
//! durable store that may refuse to open ([`store`]) and wall-clock readings ([`clock`]).
//! Supervision itself is `outpost-actors`.

pub mod admin;
pub mod allocator;
pub mod clock;
pub mod metrics;
pub mod store;
pub mod systemd;
pub mod telemetry;

mod run;

pub use metrics::register_process_metrics;
pub use run::*;
