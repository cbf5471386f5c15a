//! `outpost-hub`: the site-independent side of Outpost.
//!
//! Today it runs its supervision tree with the admin server and manages the PKI that identifies
//! edges. Ingest, the event log, projections, sinks and the API join the tree as they are built
//! (see the repository README for what runs now).

pub mod cli;
pub mod pki;

use outpost_actors::admin::{AdminArgs, AdminServer};
use outpost_actors::{ChildSpec, Readiness, Restart, Strategy, SupervisorSpec};
use outpost_config::HubConfig;

/// The hub's supervision tree: `hub → {admin}`.
pub fn root_spec(config: &HubConfig, readiness: &Readiness) -> SupervisorSpec {
    let admin = AdminArgs {
        listen: config.admin.listen,
        readiness: readiness.clone(),
        extra: None,
    };
    SupervisorSpec {
        name: "hub".into(),
        strategy: Strategy::OneForOne,
        policy: outpost_actors::process::restart_policy(&config.supervision),
        children: vec![
            ChildSpec::new("admin", move || (AdminServer, admin.clone()))
                .restart(Restart::Permanent),
        ],
        readiness: readiness.clone(),
    }
}

/// Runs the hub until `shutdown` resolves.
pub async fn run(
    config: HubConfig,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.hub.data_dir).map_err(|e| {
        anyhow::anyhow!(
            "cannot create hub data_dir {}: {e}",
            config.hub.data_dir.display()
        )
    })?;
    let readiness = Readiness::new();
    tracing::info!(admin = %config.admin.listen, data_dir = %config.hub.data_dir.display(), "hub starting");
    outpost_actors::process::run_root(root_spec(&config, &readiness), shutdown).await?;
    Ok(())
}
