//! A sans-IO model of an EGM's SAS side: what a slot machine answers, with its meters, credits and
//! exception queue. The EGM simulator drives it over a serial path, pty or TCP; tests drive it
//! against the host [`Line`](crate::Line) directly.
//!
//! Behaviour (reference §3.2–§3.9): it ignores everything until it sees a poll to address 0 or to
//! another EGM (sync); an identical repeated poll is an implied NACK and gets the last reply again;
//! any other poll implicitly acknowledges the last reply, and only then does an exception leave the
//! queue; the queue holds 20 exceptions, and on overflow the oldest is lost and 70 is reported; a
//! request with a bad CRC is NACKed; an unsupported long poll is ignored; in real-time mode
//! exceptions go out as `addr FF code CRC` frames, in reply to general and long polls alike.
//!
//! Bookkeeping for tests and the simulator: every meter also has a lifetime total (what was
//! really added, without rollover or RAM clear), and every exception is logged when the host
//! acknowledged it ([`EgmModel::delivered`]) or when an overflow pushed it out
//! ([`EgmModel::overflowed`]). A host that loses nothing must end with exactly the delivered log.

use std::collections::{BTreeMap, VecDeque};

use crate::bcd::Bcd;
use crate::crc::crc16_kermit_seeded;
use crate::meters::meter_size;
use crate::reply::{Reply, event_data_len};
use crate::request::{Request, RequestError};

/// Exceptions the EGM keeps (at least 20 by the spec).
pub const EXCEPTION_QUEUE: usize = 20;

/// Meter codes (LP 2F) the model keeps.
pub mod meter {
    pub const COIN_IN: u8 = 0x00;
    pub const COIN_OUT: u8 = 0x01;
    pub const JACKPOT: u8 = 0x02;
    pub const GAMES_PLAYED: u8 = 0x05;
    pub const GAMES_WON: u8 = 0x06;
    pub const GAMES_LOST: u8 = 0x07;
    pub const CURRENT_CREDITS: u8 = 0x0C;
    pub const TOTAL_BILLS: u8 = 0x24;
    /// Total hand-paid cancelled credits.
    pub const HANDPAID_CANCELLED: u8 = 0x03;
    /// Cashable ticket in, cents (5 bytes).
    pub const TICKET_IN_CENTS: u8 = 0x0D;
    /// Cashable ticket out, cents (5 bytes).
    pub const TICKET_OUT_CENTS: u8 = 0x0E;
}

/// Meter codes the simulator reports in its LP 2F refreshes (and the edge asks for): ten, the
/// most one LP 2F may ask.
pub const REPORTED_METERS: [u8; 10] = [
    meter::COIN_IN,
    meter::COIN_OUT,
    meter::JACKPOT,
    meter::HANDPAID_CANCELLED,
    meter::GAMES_PLAYED,
    meter::GAMES_WON,
    meter::CURRENT_CREDITS,
    meter::TOTAL_BILLS,
    meter::TICKET_IN_CENTS,
    meter::TICKET_OUT_CENTS,
];

/// The SAS side of one EGM.
#[derive(Debug, Clone)]
pub struct EgmModel {
    address: u8,
    synced: bool,
    real_time: bool,
    play_enabled: bool,
    bill_acceptor: bool,
    meters: BTreeMap<u8, u64>,
    exceptions: VecDeque<u8>,
    /// The exception the last reply carried, removed from the queue when that reply is acked.
    unacked_exception: bool,
    last_request: Option<Vec<u8>>,
    last_reply: Option<Vec<u8>>,
    rom_signature: Option<u16>,
    handpay: Option<u64>,
    games: u16,
    /// Meters of each game (1..=games): the games are played in turn.
    game_meters: BTreeMap<u16, BTreeMap<u8, u64>>,
    /// What was really added to each game's meters.
    game_lifetime: BTreeMap<(u16, u8), u128>,
    denomination_cents: u32,
    lifetime: BTreeMap<u8, u128>,
    delivered: Vec<u8>,
    overflowed: Vec<u8>,
}

