//! The edge's metrics (names are a contract: dashboards and alerts use them).

use std::sync::LazyLock;
use std::sync::atomic::{AtomicI64, Ordering};

use outpost_actors::metrics::register;
use prometheus::{Gauge, Histogram, HistogramOpts, IntCounter, IntGauge};

fn gauge(name: &str, help: &str) -> IntGauge {
    register(IntGauge::new(name, help).expect("static metric definition is valid"))
}

pub static OUTBOX_LAST_SEQ: LazyLock<IntGauge> = LazyLock::new(|| {
    gauge(
        "outpost_outbox_last_seq",
        "Highest sequence number assigned by the outbox.",
    )
});
pub static OUTBOX_ACKED_SEQ: LazyLock<IntGauge> = LazyLock::new(|| {
    gauge(
        "outpost_outbox_acked_seq",
        "Highest sequence number the hub acknowledged as committed.",
    )
});
pub static OUTBOX_DEPTH: LazyLock<IntGauge> = LazyLock::new(|| {
    gauge(
        "outpost_outbox_depth_events",
        "Events stored and not yet acknowledged by the hub.",
    )
});
pub static OUTBOX_BYTES: LazyLock<IntGauge> = LazyLock::new(|| {
    gauge(
        "outpost_outbox_bytes",
        "Encoded bytes of the events stored in the outbox.",
    )
});
pub static OUTBOX_BUDGET: LazyLock<IntGauge> = LazyLock::new(|| {
    gauge(
        "outpost_outbox_budget_bytes",
        "Bytes of events the outbox may store now: its budget, or less when the disk holds less.",
    )
});
pub static OUTBOX_DISK_FLOOR: LazyLock<IntGauge> = LazyLock::new(|| {
    gauge(
        "outpost_outbox_disk_below_reserve",
        "1 while the file system's free space is under the reserve kept for sled and others: \
         nothing more is stored until the outbox is delivered and compacted.",
    )
});
pub static OUTBOX_WAITING: LazyLock<IntGauge> = LazyLock::new(|| {
    gauge(
        "outpost_outbox_waiting_appends",
        "Money and audit appends waiting for the outbox to have room.",
    )
});
pub static OUTBOX_OLDEST_UNACKED: LazyLock<Gauge> = LazyLock::new(|| {
    register(
        Gauge::new(
            "outpost_outbox_oldest_unacked_seconds",
            "Age of the oldest event not yet acknowledged by the hub (0 when none).",
        )
        .expect("static metric definition is valid"),
    )
});
pub static OUTBOX_FLUSH_SECONDS: LazyLock<Histogram> = LazyLock::new(|| {
    register(
        Histogram::with_opts(
            HistogramOpts::new(
                "outpost_outbox_flush_seconds",
                "Time of one group commit: sled flush plus fdatasync.",
            )
            .buckets(vec![
                0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1.0,
            ]),
        )
        .expect("static metric definition is valid"),
    )
});
pub static OUTBOX_SHED: LazyLock<IntCounter> = LazyLock::new(|| {
    register(
        IntCounter::new(
            "outpost_outbox_shed_total",
            "Telemetry events replaced by tombstones because the outbox was full.",
        )
        .expect("static metric definition is valid"),
    )
});
pub static UPLINK_CONNECTED: LazyLock<IntGauge> = LazyLock::new(|| {
    gauge(
        "outpost_uplink_connected",
        "1 while the edge has a session with the hub.",
    )
});
pub static UPLINK_RTT: LazyLock<Gauge> = LazyLock::new(|| {
    register(
        Gauge::new(
            "outpost_uplink_rtt_seconds",
            "Round-trip time to the hub, as QUIC measures it; NaN while there is no session.",
        )
        .expect("static metric definition is valid"),
    )
});
pub static UPLINK_RECONNECTS: LazyLock<IntCounter> = LazyLock::new(|| {
    register(
        IntCounter::new(
            "outpost_uplink_reconnects_total",
            "Sessions with the hub that were lost and attempted again.",
        )
        .expect("static metric definition is valid"),
    )
});

pub static OUTBOX_COMPACTIONS: LazyLock<IntCounter> = LazyLock::new(|| {
    register(
        IntCounter::new(
            "outpost_outbox_compactions_total",
            "Times the empty outbox was rebuilt to give back the disk a backlog used.",
        )
        .expect("static metric definition is valid"),
    )
});

