//! The hub's REST API under `/api/v1/` (JSON, bearer tokens with roles).
//!
//! Today: commands (`POST /api/v1/commands`, `GET /api/v1/commands/{id}`, the operations each
//! kind of device accepts at `GET /api/v1/operations`), the edges the hub knows
//! (`GET /api/v1/edges`), their events and bulk payloads, guest visits (`POST|GET
//! /api/v1/visits`, `GET /api/v1/visits/{id}`, `POST /api/v1/visits/{id}/cancel|retry`) and the
//! OpenAPI document (`GET /api/v1/openapi.json`).
//!
//! The OpenAPI document is generated (utoipa) from the handlers' annotations and the types they
//! take and give, the command vocabulary's from `outpost-command` itself: nothing is kept by hand.
//!
//! Invariants: every request but the OpenAPI document needs a configured token (401 without, 403
//! when its role is too low); a command is validated (edge known, device known on that edge, the
//! operation and its arguments parse as a [`DeviceCommand`] of the device's kind, deadline in
//! range) and durably stored before the answer; errors are JSON `{"error": "..."}` that say what
//! to fix.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use outpost_command::CommandReply;
use outpost_config::{ApiToken, Role};
use serde::Deserialize;
use utoipa::Modify;
use utoipa::OpenApi;
use utoipa::openapi::{RefOr, schema::Schema};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::commands::{CommandLog, CommandRecord, CommandStatus, Dispatch};
use crate::edges::EdgeDirectory;
use crate::eventlog::EventLog;
use crate::link::Sessions;
use outpost_command::{DeviceCommand, DeviceKind};
use outpost_process::clock::unix_ms;

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
    /// Sites, currency and machine terms.
    pub floor: outpost_domain::site::Floor,
    /// The hub database (projections' trees).
    pub db: sled::Db,
    /// The live stream.
    pub stream: Arc<crate::stream::LiveStream>,
    /// Alerts.
    pub alerts: Arc<crate::alerts::Alerts>,
    /// Every device's state, as the devices projection last stored it.
    pub device_states: outpost_domain::projection::SharedStates,
    /// The handpay workflow.
    pub handpays: Arc<crate::handpays::Handpays>,
    /// Counted drop.
    pub counts: Arc<crate::counts::Counts>,
    /// Player sessions.
    pub player_sessions: Arc<crate::sessions::Sessions>,
    /// Device tags from the hub config.
    pub tags: std::collections::BTreeMap<(String, String), Vec<String>>,
    /// Which hub owns which edge (`[cluster]`).
    pub directory: Arc<crate::cluster::Directory>,
    /// The client requests for another hub's edges are handed on with.
    pub peers: reqwest::Client,
    /// Console users and their sessions.
    pub logins: Arc<crate::login::Logins>,
    /// Who did what.
    pub audit: crate::audit::AuditLog,
}

/// The longest deadline a command may have.
pub const MAX_DEADLINE_SECONDS: u64 = 7 * 24 * 3600;

#[derive(OpenApi)]
#[openapi(
    info(title = "Outpost hub API", version = "1"),
    modifiers(&BearerTokens),
    security(("bearer" = [])),
    components(schemas(CommandReply, DeviceKind))
)]
struct ApiDoc;

/// The `bearer` security scheme: API tokens from the hub config.
struct BearerTokens;

impl Modify for BearerTokens {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The API's routes with their OpenAPI description.
fn routes() -> OpenApiRouter<Arc<ApiContext>> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(create_command, list_commands))
        .routes(routes!(get_command))
        .routes(routes!(list_operations))
        .routes(routes!(list_edges))
        .routes(routes!(get_bulk))
        .routes(routes!(crate::floor_api::list_events))
        .routes(routes!(crate::floor_api::list_devices))
        .routes(routes!(crate::floor_api::get_device))
        .routes(routes!(crate::floor_api::get_machine_day))
        .routes(routes!(crate::floor_api::list_machine_days))
        .routes(routes!(crate::floor_api::get_site_day))
        .routes(routes!(crate::floor_api::stream))
        .routes(routes!(crate::floor_api::list_alerts))
        .routes(routes!(crate::floor_api::acknowledge_alert))
        .routes(routes!(crate::floor_api::list_handpays))
        .routes(routes!(crate::floor_api::verify_handpay))
        .routes(routes!(crate::floor_api::approve_handpay))
        .routes(routes!(crate::floor_api::pay_handpay))
        .routes(routes!(
            crate::floor_api::enter_count,
            crate::floor_api::get_count
        ))
        .routes(routes!(crate::floor_api::site_variance))
        .routes(routes!(
            crate::manual_api::enter_manual_reading,
            crate::manual_api::list_manual_readings
        ))
        .routes(routes!(crate::manual_api::correct_manual_reading))
        .routes(routes!(
            crate::floor_api::bind_player,
            crate::floor_api::current_session
        ))
        .routes(routes!(crate::floor_api::close_session))
        .routes(routes!(crate::floor_api::list_sessions))
        .routes(routes!(crate::floor_api::player_sessions))
        .routes(routes!(crate::floor_api::machine_transactions))
        .routes(routes!(crate::floor_api::machine_window))
        .routes(routes!(create_visit, list_visits))
        .routes(routes!(get_visit))
        .routes(routes!(cancel_visit))
        .routes(routes!(retry_visit))
        .routes(routes!(
            crate::console::login,
            crate::console::whoami,
            crate::console::logout
        ))
        .routes(routes!(crate::console::read_audit))
        .routes(routes!(crate::batches::create_batch))
        .routes(routes!(crate::batches::get_batch))
        .routes(routes!(crate::cards::get_cards, crate::cards::put_cards))
        .routes(routes!(crate::cards::list_cards))
}

