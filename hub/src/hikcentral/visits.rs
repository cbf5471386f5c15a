//! Guest visits, stored durably in the hub database: what the operator asked for and where its
//! provisioning job is.
//!
//! Invariants: a visit is flushed and fdatasynced before the API answers and before each job step
//! that follows a state change; the person code is derived from the visit id and never changes,
//! so HikCentral can always be asked "does this visit's person exist?"; a visit's state only
//! moves along the job's graph (see [`VisitState`]) and [`VisitState::Revoked`] is final.
//!
//! Operators' cancel and retry requests go to a tree of their own, written by the API and applied
//! by the visit's job, so the API and the job never overwrite each other's writes.
//!
//! On disk (sled trees): `visits`: id → [`Visit`] (JSON); `visit_requests`: id →
//! [`VisitRequests`] (JSON). Photos are files beside the database, `visit-photos/<sha256>`, written
//! durably before the visit that names them (a photo of 200 KiB would be a page sled writes
//! outside its log, see `outpost_storage`). A visit's record stays under the store's value limit:
//! notes and errors are clipped and the oldest history lines go first.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use outpost_process::clock::unix_ms;
use outpost_storage::DurableDb;
use serde::{Deserialize, Serialize};

use crate::metrics;

/// Where a visit's provisioning is. Provisioning: `new → person_ready → face_ready →
/// access_assigned → active`; revocation (at the end or on cancel): `revoking → access_removed →
/// revoke_applied → revoked`. `blocked` waits for an operator (retry or cancel).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum VisitState {
    New,
    PersonReady,
    FaceReady,
    AccessAssigned,
    Active,
    Revoking,
    AccessRemoved,
    RevokeApplied,
    Revoked,
    Blocked,
}

impl VisitState {
    pub const ALL: [VisitState; 10] = [
        VisitState::New,
        VisitState::PersonReady,
        VisitState::FaceReady,
        VisitState::AccessAssigned,
        VisitState::Active,
        VisitState::Revoking,
        VisitState::AccessRemoved,
        VisitState::RevokeApplied,
        VisitState::Revoked,
        VisitState::Blocked,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            VisitState::New => "new",
            VisitState::PersonReady => "person_ready",
            VisitState::FaceReady => "face_ready",
            VisitState::AccessAssigned => "access_assigned",
            VisitState::Active => "active",
            VisitState::Revoking => "revoking",
            VisitState::AccessRemoved => "access_removed",
            VisitState::RevokeApplied => "revoke_applied",
            VisitState::Revoked => "revoked",
            VisitState::Blocked => "blocked",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Steps before the guest has access.
    pub fn is_provisioning(self) -> bool {
        matches!(
            self,
            VisitState::New
                | VisitState::PersonReady
                | VisitState::FaceReady
                | VisitState::AccessAssigned
        )
    }
}

/// One line of a visit's history: what its job did, for the operator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VisitEvent {
    pub at_ms: i64,
    pub state: VisitState,
    pub note: String,
}

/// A guest visit and its provisioning.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Visit {
    pub id: String,
    pub guest_name: String,
    pub family_name: String,
    pub given_name: String,
    /// HikCentral access level (`privilegeGroupId`).
    pub access_level: String,
    /// RFC 3339, as given; `begin_ms`/`end_ms` are the instants.
    pub begin: String,
    pub end: String,
    pub begin_ms: i64,
    pub end_ms: i64,
    pub photo_sha256: String,
    pub photo_bytes: usize,
    /// API token name that created it.
    pub created_by: String,
    pub created_ms: i64,
    pub state: VisitState,
    /// `personCode` in HikCentral: derived from the id.
    pub person_code: String,
    /// `personId` HikCentral gave the person, once known.
    pub person_id: Option<String>,
    pub cancel_requested: bool,
    pub cancelled_by: Option<String>,
    /// The last write's outcome is unknown: look the person up before creating it again.
    pub uncertain: bool,
    /// Failed attempts of the current step.
    pub attempts: u32,
    pub next_attempt_ms: i64,
    pub last_error: Option<String>,
    /// The step a blocked visit stopped at.
    pub blocked_at: Option<VisitState>,
    /// Reapplication never answered success; HikCentral applies pending changes later.
    pub apply_unconfirmed: bool,
    /// HikCentral accepted the face but shows no picture for the person.
    pub face_unverified: bool,
    pub history: Vec<VisitEvent>,
    pub updated_ms: i64,
}

/// At most this many history lines are kept per visit (fewer if they would not fit its record).
const HISTORY: usize = 64;
/// Most characters of a history note or an error kept.
pub const NOTE_CHARS: usize = 240;
/// A visit's record, encoded, stays under this; older history lines make room.
const RECORD_BYTES: usize = outpost_storage::MAX_VALUE_BYTES - 256;

