//! The admin HTTP server every Outpost process runs: `GET /metrics`, `/healthz`, `/readyz`.
//!
//! It is a supervised actor: it binds in `pre_start` (a port in use fails the start, and the
//! supervisor retries with backoff) and fails if the server task ends, so it comes back.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::task::JoinHandle;

use crate::readiness::Readiness;

/// Arguments of the admin server.
#[derive(Debug, Clone)]
pub struct AdminArgs {
    pub listen: SocketAddr,
    pub readiness: Readiness,
    /// Extra routes a process adds (the hub's API, for example).
    pub extra: Option<Router>,
}

/// The admin server actor.
#[derive(Debug, Clone, Copy, Default)]
pub struct AdminServer;

#[derive(Debug)]
pub enum AdminMsg {
    /// The server task ended; the actor fails so its supervisor restarts it.
    ServerEnded(String),
}

pub struct AdminState {
    server: JoinHandle<()>,
}

impl Drop for AdminState {
    // post_stop does not run when the actor fails; the listener must go either way, or the
    // restarted server could not bind its port.
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// The admin routes, for a process that serves them itself (and for tests).
pub fn router(readiness: Readiness) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(readiness)
}

async fn metrics() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)],
        crate::metrics::render(),
    )
}

async fn readyz(State(readiness): State<Readiness>) -> impl IntoResponse {
    let components = readiness.snapshot();
    let ready = readiness.is_ready();
    let body = serde_json::json!({ "ready": ready, "components": components });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body))
}

impl Actor for AdminServer {
    type Msg = AdminMsg;
    type State = AdminState;
    type Arguments = AdminArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: AdminArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .map_err(|e| format!("admin server cannot listen on {}: {e}", args.listen))?;
        let mut app = router(args.readiness);
        if let Some(extra) = args.extra {
            app = app.merge(extra);
        }
        tracing::info!(listen = %args.listen, "admin server listening");
        let server = tokio::spawn(async move {
            let ended = match axum::serve(listener, app).await {
                Ok(()) => "server stopped".to_owned(),
                Err(err) => err.to_string(),
            };
            let _ = myself.send_message(AdminMsg::ServerEnded(ended));
        });
        Ok(AdminState { server })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        _state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            AdminMsg::ServerEnded(why) => Err(format!("admin server ended: {why}").into()),
        }
    }
}
