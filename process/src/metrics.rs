//! Metrics every Outpost process exports about itself.

use prometheus::{IntGaugeVec, Opts};

use outpost_actors::metrics::{register, registry};

static PROCESS_METRICS: std::sync::Once = std::sync::Once::new();

/// Registers `outpost_build_info{binary,version}` and the process collector
/// (`outpost_process_resident_memory_bytes`, CPU seconds, open fds). Idempotent.
pub fn register_process_metrics(binary: &str) {
    PROCESS_METRICS.call_once(|| {
        let info = register(
            IntGaugeVec::new(
                Opts::new(
                    "outpost_build_info",
                    "Build of this Outpost process; always 1.",
                ),
                &["binary", "version"],
            )
            .expect("static metric definition is valid"),
        );
        info.with_label_values(&[binary, env!("CARGO_PKG_VERSION")])
            .set(1);
        let collector = prometheus::process_collector::ProcessCollector::new(
            std::process::id() as i32,
            "outpost",
        );
        if let Err(err) = registry().register(Box::new(collector)) {
            tracing::error!(%err, "process metrics registration failed");
        }
    });
}
