//! Configuration errors. Each [`Problem`] names where the bad value came from, the key, and what
//! is expected, in one line an operator can act on.

use std::fmt;
use std::path::PathBuf;

/// Where a configuration value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A position in the user's file (1-based line and column).
    File {
        path: String,
        line: usize,
        column: usize,
    },
    /// An `OUTPOST_*` environment variable.
    Env { var: String },
    /// The embedded defaults (only reachable if a default itself is wrong).
    Default,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::File { path, line, column } => write!(f, "{path}:{line}:{column}"),
            Location::Env { var } => write!(f, "environment variable {var}"),
            Location::Default => write!(f, "built-in defaults"),
        }
    }
}

/// One thing wrong with a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub location: Location,
    /// Dotted key path, e.g. `supervision.jitter` or `devices[2].rate`; empty for syntax errors.
    pub key: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.location, self.message)
        } else {
            write!(f, "{}: key `{}`: {}", self.location, self.key, self.message)
        }
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Unreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}", render(.problems))]
    Invalid { problems: Vec<Problem> },
}

impl ConfigError {
    /// The problems found, if the file was read.
    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Invalid { problems } => problems,
            ConfigError::Unreadable { .. } => &[],
        }
    }
}

fn render(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}
