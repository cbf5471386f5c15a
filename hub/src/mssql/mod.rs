//! Microsoft SQL Server, the system of record finance and BI tools read: the schema
//! (`deploy/mssql/`, applied by `outpost-hub mssql migrate`), the SQL the sink sends ([`sql`]),
//! where it goes ([`target`]: SQL Server over TDS, or an in-memory fake for tests), the tables of
//! the domain ([`tables`]) and the sink itself, one supervised actor per stream: every event
//! ([`sink`]), and what the projections made of them ([`feeds`]).
//!
//! Invariants: the password is read from the config, the environment or a file and never logged
//! or printed; ingest from edges never waits on SQL Server; writes are idempotent by each table's
//! natural key, so a replay after a crash or an outage changes nothing.

pub mod feeds;
pub mod sink;
pub mod sql;
pub mod tables;
pub mod target;
pub mod watched;

use std::time::Duration;

use outpost_actors::backoff::Backoff;
use outpost_actors::{ChildSpec, OwnedTask, Restart};
use outpost_config::MssqlConfig;
use outpost_domain::site::Floor;
use ractor::{Actor, ActorProcessingErr, ActorRef};

pub use feeds::{AccountingRows, FeedSink, HandpayRows, ManualSink};
pub use sink::{EventsSink, RetryPolicy, Stream};
pub use sql::{Keyed, Migration, Table};
pub use target::{
    Connection, ErrorClass, MemoryTarget, Row, SqlError, Target, TdsTarget, Value, Write,
};
/// A value tiberius binds as a parameter (for [`TdsTarget::execute`]).
pub use tiberius::ToSql;
pub use watched::{
    AlertRows, CommandRows, CountedDropRows, HandpayStepRows, PlayerSessionRows, VisitRows,
    WatchedSink,
};

use crate::eventlog::EventLog;

/// The streams the sink writes (the `stream` label), one actor each.
pub const STREAMS: [&str; 10] = [
    sink::STREAM,
    feeds::ACCOUNTING,
    feeds::HANDPAYS,
    feeds::MANUAL,
    watched::ALERTS,
    watched::COMMANDS,
    watched::VISITS,
    watched::PLAYER_SESSIONS,
    watched::HANDPAY_STEPS,
    watched::COUNTED_DROPS,
];

/// The projections a stream follows through their change feed (kept only while the sink runs).
pub const FOLLOWED_PROJECTIONS: [&str; 2] = [
    outpost_domain::projection::ACCOUNTING,
    outpost_domain::projection::HANDPAYS,
];

/// What is wrong with `[mssql]` before anything is sent.
#[derive(Debug, thiserror::Error)]
pub enum MssqlSetupError {
    #[error("[mssql] is not enabled in the hub config")]
    Disabled,
    #[error("mssql.password_file {path}: {reason}")]
    PasswordFile { path: String, reason: String },
    #[error("mssql.ca_file {path} does not exist")]
    CaFile { path: String },
}

/// How to reach the server, with the password resolved.
pub fn connection(config: &MssqlConfig) -> Result<Connection, MssqlSetupError> {
    if !config.enabled {
        return Err(MssqlSetupError::Disabled);
    }
    let password = if config.password_file.is_empty() {
        config.password.clone()
    } else {
        let text = std::fs::read_to_string(&config.password_file).map_err(|e| {
            MssqlSetupError::PasswordFile {
                path: config.password_file.clone(),
                reason: e.to_string(),
            }
        })?;
        text.lines().next().unwrap_or_default().to_owned()
    };
    let ca_file = (!config.ca_file.is_empty()).then(|| config.ca_file.clone());
    if let Some(path) = &ca_file
        && !std::path::Path::new(path).exists()
    {
        return Err(MssqlSetupError::CaFile { path: path.clone() });
    }
    Ok(Connection {
        host: config.host.clone(),
        port: config.port,
        database: config.database.clone(),
        user: config.user.clone(),
        password,
        encrypt: config.encrypt,
        ca_file,
        trust_server_certificate: config.trust_server_certificate,
        timeout: Duration::from_millis(config.connect_timeout_ms),
    })
}

/// The retry policy of `[mssql]`.
pub fn retry_policy(config: &MssqlConfig) -> RetryPolicy {
    RetryPolicy {
        backoff: Backoff {
            initial: Duration::from_millis(config.retry_initial_ms),
            max: Duration::from_millis(config.retry_max_ms),
            multiplier: 2.0,
            jitter: 0.2,
        },
        blocked_retry: Duration::from_millis(config.blocked_retry_ms),
    }
}

/// The schema's state at the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaState {
    /// The highest migration applied (0: none, or no `outpost.schema_version` table).
    pub applied: i32,
    /// The highest migration this hub knows.
    pub known: i32,
}

impl SchemaState {
    pub fn current(&self) -> bool {
        self.applied == self.known
    }
}

fn known_version() -> i32 {
    sql::migrations().last().map_or(0, |m| m.version)
}

/// Asks the server which migrations are applied (the login and the database must work).
pub async fn schema_state(target: &mut TdsTarget) -> Result<SchemaState, SqlError> {
    let rows = target
        .query_text(
            "SELECT CASE WHEN OBJECT_ID(N'outpost.schema_version') IS NULL THEN 0 ELSE 1 END",
            &[],
        )
        .await?;
    let exists = rows
        .first()
        .and_then(|r| r.first().cloned().flatten())
        .is_some_and(|v| v == "1");
    let applied = if exists {
        target
            .query_text(sql::SCHEMA_VERSION, &[])
            .await?
            .first()
            .and_then(|r| r.first().cloned().flatten())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    } else {
        0
    };
    Ok(SchemaState {
        applied,
        known: known_version(),
    })
}

