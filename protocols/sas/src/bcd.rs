//! Packed BCD, MSB first, as SAS meters and amounts are sent. Every nibble must be 0–9.

/// A BCD field could not be read or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BcdError {
    #[error("invalid BCD nibble {nibble:#x} in byte {index}")]
    InvalidNibble { index: usize, nibble: u8 },
    #[error("{value} does not fit in {digits} BCD digits")]
    TooLarge { value: u64, digits: usize },
    #[error("{0} BCD bytes are more than a u64 holds")]
    TooLong(usize),
}

/// A BCD number with its width in bytes (meters are 4 or 5 bytes; 8 or 10 digits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Bcd {
    pub value: u64,
    pub bytes: u8,
}

impl Bcd {
    /// Reads packed BCD, MSB first.
    pub fn decode(bytes: &[u8]) -> Result<Self, BcdError> {
        if bytes.len() > 9 {
            return Err(BcdError::TooLong(bytes.len()));
        }
        let mut value: u64 = 0;
        for (index, &byte) in bytes.iter().enumerate() {
            for nibble in [byte >> 4, byte & 0x0f] {
                if nibble > 9 {
                    return Err(BcdError::InvalidNibble { index, nibble });
                }
                value = value * 10 + u64::from(nibble);
            }
        }
        Ok(Self {
            value,
            bytes: bytes.len() as u8,
        })
    }

    /// Writes `value` as `bytes` bytes of packed BCD.
    pub fn encode(value: u64, bytes: usize) -> Result<Vec<u8>, BcdError> {
        let digits = bytes * 2;
        if bytes > 9 || (digits < 20 && value >= 10u64.pow(digits as u32)) {
            return Err(BcdError::TooLarge { value, digits });
        }
        let mut out = vec![0u8; bytes];
        let mut rest = value;
        for byte in out.iter_mut().rev() {
            let low = (rest % 10) as u8;
            rest /= 10;
            let high = (rest % 10) as u8;
            rest /= 10;
            *byte = (high << 4) | low;
        }
        Ok(out)
    }

    /// The largest value this width holds, plus one: where the meter wraps.
    pub fn modulus(self) -> u64 {
        10u64.saturating_pow(u32::from(self.bytes) * 2)
    }
}

/// How a meter moved between two readings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum MeterDelta {
    /// It went up by this much (possibly through one rollover, when `rolled_over`).
    Increase { by: u64, rolled_over: bool },
    /// It went down without a plausible rollover: a RAM clear or a replaced board.
    Reset { from: u64, to: u64 },
}

impl MeterDelta {
    /// Compares readings of one meter. A drop is read as a rollover when the previous value was
    /// in the top tenth of the meter's range and the new one in the bottom tenth (an 8-digit
    /// meter wraps at 99,999,999); any other drop is a reset.
    pub fn between(previous: Bcd, current: Bcd) -> Self {
        if current.value >= previous.value {
            return MeterDelta::Increase {
                by: current.value - previous.value,
                rolled_over: false,
            };
        }
        let modulus = previous.modulus().max(current.modulus());
        let tenth = modulus / 10;
        if previous.value >= modulus - tenth && current.value < tenth {
            MeterDelta::Increase {
                by: modulus - previous.value + current.value,
                rolled_over: true,
            }
        } else {
            MeterDelta::Reset {
                from: previous.value,
                to: current.value,
            }
        }
    }
}
