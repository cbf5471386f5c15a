//! The hub's side of the link: a QUIC endpoint for edges, and one session actor per connection.
//!
//! A session: the TLS handshake has verified the client certificate against the CA; the session
//! then admits the edge by its certificate's id and serial against the PKI registry (read anew for
//! every connection, so a revocation applies to the next handshake without a restart), reads
//! `Hello`, answers `Welcome` with the committed sequence, and then, until the connection ends:
//! commits event batches in order (pipelined: the next batch is read while the last one commits)
//! and acknowledges each after its commit; sends the edge its pending commands and any new one;
//! records command acceptance and results.
//!
//! A newer session of the same edge replaces the older one (the old connection is closed).

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use outpost_link::io::{
    Duplex, FramedRecv, LinkIoError, close, peer_certificate, sleep_until, write_frame,
};
use outpost_link::session::{HubConfig, HubOutput, HubSession, SessionError as LinkSessionError};
use outpost_link::{
    BulkHeader, CommandRequest, ControlFrame, EventFrame, MAX_BULK_BYTES, valid_bulk_id,
};
use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};
use tokio::sync::mpsc;

use crate::commands::{CommandLog, CommandStatus, Dispatch};
use crate::edges::EdgeDirectory;
use crate::eventlog::{EventLog, EventLogError};
use crate::metrics;
use crate::pki::{EdgeRegistry, edge_identity};
use outpost_process::clock::unix_ms;

const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// Batches of one session handed to the event log and not yet committed, at most: reading runs
/// ahead of the commits, so a batch is in flight while the previous one is made durable.
const MAX_COMMITS_IN_FLIGHT: usize = 64;

/// Everything sessions share.
#[derive(Debug)]
pub struct LinkContext {
    pub eventlog: EventLog,
    pub commands: CommandLog,
    pub edges: EdgeDirectory,
    pub sessions: Arc<Sessions>,
    pub pki_dir: PathBuf,
    /// Where bulk payloads are kept: `<bulk_dir>/<edge>/<id>` and `<id>.json` beside it.
    pub bulk_dir: PathBuf,
    /// An edge not heard from for this long is disconnected (`link.dead_after_ms`).
    pub dead_after: Duration,
    /// Which hub owns which edge (`[cluster]`): an edge another hub owns is refused.
    pub directory: Arc<crate::cluster::Directory>,
}

/// The open session of each connected edge.
///
/// Invariant: the QUIC receive windows of the connected edges add up to at most the receive
/// budget (`link.receive_budget_mib`) unless each is at [`MIN_RECEIVE_WINDOW`]: what edges sent
/// and the hub has not read yet is bounded whatever the number of edges.
#[derive(Debug, Default)]
pub struct Sessions {
    inner: Mutex<HashMap<String, SessionHandle>>,
    /// Bytes.
    receive_budget: u64,
    next_id: AtomicU64,
    /// Each edge's last outbox report and when it came (Unix ms).
    statuses: Mutex<HashMap<String, (outpost_link::EdgeStatus, i64)>>,
    /// When each edge's last frame came (Unix ms), since this hub started.
    seen: Mutex<HashMap<String, i64>>,
}

#[derive(Debug, Clone)]
struct SessionHandle {
    id: u64,
    commands: mpsc::Sender<CommandRequest>,
    connection: quinn::Connection,
}

/// The smallest receive window an edge's connection gets however many share the budget.
pub const MIN_RECEIVE_WINDOW: u64 = 64 * 1024;
/// The largest (one edge alone): what the transport allows a connection anyway.
pub const MAX_RECEIVE_WINDOW: u64 = 32 * 1024 * 1024;

/// Each connection's receive window when `connected` edges share `budget` bytes.
pub fn receive_window(budget: u64, connected: usize) -> u64 {
    (budget / connected.max(1) as u64).clamp(MIN_RECEIVE_WINDOW, MAX_RECEIVE_WINDOW)
}