/// The OpenAPI document of this API, as `GET /api/v1/openapi.json` serves it.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (_, mut doc) = routes().split_for_parts();
    doc.paths.add_path_operation(
        "/api/v1/",
        vec![utoipa::openapi::HttpMethod::Get],
        utoipa::openapi::path::OperationBuilder::new()
            .summary(Some(
                "What this API offers: every endpoint, and where its document is",
            ))
            .security(utoipa::openapi::security::SecurityRequirement::default())
            .response(
                "200",
                utoipa::openapi::ResponseBuilder::new().description("The index (no token needed)"),
            )
            .build(),
    );
    doc.paths.add_path_operation(
        "/api/v1/openapi.json",
        vec![utoipa::openapi::HttpMethod::Get],
        utoipa::openapi::path::OperationBuilder::new()
            .summary(Some("This document"))
            .security(utoipa::openapi::security::SecurityRequirement::default())
            .response(
                "200",
                utoipa::openapi::ResponseBuilder::new().description("OpenAPI 3.1 document"),
            )
            .build(),
    );
    doc
}

/// `GET /api/v1/`: the endpoints of `doc` (method, path, summary, and whether a token is
/// needed), and how to authenticate — the first URL the demo and the docs give.
fn index(doc: &utoipa::openapi::OpenApi) -> serde_json::Value {
    let mut endpoints = Vec::new();
    for (path, item) in &doc.paths.paths {
        let methods = [
            ("GET", &item.get),
            ("POST", &item.post),
            ("PUT", &item.put),
            ("DELETE", &item.delete),
            ("PATCH", &item.patch),
        ];
        for (method, operation) in methods {
            let Some(operation) = operation else { continue };
            // An empty requirement (`{}`) is "no token needed".
            let open = operation
                .security
                .as_ref()
                .is_some_and(|s| s.iter().any(|r| r == &Default::default()));
            endpoints.push(serde_json::json!({
                "method": method,
                "path": path,
                "summary": operation.summary,
                "token": if open { "none" } else { "Authorization: Bearer <token>" },
            }));
        }
    }
    serde_json::json!({
        "service": "outpost-hub",
        "version": env!("CARGO_PKG_VERSION"),
        "openapi": "/api/v1/openapi.json",
        "authentication": "Authorization: Bearer <token> (each token and its role, viewer, operator, supervisor or admin, is a [[api.tokens]] entry of the hub config), or a console session: POST /api/v1/session with a [[api.users]] name and password sets a cookie, and changes made with it send X-CSRF-Token",
        "endpoints": endpoints,
    })
}

pub fn router(context: Arc<ApiContext>) -> axum::Router {
    let (router, _) = routes().split_for_parts();
    let doc = openapi();
    let index = Arc::new(index(&doc).to_string());
    let document = Arc::new(doc.to_json().unwrap_or_else(|e| {
        tracing::error!(%e, "cannot render the OpenAPI document");
        String::from("{}")
    }));
    let index_route = get(move || {
        let index = index.clone();
        async move {
            (
                [(header::CONTENT_TYPE, "application/json")],
                index.as_str().to_owned(),
            )
        }
    });
    router
        .route("/api/v1/", index_route.clone())
        .route("/api/v1", index_route)
        .route(
            "/api/v1/openapi.json",
            get(move || {
                let document = document.clone();
                async move {
                    (
                        [(header::CONTENT_TYPE, "application/json")],
                        document.as_str().to_owned(),
                    )
                }
            }),
        )
        .layer(axum::middleware::from_fn_with_state(
            context.clone(),
            authenticate_before_body,
        ))
        .layer(axum::middleware::from_fn_with_state(
            context.clone(),
            crate::console::audit_changes,
        ))
        // Outermost: a request for another hub's edge goes to that hub, body and all.
        .layer(axum::middleware::from_fn_with_state(
            context.clone(),
            to_owning_hub,
        ))
        // A body that stops arriving is cut off: the request fails instead of holding on.
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
            BODY_READ_TIMEOUT,
        ))
        .with_state(context)
        .merge(crate::console::assets())
}

