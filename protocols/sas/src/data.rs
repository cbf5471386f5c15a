//! What a long poll's data reply says, as far as the host needs to understand it (reference §3.6).
//!
//! The edge turns each variant into one stored event; a reply it cannot read is
//! [`DataReply::Unread`] with the reason, so the caller keeps the raw bytes and loses nothing.
//! Invariant: [`data_reply`] never fails and never panics on any payload.

use crate::bcd::{Bcd, BcdError};
use crate::egm::meter;
use crate::meters::{MeterError, SelectedMeters, selected_meters};

/// LP 1B: handpay information.
pub const HANDPAY_INFO: u8 = 0x1B;
/// LP 1C: the legacy meter block.
pub const LEGACY_METERS: u8 = 0x1C;
/// LP 2F: selected meters for a game.
pub const SELECTED_METERS: u8 = 0x2F;
/// LP 21: ROM signature verification (its answer may come with a later poll).
pub const ROM_SIGNATURE: u8 = 0x21;

/// The meters of an LP 1C reply, in reply order, each 4 BCD bytes (coin in, coin out, drop,
/// jackpot, games played, games won; slot-door openings and power resets follow, and are counts
/// of events, not meters).
pub const LEGACY_METER_CODES: [u8; 6] = [
    meter::COIN_IN,
    meter::COIN_OUT,
    meter::TOTAL_BILLS,
    meter::JACKPOT,
    meter::GAMES_PLAYED,
    meter::GAMES_WON,
];

/// Exception 00: "no activity". A general poll's answer when nothing happened; not an event.
pub const NO_ACTIVITY: u8 = 0x00;

/// Whether an exception code reports something (every code but [`NO_ACTIVITY`]).
pub fn is_event(exception: u8) -> bool {
    exception != NO_ACTIVITY
}

/// A data reply, understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataReply {
    /// LP 2F.
    Meters(SelectedMeters),
    /// LP 1C: the meters of [`LEGACY_METER_CODES`] (game 0, the machine as a whole).
    LegacyMeters(Vec<(u8, Bcd)>),
    /// LP 1B: the amount of the pending handpay, in credits.
    Handpay { amount: Bcd },
    /// A reply the host does not interpret (kept raw).
    Other,
    /// A reply to an interpreted poll that does not read (kept raw, with the reason).
    Unread(DataError),
}

/// Why a data reply the host interprets could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DataError {
    #[error("LP 2F reply: {0}")]
    SelectedMeters(#[from] MeterError),
    #[error("LP 1C reply is {got} bytes; its meters need {needed}")]
    LegacyShort { got: usize, needed: usize },
    #[error("LP 1C meter {code:#04x}: {source}")]
    LegacyBcd {
        code: u8,
        #[source]
        source: BcdError,
    },
    #[error("LP 1B reply is {got} bytes; the amount ends at byte 7")]
    HandpayShort { got: usize },
    #[error("LP 1B amount: {0}")]
    HandpayBcd(#[source] BcdError),
}

/// Reads the data reply to `command` (its payload without address, command and CRC); `requested`
/// are the meters an LP 2F asked for.
pub fn data_reply(command: u8, payload: &[u8], requested: &[u8]) -> DataReply {
    let read = match command {
        SELECTED_METERS => selected_meters(payload, requested)
            .map(DataReply::Meters)
            .map_err(DataError::from),
        LEGACY_METERS => legacy_meters(payload).map(DataReply::LegacyMeters),
        HANDPAY_INFO => handpay_amount(payload).map(|amount| DataReply::Handpay { amount }),
        _ => Ok(DataReply::Other),
    };
    read.unwrap_or_else(DataReply::Unread)
}

fn legacy_meters(payload: &[u8]) -> Result<Vec<(u8, Bcd)>, DataError> {
    let needed = LEGACY_METER_CODES.len() * 4;
    if payload.len() < needed {
        return Err(DataError::LegacyShort {
            got: payload.len(),
            needed,
        });
    }
    LEGACY_METER_CODES
        .iter()
        .zip(payload.chunks_exact(4))
        .map(|(&code, bytes)| {
            Bcd::decode(bytes)
                .map(|value| (code, value))
                .map_err(|source| DataError::LegacyBcd { code, source })
        })
        .collect()
}

/// LP 1B: progressive group (1), level (1), amount (5 BCD), partial pay (2 BCD), reset id, …
fn handpay_amount(payload: &[u8]) -> Result<Bcd, DataError> {
    let bytes = payload
        .get(2..7)
        .ok_or(DataError::HandpayShort { got: payload.len() })?;
    Bcd::decode(bytes).map_err(DataError::HandpayBcd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_legacy_meter_block_reads_its_six_meters_in_reply_order() {
        let mut payload = Vec::new();
        for value in [1u8, 2, 3, 4, 5, 6, 7, 8] {
            payload.extend_from_slice(&[0, 0, 0, value]);
        }
        let DataReply::LegacyMeters(meters) = data_reply(LEGACY_METERS, &payload, &[]) else {
            panic!("not read");
        };
        let read: Vec<(u8, u64)> = meters.iter().map(|(c, b)| (*c, b.value)).collect();
        assert_eq!(
            read,
            vec![
                (0x00, 1),
                (0x01, 2),
                (0x24, 3),
                (0x02, 4),
                (0x05, 5),
                (0x06, 6)
            ]
        );
    }

    #[test]
    fn a_short_or_non_bcd_reply_is_unread_with_its_reason() {
        assert_eq!(
            data_reply(LEGACY_METERS, &[0; 23], &[]),
            DataReply::Unread(DataError::LegacyShort {
                got: 23,
                needed: 24
            })
        );
        assert!(matches!(
            data_reply(LEGACY_METERS, &[0x0A; 24], &[]),
            DataReply::Unread(DataError::LegacyBcd { code: 0x00, .. })
        ));
        assert_eq!(
            data_reply(HANDPAY_INFO, &[0, 0, 0, 0], &[]),
            DataReply::Unread(DataError::HandpayShort { got: 4 })
        );
    }

    #[test]
    fn a_handpay_amount_is_the_five_bcd_bytes_after_group_and_level() {
        let payload = [0x00, 0x00, 0x00, 0x00, 0x01, 0x23, 0x45, 0x00, 0x00, 0x00];
        assert!(matches!(
            data_reply(HANDPAY_INFO, &payload, &[]),
            DataReply::Handpay { amount } if amount.value == 12345
        ));
    }

    #[test]
    fn only_exception_zero_is_not_an_event() {
        assert!(!is_event(0x00));
        assert!((1..=255).all(is_event));
    }
}
