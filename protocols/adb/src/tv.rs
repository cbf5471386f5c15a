//! What an operator can ask of an Android TV, and the shell commands that do it (sans-IO). The
//! hub checks operations with [`parse`] before queueing them; the edge parses them again (it is
//! the authority) and runs [`TvOp::shell`].
//!
//! Invariants: every operation is validated completely before anything runs; key names map to
//! Android `KEYCODE_*` numbers; a push carries its SHA-256, checked before and after the push.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// Operation names a TV accepts.
pub const OPERATIONS: &[&str] = &[
    "key",
    "volume",
    "volume_up",
    "volume_down",
    "mute",
    "input",
    "play",
    "pause",
    "next",
    "power",
    "screenshot",
    "reboot",
    "launch",
    "push",
];

/// Input sources and the key that selects each.
pub const INPUTS: &[(&str, u32)] = &[
    ("hdmi1", 243),
    ("hdmi2", 244),
    ("hdmi3", 245),
    ("hdmi4", 246),
    ("tv", 170),
    ("av", 249),
];

/// Key names (Android `KEYCODE_*` without the prefix, lower case) and codes.
pub const KEYS: &[(&str, u32)] = &[
    ("home", 3),
    ("back", 4),
    ("dpad_up", 19),
    ("dpad_down", 20),
    ("dpad_left", 21),
    ("dpad_right", 22),
    ("dpad_center", 23),
    ("volume_up", 24),
    ("volume_down", 25),
    ("power", 26),
    ("enter", 66),
    ("menu", 82),
    ("media_play_pause", 85),
    ("media_stop", 86),
    ("media_next", 87),
    ("media_previous", 88),
    ("media_play", 126),
    ("media_pause", 127),
    ("volume_mute", 164),
    ("tv", 170),
    ("guide", 172),
    ("sleep", 223),
    ("wakeup", 224),
    ("tv_input", 178),
];

/// The largest file a `push` carries (it travels inside a command).
pub const MAX_PUSH_BYTES: usize = 8 * 1024 * 1024;

/// A validated operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TvOp {
    Key(u32),
    Volume(u8),
    VolumeUp,
    VolumeDown,
    Mute,
    Input(&'static str),
    Play,
    Pause,
    Next,
    Power(bool),
    Screenshot,
    Reboot,
    Launch(String),
    Push {
        path: String,
        data: Vec<u8>,
        sha256: String,
    },
}

/// The key code of a name (`home`, `KEYCODE_HOME`) or a number (1-288).
pub fn key_code(key: &Value) -> Option<u32> {
    match key {
        Value::Number(n) => n
            .as_u64()
            .filter(|c| (1..=288).contains(c))
            .map(|c| c as u32),
        Value::String(name) => {
            let name = name.to_ascii_lowercase();
            let name = name.strip_prefix("keycode_").unwrap_or(&name);
            KEYS.iter().find(|(k, _)| *k == name).map(|(_, c)| *c)
        }
        _ => None,
    }
}

fn valid_package(name: &str) -> bool {
    let parts: Vec<&str> = name.split('.').collect();
    name.len() <= 128
        && parts.len() >= 2
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
}

fn valid_path(path: &str) -> bool {
    path.starts_with('/')
        && path.len() <= 256
        && !path.contains("..")
        && path
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-".contains(c))
}

