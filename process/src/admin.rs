//! The admin HTTP server every Outpost process runs: `GET /metrics`, `/healthz`, `/readyz`.
//!
//! [`HttpServer`] serves any axum router as a supervised actor (the admin routes, or a process's
//! API): it binds in `pre_start` (a port in use fails the start, and the supervisor retries with
//! backoff) and fails if the server task ends, so it comes back.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing;
use ractor::{Actor, ActorProcessingErr, ActorRef};

use outpost_actors::Readiness;

/// Arguments of an HTTP server actor.
#[derive(Debug, Clone)]
pub struct HttpArgs {
    /// What it serves, for logs ("admin", "api").
    pub name: &'static str,
    pub listen: SocketAddr,
    pub router: Router,
}

impl HttpArgs {
    /// The admin server of a process.
    pub fn admin(listen: SocketAddr, readiness: Readiness) -> Self {
        Self {
            name: "admin",
            listen,
            router: router(readiness),
        }
    }
}

/// An HTTP server as a supervised actor.
#[derive(Debug, Clone, Copy, Default)]
pub struct HttpServer;

#[derive(Debug)]
pub enum AdminMsg {
    /// The server task ended; the actor fails so its supervisor restarts it.
    ServerEnded(String),
}

pub struct AdminState {
    server: outpost_actors::OwnedTask,
}

// post_stop does not run when the actor fails: the task (and with it the listener) goes when the
// state drops, or the restarted server could not bind its port.

/// The admin routes, for a process that serves them itself (and for tests).
pub fn router(readiness: Readiness) -> Router {
    Router::new()
        .route("/metrics", routing::get(metrics))
        .route("/healthz", routing::get(|| async { "ok\n" }))
        .route("/readyz", routing::get(readyz))
        .with_state(readiness)
}

async fn metrics() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)],
        outpost_actors::metrics::render(),
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

impl Actor for HttpServer {
    type Msg = AdminMsg;
    type State = AdminState;
    type Arguments = HttpArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: HttpArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .map_err(|e| format!("{} server cannot listen on {}: {e}", args.name, args.listen))?;
        let app = args.router;
        tracing::info!(listen = %args.listen, server = args.name, "HTTP server listening");
        let server = outpost_actors::OwnedTask::spawn(async move {
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
            AdminMsg::ServerEnded(why) => Err(format!("HTTP server ended: {why}").into()),
        }
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // On a clean stop ractor hands the state to the supervisor instead of dropping it here.
        state.server.abort();
        Ok(())
    }
}

/// A minimal HTTP/1.1 GET for probing admin endpoints (the demo, the harness, tests): returns the
/// status code and body. Not a general client: no redirects, no chunked decoding, no TLS.
pub async fn get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    request(addr, "GET", path, &[], b"").await
}

/// A minimal HTTP/1.1 request (see [`get`]): `headers` are sent as given, `body` with its length.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let response = String::from_utf8_lossy(&response);
    let status = response
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidData, "not an HTTP/1.1 response")
        })?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}
