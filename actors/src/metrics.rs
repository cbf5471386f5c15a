//! Process-wide metrics. Every Outpost metric is registered in one process registry,
//! named `outpost_*` with units in the name; the process's own are the standard `process_*`.

use std::sync::LazyLock;

use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};

static REGISTRY: LazyLock<Registry> = LazyLock::new(Registry::new);

/// The registry `/metrics` serves (not prometheus's default registry, which anything linked in
/// could add to); `outpost_process::metrics` adds the standard `process_*` metrics to it.
pub fn registry() -> &'static Registry {
    &REGISTRY
}

/// Registers `collector` in the process registry. Registration fails only for a duplicate name,
/// which is a programming error caught by tests; it is logged rather than fatal.
pub fn register<C: prometheus::core::Collector + Clone + 'static>(collector: C) -> C {
    if let Err(err) = registry().register(Box::new(collector.clone())) {
        tracing::error!(%err, "metric registration failed");
    }
    collector
}

/// `outpost_actor_restarts_total{actor}`: restarts performed by supervisors, per child.
pub static ACTOR_RESTARTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "outpost_actor_restarts_total",
                "Restarts of a supervised actor after it failed.",
            ),
            &["actor"],
        )
        .expect("static metric definition is valid"),
    )
});

/// `outpost_actor_up{actor}`: 1 while a supervised actor runs, 0 while it is down or backing off.
pub static ACTOR_UP: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register(
        IntGaugeVec::new(
            Opts::new(
                "outpost_actor_up",
                "Whether a supervised actor is running (1) or down (0).",
            ),
            &["actor"],
        )
        .expect("static metric definition is valid"),
    )
});

/// The registry in Prometheus text format.
pub fn render() -> String {
    let families = registry().gather();
    prometheus::TextEncoder::new()
        .encode_to_string(&families)
        .unwrap_or_else(|err| format!("# metrics encoding failed: {err}\n"))
}
