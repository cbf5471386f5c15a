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
//! Invariants: the file system is asked at most every [`CHECK_EVERY`]; a failed `statvfs` leaves
//! the configured budget in force and no floor (and says so once).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// sled's files per stored byte, at most (measured up to 3.4 during a catch-up; 2.5 in steady
/// state), so the budget leaves room for the worst.
pub const AMPLIFICATION: f64 = 3.5;

/// How often the file system is asked for its free space.
pub const CHECK_EVERY: Duration = Duration::from_millis(250);

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
        }
    }

    /// Whether the file system's free space is under the reserve (asks as [`Self::budget`] does).
    pub(crate) fn below_floor(&mut self) -> bool {
        self.budget();
        self.below_floor
    }

    /// The budget now (asks the file system if the last answer is older than [`CHECK_EVERY`]).
    pub(crate) fn budget(&mut self) -> u64 {
        if self.checked_at.is_some_and(|at| at.elapsed() < CHECK_EVERY) {
            return self.budget;
        }
        self.checked_at = Some(Instant::now());
        match nix::sys::statvfs::statvfs(&self.dir) {
            Ok(fs) => {
                let block = fs.fragment_size();
                let free = fs.blocks_available() * block;
                let size = fs.blocks() * block;
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
                let below_floor = free < reserve_bytes(size);
                if below_floor != self.below_floor {
                    if below_floor {
                        tracing::warn!(
                            dir = %self.dir.display(),
                            free_bytes = free,
                            reserve_bytes = reserve_bytes(size),
                            outbox_bytes = own,
                            "the disk's free space is under the reserve; nothing more is stored until the outbox is delivered and compacted (money waits, telemetry is shed)"
                        );
                    } else {
                        tracing::info!(dir = %self.dir.display(), free_bytes = free, "the disk has room again");
                    }
                }
                self.below_floor = below_floor;
                crate::metrics::OUTBOX_DISK_FLOOR.set(i64::from(below_floor));
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
        // 20 MiB file system, outbox files 2 MiB, 16 MiB free: (18 − 2) / 3.5.
        let budget = effective_budget(256 * MIB, 2 * MIB, 16 * MIB, 20 * MIB);
        assert_eq!(budget, ((16 * MIB) as f64 / AMPLIFICATION) as u64);
    }

    #[test]
    fn a_full_disk_leaves_no_budget() {
        assert_eq!(effective_budget(256 * MIB, 0, MIB / 2, 20 * MIB), 0);
    }
}