/// The longest a request body may go without sending more.
pub const BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A request that changes something (POST, PUT, PATCH, DELETE) must present a known token or
/// session before its body is read: an unauthenticated 10 MB upload is refused with 401, not read
/// and answered 413. One made with a console session must also carry that session's CSRF token
/// (`X-CSRF-Token`), so another site cannot make a logged-in browser act. Logging in is the one
/// exception. (The role each endpoint needs is checked by the endpoint; GETs authenticate there
/// too, since the live stream may pass its token as a query parameter.)
async fn authenticate_before_body(
    State(ctx): State<Arc<ApiContext>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let changes = changes_something(request.method());
    let logging_in = request.uri().path() == crate::console::SESSION_PATH;
    if changes && !logging_in {
        // The caller is looked up once, for both checks.
        let who = caller(&ctx, request.headers());
        let csrf = match &who {
            Caller::Person(person) => Some(person.csrf.clone()),
            _ => None,
        };
        if let Err(refused) = permitted(who, request.headers(), Role::Viewer) {
            return refused.into_response();
        }
        if let Some(csrf) = csrf {
            let presented = request
                .headers()
                .get(crate::login::CSRF_HEADER)
                .map(axum::http::HeaderValue::as_bytes)
                .unwrap_or_default();
            if !same(presented, csrf.as_bytes()) {
                return ApiError(
                    StatusCode::FORBIDDEN,
                    "send the X-CSRF-Token your login answered (GET /api/v1/session tells it)"
                        .into(),
                )
                .into_response();
            }
        }
    }
    next.run(request).await
}

/// Whether a request with this method changes something (and is audited).
pub(crate) fn changes_something(method: &axum::http::Method) -> bool {
    use axum::http::Method;
    [Method::POST, Method::PUT, Method::PATCH, Method::DELETE].contains(method)
}

/// Who is calling: a machine by its token, a person by their session, or no one known.
pub(crate) enum Caller<'a> {
    Token(&'a ApiToken),
    Person(crate::login::Person),
    Unknown,
}

/// The caller a request names: its bearer token if it sends one, else its session cookie.
pub(crate) fn caller<'a>(ctx: &'a ApiContext, headers: &HeaderMap) -> Caller<'a> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if let Some(presented) = bearer {
        return ctx
            .tokens
            .iter()
            .find(|t| same(t.token.as_bytes(), presented.as_bytes()))
            .map_or(Caller::Unknown, Caller::Token);
    }
    crate::login::session_cookie(headers)
        .and_then(|token| ctx.logins.person(token, crate::login::now_ms()))
        .map_or(Caller::Unknown, Caller::Person)
}

/// Collections whose next path segment is an edge id (`/api/v1/<collection>/<edge>/…`).
const EDGE_COLLECTIONS: [&str; 5] = ["bulk", "devices", "edges", "handpays", "machines"];

/// The edge a request's path names, if any.
fn edge_in_path(path: &str) -> Option<&str> {
    let mut segments = path.strip_prefix("/api/v1/")?.split('/');
    let collection = segments.next()?;
    let edge = segments.next()?;
    (EDGE_COLLECTIONS.contains(&collection) && !edge.is_empty()).then_some(edge)
}

/// The largest body handed on to another hub (a visit's photo is the largest the API takes).
const FORWARDED_BODY_BYTES: usize = 16 * 1024 * 1024;

/// Hands a request whose path names another hub's edge to that hub and answers with its answer
/// (status, content type and body). A request that was handed on already is answered here.
async fn to_owning_hub(
    State(ctx): State<Arc<ApiContext>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let owner = edge_in_path(request.uri().path()).map(|edge| ctx.directory.owner(edge));
    let (Some(crate::cluster::Owner::Hub { id, api_url }), false) = (
        owner,
        request.headers().contains_key(crate::cluster::FORWARDED_BY),
    ) else {
        return next.run(request).await;
    };
    let url = format!(
        "{api_url}{}",
        request.uri().path_and_query().map_or("", |p| p.as_str())
    );
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, FORWARDED_BODY_BYTES).await {
        Ok(body) => body,
        Err(e) => return bad_request(format!("request body: {e}")).into_response(),
    };
    let mut forward = ctx
        .peers
        .request(parts.method.clone(), &url)
        .header(crate::cluster::FORWARDED_BY, ctx.directory.me())
        .body(body);
    for name in [header::AUTHORIZATION, header::CONTENT_TYPE, header::ACCEPT] {
        if let Some(value) = parts.headers.get(&name) {
            forward = forward.header(name, value);
        }
    }
    match forward.send().await {
        Ok(answer) => {
            let status = answer.status();
            let content_type = answer.headers().get(header::CONTENT_TYPE).cloned();
            match answer.bytes().await {
                Ok(bytes) => {
                    let mut response = (status, bytes).into_response();
                    if let Some(content_type) = content_type {
                        response
                            .headers_mut()
                            .insert(header::CONTENT_TYPE, content_type);
                    }
                    response
                        .headers_mut()
                        .insert("x-outpost-answered-by", header_value(id));
                    response
                }
                Err(e) => unreachable_hub(id, &url, &e),
            }
        }
        Err(e) => unreachable_hub(id, &url, &e),
    }
}

