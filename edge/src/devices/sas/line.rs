//! The line actor: one per SAS port. It owns the port and the sans-IO [`Line`], sends each poll,
//! reads and classifies the reply, and appends what it learnt to the outbox itself.
//!
//! Invariant (implied ACK, DESIGN.md): every event a reply carried is durable in the outbox before
//! the line sends its next byte, because any next poll acknowledges that reply to the EGM. If an
//! event cannot be made durable, the whole line waits (an EGM that is not polled keeps its
//! exception and chirps); it does not drop the event and move on. The EGM actors only turn
//! operators' commands into polls ([`LineRequest`]).
//!
//! The port failing (a closed pty or TCP peer, an I/O error) stops the actor; its supervisor
//! restarts it after a backoff, and the new line starts with a sync poll.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use outpost_config::{SasLineConfig, SasTransport, SasWakeup};
use outpost_link::EventBody;
use outpost_sas::data;
use outpost_sas::egm::REPORTED_METERS;
use outpost_sas::{
    Expectation, HostConfig, HostEvent, Line, Reply, ReplyDecoder, ReplyError, Request,
};
use outpost_sas_port::{PortError, SasPort, WakeupEncoding};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::record;
use crate::metrics;
use crate::shared::EdgeShared;

/// Longest silence inside a reply (reference §3.3).
const INTER_BYTE: Duration = Duration::from_millis(5);
/// Longest a reply may take once it started (260 bytes at 19200 baud is 150 ms).
const MAX_REPLY: Duration = Duration::from_millis(300);

/// What a command's poll came back with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PollOutcome {
    Acked,
    Data(Vec<u8>),
    RomSignature(u16),
}

/// Where a command's poll outcome goes.
pub type PollResponder = oneshot::Sender<Result<PollOutcome, String>>;

/// A long poll an EGM actor wants sent, and where its outcome goes.
#[derive(Debug)]
pub struct LineRequest {
    pub request: Request,
    pub done: PollResponder,
}

/// How EGM actors reach their line's current incarnation.
#[derive(Clone, Default, Debug)]
pub struct LineHandle(Arc<Mutex<Option<mpsc::Sender<LineRequest>>>>);

impl LineHandle {
    pub fn sender(&self) -> Option<mpsc::Sender<LineRequest>> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set(&self, sender: Option<mpsc::Sender<LineRequest>>) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = sender;
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct LineActor;

#[derive(Debug, Clone)]
pub struct LineArgs {
    pub config: SasLineConfig,
    pub shared: EdgeShared,
    pub handle: LineHandle,
}

pub struct LineState {
    task: outpost_actors::OwnedTask,
    handle: LineHandle,
}

impl LineState {
    fn shut(&self) {
        self.task.abort();
        self.handle.set(None);
    }
}

impl Drop for LineState {
    fn drop(&mut self) {
        self.shut();
    }
}

async fn open(config: &SasLineConfig) -> Result<SasPort, PortError> {
    let encoding = match config.wakeup() {
        SasWakeup::Parity => WakeupEncoding::Parity,
        SasWakeup::Marked => WakeupEncoding::Marked,
        SasWakeup::None => WakeupEncoding::None,
    };
    match (config.transport, &config.path, config.connect) {
        (SasTransport::Serial | SasTransport::Pty, Some(path), _) => {
            SasPort::open_serial(path, encoding)
        }
        (SasTransport::Tcp, _, Some(addr)) => SasPort::connect_tcp(addr, encoding).await,
        _ => Err(PortError::Open {
            what: config.id.clone(),
            source: std::io::Error::other("no path or address configured"),
        }),
    }
}

impl Actor for LineActor {
    type Msg = ();
    type State = LineState;
    type Arguments = LineArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<()>,
        args: LineArgs,
    ) -> Result<LineState, ActorProcessingErr> {
        let port = open(&args.config).await?;
        tracing::info!(line = %args.config.id, port = %port.name(), encoding = ?port.encoding(), egms = args.config.egms.len(), "sas line open");
        let (tx, rx) = mpsc::channel(64);
        args.handle.set(Some(tx));
        let driver = LineDriver::new(args.config, args.shared, port, rx);
        let task =
            outpost_actors::OwnedTask::ending_owner(
                myself,
                async move { Some(driver.run().await) },
            );
        Ok(LineState {
            task,
            handle: args.handle,
        })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<()>,
        state: &mut LineState,
    ) -> Result<(), ActorProcessingErr> {
        state.shut();
        Ok(())
    }
}

