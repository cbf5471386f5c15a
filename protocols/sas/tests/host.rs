//! The host state machine on a virtual clock: sync, pacing, implied-ACK discipline, retries,
//! BUSY, real-time events, exception follow-ups, link down and up.

#![allow(clippy::unwrap_used)] // In tests a panic is a failed test with its message.

use std::time::{Duration, Instant};

use outpost_sas::{HostConfig, HostEvent, Line, Reply, ReplyError, Request};

fn hex(t: &outpost_sas::Transmit) -> String {
    hex::encode_upper(&t.frame.bytes)
}

/// Runs the line for `span`, answering every poll with `answer`, and returns what was sent when.
fn run(
    line: &mut Line,
    start: Instant,
    span: Duration,
    mut answer: impl FnMut(&Request) -> Result<Reply, ReplyError>,
) -> Vec<(Duration, String)> {
    let mut sent = Vec::new();
    let mut now = start;
    while now < start + span {
        match line.poll_transmit(now) {
            Some(t) => {
                sent.push((now - start, hex(&t)));
                if t.expectation.is_some() {
                    let request = Request::decode(&t.frame.bytes).unwrap();
                    now += Duration::from_millis(10);
                    line.handle_reply(answer(&request));
                }
                now += Duration::from_millis(1);
            }
            None => {
                now = line
                    .next_wakeup()
                    .unwrap_or(now + Duration::from_millis(1))
                    .max(now + Duration::from_millis(1))
            }
        }
    }
    sent
}

#[test]
fn the_line_starts_with_a_global_sync_poll() {
    let mut line = Line::new(&[1], HostConfig::default());
    assert_eq!(hex(&line.poll_transmit(Instant::now()).unwrap()), "80");
}

#[test]
fn each_egm_is_polled_no_faster_than_every_200_ms_and_never_twice_identically_in_a_row() {
    let mut line = Line::new(&[1], HostConfig::default());
    let sent = run(&mut line, Instant::now(), Duration::from_secs(2), |_| {
        Ok(Reply::Exception(0))
    });
    let polls: Vec<Duration> = sent
        .iter()
        .filter(|(_, f)| f == "81")
        .map(|(t, _)| *t)
        .collect();
    assert!(polls.len() >= 8 && polls.len() <= 11, "{sent:?}");
    for pair in polls.windows(2) {
        assert!(pair[1] - pair[0] >= Duration::from_millis(200), "{sent:?}");
    }
    for pair in sent.windows(2) {
        assert_ne!(
            pair[0].1, pair[1].1,
            "identical frames back to back: {sent:?}"
        );
    }
}

#[test]
fn two_egms_share_the_line_fairly() {
    let mut line = Line::new(&[1, 2], HostConfig::default());
    let sent = run(&mut line, Instant::now(), Duration::from_secs(2), |_| {
        Ok(Reply::Exception(0))
    });
    let one = sent.iter().filter(|(_, f)| f == "81").count();
    let two = sent.iter().filter(|(_, f)| f == "82").count();
    assert!(
        one >= 8 && two >= 8 && one.abs_diff(two) <= 1,
        "{one} vs {two}: {sent:?}"
    );
}

#[test]
fn a_nacked_poll_is_retried_with_identical_bytes_twice_then_fails_and_resyncs() {
    let mut line = Line::new(&[1], HostConfig::default());
    let now = Instant::now();
    line.poll_transmit(now); // 80
    line.enqueue(Request::long(1, 0x1A));
    let first = hex(&line.poll_transmit(now).unwrap());
    assert_eq!(first, "011A");
    assert!(line.handle_reply(Ok(Reply::Nack)).is_empty());
    assert_eq!(hex(&line.poll_transmit(now).unwrap()), "011A");
    assert!(
        line.handle_reply(Err(ReplyError::BadCrc { len: 8 }))
            .is_empty()
    );
    assert_eq!(hex(&line.poll_transmit(now).unwrap()), "011A");
    let events = line.handle_reply(Err(ReplyError::NoReply { skipped: 0 }));
    assert!(
        matches!(
            events.as_slice(),
            [HostEvent::PollFailed { address: 1, .. }]
        ),
        "{events:?}"
    );
    assert_eq!(
        hex(&line.poll_transmit(now).unwrap()),
        "80",
        "a sync poll follows a failed poll"
    );
}

