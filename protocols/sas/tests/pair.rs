//! The host line state machine against the EGM model, in memory, on a virtual clock: meters,
//! exceptions once each and in order, overflow, sync, implied NACK, NACK on a bad CRC.

#![allow(clippy::unwrap_used)] // In tests a panic is a failed test with its message.

use std::time::{Duration, Instant};

use outpost_sas::egm::{EXCEPTION_QUEUE, EgmModel, meter};
use outpost_sas::meters::selected_meters;
use outpost_sas::{HostConfig, HostEvent, Line, ReplyDecoder, Request};

/// Runs host and EGMs against each other for `span` of virtual time; returns the host's events.
fn run(line: &mut Line, egms: &mut [EgmModel], span: Duration) -> Vec<HostEvent> {
    run_with(line, egms, span, |_, _| {})
}

/// [`run`], calling `before` with each frame the host sends before the EGMs see it.
fn run_with(
    line: &mut Line,
    egms: &mut [EgmModel],
    span: Duration,
    mut before: impl FnMut(&[u8], &mut [EgmModel]),
) -> Vec<HostEvent> {
    let start = Instant::now();
    let mut now = start;
    let mut events = Vec::new();
    while now < start + span {
        match line.poll_transmit(now) {
            Some(t) => {
                before(&t.frame.bytes, egms);
                let replies: Vec<Vec<u8>> = egms
                    .iter_mut()
                    .filter_map(|e| e.handle(&t.frame.bytes))
                    .collect();
                if let Some(expectation) = t.expectation {
                    let mut decoder = ReplyDecoder::new(expectation);
                    for reply in &replies {
                        decoder.feed(reply);
                    }
                    events.extend(line.handle_reply(decoder.finish()));
                    now += Duration::from_millis(20);
                }
                now += Duration::from_millis(1);
            }
            None => {
                now = line
                    .next_wakeup()
                    .unwrap_or(now)
                    .max(now + Duration::from_millis(1))
            }
        }
    }
    events
}

fn assert_no_failed_polls(events: &[HostEvent]) {
    assert!(
        events
            .iter()
            .all(|e| !matches!(e, HostEvent::PollFailed { .. })),
        "{events:?}"
    );
}

#[test]
fn the_host_reads_the_egms_meters_through_lp_2f() {
    let mut egm = EgmModel::new(1);
    egm.insert_bill(100);
    egm.play_game(5, 0);
    egm.play_game(5, 20);
    let mut line = Line::new(&[1], HostConfig::default());
    line.enqueue(
        Request::selected_meters(
            1,
            0,
            &[meter::COIN_IN, meter::COIN_OUT, meter::CURRENT_CREDITS],
        )
        .unwrap(),
    );
    let events = run(
        &mut line,
        std::slice::from_mut(&mut egm),
        Duration::from_secs(1),
    );
    let payload = events
        .iter()
        .find_map(|e| match e {
            HostEvent::Data {
                command: 0x2F,
                payload,
                ..
            } => Some(payload.clone()),
            _ => None,
        })
        .expect("2F answered");
    let read = selected_meters(&payload, &[0x00, 0x01, 0x0C]).unwrap();
    let values: Vec<u64> = read.meters.iter().map(|(_, v)| v.value).collect();
    assert_eq!(values, [10, 20, 110]);
}

#[test]
fn each_exception_reaches_the_host_once_and_in_order() {
    let mut egm = EgmModel::new(1);
    for code in [0x11, 0x12, 0x51] {
        egm.raise(code);
    }
    let mut line = Line::new(&[1], HostConfig::default());
    let events = run(
        &mut line,
        std::slice::from_mut(&mut egm),
        Duration::from_secs(3),
    );
    let codes: Vec<u8> = events
        .iter()
        .filter_map(|e| match e {
            HostEvent::Exception { code, .. } if *code != 0 => Some(*code),
            _ => None,
        })
        .collect();
    assert_eq!(codes, [0x11, 0x12, 0x51]);
    assert_eq!(egm.pending_exceptions(), 0);
    // 51 (handpay pending) made the host ask for the handpay information (LP 1B).
    assert!(
        events
            .iter()
            .any(|e| matches!(e, HostEvent::Data { command: 0x1B, .. })),
        "{events:?}"
    );
    assert_no_failed_polls(&events);
}

#[test]
fn an_exception_storm_keeps_twenty_and_reports_overflow() {
    let mut egm = EgmModel::new(1);
    for _ in 0..25 {
        egm.raise(0x2B);
    }
    assert_eq!(egm.pending_exceptions(), EXCEPTION_QUEUE);
    let mut line = Line::new(&[1], HostConfig::default());
    let events = run(
        &mut line,
        std::slice::from_mut(&mut egm),
        Duration::from_secs(10),
    );
    assert!(events.contains(&HostEvent::Exception {
        address: 1,
        code: 0x70
    }));
}

