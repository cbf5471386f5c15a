//! Counted drop: what the count room found in each machine's drop box for a gaming day, entered
//! through the API, with an immutable trail.
//!
//! On disk (sled tree `counted_drop`): `edge ++ 0 ++ device ++ 0 ++ day ++ 0 ++ n (u32 BE)` →
//! [`CountEntry`] (JSON). Entries are only ever added: a correction is a new entry that says why,
//! and the original stays. The latest entry is the count.

use serde::{Deserialize, Serialize};

/// The tree holding these records (the MSSQL sink watches it).
pub(crate) const TREE: &str = "counted_drop";

/// One entry of a machine's count for a day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountEntry {
    /// Minor units of the currency.
    pub amount: i128,
    pub by: String,
    pub at_us: i64,
    /// Why, for a correction.
    pub note: String,
}

/// Why an entry was refused.
#[derive(Debug, thiserror::Error)]
pub enum CountError {
    #[error("{0} was counted already: a correction says why (\"note\")")]
    CorrectionWithoutReason(String),
    #[error("count store: {0}")]
    Store(String),
}

/// The counts.
pub struct Counts {
    db: sled::Db,
    tree: sled::Tree,
    lock: std::sync::Mutex<()>,
}

impl std::fmt::Debug for Counts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Counts").finish_non_exhaustive()
    }
}

fn prefix(edge: &str, device: &str, day: &str) -> Vec<u8> {
    [
        edge.as_bytes(),
        &[0],
        device.as_bytes(),
        &[0],
        day.as_bytes(),
        &[0],
    ]
    .concat()
}

impl Counts {
    pub fn open(db: &sled::Db) -> Result<Self, sled::Error> {
        Ok(Self {
            db: db.clone(),
            tree: db.open_tree(TREE)?,
            lock: std::sync::Mutex::new(()),
        })
    }

    /// Every entry for a machine's day, oldest first.
    pub fn trail(
        &self,
        edge: &str,
        device: &str,
        day: &str,
    ) -> Result<Vec<CountEntry>, CountError> {
        self.tree
            .scan_prefix(prefix(edge, device, day))
            .map(|entry| {
                let (_, value) = entry.map_err(|e| CountError::Store(e.to_string()))?;
                serde_json::from_slice(&value).map_err(|e| CountError::Store(e.to_string()))
            })
            .collect()
    }

    /// The count (the latest entry), if there is one.
    pub fn latest(
        &self,
        edge: &str,
        device: &str,
        day: &str,
    ) -> Result<Option<CountEntry>, CountError> {
        Ok(self.trail(edge, device, day)?.pop())
    }

    /// Adds an entry; a correction (there is one already) needs a `note`. Durable before it
    /// returns.
    pub fn enter(
        &self,
        edge: &str,
        device: &str,
        day: &str,
        entry: CountEntry,
    ) -> Result<Vec<CountEntry>, CountError> {
        let _one = self
            .lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut trail = self.trail(edge, device, day)?;
        if !trail.is_empty() && entry.note.trim().is_empty() {
            return Err(CountError::CorrectionWithoutReason(format!(
                "{edge}/{device} on {day}"
            )));
        }
        let key = [
            prefix(edge, device, day),
            (trail.len() as u32).to_be_bytes().to_vec(),
        ]
        .concat();
        let bytes = serde_json::to_vec(&entry).map_err(|e| CountError::Store(e.to_string()))?;
        self.tree
            .insert(key, bytes)
            .map_err(|e| CountError::Store(e.to_string()))?;
        self.db
            .flush()
            .map_err(|e| CountError::Store(e.to_string()))?;
        tracing::info!(edge, device, day, by = %entry.by, amount = entry.amount, note = %entry.note, corrects = !trail.is_empty(), "counted drop entered");
        trail.push(entry);
        Ok(trail)
    }
}
