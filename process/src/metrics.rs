//! Metrics every Outpost process exports about itself.

use prometheus::{IntGaugeVec, Opts};

use outpost_actors::metrics::{register, registry};

static PROCESS_METRICS: std::sync::Once = std::sync::Once::new();

/// The commit this was built from (`git rev-parse --short=12 HEAD` at build time; `unknown`
/// outside a git checkout).
pub const COMMIT: &str = env!("OUTPOST_BUILD_COMMIT");

/// What `--version` prints after the binary's name: the version and the commit it was built from,
/// the same two `outpost_build_info` carries.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("OUTPOST_BUILD_COMMIT"),
    ")"
);

/// Registers `outpost_build_info{binary,version,commit}` and the standard process metrics
/// (`process_cpu_seconds_total`, `process_resident_memory_bytes`, `process_open_fds`, …: the
/// prometheus crate's collector, with the CPU time to the tick instead of whole seconds).
/// Idempotent.
pub fn register_process_metrics(binary: &str) {
    PROCESS_METRICS.call_once(|| {
        let info = register(
            IntGaugeVec::new(
                Opts::new(
                    "outpost_build_info",
                    "Build of this Outpost process; always 1.",
                ),
                &["binary", "version", "commit"],
            )
            .expect("static metric definition is valid"),
        );
        info.with_label_values(&[binary, env!("CARGO_PKG_VERSION"), COMMIT])
            .set(1);
        let collector = ProcessMetrics(prometheus::process_collector::ProcessCollector::for_self());
        if let Err(err) = registry().register(Box::new(collector)) {
            tracing::error!(%err, "process metrics registration failed");
        }
    });
}

/// The prometheus crate's process collector, with `process_cpu_seconds_total` read to the
/// kernel's tick (the crate counts whole seconds).
struct ProcessMetrics(prometheus::process_collector::ProcessCollector);

/// User and system CPU seconds of process `pid` (`None`: this one), from `/proc/<pid>/stat`
/// (USER_HZ = 100 on every Linux ABI this runs on). `None` if it cannot be read.
pub fn cpu_seconds(pid: Option<u32>) -> Option<f64> {
    let path = pid.map_or_else(
        || "/proc/self/stat".to_owned(),
        |p| format!("/proc/{p}/stat"),
    );
    let stat = std::fs::read_to_string(path).ok()?;
    // Fields after the command name (which may hold spaces) start after the last ") ".
    let fields: Vec<&str> = stat.rsplit_once(") ")?.1.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i)?.parse::<f64>().ok();
    Some((ticks(11)? + ticks(12)?) / 100.0)
}

impl prometheus::core::Collector for ProcessMetrics {
    fn desc(&self) -> Vec<&prometheus::core::Desc> {
        self.0.desc()
    }

    fn collect(&self) -> Vec<prometheus::proto::MetricFamily> {
        let mut families = self.0.collect();
        if let Some(seconds) = cpu_seconds(None) {
            for family in &mut families {
                if family.name() == "process_cpu_seconds_total" {
                    for metric in family.mut_metric() {
                        let mut counter = prometheus::proto::Counter::default();
                        counter.set_value(seconds);
                        metric.set_counter(counter);
                    }
                }
            }
        }
        families
    }
}