fn header_value(text: &str) -> axum::http::HeaderValue {
    axum::http::HeaderValue::from_str(text)
        .unwrap_or_else(|_| axum::http::HeaderValue::from_static("?"))
}

fn unreachable_hub(id: &str, url: &str, error: &reqwest::Error) -> Response {
    tracing::warn!(hub = id, %url, %error, "the hub owning this edge did not answer");
    ApiError(
        StatusCode::BAD_GATEWAY,
        format!("this edge belongs to hub {id}, which did not answer at {url}: {error}"),
    )
    .into_response()
}

/// The edge named `id` in a request: a valid id (else 400 naming the rule) of an edge this hub
/// owns (else 421 naming the hub that does) and knows (else 404). Every endpoint that takes an
/// edge goes through here.
pub(crate) fn known_edge(ctx: &ApiContext, id: &str) -> Result<outpost_config::EdgeId, ApiError> {
    let edge: outpost_config::EdgeId = id.parse().map_err(bad_request)?;
    if let crate::cluster::Owner::Hub { id: hub, api_url } = ctx.directory.owner(edge.as_str()) {
        return Err(ApiError(
            StatusCode::MISDIRECTED_REQUEST,
            format!("edge {edge} belongs to hub {hub}: send this request to {api_url}"),
        ));
    }
    if ctx.edges.get(edge.as_str()).is_none() {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("edge {edge} has never connected to this hub"),
        ));
    }
    Ok(edge)
}

pub(crate) struct ApiError(pub StatusCode, pub String);

/// What every error answer looks like.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    /// What was wrong and how to fix it.
    pub error: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

pub(crate) fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, message.into())
}

/// Constant-time comparison, so response timing does not reveal how much of a token matched.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The caller's token name and role, if it has the `needed` role or a higher one.
pub(crate) fn authorize(
    ctx: &ApiContext,
    headers: &HeaderMap,
    needed: Role,
) -> Result<String, ApiError> {
    permitted(caller(ctx, headers), headers, needed)
}

/// The name of `caller` (found in `headers`), if it has the `needed` role or a higher one.
fn permitted(caller: Caller<'_>, headers: &HeaderMap, needed: Role) -> Result<String, ApiError> {
    let (what, name, role) = match caller {
        Caller::Token(token) => ("token", token.name.clone(), token.role),
        Caller::Person(person) => ("user", person.user, person.role),
        Caller::Unknown if headers.contains_key(header::AUTHORIZATION) => {
            return Err(ApiError(StatusCode::UNAUTHORIZED, "unknown token".into()));
        }
        Caller::Unknown if crate::login::session_cookie(headers).is_some() => {
            return Err(ApiError(
                StatusCode::UNAUTHORIZED,
                "your session has ended: log in again".into(),
            ));
        }
        Caller::Unknown => {
            return Err(ApiError(
                StatusCode::UNAUTHORIZED,
                "send Authorization: Bearer <token>, or log in (POST /api/v1/session)".into(),
            ));
        }
    };
    if role < needed {
        return Err(ApiError(
            StatusCode::FORBIDDEN,
            format!("{what} {name} has role {role:?}; this needs {needed:?}"),
        ));
    }
    Ok(name)
}

/// A command as operators write it (`POST /api/v1/commands`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewCommand {
    pub edge: String,
    pub device: String,
    pub op: String,
    #[serde(default)]
    pub args: Option<serde_json::Value>,
    #[serde(default)]
    pub deadline_seconds: Option<u64>,
}

/// Why a request body was refused (a 400 answer's message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BodyError(pub String);

impl NewCommand {
    /// Reads a request body.
    pub fn from_body(body: &[u8]) -> Result<Self, BodyError> {
        serde_json::from_slice(body)
            .map_err(|e| BodyError(format!("body is not a valid command: {e}")))
    }

    /// The typed command, for a device of `kind`, and its deadline in seconds (`default` when the
    /// body gives none).
    pub fn command(
        &self,
        kind: DeviceKind,
        default_deadline_seconds: u64,
    ) -> Result<(DeviceCommand, u64), BodyError> {
        let args = self.args.clone().unwrap_or(serde_json::Value::Null);
        let command = DeviceCommand::parse(kind, &self.op, args)
            .map_err(|e| BodyError(format!("device {} is a {kind}: {e}", self.device)))?;
        let deadline_seconds = self.deadline_seconds.unwrap_or(default_deadline_seconds);
        if !(1..=MAX_DEADLINE_SECONDS).contains(&deadline_seconds) {
            return Err(BodyError(format!(
                "deadline_seconds must be 1 to {MAX_DEADLINE_SECONDS}"
            )));
        }
        Ok((command, deadline_seconds))
    }
}

