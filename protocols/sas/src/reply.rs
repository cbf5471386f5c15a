//! EGM replies: a streaming decoder that classifies what came back against what was asked.
//!
//! Feed bytes as they arrive ([`ReplyDecoder::feed`]); call [`ReplyDecoder::finish`] when the line
//! has been quiet for the inter-byte limit (5 ms) or the reply window (20 ms) has passed. Some
//! replies can only be told apart by that silence: a lone address byte is an ACK (or, after a
//! general poll to an EGM whose address is also an exception code, that exception), but it may
//! also be the start of a BUSY, an event or a ROM signature.
//!
//! Leading bytes that are neither the EGM's address nor its NACK are skipped (the decoder resyncs on
//! the address, not on the command). A frame for this address that fails its CRC is an error at
//! once; the host retries (implied NACK).

use crate::crc::{crc_ok, with_crc};
use crate::request::Request;

/// Why a reply was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    #[error("no reply ({skipped} bytes of noise skipped)")]
    NoReply { skipped: usize },
    #[error("reply echoes command {got:#04x}, expected {expected:#04x}")]
    WrongCommand { expected: u8, got: u8 },
    #[error("bad CRC on a {len}-byte reply")]
    BadCrc { len: usize },
    #[error("reply stopped after {got} of {expected} bytes")]
    Truncated { expected: usize, got: usize },
    #[error("{0} unexpected bytes after the reply")]
    TrailingBytes(usize),
    #[error("length byte {declared} is more than {max} allowed for command {command:#04x}")]
    LengthTooLarge {
        command: u8,
        declared: usize,
        max: usize,
    },
    #[error("malformed reply: {0}")]
    Malformed(String),
    #[error("the EGM refused the poll (NACK)")]
    Nacked,
}

/// What a reply was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Answer to a general poll: an exception code (00 = no activity).
    Exception(u8),
    /// The EGM accepted a control poll.
    Ack,
    /// The EGM refused the poll (bad CRC or data): `address | 0x80`.
    Nack,
    /// `address 00`: try again later.
    Busy,
    /// `address command [data] CRC`: the bytes between the command and the CRC (the length byte
    /// included for variable-length replies).
    Data { command: u8, payload: Vec<u8> },
    /// `address FF code [data] CRC`, in real-time event mode, in reply to any poll. The poll it
    /// answered must be sent again.
    RealTimeEvent { code: u8, data: Vec<u8> },
    /// `address 21 signature CRC`, the answer to an earlier LP 21, arriving in reply to a later poll.
    RomSignature(u16),
}

impl Reply {
    /// The bytes an EGM at `address` sends for this reply (the simulator's side).
    pub fn encode(&self, address: u8) -> Vec<u8> {
        match self {
            Reply::Exception(code) => vec![*code],
            Reply::Ack => vec![address],
            Reply::Nack => vec![address | 0x80],
            Reply::Busy => vec![address, 0x00],
            Reply::Data { command, payload } => {
                with_crc(&[&[address, *command][..], payload].concat())
            }
            Reply::RealTimeEvent { code, data } => {
                with_crc(&[&[address, 0xFF, *code][..], data].concat())
            }
            Reply::RomSignature(signature) => {
                with_crc(&[&[address, 0x21][..], &signature.to_be_bytes()].concat())
            }
        }
    }
}

/// How long a data reply is, address and CRC included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyLength {
    Fixed(usize),
    /// A length byte at offset 2 counts what follows it, CRC excluded; at most `max`.
    Variable {
        max: usize,
    },
}

/// Data-reply lengths of the long polls the codec knows (reference §3.6, §3.7).
pub fn reply_length(command: u8) -> Option<ReplyLength> {
    use ReplyLength::{Fixed, Variable};
    Some(match command {
        0x10..=0x18 | 0x1A | 0x20 => Fixed(8),
        0x19 | 0x1F => Fixed(24),
        0x1B => Fixed(24),
        0x1C => Fixed(36),
        0x1E => Fixed(28),
        0x0F => Fixed(28),
        0x51 => Fixed(6),
        0x2F => Variable { max: 0x3E },
        0x54 => Variable { max: 43 },
        0x72 | 0x74 | 0x6F | 0xAF => Variable { max: 255 },
        _ => return None,
    })
}