impl Sessions {
    /// Sessions whose connections share `receive_budget` bytes of receive window.
    pub fn with_receive_budget(receive_budget: u64) -> Self {
        metrics::RECEIVE_WINDOW.set(receive_window(receive_budget, 1) as i64);
        Self {
            receive_budget,
            ..Self::default()
        }
    }

    /// Gives every connection its share of the receive budget.
    fn share_receive_budget(&self, sessions: &HashMap<String, SessionHandle>) {
        let window = receive_window(self.receive_budget, sessions.len());
        metrics::RECEIVE_WINDOW.set(window as i64);
        let window = quinn::VarInt::from_u64(window).unwrap_or(quinn::VarInt::MAX);
        for handle in sessions.values() {
            handle.connection.set_receive_window(window);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, SessionHandle>> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn register(&self, edge: &str, handle: SessionHandle) {
        let mut sessions = self.lock();
        if let Some(old) = sessions.insert(edge.to_owned(), handle) {
            old.connection
                .close(close::REPLACED.into(), b"replaced by a newer session");
        }
        self.share_receive_budget(&sessions);
        metrics::edge_known(edge);
        metrics::EDGE_CONNECTED.with_label_values(&[edge]).set(1);
        metrics::EDGES_CONNECTED.set(sessions.len() as i64);
    }

    fn unregister(&self, edge: &str, id: u64) {
        let mut sessions = self.lock();
        if sessions.get(edge).is_some_and(|h| h.id == id) {
            sessions.remove(edge);
            self.share_receive_budget(&sessions);
            metrics::EDGE_CONNECTED.with_label_values(&[edge]).set(0);
        }
        metrics::EDGES_CONNECTED.set(sessions.len() as i64);
    }

    /// Hands a new command to its edge's session if it is connected (else it stays pending and is
    /// sent at the next handshake).
    pub fn offer(&self, edge: &str, request: CommandRequest) {
        if let Some(handle) = self.lock().get(edge) {
            // A full queue is fine: the command is pending and is sent at the next handshake.
            let _ = handle.commands.try_send(request);
        }
    }

    pub fn connected(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    /// Records an edge's outbox report.
    pub fn record_status(&self, edge: &str, status: outpost_link::EdgeStatus) {
        metrics::EDGE_OUTBOX_DEPTH
            .with_label_values(&[edge])
            .set(status.outbox_depth_events as i64);
        metrics::EDGE_OLDEST_UNACKED
            .with_label_values(&[edge])
            .set(status.oldest_unacked_ms as f64 / 1000.0);
        self.statuses
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(edge.to_owned(), (status, outpost_process::clock::unix_ms()));
    }

    /// Notes that a frame from `edge` came now.
    fn saw(&self, edge: &str) {
        let now = outpost_process::clock::unix_ms();
        metrics::EDGE_LAST_SEEN
            .with_label_values(&[edge])
            .set(now / 1000);
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        match seen.get_mut(edge) {
            Some(at) => *at = now,
            None => {
                seen.insert(edge.to_owned(), now);
            }
        }
    }

    /// When the last frame from `edge` came (Unix ms), if one came since this hub started.
    pub fn last_seen(&self, edge: &str) -> Option<i64> {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(edge)
            .copied()
    }

    /// An edge's last outbox report and when it came (Unix ms).
    pub fn status(&self, edge: &str) -> Option<(outpost_link::EdgeStatus, i64)> {
        self.statuses
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(edge)
            .copied()
    }
}

/// The link server actor: owns the QUIC endpoint.
#[derive(Debug, Clone, Copy, Default)]
pub struct LinkServer;

#[derive(Clone)]
pub struct LinkServerArgs {
    pub listen: std::net::SocketAddr,
    pub server_config: quinn::ServerConfig,
    /// Key for QUIC stateless resets, kept across restarts (see [`load_or_create_reset_key`]).
    pub reset_key: Arc<[u8; 64]>,
    pub context: Arc<LinkContext>,
}

/// The hub's QUIC stateless-reset key, created once (mode 0600) and reused. With the same key, a
/// hub that restarted (even after `kill -9`) answers packets of its old connections with a valid
/// stateless reset, so edges notice at once instead of after their idle timeout.
pub fn load_or_create_reset_key(path: &std::path::Path) -> std::io::Result<Arc<[u8; 64]>> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::read(path) {
        Ok(bytes) => {
            let key: [u8; 64] = bytes.as_slice().try_into().map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "{} must hold 64 bytes; delete it to make a new one",
                        path.display()
                    ),
                )
            })?;
            Ok(Arc::new(key))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key: [u8; 64] = std::array::from_fn(|_| rand::random());
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)?;
            file.write_all(&key)?;
            file.sync_all()?;
            Ok(Arc::new(key))
        }
        Err(e) => Err(e),
    }
}

