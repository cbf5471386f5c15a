//! The change feed of a projection: which of its keys its runner wrote, in order, for a reader
//! that follows the projection (the MSSQL sink) without scanning it.
//!
//! The feed lives in the projection's own tree, beside the runner's keys: `K` → the feed's epoch
//! and the sequence of its last entry (u64 BE each); `k ++ epoch ++ seq` → the key written.
//!
//! Invariants:
//! - An entry goes into the same atomic batch as the write it names, so a reader that sees the
//!   entry reads the value it names, or a later one (a reader always reads a key's current value).
//! - A feed starts afresh — a new epoch, whose first entries name every key already stored —
//!   when it is first enabled and whenever its tree was cleared (a rebuild). A reader whose
//!   position is of another epoch starts again from the beginning of the current one; what it
//!   writes from the feed must therefore be idempotent (the sink writes by natural key).
//! - A feed that is disabled is removed whole, so that enabling it again starts a new epoch
//!   instead of leaving out what changed meanwhile.
//! - Entries are removed only by the reader ([`trim`]), up to a position it has written.

/// A position in a feed: its epoch and the sequence of the last entry read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Position {
    pub epoch: u64,
    pub seq: u64,
}

impl Position {
    pub fn to_bytes(self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&self.epoch.to_be_bytes());
        out[8..].copy_from_slice(&self.seq.to_be_bytes());
        out
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let epoch = u64::from_be_bytes(bytes.get(..8)?.try_into().ok()?);
        let seq = u64::from_be_bytes(bytes.get(8..16)?.try_into().ok()?);
        (bytes.len() == 16).then_some(Self { epoch, seq })
    }
}

const HEAD_KEY: &[u8] = b"K";
const ENTRY_TAG: u8 = b'k';

/// Whether `key` is one of the feed's own.
pub fn is_feed_key(key: &[u8]) -> bool {
    matches!(key.first(), Some(&ENTRY_TAG) | Some(b'K'))
}

fn entry_key(epoch: u64, seq: u64) -> [u8; 17] {
    let mut key = [0u8; 17];
    key[0] = ENTRY_TAG;
    key[1..9].copy_from_slice(&epoch.to_be_bytes());
    key[9..].copy_from_slice(&seq.to_be_bytes());
    key
}

/// The head of the feed in `tree`, if it has one.
pub fn head(tree: &sled::Tree) -> Result<Option<Position>, sled::Error> {
    Ok(tree
        .get(HEAD_KEY)?
        .and_then(|bytes| Position::from_bytes(&bytes)))
}

/// Entries per batch when a new feed lists what the tree holds.
pub const LISTING_BATCH: usize = 10_000;

/// Records the keys a projection writes.
#[derive(Debug)]
pub struct Writer {
    head: Position,
}

impl Writer {
    /// Opens the feed of `tree`, starting a new epoch (named after `now_us`) that lists every key
    /// `listed` accepts when the tree has no feed yet. The listing is written in batches of
    /// [`LISTING_BATCH`] and sealed last: a crash part-way leaves no head, so the next open lists
    /// again (removing the partial listing first).
    pub fn open(
        tree: &sled::Tree,
        now_us: u64,
        listed: impl Fn(&[u8]) -> bool,
    ) -> Result<Self, sled::Error> {
        if let Some(head) = head(tree)? {
            return Ok(Self { head });
        }
        remove(tree)?;
        let mut writer = Self {
            head: Position {
                epoch: now_us.max(1),
                seq: 0,
            },
        };
        let mut batch = sled::Batch::default();
        let mut in_batch = 0;
        for entry in tree.iter() {
            let (key, _) = entry?;
            if !is_feed_key(&key) && listed(&key) {
                writer.record(&mut batch, &key);
                in_batch += 1;
                if in_batch == LISTING_BATCH {
                    tree.apply_batch(std::mem::take(&mut batch))?;
                    in_batch = 0;
                }
            }
        }
        writer.seal(&mut batch);
        tree.apply_batch(batch)?;
        Ok(writer)
    }

    /// Adds an entry naming `key` to `batch` (which writes it).
    pub fn record(&mut self, batch: &mut sled::Batch, key: &[u8]) {
        self.head.seq += 1;
        batch.insert(&entry_key(self.head.epoch, self.head.seq), key);
    }

