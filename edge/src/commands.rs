//! Command execution on the edge: each command id runs at most once, only before its deadline,
//! and its result goes into the outbox like any event.
//!
//! Order of effects for a new id: durable `Started` mark → `CommandAccepted` to the hub → run on the
//! device (bounded by the deadline) → result appended (audit class) → `Finished` mark. A command
//! seen again is acknowledged again and not run. A `Started` mark found at start-up means the edge
//! stopped while it ran: an `Interrupted` result is reported and it is never run again.

use std::time::Duration;

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
            self.finish(
                &id,
                CommandOutcome::Interrupted,
                "the edge restarted while it ran; not retried".into(),
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
        tracing::info!(command = %request.id, device = %request.device, op = %request.op, issuer = %request.issuer, "command accepted");
        let deadline = received + Duration::from_millis(request.remaining_ms);
        let (outcome, detail) = self.execute(&request, deadline).await;
        self.finish(&request.id, outcome, detail).await;
    }

    async fn execute(
        &self,
        request: &CommandRequest,
        deadline: tokio::time::Instant,
    ) -> (CommandOutcome, String) {
        if request.remaining_ms == 0 || tokio::time::Instant::now() >= deadline {
            return (
                CommandOutcome::Expired,
                "deadline passed before it could run".into(),
            );
        }
        let args: serde_json::Value = match serde_json::from_str(&request.args_json) {
            Ok(v @ serde_json::Value::Object(_)) => v,
            _ => {
                return (
                    CommandOutcome::Rejected,
                    "arguments are not a JSON object".into(),
                );
            }
        };
        let Some(device) = self.shared.device(&request.device) else {
            return (
                CommandOutcome::Rejected,
                format!("no running device {} on this edge", request.device),
            );
        };
        let call = device.actor.call(
            |reply| DeviceMsg::Execute {
                op: request.op.clone(),
                args,
                reply,
            },
            None,
        );
        match tokio::time::timeout_at(deadline, call).await {
            Err(_) => (
                CommandOutcome::Failed,
                "deadline passed while it ran".into(),
            ),
            Ok(Err(err)) => (CommandOutcome::Failed, format!("device unavailable: {err}")),
            Ok(Ok(ractor::rpc::CallResult::Success(Ok(detail)))) => {
                (CommandOutcome::Succeeded, detail)
            }
            Ok(Ok(ractor::rpc::CallResult::Success(Err(err)))) => match err {
                DeviceError::Unsupported { .. } | DeviceError::InvalidArguments(_) => {
                    (CommandOutcome::Rejected, err.to_string())
                }
                DeviceError::Failed(_) => (CommandOutcome::Failed, err.to_string()),
            },
            Ok(Ok(_)) => (CommandOutcome::Failed, "device did not answer".into()),
        }
    }

    async fn finish(&self, id: &str, outcome: CommandOutcome, detail: String) {
        let result = CommandResult::new(id, outcome, &detail);
        tracing::info!(command = %id, ?outcome, detail = %result.detail, "command finished");
        match self
            .outbox
            .append("edge", EventClass::Audit, EventBody::CommandResult(result))
            .await
        {
            Ok(_) => {
                if let Err(err) = self.outbox.mark_command(id, CommandMark::Finished).await {
                    tracing::warn!(command = %id, %err, "cannot mark command finished");
                }
            }
            Err(err) => {
                tracing::error!(command = %id, %err, "cannot store command result; it will be reported interrupted")
            }
        }
    }
}
