//! Casino accounting from SAS events: meters by name with rollover-aware deltas, hourly buckets
//! per machine filed under gaming days, and reconciliation of meters against events.
//!
//! How figures are filed: the edge reads a machine's meters periodically. The events between two
//! readings (in sequence order) and the meter deltas between them form one *interval*; it is
//! filed, whole, in the hour bucket of its closing reading. So the figures of an hour or a gaming
//! day and their reconciliation always cover the same intervals, and an interval open at a day's
//! end belongs to the day in which its closing reading falls (as a day-close meter read would).
//!
//! Invariants:
//! - Applying an event at or below the machine's last applied sequence changes nothing.
//! - A meter that moved backwards without a rollover is a *reset* (RAM clear, board swap): its
//!   delta is unknown, it is never read as revenue, and the interval is flagged.
//! - Buckets only grow in the current hour of a machine; a reading timed before it (an edge clock
//!   stepping back) is filed in the current bucket, so a replay files everything where the first
//!   pass did.

use std::collections::BTreeMap;

use outpost_link::{EventBody, SasEvent};
use outpost_sas::egm::meter;
use outpost_sas::names::{self, exception};
use outpost_sas::{Bcd, MeterDelta};
use serde::{Deserialize, Serialize};

use crate::StoredEvent;
use crate::readable::{rte_wager, rte_win};

/// What the events of an interval add up to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventSums {
    /// Bills by value in major units (dollars), from exceptions that name the value.
    pub bills: BTreeMap<u32, u64>,
    /// Bills whose value the machine did not say (4F).
    pub bills_unnamed: u64,
    pub game_starts: u64,
    pub game_ends: u64,
    /// Game starts that came as real-time events, with their wagers (credits).
    pub rte_game_starts: u64,
    pub wagered_credits: u128,
    pub won_credits: u128,
    /// Handpays reset (paid) and their credits.
    pub handpays: u64,
    pub handpaid_credits: u128,
}

/// What else happened in an interval that may explain a difference.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flags {
    /// Meters that went backwards (RAM clear, board swap): deltas unknown.
    pub meter_resets: u32,
    pub rollovers: u32,
    /// Times the edge lost the machine.
    pub comms_lost: u32,
    /// Events lost before the hub (gaps in the edge's sequence).
    pub missing_events: u64,
    /// The machine's exception queue overflowed (70): exceptions were lost at the machine.
    pub exception_overflows: u32,
    pub power_lost: u32,
    /// Soft meters were reset by the machine (7A).
    pub soft_meter_resets: u32,
    /// Readings entered by hand that close or open an interval here.
    pub manual_readings: u32,
    /// Corrections of readings entered by hand posted here.
    pub corrections: u32,
}

impl Flags {
    fn add(&mut self, other: &Flags) {
        self.meter_resets += other.meter_resets;
        self.rollovers += other.rollovers;
        self.comms_lost += other.comms_lost;
        self.missing_events += other.missing_events;
        self.exception_overflows += other.exception_overflows;
        self.power_lost += other.power_lost;
        self.soft_meter_resets += other.soft_meter_resets;
        self.manual_readings += other.manual_readings;
        self.corrections += other.corrections;
    }
}

impl EventSums {
    fn add(&mut self, other: &EventSums) {
        for (value, count) in &other.bills {
            *self.bills.entry(*value).or_default() += count;
        }
        self.bills_unnamed += other.bills_unnamed;
        self.game_starts += other.game_starts;
        self.game_ends += other.game_ends;
        self.rte_game_starts += other.rte_game_starts;
        self.wagered_credits += other.wagered_credits;
        self.won_credits += other.won_credits;
        self.handpays += other.handpays;
        self.handpaid_credits += other.handpaid_credits;
    }
}

