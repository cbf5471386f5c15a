//! ADB transport messages: a 24-byte little-endian header (command, arg0, arg1, payload length,
//! payload checksum, magic = command ^ 0xFFFFFFFF) followed by the payload.
//!
//! Invariants: [`Decoder`] never panics and never buffers more than one header plus `max_payload`
//! bytes; a header whose magic does not match its command, whose command is unknown or whose
//! length exceeds the limit is an error; the checksum (the byte sum, used by protocol versions
//! before 0x01000001) is checked only when the sender set one.

/// The protocol version this crate speaks (checksums optional).
pub const VERSION: u32 = 0x0100_0001;
/// The largest payload we offer to accept (adbd's `MAX_PAYLOAD`).
pub const MAX_PAYLOAD: u32 = 256 * 1024;
/// Header size in bytes.
pub const HEADER: usize = 24;

/// Message commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    Cnxn,
    Auth,
    Open,
    Okay,
    Clse,
    Wrte,
    /// TLS upgrade request (newer adb); we never send it and refuse to use it.
    Stls,
}

impl Command {
    pub const fn code(self) -> u32 {
        match self {
            Command::Cnxn => 0x4e58_4e43,
            Command::Auth => 0x4854_5541,
            Command::Open => 0x4e45_504f,
            Command::Okay => 0x5941_4b4f,
            Command::Clse => 0x4553_4c43,
            Command::Wrte => 0x4554_5257,
            Command::Stls => 0x534c_5453,
        }
    }

    pub fn from_code(code: u32) -> Option<Self> {
        [
            Command::Cnxn,
            Command::Auth,
            Command::Open,
            Command::Okay,
            Command::Clse,
            Command::Wrte,
            Command::Stls,
        ]
        .into_iter()
        .find(|c| c.code() == code)
    }
}

/// AUTH message types (arg0).
pub mod auth_type {
    pub const TOKEN: u32 = 1;
    pub const SIGNATURE: u32 = 2;
    pub const RSA_PUBLIC_KEY: u32 = 3;
}

/// One message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub command: Command,
    pub arg0: u32,
    pub arg1: u32,
    pub payload: Vec<u8>,
}

/// The legacy payload checksum: the sum of its bytes.
pub fn checksum(payload: &[u8]) -> u32 {
    payload
        .iter()
        .fold(0u32, |acc, b| acc.wrapping_add(u32::from(*b)))
}

impl Message {
    pub fn new(command: Command, arg0: u32, arg1: u32, payload: impl Into<Vec<u8>>) -> Self {
        Message {
            command,
            arg0,
            arg1,
            payload: payload.into(),
        }
    }

    /// Header and payload, with the checksum set (old peers need it, new ones ignore it).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER + self.payload.len());
        let code = self.command.code();
        for word in [
            code,
            self.arg0,
            self.arg1,
            self.payload.len() as u32,
            checksum(&self.payload),
            code ^ 0xFFFF_FFFF,
        ] {
            out.extend_from_slice(&word.to_le_bytes());
        }
        out.extend_from_slice(&self.payload);
        out
    }

    /// A `CNXN` with our version, `max_payload` and a banner (`device::...` or `host::...`).
    pub fn connect(max_payload: u32, banner: &str) -> Self {
        let mut payload = banner.as_bytes().to_vec();
        payload.push(0);
        Message::new(Command::Cnxn, VERSION, max_payload, payload)
    }
}

/// Why bytes are not a valid message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("unknown command 0x{0:08x}")]
    UnknownCommand(u32),
    #[error("magic 0x{magic:08x} does not match command 0x{command:08x}")]
    BadMagic { command: u32, magic: u32 },
    #[error("payload of {length} bytes exceeds the limit of {limit}")]
    TooLong { length: u32, limit: u32 },
    #[error("payload checksum 0x{actual:08x} does not match the header's 0x{expected:08x}")]
    BadChecksum { expected: u32, actual: u32 },
}

/// A streaming decoder: feed bytes as they arrive, take messages as they complete.
#[derive(Debug)]
pub struct Decoder {
    buffer: Vec<u8>,
    max_payload: u32,
}

impl Decoder {
    pub fn new(max_payload: u32) -> Self {
        Decoder {
            buffer: Vec::new(),
            max_payload,
        }
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// Bytes received but not yet part of a message.
    pub fn pending(&self) -> usize {
        self.buffer.len()
    }

    /// The next complete message, `None` if more bytes are needed. After an error the stream
    /// is not trustworthy: drop the connection.
    pub fn next_message(&mut self) -> Result<Option<Message>, DecodeError> {
        if self.buffer.len() < HEADER {
            return Ok(None);
        }
        let word = |i: usize| {
            let b = &self.buffer[i * 4..i * 4 + 4];
            u32::from_le_bytes([b[0], b[1], b[2], b[3]])
        };
        let (code, arg0, arg1, length, check, magic) =
            (word(0), word(1), word(2), word(3), word(4), word(5));
        let command = Command::from_code(code).ok_or(DecodeError::UnknownCommand(code))?;
        if magic != code ^ 0xFFFF_FFFF {
            return Err(DecodeError::BadMagic {
                command: code,
                magic,
            });
        }
        if length > self.max_payload {
            return Err(DecodeError::TooLong {
                length,
                limit: self.max_payload,
            });
        }
        let total = HEADER + length as usize;
        if self.buffer.len() < total {
            return Ok(None);
        }
        let payload = self.buffer[HEADER..total].to_vec();
        self.buffer.drain(..total);
        if check != 0 && checksum(&payload) != check {
            return Err(DecodeError::BadChecksum {
                expected: check,
                actual: checksum(&payload),
            });
        }
        Ok(Some(Message {
            command,
            arg0,
            arg1,
            payload,
        }))
    }
}

/// The parts of a `CNXN` banner: `system-type:serial:key=value;key=value;...`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Banner {
    pub system_type: String,
    pub properties: Vec<(String, String)>,
}

impl Banner {
    pub fn parse(payload: &[u8]) -> Banner {
        let text = String::from_utf8_lossy(payload);
        let text = text.trim_end_matches('\0');
        let mut parts = text.splitn(3, ':');
        let system_type = parts.next().unwrap_or_default().to_owned();
        let _serial = parts.next();
        let properties = parts
            .next()
            .unwrap_or_default()
            .split(';')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        Banner {
            system_type,
            properties,
        }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.properties
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The `features=` list.
    pub fn features(&self) -> Vec<&str> {
        self.get("features")
            .map(|f| f.split(',').collect())
            .unwrap_or_default()
    }
}
