//! `outpost-storage`: sled made durable, and the group-commit batching both the edge outbox and the
//! hub event log use.
//!
//! Why it exists: sled's own `flush` ends in `sync_file_range` on Linux, which survives `kill -9`
//! but neither flushes the drive's cache nor file metadata, so it does not survive a power cut.
//! [`DurableDb::commit`] follows sled's flush with `fdatasync` of sled's data file; that is the only
//! point after which Outpost calls anything "durable".
//!
//! **Every page stays in sled's log.** sled 0.34 writes a page image larger than a quarter of its
//! segment to a file of its own (`<db>/blobs/<lsn>`) with a plain `write()` and never syncs it, and
//! its log entry pointing at that file can reach the disk first; after a power cut such a database
//! does not open. Syncing the blob files ourselves cannot close that window, so no page may ever
//! reach the threshold. The bound, from sled 0.34.7's source:
//! - a page image is written as a blob when `32 + serialized size > segment / 4 − 20`
//!   (`pagecache/logger.rs`), so with [`SEGMENT_BYTES`] a page must serialize to at most
//!   [`BLOB_THRESHOLD_BYTES`];
//! - a leaf is split when it holds more than 16 entries and a leaf with fewer than 4 is merged
//!   into its left sibling (`node.rs`); inserts link to a leaf with a compare-and-swap after the
//!   split check, so a leaf holds at most 17 entries, and 20 while a merge lands
//!   ([`MAX_LEAF_ENTRIES`]); index pages hold up to 257 keys without values;
//! - a leaf serializes as its low and high keys, then per entry two varints, the key and the value
//!   (`serialization.rs`).
//!
//! So with keys of at most [`MAX_KEY_BYTES`] and values of at most [`MAX_VALUE_BYTES`] no page
//! reaches the threshold (checked at compile time below). [`Batch`] and [`DurableDb::check_entry`]
//! refuse larger entries with [`StorageError::EntryTooLarge`] before they reach sled, and
//! [`DurableDb::blob_files`] lets the owner alert if a blob file ever appears anyway. The test
//! `storage/tests/no_blobs.rs` drives the worst workloads and asserts `blobs/` stays empty, and
//! shows that entries a little over the bound do make blobs.
//!
//! Invariants: the database directory, its `blobs/` directory, sled's `conf` file and the parent
//! directory are synced at every open, so the files exist after a power cut; `commit` returns only
//! after both the flush and the fdatasync succeeded, and an error from either is returned, never
//! swallowed; a database that does not open is an error naming its path ([`StorageError::Open`],
//! [`StorageError::OpenPanicked`]),
//! never a panic.
//!
//! **A database is read whole after an unclean stop.** sled can open a database that a crash
//! damaged and fail (or panic) only when the damaged page is read, which for a hub is reading its
//! event log at start: a crash loop. So a clean stop ([`DurableDb::mark_clean_stop`], which the
//! hub calls once its actors have stopped, and the drop of the last handle) leaves a file
//! `outpost-clean-stop` after a successful commit, the next open removes it (durably), and an open
//! that finds none (a crash, `kill -9`, a power cut, a failed commit) reads every entry of every
//! tree first; an error or a panic there is [`StorageError::Damaged`], which the processes treat
//! like a database that does not open (unready, `store set-aside`).

pub mod chunk;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// sled's log segment size, stated rather than inherited (it is sled's default, and a database
/// keeps the size it was created with).
pub const SEGMENT_BYTES: usize = 512 * 1024;

/// A page that serializes to more than this is written outside the log as a blob file.
pub const BLOB_THRESHOLD_BYTES: usize = SEGMENT_BYTES / 4 - 20 - 32;

/// Most entries a leaf page holds (16 before a split, one insert, a merged sibling of at most 3).
pub const MAX_LEAF_ENTRIES: usize = 20;

/// Longest key an Outpost store may write.
pub const MAX_KEY_BYTES: usize = 128;

/// Largest value an Outpost store may write: what keeps a full leaf below the blob threshold.
pub const MAX_VALUE_BYTES: usize = 6 * 1024;

/// A varint's largest size, and a node's header without its keys (next, merging child, flags).
const VARINT: usize = 9;
const NODE_HEADER: usize = 64;

/// The largest leaf page Outpost can make, serialized.
pub const MAX_PAGE_BYTES: usize = NODE_HEADER
    + 2 * (VARINT + MAX_KEY_BYTES)
    + MAX_LEAF_ENTRIES * (2 * VARINT + MAX_KEY_BYTES + MAX_VALUE_BYTES);

