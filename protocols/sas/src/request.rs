//! Host requests: the general poll and the long polls of types R, S, M and G, with the
//! per-command request-length table (which the EGM simulator also uses to frame requests that
//! arrive without a wake-up bit).

use crate::bcd::{Bcd, BcdError};
use crate::crc::{crc_ok, with_crc};

/// What goes on the line. The host sets the wake-up (9th) bit on the first byte only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub bytes: Vec<u8>,
    pub wakeup_first: bool,
}

/// A request could not be built or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("address {0} is not 1-127 (0 is only for global polls)")]
    BadAddress(u8),
    #[error("long poll {0:#04x} is not in the request-length table")]
    UnknownCommand(u8),
    #[error("long poll {command:#04x} is {expected} bytes long, not {got}")]
    LengthMismatch {
        command: u8,
        expected: usize,
        got: usize,
    },
    #[error(
        "long poll {command:#04x} declares {declared} bytes after its length byte but carries {got}"
    )]
    BadLengthByte {
        command: u8,
        declared: usize,
        got: usize,
    },
    #[error("long poll {0:#04x} has a bad CRC")]
    BadCrc(u8),
    #[error("{0}")]
    Bcd(#[from] BcdError),
    #[error("empty request")]
    Empty,
}

/// The length of a long poll request, address and CRC included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestLength {
    /// Exactly this many bytes (2 = type R: address and command, no CRC).
    Fixed(usize),
    /// A length byte after the command counts what follows it, CRC excluded: 5 + length.
    Variable,
}

/// The request-length table (reference §3.2).
pub fn request_length(command: u8) -> Option<RequestLength> {
    use RequestLength::{Fixed, Variable};
    Some(match command {
        0x0F..=0x20 | 0x22..=0x2C | 0x30..=0x4B | 0x4E | 0x4F | 0x51 | 0x54..=0x57 => Fixed(2),
        0x01..=0x07 | 0x0A | 0x0B | 0x94 => Fixed(4),
        0x0E | 0x4D | 0x50 | 0x66 | 0xA8 | 0xAA => Fixed(5),
        0x21 | 0x2D | 0x2E | 0x52 | 0x53 | 0x83 | 0x95..=0x9A | 0xA0 | 0xA4 | 0xB5 | 0xB6 => {
            Fixed(6)
        }
        0x09 => Fixed(7),
        0x74 | 0x5F | 0xB4 => Fixed(8),
        0x08 | 0x77 | 0x8A => Fixed(9),
        0x4C => Fixed(10),
        0x7F | 0x80 => Fixed(11),
        0x58 | 0x8C => Fixed(13),
        0x8B => Fixed(15),
        0x2F
        | 0x6E
        | 0x6F
        | 0x71..=0x73
        | 0x75
        | 0x76
        | 0x7A..=0x7D
        | 0x86
        | 0xAF
        | 0xB0
        | 0xB7 => Variable,
        _ => return None,
    })
}

/// A host request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `0x80 | address`; address 0 is the global (sync) poll no EGM answers.
    GeneralPoll { address: u8 },
    /// A long poll: type R when `data` is empty and the table says 2 bytes, otherwise type S/M
    /// (address 1-127) or G (address 0) with a CRC. For variable-length polls `data` starts with
    /// the length byte.
    LongPoll {
        address: u8,
        command: u8,
        data: Vec<u8>,
    },
}

fn check_address(address: u8, global_allowed: bool) -> Result<(), RequestError> {
    if address <= 127 && (address != 0 || global_allowed) {
        Ok(())
    } else {
        Err(RequestError::BadAddress(address))
    }
}

impl Request {
    pub fn general_poll(address: u8) -> Self {
        Request::GeneralPoll { address }
    }

    /// A long poll without data (type R, or a type S control like 01 shutdown).
    pub fn long(address: u8, command: u8) -> Self {
        Request::LongPoll {
            address,
            command,
            data: Vec::new(),
        }
    }

    /// LP 01: lock out play.
    pub fn shutdown(address: u8) -> Self {
        Self::long(address, 0x01)
    }

    /// LP 02: enable play.
    pub fn startup(address: u8) -> Self {
        Self::long(address, 0x02)
    }

    /// LP 06 / 07: enable or disable the bill acceptor.
    pub fn bill_acceptor(address: u8, enable: bool) -> Self {
        Self::long(address, if enable { 0x06 } else { 0x07 })
    }

    /// LP 0E: real-time event reporting on or off.
    pub fn real_time_events(address: u8, on: bool) -> Self {
        Request::LongPoll {
            address,
            command: 0x0E,
            data: vec![u8::from(on)],
        }
    }

    /// LP 09 (type M): enable or disable game `game` (1-9999).
    pub fn enable_game(address: u8, game: u16, enable: bool) -> Result<Self, RequestError> {
        let mut data = Bcd::encode(u64::from(game), 2)?;
        data.push(u8::from(enable));
        Ok(Request::LongPoll {
            address,
            command: 0x09,
            data,
        })
    }

    /// LP 21: ROM signature with the host's seed (the answer comes later, see [`crate::Reply`]).
    pub fn rom_signature(address: u8, seed: u16) -> Self {
        Request::LongPoll {
            address,
            command: crate::data::ROM_SIGNATURE,
            data: seed.to_be_bytes().to_vec(),
        }
    }

