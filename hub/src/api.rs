//! The hub's REST API under `/api/v1/` (JSON, bearer tokens with roles).
//!
//! Today: commands (`POST /api/v1/commands`, `GET /api/v1/commands/{id}`), the edges the hub knows
//! (`GET /api/v1/edges`), guest visits (`POST|GET /api/v1/visits`, `GET /api/v1/visits/{id}`,
//! `POST /api/v1/visits/{id}/cancel`, `POST /api/v1/visits/{id}/retry`) and the OpenAPI document
//! (`GET /api/v1/openapi.json`).
//!
//! Invariants: every request but the OpenAPI document needs a configured token (401 without, 403
//! when its role is too low); a command is validated (edge known, device known on that edge,
//! operation fits the device kind, arguments are a JSON object, deadline in range) and durably
//! stored before the answer; errors are JSON `{"error": "..."}` that say what to fix.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use outpost_config::{ApiToken, Role};
use serde::Deserialize;

use crate::commands::{CommandLog, CommandRecord, CommandStatus};
use crate::edges::EdgeDirectory;
use crate::eventlog::EventLog;
use crate::link::Sessions;
use outpost_actors::clock::unix_ms;

/// What the API handlers share.
pub struct ApiContext {
    pub tokens: Vec<ApiToken>,
    pub commands: CommandLog,
    pub edges: EdgeDirectory,
    pub sessions: Arc<Sessions>,
    pub eventlog: EventLog,
    /// Where bulk payloads from edges (screenshots) are stored: `<bulk_dir>/<edge>/<id>`.
    pub bulk_dir: std::path::PathBuf,
    pub default_deadline_seconds: u64,
    /// Guest visits, when HikCentral is configured.
    pub visits: Option<crate::hikcentral::Visits>,
}

/// The longest deadline a command may have.
pub const MAX_DEADLINE_SECONDS: u64 = 7 * 24 * 3600;

/// Operations each device kind accepts.
pub fn operations(kind: &str) -> &'static [&'static str] {
    match kind {
        "synthetic" => &["ping"],
        "egm" => &[
            "enable",
            "disable",
            "bill_acceptor",
            "rom_signature",
            "handpay_reset",
            "meter_refresh",
        ],
        "tv" => outpost_adb::tv::OPERATIONS,
        "relay" => &["on", "off", "cycle", "state"],
        _ => &[],
    }
}

/// Checks an operation's arguments before it is queued (the edge checks them again).
pub fn validate_args(kind: &str, op: &str, args: &serde_json::Value) -> Result<(), String> {
    match (kind, op) {
        ("egm", "bill_acceptor") => match args.get("enable") {
            Some(serde_json::Value::Bool(_)) => Ok(()),
            _ => Err("bill_acceptor needs {\"enable\": true|false}".into()),
        },
        ("egm", "rom_signature") => match args.get("seed") {
            None => Ok(()),
            Some(seed) if seed.as_u64().is_some_and(|s| s <= 0xFFFF) => Ok(()),
            Some(_) => Err("rom_signature's seed must be an integer 0-65535".into()),
        },
        ("tv", op) => outpost_adb::tv::parse(op, args).map(|_| ()),
        ("relay", "cycle") => match args.get("off_ms") {
            None => Ok(()),
            Some(ms) if ms.as_u64().is_some_and(|ms| ms <= 600_000) => Ok(()),
            Some(_) => Err("cycle's off_ms must be an integer up to 600000".into()),
        },
        _ => Ok(()),
    }
}

pub fn router(context: Arc<ApiContext>) -> axum::Router {
    axum::Router::new()
        .route("/api/v1/commands", post(create_command))
        .route("/api/v1/commands/{id}", get(get_command))
        .route("/api/v1/edges", get(list_edges))
        .route("/api/v1/bulk/{edge}/{id}", get(get_bulk))
        .route("/api/v1/edges/{edge}/events", get(list_events))
        .route("/api/v1/visits", post(create_visit).get(list_visits))
        .route("/api/v1/visits/{id}", get(get_visit))
        .route("/api/v1/visits/{id}/cancel", post(cancel_visit))
        .route("/api/v1/visits/{id}/retry", post(retry_visit))
        .route("/api/v1/openapi.json", get(openapi))
        .with_state(context)
}

