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

/// The synthetic device's schedule, also the generator of `outpost-sim bench peers`, so every
/// system it compares is offered events the same way: every [`Pacer::TICK`], the events due by
/// the rate since the start (at most `count` in all, if `count` > 0), at most
/// [`Pacer::MAX_IN_FLIGHT`] of them, and the next batch only once the caller says this one is
/// acknowledged ([`Pacer::emitted`]): a closed loop, as a device that waits for its
/// acknowledgements.
#[derive(Debug, Clone)]
pub struct Pacer {
    started: Instant,
    rate_per_second: f64,
    count: u64,
    emitted: u64,
}

impl Pacer {
    pub const TICK: Duration = Duration::from_millis(10);
    /// Most events one tick has in flight. A generator that falls behind its rate (because the
    /// outbox is full or slow) catches up in steps of this size instead of holding its whole
    /// backlog in memory at once.
    pub const MAX_IN_FLIGHT: u64 = 4096;

    /// A schedule starting now; `count` 0 is without end.
    pub fn new(rate_per_second: f64, count: u64) -> Self {
        Self {
            started: Instant::now(),
            rate_per_second,
            count,
            emitted: 0,
        }
    }

    /// The ticks to call [`Self::due`] on (a late tick delays the next rather than bunching).
    pub fn ticks() -> tokio::time::Interval {
        let mut every = tokio::time::interval(Self::TICK);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        every
    }

    /// The numbers of the events to emit now (empty if none is due); `None` once `count` are out.
    pub fn due(&self) -> Option<std::ops::Range<u64>> {
        if self.count > 0 && self.emitted >= self.count {
            return None;
        }
        let mut target = (self.started.elapsed().as_secs_f64() * self.rate_per_second) as u64;
        if self.count > 0 {
            target = target.min(self.count);
        }
        let target = target
            .max(self.emitted)
            .min(self.emitted + Self::MAX_IN_FLIGHT);
        Some(self.emitted..target)
    }

    /// Every event before `through` was acknowledged.
    pub fn emitted(&mut self, through: u64) {
        self.emitted = self.emitted.max(through);
    }
}

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
            let mut pacer = Pacer::new(config.rate_per_second, config.count);
            let mut every = Pacer::ticks();
            loop {
                every.tick().await;
                let Some(due) = pacer.due() else {
                    tracing::info!(device = %config.id, emitted = config.count, "synthetic device emitted its count; idle");
                    return;
                };
                let end = due.end;
                let appends = due.map(|n| {
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
                pacer.emitted(end);
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

#[cfg(test)]
mod tests {
    use super::Pacer;

    #[test]
    fn a_pacer_offers_nothing_before_its_first_event_is_due() {
        let pacer = Pacer::new(1.0, 0);
        assert_eq!(pacer.due(), Some(0..0));
    }

    #[test]
    fn a_pacer_caps_what_is_in_flight_and_stops_at_its_count() {
        let mut pacer = Pacer::new(1e12, Pacer::MAX_IN_FLIGHT + 10);
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert_eq!(pacer.due(), Some(0..Pacer::MAX_IN_FLIGHT));
        // Nothing new until the caller says the batch was acknowledged.
        assert_eq!(pacer.due(), Some(0..Pacer::MAX_IN_FLIGHT));
        pacer.emitted(Pacer::MAX_IN_FLIGHT);
        assert_eq!(
            pacer.due(),
            Some(Pacer::MAX_IN_FLIGHT..Pacer::MAX_IN_FLIGHT + 10)
        );
        pacer.emitted(Pacer::MAX_IN_FLIGHT + 10);
        assert_eq!(pacer.due(), None);
    }
}