/// One machine's figures for an hour (or, summed, any span of hours).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bucket {
    /// Start of the local hour (Unix µs).
    pub hour_us: i64,
    /// The gaming day it belongs to (`2026-11-30`).
    pub day: String,
    /// Meter increases by meter code (credits, cents or counts as the meter counts).
    pub metered: BTreeMap<u8, u128>,
    /// Signed changes by meter code posted by corrections of readings entered by hand.
    pub adjusted: BTreeMap<u8, i128>,
    /// Each game's meter increases (game → meter code → increase), from per-game readings.
    pub games: BTreeMap<u16, BTreeMap<u8, u128>>,
    pub events: EventSums,
    pub flags: Flags,
    /// Intervals filed here.
    pub intervals: u32,
}

impl Bucket {
    /// Adds `other` (another hour, or another machine's) into this one.
    pub fn add(&mut self, other: &Bucket) {
        for (code, by) in &other.metered {
            *self.metered.entry(*code).or_default() += by;
        }
        for (code, by) in &other.adjusted {
            *self.adjusted.entry(*code).or_default() += by;
        }
        for (game, meters) in &other.games {
            let mine = self.games.entry(*game).or_default();
            for (code, by) in meters {
                *mine.entry(*code).or_default() += by;
            }
        }
        self.events.add(&other.events);
        self.flags.add(&other.flags);
        self.intervals += other.intervals;
    }

    /// The sum of `buckets` (hours of a machine, or machines).
    pub fn sum<'a>(buckets: impl IntoIterator<Item = &'a Bucket>) -> Bucket {
        let mut total = Bucket::default();
        for b in buckets {
            total.add(b);
        }
        total
    }

    /// What meter `code` moved by here, corrections included (never below 0).
    pub fn meter(&self, code: u8) -> u128 {
        let metered = self.metered.get(&code).copied().unwrap_or(0);
        let adjusted = self.adjusted.get(&code).copied().unwrap_or(0);
        u128::try_from(
            i128::try_from(metered)
                .unwrap_or(i128::MAX)
                .saturating_add(adjusted),
        )
        .unwrap_or(0)
    }

    /// Multiplies every meter that counts credits, adjustments included, by `denomination`
    /// (credits into money); counts and cents stay as they are. Per-game figures are dropped
    /// (game numbers mean nothing across machines).
    pub fn scale_credits(&mut self, denomination: u32) {
        let credits = |code: u8| names::meter(code).unit == names::MeterUnit::Credits;
        for (code, v) in self.metered.iter_mut() {
            if credits(*code) {
                *v = v.saturating_mul(u128::from(denomination));
            }
        }
        for (code, v) in self.adjusted.iter_mut() {
            if credits(*code) {
                *v = v.saturating_mul(i128::from(denomination));
            }
        }
        self.games.clear();
    }
}

/// A reading of a machine's meters entered by hand (its link was down), or the correction of one.
/// The hub keeps every entry, corrections beside what they correct (`hub/src/manual.rs`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManualReading {
    pub id: u64,
    /// When the meters were read at the machine (Unix µs).
    pub read_at_us: i64,
    /// Meter code → value as the machine's meter shows it.
    pub meters: BTreeMap<u8, u64>,
    /// The entry this one corrects (its values replace that entry's).
    pub corrects: Option<u64>,
}

/// Meters as read: code → (value, BCD bytes).
pub type Values = BTreeMap<u8, (u64, u8)>;

/// A reading entered by hand as the book applied it, kept so a correction can be posted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManualMark {
    /// The hour of the interval it closed (`None`: it was the machine's first reading).
    pub closed_in: Option<i64>,
    /// The reading before it, of its meters (value, BCD bytes).
    pub before: Values,
    /// The hour of the interval it opened and the reading that closed it, once closed.
    pub opened_in: Option<(i64, Values)>,
    /// The values in force (the entry's, or its latest correction's), with their BCD bytes.
    pub values: Values,
}

/// A signed change to post into a machine's hour bucket.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Adjustment {
    pub hour_us: i64,
    pub by: BTreeMap<u8, i128>,
    /// Change in the number of meters that went backwards.
    pub resets: i64,
}

