//! `outpost-hub` command line (also reachable as `outpost-sim hub ...`).

use std::path::PathBuf;
use std::process::ExitCode;

use crate::pki;
use clap::{Parser, Subcommand};
use outpost_config::{ConfigCommand, HubConfig, LogFormat, ProcessEnvironment};

/// The Outpost hub: ingests events from edges, commands devices, feeds MSSQL and HikCentral.
#[derive(Debug, Parser)]
#[command(name = "outpost-hub", version)]
struct Cli {
    /// Log format; overrides `[log] format` of the config file.
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogFormat>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the hub.
    Run {
        /// The hub's configuration file.
        #[arg(long)]
        config: PathBuf,
    },
    /// Print the default configuration, or check a configuration file.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Manage the CA, the hub certificate and edge certificates.
    #[command(subcommand)]
    Pki(PkiCommand),
}

#[derive(Debug, Subcommand)]
enum PkiCommand {
    /// Create a CA and the hub's server certificate in DIR.
    Init {
        #[arg(long)]
        dir: PathBuf,
        /// A DNS name or IP address the hub certificate is valid for (repeatable).
        #[arg(long = "hub-name", default_values_t = pki::DEFAULT_HUB_NAMES.iter().map(|s| s.to_string()).collect::<Vec<_>>())]
        hub_names: Vec<String>,
    },
    /// Issue a client certificate for edge ID.
    IssueEdge {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        id: String,
        /// Issue a new certificate for an edge that has one; the old one is refused from then on.
        #[arg(long)]
        replace: bool,
    },
    /// Revoke edge ID: the hub refuses its certificate at the handshake.
    Revoke {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        id: String,
    },
    /// List the edges in the registry.
    List {
        #[arg(long)]
        dir: PathBuf,
    },
}

/// Parses `args` (program name first) and runs the command.
pub fn main(args: impl IntoIterator<Item = std::ffi::OsString>) -> ExitCode {
    let cli = Cli::parse_from(args);
    match cli.command {
        Command::Config(cmd) => cmd.execute::<HubConfig>(&ProcessEnvironment),
        Command::Pki(cmd) => match run_pki(cmd) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("error: {err}");
                ExitCode::FAILURE
            }
        },
        Command::Run { config } => outpost_actors::process::run_main(
            "outpost-hub",
            &config,
            cli.log_format,
            |c: &HubConfig| &c.log,
            crate::run,
        ),
    }
}

fn run_pki(cmd: PkiCommand) -> Result<(), pki::PkiError> {
    match cmd {
        PkiCommand::Init { dir, hub_names } => {
            pki::init(&dir, &hub_names)?;
            println!("CA and hub certificate created in {}", dir.display());
            println!("hub certificate names: {}", hub_names.join(", "));
        }
        PkiCommand::IssueEdge { dir, id, replace } => {
            let issued = pki::issue_edge(&dir, &id, replace)?;
            println!("issued edge {} (serial {})", issued.id, issued.serial);
            println!(
                "copy to the edge: {} {} {}",
                issued.ca.display(),
                issued.cert.display(),
                issued.key.display()
            );
        }
        PkiCommand::Revoke { dir, id } => {
            let record = pki::revoke(&dir, &id)?;
            println!(
                "edge {id} revoked at {}",
                record.revoked_at.as_deref().unwrap_or("?")
            );
        }
        PkiCommand::List { dir } => {
            let registry = pki::EdgeRegistry::load(&dir)?;
            for (id, record) in &registry.edges {
                let state = match &record.revoked_at {
                    Some(t) => format!("revoked {t}"),
                    None => "active".to_owned(),
                };
                println!("{id}\t{}\t{}\t{state}", record.serial, record.issued_at);
            }
        }
    }
    Ok(())
}
