//! Gaming days and hours: when a casino's day starts, in its own time zone.
//!
//! Invariants: a gaming day runs from `start_hour` local time to `start_hour` the next local day
//! (23 or 25 hours across a daylight-saving change); an instant belongs to exactly one gaming day
//! and one hour, and both are computed from the instant alone (no state), so a replay files every
//! event where the first pass did.

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{RoundMode, Timestamp, ToSpan, Unit, ZonedDateTimeRound};

/// A site's calendar.
#[derive(Debug, Clone)]
pub struct Calendar {
    zone: TimeZone,
    zone_name: String,
    start_hour: u8,
}

/// Why a calendar could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalendarError {
    #[error("time zone {0:?} is not in the tz database (for example \"Europe/Berlin\", \"UTC\")")]
    UnknownZone(String),
    #[error("gaming day start hour {0} is not an hour (0 to 23)")]
    BadHour(u8),
}

impl Calendar {
    pub fn new(zone: &str, start_hour: u8) -> Result<Self, CalendarError> {
        if start_hour > 23 {
            return Err(CalendarError::BadHour(start_hour));
        }
        let tz = TimeZone::get(zone).map_err(|_| CalendarError::UnknownZone(zone.to_owned()))?;
        Ok(Self {
            zone: tz,
            zone_name: zone.to_owned(),
            start_hour,
        })
    }

    pub fn utc() -> Self {
        Self {
            zone: TimeZone::UTC,
            zone_name: "UTC".into(),
            start_hour: 0,
        }
    }

    pub fn zone_name(&self) -> &str {
        &self.zone_name
    }

    pub fn start_hour(&self) -> u8 {
        self.start_hour
    }

    fn instant(us: i64) -> Timestamp {
        Timestamp::from_microsecond(us).unwrap_or(if us < 0 {
            Timestamp::MIN
        } else {
            Timestamp::MAX
        })
    }

    /// The gaming day `us` (Unix µs) belongs to.
    pub fn gaming_day(&self, us: i64) -> Date {
        let local = Self::instant(us)
            .to_zoned_datetime(self.zone.clone())
            .datetime();
        let shifted = local
            .checked_sub(i64::from(self.start_hour).hours())
            .unwrap_or(local);
        shifted.date()
    }

    /// When gaming day `day` starts and ends (Unix µs, end exclusive).
    pub fn day_bounds(&self, day: Date) -> (i64, i64) {
        let start = |d: Date| {
            d.at(self.start_hour as i8, 0, 0, 0)
                .to_zoned_datetime(self.zone.clone())
                .map(|z| z.timestamp().as_microsecond())
                .unwrap_or(0)
        };
        let next = day.tomorrow().unwrap_or(day);
        (start(day), start(next))
    }

    /// The start of the local hour `us` falls in (Unix µs).
    pub fn hour_start(&self, us: i64) -> i64 {
        let zoned = Self::instant(us).to_zoned_datetime(self.zone.clone());
        zoned
            .round(
                ZonedDateTimeRound::new()
                    .smallest(Unit::Hour)
                    .mode(RoundMode::Trunc),
            )
            .map(|z| z.timestamp().as_microsecond())
            .unwrap_or(us)
    }

    /// The local minute of the day (0–1439) at `us`.
    pub fn local_minute(&self, us: i64) -> u32 {
        let local = Self::instant(us)
            .to_zoned_datetime(self.zone.clone())
            .datetime();
        u32::from(local.hour().unsigned_abs()) * 60 + u32::from(local.minute().unsigned_abs())
    }

    /// `us` as RFC 3339 in this calendar's zone (with its offset).
    pub fn rfc3339(&self, us: i64) -> String {
        Self::instant(us)
            .to_zoned_datetime(self.zone.clone())
            .timestamp()
            .display_with_offset(self.offset_at(us))
            .to_string()
    }

    fn offset_at(&self, us: i64) -> jiff::tz::Offset {
        self.zone.to_offset(Self::instant(us))
    }
}

/// `us` (Unix µs) as RFC 3339 in UTC, to the microsecond.
pub fn rfc3339_utc(us: i64) -> String {
    Calendar::instant(us).to_string()
}

/// Reads an RFC 3339 time into Unix µs.
pub fn parse_rfc3339(text: &str) -> Result<i64, TimeError> {
    text.parse::<Timestamp>()
        .map(|t| t.as_microsecond())
        .map_err(|_| TimeError(text.to_owned()))
}

/// Reads a gaming day (`2026-11-30`).
pub fn parse_day(text: &str) -> Result<Date, TimeError> {
    text.parse::<Date>().map_err(|_| TimeError(text.to_owned()))
}

/// A time or date that does not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an RFC 3339 time or date (for example 2026-11-30T06:00:00Z or 2026-11-30)")]
pub struct TimeError(pub String);

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn us(text: &str) -> i64 {
        parse_rfc3339(text).unwrap()
    }

    #[test]
    fn the_small_hours_belong_to_the_previous_gaming_day() {
        let cal = Calendar::new("Europe/Berlin", 6).unwrap();
        // 05:59 Berlin on 1 Dec (04:59 UTC) is still 30 Nov's gaming day; 06:00 is 1 Dec's.
        assert_eq!(
            cal.gaming_day(us("2026-12-01T04:59:59Z")).to_string(),
            "2026-11-30"
        );
        assert_eq!(
            cal.gaming_day(us("2026-12-01T05:00:00Z")).to_string(),
            "2026-12-01"
        );
        let (start, end) = cal.day_bounds(parse_day("2026-12-01").unwrap());
        assert_eq!(start, us("2026-12-01T05:00:00Z"));
        assert_eq!(end, us("2026-12-02T05:00:00Z"));
    }

    #[test]
    fn a_daylight_saving_change_makes_a_23_hour_gaming_day() {
        let cal = Calendar::new("Europe/Berlin", 6).unwrap();
        // Clocks go forward at 02:00 on Sunday 29 March, inside the gaming day of the 28th.
        let (start, end) = cal.day_bounds(parse_day("2026-03-28").unwrap());
        assert_eq!((end - start) / 3_600_000_000, 23);
    }

    #[test]
    fn hours_start_on_the_local_hour_and_times_print_with_the_offset() {
        let cal = Calendar::new("Asia/Kolkata", 0).unwrap();
        assert_eq!(
            cal.hour_start(us("2026-11-30T10:45:00Z")),
            us("2026-11-30T10:30:00Z")
        );
        assert_eq!(
            cal.rfc3339(us("2026-11-30T10:30:00Z")),
            "2026-11-30T16:00:00+05:30"
        );
        assert_eq!(rfc3339_utc(1_500_000), "1970-01-01T00:00:01.5Z");
    }

    #[test]
    fn unknown_zones_and_hours_are_refused_by_name() {
        assert_eq!(
            Calendar::new("Mars/Olympus", 6).unwrap_err(),
            CalendarError::UnknownZone("Mars/Olympus".into())
        );
        assert_eq!(
            Calendar::new("UTC", 24).unwrap_err(),
            CalendarError::BadHour(24)
        );
        assert!(parse_rfc3339("yesterday").is_err());
    }
}
