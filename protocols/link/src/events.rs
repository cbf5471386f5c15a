//! Events and the events stream.

use serde::{Deserialize, Serialize};

use crate::command::CommandResult;

/// How an event may be treated under back-pressure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum EventClass {
    /// Meters, credits, handpays: never dropped; producers wait when the outbox is full.
    Money,
    /// Command results, operator-visible state changes: never dropped either.
    Audit,
    /// Periodic state: may be shed oldest-first when the outbox is full (counted, and replaced by
    /// a tombstone so the sequence stays without gaps).
    Telemetry,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventBody {
    /// From a `synthetic` device: opaque payload of a configured size.
    Synthetic { payload: Vec<u8> },
    /// A command finished (or was refused, or expired) on the edge.
    CommandResult(CommandResult),
    /// A telemetry event shed by the edge under back-pressure; only its place in the sequence
    /// remains.
    Shed,
}

/// One event, with the edge's own times.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Per-edge sequence number, from 1, without gaps.
    pub seq: u64,
    pub device: String,
    pub class: EventClass,
    /// Edge wall clock when the outbox accepted it, Unix µs (may be wrong on boards without an
    /// RTC; the hub stores its own receive time and the edge's offset beside it).
    pub wall_us: i64,
    /// Edge monotonic clock since its boot, µs.
    pub mono_us: u64,
    pub boot_id: u128,
    pub body: EventBody,
}

/// Events in sequence order, consecutive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventBatch {
    pub events: Vec<Event>,
}

/// Everything that travels on the events stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventFrame {
    /// Edge → hub.
    Batch(EventBatch),
    /// Hub → edge: every event up to and including `committed_seq` is durable at the hub.
    Ack { committed_seq: u64 },
}
