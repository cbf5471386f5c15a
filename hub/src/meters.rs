//! Meter accounting from SAS meter readings: per device and meter, the total increase over a
//! sequence of absolute readings, rollover-aware, with resets (RAM clear, board swap) counted
//! apart instead of being read as huge negative or positive movements.
//!
//! Invariant: feeding the same readings again in the same order yields the same totals, and a
//! repeated reading adds nothing (delta 0), so at-least-once delivery cannot double-count money.

use std::collections::BTreeMap;

use outpost_link::{EventBody, MeterReading, SasEvent};
use outpost_sas::{Bcd, MeterDelta};

/// One meter's account.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct MeterAccount {
    /// The last reading.
    pub last: u64,
    /// Sum of increases between readings (through rollovers).
    pub increase: u128,
    pub rollovers: u32,
    /// Drops that were not rollovers: the increase across them is unknown.
    pub resets: u32,
    pub readings: u64,
}

/// Accounts of every device's meters (game 0: the whole machine).
#[derive(Debug, Clone, Default)]
pub struct MeterBook {
    accounts: BTreeMap<(String, u8), MeterAccount>,
}

impl MeterBook {
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes one event in sequence order; non-meter events are ignored.
    pub fn apply(&mut self, device: &str, body: &EventBody) {
        if let EventBody::Sas(SasEvent::Meters { game: 0, meters }) = body {
            for reading in meters {
                self.reading(device, *reading);
            }
        }
    }

    fn reading(&mut self, device: &str, reading: MeterReading) {
        let account = self
            .accounts
            .entry((device.to_owned(), reading.code))
            .or_default();
        if account.readings > 0 {
            let previous = Bcd {
                value: account.last,
                bytes: reading.bytes,
            };
            let current = Bcd {
                value: reading.value,
                bytes: reading.bytes,
            };
            match MeterDelta::between(previous, current) {
                MeterDelta::Increase { by, rolled_over } => {
                    account.increase += u128::from(by);
                    account.rollovers += u32::from(rolled_over);
                }
                MeterDelta::Reset { .. } => account.resets += 1,
            }
        }
        account.last = reading.value;
        account.readings += 1;
    }

    pub fn account(&self, device: &str, code: u8) -> Option<MeterAccount> {
        self.accounts.get(&(device.to_owned(), code)).copied()
    }

    pub fn accounts(&self) -> impl Iterator<Item = (&(String, u8), &MeterAccount)> {
        self.accounts.iter()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn meters(value: u64) -> EventBody {
        EventBody::Sas(SasEvent::Meters {
            game: 0,
            meters: vec![MeterReading {
                code: 0,
                value,
                bytes: 4,
            }],
        })
    }

    #[test]
    fn increases_add_up_through_a_rollover_and_repeats_add_nothing() {
        let mut book = MeterBook::new();
        for v in [99_999_000, 99_999_500, 99_999_500, 200] {
            book.apply("egm-1", &meters(v));
        }
        let a = book.account("egm-1", 0).unwrap();
        assert_eq!(a.increase, 500 + 500 + 200);
        assert_eq!(a.rollovers, 1);
        assert_eq!(a.resets, 0);
    }

    #[test]
    fn a_ram_clear_is_a_reset_not_a_movement() {
        let mut book = MeterBook::new();
        for v in [5_000, 6_000, 10, 30] {
            book.apply("egm-1", &meters(v));
        }
        let a = book.account("egm-1", 0).unwrap();
        assert_eq!(a.increase, 1_000 + 20);
        assert_eq!(a.resets, 1);
    }
}
