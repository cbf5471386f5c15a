//! Provisioning jobs: one actor per visit, under one manager actor, driving the visit through its
//! states one HikCentral step at a time.
//!
//! Invariants:
//! - A step runs only after the previous step's outcome is stored durably; a restart resumes at
//!   the stored state, treating whatever was in flight as outcome-unknown.
//! - After an outcome-unknown write, the person is looked up by its code (and membership checked)
//!   before anything is created or added again: one person per visit.
//! - The person is deleted only after it has left the access level and that was reapplied.
//! - Code 5 goes through the circuit breaker ([`super::breaker`]); retries wait an exponential
//!   backoff with jitter, never less; a permanent error blocks the visit for an operator.
//! - Each visit has at most one job and one pending timer.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use outpost_actors::backoff::Backoff;
use outpost_artemis::Class;
use outpost_artemis::api::{self, NewPerson, PersonInfo};
use outpost_process::clock::unix_ms;
use ractor::{Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, SupervisionEvent};
use time::OffsetDateTime;

use super::breaker::{Admission, Breaker, Verdict};
use super::client::{ArtemisClient, ArtemisError};
use super::visits::{Visit, VisitRequests, VisitState, VisitStore};

/// Timing and limits of the jobs (from `[hikcentral]`).
#[derive(Debug, Clone)]
pub struct JobPolicy {
    pub org_index_code: String,
    pub retry: Backoff,
    pub db_full: Backoff,
    pub max_unknown_attempts: u32,
    pub reapply_attempts: u32,
}

/// What the manager and the jobs share.
pub struct HikContext {
    pub client: ArtemisClient,
    pub store: VisitStore,
    pub policy: JobPolicy,
    pub breaker: Breaker,
    /// This server answered code 8 on `/person/search`: look persons up by code instead.
    pub no_search: AtomicBool,
    /// Steps in flight at once (each makes its requests one after the other), so the breaker is
    /// consulted when a step can actually start, not before it queued.
    steps: tokio::sync::Semaphore,
    manager: std::sync::Mutex<Option<ActorRef<ManagerMsg>>>,
}

impl std::fmt::Debug for HikContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HikContext").finish_non_exhaustive()
    }
}

impl HikContext {
    pub fn new(
        client: ArtemisClient,
        store: VisitStore,
        policy: JobPolicy,
        breaker: Breaker,
        concurrent_steps: usize,
    ) -> Self {
        HikContext {
            steps: tokio::sync::Semaphore::new(concurrent_steps.max(1)),
            client,
            store,
            policy,
            breaker,
            no_search: AtomicBool::new(false),
            manager: std::sync::Mutex::new(None),
        }
    }

    /// Tells the manager that visit `id` has news (created, cancel or retry requested). If the
    /// manager is restarting it reads every visit when it starts, so nothing is missed.
    pub fn wake(&self, id: &str) {
        let manager = self
            .manager
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(manager) = manager {
            let _ = manager.cast(ManagerMsg::Wake(id.to_owned()));
        }
    }
}