const _: () = assert!(
    MAX_PAGE_BYTES < BLOB_THRESHOLD_BYTES,
    "a full leaf of the largest entries must stay in sled's log"
);

/// Removes the snapshot files sled began and never finished (`snap.<lsn>.generating`).
///
/// sled 0.34 writes a snapshot to `snap.<lsn>.generating`, syncs it, then renames it to
/// `snap.<lsn>`; but at open it reads the last of *all* `snap.*` files, the unfinished ones
/// included, and refuses to open when that one is short ("Read corrupted data"). A snapshot write
/// cut short (the disk filled up; the power went) leaves exactly that, and the database would
/// never open again, though nothing in it is damaged: an unfinished snapshot was never used
/// (the previous one is removed only after the rename), so removing it loses nothing, and sled
/// rebuilds what it needs from the previous snapshot and its log.
fn remove_unfinished_snapshots(path: &Path) -> Result<(), StorageError> {
    let entries = std::fs::read_dir(path).map_err(|source| StorageError::Io {
        path: path.to_owned(),
        source,
    })?;
    let mut removed = false;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("snap.") && name.ends_with(".generating") {
            let file = entry.path();
            let bytes = entry.metadata().map(|m| m.len()).unwrap_or(0);
            std::fs::remove_file(&file).map_err(|source| StorageError::Io {
                path: file.clone(),
                source,
            })?;
            tracing::warn!(file = %file.display(), bytes, "removed a snapshot sled began and never finished");
            removed = true;
        }
    }
    if removed {
        sync_dir(path)?;
    }
    Ok(())
}

/// What went wrong with durable storage.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("cannot open database {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: sled::Error,
    },
    #[error("cannot open database {path}: sled panicked reading it: {message}")]
    OpenPanicked { path: PathBuf, message: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("database {path}: {source}")]
    Sled {
        path: PathBuf,
        #[source]
        source: sled::Error,
    },
    #[error(
        "database {path} is damaged: reading it whole after an unclean stop failed at entry \
         {entries_read} of tree {tree:?}: {detail}"
    )]
    Damaged {
        path: PathBuf,
        /// The tree being read when it failed.
        tree: String,
        /// Entries of that tree read before it failed.
        entries_read: u64,
        detail: DamageDetail,
    },
    #[error("database {path} is open in a running process; stop it first")]
    InUse { path: PathBuf },
    #[error(
        "an entry with a key of {key_bytes} bytes and a value of {value_bytes} bytes is over the \
         store's limits ({MAX_KEY_BYTES}-byte keys, {MAX_VALUE_BYTES}-byte values)"
    )]
    EntryTooLarge {
        key_bytes: usize,
        value_bytes: usize,
    },
}

impl StorageError {
    /// Whether this is the file system being full (ENOSPC): nothing is wrong with the store, and
    /// it opens again once there is room.
    pub fn is_disk_full(&self) -> bool {
        let io = match self {
            StorageError::Open { source, .. } | StorageError::Sled { source, .. } => match source {
                sled::Error::Io(io) => io,
                _ => return false,
            },
            StorageError::Io { source, .. } => source,
            _ => return false,
        };
        is_disk_full(io)
    }
}

/// What reading a damaged database reported: sled's error, or its panic's message (sled asserts
/// on some damage instead of answering an error).
#[derive(Debug, thiserror::Error)]
pub enum DamageDetail {
    #[error("{0}")]
    Error(sled::Error),
    #[error("sled panicked: {0}")]
    Panicked(String),
}

/// The file a clean stop leaves in a database's directory: its absence at open means the last
/// stop was not clean.
pub const CLEAN_STOP_FILE: &str = "outpost-clean-stop";

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

/// Reads every entry of every tree of `db`; returns how many there were.
fn read_whole(db: &sled::Db, path: &Path) -> Result<u64, StorageError> {
    let mut tree_name = String::new();
    // Of the tree being read, and of those read before it.
    let mut entries_read = 0u64;
    let mut entries_before = 0u64;
    let read = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        for name in db.tree_names() {
            tree_name = String::from_utf8_lossy(&name).into_owned();
            entries_read = 0;
            let tree = db.open_tree(&name)?;
            for entry in tree.iter() {
                entry?;
                entries_read += 1;
            }
            entries_before += entries_read;
        }
        Ok::<(), sled::Error>(())
    }));
    let detail = match read {
        Ok(Ok(())) => return Ok(entries_before),
        Ok(Err(error)) => DamageDetail::Error(error),
        Err(panic) => DamageDetail::Panicked(panic_message(panic.as_ref())),
    };
    Err(StorageError::Damaged {
        path: path.to_owned(),
        tree: tree_name,
        entries_read,
        detail,
    })
}