/// Data bytes after the code of a real-time event (reference §3.9); 0 for the plain ones.
pub fn event_data_len(code: u8) -> usize {
    match code {
        0x7E => 8,
        0x7F => 4,
        0x4F => 6,
        0x7C => 10,
        _ => 0,
    }
}

/// What the outstanding request lets the EGM answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expectation {
    /// After a general poll: one exception byte (in real-time mode, silence means no activity).
    GeneralPoll { address: u8, real_time: bool },
    /// After a control poll: ACK, NACK or BUSY.
    Ack { address: u8, command: u8 },
    /// After a poll that returns data.
    Data {
        address: u8,
        command: u8,
        length: ReplyLength,
    },
}

impl Expectation {
    /// What `request` may be answered with; `None` for a global poll, which nobody answers.
    pub fn for_request(request: &Request, real_time: bool) -> Option<Self> {
        let address = request.address();
        if address == 0 {
            return None;
        }
        Some(match request {
            Request::GeneralPoll { .. } => Expectation::GeneralPoll { address, real_time },
            Request::LongPoll { command, .. } => match reply_length(*command) {
                Some(length) => Expectation::Data {
                    address,
                    command: *command,
                    length,
                },
                None => Expectation::Ack {
                    address,
                    command: *command,
                },
            },
        })
    }

    /// The EGM the reply must come from.
    pub fn address(&self) -> u8 {
        match self {
            Expectation::GeneralPoll { address, .. }
            | Expectation::Ack { address, .. }
            | Expectation::Data { address, .. } => *address,
        }
    }
}

/// Classifies the bytes an EGM sends after one request.
#[derive(Debug, Clone)]
pub struct ReplyDecoder {
    expectation: Expectation,
    buffer: Vec<u8>,
    skipped: usize,
    outcome: Option<(Result<Reply, ReplyError>, usize)>,
}

impl ReplyDecoder {
    pub fn new(expectation: Expectation) -> Self {
        Self {
            expectation,
            buffer: Vec::new(),
            skipped: 0,
            outcome: None,
        }
    }

    /// Adds bytes; returns the classification as soon as it is certain.
    pub fn feed(&mut self, bytes: &[u8]) -> Option<Result<Reply, ReplyError>> {
        self.buffer.extend_from_slice(bytes);
        if self.outcome.is_some() {
            // Decided already; what follows counts as trailing bytes in `finish`.
            return None;
        }
        let decided = self.classify(false)?;
        self.outcome = Some(decided.clone());
        Some(decided.0)
    }

    /// The line went quiet: the final verdict (bytes after a complete reply are an error).
    pub fn finish(&mut self) -> Result<Reply, ReplyError> {
        let (result, used) = match self.outcome.clone() {
            Some(decided) => decided,
            None => match self.classify(true) {
                Some(decided) => decided,
                None => (
                    Err(ReplyError::NoReply {
                        skipped: self.skipped,
                    }),
                    self.buffer.len(),
                ),
            },
        };
        let extra = self.buffer.len().saturating_sub(used);
        match result {
            Ok(_) if extra > 0 => Err(ReplyError::TrailingBytes(extra)),
            other => other,
        }
    }

    /// Decides, or returns `None` to wait for more bytes. `quiet`: no more bytes are coming.
    fn classify(&mut self, quiet: bool) -> Option<(Result<Reply, ReplyError>, usize)> {
        let address = self.expectation.address();
        if let Expectation::GeneralPoll { real_time, .. } = self.expectation {
            match self.buffer.first() {
                None if quiet && real_time => return Some((Ok(Reply::Exception(0)), 0)),
                None => return quiet.then_some((Err(ReplyError::NoReply { skipped: 0 }), 0)),
                // A byte other than our address can only be an exception code.
                Some(&code) if code != address => return Some((Ok(Reply::Exception(code)), 1)),
                Some(_) if self.buffer.len() == 1 => {
                    // Our address: an exception with the same value, or a frame starting.
                    return quiet.then_some((Ok(Reply::Exception(address)), 1));
                }
                Some(_) => return self.classify_frame(address, quiet),
            }
        }
        // Resync on the address: drop noise in front of it.
        let start = self
            .buffer
            .iter()
            .position(|&b| b == address || b == address | 0x80)
            .unwrap_or(self.buffer.len());
        if start > 0 {
            self.skipped += start;
            self.buffer.drain(..start);
        }
        match self.buffer.first() {
            None => quiet.then_some({
                (
                    Err(ReplyError::NoReply {
                        skipped: self.skipped,
                    }),
                    0,
                )
            }),
            Some(&b) if b == address | 0x80 => Some((Ok(Reply::Nack), 1)),
            Some(_) => self.classify_frame(address, quiet),
        }
    }