    /// Adds the feed's head to `batch`: call once per batch, after the last [`Self::record`].
    pub fn seal(&self, batch: &mut sled::Batch) {
        batch.insert(HEAD_KEY, &self.head.to_bytes());
    }
}

/// Removes the feed of `tree` (its head and every entry).
pub fn remove(tree: &sled::Tree) -> Result<(), sled::Error> {
    if tree.get(HEAD_KEY)?.is_none() && tree.scan_prefix([ENTRY_TAG]).next().is_none() {
        return Ok(());
    }
    let mut batch = sled::Batch::default();
    batch.remove(HEAD_KEY);
    for entry in tree.scan_prefix([ENTRY_TAG]) {
        let (key, _) = entry?;
        batch.remove(key);
    }
    tree.apply_batch(batch)
}

/// What a reader gets: the keys written after its position (at most `max` entries, the same key
/// once), and the position after them.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Read {
    pub keys: Vec<Vec<u8>>,
    pub next: Position,
    /// The reader's position was of another epoch: it starts again from the current one's start.
    pub restarted: bool,
}

/// Reads the feed of `tree` after `after`.
pub fn read(tree: &sled::Tree, after: Position, max: usize) -> Result<Read, sled::Error> {
    let Some(head) = head(tree)? else {
        return Ok(Read {
            next: after,
            ..Read::default()
        });
    };
    let restarted = head.epoch != after.epoch;
    let from_seq = if restarted { 0 } else { after.seq };
    let mut next = Position {
        epoch: head.epoch,
        seq: from_seq,
    };
    let mut keys = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let range = entry_key(head.epoch, from_seq.saturating_add(1))..=entry_key(head.epoch, u64::MAX);
    for entry in tree.range(range).take(max.max(1)) {
        let (key, value) = entry?;
        next.seq = u64::from_be_bytes(key[9..17].try_into().unwrap_or([0; 8]));
        if seen.insert(value.to_vec()) {
            keys.push(value.to_vec());
        }
    }
    Ok(Read {
        keys,
        next,
        restarted,
    })
}

/// Removes the entries of the feed of `tree` up to `upto` (of its epoch only).
pub fn trim(tree: &sled::Tree, upto: Position) -> Result<(), sled::Error> {
    let mut batch = sled::Batch::default();
    for entry in tree.range(entry_key(upto.epoch, 0)..=entry_key(upto.epoch, upto.seq)) {
        let (key, _) = entry?;
        batch.remove(key);
    }
    tree.apply_batch(batch)
}