#[test]
fn an_egm_ignores_polls_until_it_has_seen_a_sync_poll() {
    let mut egm = EgmModel::new(1);
    assert_eq!(egm.handle(&[0x81]), None);
    assert_eq!(egm.handle(&[0x80]), None);
    assert_eq!(egm.handle(&[0x81]), Some(vec![0x00]));
}

#[test]
fn a_repeated_poll_is_an_implied_nack_and_gets_the_same_reply() {
    let mut egm = EgmModel::new(1);
    egm.handle(&[0x80]);
    egm.raise(0x11);
    egm.raise(0x12);
    assert_eq!(egm.handle(&[0x81]), Some(vec![0x11]));
    assert_eq!(
        egm.handle(&[0x81]),
        Some(vec![0x11]),
        "implied NACK: same answer"
    );
    egm.handle(&[0x80]);
    assert_eq!(
        egm.handle(&[0x81]),
        Some(vec![0x12]),
        "acknowledged by the poll in between"
    );
}

#[test]
fn a_request_with_a_bad_crc_is_nacked_and_an_unknown_poll_ignored() {
    let mut egm = EgmModel::new(1);
    egm.handle(&[0x80]);
    assert_eq!(egm.handle(&[0x01, 0x01, 0x51, 0x09]), Some(vec![0x81]));
    assert_eq!(egm.handle(&[0x01, 0x55]), None);
}

#[test]
fn the_host_disables_and_enables_play_and_the_bill_acceptor() {
    let mut egm = EgmModel::new(1);
    let mut line = Line::new(&[1], HostConfig::default());
    line.enqueue(Request::shutdown(1));
    line.enqueue(Request::bill_acceptor(1, false));
    let events = run(
        &mut line,
        std::slice::from_mut(&mut egm),
        Duration::from_secs(1),
    );
    assert!(events.contains(&HostEvent::Acked {
        address: 1,
        command: 0x01
    }));
    assert!(!egm.play_enabled() && !egm.bill_acceptor_enabled());
}

#[test]
fn a_rom_signature_request_is_acked_and_the_signature_arrives_with_a_later_poll_naming_its_seed() {
    let mut egm = EgmModel::new(1);
    let mut line = Line::new(&[1], HostConfig::default());
    line.enqueue(Request::rom_signature(1, 0x1234));
    let events = run(
        &mut line,
        std::slice::from_mut(&mut egm),
        Duration::from_secs(1),
    );
    let acked = events.iter().position(|e| {
        *e == HostEvent::Acked {
            address: 1,
            command: 0x21,
        }
    });
    let signed = events.iter().position(|e| {
        matches!(
            e,
            HostEvent::RomSignature {
                address: 1,
                seed: 0x1234,
                ..
            }
        )
    });
    assert!(
        acked.is_some() && signed.is_some() && acked < signed,
        "{events:?}"
    );
    assert_no_failed_polls(&events);
}

#[test]
fn a_handpay_is_read_with_lp_1b_and_reset_with_lp_94_moving_the_jackpot_meters() {
    let mut egm = EgmModel::new(3);
    egm.insert_bill(10);
    assert!(egm.jackpot(1_500));
    assert!(!egm.play_game(1, 0), "no play while a handpay is pending");
    let mut line = Line::new(&[3], HostConfig::default());
    let events = run(
        &mut line,
        std::slice::from_mut(&mut egm),
        Duration::from_secs(2),
    );
    let info = events
        .iter()
        .find_map(|e| match e {
            HostEvent::Data {
                command: 0x1B,
                payload,
                ..
            } => Some(payload.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        outpost_sas::Bcd::decode(&info[2..7]).unwrap().value,
        1_500,
        "handpay amount"
    );
    line.enqueue(Request::handpay_reset(3));
    // `run` restarts its virtual clock at the real now: give it the first run's span again.
    let events = run(
        &mut line,
        std::slice::from_mut(&mut egm),
        Duration::from_secs(4),
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e, HostEvent::Exception { code: 0x52, .. })),
        "handpay was reset: {events:?}"
    );
    assert_eq!(egm.meter(meter::JACKPOT), 1_500);
    assert_eq!(egm.handpay_pending(), None);
    assert_eq!(egm.delivered(), [0x4F, 0x51, 0x52]);
}

