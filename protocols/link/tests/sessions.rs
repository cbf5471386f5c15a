//! The two sessions, one rule at a time (the deterministic simulation combines them under faults).

#![allow(clippy::unwrap_used)] // In tests a panic is a failed test with its message.

use std::time::{Duration, Instant};

use outpost_link::session::{
    EdgeConfig, EdgeOutput, EdgeSession, HubConfig, HubOutput, HubSession, Ledger, SessionError,
};
use outpost_link::{
    ControlFrame, Event, EventBatch, EventBody, EventClass, EventFrame, Hello, Welcome,
};

fn event(seq: u64) -> Event {
    Event {
        seq,
        device: "d".into(),
        class: EventClass::Money,
        wall_us: 0,
        mono_us: 0,
        boot_id: 1,
        body: EventBody::Synthetic { payload: vec![1] },
    }
}

fn events(seqs: std::ops::RangeInclusive<u64>) -> Vec<Event> {
    seqs.map(event).collect()
}

fn hello(last_seq: u64, trimmed_seq: u64) -> Hello {
    Hello {
        edge_id: "edge-1".into(),
        boot_id: 1,
        wall_ms: 0,
        last_seq,
        trimmed_seq,
        devices: Vec::new(),
        software: "test".into(),
    }
}

fn edge(last_seq: u64, trimmed: u64, window: u64) -> EdgeSession {
    let config = EdgeConfig {
        window_events: window,
        batch_max_events: 4,
        welcome_timeout: Duration::from_secs(10),
    };
    EdgeSession::start(config, hello(last_seq, trimmed), Instant::now())
}

fn welcome(committed_seq: u64) -> ControlFrame {
    ControlFrame::Welcome(Welcome {
        committed_seq,
        hub_wall_ms: 0,
        clock_offset_ms: 0,
    })
}

fn drain_edge(session: &mut EdgeSession) -> Vec<EdgeOutput> {
    std::iter::from_fn(|| session.poll_output()).collect()
}

fn hub(committed: u64, trimmed: u64) -> (HubSession, Vec<HubOutput>) {
    let config = HubConfig {
        hello_timeout: Duration::from_secs(10),
        max_commits_in_flight: 2,
    };
    let mut session = HubSession::new(config, "edge-1", Instant::now());
    session.handle_control(ControlFrame::Hello(hello(50, trimmed)));
    assert!(matches!(session.poll_output(), Some(HubOutput::Admit(_))));
    session.welcome(committed, 0, 0);
    let out = std::iter::from_fn(|| session.poll_output()).collect();
    (session, out)
}

fn batch(seqs: std::ops::RangeInclusive<u64>) -> EventFrame {
    EventFrame::Batch(EventBatch {
        events: events(seqs),
    })
}

#[test]
fn the_edge_sends_hello_then_reads_from_the_first_sequence_the_hub_lacks() {
    let mut session = edge(30, 10, 100);
    assert!(matches!(
        drain_edge(&mut session)[..],
        [EdgeOutput::Control(ControlFrame::Hello(_))]
    ));
    session.handle_control(welcome(20));
    assert_eq!(
        drain_edge(&mut session),
        vec![
            EdgeOutput::Trim(20),
            EdgeOutput::Established {
                committed_seq: 20,
                clock_offset_ms: 0
            },
            EdgeOutput::Read { from: 21, max: 4 },
        ]
    );
}

#[test]
fn the_window_limits_what_is_sent_before_an_ack() {
    let mut session = edge(100, 0, 5);
    session.handle_control(welcome(0));
    drain_edge(&mut session);
    session.handle_outbox(events(1..=4));
    let out = drain_edge(&mut session);
    assert_eq!(out.last(), Some(&EdgeOutput::Read { from: 5, max: 1 }));
    session.handle_outbox(events(5..=5));
    let out = drain_edge(&mut session);
    assert_eq!(out.len(), 1, "the window is full: no further read: {out:?}");
    session.handle_events(EventFrame::Ack { committed_seq: 3 });
    assert_eq!(
        drain_edge(&mut session),
        vec![EdgeOutput::Trim(3), EdgeOutput::Read { from: 6, max: 3 }]
    );
}

#[test]
fn an_ack_beyond_what_was_sent_or_going_back_ends_the_session_without_trimming() {
    let mut session = edge(10, 0, 100);
    session.handle_control(welcome(0));
    drain_edge(&mut session);
    session.handle_outbox(events(1..=4));
    drain_edge(&mut session);
    session.handle_events(EventFrame::Ack { committed_seq: 9 });
    assert_eq!(
        drain_edge(&mut session),
        vec![EdgeOutput::Closed(SessionError::AckBeyondSent {
            ack: 9,
            sent: 4
        })]
    );

    let mut session = edge(10, 0, 100);
    session.handle_control(welcome(0));
    session.handle_outbox(events(1..=4));
    session.handle_events(EventFrame::Ack { committed_seq: 3 });
    drain_edge(&mut session);
    session.handle_events(EventFrame::Ack { committed_seq: 2 });
    assert_eq!(
        drain_edge(&mut session),
        vec![EdgeOutput::Closed(SessionError::AckWentBack {
            before: 3,
            ack: 2
        })]
    );
    session.handle_events(EventFrame::Ack { committed_seq: 4 });
    assert_eq!(
        drain_edge(&mut session),
        vec![],
        "a closed session does nothing"
    );
}

