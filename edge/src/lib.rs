//! `outpost-edge`: the supervised runtime on each site's board.
//!
//! Supervision tree (root is rest-for-one, so everything started after a restarted child restarts
//! with it and picks up its new handles):
//! `edge → {admin, outbox, uplink, devices → {<device>…, sas/<line> → {<egm>…, port}}}`; each
//! actor's metrics label is its path (`edge/devices/sas/line-1/port`).

pub mod cli;

mod bulk;
mod commands;
mod devices;
mod metrics;
mod outbox;
mod shared;
mod uplink;

// The facade: what the binary, the tests, the chaos suite and the benchmarks use. Everything
// else is the edge's own business.
pub use bulk::BulkQueue;
pub use commands::CommandRouter;
pub use devices::relay::{GpioRelay, HttpRelay, RelayActor, RelayArgs, RelayBank, RelayError};
pub use devices::synthetic::Pacer;
pub use devices::tv::adb::{AdbConnection, AdbError, AdbStream};
pub use metrics::{OUTBOX_OLDEST_UNACKED, refresh_oldest_unacked};
pub use outbox::room::reserve_bytes as disk_reserve_bytes;
pub use outbox::{CommandMark, Outbox, OutboxError, OutboxLimits, OutboxWriter};
pub use shared::{DeviceError, DeviceMsg, DeviceRegistration, EdgeShared};
pub use uplink::Session;

/// The HTTP relay's answer parser, exported for its property test.
pub use devices::relay::parse_answer as parse_relay_answer;

use outpost_actors::{ChildSpec, Readiness, Restart, Strategy, SupervisorSpec};
use outpost_config::EdgeConfig;
use outpost_link::DeviceInfo;
use outpost_process::admin::{HttpArgs, HttpServer};

use crate::outbox::actor::{OutboxActor, OutboxArgs};
use crate::uplink::{Uplink, UplinkArgs};

/// The devices' supervisor, under the root `edge`; its name is its path.
pub const DEVICES_SUPERVISOR: &str = "edge/devices";

/// The edge's supervision tree.
pub fn root_spec(
    config: &EdgeConfig,
    readiness: &Readiness,
    shared: &EdgeShared,
) -> SupervisorSpec {
    let policy = outpost_process::restart_policy(&config.supervision);
    let admin = HttpArgs::admin(config.admin.listen, readiness.clone());
    let outbox = OutboxArgs {
        dir: config.edge.data_dir.join("outbox"),
        limits: OutboxLimits {
            budget_bytes: config.outbox.budget_bytes,
            max_batch: config.outbox.max_batch,
            compact_above_bytes: config.outbox.compact_above_bytes,
        },
        shared: shared.clone(),
        readiness: readiness.clone(),
    };
    let uplink = UplinkArgs {
        edge_id: config.edge.id.clone(),
        config: config.uplink.clone(),
        devices: config
            .devices
            .iter()
            .flat_map(|d| d.devices())
            .map(|(id, kind)| DeviceInfo {
                id,
                kind: kind.to_owned(),
            })
            .collect(),
        shared: shared.clone(),
    };
    let devices = SupervisorSpec {
        name: DEVICES_SUPERVISOR.into(),
        strategy: Strategy::OneForOne,
        policy,
        children: config
            .devices
            .iter()
            .map(|d| devices::child_spec(d, shared, policy, readiness))
            .collect(),
        readiness: readiness.clone(),
    };
    SupervisorSpec {
        name: "edge".into(),
        strategy: Strategy::RestForOne,
        policy,
        children: vec![
            ChildSpec::new("admin", move || (HttpServer, admin.clone()))
                .restart(Restart::Permanent),
            ChildSpec::new("outbox", move || (OutboxActor, outbox.clone()))
                .restart(Restart::Permanent),
            ChildSpec::new("uplink", move || (Uplink, uplink.clone())).restart(Restart::Permanent),
            ChildSpec::supervisor(devices),
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
    metrics::register_all();
    let readiness = Readiness::new();
    let mut shared = EdgeShared::default();
    shared.data_dir = Some(config.edge.data_dir.clone());
    if config
        .devices
        .iter()
        .any(|d| matches!(d, outpost_config::DeviceConfig::Tv(_)))
    {
        let key = devices::tv::load_or_create_key(&config.edge.data_dir.join("adbkey"))?;
        shared.adb_key = Some(std::sync::Arc::new(key));
    }
    tracing::info!(
        edge = %config.edge.id,
        admin = %config.admin.listen,
        hub = %config.uplink.hub,
        devices = config.devices.len(),
        "edge starting"
    );
    outpost_process::run_root(root_spec(&config, &readiness, &shared), shutdown).await?;
    Ok(())
}