/// The loop of one line, outside the actor so that it can be driven directly in tests.
pub struct LineDriver {
    config: SasLineConfig,
    shared: EdgeShared,
    port: SasPort,
    line: Line,
    requests: mpsc::Receiver<LineRequest>,
    /// Device id by SAS address.
    ids: HashMap<u8, String>,
    /// Commands waiting for their poll's outcome, by (address, command).
    waiting: HashMap<(u8, u8), VecDeque<PollResponder>>,
    /// Real-time mode asked for with LP 0E and not yet acknowledged.
    real_time_asked: HashMap<u8, bool>,
    next_meters: Instant,
    /// Games each machine has (LP 51), once it said.
    games: HashMap<u8, u16>,
    /// When each game's meters are next read (when `game_meter_interval_ms` is not 0).
    next_game_meters: Instant,
    /// Which EGM's general-poll reply is not yet handled, kept across a crash.
    last_poll: Option<super::last_poll::LastPoll>,
    /// The previous run's last general poll, until [`Self::decide_resume`] has decided.
    resume: Option<super::last_poll::SentPoll>,
}

/// The meters read per game.
const GAME_METERS: [u8; 4] = [
    outpost_sas::egm::meter::COIN_IN,
    outpost_sas::egm::meter::COIN_OUT,
    outpost_sas::egm::meter::GAMES_PLAYED,
    outpost_sas::egm::meter::GAMES_WON,
];

/// At most this many games of a machine are read (LP 2F per game takes a poll each).
const MAX_GAMES_READ: u16 = 64;

impl LineDriver {
    pub fn new(
        config: SasLineConfig,
        shared: EdgeShared,
        port: SasPort,
        requests: mpsc::Receiver<LineRequest>,
    ) -> Self {
        let addresses: Vec<u8> = config.egms.iter().map(|e| e.address).collect();
        let host = HostConfig {
            min_interval: Duration::from_millis(config.poll_interval_ms),
            reply_timeout: Duration::from_millis(config.reply_timeout_ms),
            ..HostConfig::default()
        };
        let mut line = Line::new(&addresses, host);
        // Exported at 0 from the line's start.
        metrics::sas_line_started(&config.id, config.egms.iter().map(|e| e.id.as_str()));
        let mut real_time_asked = HashMap::new();
        for egm in &config.egms {
            // Who the machine is, its denomination and its games, once it answers.
            line.enqueue(Request::long(egm.address, data::MACHINE_INFO));
            line.enqueue(Request::long(egm.address, data::GAME_COUNT));
            if egm.real_time_events {
                line.enqueue(Request::real_time_events(egm.address, true));
                real_time_asked.insert(egm.address, true);
            }
            metrics::SAS_LINK_UP.with_label_values(&[&egm.id]).set(1);
        }
        // Never (0) is a wake-up so far away the line never waits for it.
        let game_meter_interval = match config.game_meter_interval_ms {
            0 => Duration::from_secs(365 * 24 * 3600),
            ms => Duration::from_millis(ms),
        };
        let ids = config
            .egms
            .iter()
            .map(|e| (e.address, e.id.clone()))
            .collect();
        let mut resume = None;
        let last_poll = shared.data_dir.as_ref().map(|dir| {
            let name: String = config
                .id
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            let path = dir.join("sas").join(format!("{name}.last-poll"));
            let (record, held) = super::last_poll::LastPoll::open(&path, &config.id);
            resume = held;
            record
        });
        Self {
            config,
            shared,
            port,
            line,
            requests,
            ids,
            waiting: HashMap::new(),
            real_time_asked,
            next_meters: Instant::now(),
            games: HashMap::new(),
            next_game_meters: Instant::now() + game_meter_interval,
            last_poll,
            resume,
        }
    }

