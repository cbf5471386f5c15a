//! The `sync:` service's protocol (push and stat), on top of a stream: requests and responses are
//! `[4-byte id][u32 LE length or value][data]`.
//!
//! Push: `SEND` "path,mode" → `DATA` chunks (≤ 64 KiB each) → `DONE` mtime → `OKAY` | `FAIL` msg.
//! Stat: `STAT` path → `STAT` mode, size, mtime (all zero when the file does not exist). `QUIT`
//! ends the service.
//!
//! Invariants: [`SyncDecoder`] never panics, never reads past what it was given, and refuses a
//! data chunk over [`MAX_CHUNK`] or a path over [`MAX_PATH`].

/// The largest `DATA` chunk.
pub const MAX_CHUNK: usize = 64 * 1024;
/// The longest path (with `,mode`).
pub const MAX_PATH: usize = 1024;

/// A sync packet, either direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncPacket {
    /// `SEND` "path,mode".
    Send(String),
    Data(Vec<u8>),
    /// `DONE` with the file's modification time.
    Done(u32),
    /// `STAT` request with a path.
    Stat(String),
    /// `STAT` response.
    StatReply {
        mode: u32,
        size: u32,
        mtime: u32,
    },
    Okay,
    Fail(String),
    Quit,
}

fn id(tag: &[u8; 4], value: u32, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + data.len());
    out.extend_from_slice(tag);
    out.extend_from_slice(&value.to_le_bytes());
    out.extend_from_slice(data);
    out
}

impl SyncPacket {
    pub fn encode(&self) -> Vec<u8> {
        match self {
            SyncPacket::Send(spec) => id(b"SEND", spec.len() as u32, spec.as_bytes()),
            SyncPacket::Data(data) => id(b"DATA", data.len() as u32, data),
            SyncPacket::Done(mtime) => id(b"DONE", *mtime, &[]),
            SyncPacket::Stat(path) => id(b"STAT", path.len() as u32, path.as_bytes()),
            SyncPacket::StatReply { mode, size, mtime } => {
                let mut out = b"STAT".to_vec();
                for v in [mode, size, mtime] {
                    out.extend_from_slice(&v.to_le_bytes());
                }
                out
            }
            SyncPacket::Okay => id(b"OKAY", 0, &[]),
            SyncPacket::Fail(msg) => id(b"FAIL", msg.len() as u32, msg.as_bytes()),
            SyncPacket::Quit => id(b"QUIT", 0, &[]),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyncError {
    #[error("unknown sync id {0:?}")]
    UnknownId([u8; 4]),
    #[error("{what} is not UTF-8")]
    NotUtf8 { what: &'static str },
    #[error("{what} of {length} bytes exceeds {limit}")]
    TooLong {
        what: &'static str,
        length: usize,
        limit: usize,
    },
}

/// Which side is reading: `STAT` means a request to the device and a reply to the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The device reads requests.
    Device,
    /// The host reads responses.
    Host,
}

/// A streaming decoder for sync packets.
#[derive(Debug)]
pub struct SyncDecoder {
    side: Side,
    buffer: Vec<u8>,
}

impl SyncDecoder {
    pub fn new(side: Side) -> Self {
        SyncDecoder {
            side,
            buffer: Vec::new(),
        }
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    pub fn next_packet(&mut self) -> Result<Option<SyncPacket>, SyncError> {
        if self.buffer.len() < 8 {
            return Ok(None);
        }
        let tag = [
            self.buffer[0],
            self.buffer[1],
            self.buffer[2],
            self.buffer[3],
        ];
        let value = u32::from_le_bytes([
            self.buffer[4],
            self.buffer[5],
            self.buffer[6],
            self.buffer[7],
        ]);
        let with_data =
            |limit: usize, what: &'static str| -> Result<Option<(usize, Vec<u8>)>, SyncError> {
                let length = value as usize;
                if length > limit {
                    return Err(SyncError::TooLong {
                        what,
                        length,
                        limit,
                    });
                }
                if self.buffer.len() < 8 + length {
                    return Ok(None);
                }
                Ok(Some((8 + length, self.buffer[8..8 + length].to_vec())))
            };
        // A path is taken as sent or refused: a lossy conversion would name another file.
        let path = |data: Vec<u8>, what: &'static str| {
            String::from_utf8(data).map_err(|_| SyncError::NotUtf8 { what })
        };
        // A device's message is for people: kept lossy, within the limit it arrived under.
        let message = |data: Vec<u8>| {
            let mut text = String::from_utf8_lossy(&data).into_owned();
            let mut end = text.len().min(MAX_PATH);
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
            text
        };
        let (used, packet) = match (&tag, self.side) {
            (b"SEND", Side::Device) => match with_data(MAX_PATH, "SEND path")? {
                Some((used, data)) => (used, SyncPacket::Send(path(data, "SEND path")?)),
                None => return Ok(None),
            },
            (b"STAT", Side::Device) => match with_data(MAX_PATH, "STAT path")? {
                Some((used, data)) => (used, SyncPacket::Stat(path(data, "STAT path")?)),
                None => return Ok(None),
            },
            (b"STAT", Side::Host) => {
                if self.buffer.len() < 16 {
                    return Ok(None);
                }
                let word = |i: usize| {
                    u32::from_le_bytes([
                        self.buffer[i],
                        self.buffer[i + 1],
                        self.buffer[i + 2],
                        self.buffer[i + 3],
                    ])
                };
                (
                    16,
                    SyncPacket::StatReply {
                        mode: word(4),
                        size: word(8),
                        mtime: word(12),
                    },
                )
            }
            (b"DATA", _) => match with_data(MAX_CHUNK, "DATA chunk")? {
                Some((used, data)) => (used, SyncPacket::Data(data)),
                None => return Ok(None),
            },
            (b"FAIL", _) => match with_data(MAX_PATH, "FAIL message")? {
                Some((used, data)) => (used, SyncPacket::Fail(message(data))),
                None => return Ok(None),
            },
            (b"DONE", _) => (8, SyncPacket::Done(value)),
            (b"OKAY", _) => (8, SyncPacket::Okay),
            (b"QUIT", _) => (8, SyncPacket::Quit),
            _ => return Err(SyncError::UnknownId(tag)),
        };
        self.buffer.drain(..used);
        Ok(Some(packet))
    }
}
