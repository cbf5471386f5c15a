//! The hub's metrics (names are a contract: dashboards and alerts use them).

use std::sync::LazyLock;

use outpost_actors::metrics::register;
use prometheus::{
    Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
};

fn counter(name: &str, help: &str) -> IntCounter {
    register(IntCounter::new(name, help).expect("static metric definition is valid"))
}

pub static COMMITTED_SEQ: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register(
        IntGaugeVec::new(
            Opts::new(
                "outpost_hub_committed_seq",
                "Highest sequence durably committed, per edge.",
            ),
            &["edge"],
        )
        .expect("static metric definition is valid"),
    )
});
pub static EVENTS_COMMITTED: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "outpost_hub_events_committed_total",
        "Events durably committed to the event log.",
    )
});
pub static DUPLICATES: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "outpost_hub_duplicates_total",
        "Events received again after they were committed (redelivery after reconnects); dropped.",
    )
});
pub static GAPS: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "outpost_hub_gaps_total",
        "Times an edge's events skipped sequence numbers: data lost before the hub. Page someone.",
    )
});
pub static MISSING_EVENTS: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "outpost_hub_missing_events_total",
        "Sequence numbers skipped by those gaps.",
    )
});
pub static SHED_EVENTS: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "outpost_hub_shed_events_total",
        "Telemetry events an edge shed under back-pressure (tombstones received).",
    )
});
pub static EDGES_CONNECTED: LazyLock<IntGauge> = LazyLock::new(|| {
    register(
        IntGauge::new("outpost_hub_edges_connected", "Edges with an open session.")
            .expect("static metric definition is valid"),
    )
});
pub static RECEIVE_WINDOW: LazyLock<IntGauge> = LazyLock::new(|| {
    register(
        IntGauge::new(
            "outpost_hub_link_receive_window_bytes",
            "Each connected edge's QUIC receive window now: link.receive_budget_mib shared among the connected edges.",
        )
        .expect("static metric definition is valid"),
    )
});
pub static REFUSED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "outpost_hub_refused_total",
                "Edge connections refused, by reason.",
            ),
            &["reason"],
        )
        .expect("static metric definition is valid"),
    )
});
pub static CONSOLE_LOGINS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "outpost_console_logins_total",
                "Console login attempts, by result (ok, wrong_password, locked_out, error).",
            ),
            &["result"],
        )
        .expect("static metric definition is valid"),
    )
});
const LOGIN_RESULTS: [&str; 4] = ["ok", "wrong_password", "locked_out", "error"];

/// Counts a login attempt answered with `status`.
pub fn console_login(status: u16) {
    let result = match status {
        200 => LOGIN_RESULTS[0],
        401 => LOGIN_RESULTS[1],
        429 => LOGIN_RESULTS[2],
        _ => LOGIN_RESULTS[3],
    };
    CONSOLE_LOGINS.with_label_values(&[result]).inc();
}

pub static COMMANDS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "outpost_commands_total",
                "Commands by their final status (succeeded, failed, expired, rejected, interrupted), counted once each when they reach it.",
            ),
            &["status"],
        )
        .expect("static metric definition is valid"),
    )
});
pub static COMMANDS_ISSUED: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "outpost_commands_issued_total",
        "Commands accepted by the API and stored (each ends counted once in outpost_commands_total).",
    )
});
pub static BULK_PAYLOADS: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "outpost_hub_bulk_payloads_total",
        "Bulk payloads (screenshots, files) received and stored.",
    )
});
pub static BULK_BYTES: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "outpost_hub_bulk_bytes_total",
        "Bytes of bulk payloads received and stored.",
    )
});
pub static COMMIT_SECONDS: LazyLock<Histogram> = LazyLock::new(|| {
    register(
        Histogram::with_opts(
            HistogramOpts::new(
                "outpost_hub_eventlog_commit_seconds",
                "Time of one event-log group commit: sled flush plus fdatasync.",
            )
            .buckets(vec![
                0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1.0,
            ]),
        )
        .expect("static metric definition is valid"),
    )
});
/// The bucket bounds (seconds) of `outpost_hub_event_delivery_seconds`: 0.1 ms steps to 1 ms, so a
/// benchmark can read sub-millisecond quantiles from it, then coarser up to an hour of backlog.
pub const DELIVERY_BUCKETS: [f64; 36] = [
    0.0001, 0.0002, 0.0003, 0.0004, 0.0005, 0.0006, 0.0007, 0.0008, 0.0009, 0.001, 0.0012, 0.0014,
    0.0016, 0.0018, 0.002, 0.0025, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05,
    0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0, 300.0, 1800.0, 3600.0,
];
pub static DELIVERY_SECONDS: LazyLock<Histogram> = LazyLock::new(|| {
    register(
        Histogram::with_opts(
            HistogramOpts::new(
                "outpost_hub_event_delivery_seconds",
                "Per event, from the device's append call at the edge to its durable commit at \
                 the hub, by the two wall clocks (between machines it includes their difference, \
                 which NTP keeps to milliseconds); a backlog being delivered shows as its age.",
            )
            .buckets(DELIVERY_BUCKETS.to_vec()),
        )
        .expect("static metric definition is valid"),
    )
});