/// Parses and checks `op` with its `args` (a JSON object).
pub fn parse(op: &str, args: &Value) -> Result<TvOp, String> {
    let field = |name: &str| args.get(name);
    Ok(match op {
        "key" => TvOp::Key(field("key").and_then(key_code).ok_or_else(|| {
            format!(
                "key needs {{\"key\": name or code 1-288}}; names: {}",
                KEYS.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(", ")
            )
        })?),
        "volume" => TvOp::Volume(
            field("level")
                .and_then(Value::as_u64)
                .filter(|l| *l <= 15)
                .ok_or("volume needs {\"level\": 0-15}")? as u8,
        ),
        "volume_up" => TvOp::VolumeUp,
        "volume_down" => TvOp::VolumeDown,
        "mute" => TvOp::Mute,
        "input" => {
            let source = field("source").and_then(Value::as_str).unwrap_or_default();
            let (name, _) = INPUTS.iter().find(|(n, _)| *n == source).ok_or_else(|| {
                format!(
                    "input needs {{\"source\": one of {}}}",
                    INPUTS
                        .iter()
                        .map(|(n, _)| *n)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })?;
            TvOp::Input(name)
        }
        "play" => TvOp::Play,
        "pause" => TvOp::Pause,
        "next" => TvOp::Next,
        "power" => TvOp::Power(
            field("on")
                .and_then(Value::as_bool)
                .ok_or("power needs {\"on\": true|false}")?,
        ),
        "screenshot" => TvOp::Screenshot,
        "reboot" => TvOp::Reboot,
        "launch" => {
            let package = field("package").and_then(Value::as_str).unwrap_or_default();
            if !valid_package(package) {
                return Err("launch needs {\"package\": \"com.example.app\"}".into());
            }
            TvOp::Launch(package.to_owned())
        }
        "push" => {
            use base64::Engine;
            let path = field("path").and_then(Value::as_str).unwrap_or_default();
            if !valid_path(path) {
                return Err("push needs an absolute \"path\" of letters, digits and /._-".into());
            }
            let data = field("data_base64")
                .and_then(Value::as_str)
                .and_then(|d| base64::engine::general_purpose::STANDARD.decode(d).ok())
                .ok_or("push needs \"data_base64\": the file in base64")?;
            if data.len() > MAX_PUSH_BYTES {
                return Err(format!("push carries at most {MAX_PUSH_BYTES} bytes"));
            }
            let sha256 = field("sha256")
                .and_then(Value::as_str)
                .map(str::to_ascii_lowercase)
                .ok_or("push needs \"sha256\": the file's SHA-256 in hex")?;
            let actual = hex_sha256(&data);
            if actual != sha256 {
                return Err(format!(
                    "the data's SHA-256 is {actual}, not {sha256}: refusing to push a damaged file"
                ));
            }
            TvOp::Push {
                path: path.to_owned(),
                data,
                sha256,
            }
        }
        other => {
            return Err(format!(
                "a TV has no operation {other}; its operations are: {}",
                OPERATIONS.join(", ")
            ));
        }
    })
}

/// Lower-case hex SHA-256.
pub fn hex_sha256(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl TvOp {
    /// The shell command that performs it (screenshot, reboot and push are services instead).
    pub fn shell(&self) -> Option<String> {
        let key = |code: u32| Some(format!("input keyevent {code}"));
        match self {
            TvOp::Key(code) => key(*code),
            TvOp::Volume(level) => {
                Some(format!("cmd media_session volume --stream 3 --set {level}"))
            }
            TvOp::VolumeUp => key(24),
            TvOp::VolumeDown => key(25),
            TvOp::Mute => key(164),
            TvOp::Input(name) => INPUTS
                .iter()
                .find(|(n, _)| n == name)
                .and_then(|(_, code)| key(*code)),
            TvOp::Play => key(126),
            TvOp::Pause => key(127),
            TvOp::Next => key(87),
            TvOp::Power(on) => key(if *on { 224 } else { 223 }),
            TvOp::Launch(package) => Some(format!(
                "monkey -p {package} -c android.intent.category.LAUNCHER 1"
            )),
            TvOp::Screenshot | TvOp::Reboot | TvOp::Push { .. } => None,
        }
    }
}

/// What telemetry reads, parsed from the TV's answers.
pub mod telemetry {
    /// `mWakefulness=Awake` in `dumpsys power`.
    pub fn screen_on(dumpsys_power: &str) -> Option<bool> {
        dumpsys_power
            .lines()
            .find_map(|l| l.trim().strip_prefix("mWakefulness="))
            .map(|w| w.trim() == "Awake")
    }

    /// `volume is 7 in range [0..15]`.
    pub fn volume(output: &str) -> Option<u8> {
        output
            .lines()
            .find_map(|l| l.trim().strip_prefix("volume is "))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse().ok())
    }

    /// The package of `mResumedActivity: ActivityRecord{... u0 pkg/.Activity t12}`.
    pub fn foreground_app(dumpsys_activities: &str) -> Option<String> {
        let line = dumpsys_activities
            .lines()
            .find(|l| l.contains("mResumedActivity"))?;
        let component = line.split_whitespace().find(|w| w.contains('/'))?;
        component.split('/').next().map(str::to_owned)
    }
}