pub enum LinkServerMsg {
    Incoming(Box<quinn::Incoming>),
    AcceptLoopEnded,
}

pub struct LinkServerState {
    endpoint: quinn::Endpoint,
    context: Arc<LinkContext>,
    /// Held for its drop (the accept loop ends with the actor).
    _accept: outpost_actors::OwnedTask,
}

impl Drop for LinkServerState {
    fn drop(&mut self) {
        self.endpoint.close(close::SHUTDOWN.into(), b"hub stopping");
    }
}

/// Datagrams the kernel keeps for the hub to read, bytes. Many edges sending at once overflow the
/// default (about 208 KiB) within milliseconds: the kernel drops what does not fit, QUIC resends it
/// and slows down, and a hub busy catching a fleet up then hears nothing from edges that are
/// talking to it, ends their sessions as dead, and has them all reconnect and resend.
pub const SOCKET_BUFFER_BYTES: usize = 16 * 1024 * 1024;

/// Asks for [`SOCKET_BUFFER_BYTES`] each way (past `net.core.rmem_max` when the hub may, else up
/// to it) and says what the kernel granted.
fn widen_socket_buffers(socket: &std::net::UdpSocket) {
    use nix::sys::socket::{getsockopt, setsockopt, sockopt};
    if setsockopt(socket, sockopt::RcvBufForce, &SOCKET_BUFFER_BYTES).is_err() {
        let _ = setsockopt(socket, sockopt::RcvBuf, &SOCKET_BUFFER_BYTES);
    }
    if setsockopt(socket, sockopt::SndBufForce, &SOCKET_BUFFER_BYTES).is_err() {
        let _ = setsockopt(socket, sockopt::SndBuf, &SOCKET_BUFFER_BYTES);
    }
    // Linux reports twice what it keeps for data (the rest is its bookkeeping).
    let granted = getsockopt(socket, sockopt::RcvBuf).unwrap_or(0) / 2;
    if granted < SOCKET_BUFFER_BYTES {
        tracing::warn!(
            granted_bytes = granted,
            wanted_bytes = SOCKET_BUFFER_BYTES,
            "the link's UDP receive buffer is smaller than asked: with many edges the kernel may drop datagrams (raise net.core.rmem_max, or run with CAP_NET_ADMIN)"
        );
    } else {
        tracing::info!(receive_buffer_bytes = granted, "link UDP buffers set");
    }
}

