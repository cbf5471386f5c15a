//! The host side of one SAS line, sans-IO: which frame to send next and what a reply means.
//! Time is passed in; nothing here sleeps or touches a port. The line actor sends the frames,
//! feeds replies through a [`ReplyDecoder`](crate::ReplyDecoder) and reports the outcome here.
//!
//! Rules (reference §3.3, §3.4, §4.2):
//! - A global sync poll (`80`) goes first, and again after a poll failed for good or a link loss.
//!   A line that takes over from a host that died ([`Line::resume`]) instead repeats that host's
//!   last general poll first: the EGM takes it as an implied NACK and sends its reply again, where
//!   a sync poll would acknowledge, blindly, a reply the dead host may never have stored.
//! - Each EGM is polled no more often than `min_interval` (200 ms), least recently polled first, so
//!   every EGM is polled regularly; queued long polls go before general polls.
//! - Never the same bytes twice in a row except as a deliberate retry: a poll identical to the last
//!   frame sent is preceded by a `80`, which implicitly acknowledges the last reply.
//! - A failed attempt (NACK, bad CRC, truncated, wrong echo, no reply) is retried with identical
//!   bytes at most `retries` times; then the poll fails, a sync poll follows, and after
//!   `link_down_after` consecutive failed polls the EGM's link is reported down (up again at its
//!   next good reply).
//! - BUSY backs the EGM off for `busy_backoff` and keeps the poll. A real-time event in reply to a
//!   long poll is reported and the long poll goes back to the front of the queue.
//! - Exceptions that call for a follow-up get it queued: 51 (handpay pending) → LP 1B; 70 (buffer
//!   overflow) and 7A (soft meters reset) → LP 1C (main meters).
//! - A poll queued *when quiet* ([`Line::enqueue_when_quiet`], meter readings) is the EGM's next
//!   poll after a general poll it answered with no activity (00), so exceptions raised before that
//!   answer are delivered before the reading. Its answer is *held* until the EGM's next general
//!   poll: answered 00 again, nothing happened between the two quiet answers, so the reading is
//!   reported (just before that 00) and counts exactly the events reported before it. Anything
//!   else first (an exception, a real-time event, a failed poll) may have happened before or after
//!   the reading: the reading is dropped and asked for again when quiet, keeping its first time.
//!   An EGM that never goes quiet is read anyway after `quiet_wait_max`, and that reading is
//!   reported at once (it may count an event reported after it).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::reply::{Expectation, Reply, ReplyError};
use crate::request::{Frame, Request};

/// Timing and retry policy of a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostConfig {
    pub min_interval: Duration,
    pub reply_timeout: Duration,
    pub retries: u8,
    pub busy_backoff: Duration,
    pub link_down_after: u32,
    /// The longest a poll queued when quiet waits for the EGM to go quiet.
    pub quiet_wait_max: Duration,
}

impl Default for HostConfig {
    fn default() -> Self {
        Self {
            min_interval: Duration::from_millis(200),
            reply_timeout: Duration::from_millis(40),
            retries: 2,
            busy_backoff: Duration::from_millis(500),
            link_down_after: 3,
            quiet_wait_max: Duration::from_secs(5),
        }
    }
}

/// A frame to put on the line, what may answer it, and by when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub frame: Frame,
    /// `None` for the global sync poll, which nobody answers.
    pub expectation: Option<Expectation>,
    pub deadline: Instant,
}

/// What the line learnt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostEvent {
    Exception {
        address: u8,
        code: u8,
    },
    Data {
        address: u8,
        command: u8,
        payload: Vec<u8>,
    },
    Acked {
        address: u8,
        command: u8,
    },
    RealTimeEvent {
        address: u8,
        code: u8,
        data: Vec<u8>,
    },
    /// LP 21's answer; `seed` is the seed of the last LP 21 sent to this EGM (the signature may
    /// come back in answer to a later poll).
    RomSignature {
        address: u8,
        seed: u16,
        signature: u16,
    },
    /// The poll failed after its retries.
    PollFailed {
        address: u8,
        request: Request,
        reason: ReplyError,
    },
    LinkDown {
        address: u8,
    },
    LinkUp {
        address: u8,
    },
}