/// Whether `error` is ENOSPC (sled sometimes wraps the OS error in a custom one).
pub fn is_disk_full(error: &std::io::Error) -> bool {
    error.kind() == std::io::ErrorKind::StorageFull
        || error.raw_os_error() == Some(28)
        || error
            .get_ref()
            .is_some_and(|inner| inner.to_string().contains("No space left on device"))
}

/// Refuses an entry over [`MAX_KEY_BYTES`] or [`MAX_VALUE_BYTES`].
pub fn check_entry(key: &[u8], value: &[u8]) -> Result<(), StorageError> {
    if key.len() > MAX_KEY_BYTES || value.len() > MAX_VALUE_BYTES {
        return Err(StorageError::EntryTooLarge {
            key_bytes: key.len(),
            value_bytes: value.len(),
        });
    }
    Ok(())
}

/// A sled batch whose entries are checked against the store's limits as they are added.
#[derive(Debug, Default)]
pub struct Batch {
    inner: sled::Batch,
}

impl Batch {
    /// Adds `key → value`, or refuses it (the batch is unchanged) if it is over the limits.
    pub fn insert(
        &mut self,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
    ) -> Result<(), StorageError> {
        let (key, value) = (key.as_ref(), value.as_ref());
        check_entry(key, value)?;
        self.inner.insert(key, value);
        Ok(())
    }

    pub fn remove(&mut self, key: impl AsRef<[u8]>) {
        self.inner.remove(key.as_ref());
    }

    /// The checked sled batch, for a tree other than the database's default one.
    pub fn into_inner(self) -> sled::Batch {
        self.inner
    }
}

/// Where a batch becomes durable: applied to the database, then flushed and fdatasynced. [`Disk`]
/// is the real one; a test's implementation fails where a disk would, so the paths that handle a
/// failed commit can be tested.
pub trait Commit: Send + 'static {
    /// Applies `batch` to `db` and makes it durable; returns how long the flush took.
    fn commit(&mut self, db: &DurableDb, batch: Batch) -> Result<Duration, StorageError>;
}

/// The disk: [`DurableDb::apply`] then [`DurableDb::commit`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Disk;

impl Commit for Disk {
    fn commit(&mut self, db: &DurableDb, batch: Batch) -> Result<Duration, StorageError> {
        db.apply(batch)?;
        db.commit()
    }
}

/// A sled database whose commits are durable across power cuts.
#[derive(Debug)]
pub struct DurableDb {
    db: sled::Db,
    data_file: File,
    path: PathBuf,
}

impl DurableDb {
    /// Opens (or creates) the database in directory `path` with sled's default page cache.
    pub fn open(path: &Path) -> Result<Self, StorageError> {
        Self::open_with_cache(path, 64 * 1024 * 1024)
    }