impl Adjustment {
    /// What the interval `new.0 → new.1` adds (or takes) compared with `old.0 → old.1`, for
    /// each meter of `codes` present at both ends of both.
    fn between(
        hour_us: i64,
        codes: &Values,
        old: (&Values, &Values),
        new: (&Values, &Values),
    ) -> Self {
        let mut posting = Adjustment {
            hour_us,
            ..Adjustment::default()
        };
        for &code in codes.keys() {
            let ends = |(from, to): (&Values, &Values)| Some((*from.get(&code)?, *to.get(&code)?));
            let (Some(old), Some(new)) = (ends(old), ends(new)) else {
                continue;
            };
            let (old_by, old_reset) = interval_delta(code, old.0, old.1);
            let (new_by, new_reset) = interval_delta(code, new.0, new.1);
            if new_by != old_by {
                posting.by.insert(code, new_by - old_by);
            }
            posting.resets += new_reset - old_reset;
        }
        posting
    }
}

/// A meter's increase between two readings, and 1 if it went backwards (a balance: nothing).
fn interval_delta(code: u8, from: (u64, u8), to: (u64, u8)) -> (i128, i64) {
    if code == meter::CURRENT_CREDITS {
        return (0, 0);
    }
    let bcd = |(value, bytes): (u64, u8)| Bcd { value, bytes };
    match MeterDelta::between(bcd(from), bcd(to)) {
        MeterDelta::Increase { by, .. } => (i128::from(by), 0),
        MeterDelta::Reset { .. } => (0, 1),
    }
}

/// Why a reading entered by hand cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManualError {
    #[error("meter {code:#04x}: {value} does not fit the machine's {digits}-digit meter")]
    TooLarge { code: u8, value: u64, digits: u32 },
    #[error("entry {0} is not a reading of this machine the hub still keeps for corrections")]
    UnknownEntry(u64),
    #[error("entry {corrects} has no meter {code:#04x} to correct")]
    NotInEntry { corrects: u64, code: u8 },
}

/// How many readings entered by hand a book keeps for corrections.
pub const MANUAL_MARKS_KEPT: usize = 64;

/// Width in bytes of meter `code` when the machine has not said (SAS table C-7 minimum sizes).
fn default_width(code: u8) -> u8 {
    if (0x0D..=0x10).contains(&code) { 5 } else { 4 }
}

/// One machine's running account.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachineBook {
    pub edge: String,
    pub device: String,
    pub last_seq: u64,
    /// The last reading of each meter (game 0): value and BCD bytes.
    pub last: BTreeMap<u8, (u64, u8)>,
    /// What happened since the last reading.
    pub open_events: EventSums,
    pub open_flags: Flags,
    /// Credits of the handpay pending now, once read (LP 1B).
    pub handpay_pending: Option<u64>,
    /// The bucket intervals are filed in now.
    pub current: Option<Bucket>,
    /// Readings entered by hand, by entry id (the latest [`MANUAL_MARKS_KEPT`]).
    pub manual: BTreeMap<u64, ManualMark>,
    /// The entry whose reading is the book's latest, if the latest was entered by hand.
    pub latest_manual: Option<u64>,
    /// The last reading of each game's meters (games 1…).
    pub game_last: BTreeMap<u16, Values>,
    /// The session the machine itself reported open (9E), if one is.
    pub machine_session: Option<MachineSession>,
    /// Sessions the machine ended (9F, or a new 9E) since the owner last took them (to store).
    #[serde(skip)]
    pub ended_sessions: Vec<MachineSession>,
    /// Buckets of past hours this book moved on from since its owner last took them (to store).
    #[serde(skip)]
    pub closed: Vec<Bucket>,
}

/// A session the machine reported itself: opened at 9E, ended at 9F. Its meters are the
/// machine's latest reading at each (so its precision is the meter interval), as for a card the
/// API binds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachineSession {
    /// The sequence of the 9E that opened it (unique per machine).
    pub opened_seq: u64,
    pub opened_us: i64,
    pub open_meters: Values,
    pub closed_us: Option<i64>,
    pub close_meters: Option<Values>,
}

