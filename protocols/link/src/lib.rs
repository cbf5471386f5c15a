//! `outpost-link`: the edge↔hub wire protocol, sans-IO.
//!
//! This crate owns the bytes: frame layout, message types and their encoding. It has no sockets,
//! no clock and no QUIC; `outpost-edge` and `outpost-hub` drive it over quinn streams.
//!
//! Streams of one connection (ALPN [`ALPN`] names the protocol version):
//! - **control** (bidirectional, opened by the edge first): [`ControlFrame`] — `Hello` →
//!   `Welcome` (the hub's committed sequence for this edge), pings, commands and their acceptance.
//! - **events** (bidirectional, opened by the edge second): [`EventFrame`] — batches of events in
//!   sequence order from the edge, cumulative `Ack`s from the hub after its durable commit.
//! - **bulk** (unidirectional, one per payload): a [`BulkHeader`] frame then the raw bytes.
//!
//! Frame layout: `u32` big-endian length of what follows, one version byte ([`FRAME_VERSION`]),
//! then the bincode 2 encoding of the message. Decoding never panics and never allocates more than
//! the configured limit: a bad frame is a [`FrameError`], on which the caller closes the stream.

mod command;
mod control;
mod events;
mod frame;
#[cfg(feature = "quinn")]
pub mod io;
pub mod session;

pub use command::{CommandOutcome, CommandRequest, CommandResult, clip_text};
pub use control::{ControlFrame, DeviceInfo, EdgeStatus, Hello, Welcome};
pub use events::{
    Event, EventBatch, EventBody, EventClass, EventFrame, MAX_EVENT_BYTES, MeterReading,
    RelayEvent, SasEvent, TvEvent,
};
pub use frame::{
    BulkHeader, FrameDecoder, FrameError, MAX_BULK_BYTES, MAX_FRAME_BYTES, decode_one, encode,
    encode_len, valid_bulk_id,
};
pub use outpost_command;

/// ALPN of protocol version 3 (since 2, commands and their answers are typed: `outpost-command`;
/// since 3, the edge reports its outbox with `ControlFrame::Status`).
/// A hub that does not speak it refuses the connection in the TLS
/// handshake, before any frame is exchanged.
pub const ALPN: &[u8] = b"outpost/3";

/// The version byte every frame of this protocol version carries.
pub const FRAME_VERSION: u8 = 2;