impl Actor for LinkServer {
    type Msg = LinkServerMsg;
    type State = LinkServerState;
    type Arguments = LinkServerArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: LinkServerArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let socket = std::net::UdpSocket::bind(args.listen)
            .map_err(|e| format!("cannot listen for edges on {}: {e}", args.listen))?;
        widen_socket_buffers(&socket);
        let reset = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &args.reset_key[..]);
        let mut endpoint_config = quinn::EndpointConfig::new(Arc::new(reset));
        // Connection ids carry a keyed check; with the key kept, a restarted hub still recognises
        // its old ids as its own and answers them with a stateless reset instead of dropping them.
        let cid_key = u64::from_be_bytes(args.reset_key[..8].try_into().unwrap_or_default());
        endpoint_config.cid_generator(move || {
            Box::new(quinn_proto::HashedConnectionIdGenerator::from_key(cid_key))
        });
        let endpoint = quinn::Endpoint::new(
            endpoint_config,
            Some(args.server_config),
            socket,
            Arc::new(quinn::TokioRuntime),
        )
        .map_err(|e| format!("cannot start the QUIC endpoint on {}: {e}", args.listen))?;
        tracing::info!(listen = %args.listen, "link listening for edges (QUIC)");
        let accepting = endpoint.clone();
        let accept = outpost_actors::OwnedTask::spawn(async move {
            while let Some(incoming) = accepting.accept().await {
                if myself
                    .send_message(LinkServerMsg::Incoming(Box::new(incoming)))
                    .is_err()
                {
                    return;
                }
            }
            let _ = myself.send_message(LinkServerMsg::AcceptLoopEnded);
        });
        Ok(LinkServerState {
            endpoint,
            context: args.context,
            _accept: accept,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            LinkServerMsg::Incoming(incoming) => {
                let args = SessionArgs {
                    incoming: Mutex::new(Some(*incoming)),
                    context: state.context.clone(),
                };
                if let Err(err) =
                    Actor::spawn_linked(None, EdgeSession, args, myself.get_cell()).await
                {
                    tracing::warn!(%err, "could not start an edge session");
                }
                Ok(())
            }
            LinkServerMsg::AcceptLoopEnded => Err("the QUIC endpoint stopped accepting".into()),
        }
    }

    async fn handle_supervisor_evt(
        &self,
        _myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        _state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // Sessions are not restarted: the edge reconnects.
        if let SupervisionEvent::ActorFailed(_, err) = event {
            tracing::warn!(cause = %err, "edge session ended with an error");
        }
        Ok(())
    }
}

/// One connection from an edge.
#[derive(Debug, Clone, Copy, Default)]
pub struct EdgeSession;

pub struct SessionArgs {
    incoming: Mutex<Option<quinn::Incoming>>,
    context: Arc<LinkContext>,
}

pub enum SessionMsg {
    Ended(Result<(), String>),
}

pub struct SessionState {
    /// Held for its drop: the session's task ends with the actor.
    _task: outpost_actors::OwnedTask,
}

impl Actor for EdgeSession {
    type Msg = SessionMsg;
    type State = SessionState;
    type Arguments = SessionArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: SessionArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let incoming = args
            .incoming
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .ok_or("session started twice")?;
        let context = args.context;
        let task = outpost_actors::OwnedTask::spawn(async move {
            let result = serve(incoming, &context).await.map_err(|e| e.to_string());
            let _ = myself.send_message(SessionMsg::Ended(result));
        });
        Ok(SessionState { _task: task })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        _state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            SessionMsg::Ended(Ok(())) => {
                myself.stop(None);
                Ok(())
            }
            SessionMsg::Ended(Err(err)) => Err(err.into()),
        }
    }
}

/// Why a session ended abnormally.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("handshake: {0}")]
    Handshake(#[from] quinn::ConnectionError),
    #[error("edge refused: {0}")]
    Refused(String),
    #[error("edge {edge}: {source}")]
    Link {
        edge: String,
        #[source]
        source: LinkIoError,
    },
    #[error("edge {edge}: event log: {reason}")]
    EventLog { edge: String, reason: String },
}

fn refuse(connection: &quinn::Connection, label: &str, reason: String) -> SessionError {
    metrics::REFUSED.with_label_values(&[label]).inc();
    tracing::warn!(remote = %connection.remote_address(), %reason, "edge refused");
    connection.close(close::REFUSED.into(), reason.as_bytes());
    SessionError::Refused(reason)
}

/// Accepts edges on `endpoint` until it closes, serving each connection on its own task. The
/// actor spawns a session actor per connection instead; the deterministic simulation uses this.
pub async fn serve_endpoint(endpoint: quinn::Endpoint, ctx: Arc<LinkContext>) {
    while let Some(incoming) = endpoint.accept().await {
        let ctx = ctx.clone();
        tokio::spawn(async move {
            if let Err(err) = serve(incoming, &ctx).await {
                tracing::debug!(%err, "session ended");
            }
        });
    }
}

/// Every `reason` of `outpost_hub_refused_total` (exported at 0 from start-up).
pub const REFUSAL_REASONS: [&str; 9] = [
    "tls",
    "no_certificate",
    "bad_certificate",
    "registry",
    "unknown",
    "revoked",
    "superseded",
    "id_mismatch",
    "elsewhere",
];

