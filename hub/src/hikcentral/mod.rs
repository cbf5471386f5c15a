//! Guest visits in HikCentral Professional: the Artemis client ([`client`]), the durable visit
//! store ([`visits`]), the provisioning jobs ([`jobs`]) and the code-5 circuit breaker
//! ([`breaker`]). [`Visits`] is what the API uses.
//!
//! Invariants: a visit is validated completely (name, access level, window, photo) and stored
//! durably before the API answers; from then on its job owns it; operators' cancel and retry
//! requests are stored durably and applied by the job.

pub mod breaker;
pub mod client;
pub mod jobs;
pub mod visits;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use outpost_actors::backoff::Backoff;
use outpost_actors::{ChildSpec, Restart};
use outpost_config::HikCentralConfig;
use outpost_process::clock::unix_ms;
use outpost_storage::DurableDb;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use breaker::Breaker;
use client::ArtemisClient;
use jobs::{HikContext, JobPolicy, VisitManager};
use visits::{Visit, VisitState, VisitStore};

/// The largest photo accepted (HikCentral's limits are undocumented; 200 KiB is the conservative
/// size integrators report working).
pub const MAX_PHOTO_BYTES: usize = 200 * 1024;
/// The longest visit.
pub const MAX_VISIT_DAYS: i64 = 31;

/// A visit as the API receives it.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewVisit {
    /// Optional caller-chosen id (1-15 letters and digits), so a retried request cannot create
    /// the visit twice.
    #[serde(default)]
    #[schema(pattern = "^[A-Za-z0-9]{1,15}$")]
    pub id: Option<String>,
    #[schema(max_length = 64)]
    pub guest_name: String,
    /// HikCentral `privilegeGroupId`.
    pub access_level: String,
    /// RFC 3339 with an offset.
    #[schema(format = DateTime)]
    pub begin: String,
    #[schema(format = DateTime)]
    pub end: String,
    /// Base64 JPEG or PNG, at most 200 KiB decoded (a `data:image/...;base64,` prefix is
    /// accepted).
    pub photo: String,
}

#[derive(Debug, thiserror::Error)]
pub enum VisitError {
    #[error("{0}")]
    Invalid(String),
    #[error("no visit {0}")]
    NotFound(String),
    #[error("visit {0} exists already")]
    Exists(String),
    #[error("{0}")]
    Storage(String),
}

impl From<visits::VisitStoreError> for VisitError {
    fn from(e: visits::VisitStoreError) -> Self {
        match e {
            visits::VisitStoreError::Exists(id) => VisitError::Exists(id),
            other => VisitError::Storage(other.to_string()),
        }
    }
}

fn parse_instant(field: &str, text: &str) -> Result<i64, VisitError> {
    let at = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|e| {
            VisitError::Invalid(format!(
                "{field} must be RFC 3339 with an offset, like 2026-11-22T09:00:00+01:00 ({e})"
            ))
        })?;
    Ok((at.unix_timestamp_nanos() / 1_000_000) as i64)
}

/// Splits "Jane Q. Doe" into given ("Jane Q.") and family ("Doe") names.
fn split_name(name: &str) -> (String, String) {
    match name.rsplit_once(char::is_whitespace) {
        Some((given, family)) if !given.trim().is_empty() => {
            (given.trim().to_owned(), family.trim().to_owned())
        }
        _ => (name.to_owned(), name.to_owned()),
    }
}

