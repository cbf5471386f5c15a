//! Exponential backoff with jitter, for restarts and reconnects.
//!
//! Invariant: a delay is never above `max`, jitter included, and never below zero; attempt 1 waits
//! about `initial`.

use std::time::Duration;

/// How long to wait before attempt `n` of something that keeps failing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
    /// Growth per consecutive failure (2.0 doubles).
    pub multiplier: f64,
    /// Spread as a fraction of the delay: 0.2 means ±20 %.
    pub jitter: f64,
}

impl Backoff {
    /// The delay before attempt `attempt` (1-based), with random jitter.
    pub fn delay(&self, attempt: u32) -> Duration {
        let unit = if self.jitter > 0.0 {
            rand::random_range(-1.0..=1.0)
        } else {
            0.0
        };
        self.delay_with(attempt, unit)
    }

    /// The delay before attempt `attempt` with the jitter fixed: `unit` in -1.0..=1.0 picks the
    /// point in the jitter range (deterministic, for tests and simulations).
    pub fn delay_with(&self, attempt: u32, unit: f64) -> Duration {
        let exponent = attempt.saturating_sub(1).min(64) as i32;
        let max = self.max.as_secs_f64();
        let base = (self.initial.as_secs_f64() * self.multiplier.max(1.0).powi(exponent)).min(max);
        let jittered = base * (1.0 + self.jitter.clamp(0.0, 1.0) * unit.clamp(-1.0, 1.0));
        Duration::from_secs_f64(jittered.clamp(0.0, max))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backoff(jitter: f64) -> Backoff {
        Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
            multiplier: 2.0,
            jitter,
        }
    }

    #[test]
    fn delay_doubles_per_attempt_until_the_cap() {
        let b = backoff(0.0);
        let ms: Vec<u128> = (1..=6).map(|n| b.delay(n).as_millis()).collect();
        assert_eq!(ms, [100, 200, 400, 800, 1000, 1000]);
    }

    #[test]
    fn jitter_spreads_around_the_delay_but_never_past_the_cap() {
        let b = backoff(0.5);
        assert_eq!(b.delay_with(2, -1.0), Duration::from_millis(100));
        assert_eq!(b.delay_with(2, 1.0), Duration::from_millis(300));
        assert_eq!(b.delay_with(10, 1.0), Duration::from_secs(1));
        for _ in 0..1000 {
            let d = b.delay(3);
            assert!(d >= Duration::from_millis(200) && d <= Duration::from_millis(600));
        }
    }

    #[test]
    fn huge_attempt_numbers_do_not_overflow() {
        assert_eq!(backoff(0.0).delay(u32::MAX), Duration::from_secs(1));
    }
}
