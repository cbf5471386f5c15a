//! The arguments operations take, each type carrying its own limits: a value of these types is
//! valid by construction, whether it came from an operator's JSON or from the link's bincode.
//!
//! Invariants: every constructor and every `Deserialize` goes through the same check
//! (`try_from`); JSON (human-readable) and bincode (binary) encodings round-trip to equal values.

use std::fmt;

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};

/// No arguments: `{}` (anything else is refused, so a misspelt argument is not silently dropped).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NoArgs {}

/// A limit an argument value broke, in words an operator can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgumentError {
    #[error("a volume level is 0 to {max}, not {got}")]
    VolumeLevel { got: u64, max: u8 },
    #[error("off_ms is at most {max} (10 minutes), not {got}")]
    OffTooLong { got: u64, max: u32 },
    #[error("key {0:?} is not a key name; names: {names}", names = key_names())]
    KeyName(String),
    #[error("a key code is 1 to {max}, not {got}", max = TvKey::MAX_CODE)]
    KeyCode { got: u64 },
    #[error(
        "{0:?} is not an Android package name (dot-separated parts of letters, digits and _, each starting with a letter, at most 128 characters)"
    )]
    Package(String),
    #[error(
        "{0:?} is not a path the TV accepts (absolute, at most 256 characters of letters, digits and /._-, no ..)"
    )]
    Path(String),
    #[error("data_base64 is not base64: {0}")]
    Base64(String),
    #[error("a push carries at most {max} bytes, not {got}", max = PushArgs::MAX_BYTES)]
    PushTooLarge { got: usize },
    #[error("sha256 must be 64 hex digits, not {0:?}")]
    Sha256Form(String),
    #[error("the data's SHA-256 is {actual}, not {stated}: refusing to push a damaged file")]
    Sha256Mismatch { actual: String, stated: String },
}

/// A TV's volume level, 0 to [`VolumeLevel::MAX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "u64", into = "u64")]
pub struct VolumeLevel(u8);

impl VolumeLevel {
    pub const MAX: u8 = 15;

    pub fn get(self) -> u8 {
        self.0
    }
}

impl TryFrom<u64> for VolumeLevel {
    type Error = ArgumentError;
    fn try_from(level: u64) -> Result<Self, ArgumentError> {
        match u8::try_from(level) {
            Ok(l) if l <= Self::MAX => Ok(Self(l)),
            _ => Err(ArgumentError::VolumeLevel {
                got: level,
                max: Self::MAX,
            }),
        }
    }
}

impl From<VolumeLevel> for u64 {
    fn from(level: VolumeLevel) -> u64 {
        u64::from(level.0)
    }
}

/// How long a relay stays off in a power cycle, at most [`OffMs::MAX`] (10 minutes). The relay's
/// own `min_off_ms` (edge config) still applies: the edge stretches a shorter cycle to it and says
/// so in the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "u64", into = "u64")]
pub struct OffMs(u32);

impl OffMs {
    pub const MAX: u32 = 600_000;

    pub fn get(self) -> u32 {
        self.0
    }
}

impl TryFrom<u64> for OffMs {
    type Error = ArgumentError;
    fn try_from(ms: u64) -> Result<Self, ArgumentError> {
        match u32::try_from(ms) {
            Ok(m) if m <= Self::MAX => Ok(Self(m)),
            _ => Err(ArgumentError::OffTooLong {
                got: ms,
                max: Self::MAX,
            }),
        }
    }
}

impl From<OffMs> for u64 {
    fn from(ms: OffMs) -> u64 {
        u64::from(ms.0)
    }
}

/// Key names (Android `KEYCODE_*` without the prefix, lower case) and their codes.
pub const KEYS: &[(&str, u16)] = &[
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
    ("tv_input", 178),
    ("sleep", 223),
    ("wakeup", 224),
];

fn key_names() -> String {
    KEYS.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(", ")
}

/// A remote-control key: an Android key code. In JSON a name (`"home"`, `"KEYCODE_HOME"`) or a
/// code (1 to [`TvKey::MAX_CODE`]); named keys are written back by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TvKey(u16);

impl TvKey {
    pub const MAX_CODE: u16 = 288;

