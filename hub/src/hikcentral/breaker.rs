//! The circuit breaker for HikCentral's "database full" (code 5).
//!
//! Invariants: `threshold` consecutive code 5 answers open it; while open no job talks to
//! HikCentral; when the open period ends exactly one job probes; the probe's code 5 reopens it
//! for twice as long (capped), any other answer closes it; `outpost_hikcentral_db_full` is 1
//! exactly while it is open or probing.

use std::sync::Mutex;
use std::time::Duration;

use outpost_actors::backoff::Backoff;

use crate::metrics;

/// What a job may do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Go,
    /// The one probe after an open period.
    Probe,
    WaitUntil(i64),
}

#[derive(Debug, Default)]
struct BreakerState {
    consecutive: u32,
    openings: u32,
    /// 0 when closed.
    open_until_ms: i64,
    probing: bool,
}

#[derive(Debug)]
pub struct Breaker {
    threshold: u32,
    backoff: Backoff,
    state: Mutex<BreakerState>,
}

/// How an admitted call ended, as far as the breaker cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    DbFull,
    /// Any answer from HikCentral other than code 5.
    Answered,
    /// No answer at all (transport): says nothing about the database.
    Silent,
}

impl Breaker {
    pub fn new(threshold: u32, initial: Duration, max: Duration) -> Self {
        Breaker {
            threshold,
            backoff: Backoff {
                initial,
                max,
                multiplier: 2.0,
                jitter: 0.1,
            },
            state: Mutex::new(BreakerState::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BreakerState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn is_open(&self) -> bool {
        self.lock().open_until_ms != 0
    }

    pub fn admit(&self, now_ms: i64) -> Admission {
        let mut s = self.lock();
        if s.open_until_ms == 0 {
            Admission::Go
        } else if now_ms < s.open_until_ms {
            Admission::WaitUntil(s.open_until_ms + rand::random_range(0..250))
        } else if !s.probing {
            s.probing = true;
            Admission::Probe
        } else {
            Admission::WaitUntil(now_ms + 500 + rand::random_range(0..500))
        }
    }

    pub fn record(&self, admission: Admission, verdict: Verdict, now_ms: i64) {
        let mut s = self.lock();
        let probe = admission == Admission::Probe;
        if probe {
            s.probing = false;
        }
        match verdict {
            Verdict::DbFull => {
                s.consecutive += 1;
                if probe || (s.open_until_ms == 0 && s.consecutive >= self.threshold) {
                    s.openings += 1;
                    let delay = self.backoff.delay(s.openings);
                    s.open_until_ms = now_ms + delay.as_millis() as i64;
                    metrics::HIK_DB_FULL.set(1);
                    tracing::error!(
                        consecutive = s.consecutive,
                        reopen_in_ms = delay.as_millis() as u64,
                        "HikCentral database full (code 5): circuit breaker open, all provisioning paused"
                    );
                }
            }
            Verdict::Answered => {
                if s.open_until_ms != 0 && (probe || now_ms >= s.open_until_ms) {
                    tracing::warn!("HikCentral answers again: circuit breaker closed");
                    *s = BreakerState::default();
                    metrics::HIK_DB_FULL.set(0);
                } else if s.open_until_ms == 0 {
                    s.consecutive = 0;
                }
            }
            Verdict::Silent => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> Breaker {
        Breaker::new(3, Duration::from_millis(1000), Duration::from_millis(8000))
    }

    #[test]
    fn three_consecutive_code_5_open_it_and_one_probe_closes_it() {
        let b = breaker();
        for _ in 0..2 {
            b.record(Admission::Go, Verdict::DbFull, 0);
            assert_eq!(b.admit(0), Admission::Go);
        }
        b.record(Admission::Go, Verdict::DbFull, 0);
        assert!(matches!(b.admit(10), Admission::WaitUntil(t) if t >= 900));
        assert_eq!(b.admit(5_000), Admission::Probe);
        assert!(
            matches!(b.admit(5_000), Admission::WaitUntil(_)),
            "one probe at a time"
        );
        b.record(Admission::Probe, Verdict::Answered, 5_001);
        assert_eq!(b.admit(5_002), Admission::Go);
        assert!(!b.is_open());
    }

    #[test]
    fn a_failed_probe_reopens_it_for_longer() {
        let b = breaker();
        for _ in 0..3 {
            b.record(Admission::Go, Verdict::DbFull, 0);
        }
        assert_eq!(b.admit(2_000), Admission::Probe);
        b.record(Admission::Probe, Verdict::DbFull, 2_000);
        match b.admit(2_001) {
            Admission::WaitUntil(t) => assert!(t >= 2_000 + 1_800, "about 2 s: {t}"),
            other => panic!("still open: {other:?}"),
        }
    }

    #[test]
    fn an_answer_between_code_5s_resets_the_count() {
        let b = breaker();
        b.record(Admission::Go, Verdict::DbFull, 0);
        b.record(Admission::Go, Verdict::DbFull, 0);
        b.record(Admission::Go, Verdict::Answered, 0);
        b.record(Admission::Go, Verdict::DbFull, 0);
        assert_eq!(b.admit(0), Admission::Go);
    }

    #[test]
    fn a_silent_probe_leaves_it_open_for_the_next_probe() {
        let b = breaker();
        for _ in 0..3 {
            b.record(Admission::Go, Verdict::DbFull, 0);
        }
        assert_eq!(b.admit(2_000), Admission::Probe);
        b.record(Admission::Probe, Verdict::Silent, 2_000);
        assert_eq!(b.admit(2_001), Admission::Probe);
    }
}