impl EgmModel {
    pub fn new(address: u8) -> Self {
        Self {
            address,
            synced: false,
            real_time: false,
            play_enabled: true,
            bill_acceptor: true,
            meters: BTreeMap::new(),
            exceptions: VecDeque::new(),
            unacked_exception: false,
            last_request: None,
            last_reply: None,
            rom_signature: None,
            handpay: None,
            games: 1,
            game_meters: BTreeMap::new(),
            game_lifetime: BTreeMap::new(),
            denomination_cents: 1,
            lifetime: BTreeMap::new(),
            delivered: Vec::new(),
            overflowed: Vec::new(),
        }
    }

    /// Games offered (LP 51) and the credit denomination in cents (LP 1F).
    pub fn with_games(mut self, games: u16, denomination_cents: u32) -> Self {
        self.games = games.max(1);
        self.denomination_cents = denomination_cents.max(1);
        self
    }

    /// What was really added to `code` over the model's life (no rollover, no RAM clear).
    pub fn lifetime(&self, code: u8) -> u128 {
        self.lifetime.get(&code).copied().unwrap_or(0)
    }

    /// What was really added to meter `code` of game `game` (1..=games).
    pub fn game_lifetime(&self, game: u16, code: u8) -> u128 {
        self.game_lifetime.get(&(game, code)).copied().unwrap_or(0)
    }

    /// Meter `code` of game `game` now.
    pub fn game_meter(&self, game: u16, code: u8) -> u64 {
        self.game_meters
            .get(&game)
            .and_then(|m| m.get(&code))
            .copied()
            .unwrap_or(0)
    }

    fn add_to_game(&mut self, game: u16, code: u8, by: u64) {
        let modulus = 10u64.pow(2 * meter_size(code) as u32);
        let value = self
            .game_meters
            .entry(game)
            .or_default()
            .entry(code)
            .or_insert(0);
        *value = (*value + by) % modulus;
        *self.game_lifetime.entry((game, code)).or_insert(0) += u128::from(by);
    }

    /// Exceptions the host acknowledged, in order.
    pub fn delivered(&self) -> &[u8] {
        &self.delivered
    }

    /// Exceptions lost to a queue overflow (reported as 70 instead).
    pub fn overflowed(&self) -> &[u8] {
        &self.overflowed
    }

    pub fn handpay_pending(&self) -> Option<u64> {
        self.handpay
    }

    /// Sets a meter outright (fault injection: a meter close to its rollover).
    pub fn set_meter(&mut self, code: u8, value: u64) {
        let modulus = 10u64.pow(2 * meter_size(code) as u32);
        self.meters.insert(code, value % modulus);
    }

    /// Power loss with RAM clear: meters, credits and the exception queue are gone; the EGM
    /// must be synchronised again. Lifetime totals and logs survive (they are the test's truth).
    pub fn ram_clear(&mut self) {
        self.meters.clear();
        self.game_meters.clear();
        self.exceptions.clear();
        self.unacked_exception = false;
        self.handpay = None;
        self.synced = false;
        self.real_time = false;
        self.last_request = None;
        self.last_reply = None;
        self.rom_signature = None;
    }

    /// Power loss without RAM clear: only the link state is lost.
    pub fn power_cycle(&mut self) {
        self.synced = false;
        self.last_request = None;
        self.last_reply = None;
    }

    pub fn address(&self) -> u8 {
        self.address
    }

    pub fn meter(&self, code: u8) -> u64 {
        self.meters.get(&code).copied().unwrap_or(0)
    }

    pub fn play_enabled(&self) -> bool {
        self.play_enabled
    }

    pub fn bill_acceptor_enabled(&self) -> bool {
        self.bill_acceptor
    }

    pub fn pending_exceptions(&self) -> usize {
        self.exceptions.len()
    }

