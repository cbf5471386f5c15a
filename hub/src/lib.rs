//! `outpost-hub`: the site-independent side of Outpost.
//!
//! Supervision tree: `hub → {admin, link, api}`. The event log and the command log live in one
//! durable sled database (`<data_dir>/db`) opened before the tree starts; if the event log cannot
//! commit, the hub exits non-zero (systemd restarts it) rather than acknowledge what it could not
//! store.

pub mod cli;
pub mod pki;

mod alerts;
mod api;
mod audit;
mod batches;
mod cards;
pub mod cluster;
mod commands;
mod console;
mod counts;
mod edges;
mod eventlog;
mod feed;
mod floor;
mod floor_api;
mod handpays;
mod hikcentral;
mod link;
pub mod login;
mod manual;
mod manual_api;
mod metrics;
pub mod mssql;
mod projections;
mod sessions;
mod stream;

// The facade: what the binary, the tests, the chaos suite, the harness and the benchmarks use.
// Everything else is the hub's own business.
pub use alerts::signature as alert_signature;
pub use api::{BodyError, MAX_DEADLINE_SECONDS, NewCommand};
pub use commands::{CommandLog, CommandRecord, CommandStatus};
pub use edges::EdgeDirectory;
pub use eventlog::{CommittedResult, EventLog, read_events};
pub use hikcentral::client::{ArtemisClient, ArtemisError};
pub use hikcentral::jobs::ManagerMsg;
pub use hikcentral::visits::{Visit, VisitState, VisitStore};
pub use hikcentral::{NewVisit, VisitError, Visits, validate as validate_visit};
pub use link::{LinkContext, MIN_RECEIVE_WINDOW, Sessions, receive_window, serve_endpoint};
pub use metrics::DELIVERY_BUCKETS;
pub use projections::{
    Rebuilt, Runner as ProjectionRunner, Source as ProjectionSource, digest as projection_digest,
    rebuild as rebuild_projection,
};

use std::sync::Arc;
use std::time::Duration;

use outpost_actors::{ChildSpec, Readiness, Restart, Strategy, SupervisorSpec};
use outpost_config::HubConfig;
use outpost_process::admin::{HttpArgs, HttpServer};
use outpost_storage::DurableDb;

use crate::link::{LinkServer, LinkServerArgs};

/// Everything the hub's actors share, opened before the tree starts.
pub struct HubParts {
    pub link: LinkServerArgs,
    pub api: Arc<api::ApiContext>,
    /// Guest visits, when `[hikcentral] enabled`.
    pub visits: Option<hikcentral::Visits>,
    /// The projections' actors.
    pub projections: Vec<projections::ProjectionArgs>,
    /// The live stream's publisher.
    pub stream: stream::StreamArgs,
    /// The alert evaluator and webhooks.
    pub alerts: alerts::AlertArgs,
    /// The SQL Server sink, when `[mssql] enabled`.
    pub mssql: Vec<mssql::SinkArgs>,
}

/// The hub's supervision tree: `hub → {admin, link, api, hikcentral (when enabled)}`.
pub fn root_spec(config: &HubConfig, readiness: &Readiness, parts: &HubParts) -> SupervisorSpec {
    let admin = HttpArgs::admin(config.admin.listen, readiness.clone());
    let link = parts.link.clone();
    let api = HttpArgs {
        name: "api",
        listen: config.api.listen,
        router: api::router(parts.api.clone()),
        limits: outpost_process::admin::HttpLimits::api(),
    };
    let mut children = vec![
        ChildSpec::new("admin", move || (HttpServer, admin.clone())).restart(Restart::Permanent),
        ChildSpec::new("link", move || (LinkServer, link.clone())).restart(Restart::Permanent),
        ChildSpec::new("api", move || (HttpServer, api.clone())).restart(Restart::Permanent),
    ];
    for projection in &parts.projections {
        children.push(projection.clone().child_spec());
    }
    children.push(parts.stream.clone().child_spec());
    children.push(parts.alerts.clone().child_spec());
    if let Some(visits) = &parts.visits {
        children.push(visits.child_spec());
    }
    for sink in &parts.mssql {
        children.push(sink.clone().child_spec());
    }
    SupervisorSpec {
        name: "hub".into(),
        strategy: Strategy::OneForOne,
        policy: outpost_process::restart_policy(&config.supervision),
        children,
        readiness: readiness.clone(),
    }
}

