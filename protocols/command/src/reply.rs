//! What a device answers when a command succeeded.
//!
//! Invariants: every string a reply carries is bounded (it travels as an event, and events are
//! at most `outpost_link::MAX_EVENT_BYTES`): names and paths by the argument types they echo,
//! shell lines by [`CommandReply::MAX_TEXT_CHARS`].

use std::fmt;

use serde::{Deserialize, Serialize};

/// A succeeded command's answer. In JSON an object named by its variant:
/// `{"rom_signature": {"seed": 4660, "signature": 48879}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum CommandReply {
    /// The device acknowledged it (an EGM's long poll ACK).
    Acknowledged {},
    /// A synthetic device's answer to ping.
    Pong {},
    /// An EGM's ROM signature (LP 21).
    RomSignature { seed: u16, signature: u16 },
    /// The meters were read and stored as an event.
    MetersStored {},
    /// A relay's state after the command; `off_ms` is how long a cycle kept it off.
    Relay {
        on: bool,
        // Always written: bincode has no way to skip a field.
        #[serde(default)]
        off_ms: Option<u32>,
    },
    /// A TV ran this shell line (a key press and the like).
    Sent { shell: String },
    /// A TV's volume is now `level`.
    Volume { level: u8 },
    /// A TV started this app.
    Launched { package: String },
    /// A TV's screenshot, stored at the hub as bulk payload `bulk_id`.
    Screenshot {
        bulk_id: String,
        bytes: u64,
        sha256: String,
    },
    /// A TV is rebooting.
    Rebooting {},
    /// A file is on the TV and the TV's own checksum matched.
    Pushed {
        path: String,
        bytes: u64,
        sha256: String,
    },
    /// An EGM acknowledged that play is now enabled (LP 02) or disabled (LP 01).
    Play { enabled: bool },
    /// An EGM acknowledged that its bill acceptor is now enabled (LP 06) or disabled (LP 07).
    BillAcceptor { enabled: bool },
}

impl CommandReply {
    /// Most characters of free text (a shell line) a reply carries.
    pub const MAX_TEXT_CHARS: usize = 256;

    /// A [`CommandReply::Sent`] with its line clipped to [`Self::MAX_TEXT_CHARS`].
    pub fn sent(shell: &str) -> Self {
        let shell = match shell.char_indices().nth(Self::MAX_TEXT_CHARS) {
            Some((at, _)) => format!("{}…", &shell[..at]),
            None => shell.to_owned(),
        };
        CommandReply::Sent { shell }
    }
}

impl fmt::Display for CommandReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommandReply::Acknowledged {} => write!(f, "acknowledged by the device"),
            CommandReply::Pong {} => write!(f, "pong"),
            CommandReply::RomSignature { seed, signature } => {
                write!(f, "ROM signature {signature:04X} (seed {seed:04X})")
            }
            CommandReply::MetersStored {} => write!(f, "meters read and stored"),
            CommandReply::Relay { on, off_ms } => {
                write!(f, "power {}", if *on { "on" } else { "off" })?;
                match off_ms {
                    Some(ms) => write!(f, " after {ms} ms off"),
                    None => Ok(()),
                }
            }
            CommandReply::Sent { shell } => write!(f, "sent: {shell}"),
            CommandReply::Volume { level } => write!(f, "volume {level}"),
            CommandReply::Launched { package } => write!(f, "launched {package}"),
            CommandReply::Screenshot { bulk_id, bytes, .. } => {
                write!(f, "screenshot of {bytes} bytes stored as {bulk_id}")
            }
            CommandReply::Rebooting {} => write!(f, "rebooting"),
            CommandReply::Pushed { path, bytes, .. } => {
                write!(f, "{path}: {bytes} bytes pushed and verified")
            }
            CommandReply::Play { enabled } => {
                write!(f, "play {}", if *enabled { "enabled" } else { "disabled" })
            }
            CommandReply::BillAcceptor { enabled } => write!(
                f,
                "bill acceptor {}",
                if *enabled { "enabled" } else { "disabled" }
            ),
        }
    }
}