    /// The key of a name, any case, with or without `KEYCODE_`.
    pub fn named(name: &str) -> Result<Self, ArgumentError> {
        let lower = name.to_ascii_lowercase();
        let bare = lower.strip_prefix("keycode_").unwrap_or(&lower);
        KEYS.iter()
            .find(|(k, _)| *k == bare)
            .map(|(_, code)| Self(*code))
            .ok_or_else(|| ArgumentError::KeyName(name.to_owned()))
    }

    pub fn code(code: u64) -> Result<Self, ArgumentError> {
        match u16::try_from(code) {
            Ok(c) if (1..=Self::MAX_CODE).contains(&c) => Ok(Self(c)),
            _ => Err(ArgumentError::KeyCode { got: code }),
        }
    }

    /// The Android key code.
    pub fn get(self) -> u16 {
        self.0
    }

    pub fn name(self) -> Option<&'static str> {
        KEYS.iter().find(|(_, c)| *c == self.0).map(|(k, _)| *k)
    }
}

impl Serialize for TvKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.name() {
            Some(name) if s.is_human_readable() => s.serialize_str(name),
            _ => s.serialize_u16(self.0),
        }
    }
}

impl<'de> Deserialize<'de> for TvKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl de::Visitor<'_> for KeyVisitor {
            type Value = TvKey;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(f, "a key name or a key code 1-{}", TvKey::MAX_CODE)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<TvKey, E> {
                TvKey::code(v).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<TvKey, E> {
                TvKey::code(u64::try_from(v).unwrap_or(0)).map_err(E::custom)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<TvKey, E> {
                TvKey::named(v).map_err(E::custom)
            }
        }
        if d.is_human_readable() {
            d.deserialize_any(KeyVisitor)
        } else {
            let code = u16::deserialize(d)?;
            TvKey::code(u64::from(code)).map_err(de::Error::custom)
        }
    }
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for TvKey {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(KEYS.iter().map(|(k, _)| *k)))
                    .description(Some("a key name (KEYCODE_ prefix and case optional)")),
            )
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(1))
                    .maximum(Some(TvKey::MAX_CODE))
                    .description(Some("an Android key code")),
            )
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for TvKey {}

/// A TV's input sources.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum InputSource {
    Hdmi1,
    Hdmi2,
    Hdmi3,
    Hdmi4,
    Tv,
    Av,
}

impl InputSource {
    pub const ALL: [InputSource; 6] = [
        Self::Hdmi1,
        Self::Hdmi2,
        Self::Hdmi3,
        Self::Hdmi4,
        Self::Tv,
        Self::Av,
    ];
}

/// An Android package name (`com.example.player`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PackageName(String);

impl PackageName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for PackageName {
    type Error = ArgumentError;
    fn try_from(name: String) -> Result<Self, ArgumentError> {
        let parts: Vec<&str> = name.split('.').collect();
        let valid = name.len() <= 128
            && parts.len() >= 2
            && parts.iter().all(|p| {
                p.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                    && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            });
        if valid {
            Ok(Self(name))
        } else {
            Err(ArgumentError::Package(name))
        }
    }
}

impl From<PackageName> for String {
    fn from(name: PackageName) -> String {
        name.0
    }
}

/// An absolute path on the TV, safe to put in a shell command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TvPath(String);

impl TvPath {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TvPath {
    type Error = ArgumentError;
    fn try_from(path: String) -> Result<Self, ArgumentError> {
        let valid = path.starts_with('/')
            && path.len() <= 256
            && !path.contains("..")
            && path
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "/._-".contains(c));
        if valid {
            Ok(Self(path))
        } else {
            Err(ArgumentError::Path(path))
        }
    }
}

impl From<TvPath> for String {
    fn from(path: TvPath) -> String {
        path.0
    }
}

