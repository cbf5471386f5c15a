//! The link's rules as two pure state machines, one per side of a connection: no sockets, no
//! disk, no clock of their own (time is passed in). `outpost-edge`'s uplink and `outpost-hub`'s
//! link drive them over quinn, with the outbox and the event log as their storage; the
//! deterministic simulation (`tests/deterministic.rs`) drives them over a faulty in-memory network
//! with in-memory storage that forgets what was not committed when it "crashes".
//!
//! One connection carries two streams the sessions see: **control** (`Hello` → `Welcome`,
//! commands, pings, bulk notices) and **events** (batches from the edge, cumulative `Ack`s from the
//! hub). The streams are independent: a frame of one may overtake a frame of the other.
//!
//! Delivery rules (the invariants the simulation checks):
//! - The edge sends its outbox in sequence order, from the first sequence the hub lacks (the
//!   `Welcome`'s committed sequence + 1, or past what it already trimmed), with at most `window`
//!   events sent and not acknowledged; batches of one session are contiguous.
//! - The hub commits a batch's new events, and only then acknowledges the committed sequence;
//!   a sequence it has committed is a duplicate and dropped ([`Ledger`]); acknowledgements of one
//!   session never go back.
//! - The edge trims only what the hub acknowledged, and treats an acknowledgement of events it has
//!   not sent, or one that goes back, as a broken peer (the session ends; nothing is trimmed).
//! - The hub expects each batch to start no later than the next sequence it lacks: after the
//!   previous batch of the session, or for the first one after `max(committed, the edge's trimmed
//!   sequence from Hello)`. A batch that starts later means a frame was lost or reordered inside a
//!   stream (which QUIC never does): the session ends and the edge resends from the committed
//!   sequence. The only gap the hub ever accepts is the one `Hello` declares: events the edge
//!   trimmed because a hub acknowledged them, which this hub no longer has (restored from a
//!   backup) — counted by the ledger, never silent.
//! - The edge sends its outbox without holes; a hole (lost storage) ends the session with
//!   [`SessionError::OutboxHole`] rather than being sent around.

mod edge;
mod hub;
mod ledger;

pub use edge::{EdgeConfig, EdgeOutput, EdgeSession};
pub use hub::{HubConfig, HubOutput, HubSession};
pub use ledger::{Admission, Gap, Ledger};

/// Why a session ended, in protocol terms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error("expected {expected} first, got {got}")]
    Unexpected {
        expected: &'static str,
        got: &'static str,
    },
    #[error("no {expected} within {waited_ms} ms")]
    Timeout {
        expected: &'static str,
        waited_ms: u64,
    },
    #[error("the hub refused this edge: {reason}")]
    Refused { reason: String },
    #[error("Hello names edge {claimed} but the certificate is {certified}")]
    IdMismatch { claimed: String, certified: String },
    #[error("the hub acknowledged {ack}, but only {sent} was sent")]
    AckBeyondSent { ack: u64, sent: u64 },
    #[error("the hub's acknowledgement went back from {before} to {ack}")]
    AckWentBack { before: u64, ack: u64 },
    #[error("a batch of the edge is empty or its sequences do not increase one by one at {seq}")]
    BatchNotContiguous { seq: u64 },
    #[error("a batch starts at {first}, beyond {expected}, the next sequence the hub lacks")]
    BatchSkips { first: u64, expected: u64 },
    #[error(
        "the outbox's next event is {found}, but {expected} was expected: its storage lost events"
    )]
    OutboxHole { expected: u64, found: u64 },
    #[error("event {seq} of {bytes} bytes is larger than the {limit} bytes an event may have")]
    EventTooLarge {
        seq: u64,
        bytes: usize,
        limit: usize,
    },
}

/// The name of a control frame, for errors.
pub(crate) fn control_name(frame: &crate::ControlFrame) -> &'static str {
    use crate::ControlFrame as C;
    match frame {
        C::Hello(_) => "Hello",
        C::Welcome(_) => "Welcome",
        C::Refused { .. } => "Refused",
        C::Ping { .. } => "Ping",
        C::Pong { .. } => "Pong",
        C::Command(_) => "Command",
        C::CommandAccepted { .. } => "CommandAccepted",
        C::BulkStored { .. } => "BulkStored",
        C::BulkRefused { .. } => "BulkRefused",
        C::Status(_) => "Status",
    }
}
