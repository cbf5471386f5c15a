//! Frame codec: `[u32 BE length][version u8][bincode body]`.
//!
//! Invariants: the length is checked against the limit before anything is buffered for the frame;
//! a frame whose body does not decode exactly (trailing bytes included) is an error; nothing here
//! panics on input.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::FRAME_VERSION;

/// Largest frame accepted by default (length field value): 16 MiB.
pub const MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;

/// What is wrong with bytes that claim to be a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {len} bytes exceeds the limit of {limit}")]
    TooLarge { len: usize, limit: usize },
    #[error("empty frame (no version byte)")]
    Empty,
    #[error("frame version {0} is not supported (this side speaks {FRAME_VERSION})")]
    UnsupportedVersion(u8),
    #[error("frame body does not decode: {0}")]
    Malformed(String),
    #[error("frame body has {0} trailing bytes")]
    TrailingBytes(usize),
    #[error("frame could not be encoded: {0}")]
    Encode(String),
    #[error("stream ended inside a frame ({0} bytes buffered)")]
    Truncated(usize),
}

fn config() -> bincode::config::Configuration<bincode::config::BigEndian> {
    bincode::config::standard().with_big_endian()
}

/// Appends the frame for `message` to `out`.
pub fn encode<T: Serialize>(message: &T, out: &mut Vec<u8>) -> Result<(), FrameError> {
    let start = out.len();
    out.extend_from_slice(&[0, 0, 0, 0, FRAME_VERSION]);
    bincode::serde::encode_into_std_write(message, out, config())
        .map_err(|e| FrameError::Encode(e.to_string()))?;
    let len = out.len() - start - 4;
    if len > MAX_FRAME_BYTES {
        out.truncate(start);
        return Err(FrameError::TooLarge {
            len,
            limit: MAX_FRAME_BYTES,
        });
    }
    out[start..start + 4].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(())
}

/// Decodes one frame body (version byte first, no length prefix).
pub fn decode_one<T: DeserializeOwned>(body: &[u8]) -> Result<T, FrameError> {
    let (&version, rest) = body.split_first().ok_or(FrameError::Empty)?;
    if version != FRAME_VERSION {
        return Err(FrameError::UnsupportedVersion(version));
    }
    let limited = config().with_limit::<MAX_FRAME_BYTES>();
    let (message, used) = bincode::serde::decode_from_slice(rest, limited)
        .map_err(|e| FrameError::Malformed(e.to_string()))?;
    if used != rest.len() {
        return Err(FrameError::TrailingBytes(rest.len() - used));
    }
    Ok(message)
}

/// Buffer a decoder keeps between frames, at most.
const KEPT_CAPACITY: usize = 64 * 1024;

/// Streaming decoder: push bytes as they arrive, take whole frames out.
#[derive(Debug)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    limit: usize,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self::new(MAX_FRAME_BYTES)
    }
}

impl FrameDecoder {
    /// A decoder that refuses frames longer than `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Self {
            buf: Vec::new(),
            limit: limit.min(MAX_FRAME_BYTES),
        }
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes buffered but not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Bytes of memory the decoder holds (buffered or reserved).
    pub fn held_bytes(&self) -> usize {
        self.buf.capacity()
    }

    /// The next whole frame, `Ok(None)` if more bytes are needed.
    pub fn next_frame<T: DeserializeOwned>(&mut self) -> Result<Option<T>, FrameError> {
        let Some(len_bytes) = self.buf.first_chunk::<4>() else {
            return Ok(None);
        };
        let len = u32::from_be_bytes(*len_bytes) as usize;
        if len > self.limit {
            return Err(FrameError::TooLarge {
                len,
                limit: self.limit,
            });
        }
        if self.buf.len() < 4 + len {
            return Ok(None);
        }
        let result = decode_one(&self.buf[4..4 + len]);
        self.buf.drain(..4 + len);
        // A large frame's room goes back once nothing is left in it (a thousand idle sessions
        // would otherwise each keep their largest batch's worth).
        if self.buf.is_empty() && self.buf.capacity() > KEPT_CAPACITY {
            self.buf = Vec::new();
        }
        result.map(Some)
    }

    /// Takes the bytes buffered after the last whole frame (raw bytes that follow a header frame).
    pub fn take_buffered(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }

    /// Call at end of stream: an error if a partial frame is left.
    pub fn finish(&self) -> Result<(), FrameError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(FrameError::Truncated(self.buf.len()))
        }
    }
}

/// Largest bulk payload (a screenshot, a log bundle, a media file chunk).
pub const MAX_BULK_BYTES: u64 = 64 * 1024 * 1024;

/// Whether `id` may name a bulk payload (it becomes a file name at the hub).
pub fn valid_bulk_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        && !id.starts_with('.')
}

/// First frame of a bulk stream; the payload's bytes follow it raw.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BulkHeader {
    /// Names the payload (a screenshot id, for example); events refer to it.
    pub id: String,
    pub device: String,
    /// MIME type of the payload.
    pub content_type: String,
    pub len: u64,
    /// SHA-256 of the payload, lowercase hex; the receiver checks it.
    pub sha256: String,
}

/// Length of the frame body (version byte and bincode) `message` encodes to; what the edge outbox
/// stores per event. Counts without allocating.
pub fn encode_len<T: Serialize>(message: &T) -> usize {
    let mut counter = bincode::enc::write::SizeWriter::default();
    match bincode::serde::encode_into_writer(message, &mut counter, config()) {
        Ok(()) => 1 + counter.bytes_written,
        Err(_) => 0,
    }
}
