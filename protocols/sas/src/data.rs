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
/// LP 1F: send gaming machine ID and information.
pub const MACHINE_INFO: u8 = 0x1F;
/// LP 51: send number of games implemented.
pub const GAME_COUNT: u8 = 0x51;

/// SAS table C-4, the credit denominations in whole cents (codes for fractions of a cent, 1B–1F,
/// are not here). Checked against two independent tables (a Python host's and an EGM's).
const DENOMINATIONS: [(u8, u32); 26] = [
    (0x01, 1),
    (0x02, 5),
    (0x03, 10),
    (0x04, 25),
    (0x05, 50),
    (0x06, 100),
    (0x07, 500),
    (0x08, 1_000),
    (0x09, 2_000),
    (0x0A, 10_000),
    (0x0B, 20),
    (0x0C, 200),
    (0x0D, 250),
    (0x0E, 2_500),
    (0x0F, 5_000),
    (0x10, 20_000),
    (0x11, 25_000),
    (0x12, 50_000),
    (0x13, 100_000),
    (0x14, 200_000),
    (0x15, 250_000),
    (0x16, 500_000),
    (0x17, 2),
    (0x18, 3),
    (0x19, 15),
    (0x1A, 40),
];

/// The credit value in cents of denomination `code` (`None`: 00, none, or not in whole cents).
pub fn denomination_cents(code: u8) -> Option<u32> {
    DENOMINATIONS
        .iter()
        .find(|(c, _)| *c == code)
        .map(|(_, cents)| *cents)
}

/// The denomination code of a credit value in cents (`None` when table C-4 has none).
pub fn denomination_code(cents: u32) -> Option<u8> {
    DENOMINATIONS
        .iter()
        .find(|(_, v)| *v == cents)
        .map(|(code, _)| *code)
}

/// LP 1F's answer: who the machine is and its credit denomination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineInfo {
    pub game_id: String,
    pub additional_id: String,
    pub denomination_code: u8,
    /// Largest bet, in credits.
    pub max_bet: u8,
    pub progressive_group: u8,
    pub game_options: [u8; 2],
    pub paytable: String,
    /// Base payback percentage as the machine writes it (`9250` is 92.50 %).
    pub base_percent: String,
}

impl MachineInfo {
    /// The credit value in cents, when the code names one.
    pub fn denomination_cents(&self) -> Option<u32> {
        denomination_cents(self.denomination_code)
    }
}

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
    /// LP 1F.
    MachineInfo(MachineInfo),
    /// LP 51: how many games the machine has.
    GameCount(u16),
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
    #[error("LP 1F reply is {got} bytes; it has 20")]
    MachineInfoLength { got: usize },
    #[error("LP 51 reply: {0}")]
    GameCount(#[source] BcdError),
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
        MACHINE_INFO => machine_info(payload).map(DataReply::MachineInfo),
        GAME_COUNT => Bcd::decode(payload)
            .map_err(DataError::GameCount)
            .map(|n| DataReply::GameCount(u16::try_from(n.value).unwrap_or(u16::MAX))),
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

/// LP 1F: game id (2 ASCII), additional id (3 ASCII), denomination code, max bet, progressive
/// group, game options (2), paytable (6 ASCII), base % (4 ASCII).
pub fn machine_info(payload: &[u8]) -> Result<MachineInfo, DataError> {
    let bytes: &[u8; 20] = payload
        .try_into()
        .map_err(|_| DataError::MachineInfoLength { got: payload.len() })?;
    let text = |b: &[u8]| {
        String::from_utf8_lossy(b)
            .trim_matches(|c: char| c == '\0' || c.is_whitespace())
            .to_owned()
    };
    Ok(MachineInfo {
        game_id: text(&bytes[0..2]),
        additional_id: text(&bytes[2..5]),
        denomination_code: bytes[5],
        max_bet: bytes[6],
        progressive_group: bytes[7],
        game_options: [bytes[8], bytes[9]],
        paytable: text(&bytes[10..16]),
        base_percent: text(&bytes[16..20]),
    })
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
    fn a_machine_info_reply_names_its_denomination() {
        let mut payload = b"ABXYZ".to_vec();
        payload.extend_from_slice(&[0x04, 5, 0, 0, 0]);
        payload.extend_from_slice(b"PT0001");
        payload.extend_from_slice(b"9250");
        let DataReply::MachineInfo(info) = data_reply(MACHINE_INFO, &payload, &[]) else {
            panic!("not read");
        };
        assert_eq!(info.game_id, "AB");
        assert_eq!(info.paytable, "PT0001");
        assert_eq!(info.base_percent, "9250");
        assert_eq!(info.denomination_cents(), Some(25));
        assert!(matches!(
            data_reply(MACHINE_INFO, &payload[..19], &[]),
            DataReply::Unread(DataError::MachineInfoLength { got: 19 })
        ));
    }

    #[test]
    fn every_denomination_code_round_trips_and_fractions_of_a_cent_are_not_guessed() {
        for (code, cents) in DENOMINATIONS {
            assert_eq!(denomination_code(cents), Some(code));
            assert_eq!(denomination_cents(code), Some(cents));
        }
        assert_eq!(denomination_cents(0x00), None);
        assert_eq!(denomination_cents(0x1B), None);
    }

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