/// Serves one connection from an edge until it ends.
pub async fn serve(incoming: quinn::Incoming, ctx: &LinkContext) -> Result<(), SessionError> {
    let remote = incoming.remote_address();
    let connection = match incoming.await {
        Ok(c) => c,
        Err(err) => {
            // Wrong CA, no certificate, wrong ALPN: rustls refused it in the handshake.
            metrics::REFUSED.with_label_values(&["tls"]).inc();
            tracing::warn!(%remote, %err, "edge refused in the TLS handshake");
            return Err(err.into());
        }
    };
    let Some(cert) = peer_certificate(&connection) else {
        return Err(refuse(
            &connection,
            "no_certificate",
            "no client certificate".into(),
        ));
    };
    let identity =
        edge_identity(&cert).map_err(|e| refuse(&connection, "bad_certificate", e.to_string()))?;
    let registry = EdgeRegistry::load(&ctx.pki_dir).map_err(|e| {
        refuse(
            &connection,
            "registry",
            format!("edge registry unreadable: {e}"),
        )
    })?;
    if let Err(refusal) = registry.admit(&identity.id, &identity.serial) {
        let label = match refusal {
            crate::pki::Refusal::UnknownEdge { .. } => "unknown",
            crate::pki::Refusal::Revoked { .. } => "revoked",
            crate::pki::Refusal::SupersededCertificate { .. } => "superseded",
        };
        return Err(refuse(&connection, label, refusal.to_string()));
    }
    if let crate::cluster::Owner::Hub { id, .. } = ctx.directory.owner(&identity.id) {
        return Err(refuse(
            &connection,
            "elsewhere",
            format!(
                "edge {} belongs to hub {id} in the cluster directory: point its uplink at that hub",
                identity.id
            ),
        ));
    }
    let edge = identity.id;
    let (command_tx, command_rx) = mpsc::channel(1024);
    let session_id = ctx.sessions.next_id.fetch_add(1, Ordering::Relaxed);
    let handle = SessionHandle {
        id: session_id,
        commands: command_tx,
        connection: connection.clone(),
    };
    let result = tokio::select! {
        result = drive(&connection, &edge, remote, handle, command_rx, ctx) => result,
        silent = outpost_link::io::peer_silent(&connection, ctx.dead_after) => {
            Err(SessionError::Link { edge: edge.clone(), source: silent })
        }
    };
    ctx.sessions.unregister(&edge, session_id);
    match &result {
        Ok(()) => tracing::info!(edge = %edge, "edge session ended"),
        Err(err) => tracing::warn!(edge = %edge, %err, "edge session ended"),
    }
    result
}

