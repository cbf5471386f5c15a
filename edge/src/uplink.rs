//! The uplink: the edge's QUIC session with the hub, kept up for as long as the edge runs.
//!
//! Per session: `Hello` (with the last assigned sequence and the devices) → `Welcome` (the hub's
//! committed sequence, which the outbox treats as an ack) → events are sent from the outbox in
//! batches, in order, from the first sequence the hub lacks, with at most `window_events` sent and
//! not yet acknowledged; each `Ack` trims the outbox. Commands arrive on the control stream and run
//! through the [`CommandRouter`]. When the session fails, the uplink reconnects after a backoff that
//! doubles up to `reconnect_max_ms` (with jitter) and starts over from the hub's committed sequence:
//! nothing is lost, and duplicates are dropped at the hub.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use outpost_actors::Backoff;
use outpost_config::UplinkConfig;
use outpost_link::io::{FramedRecv, LinkIoError, close, write_frame};
use outpost_link::{ControlFrame, DeviceInfo, EventBatch, EventFrame, Hello};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::sync::{mpsc, watch};

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
    task: tokio::task::JoinHandle<()>,
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
        let task = tokio::spawn(session.run_forever());
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
        let (mut control_send, control_recv) = connection.open_bi().await?;
        let mut control_recv = FramedRecv::new(control_recv);
        write_frame(
            &mut control_send,
            &ControlFrame::Hello(Hello {
                edge_id: self.edge_id.clone(),
                boot_id: crate::outbox::boot_id(),
                wall_ms: outpost_actors::clock::unix_ms(),
                last_seq: self.outbox.durable_seq(),
                devices: self.devices.clone(),
                software: format!("outpost-edge {}", env!("CARGO_PKG_VERSION")),
            }),
        )
        .await?;
        let welcome = match control_recv.expect::<ControlFrame>(WELCOME_TIMEOUT).await? {
            ControlFrame::Welcome(welcome) => welcome,
            ControlFrame::Refused { reason } => {
                return Err(LinkIoError::Protocol(format!(
                    "hub refused this edge: {reason}"
                )));
            }
            other => {
                return Err(LinkIoError::Protocol(format!(
                    "expected Welcome, got {other:?}"
                )));
            }
        };
        let outbox_err =
            |e: crate::outbox::OutboxError| LinkIoError::Protocol(format!("outbox: {e}"));
        if welcome.committed_seq > self.outbox.durable_seq() {
            self.outbox
                .adopt_hub_sequence(welcome.committed_seq)
                .await
                .map_err(outbox_err)?;
        }
        self.outbox
            .ack(welcome.committed_seq)
            .await
            .map_err(outbox_err)?;
        if welcome.committed_seq < self.outbox.acked_seq() {
            tracing::error!(
                hub_committed = welcome.committed_seq,
                edge_acked = self.outbox.acked_seq(),
                "the hub lost events it had acknowledged (restored from a backup?); they are gone from this edge too"
            );
        }
        metrics::UPLINK_CONNECTED.set(1);
        tracing::info!(
            hub = %self.config.hub,
            committed_seq = welcome.committed_seq,
            last_seq = self.outbox.durable_seq(),
            clock_offset_ms = welcome.clock_offset_ms,
            "uplink session established"
        );

        let (events_send, events_recv) = connection.open_bi().await?;
        let (acked_tx, acked_rx) = watch::channel(welcome.committed_seq);
        let first = welcome.committed_seq.max(self.outbox.acked_seq()) + 1;
        let sender = self.send_events(events_send, first, acked_rx);
        let acks = self.receive_acks(FramedRecv::new(events_recv), acked_tx);
        let control = self.control(control_send, control_recv);
        let bulk = self.send_bulk(&connection);
        let rtt = async {
            let mut every = tokio::time::interval(Duration::from_secs(1));
            loop {
                every.tick().await;
                metrics::UPLINK_RTT.set(connection.rtt().as_secs_f64());
            }
        };
        let result = tokio::select! {
            r = sender => r,
            r = acks => r,
            r = control => r,
            r = bulk => r,
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

    async fn send_events(
        &self,
        mut send: quinn::SendStream,
        first: u64,
        mut acked: watch::Receiver<u64>,
    ) -> Result<(), LinkIoError> {
        let outbox_err =
            |e: crate::outbox::OutboxError| LinkIoError::Protocol(format!("outbox: {e}"));
        let mut next = first;
        let window = self.config.window_events;
        loop {
            // Flow control: at most `window` events sent and not yet acknowledged.
            let limit = *acked.borrow() + window;
            if next > limit {
                acked
                    .changed()
                    .await
                    .map_err(|_| LinkIoError::Protocol("ack reader ended".into()))?;
                continue;
            }
            let room = (limit + 1 - next) as usize;
            let events = self
                .outbox
                .read_from(next, self.config.batch_max_events.min(room), 1024 * 1024)
                .map_err(outbox_err)?;
            let Some(last) = events.last().map(|e| e.seq) else {
                self.outbox
                    .wait_beyond(next - 1)
                    .await
                    .map_err(outbox_err)?;
                continue;
            };
            if events[0].seq != next {
                // The outbox no longer has `next` (trimmed by an ack from an earlier session).
                tracing::debug!(
                    expected = next,
                    got = events[0].seq,
                    "resuming from the outbox's first event"
                );
            }
            write_frame(&mut send, &EventFrame::Batch(EventBatch { events })).await?;
            next = last + 1;
            // A backlog is read and encoded batch after batch without waiting on anything; let the
            // QUIC driver and the session's other tasks run in between, or the hub hears nothing
            // from this edge (not even keep-alives) and rightly ends the session as dead.
            tokio::task::yield_now().await;
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

    async fn receive_acks(
        &self,
        mut recv: FramedRecv,
        acked: watch::Sender<u64>,
    ) -> Result<(), LinkIoError> {
        loop {
            match recv.next::<EventFrame>().await? {
                None => return Ok(()),
                Some(EventFrame::Ack { committed_seq }) => {
                    self.outbox
                        .ack(committed_seq)
                        .await
                        .map_err(|e| LinkIoError::Protocol(format!("outbox: {e}")))?;
                    acked.send_replace(committed_seq);
                }
                Some(EventFrame::Batch(_)) => {
                    return Err(LinkIoError::Protocol("the hub sent events".into()));
                }
            }
        }
    }

    async fn control(
        &self,
        mut send: quinn::SendStream,
        mut recv: FramedRecv,
    ) -> Result<(), LinkIoError> {
        let (out_tx, mut out_rx) = mpsc::channel::<ControlFrame>(1024);
        let router = Arc::new(self.router.clone());
        let writer = async {
            while let Some(frame) = out_rx.recv().await {
                write_frame(&mut send, &frame).await?;
            }
            Ok::<(), LinkIoError>(())
        };
        let reader = async {
            loop {
                match recv.next::<ControlFrame>().await? {
                    None => return Ok::<(), LinkIoError>(()),
                    Some(ControlFrame::Command(request)) => {
                        let router = router.clone();
                        let out = out_tx.clone();
                        tokio::spawn(async move { router.handle(request, out).await });
                    }
                    Some(ControlFrame::Ping { nonce }) => {
                        let _ = out_tx.send(ControlFrame::Pong { nonce }).await;
                    }
                    Some(ControlFrame::Pong { .. }) => {}
                    Some(ControlFrame::BulkStored { id }) => self.bulk.settled(&id),
                    Some(ControlFrame::BulkRefused { id, reason }) => {
                        tracing::warn!(bulk = %id, %reason, "hub refused a bulk payload; dropped");
                        self.bulk.settled(&id);
                    }
                    Some(ControlFrame::Refused { reason }) => {
                        return Err(LinkIoError::Protocol(format!(
                            "hub refused this edge: {reason}"
                        )));
                    }
                    Some(other) => {
                        return Err(LinkIoError::Protocol(format!(
                            "unexpected control frame {other:?}"
                        )));
                    }
                }
            }
        };
        tokio::select! {
            r = writer => r,
            r = reader => r,
        }
    }
}