/// Registers every hub metric now, so each is exported (at 0) from start-up rather than from its
/// first event: an alert on `outpost_hub_gaps_total` must see the series before the first gap.
pub static HIK_REQUESTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "outpost_hikcentral_requests_total",
                "Requests to HikCentral by endpoint and answer code (a business or gateway code, \
                 http_<status>, not_sent, no_answer, undecodable or pin_mismatch).",
            ),
            &["endpoint", "code"],
        )
        .expect("static metric definition is valid"),
    )
});
pub static HIK_REQUEST_SECONDS: LazyLock<prometheus::HistogramVec> = LazyLock::new(|| {
    register(
        prometheus::HistogramVec::new(
            HistogramOpts::new(
                "outpost_hikcentral_request_seconds",
                "Time from sending a request to HikCentral to its answer (or failure).",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ]),
            &["endpoint"],
        )
        .expect("static metric definition is valid"),
    )
});
pub static HIK_JOBS: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register(
        IntGaugeVec::new(
            Opts::new(
                "outpost_hikcentral_jobs",
                "Guest visits by provisioning state (blocked ones wait for an operator).",
            ),
            &["state"],
        )
        .expect("static metric definition is valid"),
    )
});
pub static HIK_DB_FULL: LazyLock<IntGauge> = LazyLock::new(|| {
    register(
        IntGauge::new(
            "outpost_hikcentral_db_full",
            "1 while HikCentral answers code 5 (database full) and the circuit breaker holds all \
             provisioning; alert on it.",
        )
        .expect("static metric definition is valid"),
    )
});

pub static PROJECTION_LAG_EVENTS: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register(
        IntGaugeVec::new(
            Opts::new(
                "outpost_projection_lag_events",
                "Committed events a projection has not applied yet.",
            ),
            &["projection"],
        )
        .expect("static metric definition is valid"),
    )
});
pub static PROJECTION_LAG_SECONDS: LazyLock<prometheus::GaugeVec> = LazyLock::new(|| {
    register(
        prometheus::GaugeVec::new(
            Opts::new(
                "outpost_projection_lag_seconds",
                "How long the oldest committed event a projection has not applied has waited (0 when caught up).",
            ),
            &["projection"],
        )
        .expect("static metric definition is valid"),
    )
});
pub static PROJECTION_APPLIED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "outpost_projection_events_applied_total",
                "Events a projection applied.",
            ),
            &["projection"],
        )
        .expect("static metric definition is valid"),
    )
});
pub static PROJECTION_POISON: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "outpost_projection_poison_events_total",
                "Events a projection could not apply: kept for inspection, skipped.",
            ),
            &["projection"],
        )
        .expect("static metric definition is valid"),
    )
});

pub static ALERTS_FIRING: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register(
        IntGaugeVec::new(
            Opts::new(
                "outpost_alerts_firing",
                "1 while an alert of this rule fires for this device (device empty for site- or hub-wide ones).",
            ),
            &["rule", "site", "device"],
        )
        .expect("static metric definition is valid"),
    )
});
pub static WEBHOOK_DELIVERIES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "outpost_alert_webhook_deliveries_total",
                "Alert webhook deliveries by result (ok, failed: retried).",
            ),
            &["result"],
        )
        .expect("static metric definition is valid"),
    )
});