/// Where a machine's hour starts and which gaming day it is in, for a time.
pub trait Filing {
    fn hour_start(&self, us: i64) -> i64;
    fn gaming_day(&self, us: i64) -> String;
}

impl Filing for crate::calendar::Calendar {
    fn hour_start(&self, us: i64) -> i64 {
        crate::calendar::Calendar::hour_start(self, us)
    }
    fn gaming_day(&self, us: i64) -> String {
        crate::calendar::Calendar::gaming_day(self, us).to_string()
    }
}

impl MachineBook {
    pub fn new(edge: &str, device: &str) -> Self {
        Self {
            edge: edge.to_owned(),
            device: device.to_owned(),
            ..Self::default()
        }
    }

    /// Applies one event of this machine. Returns the bucket it filed into, when an interval
    /// closed (a meter reading).
    pub fn apply(
        &mut self,
        stored: &StoredEvent,
        missing_before: u64,
        filing: &dyn Filing,
    ) -> Option<&Bucket> {
        let event = &stored.event;
        if event.seq <= self.last_seq {
            return None;
        }
        self.last_seq = event.seq;
        self.open_flags.missing_events += missing_before;
        let EventBody::Sas(sas) = &event.body else {
            return None;
        };
        if let SasEvent::Exception { code } | SasEvent::RealTimeEvent { code, .. } = sas {
            self.session_event(*code, event.seq, stored.happened_us());
        }
        match sas {
            SasEvent::Exception { code } => self.exception(*code, None),
            SasEvent::RealTimeEvent { code, data } => self.exception(*code, Some(data)),
            SasEvent::Handpay { credits, .. } => self.handpay_pending = Some(*credits),
            SasEvent::Link { up: false } => self.open_flags.comms_lost += 1,
            SasEvent::Meters { game: 0, meters } => {
                return self.reading(meters, stored.happened_us(), filing);
            }
            SasEvent::Meters { game, meters } => {
                return self.game_reading(*game, meters, stored.happened_us(), filing);
            }
            SasEvent::Link { up: true } | SasEvent::RomSignature { .. } | SasEvent::Data { .. } => {
            }
        }
        None
    }

    /// 9E opens a machine session (ending one still open), 9F ends it.
    fn session_event(&mut self, code: u8, seq: u64, at: i64) {
        if code != exception::SESSION_START && code != exception::SESSION_END {
            return;
        }
        if let Some(mut open) = self.machine_session.take() {
            open.closed_us = Some(at);
            open.close_meters = Some(self.last.clone());
            self.ended_sessions.push(open);
        }
        if code == exception::SESSION_START {
            self.machine_session = Some(MachineSession {
                opened_seq: seq,
                opened_us: at,
                open_meters: self.last.clone(),
                closed_us: None,
                close_meters: None,
            });
        }
    }

    fn exception(&mut self, code: u8, rte: Option<&Vec<u8>>) {
        let sums = &mut self.open_events;
        if names::is_bill(code) {
            match names::bill_value(code) {
                Some(value) => *sums.bills.entry(value).or_default() += 1,
                None => sums.bills_unnamed += 1,
            }
            return;
        }
        match code {
            exception::GAME_STARTED => {
                sums.game_starts += 1;
                if let Some(wager) = rte.and_then(|d| rte_wager(d)) {
                    sums.rte_game_starts += 1;
                    sums.wagered_credits += u128::from(wager);
                }
            }
            exception::GAME_ENDED => {
                sums.game_ends += 1;
                if let Some(win) = rte.and_then(|d| rte_win(d)) {
                    sums.won_credits += u128::from(win);
                }
            }
            exception::HANDPAY_RESET => {
                sums.handpays += 1;
                sums.handpaid_credits += u128::from(self.handpay_pending.take().unwrap_or(0));
            }
            exception::BUFFER_OVERFLOW => self.open_flags.exception_overflows += 1,
            exception::AC_POWER_LOST => self.open_flags.power_lost += 1,
            exception::SOFT_METERS_RESET => self.open_flags.soft_meter_resets += 1,
            _ => {}
        }
    }

