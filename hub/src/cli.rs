//! `outpost-hub` command line (also reachable as `outpost-sim hub ...`).

use std::path::PathBuf;
use std::process::ExitCode;

use crate::pki;
use clap::{Parser, Subcommand};
use outpost_config::{ConfigCommand, HubConfig, LogFormat, ProcessEnvironment};

/// The Outpost hub: ingests events from edges, commands devices, writes events to Microsoft SQL
/// Server (when `[mssql]` is enabled) and provisions guest visits into HikCentral.
#[derive(Debug, Parser)]
#[command(name = "outpost-hub", version = outpost_process::metrics::VERSION)]
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
    /// The durable store: move one that does not open aside.
    #[command(subcommand)]
    Store(outpost_process::store::StoreCommand),
    /// Manage the CA, the hub certificate and edge certificates.
    #[command(subcommand)]
    Pki(PkiCommand),
    /// HikCentral tools for field engineers.
    #[command(subcommand)]
    Hikcentral(HikCommand),
    /// The projections (device state, accounting, the device index) derived from the event log.
    #[command(subcommand)]
    Projections(ProjectionsCommand),
    /// Microsoft SQL Server: apply the schema, or check the connection, login and schema.
    #[command(subcommand)]
    Mssql(MssqlCommand),
    /// Edges of a cluster of hubs (docs/scaling.md).
    #[command(subcommand)]
    Edges(EdgesCommand),
    /// The web console's users.
    #[command(subcommand)]
    Console(ConsoleCommand),
}

#[derive(Debug, Subcommand)]
enum ConsoleCommand {
    /// Read a password from standard input (one line) and print its argon2 hash, for a
    /// `[[api.users]]` entry's `password_hash`. The password is never echoed or stored.
    HashPassword,
}