fn per_edge_counter(name: &str, help: &str) -> IntCounterVec {
    register(
        IntCounterVec::new(Opts::new(name, help), &["edge"])
            .expect("static metric definition is valid"),
    )
}

fn per_edge_gauge(name: &str, help: &str) -> IntGaugeVec {
    register(
        IntGaugeVec::new(Opts::new(name, help), &["edge"])
            .expect("static metric definition is valid"),
    )
}

pub static EDGE_CONNECTED: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    per_edge_gauge(
        "outpost_hub_edge_connected",
        "1 while the edge has an open session with this hub, per edge (the hub's own view: no need to scrape the edge).",
    )
});
pub static EDGE_LAST_SEEN: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    per_edge_gauge(
        "outpost_hub_edge_last_seen_timestamp_seconds",
        "When the last frame from the edge came (Unix seconds; 0: not since this hub started), per edge.",
    )
});
pub static EDGE_GAPS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    per_edge_counter(
        "outpost_hub_edge_gaps_total",
        "Times the edge's events skipped sequence numbers (data lost before the hub), per edge.",
    )
});
pub static EDGE_MISSING_EVENTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    per_edge_counter(
        "outpost_hub_edge_missing_events_total",
        "Sequence numbers skipped by those gaps, per edge.",
    )
});
pub static EDGE_DUPLICATES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    per_edge_counter(
        "outpost_hub_edge_duplicates_total",
        "Events the edge sent again after they were committed (dropped), per edge.",
    )
});
pub static EDGE_SHED_EVENTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    per_edge_counter(
        "outpost_hub_edge_shed_events_total",
        "Telemetry events the edge shed under back-pressure (tombstones received), per edge.",
    )
});

/// Exports every per-edge series of `edge` (at 0 when new), so alerts and panels see an edge
/// from the moment the hub knows it.
pub fn edge_known(edge: &str) {
    EDGE_CONNECTED.with_label_values(&[edge]);
    EDGE_LAST_SEEN.with_label_values(&[edge]);
    for counter in [
        &EDGE_GAPS,
        &EDGE_MISSING_EVENTS,
        &EDGE_DUPLICATES,
        &EDGE_SHED_EVENTS,
    ] {
        counter.with_label_values(&[edge]).inc_by(0);
    }
    COMMITTED_SEQ.with_label_values(&[edge]);
}

pub static EDGE_OUTBOX_DEPTH: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register(
        IntGaugeVec::new(
            Opts::new(
                "outpost_hub_edge_outbox_depth_events",
                "Events stored at the edge and not yet acknowledged, as the edge last reported (every 5 s while connected).",
            ),
            &["edge"],
        )
        .expect("static metric definition is valid"),
    )
});
pub static EDGE_OLDEST_UNACKED: LazyLock<prometheus::GaugeVec> = LazyLock::new(|| {
    register(
        prometheus::GaugeVec::new(
            Opts::new(
                "outpost_hub_edge_oldest_unacked_seconds",
                "Age of the oldest event the edge holds unacknowledged, as it last reported.",
            ),
            &["edge"],
        )
        .expect("static metric definition is valid"),
    )
});

fn gauge_vec(name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    register(
        IntGaugeVec::new(Opts::new(name, help), labels).expect("static metric definition is valid"),
    )
}