    /// The bucket of the hour of `at` (the current one if `at` is not past it), taken out of
    /// `current`; a bucket moved past goes to `closed`.
    fn take_bucket(&mut self, at: i64, filing: &dyn Filing) -> Bucket {
        let hour = filing.hour_start(at);
        match self.current.take() {
            Some(b) if b.hour_us >= hour => b,
            previous => {
                self.closed.extend(previous);
                Bucket {
                    hour_us: hour,
                    day: filing.gaming_day(hour),
                    ..Bucket::default()
                }
            }
        }
    }

    /// A reading of one game's meters: their increases since the game's last reading go into
    /// the hour's bucket, under the game (a game's first reading is its baseline; a meter that went
    /// backwards adds nothing). Machine figures and reconciliation are the machine's own meters'.
    fn game_reading(
        &mut self,
        game: u16,
        meters: &[outpost_link::MeterReading],
        at: i64,
        filing: &dyn Filing,
    ) -> Option<&Bucket> {
        let last = self.game_last.entry(game).or_default();
        let first = last.is_empty();
        let mut moved = BTreeMap::new();
        for m in meters {
            if let Some(&previous) = last.get(&m.code)
                && let (by, 0) = interval_delta(m.code, previous, (m.value, m.bytes))
                && by > 0
            {
                moved.insert(m.code, by as u128);
            }
            last.insert(m.code, (m.value, m.bytes));
        }
        if first {
            return None;
        }
        let mut bucket = self.take_bucket(at, filing);
        let figures = bucket.games.entry(game).or_default();
        for (code, by) in moved {
            *figures.entry(code).or_default() += by;
        }
        self.current = Some(bucket);
        self.current.as_ref()
    }

    fn reading(
        &mut self,
        meters: &[outpost_link::MeterReading],
        at: i64,
        filing: &dyn Filing,
    ) -> Option<&Bucket> {
        let first = self.last.is_empty();
        let mut metered = BTreeMap::new();
        for m in meters {
            if let Some(&(value, bytes)) = self.last.get(&m.code) {
                let previous = Bcd { value, bytes };
                let current = Bcd {
                    value: m.value,
                    bytes: m.bytes,
                };
                if m.code == meter::CURRENT_CREDITS {
                    // A balance, not a counter: it goes up and down.
                } else {
                    match MeterDelta::between(previous, current) {
                        MeterDelta::Increase { by, rolled_over } => {
                            *metered.entry(m.code).or_insert(0u128) += u128::from(by);
                            self.open_flags.rollovers += u32::from(rolled_over);
                        }
                        MeterDelta::Reset { .. } => self.open_flags.meter_resets += 1,
                    }
                }
            }
            self.last.insert(m.code, (m.value, m.bytes));
        }
        if first {
            // The first reading is the baseline: what came before it is not this hub's to count.
            self.open_events = EventSums::default();
            self.open_flags = Flags::default();
            return None;
        }
        let mut bucket = self.take_bucket(at, filing);
        for (code, by) in metered {
            *bucket.metered.entry(code).or_default() += by;
        }
        bucket.events.add(&std::mem::take(&mut self.open_events));
        bucket.flags.add(&std::mem::take(&mut self.open_flags));
        bucket.intervals += 1;
        if let Some(id) = self.latest_manual.take()
            && let Some(mark) = self.manual.get_mut(&id)
        {
            let after = mark
                .values
                .keys()
                .filter_map(|c| self.last.get(c).map(|v| (*c, *v)))
                .collect();
            mark.opened_in = Some((bucket.hour_us, after));
        }
        self.current = Some(bucket);
        self.current.as_ref()
    }