impl Visit {
    /// `V` and the id in upper case: short ASCII alphanumerics, as HikCentral accepts.
    pub fn person_code_for(id: &str) -> String {
        format!("V{}", id.to_ascii_uppercase())
    }

    /// Moves to `state` (resetting the step's attempts and uncertainty) and notes why.
    pub fn enter(&mut self, state: VisitState, note: impl Into<String>) {
        self.state = state;
        self.uncertain = false;
        self.attempts = 0;
        self.next_attempt_ms = 0;
        self.note(note);
    }

    pub fn note(&mut self, note: impl Into<String>) {
        self.history.push(VisitEvent {
            at_ms: unix_ms(),
            state: self.state,
            note: outpost_link::clip_text(&note.into(), NOTE_CHARS),
        });
        if self.history.len() > HISTORY {
            let excess = self.history.len() - HISTORY;
            self.history.drain(..excess);
        }
    }
}

/// What operators asked of a visit that its job has not applied yet.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VisitRequests {
    /// Cancel, and who asked.
    pub cancel_by: Option<String>,
    /// Retry a blocked visit, and who asked.
    pub retry_by: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum VisitStoreError {
    #[error("visit storage: {0}")]
    Storage(String),
    #[error("stored visit {id} does not decode: {reason}")]
    Corrupt { id: String, reason: String },
    #[error("visit {0} exists already")]
    Exists(String),
}

impl From<sled::Error> for VisitStoreError {
    fn from(e: sled::Error) -> Self {
        VisitStoreError::Storage(e.to_string())
    }
}

/// The tree holding the visits (the MSSQL sink watches it).
pub(crate) const TREE: &str = "visits";

/// The visits of the hub.
#[derive(Clone)]
pub struct VisitStore {
    durable: Arc<DurableDb>,
    visits: sled::Tree,
    /// Photos of visits stored before photos became files.
    photos: sled::Tree,
    photo_dir: std::path::PathBuf,
    requests: sled::Tree,
    /// Last known state of every visit, for the `outpost_hikcentral_jobs{state}` gauge.
    states: Arc<Mutex<HashMap<String, VisitState>>>,
}

impl std::fmt::Debug for VisitStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VisitStore").finish_non_exhaustive()
    }
}

impl VisitStore {
    pub fn open(durable: Arc<DurableDb>) -> Result<Self, VisitStoreError> {
        let visits = durable.db().open_tree(TREE)?;
        let photos = durable.db().open_tree("visit_photos")?;
        let requests = durable.db().open_tree("visit_requests")?;
        let photo_dir = durable
            .path()
            .parent()
            .unwrap_or(durable.path())
            .join("visit-photos");
        let store = VisitStore {
            durable,
            visits,
            photos,
            photo_dir,
            requests,
            states: Arc::new(Mutex::new(HashMap::new())),
        };
        let all = store.all()?;
        {
            let mut states = store.lock_states();
            for visit in &all {
                states.insert(visit.id.clone(), visit.state);
            }
        }
        store.publish_gauge();
        Ok(store)
    }

    fn lock_states(&self) -> std::sync::MutexGuard<'_, HashMap<String, VisitState>> {
        self.states.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn publish_gauge(&self) {
        let states = self.lock_states();
        for state in VisitState::ALL {
            let n = states.values().filter(|s| **s == state).count();
            metrics::HIK_JOBS
                .with_label_values(&[state.as_str()])
                .set(n as i64);
        }
    }

    /// Stores a new visit and its photo durably; refuses an id that exists.
    pub async fn create(&self, visit: Visit, photo: Vec<u8>) -> Result<(), VisitStoreError> {
        let this = self.clone();
        let id = visit.id.clone();
        tokio::task::spawn_blocking(move || {
            // The photo first, under its own digest: a visit is never stored without its photo,
            // and a photo left by a refused or interrupted create is harmless.
            outpost_storage::write_file_durably(&this.photo_dir, &visit.photo_sha256, &photo)
                .map_err(|e| VisitStoreError::Storage(e.to_string()))?;
            let mut visit = visit;
            visit.updated_ms = unix_ms();
            let value = this.encode(&visit)?;
            // Only if the id is new: two requests with one id cannot both create it.
            let id = visit.id.as_bytes();
            outpost_storage::check_entry(id, &value)
                .map_err(|e| VisitStoreError::Storage(e.to_string()))?;
            let created = this
                .visits
                .compare_and_swap(id, None::<&[u8]>, Some(value))?;
            if created.is_err() {
                return Err(VisitStoreError::Exists(visit.id.clone()));
            }
            this.committed(&visit)
        })
        .await
        .map_err(|e| VisitStoreError::Storage(e.to_string()))??;
        tracing::info!(visit = %id, "visit stored");
        Ok(())
    }

    /// Stores `visit` as it is now, durably.
    pub async fn save(&self, visit: &Visit) -> Result<(), VisitStoreError> {
        let this = self.clone();
        let visit = visit.clone();
        tokio::task::spawn_blocking(move || this.write(&visit))
            .await
            .map_err(|e| VisitStoreError::Storage(e.to_string()))?
    }