/// Lower-case hex SHA-256 of `data`.
pub fn hex_sha256(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A file to put on the TV, with the SHA-256 the operator states for it (checked against the
/// data here, and against the TV's own checksum after the push).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "PushWire", into = "PushWire")]
pub struct PushArgs {
    path: TvPath,
    data: Vec<u8>,
    sha256: String,
}

impl PushArgs {
    /// The largest file a push carries (it travels inside a command).
    pub const MAX_BYTES: usize = 8 * 1024 * 1024;

    pub fn new(path: TvPath, data: Vec<u8>) -> Result<Self, ArgumentError> {
        let sha256 = hex_sha256(&data);
        Self::try_from(PushWire {
            path: path.0,
            data: Bytes(data),
            sha256,
        })
    }

    pub fn path(&self) -> &TvPath {
        &self.path
    }

    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// Lower-case hex; equal to the data's digest.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }
}

/// A push as it is written: `data_base64` in JSON, raw bytes in bincode.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PushWire {
    path: String,
    #[serde(rename = "data_base64")]
    data: Bytes,
    sha256: String,
}

impl TryFrom<PushWire> for PushArgs {
    type Error = ArgumentError;
    fn try_from(wire: PushWire) -> Result<Self, ArgumentError> {
        let path = TvPath::try_from(wire.path)?;
        let data = wire.data.0;
        if data.len() > Self::MAX_BYTES {
            return Err(ArgumentError::PushTooLarge { got: data.len() });
        }
        let stated = wire.sha256.to_ascii_lowercase();
        if stated.len() != 64 || !stated.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ArgumentError::Sha256Form(wire.sha256));
        }
        let actual = hex_sha256(&data);
        if actual != stated {
            return Err(ArgumentError::Sha256Mismatch { actual, stated });
        }
        Ok(Self {
            path,
            data,
            sha256: stated,
        })
    }
}

impl From<PushArgs> for PushWire {
    fn from(args: PushArgs) -> Self {
        PushWire {
            path: args.path.0,
            data: Bytes(args.data),
            sha256: args.sha256,
        }
    }
}

/// Bytes: base64 text in human-readable formats, a byte string otherwise.
struct Bytes(Vec<u8>);

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use base64::Engine;
        if s.is_human_readable() {
            s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(&self.0))
        } else {
            s.serialize_bytes(&self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use base64::Engine;
        if d.is_human_readable() {
            let text = String::deserialize(d)?;
            base64::engine::general_purpose::STANDARD
                .decode(text.as_bytes())
                .map(Bytes)
                .map_err(|e| de::Error::custom(ArgumentError::Base64(e.to_string())))
        } else {
            let bytes: Vec<u8> = Deserialize::deserialize(d)?;
            Ok(Bytes(bytes))
        }
    }
}

#[cfg(feature = "openapi")]
mod schemas {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    use utoipa::openapi::{RefOr, schema::Schema};

    fn integer(min: u64, max: u64, description: &str) -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(min))
            .maximum(Some(max))
            .description(Some(description))
            .into()
    }

    fn string(pattern: &str, max: usize, description: &str) -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(pattern))
            .max_length(Some(max))
            .description(Some(description))
            .into()
    }

    impl utoipa::PartialSchema for super::VolumeLevel {
        fn schema() -> RefOr<Schema> {
            integer(0, u64::from(Self::MAX), "volume level")
        }
    }
    impl utoipa::ToSchema for super::VolumeLevel {}

    impl utoipa::PartialSchema for super::OffMs {
        fn schema() -> RefOr<Schema> {
            integer(
                0,
                u64::from(Self::MAX),
                "milliseconds off (at least the relay's min_off_ms)",
            )
        }
    }
    impl utoipa::ToSchema for super::OffMs {}

    impl utoipa::PartialSchema for super::PackageName {
        fn schema() -> RefOr<Schema> {
            string(
                r"^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)+$",
                128,
                "Android package name",
            )
        }
    }
    impl utoipa::ToSchema for super::PackageName {}

    impl utoipa::PartialSchema for super::PushArgs {
        fn schema() -> RefOr<Schema> {
            ObjectBuilder::new()
                .schema_type(Type::Object)
                .property(
                    "path",
                    string(
                        r"^(?!.*\.\.)/[A-Za-z0-9/._-]*$",
                        256,
                        "absolute path on the TV (no ..)",
                    ),
                )
                .property(
                    "data_base64",
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .content_encoding("base64")
                        .description(Some("the file, at most 8 MiB before encoding")),
                )
                .property(
                    "sha256",
                    string("^[0-9a-fA-F]{64}$", 64, "the file's SHA-256 in hex"),
                )
                .required("path")
                .required("data_base64")
                .required("sha256")
                .additional_properties(Some(
                    utoipa::openapi::schema::AdditionalProperties::FreeForm(false),
                ))
                .into()
        }
    }
    impl utoipa::ToSchema for super::PushArgs {}
}