    /// Applies a reading entered by hand, or a correction of one. A reading closes the open
    /// interval as a machine's reading would (both intervals it touches are flagged); a correction
    /// posts, signed, the difference from the values it replaces into the interval the entry closed
    /// and the opposite into the one it opened, so the total across both stays what the machine's
    /// own readings say; returned are the postings for hours other than the current one (the caller
    /// stores them).
    pub fn apply_manual(
        &mut self,
        entry: &ManualReading,
        filing: &dyn Filing,
    ) -> Result<Vec<Adjustment>, ManualError> {
        match entry.corrects {
            None => {
                let before = entry
                    .meters
                    .keys()
                    .filter_map(|c| self.last.get(c).map(|v| (*c, *v)))
                    .collect();
                let mut readings = Vec::with_capacity(entry.meters.len());
                for (&code, &value) in &entry.meters {
                    let bytes = self
                        .last
                        .get(&code)
                        .map_or(default_width(code), |&(_, b)| b);
                    let digits = u32::from(bytes) * 2;
                    if 10u128.pow(digits) <= u128::from(value) {
                        return Err(ManualError::TooLarge {
                            code,
                            value,
                            digits,
                        });
                    }
                    readings.push(outpost_link::MeterReading { code, value, bytes });
                }
                self.open_flags.manual_readings += 1;
                let closed_in = self
                    .reading(&readings, entry.read_at_us, filing)
                    .map(|b| b.hour_us);
                self.open_flags.manual_readings += 1;
                let values = readings
                    .iter()
                    .map(|r| (r.code, (r.value, r.bytes)))
                    .collect();
                self.manual.insert(
                    entry.id,
                    ManualMark {
                        closed_in,
                        before,
                        opened_in: None,
                        values,
                    },
                );
                while self.manual.len() > MANUAL_MARKS_KEPT {
                    self.manual.pop_first();
                }
                self.latest_manual = Some(entry.id);
                Ok(Vec::new())
            }
            Some(corrects) => {
                let latest = self.latest_manual == Some(corrects);
                let mark = self
                    .manual
                    .get_mut(&corrects)
                    .ok_or(ManualError::UnknownEntry(corrects))?;
                let mut corrected = mark.values.clone();
                for (&code, &value) in &entry.meters {
                    let slot = corrected
                        .get_mut(&code)
                        .ok_or(ManualError::NotInEntry { corrects, code })?;
                    let digits = u32::from(slot.1) * 2;
                    if 10u128.pow(digits) <= u128::from(value) {
                        return Err(ManualError::TooLarge {
                            code,
                            value,
                            digits,
                        });
                    }
                    slot.0 = value;
                }
                let mut postings = Vec::new();
                if let Some(hour) = mark.closed_in {
                    postings.push(Adjustment::between(
                        hour,
                        &corrected,
                        (&mark.before, &mark.values),
                        (&mark.before, &corrected),
                    ));
                }
                if let Some((hour, after)) = &mark.opened_in {
                    postings.push(Adjustment::between(
                        *hour,
                        &corrected,
                        (&mark.values, after),
                        (&corrected, after),
                    ));
                }
                if latest {
                    for (code, value) in &corrected {
                        if let Some(last) = self.last.get_mut(code) {
                            *last = *value;
                        }
                    }
                }
                mark.values = corrected;
                let mut elsewhere = Vec::new();
                for posting in postings {
                    match self.current.as_mut() {
                        Some(current) if current.hour_us == posting.hour_us => {
                            current.post(&posting)
                        }
                        _ => elsewhere.push(posting),
                    }
                }
                Ok(elsewhere)
            }
        }
    }
}

impl Bucket {
    /// Posts a correction's signed changes here (and flags it).
    pub fn post(&mut self, posting: &Adjustment) {
        for (code, delta) in &posting.by {
            *self.adjusted.entry(*code).or_default() += delta;
        }
        let resets = i64::from(self.flags.meter_resets) + posting.resets;
        self.flags.meter_resets = u32::try_from(resets.max(0)).unwrap_or(u32::MAX);
        self.flags.corrections += 1;
    }
}

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Balanced,
    Discrepancy,
    /// The meters were reset in the window: their deltas are unknown.
    Unverifiable,
}

