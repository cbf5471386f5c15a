//! Accounting and reconciliation, as the finance team reads them.
#![allow(clippy::unwrap_used)]

use outpost_domain::StoredEvent;
use std::collections::BTreeMap;

use outpost_domain::accounting::{Bucket, ManualReading, Verdict, figures, reconcile};
use outpost_domain::projection::{AccountingProjection, Change, Projection};
use outpost_domain::site::Floor;
use outpost_link::{Event, EventBody, EventClass, MeterReading, SasEvent};

const COIN_IN: u8 = 0x00;
const COIN_OUT: u8 = 0x01;
const JACKPOT: u8 = 0x02;
const GAMES_PLAYED: u8 = 0x05;
const DROP: u8 = 0x24;

/// A machine's events as its edge would store them, one second apart.
struct Machine {
    seq: u64,
    /// Seconds added to every later event's time.
    later_s: i64,
    events: Vec<StoredEvent>,
    meters: [u64; 256],
}

impl Machine {
    fn new() -> Self {
        Self {
            seq: 0,
            later_s: 0,
            events: Vec::new(),
            meters: [0; 256],
        }
    }

    fn push(&mut self, body: SasEvent) {
        self.seq += 1;
        // 2025-11-30T08:00Z on, one second apart.
        let t = 1_764_489_600_000_000 + (self.seq as i64 + self.later_s) * 1_000_000;
        self.events.push(StoredEvent {
            event: Event {
                seq: self.seq,
                device: "egm-1".into(),
                class: EventClass::Money,
                wall_us: t,
                mono_us: 0,
                boot_id: 1,
                body: EventBody::Sas(body),
            },
            hub_received_us: t,
            clock_offset_ms: 0,
        });
    }

    /// Time passes.
    fn wait_hours(&mut self, hours: i64) {
        self.later_s += hours * 3600;
    }

    /// The time of the next event (Unix µs).
    fn next_us(&self) -> i64 {
        1_764_489_600_000_000 + (self.seq as i64 + 1 + self.later_s) * 1_000_000
    }

    fn exception(&mut self, code: u8) {
        self.push(SasEvent::Exception { code });
    }

    fn read_meters(&mut self) {
        let meters = [COIN_IN, COIN_OUT, JACKPOT, GAMES_PLAYED, DROP]
            .iter()
            .map(|&code| MeterReading {
                code,
                value: self.meters[code as usize] % 100_000_000,
                bytes: 4,
            })
            .collect();
        self.push(SasEvent::Meters { game: 0, meters });
    }

    /// A $20 bill at one-cent credits: the meter moves, and 4A (bill accepted, $20) is raised
    /// unless `lost`.
    fn bill_20(&mut self, lost: bool) {
        self.meters[DROP as usize] += 2_000;
        if !lost {
            self.exception(0x4A);
        }
    }

    fn game(&mut self, bet: u64, win: u64) {
        self.meters[COIN_IN as usize] += bet;
        self.meters[COIN_OUT as usize] += win;
        self.meters[GAMES_PLAYED as usize] += 1;
        self.exception(0x7E);
        self.exception(0x7F);
    }

    fn handpay(&mut self, credits: u64) {
        self.exception(0x51);
        self.push(SasEvent::Handpay {
            credits,
            raw: vec![],
        });
        self.meters[JACKPOT as usize] += credits;
        self.exception(0x52);
    }
}

fn project(events: &[StoredEvent]) -> (AccountingProjection, Vec<Change>) {
    let mut projection = AccountingProjection::new(Floor::simple());
    let mut changes = Vec::new();
    for e in events {
        projection.apply("edge-1", 0, e, &mut changes).unwrap();
    }
    (projection, changes)
}

fn day_of(changes: &[Change]) -> outpost_domain::accounting::Bucket {
    let mut day = outpost_domain::accounting::Bucket::default();
    let mut last: std::collections::BTreeMap<i64, outpost_domain::accounting::Bucket> =
        Default::default();
    for c in changes {
        if let Change::Bucket { bucket, .. } = c {
            last.insert(bucket.hour_us, (**bucket).clone());
        }
    }
    for b in last.values() {
        day.add(b);
    }
    day
}