impl HostEvent {
    /// The EGM the event is about.
    pub fn address(&self) -> u8 {
        match self {
            HostEvent::Exception { address, .. }
            | HostEvent::Data { address, .. }
            | HostEvent::Acked { address, .. }
            | HostEvent::RealTimeEvent { address, .. }
            | HostEvent::RomSignature { address, .. }
            | HostEvent::PollFailed { address, .. }
            | HostEvent::LinkDown { address }
            | HostEvent::LinkUp { address } => *address,
        }
    }
}

#[derive(Debug)]
struct Egm {
    address: u8,
    queue: VecDeque<Request>,
    last_polled: Option<Instant>,
    busy_until: Option<Instant>,
    failures: u32,
    link_up: bool,
    real_time: bool,
    /// Seed of the last LP 21 sent.
    rom_seed: u16,
    /// The last general poll was answered with no activity, and nothing was sent since.
    quiet: bool,
    /// A poll to send once quiet, and since when it waits.
    when_quiet: Option<(Request, Instant)>,
    /// The answer to a poll sent when quiet, until the next general poll says whether it stands.
    held: Option<Held>,
}

/// A reading waiting for the EGM's next quiet answer (see the module's rules).
#[derive(Debug)]
struct Held {
    event: HostEvent,
    request: Request,
    since: Instant,
}

#[derive(Debug)]
struct Outstanding {
    egm: usize,
    request: Request,
    attempt: u8,
    /// Sent when quiet, waiting since then: its answer is held.
    quiet_since: Option<Instant>,
}

/// One serial line with its EGMs.
#[derive(Debug)]
pub struct Line {
    config: HostConfig,
    egms: Vec<Egm>,
    needs_sync: bool,
    /// The EGM whose general poll goes first (see [`Line::resume`]).
    resume: Option<usize>,
    last_sent: Option<Vec<u8>>,
    outstanding: Option<Outstanding>,
}

impl Line {
    /// A line polling the EGMs at `addresses` (1-127).
    pub fn new(addresses: &[u8], config: HostConfig) -> Self {
        Self {
            config,
            egms: addresses
                .iter()
                .map(|&address| Egm {
                    address,
                    queue: VecDeque::new(),
                    last_polled: None,
                    busy_until: None,
                    failures: 0,
                    link_up: true,
                    real_time: false,
                    rom_seed: 0,
                    quiet: false,
                    when_quiet: None,
                    held: None,
                })
                .collect(),
            needs_sync: true,
            resume: None,
            last_sent: None,
            outstanding: None,
        }
    }

    /// Takes over from a host whose last frame on this line was a general poll to `address` and
    /// which may have died before it stored the reply: the first frame is that general poll
    /// again, with identical bytes. The EGM, still synchronised and still holding its reply
    /// unacknowledged, takes it as an implied NACK and sends the same reply again; an EGM that
    /// had moved on just answers a general poll. Unknown addresses are ignored (`false`), and
    /// the line starts with its sync poll as usual.
    ///
    /// What the caller must know: the dead host's last frame, recorded before it was sent. If the
    /// dead host had already stored the reply, it is reported again (at least once, never lost).
    pub fn resume(&mut self, address: u8) -> bool {
        match self.egms.iter().position(|e| e.address == address) {
            Some(index) => {
                self.resume = Some(index);
                self.needs_sync = false;
                true
            }
            None => false,
        }
    }

    /// Queues a long poll for the EGM it addresses (unknown addresses are ignored: `false`).
    pub fn enqueue(&mut self, request: Request) -> bool {
        match self
            .egms
            .iter_mut()
            .find(|e| e.address == request.address())
        {
            Some(egm) => {
                egm.queue.push_back(request);
                true
            }
            None => false,
        }
    }

    /// Queues a poll to send when the EGM has nothing left to say (see the module's rules); a
    /// newer one replaces one still waiting (it keeps its place in time). Unknown addresses are
    /// ignored (`false`).
    pub fn enqueue_when_quiet(&mut self, request: Request, now: Instant) -> bool {
        match self
            .egms
            .iter_mut()
            .find(|e| e.address == request.address())
        {
            Some(egm) => {
                let since = egm.when_quiet.as_ref().map_or(now, |(_, since)| *since);
                egm.when_quiet = Some((request, since));
                // Quiet must be said after this was asked for: an older answer predates whatever
                // happened since.
                egm.quiet = false;
                true
            }
            None => false,
        }
    }