    /// Opens (or creates) the database in directory `path`; sled may cache `cache_bytes` of pages
    /// (its default, 1 GiB, is far more than a board should give it).
    pub fn open_with_cache(path: &Path, cache_bytes: u64) -> Result<Self, StorageError> {
        let io = |p: &Path| {
            let p = p.to_owned();
            move |source| StorageError::Io { path: p, source }
        };
        std::fs::create_dir_all(path).map_err(io(path))?;
        // A database sled creates now has nothing to read and no stop behind it, clean or not.
        let created = !path.join("db").exists();
        remove_unfinished_snapshots(path)?;
        let config = sled::Config::new()
            .path(path)
            .segment_size(SEGMENT_BYTES)
            .mode(sled::Mode::HighThroughput)
            .cache_capacity(cache_bytes)
            // Our commits flush explicitly; sled's timer flush would only add I/O.
            .flush_every_ms(None);
        // A previous handle on the same directory (a restarted actor's, a test's) releases sled's
        // file lock from sled's own threads a moment after it is dropped: retry briefly.
        let mut attempts = 0;
        let db = loop {
            // sled panics on some damaged files instead of answering an error.
            let opened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| config.open()));
            match opened {
                Ok(Ok(db)) => break db,
                Ok(Err(sled::Error::Io(e))) if attempts < 60 && e.to_string().contains("lock") => {
                    attempts += 1;
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                Ok(Err(source)) => {
                    return Err(StorageError::Open {
                        path: path.to_owned(),
                        source,
                    });
                }
                Err(panic) => {
                    return Err(StorageError::OpenPanicked {
                        path: path.to_owned(),
                        message: panic_message(panic.as_ref()),
                    });
                }
            }
        };
        let data_path = path.join("db");
        let data_file = File::open(&data_path).map_err(io(&data_path))?;
        // sled creates these without syncing them; after a power cut a missing or empty `conf`
        // alone makes the database unopenable.
        File::open(path.join("conf"))
            .and_then(|f| f.sync_all())
            .map_err(io(&path.join("conf")))?;
        sync_dir(&path.join("blobs"))?;
        sync_dir(path)?;
        if let Some(parent) = path.parent() {
            sync_dir(parent)?;
        }
        let clean_stop = path.join(CLEAN_STOP_FILE);
        if clean_stop.exists() {
            // Gone for good before anything is written: a crash from here on is an unclean stop.
            std::fs::remove_file(&clean_stop).map_err(io(&clean_stop))?;
            sync_dir(path)?;
        } else if !created {
            let started = Instant::now();
            let entries = read_whole(&db, path)?;
            tracing::info!(path = %path.display(), entries, took_ms = started.elapsed().as_millis() as u64, "database read whole after an unclean stop: undamaged");
        }
        Ok(Self {
            db,
            data_file,
            path: path.to_owned(),
        })
    }

    pub fn db(&self) -> &sled::Db {
        &self.db
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Applies `batch` atomically (not yet durable: see [`Self::commit`]).
    pub fn apply(&self, batch: Batch) -> Result<(), StorageError> {
        self.db
            .apply_batch(batch.inner)
            .map_err(|source| StorageError::Sled {
                path: self.path.clone(),
                source,
            })
    }

    /// Inserts one entry into `tree` (a tree of this database), checked against the limits.
    pub fn insert(
        &self,
        tree: &sled::Tree,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
    ) -> Result<(), StorageError> {
        let (key, value) = (key.as_ref(), value.as_ref());
        check_entry(key, value)?;
        tree.insert(key, value)
            .map(|_| ())
            .map_err(|source| StorageError::Sled {
                path: self.path.clone(),
                source,
            })
    }

    /// Makes everything written so far durable: sled's flush, then `fdatasync` of its data file.
    /// Returns how long it took.
    pub fn commit(&self) -> Result<Duration, StorageError> {
        let started = Instant::now();
        self.db.flush().map_err(|source| StorageError::Sled {
            path: self.path.clone(),
            source,
        })?;
        self.data_file
            .sync_data()
            .map_err(|source| StorageError::Io {
                path: self.path.join("db"),
                source,
            })?;
        Ok(started.elapsed())
    }

    /// Bytes the database occupies on disk (all files in its directory).
    pub fn disk_bytes(&self) -> u64 {
        dir_bytes(&self.path)
    }

    /// Page images sled wrote outside its log (`blobs/`). Always 0 while the entry limits hold;
    /// anything else is a page a power cut could leave empty: alert on it.
    pub fn blob_files(&self) -> usize {
        blob_files(&self.path)
    }
}

impl DurableDb {
    /// A clean stop: commits everything, then leaves [`CLEAN_STOP_FILE`] (durably), so the next
    /// open need not read the database whole. Call when nothing writes any more; dropping the last
    /// handle does the same. A commit that fails leaves no file.
    pub fn mark_clean_stop(&self) -> Result<(), StorageError> {
        self.commit()?;
        write_file_durably(&self.path, CLEAN_STOP_FILE, b"")
    }
}

impl Drop for DurableDb {
    fn drop(&mut self) {
        if let Err(err) = self.mark_clean_stop() {
            tracing::warn!(%err, "cannot mark the database's stop as clean: the next open reads it whole");
        }
    }
}

/// Files in the `blobs/` directory of the sled database in `path`.
pub fn blob_files(path: &Path) -> usize {
    std::fs::read_dir(path.join("blobs"))
        .map(|entries| entries.count())
        .unwrap_or(0)
}

/// Moves a database that does not open out of the way, to `<path>.broken-<unix seconds>`, and
/// syncs the parent directory; returns the new path. Nothing is deleted: the files stay there for
/// salvage, and the next open of `path` starts an empty database.
pub fn set_aside(path: &Path) -> Result<PathBuf, StorageError> {
    // sled holds an exclusive lock on its data file while a process has the database open.
    let data = path.join("db");
    if let Ok(file) = File::open(&data)
        && let Err(std::fs::TryLockError::WouldBlock) = file.try_lock()
    {
        return Err(StorageError::InUse {
            path: path.to_owned(),
        });
    }
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".broken-{secs}"));
    let aside = path.with_file_name(name);
    std::fs::rename(path, &aside).map_err(|source| StorageError::Io {
        path: path.to_owned(),
        source,
    })?;
    if let Some(parent) = path.parent() {
        sync_dir(parent)?;
    }
    Ok(aside)
}