fn session(lost_bill: bool) -> Machine {
    let mut m = Machine::new();
    m.read_meters();
    m.bill_20(false);
    m.game(5, 0);
    m.game(5, 20);
    m.bill_20(lost_bill);
    m.read_meters();
    m.game(3, 0);
    m.handpay(1_500);
    m.read_meters();
    m
}

#[test]
fn a_played_session_balances_and_its_figures_are_the_meters_in_money() {
    let m = session(false);
    let (_, changes) = project(&m.events);
    let day = day_of(&changes);
    let rec = reconcile(&day, 1, 100);
    assert_eq!(rec.verdict, Verdict::Balanced, "{rec:?}");
    let f = figures(&day, 1, Some(9_000));
    assert_eq!(f.coin_in, 13);
    assert_eq!(f.coin_out, 20);
    assert_eq!(f.jackpot, 1_500);
    assert_eq!(f.drop, 4_000);
    assert_eq!(f.net_win, 13 - 20 - 1_500);
    assert_eq!(f.games_played, 3);
    assert_eq!(f.theoretical_hold_bp, Some(1_000));
    assert_eq!(day.events.bills.get(&20), Some(&2));
}

#[test]
fn a_bill_the_machine_never_reported_is_a_discrepancy_of_its_value() {
    let m = session(true);
    let (_, changes) = project(&m.events);
    let rec = reconcile(&day_of(&changes), 1, 100);
    assert_eq!(rec.verdict, Verdict::Discrepancy);
    let bills = rec.checks.iter().find(|c| c.name == "bills").unwrap();
    assert_eq!(bills.difference(), 2_000, "$20.00 metered but not reported");
    assert!(
        rec.reasons.is_empty(),
        "nothing explains it: {:?}",
        rec.reasons
    );
}

#[test]
fn a_ram_clear_is_flagged_and_never_read_as_revenue() {
    let mut m = session(false);
    m.meters = [0; 256];
    m.game(1, 0);
    m.read_meters();
    let (_, changes) = project(&m.events);
    let day = day_of(&changes);
    let rec = reconcile(&day, 1, 100);
    assert_eq!(rec.verdict, Verdict::Unverifiable);
    assert!(rec.reasons[0].contains("meter reset"), "{:?}", rec.reasons);
    assert_eq!(figures(&day, 1, None).coin_in, 13, "the clear adds nothing");
}

#[test]
fn a_meter_jump_is_a_discrepancy_of_the_jump() {
    let mut m = session(false);
    m.meters[DROP as usize] += 10_000;
    m.read_meters();
    let (_, changes) = project(&m.events);
    let rec = reconcile(&day_of(&changes), 1, 100);
    let bills = rec.checks.iter().find(|c| c.name == "bills").unwrap();
    assert_eq!(bills.difference(), 10_000);
}

#[test]
fn a_rollover_is_counted_through() {
    let mut m = Machine::new();
    m.meters[COIN_IN as usize] = 99_999_990;
    m.read_meters();
    m.game(25, 0);
    m.read_meters();
    let (_, changes) = project(&m.events);
    let day = day_of(&changes);
    assert_eq!(figures(&day, 1, None).coin_in, 25);
    assert_eq!(day.flags.rollovers, 1);
    assert_eq!(reconcile(&day, 1, 100).verdict, Verdict::Balanced);
}

#[test]
fn replaying_every_event_twice_stores_the_same_bytes() {
    let m = session(false);
    let (mut once, _) = project(&m.events);
    let mut twice = AccountingProjection::new(Floor::simple());
    let mut changes = Vec::new();
    for e in m.events.iter().chain(&m.events) {
        twice.apply("edge-1", 0, e, &mut changes).unwrap();
    }
    for e in &m.events {
        twice.apply("edge-1", 0, e, &mut changes).unwrap();
    }
    let (mut a, mut b) = (Vec::new(), Vec::new());
    once.flush(&mut a);
    twice.flush(&mut b);
    assert_eq!(a, b);
}