    fn add(&mut self, code: u8, by: u64) {
        let modulus = 10u64.pow(2 * meter_size(code) as u32);
        let value = self.meters.entry(code).or_insert(0);
        *value = (*value + by) % modulus;
        *self.lifetime.entry(code).or_insert(0) += u128::from(by);
    }

    /// Moves a meter without raising anything (fault injection: a bill whose exception the
    /// machine never raised, a meter that jumps). The lifetime total moves too: it happened.
    pub fn add_silently(&mut self, code: u8, by: u64) {
        self.add(code, by);
    }

    /// Queues an exception; on overflow the oldest is dropped and 70 reported.
    pub fn raise(&mut self, code: u8) {
        if self.exceptions.len() >= EXCEPTION_QUEUE {
            // The one at the front may be on the wire awaiting its ACK: keep it.
            let keep = usize::from(self.unacked_exception);
            if let Some(lost) = self.exceptions.remove(keep) {
                self.overflowed.push(lost);
            }
            if self.exceptions.back() != Some(&0x70) {
                if let Some(lost) = self.exceptions.remove(keep) {
                    self.overflowed.push(lost);
                }
                self.exceptions.push_back(0x70);
            }
        }
        self.exceptions.push_back(code);
    }

    /// A game of `bet` credits paying `win`: meters move, 7E and 7F are raised. Returns whether it
    /// was played (play disabled, a pending handpay or no credits stop it).
    pub fn play_game(&mut self, bet: u64, win: u64) -> bool {
        if !self.play_enabled || self.handpay.is_some() || self.meter(meter::CURRENT_CREDITS) == 0 {
            return false;
        }
        let credits = self.meter(meter::CURRENT_CREDITS);
        let bet = bet.min(credits);
        self.meters
            .insert(meter::CURRENT_CREDITS, credits - bet + win);
        // The games are played in turn: game 1, 2, …, games, 1, …
        let game =
            u16::try_from(self.meter(meter::GAMES_PLAYED) % u64::from(self.games)).unwrap_or(0) + 1;
        let outcome = if win > 0 {
            meter::GAMES_WON
        } else {
            meter::GAMES_LOST
        };
        for (code, by) in [
            (meter::COIN_IN, bet),
            (meter::COIN_OUT, win),
            (meter::GAMES_PLAYED, 1),
            (outcome, 1),
        ] {
            self.add(code, by);
            self.add_to_game(game, code, by);
        }
        self.raise(0x7E);
        self.raise(0x7F);
        true
    }

    /// The player cashes out to a ticket: the credits leave as a cash-out ticket (its value in
    /// cents on the ticket-out meter) and 3D is raised. Returns the ticket's cents (`None`
    /// without credits).
    pub fn cash_out_ticket(&mut self) -> Option<u64> {
        let credits = self.meter(meter::CURRENT_CREDITS);
        if credits == 0 {
            return None;
        }
        let cents = credits.saturating_mul(u64::from(self.denomination_cents));
        self.meters.insert(meter::CURRENT_CREDITS, 0);
        self.add(meter::TICKET_OUT_CENTS, cents);
        self.raise(crate::names::exception::CASHOUT_TICKET_PRINTED);
        Some(cents)
    }

    /// A bill of `credits` accepted (if the acceptor is on). Like a real EGM outside real-time
    /// mode it raises the exception that names the bill's value (47–4E, 50) when there is one
    /// for `credits` × the denomination, and the generic 4F otherwise (and always in real-time
    /// mode, where 4F carries the bill's data).
    pub fn insert_bill(&mut self, credits: u64) -> bool {
        if !self.bill_acceptor {
            return false;
        }
        self.add(meter::CURRENT_CREDITS, credits);
        self.add(meter::TOTAL_BILLS, credits);
        let cents = credits.saturating_mul(u64::from(self.denomination_cents));
        // In real-time mode a bill is always 4F, with its data (§3.9).
        let code = if cents % 100 == 0 && !self.real_time {
            u32::try_from(cents / 100).map_or(crate::names::exception::BILL_ACCEPTED, |value| {
                crate::names::bill_exception(value)
            })
        } else {
            crate::names::exception::BILL_ACCEPTED
        };
        self.raise(code);
        true
    }