/// Drives one [`HubSession`] over `connection`: the handshake (the edge's committed sequence,
/// its pending commands), its batches to the event log and the acknowledgements back, commands
/// to the edge, and bulk payloads from it.
async fn drive(
    connection: &quinn::Connection,
    edge: &str,
    remote: std::net::SocketAddr,
    handle: SessionHandle,
    mut command_rx: mpsc::Receiver<CommandRequest>,
    ctx: &LinkContext,
) -> Result<(), SessionError> {
    let link_err = |source| SessionError::Link {
        edge: edge.to_owned(),
        source,
    };
    let log_err = |reason: String| SessionError::EventLog {
        edge: edge.to_owned(),
        reason,
    };
    // An edge that connects and opens no stream is gone after the Hello timeout too.
    let (mut control_send, control_recv) =
        match tokio::time::timeout(HELLO_TIMEOUT, connection.accept_bi()).await {
            Ok(stream) => stream?,
            Err(_) => {
                let error = LinkSessionError::Timeout {
                    expected: "Hello",
                    waited_ms: HELLO_TIMEOUT.as_millis() as u64,
                };
                connection.close(close::PROTOCOL.into(), error.to_string().as_bytes());
                return Err(link_err(error.into()));
            }
        };
    let mut control_recv = FramedRecv::new(control_recv);
    let config = HubConfig {
        hello_timeout: HELLO_TIMEOUT,
        max_commits_in_flight: MAX_COMMITS_IN_FLIGHT,
    };
    // Tokio's clock, so the session's timers run on simulated time too.
    let mut session = HubSession::new(config, edge, tokio::time::Instant::now().into_std());
    let (notice_tx, mut notice_rx) = mpsc::channel::<ControlFrame>(64);
    let mut handle = Some(handle);
    let mut clock_offset_ms = 0;
    let mut events: Option<Duplex> = None;
    let mut commits: VecDeque<CommitAnswer> = VecDeque::new();
    // Held from reading a batch until it is submitted (`EventLog::reading_slot`).
    let mut reading_slot: Option<tokio::sync::OwnedSemaphorePermit> = None;
    let bulk = async {
        loop {
            let recv = connection
                .accept_uni()
                .await
                .map_err(|e| link_err(e.into()))?;
            let notice = match receive_bulk(recv, edge, ctx).await {
                Ok(id) => ControlFrame::BulkStored { id },
                Err((Some(id), reason)) => {
                    tracing::warn!(edge = %edge, bulk = %id, %reason, "bulk payload refused");
                    ControlFrame::BulkRefused { id, reason }
                }
                Err((None, reason)) => {
                    tracing::warn!(edge = %edge, %reason, "bulk stream without a usable header");
                    continue;
                }
            };
            if notice_tx.send(notice).await.is_err() {
                return Ok::<(), SessionError>(());
            }
        }
    };
    let session_loop = async {
        loop {
            while let Some(output) = session.poll_output() {
                match output {
                    HubOutput::Admit(hello) => {
                        let now = unix_ms();
                        clock_offset_ms = hello.wall_ms - now;
                        let committed_seq = ctx
                            .eventlog
                            .committed_seq(edge)
                            .map_err(|e| log_err(e.to_string()))?;
                        if let Err(err) = ctx.edges.record_hello(&hello, now, clock_offset_ms) {
                            tracing::warn!(edge = %edge, %err, "could not record the handshake");
                        }
                        session.welcome(committed_seq, now, clock_offset_ms);
                        if clock_offset_ms.abs() > 5_000 {
                            tracing::warn!(edge = %edge, clock_offset_ms, "edge clock is off; events keep both times");
                        }
                        tracing::info!(
                            edge = %edge,
                            %remote,
                            edge_last_seq = hello.last_seq,
                            edge_trimmed_seq = hello.trimmed_seq,
                            committed_seq,
                            clock_offset_ms,
                            "edge session started"
                        );
                    }
                    HubOutput::Control(frame) => {
                        let welcomed = matches!(frame, ControlFrame::Welcome(_));
                        write_frame(&mut control_send, &frame)
                            .await
                            .map_err(link_err)?;
                        if welcomed {
                            // Commands reach a session only once it is up; pending ones first.
                            if let Some(handle) = handle.take() {
                                ctx.sessions.register(edge, handle);
                            }
                            send_pending_commands(edge, &mut control_send, ctx)
                                .await
                                .map_err(link_err)?;
                        }
                    }
                    HubOutput::Events(frame) => {
                        let (send, _) = events.as_mut().ok_or_else(|| {
                            link_err(LinkIoError::Protocol("no events stream".into()))
                        })?;
                        write_frame(send, &frame).await.map_err(link_err)?;
                    }
                    HubOutput::Commit(batch) => {
                        let answer = ctx
                            .eventlog
                            .submit(edge, batch, clock_offset_ms)
                            .await
                            .map_err(|e| log_err(e.to_string()))?;
                        commits.push_back(answer);
                    }
                    HubOutput::Delivered(id) => {
                        let _ = ctx.commands.update(&id, CommandStatus::Delivered, None);
                    }
                    HubOutput::Status(status) => ctx.sessions.record_status(edge, status),
                    HubOutput::Closed(error @ LinkSessionError::IdMismatch { .. }) => {
                        return Err(refuse(connection, "id_mismatch", error.to_string()));
                    }
                    HubOutput::Closed(error) => {
                        connection.close(close::PROTOCOL.into(), error.to_string().as_bytes());
                        return Err(link_err(error.into()));
                    }
                }
            }
            // The batch read last is submitted by now (or was not one): its slot is free again.
            reading_slot = None;
            let timeout = session.poll_timeout();
            let reading_events = events.is_some() && session.wants_events();
            tokio::select! {
                frame = control_recv.next::<ControlFrame>() => match frame.map_err(link_err)? {
                    Some(frame) => {
                        ctx.sessions.saw(edge);
                        session.handle_control(frame)
                    }
                    None => return Ok(()),
                },
                // The events stream reaches the hub only with the edge's first batch; an idle edge
                // still gets its commands, so nothing else waits for it.
                stream = connection.accept_bi(), if events.is_none() => {
                    let (send, recv) = stream.map_err(|e| link_err(e.into()))?;
                    events = Some((send, FramedRecv::new(recv)));
                }
                read = read_batch(&mut events, &ctx.eventlog), if reading_events => match read {
                    Ok(Some((slot, frame))) => {
                        reading_slot = Some(slot);
                        ctx.sessions.saw(edge);
                        session.handle_events(frame)
                    }
                    Ok(None) => return Ok(()),
                    Err(ReadBatchError::Link(err)) => return Err(link_err(err)),
                    Err(ReadBatchError::Log(err)) => return Err(log_err(err.to_string())),
                },
                outcome = next_commit(&mut commits), if !commits.is_empty() => {
                    let outcome = outcome.map_err(|e| log_err(e.to_string()))?;
                    if !outcome.command_results.is_empty()
                        && let Err(err) = ctx.commands.apply_committed(&ctx.eventlog, outcome.command_results).await
                    {
                        tracing::error!(edge = %edge, %err, "cannot record command results (applied again at the next start)");
                    }
                    session.handle_committed(outcome.committed_seq);
                }
                Some(request) = command_rx.recv() => {
                    write_frame(&mut control_send, &ControlFrame::Command(request))
                        .await
                        .map_err(link_err)?;
                }
                // Bulk notices go out only after Welcome (an edge reads nothing else before it).
                Some(notice) = notice_rx.recv(), if handle.is_none() => {
                    write_frame(&mut control_send, &notice).await.map_err(link_err)?;
                }
                () = sleep_until(timeout), if timeout.is_some() => {
                    session.handle_timeout(tokio::time::Instant::now().into_std());
                }
            }
        }
    };
    tokio::select! {
        result = session_loop => result,
        result = bulk => result,
    }
}