/// Applies every migration the server lacks, each in one transaction with its version row.
/// Returns the migrations applied.
pub async fn migrate(target: &mut TdsTarget) -> Result<Vec<Migration>, SqlError> {
    for statement in sql::BOOTSTRAP {
        target.batch(statement).await?;
    }
    let state = schema_state(target).await?;
    let mut applied = Vec::new();
    for migration in sql::migrations() {
        if migration.version <= state.applied {
            continue;
        }
        target.batch("SET XACT_ABORT ON; BEGIN TRANSACTION").await?;
        for batch in &migration.batches {
            target.batch(batch).await?;
        }
        target
            .execute(
                sql::RECORD_MIGRATION,
                &[&migration.version, &migration.name],
            )
            .await?;
        target.batch("COMMIT TRANSACTION").await?;
        tracing::info!(
            version = migration.version,
            name = migration.name,
            "mssql migration applied"
        );
        applied.push(migration);
    }
    Ok(applied)
}

/// A stream's actor arguments.
#[derive(Clone)]
pub struct SinkArgs {
    /// Which of [`STREAMS`].
    pub stream: &'static str,
    pub connection: Connection,
    pub policy: RetryPolicy,
    pub batch_rows: usize,
    pub eventlog: EventLog,
    pub floor: Floor,
    /// The hub's command log (the commands stream reads records through it).
    pub commands: crate::commands::CommandLog,
}

impl std::fmt::Debug for SinkArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SinkArgs")
            .field("stream", &self.stream)
            .field("connection", &self.connection)
            .finish_non_exhaustive()
    }
}

impl SinkArgs {
    pub fn child_spec(self) -> ChildSpec {
        ChildSpec::new(format!("mssql-{}", self.stream), move || {
            (SinkActor, self.clone())
        })
        .restart(Restart::Permanent)
    }
}

type Running = std::pin::Pin<Box<dyn std::future::Future<Output = sink::SinkError> + Send>>;

/// `stream` running, once its start is logged.
fn running<S: Stream + 'static>(
    args: &SinkArgs,
    stream: S,
    policy: RetryPolicy,
    commits: tokio::sync::watch::Receiver<u64>,
) -> Running {
    tracing::info!(
        stream = args.stream,
        server = %format!("{}:{}", args.connection.host, args.connection.port),
        database = %args.connection.database,
        lag = stream.lag(),
        "mssql sink started"
    );
    Box::pin(sink::run(stream, policy, commits))
}

/// Runs one stream; stops (and is restarted) only when its cursor store fails.
pub struct SinkActor;

impl Actor for SinkActor {
    type Msg = ();
    type State = OwnedTask;
    type Arguments = SinkArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        let target = TdsTarget::new(&args.connection);
        let db = args.eventlog.durable().db().clone();
        let commits = args.eventlog.subscribe_commits();
        let policy = args.policy.clone();
        let rows = args.batch_rows;
        let task = match args.stream {
            feeds::ACCOUNTING => {
                let stream =
                    FeedSink::open(target, AccountingRows::new(args.floor.clone()), db, rows)?;
                running(&args, stream, policy, commits)
            }
            feeds::HANDPAYS => {
                let stream =
                    FeedSink::open(target, HandpayRows::new(args.floor.clone()), db, rows)?;
                running(&args, stream, policy, commits)
            }
            feeds::MANUAL => {
                let stream = ManualSink::open(target, &db, rows)?;
                running(&args, stream, policy, commits)
            }
            watched::ALERTS => {
                let stream = WatchedSink::open(target, AlertRows::default(), &db, rows)?;
                running(&args, stream, policy, commits)
            }
            watched::COMMANDS => {
                let log = args.commands.clone();
                let stream = WatchedSink::open(target, CommandRows::new(log), &db, rows)?;
                running(&args, stream, policy, commits)
            }
            watched::VISITS => {
                let stream = WatchedSink::open(target, VisitRows::default(), &db, rows)?;
                running(&args, stream, policy, commits)
            }
            watched::HANDPAY_STEPS => {
                let stream = WatchedSink::open(target, HandpayStepRows::default(), &db, rows)?;
                running(&args, stream, policy, commits)
            }
            watched::COUNTED_DROPS => {
                let counts = CountedDropRows::new(&args.floor);
                let stream = WatchedSink::open(target, counts, &db, rows)?;
                running(&args, stream, policy, commits)
            }
            watched::PLAYER_SESSIONS => {
                let sessions = PlayerSessionRows::new(args.floor.clone());
                let stream = WatchedSink::open(target, sessions, &db, rows)?;
                running(&args, stream, policy, commits)
            }
            _ => {
                let stream = EventsSink::open(
                    target,
                    Table::events(),
                    args.eventlog.clone(),
                    args.floor.clone(),
                    rows,
                )?;
                running(&args, stream, policy, commits)
            }
        };
        Ok(OwnedTask::ending_owner(myself, async move {
            Some(task.await.to_string())
        }))
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        task: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        task.abort();
        Ok(())
    }
}