/// Decodes and checks a photo: base64 of a JPEG or PNG, at most [`MAX_PHOTO_BYTES`].
pub fn decode_photo(text: &str) -> Result<Vec<u8>, VisitError> {
    let data = match text.split_once(";base64,") {
        Some((prefix, data)) if prefix.starts_with("data:") => data,
        _ => text,
    };
    let bytes = STANDARD
        .decode(data.trim())
        .map_err(|e| VisitError::Invalid(format!("photo is not base64: {e}")))?;
    if bytes.len() > MAX_PHOTO_BYTES {
        return Err(VisitError::Invalid(format!(
            "photo is {} bytes; at most {MAX_PHOTO_BYTES} (HikCentral refuses large faces)",
            bytes.len()
        )));
    }
    let jpeg = bytes.starts_with(&[0xFF, 0xD8, 0xFF]);
    let png = bytes.starts_with(b"\x89PNG\r\n\x1a\n");
    if !jpeg && !png {
        return Err(VisitError::Invalid(
            "photo must be a JPEG or PNG image".into(),
        ));
    }
    Ok(bytes)
}

/// Checks a new visit and builds it (state `new`).
pub fn validate(new: &NewVisit, issuer: &str, now_ms: i64) -> Result<(Visit, Vec<u8>), VisitError> {
    let id = match &new.id {
        Some(id)
            if (1..=15).contains(&id.len()) && id.chars().all(|c| c.is_ascii_alphanumeric()) =>
        {
            id.to_ascii_lowercase()
        }
        Some(_) => {
            return Err(VisitError::Invalid(
                "id must be 1-15 letters and digits".into(),
            ));
        }
        None => format!("{:012x}", rand::random::<u64>() & 0xFFFF_FFFF_FFFF),
    };
    let guest_name = new.guest_name.trim().to_owned();
    if guest_name.is_empty()
        || guest_name.chars().count() > 64
        || guest_name.chars().any(char::is_control)
    {
        return Err(VisitError::Invalid(
            "guest_name must be 1-64 printable characters".into(),
        ));
    }
    let level = new.access_level.trim();
    if level.is_empty() || level.len() > 64 || !level.chars().all(|c| c.is_ascii_graphic()) {
        return Err(VisitError::Invalid(
            "access_level must be HikCentral's privilegeGroupId (1-64 ASCII characters)".into(),
        ));
    }
    let begin_ms = parse_instant("begin", &new.begin)?;
    let end_ms = parse_instant("end", &new.end)?;
    if end_ms <= begin_ms {
        return Err(VisitError::Invalid("end must be after begin".into()));
    }
    if end_ms <= now_ms {
        return Err(VisitError::Invalid("end is in the past".into()));
    }
    if end_ms - begin_ms > MAX_VISIT_DAYS * 86_400_000 {
        return Err(VisitError::Invalid(format!(
            "a visit lasts at most {MAX_VISIT_DAYS} days"
        )));
    }
    let photo = decode_photo(&new.photo)?;
    let (given_name, family_name) = split_name(&guest_name);
    let mut visit = Visit {
        person_code: Visit::person_code_for(&id),
        id,
        guest_name,
        family_name,
        given_name,
        access_level: level.to_owned(),
        begin: new.begin.clone(),
        end: new.end.clone(),
        begin_ms,
        end_ms,
        photo_sha256: hex::encode(Sha256::digest(&photo)),
        photo_bytes: photo.len(),
        created_by: issuer.to_owned(),
        created_ms: now_ms,
        state: VisitState::New,
        person_id: None,
        cancel_requested: false,
        cancelled_by: None,
        uncertain: false,
        attempts: 0,
        next_attempt_ms: 0,
        last_error: None,
        blocked_at: None,
        apply_unconfirmed: false,
        face_unverified: false,
        history: Vec::new(),
        updated_ms: now_ms,
    };
    visit.note(format!("created by {issuer}"));
    Ok((visit, photo))
}

/// The visits service the API uses.
#[derive(Clone, Debug)]
pub struct Visits {
    ctx: Arc<HikContext>,
}

