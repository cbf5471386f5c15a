//! The EGM actor: one per slot machine. It turns what the line learnt into outbox events (and
//! answers the line only once they are durable), and turns operators' commands into long polls.
//!
//! Commands ([`outpost_command::EgmCommand`]):
//! - `disable` / `enable`: LP 01 / 02 (lock out or enable play);
//! - `bill_acceptor` `{"enable": bool}`: LP 06 / 07;
//! - `rom_signature` `{"seed": 0-65535}` (seed optional, default 0): LP 21, answers with the
//!   signature;
//! - `handpay_reset`: LP 94;
//! - `meter_refresh`: LP 2F for the reported meters, answers once the reading is durable.
//!
//! A command's poll is queued on the line; the actor does not wait for it in its own mailbox (the
//! line may need the actor to store an event before that poll is even sent).

use outpost_command::{CommandReply, DeviceCommand, DeviceKind, EgmCommand};
use outpost_config::EgmConfig;
use outpost_link::{EventBody, EventClass, MeterReading, SasEvent};
use outpost_sas::egm::REPORTED_METERS;
use outpost_sas::meters::selected_meters;
use outpost_sas::{Bcd, HostEvent, Request};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::sync::oneshot;

use super::line::{LineHandle, LineRequest, PollOutcome};
use crate::metrics;
use crate::shared::{DeviceError, DeviceMsg, DeviceRegistration, EdgeShared};

#[derive(Debug, Clone, Copy, Default)]
pub struct EgmActor;

#[derive(Debug, Clone)]
pub struct EgmArgs {
    pub config: EgmConfig,
    pub line_id: String,
    pub shared: EdgeShared,
    pub line: LineHandle,
}

pub struct EgmState {
    args: EgmArgs,
    registration: DeviceRegistration,
    outbox: crate::outbox::Outbox,
    /// Seed of the last LP 21 sent, for the signature's event.
    rom_seed: u16,
}

impl Actor for EgmActor {
    type Msg = DeviceMsg;
    type State = EgmState;
    type Arguments = EgmArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<DeviceMsg>,
        args: EgmArgs,
    ) -> Result<EgmState, ActorProcessingErr> {
        let outbox = args.shared.outbox().ok_or("the outbox is not open")?;
        let registration = args.shared.register_device(&args.config.id, "egm", myself);
        Ok(EgmState {
            args,
            registration,
            outbox,
            rom_seed: 0,
        })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<DeviceMsg>,
        state: &mut EgmState,
    ) -> Result<(), ActorProcessingErr> {
        state.registration.release();
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<DeviceMsg>,
        message: DeviceMsg,
        state: &mut EgmState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            DeviceMsg::Tick => {}
            DeviceMsg::Sas { event, reply } => {
                let result = state.store(event).await;
                let _ = reply.send(result.clone().map_err(|e| format!("outbox: {e}")));
                // The outbox failed: let the supervisor restart us with a fresh handle (the line
                // waits meanwhile and hands the event over again). An outbox that is reopening
                // (restart, full disk) is no fault of ours: a planned, uncounted restart.
                match result {
                    Ok(()) => {}
                    Err(err) if err.outbox_restarting() => myself.stop(Some(format!(
                        "{}outbox: {err}",
                        outpost_actors::PLANNED_RESTART
                    ))),
                    Err(err) => return Err(format!("outbox: {err}").into()),
                }
            }
            DeviceMsg::Execute { command, reply } => {
                let (op, request) = match state.command(command) {
                    Ok(polled) => polled,
                    Err(err) => {
                        let _ = reply.send(Err(err));
                        return Ok(());
                    }
                };
                let Some(line) = state.args.line.sender() else {
                    let _ = reply.send(Err(DeviceError::Failed(format!(
                        "SAS line {} is not running",
                        state.args.line_id
                    ))));
                    return Ok(());
                };
                let (done, outcome) = oneshot::channel();
                if line.send(LineRequest { request, done }).await.is_err() {
                    let _ = reply.send(Err(DeviceError::Failed(format!(
                        "SAS line {} stopped",
                        state.args.line_id
                    ))));
                    return Ok(());
                }
                tokio::spawn(async move {
                    let answer = match outcome.await {
                        Ok(Ok(outcome)) => Ok(describe(&op, &outcome)),
                        Ok(Err(err)) => Err(DeviceError::Failed(err)),
                        Err(_) => Err(DeviceError::Failed(
                            "the SAS line restarted before the poll was answered".into(),
                        )),
                    };
                    let _ = reply.send(answer);
                });
            }
        }
        Ok(())
    }
}

/// The answer to `op` from what its poll gave.
fn describe(op: &EgmCommand, outcome: &PollOutcome) -> CommandReply {
    match (op, outcome) {
        (EgmCommand::RomSignature(args), PollOutcome::RomSignature(signature)) => {
            CommandReply::RomSignature {
                seed: args.seed,
                signature: *signature,
            }
        }
        (EgmCommand::MeterRefresh(_), _) => CommandReply::MetersStored {},
        _ => CommandReply::Acknowledged {},
    }
}