/// One comparison of meters against events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    /// `bills`, `games`, `handpays`, `wagers`.
    pub name: String,
    /// What the meters say (minor units of money, or a count).
    pub metered: i128,
    /// What the events add up to.
    pub counted: i128,
    pub money: bool,
    pub verdict: Verdict,
}

impl Check {
    pub fn difference(&self) -> i128 {
        self.metered - self.counted
    }
}

/// Reconciliation of a machine (or a sum of machines) over a window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reconciliation {
    pub verdict: Verdict,
    pub checks: Vec<Check>,
    /// What in the window may explain a discrepancy, in words.
    pub reasons: Vec<String>,
    pub intervals: u32,
}

/// Reconciles `bucket` (a machine's figures over a window) with `denomination` minor units per
/// credit and `minor_per_major` minor units per bill unit.
pub fn reconcile(bucket: &Bucket, denomination: u32, minor_per_major: i64) -> Reconciliation {
    let credits =
        |c: u128| i128::try_from(c.saturating_mul(u128::from(denomination))).unwrap_or(i128::MAX);
    // Readings entered by hand: what the machine queued while its link was down reaches the hub
    // only after them, so meters and events cannot be compared across them.
    let reset = bucket.flags.meter_resets > 0
        || bucket.flags.manual_readings > 0
        || bucket.flags.corrections > 0;
    let verdict = |metered: i128, counted: i128| {
        if reset {
            Verdict::Unverifiable
        } else if metered == counted {
            Verdict::Balanced
        } else {
            Verdict::Discrepancy
        }
    };
    let e = &bucket.events;
    let named_bills: i128 = e
        .bills
        .iter()
        .map(|(value, count)| i128::from(*value) * i128::from(*count) * i128::from(minor_per_major))
        .sum();
    let mut checks = Vec::new();
    let drop = credits(bucket.meter(meter::TOTAL_BILLS));
    let mut bills = Check {
        name: "bills".into(),
        metered: drop,
        counted: named_bills,
        money: true,
        verdict: verdict(drop, named_bills),
    };
    // Bills of unnamed value explain a positive difference only when there are some.
    if bills.verdict == Verdict::Discrepancy && e.bills_unnamed > 0 && bills.difference() > 0 {
        bills.verdict = Verdict::Unverifiable;
    }
    checks.push(bills);
    let played = i128::try_from(bucket.meter(meter::GAMES_PLAYED)).unwrap_or(i128::MAX);
    let starts = i128::from(e.game_starts);
    checks.push(Check {
        name: "games".into(),
        metered: played,
        counted: starts,
        money: false,
        verdict: verdict(played, starts),
    });
    let jackpot = credits(bucket.meter(meter::JACKPOT));
    let handpaid = credits(e.handpaid_credits);
    checks.push(Check {
        name: "handpays".into(),
        metered: jackpot,
        counted: handpaid,
        money: true,
        verdict: verdict(jackpot, handpaid),
    });
    if e.game_starts > 0 && e.rte_game_starts == e.game_starts {
        let coin_in = credits(bucket.meter(meter::COIN_IN));
        let wagered = credits(e.wagered_credits);
        checks.push(Check {
            name: "wagers".into(),
            metered: coin_in,
            counted: wagered,
            money: true,
            verdict: verdict(coin_in, wagered),
        });
    }
    let overall = if checks.iter().any(|c| c.verdict == Verdict::Discrepancy) {
        Verdict::Discrepancy
    } else if checks.iter().any(|c| c.verdict == Verdict::Unverifiable) {
        Verdict::Unverifiable
    } else {
        Verdict::Balanced
    };
    Reconciliation {
        verdict: overall,
        checks,
        reasons: reasons(bucket),
        intervals: bucket.intervals,
    }
}

