//! The EGM actor: one per slot machine. It turns operators' commands into long polls on its line
//! (the line stores what the machine reports itself, see [`super::line`]).
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
//! poll waits its turn behind the other machines' polls, and its answer comes once what it
//! brought is durable).

use outpost_command::{CommandReply, DeviceCommand, DeviceKind, EgmCommand};
use outpost_config::EgmConfig;
use outpost_sas::Request;
use outpost_sas::egm::REPORTED_METERS;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::sync::oneshot;

use super::line::{LineHandle, LineRequest, PollOutcome};
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
        let registration = args.shared.register_device(&args.config.id, "egm", myself);
        Ok(EgmState { args, registration })
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
        _myself: ActorRef<DeviceMsg>,
        message: DeviceMsg,
        state: &mut EgmState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            DeviceMsg::Tick => {}
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
        (EgmCommand::Enable(_), _) => CommandReply::Play { enabled: true },
        (EgmCommand::Disable(_), _) => CommandReply::Play { enabled: false },
        (EgmCommand::BillAcceptor(args), _) => CommandReply::BillAcceptor {
            enabled: args.enable,
        },
        _ => CommandReply::Acknowledged {},
    }
}

impl EgmState {
    /// The long poll that performs `command`.
    fn command(&self, command: DeviceCommand) -> Result<(EgmCommand, Request), DeviceError> {
        let DeviceCommand::Egm(command) = command else {
            return Err(command.wrong_kind(DeviceKind::Egm).into());
        };
        let address = self.args.config.address;
        let request = match &command {
            EgmCommand::Disable(_) => Request::shutdown(address),
            EgmCommand::Enable(_) => Request::startup(address),
            EgmCommand::BillAcceptor(args) => Request::bill_acceptor(address, args.enable),
            EgmCommand::RomSignature(args) => Request::rom_signature(address, args.seed),
            EgmCommand::HandpayReset(_) => Request::handpay_reset(address),
            EgmCommand::MeterRefresh(_) => Request::selected_meters(address, 0, &REPORTED_METERS)
                .map_err(|e| DeviceError::Failed(e.to_string()))?,
        };
        Ok((command, request))
    }
}