fn millis(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn same_instant(a: Option<OffsetDateTime>, ms: i64) -> bool {
    a.is_some_and(|t| (t.unix_timestamp() - ms.div_euclid(1000)).abs() <= 1)
}

/// Looks the visit's person up by its code: `/person/search`, or `personCode/personInfo` on
/// servers without it (code 8, remembered).
async fn find_person(ctx: &HikContext, code: &str) -> Result<Option<PersonInfo>, ArtemisError> {
    if !ctx.no_search.load(Ordering::Relaxed) {
        match ctx
            .client
            .call(api::PERSON_SEARCH, &api::search_body(code))
            .await
        {
            Ok(envelope) => {
                let page = envelope.page().map_err(|e| ArtemisError::Decode {
                    endpoint: "person/search".into(),
                    detail: e.to_string(),
                })?;
                return Ok(page
                    .list
                    .iter()
                    .filter_map(PersonInfo::from_value)
                    .find(|p| p.person_code.as_deref() == Some(code)));
            }
            Err(e) if e.class() == Class::Unsupported => {
                tracing::info!(
                    "HikCentral has no /person/search (code 8): looking persons up by personCode/personInfo"
                );
                ctx.no_search.store(true, Ordering::Relaxed);
            }
            Err(e) => return Err(e),
        }
    }
    match ctx
        .client
        .call(api::PERSON_BY_CODE, &api::by_code_body(code))
        .await
    {
        Ok(envelope) => Ok(envelope.data.as_ref().and_then(PersonInfo::from_value)),
        Err(e) if e.class() == Class::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Whether `person_id` is a member of `level` (pages through the members).
async fn is_member(ctx: &HikContext, level: &str, person_id: &str) -> Result<bool, ArtemisError> {
    const PAGE: u32 = 500;
    for page_no in 1..=200 {
        let envelope = ctx
            .client
            .call(
                api::LEVEL_PERSONS,
                &api::level_list_body(level, page_no, PAGE),
            )
            .await?;
        let page = envelope.page().map_err(|e| ArtemisError::Decode {
            endpoint: "privilege/group/single/personList".into(),
            detail: e.to_string(),
        })?;
        if page
            .list
            .iter()
            .filter_map(api::member_id)
            .any(|id| id == person_id)
        {
            return Ok(true);
        }
        if page.list.len() < PAGE as usize || u64::from(page_no * PAGE) >= page.total {
            return Ok(false);
        }
    }
    Ok(false)
}

fn missing_id(endpoint: &str) -> ArtemisError {
    ArtemisError::Decode {
        endpoint: endpoint.into(),
        detail: "code 0 without a personId".into(),
    }
}

fn person_id(visit: &Visit) -> Result<String, ArtemisError> {
    visit.person_id.clone().ok_or_else(|| ArtemisError::Decode {
        endpoint: "job".into(),
        detail: "no person id at a step that needs one".into(),
    })
}

/// Runs the visit's current step once. `Ok` means the visit changed state (or learned something)
/// and should be saved; `Err` is the step's failure for [`on_failure`].
async fn step(ctx: &HikContext, visit: &mut Visit) -> Result<(), ArtemisError> {
    let code = visit.person_code.clone();
    match visit.state {
        VisitState::New => {
            if visit.uncertain
                && let Some(found) = find_person(ctx, &code).await?
            {
                if !same_instant(found.begin, visit.begin_ms)
                    || !same_instant(found.end, visit.end_ms)
                {
                    ctx.client
                        .call(
                            api::PERSON_UPDATE,
                            &serde_json::json!({
                                "personId": found.person_id,
                                "beginTime": api::format_time(millis(visit.begin_ms)),
                                "endTime": api::format_time(millis(visit.end_ms)),
                            }),
                        )
                        .await?;
                }
                visit.person_id = Some(found.person_id.clone());
                visit.enter(
                    VisitState::PersonReady,
                    format!(
                        "person {} found by code {code} after an unknown outcome",
                        found.person_id
                    ),
                );
                return Ok(());
            }
            let person = NewPerson {
                code: code.clone(),
                family_name: visit.family_name.clone(),
                given_name: visit.given_name.clone(),
                org_index_code: ctx.policy.org_index_code.clone(),
                begin: millis(visit.begin_ms),
                end: millis(visit.end_ms),
            };
            let envelope = ctx.client.call(api::PERSON_ADD, &person.body()).await?;
            let id = envelope
                .data_id("personId")
                .ok_or_else(|| missing_id("person/single/add"))?;
            visit.person_id = Some(id.clone());
            visit.enter(
                VisitState::PersonReady,
                format!("person {id} created with code {code}"),
            );
        }
        VisitState::PersonReady => {
            let id = person_id(visit)?;
            let photo = ctx
                .store
                .photo(&visit.id)
                .map_err(|e| ArtemisError::Decode {
                    endpoint: "job".into(),
                    detail: e.to_string(),
                })?
                .unwrap_or_default();
            match ctx
                .client
                .call(
                    api::FACE_UPDATE,
                    &api::face_body(&id, &STANDARD.encode(&photo)),
                )
                .await
            {
                Ok(_) => {}
                Err(e) if e.class() == Class::NotFound => {
                    visit.person_id = None;
                    visit.enter(
                        VisitState::New,
                        format!("person {id} is gone from HikCentral; creating it again"),
                    );
                    visit.uncertain = true;
                    return Ok(());
                }
                Err(e) => return Err(e),
            }
            let info = ctx
                .client
                .call(api::PERSON_BY_ID, &api::person_id_body(&id))
                .await?;
            let info = info.data.as_ref().and_then(PersonInfo::from_value);
            let mut note = "face uploaded".to_owned();
            match &info {
                Some(p) if p.pic_uri.is_none() => {
                    visit.face_unverified = true;
                    note = "face accepted but HikCentral shows no picture for the person".into();
                    tracing::warn!(visit = %visit.id, person = %id, "{note}");
                }
                Some(p) if p.status.is_some_and(|s| s != 1) => {
                    note = format!("face uploaded; HikCentral reports status {:?}", p.status);
                }
                // No `status` in personInfo is normal (unknown), not a failure.
                _ => {}
            }
            visit.enter(VisitState::FaceReady, note);
        }
        VisitState::FaceReady => {
            let id = person_id(visit)?;
            if visit.uncertain && is_member(ctx, &visit.access_level, &id).await? {
                visit.enter(
                    VisitState::AccessAssigned,
                    format!("already in access level {}", visit.access_level),
                );
                return Ok(());
            }
            ctx.client
                .call(
                    api::LEVEL_ADD_PERSONS,
                    &api::level_members_body(&visit.access_level, &id),
                )
                .await?;
            visit.enter(
                VisitState::AccessAssigned,
                format!("added to access level {}", visit.access_level),
            );
        }
        VisitState::AccessAssigned | VisitState::AccessRemoved => {
            let id = person_id(visit)?;
            let next = if visit.state == VisitState::AccessAssigned {
                VisitState::Active
            } else {
                VisitState::RevokeApplied
            };
            ctx.client
                .call(api::REAPPLICATION, &api::reapplication_body(&[&id]))
                .await?;
            visit.enter(next, "applied to devices");
        }
        VisitState::Revoking => {
            if visit.person_id.is_none() {
                match find_person(ctx, &code).await? {
                    Some(found) => visit.person_id = Some(found.person_id),
                    None => {
                        visit.enter(
                            VisitState::Revoked,
                            format!("no person with code {code} in HikCentral: nothing to revoke"),
                        );
                        return Ok(());
                    }
                }
            }
            let id = person_id(visit)?;
            match ctx
                .client
                .call(
                    api::LEVEL_DELETE_PERSONS,
                    &api::level_members_body(&visit.access_level, &id),
                )
                .await
            {
                Ok(_) => visit.enter(
                    VisitState::AccessRemoved,
                    format!("removed from access level {}", visit.access_level),
                ),
                Err(e) if e.class() == Class::NotFound => {
                    // Either the person or the level is gone: find out which.
                    match ctx
                        .client
                        .call(api::PERSON_BY_ID, &api::person_id_body(&id))
                        .await
                    {
                        Err(gone) if gone.class() == Class::NotFound => visit.enter(
                            VisitState::Revoked,
                            format!("person {id} was already deleted in HikCentral"),
                        ),
                        Err(other) => return Err(other),
                        Ok(_) => return Err(e),
                    }
                }
                Err(e) => return Err(e),
            }
        }
        VisitState::RevokeApplied => {
            let id = person_id(visit)?;
            match ctx
                .client
                .call(api::PERSON_DELETE, &api::person_id_body(&id))
                .await
            {
                Ok(_) => visit.enter(VisitState::Revoked, format!("person {id} deleted")),
                Err(e) if e.class() == Class::NotFound => {
                    visit.enter(VisitState::Revoked, format!("person {id} already deleted"))
                }
                Err(e) => return Err(e),
            }
        }
        VisitState::Active | VisitState::Revoked | VisitState::Blocked => {}
    }
    Ok(())
}

/// Applies a failed step's error to the visit: backoff, uncertainty, or blocked.
fn on_failure(policy: &JobPolicy, visit: &mut Visit, err: &ArtemisError, now_ms: i64) {
    let class = err.class();
    visit.attempts += 1;
    visit.last_error = Some(err.to_string());
    if matches!(
        class,
        Class::OutcomeUnknown | Class::DbFull | Class::Unknown
    ) {
        visit.uncertain = true;
    }
    let reapplying = matches!(
        visit.state,
        VisitState::AccessAssigned | VisitState::AccessRemoved
    );
    if reapplying && class == Class::Unknown && visit.attempts >= policy.reapply_attempts {
        // Code 1 "Unknow Error" on reapplication: the change is stored; HikCentral applies
        // pending changes later. Go on, and say so.
        visit.apply_unconfirmed = true;
        let next = if visit.state == VisitState::AccessAssigned {
            VisitState::Active
        } else {
            VisitState::RevokeApplied
        };
        visit.enter(
            next,
            format!(
                "reapplication unconfirmed after {} attempts: {err}",
                policy.reapply_attempts
            ),
        );
        return;
    }
    let blocked = match class {
        Class::Permanent | Class::Auth | Class::Unsupported | Class::NotFound => true,
        Class::Unknown => visit.attempts >= policy.max_unknown_attempts,
        _ => false,
    };
    if blocked {
        let at = visit.state;
        visit.blocked_at = Some(at);
        visit.enter(
            VisitState::Blocked,
            format!("blocked at {}: {err}", at.as_str()),
        );
        tracing::error!(visit = %visit.id, step = at.as_str(), error = %err, "visit provisioning blocked; an operator must retry or cancel it");
        return;
    }
    let delay = match class {
        Class::DbFull => policy.db_full.delay(visit.attempts),
        Class::RateLimited => err
            .retry_after()
            .unwrap_or_else(|| policy.retry.delay(visit.attempts))
            .max(policy.retry.delay(visit.attempts)),
        _ => policy.retry.delay(visit.attempts),
    };
    visit.next_attempt_ms = now_ms + delay.as_millis() as i64;
    tracing::info!(visit = %visit.id, step = visit.state.as_str(), attempt = visit.attempts, retry_in_ms = delay.as_millis() as u64, class = class.as_str(), error = %err, "provisioning step failed; will retry");
}

/// Applies operators' requests and the clock to the visit. Returns whether it changed.
fn apply_requests_and_time(visit: &mut Visit, requests: &VisitRequests, now_ms: i64) -> bool {
    let mut changed = false;
    if let Some(by) = &requests.cancel_by
        && !visit.cancel_requested
    {
        visit.cancel_requested = true;
        visit.cancelled_by = Some(by.clone());
        visit.note(format!("cancel requested by {by}"));
        changed = true;
    }
    if let Some(by) = &requests.retry_by
        && visit.state == VisitState::Blocked
    {
        let back = visit.blocked_at.take().unwrap_or(VisitState::New);
        visit.enter(back, format!("retry requested by {by}"));
        visit.uncertain = true;
        changed = true;
    }
    let ending = visit.cancel_requested || now_ms >= visit.end_ms;
    let blocked_provisioning = visit.state == VisitState::Blocked
        && visit.blocked_at.is_some_and(VisitState::is_provisioning);
    let blocked_cancelled = visit.state == VisitState::Blocked && visit.cancel_requested;
    if ending
        && (visit.state.is_provisioning()
            || visit.state == VisitState::Active
            || blocked_provisioning
            || blocked_cancelled)
    {
        let why = if visit.cancel_requested {
            "cancelled"
        } else {
            "visit ended"
        };
        // Without a person id, revoking looks the person up by code: whatever was in flight
        // may have created it.
        visit.enter(VisitState::Revoking, format!("{why}: revoking"));
        changed = true;
    }
    changed
}

/// When the visit's job should run next (`now` if due; `None`: not without an operator).
fn due_at(visit: &Visit, now_ms: i64) -> Option<i64> {
    Some(match visit.state {
        VisitState::Revoked => return None,
        // Blocked while provisioning: still revoke at the end of the visit.
        VisitState::Blocked => match visit.blocked_at {
            Some(at) if at.is_provisioning() => visit.end_ms,
            _ => return None,
        },
        VisitState::Active => visit.end_ms,
        _ if visit.cancel_requested => now_ms,
        _ => visit.next_attempt_ms.max(now_ms),
    })
}

/// Whether a visit needs a job: something will happen to it without an operator, or an
/// operator asked for something.
fn needs_job(visit: &Visit, pending_requests: bool) -> bool {
    pending_requests || due_at(visit, 0).is_some()
}

// ---------------------------------------------------------------------------------------------
// Actors

#[derive(Debug)]
pub enum JobMsg {
    Step,
}

/// One visit's job.
pub struct VisitJob;

pub struct JobState {
    id: String,
    ctx: Arc<HikContext>,
    timer: Option<tokio::task::JoinHandle<Result<(), ractor::MessagingErr<JobMsg>>>>,
}

impl Actor for VisitJob {
    type Msg = JobMsg;
    type State = JobState;
    type Arguments = (String, Arc<HikContext>);

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        (id, ctx): Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        myself.cast(JobMsg::Step)?;
        Ok(JobState {
            id,
            ctx,
            timer: None,
        })
    }

    async fn post_stop(
        &self,
        _: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(timer) = state.timer.take() {
            timer.abort();
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        JobMsg::Step: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(timer) = state.timer.take() {
            timer.abort();
        }
        let ctx = state.ctx.clone();
        let Some(mut visit) = ctx.store.get(&state.id)? else {
            myself.stop(Some("visit not found".into()));
            return Ok(());
        };
        let now = unix_ms();
        let requests = ctx.store.requests(&visit.id)?;
        if apply_requests_and_time(&mut visit, &requests, now) {
            ctx.store.save(&visit).await?;
        }
        if requests != VisitRequests::default() {
            ctx.store.clear_requests(&visit.id, &requests)?;
        }
        let Some(due) = due_at(&visit, now) else {
            myself.stop(None);
            return Ok(());
        };
        if due > now {
            state.timer =
                Some(myself.send_after(Duration::from_millis((due - now) as u64), || JobMsg::Step));
            return Ok(());
        }
        let Ok(_permit) = ctx.steps.acquire().await else {
            return Ok(());
        };
        let now = unix_ms();
        let admission = ctx.breaker.admit(now);
        if let Admission::WaitUntil(at) = admission {
            state.timer = Some(
                myself.send_after(Duration::from_millis((at - now).max(1) as u64), || {
                    JobMsg::Step
                }),
            );
            return Ok(());
        }
        let before = visit.clone();
        let result = step(&ctx, &mut visit).await;
        let verdict = match &result {
            Err(e) if e.class() == Class::DbFull => Verdict::DbFull,
            Err(ArtemisError::NotSent { .. } | ArtemisError::NoAnswer { .. }) => Verdict::Silent,
            _ => Verdict::Answered,
        };
        ctx.breaker.record(admission, verdict, unix_ms());
        match result {
            Ok(()) => {
                visit.last_error = None;
                tracing::info!(visit = %visit.id, from = before.state.as_str(), to = visit.state.as_str(), person = visit.person_id.as_deref().unwrap_or("-"), "visit step done");
            }
            Err(err) => on_failure(&ctx.policy, &mut visit, &err, unix_ms()),
        }
        if visit != before {
            ctx.store.save(&visit).await?;
        }
        myself.cast(JobMsg::Step)?;
        Ok(())
    }
}

#[derive(Debug)]
pub enum ManagerMsg {
    Wake(String),
}

/// Starts a job for every visit that needs one, and restarts jobs that fail.
pub struct VisitManager;

pub struct ManagerState {
    ctx: Arc<HikContext>,
    jobs: HashMap<String, ActorRef<JobMsg>>,
    by_actor: HashMap<ActorId, String>,
}

impl VisitManager {
    async fn ensure_job(
        myself: &ActorRef<ManagerMsg>,
        state: &mut ManagerState,
        id: &str,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(job) = state.jobs.get(id) {
            job.cast(JobMsg::Step)?;
            return Ok(());
        }
        let Some(visit) = state.ctx.store.get(id)? else {
            return Ok(());
        };
        let pending = state.ctx.store.requests(id)? != Default::default();
        if !needs_job(&visit, pending) {
            return Ok(());
        }
        let (job, _) = Actor::spawn_linked(
            None,
            VisitJob,
            (id.to_owned(), state.ctx.clone()),
            myself.get_cell(),
        )
        .await?;
        state.by_actor.insert(job.get_id(), id.to_owned());
        state.jobs.insert(id.to_owned(), job);
        Ok(())
    }

    fn forget(state: &mut ManagerState, cell: &ActorCell) -> Option<String> {
        let id = state.by_actor.remove(&cell.get_id())?;
        state.jobs.remove(&id);
        Some(id)
    }
}

impl Actor for VisitManager {
    type Msg = ManagerMsg;
    type State = ManagerState;
    type Arguments = Arc<HikContext>;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        ctx: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        let mut state = ManagerState {
            ctx: ctx.clone(),
            jobs: HashMap::new(),
            by_actor: HashMap::new(),
        };
        let mut resumed = 0;
        for mut visit in ctx.store.all()? {
            let pending = ctx.store.requests(&visit.id)? != Default::default();
            if !needs_job(&visit, pending) {
                continue;
            }
            let working = !matches!(
                visit.state,
                VisitState::Active | VisitState::Blocked | VisitState::Revoked
            );
            if working && !visit.uncertain {
                // A step may have been in flight when the hub stopped: its outcome is unknown.
                visit.uncertain = true;
                ctx.store.save(&visit).await?;
            }
            Self::ensure_job(&myself, &mut state, &visit.id).await?;
            resumed += 1;
        }
        *ctx.manager.lock().unwrap_or_else(|p| p.into_inner()) = Some(myself.clone());
        tracing::info!(jobs = resumed, "visit provisioning started");
        Ok(state)
    }

    async fn post_stop(
        &self,
        myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        *state.ctx.manager.lock().unwrap_or_else(|p| p.into_inner()) = None;
        myself.stop_children(None);
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        ManagerMsg::Wake(id): Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        Self::ensure_job(&myself, state, &id).await
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match event {
            SupervisionEvent::ActorTerminated(cell, _, _) => {
                if let Some(id) = Self::forget(state, &cell) {
                    // A request may have arrived while it was stopping.
                    if state.ctx.store.requests(&id)? != Default::default() {
                        Self::ensure_job(&myself, state, &id).await?;
                    }
                }
            }
            SupervisionEvent::ActorFailed(cell, err) => {
                if let Some(id) = Self::forget(state, &cell) {
                    tracing::warn!(visit = %id, error = %err, "visit job failed; restarting it in 1 s");
                    myself.send_after(Duration::from_secs(1), move || ManagerMsg::Wake(id));
                }
            }
            _ => {}
        }
        Ok(())
    }
}
