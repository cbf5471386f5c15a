//! Chunks: several frames stored as one value, so a store pays its per-key cost once per chunk
//! instead of once per event (sled's is about 6 µs, most of an append's CPU time).
//!
//! A store fills a chunk until the next frame would not fit its limit (the store's largest value:
//! see `outpost_storage`, where a page of sled must never grow past the size it writes outside its
//! log), and seals it then or at the end of a commit.
//!
//! Layout: the chunk's last sequence (u64 BE), then each item as a frame (see [`crate::encode`]).
//! The key (chosen by the store) carries the first sequence. Sequences inside a chunk increase.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{FrameDecoder, FrameError};

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
    pub fn push<T: Serialize>(&mut self, seq: u64, item: &T) -> Result<usize, FrameError> {
        let before = self.frames.len();
        crate::encode(item, &mut self.frames)?;
        let len = self.frames.len() - before;
        if 8 + self.frames.len() > self.max_bytes {
            self.frames.truncate(before);
            return Err(FrameError::TooLarge {
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
pub fn first<T: DeserializeOwned>(value: &[u8]) -> Result<Option<T>, FrameError> {
    let frames = value.get(8..).ok_or(FrameError::Truncated(value.len()))?;
    let mut decoder = FrameDecoder::default();
    decoder.push(frames);
    decoder.next_frame()
}

/// The items of a stored chunk, each with the size of its frame.
pub fn decode<T: DeserializeOwned>(value: &[u8]) -> Result<Vec<(T, usize)>, FrameError> {
    let frames = value.get(8..).ok_or(FrameError::Truncated(value.len()))?;
    let mut decoder = FrameDecoder::default();
    decoder.push(frames);
    let mut items = Vec::new();
    let mut before = decoder.buffered();
    while let Some(item) = decoder.next_frame::<T>()? {
        let after = decoder.buffered();
        items.push((item, before - after));
        before = after;
    }
    decoder.finish()?;
    Ok(items)
}
