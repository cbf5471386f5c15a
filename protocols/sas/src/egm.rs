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

use std::collections::{BTreeMap, VecDeque};

use crate::bcd::Bcd;
use crate::crc::crc16_kermit_seeded;
use crate::meters::meter_size;
use crate::reply::Reply;
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
}

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
        }
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
    }

    /// Queues an exception; on overflow the oldest is dropped and 70 reported.
    pub fn raise(&mut self, code: u8) {
        if self.exceptions.len() >= EXCEPTION_QUEUE {
            self.exceptions.pop_front();
            if self.exceptions.back() != Some(&0x70) {
                self.exceptions.pop_front();
                self.exceptions.push_back(0x70);
            }
        }
        self.exceptions.push_back(code);
    }

    /// A game of `bet` credits paying `win`: meters move, 7E and 7F are raised.
    pub fn play_game(&mut self, bet: u64, win: u64) {
        if !self.play_enabled {
            return;
        }
        let credits = self.meter(meter::CURRENT_CREDITS);
        let bet = bet.min(credits);
        self.meters
            .insert(meter::CURRENT_CREDITS, credits - bet + win);
        self.add(meter::COIN_IN, bet);
        self.add(meter::COIN_OUT, win);
        self.add(meter::GAMES_PLAYED, 1);
        self.add(
            if win > 0 {
                meter::GAMES_WON
            } else {
                meter::GAMES_LOST
            },
            1,
        );
        self.raise(0x7E);
        self.raise(0x7F);
    }

    /// A bill of `credits` accepted.
    pub fn insert_bill(&mut self, credits: u64) {
        if !self.bill_acceptor {
            return;
        }
        self.add(meter::CURRENT_CREDITS, credits);
        self.add(meter::TOTAL_BILLS, credits);
        self.raise(0x4F);
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
            self.exceptions.pop_front();
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
                Some(code) if self.real_time => Some(Reply::RealTimeEvent { code, data: vec![] }),
                Some(code) => Some(Reply::Exception(code)),
                None if self.real_time => None,
                None => Some(Reply::Exception(0)),
            };
        };
        if self.real_time
            && let Some(code) = self.next_exception()
        {
            return Some(Reply::RealTimeEvent { code, data: vec![] });
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
            0x09 | 0x94 => Some(Reply::Ack),
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
                let mut payload = vec![0u8];
                payload.extend_from_slice(data.get(1..3)?);
                for &code in codes {
                    payload.push(code);
                    payload.extend(bcd(self.meter(code), meter_size(code)));
                }
                payload[0] = (payload.len() - 1) as u8;
                Some(Reply::Data {
                    command: 0x2F,
                    payload,
                })
            }
            0x1B => {
                // Handpay information: progressive group, level, amount (5 BCD), partial pay
                // (2 BCD), reset id, 10 reserved bytes. The model keeps no handpay: all zero.
                Some(Reply::Data {
                    command: 0x1B,
                    payload: vec![0; 20],
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
