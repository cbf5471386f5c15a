//! Accounting and reconciliation, as the finance team reads them.
#![allow(clippy::unwrap_used)]

use outpost_domain::StoredEvent;
use outpost_domain::accounting::{Verdict, figures, reconcile};
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
    events: Vec<StoredEvent>,
    meters: [u64; 256],
}

impl Machine {
    fn new() -> Self {
        Self {
            seq: 0,
            events: Vec::new(),
            meters: [0; 256],
        }
    }

    fn push(&mut self, body: SasEvent) {
        self.seq += 1;
        let t = 1_764_489_600_000_000 + self.seq as i64 * 1_000_000; // 2025-11-30T08:00Z on
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