    /// Tells the line that an EGM's real-time event reporting is on or off (after LP 0E).
    pub fn set_real_time(&mut self, address: u8, on: bool) {
        if let Some(egm) = self.egms.iter_mut().find(|e| e.address == address) {
            egm.real_time = on;
        }
    }

    pub fn link_up(&self, address: u8) -> Option<bool> {
        self.egms
            .iter()
            .find(|e| e.address == address)
            .map(|e| e.link_up)
    }

    /// The next frame to send at `now`, or `None` if the line must wait (a reply is outstanding,
    /// or no EGM may be polled yet: see [`Line::next_wakeup`]).
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Transmit> {
        if let Some(outstanding) = &self.outstanding {
            // A retry: identical bytes, deliberately.
            if outstanding.attempt > 0 {
                let request = outstanding.request.clone();
                let real_time = self.egms[outstanding.egm].real_time;
                return self.send(request, real_time, now);
            }
            return None;
        }
        if self.needs_sync {
            self.needs_sync = false;
            return self.send_sync(now);
        }
        if let Some(index) = self.resume.take() {
            let egm = &mut self.egms[index];
            egm.last_polled = Some(now);
            let request = Request::general_poll(egm.address);
            let real_time = egm.real_time;
            self.outstanding = Some(Outstanding {
                egm: index,
                request: request.clone(),
                attempt: 0,
                quiet_since: None,
            });
            return self.send(request, real_time, now);
        }
        let index = self.next_egm(now)?;
        let quiet_wait_max = self.config.quiet_wait_max;
        let egm = &mut self.egms[index];
        let due = egm
            .when_quiet
            .as_ref()
            .is_some_and(|(_, since)| egm.quiet || now.duration_since(*since) >= quiet_wait_max);
        let mut quiet_since = None;
        let request = match egm.queue.pop_front() {
            Some(request) => request,
            None if due => match egm.when_quiet.take() {
                Some((request, since)) => {
                    quiet_since = egm.quiet.then_some(since);
                    request
                }
                None => Request::general_poll(egm.address),
            },
            None => Request::general_poll(egm.address),
        };
        // Only the very next poll after a quiet answer counts as quiet.
        egm.quiet = false;
        let real_time = egm.real_time;
        if request.encode().ok().map(|f| f.bytes) == self.last_sent {
            // Identical to the last frame: the EGM would take it as an implied NACK.
            egm.queue.push_front(request);
            return self.send_sync(now);
        }
        egm.last_polled = Some(now);
        if let Request::LongPoll {
            command: crate::data::ROM_SIGNATURE,
            data,
            ..
        } = &request
            && let [high, low] = data[..]
        {
            egm.rom_seed = u16::from_be_bytes([high, low]);
        }
        self.outstanding = Some(Outstanding {
            egm: index,
            request: request.clone(),
            attempt: 0,
            quiet_since,
        });
        self.send(request, real_time, now)
    }

    /// When an EGM may next be polled (if nothing is outstanding).
    pub fn next_wakeup(&self) -> Option<Instant> {
        if self.outstanding.is_some() {
            return None;
        }
        self.egms.iter().filter_map(|e| self.ready_at(e)).min()
    }

