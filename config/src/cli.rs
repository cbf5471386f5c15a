//! The `config` subcommand every binary shares: `config default` and `config check FILE`.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::{ConfigFile, Environment, load_file};

/// `config default` prints the embedded defaults; `config check FILE` validates a file.
#[derive(Debug, clap::Subcommand)]
pub enum ConfigCommand {
    /// Print the complete default configuration, with comments.
    Default,
    /// Check a configuration file (with OUTPOST_* overrides applied); exit non-zero on problems.
    Check {
        /// The file to check.
        file: PathBuf,
    },
}

impl ConfigCommand {
    /// Runs the command for config kind `T`, writing to stdout/stderr.
    pub fn execute<T: ConfigFile>(&self, env: &dyn Environment) -> ExitCode {
        match self {
            ConfigCommand::Default => {
                print!("{}", T::DEFAULT_TOML);
                ExitCode::SUCCESS
            }
            ConfigCommand::Check { file } => match load_file::<T>(file, env) {
                Ok(config) => {
                    println!("{}: valid {} configuration", file.display(), T::KIND);
                    for warning in config.warnings() {
                        println!("warning: {warning}");
                    }
                    if let Some(dir) = config.data_dir() {
                        if let Some(note) = crate::storage_note::describe(dir) {
                            println!("{note}");
                        }
                        if let Some(warning) = config
                            .storage_budget()
                            .and_then(|budget| crate::storage_note::budget_warning(dir, budget))
                        {
                            println!("{warning}");
                        }
                    }
                    ExitCode::SUCCESS
                }
                Err(err) => {
                    eprintln!("{err}");
                    ExitCode::from(2)
                }
            },
        }
    }
}