/// Runs the hub until `shutdown` resolves.
pub async fn run(
    config: HubConfig,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let data_dir = &config.hub.data_dir;
    std::fs::create_dir_all(data_dir)
        .map_err(|e| anyhow::anyhow!("cannot create hub data_dir {}: {e}", data_dir.display()))?;
    metrics::register_all();
    tokio::pin!(shutdown);
    let db_dir = data_dir.join("db");
    let durable = match DurableDb::open_with_cache(&db_dir, cache_bytes(&config)) {
        Ok(db) => Arc::new(db),
        // The wait logs why, once per distinct reason.
        Err(_) => match wait_for_database(&config, &db_dir, &mut shutdown).await? {
            Some(db) => Arc::new(db),
            None => return Ok(()),
        },
    };
    let blob_dir = db_dir.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(1));
        loop {
            every.tick().await;
            outpost_process::store::report_blob_files("hub", &blob_dir);
        }
    });
    let reset_key = link::load_or_create_reset_key(&data_dir.join("quic-reset.key"))?;
    let (fatal_tx, fatal_rx) = tokio::sync::oneshot::channel();
    let eventlog = eventlog::EventLog::start(durable.clone(), config.link.max_batch, move |err| {
        let _ = fatal_tx.send(err);
    })?;
    eventlog.publish_committed()?;
    let commands = commands::CommandLog::open(durable.clone())?;
    commands.recover_results(&eventlog).await?;
    let edges = edges::EdgeDirectory::open(durable.db())?;
    let directory = Arc::new(cluster::Directory::from_config(&config.cluster));
    // Every edge this hub serves (in the registry, not revoked, not another hub's) has its
    // per-edge series from start-up, at 0; an edge that connects gets them then.
    match pki::EdgeRegistry::load(&config.pki.dir) {
        Ok(registry) => {
            for (edge, record) in &registry.edges {
                if record.revoked_at.is_none() && directory.owner(edge) == cluster::Owner::Here {
                    metrics::edge_known(edge);
                }
            }
        }
        Err(err) => {
            tracing::warn!(%err, "edge registry unreadable: per-edge series start when edges connect")
        }
    }
    let sessions = Arc::new(Sessions::with_receive_budget(
        config.link.receive_budget_mib.saturating_mul(1024 * 1024),
    ));
    let visits = if config.hikcentral.enabled {
        Some(hikcentral::Visits::open(
            &config.hikcentral,
            durable.clone(),
        )?)
    } else {
        None
    };
    let device_states = outpost_domain::projection::SharedStates::default();
    // Denominations machines report (LP 1F) apply where the config does not set one.
    let floor = floor::from_config(&config)
        .map_err(|e| anyhow::anyhow!("hub config [accounting]/[[sites]]: {e}"))?
        .with_reported(Default::default());
    let (changes, _) = tokio::sync::broadcast::channel(CHANGES_BUFFERED);
    let projections = outpost_domain::projection::NAMES
        .iter()
        .map(|&name| projections::ProjectionArgs {
            name,
            shared: device_states.clone(),
            floor: floor.clone(),
            eventlog: eventlog.clone(),
            changes: changes.clone(),
            feed: config.mssql.enabled && mssql::FOLLOWED_PROJECTIONS.contains(&name),
        })
        .collect();
    let live = Arc::new(stream::LiveStream::new(
        outpost_process::clock::unix_us().max(0) as u64,
    ));
    let stream_args = stream::StreamArgs {
        stream: live.clone(),
        eventlog: eventlog.clone(),
        floor: floor.clone(),
        edges: edges.clone(),
        changes: changes.clone(),
    };
    let counts = Arc::new(counts::Counts::open(durable.db())?);
    let alerts = Arc::new(
        alerts::Alerts::open(durable.db(), live.clone(), config.alerts.webhooks.clone())
            .map_err(|e| anyhow::anyhow!("{e}"))?,
    );
    let alert_args = alerts::AlertArgs {
        alerts: alerts.clone(),
        config: config.alerts.clone(),
        floor: floor.clone(),
        edges: edges.clone(),
        sessions: sessions.clone(),
        visits: visits.clone(),
        counts: counts.clone(),
        device_states: device_states.clone(),
    };
    let mssql_sinks = if config.mssql.enabled {
        let connection = mssql::connection(&config.mssql)?;
        mssql::STREAMS
            .iter()
            .map(|&stream| mssql::SinkArgs {
                stream,
                connection: connection.clone(),
                policy: mssql::retry_policy(&config.mssql),
                batch_rows: config.mssql.batch_rows,
                eventlog: eventlog.clone(),
                floor: floor.clone(),
                commands: commands.clone(),
            })
            .collect()
    } else {
        Vec::new()
    };
    let pki = &config.pki.dir;
    let server_config = outpost_link::io::server_config(
        &pki.join("ca.pem"),
        &pki.join("hub.pem"),
        &pki.join("hub.key"),
        Duration::from_millis(config.link.keepalive_ms),
        Duration::from_millis(config.link.idle_timeout_ms),
        link::MIN_RECEIVE_WINDOW,
    )
    .map_err(|e| {
        anyhow::anyhow!(
            "hub TLS from {}: {e} (did you run `outpost-hub pki init`?)",
            pki.display()
        )
    })?;
    let parts = HubParts {
        link: LinkServerArgs {
            listen: config.link.listen,
            server_config,
            reset_key,
            context: Arc::new(LinkContext {
                eventlog: eventlog.clone(),
                commands: commands.clone(),
                edges: edges.clone(),
                sessions: sessions.clone(),
                pki_dir: pki.clone(),
                bulk_dir: data_dir.join("bulk"),
                dead_after: Duration::from_millis(config.link.dead_after_ms),
                directory: directory.clone(),
            }),
        },
        api: Arc::new(api::ApiContext {
            tokens: config.api.tokens.clone(),
            commands,
            edges,
            sessions,
            eventlog,
            bulk_dir: data_dir.join("bulk"),
            default_deadline_seconds: config.api.default_command_deadline_seconds,
            visits: visits.clone(),
            floor,
            db: durable.db().clone(),
            stream: live,
            alerts,
            device_states,
            handpays: Arc::new(handpays::Handpays::open(durable.db())?),
            counts: counts.clone(),
            player_sessions: Arc::new(sessions::Sessions::open(durable.db())?),
            tags: config
                .device_tags
                .iter()
                .map(|t| ((t.edge.clone(), t.device.clone()), t.tags.clone()))
                .collect(),
            directory,
            logins: Arc::new(login::Logins::open(durable.db(), &config.api)?),
            audit: audit::AuditLog::open(durable.db())?,
            peers: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .map_err(|e| anyhow::anyhow!("HTTP client for the other hubs: {e}"))?,
        }),
        visits,
        projections,
        stream: stream_args,
        alerts: alert_args,
        mssql: mssql_sinks,
    };
    let readiness = Readiness::new();
    tracing::info!(
        admin = %config.admin.listen,
        link = %config.link.listen,
        api = %config.api.listen,
        hikcentral = %if config.hikcentral.enabled { config.hikcentral.base_url.as_str() } else { "off" },
        mssql = %if config.mssql.enabled { format!("{}:{}/{}", config.mssql.host, config.mssql.port, config.mssql.database) } else { "off".to_owned() },
        data_dir = %data_dir.display(),
        "hub starting"
    );
    let root = outpost_process::run_root(root_spec(&config, &readiness, &parts), shutdown);
    tokio::select! {
        result = root => result?,
        Ok(err) = fatal_rx => anyhow::bail!("event log failed, stopping the hub: {err}"),
    }
    // Every actor has stopped: a clean stop, so the next start need not read the database whole
    // (the event log's writer thread may outlive this function and its handle with it).
    if let Err(err) = durable.mark_clean_stop() {
        tracing::warn!(%err, "cannot mark the database's stop as clean: the next start reads it whole");
    }
    Ok(())
}