#[derive(Debug)]
enum ReadBatchError {
    Link(LinkIoError),
    Log(EventLogError),
}

/// The next frame of the events stream with one of the event log's reading slots, taken once its
/// first bytes are here (an edge with nothing to send holds none); `None` at the end of the
/// stream. Cancel-safe.
async fn read_batch(
    events: &mut Option<Duplex>,
    eventlog: &EventLog,
) -> Result<Option<(tokio::sync::OwnedSemaphorePermit, EventFrame)>, ReadBatchError> {
    let Some((_, recv)) = events else {
        return std::future::pending().await;
    };
    if !recv.wait_for_bytes().await.map_err(ReadBatchError::Link)? {
        return Ok(None);
    }
    let slot = eventlog.reading_slot().await.map_err(ReadBatchError::Log)?;
    match recv
        .next::<EventFrame>()
        .await
        .map_err(ReadBatchError::Link)?
    {
        Some(frame) => Ok(Some((slot, frame))),
        None => Ok(None),
    }
}

/// An answer of the event log to one commit.
type CommitAnswer =
    tokio::sync::oneshot::Receiver<Result<crate::eventlog::CommitOutcome, EventLogError>>;

/// The oldest outstanding commit's outcome, once it is there.
async fn next_commit(
    commits: &mut VecDeque<CommitAnswer>,
) -> Result<crate::eventlog::CommitOutcome, EventLogError> {
    let Some(front) = commits.front_mut() else {
        return std::future::pending().await;
    };
    let outcome = front.await.map_err(|_| EventLogError::Closed);
    commits.pop_front();
    outcome?
}