    /// LP 2F (type M): selected meters of game `game` (0 = the machine), 1-10 meter codes.
    pub fn selected_meters(address: u8, game: u16, codes: &[u8]) -> Result<Self, RequestError> {
        if codes.is_empty() || codes.len() > 10 {
            return Err(RequestError::BadLengthByte {
                command: 0x2F,
                declared: codes.len() + 2,
                got: codes.len() + 2,
            });
        }
        let mut data = vec![(codes.len() + 2) as u8];
        data.extend(Bcd::encode(u64::from(game), 2)?);
        data.extend_from_slice(codes);
        Ok(Request::LongPoll {
            address,
            command: 0x2F,
            data,
        })
    }

    /// LP 8A: legacy bonus of `credits` (8 BCD digits) with a tax status byte.
    pub fn legacy_bonus(address: u8, credits: u64, tax_status: u8) -> Result<Self, RequestError> {
        let mut data = Bcd::encode(credits, 4)?;
        data.push(tax_status);
        Ok(Request::LongPoll {
            address,
            command: 0x8A,
            data,
        })
    }

    /// LP 94: remote handpay reset.
    pub fn handpay_reset(address: u8) -> Self {
        Self::long(address, 0x94)
    }

    /// LP 72 interrogation of the current AFT transfer (`72 02 FF 00`).
    pub fn aft_interrogate(address: u8) -> Self {
        Request::LongPoll {
            address,
            command: 0x72,
            data: vec![0x02, 0xFF, 0x00],
        }
    }

    /// LP 74: AFT lock and status (lock code FF = interrogate only).
    pub fn aft_lock_status(
        address: u8,
        lock_code: u8,
        condition: u8,
        timeout_centis: u16,
    ) -> Result<Self, RequestError> {
        let mut data = vec![lock_code, condition];
        data.extend(Bcd::encode(u64::from(timeout_centis), 2)?);
        Ok(Request::LongPoll {
            address,
            command: 0x74,
            data,
        })
    }

    pub fn address(&self) -> u8 {
        match self {
            Request::GeneralPoll { address } | Request::LongPoll { address, .. } => *address,
        }
    }

    /// The long poll's command, `None` for a general poll.
    pub fn command(&self) -> Option<u8> {
        match self {
            Request::GeneralPoll { .. } => None,
            Request::LongPoll { command, .. } => Some(*command),
        }
    }

    /// The bytes for the line, checked against the request-length table.
    pub fn encode(&self) -> Result<Frame, RequestError> {
        let bytes = match self {
            Request::GeneralPoll { address } => {
                check_address(*address, true)?;
                vec![0x80 | address]
            }
            Request::LongPoll {
                address,
                command,
                data,
            } => {
                check_address(*address, true)?;
                let length =
                    request_length(*command).ok_or(RequestError::UnknownCommand(*command))?;
                match length {
                    RequestLength::Fixed(2) => {
                        if !data.is_empty() {
                            return Err(RequestError::LengthMismatch {
                                command: *command,
                                expected: 2,
                                got: 2 + data.len(),
                            });
                        }
                        vec![*address, *command]
                    }
                    RequestLength::Fixed(n) => {
                        if 4 + data.len() != n {
                            return Err(RequestError::LengthMismatch {
                                command: *command,
                                expected: n,
                                got: 4 + data.len(),
                            });
                        }
                        with_crc(&[&[*address, *command][..], data].concat())
                    }
                    RequestLength::Variable => {
                        let declared = data.first().map_or(0, |l| usize::from(*l));
                        if data.is_empty() || declared != data.len() - 1 {
                            return Err(RequestError::BadLengthByte {
                                command: *command,
                                declared,
                                got: data.len().saturating_sub(1),
                            });
                        }
                        with_crc(&[&[*address, *command][..], data].concat())
                    }
                }
            }
        };
        Ok(Frame {
            bytes,
            wakeup_first: true,
        })
    }

    /// Reads a request as the EGM receives it (the first byte carried the wake-up bit), checking
    /// the length table and the CRC.
    pub fn decode(bytes: &[u8]) -> Result<Self, RequestError> {
        let (&first, rest) = bytes.split_first().ok_or(RequestError::Empty)?;
        if first & 0x80 != 0 && rest.is_empty() {
            return Ok(Request::GeneralPoll {
                address: first & 0x7f,
            });
        }
        check_address(first, true)?;
        let &command = rest.first().ok_or(RequestError::Empty)?;
        let length = request_length(command).ok_or(RequestError::UnknownCommand(command))?;
        let expected = match length {
            RequestLength::Fixed(n) => n,
            RequestLength::Variable => 5 + usize::from(*bytes.get(2).ok_or(RequestError::Empty)?),
        };
        if bytes.len() != expected {
            return Err(RequestError::LengthMismatch {
                command,
                expected,
                got: bytes.len(),
            });
        }
        if expected > 2 && !crc_ok(bytes) {
            return Err(RequestError::BadCrc(command));
        }
        let data = if expected > 2 {
            bytes[2..expected - 2].to_vec()
        } else {
            Vec::new()
        };
        Ok(Request::LongPoll {
            address: first,
            command,
            data,
        })
    }
}
