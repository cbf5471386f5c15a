//! `outpost-command`: the one vocabulary of what an operator can ask of a device, and of what the
//! device answers. The hub validates with it (and says how to fix a bad request), the link carries
//! it, the edge executes it, and the hub's OpenAPI document and the console's forms are generated
//! from it.
//!
//! A command is written by operators as an operation name and a JSON object of arguments
//! (`{"op": "volume", "args": {"level": 7}}`) for a device of a known [`DeviceKind`]; parsed,
//! it is a [`DeviceCommand`] whose argument types carry their own limits ([`args`]), so a value
//! of these types is valid wherever it is (JSON at the API, bincode on the link).
//!
//! Invariants: [`DeviceCommand::parse`] of [`DeviceCommand::op`] and [`DeviceCommand::args`]
//! gives the same command back; the bincode encoding round-trips too; each kind's operation
//! names are distinct; every [`Operation::example`] parses.

pub mod args;
mod reply;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use args::{
    ArgumentError, InputSource, NoArgs, OffMs, PackageName, PushArgs, TvKey, TvPath, VolumeLevel,
};
pub use reply::CommandReply;

/// The kinds of device an edge runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum DeviceKind {
    /// A slot machine (electronic gaming machine) on a SAS line.
    Egm,
    /// An Android TV over ADB.
    Tv,
    /// A power relay (GPIO or HTTP).
    Relay,
    /// A generated event stream, for tests and benchmarks.
    Synthetic,
}

impl DeviceKind {
    pub const ALL: [DeviceKind; 4] = [Self::Egm, Self::Tv, Self::Relay, Self::Synthetic];

    pub fn as_str(self) -> &'static str {
        match self {
            DeviceKind::Egm => "egm",
            DeviceKind::Tv => "tv",
            DeviceKind::Relay => "relay",
            DeviceKind::Synthetic => "synthetic",
        }
    }

    /// The operations a device of this kind accepts.
    pub fn operations(self) -> &'static [Operation] {
        match self {
            DeviceKind::Egm => EgmCommand::OPERATIONS,
            DeviceKind::Tv => TvCommand::OPERATIONS,
            DeviceKind::Relay => RelayCommand::OPERATIONS,
            DeviceKind::Synthetic => SyntheticCommand::OPERATIONS,
        }
    }
}

impl fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A device kind this version does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown device kind {0:?}; kinds are egm, tv, relay, synthetic")]
pub struct UnknownKind(pub String);

impl FromStr for DeviceKind {
    type Err = UnknownKind;
    fn from_str(s: &str) -> Result<Self, UnknownKind> {
        DeviceKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownKind(s.to_owned()))
    }
}

/// One operation of a kind, as the API documents it and the console offers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Operation {
    pub kind: DeviceKind,
    pub name: &'static str,
    /// One sentence: what it does.
    pub summary: &'static str,
    /// Arguments that work, as JSON text (`{}` when it takes none).
    pub example: &'static str,
}

/// Why a command was refused before it ran.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("a {kind} has no operation {op:?}; its operations are: {known}", known = names(*kind))]
    UnknownOperation { kind: DeviceKind, op: String },
    #[error("{op}: {reason}; for example {{\"op\": \"{op}\", \"args\": {example}}}")]
    InvalidArguments {
        kind: DeviceKind,
        op: &'static str,
        /// What was wrong, as the decoder or the argument's limit says it.
        reason: String,
        example: &'static str,
    },
    #[error("a {device} cannot run a {command} command")]
    WrongKind {
        device: DeviceKind,
        command: DeviceKind,
    },
}

