//! `outpost-domain`: what the hub understands of the events it stores, without I/O.
//!
//! - [`readable`]: every event in the one JSON shape people, the console and MSSQL read.
//! - [`devices`]: each device's state now; [`accounting`]: meters in money, hourly buckets under
//!   gaming days, reconciliation; [`calendar`], [`money`], [`site`]: the floor's terms.
//! - [`projection`]: those, as projections of the event log — pure state machines the hub's
//!   projection actors drive from durable cursors.
//!
//! Invariant: everything here is a function of the events (in each edge's sequence order) and
//! the hub's config. Nothing reads a clock, a disk or the network, so a rebuild from the log
//! gives the same bytes as the live run.

pub mod accounting;
pub mod alerts;
pub mod calendar;
pub mod devices;
pub mod money;
pub mod projection;
pub mod readable;
pub mod site;

use outpost_link::Event;
use serde::{Deserialize, Serialize};

/// An event as the hub keeps it: the edge's event and the hub's view of when it arrived.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredEvent {
    pub event: Event,
    /// Hub wall clock when committed, Unix µs.
    pub hub_received_us: i64,
    /// The edge's clock offset (edge − hub, ms) estimated at the handshake of its session.
    pub clock_offset_ms: i64,
}

impl StoredEvent {
    /// When it happened on the hub's clock: the edge's time corrected by the edge's offset.
    pub fn happened_us(&self) -> i64 {
        self.event
            .wall_us
            .saturating_sub(self.clock_offset_ms.saturating_mul(1_000))
    }
}