#[derive(Debug, Subcommand)]
enum EdgesCommand {
    /// Take over an edge from another hub: this hub welcomes it at the sequence the old hub
    /// committed (read it there: `GET /api/v1/edges`, `committed_seq`, after the old hub has
    /// stopped taking the edge), so nothing is sent twice and nothing counts as missing. Run it
    /// with this hub stopped, before the edge first connects here.
    Adopt {
        /// The edge's id.
        edge: String,
        /// The sequence the old hub committed for it.
        #[arg(long)]
        from_seq: u64,
        /// This hub's configuration file.
        #[arg(long)]
        config: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum MssqlCommand {
    /// Apply the migrations in deploy/mssql/ that the server lacks (each in one transaction,
    /// recorded in outpost.schema_version).
    Migrate {
        /// The hub's configuration file (`[mssql]`).
        #[arg(long)]
        config: PathBuf,
    },
    /// Say whether the server is reachable, the login works and the schema is current; exits
    /// non-zero otherwise.
    Check {
        /// The hub's configuration file (`[mssql]`).
        #[arg(long)]
        config: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum ProjectionsCommand {
    /// Clear a projection (or all) and replay the whole event log into it. Run it with the hub
    /// stopped; prints the digest of the projection's stored bytes before and after, so an
    /// unchanged projection shows the same digest twice.
    Rebuild {
        /// devices, accounting or device-events; all when absent.
        name: Option<String>,
        /// The hub's configuration file.
        #[arg(long)]
        config: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum HikCommand {
    /// Print the Artemis string-to-sign and signature of a request, to debug authentication
    /// against a real server (compare with what it expects; the secret is never printed).
    Sign(SignArgs),
}

#[derive(Debug, clap::Args)]
struct SignArgs {
    #[arg(long, default_value = "POST")]
    method: String,
    /// The request path as sent, `/artemis/api/...`, with its query string if any.
    #[arg(long)]
    path: String,
    #[arg(long)]
    app_key: String,
    #[arg(long, env = "OUTPOST_HIKCENTRAL__APP_SECRET", hide_env_values = true)]
    app_secret: String,
    /// x-ca-timestamp, epoch milliseconds.
    #[arg(long)]
    timestamp: String,
    /// x-ca-nonce.
    #[arg(long)]
    nonce: String,
    /// Another header sent (repeatable), `Name:Value`. Accept, Content-Type, Content-MD5 and
    /// Date take their fixed places; `x-ca-*` ones are signed. Accept and Content-Type default
    /// to application/json, as the hub sends them.
    #[arg(long = "header", value_name = "NAME:VALUE")]
    headers: Vec<String>,
    /// The body: its Content-MD5 is computed, printed and signed (as hikvision-openapi-signer
    /// does; the vendor SDK sends none for JSON).
    #[arg(long)]
    body_file: Option<PathBuf>,
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
        Command::Store(cmd) => cmd.execute::<HubConfig>(&ProcessEnvironment, "db"),
        Command::Hikcentral(HikCommand::Sign(args)) => match sign(args) {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("error: {err}");
                ExitCode::FAILURE
            }
        },
        Command::Projections(ProjectionsCommand::Rebuild { name, config }) => {
            match rebuild(name.as_deref(), &config) {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    eprintln!("error: {err}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Mssql(cmd) => match run_mssql(cmd) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::FAILURE,
            Err(err) => {
                eprintln!("error: {err}");
                ExitCode::FAILURE
            }
        },
        Command::Edges(EdgesCommand::Adopt {
            edge,
            from_seq,
            config,
        }) => match adopt(&edge, from_seq, &config) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("error: {err}");
                ExitCode::FAILURE
            }
        },
        Command::Console(ConsoleCommand::HashPassword) => {
            let mut password = String::new();
            if let Err(err) = std::io::stdin().read_line(&mut password) {
                eprintln!("error: cannot read the password from standard input: {err}");
                return ExitCode::FAILURE;
            }
            let password = password.trim_end_matches(['\r', '\n']);
            if password.len() < 8 {
                eprintln!("error: a console password needs at least 8 characters");
                return ExitCode::FAILURE;
            }
            match crate::login::hash_password(password) {
                Ok(hash) => {
                    println!("{hash}");
                    ExitCode::SUCCESS
                }
                Err(err) => {
                    eprintln!("error: {err}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Pki(cmd) => match run_pki(cmd) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("error: {err}");
                ExitCode::FAILURE
            }
        },
        Command::Run { config } => outpost_process::run_main(
            "outpost-hub",
            &config,
            cli.log_format,
            |c: &HubConfig| &c.log,
            crate::run,
        ),
    }
}

/// `outpost-hub projections rebuild`.
/// The hub's store, opened by a tool while the hub is stopped.
fn open_stopped(config: &HubConfig) -> anyhow::Result<outpost_storage::DurableDb> {
    let db_dir = config.hub.data_dir.join("db");
    outpost_storage::DurableDb::open(&db_dir).map_err(|e| {
        anyhow::anyhow!(
            "cannot open {}: {e} (is the hub still running? stop it first)",
            db_dir.display()
        )
    })
}

fn adopt(edge: &str, from_seq: u64, config: &std::path::Path) -> anyhow::Result<()> {
    let config: HubConfig = outpost_config::load_file(config, &ProcessEnvironment)?;
    outpost_config::validate_edge_id(edge).map_err(|e| anyhow::anyhow!("edge id {edge:?}: {e}"))?;
    let db = open_stopped(&config)?;
    crate::cluster::adopt(db.db(), edge, from_seq)?;
    println!(
        "edge {edge} adopted: this hub welcomes it at sequence {from_seq} and takes {} onwards",
        from_seq + 1
    );
    if let crate::cluster::Owner::Hub { id, .. } =
        crate::cluster::Directory::from_config(&config.cluster).owner(edge)
    {
        println!(
            "note: [cluster] still gives {edge} to hub {id}; give it to this hub ({}) before it connects here",
            config.cluster.hub_id
        );
    }
    Ok(())
}

fn rebuild(name: Option<&str>, config: &std::path::Path) -> anyhow::Result<()> {
    let config: HubConfig = outpost_config::load_file(config, &ProcessEnvironment)?;
    let floor = crate::floor::from_config(&config)?;
    let db = open_stopped(&config)?;
    let names: Vec<&str> = match name {
        Some(name) => vec![name],
        None => outpost_domain::projection::NAMES.to_vec(),
    };
    for name in names {
        let started = std::time::Instant::now();
        let done = crate::projections::rebuild(db.db(), name, &floor)?;
        println!(
            "{}: {} events replayed in {:.2} s; digest before {} after {} ({})",
            done.name,
            done.events,
            started.elapsed().as_secs_f64(),
            &done.before[..16],
            &done.after[..16],
            if done.before == done.after {
                "identical"
            } else {
                "changed"
            }
        );
    }
    db.commit()?;
    Ok(())
}

/// `outpost-hub mssql …`: whether all is well.
fn run_mssql(cmd: MssqlCommand) -> anyhow::Result<bool> {
    use crate::mssql;
    let (MssqlCommand::Migrate { config } | MssqlCommand::Check { config }) = &cmd;
    let config: HubConfig = outpost_config::load_file(config, &ProcessEnvironment)?;
    let connection = mssql::connection(&config.mssql)?;
    let server = format!(
        "{}:{} database {} as {}",
        connection.host, connection.port, connection.database, connection.user
    );
    outpost_process::install_crypto_provider();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut target = mssql::TdsTarget::new(&connection);
        match cmd {
            MssqlCommand::Migrate { .. } => {
                let applied = mssql::migrate(&mut target)
                    .await
                    .map_err(|e| anyhow::anyhow!("{server}: {e}"))?;
                for migration in &applied {
                    println!("applied {} ({})", migration.version, migration.name);
                }
                let state = mssql::schema_state(&mut target)
                    .await
                    .map_err(|e| anyhow::anyhow!("{server}: {e}"))?;
                println!(
                    "{server}: schema at version {} ({} applied now)",
                    state.applied,
                    applied.len()
                );
                Ok(state.current())
            }
            MssqlCommand::Check { .. } => match mssql::schema_state(&mut target).await {
                Ok(state) if state.current() => {
                    println!("{server}: reachable, login works, schema current (version {})", state.applied);
                    Ok(true)
                }
                Ok(state) => {
                    println!(
                        "{server}: reachable, login works, schema at version {} of {}: run `outpost-hub mssql migrate`",
                        state.applied, state.known
                    );
                    Ok(false)
                }
                Err(err) => {
                    let what = match &err {
                        mssql::SqlError::Connect { .. } | mssql::SqlError::Timeout(_) => "not reachable",
                        mssql::SqlError::Tls(_) => "TLS failed",
                        mssql::SqlError::Server { number: 18456, .. } => "login failed",
                        mssql::SqlError::Server { number: 4060, .. } => "database cannot be opened",
                        _ => "failed",
                    };
                    println!("{server}: {what}: {err}");
                    Ok(false)
                }
            },
        }
    })
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

/// `outpost-hub hikcentral sign`: the report it prints.
fn sign(args: SignArgs) -> Result<String, String> {
    use outpost_artemis::sign::{Canonical, content_md5, signature};
    let (path, query) = match args.path.split_once('?') {
        Some((path, query)) => (path.to_owned(), Some(query.to_owned())),
        None => (args.path.clone(), None),
    };
    if !path.starts_with('/') {
        return Err(format!("--path must start with / (got {path})"));
    }
    let mut canonical = Canonical {
        method: args.method.to_ascii_uppercase(),
        accept: Some("application/json".into()),
        content_type: Some("application/json".into()),
        path,
        params: query
            .iter()
            .flat_map(|q| q.split('&'))
            .filter(|p| !p.is_empty())
            .map(|p| match p.split_once('=') {
                Some((k, v)) => (k.to_owned(), v.to_owned()),
                None => (p.to_owned(), String::new()),
            })
            .collect(),
        headers: vec![
            ("x-ca-key".into(), args.app_key.clone()),
            ("x-ca-nonce".into(), args.nonce.clone()),
            ("x-ca-timestamp".into(), args.timestamp.clone()),
        ],
        ..Canonical::default()
    };
    for header in &args.headers {
        let (name, value) = header
            .split_once(':')
            .ok_or_else(|| format!("--header {header}: write it as Name:Value"))?;
        let value = value.trim().to_owned();
        match name.trim().to_ascii_lowercase().as_str() {
            "accept" => canonical.accept = Some(value),
            "content-type" => canonical.content_type = Some(value),
            "content-md5" => canonical.content_md5 = Some(value),
            "date" => canonical.date = Some(value),
            "x-ca-signature" | "x-ca-signature-headers" => {
                return Err(format!("--header {name}: that is the output, not an input"));
            }
            other if other.starts_with("x-ca-") => {
                canonical.headers.retain(|(n, _)| n != other);
                canonical.headers.push((other.to_owned(), value));
            }
            other => {
                return Err(format!(
                    "--header {other}: only Accept, Content-Type, Content-MD5, Date and x-ca-* headers take part in the signature"
                ));
            }
        }
    }
    if let Some(file) = &args.body_file {
        let body =
            std::fs::read(file).map_err(|e| format!("--body-file {}: {e}", file.display()))?;
        canonical.content_md5 = Some(content_md5(&body));
    }
    let text = canonical.string_to_sign();
    let mut out = String::new();
    out.push_str("string to sign (between the lines):\n-----\n");
    out.push_str(&text);
    out.push_str("\n-----\n");
    out.push_str(&format!("as one line: {:?}\n", text));
    out.push_str("headers to send:\n");
    for (name, value) in [
        ("Accept", &canonical.accept),
        ("Content-MD5", &canonical.content_md5),
        ("Content-Type", &canonical.content_type),
        ("Date", &canonical.date),
    ] {
        if let Some(value) = value {
            out.push_str(&format!("  {name}: {value}\n"));
        }
    }
    let mut custom = canonical.headers.clone();
    custom.sort();
    for (name, value) in &custom {
        out.push_str(&format!("  {name}: {value}\n"));
    }
    out.push_str(&format!(
        "  x-ca-signature-headers: {}\n",
        canonical.signature_headers()
    ));
    out.push_str(&format!(
        "  x-ca-signature: {}\n",
        signature(&args.app_secret, &text)
    ));
    Ok(out)
}