/// Projection changes kept for slow live subscribers before they miss some.
const CHANGES_BUFFERED: usize = 4096;

/// sled's page cache for the hub's database (`hub.cache_mib`).
fn cache_bytes(config: &HubConfig) -> u64 {
    config.hub.cache_mib.saturating_mul(1024 * 1024)
}

/// A hub whose database does not open stays up (see `outpost_process::store`): only the admin
/// server runs, `/readyz` names `storage/hub`, and the open is retried until it succeeds
/// (`Some`) or the hub is asked to stop (`None`).
async fn wait_for_database(
    config: &HubConfig,
    db_dir: &std::path::Path,
    shutdown: &mut std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
) -> anyhow::Result<Option<DurableDb>> {
    let readiness = Readiness::new();
    readiness.set("storage/hub", false);
    let (admin, _) = ractor::Actor::spawn(
        None,
        HttpServer,
        HttpArgs::admin(config.admin.listen, readiness.clone()),
    )
    .await
    .map_err(|e| anyhow::anyhow!("cannot start the admin server: {e}"))?;
    let what_to_do = format!(
        "Check the disk (dmesg, free space). To give up what it holds and start an empty \
         database: outpost-hub store set-aside --config <this hub's config> (moves {} aside, \
         deletes nothing; edges then resend what they still hold).",
        db_dir.display()
    );
    let path = db_dir.to_owned();
    let cache = cache_bytes(config);
    let opened = tokio::select! {
        db = outpost_process::store::open_until_it_opens(
            "hub",
            db_dir.to_owned(),
            Some(readiness),
            &what_to_do,
            outpost_storage::StorageError::is_disk_full,
            move || DurableDb::open_with_cache(&path, cache),
        ) => Some(db),
        () = shutdown.as_mut() => None,
    };
    admin
        .stop_and_wait(None, Some(Duration::from_secs(5)))
        .await
        .ok();
    Ok(opened)
}
