//! Meters entered by hand: the immutable trail of readings people took at a machine whose link
//! was down, and of their corrections.
//!
//! On disk: tree `manual_meters`: entry id (u64 BE) → [`ManualEntry`] (JSON). Ids come from
//! sled's monotonic generator, so a later entry has a larger id. An entry is never changed or
//! removed, with one exception: its `anchor`, written once by the accounting projection's runner
//! when it first applies the entry (the event of the machine's edge it was applied after), so a
//! rebuild from the log applies it at the same place and stores the same bytes.
//!
//! A correction is an entry of its own (`corrects` names the original, whose values it replaces
//! for the meters it names); the original stays as it was entered.

use std::collections::BTreeMap;

use outpost_domain::accounting::ManualReading;
use serde::{Deserialize, Serialize};

/// One reading entered by hand, or a correction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ManualEntry {
    pub id: u64,
    pub edge: String,
    pub device: String,
    /// When the meters were read at the machine (Unix µs).
    pub read_at_us: i64,
    /// Meter code → value as the machine showed it.
    pub meters: BTreeMap<u8, u64>,
    /// Who entered it (the API token's name) and why.
    pub by: String,
    pub reason: String,
    /// When it was entered (Unix µs).
    pub entered_us: i64,
    /// The entry this one corrects.
    pub corrects: Option<u64>,
    /// The last sequence of the machine's edge applied before it (set once, when first applied).
    pub anchor: Option<u64>,
}

impl ManualEntry {
    pub fn reading(&self) -> ManualReading {
        ManualReading {
            id: self.id,
            read_at_us: self.read_at_us,
            meters: self.meters.clone(),
            corrects: self.corrects,
        }
    }
}

/// What went wrong with the trail's store.
#[derive(Debug, thiserror::Error)]
pub enum TrailError {
    #[error("manual meters store: {0}")]
    Store(#[from] sled::Error),
    #[error("manual meters entry {id} does not decode: {reason}")]
    Corrupt { id: u64, reason: String },
}

/// The trail.
#[derive(Debug, Clone)]
pub struct Trail {
    db: sled::Db,
    tree: sled::Tree,
}

fn decode(key: &[u8], value: &[u8]) -> Result<ManualEntry, TrailError> {
    serde_json::from_slice(value).map_err(|e| TrailError::Corrupt {
        id: key.try_into().map(u64::from_be_bytes).unwrap_or_default(),
        reason: e.to_string(),
    })
}

impl Trail {
    pub fn open(db: &sled::Db) -> Result<Self, TrailError> {
        Ok(Self {
            db: db.clone(),
            tree: db.open_tree("manual_meters")?,
        })
    }

    /// Stores a new entry durably (its id assigned here) and returns it.
    pub fn record(&self, mut entry: ManualEntry) -> Result<ManualEntry, TrailError> {
        // 0 is never an id: the runner's "nothing applied yet".
        entry.id = self.db.generate_id()? + 1;
        entry.anchor = None;
        let value = serde_json::to_vec(&entry).unwrap_or_default();
        self.tree.insert(entry.id.to_be_bytes(), value)?;
        self.tree.flush()?;
        Ok(entry)
    }

    /// Entries with ids above `after`, in id order.
    pub fn after(&self, after: u64) -> Result<Vec<ManualEntry>, TrailError> {
        let mut out = Vec::new();
        for entry in self.tree.range((after.saturating_add(1)).to_be_bytes()..) {
            let (key, value) = entry?;
            out.push(decode(&key, &value)?);
        }
        Ok(out)
    }

    /// One machine's entries, in id order.
    pub fn of_machine(&self, edge: &str, device: &str) -> Result<Vec<ManualEntry>, TrailError> {
        Ok(self
            .after(0)?
            .into_iter()
            .filter(|e| e.edge == edge && e.device == device)
            .collect())
    }

    /// Sets an entry's anchor (once; a second call keeps the first) durably.
    pub fn anchor(&self, id: u64, seq: u64) -> Result<ManualEntry, TrailError> {
        let key = id.to_be_bytes();
        let mut entry = match self.tree.get(key)? {
            Some(value) => decode(&key, &value)?,
            None => {
                return Err(TrailError::Corrupt {
                    id,
                    reason: "missing".into(),
                });
            }
        };
        if entry.anchor.is_none() {
            entry.anchor = Some(seq);
            let value = serde_json::to_vec(&entry).unwrap_or_default();
            self.tree.insert(key, value)?;
            self.tree.flush()?;
        }
        Ok(entry)
    }
}
