//! The 9th (wake-up) bit on byte streams that cannot carry it, and request framing on the EGM side.
//!
//! A real SAS line has 11-bit characters: the host sets the wake-up bit on the first byte of each
//! message, the EGM only on loop-break chirps. A Linux tty opened with SPACE parity and
//! `INPCK|PARMRK` reports a byte whose 9th bit is set as `FF 00 b` and a literal `FF` as `FF FF`.
//! Ptys and TCP converters cannot carry the bit, so both sides write that same *marked* encoding
//! on them (reference §4.4): one decoder ([`MarkDecoder`]) then serves a real tty and the test
//! transports alike.
//!
//! [`RequestFramer`] cuts the EGM's received symbols into request frames: a wake-up byte starts a
//! frame; its length comes from the first byte (a general poll is one byte) or the request-length
//! table. In lenient mode (hosts that send no wake-up bit) every byte that arrives while no frame
//! is open starts one, and a silence longer than the inter-byte limit abandons a partial frame.
//!
//! Invariants: `encode_marked` and `MarkDecoder` are inverse for every byte sequence and flag
//! pattern; decoding never panics on arbitrary input; the framer never yields a frame longer than
//! [`MAX_REQUEST`] bytes and never buffers more than that.

use crate::request::{RequestLength, request_length};

/// The longest SAS message: 5 + 255 bytes.
pub const MAX_REQUEST: usize = 260;

/// One character of the line: eight data bits and the wake-up bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Symbol {
    pub byte: u8,
    pub wakeup: bool,
}

impl Symbol {
    pub fn plain(byte: u8) -> Self {
        Self {
            byte,
            wakeup: false,
        }
    }

    pub fn wakeup(byte: u8) -> Self {
        Self { byte, wakeup: true }
    }
}

/// Appends `symbol` in the marked encoding.
pub fn push_marked(out: &mut Vec<u8>, symbol: Symbol) {
    match symbol {
        Symbol { byte, wakeup: true } => out.extend_from_slice(&[0xFF, 0x00, byte]),
        Symbol {
            byte: 0xFF,
            wakeup: false,
        } => out.extend_from_slice(&[0xFF, 0xFF]),
        Symbol { byte, .. } => out.push(byte),
    }
}

/// A host message in the marked encoding: the wake-up bit on the first byte only.
pub fn encode_marked(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + 4);
    for (i, &byte) in bytes.iter().enumerate() {
        push_marked(
            &mut out,
            Symbol {
                byte,
                wakeup: i == 0,
            },
        );
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum MarkState {
    #[default]
    Plain,
    /// Saw `FF`.
    Escape,
    /// Saw `FF 00`.
    Marked,
}

/// Decodes the marked encoding (or a PARMRK tty) into symbols, across arbitrary chunk boundaries.
#[derive(Debug, Clone, Default)]
pub struct MarkDecoder {
    state: MarkState,
}

impl MarkDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes `bytes`, appending the symbols to `out`. `FF` followed by anything but `FF` or `00`
    /// cannot come from a PARMRK tty; it is read as a literal `FF` and the byte after it.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<Symbol>) {
        for &byte in bytes {
            self.state = match (self.state, byte) {
                (MarkState::Plain, 0xFF) => MarkState::Escape,
                (MarkState::Plain, b) => {
                    out.push(Symbol::plain(b));
                    MarkState::Plain
                }
                (MarkState::Escape, 0xFF) => {
                    out.push(Symbol::plain(0xFF));
                    MarkState::Plain
                }
                (MarkState::Escape, 0x00) => MarkState::Marked,
                (MarkState::Escape, b) => {
                    out.push(Symbol::plain(0xFF));
                    out.push(Symbol::plain(b));
                    MarkState::Plain
                }
                (MarkState::Marked, b) => {
                    out.push(Symbol::wakeup(b));
                    MarkState::Plain
                }
            };
        }
    }

    /// Whether an escape sequence is half read.
    pub fn is_partial(&self) -> bool {
        self.state != MarkState::Plain
    }
}

/// How the EGM tells where a request starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// By the wake-up bit (a real line, or the marked encoding).
    WakeupBit,
    /// By the length table alone, for hosts that cannot send a wake-up bit.
    Lenient,
}