impl EgmState {
    /// The long poll that performs `command`.
    fn command(&mut self, command: DeviceCommand) -> Result<(EgmCommand, Request), DeviceError> {
        let DeviceCommand::Egm(command) = command else {
            return Err(command.wrong_kind(DeviceKind::Egm).into());
        };
        let address = self.args.config.address;
        let request = match &command {
            EgmCommand::Disable(_) => Request::shutdown(address),
            EgmCommand::Enable(_) => Request::startup(address),
            EgmCommand::BillAcceptor(args) => Request::bill_acceptor(address, args.enable),
            EgmCommand::RomSignature(args) => {
                self.rom_seed = args.seed;
                Request::rom_signature(address, args.seed)
            }
            EgmCommand::HandpayReset(_) => Request::handpay_reset(address),
            EgmCommand::MeterRefresh(_) => Request::selected_meters(address, 0, &REPORTED_METERS)
                .map_err(|e| DeviceError::Failed(e.to_string()))?,
        };
        Ok((command, request))
    }

    /// Makes the event durable.
    async fn store(&mut self, event: HostEvent) -> Result<(), crate::outbox::OutboxError> {
        let id = self.args.config.id.clone();
        let (class, body, kind) = match event {
            HostEvent::Exception { code, .. } => {
                if code == 0 {
                    // "No activity" is not an event.
                    return Ok(());
                }
                (EventClass::Money, SasEvent::Exception { code }, "exception")
            }
            HostEvent::RealTimeEvent { code, data, .. } => (
                EventClass::Money,
                SasEvent::RealTimeEvent { code, data },
                "real_time_event",
            ),
            HostEvent::Data {
                command, payload, ..
            } => {
                let (body, kind) = data_event(command, payload, &id);
                (EventClass::Money, body, kind)
            }
            HostEvent::RomSignature { signature, .. } => (
                EventClass::Audit,
                SasEvent::RomSignature {
                    seed: self.rom_seed,
                    signature,
                },
                "rom_signature",
            ),
            HostEvent::LinkDown { .. } => (EventClass::Audit, SasEvent::Link { up: false }, "link"),
            HostEvent::LinkUp { .. } => (EventClass::Audit, SasEvent::Link { up: true }, "link"),
            HostEvent::Acked { .. } | HostEvent::PollFailed { .. } => return Ok(()),
        };
        self.outbox.append(&id, class, EventBody::Sas(body)).await?;
        metrics::SAS_EVENTS.with_label_values(&[&id, kind]).inc();
        Ok(())
    }
}

/// A data reply as an event: meters and handpays parsed, anything else (or anything that does
/// not parse) kept raw so nothing the EGM said is lost.
fn data_event(command: u8, payload: Vec<u8>, device: &str) -> (SasEvent, &'static str) {
    let reading = |code: u8, bcd: Bcd| MeterReading {
        code,
        value: bcd.value,
        bytes: bcd.bytes,
    };
    match command {
        0x2F => match selected_meters(&payload, &REPORTED_METERS) {
            Ok(read) => {
                return (
                    SasEvent::Meters {
                        game: read.game,
                        meters: read
                            .meters
                            .into_iter()
                            .map(|(c, b)| reading(c, b))
                            .collect(),
                    },
                    "meters",
                );
            }
            Err(err) => {
                tracing::warn!(device, %err, "LP 2F reply does not parse; stored raw");
            }
        },
        0x1C => {
            // Coin in, coin out, drop, jackpot, games played, games won (4 BCD each), then doors
            // and power resets (not meters).
            let codes = [0x00, 0x01, 0x24, 0x02, 0x05, 0x06];
            let meters: Result<Vec<MeterReading>, _> = codes
                .iter()
                .enumerate()
                .map(|(i, &code)| {
                    let bytes = payload.get(i * 4..i * 4 + 4).ok_or("short LP 1C reply")?;
                    Bcd::decode(bytes)
                        .map(|b| reading(code, b))
                        .map_err(|_| "invalid BCD in LP 1C reply")
                })
                .collect();
            match meters {
                Ok(meters) => return (SasEvent::Meters { game: 0, meters }, "meters"),
                Err(err) => tracing::warn!(device, err, "LP 1C reply does not parse; stored raw"),
            }
        }
        0x1B => match payload.get(2..7).map(Bcd::decode) {
            Some(Ok(amount)) => {
                return (
                    SasEvent::Handpay {
                        credits: amount.value,
                        raw: payload,
                    },
                    "handpay",
                );
            }
            _ => tracing::warn!(device, "LP 1B reply does not parse; stored raw"),
        },
        _ => {}
    }
    (SasEvent::Data { command, payload }, "data")
}
