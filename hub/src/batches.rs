//! Bulk operations: one command for every device of a group (a tag from `[[device_tags]]`, a
//! kind, or a list), each device's command issued through the one command path, and the progress
//! of the whole as sent / done / failed / skipped-offline per device.
//!
//! Invariants: a batch is stored (tree [`TREE`]) before its answer, with the id of every command
//! it issued, so its progress is read from the command log and never goes stale; a device that is
//! offline when the batch is made gets no command (it is `skipped_offline`, not queued for
//! later); a device whose command is refused by validation is `rejected` with the reason, and the
//! rest of the batch goes on.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use outpost_config::Role;
use outpost_domain::calendar::rfc3339_utc;
use serde::{Deserialize, Serialize};

use crate::api::{ApiContext, ApiError, ErrorBody, NewCommand, authorize, bad_request};
use crate::commands::CommandStatus;

/// The tree of batches: id → [`Batch`] (JSON).
pub const TREE: &str = "batches";

/// The most devices one batch may address.
pub const MAX_DEVICES: usize = 5_000;

/// A device by edge and id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeviceRef {
    pub edge: String,
    pub device: String,
}

/// One command for a group of devices (`POST /api/v1/batches`): the devices with `tag`, of
/// `kind`, or listed in `devices` (at least one of them; together, devices matching all).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewBatch {
    /// Devices with this tag (`[[device_tags]]` in the hub config).
    pub tag: Option<String>,
    /// Devices of this kind (`tv`, `egm`, `relay`, `synthetic`).
    pub kind: Option<String>,
    /// These devices.
    pub devices: Option<Vec<DeviceRef>>,
    /// The operation, as for one command (`GET /api/v1/operations`).
    pub op: String,
    #[schema(value_type = Object)]
    pub args: Option<serde_json::Value>,
    pub deadline_seconds: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Item {
    edge: String,
    device: String,
    outcome: Outcome,
}

/// What the batch did for one device.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Outcome {
    /// Its command, by id (its progress is the command's).
    Issued(String),
    /// Offline when the batch was made: why.
    SkippedOffline(String),
    /// The hub refused its command: the refusal's words.
    Rejected(String),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Batch {
    id: String,
    by: String,
    created_us: i64,
    op: String,
    args: serde_json::Value,
    selection: String,
    items: Vec<Item>,
}

/// One device's part in a batch.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BatchItemView {
    pub edge: String,
    pub device: String,
    /// `sent` (on its way or running), `done` (succeeded), `failed` (failed, expired,
    /// interrupted or refused by the edge), `rejected` (refused by the hub), `skipped_offline`.
    pub state: String,
    /// Its command, when one was issued.
    pub command: Option<String>,
    /// The command's status, the edge's answer, or why none was sent.
    pub detail: Option<String>,
}

/// A batch and its progress.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BatchView {
    pub id: String,
    pub by: String,
    pub created: String,
    pub op: String,
    #[schema(value_type = Object)]
    pub args: serde_json::Value,
    /// What was selected (`tag=lobby kind=tv`).
    pub selection: String,
    pub sent: usize,
    pub done: usize,
    pub failed: usize,
    pub rejected: usize,
    pub skipped_offline: usize,
    pub items: Vec<BatchItemView>,
}

fn store_error(e: impl std::fmt::Display) -> ApiError {
    ApiError(StatusCode::SERVICE_UNAVAILABLE, format!("batch store: {e}"))
}

fn view(ctx: &ApiContext, batch: &Batch) -> BatchView {
    let mut items = Vec::with_capacity(batch.items.len());
    for item in &batch.items {
        let (state, detail) = match &item.outcome {
            Outcome::Rejected(why) => ("rejected", Some(why.clone())),
            Outcome::SkippedOffline(why) => ("skipped_offline", Some(why.clone())),
            Outcome::Issued(id) => match ctx.commands.get(id).ok().flatten() {
                Some(record) => {
                    let state = match record.status {
                        CommandStatus::Pending | CommandStatus::Delivered => "sent",
                        CommandStatus::Succeeded => "done",
                        _ => "failed",
                    };
                    let detail = record.detail.clone().map_or_else(
                        || record.status.as_str().to_owned(),
                        |d| format!("{}: {d}", record.status.as_str()),
                    );
                    (state, Some(detail))
                }
                None => ("failed", Some(format!("command {id} is not in the log"))),
            },
        };
        items.push(BatchItemView {
            edge: item.edge.clone(),
            device: item.device.clone(),
            state: state.to_owned(),
            command: match &item.outcome {
                Outcome::Issued(id) => Some(id.clone()),
                _ => None,
            },
            detail,
        });
    }
    let count = |s: &str| items.iter().filter(|i| i.state == s).count();
    BatchView {
        id: batch.id.clone(),
        by: batch.by.clone(),
        created: rfc3339_utc(batch.created_us),
        op: batch.op.clone(),
        args: batch.args.clone(),
        selection: batch.selection.clone(),
        sent: count("sent"),
        done: count("done"),
        failed: count("failed"),
        rejected: count("rejected"),
        skipped_offline: count("skipped_offline"),
        items,
    }
}

