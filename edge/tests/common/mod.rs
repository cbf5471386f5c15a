//! What the outbox test binaries share: limits, payloads, appends in order.

#![allow(dead_code, clippy::unwrap_used)] // Each test binary uses part of it.

use outpost_edge::{Outbox, OutboxLimits};
use outpost_link::{EventBody, EventClass};

/// Limits with `budget_bytes`, batches of up to 1024 and no compaction.
pub fn limits(budget_bytes: u64) -> OutboxLimits {
    OutboxLimits {
        budget_bytes,
        max_batch: 1024,
        compact_above_bytes: u64::MAX,
    }
}

/// A synthetic event with an `n`-byte payload.
pub fn synthetic(n: usize) -> EventBody {
    EventBody::Synthetic {
        payload: vec![7; n],
    }
}

/// Appends `count` events of `bytes` each, one after the other; returns the last sequence.
pub async fn append_each(
    outbox: &Outbox,
    device: &str,
    class: EventClass,
    count: usize,
    bytes: usize,
) -> u64 {
    let mut last = 0;
    for _ in 0..count {
        last = outbox
            .append(device, class, synthetic(bytes))
            .await
            .unwrap();
    }
    last
}
