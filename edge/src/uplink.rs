//! The uplink: the edge's QUIC session with the hub, kept up for as long as the edge runs.
//!
//! The protocol is [`outpost_link::session::EdgeSession`] (pure; its module states the rules); this
//! is its driver: it opens the streams, writes the frames the session gives, runs its storage
//! requests against the outbox (read, trim, adopt the hub's sequence) and hands commands to the
//! [`CommandRouter`]. Per session: `Hello` → `Welcome` → batches from the first sequence the hub
//! lacks, at most `window_events` unacknowledged; each `Ack` trims the outbox. When the session fails, the uplink reconnects after a backoff that
//! doubles up to `reconnect_max_ms` (with jitter) and starts over from the hub's committed sequence:
//! nothing is lost, and duplicates are dropped at the hub.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use outpost_actors::Backoff;
use outpost_config::UplinkConfig;
use outpost_link::io::{Duplex, FramedRecv, LinkIoError, close, next_on, sleep_until, write_frame};
use outpost_link::session::{EdgeConfig, EdgeOutput, EdgeSession};
use outpost_link::{ControlFrame, DeviceInfo, EventFrame, Hello};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::sync::mpsc;

use crate::bulk::BulkQueue;
use crate::commands::CommandRouter;
use crate::metrics;
use crate::outbox::Outbox;
use crate::shared::EdgeShared;

const WELCOME_TIMEOUT: Duration = Duration::from_secs(10);
/// A session that lasted this long resets the reconnect backoff.
const STABLE_SESSION: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, Default)]
pub struct Uplink;

#[derive(Debug, Clone)]
pub struct UplinkArgs {
    pub edge_id: String,
    pub config: UplinkConfig,
    pub devices: Vec<DeviceInfo>,
    pub shared: EdgeShared,
}

pub struct UplinkState {
    task: outpost_actors::OwnedTask,
    endpoint: quinn::Endpoint,
}

impl UplinkState {
    fn shut(&self) {
        self.task.abort();
        self.endpoint
            .close(close::SHUTDOWN.into(), b"edge stopping");
        metrics::UPLINK_CONNECTED.set(0);
    }
}

impl Drop for UplinkState {
    // On failure ractor drops the state; on a clean stop it hands it to the supervisor, which may
    // be busy stopping the outbox: post_stop lets go of the outbox before that.
    fn drop(&mut self) {
        self.shut();
    }
}

impl Actor for Uplink {
    type Msg = ();
    type State = UplinkState;
    type Arguments = UplinkArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<()>,
        args: UplinkArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let outbox = args.shared.outbox().ok_or("the outbox is not open")?;
        let config = &args.config;
        let client = outpost_link::io::client_config(
            &config.ca,
            &config.cert,
            &config.key,
            Duration::from_millis(config.keepalive_ms),
            Duration::from_millis(config.idle_timeout_ms),
        )
        .map_err(|e| format!("uplink TLS: {e}"))?;
        let bind: SocketAddr = if config.hub.is_ipv6() {
            "[::]:0".parse()?
        } else {
            "0.0.0.0:0".parse()?
        };
        let mut endpoint = quinn::Endpoint::client(bind)?;
        endpoint.set_default_client_config(client);
        let router = CommandRouter::new(outbox.clone(), args.shared.clone());
        router.recover().await;
        let session = Session {
            edge_id: args.edge_id,
            config: args.config,
            devices: args.devices,
            outbox,
            router,
            endpoint: endpoint.clone(),
            bulk: args.shared.bulk.clone(),
        };
        let task = outpost_actors::OwnedTask::spawn(session.run_forever());
        Ok(UplinkState { task, endpoint })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<()>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        state.shut();
        Ok(())
    }
}

/// The uplink's work, given an endpoint whose default client configuration is set (the actor
/// gives it a UDP socket; the deterministic simulation a simulated one).
#[derive(Debug)]
pub struct Session {
    pub edge_id: String,
    pub config: UplinkConfig,
    pub devices: Vec<DeviceInfo>,
    pub outbox: Outbox,
    pub router: CommandRouter,
    pub endpoint: quinn::Endpoint,
    pub bulk: BulkQueue,
}

