//! Chunks: several frames stored as one value, so a store pays its per-key cost once per chunk
//! instead of once per event (sled's is about 6 µs, most of an append's CPU time).
//!
//! A store fills a chunk until the next frame would not fit its limit (the store's largest value:
//! see `outpost_storage`, where a page of sled must never grow past the size it writes outside its
//! log), and seals it then or at the end of a commit.
//!
//! Layout: the chunk's last sequence (u64 BE), then each item as `[u32 BE length][version byte
//! ITEM_VERSION][bincode body, standard big-endian configuration]`. The key (chosen by the store)
//! carries the first sequence. Sequences inside a chunk increase.
//!
//! This is a storage format, versioned on its own: it does not change when the link's protocol
//! does (the items' types may; their decoders then say so).
//!
//! Invariants: decoding never panics and never allocates more than [`MAX_ITEM_BYTES`] per item
//! whatever lengths the bytes claim (found by fuzzing: without the limit, 64 bytes claiming a huge
//! vector exhausted memory); an item that does not decode exactly (trailing bytes included) is an
//! error.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The version byte of every stored item (1 since the first release of the store).
pub const ITEM_VERSION: u8 = 1;

/// Most bytes decoding one item may allocate (stored values are far smaller: see
/// [`crate::MAX_VALUE_BYTES`]); a hostile length claim fails instead of exhausting memory.
pub const MAX_ITEM_BYTES: usize = 1024 * 1024;

/// What is wrong with a chunk or an item.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    #[error("item of {len} bytes does not fit: {limit} bytes left")]
    TooLarge { len: usize, limit: usize },
    #[error("item version {0} is not supported (this store writes {ITEM_VERSION})")]
    UnsupportedVersion(u8),
    #[error("item does not decode: {0}")]
    Malformed(String),
    #[error("item has {0} trailing bytes")]
    TrailingBytes(usize),
    #[error("item could not be encoded: {0}")]
    Encode(String),
    #[error("chunk ends inside an item or its header ({0} bytes left)")]
    Truncated(usize),
}

fn config() -> bincode::config::Configuration<bincode::config::BigEndian> {
    bincode::config::standard().with_big_endian()
}

/// Appends the stored form of `item` to `out`.
pub fn encode_item<T: Serialize>(item: &T, out: &mut Vec<u8>) -> Result<(), ChunkError> {
    let start = out.len();
    out.extend_from_slice(&[0, 0, 0, 0, ITEM_VERSION]);
    if let Err(e) = bincode::serde::encode_into_std_write(item, out, config()) {
        out.truncate(start);
        return Err(ChunkError::Encode(e.to_string()));
    }
    let len = out.len() - start - 4;
    let Ok(len32) = u32::try_from(len) else {
        out.truncate(start);
        return Err(ChunkError::TooLarge {
            len,
            limit: u32::MAX as usize,
        });
    };
    out[start..start + 4].copy_from_slice(&len32.to_be_bytes());
    Ok(())
}

/// Decodes one item body (version byte first, no length).
fn decode_item<T: DeserializeOwned>(body: &[u8]) -> Result<T, ChunkError> {
    let (&version, rest) = body.split_first().ok_or(ChunkError::Truncated(0))?;
    if version != ITEM_VERSION {
        return Err(ChunkError::UnsupportedVersion(version));
    }
    // A length inside the item may claim anything: bincode allocates at most this much for it.
    let limited = config().with_limit::<MAX_ITEM_BYTES>();
    let (item, used) = bincode::serde::decode_from_slice(rest, limited)
        .map_err(|e| ChunkError::Malformed(e.to_string()))?;
    if used != rest.len() {
        return Err(ChunkError::TrailingBytes(rest.len() - used));
    }
    Ok(item)
}

/// The items' bodies of the frames in `frames`, in order.
fn bodies(mut frames: &[u8]) -> impl Iterator<Item = Result<&[u8], ChunkError>> {
    std::iter::from_fn(move || {
        if frames.is_empty() {
            return None;
        }
        let Some(len) = frames.first_chunk::<4>() else {
            let left = frames.len();
            frames = &[];
            return Some(Err(ChunkError::Truncated(left)));
        };
        let len = u32::from_be_bytes(*len) as usize;
        match frames.get(4..4 + len) {
            Some(body) => {
                let whole = 4 + len;
                frames = &frames[whole..];
                Some(Ok(body))
            }
            None => {
                let left = frames.len();
                frames = &[];
                Some(Err(ChunkError::Truncated(left)))
            }
        }
    })
}

/// Builds one chunk, never larger than its limit.
#[derive(Debug)]
pub struct ChunkBuilder {
    first: u64,
    last: u64,
    frames: Vec<u8>,
    max_bytes: usize,
}

impl ChunkBuilder {
    /// A builder whose chunks (with their 8-byte header) never exceed `max_bytes`.
    pub fn new(max_bytes: usize) -> Self {
        Self {
            first: 0,
            last: 0,
            frames: Vec::new(),
            max_bytes,
        }
    }

    /// Whether a frame of `frame_len` bytes fits into this chunk.
    pub fn fits(&self, frame_len: usize) -> bool {
        8 + self.frames.len() + frame_len <= self.max_bytes
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Bytes of frames so far.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// Sequence of the first item (meaningless while empty).
    pub fn first(&self) -> u64 {
        self.first
    }

    /// Appends the encoded frame of the item with sequence `seq` (higher than the last one). The
    /// caller checked [`Self::fits`] first.
    pub fn push_frame(&mut self, seq: u64, frame: &[u8]) {
        if self.frames.is_empty() {
            self.first = seq;
        }
        self.last = seq;
        self.frames.extend_from_slice(frame);
    }

    /// Encodes `item` and appends it; returns the frame's size, or refuses it (the chunk is
    /// unchanged) if it does not fit.
    pub fn push<T: Serialize>(&mut self, seq: u64, item: &T) -> Result<usize, ChunkError> {
        let before = self.frames.len();
        encode_item(item, &mut self.frames)?;
        let len = self.frames.len() - before;
        if 8 + self.frames.len() > self.max_bytes {
            self.frames.truncate(before);
            return Err(ChunkError::TooLarge {
                len,
                limit: self.max_bytes.saturating_sub(8 + before),
            });
        }
        if before == 0 {
            self.first = seq;
        }
        self.last = seq;
        Ok(len)
    }

    /// The value to store; the builder is empty afterwards.
    pub fn take(&mut self) -> Vec<u8> {
        let mut value = Vec::with_capacity(8 + self.frames.len());
        value.extend_from_slice(&self.last.to_be_bytes());
        value.append(&mut self.frames);
        value
    }
}

/// The last sequence of a stored chunk.
pub fn last_seq(value: &[u8]) -> Option<u64> {
    value.first_chunk::<8>().map(|b| u64::from_be_bytes(*b))
}

/// The first item of a stored chunk, decoding nothing else.
pub fn first<T: DeserializeOwned>(value: &[u8]) -> Result<Option<T>, ChunkError> {
    let frames = value.get(8..).ok_or(ChunkError::Truncated(value.len()))?;
    bodies(frames)
        .next()
        .transpose()?
        .map(decode_item)
        .transpose()
}

/// The items of a stored chunk, each with the size of its frame.
pub fn decode<T: DeserializeOwned>(value: &[u8]) -> Result<Vec<(T, usize)>, ChunkError> {
    let frames = value.get(8..).ok_or(ChunkError::Truncated(value.len()))?;
    bodies(frames)
        .map(|body| {
            let body = body?;
            Ok((decode_item(body)?, 4 + body.len()))
        })
        .collect()
}