/// Wall ms of the oldest unacknowledged event, or i64::MIN for none.
static OLDEST_WALL_MS: AtomicI64 = AtomicI64::new(i64::MIN);

pub(crate) fn set_oldest_unacked(wall_ms: Option<i64>) {
    OLDEST_WALL_MS.store(wall_ms.unwrap_or(i64::MIN), Ordering::Relaxed);
    refresh_oldest_unacked();
}

/// Recomputes the age gauge from the stored wall time (called on a timer, so the age grows while
/// nothing is acknowledged).
pub fn refresh_oldest_unacked() {
    let oldest = OLDEST_WALL_MS.load(Ordering::Relaxed);
    let age = if oldest == i64::MIN {
        0.0
    } else {
        ((outpost_process::clock::unix_ms() - oldest).max(0) as f64) / 1000.0
    };
    OUTBOX_OLDEST_UNACKED.set(age);
}

/// Registers every edge metric now, so each is exported from start-up.
pub fn register_all() {
    outpost_process::store::register_store("outbox");
    // Every TV operation's histogram exists from start-up (empty).
    for op in outpost_command::TvCommand::OPERATIONS {
        TV_OP_SECONDS.with_label_values(&[op.name]);
    }
    // No session yet, so no round trip to report (NaN, not a made-up 0).
    UPLINK_RTT.set(f64::NAN);
    LazyLock::force(&OUTBOX_LAST_SEQ);
    LazyLock::force(&OUTBOX_ACKED_SEQ);
    LazyLock::force(&OUTBOX_DEPTH);
    LazyLock::force(&OUTBOX_BYTES);
    LazyLock::force(&OUTBOX_WAITING);
    LazyLock::force(&OUTBOX_BUDGET);
    LazyLock::force(&OUTBOX_DISK_FLOOR);
    LazyLock::force(&OUTBOX_OLDEST_UNACKED);
    LazyLock::force(&OUTBOX_FLUSH_SECONDS);
    LazyLock::force(&OUTBOX_SHED);
    LazyLock::force(&UPLINK_CONNECTED);
    LazyLock::force(&UPLINK_RTT);
    LazyLock::force(&UPLINK_RECONNECTS);
    LazyLock::force(&OUTBOX_COMPACTIONS);
    LazyLock::force(&SAS_POLLS);
    LazyLock::force(&SAS_POLL_SECONDS);
    LazyLock::force(&SAS_LINK_UP);
    LazyLock::force(&SAS_CHIRPS);
    LazyLock::force(&SAS_EVENTS);
    LazyLock::force(&TV_UP);
    LazyLock::force(&TV_OP_SECONDS);
    LazyLock::force(&RELAY_STATE);
    LazyLock::force(&SAS_LAST_POLL);
    LazyLock::force(&TV_LAST_SEEN);
    LazyLock::force(&TV_RECOVERY_STEPS);
}

/// Exports a TV's series at 0 when its actor starts (before anything happened to it).
pub fn tv_started(device: &str) {
    TV_UP.with_label_values(&[device]).set(0);
    TV_LAST_SEEN.with_label_values(&[device]);
    for step in crate::devices::tv::STEPS {
        TV_RECOVERY_STEPS
            .with_label_values(&[device, step])
            .inc_by(0);
    }
}

/// Exports a SAS line's and its EGMs' series at 0 when the line starts.
pub fn sas_line_started<'a>(line: &str, devices: impl IntoIterator<Item = &'a str>) {
    SAS_POLL_SECONDS.with_label_values(&[line]);
    SAS_CHIRPS.with_label_values(&[line]).inc_by(0);
    for device in devices {
        SAS_LAST_POLL.with_label_values(&[device]);
        SAS_LINK_UP.with_label_values(&[device]);
        for result in SAS_POLL_RESULTS {
            SAS_POLLS.with_label_values(&[device, result]).inc_by(0);
        }
    }
}

/// Every `result` of `outpost_sas_polls_total`, each exported at 0 from a line's start so
/// `increase()` sees the first failed poll.
pub const SAS_POLL_RESULTS: [&str; 6] = ["ok", "busy", "nack", "no_reply", "bad_crc", "error"];

