//! `outpost-edge` command line (also reachable as `outpost-sim edge ...`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use outpost_config::{ConfigCommand, EdgeConfig, LogFormat, ProcessEnvironment};

/// The Outpost edge: supervises a site's devices and delivers their events to the hub.
#[derive(Debug, Parser)]
#[command(name = "outpost-edge", version)]
struct Cli {
    /// Log format; overrides `[log] format` of the config file.
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogFormat>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the edge.
    Run {
        /// The edge's configuration file.
        #[arg(long)]
        config: PathBuf,
    },
    /// Print the default configuration, or check a configuration file.
    #[command(subcommand)]
    Config(ConfigCommand),
}

/// Parses `args` (program name first) and runs the command.
pub fn main(args: impl IntoIterator<Item = std::ffi::OsString>) -> ExitCode {
    let cli = Cli::parse_from(args);
    match cli.command {
        Command::Config(cmd) => cmd.execute::<EdgeConfig>(&ProcessEnvironment),
        Command::Run { config } => outpost_actors::process::run_main(
            "outpost-edge",
            &config,
            cli.log_format,
            |c: &EdgeConfig| &c.log,
            crate::run,
        ),
    }
}