    fn ready_at(&self, egm: &Egm) -> Option<Instant> {
        let after_poll = egm.last_polled.map(|t| t + self.config.min_interval);
        match (after_poll, egm.busy_until) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (Some(a), None) => Some(a),
            (None, Some(b)) => Some(b),
            (None, None) => None,
        }
    }

    fn next_egm(&self, now: Instant) -> Option<usize> {
        self.egms
            .iter()
            .enumerate()
            .filter(|(_, e)| self.ready_at(e).is_none_or(|t| t <= now))
            .min_by_key(|(_, e)| e.last_polled)
            .map(|(i, _)| i)
    }

    fn send_sync(&mut self, now: Instant) -> Option<Transmit> {
        let frame = Request::general_poll(0).encode().ok()?;
        self.last_sent = Some(frame.bytes.clone());
        Some(Transmit {
            frame,
            expectation: None,
            deadline: now,
        })
    }

    fn send(&mut self, request: Request, real_time: bool, now: Instant) -> Option<Transmit> {
        let frame = match request.encode() {
            Ok(frame) => frame,
            Err(_) => {
                // A request the codec refuses never reaches the line.
                self.outstanding = None;
                return None;
            }
        };
        self.last_sent = Some(frame.bytes.clone());
        Some(Transmit {
            frame,
            expectation: Expectation::for_request(&request, real_time),
            deadline: now + self.config.reply_timeout,
        })
    }

    /// A held reading that did not stand goes back to wait for quiet, unless a newer one waits.
    fn requeue_when_quiet(&mut self, index: usize, held: Held) {
        let egm = &mut self.egms[index];
        if egm.when_quiet.is_none() {
            egm.when_quiet = Some((held.request, held.since));
        }
    }

    /// The outcome of the outstanding poll (a decoder's result; `NoReply` after the deadline).
    pub fn handle_reply(&mut self, result: Result<Reply, ReplyError>) -> Vec<HostEvent> {
        let Some(mut outstanding) = self.outstanding.take() else {
            return Vec::new();
        };
        let index = outstanding.egm;
        let address = self.egms[index].address;
        let command = outstanding.request.command();
        let mut events = Vec::new();
        let reply = match result {
            Ok(Reply::Nack) => Err(ReplyError::Nacked),
            other => other,
        };
        let quiet =
            command.is_none() && matches!(reply, Ok(Reply::Exception(crate::data::NO_ACTIVITY)));
        self.egms[index].quiet = quiet;
        let settles = command.is_none()
            || matches!(reply, Ok(Reply::RealTimeEvent { .. }))
            || (reply.is_err() && outstanding.attempt >= self.config.retries);
        if settles && let Some(held) = self.egms[index].held.take() {
            if quiet {
                events.push(held.event);
            } else {
                self.requeue_when_quiet(index, held);
            }
        }
        match reply {
            Ok(reply) => {
                let egm = &mut self.egms[index];
                egm.failures = 0;
                if !egm.link_up {
                    egm.link_up = true;
                    events.push(HostEvent::LinkUp { address });
                }
                match reply {
                    Reply::Busy => {
                        egm.busy_until = egm.last_polled.map(|t| t + self.config.busy_backoff);
                        if command.is_some() {
                            egm.queue.push_front(outstanding.request);
                        }
                    }
                    Reply::Exception(code) => {
                        events.push(HostEvent::Exception { address, code });
                        match code {
                            0x51 => egm
                                .queue
                                .push_back(Request::long(address, crate::data::HANDPAY_INFO)),
                            0x70 | 0x7A => egm
                                .queue
                                .push_back(Request::long(address, crate::data::LEGACY_METERS)),
                            _ => {}
                        }
                    }
                    Reply::Ack => events.push(HostEvent::Acked {
                        address,
                        command: command.unwrap_or_default(),
                    }),
                    Reply::Data { command, payload } => {
                        let event = HostEvent::Data {
                            address,
                            command,
                            payload,
                        };
                        match outstanding.quiet_since {
                            Some(since) => {
                                egm.held = Some(Held {
                                    event,
                                    request: outstanding.request,
                                    since,
                                })
                            }
                            None => events.push(event),
                        }
                    }
                    Reply::RealTimeEvent { code, data } => {
                        events.push(HostEvent::RealTimeEvent {
                            address,
                            code,
                            data,
                        });
                        if command.is_some() {
                            egm.queue.push_front(outstanding.request);
                        }
                    }
                    Reply::RomSignature(signature) => {
                        events.push(HostEvent::RomSignature {
                            address,
                            seed: egm.rom_seed,
                            signature,
                        });
                        if command.is_some() && command != Some(crate::data::ROM_SIGNATURE) {
                            egm.queue.push_front(outstanding.request);
                        }
                    }
                    // Mapped to an error above.
                    Reply::Nack => {}
                }
            }
            Err(reason) => {
                if outstanding.attempt < self.config.retries {
                    outstanding.attempt += 1;
                    self.outstanding = Some(outstanding);
                    return events;
                }
                let egm = &mut self.egms[index];
                egm.failures += 1;
                events.push(HostEvent::PollFailed {
                    address,
                    request: outstanding.request,
                    reason,
                });
                if egm.failures >= self.config.link_down_after && egm.link_up {
                    egm.link_up = false;
                    events.push(HostEvent::LinkDown { address });
                }
                // So the EGM does not read the next poll as an implied NACK.
                self.needs_sync = true;
            }
        }
        events
    }
}