pub static MSSQL_LAG_EVENTS: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    gauge_vec(
        "outpost_mssql_lag_events",
        "What the hub holds and SQL Server does not yet, per stream: events (events) or projection keys changed (accounting, handpays) or readings entered by hand (manual).",
        &["stream"],
    )
});
pub static MSSQL_LAST_SUCCESS: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    gauge_vec(
        "outpost_mssql_last_success_timestamp_seconds",
        "When a write to SQL Server last succeeded (Unix seconds; 0: never), per stream.",
        &["stream"],
    )
});
pub static MSSQL_BLOCKED: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    gauge_vec(
        "outpost_mssql_blocked",
        "1 while a stream's writes fail with an error a retry cannot fix (login, schema, full database).",
        &["stream"],
    )
});
pub static MSSQL_ERRORS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "outpost_mssql_errors_total",
                "Failed writes to SQL Server, by class (retry or blocking).",
            ),
            &["class"],
        )
        .expect("static metric definition is valid"),
    )
});
pub static MSSQL_SKIPPED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "outpost_mssql_skipped_keys_total",
                "Projection keys whose stored value did not decode, skipped by a stream (logged with the key).",
            ),
            &["stream"],
        )
        .expect("static metric definition is valid"),
    )
});
pub static MSSQL_ROWS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "outpost_mssql_rows_written_total",
                "Rows written to SQL Server (replayed rows it already had included), per stream.",
            ),
            &["stream"],
        )
        .expect("static metric definition is valid"),
    )
});

pub static PROJECTION_TREES_ABANDONED: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "outpost_projection_stores_abandoned_total",
        "Projection trees sled panicked on as they opened, left for a new tree rebuilt from the log.",
    )
});

pub fn register_all() {
    outpost_process::store::register_store("hub");
    LazyLock::force(&COMMITTED_SEQ);
    LazyLock::force(&EVENTS_COMMITTED);
    LazyLock::force(&DUPLICATES);
    LazyLock::force(&GAPS);
    LazyLock::force(&MISSING_EVENTS);
    LazyLock::force(&SHED_EVENTS);
    LazyLock::force(&EDGES_CONNECTED);
    LazyLock::force(&RECEIVE_WINDOW);
    LazyLock::force(&REFUSED);
    LazyLock::force(&COMMANDS);
    LazyLock::force(&COMMIT_SECONDS);
    LazyLock::force(&DELIVERY_SECONDS);
    LazyLock::force(&BULK_PAYLOADS);
    LazyLock::force(&BULK_BYTES);
    LazyLock::force(&HIK_REQUESTS);
    LazyLock::force(&HIK_REQUEST_SECONDS);
    LazyLock::force(&HIK_DB_FULL);
    LazyLock::force(&ALERTS_FIRING);
    LazyLock::force(&PROJECTION_TREES_ABANDONED);
    LazyLock::force(&EDGE_OUTBOX_DEPTH);
    LazyLock::force(&EDGE_OLDEST_UNACKED);
    for result in ["ok", "failed"] {
        WEBHOOK_DELIVERIES.with_label_values(&[result]).inc_by(0);
    }
    for reason in crate::link::REFUSAL_REASONS {
        REFUSED.with_label_values(&[reason]).inc_by(0);
    }
    for result in LOGIN_RESULTS {
        CONSOLE_LOGINS.with_label_values(&[result]).inc_by(0);
    }
    LazyLock::force(&COMMANDS_ISSUED);
    for status in crate::commands::CommandStatus::ALL
        .into_iter()
        .filter(|s| s.is_final())
    {
        COMMANDS.with_label_values(&[status.as_str()]).inc_by(0);
    }
    for name in outpost_domain::projection::NAMES {
        PROJECTION_LAG_EVENTS.with_label_values(&[name]).set(0);
        PROJECTION_LAG_SECONDS.with_label_values(&[name]).set(0.0);
        PROJECTION_APPLIED.with_label_values(&[name]).inc_by(0);
        PROJECTION_POISON.with_label_values(&[name]).inc_by(0);
    }
    for state in crate::hikcentral::visits::VisitState::ALL {
        HIK_JOBS.with_label_values(&[state.as_str()]).set(0);
    }
    for class in crate::mssql::ErrorClass::ALL {
        MSSQL_ERRORS.with_label_values(&[class.as_str()]).inc_by(0);
    }
    for stream in crate::mssql::STREAMS {
        MSSQL_LAG_EVENTS.with_label_values(&[stream]).set(0);
        MSSQL_LAST_SUCCESS.with_label_values(&[stream]).set(0);
        MSSQL_BLOCKED.with_label_values(&[stream]).set(0);
        MSSQL_ROWS.with_label_values(&[stream]).inc_by(0);
        MSSQL_SKIPPED.with_label_values(&[stream]).inc_by(0);
    }
}
