//! The simulated devices and services Outpost's demo, tests and benchmarks run against: slot
//! machines on SAS lines ([`egm`]), Android TVs speaking ADB ([`tv`]) and HikCentral's Artemis API
//! ([`hikcentral`]).
//!
//! Invariant: simulators depend only on protocol crates (`outpost-sas`, `outpost-sas-port`,
//! `outpost-adb`, `outpost-artemis`), never on the edge or the hub they are used to test, so the
//! runtime and its simulator cannot share one misunderstanding through shared runtime code; each
//! is also checked against an independent peer (`docs/testing.md`).

pub mod egm;
pub mod hikcentral;
pub mod tv;

/// Unix time in milliseconds (0 before 1970).
pub(crate) fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
