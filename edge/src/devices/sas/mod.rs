//! Slot machines on SAS lines: a line actor per port ([`line`], which stores what it learns as
//! [`record`]s) and an EGM actor per machine ([`egm`], operators' commands) under one supervisor
//! per line; the port transports are `outpost-sas-port`; the field engineer's debug commands are
//! [`debug`].
//!
//! Supervision: `edge/devices → sas/<line> (one-for-one) → {line, <egm>…}`. An EGM actor that
//! fails restarts alone (its machine's events are stored by the line meanwhile; only its commands
//! wait); the line restarting (its port failed) leaves the EGM actors running, and they reach the
//! new line through the shared [`line::LineHandle`].

pub mod debug;
pub mod egm;
pub mod last_poll;
pub mod line;
pub mod record;

use outpost_actors::{ChildSpec, Readiness, Restart, RestartPolicy, Strategy, SupervisorSpec};
use outpost_config::SasLineConfig;

use crate::shared::EdgeShared;

/// The supervisor of one SAS line and its machines.
pub fn line_spec(
    config: &SasLineConfig,
    shared: &EdgeShared,
    policy: RestartPolicy,
    readiness: &Readiness,
) -> SupervisorSpec {
    let handle = line::LineHandle::default();
    let mut children = Vec::new();
    for egm in &config.egms {
        let args = egm::EgmArgs {
            config: egm.clone(),
            line_id: config.id.clone(),
            shared: shared.clone(),
            line: handle.clone(),
        };
        children.push(
            ChildSpec::new(egm.id.clone(), move || (egm::EgmActor, args.clone()))
                .restart(Restart::Permanent),
        );
    }
    // The line starts after its EGM actors, so commands find it soon after they are registered.
    let args = line::LineArgs {
        config: config.clone(),
        shared: shared.clone(),
        handle,
    };
    children.push(
        ChildSpec::new("port", move || (line::LineActor, args.clone())).restart(Restart::Permanent),
    );
    SupervisorSpec {
        name: format!("{}/sas/{}", crate::DEVICES_SUPERVISOR, config.id),
        strategy: Strategy::OneForOne,
        policy,
        children,
        readiness: readiness.clone(),
    }
}
