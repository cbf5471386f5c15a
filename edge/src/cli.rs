//! `outpost-edge` command line (also reachable as `outpost-sim edge ...`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use outpost_config::{ConfigCommand, EdgeConfig, LogFormat, ProcessEnvironment};

/// The Outpost edge: supervises a site's devices and delivers their events to the hub.
#[derive(Debug, Parser)]
#[command(name = "outpost-edge", version = outpost_process::metrics::VERSION)]
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
    /// The durable store: move one that does not open aside.
    #[command(subcommand)]
    Store(outpost_process::store::StoreCommand),
    /// SAS debugging: decode a frame from a line capture, compute a CRC.
    #[command(subcommand)]
    Sas(SasCommand),
}

#[derive(Debug, Subcommand)]
enum SasCommand {
    /// Decode one frame (hex, spaces allowed) and print it as JSON.
    Decode {
        /// Who sent it: the host (a poll) or the EGM (a reply).
        #[arg(long, value_parser = ["host", "egm"])]
        from: String,
        /// For an EGM reply: the poll it answered (hex), to read it exactly.
        #[arg(long)]
        request: Option<String>,
        /// The frame, in hex.
        hex: Vec<String>,
    },
    /// Print the CRC-16/KERMIT of the bytes and its two wire bytes (LSB first).
    Crc {
        /// The bytes, in hex.
        hex: Vec<String>,
    },
}

fn sas(command: SasCommand) -> ExitCode {
    use crate::devices::sas::debug;
    let result = match command {
        SasCommand::Decode { from, request, hex } => {
            let hex = hex.join(" ");
            if from == "host" {
                debug::decode_host(&hex)
            } else {
                debug::decode_egm(&hex, request.as_deref())
            }
        }
        SasCommand::Crc { hex } => debug::crc(&hex.join(" ")),
    };
    match result {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Parses `args` (program name first) and runs the command.
pub fn main(args: impl IntoIterator<Item = std::ffi::OsString>) -> ExitCode {
    let cli = Cli::parse_from(args);
    match cli.command {
        Command::Config(cmd) => cmd.execute::<EdgeConfig>(&ProcessEnvironment),
        Command::Store(cmd) => cmd.execute::<EdgeConfig>(&ProcessEnvironment, "outbox"),
        Command::Sas(cmd) => sas(cmd),
        Command::Run { config } => outpost_process::run_main(
            "outpost-edge",
            &config,
            cli.log_format,
            |c: &EdgeConfig| &c.log,
            crate::run,
        ),
    }
}
