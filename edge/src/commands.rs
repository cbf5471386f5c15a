//! Command execution on the edge: each command id runs at most once, only before its deadline,
//! and its result goes into the outbox like any event.
//!
//! Order of effects for a new id: durable `Started` mark → `CommandAccepted` to the hub → run on the
//! device (bounded by the deadline) → result appended (audit class) → `Finished` mark. A command
//! seen again is acknowledged again and not run. A `Started` mark found at start-up means the edge
//! stopped while it ran: an `Interrupted` result is reported and it is never run again.

use std::time::Duration;

use outpost_command::CommandReply;
use outpost_link::{
    CommandOutcome, CommandRequest, CommandResult, ControlFrame, EventBody, EventClass,
};
use tokio::sync::mpsc;

use crate::outbox::{CommandMark, Outbox};
use crate::shared::{DeviceError, DeviceMsg, EdgeShared};

/// Runs commands arriving from the hub.
#[derive(Clone, Debug)]
pub struct CommandRouter {
    outbox: Outbox,
    shared: EdgeShared,
}

impl CommandRouter {
    pub fn new(outbox: Outbox, shared: EdgeShared) -> Self {
        Self { outbox, shared }
    }

    /// Reports commands that were running when the edge stopped.
    pub async fn recover(&self) {
        let ids = match self.outbox.unfinished_commands() {
            Ok(ids) => ids,
            Err(err) => {
                tracing::error!(%err, "cannot read command marks");
                return;
            }
        };
        for id in ids {
            tracing::warn!(command = %id, "command was running when the edge stopped; reporting it interrupted");
            // Which device it was for is not kept with the mark: filed under the edge itself.
            self.finish(
                "edge",
                CommandResult::new(
                    &id,
                    CommandOutcome::Interrupted,
                    "the edge restarted while it ran; not retried",
                ),
            )
            .await;
        }
    }

    /// Handles one command frame. `control` carries `CommandAccepted` back to the hub.
    pub async fn handle(&self, request: CommandRequest, control: mpsc::Sender<ControlFrame>) {
        let received = tokio::time::Instant::now();
        match self
            .outbox
            .mark_command(&request.id, CommandMark::Started)
            .await
        {
            Err(err) => {
                // Not accepted: the hub sends it again on the next session.
                tracing::warn!(command = %request.id, %err, "cannot record command; not accepted");
                return;
            }
            Ok(Some(_)) => {
                let _ = control
                    .send(ControlFrame::CommandAccepted { id: request.id })
                    .await;
                return;
            }
            Ok(None) => {}
        }
        let _ = control
            .send(ControlFrame::CommandAccepted {
                id: request.id.clone(),
            })
            .await;
        tracing::info!(command = %request.id, device = %request.device, op = request.command.op(), issuer = %request.issuer, "command accepted");
        let deadline = received + Duration::from_millis(request.remaining_ms);
        let finished = self.execute(&request, deadline).await;
        self.finish(&request.device, finished.into_result(&request.id))
            .await;
    }

    async fn execute(&self, request: &CommandRequest, deadline: tokio::time::Instant) -> Finished {
        if request.remaining_ms == 0 || tokio::time::Instant::now() >= deadline {
            return Finished::not_run(
                CommandOutcome::Expired,
                "deadline passed before it could run",
            );
        }
        let Some(device) = self.shared.device(&request.device) else {
            return Finished::not_run(
                CommandOutcome::Rejected,
                format!("no running device {} on this edge", request.device),
            );
        };
        let call = device.actor.call(
            |reply| DeviceMsg::Execute {
                command: request.command.clone(),
                reply,
            },
            None,
        );
        match tokio::time::timeout_at(deadline, call).await {
            Err(_) => Finished::not_run(CommandOutcome::Failed, "deadline passed while it ran"),
            Ok(Err(err)) => {
                Finished::not_run(CommandOutcome::Failed, format!("device unavailable: {err}"))
            }
            Ok(Ok(ractor::rpc::CallResult::Success(Ok(reply)))) => Finished::Succeeded(reply),
            Ok(Ok(ractor::rpc::CallResult::Success(Err(err)))) => match err {
                DeviceError::Refused(_) => {
                    Finished::not_run(CommandOutcome::Rejected, err.to_string())
                }
                DeviceError::Failed(_) => {
                    Finished::not_run(CommandOutcome::Failed, err.to_string())
                }
            },
            Ok(Ok(_)) => Finished::not_run(CommandOutcome::Failed, "device did not answer"),
        }
    }

    /// Stores `result` as an event of `device` (the command's), so the device's history and
    /// state at the hub include it.
    async fn finish(&self, device: &str, result: CommandResult) {
        let id = result.id.clone();
        tracing::info!(command = %id, outcome = ?result.outcome, detail = %result.detail, "command finished");
        match self
            .outbox
            .append(device, EventClass::Audit, EventBody::CommandResult(result))
            .await
        {
            Ok(_) => {
                if let Err(err) = self.outbox.mark_command(&id, CommandMark::Finished).await {
                    tracing::warn!(command = %id, %err, "cannot mark command finished");
                }
            }
            Err(err) => {
                tracing::error!(command = %id, %err, "cannot store command result; it will be reported interrupted")
            }
        }
    }
}

/// How a command ended on the device.
enum Finished {
    Succeeded(CommandReply),
    /// Any other outcome, and why.
    NotRun(CommandOutcome, String),
}

impl Finished {
    fn not_run(outcome: CommandOutcome, why: impl Into<String>) -> Self {
        Finished::NotRun(outcome, why.into())
    }

    fn into_result(self, id: &str) -> CommandResult {
        match self {
            Finished::Succeeded(reply) => CommandResult::succeeded(id, reply),
            Finished::NotRun(outcome, why) => CommandResult::new(id, outcome, &why),
        }
    }
}
