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

/// The largest encoded frame of one [`Event`]: an edge refuses larger events, and the hub refuses
/// them from the network. Both stores keep events in chunks that must stay small (see
/// `outpost_storage::MAX_VALUE_BYTES`), and one event with the hub's additions must fit one chunk.
pub const MAX_EVENT_BYTES: usize = 4 * 1024;

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
    /// From a slot machine (SAS); `device` is the EGM's id.
    Sas(SasEvent),
    /// From an Android TV (ADB); `device` is the TV's id.
    Tv(TvEvent),
    /// From a power relay; `device` is the relay's id.
    Relay(RelayEvent),
}

/// What a TV reported or what happened to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TvEvent {
    /// Telemetry on the TV's schedule; `None` where the TV did not say.
    Telemetry {
        answers: bool,
        screen_on: Option<bool>,
        volume: Option<u8>,
        input: Option<String>,
        app: Option<String>,
        /// The edge board's own Ethernet link (`up`, `down`, `unknown`).
        ethernet: String,
    },
    /// The TV stopped or started answering over ADB.
    Link { up: bool },
    /// A self-healing step was taken (`reconnect`, `restart_app`, `reboot`, `power_cycle`).
    Recovery { step: String, detail: String },
}

/// A relay's state change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RelayEvent {
    State { on: bool, reason: String },
}

/// What a slot machine reported. Meter values are absolute readings (the hub computes deltas,
/// rollover-aware), so a lost or repeated reading never miscounts money.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SasEvent {
    /// An exception from a general poll (reference §3.8), acknowledged to the EGM only after this
    /// event was durable.
    Exception { code: u8 },
    /// A real-time event (LP 0E mode) with its data.
    RealTimeEvent { code: u8, data: Vec<u8> },
    /// Meters read with LP 2F (or LP 1C, game 0): `(code, value, BCD bytes)`.
    Meters {
        game: u16,
        meters: Vec<MeterReading>,
    },
    /// A pending handpay (LP 1B): amount in credits and the raw record.
    Handpay { credits: u64, raw: Vec<u8> },
    /// The answer to LP 21.
    RomSignature { seed: u16, signature: u16 },
    /// The host lost or regained the EGM.
    Link { up: bool },
    /// Any other data reply the edge asked for, raw.
    Data { command: u8, payload: Vec<u8> },
}

/// One meter of a reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeterReading {
    pub code: u8,
    pub value: u64,
    /// BCD bytes of the meter (4 or 5): where it rolls over.
    pub bytes: u8,
}

/// One event, with the edge's own times.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Per-edge sequence number, from 1, without gaps.
    pub seq: u64,
    pub device: String,
    pub class: EventClass,
    /// Edge wall clock when the device handed it to the outbox (its `append` call), Unix µs (may
    /// be wrong on boards without an RTC; the hub stores its own receive time and the edge's
    /// offset beside it). Not ordered by `seq`: concurrent devices call at the same time.
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
