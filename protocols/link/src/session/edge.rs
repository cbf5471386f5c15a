//! The edge's side of one connection.
//!
//! Life: [`EdgeSession::start`] queues `Hello`; the hub's `Welcome` establishes the session (the
//! outbox adopts the hub's sequence if the hub is ahead, and trims what the hub holds); from then
//! on the session asks the outbox for events ([`EdgeOutput::Read`]) whenever the window has room
//! and no read is outstanding, sends each answer as one batch, and trims on every `Ack`.
//!
//! Invariants: the session trims only sequences the hub acknowledged, never beyond what it sent;
//! acknowledgements never go back; at most `window_events` are sent and not acknowledged; a
//! session that ended ([`EdgeOutput::Closed`]) produces nothing more.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::{SessionError, control_name};
use crate::{ControlFrame, Event, EventBatch, EventFrame, Hello};

/// Flow control and patience of the edge's sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EdgeConfig {
    /// Most events sent and not acknowledged.
    pub window_events: u64,
    /// Most events per batch.
    pub batch_max_events: usize,
    /// How long the hub may take to answer `Hello`.
    pub welcome_timeout: Duration,
}

/// What the driver must do for the session, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum EdgeOutput {
    /// Send on the control stream.
    Control(ControlFrame),
    /// Send on the events stream.
    Events(EventFrame),
    /// The hub holds every event up to this sequence and the outbox has assigned fewer: number
    /// new events after it (the edge lost its outbox; the hub's sequence is the truth).
    AdoptSequence(u64),
    /// The hub holds every event up to this sequence durably: the outbox may drop them.
    Trim(u64),
    /// Answer [`EdgeSession::handle_outbox`] with the outbox's durable events from `from` on, at
    /// most `max`, as soon as there is at least one.
    Read { from: u64, max: usize },
    /// Run this command (the command router makes sure it runs at most once).
    Run(crate::CommandRequest),
    /// The hub settled bulk payload `id`: stored, or refused for `refused`.
    BulkSettled { id: String, refused: Option<String> },
    /// The hub answered `Hello`: the session is up.
    Established {
        committed_seq: u64,
        clock_offset_ms: i64,
    },
    /// The hub holds less than this edge already trimmed: events it had acknowledged are gone
    /// from both (a hub restored from a backup). Reported, not repairable.
    HubLostEvents {
        hub_committed: u64,
        edge_trimmed: u64,
    },
    /// The session is over; drop the connection and start a new one later.
    Closed(SessionError),
}

#[derive(Debug)]
enum Phase {
    AwaitWelcome { since: Instant },
    Open(Open),
    Closed,
}

#[derive(Debug)]
struct Open {
    /// The hub's latest acknowledgement in this session.
    acked: u64,
    /// The next sequence to send.
    next: u64,
    /// A [`EdgeOutput::Read`] is outstanding.
    reading: bool,
}

/// One connection's worth of the edge's protocol.
#[derive(Debug)]
pub struct EdgeSession {
    config: EdgeConfig,
    /// What the outbox had trimmed when the session started.
    trimmed: u64,
    last_seq: u64,
    phase: Phase,
    outputs: VecDeque<EdgeOutput>,
}

impl EdgeSession {
    /// A session on a new connection: `hello` goes first; its `trimmed_seq` is the outbox's
    /// acknowledged sequence (everything up to it is gone from the outbox).
    pub fn start(config: EdgeConfig, hello: Hello, now: Instant) -> Self {
        let last_seq = hello.last_seq;
        let trimmed = hello.trimmed_seq;
        let mut outputs = VecDeque::new();
        outputs.push_back(EdgeOutput::Control(ControlFrame::Hello(hello)));
        Self {
            config,
            trimmed,
            last_seq,
            phase: Phase::AwaitWelcome { since: now },
            outputs,
        }
    }

    /// The next thing to do, if any.
    pub fn poll_output(&mut self) -> Option<EdgeOutput> {
        self.outputs.pop_front()
    }