pub static TV_UP: LazyLock<prometheus::IntGaugeVec> = LazyLock::new(|| {
    register(
        prometheus::IntGaugeVec::new(
            prometheus::Opts::new(
                "outpost_tv_up",
                "1 while the TV answers over ADB and its player app is in front.",
            ),
            &["device"],
        )
        .expect("static metric definition is valid"),
    )
});
pub static TV_OP_SECONDS: LazyLock<prometheus::HistogramVec> = LazyLock::new(|| {
    register(
        prometheus::HistogramVec::new(
            HistogramOpts::new(
                "outpost_tv_op_seconds",
                "Time a TV operation took on the edge (connecting included), by operation.",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            &["op"],
        )
        .expect("static metric definition is valid"),
    )
});
pub static RELAY_STATE: LazyLock<prometheus::IntGaugeVec> = LazyLock::new(|| {
    register(
        prometheus::IntGaugeVec::new(
            prometheus::Opts::new("outpost_relay_state", "1 while the relay is on (powered)."),
            &["device"],
        )
        .expect("static metric definition is valid"),
    )
});
pub static TV_RECOVERY_STEPS: LazyLock<prometheus::IntCounterVec> = LazyLock::new(|| {
    register(
        prometheus::IntCounterVec::new(
            prometheus::Opts::new(
                "outpost_tv_recovery_steps_total",
                "Self-healing steps taken, by TV and step (reconnect, restart_app, reboot, power_cycle).",
            ),
            &["device", "step"],
        )
        .expect("static metric definition is valid"),
    )
});

pub static SAS_POLLS: LazyLock<prometheus::IntCounterVec> = LazyLock::new(|| {
    register(
        prometheus::IntCounterVec::new(
            prometheus::Opts::new(
                "outpost_sas_polls_total",
                "SAS polls by EGM and result (ok, busy, nack, no_reply, bad_crc, error).",
            ),
            &["device", "result"],
        )
        .expect("static metric definition is valid"),
    )
});
pub static SAS_POLL_SECONDS: LazyLock<prometheus::HistogramVec> = LazyLock::new(|| {
    register(
        prometheus::HistogramVec::new(
            HistogramOpts::new(
                "outpost_sas_poll_seconds",
                "Time from sending a SAS poll to the verdict on its reply (timeouts included), by line.",
            )
            .buckets(vec![
                0.002, 0.005, 0.01, 0.015, 0.02, 0.03, 0.04, 0.05, 0.075, 0.1, 0.2, 0.5,
            ]),
            &["line"],
        )
        .expect("static metric definition is valid"),
    )
});
pub static SAS_LAST_POLL: LazyLock<prometheus::GaugeVec> = LazyLock::new(|| {
    register(
        prometheus::GaugeVec::new(
            prometheus::Opts::new(
                "outpost_sas_last_poll_timestamp_seconds",
                "When the EGM last answered a poll well (unix seconds); 0 before its first answer.",
            ),
            &["device"],
        )
        .expect("static metric definition is valid"),
    )
});
pub static TV_LAST_SEEN: LazyLock<prometheus::GaugeVec> = LazyLock::new(|| {
    register(
        prometheus::GaugeVec::new(
            prometheus::Opts::new(
                "outpost_tv_last_seen_timestamp_seconds",
                "When the TV last answered over ADB (unix seconds); 0 before its first answer.",
            ),
            &["device"],
        )
        .expect("static metric definition is valid"),
    )
});
pub static SAS_LINK_UP: LazyLock<prometheus::IntGaugeVec> = LazyLock::new(|| {
    register(
        prometheus::IntGaugeVec::new(
            prometheus::Opts::new(
                "outpost_sas_link_up",
                "1 while the EGM answers its polls, 0 after link_down_after failed polls.",
            ),
            &["device"],
        )
        .expect("static metric definition is valid"),
    )
});
pub static SAS_CHIRPS: LazyLock<prometheus::IntCounterVec> = LazyLock::new(|| {
    register(
        prometheus::IntCounterVec::new(
            prometheus::Opts::new(
                "outpost_sas_chirps_total",
                "Loop-break chirps heard on a SAS line (an EGM not polled for 5 s).",
            ),
            &["line"],
        )
        .expect("static metric definition is valid"),
    )
});
pub static SAS_EVENTS: LazyLock<prometheus::IntCounterVec> = LazyLock::new(|| {
    register(
        prometheus::IntCounterVec::new(
            prometheus::Opts::new(
                "outpost_sas_events_total",
                "SAS events made durable in the outbox, by EGM and kind.",
            ),
            &["device", "kind"],
        )
        .expect("static metric definition is valid"),
    )
});
