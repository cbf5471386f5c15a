//! Meters entered by hand in the API: a reading taken at a machine whose link is down (role
//! operator), its corrections (role supervisor), and the machine's trail (role viewer).
//!
//! Invariants: nothing is written unless the whole request is valid; the original of a corrected
//! entry is never changed (the correction is an entry of its own); the accounting projection
//! applies an entry within a step (`applied` in the answer says whether it had when the answer
//! was sent).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use outpost_config::Role;
use outpost_domain::accounting::MANUAL_MARKS_KEPT;
use outpost_domain::calendar::{parse_rfc3339, rfc3339_utc};
use outpost_sas::names;
use serde::{Deserialize, Serialize};

use crate::api::{ApiContext, ApiError, ErrorBody, authorize, bad_request};
use crate::floor_api::{find_device, machine, store_error};
use crate::manual::{ManualEntry, Trail};

/// A reading entered by hand, or a correction, as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ManualEntryView {
    pub id: u64,
    pub edge: String,
    pub device: String,
    /// When the meters were read at the machine.
    pub read_at: String,
    /// Meter name → value as the machine's meter counts (see `units`).
    pub meters: BTreeMap<String, u64>,
    /// Meter name → `credits`, `cents` or `count`.
    pub units: BTreeMap<String, String>,
    pub by: String,
    pub reason: String,
    pub entered_at: String,
    /// The entry this one corrects.
    pub corrects: Option<u64>,
    /// Corrections of this entry, oldest first.
    pub corrected_by: Vec<u64>,
    /// Whether the accounting has applied it.
    pub applied: bool,
}

/// A reading taken at the machine.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewManualReading {
    /// When it was read, RFC 3339 (`2026-11-30T22:00:00Z`); not in the future.
    pub read_at: String,
    /// Meter name (as events name them: `coin_in`, `total_drop`, …) → value as the machine's meter
    /// shows it.
    pub meters: BTreeMap<String, u64>,
    /// Why (at most 500 characters, required).
    pub reason: String,
}

/// New values for some meters of an entry.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCorrection {
    pub meters: BTreeMap<String, u64>,
    /// Why (at most 500 characters, required).
    pub reason: String,
}

fn trail(ctx: &ApiContext) -> Result<Trail, ApiError> {
    Trail::open(&ctx.db).map_err(store_error)
}

fn unit(code: u8) -> &'static str {
    match names::meter(code).unit {
        names::MeterUnit::Credits => "credits",
        names::MeterUnit::Cents => "cents",
        names::MeterUnit::Count => "count",
    }
}

fn view(entry: &ManualEntry, all: &[ManualEntry], applied: bool) -> ManualEntryView {
    ManualEntryView {
        id: entry.id,
        edge: entry.edge.clone(),
        device: entry.device.clone(),
        read_at: rfc3339_utc(entry.read_at_us),
        meters: entry
            .meters
            .iter()
            .map(|(c, v)| (names::meter_name(*c), *v))
            .collect(),
        units: entry
            .meters
            .keys()
            .map(|c| (names::meter_name(*c), unit(*c).to_owned()))
            .collect(),
        by: entry.by.clone(),
        reason: entry.reason.clone(),
        entered_at: rfc3339_utc(entry.entered_us),
        corrects: entry.corrects,
        corrected_by: all
            .iter()
            .filter(|e| e.corrects == Some(entry.id))
            .map(|e| e.id)
            .collect(),
        applied,
    }
}

fn reason(text: &str) -> Result<String, ApiError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(bad_request(
            "reason: say why (who read the machine, why its link is down); it is kept with the entry",
        ));
    }
    if text.chars().count() > 500 {
        return Err(bad_request("reason: at most 500 characters"));
    }
    Ok(text.to_owned())
}

fn meter_codes(meters: &BTreeMap<String, u64>) -> Result<BTreeMap<u8, u64>, ApiError> {
    if meters.is_empty() {
        return Err(bad_request(
            "meters: at least one, e.g. {\"coin_in\": 123456, \"total_drop\": 5000}",
        ));
    }
    meters
        .iter()
        .map(|(name, value)| {
            let code = names::meter_code(name).ok_or_else(|| {
                bad_request(format!(
                    "meters: no meter named {name:?}; meters are named as in events \
                     (coin_in, coin_out, jackpot, games_played, total_drop, …)"
                ))
            })?;
            let digits = if (0x0D..=0x10).contains(&code) { 10 } else { 8 };
            if u128::from(*value) >= 10u128.pow(digits) {
                return Err(bad_request(format!(
                    "meters: {name} = {value} has more digits than the machine's {digits}-digit meter"
                )));
            }
            Ok((code, *value))
        })
        .collect()
}