impl From<BodyError> for ApiError {
    fn from(err: BodyError) -> Self {
        bad_request(err.0)
    }
}

/// Its schema: the envelope, and one alternative per operation with that operation's arguments,
/// generated from the command vocabulary.
impl utoipa::PartialSchema for NewCommand {
    fn schema() -> RefOr<Schema> {
        use utoipa::openapi::schema::{
            AdditionalProperties, AllOfBuilder, ObjectBuilder, OneOfBuilder, Type,
        };
        let text = |description: &str| {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .description(Some(description))
        };
        let envelope = ObjectBuilder::new()
            .schema_type(Type::Object)
            .property("edge", text("edge id"))
            .property("device", text("device id on that edge"))
            .property(
                "op",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(outpost_command::catalogue().map(|o| o.name)))
                    .description(Some(
                        "operation; which ones a device takes depends on its kind",
                    )),
            )
            .property(
                "args",
                ObjectBuilder::new()
                    .schema_type(Type::Object)
                    .description(Some(
                        "the operation's arguments ({} or absent when it takes none)",
                    )),
            )
            .property(
                "deadline_seconds",
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(1))
                    .maximum(Some(MAX_DEADLINE_SECONDS))
                    .description(Some(
                        "not run after this many seconds (default from the hub config)",
                    )),
            )
            .required("edge")
            .required("device")
            .required("op")
            .additional_properties(Some(AdditionalProperties::FreeForm(false)));
        let mut alternatives = OneOfBuilder::new();
        let catalogue: Vec<_> = outpost_command::catalogue().collect();
        for (kind, op, args) in outpost_command::argument_schemas() {
            let summary = catalogue
                .iter()
                .find(|o| o.kind == kind && o.name == op)
                .map_or("", |o| o.summary);
            alternatives = alternatives.item(
                ObjectBuilder::new()
                    .title(Some(format!("{kind} {op}")))
                    .description(Some(summary))
                    .property(
                        "op",
                        ObjectBuilder::new()
                            .schema_type(Type::String)
                            .enum_values(Some([op])),
                    )
                    .property("args", args),
            );
        }
        AllOfBuilder::new().item(envelope).item(alternatives).into()
    }
}

impl utoipa::ToSchema for NewCommand {}

/// Issue a command to a device (role operator).
///
/// The operation and its arguments are checked against the device's kind (see
/// `GET /api/v1/operations`); the command is durably stored before the answer and runs at most
/// once on the edge, before its deadline.
#[utoipa::path(
    post,
    path = "/api/v1/commands",
    tag = "commands",
    params(WaitQuery),
    request_body = NewCommand,
    responses(
        (status = 201, description = "Stored; sent to its edge now or when it connects", body = CommandRecord),
        (status = 400, description = "Not a valid command; the message says what to fix", body = ErrorBody),
        (status = 401, description = "No or unknown token", body = ErrorBody),
        (status = 403, description = "The token's role is too low", body = ErrorBody),
        (status = 404, description = "Unknown edge or device", body = ErrorBody),
        (status = 413, description = "Too large to store", body = ErrorBody),
    )
)]
async fn create_command(
    State(ctx): State<Arc<ApiContext>>,
    headers: HeaderMap,
    axum::extract::Query(query): axum::extract::Query<WaitQuery>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let wait = match &query.wait {
        Some(text) => parse_wait(text)?,
        None => std::time::Duration::ZERO,
    };
    let issuer = authorize(&ctx, &headers, Role::Operator)?;
    let new = NewCommand::from_body(&body)?;
    let record = issue(&ctx, issuer, new).await?;
    let record = if wait.is_zero() {
        record
    } else {
        wait_for_final(&ctx, record, wait).await
    };
    Ok((StatusCode::CREATED, Json(record)).into_response())
}

