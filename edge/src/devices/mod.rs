//! Device actors. Each device is one supervised actor under `edge/devices`; it registers itself in
//! the shared directory (so commands reach it) while it runs.

pub mod relay;
pub mod sas;
pub mod synthetic;
pub mod tv;

use outpost_config::{DeviceConfig, EventClassConfig};
use outpost_link::EventClass;

use crate::shared::EdgeShared;

/// The child spec of a configured device.
pub fn child_spec(
    config: &DeviceConfig,
    shared: &EdgeShared,
    policy: outpost_actors::RestartPolicy,
    readiness: &outpost_actors::Readiness,
) -> outpost_actors::ChildSpec {
    match config {
        DeviceConfig::SasLine(line) => {
            outpost_actors::ChildSpec::supervisor(sas::line_spec(line, shared, policy, readiness))
        }
        DeviceConfig::Tv(tv) => {
            let args = tv::TvArgs {
                config: tv.clone(),
                shared: shared.clone(),
            };
            outpost_actors::ChildSpec::new(tv.id.clone(), move || (tv::TvActor, args.clone()))
                .restart(outpost_actors::Restart::Permanent)
        }
        DeviceConfig::Relay(relay) => {
            let args = relay::RelayArgs {
                config: relay.clone(),
                shared: shared.clone(),
            };
            outpost_actors::ChildSpec::new(relay.id.clone(), move || {
                (relay::RelayActor, args.clone())
            })
            .restart(outpost_actors::Restart::Permanent)
        }
        DeviceConfig::Synthetic(device) => {
            let args = synthetic::SyntheticArgs {
                config: device.clone(),
                shared: shared.clone(),
            };
            outpost_actors::ChildSpec::new(device.id.clone(), move || {
                (synthetic::SyntheticDevice, args.clone())
            })
            .restart(outpost_actors::Restart::Permanent)
        }
    }
}

pub fn event_class(class: EventClassConfig) -> EventClass {
    match class {
        EventClassConfig::Money => EventClass::Money,
        EventClassConfig::Audit => EventClass::Audit,
        EventClassConfig::Telemetry => EventClass::Telemetry,
    }
}
