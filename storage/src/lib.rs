//! `outpost-storage`: sled made durable, and the group-commit batching both the edge outbox and the
//! hub event log use.
//!
//! Why it exists: sled's own `flush` ends in `sync_file_range` on Linux, which survives `kill -9`
//! but neither flushes the drive's cache nor file metadata, so it does not survive a power cut.
//! [`DurableDb::commit`] follows sled's flush with `fdatasync` of sled's data file; that is the only
//! point after which Outpost calls anything "durable".
//!
//! Invariants: the database directory and its parent are fsynced when created, so the files exist
//! after a power cut; `commit` returns only after both the flush and the fdatasync succeeded, and an
//! error from either is returned, never swallowed.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What went wrong with durable storage.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("cannot open database {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: sled::Error,
    },
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
        let created = !path.exists();
        std::fs::create_dir_all(path).map_err(io(path))?;
        let config = sled::Config::new()
            .path(path)
            .mode(sled::Mode::HighThroughput)
            .cache_capacity(cache_bytes)
            // Our commits flush explicitly; sled's timer flush would only add I/O.
            .flush_every_ms(None);
        // A previous handle on the same directory (a restarted actor's, a test's) releases sled's
        // file lock from sled's own threads a moment after it is dropped: retry briefly.
        let mut attempts = 0;
        let db = loop {
            match config.open() {
                Ok(db) => break db,
                Err(sled::Error::Io(e)) if attempts < 60 && e.to_string().contains("lock") => {
                    attempts += 1;
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                Err(source) => {
                    return Err(StorageError::Open {
                        path: path.to_owned(),
                        source,
                    });
                }
            }
        };
        let data_path = path.join("db");
        let data_file = File::open(&data_path).map_err(io(&data_path))?;
        if created {
            sync_dir(path)?;
            if let Some(parent) = path.parent() {
                sync_dir(parent)?;
            }
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
}

/// Bytes of all files under `dir` (0 for what cannot be read).
pub fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_bytes(&e.path()),
                    Ok(m) => m.len(),
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
    let first = rx.blocking_recv()?;
    let mut batch = Vec::with_capacity(max.min(1024));
    batch.push(first);
    while batch.len() < max {
        match rx.try_recv() {
            Ok(message) => batch.push(message),
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
