//! `outpost-sim egm`: simulated slot machines on one SAS line (a serial port, a pty it creates, or
//! TCP), around the sans-IO [`EgmModel`].
//!
//! What it does like a real EGM: frames requests by the wake-up bit (or, `--lenient`, by the
//! request-length table), answers within the 20 ms window, implied ACK/NACK exactly as the model
//! does, chirps its address every 200 ms after 5 s without a poll, and plays: bills, games, wins,
//! jackpots that lock up as handpays until reset (by the host's LP 94, or an attendant after 20 s).
//!
//! Faults on demand (rates per *fresh* reply, so a retry of identical bytes is never faulted again
//! and SAS's own retry always recovers; three faults in a row would make the host give up and
//! acknowledge by sync, which loses the exception in real SAS as well): dropped replies, late
//! replies (after the 20 ms the spec allows, before the host's timeout), corrupted CRCs, BUSY, NACK;
//! and on request power loss (with or without RAM clear) and meters set just below rollover.
//!
//! Control (HTTP, JSON): `GET /state` (meters, lifetime totals, the delivered-exception log,
//! faults injected); `POST /faults` `{"drop": 0.02, ...}`; `POST /play` `{"rate": games/s}`;
//! `POST /power` `{"address", "off_ms", "ram_clear"}`; `POST /rollover` `{"address", "meter",
//! "below"}`; `POST /jackpot` `{"address", "credits"}`; `POST /bill` `{"address", "credits"}`;
//! `POST /game` `{"address", "bet", "win"}`; `POST /meter` `{"address", "meter", "add"}` (a meter
//! moves with no exception: a lost bill event, a meter jump); `GET /intervals` (poll intervals as
//! the machines saw them: p50/p99/max), `POST /intervals` (the same, and a new measuring window).
//!
//! Invariants: the model's lifetime totals and delivered log are the truth a test compares the
//! hub against; the simulator never changes a meter except through the model's own operations.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use outpost_sas::egm::{EgmModel, REPORTED_METERS, meter};
use outpost_sas::wire::{Framed, Framing, RequestFramer, Symbol};
use outpost_sas_port::{PortError, SasPort, WakeupEncoding};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

/// How long an EGM waits without an address byte before it chirps, and how often it chirps.
const CHIRP_AFTER: Duration = Duration::from_secs(5);
const CHIRP_EVERY: Duration = Duration::from_millis(200);
/// Inter-byte limit: a partial frame older than this is abandoned.
const INTER_BYTE: Duration = Duration::from_millis(5);
/// A late reply starts this long after the request (spec: within 20 ms).
const LATE_BY: Duration = Duration::from_millis(28);
/// An attendant pays a handpay the host has not reset after this long.
const ATTENDANT_AFTER: Duration = Duration::from_secs(20);

/// `outpost-sim egm` arguments.
#[derive(Debug, Clone, clap::Args)]
#[command(group(clap::ArgGroup::new("transport").required(true).args(["serial", "pty", "tcp"])))]
pub struct EgmArgs {
    /// A real serial port (SPACE parity, wake-up bit read through PARMRK).
    #[arg(long)]
    pub serial: Option<PathBuf>,
    /// Create a pty and print its path on the first line (marked encoding of the wake-up bit).
    #[arg(long)]
    pub pty: bool,
    /// Listen on this address, like a serial-over-IP converter (marked encoding).
    #[arg(long)]
    pub tcp: Option<SocketAddr>,
    /// SAS address of a machine (repeat for several on the line).
    #[arg(long, required = true)]
    pub address: Vec<u8>,
    /// Machines per address given: N, N+1, ... (so `--address 1 --count 4` is 1-4).
    #[arg(long, default_value_t = 1)]
    pub count: u8,
    /// Frame requests by the length table: for hosts that cannot send a wake-up bit.
    #[arg(long)]
    pub lenient: bool,
    /// The control HTTP server's address.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub control: SocketAddr,
    /// Games per second per machine (0: no play until POST /play).
    #[arg(long, default_value_t = 1.0)]
    pub play_rate: f64,
    /// Fault rates, e.g. `drop=0.02,late=0.02,corrupt=0.02,busy=0.01,nack=0.01`.
    #[arg(long, default_value = "")]
    pub faults: String,
    /// Games offered by each machine (LP 51).
    #[arg(long, default_value_t = 1)]
    pub games: u16,
    /// Credit value in cents.
    #[arg(long, default_value_t = 1)]
    pub denom: u32,
    /// Seed of the play and fault generator (random when absent; printed either way).
    #[arg(long)]
    pub seed: Option<u64>,
}