fn names(kind: DeviceKind) -> String {
    kind.operations()
        .iter()
        .map(|o| o.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Declares one kind's operations: the enum, its catalogue, and the JSON/typed conversions, from
/// one list (so the four cannot drift).
macro_rules! operations {
    (
        $(#[$meta:meta])*
        $name:ident for $kind:ident {
            $( $(#[$vmeta:meta])* $variant:ident $op:literal ($args:ty) $summary:literal $example:literal ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        pub enum $name {
            $( $(#[$vmeta])* #[serde(rename = $op)] $variant($args), )*
        }

        impl $name {
            pub const OPERATIONS: &'static [Operation] = &[
                $( Operation { kind: DeviceKind::$kind, name: $op, summary: $summary, example: $example }, )*
            ];

            /// The operation's name.
            pub fn op(&self) -> &'static str {
                match self {
                    $( Self::$variant(_) => $op, )*
                }
            }

            fn parse(op: &str, args: serde_json::Value) -> Result<Self, CommandError> {
                match op {
                    $( $op => serde_json::from_value::<$args>(args)
                        .map(Self::$variant)
                        .map_err(|e| CommandError::InvalidArguments {
                            kind: DeviceKind::$kind,
                            op: $op,
                            reason: e.to_string(),
                            example: $example,
                        }), )*
                    _ => Err(CommandError::UnknownOperation {
                        kind: DeviceKind::$kind,
                        op: op.to_owned(),
                    }),
                }
            }

            fn args(&self) -> Result<serde_json::Value, serde_json::Error> {
                match self {
                    $( Self::$variant(args) => serde_json::to_value(args), )*
                }
            }

            /// Each operation's name and the JSON schema of its arguments.
            #[cfg(feature = "openapi")]
            pub fn argument_schemas() -> Vec<(&'static str, utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>)> {
                vec![ $( ($op, <$args as utoipa::PartialSchema>::schema()), )* ]
            }
        }
    };
}

/// `{"enable": true|false}`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EnableArgs {
    pub enable: bool,
}

/// `{"seed": 0-65535}` (optional, 0 when absent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RomSignatureArgs {
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 65535))]
    pub seed: u16,
}

/// `{"key": name or code}`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct KeyArgs {
    #[cfg_attr(feature = "openapi", schema(inline))]
    pub key: TvKey,
}

/// `{"level": 0-15}`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct VolumeArgs {
    #[cfg_attr(feature = "openapi", schema(inline))]
    pub level: VolumeLevel,
}

/// `{"source": "hdmi1"}`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct InputArgs {
    #[cfg_attr(feature = "openapi", schema(inline))]
    pub source: InputSource,
}

/// `{"on": true|false}`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PowerArgs {
    pub on: bool,
}

/// `{"package": "com.example.app"}`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LaunchArgs {
    #[cfg_attr(feature = "openapi", schema(inline))]
    pub package: PackageName,
}

/// `{"off_ms": 0-600000}` (optional: the relay's `min_off_ms` when absent).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CycleArgs {
    // Always written: bincode has no way to skip a field.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(inline))]
    pub off_ms: Option<OffMs>,
}

operations! {
    /// What a slot machine does on request (each a SAS long poll).
    EgmCommand for Egm {
        Disable "disable" (NoArgs) "Locks out play (LP 01)." "{}",
        Enable "enable" (NoArgs) "Enables play again (LP 02)." "{}",
        BillAcceptor "bill_acceptor" (EnableArgs) "Enables or disables the bill acceptor (LP 06/07)." r#"{"enable": false}"#,
        RomSignature "rom_signature" (RomSignatureArgs) "Computes the ROM signature with a seed (LP 21); answers with it." r#"{"seed": 4660}"#,
        HandpayReset "handpay_reset" (NoArgs) "Resets a pending handpay remotely (LP 94)." "{}",
        MeterRefresh "meter_refresh" (NoArgs) "Reads the reported meters now (LP 2F) and stores them." "{}",
    }
}

operations! {
    /// What an Android TV does on request (over ADB).
    TvCommand for Tv {
        Key "key" (KeyArgs) "Presses a remote-control key." r#"{"key": "home"}"#,
        Volume "volume" (VolumeArgs) "Sets the volume level." r#"{"level": 7}"#,
        VolumeUp "volume_up" (NoArgs) "Volume one step up." "{}",
        VolumeDown "volume_down" (NoArgs) "Volume one step down." "{}",
        Mute "mute" (NoArgs) "Toggles mute." "{}",
        Input "input" (InputArgs) "Selects an input source." r#"{"source": "hdmi1"}"#,
        Play "play" (NoArgs) "Media play." "{}",
        Pause "pause" (NoArgs) "Media pause." "{}",
        Next "next" (NoArgs) "Media next." "{}",
        Power "power" (PowerArgs) "Wakes the screen or puts it to sleep (standby, not the mains)." r#"{"on": true}"#,
        Screenshot "screenshot" (NoArgs) "Takes a screenshot; answers with the bulk id of the PNG." "{}",
        Reboot "reboot" (NoArgs) "Reboots the TV." "{}",
        Launch "launch" (LaunchArgs) "Starts an app." r#"{"package": "com.example.player"}"#,
        Push "push" (PushArgs) "Puts a file (at most 8 MiB) on the TV, verified by SHA-256." r#"{"path": "/sdcard/hello.txt", "data_base64": "aGVsbG8=", "sha256": "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"}"#,
    }
}

