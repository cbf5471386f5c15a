//! Compaction: sled keeps the disk space (and memory) a large backlog used after it drains, and has
//! no call to give it back. When the outbox is empty and its directory is over
//! `compact_above_bytes`, the writer stops with [`OutboxError::CompactionDue`]; the outbox actor
//! stops with a planned-restart reason (`outpost_actors::PLANNED_RESTART`), so its supervisor
//! restarts it and the actors after it at once, without counting a failure, and
//! [`super::Outbox::open`] rebuilds the directory with only what must survive (the sequence numbers
//! and the command marks).
//!
//! Crash safety: the new database is built beside the old one (`<dir>.compact`), the old one moved
//! to `<dir>.old`, the new one moved into place, then the old one removed. [`recover_interrupted`]
//! finishes or undoes a compaction a crash interrupted, before anything opens `<dir>`.

use std::path::{Path, PathBuf};

use outpost_storage::DurableDb;

use super::OutboxError;

fn sibling(dir: &Path, suffix: &str) -> PathBuf {
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{suffix}"));
    dir.with_file_name(name)
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> OutboxError + '_ {
    move |e| OutboxError::Storage(format!("{}: {e}", path.display()))
}

/// Completes or rolls back a compaction that a crash interrupted.
pub(crate) fn recover_interrupted(dir: &Path) -> Result<(), OutboxError> {
    let fresh = sibling(dir, "compact");
    let old = sibling(dir, "old");
    if !dir.exists() && fresh.exists() {
        // The old database was moved away and the new one is complete: move it into place.
        std::fs::rename(&fresh, dir).map_err(io(dir))?;
    }
    if fresh.exists() {
        std::fs::remove_dir_all(&fresh).map_err(io(&fresh))?;
    }
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(io(&old))?;
    }
    Ok(())
}

/// Replaces the database in `dir` by a new one holding only `entries`.
pub(crate) fn rebuild(
    dir: &Path,
    entries: Vec<(sled::IVec, sled::IVec)>,
) -> Result<(), OutboxError> {
    let fresh = sibling(dir, "compact");
    let old = sibling(dir, "old");
    if fresh.exists() {
        std::fs::remove_dir_all(&fresh).map_err(io(&fresh))?;
    }
    {
        let db = DurableDb::open_with_cache(&fresh, 1024 * 1024)?;
        let mut batch = outpost_storage::Batch::default();
        for (key, value) in entries {
            batch.insert(key, value)?;
        }
        db.apply(batch)?;
        db.commit()?;
    }
    std::fs::rename(dir, &old).map_err(io(dir))?;
    std::fs::rename(&fresh, dir).map_err(io(dir))?;
    if let Some(parent) = dir.parent() {
        std::fs::File::open(parent)
            .and_then(|d| d.sync_all())
            .map_err(io(parent))?;
    }
    std::fs::remove_dir_all(&old).map_err(io(&old))?;
    Ok(())
}