/// Validates `new` against the edge's devices, stores it durably and offers it to its edge.
pub(crate) async fn issue(
    ctx: &ApiContext,
    issuer: String,
    new: NewCommand,
) -> Result<CommandRecord, ApiError> {
    let edge_id = known_edge(ctx, &new.edge)?;
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
    let kind: DeviceKind = device
        .kind
        .parse()
        .map_err(|e: outpost_command::UnknownKind| {
            bad_request(format!("device {} cannot take commands: {e}", device.id))
        })?;
    let (command, deadline_seconds) = new.command(kind, ctx.default_deadline_seconds)?;
    let now = unix_ms();
    let record = CommandRecord {
        id: format!("cmd-{:032x}", rand::random::<u128>()),
        issuer,
        edge: new.edge,
        device: new.device,
        kind,
        op: command.op().to_owned(),
        args: command.args(),
        created_ms: now,
        deadline_ms: now + (deadline_seconds * 1000) as i64,
        status: CommandStatus::Pending,
        detail: None,
        result: None,
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
    if let Dispatch::Send(request) = record.dispatch(now) {
        ctx.sessions.offer(&record.edge, request);
    }
    Ok(record)
}

/// The longest `?wait=` a command request may hold its answer for.
pub const MAX_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct WaitQuery {
    /// Hold the answer until the command has finished or this long has passed (`5s`, `500ms`;
    /// at most 30 s). The answer is 201 either way; its `status` says whether it finished.
    wait: Option<String>,
}

/// Reads `5s`, `500ms` or `5` (seconds).
fn parse_wait(text: &str) -> Result<std::time::Duration, ApiError> {
    let bad = || {
        bad_request(format!(
            "wait={text:?}: write a duration such as 5s or 500ms, at most 30s"
        ))
    };
    let (number, unit_ms) = if let Some(n) = text.strip_suffix("ms") {
        (n, 1)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1000)
    } else {
        (text, 1000)
    };
    let n: u64 = number.trim().parse().map_err(|_| bad())?;
    let wait = std::time::Duration::from_millis(n.saturating_mul(unit_ms));
    if wait > MAX_WAIT {
        return Err(bad());
    }
    Ok(wait)
}

/// `record` once it is final, or as it is when `wait` has passed.
async fn wait_for_final(
    ctx: &ApiContext,
    record: CommandRecord,
    wait: std::time::Duration,
) -> CommandRecord {
    let until = tokio::time::Instant::now() + wait;
    let mut latest = record;
    while !latest.status.is_final() && tokio::time::Instant::now() < until {
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        if let Ok(Some(now)) = ctx.commands.get(&latest.id) {
            latest = now;
        }
    }
    latest
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct CommandQuery {
    edge: Option<String>,
    device: Option<String>,
    /// `pending`, `delivered`, `succeeded`, `failed`, `expired`, `rejected`, `interrupted`.
    status: Option<String>,
    /// The token name that issued it.
    issuer: Option<String>,
    /// Created at or after (RFC 3339).
    since: Option<String>,
    /// Created before (RFC 3339).
    until: Option<String>,
    /// Commands created before this one (the previous page's `next`).
    before: Option<String>,
    /// At most this many (default 100, at most 1000).
    limit: Option<usize>,
}

/// A page of commands, newest first.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct CommandPage {
    pub commands: Vec<CommandRecord>,
    /// Pass as `before` for the next page; absent on the last.
    pub next: Option<String>,
}

/// Commands, newest first, by edge, device, status, issuer and time (role viewer).
#[utoipa::path(
    get,
    path = "/api/v1/commands",
    tag = "commands",
    params(CommandQuery),
    responses(
        (status = 200, description = "A page of commands", body = CommandPage),
        (status = 400, description = "Unknown status, or a time that does not read", body = ErrorBody),
        (status = 404, description = "`before` names no command", body = ErrorBody),
    )
)]
async fn list_commands(
    State(ctx): State<Arc<ApiContext>>,
    headers: HeaderMap,
    axum::extract::Query(query): axum::extract::Query<CommandQuery>,
) -> Result<Response, ApiError> {
    authorize(&ctx, &headers, Role::Viewer)?;
    let status = match &query.status {
        Some(text) => Some(
            serde_json::from_value::<CommandStatus>(serde_json::Value::String(text.clone()))
                .map_err(|_| {
                    bad_request(format!(
                        "status {text:?} is not one of pending, delivered, succeeded, failed, expired, rejected, interrupted"
                    ))
                })?,
        ),
        None => None,
    };
    let time = |text: &Option<String>| -> Result<Option<i64>, ApiError> {
        text.as_deref()
            .map(|t| {
                outpost_domain::calendar::parse_rfc3339(t)
                    .map(|us| us / 1000)
                    .map_err(|e| bad_request(e.to_string()))
            })
            .transpose()
    };
    let filter = crate::commands::CommandFilter {
        edge: query.edge.clone(),
        device: query.device.clone(),
        status,
        issuer: query.issuer.clone(),
        since_ms: time(&query.since)?,
        until_ms: time(&query.until)?,
    };
    let limit = query.limit.unwrap_or(100).clamp(1, 1000);
    let (commands, next) = ctx
        .commands
        .list(&filter, limit, query.before.as_deref())
        .map_err(|e| match e {
            crate::commands::CommandLogError::Unknown(_) => {
                ApiError(StatusCode::NOT_FOUND, e.to_string())
            }
            other => ApiError(StatusCode::SERVICE_UNAVAILABLE, other.to_string()),
        })?;
    Ok(Json(CommandPage { commands, next }).into_response())
}

/// A command and its status (role viewer).
#[utoipa::path(
    get,
    path = "/api/v1/commands/{id}",
    tag = "commands",
    params(("id" = String, Path, description = "command id")),
    responses(
        (status = 200, description = "The command; `result` holds the device's typed answer once it succeeded", body = CommandRecord),
        (status = 404, description = "No such command", body = ErrorBody),
    )
)]
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

