//! Control stream messages: the handshake, liveness and commands.

use serde::{Deserialize, Serialize};

use crate::command::CommandRequest;

/// A device an edge supervises, as announced in [`Hello`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceInfo {
    pub id: String,
    /// `synthetic`, `egm`, `tv`, `relay`.
    pub kind: String,
}

/// First frame from the edge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Must equal the id in the edge's client certificate.
    pub edge_id: String,
    /// Random per boot of the edge process; with `mono_us` it orders events across clock jumps.
    pub boot_id: u128,
    /// The edge's wall clock (Unix ms) when it sent this; the hub estimates the offset from it.
    pub wall_ms: i64,
    /// Highest sequence number the edge has assigned (0: none yet).
    pub last_seq: u64,
    /// The edge holds no event at or below this sequence (a hub acknowledged them). A hub whose
    /// committed sequence is lower lost events it had acknowledged: the gap is known from here.
    pub trimmed_seq: u64,
    pub devices: Vec<DeviceInfo>,
    pub software: String,
}

/// The hub's answer to [`Hello`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    /// Every event of this edge up to and including this sequence is durably committed at the hub;
    /// the edge resends from the next one.
    pub committed_seq: u64,
    /// The hub's wall clock (Unix ms) when it answered.
    pub hub_wall_ms: i64,
    /// The hub's estimate of `edge clock - hub clock`, in ms.
    pub clock_offset_ms: i64,
}

/// Everything that travels on the control stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ControlFrame {
    Hello(Hello),
    Welcome(Welcome),
    /// Hub → edge: the connection is refused after the TLS handshake (revoked, unknown, wrong id).
    Refused {
        reason: String,
    },
    Ping {
        nonce: u64,
    },
    Pong {
        nonce: u64,
    },
    /// Hub → edge: run this command (at most once).
    Command(CommandRequest),
    /// Edge → hub: the command is durably recorded at the edge; its result will arrive as an event.
    CommandAccepted {
        id: String,
    },
    /// Hub → edge: the bulk payload `id` arrived whole (length and SHA-256 checked) and is stored.
    BulkStored {
        id: String,
    },
    /// Hub → edge: the bulk payload `id` was refused (bad id, size or checksum); not sent again.
    BulkRefused {
        id: String,
        reason: String,
    },
    /// Edge → hub (since protocol 3), every few seconds: how far behind the edge is, so the hub
    /// knows it even when nobody can scrape the edge.
    Status(EdgeStatus),
}

/// What an edge reports of its outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EdgeStatus {
    /// Events stored and not yet acknowledged by the hub.
    pub outbox_depth_events: u64,
    /// Age of the oldest of them (0 when there is none).
    pub oldest_unacked_ms: u64,
}