operations! {
    /// What a power relay does on request.
    RelayCommand for Relay {
        On "on" (NoArgs) "Switches the power on (not sooner than min_off_ms after it went off)." "{}",
        Off "off" (NoArgs) "Switches the power off." "{}",
        Cycle "cycle" (CycleArgs) "Switches off, waits, switches on." r#"{"off_ms": 5000}"#,
        State "state" (NoArgs) "Reads whether the power is on." "{}",
    }
}

operations! {
    /// What a synthetic device does on request.
    SyntheticCommand for Synthetic {
        Ping "ping" (NoArgs) "Answers pong." "{}",
    }
}

/// A typed command for one device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceCommand {
    Egm(EgmCommand),
    Tv(TvCommand),
    Relay(RelayCommand),
    Synthetic(SyntheticCommand),
}

impl DeviceCommand {
    /// The command `op` with `args` (a JSON object; `null` counts as `{}`) for a device of `kind`.
    pub fn parse(
        kind: DeviceKind,
        op: &str,
        args: serde_json::Value,
    ) -> Result<Self, CommandError> {
        let args = match args {
            serde_json::Value::Null => serde_json::Value::Object(Default::default()),
            other => other,
        };
        Ok(match kind {
            DeviceKind::Egm => Self::Egm(EgmCommand::parse(op, args)?),
            DeviceKind::Tv => Self::Tv(TvCommand::parse(op, args)?),
            DeviceKind::Relay => Self::Relay(RelayCommand::parse(op, args)?),
            DeviceKind::Synthetic => Self::Synthetic(SyntheticCommand::parse(op, args)?),
        })
    }

    pub fn kind(&self) -> DeviceKind {
        match self {
            DeviceCommand::Egm(_) => DeviceKind::Egm,
            DeviceCommand::Tv(_) => DeviceKind::Tv,
            DeviceCommand::Relay(_) => DeviceKind::Relay,
            DeviceCommand::Synthetic(_) => DeviceKind::Synthetic,
        }
    }

    /// The operation's name.
    pub fn op(&self) -> &'static str {
        match self {
            DeviceCommand::Egm(c) => c.op(),
            DeviceCommand::Tv(c) => c.op(),
            DeviceCommand::Relay(c) => c.op(),
            DeviceCommand::Synthetic(c) => c.op(),
        }
    }

    /// The arguments as operators write them (a JSON object).
    pub fn args(&self) -> serde_json::Value {
        let args = match self {
            DeviceCommand::Egm(c) => c.args(),
            DeviceCommand::Tv(c) => c.args(),
            DeviceCommand::Relay(c) => c.args(),
            DeviceCommand::Synthetic(c) => c.args(),
        };
        // Every argument type serializes to a JSON object (struct fields, string keys).
        args.unwrap_or_else(|_| serde_json::Value::Object(Default::default()))
    }

    /// A refusal for a device of `device` kind that was sent this command.
    pub fn wrong_kind(&self, device: DeviceKind) -> CommandError {
        CommandError::WrongKind {
            device,
            command: self.kind(),
        }
    }
}

/// Every operation of every kind.
pub fn catalogue() -> impl Iterator<Item = &'static Operation> {
    DeviceKind::ALL
        .into_iter()
        .flat_map(|kind| kind.operations().iter())
}

/// Each operation's kind, name and the JSON schema of its arguments.
#[cfg(feature = "openapi")]
pub fn argument_schemas() -> Vec<(
    DeviceKind,
    &'static str,
    utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
)> {
    let with = |kind: DeviceKind, list: Vec<(&'static str, _)>| {
        list.into_iter()
            .map(move |(op, schema)| (kind, op, schema))
            .collect::<Vec<_>>()
    };
    [
        with(DeviceKind::Egm, EgmCommand::argument_schemas()),
        with(DeviceKind::Tv, TvCommand::argument_schemas()),
        with(DeviceKind::Relay, RelayCommand::argument_schemas()),
        with(DeviceKind::Synthetic, SyntheticCommand::argument_schemas()),
    ]
    .concat()
}