fn reasons(bucket: &Bucket) -> Vec<String> {
    let f = &bucket.flags;
    let mut out = Vec::new();
    if f.meter_resets > 0 {
        out.push(format!(
            "{} meter reset(s) (RAM clear or board swap): deltas across them are unknown",
            f.meter_resets
        ));
    }
    if f.missing_events > 0 {
        out.push(format!(
            "{} event(s) of this machine's edge were lost before the hub (sequence gap)",
            f.missing_events
        ));
    }
    if f.exception_overflows > 0 {
        out.push(format!(
            "the machine's exception queue overflowed {} time(s): exceptions were lost at the machine",
            f.exception_overflows
        ));
    }
    if f.comms_lost > 0 {
        out.push(format!(
            "comms with the machine were lost {} time(s) (exceptions wait in the machine's queue, so this alone loses nothing)",
            f.comms_lost
        ));
    }
    if f.power_lost > 0 {
        out.push(format!("AC power was lost {} time(s)", f.power_lost));
    }
    if f.soft_meter_resets > 0 {
        out.push(format!(
            "soft meters were reset {} time(s)",
            f.soft_meter_resets
        ));
    }
    if bucket.events.bills_unnamed > 0 {
        out.push(format!(
            "{} bill(s) of unnamed value (exception 4F)",
            bucket.events.bills_unnamed
        ));
    }
    if f.manual_readings > 0 {
        out.push(format!(
            "{} interval(s) bounded by meters entered by hand: events the machine queued while its \
             link was down are stored after them",
            f.manual_readings
        ));
    }
    if f.corrections > 0 {
        out.push(format!(
            "{} correction(s) of meters entered by hand posted",
            f.corrections
        ));
    }
    if f.rollovers > 0 {
        out.push(format!(
            "{} meter rollover(s), counted through",
            f.rollovers
        ));
    }
    out
}

/// The money figures of a bucket, in minor units (what people ask of a machine's day).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoneyFigures {
    pub coin_in: i128,
    pub coin_out: i128,
    pub jackpot: i128,
    pub handpaid_cancelled: i128,
    pub cancelled_credits: i128,
    /// Metered drop (meter 0x24, as the machine counts it).
    pub drop: i128,
    /// Cashable tickets in and out, in cents as SAS counts them (meters 0x0D, 0x0E).
    pub tickets_in_cents: u128,
    pub tickets_out_cents: u128,
    /// coin in − coin out − jackpots.
    pub net_win: i128,
    /// Expected win at the machine's par: coin in × (1 − par), when par is known.
    pub theoretical_win: Option<i128>,
    pub games_played: u128,
    pub games_won: u128,
    /// net win / coin in, in basis points (None with no coin in).
    pub actual_hold_bp: Option<i64>,
    /// 1 − par, in basis points.
    pub theoretical_hold_bp: Option<i64>,
}

/// The money figures of `bucket` for a machine of `denomination` and `par_bp`.
pub fn figures(bucket: &Bucket, denomination: u32, par_bp: Option<u32>) -> MoneyFigures {
    let credits = |code: u8| {
        i128::try_from(bucket.meter(code).saturating_mul(u128::from(denomination)))
            .unwrap_or(i128::MAX)
    };
    let coin_in = credits(meter::COIN_IN);
    let coin_out = credits(meter::COIN_OUT);
    let jackpot = credits(meter::JACKPOT);
    let net_win = coin_in - coin_out - jackpot;
    let theoretical_hold_bp = par_bp.map(|p| 10_000 - i64::from(p));
    MoneyFigures {
        coin_in,
        coin_out,
        jackpot,
        handpaid_cancelled: credits(meter::HANDPAID_CANCELLED),
        cancelled_credits: credits(0x04),
        drop: credits(meter::TOTAL_BILLS),
        tickets_in_cents: bucket.meter(meter::TICKET_IN_CENTS),
        tickets_out_cents: bucket.meter(meter::TICKET_OUT_CENTS),
        net_win,
        theoretical_win: theoretical_hold_bp.map(|h| coin_in * i128::from(h) / 10_000),
        games_played: bucket.meter(meter::GAMES_PLAYED),
        games_won: bucket.meter(meter::GAMES_WON),
        actual_hold_bp: (coin_in > 0)
            .then(|| i64::try_from(net_win * 10_000 / coin_in).unwrap_or(0)),
        theoretical_hold_bp,
    }
}