/// The edge named `id` in a request: a valid id (else 400 naming the rule) of an edge this hub
/// knows (else 404). Every endpoint that takes an edge goes through here.
fn known_edge(ctx: &ApiContext, id: &str) -> Result<outpost_config::EdgeId, ApiError> {
    let edge: outpost_config::EdgeId = id.parse().map_err(bad_request)?;
    if ctx.edges.get(edge.as_str()).is_none() {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("edge {edge} has never connected to this hub"),
        ));
    }
    Ok(edge)
}

struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, message.into())
}

/// Constant-time comparison, so response timing does not reveal how much of a token matched.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The caller's token name and role, if it has the `needed` role or a higher one.
fn authorize(ctx: &ApiContext, headers: &HeaderMap, needed: Role) -> Result<String, ApiError> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| {
            ApiError(
                StatusCode::UNAUTHORIZED,
                "send Authorization: Bearer <token>".into(),
            )
        })?;
    let token = ctx
        .tokens
        .iter()
        .find(|t| same(t.token.as_bytes(), presented.as_bytes()))
        .ok_or_else(|| ApiError(StatusCode::UNAUTHORIZED, "unknown token".into()))?;
    if token.role < needed {
        return Err(ApiError(
            StatusCode::FORBIDDEN,
            format!(
                "token {} has role {:?}; this needs {:?}",
                token.name, token.role, needed
            ),
        ));
    }
    Ok(token.name.clone())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewCommand {
    edge: String,
    device: String,
    op: String,
    #[serde(default)]
    args: Option<serde_json::Value>,
    #[serde(default)]
    deadline_seconds: Option<u64>,
}

async fn create_command(
    State(ctx): State<Arc<ApiContext>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let issuer = authorize(&ctx, &headers, Role::Operator)?;
    let new: NewCommand = serde_json::from_slice(&body)
        .map_err(|e| bad_request(format!("body is not a valid command: {e}")))?;
    let edge_id = known_edge(&ctx, &new.edge)?;
    let edge = ctx.edges.get(edge_id.as_str()).ok_or_else(|| {
        ApiError(
            StatusCode::NOT_FOUND,
            format!("edge {edge_id} has never connected to this hub"),
        )
    })?;
    let device = edge
        .devices
        .iter()
        .find(|d| d.id == new.device)
        .ok_or_else(|| {
            ApiError(
                StatusCode::NOT_FOUND,
                format!("edge {} has no device {}", new.edge, new.device),
            )
        })?;
    let allowed = operations(&device.kind);
    if !allowed.contains(&new.op.as_str()) {
        return Err(bad_request(format!(
            "device {} is a {}; its operations are: {}",
            device.id,
            device.kind,
            allowed.join(", ")
        )));
    }
    let args = new.args.unwrap_or_else(|| serde_json::json!({}));
    if !args.is_object() {
        return Err(bad_request("args must be a JSON object"));
    }
    validate_args(&device.kind, &new.op, &args).map_err(bad_request)?;
    let deadline_seconds = new.deadline_seconds.unwrap_or(ctx.default_deadline_seconds);
    if !(1..=MAX_DEADLINE_SECONDS).contains(&deadline_seconds) {
        return Err(bad_request(format!(
            "deadline_seconds must be 1 to {MAX_DEADLINE_SECONDS}"
        )));
    }
    let now = unix_ms();
    let record = CommandRecord {
        id: format!("cmd-{:032x}", rand::random::<u128>()),
        issuer,
        edge: new.edge,
        device: new.device,
        op: new.op,
        args,
        created_ms: now,
        deadline_ms: now + (deadline_seconds * 1000) as i64,
        status: CommandStatus::Pending,
        detail: None,
        updated_ms: now,
    };
    ctx.commands
        .create(record.clone())
        .await
        .map_err(|e| match e {
            crate::commands::CommandLogError::TooLarge(_) => {
                ApiError(StatusCode::PAYLOAD_TOO_LARGE, e.to_string())
            }
            _ => ApiError(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        })?;
    tracing::info!(command = %record.id, issuer = %record.issuer, edge = %record.edge, device = %record.device, op = %record.op, "command issued");
    if let Some(request) = record.request(now) {
        ctx.sessions.offer(&record.edge, request);
    }
    Ok((StatusCode::CREATED, Json(record)).into_response())
}

async fn get_command(
    State(ctx): State<Arc<ApiContext>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    authorize(&ctx, &headers, Role::Viewer)?;
    match ctx.commands.get(&id) {
        Ok(Some(record)) => Ok(Json(record).into_response()),
        Ok(None) => Err(ApiError(StatusCode::NOT_FOUND, format!("no command {id}"))),
        Err(e) => Err(ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
    }
}

async fn list_edges(
    State(ctx): State<Arc<ApiContext>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize(&ctx, &headers, Role::Viewer)?;
    let connected = ctx.sessions.connected();
    let edges: Vec<serde_json::Value> = ctx
        .edges
        .all()
        .into_iter()
        .map(|e| {
            let committed = ctx.eventlog.committed_seq(&e.id).unwrap_or(0);
            serde_json::json!({
                "id": e.id,
                "connected": connected.contains(&e.id),
                "committed_seq": committed,
                "devices": e.devices,
                "software": e.software,
                "last_hello_ms": e.last_hello_ms,
                "clock_offset_ms": e.clock_offset_ms,
            })
        })
        .collect();
    Ok(Json(edges).into_response())
}

async fn openapi() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        include_str!("openapi.json"),
    )
}

