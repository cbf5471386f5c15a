//! How much the outbox may store: its configured budget, or less when the disk holds less.
//!
//! A board's card fills up (logs, other software, a small card); an outbox that writes until
//! `ENOSPC` fails its commit, and sled cannot go on after a failed write. So the budget the writer
//! applies is `min(budget_bytes, (free + outbox files − reserve) / AMPLIFICATION)`: the space the
//! outbox can use, divided by what sled's files take per stored byte. Over it, money and audit
//! events wait (their devices stay unacknowledged) and telemetry is shed, as with the configured
//! budget; the writer never runs the disk full by itself.
//!
//! The amplification is not a bound: sled's files grow past it when the edge is killed again and
//! again while it delivers (each recovery leaves segments sled does not reuse; measured 4× after
//! eight `kill -9` within 20 s). So the budget has a floor that does not depend on it: while the
//! file system's free space is under the reserve, nothing more is admitted (money and audit wait,
//! telemetry is recorded as shed), and once everything stored is delivered the writer compacts
//! (see `compact.rs`) — the outbox never takes the disk so full that sled cannot open it again.
//!
//! The floor is kept between two looks at the disk too: every byte admitted since the last
//! `statvfs` counts [`AMPLIFICATION`] times against the free space then measured, and the file
//! system is asked again once that estimate has moved by [`RESTAT_AFTER_BYTES`]. A burst cannot
//! run past the reserve in the quarter second between two timed looks (a catch-up at full speed on
//! a 24 MiB disk did, and sled's commit then failed with `ENOSPC`).
//!
//! Invariants: the outbox's directory is measured at most every [`CHECK_EVERY`]; the free space at
//! most every [`CHECK_EVERY`] or every [`RESTAT_AFTER_BYTES`] of estimated growth, whichever comes
//! first; a failed `statvfs` leaves the configured budget in force and no floor (and says so once).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// sled's files per stored byte, at most: 2.5 in steady state, 3.4 during a catch-up with nothing
/// new arriving, 4.5 during a catch-up at full speed while the device goes on offering 3 MB/s
/// (`sim/tests/disk_full.rs`); the budget leaves room for the worst, and the floor for the rest.
pub const AMPLIFICATION: f64 = 5.0;

/// How often the file system is asked for its free space.
pub const CHECK_EVERY: Duration = Duration::from_millis(250);

/// Estimated growth of sled's files after which the free space is measured again.
pub const RESTAT_AFTER_BYTES: u64 = 256 * 1024;

/// Space left for everything else on the file system: a tenth of it, between 1 and 64 MiB.
pub fn reserve_bytes(fs_bytes: u64) -> u64 {
    (fs_bytes / 10).clamp(1 << 20, 64 << 20)
}

/// The budget for `configured` when the outbox's files take `own_bytes` and the file system has
/// `free_bytes` free of `fs_bytes`.
pub fn effective_budget(configured: u64, own_bytes: u64, free_bytes: u64, fs_bytes: u64) -> u64 {
    let usable = (free_bytes + own_bytes).saturating_sub(reserve_bytes(fs_bytes));
    configured.min((usable as f64 / AMPLIFICATION) as u64)
}

/// The writer's view of its disk.
#[derive(Debug)]
pub(crate) struct DiskRoom {
    dir: PathBuf,
    configured: u64,
    budget: u64,
    checked_at: Option<Instant>,
    warned: bool,
    /// The file system's free space was under the reserve at the last check.
    below_floor: bool,
    /// Free space at the last `statvfs`, and the file system's size (`None`: not known).
    free_at_stat: Option<(u64, u64)>,
    /// Bytes admitted since that `statvfs`.
    written_since_stat: u64,
}

impl DiskRoom {
    pub(crate) fn new(dir: &Path, configured: u64) -> Self {
        Self {
            dir: dir.to_owned(),
            configured,
            budget: configured,
            checked_at: None,
            warned: false,
            below_floor: false,
            free_at_stat: None,
            written_since_stat: 0,
        }
    }

    /// Counts `bytes` just admitted against the free space (see the module docs).
    pub(crate) fn wrote(&mut self, bytes: u64) {
        self.written_since_stat += bytes;
    }