    /// The credit denomination in cents.
    pub fn denomination_cents(&self) -> u32 {
        self.denomination_cents
    }

    /// A jackpot too large for the machine to pay: handpay pending (51) until the host resets it
    /// with LP 94 (or an attendant does, [`EgmModel::reset_handpay`]).
    pub fn jackpot(&mut self, credits: u64) -> bool {
        if self.handpay.is_some() || !self.play_enabled {
            return false;
        }
        self.handpay = Some(credits);
        self.raise(0x51);
        true
    }

    /// The handpay is paid: jackpot and hand-paid meters move, 52 (handpay was reset) is raised.
    pub fn reset_handpay(&mut self) -> bool {
        let Some(credits) = self.handpay.take() else {
            return false;
        };
        self.add(meter::JACKPOT, credits);
        self.add(meter::HANDPAID_CANCELLED, credits);
        self.raise(0x52);
        true
    }

    /// Handles one whole request frame as received; returns the reply bytes, if any.
    pub fn handle(&mut self, bytes: &[u8]) -> Option<Vec<u8>> {
        let request = match Request::decode(bytes) {
            Ok(request) => request,
            Err(RequestError::BadCrc(_)) if bytes.first() == Some(&self.address) => {
                return Some(Reply::Nack.encode(self.address));
            }
            Err(_) => return None,
        };
        let address = request.address();
        if address != self.address {
            // A poll elsewhere synchronises us and implicitly acknowledges our last reply.
            self.synced = true;
            self.acknowledge();
            return None;
        }
        if !self.synced {
            return None;
        }
        if self.last_request.as_deref() == Some(bytes) {
            // Implied NACK: the same reply again.
            return self.last_reply.clone();
        }
        self.acknowledge();
        self.last_request = Some(bytes.to_vec());
        let reply = self.answer(&request);
        self.last_reply = reply.as_ref().map(|r| r.encode(self.address));
        self.last_reply.clone()
    }

    fn acknowledge(&mut self) {
        if self.unacked_exception {
            if let Some(code) = self.exceptions.pop_front() {
                self.delivered.push(code);
            }
            self.unacked_exception = false;
        }
        self.last_request = None;
        self.last_reply = None;
    }

    fn next_exception(&mut self) -> Option<u8> {
        let code = *self.exceptions.front()?;
        self.unacked_exception = true;
        Some(code)
    }

