//! The hub's side of one connection with an edge whose certificate the TLS handshake verified.
//!
//! Life: the edge's `Hello` (its id must be the certificate's) → [`HubOutput::Admit`]: the driver
//! looks up the committed sequence and calls [`HubSession::welcome`], which sends `Welcome`; then
//! each batch is checked and handed over as [`HubOutput::Commit`]; the driver answers each commit,
//! in order, with [`HubSession::handle_committed`], and only then is the edge acknowledged.
//!
//! Invariants: nothing is acknowledged that was not committed; acknowledgements never go back;
//! no batch starts beyond the next sequence the hub lacks (a hole means the stream is broken: the
//! session ends and the edge resends from the committed sequence; a repeat is harmless); at most
//! `max_commits_in_flight` commits are outstanding (the driver reads no further batch until
//! [`HubSession::wants_events`]).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::{SessionError, control_name};
use crate::{ControlFrame, Event, EventFrame, Hello, MAX_EVENT_BYTES, Welcome};

/// Patience and pipelining of the hub's sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HubConfig {
    /// How long an edge may take to send `Hello` after connecting.
    pub hello_timeout: Duration,
    /// Batches handed to the event log and not yet committed, at most.
    pub max_commits_in_flight: usize,
}

/// What the driver must do for the session, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum HubOutput {
    /// The edge introduced itself: record the handshake, look up its committed sequence, and call
    /// [`HubSession::welcome`].
    Admit(Hello),
    /// Send on the control stream.
    Control(ControlFrame),
    /// Send on the events stream.
    Events(EventFrame),
    /// Commit these events (the event log's [`super::Ledger`] drops duplicates); answer with
    /// [`HubSession::handle_committed`] in the order the commits were asked for.
    Commit(Vec<Event>),
    /// The edge recorded command `id` durably; it will run at most once.
    Delivered(String),
    /// The edge reported its outbox.
    Status(crate::EdgeStatus),
    /// The session is over: close the connection.
    Closed(SessionError),
}

#[derive(Debug)]
enum Phase {
    AwaitHello {
        since: Instant,
    },
    /// Waiting for [`HubSession::welcome`]; the edge trimmed up to this.
    Admitting {
        trimmed: u64,
    },
    Open(Open),
    Closed,
}

#[derive(Debug)]
struct Open {
    /// The next sequence this hub lacks from this session's point of view: a batch must start
    /// at or before it.
    expected: u64,
    /// The last sequence of the last batch of this session.
    last_batch_seq: Option<u64>,
    in_flight: usize,
    acked: u64,
}

/// One connection's worth of the hub's protocol.
#[derive(Debug)]
pub struct HubSession {
    config: HubConfig,
    /// The edge id of the client certificate.
    edge: String,
    phase: Phase,
    outputs: VecDeque<HubOutput>,
}

impl HubSession {
    pub fn new(config: HubConfig, certified_edge: &str, now: Instant) -> Self {
        Self {
            config,
            edge: certified_edge.to_owned(),
            phase: Phase::AwaitHello { since: now },
            outputs: VecDeque::new(),
        }
    }

    pub fn edge(&self) -> &str {
        &self.edge
    }

    pub fn poll_output(&mut self) -> Option<HubOutput> {
        self.outputs.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.phase {
            Phase::AwaitHello { since } => Some(since + self.config.hello_timeout),
            _ => None,
        }
    }

    pub fn is_closed(&self) -> bool {
        matches!(self.phase, Phase::Closed)
    }