#[test]
fn real_time_events_carry_their_data_and_the_long_poll_is_asked_again() {
    let mut egm = EgmModel::new(1);
    let mut line = Line::new(&[1], HostConfig::default());
    line.enqueue(Request::real_time_events(1, true));
    run(
        &mut line,
        std::slice::from_mut(&mut egm),
        Duration::from_millis(600),
    );
    line.set_real_time(1, true);
    egm.insert_bill(20);
    egm.play_game(5, 0);
    line.enqueue(Request::selected_meters(1, 0, &[meter::COIN_IN]).unwrap());
    let events = run(
        &mut line,
        std::slice::from_mut(&mut egm),
        Duration::from_secs(3),
    );
    let rte: Vec<(u8, usize)> = events
        .iter()
        .filter_map(|e| match e {
            HostEvent::RealTimeEvent { code, data, .. } => Some((*code, data.len())),
            _ => None,
        })
        .collect();
    assert_eq!(rte, [(0x4F, 6), (0x7E, 8), (0x7F, 4)]);
    assert!(
        events
            .iter()
            .any(|e| matches!(e, HostEvent::Data { command: 0x2F, .. })),
        "the meters came after the events: {events:?}"
    );
    assert_no_failed_polls(&events);
}

#[test]
fn lifetime_totals_survive_rollover_and_ram_clear() {
    let mut egm = EgmModel::new(1);
    egm.set_meter(meter::TOTAL_BILLS, 99_999_990);
    egm.insert_bill(20);
    assert_eq!(egm.meter(meter::TOTAL_BILLS), 10, "rolled over");
    egm.ram_clear();
    egm.insert_bill(5);
    assert_eq!(egm.meter(meter::TOTAL_BILLS), 5);
    assert_eq!(egm.lifetime(meter::TOTAL_BILLS), 25);
}

#[test]
fn a_reading_queued_when_quiet_waits_until_the_machine_has_told_everything() {
    let mut egm = EgmModel::new(1);
    let mut line = Line::new(&[1], HostConfig::default());
    // Sync and a first quiet answer.
    run(
        &mut line,
        std::slice::from_mut(&mut egm),
        Duration::from_millis(600),
    );
    // A bill and two games: the meters move at once, six exceptions wait in the machine's queue.
    egm.insert_bill(1_000);
    egm.play_game(5, 0);
    egm.play_game(5, 0);
    line.enqueue_when_quiet(
        Request::selected_meters(1, 0, &[meter::GAMES_PLAYED]).unwrap(),
        Instant::now(),
    );
    let events = run(
        &mut line,
        std::slice::from_mut(&mut egm),
        Duration::from_secs(3),
    );
    let reading = events
        .iter()
        .position(|e| matches!(e, HostEvent::Data { command: 0x2F, .. }))
        .expect("the reading was sent");
    let exceptions_before = events[..reading]
        .iter()
        .filter(|e| matches!(e, HostEvent::Exception { code, .. } if *code != 0))
        .count();
    assert_eq!(
        exceptions_before, 5,
        "4F, 7E, 7F, 7E, 7F before the reading: {events:?}"
    );
    assert!(
        !events[reading..]
            .iter()
            .any(|e| matches!(e, HostEvent::Exception { code, .. } if *code != 0)),
        "nothing about the moved meters comes after it: {events:?}"
    );
    assert_no_failed_polls(&events);
}