impl Visits {
    /// Opens the store and builds the client; the jobs start with [`Visits::child_spec`].
    pub fn open(config: &HikCentralConfig, durable: Arc<DurableDb>) -> anyhow::Result<Self> {
        let client =
            ArtemisClient::new(config).map_err(|e| anyhow::anyhow!("hikcentral client: {e}"))?;
        let store = VisitStore::open(durable)?;
        let backoff = |initial: u64, max: u64| Backoff {
            initial: Duration::from_millis(initial),
            max: Duration::from_millis(max),
            multiplier: 2.0,
            jitter: 0.25,
        };
        let policy = JobPolicy {
            org_index_code: config.org_index_code.clone(),
            retry: backoff(config.retry_initial_ms, config.retry_max_ms),
            db_full: backoff(config.db_full_initial_ms, config.db_full_max_ms),
            max_unknown_attempts: config.max_unknown_attempts,
            reapply_attempts: config.reapply_attempts,
        };
        let breaker = Breaker::new(
            config.breaker_threshold,
            Duration::from_millis(config.db_full_initial_ms),
            Duration::from_millis(config.db_full_max_ms),
        );
        Ok(Visits {
            ctx: Arc::new(HikContext::new(
                client,
                store,
                policy,
                breaker,
                config.max_concurrent_requests,
            )),
        })
    }

    /// The job manager as a supervised child.
    pub fn child_spec(&self) -> ChildSpec {
        let ctx = self.ctx.clone();
        ChildSpec::new("hikcentral", move || (VisitManager, ctx.clone()))
            .restart(Restart::Permanent)
    }

    /// Starts the job manager outside a supervision tree (tests and benchmarks).
    pub async fn spawn_manager(
        &self,
    ) -> Result<
        (
            ractor::ActorRef<jobs::ManagerMsg>,
            tokio::task::JoinHandle<()>,
        ),
        ractor::SpawnErr,
    > {
        ractor::Actor::spawn(None, VisitManager, self.ctx.clone()).await
    }

    /// Whether the code-5 circuit breaker holds provisioning now.
    pub fn breaker_open(&self) -> bool {
        self.ctx.breaker.is_open()
    }

    pub async fn create(&self, new: NewVisit, issuer: &str) -> Result<Visit, VisitError> {
        let (visit, photo) = validate(&new, issuer, unix_ms())?;
        self.ctx.store.create(visit.clone(), photo).await?;
        tracing::info!(visit = %visit.id, issuer, level = %visit.access_level, begin = %visit.begin, end = %visit.end, "visit created");
        self.ctx.wake(&visit.id);
        Ok(visit)
    }

    pub fn get(&self, id: &str) -> Result<Visit, VisitError> {
        self.ctx
            .store
            .get(id)?
            .ok_or_else(|| VisitError::NotFound(id.to_owned()))
    }

    /// Every visit, optionally only those in `state`.
    pub fn list(&self, state: Option<VisitState>) -> Result<Vec<Visit>, VisitError> {
        let mut all = self.ctx.store.all()?;
        if let Some(state) = state {
            all.retain(|v| v.state == state);
        }
        Ok(all)
    }

    /// Asks the visit's job to revoke it now (whatever state it is in).
    pub async fn cancel(&self, id: &str, issuer: &str) -> Result<Visit, VisitError> {
        let visit = self.get(id)?;
        let by = issuer.to_owned();
        self.ctx
            .store
            .request(id, move |r| r.cancel_by = Some(by))
            .await?;
        tracing::info!(visit = %id, issuer, "visit cancel requested");
        self.ctx.wake(id);
        Ok(visit)
    }

    /// Asks a blocked visit's job to try its step again.
    pub async fn retry(&self, id: &str, issuer: &str) -> Result<Visit, VisitError> {
        let visit = self.get(id)?;
        if visit.state != VisitState::Blocked {
            return Err(VisitError::Invalid(format!(
                "visit {id} is {}, not blocked",
                visit.state.as_str()
            )));
        }
        let by = issuer.to_owned();
        self.ctx
            .store
            .request(id, move |r| r.retry_by = Some(by))
            .await?;
        tracing::info!(visit = %id, issuer, "visit retry requested");
        self.ctx.wake(id);
        Ok(visit)
    }
}