impl Session {
    /// Keeps a session with the hub up, reconnecting after failures, until the task is dropped.
    pub async fn run_forever(self) {
        let backoff = Backoff {
            initial: Duration::from_millis(self.config.reconnect_initial_ms),
            max: Duration::from_millis(self.config.reconnect_max_ms),
            multiplier: 2.0,
            jitter: 0.2,
        };
        let mut attempt = 0u32;
        loop {
            let started = Instant::now();
            let result = self.run_once().await;
            metrics::UPLINK_CONNECTED.set(0);
            // No session, no round trip: an old value would pass for a live one.
            metrics::UPLINK_RTT.set(f64::NAN);
            if started.elapsed() > STABLE_SESSION {
                attempt = 0;
            }
            attempt = attempt.saturating_add(1);
            let delay = backoff.delay(attempt);
            metrics::UPLINK_RECONNECTS.inc();
            match result {
                Ok(()) => {
                    tracing::info!(hub = %self.config.hub, "hub closed the session; reconnecting")
                }
                Err(err) => tracing::warn!(
                    hub = %self.config.hub,
                    %err,
                    attempt,
                    backoff_ms = delay.as_millis() as u64,
                    "uplink session failed; reconnecting after backoff"
                ),
            }
            tokio::time::sleep(delay).await;
        }
    }

    async fn run_once(&self) -> Result<(), LinkIoError> {
        let connection = self
            .endpoint
            .connect(self.config.hub, &self.config.server_name)?
            .await?;
        let rtt = async {
            let mut every = tokio::time::interval(Duration::from_secs(1));
            loop {
                every.tick().await;
                metrics::UPLINK_RTT.set(connection.rtt().as_secs_f64());
            }
        };
        let result = tokio::select! {
            r = self.drive(&connection) => r,
            r = self.send_bulk(&connection) => r,
            () = rtt => Ok(()),
            e = connection.closed() => Err(e.into()),
            e = outpost_link::io::peer_silent(
                &connection,
                Duration::from_millis(self.config.dead_after_ms),
            ) => Err(e),
        };
        connection.close(close::SHUTDOWN.into(), b"session ended");
        result
    }

