//! Latency the same way for every system: per event, from the publisher's (device's) call to the
//! commit or receipt at the center, counted into the buckets of the hub's own histogram
//! (`outpost_hub::DELIVERY_BUCKETS`), and read back as quantiles by one interpolation.
//!
//! Invariant: a peer's sink and Outpost's hub fill the same buckets, and [`Buckets::quantile`] is
//! the only way any of them is turned into a figure, so no system is rounded differently.

use outpost_hub::DELIVERY_BUCKETS;

/// Counts per bucket: `counts[i]` are observations ≤ `DELIVERY_BUCKETS[i]` and above the bound
/// before it (not cumulative); the last slot is above the largest bound.
#[derive(Debug, Clone, PartialEq)]
pub struct Buckets {
    counts: [u64; DELIVERY_BUCKETS.len() + 1],
}

impl Default for Buckets {
    fn default() -> Self {
        Self {
            counts: [0; DELIVERY_BUCKETS.len() + 1],
        }
    }
}

impl Buckets {
    /// Counts one latency of `seconds`.
    pub fn observe(&mut self, seconds: f64) {
        let slot = DELIVERY_BUCKETS.partition_point(|&bound| bound < seconds);
        self.counts[slot] += 1;
    }

    /// From Prometheus cumulative bucket counts (`le` → count), as the hub exports them.
    pub fn from_cumulative(cumulative: &[(f64, u64)]) -> Self {
        let mut buckets = Self::default();
        let mut below = 0u64;
        for (i, bound) in DELIVERY_BUCKETS.iter().enumerate() {
            let at = cumulative
                .iter()
                .find(|(le, _)| (le - bound).abs() < bound * 1e-9)
                .map_or(below, |(_, count)| *count);
            buckets.counts[i] = at.saturating_sub(below);
            below = below.max(at);
        }
        if let Some((_, total)) = cumulative.iter().find(|(le, _)| le.is_infinite()) {
            buckets.counts[DELIVERY_BUCKETS.len()] = total.saturating_sub(below);
        }
        buckets
    }

    /// What was observed in `self` and not yet in `earlier` (a window of a running counter).
    pub fn since(&self, earlier: &Self) -> Self {
        let mut delta = Self::default();
        for (slot, (now, then)) in delta
            .counts
            .iter_mut()
            .zip(self.counts.iter().zip(earlier.counts.iter()))
        {
            *slot = now.saturating_sub(*then);
        }
        delta
    }

    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The `q` quantile (0–1) in milliseconds, interpolated linearly inside its bucket as
    /// Prometheus' `histogram_quantile` does (the first bucket starts at 0); the largest bound if
    /// it falls above it; `None` without observations.
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * total as f64;
        let mut below = 0u64;
        for (i, &count) in self.counts.iter().enumerate() {
            if count > 0 && (below + count) as f64 >= rank {
                let Some(&upper) = DELIVERY_BUCKETS.get(i) else {
                    return DELIVERY_BUCKETS.last().map(|b| b * 1000.0);
                };
                let lower = if i == 0 { 0.0 } else { DELIVERY_BUCKETS[i - 1] };
                let within = (rank - below as f64) / count as f64;
                return Some((lower + (upper - lower) * within) * 1000.0);
            }
            below += count;
        }
        DELIVERY_BUCKETS.last().map(|b| b * 1000.0)
    }

    /// p50, p99 and p999 with the count, as JSON.
    pub fn summary(&self) -> serde_json::Value {
        serde_json::json!({
            "events": self.count(),
            "p50_ms": self.quantile_ms(0.50),
            "p99_ms": self.quantile_ms(0.99),
            "p999_ms": self.quantile_ms(0.999),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_quantile_is_interpolated_inside_its_bucket() {
        let mut b = Buckets::default();
        for _ in 0..100 {
            b.observe(0.00015); // in (0.1 ms, 0.2 ms]
        }
        assert!((b.quantile_ms(0.5).unwrap() - 0.15).abs() < 1e-9);
        assert!((b.quantile_ms(1.0).unwrap() - 0.2).abs() < 1e-9);
    }

    #[test]
    fn observing_and_reading_the_hubs_cumulative_buckets_agree() {
        let mut observed = Buckets::default();
        let samples = [0.00005, 0.0003, 0.0003, 0.0011, 0.02, 5000.0];
        for s in samples {
            observed.observe(s);
        }
        let cumulative: Vec<(f64, u64)> = DELIVERY_BUCKETS
            .iter()
            .map(|&le| (le, samples.iter().filter(|&&s| s <= le).count() as u64))
            .chain([(f64::INFINITY, samples.len() as u64)])
            .collect();
        assert_eq!(Buckets::from_cumulative(&cumulative), observed);
    }

    #[test]
    fn a_window_holds_only_what_came_after_its_start() {
        let mut before = Buckets::default();
        before.observe(0.0005);
        let mut after = before.clone();
        after.observe(0.002);
        let window = after.since(&before);
        assert_eq!(window.count(), 1);
        assert!(window.quantile_ms(0.5).unwrap() > 1.0);
    }

    #[test]
    fn no_observations_have_no_quantile() {
        assert_eq!(Buckets::default().quantile_ms(0.5), None);
    }
}
