//! `outpost-sim` command line.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use outpost_config::{ConfigCommand, LogFormat, ProcessEnvironment, SimConfig};

/// Outpost simulators and the demo site.
#[derive(Debug, Parser)]
#[command(name = "outpost-sim", version = outpost_process::metrics::VERSION)]
struct Cli {
    /// Log format; overrides `[log] format` of the config file.
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogFormat>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start a whole site on this machine (hub and edge with a fresh PKI) and print where to look.
    Demo(crate::demo::DemoArgs),
    /// Benchmarks (JSON on stdout).
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Simulated slot machines on one SAS line (serial port, a new pty, or TCP).
    Egm(outpost_simulators::egm::EgmArgs),
    /// Simulated Android TVs (adbd over TCP with RSA auth) on consecutive ports.
    Tv(outpost_simulators::tv::TvArgs),
    /// A simulated HikCentral Professional (HTTPS Artemis gateway) for guest visits.
    Hikcentral(outpost_simulators::hikcentral::HikArgs),
    /// Run the simulators a configuration file describes.
    Run {
        #[arg(long)]
        config: PathBuf,
    },
    /// Print the default configuration, or check a configuration file.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Run `outpost-hub` with the given arguments (the demo starts the hub this way).
    #[command(disable_help_flag = true)]
    Hub {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
    /// Run `outpost-edge` with the given arguments (the demo starts edges this way).
    #[command(disable_help_flag = true)]
    Edge {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// The delivery path: outbox appends vs raw fdatasync, end-to-end throughput, latency, drain.
    Delivery(outpost_bench::delivery::BenchArgs),
    /// The SAS host: poll-schedule jitter with 32 EGMs on 8 lines, edge CPU per EGM, decoder MB/s.
    Sas(outpost_bench::sas::SasBenchArgs),
    /// TVs at fleet scale: 200 TVs behind 4 edges, 1,000 operations at once; screenshot round trip.
    Tv(outpost_bench::tv::TvBenchArgs),
    /// Guest visits into HikCentral: visits/s at 50 ms latency vs one-at-a-time, code-5 recovery.
    Hikcentral(outpost_bench::hik::HikBenchArgs),
    /// The hub's domain: projection replay and lag, device list, reconciliation, live stream.
    Hub(outpost_bench::hub::HubBenchArgs),
    /// The MSSQL sink: batched vs one-INSERT-per-row over TDS (pysqlbridge), lag at 10,000 events/s.
    Mssql(outpost_bench::mssql::MssqlBenchArgs),
    /// The web console: server time of the floor page and the TV wall with 1,000 machines and
    /// 1,000 TVs, and live-update latency from hub commit to Chromium.
    Console(outpost_bench::console::ConsoleBenchArgs),
    /// Outpost next to NATS (leaf → hub, JetStream) and a Mosquitto bridge: throughput, latency,
    /// disk, memory, drain after a partition, kill -9 (a Markdown table; needs root).
    Peers(outpost_bench::peers::PeersArgs),
    /// Instructions per delivered event on the edge and on the hub, counted by valgrind's
    /// callgrind (repeatable on a busy machine).
    Cpu(outpost_bench::cpu::CpuBenchArgs),
    /// One hub, many edges in this process (each its own certificate and QUIC connection):
    /// connection, full speed against one edge alone, and a reconnect storm after `kill -9`.
    Fleet(outpost_bench::fleet::FleetArgs),
}

/// Runs `work` on a fresh multi-threaded runtime for a command that is not a long-running service.
fn run_tool<F>(work: F) -> ExitCode
where
    F: std::future::Future<Output = anyhow::Result<()>>,
{
    outpost_process::install_crypto_provider();
    outpost_process::telemetry::init_logging("warn", outpost_process::telemetry::LogStyle::Human);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(work) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Parses `args` (program name first) and runs the command.
pub fn main(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    outpost_harness::harness::die_with_parent_if_asked();
    let cli = Cli::parse_from(args);
    match cli.command {
        Command::Hub { args } => {
            outpost_hub::cli::main(std::iter::once(OsString::from("outpost-hub")).chain(args))
        }
        Command::Edge { args } => {
            outpost_edge::cli::main(std::iter::once(OsString::from("outpost-edge")).chain(args))
        }
        Command::Config(cmd) => cmd.execute::<SimConfig>(&ProcessEnvironment),
        Command::Run { config } => outpost_process::run_main(
            "outpost-sim",
            &config,
            cli.log_format,
            |c: &SimConfig| &c.log,
            serve,
        ),
        Command::Demo(args) => run_tool(crate::demo::run(args)),
        Command::Egm(args) => run_tool(outpost_simulators::egm::run(args)),
        Command::Hikcentral(args) => run_tool(outpost_simulators::hikcentral::run(args)),
        Command::Tv(args) => run_tool(outpost_simulators::tv::run(args)),
        Command::Bench(BenchCommand::Delivery(args)) => {
            run_tool(outpost_bench::delivery::delivery(args))
        }
        Command::Bench(BenchCommand::Sas(args)) => run_tool(outpost_bench::sas::run(args)),
        Command::Bench(BenchCommand::Tv(args)) => run_tool(outpost_bench::tv::run(args)),
        Command::Bench(BenchCommand::Hikcentral(args)) => run_tool(outpost_bench::hik::run(args)),
        Command::Bench(BenchCommand::Hub(args)) => run_tool(outpost_bench::hub::run(args)),
        Command::Bench(BenchCommand::Mssql(args)) => run_tool(outpost_bench::mssql::run(args)),
        Command::Bench(BenchCommand::Console(args)) => run_tool(outpost_bench::console::run(args)),
        Command::Bench(BenchCommand::Peers(args)) => run_tool(outpost_bench::peers::run(args)),
        Command::Bench(BenchCommand::Cpu(args)) => run_tool(outpost_bench::cpu::run(args)),
        Command::Bench(BenchCommand::Fleet(args)) => run_tool(outpost_bench::fleet::run(args)),
    }
}

/// `outpost-sim run`: the simulator process's supervision tree (the admin server; simulated
/// devices join it as they are built).
async fn serve(
    config: SimConfig,
    shutdown: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
) -> Result<(), outpost_process::RootError> {
    use outpost_actors::{ChildSpec, Readiness, Restart, Strategy, SupervisorSpec};
    use outpost_process::admin::{HttpArgs, HttpServer};
    let readiness = Readiness::new();
    let admin = HttpArgs::admin(config.admin.listen, readiness.clone());
    let spec = SupervisorSpec {
        name: "sim".into(),
        strategy: Strategy::OneForOne,
        policy: outpost_process::restart_policy(&config.supervision),
        children: vec![
            ChildSpec::new("admin", move || (HttpServer, admin.clone()))
                .restart(Restart::Permanent),
        ],
        readiness,
    };
    outpost_process::run_root(spec, shutdown).await
}
