//! The web console: its assets, compiled into the hub (`hub/console/`), served at `/`; the
//! session endpoints it logs in with (`/api/v1/session`); the audit log's endpoint and the
//! middleware that fills it.
//!
//! The console is a client of the public API like any other: it has no endpoint of its own
//! beyond the static files. Invariants: assets are served with a Content-Security-Policy that
//! allows only the hub's own scripts, styles and connections; the console's HTML is never cached
//! stale (`no-cache`), so an upgraded hub serves its own console.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use outpost_config::Role;
use outpost_domain::calendar::{parse_rfc3339, rfc3339_utc};
use outpost_process::clock::unix_ms;
use serde::{Deserialize, Serialize};

use crate::api::{ApiContext, ApiError, Caller, ErrorBody, authorize, bad_request, caller};
use crate::audit::{AuditFilter, AuditRecord};
use crate::login::{LoginError, set_cookie};

/// Where a console logs in, asks who it is, and logs out.
pub const SESSION_PATH: &str = "/api/v1/session";

#[derive(rust_embed::Embed)]
#[folder = "console/"]
struct Assets;

/// What the browser may load on a console page: the hub's own files, the hub's own API, and
/// images it was given (screenshots, photo previews).
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' data: blob:; \
     style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; \
     base-uri 'none'; form-action 'self'";

/// The console's routes: `/` (the page) and `/console/<file>`.
pub fn assets() -> axum::Router {
    axum::Router::new()
        .route("/", axum::routing::get(|| async { asset("index.html") }))
        .route(
            "/console/{*file}",
            axum::routing::get(|Path(file): Path<String>| async move { asset(&file) }),
        )
}

fn asset(file: &str) -> Response {
    let Some(content) = Assets::get(file) else {
        return ApiError(
            StatusCode::NOT_FOUND,
            format!("the console has no file {file:?}"),
        )
        .into_response();
    };
    let mime = content.metadata.mimetype().to_owned();
    (
        [
            (header::CONTENT_TYPE, mime),
            (header::CACHE_CONTROL, "no-cache".to_owned()),
            (
                header::CONTENT_SECURITY_POLICY,
                CONTENT_SECURITY_POLICY.to_owned(),
            ),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
            (header::REFERRER_POLICY, "same-origin".to_owned()),
        ],
        content.data,
    )
        .into_response()
}

/// A person's name and password.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// Who the caller is.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SessionView {
    /// The user's (or token's) name.
    pub user: String,
    /// `viewer`, `operator`, `supervisor` or `admin`.
    pub role: String,
    /// `session` (logged in) or `token`.
    pub via: String,
    /// Send this as `X-CSRF-Token` with every request that changes something (sessions only).
    pub csrf_token: Option<String>,
}

fn role_name(role: Role) -> String {
    format!("{role:?}").to_lowercase()
}

fn audit(ctx: &ApiContext, record: AuditRecord) {
    let at = unix_ms().saturating_mul(1000);
    if let Err(e) = ctx.audit.record(at, &record) {
        tracing::error!(%e, who = %record.who, route = %record.route, "cannot write the audit log");
    }
}

/// Logs a person in: sets the session cookie and answers who they are and their CSRF token.
/// Wrong passwords in a row lock the name out for a while (429).
#[utoipa::path(
    post,
    path = "/api/v1/session",
    tag = "console",
    request_body = Credentials,
    security(()),
    responses(
        (status = 200, description = "Logged in; the session cookie is set", body = SessionView),
        (status = 401, description = "Wrong user name or password", body = ErrorBody),
        (status = 429, description = "Locked out after wrong passwords", body = ErrorBody),
    )
)]
pub async fn login(
    State(ctx): State<Arc<ApiContext>>,
    Json(credentials): Json<Credentials>,
) -> Result<Response, ApiError> {
    // A password check costs tens of milliseconds of CPU by design: one at a time, so a flood of
    // logins queues here instead of taking the cores from ingest.
    static CHECKING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);
    let _turn = CHECKING
        .acquire()
        .await
        .map_err(|e| ApiError(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    let logins = ctx.logins.clone();
    let user = credentials.user.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        logins.login(
            &credentials.user,
            &credentials.password,
            crate::login::now_ms(),
        )
    })
    .await
    .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let status = match &outcome {
        Ok(_) => StatusCode::OK,
        Err(LoginError::WrongPassword) => StatusCode::UNAUTHORIZED,
        Err(LoginError::LockedOut { .. }) => StatusCode::TOO_MANY_REQUESTS,
        Err(LoginError::Storage(_)) => StatusCode::SERVICE_UNAVAILABLE,
    };
    audit(
        &ctx,
        AuditRecord {
            at: rfc3339_utc(unix_ms().saturating_mul(1000)),
            who: user.clone(),
            via: "session".into(),
            method: "LOGIN".into(),
            route: SESSION_PATH.into(),
            path: SESSION_PATH.into(),
            status: status.as_u16(),
        },
    );
    crate::metrics::console_login(status.as_u16());
    match outcome {
        Ok((token, person)) => {
            tracing::info!(user = %person.user, role = ?person.role, "console login");
            Ok((
                [(header::SET_COOKIE, set_cookie(Some(&token)))],
                Json(SessionView {
                    user: person.user,
                    role: role_name(person.role),
                    via: "session".into(),
                    csrf_token: Some(person.csrf),
                }),
            )
                .into_response())
        }
        Err(e) => {
            if !matches!(e, LoginError::WrongPassword) {
                tracing::warn!(%user, error = %e, "console login refused");
            }
            Err(ApiError(status, e.to_string()))
        }
    }
}