#[test]
fn an_edge_that_lost_its_outbox_continues_after_the_hubs_sequence() {
    let mut session = edge(0, 0, 100);
    drain_edge(&mut session);
    session.handle_control(welcome(20));
    let out = drain_edge(&mut session);
    assert_eq!(out[0], EdgeOutput::AdoptSequence(20));
    assert_eq!(out.last(), Some(&EdgeOutput::Read { from: 21, max: 4 }));
}

#[test]
fn a_hole_in_the_outbox_stops_the_session_instead_of_being_sent_around() {
    let mut session = edge(10, 0, 100);
    session.handle_control(welcome(0));
    drain_edge(&mut session);
    session.handle_outbox(events(3..=5));
    assert_eq!(
        drain_edge(&mut session),
        vec![EdgeOutput::Closed(SessionError::OutboxHole {
            expected: 1,
            found: 3
        })]
    );
}

#[test]
fn no_welcome_in_time_ends_the_session() {
    let now = Instant::now();
    let config = EdgeConfig {
        window_events: 10,
        batch_max_events: 4,
        welcome_timeout: Duration::from_secs(10),
    };
    let mut session = EdgeSession::start(config, hello(0, 0), now);
    assert_eq!(session.poll_timeout(), Some(now + Duration::from_secs(10)));
    session.handle_timeout(now + Duration::from_secs(9));
    assert!(!session.is_closed());
    session.handle_timeout(now + Duration::from_secs(10));
    assert!(session.is_closed());
}

#[test]
fn the_hub_acknowledges_only_after_the_commit_and_never_beyond_what_the_session_sent() {
    let (mut session, out) = hub(10, 0);
    assert!(matches!(
        out[..],
        [HubOutput::Control(ControlFrame::Welcome(_))]
    ));
    session.handle_events(batch(11..=14));
    assert_eq!(
        session.poll_output(),
        Some(HubOutput::Commit(events(11..=14)))
    );
    assert_eq!(session.poll_output(), None, "no ack before the commit");
    // An older session of the same edge moved the log further: ack only what this one sent.
    session.handle_committed(30);
    assert_eq!(
        session.poll_output(),
        Some(HubOutput::Events(EventFrame::Ack { committed_seq: 14 }))
    );
}

#[test]
fn a_batch_that_skips_ahead_ends_the_hub_session_and_a_repeat_is_harmless() {
    let (mut session, _) = hub(10, 0);
    session.handle_events(batch(11..=12));
    session.poll_output();
    session.handle_events(batch(12..=13));
    assert_eq!(
        session.poll_output(),
        Some(HubOutput::Commit(events(12..=13)))
    );
    session.handle_events(batch(15..=16));
    assert_eq!(
        session.poll_output(),
        Some(HubOutput::Closed(SessionError::BatchSkips {
            first: 15,
            expected: 14
        }))
    );
}

#[test]
fn the_first_batch_may_skip_only_what_the_edge_declared_trimmed() {
    // A hub restored from a backup (committed 5) meets an edge that trimmed up to 10.
    let (mut session, _) = hub(5, 10);
    session.handle_events(batch(11..=12));
    assert_eq!(
        session.poll_output(),
        Some(HubOutput::Commit(events(11..=12)))
    );
    let mut ledger = Ledger::new(5);
    let admission = ledger.admit(events(11..=12));
    assert_eq!(admission.missing(), 5, "the gap is counted, not silent");

    let (mut session, _) = hub(5, 0);
    session.handle_events(batch(11..=12));
    assert!(matches!(
        session.poll_output(),
        Some(HubOutput::Closed(SessionError::BatchSkips { .. }))
    ));
}

#[test]
fn the_hub_refuses_a_hello_for_another_edge_and_a_batch_before_hello() {
    let config = HubConfig {
        hello_timeout: Duration::from_secs(10),
        max_commits_in_flight: 2,
    };
    let mut session = HubSession::new(config, "edge-2", Instant::now());
    session.handle_control(ControlFrame::Hello(hello(0, 0)));
    assert!(matches!(
        session.poll_output(),
        Some(HubOutput::Closed(SessionError::IdMismatch { .. }))
    ));
    let mut session = HubSession::new(config, "edge-1", Instant::now());
    session.handle_events(batch(1..=1));
    assert!(matches!(
        session.poll_output(),
        Some(HubOutput::Closed(SessionError::Unexpected { .. }))
    ));
}

#[test]
fn the_hub_pipeline_holds_at_most_its_limit_of_commits() {
    let (mut session, _) = hub(0, 0);
    session.handle_events(batch(1..=1));
    session.handle_events(batch(2..=2));
    assert!(!session.wants_events());
    session.handle_committed(1);
    assert!(session.wants_events());
}

#[test]
fn the_ledger_drops_duplicates_and_counts_gaps() {
    let mut ledger = Ledger::new(3);
    let admission = ledger.admit(events(2..=5));
    assert_eq!(
        (
            admission.duplicates,
            admission.accepted.len(),
            admission.committed
        ),
        (2, 2, 5)
    );
    let admission = ledger.admit(vec![event(8), event(9)]);
    assert_eq!(admission.missing(), 2);
    assert_eq!(ledger.committed(), 9);
}