    /// The record of `visit`, its history shortened until it fits the store.
    fn encode(&self, visit: &Visit) -> Result<Vec<u8>, VisitStoreError> {
        let mut visit = visit.clone();
        visit.last_error = visit
            .last_error
            .map(|e| outpost_link::clip_text(&e, NOTE_CHARS));
        loop {
            let value =
                serde_json::to_vec(&visit).map_err(|e| VisitStoreError::Storage(e.to_string()))?;
            if value.len() <= RECORD_BYTES || visit.history.is_empty() {
                return Ok(value);
            }
            visit.history.remove(0);
        }
    }

    fn write(&self, visit: &Visit) -> Result<(), VisitStoreError> {
        let mut visit = visit.clone();
        visit.updated_ms = unix_ms();
        let value = self.encode(&visit)?;
        self.durable
            .insert(&self.visits, visit.id.as_bytes(), value)
            .map_err(|e| VisitStoreError::Storage(e.to_string()))?;
        self.committed(&visit)
    }

    /// Makes what was written of `visit` durable and follows its state in the gauge.
    fn committed(&self, visit: &Visit) -> Result<(), VisitStoreError> {
        self.durable
            .commit()
            .map_err(|e| VisitStoreError::Storage(e.to_string()))?;
        let changed = self.lock_states().insert(visit.id.clone(), visit.state) != Some(visit.state);
        if changed {
            self.publish_gauge();
        }
        Ok(())
    }

    pub fn get(&self, id: &str) -> Result<Option<Visit>, VisitStoreError> {
        match self.visits.get(id.as_bytes())? {
            Some(bytes) => {
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|e| VisitStoreError::Corrupt {
                        id: id.to_owned(),
                        reason: e.to_string(),
                    })
            }
            None => Ok(None),
        }
    }

    pub fn photo(&self, id: &str) -> Result<Option<Vec<u8>>, VisitStoreError> {
        let Some(visit) = self.get(id)? else {
            return Ok(None);
        };
        match std::fs::read(self.photo_dir.join(&visit.photo_sha256)) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Ok(self.photos.get(id.as_bytes())?.map(|b| b.to_vec()))
            }
            Err(e) => Err(VisitStoreError::Storage(format!(
                "photo of visit {id} in {}: {e}",
                self.photo_dir.display()
            ))),
        }
    }

    /// Every visit, in id order.
    pub fn all(&self) -> Result<Vec<Visit>, VisitStoreError> {
        let mut out = Vec::new();
        for entry in self.visits.iter() {
            let (key, value) = entry?;
            let visit = serde_json::from_slice(&value).map_err(|e| VisitStoreError::Corrupt {
                id: String::from_utf8_lossy(&key).into_owned(),
                reason: e.to_string(),
            })?;
            out.push(visit);
        }
        Ok(out)
    }

    /// Records an operator's request durably (merged with any not yet applied).
    pub async fn request(
        &self,
        id: &str,
        change: impl FnOnce(&mut VisitRequests) + Send + 'static,
    ) -> Result<(), VisitStoreError> {
        let this = self.clone();
        let id = id.to_owned();
        tokio::task::spawn_blocking(move || {
            let mut requests = this.requests(&id)?;
            change(&mut requests);
            let value = serde_json::to_vec(&requests)
                .map_err(|e| VisitStoreError::Storage(e.to_string()))?;
            this.durable
                .insert(&this.requests, id.as_bytes(), value)
                .map_err(|e| VisitStoreError::Storage(e.to_string()))?;
            this.durable
                .commit()
                .map_err(|e| VisitStoreError::Storage(e.to_string()))?;
            Ok(())
        })
        .await
        .map_err(|e| VisitStoreError::Storage(e.to_string()))?
    }

    /// The requests not yet applied to visit `id`.
    pub fn requests(&self, id: &str) -> Result<VisitRequests, VisitStoreError> {
        match self.requests.get(id.as_bytes())? {
            Some(bytes) => serde_json::from_slice(&bytes).map_err(|e| VisitStoreError::Corrupt {
                id: id.to_owned(),
                reason: e.to_string(),
            }),
            None => Ok(VisitRequests::default()),
        }
    }

    /// Forgets the requests of `id` once they are applied (and the visit saved).
    pub fn clear_requests(&self, id: &str, applied: &VisitRequests) -> Result<(), VisitStoreError> {
        // Only if nothing new arrived meanwhile; a newer request stays for the next step.
        let current =
            serde_json::to_vec(applied).map_err(|e| VisitStoreError::Storage(e.to_string()))?;
        let _ = self
            .requests
            .compare_and_swap(id.as_bytes(), Some(current), None::<Vec<u8>>)?;
        Ok(())
    }
}