    /// Decides, once the outbox is open, whether the previous run's last general poll is
    /// repeated (its reply was not stored) or not (it was: the sync poll may acknowledge it).
    /// `false` while the outbox is not open yet.
    fn decide_resume(&mut self, sent: super::last_poll::SentPoll) -> bool {
        let Some(outbox) = self.shared.outbox() else {
            return false;
        };
        let Some(id) = self.ids.get(&sent.address).cloned() else {
            return true;
        };
        let stored_after = match outbox.last_seq_of(&id) {
            Ok(last) => last.is_some_and(|seq| seq > sent.durable_seq),
            Err(err) => {
                tracing::warn!(line = %self.config.id, device = %id, %err, "cannot read the machine's last stored event; repeating its last poll");
                false
            }
        };
        if stored_after {
            tracing::info!(line = %self.config.id, device = %id, "the previous run stored the reply to its last poll; starting with the sync poll");
        } else if self.line.resume(sent.address) {
            tracing::info!(line = %self.config.id, device = %id, "sas line repeats the previous run's last general poll (an implied NACK: its reply is sent again)");
        }
        true
    }

    /// Runs until the port fails; returns why.
    pub async fn run(mut self) -> String {
        loop {
            if let Err(err) = self.step().await {
                tracing::warn!(line = %self.config.id, %err, "sas line failed");
                return err.to_string();
            }
        }
    }

    /// Queues each EGM's meter reading for when it has nothing left to say, so the events
    /// stored between two readings are what moved the meters between them.
    fn queue_meters(&mut self, now: Instant) {
        for egm in &self.config.egms {
            if let Ok(request) = Request::selected_meters(egm.address, 0, &REPORTED_METERS) {
                self.line.enqueue_when_quiet(request, now.into_std());
            }
        }
    }

    /// Queues a reading of each game's meters of every machine with two games or more.
    fn queue_game_meters(&mut self) {
        for (&address, &games) in &self.games {
            if games < 2 {
                continue; // its one game is the machine
            }
            for game in 1..=games.min(MAX_GAMES_READ) {
                if let Ok(request) = Request::selected_meters(address, game, &GAME_METERS) {
                    self.line.enqueue(request);
                }
            }
        }
    }