    fn answer(&mut self, request: &Request) -> Option<Reply> {
        if let Some(signature) = self.rom_signature.take() {
            return Some(Reply::RomSignature(signature));
        }
        let Request::LongPoll { command, data, .. } = request else {
            return match self.next_exception() {
                Some(code) if self.real_time => Some(self.real_time_event(code)),
                Some(code) => Some(Reply::Exception(code)),
                None if self.real_time => None,
                None => Some(Reply::Exception(0)),
            };
        };
        if self.real_time
            && let Some(code) = self.next_exception()
        {
            return Some(self.real_time_event(code));
        }
        let bcd = |value: u64, bytes: usize| {
            Bcd::encode(value, bytes).unwrap_or_else(|_| vec![0x99; bytes])
        };
        match command {
            0x01 | 0x02 => {
                self.play_enabled = *command == 0x02;
                Some(Reply::Ack)
            }
            0x06 | 0x07 => {
                self.bill_acceptor = *command == 0x06;
                Some(Reply::Ack)
            }
            0x0E => match data.first() {
                Some(&on @ (0 | 1)) => {
                    self.real_time = on == 1;
                    Some(Reply::Ack)
                }
                _ => Some(Reply::Nack),
            },
            0x09 => Some(Reply::Ack),
            0x94 => {
                self.reset_handpay();
                Some(Reply::Ack)
            }
            0x51 => Some(Reply::Data {
                command: 0x51,
                payload: bcd(u64::from(self.games), 2),
            }),
            0x1F => {
                // Game id (2 ASCII), additional id (3 ASCII), denomination code, max bet,
                // progressive group, game options (2), paytable (6 ASCII), base % (4 ASCII).
                let mut payload = b"OPSIM".to_vec();
                payload.push(crate::data::denomination_code(self.denomination_cents).unwrap_or(0));
                payload.extend_from_slice(&[0x05, 0x00, 0x00, 0x00]);
                payload.extend_from_slice(b"OP0001");
                payload.extend_from_slice(b"9250");
                Some(Reply::Data {
                    command: 0x1F,
                    payload,
                })
            }
            0x21 => {
                let seed = u16::from_be_bytes([data.first().copied()?, data.get(1).copied()?]);
                self.rom_signature =
                    Some(crc16_kermit_seeded(seed, b"outpost simulated EGM program"));
                Some(Reply::Ack)
            }
            0x10..=0x17 | 0x1A => {
                let code = match command {
                    0x11 => meter::COIN_IN,
                    0x12 => meter::COIN_OUT,
                    0x14 => meter::JACKPOT,
                    0x15 => meter::GAMES_PLAYED,
                    0x16 => meter::GAMES_WON,
                    0x17 => meter::GAMES_LOST,
                    0x1A => meter::CURRENT_CREDITS,
                    _ => 0xFF,
                };
                Some(Reply::Data {
                    command: *command,
                    payload: bcd(self.meter(code), 4),
                })
            }
            0x2F => {
                let codes = data.get(3..)?;
                let game = Bcd::decode(data.get(1..3)?).ok()?.value;
                // A game the machine does not have: ignored, as an unsupported poll is.
                let game = u16::try_from(game).ok().filter(|g| *g <= self.games)?;
                let mut payload = vec![0u8];
                payload.extend_from_slice(data.get(1..3)?);
                for &code in codes {
                    let value = match game {
                        0 => self.meter(code),
                        // Money in and out of the machine as a whole is no game's.
                        game => self.game_meter(game, code),
                    };
                    payload.push(code);
                    payload.extend(bcd(value, meter_size(code)));
                }
                payload[0] = (payload.len() - 1) as u8;
                Some(Reply::Data {
                    command: 0x2F,
                    payload,
                })
            }
            0x1B => {
                // Handpay information: progressive group, level (0x40 = non-progressive), amount
                // (5 BCD), partial pay (2 BCD), reset id, 10 reserved bytes. All zero when none.
                let mut payload = vec![0u8; 20];
                if let Some(credits) = self.handpay {
                    payload[1] = 0x40;
                    payload[2..7].copy_from_slice(&bcd(credits, 5));
                }
                Some(Reply::Data {
                    command: 0x1B,
                    payload,
                })
            }
            0x1C => {
                // Coin in, coin out, drop, jackpot, games played, games won, slot door opened,
                // power resets: 4 BCD each.
                let mut payload = Vec::with_capacity(32);
                for code in [
                    meter::COIN_IN,
                    meter::COIN_OUT,
                    meter::TOTAL_BILLS,
                    meter::JACKPOT,
                    meter::GAMES_PLAYED,
                    meter::GAMES_WON,
                    0xFE,
                    0xFD,
                ] {
                    payload.extend(bcd(self.meter(code), 4));
                }
                Some(Reply::Data {
                    command: 0x1C,
                    payload,
                })
            }
            // Unsupported long polls are ignored, as real EGMs do.
            _ => None,
        }
    }
}

impl EgmModel {
    fn real_time_event(&self, code: u8) -> Reply {
        let mut data = vec![0u8; event_data_len(code)];
        if code == 0x4F
            && let Ok(credits) = Bcd::encode(self.meter(meter::TOTAL_BILLS) % 10_000, 2)
        {
            // Bill accepted: country code, denomination code, bills of this kind (4 BCD).
            data[0] = 0x00;
            data[1] = 0x01;
            data[4..6].copy_from_slice(&credits);
        }
        Reply::RealTimeEvent { code, data }
    }
}
