//! Logging set-up: tracing with a human format by default and one JSON object per line on request.
//! `RUST_LOG`, when set, takes precedence over the configured level.

use tracing_subscriber::EnvFilter;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStyle {
    Human,
    Json,
}

/// Installs the global subscriber. Calling it again (tests) leaves the first one in place.
pub fn init_logging(level: &str, style: LogStyle) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = match style {
        LogStyle::Human => builder.try_init(),
        LogStyle::Json => builder.json().flatten_event(true).try_init(),
    };
}
