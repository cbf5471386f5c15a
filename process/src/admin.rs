//! The admin HTTP server every Outpost process runs: `GET /metrics`, `/healthz`, `/readyz`.
//!
//! [`HttpServer`] serves any axum router as a supervised actor (the admin routes, or a process's
//! API): it binds in `pre_start` (a port in use fails the start, and the supervisor retries with
//! backoff) and fails if the server task ends, so it comes back.
//!
//! Slow or idle clients cannot lock it out ([`HttpLimits`]): a connection that has not sent a
//! request's headers within `header_read_timeout` (also between keep-alive requests) is closed;
//! one peer address holds at most `max_per_peer` connections and the server `max_connections`;
//! a connection over either is closed at once, counted
//! (`outpost_http_connections_refused_total{server}`) and logged (once per burst). So one client
//! holding a thousand half-sent requests neither exhausts the process's file descriptors nor
//! keeps anyone else out. A failed `accept` (out of file descriptors) is logged and retried after
//! a pause instead of ending the server.

use std::net::SocketAddr;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing;
use ractor::{Actor, ActorProcessingErr, ActorRef};

use outpost_actors::Readiness;

/// What one HTTP server lets its clients hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// How long a client may take to send a request's headers (and to start the next one).
    pub header_read_timeout: Duration,
    /// Connections the server keeps open at most.
    pub max_connections: usize,
    /// Connections one peer address keeps open at most.
    pub max_per_peer: usize,
}

impl HttpLimits {
    /// An API: many clients, some behind one proxy, live-stream subscribers that stay.
    pub fn api() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            max_connections: 768,
            max_per_peer: 384,
        }
    }

    /// The admin server: probes and a few scrapers.
    pub fn admin() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            max_connections: 64,
            max_per_peer: 16,
        }
    }
}