/// One operation a kind of device accepts, for forms and documentation.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct OperationView {
    pub kind: DeviceKind,
    pub op: &'static str,
    pub summary: &'static str,
    /// Arguments that work.
    #[schema(value_type = Object)]
    pub example: serde_json::Value,
    /// JSON schema of the arguments.
    #[schema(value_type = Object)]
    pub args_schema: serde_json::Value,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct OperationFilter {
    /// Only this kind's operations (`egm`, `tv`, `relay`, `synthetic`).
    kind: Option<String>,
}

/// The operations each kind of device accepts, with their arguments' schemas (role viewer).
#[utoipa::path(
    get,
    path = "/api/v1/operations",
    tag = "commands",
    params(OperationFilter),
    responses(
        (status = 200, description = "Operations, by kind", body = Vec<OperationView>),
        (status = 400, description = "Unknown kind", body = ErrorBody),
    )
)]
async fn list_operations(
    State(ctx): State<Arc<ApiContext>>,
    headers: HeaderMap,
    axum::extract::Query(filter): axum::extract::Query<OperationFilter>,
) -> Result<Response, ApiError> {
    authorize(&ctx, &headers, Role::Viewer)?;
    let kind: Option<DeviceKind> = match filter.kind.as_deref() {
        None => None,
        Some(text) => Some(
            text.parse()
                .map_err(|e: outpost_command::UnknownKind| bad_request(e.to_string()))?,
        ),
    };
    let catalogue: Vec<_> = outpost_command::catalogue().collect();
    let views: Vec<OperationView> = outpost_command::argument_schemas()
        .into_iter()
        .filter(|(k, _, _)| kind.is_none_or(|wanted| wanted == *k))
        .filter_map(|(kind, op, schema)| {
            let operation = catalogue.iter().find(|o| o.kind == kind && o.name == op)?;
            Some(OperationView {
                kind,
                op,
                summary: operation.summary,
                example: serde_json::from_str(operation.example).unwrap_or_default(),
                args_schema: serde_json::to_value(schema).unwrap_or_default(),
            })
        })
        .collect();
    Ok(Json(views).into_response())
}

/// A device as its edge reported it.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct DeviceView {
    pub id: String,
    /// `egm`, `tv`, `relay` or `synthetic`.
    pub kind: String,
}

/// An edge as the hub knows it.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct EdgeView {
    pub id: String,
    /// It has a session with this hub now.
    pub connected: bool,
    /// Every event up to this sequence is durably stored at the hub.
    pub committed_seq: u64,
    pub devices: Vec<DeviceView>,
    /// The edge's software version.
    pub software: String,
    pub last_hello_ms: i64,
    /// When the hub last heard from the edge (any frame; its last handshake if none came since
    /// the hub started), RFC 3339.
    pub last_seen: String,
    /// Edge clock minus hub clock at its last handshake, ms.
    pub clock_offset_ms: i64,
    /// Events the edge holds unacknowledged, as it last reported (every 5 s while connected).
    pub outbox_depth_events: Option<u64>,
    /// Age of the oldest of them, seconds, as it last reported.
    pub oldest_unacked_seconds: Option<f64>,
    /// When that report came (RFC 3339).
    pub reported: Option<String>,
}

/// Edges the hub knows, with their devices and committed sequence (role viewer).
#[utoipa::path(
    get,
    path = "/api/v1/edges",
    tag = "edges",
    responses((status = 200, description = "Every edge that has connected", body = Vec<EdgeView>))
)]
async fn list_edges(
    State(ctx): State<Arc<ApiContext>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize(&ctx, &headers, Role::Viewer)?;
    let connected = ctx.sessions.connected();
    let edges: Vec<EdgeView> = ctx
        .edges
        .all()
        .into_iter()
        .map(|e| {
            let status = ctx.sessions.status(&e.id);
            EdgeView {
                committed_seq: ctx.eventlog.committed_seq(&e.id).unwrap_or(0),
                connected: connected.contains(&e.id),
                devices: e
                    .devices
                    .into_iter()
                    .map(|d| DeviceView {
                        id: d.id,
                        kind: d.kind,
                    })
                    .collect(),
                last_seen: outpost_domain::calendar::rfc3339_utc(
                    ctx.sessions
                        .last_seen(&e.id)
                        .unwrap_or(e.last_hello_ms)
                        .max(e.last_hello_ms)
                        .saturating_mul(1000),
                ),
                id: e.id,
                software: e.software,
                last_hello_ms: e.last_hello_ms,
                clock_offset_ms: e.clock_offset_ms,
                outbox_depth_events: status.map(|(s, _)| s.outbox_depth_events),
                oldest_unacked_seconds: status.map(|(s, _)| s.oldest_unacked_ms as f64 / 1000.0),
                reported: status
                    .map(|(_, at)| outpost_domain::calendar::rfc3339_utc(at.saturating_mul(1000))),
            }
        })
        .collect();
    Ok(Json(edges).into_response())
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

/// Book a guest visit; it is stored durably, then provisioned into HikCentral (role operator).
#[utoipa::path(
    post,
    path = "/api/v1/visits",
    tag = "visits",
    request_body = crate::hikcentral::NewVisit,
    responses(
        (status = 201, description = "Stored; provisioning runs in the background", body = crate::hikcentral::visits::Visit),
        (status = 400, description = "Not a valid visit", body = ErrorBody),
        (status = 409, description = "A visit with this id exists", body = ErrorBody),
        (status = 503, description = "HikCentral is not configured, or the store failed", body = ErrorBody),
    )
)]
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

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct VisitFilter {
    /// Only visits in this state.
    #[param(value_type = Option<crate::hikcentral::visits::VisitState>)]
    state: Option<String>,
}