/// What the framer made of the symbols so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Framed {
    /// A whole request, as sent (CRC not checked here).
    Request(Vec<u8>),
    /// Bytes dropped: outside a frame, or a frame of a command the table does not know.
    Discarded(usize),
}

/// Cuts received symbols into request frames (EGM side).
#[derive(Debug, Clone)]
pub struct RequestFramer {
    framing: Framing,
    frame: Vec<u8>,
    /// Inside an unknown command's frame: discard until the next wake-up byte (or silence).
    skipping: bool,
}

impl RequestFramer {
    pub fn new(framing: Framing) -> Self {
        Self {
            framing,
            frame: Vec::with_capacity(MAX_REQUEST),
            skipping: false,
        }
    }

    /// Feeds one symbol; returns a frame when it completes, or how many bytes were dropped.
    pub fn push(&mut self, symbol: Symbol) -> Option<Framed> {
        let starts_frame = match self.framing {
            Framing::WakeupBit => symbol.wakeup,
            Framing::Lenient => self.frame.is_empty() && !self.skipping,
        };
        if starts_frame {
            let dropped = self.frame.len();
            self.frame.clear();
            self.skipping = false;
            self.frame.push(symbol.byte);
            let result = self.complete();
            return result.or((dropped > 0).then_some(Framed::Discarded(dropped)));
        }
        if self.frame.is_empty() || self.skipping {
            return Some(Framed::Discarded(1));
        }
        self.frame.push(symbol.byte);
        self.complete()
    }

    /// The line was silent longer than the inter-byte limit: a partial frame is abandoned.
    pub fn silence(&mut self) -> Option<Framed> {
        self.skipping = false;
        let dropped = self.frame.len();
        self.frame.clear();
        (dropped > 0).then_some(Framed::Discarded(dropped))
    }

    /// Whether a frame is partly received.
    pub fn is_partial(&self) -> bool {
        !self.frame.is_empty()
    }

