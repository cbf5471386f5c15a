//! `outpost-edge`: the supervised runtime on each site's board.
//!
//! Today it runs its supervision tree with the admin server. The outbox, the uplink, the command
//! router and the device actors join the tree as they are built (see the repository README for
//! what runs now).

pub mod cli;
pub mod metrics;
pub mod outbox;

use outpost_actors::admin::{AdminArgs, AdminServer};
use outpost_actors::{ChildSpec, Readiness, Restart, Strategy, SupervisorSpec};
use outpost_config::EdgeConfig;

/// The edge's supervision tree: `edge → {admin}`.
pub fn root_spec(config: &EdgeConfig, readiness: &Readiness) -> SupervisorSpec {
    let admin = AdminArgs {
        listen: config.admin.listen,
        readiness: readiness.clone(),
        extra: None,
    };
    SupervisorSpec {
        name: "edge".into(),
        strategy: Strategy::RestForOne,
        policy: outpost_actors::process::restart_policy(&config.supervision),
        children: vec![
            ChildSpec::new("admin", move || (AdminServer, admin.clone()))
                .restart(Restart::Permanent),
        ],
        readiness: readiness.clone(),
    }
}

/// Runs the edge until `shutdown` resolves.
pub async fn run(
    config: EdgeConfig,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.edge.data_dir).map_err(|e| {
        anyhow::anyhow!(
            "cannot create edge data_dir {}: {e}",
            config.edge.data_dir.display()
        )
    })?;
    let readiness = Readiness::new();
    tracing::info!(edge = %config.edge.id, admin = %config.admin.listen, "edge starting");
    outpost_actors::process::run_root(root_spec(&config, &readiness), shutdown).await?;
    Ok(())
}
