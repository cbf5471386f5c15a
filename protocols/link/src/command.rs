//! Commands from the hub to a device on an edge, and their results.

use outpost_command::{CommandReply, DeviceCommand};
use serde::{Deserialize, Serialize};

/// One command, as sent to the edge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandRequest {
    /// Globally unique; the edge executes each id at most once.
    pub id: String,
    pub device: String,
    /// What to do, typed: valid by construction (the argument types carry their limits), so the
    /// edge needs only to check that the device is of the command's kind.
    pub command: DeviceCommand,
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

/// `text` cut to at most `chars` characters, marked with `…` where it was cut.
pub fn clip_text(text: &str, chars: usize) -> String {
    match text.char_indices().nth(chars) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// The result of a command, carried as an event through the outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandResult {
    pub id: String,
    pub outcome: CommandOutcome,
    /// Human-readable detail: why it failed, or the answer in words.
    pub detail: String,
    /// The device's typed answer, when it succeeded.
    pub reply: Option<CommandReply>,
}

impl CommandResult {
    /// Most characters of `detail` a result carries (a TV's answer can be long; an event must stay
    /// under [`crate::MAX_EVENT_BYTES`]).
    pub const MAX_DETAIL_CHARS: usize = 1024;

    /// A result that is not a success, with its detail clipped to [`Self::MAX_DETAIL_CHARS`].
    pub fn new(id: &str, outcome: CommandOutcome, detail: &str) -> Self {
        Self {
            id: id.to_owned(),
            outcome,
            detail: clip_text(detail, Self::MAX_DETAIL_CHARS),
            reply: None,
        }
    }

    /// A success with the device's answer (described in words in `detail`).
    pub fn succeeded(id: &str, reply: CommandReply) -> Self {
        Self {
            id: id.to_owned(),
            outcome: CommandOutcome::Succeeded,
            detail: clip_text(&reply.to_string(), Self::MAX_DETAIL_CHARS),
            reply: Some(reply),
        }
    }
}
