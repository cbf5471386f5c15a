//! Meter payloads: LP 2F (selected meters for a game) and the single-meter polls.

use crate::bcd::{Bcd, BcdError};

/// Why a meter payload could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MeterError {
    #[error("meter payload too short: {0} bytes")]
    Short(usize),
    #[error("meter {code:#04x}: {source}")]
    Bcd {
        code: u8,
        #[source]
        source: BcdError,
    },
    #[error("length byte says {declared} bytes, payload has {got}")]
    Length { declared: usize, got: usize },
    #[error("meter {0:#04x} was not requested")]
    Unrequested(u8),
}

/// Bytes of a meter's value in LP 2F replies (reference §3.7): 5 for the cents meters, else 4.
pub fn meter_size(code: u8) -> usize {
    match code {
        0x0D..=0x10 | 0x80 | 0x82 | 0x84 | 0x86 | 0x88 | 0x8C | 0x8E | 0x90 | 0x92 => 5,
        0xA0..=0xBF if code.is_multiple_of(2) => 5,
        _ => 4,
    }
}

/// An LP 2F reply: the game and each meter read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectedMeters {
    pub game: u16,
    pub meters: Vec<(u8, Bcd)>,
}

/// Reads an LP 2F reply payload (`len game(2) {code value}…`), refusing meters not in `requested`.
pub fn selected_meters(payload: &[u8], requested: &[u8]) -> Result<SelectedMeters, MeterError> {
    let (&declared, rest) = payload.split_first().ok_or(MeterError::Short(0))?;
    if usize::from(declared) != rest.len() {
        return Err(MeterError::Length {
            declared: usize::from(declared),
            got: rest.len(),
        });
    }
    let game_bytes = rest.get(..2).ok_or(MeterError::Short(payload.len()))?;
    let game = Bcd::decode(game_bytes)
        .map_err(|source| MeterError::Bcd { code: 0, source })?
        .value as u16;
    let mut meters = Vec::new();
    let mut at = 2;
    while at < rest.len() {
        let code = rest[at];
        if !requested.contains(&code) {
            return Err(MeterError::Unrequested(code));
        }
        let size = meter_size(code);
        let value = rest
            .get(at + 1..at + 1 + size)
            .ok_or(MeterError::Short(payload.len()))?;
        let value = Bcd::decode(value).map_err(|source| MeterError::Bcd { code, source })?;
        meters.push((code, value));
        at += 1 + size;
    }
    Ok(SelectedMeters { game, meters })
}

/// A single 4-byte BCD meter (LP 10–17, 1A, 20).
pub fn single_meter(payload: &[u8]) -> Result<Bcd, MeterError> {
    let bytes = payload.get(..4).ok_or(MeterError::Short(payload.len()))?;
    Bcd::decode(bytes).map_err(|source| MeterError::Bcd { code: 0, source })
}