/// `outpost_http_connections_open{server}`.
pub static CONNECTIONS_OPEN: LazyLock<prometheus::IntGaugeVec> = LazyLock::new(|| {
    outpost_actors::metrics::register(
        prometheus::IntGaugeVec::new(
            prometheus::Opts::new(
                "outpost_http_connections_open",
                "HTTP connections open, by server (admin, api).",
            ),
            &["server"],
        )
        .expect("static metric definition is valid"),
    )
});
/// `outpost_http_requests_total{server,method,route,status}`: `route` is the route's template
/// (`/api/v1/edges/{edge}/events`; `unmatched` for a path no route takes), `status` the class
/// (`2xx` … `5xx`), so the series stay few whatever the paths asked.
pub static HTTP_REQUESTS: LazyLock<prometheus::IntCounterVec> = LazyLock::new(|| {
    outpost_actors::metrics::register(
        prometheus::IntCounterVec::new(
            prometheus::Opts::new(
                "outpost_http_requests_total",
                "HTTP requests answered, by server, method, route template and status class.",
            ),
            &["server", "method", "route", "status"],
        )
        .expect("static metric definition is valid"),
    )
});
/// `outpost_http_request_duration_seconds{server,route}`: from the request's head to its
/// answer's head (a streamed body, the live stream's, is not waited for).
pub static HTTP_DURATION: LazyLock<prometheus::HistogramVec> = LazyLock::new(|| {
    outpost_actors::metrics::register(
        prometheus::HistogramVec::new(
            prometheus::HistogramOpts::new(
                "outpost_http_request_duration_seconds",
                "Time from an HTTP request to its answer, by server and route template.",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            &["server", "route"],
        )
        .expect("static metric definition is valid"),
    )
});

/// Counts and times one request of server `name`.
async fn request_metrics(
    name: &'static str,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    let status = format!("{}xx", response.status().as_u16() / 100);
    HTTP_REQUESTS
        .with_label_values(&[name, &method, &route, &status])
        .inc();
    HTTP_DURATION
        .with_label_values(&[name, &route])
        .observe(started.elapsed().as_secs_f64());
    response
}

/// `outpost_http_connections_refused_total{server}`.
pub static CONNECTIONS_REFUSED: LazyLock<prometheus::IntCounterVec> = LazyLock::new(|| {
    outpost_actors::metrics::register(
        prometheus::IntCounterVec::new(
            prometheus::Opts::new(
                "outpost_http_connections_refused_total",
                "HTTP connections closed at once: the server, or their peer, had as many open as it may.",
            ),
            &["server"],
        )
        .expect("static metric definition is valid"),
    )
});

/// Arguments of an HTTP server actor.
#[derive(Debug, Clone)]
pub struct HttpArgs {
    /// What it serves, for logs ("admin", "api").
    pub name: &'static str,
    pub listen: SocketAddr,
    pub router: Router,
    pub limits: HttpLimits,
}

impl HttpArgs {
    /// The admin server of a process.
    pub fn admin(listen: SocketAddr, readiness: Readiness) -> Self {
        Self {
            name: "admin",
            listen,
            router: router(readiness),
            limits: HttpLimits::admin(),
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
        let name = args.name;
        let app = args
            .router
            .layer(axum::middleware::from_fn(move |request, next| {
                request_metrics(name, request, next)
            }));
        CONNECTIONS_OPEN.with_label_values(&[name]).set(0);
        CONNECTIONS_REFUSED.with_label_values(&[name]).inc_by(0);
        tracing::info!(listen = %args.listen, server = name, "HTTP server listening");
        let server = outpost_actors::OwnedTask::spawn(async move {
            serve(listener, app, name, args.limits).await;
            let _ = myself.send_message(AdminMsg::ServerEnded("server stopped".into()));
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

/// Accepts connections and serves each with `app` (see the module's rules on slow clients).
async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    name: &'static str,
    limits: HttpLimits,
) {
    let open = Arc::new(Mutex::new(OpenConnections::default()));
    let mut refusing = false;
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                // Out of file descriptors, most often: wait for some to close.
                tracing::warn!(server = name, %err, "cannot accept a connection; retrying in 100 ms");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some(slot) = OpenConnections::take(&open, peer.ip(), limits) else {
            CONNECTIONS_REFUSED.with_label_values(&[name]).inc();
            if !refusing {
                tracing::warn!(server = name, %peer, max_connections = limits.max_connections, max_per_peer = limits.max_per_peer, "too many connections open; closing new ones over the limit");
                refusing = true;
            }
            drop(stream);
            continue;
        };
        if refusing {
            tracing::info!(server = name, "connections within the limits again");
            refusing = false;
        }
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            CONNECTIONS_OPEN.with_label_values(&[name]).inc();
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout);
            let connection = http.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            if let Err(err) = connection.await {
                tracing::debug!(server = name, %peer, %err, "HTTP connection ended");
            }
            CONNECTIONS_OPEN.with_label_values(&[name]).dec();
            drop(slot);
        });
    }
}

/// Open connections of one server, in all and per peer address.
#[derive(Debug, Default)]
struct OpenConnections {
    total: usize,
    per_peer: std::collections::HashMap<std::net::IpAddr, usize>,
}

/// A connection's place in [`OpenConnections`], given back when dropped.
struct Slot {
    open: Arc<Mutex<OpenConnections>>,
    peer: std::net::IpAddr,
}

impl OpenConnections {
    fn take(open: &Arc<Mutex<Self>>, peer: std::net::IpAddr, limits: HttpLimits) -> Option<Slot> {
        let mut o = open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mine = o.per_peer.get(&peer).copied().unwrap_or(0);
        if o.total >= limits.max_connections || mine >= limits.max_per_peer {
            return None;
        }
        o.total += 1;
        o.per_peer.insert(peer, mine + 1);
        Some(Slot {
            open: open.clone(),
            peer,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut o = self
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        o.total = o.total.saturating_sub(1);
        if let Some(n) = o.per_peer.get_mut(&self.peer) {
            *n -= 1;
            if *n == 0 {
                o.per_peer.remove(&self.peer);
            }
        }
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