    fn classify_frame(
        &self,
        address: u8,
        quiet: bool,
    ) -> Option<(Result<Reply, ReplyError>, usize)> {
        let b = &self.buffer;
        let Some(&second) = b.get(1) else {
            // A lone address: ACK for a control poll, otherwise too short.
            return quiet.then_some(match self.expectation {
                Expectation::Ack { .. } => (Ok(Reply::Ack), 1),
                Expectation::GeneralPoll { .. } => (Ok(Reply::Exception(address)), 1),
                Expectation::Data { .. } => (
                    Err(ReplyError::Truncated {
                        expected: 3,
                        got: 1,
                    }),
                    1,
                ),
            });
        };
        let framed = |total: usize,
                      make: &dyn Fn(&[u8]) -> Reply|
         -> Option<(Result<Reply, ReplyError>, usize)> {
            if b.len() < total {
                return quiet.then_some({
                    (
                        Err(ReplyError::Truncated {
                            expected: total,
                            got: b.len(),
                        }),
                        b.len(),
                    )
                });
            }
            let frame = &b[..total];
            if !crc_ok(frame) {
                return Some((Err(ReplyError::BadCrc { len: total }), total));
            }
            Some((Ok(make(frame)), total))
        };
        match second {
            0x00 => Some((Ok(Reply::Busy), 2)),
            0xFF => {
                let Some(&code) = b.get(2) else {
                    return quiet.then_some({
                        (
                            Err(ReplyError::Truncated {
                                expected: 5,
                                got: 2,
                            }),
                            2,
                        )
                    });
                };
                let total = 3 + event_data_len(code) + 2;
                framed(total, &|f| Reply::RealTimeEvent {
                    code,
                    data: f[3..f.len() - 2].to_vec(),
                })
            }
            // LP 21 itself is only ACKed; its signature arrives in reply to a later poll.
            0x21 => framed(6, &|f| {
                Reply::RomSignature(u16::from_be_bytes([f[2], f[3]]))
            }),
            command => {
                let (expected, length) = match self.expectation {
                    Expectation::Data {
                        command: expected,
                        length,
                        ..
                    } => (expected, length),
                    Expectation::Ack {
                        command: expected, ..
                    } => {
                        return Some((
                            Err(ReplyError::WrongCommand {
                                expected,
                                got: command,
                            }),
                            b.len(),
                        ));
                    }
                    Expectation::GeneralPoll { .. } => {
                        return Some((
                            Err(ReplyError::Malformed(format!(
                                "frame with command {command:#04x} in reply to a general poll"
                            ))),
                            b.len(),
                        ));
                    }
                };
                if command != expected {
                    return Some((
                        Err(ReplyError::WrongCommand {
                            expected,
                            got: command,
                        }),
                        b.len(),
                    ));
                }
                let total = match length {
                    ReplyLength::Fixed(n) => n,
                    ReplyLength::Variable { max } => {
                        let Some(&declared) = b.get(2) else {
                            return quiet.then_some({
                                (
                                    Err(ReplyError::Truncated {
                                        expected: 5,
                                        got: 2,
                                    }),
                                    2,
                                )
                            });
                        };
                        let declared = usize::from(declared);
                        if declared > max {
                            return Some((
                                Err(ReplyError::LengthTooLarge {
                                    command,
                                    declared,
                                    max,
                                }),
                                b.len(),
                            ));
                        }
                        5 + declared
                    }
                };
                framed(total, &|f| Reply::Data {
                    command,
                    payload: f[2..f.len() - 2].to_vec(),
                })
            }
        }
    }
}