/// The bills meter of each reading the host reported, with the bill exceptions reported before it.
fn bills_by_reading(events: &[HostEvent]) -> Vec<(u64, usize)> {
    events
        .iter()
        .enumerate()
        .filter_map(|(at, e)| match e {
            HostEvent::Data {
                command: 0x2F,
                payload,
                ..
            } => {
                let read = selected_meters(payload, &[meter::TOTAL_BILLS]).unwrap();
                let bills_before = events[..at]
                    .iter()
                    .filter(|e| {
                        matches!(
                            e,
                            HostEvent::Exception {
                                code: 0x47..=0x50,
                                ..
                            }
                        )
                    })
                    .count();
                Some((read.meters[0].1.value, bills_before))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn a_bill_between_the_quiet_answer_and_the_reading_never_lands_after_the_reading_that_counted_it() {
    let mut egm = EgmModel::new(1);
    let mut line = Line::new(&[1], HostConfig::default());
    run(
        &mut line,
        std::slice::from_mut(&mut egm),
        Duration::from_millis(600),
    );
    line.enqueue_when_quiet(
        Request::selected_meters(1, 0, &[meter::TOTAL_BILLS]).unwrap(),
        Instant::now(),
    );
    // The machine said it is quiet; the bill goes in during the 200 ms before the reading.
    let mut inserted = false;
    let events = run_with(
        &mut line,
        std::slice::from_mut(&mut egm),
        Duration::from_secs(3),
        |frame, egms| {
            if frame.get(1) == Some(&0x2F) && !inserted {
                inserted = egms[0].insert_bill(20);
            }
        },
    );
    assert!(inserted);
    let readings = bills_by_reading(&events);
    assert_eq!(
        readings,
        [(20, 1)],
        "the first reading (it counted the bill, whose exception came after it) was dropped; the \
         one reported counts exactly the bill reported before it: {events:?}"
    );
    assert_no_failed_polls(&events);
}

#[test]
fn a_reading_stands_when_the_machine_is_still_quiet_after_it() {
    let mut egm = EgmModel::new(1);
    egm.insert_bill(5);
    let mut line = Line::new(&[1], HostConfig::default());
    line.enqueue_when_quiet(
        Request::selected_meters(1, 0, &[meter::TOTAL_BILLS]).unwrap(),
        Instant::now(),
    );
    let events = run(
        &mut line,
        std::slice::from_mut(&mut egm),
        Duration::from_secs(2),
    );
    assert_eq!(bills_by_reading(&events), [(5, 1)], "{events:?}");
    let reading = events
        .iter()
        .position(|e| matches!(e, HostEvent::Data { .. }))
        .unwrap();
    assert_eq!(
        events[reading + 1],
        HostEvent::Exception {
            address: 1,
            code: 0
        },
        "reported with the quiet answer that confirms it"
    );
}

#[test]
fn a_machine_that_never_goes_quiet_is_read_anyway_after_the_longest_wait() {
    let mut egm = EgmModel::new(1);
    let config = HostConfig {
        quiet_wait_max: Duration::from_millis(500),
        ..HostConfig::default()
    };
    let mut line = Line::new(&[1], config);
    for _ in 0..200 {
        egm.raise(0x8C); // game selected, over and over
    }
    let start = Instant::now();
    line.enqueue_when_quiet(
        Request::selected_meters(1, 0, &[meter::COIN_IN]).unwrap(),
        start,
    );
    let events = run(
        &mut line,
        std::slice::from_mut(&mut egm),
        Duration::from_secs(2),
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e, HostEvent::Data { command: 0x2F, .. })),
        "{events:?}"
    );
}

/// The exceptions reported, without "no activity" (00).
fn exception_codes(events: &[HostEvent]) -> Vec<u8> {
    events
        .iter()
        .filter_map(|e| match e {
            HostEvent::Exception { code, .. } if *code != 0 => Some(*code),
            _ => None,
        })
        .collect()
}

/// Host 1 polls until the EGM has answered a general poll with an exception, then dies before
/// storing it (its line is dropped). Returns the exception it received and never stored.
fn host_dies_holding_a_reply(egm: &mut EgmModel) -> u8 {
    let mut line = Line::new(&[1], HostConfig::default());
    let mut now = Instant::now();
    loop {
        let t = line.poll_transmit(now).expect("a frame to send");
        let reply = egm.handle(&t.frame.bytes);
        if let (Some(expectation), Some(reply)) = (t.expectation, reply) {
            let mut decoder = ReplyDecoder::new(expectation);
            decoder.feed(&reply);
            for event in line.handle_reply(decoder.finish()) {
                if let HostEvent::Exception { code, .. } = event {
                    return code; // and the host dies here
                }
            }
        }
        now += Duration::from_millis(250);
    }
}

/// A machine with 11 and 12 to report; a host reads 11 and dies before storing it; a new host
/// starts, resuming the dead host's general poll or not. Returns what the new host reported and
/// what the machine counts as delivered.
fn new_host_after_a_crash(resume: bool) -> (Vec<u8>, Vec<u8>) {
    let mut egm = EgmModel::new(1);
    egm.raise(0x11);
    egm.raise(0x12);
    assert_eq!(host_dies_holding_a_reply(&mut egm), 0x11);
    let mut line = Line::new(&[1], HostConfig::default());
    if resume {
        assert!(line.resume(1));
    }
    let events = run(
        &mut line,
        std::slice::from_mut(&mut egm),
        Duration::from_secs(2),
    );
    (exception_codes(&events), egm.delivered().to_vec())
}

#[test]
fn a_host_that_resumes_the_dead_hosts_last_general_poll_gets_the_reply_it_never_stored() {
    let (reported, delivered) = new_host_after_a_crash(true);
    assert_eq!(
        reported,
        [0x11, 0x12],
        "the new host has every exception, once"
    );
    assert_eq!(delivered, [0x11, 0x12]);
}

#[test]
fn a_host_that_starts_with_a_sync_poll_acknowledges_the_dead_hosts_reply_blindly() {
    let (reported, delivered) = new_host_after_a_crash(false);
    assert_eq!(
        reported,
        [0x12],
        "0x11 was acknowledged by the sync poll and lost"
    );
    assert_eq!(delivered, [0x11, 0x12]);
}

#[test]
fn resuming_an_address_the_line_does_not_poll_changes_nothing() {
    let mut line = Line::new(&[1], HostConfig::default());
    assert!(!line.resume(9));
    let first = line.poll_transmit(Instant::now()).unwrap();
    assert_eq!(first.frame.bytes, [0x80], "the sync poll, as usual");
}