/// Sends `edge` the commands it has not accepted yet (expired ones are marked so, never sent).
async fn send_pending_commands(
    edge: &str,
    control_send: &mut quinn::SendStream,
    ctx: &LinkContext,
) -> Result<(), LinkIoError> {
    let pending = ctx.commands.pending_for(edge).unwrap_or_else(|err| {
        tracing::error!(edge = %edge, %err, "cannot read pending commands");
        Vec::new()
    });
    let now = unix_ms();
    for record in pending {
        match record.dispatch(now) {
            Dispatch::Send(request) => {
                write_frame(control_send, &ControlFrame::Command(request)).await?;
            }
            Dispatch::Expired => {
                let _ = ctx.commands.update(
                    &record.id,
                    CommandStatus::Expired,
                    Some("deadline passed before the edge connected".into()),
                );
            }
            Dispatch::Refused(err) => {
                let _ = ctx.commands.update(
                    &record.id,
                    CommandStatus::Rejected,
                    Some(format!("not sent: {err}")),
                );
            }
        }
    }
    Ok(())
}

/// Reads one bulk stream: a [`BulkHeader`] frame, then exactly `len` bytes whose SHA-256 must match;
/// stores them (atomically) and returns the id. Errors carry the id when the header was readable.
async fn receive_bulk(
    recv: quinn::RecvStream,
    edge: &str,
    ctx: &LinkContext,
) -> Result<String, (Option<String>, String)> {
    let mut framed = FramedRecv::new(recv);
    let header: BulkHeader = framed
        .expect(Duration::from_secs(30))
        .await
        .map_err(|e| (None, e.to_string()))?;
    let id = header.id.clone();
    let fail = |reason: String| (Some(id.clone()), reason);
    if !valid_bulk_id(&header.id) {
        return Err(fail(
            "id must be 1-128 of [A-Za-z0-9._-], not starting with '.'".into(),
        ));
    }
    if header.len > MAX_BULK_BYTES {
        return Err(fail(format!(
            "{} bytes exceed the limit of {MAX_BULK_BYTES}",
            header.len
        )));
    }
    let (mut stream, mut bytes) = framed.into_parts();
    let len = header.len as usize;
    while bytes.len() < len {
        match stream.read_chunk(len - bytes.len(), true).await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk.bytes),
            Ok(None) => {
                return Err(fail(format!(
                    "stream ended after {} of {len} bytes",
                    bytes.len()
                )));
            }
            Err(e) => return Err(fail(e.to_string())),
        }
    }
    if bytes.len() > len {
        return Err(fail(format!(
            "{} bytes, more than the {len} announced",
            bytes.len()
        )));
    }
    let digest = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&bytes))
    };
    if !digest.eq_ignore_ascii_case(&header.sha256) {
        return Err(fail(format!(
            "SHA-256 {digest} does not match the announced {}",
            header.sha256
        )));
    }
    let dir = ctx.bulk_dir.join(edge);
    let meta = serde_json::json!({
        "id": header.id,
        "edge": edge,
        "device": header.device,
        "content_type": header.content_type,
        "len": header.len,
        "sha256": digest,
        "received_ms": unix_ms(),
    });
    // The payload first: its metadata names a file that is whole.
    let stored = tokio::task::spawn_blocking(move || {
        outpost_storage::write_file_durably(&dir, &header.id, &bytes)?;
        outpost_storage::write_file_durably(
            &dir,
            &format!("{}.json", header.id),
            meta.to_string().as_bytes(),
        )
    })
    .await;
    match stored {
        Ok(Ok(())) => {
            metrics::BULK_PAYLOADS.inc();
            metrics::BULK_BYTES.inc_by(len as u64);
            tracing::info!(edge = %edge, bulk = %id, bytes = len, "bulk payload stored");
            Ok(id)
        }
        Ok(Err(e)) => Err(fail(format!("cannot store it: {e}"))),
        Err(e) => Err(fail(format!("cannot store it: {e}"))),
    }
}