    /// When [`EdgeSession::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.phase {
            Phase::AwaitWelcome { since } => Some(since + self.config.welcome_timeout),
            _ => None,
        }
    }

    pub fn is_closed(&self) -> bool {
        matches!(self.phase, Phase::Closed)
    }

    /// Whether the session is established (the hub answered `Hello`).
    pub fn is_open(&self) -> bool {
        matches!(self.phase, Phase::Open(_))
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if let Phase::AwaitWelcome { since } = self.phase
            && now >= since + self.config.welcome_timeout
        {
            self.close(SessionError::Timeout {
                expected: "Welcome",
                waited_ms: self.config.welcome_timeout.as_millis() as u64,
            });
        }
    }

    /// A frame from the hub's control stream.
    pub fn handle_control(&mut self, frame: ControlFrame) {
        match (&mut self.phase, frame) {
            (Phase::Closed, _) => {}
            (_, ControlFrame::Refused { reason }) => self.close(SessionError::Refused { reason }),
            (Phase::AwaitWelcome { .. }, ControlFrame::Welcome(welcome)) => {
                let committed = welcome.committed_seq;
                if committed > self.last_seq {
                    self.outputs.push_back(EdgeOutput::AdoptSequence(committed));
                }
                self.outputs.push_back(EdgeOutput::Trim(committed));
                if committed < self.trimmed {
                    self.outputs.push_back(EdgeOutput::HubLostEvents {
                        hub_committed: committed,
                        edge_trimmed: self.trimmed,
                    });
                }
                self.outputs.push_back(EdgeOutput::Established {
                    committed_seq: committed,
                    clock_offset_ms: welcome.clock_offset_ms,
                });
                self.phase = Phase::Open(Open {
                    acked: committed,
                    next: committed.max(self.trimmed) + 1,
                    reading: false,
                });
                self.read_if_room();
            }
            (Phase::AwaitWelcome { .. }, other) => self.close(SessionError::Unexpected {
                expected: "Welcome",
                got: control_name(&other),
            }),
            (Phase::Open(_), ControlFrame::Command(request)) => {
                self.outputs.push_back(EdgeOutput::Run(request));
            }
            (Phase::Open(_), ControlFrame::Ping { nonce }) => {
                self.outputs
                    .push_back(EdgeOutput::Control(ControlFrame::Pong { nonce }));
            }
            (Phase::Open(_), ControlFrame::Pong { .. }) => {}
            (Phase::Open(_), ControlFrame::BulkStored { id }) => {
                self.outputs
                    .push_back(EdgeOutput::BulkSettled { id, refused: None });
            }
            (Phase::Open(_), ControlFrame::BulkRefused { id, reason }) => {
                self.outputs.push_back(EdgeOutput::BulkSettled {
                    id,
                    refused: Some(reason),
                });
            }
            (Phase::Open(_), other) => self.close(SessionError::Unexpected {
                expected: "a hub control frame",
                got: control_name(&other),
            }),
        }
    }

    /// A frame from the hub's events stream.
    pub fn handle_events(&mut self, frame: EventFrame) {
        let Phase::Open(open) = &mut self.phase else {
            if !self.is_closed() {
                self.close(SessionError::Unexpected {
                    expected: "Welcome",
                    got: "an events frame",
                });
            }
            return;
        };
        match frame {
            EventFrame::Ack { committed_seq } => {
                let sent = open.next - 1;
                if committed_seq > sent {
                    return self.close(SessionError::AckBeyondSent {
                        ack: committed_seq,
                        sent,
                    });
                }
                if committed_seq < open.acked {
                    let before = open.acked;
                    return self.close(SessionError::AckWentBack {
                        before,
                        ack: committed_seq,
                    });
                }
                if committed_seq > open.acked {
                    open.acked = committed_seq;
                    self.outputs.push_back(EdgeOutput::Trim(committed_seq));
                    self.read_if_room();
                }
            }
            EventFrame::Batch(_) => self.close(SessionError::Unexpected {
                expected: "Ack",
                got: "a batch of events",
            }),
        }
    }

    /// The outbox's answer to [`EdgeOutput::Read`]: durable events, in order, from the sequence
    /// asked or later (the outbox may have trimmed the start).
    pub fn handle_outbox(&mut self, events: Vec<Event>) {
        let Phase::Open(open) = &mut self.phase else {
            return;
        };
        open.reading = false;
        let (Some(first), Some(last)) = (events.first(), events.last()) else {
            self.read_if_room();
            return;
        };
        if first.seq != open.next {
            // The outbox skipped sequences it should hold (tombstones keep shed events' places):
            // its storage lost events. Sending around the hole would make the loss look like a
            // transport fault; stop and say so instead.
            let (expected, found) = (open.next, first.seq);
            return self.close(SessionError::OutboxHole { expected, found });
        }
        open.next = last.seq + 1;
        self.outputs
            .push_back(EdgeOutput::Events(EventFrame::Batch(EventBatch { events })));
        self.read_if_room();
    }

    fn read_if_room(&mut self) {
        let Phase::Open(open) = &mut self.phase else {
            return;
        };
        let limit = open.acked + self.config.window_events;
        if open.reading || open.next > limit {
            return;
        }
        let room = (limit + 1 - open.next) as usize;
        open.reading = true;
        self.outputs.push_back(EdgeOutput::Read {
            from: open.next,
            max: self.config.batch_max_events.min(room).max(1),
        });
    }

    fn close(&mut self, error: SessionError) {
        self.phase = Phase::Closed;
        self.outputs.push_back(EdgeOutput::Closed(error));
    }
}