/// All visits, optionally in one state (role viewer).
#[utoipa::path(
    get,
    path = "/api/v1/visits",
    tag = "visits",
    params(VisitFilter),
    responses(
        (status = 200, description = "Visits", body = Vec<crate::hikcentral::visits::Visit>),
        (status = 400, description = "Unknown state", body = ErrorBody),
    )
)]
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

/// A visit, its provisioning state and history (role viewer).
#[utoipa::path(
    get,
    path = "/api/v1/visits/{id}",
    tag = "visits",
    params(("id" = String, Path, description = "visit id")),
    responses(
        (status = 200, description = "The visit", body = crate::hikcentral::visits::Visit),
        (status = 404, description = "No such visit", body = ErrorBody),
    )
)]
async fn get_visit(
    State(ctx): State<Arc<ApiContext>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    authorize(&ctx, &headers, Role::Viewer)?;
    Ok(Json(visits(&ctx)?.get(&id)?).into_response())
}

/// Revoke the visit now: removed from its access level, reapplied, person deleted (role operator).
#[utoipa::path(
    post,
    path = "/api/v1/visits/{id}/cancel",
    tag = "visits",
    params(("id" = String, Path, description = "visit id")),
    responses(
        (status = 202, description = "Cancellation under way", body = crate::hikcentral::visits::Visit),
        (status = 404, description = "No such visit", body = ErrorBody),
    )
)]
async fn cancel_visit(
    State(ctx): State<Arc<ApiContext>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let issuer = authorize(&ctx, &headers, Role::Operator)?;
    let visit = visits(&ctx)?.cancel(&id, &issuer).await?;
    Ok((StatusCode::ACCEPTED, Json(visit)).into_response())
}

/// Retry the step a blocked visit stopped at (role operator).
#[utoipa::path(
    post,
    path = "/api/v1/visits/{id}/retry",
    tag = "visits",
    params(("id" = String, Path, description = "visit id")),
    responses(
        (status = 202, description = "Retrying", body = crate::hikcentral::visits::Visit),
        (status = 400, description = "The visit is not blocked", body = ErrorBody),
        (status = 404, description = "No such visit", body = ErrorBody),
    )
)]
async fn retry_visit(
    State(ctx): State<Arc<ApiContext>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let issuer = authorize(&ctx, &headers, Role::Operator)?;
    let visit = visits(&ctx)?.retry(&id, &issuer).await?;
    Ok((StatusCode::ACCEPTED, Json(visit)).into_response())
}

/// A bulk payload an edge sent (a TV screenshot: image/png), by the bulk id a command's result
/// names (role viewer).
#[utoipa::path(
    get,
    path = "/api/v1/bulk/{edge}/{id}",
    tag = "edges",
    params(
        ("edge" = String, Path, description = "edge id"),
        ("id" = String, Path, description = "bulk id, as in a screenshot's result"),
    ),
    responses(
        (status = 200, description = "The payload, with its content type", content_type = "application/octet-stream"),
        (status = 400, description = "Not a valid edge or bulk id", body = ErrorBody),
        (status = 404, description = "Unknown edge, or no such payload (yet)", body = ErrorBody),
    )
)]
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

#[cfg(test)]
mod tests {
    use super::edge_in_path;

    #[test]
    fn a_path_names_an_edge_only_where_an_edge_id_goes() {
        assert_eq!(edge_in_path("/api/v1/edges/edge-x/events"), Some("edge-x"));
        assert_eq!(
            edge_in_path("/api/v1/machines/edge-x/egm-1/days"),
            Some("edge-x")
        );
        assert_eq!(edge_in_path("/api/v1/bulk/edge-x/b-1"), Some("edge-x"));
        assert_eq!(
            edge_in_path("/api/v1/edges"),
            None,
            "the list is this hub's"
        );
        assert_eq!(edge_in_path("/api/v1/edges/"), None);
        assert_eq!(edge_in_path("/api/v1/commands/cmd-1"), None, "not an edge");
        assert_eq!(edge_in_path("/metrics"), None);
    }
}
