//! `outpost-sas`: the SAS (Slot Accounting System) codec, sans-IO: bytes in, typed frames out, and
//! the reverse. No serial port and no clock inside; the line actor drives it.
//!
//! What is here: CRC-16/KERMIT ([`crc`]), typed BCD with validation and rollover-aware deltas
//! ([`bcd`]), host requests with the per-command request-length table ([`request`]), and the
//! streaming reply decoder that classifies what an EGM sent back against what was asked
//! ([`reply`]). Facts and vectors: `shared/reference/sas.md` and `sas_vectors.json`.
//!
//! Invariants: every encoded frame that carries a CRC has CRC residue 0; decoding never panics and
//! never reads past what it was given; a reply is only accepted if its address, command echo,
//! length and CRC all fit the outstanding request, and otherwise yields a typed [`ReplyError`].
//!
//! Also here: the host state machine of one line ([`host`]), a model of an EGM's SAS side
//! ([`egm`], which the simulator drives), and the wake-up-bit encoding and request framing for
//! byte streams ([`wire`]).

pub mod bcd;
pub mod crc;
pub mod data;
pub mod egm;
pub mod host;
pub mod meters;
pub mod names;
pub mod reply;
pub mod request;
pub mod wire;

pub use bcd::{Bcd, BcdError, MeterDelta};
pub use crc::{crc16_kermit, crc16_kermit_seeded, with_crc};
pub use data::{DataError, DataReply, data_reply};
pub use host::{HostConfig, HostEvent, Line, Transmit};
pub use reply::{Expectation, Reply, ReplyDecoder, ReplyError};
pub use request::{Frame, Request, RequestLength, request_length};
pub use wire::{Framed, Framing, MarkDecoder, RequestFramer, Symbol};