/// Fault rates, each per fresh reply.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultRates {
    pub drop: f64,
    pub late: f64,
    pub corrupt: f64,
    pub busy: f64,
    pub nack: f64,
}

impl FaultRates {
    /// Parses `name=rate,...`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut rates = FaultRates::default();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, value) = part
                .split_once('=')
                .ok_or_else(|| format!("fault {part:?}: expected name=rate"))?;
            let value: f64 = value
                .parse()
                .map_err(|_| format!("fault {name}: {value:?} is not a number"))?;
            let slot = match name {
                "drop" => &mut rates.drop,
                "late" => &mut rates.late,
                "corrupt" => &mut rates.corrupt,
                "busy" => &mut rates.busy,
                "nack" => &mut rates.nack,
                other => {
                    return Err(format!(
                        "unknown fault {other:?} (drop, late, corrupt, busy, nack)"
                    ));
                }
            };
            *slot = value;
        }
        rates.check()?;
        Ok(rates)
    }

    fn check(&self) -> Result<(), String> {
        let all = [self.drop, self.late, self.corrupt, self.busy, self.nack];
        if all.iter().any(|r| !(0.0..=1.0).contains(r)) || all.iter().sum::<f64>() > 1.0 {
            return Err("fault rates must be 0-1 and add up to at most 1".into());
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    Drop,
    Late,
    Corrupt,
    Busy,
    Nack,
}

/// Counts of faults injected and line activity.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LineCounters {
    pub frames: u64,
    pub discarded_bytes: u64,
    pub chirps: u64,
    pub drop: u64,
    pub late: u64,
    pub corrupt: u64,
    pub busy: u64,
    pub nack: u64,
}

struct Machine {
    model: EgmModel,
    off_until: Option<Instant>,
    handpay_since: Option<Instant>,
    /// When (Unix ms) each exception in `model.delivered()` was acknowledged by the host.
    delivered_at_ms: Vec<i64>,
}

impl Machine {
    /// A jackpot: the machine locks up as a handpay (and the attendant's clock starts).
    fn jackpot(&mut self, credits: u64, now: Instant) -> bool {
        let hit = self.model.jackpot(credits);
        if hit {
            self.handpay_since = Some(now);
        }
        hit
    }
}

struct SimState {
    machines: Vec<Machine>,
    faults: FaultRates,
    play_rate: f64,
    rng: StdRng,
    counters: LineCounters,
    /// The request most recently faulted: its identical retry is answered faithfully.
    last_faulted: Option<Vec<u8>>,
    /// When each address was last polled, and the intervals between polls (µs, capped).
    last_poll: std::collections::HashMap<u8, Instant>,
    intervals_us: Vec<u64>,
}

/// Most poll intervals kept for the jitter figures.
const MAX_INTERVALS: usize = 200_000;

/// Intervals between consecutive polls of one EGM, as the EGM saw them.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PollIntervals {
    pub count: usize,
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

/// The simulated machines of one line, shared by the line loop, the player and the control API.
#[derive(Clone)]
pub struct EgmSim {
    state: Arc<Mutex<SimState>>,
}

impl std::fmt::Debug for EgmSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EgmSim").finish_non_exhaustive()
    }
}

/// One machine as `GET /state` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MachineView {
    pub address: u8,
    /// Current meter values by meter code.
    pub meters: std::collections::BTreeMap<u8, u64>,
    /// What was really added to each meter (no rollover, no RAM clear).
    pub lifetime: std::collections::BTreeMap<u8, u128>,
    /// Exceptions the host acknowledged, in order.
    pub delivered: Vec<u8>,
    /// When (Unix ms) each of `delivered` was acknowledged, by whatever poll did it.
    #[serde(default)]
    pub delivered_at_ms: Vec<i64>,
    pub overflowed: Vec<u8>,
    pub pending: usize,
    pub play_enabled: bool,
    pub bill_acceptor: bool,
    pub handpay: Option<u64>,
    pub powered: bool,
}