/// Sends one command to every device of a group (role operator): devices that are offline now
/// are skipped, not queued; each other device gets its own command, validated as one would be.
#[utoipa::path(
    post,
    path = "/api/v1/batches",
    tag = "commands",
    request_body = NewBatch,
    responses(
        (status = 201, description = "The batch and where each device stands", body = BatchView),
        (status = 400, description = "No selection, or it matches no device", body = ErrorBody),
    )
)]
pub async fn create_batch(
    State(ctx): State<Arc<ApiContext>>,
    headers: HeaderMap,
    Json(new): Json<NewBatch>,
) -> Result<Response, ApiError> {
    let by = authorize(&ctx, &headers, Role::Operator)?;
    if new.tag.is_none() && new.kind.is_none() && new.devices.is_none() {
        return Err(bad_request("say which devices: tag, kind or devices"));
    }
    let listed = new.devices.clone();
    let all = crate::floor_api::device_summaries(&ctx)?;
    let selected: Vec<_> = all
        .into_iter()
        .filter(|d| new.tag.as_ref().is_none_or(|t| d.tags.contains(t)))
        .filter(|d| new.kind.as_ref().is_none_or(|k| *k == d.kind))
        .filter(|d| {
            listed
                .as_ref()
                .is_none_or(|l| l.iter().any(|r| r.edge == d.edge && r.device == d.device))
        })
        .collect();
    let mut selection = Vec::new();
    if let Some(tag) = &new.tag {
        selection.push(format!("tag={tag}"));
    }
    if let Some(kind) = &new.kind {
        selection.push(format!("kind={kind}"));
    }
    if let Some(list) = &listed {
        selection.push(format!("{} listed", list.len()));
    }
    let selection = selection.join(" ");
    if selected.is_empty() {
        return Err(bad_request(format!("no device matches {selection}")));
    }
    if selected.len() > MAX_DEVICES {
        return Err(bad_request(format!(
            "{} devices match {selection}; a batch takes at most {MAX_DEVICES}",
            selected.len()
        )));
    }
    let connected = ctx.sessions.connected();
    let mut items = Vec::with_capacity(selected.len());
    for d in selected {
        let online = connected.contains(&d.edge)
            && !matches!(d.status.as_str(), "down" | "comms_lost" | "unknown");
        if !online {
            let why = if connected.contains(&d.edge) {
                format!("offline ({})", d.status)
            } else {
                format!("offline (edge {} not connected)", d.edge)
            };
            items.push(Item {
                edge: d.edge,
                device: d.device,
                outcome: Outcome::SkippedOffline(why),
            });
            continue;
        }
        let command = NewCommand {
            edge: d.edge.clone(),
            device: d.device.clone(),
            op: new.op.clone(),
            args: new.args.clone(),
            deadline_seconds: new.deadline_seconds,
        };
        let outcome = match crate::api::issue(&ctx, by.clone(), command).await {
            Ok(record) => Outcome::Issued(record.id),
            Err(ApiError(_, why)) => Outcome::Rejected(why),
        };
        items.push(Item {
            edge: d.edge,
            device: d.device,
            outcome,
        });
    }
    let batch = Batch {
        id: uuid::Uuid::new_v4().simple().to_string(),
        by,
        created_us: outpost_process::clock::unix_us(),
        op: new.op,
        args: new.args.unwrap_or(serde_json::Value::Null),
        selection,
        items,
    };
    let tree = ctx.db.open_tree(TREE).map_err(store_error)?;
    let bytes = serde_json::to_vec(&batch).map_err(store_error)?;
    tree.insert(batch.id.as_bytes(), bytes)
        .map_err(store_error)?;
    tree.flush().map_err(store_error)?;
    tracing::info!(batch = %batch.id, by = %batch.by, op = %batch.op, devices = batch.items.len(), "batch issued");
    Ok((StatusCode::CREATED, Json(view(&ctx, &batch))).into_response())
}

/// A batch's progress (role viewer).
#[utoipa::path(
    get,
    path = "/api/v1/batches/{id}",
    tag = "commands",
    params(("id" = String, Path)),
    responses(
        (status = 200, description = "The batch", body = BatchView),
        (status = 404, description = "No such batch", body = ErrorBody),
    )
)]
pub async fn get_batch(
    State(ctx): State<Arc<ApiContext>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<BatchView>, ApiError> {
    authorize(&ctx, &headers, Role::Viewer)?;
    let tree = ctx.db.open_tree(TREE).map_err(store_error)?;
    let bytes = tree
        .get(id.as_bytes())
        .map_err(store_error)?
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no batch {id}")))?;
    let batch: Batch = serde_json::from_slice(&bytes).map_err(store_error)?;
    Ok(Json(view(&ctx, &batch)))
}