/// The projection's stored buckets by hour after flushing `projection` into `store`.
fn stored_buckets(
    projection: &mut AccountingProjection,
    store: &mut BTreeMap<Vec<u8>, Vec<u8>>,
) -> BTreeMap<i64, Bucket> {
    let mut writes = Vec::new();
    projection.flush(&mut writes);
    store.extend(writes);
    store
        .iter()
        .filter(|(k, _)| k.first() == Some(&b'b'))
        .map(|(k, v)| {
            let bucket: Bucket = outpost_domain::projection::decode("accounting", k, v).unwrap();
            (bucket.hour_us, bucket)
        })
        .collect()
}

#[test]
fn every_hour_one_batch_spans_is_stored_not_only_the_last() {
    let mut m = Machine::new();
    m.read_meters();
    for _ in 0..3 {
        m.bill_20(false);
        m.read_meters();
        m.wait_hours(1);
    }
    let (mut projection, _) = project(&m.events);
    let buckets = stored_buckets(&mut projection, &mut BTreeMap::new());
    assert_eq!(buckets.len(), 3, "{buckets:?}");
    assert!(buckets.values().all(|b| b.meter(DROP) == 2_000));
}

/// A machine read at 08:00, its link lost, read by hand at 09:00 (an attendant's typo: drop
/// 5,000 too high), and read again by the edge at 10:00 once the link is back.
fn read_by_hand_across_a_link_loss() -> (Machine, ManualReading) {
    let mut m = Machine::new();
    m.read_meters();
    m.bill_20(false);
    m.push(SasEvent::Link { up: false });
    m.wait_hours(1);
    // The bill goes in while the link is down: its exception waits in the machine.
    m.meters[DROP as usize] += 2_000;
    let by_hand = ManualReading {
        id: 7,
        read_at_us: m.next_us(),
        meters: [COIN_IN, DROP]
            .iter()
            .map(|&c| (c, m.meters[c as usize] + if c == DROP { 5_000 } else { 0 }))
            .collect(),
        corrects: None,
    };
    (m, by_hand)
}

/// Applies the reading entered by hand (no earlier entry to correct).
fn enter_by_hand(
    projection: &mut AccountingProjection,
    by_hand: &ManualReading,
    changes: &mut Vec<Change>,
) {
    projection
        .apply_manual("edge-1", "egm-1", by_hand, &|_| None, changes)
        .unwrap();
}

/// The link is back an hour later: the queued exception, then the edge's reading, applied.
fn link_back_an_hour_later(
    m: &mut Machine,
    projection: &mut AccountingProjection,
    changes: &mut Vec<Change>,
) {
    m.wait_hours(1);
    m.push(SasEvent::Link { up: true });
    m.exception(0x4A);
    m.read_meters();
    let seen = m.events.len() - 3;
    for e in &m.events[seen..] {
        projection.apply("edge-1", 0, e, changes).unwrap();
    }
}

#[test]
fn a_reading_entered_by_hand_closes_the_interval_and_both_intervals_it_bounds_are_flagged() {
    let (mut m, by_hand) = read_by_hand_across_a_link_loss();
    let (mut projection, mut changes) = project(&m.events);
    let mut store = BTreeMap::new();
    enter_by_hand(&mut projection, &by_hand, &mut changes);
    let hours = stored_buckets(&mut projection, &mut store);
    let nine = hours.values().last().unwrap();
    assert_eq!(nine.meter(DROP), 4_000 + 5_000, "as entered");
    let rec = reconcile(nine, 1, 100);
    assert_eq!(rec.verdict, Verdict::Unverifiable, "{rec:?}");
    assert!(
        rec.reasons.iter().any(|r| r.contains("entered by hand")),
        "{:?}",
        rec.reasons
    );
    // The link is back at 10:00: the queued exception, then the edge's reading.
    link_back_an_hour_later(&mut m, &mut projection, &mut changes);
    let hours = stored_buckets(&mut projection, &mut store);
    let ten = hours.values().last().unwrap();
    assert_eq!(
        ten.flags.manual_readings, 1,
        "the interval it opened is flagged"
    );
    assert_eq!(
        ten.flags.meter_resets, 1,
        "from the typo to the machine's reading the drop meter went backwards"
    );
    assert_eq!(ten.meter(DROP), 0, "and nothing is read as revenue there");
}

