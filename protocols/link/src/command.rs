//! Commands from the hub to a device on an edge, and their results.

use serde::{Deserialize, Serialize};

/// One command, as sent to the edge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandRequest {
    /// Globally unique; the edge executes each id at most once.
    pub id: String,
    pub device: String,
    /// Operation name (`ping`, `power_cycle`, `volume_set`, ...).
    pub op: String,
    /// Operation arguments as a JSON object text (validated at the hub and again at the edge).
    pub args_json: String,
    /// Milliseconds left until the deadline when the hub sent it. Relative, because the edge's
    /// wall clock may be wrong; the edge measures it on its monotonic clock.
    pub remaining_ms: u64,
    /// Who asked, for the edge's log.
    pub issuer: String,
}

/// How a command ended on the edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandOutcome {
    Succeeded,
    Failed,
    /// Past its deadline when the edge got to it: not executed.
    Expired,
    /// Refused by the edge's own validation: not executed.
    Rejected,
    /// The edge restarted while it ran; whether it took effect is unknown. Never retried.
    Interrupted,
}

/// The result of a command, carried as an event through the outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandResult {
    pub id: String,
    pub outcome: CommandOutcome,
    /// Human-readable detail (an error, or the answer, such as `pong`).
    pub detail: String,
}