/// Who the caller is: the logged-in user (with the CSRF token to send) or the token's name.
#[utoipa::path(
    get,
    path = "/api/v1/session",
    tag = "console",
    responses(
        (status = 200, description = "The caller", body = SessionView),
        (status = 401, description = "Not logged in", body = ErrorBody),
    )
)]
pub async fn whoami(
    State(ctx): State<Arc<ApiContext>>,
    headers: HeaderMap,
) -> Result<Json<SessionView>, ApiError> {
    authorize(&ctx, &headers, Role::Viewer)?;
    match caller(&ctx, &headers) {
        Caller::Person(person) => Ok(Json(SessionView {
            user: person.user,
            role: role_name(person.role),
            via: "session".into(),
            csrf_token: Some(person.csrf),
        })),
        Caller::Token(token) => Ok(Json(SessionView {
            user: token.name.clone(),
            role: role_name(token.role),
            via: "token".into(),
            csrf_token: None,
        })),
        Caller::Unknown => Err(ApiError(StatusCode::UNAUTHORIZED, "not logged in".into())),
    }
}

/// Logs out: the session ends here and in every tab that shares it.
#[utoipa::path(
    delete,
    path = "/api/v1/session",
    tag = "console",
    responses(
        (status = 204, description = "Logged out; the cookie is cleared"),
        (status = 401, description = "Not logged in", body = ErrorBody),
    )
)]
pub async fn logout(
    State(ctx): State<Arc<ApiContext>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize(&ctx, &headers, Role::Viewer)?;
    let token = crate::login::session_cookie(&headers)
        .ok_or_else(|| bad_request("only a console session logs out; a token stays valid"))?;
    ctx.logins
        .logout(token)
        .map_err(|e| ApiError(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    Ok((
        StatusCode::NO_CONTENT,
        [(header::SET_COOKIE, set_cookie(None))],
    )
        .into_response())
}

/// The audit log, newest first (role supervisor): every change asked of the API, who asked,
/// and the answer's status, logins included.
#[utoipa::path(
    get,
    path = "/api/v1/audit",
    tag = "console",
    params(AuditFilter),
    responses(
        (status = 200, description = "Records, newest first", body = Vec<AuditRecord>),
        (status = 400, description = "A time that does not read", body = ErrorBody),
    )
)]
pub async fn read_audit(
    State(ctx): State<Arc<ApiContext>>,
    headers: HeaderMap,
    Query(filter): Query<AuditFilter>,
) -> Result<Json<Vec<AuditRecord>>, ApiError> {
    authorize(&ctx, &headers, Role::Supervisor)?;
    let time = |t: &Option<String>| {
        t.as_deref()
            .map(parse_rfc3339)
            .transpose()
            .map_err(|e| bad_request(e.to_string()))
    };
    let (since, until) = (time(&filter.since)?, time(&filter.until)?);
    if let Some(class) = &filter.status
        && !["2xx", "3xx", "4xx", "5xx"].contains(&class.as_str())
    {
        return Err(bad_request(format!(
            "status {class:?}: 2xx, 3xx, 4xx or 5xx"
        )));
    }
    let audit = ctx.audit.clone();
    let records = tokio::task::spawn_blocking(move || audit.read(&filter, since, until))
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(Json(records))
}

/// Records every request that changes something, once answered (logins record themselves).
pub async fn audit_changes(
    State(ctx): State<Arc<ApiContext>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    if !crate::api::changes_something(&method)
        || (method == axum::http::Method::POST && path == SESSION_PATH)
    {
        return next.run(request).await;
    }
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| path.clone(), |p| p.as_str().to_owned());
    let (who, via) = match caller(&ctx, request.headers()) {
        Caller::Token(token) => (token.name.clone(), "token"),
        Caller::Person(person) => (person.user, "session"),
        Caller::Unknown => ("anonymous".to_owned(), "none"),
    };
    let response = next.run(request).await;
    let record = AuditRecord {
        at: rfc3339_utc(unix_ms().saturating_mul(1000)),
        who,
        via: via.to_owned(),
        method: method.as_str().to_owned(),
        route,
        path,
        status: response.status().as_u16(),
    };
    let ctx = ctx.clone();
    // The write is durable (fsync): off the async workers, and before the answer leaves.
    if let Err(e) = tokio::task::spawn_blocking(move || audit(&ctx, record)).await {
        tracing::error!(%e, "audit writer failed");
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_console_file_the_page_links_is_embedded() {
        let index = Assets::get("index.html").expect("index.html");
        let html = String::from_utf8_lossy(&index.data).into_owned();
        let mut linked = 0;
        for part in html.split("/console/").skip(1) {
            let file: String = part.chars().take_while(|c| *c != '"').collect();
            assert!(
                Assets::get(&file).is_some(),
                "{file} is linked but not embedded"
            );
            linked += 1;
        }
        assert!(
            linked >= 3,
            "the page links its script, style and libraries"
        );
    }

    #[test]
    fn every_vendored_library_comes_with_its_licence() {
        let vendored: Vec<String> = Assets::iter()
            .filter(|f| f.starts_with("vendor/") && !f.contains("LICENSE") && !f.ends_with(".md"))
            .map(|f| f.into_owned())
            .collect();
        assert!(!vendored.is_empty());
        for file in vendored {
            let name = file.trim_start_matches("vendor/");
            let library = name.split(['.', '-']).next().unwrap_or(name);
            assert!(
                Assets::iter().any(|f| f.starts_with(&format!("vendor/LICENSE-{library}"))),
                "{file} has no vendor/LICENSE-{library}*"
            );
        }
    }
}