/// Whether the accounting projection has applied entry `id` of `edge`.
fn applied(ctx: &ApiContext, edge: &str, id: u64) -> bool {
    crate::projections::tree(&ctx.db, outpost_domain::projection::ACCOUNTING)
        .ok()
        .and_then(|t| t.get([&b"r"[..], edge.as_bytes()].concat()).ok().flatten())
        .and_then(|v| v.as_ref().try_into().ok().map(u64::from_be_bytes))
        .is_some_and(|done| done >= id)
}

/// Waits (up to 3 s) for the accounting to apply entry `id`.
async fn wait_applied(ctx: &ApiContext, edge: &str, id: u64) -> bool {
    for _ in 0..60 {
        if applied(ctx, edge, id) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    applied(ctx, edge, id)
}

/// Enter a reading taken at a machine whose link is down (role operator). It closes the
/// machine's open interval as a reading by the edge would; both intervals it bounds are flagged
/// and reconcile as unverifiable.
#[utoipa::path(
    post,
    path = "/api/v1/machines/{edge}/{device}/meters/manual",
    tag = "accounting",
    params(("edge" = String, Path), ("device" = String, Path)),
    request_body = NewManualReading,
    responses(
        (status = 201, description = "Stored (and applied, if `applied`)", body = ManualEntryView),
        (status = 400, description = "A meter without a name, a value too large, a time in the future or not RFC 3339, no reason", body = ErrorBody),
        (status = 404, description = "Unknown edge or device, or not a slot machine", body = ErrorBody),
        (status = 409, description = "The machine's link is up: its meters are read electronically", body = ErrorBody),
    )
)]
pub async fn enter_manual_reading(
    State(ctx): State<Arc<ApiContext>>,
    headers: HeaderMap,
    Path((edge, device)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let by = authorize(&ctx, &headers, Role::Operator)?;
    machine(&ctx, &edge, &device)?;
    let new: NewManualReading = serde_json::from_slice(&body).map_err(|e| {
        bad_request(format!(
            "body is not a reading {{\"read_at\": \"2026-11-30T22:00:00Z\", \"meters\": \
             {{\"coin_in\": 123456}}, \"reason\": \"...\"}}: {e}"
        ))
    })?;
    let reason = reason(&new.reason)?;
    let meters = meter_codes(&new.meters)?;
    let read_at_us =
        parse_rfc3339(&new.read_at).map_err(|e| bad_request(format!("read_at: {e}")))?;
    let now = outpost_process::clock::unix_us();
    if read_at_us > now + 60_000_000 {
        return Err(bad_request(format!(
            "read_at: {} is in the future (now is {})",
            new.read_at,
            rfc3339_utc(now)
        )));
    }
    let summary = find_device(&ctx, &edge, &device)?;
    if summary.egm.as_ref().is_some_and(|e| e.online) {
        return Err(ApiError(
            StatusCode::CONFLICT,
            format!(
                "{edge}/{device} is online: its meters are read electronically (POST \
                 /api/v1/commands with op meter_refresh reads them now); enter meters by hand \
                 only while its link is down"
            ),
        ));
    }
    let trail = trail(&ctx)?;
    let entry = trail
        .record(ManualEntry {
            id: 0,
            edge: edge.clone(),
            device: device.clone(),
            read_at_us,
            meters,
            by: by.clone(),
            reason,
            entered_us: now,
            corrects: None,
            anchor: None,
        })
        .map_err(store_error)?;
    tracing::info!(edge = %edge, device = %device, entry = entry.id, by = %by, "meters entered by hand");
    let applied = wait_applied(&ctx, &edge, entry.id).await;
    Ok((StatusCode::CREATED, Json(view(&entry, &[], applied))).into_response())
}

/// Correct a reading entered by hand (role supervisor): the values given replace the entry's for
/// those meters; the difference moves between the two intervals the reading bounds, so the total
/// stays what the machine's own readings say. The original is kept as it was entered.
#[utoipa::path(
    post,
    path = "/api/v1/machines/{edge}/{device}/meters/manual/{id}/corrections",
    tag = "accounting",
    params(("edge" = String, Path), ("device" = String, Path), ("id" = u64, Path, description = "the entry to correct (or one of its corrections)")),
    request_body = NewCorrection,
    responses(
        (status = 201, description = "Stored (and applied, if `applied`)", body = ManualEntryView),
        (status = 400, description = "A meter the entry does not have, a value too large, no reason", body = ErrorBody),
        (status = 404, description = "Unknown machine or entry", body = ErrorBody),
        (status = 409, description = "Too many readings entered by hand since: the accounting no longer keeps this one", body = ErrorBody),
    )
)]
pub async fn correct_manual_reading(
    State(ctx): State<Arc<ApiContext>>,
    headers: HeaderMap,
    Path((edge, device, id)): Path<(String, String, u64)>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let by = authorize(&ctx, &headers, Role::Supervisor)?;
    machine(&ctx, &edge, &device)?;
    let new: NewCorrection = serde_json::from_slice(&body).map_err(|e| {
        bad_request(format!(
            "body is not a correction {{\"meters\": {{\"total_drop\": 5000}}, \"reason\": \
             \"...\"}}: {e}"
        ))
    })?;
    let reason = reason(&new.reason)?;
    let meters = meter_codes(&new.meters)?;
    let trail = trail(&ctx)?;
    let all = trail.of_machine(&edge, &device).map_err(store_error)?;
    let not_found = || {
        ApiError(
            StatusCode::NOT_FOUND,
            format!(
                "{edge}/{device} has no meters entered by hand under id {id} (GET \
                 /api/v1/machines/{edge}/{device}/meters/manual lists them)"
            ),
        )
    };
    let target = all.iter().find(|e| e.id == id).ok_or_else(not_found)?;
    let original = match target.corrects {
        Some(of) => all.iter().find(|e| e.id == of).ok_or_else(not_found)?,
        None => target,
    };
    if let Some(code) = meters.keys().find(|c| !original.meters.contains_key(c)) {
        return Err(bad_request(format!(
            "meters: entry {} has no {} to correct (it has: {})",
            original.id,
            names::meter_name(*code),
            original
                .meters
                .keys()
                .map(|c| names::meter_name(*c))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let newer = all
        .iter()
        .filter(|e| e.corrects.is_none() && e.id > original.id)
        .count();
    if newer >= MANUAL_MARKS_KEPT {
        return Err(ApiError(
            StatusCode::CONFLICT,
            format!(
                "entry {} was followed by {newer} readings entered by hand; the accounting keeps \
                 the last {MANUAL_MARKS_KEPT} for corrections",
                original.id
            ),
        ));
    }
    let entry = trail
        .record(ManualEntry {
            id: 0,
            edge: edge.clone(),
            device: device.clone(),
            read_at_us: original.read_at_us,
            meters,
            by: by.clone(),
            reason,
            entered_us: outpost_process::clock::unix_us(),
            corrects: Some(original.id),
            anchor: None,
        })
        .map_err(store_error)?;
    tracing::info!(edge = %edge, device = %device, entry = entry.id, corrects = original.id, by = %by, "meters entered by hand corrected");
    let applied = wait_applied(&ctx, &edge, entry.id).await;
    Ok((StatusCode::CREATED, Json(view(&entry, &[], applied))).into_response())
}

/// A machine's meters entered by hand and their corrections, oldest first (role viewer).
#[utoipa::path(
    get,
    path = "/api/v1/machines/{edge}/{device}/meters/manual",
    tag = "accounting",
    params(("edge" = String, Path), ("device" = String, Path)),
    responses(
        (status = 200, description = "The trail", body = Vec<ManualEntryView>),
        (status = 404, description = "Unknown edge or device, or not a slot machine", body = ErrorBody),
    )
)]
pub async fn list_manual_readings(
    State(ctx): State<Arc<ApiContext>>,
    headers: HeaderMap,
    Path((edge, device)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    authorize(&ctx, &headers, Role::Viewer)?;
    machine(&ctx, &edge, &device)?;
    let all = trail(&ctx)?
        .of_machine(&edge, &device)
        .map_err(store_error)?;
    let views: Vec<ManualEntryView> = all
        .iter()
        .map(|e| view(e, &all, applied(&ctx, &edge, e.id)))
        .collect();
    Ok(Json(views).into_response())
}