    async fn step(&mut self) -> Result<(), PortError> {
        if let Some(sent) = self.resume {
            if !self.decide_resume(sent) {
                // Nothing is sent before the decision: the outbox is opening.
                tokio::time::sleep(Duration::from_millis(20)).await;
                return Ok(());
            }
            self.resume = None;
        }
        let now = Instant::now();
        if now >= self.next_meters {
            self.queue_meters(now);
            self.next_meters = now + Duration::from_millis(self.config.meter_interval_ms);
        }
        if self.config.game_meter_interval_ms > 0 && now >= self.next_game_meters {
            self.queue_game_meters();
            self.next_game_meters = now + Duration::from_millis(self.config.game_meter_interval_ms);
        }
        while let Ok(request) = self.requests.try_recv() {
            self.accept(request);
        }
        let Some(transmit) = self.line.poll_transmit(now.into_std()) else {
            let wake = self
                .line
                .next_wakeup()
                .map(Instant::from_std)
                .unwrap_or(now + Duration::from_millis(5))
                .min(self.next_meters)
                .min(self.next_game_meters);
            tokio::select! {
                request = self.requests.recv() => match request {
                    Some(request) => self.accept(request),
                    // No sender left (the actor is stopping): just wait, never spin.
                    None => tokio::time::sleep_until(wake).await,
                },
                _ = tokio::time::sleep_until(wake) => {}
            }
            return Ok(());
        };
        let stale = self.port.discard_input();
        if stale > 0 {
            tracing::debug!(line = %self.config.id, bytes = stale, "stale bytes before a poll dropped");
        }
        if let Some(record) = self.last_poll.as_mut() {
            let durable_seq = self.shared.outbox().map_or(u64::MAX, |o| o.durable_seq());
            record.set(
                super::last_poll::general_poll_address(&transmit.frame.bytes).map(|address| {
                    super::last_poll::SentPoll {
                        address,
                        durable_seq,
                    }
                }),
            );
        }
        self.port
            .send_message(&transmit.frame.bytes, transmit.frame.wakeup_first)
            .await?;
        let Some(expectation) = transmit.expectation else {
            return Ok(());
        };
        let sent = Instant::now();
        let result = self.read_reply(expectation, sent).await?;
        metrics::SAS_POLL_SECONDS
            .with_label_values(&[self.config.id.as_str()])
            .observe(sent.elapsed().as_secs_f64());
        if let Some(id) = self.ids.get(&expectation.address()) {
            let label = result_label(&result);
            metrics::SAS_POLLS
                .with_label_values(&[id.as_str(), label])
                .inc();
            if label == "ok" {
                metrics::SAS_LAST_POLL
                    .with_label_values(&[id.as_str()])
                    .set(outpost_process::clock::unix_ms() as f64 / 1000.0);
            }
        }
        let events = self.line.handle_reply(result);
        for event in events {
            self.deliver(event).await;
        }
        // Every event the reply carried is durable: nothing to repeat after a crash. (A retry
        // of the same poll is recorded again before it is sent.)
        if let Some(record) = self.last_poll.as_mut() {
            record.set(None);
        }
        Ok(())
    }

    fn accept(&mut self, request: LineRequest) {
        let address = request.request.address();
        let command = request.request.command().unwrap_or_default();
        if let Request::LongPoll {
            command: 0x0E,
            data,
            ..
        } = &request.request
        {
            self.real_time_asked
                .insert(address, data.first() == Some(&1));
        }
        if self.line.enqueue(request.request) {
            self.waiting
                .entry((address, command))
                .or_default()
                .push_back(request.done);
        } else {
            let _ = request
                .done
                .send(Err(format!("no EGM at address {address} on this line")));
        }
    }

    fn resolve(&mut self, address: u8, command: u8, outcome: Result<PollOutcome, String>) {
        if let Some(waiting) = self.waiting.get_mut(&(address, command))
            && let Some(done) = waiting.pop_front()
        {
            let _ = done.send(outcome);
        }
    }

    /// Reads until the reply is decided and the line has gone quiet, or the window closed.
    async fn read_reply(
        &mut self,
        expectation: Expectation,
        sent: Instant,
    ) -> Result<Result<Reply, ReplyError>, PortError> {
        let mut decoder = ReplyDecoder::new(expectation);
        let mut deadline = sent + Duration::from_millis(self.config.reply_timeout_ms);
        let cap = sent + Duration::from_millis(self.config.reply_timeout_ms) + MAX_REPLY;
        while let Some(symbol) = self.port.recv(deadline.min(cap)).await? {
            if symbol.wakeup {
                // A chirp: an EGM on this line has not been polled for 5 s. Not part of a reply.
                metrics::SAS_CHIRPS
                    .with_label_values(&[self.config.id.as_str()])
                    .inc();
                continue;
            }
            decoder.feed(&[symbol.byte]);
            deadline = Instant::now() + INTER_BYTE;
        }
        Ok(decoder.finish())
    }