#[test]
fn a_correction_moves_the_difference_between_the_two_intervals_and_keeps_the_original() {
    let (mut m, by_hand) = read_by_hand_across_a_link_loss();
    let (mut projection, mut changes) = project(&m.events);
    let mut store = BTreeMap::new();
    enter_by_hand(&mut projection, &by_hand, &mut changes);
    stored_buckets(&mut projection, &mut store);
    link_back_an_hour_later(&mut m, &mut projection, &mut changes);
    stored_buckets(&mut projection, &mut store);
    let correction = ManualReading {
        id: 8,
        read_at_us: by_hand.read_at_us,
        meters: [(DROP, by_hand.meters[&DROP] - 5_000)].into(),
        corrects: Some(7),
    };
    let reader = store.clone();
    projection
        .apply_manual(
            "edge-1",
            "egm-1",
            &correction,
            &|k| reader.get(k).cloned(),
            &mut changes,
        )
        .unwrap();
    let hours: Vec<Bucket> = stored_buckets(&mut projection, &mut store)
        .into_values()
        .collect();
    let drops: Vec<u128> = hours.iter().map(|b| b.meter(DROP)).collect();
    assert_eq!(drops, [4_000, 0], "09:00 and 10:00 as they really were");
    assert!(hours.iter().all(|b| b.flags.corrections == 1));
    assert_eq!(
        hours[1].flags.meter_resets, 0,
        "no meter went backwards after all"
    );
    assert_eq!(
        hours[0].metered[&DROP],
        4_000 + 5_000,
        "what was entered is kept; the correction is posted beside it"
    );
    // A correction of an entry the machine's book does not know is refused, naming it.
    let unknown = ManualReading {
        corrects: Some(99),
        ..correction
    };
    let err = projection
        .apply_manual("edge-1", "egm-1", &unknown, &|_| None, &mut changes)
        .unwrap_err();
    assert!(err.0.contains("99"), "{err}");
}

#[test]
fn a_games_meters_count_from_its_first_reading_and_never_backwards_and_leave_the_machine_alone() {
    let game = |coin_in: u64| SasEvent::Meters {
        game: 2,
        meters: vec![MeterReading {
            code: COIN_IN,
            value: coin_in,
            bytes: 4,
        }],
    };
    let mut m = Machine::new();
    m.read_meters();
    m.push(game(500)); // the baseline: played before the hub knew
    m.push(game(530));
    m.push(game(10)); // went backwards (RAM clear): adds nothing
    m.push(game(25));
    let (_, changes) = project(&m.events);
    let day = day_of(&changes);
    assert_eq!(day.games[&2][&COIN_IN], 30 + 15);
    assert_eq!(
        day.meter(COIN_IN),
        0,
        "the machine's own meter is the machine's figure"
    );
}

#[test]
fn a_session_the_machine_reports_holds_its_meters_at_the_readings_before_9e_and_9f() {
    let mut m = Machine::new();
    m.read_meters();
    m.exception(0x9E); // session start
    m.game(5, 0);
    m.game(7, 0);
    m.read_meters();
    m.exception(0x9F); // session end
    m.game(100, 0); // after the session
    m.read_meters();
    let (mut projection, _) = project(&m.events);
    let mut writes = Vec::new();
    projection.flush(&mut writes);
    let sessions: Vec<outpost_domain::accounting::MachineSession> = writes
        .iter()
        .filter(|(k, _)| k.first() == Some(&b's'))
        .map(|(k, v)| outpost_domain::projection::decode("accounting", k, v).unwrap())
        .collect();
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    let s = &sessions[0];
    let coin_in = s.close_meters.as_ref().unwrap()[&COIN_IN].0 - s.open_meters[&COIN_IN].0;
    assert_eq!(coin_in, 12, "what was played between 9E and 9F");
    assert!(
        projection
            .book("edge-1", "egm-1")
            .unwrap()
            .machine_session
            .is_none()
    );
}