/// Writes `bytes` to `dir/name` so that after a power cut the file is either absent or whole:
/// a temporary file, fsynced, renamed into place, then the directory fsynced (and every directory
/// this call created, with its parent). An existing `dir/name` is replaced.
pub fn write_file_durably(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), StorageError> {
    let io = |p: &Path| {
        let p = p.to_owned();
        move |source| StorageError::Io { path: p, source }
    };
    let mut created = Vec::new();
    let mut missing = Some(dir);
    while let Some(d) = missing.filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
        created.push(d.to_owned());
        missing = d.parent();
    }
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let tmp = dir.join(format!(".{name}.tmp"));
    let target = dir.join(name);
    {
        let mut file = File::create(&tmp).map_err(io(&tmp))?;
        std::io::Write::write_all(&mut file, bytes).map_err(io(&tmp))?;
        file.sync_all().map_err(io(&tmp))?;
    }
    std::fs::rename(&tmp, &target).map_err(io(&target))?;
    sync_dir(dir)?;
    // Oldest first does not matter: each created directory's entry is in its parent.
    for d in created {
        if let Some(parent) = d.parent() {
            sync_dir(parent)?;
        }
    }
    Ok(())
}

/// Bytes of all files under `dir` (0 for what cannot be read).
pub fn dir_bytes(dir: &Path) -> u64 {
    dir_sum(dir, std::fs::Metadata::len)
}

/// Bytes the files under `dir` take on disk (allocated blocks: sparse and preallocated files count
/// as what they use, not their length).
pub fn dir_allocated_bytes(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    dir_sum(dir, |m| m.blocks() * 512)
}

fn dir_sum(dir: &Path, size: fn(&std::fs::Metadata) -> u64) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_sum(&e.path(), size),
                    Ok(m) => size(&m),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| StorageError::Io {
            path: dir.to_owned(),
            source,
        })
}

/// Blocks for the next message, then takes whatever else is already queued, up to `max` in all:
/// the batch one commit will cover. `None` when every sender is gone.
pub fn recv_batch<M>(rx: &mut tokio::sync::mpsc::Receiver<M>, max: usize) -> Option<Vec<M>> {
    recv_batch_weighted(rx, max, |_| 1)
}

/// [`recv_batch`] where each message weighs `weight(message)`: takes queued messages until they
/// weigh `max` or more together (the last one may carry the batch past `max`).
pub fn recv_batch_weighted<M>(
    rx: &mut tokio::sync::mpsc::Receiver<M>,
    max: usize,
    weight: impl Fn(&M) -> usize,
) -> Option<Vec<M>> {
    let first = rx.blocking_recv()?;
    let mut weighed = weight(&first);
    let mut batch = Vec::with_capacity(max.min(1024));
    batch.push(first);
    while weighed < max {
        match rx.try_recv() {
            Ok(message) => {
                weighed += weight(&message);
                batch.push(message);
            }
            Err(_) => break,
        }
    }
    Some(batch)
}

/// `u64` as a big-endian key, so that sled's byte order is numeric order.
pub fn seq_key(prefix: u8, seq: u64) -> [u8; 9] {
    let mut key = [0u8; 9];
    key[0] = prefix;
    key[1..].copy_from_slice(&seq.to_be_bytes());
    key
}

/// The sequence number of a key made by [`seq_key`], if it is one.
pub fn key_seq(key: &[u8]) -> Option<u64> {
    let bytes: [u8; 8] = key.get(1..9)?.try_into().ok()?;
    Some(u64::from_be_bytes(bytes))
}

/// Chunks under `prefix` (keys `prefix ++ first seq (u64 BE)`, values starting with their last
/// seq, see `outpost_link::chunk`) from the one holding `seq` on — or from the first after it.
pub fn chunks_from(
    tree: &sled::Tree,
    prefix: &[u8],
    seq: u64,
) -> impl Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>> + use<> {
    let key = |s: u64| [prefix, &s.to_be_bytes()[..]].concat();
    let holding = tree.range(key(0)..=key(seq)).next_back();
    let start = match holding {
        Some(Ok((k, value)))
            if value
                .first_chunk::<8>()
                .is_some_and(|last| u64::from_be_bytes(*last) >= seq) =>
        {
            k.to_vec()
        }
        _ => key(seq),
    };
    tree.range(start..key(u64::MAX))
}
