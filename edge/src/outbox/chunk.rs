//! Chunks: the events of one group commit, stored under one sled key.
//!
//! One sled insert per commit instead of one per event: sled's per-key cost (about 6 µs here) was
//! most of an append's CPU time. Value layout: the chunk's last sequence (u64 BE), then each event
//! as a link frame (u32 BE length, version byte, bincode) — the same bytes the wire carries. Key:
//! `b'e' ++ first sequence (u64 BE)`. A chunk's sequences are consecutive.

use outpost_link::{Event, FrameDecoder, FrameError};

/// Builds the chunk of one commit.
#[derive(Debug, Default)]
pub(crate) struct ChunkBuilder {
    first: u64,
    last: u64,
    frames: Vec<u8>,
}

impl ChunkBuilder {
    pub(crate) fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    pub(crate) fn first(&self) -> u64 {
        self.first
    }

    /// Adds an already encoded frame of the event with sequence `seq` (the next one).
    pub(crate) fn push(&mut self, seq: u64, frame: &[u8]) {
        if self.frames.is_empty() {
            self.first = seq;
        }
        self.last = seq;
        self.frames.extend_from_slice(frame);
    }

    /// The value to store, leaving the builder empty.
    pub(crate) fn take(&mut self) -> Vec<u8> {
        let mut value = Vec::with_capacity(8 + self.frames.len());
        value.extend_from_slice(&self.last.to_be_bytes());
        value.append(&mut self.frames);
        value
    }
}

/// Encodes `event` as a frame.
pub(crate) fn frame(event: &Event) -> Result<Vec<u8>, FrameError> {
    let mut bytes = Vec::with_capacity(256);
    outpost_link::encode(event, &mut bytes)?;
    Ok(bytes)
}

/// The last sequence of a stored chunk.
pub(crate) fn last_seq(value: &[u8]) -> Option<u64> {
    value.first_chunk::<8>().map(|b| u64::from_be_bytes(*b))
}

/// The events of a stored chunk, with the size of each one's frame.
pub(crate) fn decode(value: &[u8]) -> Result<Vec<(Event, usize)>, FrameError> {
    let frames = value.get(8..).ok_or(FrameError::Truncated(value.len()))?;
    let mut decoder = FrameDecoder::default();
    decoder.push(frames);
    let mut events = Vec::new();
    let mut before = decoder.buffered();
    while let Some(event) = decoder.next_frame::<Event>()? {
        let after = decoder.buffered();
        events.push((event, before - after));
        before = after;
    }
    decoder.finish()?;
    Ok(events)
}

/// Re-encodes a chunk from its events.
pub(crate) fn encode(events: &[Event]) -> Result<Vec<u8>, FrameError> {
    let mut builder = ChunkBuilder::default();
    for event in events {
        builder.push(event.seq, &frame(event)?);
    }
    Ok(builder.take())
}

/// Stored chunks from the one holding `seq` on (or from the first after it), in order.
pub(crate) fn from(
    db: &sled::Db,
    seq: u64,
) -> impl Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>> + use<> {
    use outpost_storage::seq_key;
    let holding = db
        .range(seq_key(super::writer::EVENT, 0)..=seq_key(super::writer::EVENT, seq))
        .next_back();
    let start = match holding {
        Some(Ok((key, value))) if last_seq(&value).is_some_and(|last| last >= seq) => key.to_vec(),
        _ => seq_key(super::writer::EVENT, seq).to_vec(),
    };
    db.range(start..seq_key(super::writer::EVENT, u64::MAX).to_vec())
}