    /// Whether the driver may read the next events frame (the pipeline has room).
    pub fn wants_events(&self) -> bool {
        match &self.phase {
            Phase::Open(open) => open.in_flight < self.config.max_commits_in_flight,
            Phase::Closed => false,
            _ => true,
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if let Phase::AwaitHello { since } = self.phase
            && now >= since + self.config.hello_timeout
        {
            self.close(SessionError::Timeout {
                expected: "Hello",
                waited_ms: self.config.hello_timeout.as_millis() as u64,
            });
        }
    }

    /// The driver's answer to [`HubOutput::Admit`]: every event up to `committed_seq` is stored.
    pub fn welcome(&mut self, committed_seq: u64, hub_wall_ms: i64, clock_offset_ms: i64) {
        let Phase::Admitting { trimmed } = self.phase else {
            return;
        };
        self.outputs
            .push_back(HubOutput::Control(ControlFrame::Welcome(Welcome {
                committed_seq,
                hub_wall_ms,
                clock_offset_ms,
            })));
        self.phase = Phase::Open(Open {
            expected: committed_seq.max(trimmed) + 1,
            last_batch_seq: None,
            in_flight: 0,
            acked: committed_seq,
        });
    }

    /// A frame from the edge's control stream.
    pub fn handle_control(&mut self, frame: ControlFrame) {
        match (&self.phase, frame) {
            (Phase::Closed, _) => {}
            (Phase::AwaitHello { .. }, ControlFrame::Hello(hello)) => {
                if hello.edge_id != self.edge {
                    return self.close(SessionError::IdMismatch {
                        claimed: hello.edge_id,
                        certified: self.edge.clone(),
                    });
                }
                self.phase = Phase::Admitting {
                    trimmed: hello.trimmed_seq,
                };
                self.outputs.push_back(HubOutput::Admit(hello));
            }
            (Phase::AwaitHello { .. }, other) => self.close(SessionError::Unexpected {
                expected: "Hello",
                got: control_name(&other),
            }),
            (Phase::Admitting { .. } | Phase::Open(_), ControlFrame::Ping { nonce }) => {
                self.outputs
                    .push_back(HubOutput::Control(ControlFrame::Pong { nonce }));
            }
            (Phase::Admitting { .. } | Phase::Open(_), ControlFrame::Pong { .. }) => {}
            (Phase::Open(_), ControlFrame::CommandAccepted { id }) => {
                self.outputs.push_back(HubOutput::Delivered(id));
            }
            (Phase::Open(_), ControlFrame::Status(status)) => {
                self.outputs.push_back(HubOutput::Status(status));
            }
            (_, other) => self.close(SessionError::Unexpected {
                expected: "an edge control frame",
                got: control_name(&other),
            }),
        }
    }

    /// A frame from the edge's events stream.
    pub fn handle_events(&mut self, frame: EventFrame) {
        if self.is_closed() {
            return;
        }
        let Phase::Open(open) = &mut self.phase else {
            return self.close(SessionError::Unexpected {
                expected: "Hello",
                got: "an events frame",
            });
        };
        let events = match frame {
            EventFrame::Batch(batch) => batch.events,
            EventFrame::Ack { .. } => {
                return self.close(SessionError::Unexpected {
                    expected: "a batch",
                    got: "Ack",
                });
            }
        };
        let (Some(first), Some(last)) = (events.first(), events.last()) else {
            return self.close(SessionError::BatchNotContiguous { seq: 0 });
        };
        let (first, last) = (first.seq, last.seq);
        if let Some(at) = events.windows(2).find(|w| w[1].seq != w[0].seq + 1) {
            let seq = at[1].seq;
            return self.close(SessionError::BatchNotContiguous { seq });
        }
        if first > open.expected {
            let expected = open.expected;
            return self.close(SessionError::BatchSkips { first, expected });
        }
        if let Some(event) = events
            .iter()
            .find(|e| 4 + crate::encode_len(*e) > MAX_EVENT_BYTES)
        {
            let error = SessionError::EventTooLarge {
                seq: event.seq,
                bytes: 4 + crate::encode_len(event),
                limit: MAX_EVENT_BYTES,
            };
            return self.close(error);
        }
        open.expected = open.expected.max(last + 1);
        open.last_batch_seq = Some(last.max(open.last_batch_seq.unwrap_or(0)));
        open.in_flight += 1;
        self.outputs.push_back(HubOutput::Commit(events));
    }

    /// The event log's answer to the oldest outstanding [`HubOutput::Commit`]: the edge's
    /// high-water mark after it.
    pub fn handle_committed(&mut self, committed_seq: u64) {
        let Phase::Open(open) = &mut self.phase else {
            return;
        };
        open.in_flight = open.in_flight.saturating_sub(1);
        // The log's mark may be beyond what this session sent (an older session of the same edge,
        // not yet noticed dead, committed more): acknowledge only what this edge sent here, which
        // is all it can trim. Never go back.
        let sent = open.last_batch_seq.unwrap_or(open.acked);
        open.acked = open.acked.max(committed_seq.min(sent));
        let ack = open.acked;
        self.outputs
            .push_back(HubOutput::Events(EventFrame::Ack { committed_seq: ack }));
    }

    /// Ends the session from the driver's side (the event log failed, the edge was revoked).
    pub fn abort(&mut self, error: SessionError) {
        if !self.is_closed() {
            self.close(error);
        }
    }

    fn close(&mut self, error: SessionError) {
        self.phase = Phase::Closed;
        self.outputs.push_back(HubOutput::Closed(error));
    }
}