/// Entries in the feed of `tree` after `after` (the reader's lag, in keys written).
pub fn behind(tree: &sled::Tree, after: Position) -> Result<u64, sled::Error> {
    Ok(match head(tree)? {
        None => 0,
        Some(head) if head.epoch == after.epoch => head.seq.saturating_sub(after.seq),
        Some(head) => head.seq,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn tree() -> (tempfile::TempDir, sled::Tree) {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let tree = db.open_tree("projection/test").unwrap();
        (dir, tree)
    }

    fn write(tree: &sled::Tree, feed: &mut Writer, keys: &[&str]) {
        let mut batch = sled::Batch::default();
        for key in keys {
            batch.insert(key.as_bytes(), b"v".as_slice());
            feed.record(&mut batch, key.as_bytes());
        }
        feed.seal(&mut batch);
        tree.apply_batch(batch).unwrap();
    }

    fn names(read: &Read) -> Vec<String> {
        read.keys
            .iter()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .collect()
    }

    #[test]
    fn a_new_feed_starts_with_every_key_already_stored_and_then_lists_writes_in_order() {
        let (_dir, tree) = tree();
        tree.insert("b1", "old").unwrap();
        tree.insert("v", "runner's").unwrap();
        let mut feed = Writer::open(&tree, 7, |k| k != b"v").unwrap();
        write(&tree, &mut feed, &["b2", "b1", "b2"]);
        let read = read(&tree, Position::default(), 100).unwrap();
        assert!(read.restarted);
        assert_eq!(names(&read), ["b1", "b2"], "each key once, first place");
        assert_eq!(read.next, Position { epoch: 7, seq: 4 });
        assert_eq!(behind(&tree, read.next).unwrap(), 0);
    }

    #[test]
    fn a_reader_goes_on_from_its_position_and_trimming_keeps_the_head() {
        let (_dir, tree) = tree();
        let mut feed = Writer::open(&tree, 7, |_| true).unwrap();
        write(&tree, &mut feed, &["a", "b"]);
        let first = read(&tree, Position::default(), 1).unwrap();
        assert_eq!(names(&first), ["a"]);
        trim(&tree, first.next).unwrap();
        write(&tree, &mut feed, &["c"]);
        let second = read(&tree, first.next, 100).unwrap();
        assert!(!second.restarted);
        assert_eq!(names(&second), ["b", "c"]);
        trim(&tree, second.next).unwrap();
        // Reopened (the hub restarted): the sequence goes on from the head, not from 1.
        let mut feed = Writer::open(&tree, 99, |_| true).unwrap();
        write(&tree, &mut feed, &["d"]);
        let third = read(&tree, second.next, 100).unwrap();
        assert_eq!(names(&third), ["d"]);
        assert_eq!(third.next, Position { epoch: 7, seq: 4 });
    }

    #[test]
    fn a_feed_cleared_with_its_tree_starts_a_new_epoch_and_its_reader_starts_again() {
        let (_dir, tree) = tree();
        let mut feed = Writer::open(&tree, 7, |_| true).unwrap();
        write(&tree, &mut feed, &["a", "b", "c"]);
        let old = read(&tree, Position::default(), 100).unwrap().next;
        tree.clear().unwrap(); // a rebuild
        let mut feed = Writer::open(&tree, 8, |_| true).unwrap();
        write(&tree, &mut feed, &["a"]);
        let read = read(&tree, old, 100).unwrap();
        assert!(read.restarted);
        assert_eq!(names(&read), ["a"]);
        assert_eq!(read.next, Position { epoch: 8, seq: 1 });
        // A trim of the old epoch cannot touch the new one.
        trim(&tree, old).unwrap();
        assert_eq!(behind(&tree, Position::default()).unwrap(), 1);
    }

    #[test]
    fn a_removed_feed_leaves_the_projection_and_starts_over_when_enabled_again() {
        let (_dir, tree) = tree();
        let mut feed = Writer::open(&tree, 7, |_| true).unwrap();
        write(&tree, &mut feed, &["a"]);
        remove(&tree).unwrap();
        assert_eq!(head(&tree).unwrap(), None);
        assert_eq!(tree.len(), 1, "only the projection's key is left");
        tree.insert("b", "written while nobody followed").unwrap();
        let _feed = Writer::open(&tree, 9, |_| true).unwrap();
        let read = read(&tree, Position { epoch: 7, seq: 1 }, 100).unwrap();
        assert_eq!(names(&read), ["a", "b"]);
    }

    #[test]
    fn a_large_store_is_listed_in_batches_each_key_once_and_a_partial_listing_is_redone() {
        let (_dir, tree) = tree();
        for i in 0..(2 * LISTING_BATCH + 7) {
            tree.insert(format!("b{i:06}"), "v").unwrap();
        }
        // A listing a crash cut short: entries without a head.
        tree.insert(entry_key(3, 1), b"b000000".as_slice()).unwrap();
        let _feed = Writer::open(&tree, 7, |_| true).unwrap();
        let read = read(&tree, Position::default(), usize::MAX).unwrap();
        assert_eq!(read.keys.len(), 2 * LISTING_BATCH + 7);
        assert_eq!(
            read.next,
            Position {
                epoch: 7,
                seq: (2 * LISTING_BATCH + 7) as u64
            }
        );
        assert_eq!(
            tree.scan_prefix([ENTRY_TAG]).count(),
            2 * LISTING_BATCH + 7,
            "the partial listing was removed"
        );
    }

    #[test]
    fn a_position_round_trips_and_a_short_one_is_refused() {
        let p = Position { epoch: 3, seq: 9 };
        assert_eq!(Position::from_bytes(&p.to_bytes()), Some(p));
        assert_eq!(Position::from_bytes(&[0; 15]), None);
    }
}
