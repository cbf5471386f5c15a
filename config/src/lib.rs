//! Typed configuration for `outpost-edge`, `outpost-hub` and `outpost-sim`.
//!
//! Invariants:
//! - The default configuration of each binary is a real, commented TOML file embedded in the
//!   binary ([`ConfigFile::DEFAULT_TOML`]); `config default` prints it byte for byte, and it always
//!   loads and validates (tested).
//! - A user's file is laid over the defaults table by table; `OUTPOST_<SECTION>__<KEY>` environment
//!   variables are laid over both.
//! - Every problem — a syntax error, an unknown key, a wrong type, a value out of range — is reported
//!   with where it came from (`file:line:column`, or the environment variable) and what is expected.
//!   Loading never panics on input.
//! - The environment is read through [`Environment`], so tests pass a map.

mod cli;
mod env;
mod error;
mod load;
mod schema;
pub mod storage_note;

pub use cli::ConfigCommand;
pub use env::{Environment, ProcessEnvironment};
pub use error::{ConfigError, Location, Problem};
pub use load::{load_file, load_str};
pub use schema::{
    ALERT_RULES, AccountingConfig, AdminConfig, AlertRuleConfig, AlertsConfig, ApiConfig, ApiToken,
    ApiUser, ClusterConfig, ClusterHubConfig, DeviceConfig, DeviceTagsConfig, EdgeConfig, EdgeId,
    EdgeOwnerConfig, EdgeSection, EgmConfig, EventClassConfig, HikCentralConfig, HubConfig,
    HubSection, LinkConfig, LogConfig, LogFormat, LogLevel, MAX_SYNTHETIC_PAYLOAD_BYTES,
    MSSQL_MAX_BATCH_ROWS, MachineConfig, MssqlConfig, OutboxConfig, PkiConfig, RecoveryConfig,
    RelayBankKind, RelayConfig, Role, SasLineConfig, SasTransport, SasWakeup, SimConfig,
    SiteConfig, SupervisionConfig, SyntheticDeviceConfig, TvConfig, UplinkConfig, WebhookConfig,
    par_basis_points, parse_open_hours, validate_edge_id,
};

/// A configuration file kind: its embedded defaults and its validation rules.
pub trait ConfigFile: serde::de::DeserializeOwned {
    /// Which binary this configures, for messages ("edge", "hub", "sim").
    const KIND: &'static str;
    /// The complete default configuration, commented.
    const DEFAULT_TOML: &'static str;

    /// Checks ranges and cross-field rules, reporting each problem against its key path.
    fn validate(&self, problems: &mut Validation);

    /// Where the process keeps durable state, if it keeps any (`config check` describes the file
    /// system it is on).
    fn data_dir(&self) -> Option<&std::path::Path> {
        None
    }

    /// Bytes the process may store under `data_dir` by configuration (`config check` compares it
    /// with the file system's size).
    fn storage_budget(&self) -> Option<u64> {
        None
    }

    /// Files the process reads at start (certificates, keys), by key: `config check` and `run`
    /// refuse a config naming one that is not there.
    fn files(&self) -> Vec<(&'static str, &std::path::Path)> {
        Vec::new()
    }

    /// Settings that are valid but weaken something, each a sentence `config check` prints.
    fn warnings(&self) -> Vec<String> {
        Vec::new()
    }

    /// Explains a deserialization error reported at `key` (dotted, e.g. `devices.0`) on `value`
    /// as a whole — what serde does inside an internally tagged enum: the dotted path of the
    /// problem inside `value`, and its message. `None`: nothing more precise to say.
    fn explain(_key: &str, _value: &toml::Value) -> Option<(String, String)> {
        None
    }
}

/// Collects the problems [`ConfigFile::validate`] finds, each against a dotted key path.
#[derive(Debug, Default)]
pub struct Validation {
    pub(crate) problems: Vec<(String, String)>,
}

impl Validation {
    /// Records that the value at `key` (dotted path, e.g. `supervision.jitter`) is not acceptable;
    /// `expected` says what would be.
    pub fn invalid(&mut self, key: &str, expected: impl Into<String>) {
        self.problems.push((key.to_owned(), expected.into()));
    }
}