    /// The free space the last `statvfs` found, less what was admitted since, times
    /// [`AMPLIFICATION`].
    fn estimated_free(&self) -> Option<(u64, u64)> {
        let (free, size) = self.free_at_stat?;
        let grown = (self.written_since_stat as f64 * AMPLIFICATION) as u64;
        Some((free.saturating_sub(grown), size))
    }

    /// Whether the file system's free space is under the reserve, by the last look and what was
    /// admitted since (asks the file system as [`Self::budget`] does, and again after
    /// [`RESTAT_AFTER_BYTES`] of estimated growth).
    pub(crate) fn below_floor(&mut self) -> bool {
        self.budget();
        let grown = (self.written_since_stat as f64 * AMPLIFICATION) as u64;
        if grown >= RESTAT_AFTER_BYTES {
            // A failed look leaves no estimate, so no floor (as the timed look does).
            let _ = self.stat_free();
        }
        if let Some((free, size)) = self.estimated_free() {
            self.set_floor(free, size);
        }
        self.below_floor
    }

    /// Asks the file system for its free space only (a cheap `statvfs`).
    fn stat_free(&mut self) -> Result<(u64, u64), nix::Error> {
        self.written_since_stat = 0;
        self.free_at_stat = None;
        let fs = nix::sys::statvfs::statvfs(&self.dir)?;
        let block = fs.fragment_size();
        let found = (fs.blocks_available() * block, fs.blocks() * block);
        self.free_at_stat = Some(found);
        Ok(found)
    }

    fn set_floor(&mut self, free: u64, size: u64) {
        let below_floor = free < reserve_bytes(size);
        if below_floor != self.below_floor {
            if below_floor {
                tracing::warn!(
                    dir = %self.dir.display(),
                    free_bytes = free,
                    reserve_bytes = reserve_bytes(size),
                    "the disk's free space is under the reserve; nothing more is stored until the outbox is delivered and compacted (money waits, telemetry is shed)"
                );
            } else {
                tracing::info!(dir = %self.dir.display(), free_bytes = free, "the disk has room again");
            }
        }
        self.below_floor = below_floor;
        crate::metrics::OUTBOX_DISK_FLOOR.set(i64::from(below_floor));
    }

    /// The budget now (asks the file system if the last answer is older than [`CHECK_EVERY`]).
    pub(crate) fn budget(&mut self) -> u64 {
        if self.checked_at.is_some_and(|at| at.elapsed() < CHECK_EVERY) {
            return self.budget;
        }
        self.checked_at = Some(Instant::now());
        match self.stat_free() {
            Ok((free, size)) => {
                let own = outpost_storage::dir_bytes(&self.dir);
                let budget = effective_budget(self.configured, own, free, size);
                if budget < self.configured && !self.warned {
                    tracing::warn!(
                        dir = %self.dir.display(),
                        budget_bytes = self.configured,
                        effective_bytes = budget,
                        free_bytes = free,
                        "the disk holds less than the outbox budget; applying the smaller budget"
                    );
                }
                self.warned = budget < self.configured;
                self.budget = budget;
                self.set_floor(free, size);
            }
            Err(err) => {
                if !self.warned {
                    tracing::warn!(dir = %self.dir.display(), %err, "cannot read the free space; applying the configured budget");
                    self.warned = true;
                }
                self.budget = self.configured;
                self.below_floor = false;
            }
        }
        crate::metrics::OUTBOX_BUDGET.set(self.budget as i64);
        self.budget
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn a_roomy_disk_leaves_the_configured_budget() {
        assert_eq!(
            effective_budget(256 * MIB, 10 * MIB, 20_000 * MIB, 30_000 * MIB),
            256 * MIB
        );
    }

    #[test]
    fn a_small_disk_shrinks_the_budget_to_what_sled_can_use_after_the_reserve() {
        // 20 MiB file system, outbox files 2 MiB, 16 MiB free: (18 − 2) / AMPLIFICATION.
        let budget = effective_budget(256 * MIB, 2 * MIB, 16 * MIB, 20 * MIB);
        assert_eq!(budget, ((16 * MIB) as f64 / AMPLIFICATION) as u64);
    }

    #[test]
    fn a_full_disk_leaves_no_budget() {
        assert_eq!(effective_budget(256 * MIB, 0, MIB / 2, 20 * MIB), 0);
    }
}