#[test]
fn busy_backs_off_and_keeps_the_poll() {
    let config = HostConfig::default();
    let mut line = Line::new(&[1], config);
    let now = Instant::now();
    line.poll_transmit(now);
    line.enqueue(Request::long(1, 0x1A));
    line.poll_transmit(now).unwrap();
    line.handle_reply(Ok(Reply::Busy));
    assert!(
        line.poll_transmit(now + Duration::from_millis(300))
            .is_none(),
        "backing off"
    );
    let again = line.poll_transmit(now + config.busy_backoff).unwrap();
    assert_eq!(
        hex(&again),
        "80",
        "the same poll again needs a sync poll before it"
    );
    assert_eq!(
        hex(&line.poll_transmit(now + config.busy_backoff).unwrap()),
        "011A"
    );
}

#[test]
fn a_real_time_event_in_reply_to_a_long_poll_is_reported_and_the_poll_requeued() {
    let mut line = Line::new(&[1], HostConfig::default());
    let now = Instant::now();
    line.poll_transmit(now);
    line.enqueue(Request::long(1, 0x1A));
    line.poll_transmit(now).unwrap();
    let events = line.handle_reply(Ok(Reply::RealTimeEvent {
        code: 0x51,
        data: vec![],
    }));
    assert_eq!(
        events,
        [HostEvent::RealTimeEvent {
            address: 1,
            code: 0x51,
            data: vec![]
        }]
    );
    let later = now + Duration::from_millis(200);
    assert_eq!(hex(&line.poll_transmit(later).unwrap()), "80");
    assert_eq!(hex(&line.poll_transmit(later).unwrap()), "011A");
}

#[test]
fn handpay_pending_is_followed_by_lp_1b() {
    let mut line = Line::new(&[1], HostConfig::default());
    let now = Instant::now();
    line.poll_transmit(now);
    assert_eq!(hex(&line.poll_transmit(now).unwrap()), "81");
    let events = line.handle_reply(Ok(Reply::Exception(0x51)));
    assert_eq!(
        events,
        [HostEvent::Exception {
            address: 1,
            code: 0x51
        }]
    );
    assert_eq!(
        hex(&line
            .poll_transmit(now + Duration::from_millis(200))
            .unwrap()),
        "011B"
    );
}

#[test]
fn an_egm_that_stops_answering_goes_link_down_and_comes_back_up() {
    let mut line = Line::new(&[1], HostConfig::default());
    let start = Instant::now();
    let mut answering = false;
    let mut events = Vec::new();
    let mut now = start;
    while now < start + Duration::from_secs(5) {
        if now > start + Duration::from_secs(3) {
            answering = true;
        }
        match line.poll_transmit(now) {
            Some(t) if t.expectation.is_some() => {
                now += Duration::from_millis(40);
                let result = if answering {
                    Ok(Reply::Exception(0))
                } else {
                    Err(ReplyError::NoReply { skipped: 0 })
                };
                events.extend(line.handle_reply(result));
            }
            Some(_) => now += Duration::from_millis(1),
            None => {
                now = line
                    .next_wakeup()
                    .unwrap_or(now)
                    .max(now + Duration::from_millis(1))
            }
        }
    }
    let down = events
        .iter()
        .position(|e| *e == HostEvent::LinkDown { address: 1 })
        .expect("link down");
    let up = events
        .iter()
        .position(|e| *e == HostEvent::LinkUp { address: 1 })
        .expect("link up");
    assert!(down < up);
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, HostEvent::PollFailed { .. }))
            .take(3)
            .count(),
        3
    );
    assert_eq!(line.link_up(1), Some(true));
}
