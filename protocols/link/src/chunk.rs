//! Chunks: several frames stored as one value, so a store pays its per-key cost once per group
//! commit instead of once per event (sled's is about 6 µs, most of an append's CPU time).
//!
//! Layout: the chunk's last sequence (u64 BE), then each item as a frame (see [`crate::encode`]).
//! The key (chosen by the store) carries the first sequence. Sequences inside a chunk increase.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{FrameDecoder, FrameError};

/// Stores seal a chunk once it reaches this size. sled rewrites a whole leaf when one of its values
/// changes and moves values over 128 KiB to files of their own, so chunks stay well below that:
/// large enough to spread the per-key cost over ~70 events of 200 bytes, small enough to keep
/// sled's write and space amplification low (measured: see the README).
pub const TARGET_BYTES: usize = 16 * 1024;

/// Builds one chunk.
#[derive(Debug, Default)]
pub struct ChunkBuilder {
    first: u64,
    last: u64,
    frames: Vec<u8>,
}

impl ChunkBuilder {
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Bytes of frames so far.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// Whether the chunk has reached [`TARGET_BYTES`] and should be stored.
    pub fn is_full(&self) -> bool {
        self.frames.len() >= TARGET_BYTES
    }

    /// Sequence of the first item (meaningless while empty).
    pub fn first(&self) -> u64 {
        self.first
    }

    /// Appends the encoded frame of the item with sequence `seq` (higher than the last one).
    pub fn push_frame(&mut self, seq: u64, frame: &[u8]) {
        if self.frames.is_empty() {
            self.first = seq;
        }
        self.last = seq;
        self.frames.extend_from_slice(frame);
    }

    /// Encodes `item` and appends it; returns the frame's size.
    pub fn push<T: Serialize>(&mut self, seq: u64, item: &T) -> Result<usize, FrameError> {
        let before = self.frames.len();
        if self.frames.is_empty() {
            self.first = seq;
        }
        crate::encode(item, &mut self.frames)?;
        self.last = seq;
        Ok(self.frames.len() - before)
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
