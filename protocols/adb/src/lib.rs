//! `outpost-adb`: the ADB transport (both sides), sans-IO: messages with their 24-byte header
//! ([`message`]), RSA authentication in Android's key format ([`auth`]), and the `sync:` service's
//! push/stat protocol ([`sync`]), and the TV operations with their shell commands ([`tv`]). The edge's TV actor and the TV simulator drive it over TCP.
//!
//! Invariants: decoders never panic on any input and never buffer more than one message (or sync
//! packet) beyond their limits; everything encoded decodes to itself.

pub mod auth;
pub mod message;
pub mod sync;
pub mod tv;

pub use message::{Banner, Command, DecodeError, Decoder, Message};
pub use sync::{Side, SyncDecoder, SyncError, SyncPacket};
