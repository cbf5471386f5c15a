//! The configuration types of each binary, and the sections they share.
//!
//! Every struct denies nothing by itself: unknown keys are found by the loader (so that all of
//! them are reported, with locations), and ranges are checked in [`ConfigFile::validate`].

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use crate::{ConfigFile, Validation};

/// `outpost-edge` configuration.
#[derive(Debug, Clone, Deserialize)]
pub struct EdgeConfig {
    pub edge: EdgeSection,
    pub admin: AdminConfig,
    pub log: LogConfig,
    pub supervision: SupervisionConfig,
}

#[derive(Debug, Clone, Deserialize)]
pub struct EdgeSection {
    pub id: String,
    pub data_dir: PathBuf,
}

/// `outpost-hub` configuration.
#[derive(Debug, Clone, Deserialize)]
pub struct HubConfig {
    pub hub: HubSection,
    pub pki: PkiConfig,
    pub admin: AdminConfig,
    pub log: LogConfig,
    pub supervision: SupervisionConfig,
}

#[derive(Debug, Clone, Deserialize)]
pub struct HubSection {
    pub data_dir: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PkiConfig {
    pub dir: PathBuf,
}

/// `outpost-sim` configuration.
#[derive(Debug, Clone, Deserialize)]
pub struct SimConfig {
    pub admin: AdminConfig,
    pub log: LogConfig,
    pub supervision: SupervisionConfig,
}

/// The admin HTTP server every process runs.
#[derive(Debug, Clone, Deserialize)]
pub struct AdminConfig {
    pub listen: SocketAddr,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LogConfig {
    pub level: LogLevel,
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Human,
    Json,
}

/// Restart policy of a process's supervisors.
#[derive(Debug, Clone, Deserialize)]
pub struct SupervisionConfig {
    pub backoff_initial_ms: u64,
    pub backoff_max_ms: u64,
    pub jitter: f64,
    pub stable_after_seconds: u64,
    pub max_restarts: u32,
    pub within_seconds: u64,
    pub shutdown_timeout_ms: u64,
}

impl SupervisionConfig {
    fn validate(&self, v: &mut Validation) {
        if self.backoff_initial_ms == 0 {
            v.invalid(
                "supervision.backoff_initial_ms",
                "at least 1 (milliseconds)",
            );
        }
        if self.backoff_max_ms < self.backoff_initial_ms {
            v.invalid(
                "supervision.backoff_max_ms",
                format!("at least backoff_initial_ms ({})", self.backoff_initial_ms),
            );
        }
        if !(0.0..=1.0).contains(&self.jitter) {
            v.invalid("supervision.jitter", "a fraction from 0.0 to 1.0");
        }
        if self.max_restarts == 0 {
            v.invalid("supervision.max_restarts", "at least 1");
        }
        if self.within_seconds == 0 {
            v.invalid("supervision.within_seconds", "at least 1 (seconds)");
        }
        if self.shutdown_timeout_ms == 0 {
            v.invalid(
                "supervision.shutdown_timeout_ms",
                "at least 1 (milliseconds)",
            );
        }
    }
}

/// Edge ids name certificates, metrics labels and directories: keep them boring.
fn is_valid_edge_id(id: &str) -> bool {
    let bytes = id.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes[0] != b'-'
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
}

/// Checks an edge id the way the config and the PKI both need it checked.
pub fn validate_edge_id(id: &str) -> Result<(), String> {
    if is_valid_edge_id(id) {
        Ok(())
    } else {
        Err(format!(
            "edge id {id:?} is not valid: use 1 to 63 lowercase letters, digits and '-', not starting with '-'"
        ))
    }
}

impl ConfigFile for EdgeConfig {
    const KIND: &'static str = "edge";
    const DEFAULT_TOML: &'static str = include_str!("../defaults/edge.toml");

    fn validate(&self, v: &mut Validation) {
        if !is_valid_edge_id(&self.edge.id) {
            v.invalid(
                "edge.id",
                "1 to 63 lowercase letters, digits and '-', not starting with '-'",
            );
        }
        if self.edge.data_dir.as_os_str().is_empty() {
            v.invalid("edge.data_dir", "a directory path");
        }
        self.supervision.validate(v);
    }
}

impl ConfigFile for HubConfig {
    const KIND: &'static str = "hub";
    const DEFAULT_TOML: &'static str = include_str!("../defaults/hub.toml");

    fn validate(&self, v: &mut Validation) {
        if self.hub.data_dir.as_os_str().is_empty() {
            v.invalid("hub.data_dir", "a directory path");
        }
        if self.pki.dir.as_os_str().is_empty() {
            v.invalid("pki.dir", "a directory path");
        }
        self.supervision.validate(v);
    }
}

impl ConfigFile for SimConfig {
    const KIND: &'static str = "sim";
    const DEFAULT_TOML: &'static str = include_str!("../defaults/sim.toml");

    fn validate(&self, v: &mut Validation) {
        self.supervision.validate(v);
    }
}
