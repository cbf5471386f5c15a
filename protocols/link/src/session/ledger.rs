//! The hub's rule for one edge's sequence: what is new, what is a duplicate, where a gap is.
//!
//! Invariant: [`Ledger::admit`] accepts each sequence at most once, in increasing order, and
//! moves the high-water mark to the last one accepted; it never moves back.

use crate::Event;

/// One edge's committed high-water mark.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ledger {
    committed: u64,
}

/// Events skipped between two accepted ones: lost before they reached the hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gap {
    /// The last sequence before the gap.
    pub after: u64,
    /// The first sequence after it.
    pub next: u64,
}

impl Gap {
    pub fn missing(&self) -> u64 {
        self.next - self.after - 1
    }
}

/// What a batch does to the ledger.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Admission {
    /// The events to store, in order.
    pub accepted: Vec<Event>,
    pub duplicates: usize,
    pub gaps: Vec<Gap>,
    /// The high-water mark once `accepted` is stored.
    pub committed: u64,
}

impl Admission {
    pub fn missing(&self) -> u64 {
        self.gaps.iter().map(Gap::missing).sum()
    }
}

impl Ledger {
    /// A ledger whose events up to `committed` are stored.
    pub fn new(committed: u64) -> Self {
        Self { committed }
    }

    pub fn committed(&self) -> u64 {
        self.committed
    }

    /// Admits `events` (in the order they came): sequences at or below the high-water mark are
    /// duplicates; the others are accepted, and a jump is a gap. The ledger moves as if the
    /// accepted events were stored: the caller stores them, with the new mark, in one commit.
    pub fn admit(&mut self, events: Vec<Event>) -> Admission {
        let mut admission = Admission::default();
        for event in events {
            if event.seq <= self.committed {
                admission.duplicates += 1;
                continue;
            }
            if event.seq > self.committed + 1 {
                admission.gaps.push(Gap {
                    after: self.committed,
                    next: event.seq,
                });
            }
            self.committed = event.seq;
            admission.accepted.push(event);
        }
        admission.committed = self.committed;
        admission
    }
}