    /// Drives one [`EdgeSession`] over `connection`: its frames to the streams, its storage
    /// requests to the outbox, its commands to the router, and what arrives back to it.
    async fn drive(&self, connection: &quinn::Connection) -> Result<(), LinkIoError> {
        let (mut control_send, control_recv) = connection.open_bi().await?;
        let mut control_recv = FramedRecv::new(control_recv);
        let hello = Hello {
            edge_id: self.edge_id.clone(),
            boot_id: crate::outbox::boot_id(),
            wall_ms: outpost_process::clock::unix_ms(),
            last_seq: self.outbox.durable_seq(),
            trimmed_seq: self.outbox.acked_seq(),
            devices: self.devices.clone(),
            software: format!("outpost-edge {}", env!("CARGO_PKG_VERSION")),
        };
        let config = EdgeConfig {
            window_events: self.config.window_events,
            batch_max_events: self.config.batch_max_events,
            welcome_timeout: WELCOME_TIMEOUT,
        };
        // Tokio's clock, so the session's timers run on simulated time too.
        let mut session = EdgeSession::start(config, hello, tokio::time::Instant::now().into_std());
        let outbox_err =
            |e: crate::outbox::OutboxError| LinkIoError::Protocol(format!("outbox: {e}"));
        // Commands answer `CommandAccepted` through here, from their own tasks.
        let (accepted_tx, mut accepted_rx) = mpsc::channel::<ControlFrame>(1024);
        let router = Arc::new(self.router.clone());
        let mut events: Option<Duplex> = None;
        // The outbox read the session asked for, kept across loop turns (an ack or a keep-alive
        // does not restart it, so a waiting read is woken by the commit it waits for, once).
        let mut reading: Option<OutboxRead<'_>> = None;
        let mut status_every = tokio::time::interval(STATUS_EVERY);
        loop {
            while let Some(output) = session.poll_output() {
                match output {
                    EdgeOutput::Control(frame) => write_frame(&mut control_send, &frame).await?,
                    EdgeOutput::Events(frame) => {
                        let (send, _) = events
                            .as_mut()
                            .ok_or_else(|| LinkIoError::Protocol("no events stream".into()))?;
                        write_frame(send, &frame).await?;
                        // A backlog is read and encoded batch after batch; let the QUIC driver
                        // and the other tasks run in between, or the hub hears nothing from this
                        // edge (not even keep-alives) and rightly ends the session as dead.
                        tokio::task::yield_now().await;
                    }
                    EdgeOutput::AdoptSequence(seq) => {
                        self.outbox
                            .adopt_hub_sequence(seq)
                            .await
                            .map_err(outbox_err)?;
                    }
                    EdgeOutput::Trim(seq) => self.outbox.ack(seq).await.map_err(outbox_err)?,
                    EdgeOutput::Read { from, max } => {
                        reading = Some(Box::pin(read_outbox(&self.outbox, from, max)));
                    }
                    EdgeOutput::Run(request) => {
                        let router = router.clone();
                        let out = accepted_tx.clone();
                        tokio::spawn(async move { router.handle(request, out).await });
                    }
                    EdgeOutput::BulkSettled { id, refused } => {
                        if let Some(reason) = refused {
                            tracing::warn!(bulk = %id, %reason, "hub refused a bulk payload; dropped");
                        }
                        self.bulk.settled(&id);
                    }
                    EdgeOutput::Established {
                        committed_seq,
                        clock_offset_ms,
                    } => {
                        metrics::UPLINK_CONNECTED.set(1);
                        tracing::info!(
                            hub = %self.config.hub,
                            committed_seq,
                            last_seq = self.outbox.durable_seq(),
                            clock_offset_ms,
                            "uplink session established"
                        );
                        let (send, recv) = connection.open_bi().await?;
                        events = Some((send, FramedRecv::new(recv)));
                    }
                    EdgeOutput::HubLostEvents {
                        hub_committed,
                        edge_trimmed,
                    } => tracing::error!(
                        hub_committed,
                        edge_trimmed,
                        "the hub lost events it had acknowledged (restored from a backup?); they are gone from this edge too"
                    ),
                    EdgeOutput::Closed(error) => return Err(error.into()),
                }
            }
            let timeout = session.poll_timeout();
            tokio::select! {
                frame = control_recv.next::<ControlFrame>() => match frame? {
                    Some(frame) => session.handle_control(frame),
                    None => return Ok(()),
                },
                frame = next_on::<EventFrame>(&mut events) => match frame? {
                    Some(frame) => session.handle_events(frame),
                    None => return Ok(()),
                },
                answer = async {
                    match reading.as_mut() {
                        Some(read) => read.await,
                        None => std::future::pending().await,
                    }
                }, if reading.is_some() => {
                    reading = None;
                    session.handle_outbox(answer.map_err(outbox_err)?);
                }
                Some(frame) = accepted_rx.recv() => write_frame(&mut control_send, &frame).await?,
                _ = status_every.tick(), if session.is_open() => {
                    let status = outpost_link::EdgeStatus {
                        outbox_depth_events: self
                            .outbox
                            .durable_seq()
                            .saturating_sub(self.outbox.acked_seq()),
                        oldest_unacked_ms: (metrics::OUTBOX_OLDEST_UNACKED.get() * 1000.0) as u64,
                    };
                    write_frame(&mut control_send, &ControlFrame::Status(status)).await?;
                }
                () = sleep_until(timeout), if timeout.is_some() => {
                    session.handle_timeout(tokio::time::Instant::now().into_std());
                }
            }
        }
    }

    /// Sends queued bulk payloads, one stream each; the hub confirms on the control stream.
    async fn send_bulk(&self, connection: &quinn::Connection) -> Result<(), LinkIoError> {
        // Unique per session for the life of the process (connection ids restart with each endpoint,
        // and the queue outlives endpoints).
        static SESSIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let session = SESSIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        loop {
            while let Some((header, bytes)) = self.bulk.next_unsent(session) {
                let mut send = connection.open_uni().await?;
                write_frame(&mut send, &header).await?;
                send.write_all(&bytes).await?;
                // A finished stream is delivered even if the session ends right after; the hub's
                // confirmation, not this, takes it off the queue.
                let _ = send.finish();
            }
            self.bulk.added().await;
        }
    }
}

/// How often the edge reports its outbox to the hub.
const STATUS_EVERY: Duration = Duration::from_secs(5);

/// A read of the outbox in progress.
type OutboxRead<'a> = std::pin::Pin<
    Box<
        dyn std::future::Future<
                Output = Result<Vec<outpost_link::Event>, crate::outbox::OutboxError>,
            > + Send
            + 'a,
    >,
>;

/// The outbox's durable events from `from` on (at most `max`), once there is at least one.
async fn read_outbox(
    outbox: &Outbox,
    from: u64,
    max: usize,
) -> Result<Vec<outpost_link::Event>, crate::outbox::OutboxError> {
    loop {
        let events = outbox.read_from(from, max, 1024 * 1024)?;
        if !events.is_empty() {
            return Ok(events);
        }
        outbox.wait_beyond(from - 1).await?;
    }
}