    fn complete(&mut self) -> Option<Framed> {
        let first = *self.frame.first()?;
        let expected = if first & 0x80 != 0 {
            // General poll (0x80 | address), or a global poll 0x80.
            Some(1)
        } else if self.frame.len() < 2 {
            return None;
        } else {
            match request_length(self.frame[1]) {
                Some(RequestLength::Fixed(n)) => Some(n),
                Some(RequestLength::Variable) => match self.frame.get(2) {
                    Some(&len) => Some(5 + usize::from(len)),
                    None => return None,
                },
                None => None,
            }
        };
        match expected {
            Some(n) if self.frame.len() >= n => {
                let frame = std::mem::take(&mut self.frame);
                self.frame.reserve(MAX_REQUEST);
                Some(Framed::Request(frame))
            }
            Some(_) => None,
            None => {
                // Unknown command: a real EGM ignores the poll; skip to the next frame start.
                let dropped = self.frame.len();
                self.frame.clear();
                self.skipping = true;
                Some(Framed::Discarded(dropped))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    fn frames(framing: Framing, symbols: &[Symbol]) -> Vec<Vec<u8>> {
        let mut framer = RequestFramer::new(framing);
        symbols
            .iter()
            .filter_map(|&s| match framer.push(s) {
                Some(Framed::Request(f)) => Some(f),
                _ => None,
            })
            .collect()
    }

    fn decode(bytes: &[u8]) -> Vec<Symbol> {
        let mut out = Vec::new();
        MarkDecoder::new().feed(bytes, &mut out);
        out
    }

    #[test]
    fn a_wakeup_byte_is_sent_as_ff_00_and_a_literal_ff_is_doubled() {
        assert_eq!(
            encode_marked(&[0x01, 0xFF, 0x1A]),
            vec![0xFF, 0x00, 0x01, 0xFF, 0xFF, 0x1A]
        );
        assert_eq!(
            decode(&[0xFF, 0x00, 0x01, 0xFF, 0xFF, 0x1A]),
            vec![Symbol::wakeup(1), Symbol::plain(0xFF), Symbol::plain(0x1A)]
        );
    }

    #[test]
    fn a_stray_ff_is_read_as_a_literal_ff() {
        assert_eq!(
            decode(&[0xFF, 0x12]),
            vec![Symbol::plain(0xFF), Symbol::plain(0x12)]
        );
    }

    #[test]
    fn frames_start_at_the_wakeup_bit_and_end_by_the_length_table() {
        // Noise, a general poll, a type R poll, an LP 01 with CRC.
        let mut symbols = vec![Symbol::plain(0x33)];
        symbols.extend(decode(&encode_marked(&[0x81])));
        symbols.extend(decode(&encode_marked(&[0x01, 0x1A])));
        symbols.extend(decode(&encode_marked(&[0x01, 0x01, 0x51, 0x08])));
        assert_eq!(
            frames(Framing::WakeupBit, &symbols),
            vec![vec![0x81], vec![0x01, 0x1A], vec![0x01, 0x01, 0x51, 0x08]]
        );
    }

    #[test]
    fn a_wakeup_byte_abandons_a_partial_frame() {
        let mut framer = RequestFramer::new(Framing::WakeupBit);
        assert_eq!(framer.push(Symbol::wakeup(0x01)), None);
        assert_eq!(framer.push(Symbol::plain(0x01)), None);
        assert_eq!(
            framer.push(Symbol::wakeup(0x81)),
            Some(Framed::Request(vec![0x81]))
        );
    }

    #[test]
    fn variable_length_polls_are_framed_by_their_length_byte() {
        let lp2f = [0x01, 0x2F, 0x05, 0x00, 0x00, 0x00, 0x01, 0x0C, 0xFB, 0x3C];
        let symbols: Vec<Symbol> = lp2f.iter().map(|&b| Symbol::plain(b)).collect();
        assert_eq!(frames(Framing::Lenient, &symbols), vec![lp2f.to_vec()]);
    }

    #[test]
    fn lenient_framing_reads_a_python_hosts_leading_0x80_as_a_global_poll() {
        // sas_comm_py writes its "wake-up" as a literal 0x80 before the address.
        let symbols: Vec<Symbol> = [0x80, 0x01, 0x1A]
            .iter()
            .map(|&b| Symbol::plain(b))
            .collect();
        assert_eq!(
            frames(Framing::Lenient, &symbols),
            vec![vec![0x80], vec![0x01, 0x1A]]
        );
    }

    #[test]
    fn an_unknown_command_is_skipped_until_silence_in_lenient_mode() {
        let mut framer = RequestFramer::new(Framing::Lenient);
        assert_eq!(framer.push(Symbol::plain(0x01)), None);
        assert_eq!(framer.push(Symbol::plain(0xEE)), Some(Framed::Discarded(2)));
        assert_eq!(framer.push(Symbol::plain(0x01)), Some(Framed::Discarded(1)));
        framer.silence();
        assert_eq!(
            framer.push(Symbol::plain(0x81)),
            Some(Framed::Request(vec![0x81]))
        );
    }

    proptest! {
        #[test]
        fn marked_encoding_round_trips(symbols in proptest::collection::vec((any::<u8>(), any::<bool>()), 0..64)) {
            let symbols: Vec<Symbol> = symbols.into_iter().map(|(byte, wakeup)| Symbol { byte, wakeup }).collect();
            let mut wire = Vec::new();
            for &s in &symbols {
                push_marked(&mut wire, s);
            }
            // Any chunking decodes the same.
            let mut decoder = MarkDecoder::new();
            let mut out = Vec::new();
            for chunk in wire.chunks(3) {
                decoder.feed(chunk, &mut out);
            }
            prop_assert_eq!(out, symbols);
            prop_assert!(!decoder.is_partial());
        }

        #[test]
        fn framing_arbitrary_symbols_never_panics_or_overflows(symbols in proptest::collection::vec((any::<u8>(), any::<bool>()), 0..600), lenient in any::<bool>()) {
            let mut framer = RequestFramer::new(if lenient { Framing::Lenient } else { Framing::WakeupBit });
            for (byte, wakeup) in symbols {
                if let Some(Framed::Request(f)) = framer.push(Symbol { byte, wakeup }) {
                    prop_assert!(!f.is_empty() && f.len() <= MAX_REQUEST);
                }
                prop_assert!(framer.frame.len() <= MAX_REQUEST);
            }
        }
    }
}
