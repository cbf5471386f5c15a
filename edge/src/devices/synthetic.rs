//! The `synthetic` device: emits events of a configured size at a configured rate and answers the
//! `ping` command. It runs the whole delivery path without hardware, and is the load generator.
//!
//! Like a real device it is acknowledged only by durability: each tick's events are appended
//! concurrently and the next tick waits until all of them are durable, so a full outbox (money or
//! audit class) slows it down instead of losing anything.

use std::time::{Duration, Instant};

use outpost_command::{CommandReply, DeviceCommand, DeviceKind, SyntheticCommand};
use outpost_config::SyntheticDeviceConfig;
use outpost_link::EventBody;
use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::shared::{DeviceError, DeviceMsg, DeviceRegistration, EdgeShared};

const TICK: Duration = Duration::from_millis(10);
/// Most appends one tick has in flight. A device that falls behind its rate (because the outbox
/// is full or slow) catches up in steps of this size instead of holding its whole backlog in
/// memory at once.
const MAX_IN_FLIGHT: u64 = 4096;

#[derive(Debug, Clone, Copy, Default)]
pub struct SyntheticDevice;

#[derive(Debug, Clone)]
pub struct SyntheticArgs {
    pub config: SyntheticDeviceConfig,
    pub shared: EdgeShared,
}

pub struct SyntheticState {
    registration: DeviceRegistration,
    generator: outpost_actors::OwnedTask,
}

impl SyntheticState {
    fn shut(&mut self) {
        self.generator.abort();
        self.registration.release();
    }
}

impl Drop for SyntheticState {
    // See `UplinkState`: on a clean stop the state outlives the actor; post_stop lets go first.
    fn drop(&mut self) {
        self.shut();
    }
}

impl Actor for SyntheticDevice {
    type Msg = DeviceMsg;
    type State = SyntheticState;
    type Arguments = SyntheticArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: SyntheticArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let outbox = args.shared.outbox().ok_or("the outbox is not open")?;
        let config = args.config.clone();
        let class = super::event_class(config.class);
        let id = config.id.clone();
        let registration = args
            .shared
            .register_device(&id, "synthetic", myself.clone());
        let generator = outpost_actors::OwnedTask::spawn(async move {
            let started = Instant::now();
            let mut emitted: u64 = 0;
            let mut every = tokio::time::interval(TICK);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                let due = (started.elapsed().as_secs_f64() * config.rate_per_second) as u64;
                let mut target = due;
                if config.count > 0 {
                    target = target.min(config.count);
                }
                if target <= emitted {
                    if config.count > 0 && emitted >= config.count {
                        tracing::info!(device = %config.id, emitted, "synthetic device emitted its count; idle");
                        return;
                    }
                    continue;
                }
                let target = target.min(emitted + MAX_IN_FLIGHT);
                let appends = (emitted..target).map(|n| {
                    let payload = payload(n, config.payload_bytes);
                    outbox.append(&config.id, class, EventBody::Synthetic { payload })
                });
                for result in futures::future::join_all(appends).await {
                    if let Err(err) = result {
                        tracing::warn!(device = %config.id, %err, "append failed; the device stops until restarted");
                        let planned = if err.outbox_restarting() {
                            outpost_actors::PLANNED_RESTART
                        } else {
                            ""
                        };
                        myself.stop(Some(format!("{planned}append failed: {err}")));
                        return;
                    }
                }
                emitted = target;
            }
        });
        Ok(SyntheticState {
            registration,
            generator,
        })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        state.shut();
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        _state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            DeviceMsg::Execute { command, reply } => {
                let answer = match command {
                    DeviceCommand::Synthetic(SyntheticCommand::Ping(_)) => {
                        Ok(CommandReply::Pong {})
                    }
                    other => Err(DeviceError::Refused(
                        other.wrong_kind(DeviceKind::Synthetic),
                    )),
                };
                let _ = reply.send(answer);
            }
            DeviceMsg::Tick => {}
        }
        Ok(())
    }
}

/// A payload that differs per event (so compression or dedup cannot flatter benchmarks).
fn payload(n: u64, len: usize) -> Vec<u8> {
    let seed = n.to_le_bytes();
    (0..len).map(|i| seed[i % 8] ^ (i as u8)).collect()
}