impl EgmSim {
    pub fn new(
        addresses: &[u8],
        games: u16,
        denom: u32,
        play_rate: f64,
        faults: FaultRates,
        seed: u64,
    ) -> Self {
        let machines = addresses
            .iter()
            .map(|&a| Machine {
                model: EgmModel::new(a).with_games(games, denom),
                off_until: None,
                handpay_since: None,
                delivered_at_ms: Vec::new(),
            })
            .collect();
        Self {
            state: Arc::new(Mutex::new(SimState {
                machines,
                faults,
                play_rate,
                rng: StdRng::seed_from_u64(seed),
                counters: LineCounters::default(),
                last_faulted: None,
                last_poll: Default::default(),
                intervals_us: Vec::new(),
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SimState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn addresses(&self) -> Vec<u8> {
        self.lock()
            .machines
            .iter()
            .map(|m| m.model.address())
            .collect()
    }

    pub fn view(&self) -> (Vec<MachineView>, LineCounters) {
        let now = Instant::now();
        let state = self.lock();
        let views = state
            .machines
            .iter()
            .map(|m| {
                let codes = REPORTED_METERS.iter().chain(&[meter::GAMES_LOST]);
                MachineView {
                    address: m.model.address(),
                    meters: codes.clone().map(|&c| (c, m.model.meter(c))).collect(),
                    lifetime: codes.map(|&c| (c, m.model.lifetime(c))).collect(),
                    delivered: m.model.delivered().to_vec(),
                    delivered_at_ms: m.delivered_at_ms.clone(),
                    overflowed: m.model.overflowed().to_vec(),
                    pending: m.model.pending_exceptions(),
                    play_enabled: m.model.play_enabled(),
                    bill_acceptor: m.model.bill_acceptor_enabled(),
                    handpay: m.model.handpay_pending(),
                    powered: m.off_until.is_none_or(|t| t <= now),
                }
            })
            .collect();
        (views, state.counters.clone())
    }

    /// Poll-interval figures since the last reset; `reset` starts a new window.
    pub fn poll_intervals(&self, reset: bool) -> PollIntervals {
        let mut state = self.lock();
        let mut sorted = state.intervals_us.clone();
        if reset {
            state.intervals_us.clear();
            state.last_poll.clear();
        }
        drop(state);
        sorted.sort_unstable();
        let at = |q: f64| {
            sorted
                .get(((sorted.len() as f64 * q) as usize).min(sorted.len().saturating_sub(1)))
                .copied()
                .unwrap_or(0)
        };
        PollIntervals {
            count: sorted.len(),
            p50_us: at(0.5),
            p99_us: at(0.99),
            max_us: sorted.last().copied().unwrap_or(0),
        }
    }

    pub fn set_faults(&self, faults: FaultRates) {
        self.lock().faults = faults;
    }

    pub fn set_play_rate(&self, rate: f64) {
        self.lock().play_rate = rate.max(0.0);
    }

    fn with_machine<T>(&self, address: u8, f: impl FnOnce(&mut Machine) -> T) -> Option<T> {
        let mut state = self.lock();
        state
            .machines
            .iter_mut()
            .find(|m| m.model.address() == address)
            .map(f)
    }

    /// Power loss for `off`; with `ram_clear` the machine comes back with zeroed meters.
    /// `None`: no machine at `address` (so for every operation on one machine below).
    pub fn power_loss(&self, address: u8, off: Duration, ram_clear: bool) -> Option<()> {
        self.with_machine(address, |m| {
            if ram_clear {
                m.model.ram_clear();
            } else {
                m.model.power_cycle();
            }
            m.off_until = Some(Instant::now() + off);
            m.handpay_since = None;
        })
    }

    /// Sets `meter` to `below` under its rollover.
    pub fn near_rollover(&self, address: u8, code: u8, below: u64) -> Option<()> {
        self.with_machine(address, |m| {
            let modulus = 10u64.pow(2 * outpost_sas::meters::meter_size(code) as u32);
            m.model
                .set_meter(code, modulus.saturating_sub(below.max(1)));
        })
    }

    /// Whether the jackpot locked the machine up (not if play is off or a handpay is pending).
    pub fn jackpot(&self, address: u8, credits: u64) -> Option<bool> {
        self.with_machine(address, |m| m.jackpot(credits, Instant::now()))
    }

    /// Moves `meter` by `by` without any exception (fault injection).
    pub fn add_silently(&self, address: u8, meter: u8, by: u64) -> Option<()> {
        self.with_machine(address, |m| m.model.add_silently(meter, by))
    }

    /// Whether the bill was accepted (the acceptor may be off).
    pub fn insert_bill(&self, address: u8, credits: u64) -> Option<bool> {
        self.with_machine(address, |m| m.model.insert_bill(credits))
    }

    /// Raises exception `code` (a player-tracking session start 9E, a door…).
    pub fn raise(&self, address: u8, code: u8) -> Option<()> {
        self.with_machine(address, |m| m.model.raise(code))
    }

    /// The ticket's cents when the player cashed out to a ticket (`None` inside: no credits).
    pub fn cash_out(&self, address: u8) -> Option<Option<u64>> {
        self.with_machine(address, |m| m.model.cash_out_ticket())
    }

    /// Whether the game was played (play off, a handpay or no credits stop it).
    pub fn play_game(&self, address: u8, bet: u64, win: u64) -> Option<bool> {
        self.with_machine(address, |m| m.model.play_game(bet, win))
    }

    /// One play tick of `dt` for every powered machine.
    pub fn play(&self, dt: Duration) {
        let now = Instant::now();
        let mut guard = self.lock();
        let state = &mut *guard;
        let rate = state.play_rate;
        if rate <= 0.0 {
            return;
        }
        let p_game = (rate * dt.as_secs_f64()).min(1.0);
        for m in &mut state.machines {
            if m.off_until.is_some_and(|t| t > now) {
                continue;
            }
            if m.handpay_since.is_some_and(|t| now - t > ATTENDANT_AFTER) {
                m.model.reset_handpay();
            }
            if m.model.handpay_pending().is_none() {
                m.handpay_since = None;
            }
            if !state.rng.random_bool(p_game) {
                continue;
            }
            if m.model.meter(meter::CURRENT_CREDITS) < 20 {
                // A real bill ($5, $10 or $20) in the machine's credits: it names its value.
                let dollars = [5u64, 10, 20][state.rng.random_range(0..3)];
                let credits = dollars * 100 / u64::from(m.model.denomination_cents()).max(1);
                m.model.insert_bill(credits.max(1));
                continue;
            }
            if state.rng.random_bool(0.01) {
                let credits = state.rng.random_range(1_000..5_000);
                m.jackpot(credits, now);
                continue;
            }
            let bet = state.rng.random_range(1..=5);
            let win = if state.rng.random_bool(0.3) {
                state.rng.random_range(0..=bet * 4)
            } else {
                0
            };
            m.model.play_game(bet, win);
        }
    }

    /// The reply to one received frame and when to send it.
    fn answer(&self, frame: &[u8]) -> Option<(Vec<u8>, Duration)> {
        let now = Instant::now();
        let mut guard = self.lock();
        let state = &mut *guard;
        state.counters.frames += 1;
        let target = frame.first().map(|b| b & 0x7F).unwrap_or(0);
        if target != 0
            && let Some(previous) = state.last_poll.insert(target, now)
            && state.intervals_us.len() < MAX_INTERVALS
        {
            state
                .intervals_us
                .push((now - previous).as_micros().min(u128::from(u64::MAX)) as u64);
        }
        let is_long_poll = frame.first().is_some_and(|b| b & 0x80 == 0) && frame.len() > 1;
        let fault = if target != 0 && state.last_faulted.as_deref() != Some(frame) {
            pick_fault(&mut state.rng, &state.faults, is_long_poll)
        } else {
            None
        };
        state.last_faulted = fault.map(|_| frame.to_vec());
        let mut reply = None;
        for m in &mut state.machines {
            if let Some(until) = m.off_until {
                if until > now {
                    continue;
                }
                m.off_until = None;
            }
            if m.model.address() == target && matches!(fault, Some(Fault::Busy) | Some(Fault::Nack))
            {
                // Refused before the machine read it.
                continue;
            }
            if let Some(r) = m.model.handle(frame) {
                reply = Some(r);
            }
            let acknowledged = m.model.delivered().len();
            if acknowledged > m.delivered_at_ms.len() {
                let at = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as i64);
                m.delivered_at_ms.resize(acknowledged, at);
            }
            if m.model.address() == target && m.model.handpay_pending().is_some() {
                m.handpay_since.get_or_insert(now);
            }
        }
        let powered = state
            .machines
            .iter()
            .any(|m| m.model.address() == target && m.off_until.is_none());
        match fault {
            None => reply.map(|r| (r, Duration::ZERO)),
            Some(_) if !powered => None,
            Some(Fault::Busy) => {
                state.counters.busy += 1;
                Some((vec![target, 0x00], Duration::ZERO))
            }
            Some(Fault::Nack) => {
                state.counters.nack += 1;
                Some((vec![target | 0x80], Duration::ZERO))
            }
            Some(Fault::Drop) => {
                state.counters.drop += 1;
                None
            }
            Some(Fault::Late) => {
                state.counters.late += 1;
                reply.map(|r| (r, LATE_BY))
            }
            Some(Fault::Corrupt) => match reply {
                Some(mut r) if r.len() > 3 => {
                    state.counters.corrupt += 1;
                    let i = r.len() - 3;
                    r[i] ^= 0x10;
                    Some((r, Duration::ZERO))
                }
                // Nothing with a CRC to corrupt: answer faithfully.
                other => {
                    state.last_faulted = None;
                    other.map(|r| (r, Duration::ZERO))
                }
            },
        }
    }
}

fn pick_fault(rng: &mut StdRng, rates: &FaultRates, long_poll: bool) -> Option<Fault> {
    let mut x: f64 = rng.random();
    let mut table = vec![
        (Fault::Drop, rates.drop),
        (Fault::Late, rates.late),
        (Fault::Corrupt, rates.corrupt),
    ];
    if long_poll {
        table.push((Fault::Busy, rates.busy));
        table.push((Fault::Nack, rates.nack));
    }
    for (fault, rate) in table {
        if x < rate {
            return Some(fault);
        }
        x -= rate;
    }
    None
}

/// Serves one connected port until it fails.
pub async fn serve_port(
    port: &mut SasPort,
    sim: &EgmSim,
    framing: Framing,
) -> Result<(), PortError> {
    let mut framer = RequestFramer::new(framing);
    let mut last_poll = Instant::now();
    let mut last_byte = Instant::now();
    let mut next_chirp = last_poll + CHIRP_AFTER;
    loop {
        let mut deadline = next_chirp;
        if framer.is_partial() {
            deadline = deadline.min(last_byte + INTER_BYTE);
        }
        let Some(symbol) = port.recv(deadline).await? else {
            let now = Instant::now();
            if framer.is_partial()
                && now >= last_byte + INTER_BYTE
                && let Some(Framed::Discarded(n)) = framer.silence()
            {
                sim.lock().counters.discarded_bytes += n as u64;
            }
            if now >= next_chirp {
                let chirps: Vec<Symbol> = sim.addresses().into_iter().map(Symbol::wakeup).collect();
                sim.lock().counters.chirps += chirps.len() as u64;
                port.send(&chirps).await?;
                next_chirp = now + CHIRP_EVERY;
            }
            continue;
        };
        last_byte = Instant::now();
        if symbol.wakeup || framing == Framing::Lenient {
            last_poll = last_byte;
            next_chirp = last_poll + CHIRP_AFTER;
        }
        match framer.push(symbol) {
            Some(Framed::Request(frame)) => {
                if let Some((reply, delay)) = sim.answer(&frame) {
                    if !delay.is_zero() {
                        tokio::time::sleep(delay).await;
                    }
                    let symbols: Vec<Symbol> = reply.into_iter().map(Symbol::plain).collect();
                    port.send(&symbols).await?;
                }
            }
            Some(Framed::Discarded(n)) => sim.lock().counters.discarded_bytes += n as u64,
            None => {}
        }
    }
}

async fn play_loop(sim: EgmSim) {
    let tick = Duration::from_millis(100);
    let mut every = tokio::time::interval(tick);
    loop {
        every.tick().await;
        sim.play(tick);
    }
}

#[derive(Deserialize)]
struct PlayBody {
    rate: f64,
}

#[derive(Deserialize)]
struct ExceptionBody {
    address: u8,
    code: u8,
}

#[derive(Deserialize)]
struct CashOutBody {
    address: u8,
}

#[derive(Deserialize)]
struct PowerBody {
    address: u8,
    off_ms: u64,
    #[serde(default)]
    ram_clear: bool,
}

#[derive(Deserialize)]
struct RolloverBody {
    address: u8,
    meter: u8,
    #[serde(default = "default_below")]
    below: u64,
}

fn default_below() -> u64 {
    10
}

#[derive(Deserialize)]
struct BillBody {
    address: u8,
    credits: u64,
}

#[derive(Deserialize)]
struct MeterBody {
    address: u8,
    meter: u8,
    add: u64,
}

#[derive(Deserialize)]
struct GameBody {
    address: u8,
    bet: u64,
    win: u64,
}

#[derive(Deserialize)]
struct JackpotBody {
    address: u8,
    credits: u64,
}

type ApiError = (axum::http::StatusCode, String);

/// The answer of an operation on the machine at `address`: 404 when there is none.
fn found<T>(
    address: u8,
    outcome: Option<T>,
    body: impl FnOnce(T) -> serde_json::Value,
) -> Result<Json<serde_json::Value>, ApiError> {
    outcome.map(|t| Json(body(t))).ok_or_else(|| {
        (
            axum::http::StatusCode::NOT_FOUND,
            format!("no machine at address {address}"),
        )
    })
}

/// The control API.
pub fn control_router(sim: EgmSim) -> Router {
    Router::new()
        .route(
            "/state",
            get(|State(sim): State<EgmSim>| async move {
                let (machines, counters) = sim.view();
                Json(serde_json::json!({"egms": machines, "line": counters}))
            }),
        )
        .route(
            "/faults",
            post(
                |State(sim): State<EgmSim>, Json(rates): Json<FaultRates>| async move {
                    rates
                        .check()
                        .map_err(|e| (axum::http::StatusCode::BAD_REQUEST, e))?;
                    sim.set_faults(rates);
                    Ok::<_, ApiError>(Json(rates))
                },
            ),
        )
        .route(
            "/play",
            post(
                |State(sim): State<EgmSim>, Json(body): Json<PlayBody>| async move {
                    sim.set_play_rate(body.rate);
                    Json(serde_json::json!({"rate": body.rate.max(0.0)}))
                },
            ),
        )
        .route(
            "/power",
            post(
                |State(sim): State<EgmSim>, Json(b): Json<PowerBody>| async move {
                    let off = Duration::from_millis(b.off_ms);
                    found(
                        b.address,
                        sim.power_loss(b.address, off, b.ram_clear),
                        |()| serde_json::json!({"address": b.address, "off_ms": b.off_ms}),
                    )
                },
            ),
        )
        .route(
            "/rollover",
            post(
                |State(sim): State<EgmSim>, Json(b): Json<RolloverBody>| async move {
                    found(
                        b.address,
                        sim.near_rollover(b.address, b.meter, b.below),
                        |()| serde_json::json!({"address": b.address, "meter": b.meter}),
                    )
                },
            ),
        )
        .route(
            "/jackpot",
            post(
                |State(sim): State<EgmSim>, Json(b): Json<JackpotBody>| async move {
                    found(
                        b.address,
                        sim.jackpot(b.address, b.credits),
                        |hit| serde_json::json!({"address": b.address, "hit": hit}),
                    )
                },
            ),
        )
        .route(
            "/intervals",
            get(|State(sim): State<EgmSim>| async move { Json(sim.poll_intervals(false)) })
                .post(|State(sim): State<EgmSim>| async move { Json(sim.poll_intervals(true)) }),
        )
        .route(
            "/bill",
            post(
                |State(sim): State<EgmSim>, Json(b): Json<BillBody>| async move {
                    found(
                        b.address,
                        sim.insert_bill(b.address, b.credits),
                        |accepted| serde_json::json!({"accepted": accepted}),
                    )
                },
            ),
        )
        .route(
            "/exception",
            post(
                |State(sim): State<EgmSim>, Json(b): Json<ExceptionBody>| async move {
                    found(b.address, sim.raise(b.address, b.code), |()| {
                        serde_json::json!({"raised": b.code})
                    })
                },
            ),
        )
        .route(
            "/cashout",
            post(
                |State(sim): State<EgmSim>, Json(b): Json<CashOutBody>| async move {
                    found(b.address, sim.cash_out(b.address), |cents| {
                        serde_json::json!({"ticket_cents": cents})
                    })
                },
            ),
        )
        .route(
            "/meter",
            post(
                |State(sim): State<EgmSim>, Json(b): Json<MeterBody>| async move {
                    found(
                        b.address,
                        sim.add_silently(b.address, b.meter, b.add),
                        |()| serde_json::json!({"address": b.address, "meter": b.meter, "added": b.add}),
                    )
                },
            ),
        )
        .route(
            "/game",
            post(
                |State(sim): State<EgmSim>, Json(b): Json<GameBody>| async move {
                    found(
                        b.address,
                        sim.play_game(b.address, b.bet, b.win),
                        |played| serde_json::json!({"played": played}),
                    )
                },
            ),
        )
        .with_state(sim)
}

/// `outpost-sim egm`: runs until interrupted.
pub async fn run(args: EgmArgs) -> anyhow::Result<()> {
    let mut addresses = Vec::new();
    for &base in &args.address {
        for i in 0..args.count.max(1) {
            let address = base
                .checked_add(i)
                .filter(|a| (1..=127).contains(a))
                .ok_or_else(|| anyhow::anyhow!("addresses must be 1-127 ({base} + {i})"))?;
            if addresses.contains(&address) {
                anyhow::bail!("address {address} given twice");
            }
            addresses.push(address);
        }
    }
    let faults = FaultRates::parse(&args.faults).map_err(anyhow::Error::msg)?;
    let seed = args.seed.unwrap_or_else(rand::random);
    let sim = EgmSim::new(
        &addresses,
        args.games,
        args.denom,
        args.play_rate,
        faults,
        seed,
    );
    let framing = if args.lenient {
        Framing::Lenient
    } else {
        Framing::WakeupBit
    };
    let stream_encoding = if args.lenient {
        WakeupEncoding::None
    } else {
        WakeupEncoding::Marked
    };

    let control = tokio::net::TcpListener::bind(args.control).await?;
    let control_addr = control.local_addr()?;
    let router = control_router(sim.clone());
    tokio::spawn(async move {
        if let Err(err) = axum::serve(control, router).await {
            tracing::error!(%err, "egm control server stopped");
        }
    });
    tokio::spawn(play_loop(sim.clone()));

    let describe = format!(
        "addresses {addresses:?}, {} framing, seed {seed}, control http://{control_addr}",
        if args.lenient {
            "lenient"
        } else {
            "wake-up bit"
        }
    );
    if args.pty {
        let (mut port, slave) = SasPort::pty(stream_encoding)?;
        // First line: the pty path, for scripts and tests.
        println!("{}", slave.path.display());
        println!("egm simulator on pty {}: {describe}", slave.path.display());
        loop {
            if let Err(err) = serve_port(&mut port, &sim, framing).await {
                // The master side only fails if the pty itself is gone.
                anyhow::bail!("pty: {err}");
            }
        }
    } else if let Some(path) = args.serial {
        println!("{}", path.display());
        println!("egm simulator on serial {}: {describe}", path.display());
        let encoding = if args.lenient {
            WakeupEncoding::None
        } else {
            WakeupEncoding::Parity
        };
        let mut port = SasPort::open_serial(&path, encoding)?;
        serve_port(&mut port, &sim, framing).await?;
        Ok(())
    } else if let Some(addr) = args.tcp {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        println!("{local}");
        println!("egm simulator on tcp {local}: {describe}");
        // One host at a time, like a converter: a new connection replaces the old one.
        let mut current: Option<tokio::task::JoinHandle<()>> = None;
        loop {
            let (stream, peer) = listener.accept().await?;
            if let Some(old) = current.take() {
                old.abort();
            }
            let sim = sim.clone();
            let mut port = SasPort::from_tcp(stream, stream_encoding);
            current = Some(tokio::spawn(async move {
                if let Err(err) = serve_port(&mut port, &sim, framing).await {
                    tracing::info!(%peer, %err, "host connection ended");
                }
            }));
        }
    } else {
        anyhow::bail!("one of --serial, --pty or --tcp is required")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn fault_rates_parse_and_refuse_nonsense() {
        let rates = FaultRates::parse("drop=0.1, nack=0.05").unwrap();
        assert_eq!(rates.drop, 0.1);
        assert_eq!(rates.nack, 0.05);
        assert!(FaultRates::parse("drop=2").is_err());
        assert!(FaultRates::parse("flood=0.1").is_err());
        assert!(FaultRates::parse("drop").is_err());
        assert_eq!(FaultRates::parse("").unwrap(), FaultRates::default());
    }

    #[test]
    fn a_faulted_poll_is_answered_faithfully_when_retried() {
        let faults = FaultRates {
            drop: 1.0,
            ..FaultRates::default()
        };
        let sim = EgmSim::new(&[1], 1, 1, 0.0, faults, 7);
        sim.answer(&[0x80]);
        assert_eq!(sim.answer(&[0x81]), None, "dropped");
        assert_eq!(
            sim.answer(&[0x81]),
            Some((vec![0x00], Duration::ZERO)),
            "the retry gets the reply"
        );
    }
}