fn visits(ctx: &ApiContext) -> Result<&crate::hikcentral::Visits, ApiError> {
    ctx.visits.as_ref().ok_or_else(|| {
        ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            "guest visits need HikCentral: set [hikcentral] enabled = true in the hub config"
                .into(),
        )
    })
}

impl From<crate::hikcentral::VisitError> for ApiError {
    fn from(e: crate::hikcentral::VisitError) -> Self {
        use crate::hikcentral::VisitError;
        let status = match &e {
            VisitError::Invalid(_) => StatusCode::BAD_REQUEST,
            VisitError::NotFound(_) => StatusCode::NOT_FOUND,
            VisitError::Exists(_) => StatusCode::CONFLICT,
            VisitError::Storage(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        ApiError(status, e.to_string())
    }
}

async fn create_visit(
    State(ctx): State<Arc<ApiContext>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let issuer = authorize(&ctx, &headers, Role::Operator)?;
    let visits = visits(&ctx)?;
    let new: crate::hikcentral::NewVisit = serde_json::from_slice(&body)
        .map_err(|e| bad_request(format!("body is not a valid visit: {e}")))?;
    let visit = visits.create(new, &issuer).await?;
    Ok((StatusCode::CREATED, Json(visit)).into_response())
}

#[derive(Debug, Deserialize)]
struct VisitFilter {
    state: Option<String>,
}

async fn list_visits(
    State(ctx): State<Arc<ApiContext>>,
    headers: HeaderMap,
    axum::extract::Query(filter): axum::extract::Query<VisitFilter>,
) -> Result<Response, ApiError> {
    authorize(&ctx, &headers, Role::Viewer)?;
    let state = match filter.state.as_deref() {
        None => None,
        Some(text) => Some(
            crate::hikcentral::visits::VisitState::parse(text).ok_or_else(|| {
                bad_request(format!(
                    "unknown state {text}; states: {}",
                    crate::hikcentral::visits::VisitState::ALL
                        .map(|s| s.as_str())
                        .join(", ")
                ))
            })?,
        ),
    };
    Ok(Json(visits(&ctx)?.list(state)?).into_response())
}

async fn get_visit(
    State(ctx): State<Arc<ApiContext>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    authorize(&ctx, &headers, Role::Viewer)?;
    Ok(Json(visits(&ctx)?.get(&id)?).into_response())
}

async fn cancel_visit(
    State(ctx): State<Arc<ApiContext>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let issuer = authorize(&ctx, &headers, Role::Operator)?;
    let visit = visits(&ctx)?.cancel(&id, &issuer).await?;
    Ok((StatusCode::ACCEPTED, Json(visit)).into_response())
}

async fn retry_visit(
    State(ctx): State<Arc<ApiContext>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let issuer = authorize(&ctx, &headers, Role::Operator)?;
    let visit = visits(&ctx)?.retry(&id, &issuer).await?;
    Ok((StatusCode::ACCEPTED, Json(visit)).into_response())
}

/// `GET /api/v1/bulk/{edge}/{id}`: a stored bulk payload (a screenshot), with its content type.
async fn get_bulk(
    State(ctx): State<Arc<ApiContext>>,
    headers: HeaderMap,
    Path((edge, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    authorize(&ctx, &headers, Role::Viewer)?;
    let edge = known_edge(&ctx, &edge)?;
    if !outpost_link::valid_bulk_id(&id) {
        return Err(bad_request("not a bulk payload id"));
    }
    let path = ctx.bulk_dir.join(edge.as_str()).join(&id);
    let bytes = tokio::fs::read(&path).await.map_err(|_| {
        ApiError(
            StatusCode::NOT_FOUND,
            format!("no bulk payload {id} from edge {edge} (yet)"),
        )
    })?;
    let content_type = tokio::fs::read(ctx.bulk_dir.join(edge.as_str()).join(format!("{id}.json")))
        .await
        .ok()
        .and_then(|meta| serde_json::from_slice::<serde_json::Value>(&meta).ok())
        .and_then(|meta| meta["content_type"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "application/octet-stream".into());
    Ok(([(header::CONTENT_TYPE, content_type)], bytes).into_response())
}

#[derive(Debug, Deserialize)]
struct EventQuery {
    /// First sequence number to look at (default 1).
    from: Option<u64>,
    /// At most this many events (default 100, at most 1000).
    limit: Option<usize>,
    /// Only this device's events.
    device: Option<String>,
}

/// Events scanned per request at most when filtering by device.
const EVENT_SCAN: usize = 20_000;

/// `GET /api/v1/edges/{edge}/events?from=&limit=&device=`: committed events (telemetry, SAS
/// events, TV recovery steps, relay switching, command results), oldest first; `next` is where
/// to continue.
async fn list_events(
    State(ctx): State<Arc<ApiContext>>,
    headers: HeaderMap,
    Path(edge): Path<String>,
    axum::extract::Query(query): axum::extract::Query<EventQuery>,
) -> Result<Response, ApiError> {
    authorize(&ctx, &headers, Role::Viewer)?;
    let edge = known_edge(&ctx, &edge)?;
    let from = query.from.unwrap_or(1).max(1);
    let limit = query.limit.unwrap_or(100).clamp(1, 1000);
    let scan = if query.device.is_some() {
        EVENT_SCAN
    } else {
        limit
    };
    let stored = ctx
        .eventlog
        .read(edge.as_str(), from, scan)
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let mut next = from;
    let mut events = Vec::new();
    for stored in stored {
        next = stored.event.seq + 1;
        if query
            .device
            .as_deref()
            .is_some_and(|d| d != stored.event.device)
        {
            continue;
        }
        events.push(serde_json::json!({
            "seq": stored.event.seq,
            "device": stored.event.device,
            "class": format!("{:?}", stored.event.class).to_lowercase(),
            "edge_wall_us": stored.event.wall_us,
            "hub_received_us": stored.hub_received_us,
            "body": stored.event.body,
        }));
        if events.len() >= limit {
            break;
        }
    }
    Ok(Json(serde_json::json!({ "events": events, "next": next })).into_response())
}