    /// Hands an event to its EGM actor and waits until it is durable.
    async fn deliver(&mut self, event: HostEvent) {
        let address = event.address();
        let Some(id) = self.ids.get(&address).cloned() else {
            return;
        };
        match &event {
            HostEvent::Acked { command, .. } => {
                if *command == 0x0E {
                    let on = self.real_time_asked.remove(&address).unwrap_or(false);
                    self.line.set_real_time(address, on);
                }
                // LP 21 is answered later, with the signature.
                if *command != data::ROM_SIGNATURE {
                    self.resolve(address, *command, Ok(PollOutcome::Acked));
                }
                return;
            }
            HostEvent::PollFailed {
                request, reason, ..
            } => {
                tracing::warn!(line = %self.config.id, device = %id, ?request, %reason, "sas poll failed after retries");
                self.resolve(
                    address,
                    request.command().unwrap_or_default(),
                    Err(format!("the EGM did not answer: {reason}")),
                );
                return;
            }
            HostEvent::LinkDown { .. } => {
                tracing::warn!(line = %self.config.id, device = %id, "sas link down");
                metrics::SAS_LINK_UP.with_label_values(&[&id]).set(0);
            }
            HostEvent::LinkUp { .. } => {
                tracing::info!(line = %self.config.id, device = %id, "sas link up");
                metrics::SAS_LINK_UP.with_label_values(&[&id]).set(1);
                // The machine may have been swapped or reconfigured while it was away.
                self.line
                    .enqueue(Request::long(address, data::MACHINE_INFO));
                self.line.enqueue(Request::long(address, data::GAME_COUNT));
                // Like every reading: once the machine has told what it held while unreachable.
                if let Ok(request) = Request::selected_meters(address, 0, &REPORTED_METERS) {
                    self.line
                        .enqueue_when_quiet(request, std::time::Instant::now());
                }
            }
            _ => {}
        }
        if let HostEvent::Data {
            command: data::GAME_COUNT,
            payload,
            ..
        } = &event
            && let data::DataReply::GameCount(games) =
                data::data_reply(data::GAME_COUNT, payload, &[])
        {
            self.games.insert(address, games);
        }
        let outcome = match &event {
            HostEvent::Data {
                command, payload, ..
            } => Some((*command, Ok(PollOutcome::Data(payload.clone())))),
            HostEvent::RomSignature { signature, .. } => Some((
                data::ROM_SIGNATURE,
                Ok(PollOutcome::RomSignature(*signature)),
            )),
            _ => None,
        };
        if let Some(record) = record::record(&event, &id) {
            self.store(&id, record).await;
        }
        if let Some((command, outcome)) = outcome {
            self.resolve(address, command, outcome);
        }
    }

    /// Makes `record` durable, however long that takes: the line sends nothing meanwhile (a next
    /// poll would acknowledge the reply to the EGM). An outbox that is reopening (a restart, a
    /// full disk) is waited for, not skipped.
    async fn store(&self, id: &str, record: record::Record) {
        let body = EventBody::Sas(record.event);
        let mut attempt = 0u32;
        loop {
            let stored = match self.shared.outbox() {
                Some(outbox) => outbox
                    .append(id, record.class, body.clone())
                    .await
                    .map_err(|e| e.to_string()),
                None => Err("the outbox is not open".to_owned()),
            };
            match stored {
                Ok(_) => break,
                Err(err) => {
                    attempt += 1;
                    if attempt == 1 || attempt.is_multiple_of(50) {
                        tracing::warn!(line = %self.config.id, device = %id, %err, attempt, "sas event not yet durable; the line waits");
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        metrics::SAS_EVENTS
            .with_label_values(&[id, record.kind])
            .inc();
    }
}

fn result_label(result: &Result<Reply, ReplyError>) -> &'static str {
    match result {
        Ok(Reply::Busy) => "busy",
        Ok(Reply::Nack) | Err(ReplyError::Nacked) => "nack",
        Ok(_) => "ok",
        Err(ReplyError::NoReply { .. }) => "no_reply",
        Err(ReplyError::BadCrc { .. }) => "bad_crc",
        Err(_) => "error",
    }
}
