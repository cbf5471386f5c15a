//! The floor in the API: devices and their state, events as people read them, gaming days and
//! reconciliation per machine and per site.
//!
//! Everything here reads the projections' trees (`crate::projections`) and the event log; it
//! never writes. Projections apply events shortly after they are committed
//! (`outpost_projection_lag_seconds`), so a state read here can be that far behind the log.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use outpost_config::Role;
use outpost_domain::accounting::{self, Bucket, MachineBook, Reconciliation, Verdict};
use outpost_domain::calendar::{Calendar, parse_day, parse_rfc3339, rfc3339_utc};
use outpost_domain::devices::DeviceState;
use outpost_domain::projection::{self, decode, device_key, time_key};
use outpost_domain::readable::{self, ReadableEvent};
use outpost_domain::site::Floor;
use serde::{Deserialize, Serialize};

use crate::api::{ApiContext, ApiError, ErrorBody, authorize, bad_request, known_edge};

pub(crate) fn store_error(e: impl std::fmt::Display) -> ApiError {
    ApiError(StatusCode::SERVICE_UNAVAILABLE, format!("store: {e}"))
}

fn proj_tree(ctx: &ApiContext, name: &str) -> Result<sled::Tree, ApiError> {
    crate::projections::tree(&ctx.db, name).map_err(store_error)
}

fn time(us: i64) -> String {
    rfc3339_utc(us)
}

// ---------------------------------------------------------------------------------------------
// Devices

/// A slot machine's state.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EgmView {
    /// `true` while the edge has the machine; `false` after a comms loss.
    pub online: bool,
    /// Since when `online` has been what it is.
    pub since: Option<String>,
    /// The last time the machine gave the host data.
    pub last_poll: Option<String>,
    pub credits: Option<u64>,
    /// The credits in money.
    pub credits_amount: Option<String>,
    pub doors_open: Vec<String>,
    /// The last tilt (exception name) and when.
    pub tilt: Option<NotedView>,
    /// The pending handpay's amount, while the machine is locked up for one.
    pub handpay_pending: Option<String>,
    pub play_enabled: Option<bool>,
    pub bill_acceptor_enabled: Option<bool>,
    pub last_exception: Option<NotedView>,
    pub power_on: Option<bool>,
    /// One credit in money, as the accounting counts it.
    pub denomination: String,
    /// Where that comes from: `config` (`[[machines]]`), `machine` (LP 1F) or `default`
    /// (`[accounting]`).
    pub denomination_source: String,
    /// What the machine says about itself (LP 1F), once it said.
    pub identity: Option<IdentityView>,
}

/// What a machine says about itself (LP 1F).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct IdentityView {
    pub game_id: String,
    pub paytable: String,
    /// Base payback, as the machine writes it (`9250` is 92.50 %).
    pub base_percent: String,
    pub max_bet_credits: u8,
    pub denomination_code: u8,
    /// The credit value the code names, in cents (absent for a code the hub does not know).
    pub denomination_cents: Option<u32>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NotedView {
    pub code: u8,
    pub name: String,
    pub at: String,
}

/// A TV's state.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TvView {
    pub up: bool,
    pub since: Option<String>,
    pub last_seen: Option<String>,
    pub screen_on: Option<bool>,
    pub volume: Option<u8>,
    pub input: Option<String>,
    pub app: Option<String>,
    pub ethernet: Option<String>,
    /// The last screenshot: when, and where to fetch it.
    pub last_screenshot: Option<ScreenshotView>,
    /// The last self-healing step taken.
    pub healing: Option<HealingView>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ScreenshotView {
    pub at: String,
    /// `GET` this (with your token) for the PNG.
    pub url: String,
    pub bytes: u64,
    pub sha256: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HealingView {
    pub step: String,
    pub detail: String,
    pub at: String,
}

/// A relay's state.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RelayView {
    pub on: bool,
    pub reason: String,
    pub last_switch: String,
}

/// A device with its state.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeviceSummary {
    pub edge: String,
    pub device: String,
    /// `egm`, `tv`, `relay`, `synthetic` (as the edge declared it).
    pub kind: String,
    pub site: String,
    /// Tags from the hub config.
    pub tags: Vec<String>,
    /// One word: `online`, `comms_lost`, `handpay`, `door_open` (EGM); `up`, `down` (TV); `on`,
    /// `off` (relay); `reporting` (synthetic); `unknown` before its first event.
    pub status: String,
    /// When its last event happened.
    pub last_event: Option<String>,
    /// Present for a slot machine.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub egm: Option<EgmView>,
    /// Present for a TV.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tv: Option<TvView>,
    /// Present for a relay.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relay: Option<RelayView>,
}

/// A page of devices.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DevicePage {
    pub devices: Vec<DeviceSummary>,
    /// Pass as `after` for the next page; absent on the last.
    pub next: Option<String>,
    /// Devices matching the filters in all.
    pub total: usize,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeviceFilter {
    /// Only devices of this site.
    site: Option<String>,
    /// Only devices of this edge.
    edge: Option<String>,
    /// Only this kind (`egm`, `tv`, `relay`, `synthetic`).
    kind: Option<String>,
    /// Only devices in this status (see `DeviceSummary.status`).
    status: Option<String>,
    /// Only devices with this tag (`[[device_tags]]` in the hub config).
    tag: Option<String>,
    /// Devices after this `edge/device` (from the previous page's `next`).
    after: Option<String>,
    /// At most this many (default 100, at most 10000).
    limit: Option<usize>,
}

/// A device as the list and the live stream show it.
pub(crate) fn summarize(
    floor: &Floor,
    edge: &str,
    device: &str,
    kind: &str,
    state: Option<&DeviceState>,
) -> DeviceSummary {
    let money =
        |credits: u64| floor.money(floor.credits_to_minor(edge, device, u128::from(credits)));
    let noted = |n: &outpost_domain::devices::Noted| NotedView {
        code: n.code,
        name: n.name.clone(),
        at: time(n.at_us),
    };
    let (denomination, denomination_source) = floor.denomination(edge, device);
    let egm = state.and_then(|s| s.egm.as_ref()).map(|e| EgmView {
        online: e.online,
        since: e.since_us.map(time),
        last_poll: (e.last_poll_us != 0).then(|| time(e.last_poll_us)),
        credits: e.credits,
        credits_amount: e.credits.map(money),
        doors_open: e.doors_open.iter().cloned().collect(),
        tilt: e.tilt.as_ref().map(noted),
        handpay_pending: e.handpay_pending.map(money),
        play_enabled: e.play_enabled,
        bill_acceptor_enabled: e.bill_acceptor_enabled,
        last_exception: e.last_exception.as_ref().map(noted),
        power_on: e.power_on,
        denomination: floor.money(i128::from(denomination)),
        denomination_source: denomination_source.as_str().to_owned(),
        identity: e.identity.as_ref().map(|i| IdentityView {
            game_id: i.game_id.clone(),
            paytable: i.paytable.clone(),
            base_percent: i.base_percent.clone(),
            max_bet_credits: i.max_bet_credits,
            denomination_code: i.denomination_code,
            denomination_cents: i.denomination_cents,
        }),
    });
    let tv = state.and_then(|s| s.tv.as_ref()).map(|t| TvView {
        up: t.up,
        since: t.since_us.map(time),
        last_seen: t.last_seen_us.map(time),
        screen_on: t.screen_on,
        volume: t.volume,
        input: t.input.clone(),
        app: t.app.clone(),
        ethernet: t.ethernet.clone(),
        last_screenshot: t.last_screenshot.as_ref().map(|s| ScreenshotView {
            at: time(s.at_us),
            url: format!("/api/v1/bulk/{edge}/{}", s.bulk_id),
            bytes: s.bytes,
            sha256: s.sha256.clone(),
        }),
        healing: t.healing.as_ref().map(|h| HealingView {
            step: h.step.clone(),
            detail: h.detail.clone(),
            at: time(h.at_us),
        }),
    });
    let relay = state.and_then(|s| s.relay.as_ref()).map(|r| RelayView {
        on: r.on,
        reason: r.reason.clone(),
        last_switch: time(r.switched_us),
    });
    let status = match (&egm, &tv, &relay, state) {
        (Some(e), ..) if !e.online => "comms_lost",
        (Some(e), ..) if e.handpay_pending.is_some() => "handpay",
        (Some(e), ..) if !e.doors_open.is_empty() => "door_open",
        (Some(_), ..) => "online",
        (_, Some(t), ..) => {
            if t.up {
                "up"
            } else {
                "down"
            }
        }
        (_, _, Some(r), _) => {
            if r.on {
                "on"
            } else {
                "off"
            }
        }
        (_, _, _, Some(_)) => "reporting",
        _ => "unknown",
    };
    DeviceSummary {
        edge: edge.to_owned(),
        device: device.to_owned(),
        kind: kind.to_owned(),
        site: floor.site_of(edge).id.clone(),
        tags: Vec::new(),
        status: status.to_owned(),
        last_event: state.map(|s| time(s.last_event_us)),
        egm,
        tv,
        relay,
    }
}

/// Every device the hub knows, with its state and tags (for bulk operations).
pub(crate) fn device_summaries(ctx: &ApiContext) -> Result<Vec<DeviceSummary>, ApiError> {
    all_devices(ctx)
}

/// Every device the hub knows (declared by its edge or seen in events), with its state.
fn all_devices(ctx: &ApiContext) -> Result<Vec<DeviceSummary>, ApiError> {
    let states = ctx
        .device_states
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut kinds: BTreeMap<(String, String), String> = BTreeMap::new();
    for edge in ctx.edges.all() {
        for d in edge.devices {
            kinds.insert((edge.id.clone(), d.id), d.kind);
        }
    }
    let keys: std::collections::BTreeSet<(String, String)> =
        kinds.keys().chain(states.keys()).cloned().collect();
    Ok(keys
        .into_iter()
        .map(|(edge, device)| {
            let key = (edge.clone(), device.clone());
            let state = states.get(&key);
            let kind = kinds.get(&key).cloned().unwrap_or_else(|| {
                match state {
                    Some(s) if s.egm.is_some() => "egm",
                    Some(s) if s.tv.is_some() => "tv",
                    Some(s) if s.relay.is_some() => "relay",
                    _ => "unknown",
                }
                .to_owned()
            });
            let mut summary = summarize(&ctx.floor, &edge, &device, &kind, state);
            if let Some(tags) = ctx.tags.get(&(edge, device)) {
                summary.tags = tags.clone();
            }
            summary
        })
        .collect())
}

/// Every device with its state, filtered and paged (role viewer).
#[utoipa::path(
    get,
    path = "/api/v1/devices",
    tag = "devices",
    params(DeviceFilter),
    responses(
        (status = 200, description = "A page of devices, ordered by edge and device", body = DevicePage),
        (status = 400, description = "A filter that cannot match anything", body = ErrorBody),
    )
)]
pub async fn list_devices(
    State(ctx): State<Arc<ApiContext>>,
    headers: HeaderMap,
    Query(filter): Query<DeviceFilter>,
) -> Result<Response, ApiError> {
    authorize(&ctx, &headers, Role::Viewer)?;
    if let Some(site) = &filter.site
        && ctx.floor.site(site).is_none()
    {
        let known: Vec<&str> = ctx.floor.sites().map(|s| s.id.as_str()).collect();
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("no site {site}; the hub config has: {}", known.join(", ")),
        ));
    }
    const STATUSES: [&str; 10] = [
        "online",
        "comms_lost",
        "handpay",
        "door_open",
        "up",
        "down",
        "on",
        "off",
        "reporting",
        "unknown",
    ];
    if let Some(status) = &filter.status
        && !STATUSES.contains(&status.as_str())
    {
        return Err(bad_request(format!(
            "status {status:?} is not one of {}",
            STATUSES.join(", ")
        )));
    }
    let limit = filter.limit.unwrap_or(100).clamp(1, 10_000);
    let matching: Vec<DeviceSummary> = all_devices(&ctx)?
        .into_iter()
        .filter(|d| filter.site.as_ref().is_none_or(|s| *s == d.site))
        .filter(|d| filter.edge.as_ref().is_none_or(|e| *e == d.edge))
        .filter(|d| filter.kind.as_ref().is_none_or(|k| *k == d.kind))
        .filter(|d| filter.status.as_ref().is_none_or(|s| *s == d.status))
        .filter(|d| filter.tag.as_ref().is_none_or(|t| d.tags.contains(t)))
        .collect();
    let total = matching.len();
    let after = filter.after.clone().unwrap_or_default();
    let mut devices: Vec<DeviceSummary> = matching
        .into_iter()
        .filter(|d| after.is_empty() || format!("{}/{}", d.edge, d.device) > after)
        .take(limit + 1)
        .collect();
    let next = if devices.len() > limit {
        devices.truncate(limit);
        devices.last().map(|d| format!("{}/{}", d.edge, d.device))
    } else {
        None
    };
    Ok(Json(DevicePage {
        devices,
        next,
        total,
    })
    .into_response())
}

/// One device in detail.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeviceDetail {
    #[serde(flatten)]
    pub summary: DeviceSummary,
    /// For a slot machine: the current gaming day's figures and reconciliation so far.
    pub today: Option<DayReport>,
}

pub(crate) fn find_device(
    ctx: &ApiContext,
    edge: &str,
    device: &str,
) -> Result<DeviceSummary, ApiError> {
    let edge = known_edge(ctx, edge)?;
    all_devices(ctx)?
        .into_iter()
        .find(|d| d.edge == edge.as_str() && d.device == device)
        .ok_or_else(|| {
            let known: Vec<String> = ctx
                .edges
                .get(edge.as_str())
                .map(|e| e.devices.into_iter().map(|d| d.id).collect())
                .unwrap_or_default();
            ApiError(
                StatusCode::NOT_FOUND,
                format!(
                    "edge {edge} has no device {device}; it has: {} (GET /api/v1/devices?edge={edge})",
                    known.join(", ")
                ),
            )
        })
}

/// One device's state; for a slot machine also today's figures (role viewer).
#[utoipa::path(
    get,
    path = "/api/v1/devices/{edge}/{device}",
    tag = "devices",
    params(("edge" = String, Path), ("device" = String, Path)),
    responses(
        (status = 200, description = "The device", body = DeviceDetail),
        (status = 404, description = "Unknown edge or device", body = ErrorBody),
    )
)]
pub async fn get_device(
    State(ctx): State<Arc<ApiContext>>,
    headers: HeaderMap,
    Path((edge, device)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    authorize(&ctx, &headers, Role::Viewer)?;
    let summary = find_device(&ctx, &edge, &device)?;
    let today = if summary.kind == "egm" {
        let calendar = &ctx.floor.site_of(&edge).calendar;
        let day = calendar.gaming_day(outpost_process::clock::unix_us());
        Some(day_report(&ctx, &edge, &device, day)?)
    } else {
        None
    };
    Ok(Json(DeviceDetail { summary, today }).into_response())
}

// ---------------------------------------------------------------------------------------------
// Gaming days

/// A bill count by value.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BillCount {
    /// The bill's value.
    pub value: String,
    pub count: u64,
    pub amount: String,
}

/// The money of a machine (or a site) over a span, from its meters.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FiguresView {
    pub currency: String,
    pub coin_in: String,
    pub coin_out: String,
    pub jackpot: String,
    pub handpaid_cancelled: String,
    pub cancelled_credits: String,
    /// Metered drop (meter 0x24, as the machine counts it).
    pub drop: String,
    /// Cashable tickets in and out (meters 0x0D, 0x0E).
    pub tickets_in: String,
    pub tickets_out: String,
    /// coin in − coin out − jackpots.
    pub net_win: String,
    pub theoretical_win: Option<String>,
    pub games_played: u64,
    pub games_won: u64,
    /// Actual hold in percent (net win / coin in), absent without coin in.
    pub actual_hold_percent: Option<String>,
    pub theoretical_hold_percent: Option<String>,
    /// Bills by value, from the machine's bill events.
    pub bills: Vec<BillCount>,
    pub bills_of_unnamed_value: u64,
    pub handpays: u64,
    pub handpaid: String,
    pub game_starts: u64,
}

fn percent(bp: i64) -> String {
    let sign = if bp < 0 { "-" } else { "" };
    format!("{sign}{}.{:02}", bp.abs() / 100, bp.abs() % 100)
}

fn figures_view(
    floor: &Floor,
    bucket: &Bucket,
    denomination: u32,
    par_bp: Option<u32>,
) -> FiguresView {
    let f = accounting::figures(bucket, denomination, par_bp);
    let m = |minor: i128| floor.money(minor);
    let per_major = i128::from(floor.currency.minor_per_major());
    let credits = |c: u128| {
        floor.money(i128::try_from(c.saturating_mul(u128::from(denomination))).unwrap_or(i128::MAX))
    };
    FiguresView {
        currency: floor.currency.code.clone(),
        coin_in: m(f.coin_in),
        coin_out: m(f.coin_out),
        jackpot: m(f.jackpot),
        handpaid_cancelled: m(f.handpaid_cancelled),
        cancelled_credits: m(f.cancelled_credits),
        drop: m(f.drop),
        tickets_in: m(floor.currency.cents_to_minor(f.tickets_in_cents)),
        tickets_out: m(floor.currency.cents_to_minor(f.tickets_out_cents)),
        net_win: m(f.net_win),
        theoretical_win: f.theoretical_win.map(m),
        games_played: u64::try_from(f.games_played).unwrap_or(u64::MAX),
        games_won: u64::try_from(f.games_won).unwrap_or(u64::MAX),
        actual_hold_percent: f.actual_hold_bp.map(percent),
        theoretical_hold_percent: f.theoretical_hold_bp.map(percent),
        bills: bucket
            .events
            .bills
            .iter()
            .map(|(value, count)| BillCount {
                value: m(i128::from(*value) * per_major),
                count: *count,
                amount: m(i128::from(*value) * i128::from(*count) * per_major),
            })
            .collect(),
        bills_of_unnamed_value: bucket.events.bills_unnamed,
        handpays: bucket.events.handpays,
        handpaid: credits(bucket.events.handpaid_credits),
        game_starts: bucket.events.game_starts,
    }
}

/// One check of a reconciliation.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CheckView {
    /// `bills` (metered drop vs bill events), `games` (games played vs game starts), `handpays`
    /// (jackpot meter vs handpays paid), `wagers` (coin in vs wagers, real-time events only).
    pub name: String,
    pub metered: String,
    pub counted: String,
    /// metered − counted.
    pub difference: String,
    pub verdict: Verdict,
}

/// Meters against events.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReconciliationView {
    /// `balanced`, `discrepancy`, or `unverifiable` (meters were reset in the window).
    pub verdict: Verdict,
    pub checks: Vec<CheckView>,
    /// What in the window may explain a difference.
    pub reasons: Vec<String>,
    /// Meter-reading intervals covered.
    pub intervals: u32,
}

fn reconciliation_view(floor: &Floor, r: &Reconciliation) -> ReconciliationView {
    ReconciliationView {
        verdict: r.verdict,
        checks: r
            .checks
            .iter()
            .map(|c| {
                let show = |v: i128| {
                    if c.money {
                        floor.money(v)
                    } else {
                        v.to_string()
                    }
                };
                CheckView {
                    name: c.name.clone(),
                    metered: show(c.metered),
                    counted: show(c.counted),
                    difference: show(c.difference()),
                    verdict: c.verdict,
                }
            })
            .collect(),
        reasons: r.reasons.clone(),
        intervals: r.intervals,
    }
}

/// An hour of a machine's day.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HourView {
    /// Start of the local hour, with the site's offset.
    pub hour: String,
    pub figures: FiguresView,
    pub verdict: Verdict,
}

/// An hour of a machine as the live stream shows it when an interval was filed in it.
#[derive(Debug, Serialize)]
pub struct FiledHour {
    pub edge: String,
    pub device: String,
    pub day: String,
    #[serde(flatten)]
    pub hour: HourView,
}

pub(crate) fn hour_view(floor: &Floor, edge: &str, device: &str, bucket: &Bucket) -> FiledHour {
    let calendar = &floor.site_of(edge).calendar;
    let terms = floor.terms(edge, device);
    FiledHour {
        edge: edge.to_owned(),
        device: device.to_owned(),
        day: bucket.day.clone(),
        hour: HourView {
            hour: calendar.rfc3339(bucket.hour_us),
            figures: figures_view(floor, bucket, terms.denomination, terms.par_bp),
            verdict: accounting::reconcile(
                bucket,
                terms.denomination,
                floor.currency.minor_per_major(),
            )
            .verdict,
        },
    }
}

/// A machine's gaming day.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DayReport {
    pub edge: String,
    pub device: String,
    pub site: String,
    /// The gaming day (`2026-11-30`): from `starts` to `ends`.
    pub day: String,
    pub starts: String,
    pub ends: String,
    pub figures: FiguresView,
    pub reconciliation: ReconciliationView,
    pub hours: Vec<HourView>,
    /// Each game's figures (machines with two games or more, read every
    /// `game_meter_interval_ms`), from that game's own meters.
    pub games: Vec<GameFiguresView>,
    /// Events since the machine's last meter reading, filed when the next one comes.
    pub pending_events: u64,
}

/// One game's figures over a span.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct GameFiguresView {
    pub game: u16,
    pub coin_in: String,
    pub coin_out: String,
    /// coin in − coin out.
    pub net_win: String,
    pub games_played: u64,
    pub games_won: u64,
    /// Actual hold in percent, absent without coin in.
    pub actual_hold_percent: Option<String>,
}

fn game_views(floor: &Floor, total: &Bucket, denomination: u32) -> Vec<GameFiguresView> {
    total
        .games
        .iter()
        .map(|(game, meters)| {
            let game_bucket = Bucket {
                metered: meters.clone(),
                ..Bucket::default()
            };
            let f = accounting::figures(&game_bucket, denomination, None);
            GameFiguresView {
                game: *game,
                coin_in: floor.money(f.coin_in),
                coin_out: floor.money(f.coin_out),
                net_win: floor.money(f.net_win),
                games_played: u64::try_from(f.games_played).unwrap_or(u64::MAX),
                games_won: u64::try_from(f.games_won).unwrap_or(u64::MAX),
                actual_hold_percent: f.actual_hold_bp.map(percent),
            }
        })
        .collect()
}

/// The buckets of a machine from `start_us` (inclusive) to `end_us` (exclusive).
fn buckets(
    ctx: &ApiContext,
    edge: &str,
    device: &str,
    start_us: i64,
    end_us: i64,
) -> Result<Vec<Bucket>, ApiError> {
    stored_buckets(&ctx.db, edge, device, start_us, end_us).map_err(store_error)
}

/// The same, from the hub database (for the alert evaluator too).
pub(crate) fn stored_buckets(
    db: &sled::Db,
    edge: &str,
    device: &str,
    start_us: i64,
    end_us: i64,
) -> Result<Vec<Bucket>, String> {
    let tree = crate::projections::tree(db, projection::ACCOUNTING).map_err(|e| e.to_string())?;
    let mut prefix = device_key(b'b', edge, device);
    prefix.push(0);
    let from = [prefix.clone(), time_key(start_us).to_vec()].concat();
    let to = [prefix, time_key(end_us).to_vec()].concat();
    let mut out = Vec::new();
    for entry in tree.range(from..to) {
        let (key, value) = entry.map_err(|e| e.to_string())?;
        out.push(
            decode::<Bucket>(projection::ACCOUNTING, &key, &value).map_err(|e| e.to_string())?,
        );
    }
    Ok(out)
}

/// A machine's running account, as the accounting projection stored it.
fn book(ctx: &ApiContext, edge: &str, device: &str) -> Result<Option<MachineBook>, ApiError> {
    let tree = proj_tree(ctx, projection::ACCOUNTING)?;
    let key = device_key(b'm', edge, device);
    match tree.get(&key).map_err(store_error)? {
        Some(v) => Ok(Some(
            decode(projection::ACCOUNTING, &key, &v).map_err(store_error)?,
        )),
        None => Ok(None),
    }
}

fn day_report(
    ctx: &ApiContext,
    edge: &str,
    device: &str,
    day: jiff::civil::Date,
) -> Result<DayReport, ApiError> {
    let floor = &ctx.floor;
    let site = floor.site_of(edge);
    let calendar: &Calendar = &site.calendar;
    let (start, end) = calendar.day_bounds(day);
    let terms = floor.terms(edge, device);
    let hours = buckets(ctx, edge, device, start, end)?;
    let total = Bucket::sum(&hours);
    let per_major = floor.currency.minor_per_major();
    let rec = accounting::reconcile(&total, terms.denomination, per_major);
    let pending = book(ctx, edge, device)?.map_or(0, |b| {
        let e = &b.open_events;
        e.bills.values().sum::<u64>() + e.bills_unnamed + e.game_starts + e.game_ends + e.handpays
    });
    Ok(DayReport {
        edge: edge.to_owned(),
        device: device.to_owned(),
        site: site.id.clone(),
        day: day.to_string(),
        starts: calendar.rfc3339(start),
        ends: calendar.rfc3339(end),
        figures: figures_view(floor, &total, terms.denomination, terms.par_bp),
        reconciliation: reconciliation_view(floor, &rec),
        hours: hours
            .iter()
            .map(|b| hour_view(floor, edge, device, b).hour)
            .collect(),
        games: game_views(floor, &total, terms.denomination),
        pending_events: pending,
    })
}

pub(crate) fn machine(ctx: &ApiContext, edge: &str, device: &str) -> Result<(), ApiError> {
    let d = find_device(ctx, edge, device)?;
    if d.kind != "egm" {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!(
                "{edge}/{device} is a {}, not a slot machine: it has no gaming days",
                d.kind
            ),
        ));
    }
    Ok(())
}

/// A machine's gaming day: figures in money, bills by value, hourly buckets and reconciliation
/// of meters against events (role viewer).
#[utoipa::path(
    get,
    path = "/api/v1/machines/{edge}/{device}/days/{day}",
    tag = "accounting",
    params(("edge" = String, Path), ("device" = String, Path), ("day" = String, Path, description = "gaming day, e.g. 2026-11-30, or `today`")),
    responses(
        (status = 200, description = "The day", body = DayReport),
        (status = 400, description = "Not a date", body = ErrorBody),
        (status = 404, description = "Unknown edge or device, or not a slot machine", body = ErrorBody),
    )
)]
pub async fn get_machine_day(
    State(ctx): State<Arc<ApiContext>>,
    headers: HeaderMap,
    Path((edge, device, day)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    authorize(&ctx, &headers, Role::Viewer)?;
    machine(&ctx, &edge, &device)?;
    let day = parse_gaming_day(&ctx, &edge, &day)?;
    Ok(Json(day_report(&ctx, &edge, &device, day)?).into_response())
}

fn parse_gaming_day(
    ctx: &ApiContext,
    edge: &str,
    text: &str,
) -> Result<jiff::civil::Date, ApiError> {
    if text == "today" {
        return Ok(ctx
            .floor
            .site_of(edge)
            .calendar
            .gaming_day(outpost_process::clock::unix_us()));
    }
    parse_day(text).map_err(|e| bad_request(e.to_string()))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DayRange {
    /// First gaming day (default: 30 days before `to`).
    from: Option<String>,
    /// Last gaming day (default: today).
    to: Option<String>,
    /// `json` (default) or `csv`.
    format: Option<String>,
}

/// One gaming day of a machine, in a history.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DaySummary {
    pub day: String,
    pub figures: FiguresView,
    pub verdict: Verdict,
}

/// A machine's gaming days over a range, as JSON or CSV (role viewer).
#[utoipa::path(
    get,
    path = "/api/v1/machines/{edge}/{device}/days",
    tag = "accounting",
    params(("edge" = String, Path), ("device" = String, Path), DayRange),
    responses(
        (status = 200, description = "One entry per gaming day (CSV with format=csv)", body = Vec<DaySummary>),
        (status = 400, description = "Not a date, or a range of more than 366 days", body = ErrorBody),
        (status = 404, description = "Unknown edge or device", body = ErrorBody),
    )
)]
pub async fn list_machine_days(
    State(ctx): State<Arc<ApiContext>>,
    headers: HeaderMap,
    Path((edge, device)): Path<(String, String)>,
    Query(range): Query<DayRange>,
) -> Result<Response, ApiError> {
    authorize(&ctx, &headers, Role::Viewer)?;
    machine(&ctx, &edge, &device)?;
    let to = parse_gaming_day(&ctx, &edge, range.to.as_deref().unwrap_or("today"))?;
    let from = match &range.from {
        Some(text) => parse_gaming_day(&ctx, &edge, text)?,
        None => to.checked_sub(jiff::Span::new().days(29)).unwrap_or(to),
    };
    let span = from.until(to).map(|s| s.get_days()).unwrap_or(-1);
    if !(0..=366).contains(&span) {
        return Err(bad_request(format!(
            "from {from} to {to}: give a range of 0 to 366 days, from before to"
        )));
    }
    let csv = match range.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(other) => return Err(bad_request(format!("format {other:?}: json or csv"))),
    };
    let mut days = Vec::new();
    let mut day = from;
    while day <= to {
        let report = day_report(&ctx, &edge, &device, day)?;
        days.push(DaySummary {
            day: report.day,
            figures: report.figures,
            verdict: report.reconciliation.verdict,
        });
        match day.tomorrow() {
            Ok(next) => day = next,
            Err(_) => break,
        }
    }
    if !csv {
        return Ok(Json(days).into_response());
    }
    let mut out = String::from(
        "day,currency,coin_in,coin_out,jackpot,drop,tickets_in,tickets_out,cancelled_credits,net_win,theoretical_win,games_played,games_won,actual_hold_percent,handpays,handpaid,reconciliation\n",
    );
    for d in &days {
        let f = &d.figures;
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
            d.day,
            f.currency,
            f.coin_in,
            f.coin_out,
            f.jackpot,
            f.drop,
            f.tickets_in,
            f.tickets_out,
            f.cancelled_credits,
            f.net_win,
            f.theoretical_win.clone().unwrap_or_default(),
            f.games_played,
            f.games_won,
            f.actual_hold_percent.clone().unwrap_or_default(),
            f.handpays,
            f.handpaid,
            serde_json::to_value(d.verdict)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
        ));
    }
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{edge}-{device}-{from}-{to}.csv\""),
            ),
        ],
        out,
    )
        .into_response())
}

/// A machine's line in a site's day.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SiteMachineLine {
    pub edge: String,
    pub device: String,
    pub net_win: String,
    pub drop: String,
    pub verdict: Verdict,
}

/// A site's gaming day: totals and each machine's reconciliation.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SiteDayReport {
    pub site: String,
    pub day: String,
    pub figures: FiguresView,
    pub machines: Vec<SiteMachineLine>,
    pub balanced: usize,
    pub discrepancies: usize,
    pub unverifiable: usize,
}

/// A site's gaming day (`all` for every site): totals in money and every machine's
/// reconciliation (role viewer).
#[utoipa::path(
    get,
    path = "/api/v1/sites/{site}/days/{day}",
    tag = "accounting",
    params(("site" = String, Path, description = "site id, or `all`"), ("day" = String, Path, description = "gaming day, e.g. 2026-11-30, or `today`")),
    responses(
        (status = 200, description = "The site's day", body = SiteDayReport),
        (status = 400, description = "Not a date", body = ErrorBody),
        (status = 404, description = "Unknown site", body = ErrorBody),
    )
)]
pub async fn get_site_day(
    State(ctx): State<Arc<ApiContext>>,
    headers: HeaderMap,
    Path((site, day)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    authorize(&ctx, &headers, Role::Viewer)?;
    let floor = &ctx.floor;
    if site != "all" && floor.site(&site).is_none() {
        let known: Vec<&str> = floor.sites().map(|s| s.id.as_str()).collect();
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!(
                "no site {site}; the hub config has: {} (or use all)",
                known.join(", ")
            ),
        ));
    }
    let machines: Vec<DeviceSummary> = all_devices(&ctx)?
        .into_iter()
        .filter(|d| d.kind == "egm" && (site == "all" || d.site == site))
        .collect();
    let mut total = Bucket::default();
    let mut lines = Vec::new();
    let (mut balanced, mut discrepancies, mut unverifiable) = (0, 0, 0);
    let mut money_total = Bucket::default();
    for m in &machines {
        let calendar = &floor.site_of(&m.edge).calendar;
        let d = parse_gaming_day(&ctx, &m.edge, &day)?;
        let (start, end) = calendar.day_bounds(d);
        let terms = floor.terms(&m.edge, &m.device);
        let bucket = Bucket::sum(&buckets(&ctx, &m.edge, &m.device, start, end)?);
        let rec = accounting::reconcile(
            &bucket,
            terms.denomination,
            floor.currency.minor_per_major(),
        );
        match rec.verdict {
            Verdict::Balanced => balanced += 1,
            Verdict::Discrepancy => discrepancies += 1,
            Verdict::Unverifiable => unverifiable += 1,
        }
        let f = accounting::figures(&bucket, terms.denomination, terms.par_bp);
        lines.push(SiteMachineLine {
            edge: m.edge.clone(),
            device: m.device.clone(),
            net_win: floor.money(f.net_win),
            drop: floor.money(f.drop),
            verdict: rec.verdict,
        });
        // Site totals are in money: scale each machine's credits by its own denomination.
        let mut scaled = bucket.clone();
        scaled.scale_credits(terms.denomination);
        scaled.events.handpaid_credits = scaled
            .events
            .handpaid_credits
            .saturating_mul(u128::from(terms.denomination));
        money_total.add(&scaled);
        total.add(&bucket);
    }
    let day_label = match machines.first() {
        Some(m) => parse_gaming_day(&ctx, &m.edge, &day)?.to_string(),
        None => parse_day(&day)
            .map(|d| d.to_string())
            .unwrap_or(day.clone()),
    };
    Ok(Json(SiteDayReport {
        site,
        day: day_label,
        // Credits were scaled to money per machine; counts and cents were left as they are.
        figures: figures_view(floor, &money_total, 1, None),
        machines: lines,
        balanced,
        discrepancies,
        unverifiable,
    })
    .into_response())
}

// ---------------------------------------------------------------------------------------------
// Events

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventQuery {
    /// `asc` (oldest first, the default) or `desc` (newest first).
    order: Option<String>,
    /// Where to start: the first sequence to look at (asc) or the last (desc); the previous
    /// page's `next`.
    from: Option<u64>,
    /// At most this many events (default 100, at most 1000).
    limit: Option<usize>,
    /// Only this device's events (served by an index).
    device: Option<String>,
    /// Only events that happened at or after this time (RFC 3339).
    since: Option<String>,
    /// Only events that happened before this time (RFC 3339).
    until: Option<String>,
    /// Only events of these types, comma-separated (`sas.bill,sas.handpay_pending`).
    #[serde(rename = "type")]
    types: Option<String>,
}

/// A page of events as people read them.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventPage {
    pub events: Vec<ReadableEvent>,
    /// Pass as `from` (with the same order and filters) for the next page; absent when there is
    /// nothing more. An empty page with a `next` means "nothing matched in this stretch, go on".
    pub next: Option<u64>,
}

/// Events looked at per request at most (filters may match few of them).
const EVENT_SCAN: usize = 20_000;

/// Committed events of an edge in the readable shape, oldest or newest first, by device, time
/// and type (role viewer).
#[utoipa::path(
    get,
    path = "/api/v1/edges/{edge}/events",
    tag = "edges",
    params(("edge" = String, Path, description = "edge id"), EventQuery),
    responses(
        (status = 200, description = "A page of events", body = EventPage),
        (status = 400, description = "Not a valid edge id, order, time or type", body = ErrorBody),
        (status = 404, description = "Unknown edge", body = ErrorBody),
    )
)]
pub async fn list_events(
    State(ctx): State<Arc<ApiContext>>,
    headers: HeaderMap,
    Path(edge): Path<String>,
    Query(query): Query<EventQuery>,
) -> Result<Response, ApiError> {
    authorize(&ctx, &headers, Role::Viewer)?;
    let edge = known_edge(&ctx, &edge)?;
    Ok(Json(events_page(&ctx, edge.as_str(), query)?).into_response())
}

/// The event types of a slot machine's transaction log.
pub const TRANSACTION_TYPES: &str = "sas.bill,sas.game_start,sas.game_end,sas.handpay_pending,sas.handpay_reset,sas.door,sas.power,sas.ticket,sas.link,sas.exception,command.result";

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TransactionQuery {
    /// The last sequence to look at (the previous page's `next`).
    from: Option<u64>,
    /// At most this many (default 100, at most 1000).
    limit: Option<usize>,
    /// Only transactions at or after this time (RFC 3339).
    since: Option<String>,
    /// Only transactions before this time (RFC 3339).
    until: Option<String>,
}

/// A slot machine's transaction log, newest first: bills, games, handpays, doors, power, comms,
/// other exceptions and command results, as people read them (role viewer).
#[utoipa::path(
    get,
    path = "/api/v1/machines/{edge}/{device}/transactions",
    tag = "accounting",
    params(("edge" = String, Path), ("device" = String, Path), TransactionQuery),
    responses(
        (status = 200, description = "A page of transactions", body = EventPage),
        (status = 400, description = "A time that does not read", body = ErrorBody),
        (status = 404, description = "Unknown edge or device, or not a slot machine", body = ErrorBody),
    )
)]
pub async fn machine_transactions(
    State(ctx): State<Arc<ApiContext>>,
    headers: HeaderMap,
    Path((edge, device)): Path<(String, String)>,
    Query(q): Query<TransactionQuery>,
) -> Result<Response, ApiError> {
    authorize(&ctx, &headers, Role::Viewer)?;
    machine(&ctx, &edge, &device)?;
    let query = EventQuery {
        order: Some("desc".into()),
        from: q.from,
        limit: q.limit,
        device: Some(device),
        since: q.since,
        until: q.until,
        types: Some(TRANSACTION_TYPES.into()),
    };
    Ok(Json(events_page(&ctx, &edge, query)?).into_response())
}

/// A page of `edge`'s events for `query`.
fn events_page(ctx: &ApiContext, edge: &str, query: EventQuery) -> Result<EventPage, ApiError> {
    let desc = match query.order.as_deref() {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(other) => return Err(bad_request(format!("order {other:?}: asc or desc"))),
    };
    let since = query
        .since
        .as_deref()
        .map(parse_rfc3339)
        .transpose()
        .map_err(|e| bad_request(e.to_string()))?;
    let until = query
        .until
        .as_deref()
        .map(parse_rfc3339)
        .transpose()
        .map_err(|e| bad_request(e.to_string()))?;
    let types: Option<Vec<String>> = match &query.types {
        Some(list) => {
            let wanted: Vec<String> = list
                .split(',')
                .map(|t| t.trim().to_owned())
                .filter(|t| !t.is_empty())
                .collect();
            if let Some(bad) = wanted
                .iter()
                .find(|t| !readable::TYPES.contains(&t.as_str()))
            {
                return Err(bad_request(format!(
                    "type {bad:?} is not one of {}",
                    readable::TYPES.join(", ")
                )));
            }
            Some(wanted)
        }
        None => None,
    };
    let limit = query.limit.unwrap_or(100).clamp(1, 1000);
    let committed = ctx.eventlog.committed_seq(edge).map_err(store_error)?;
    let keep = |e: &ReadableEvent, happened: i64| {
        since.is_none_or(|s| happened >= s)
            && until.is_none_or(|u| happened < u)
            && types
                .as_ref()
                .is_none_or(|t| t.iter().any(|t| t == e.what.type_name()))
    };
    let mut events = Vec::new();
    let mut next: Option<u64>;
    if let Some(device) = &query.device {
        // The device index: its sequence numbers, in order, without scanning the edge's log.
        let tree = proj_tree(ctx, projection::DEVICE_EVENTS)?;
        let start = query.from.unwrap_or(if desc { u64::MAX } else { 1 });
        let start_block = start / projection::BLOCK_SEQS;
        let key = |block: u64| projection::device_block_key(edge, device, block);
        let blocks: Box<dyn Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>> = if desc {
            Box::new(tree.range(key(0)..=key(start_block)).rev())
        } else {
            Box::new(tree.range(key(start_block)..=key(u64::MAX / projection::BLOCK_SEQS)))
        };
        next = None;
        let mut looked = 0;
        'blocks: for entry in blocks {
            let (_, value) = entry.map_err(store_error)?;
            let seqs: Vec<u64> = if desc {
                projection::block_seqs(&value)
                    .rev()
                    .filter(|s| *s <= start)
                    .collect()
            } else {
                projection::block_seqs(&value)
                    .filter(|s| *s >= start)
                    .collect()
            };
            for seq in seqs {
                if events.len() >= limit || looked >= EVENT_SCAN {
                    next = Some(seq);
                    break 'blocks;
                }
                looked += 1;
                if let Some(stored) = ctx
                    .eventlog
                    .read(edge, seq, 1)
                    .map_err(store_error)?
                    .into_iter()
                    .next()
                    && stored.event.seq == seq
                {
                    let r = readable::readable(&ctx.floor, edge, &stored);
                    if keep(&r, stored.happened_us()) {
                        events.push(r);
                    }
                }
            }
        }
    } else if desc {
        let mut upto = query.from.unwrap_or(committed).min(committed);
        let mut looked = 0;
        next = None;
        'pages: while upto >= 1 {
            let lo = upto.saturating_sub(999).max(1);
            let page = ctx
                .eventlog
                .read(edge, lo, (upto - lo + 1) as usize)
                .map_err(store_error)?;
            for stored in page.iter().rev() {
                if events.len() >= limit || looked >= EVENT_SCAN {
                    next = Some(stored.event.seq);
                    break 'pages;
                }
                looked += 1;
                let r = readable::readable(&ctx.floor, edge, stored);
                if keep(&r, stored.happened_us()) {
                    events.push(r);
                }
            }
            if lo == 1 {
                break;
            }
            upto = lo - 1;
        }
    } else {
        let mut from = query.from.unwrap_or(1).max(1);
        let mut looked = 0;
        next = None;
        'pages: while from <= committed {
            let page = ctx.eventlog.read(edge, from, 1000).map_err(store_error)?;
            if page.is_empty() {
                break;
            }
            for stored in &page {
                if events.len() >= limit || looked >= EVENT_SCAN {
                    next = Some(stored.event.seq);
                    break 'pages;
                }
                looked += 1;
                let r = readable::readable(&ctx.floor, edge, stored);
                if keep(&r, stored.happened_us()) {
                    events.push(r);
                }
                from = stored.event.seq + 1;
            }
        }
    }
    Ok(EventPage { events, next })
}

// ---------------------------------------------------------------------------------------------
// The live stream

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StreamFilter {
    /// Only these kinds of item, comma-separated: `event`, `device`, `figures`, `alert` (default
    /// all). `reset` items always come.
    kinds: Option<String>,
    /// Only items of this edge.
    edge: Option<String>,
    /// Only items of this device.
    device: Option<String>,
    /// Only events of these types, comma-separated (as in the events API).
    #[serde(rename = "type")]
    types: Option<String>,
    /// The token, for clients that cannot send headers (a browser's EventSource). Prefer the
    /// Authorization header: URLs end up in logs.
    access_token: Option<String>,
    /// Where to resume, for clients that cannot send `Last-Event-ID`.
    last_event_id: Option<String>,
}

const STREAM_KINDS: [&str; 4] = ["event", "device", "figures", "alert"];

/// Live items as Server-Sent Events (role viewer): committed events (`event`, the readable shape,
/// command results included), device state changes (`device`), hours with newly filed figures
/// (`figures`) and alerts (`alert`). Each item's id resumes with `Last-Event-ID`; a `reset` item
/// means "refetch state through the REST API, then go on".
#[utoipa::path(
    get,
    path = "/api/v1/stream",
    tag = "stream",
    params(StreamFilter),
    responses(
        (status = 200, description = "text/event-stream", content_type = "text/event-stream", body = String),
        (status = 400, description = "Unknown kind or type", body = ErrorBody),
    )
)]
pub async fn stream(
    State(ctx): State<Arc<ApiContext>>,
    mut headers: HeaderMap,
    Query(filter): Query<StreamFilter>,
) -> Result<Response, ApiError> {
    use axum::response::sse::{Event, KeepAlive, Sse};
    use futures::StreamExt;
    if let Some(token) = &filter.access_token
        && !headers.contains_key(header::AUTHORIZATION)
        && let Ok(value) = format!("Bearer {token}").parse()
    {
        headers.insert(header::AUTHORIZATION, value);
    }
    authorize(&ctx, &headers, Role::Viewer)?;
    let list = |text: &Option<String>| -> Option<Vec<String>> {
        text.as_ref().map(|t| {
            t.split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect()
        })
    };
    let kinds = list(&filter.kinds);
    if let Some(bad) = kinds
        .iter()
        .flatten()
        .find(|k| !STREAM_KINDS.contains(&k.as_str()))
    {
        return Err(bad_request(format!(
            "kind {bad:?} is not one of {}",
            STREAM_KINDS.join(", ")
        )));
    }
    let types = list(&filter.types);
    if let Some(bad) = types
        .iter()
        .flatten()
        .find(|t| !readable::TYPES.contains(&t.as_str()))
    {
        return Err(bad_request(format!(
            "type {bad:?} is not one of {}",
            readable::TYPES.join(", ")
        )));
    }
    let last = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or(filter.last_event_id.clone());
    let live = ctx.stream.clone();
    let sub = live.subscribe(last.as_deref());
    let wanted = move |item: &crate::stream::StreamItem| {
        kinds
            .as_ref()
            .is_none_or(|k| k.iter().any(|k| k == item.kind))
            && filter.edge.as_ref().is_none_or(|e| *e == item.edge)
            && filter.device.as_ref().is_none_or(|d| *d == item.device)
            && (item.kind != "event" || types.as_ref().is_none_or(|t| t.contains(&item.event_type)))
    };
    let to_sse = |item: &crate::stream::StreamItem| {
        Event::default()
            .id(item.id.clone())
            .event(item.kind)
            .data(&*item.data)
    };
    let reset = move |stream: &crate::stream::LiveStream, why: &str| {
        Event::default()
            .id(stream.last_id())
            .event("reset")
            .data(serde_json::json!({ "reason": why }).to_string())
    };
    let mut first: Vec<Event> = Vec::new();
    if sub.reset {
        first.push(reset(
            &live,
            "the stream no longer has the place you asked for (the hub restarted, or you were away too long): refetch state, then go on",
        ));
    }
    first.extend(sub.replay.iter().filter(|i| wanted(i)).map(to_sse));
    let live_items = futures::stream::unfold(
        (sub.live, live, wanted),
        move |(mut rx, live, wanted)| async move {
            loop {
                match rx.recv().await {
                    Ok(item) if wanted(&item) => {
                        let event = to_sse(&item);
                        return Some((event, (rx, live, wanted)));
                    }
                    Ok(_) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        let event = reset(
                            &live,
                            "you fell behind the stream: refetch state, then go on",
                        );
                        return Some((event, (rx, live, wanted)));
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                }
            }
        },
    );
    let all = futures::stream::iter(first)
        .chain(live_items)
        .map(Ok::<_, std::convert::Infallible>);
    Ok(Sse::new(all)
        .keep_alive(KeepAlive::default())
        .into_response())
}

// ---------------------------------------------------------------------------------------------
// Alerts

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AlertQuery {
    /// `firing` (default), `resolved` or `all`.
    state: Option<String>,
    rule: Option<String>,
    site: Option<String>,
    edge: Option<String>,
    device: Option<String>,
    /// At most this many (default 100, at most 1000).
    limit: Option<usize>,
}

/// Alerts, newest first (role viewer).
#[utoipa::path(
    get,
    path = "/api/v1/alerts",
    tag = "alerts",
    params(AlertQuery),
    responses(
        (status = 200, description = "Alerts", body = Vec<crate::alerts::AlertView>),
        (status = 400, description = "Unknown state or rule", body = ErrorBody),
    )
)]
pub async fn list_alerts(
    State(ctx): State<Arc<ApiContext>>,
    headers: HeaderMap,
    Query(q): Query<AlertQuery>,
) -> Result<Response, ApiError> {
    authorize(&ctx, &headers, Role::Viewer)?;
    let state = q.state.clone().unwrap_or_else(|| "firing".into());
    if !["firing", "resolved", "all"].contains(&state.as_str()) {
        return Err(bad_request(format!(
            "state {state:?}: firing, resolved or all"
        )));
    }
    if let Some(rule) = &q.rule
        && !outpost_config::ALERT_RULES.contains(&rule.as_str())
    {
        return Err(bad_request(format!(
            "rule {rule:?} is not one of {}",
            outpost_config::ALERT_RULES.join(", ")
        )));
    }
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let alerts = ctx
        .alerts
        .list(
            |a| {
                (state == "all" || a.state == state)
                    && q.rule.as_ref().is_none_or(|r| *r == a.rule)
                    && q.site.as_ref().is_none_or(|s| *s == a.site)
                    && q.edge.as_ref().is_none_or(|e| *e == a.edge)
                    && q.device.as_ref().is_none_or(|d| *d == a.device)
            },
            limit,
        )
        .map_err(store_error)?;
    let views: Vec<crate::alerts::AlertView> =
        alerts.iter().map(crate::alerts::alert_view).collect();
    Ok(Json(views).into_response())
}

/// An acknowledgement.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Acknowledgement {
    /// What is being done about it (at most 500 characters).
    #[serde(default)]
    pub note: String,
}

/// Acknowledge an alert: who and when are kept with it, logged, published and sent to the
/// webhooks (role operator).
#[utoipa::path(
    post,
    path = "/api/v1/alerts/{id}/acknowledge",
    tag = "alerts",
    params(("id" = String, Path)),
    request_body = Acknowledgement,
    responses(
        (status = 200, description = "Acknowledged", body = crate::alerts::AlertView),
        (status = 400, description = "Not a valid body", body = ErrorBody),
        (status = 404, description = "No such alert", body = ErrorBody),
        (status = 409, description = "Acknowledged already", body = ErrorBody),
    )
)]
pub async fn acknowledge_alert(
    State(ctx): State<Arc<ApiContext>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let by = authorize(&ctx, &headers, Role::Operator)?;
    let ack: Acknowledgement = if body.is_empty() {
        Acknowledgement {
            note: String::new(),
        }
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            bad_request(format!(
                "body is not an acknowledgement {{\"note\": \"...\"}}: {e}"
            ))
        })?
    };
    if ack.note.chars().count() > 500 {
        return Err(bad_request("note: at most 500 characters"));
    }
    let now = outpost_process::clock::unix_us();
    match ctx.alerts.acknowledge(&id, &by, &ack.note, now) {
        Ok(alert) => Ok(Json(crate::alerts::alert_view(&alert)).into_response()),
        Err(e @ crate::alerts::AlertError::Unknown(_)) => {
            Err(ApiError(StatusCode::NOT_FOUND, e.to_string()))
        }
        Err(e @ crate::alerts::AlertError::Acknowledged { .. }) => {
            Err(ApiError(StatusCode::CONFLICT, e.to_string()))
        }
        Err(e) => Err(store_error(e)),
    }
}

// ---------------------------------------------------------------------------------------------
// Handpays

/// A handpay and the people's steps on it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HandpayView {
    /// `edge/device/seq`.
    pub id: String,
    pub edge: String,
    pub device: String,
    pub amount: String,
    pub currency: String,
    pub credits: u64,
    /// When the machine reported it.
    pub pending: String,
    /// `pending`, `verified`, `approved`, `paid`, or `reset_at_machine` (reset without the
    /// workflow).
    pub state: String,
    pub verified_by: Option<String>,
    pub verified: Option<String>,
    pub approved_by: Option<String>,
    pub approved: Option<String>,
    pub paid_by: Option<String>,
    pub paid: Option<String>,
    /// When the machine reported it reset (52).
    pub reset_at_machine: Option<String>,
    /// The `handpay_reset` command the payment issued.
    pub reset_command: Option<String>,
    pub notes: Vec<String>,
}

fn handpay_view(
    floor: &Floor,
    h: &outpost_domain::projection::Handpay,
    s: &crate::handpays::Steps,
) -> HandpayView {
    HandpayView {
        id: h.id(),
        edge: h.edge.clone(),
        device: h.device.clone(),
        amount: floor.money(floor.credits_to_minor(&h.edge, &h.device, u128::from(h.credits))),
        currency: floor.currency.code.clone(),
        credits: h.credits,
        pending: time(h.pending_us),
        state: crate::handpays::state(h, s).to_owned(),
        verified_by: s.verified_by.clone(),
        verified: s.verified_us.map(time),
        approved_by: s.approved_by.clone(),
        approved: s.approved_us.map(time),
        paid_by: s.paid_by.clone(),
        paid: s.paid_us.map(time),
        reset_at_machine: h.reset_us.map(time),
        reset_command: s.reset_command.clone(),
        notes: s.notes.clone(),
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HandpayQuery {
    /// `pending`, `verified`, `approved`, `paid`, `reset_at_machine`, or `open` (every state
    /// before paid); all when absent.
    state: Option<String>,
    edge: Option<String>,
    device: Option<String>,
}

const HANDPAY_STATES: [&str; 6] = [
    "pending",
    "verified",
    "approved",
    "paid",
    "reset_at_machine",
    "open",
];

/// Handpays, newest first, with who verified, approved and paid them (role viewer).
#[utoipa::path(
    get,
    path = "/api/v1/handpays",
    tag = "accounting",
    params(HandpayQuery),
    responses(
        (status = 200, description = "Handpays", body = Vec<HandpayView>),
        (status = 400, description = "Unknown state", body = ErrorBody),
    )
)]
pub async fn list_handpays(
    State(ctx): State<Arc<ApiContext>>,
    headers: HeaderMap,
    Query(q): Query<HandpayQuery>,
) -> Result<Response, ApiError> {
    authorize(&ctx, &headers, Role::Viewer)?;
    if let Some(state) = &q.state
        && !HANDPAY_STATES.contains(&state.as_str())
    {
        return Err(bad_request(format!(
            "state {state:?} is not one of {}",
            HANDPAY_STATES.join(", ")
        )));
    }
    let views: Vec<HandpayView> = ctx
        .handpays
        .list()
        .map_err(store_error)?
        .iter()
        .map(|(h, s)| handpay_view(&ctx.floor, h, s))
        .filter(|v| match q.state.as_deref() {
            None => true,
            Some("open") => ["pending", "verified", "approved"].contains(&v.state.as_str()),
            Some(state) => v.state == state,
        })
        .filter(|v| q.edge.as_ref().is_none_or(|e| *e == v.edge))
        .filter(|v| q.device.as_ref().is_none_or(|d| *d == v.device))
        .collect();
    Ok(Json(views).into_response())
}

/// A note with a step.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StepNote {
    /// At most 500 characters.
    #[serde(default)]
    pub note: String,
}

fn step_error(e: crate::handpays::StepError) -> ApiError {
    use crate::handpays::StepError;
    match e {
        StepError::Unknown(_) => ApiError(StatusCode::NOT_FOUND, e.to_string()),
        StepError::OutOfOrder { .. } => ApiError(StatusCode::CONFLICT, e.to_string()),
        StepError::SamePerson { .. } => ApiError(StatusCode::FORBIDDEN, e.to_string()),
        StepError::Store(_) => store_error(e),
    }
}

async fn handpay_step(
    ctx: Arc<ApiContext>,
    headers: HeaderMap,
    (edge, device, seq): (String, String, u64),
    body: axum::body::Bytes,
    step: crate::handpays::Step,
) -> Result<Response, ApiError> {
    use crate::handpays::Step;
    let role = match step {
        Step::Approve => Role::Supervisor,
        Step::Verify | Step::Pay => Role::Operator,
    };
    let by = authorize(&ctx, &headers, role)?;
    let note: StepNote = if body.is_empty() {
        StepNote::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| bad_request(format!("body is not {{\"note\": \"...\"}}: {e}")))?
    };
    if note.note.chars().count() > 500 {
        return Err(bad_request("note: at most 500 characters"));
    }
    let id = format!("{edge}/{device}/{seq}");
    let mut reset_command = None;
    if step == Step::Pay {
        // Refuse before anything is sent to the machine; then unlock it (LP 94).
        ctx.handpays.check(&id, step).map_err(step_error)?;
        let new = crate::api::NewCommand {
            edge: edge.clone(),
            device: device.clone(),
            op: "handpay_reset".into(),
            args: None,
            deadline_seconds: None,
        };
        reset_command = Some(crate::api::issue(&ctx, by.clone(), new).await?.id);
    }
    let now = outpost_process::clock::unix_us();
    let (h, s) = ctx
        .handpays
        .take(&id, step, &by, &note.note, now, reset_command)
        .map_err(step_error)?;
    Ok(Json(handpay_view(&ctx.floor, &h, &s)).into_response())
}

/// An attendant verified the winner and the amount (role operator).
#[utoipa::path(
    post,
    path = "/api/v1/handpays/{edge}/{device}/{seq}/verify",
    tag = "accounting",
    params(("edge" = String, Path), ("device" = String, Path), ("seq" = u64, Path)),
    request_body = StepNote,
    responses(
        (status = 200, description = "Verified", body = HandpayView),
        (status = 404, description = "No such handpay", body = ErrorBody),
        (status = 409, description = "Not pending", body = ErrorBody),
    )
)]
pub async fn verify_handpay(
    State(ctx): State<Arc<ApiContext>>,
    headers: HeaderMap,
    Path(id): Path<(String, String, u64)>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    handpay_step(ctx, headers, id, body, crate::handpays::Step::Verify).await
}

/// A second person approves the payment (role supervisor; not the one who verified it).
#[utoipa::path(
    post,
    path = "/api/v1/handpays/{edge}/{device}/{seq}/approve",
    tag = "accounting",
    params(("edge" = String, Path), ("device" = String, Path), ("seq" = u64, Path)),
    request_body = StepNote,
    responses(
        (status = 200, description = "Approved", body = HandpayView),
        (status = 403, description = "The same person verified it, or the role is too low", body = ErrorBody),
        (status = 404, description = "No such handpay", body = ErrorBody),
        (status = 409, description = "Not verified yet", body = ErrorBody),
    )
)]
pub async fn approve_handpay(
    State(ctx): State<Arc<ApiContext>>,
    headers: HeaderMap,
    Path(id): Path<(String, String, u64)>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    handpay_step(ctx, headers, id, body, crate::handpays::Step::Approve).await
}

/// The handpay is paid: recorded, and the machine is reset (LP 94 through a `handpay_reset`
/// command) (role operator).
#[utoipa::path(
    post,
    path = "/api/v1/handpays/{edge}/{device}/{seq}/pay",
    tag = "accounting",
    params(("edge" = String, Path), ("device" = String, Path), ("seq" = u64, Path)),
    request_body = StepNote,
    responses(
        (status = 200, description = "Paid; the reset command is issued", body = HandpayView),
        (status = 404, description = "No such handpay", body = ErrorBody),
        (status = 409, description = "Not approved yet", body = ErrorBody),
    )
)]
pub async fn pay_handpay(
    State(ctx): State<Arc<ApiContext>>,
    headers: HeaderMap,
    Path(id): Path<(String, String, u64)>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    handpay_step(ctx, headers, id, body, crate::handpays::Step::Pay).await
}

// ---------------------------------------------------------------------------------------------
// Counted drop and variance

/// What was counted, next to what the meters say.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct VarianceView {
    pub edge: String,
    pub device: String,
    pub day: String,
    pub currency: String,
    /// The machine's metered drop for the day.
    pub metered_drop: String,
    /// The latest count, if the machine was counted.
    pub counted_drop: Option<String>,
    /// counted − metered.
    pub variance: Option<String>,
    /// variance / metered × 100, two decimals (absent without a count or a metered drop).
    pub variance_percent: Option<String>,
    /// Every entry, oldest first: the original count and each correction with why.
    pub trail: Vec<CountView>,
}

/// One entry of a count's trail.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CountView {
    pub amount: String,
    pub by: String,
    pub at: String,
    pub note: String,
}

/// A machine's metered drop for a gaming day (minor units) and the latest count's variance.
pub(crate) fn drop_variance(
    db: &sled::Db,
    floor: &Floor,
    counts: &crate::counts::Counts,
    edge: &str,
    device: &str,
    day: jiff::civil::Date,
) -> Result<(i128, Vec<crate::counts::CountEntry>), String> {
    let calendar = &floor.site_of(edge).calendar;
    let (start, end) = calendar.day_bounds(day);
    let total = Bucket::sum(&stored_buckets(db, edge, device, start, end)?);
    let terms = floor.terms(edge, device);
    let metered = accounting::figures(&total, terms.denomination, terms.par_bp).drop;
    let trail = counts
        .trail(edge, device, &day.to_string())
        .map_err(|e| e.to_string())?;
    Ok((metered, trail))
}

fn variance_view(
    floor: &Floor,
    edge: &str,
    device: &str,
    day: &str,
    metered: i128,
    trail: &[crate::counts::CountEntry],
) -> VarianceView {
    let counted = trail.last().map(|e| e.amount);
    let variance = counted.map(|c| c - metered);
    VarianceView {
        edge: edge.to_owned(),
        device: device.to_owned(),
        day: day.to_owned(),
        currency: floor.currency.code.clone(),
        metered_drop: floor.money(metered),
        counted_drop: counted.map(|c| floor.money(c)),
        variance: variance.map(|v| floor.money(v)),
        variance_percent: variance
            .filter(|_| metered != 0)
            .map(|v| percent(i64::try_from(v * 10_000 / metered).unwrap_or(i64::MAX))),
        trail: trail
            .iter()
            .map(|e| CountView {
                amount: floor.money(e.amount),
                by: e.by.clone(),
                at: time(e.at_us),
                note: e.note.clone(),
            })
            .collect(),
    }
}

/// A count, or a correction of one.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCount {
    /// What the count room found, e.g. "40.00".
    pub amount: String,
    /// Why, for a correction (required then; at most 500 characters).
    #[serde(default)]
    pub note: String,
}

/// Enter the counted drop of a machine's gaming day, or correct it; the original is kept
/// (role operator).
#[utoipa::path(
    post,
    path = "/api/v1/machines/{edge}/{device}/days/{day}/counted-drop",
    tag = "accounting",
    params(("edge" = String, Path), ("device" = String, Path), ("day" = String, Path)),
    request_body = NewCount,
    responses(
        (status = 201, description = "Stored; the variance against the meters", body = VarianceView),
        (status = 400, description = "Not an amount, a correction without a note, or not a date", body = ErrorBody),
        (status = 404, description = "Unknown edge or device, or not a slot machine", body = ErrorBody),
    )
)]
pub async fn enter_count(
    State(ctx): State<Arc<ApiContext>>,
    headers: HeaderMap,
    Path((edge, device, day)): Path<(String, String, String)>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let by = authorize(&ctx, &headers, Role::Operator)?;
    machine(&ctx, &edge, &device)?;
    let day = parse_gaming_day(&ctx, &edge, &day)?;
    let new: NewCount = serde_json::from_slice(&body).map_err(|e| {
        bad_request(format!(
            "body is not a count {{\"amount\": \"40.00\", \"note\": \"...\"}}: {e}"
        ))
    })?;
    if new.note.chars().count() > 500 {
        return Err(bad_request("note: at most 500 characters"));
    }
    let amount = ctx
        .floor
        .currency
        .parse(&new.amount, false)
        .map_err(|e| bad_request(format!("amount: {e}")))?;
    let entry = crate::counts::CountEntry {
        amount,
        by,
        at_us: outpost_process::clock::unix_us(),
        note: new.note,
    };
    ctx.counts
        .enter(&edge, &device, &day.to_string(), entry)
        .map_err(|e| match e {
            crate::counts::CountError::CorrectionWithoutReason(_) => bad_request(e.to_string()),
            other => store_error(other),
        })?;
    let (metered, trail) = drop_variance(&ctx.db, &ctx.floor, &ctx.counts, &edge, &device, day)
        .map_err(store_error)?;
    Ok((
        StatusCode::CREATED,
        Json(variance_view(
            &ctx.floor,
            &edge,
            &device,
            &day.to_string(),
            metered,
            &trail,
        )),
    )
        .into_response())
}

/// A machine's counted drop for a day with its trail and its variance against the meters (role
/// viewer).
#[utoipa::path(
    get,
    path = "/api/v1/machines/{edge}/{device}/days/{day}/counted-drop",
    tag = "accounting",
    params(("edge" = String, Path), ("device" = String, Path), ("day" = String, Path)),
    responses(
        (status = 200, description = "The count and its variance", body = VarianceView),
        (status = 404, description = "Unknown edge or device", body = ErrorBody),
    )
)]
pub async fn get_count(
    State(ctx): State<Arc<ApiContext>>,
    headers: HeaderMap,
    Path((edge, device, day)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    authorize(&ctx, &headers, Role::Viewer)?;
    machine(&ctx, &edge, &device)?;
    let day = parse_gaming_day(&ctx, &edge, &day)?;
    let (metered, trail) = drop_variance(&ctx.db, &ctx.floor, &ctx.counts, &edge, &device, day)
        .map_err(store_error)?;
    Ok(Json(variance_view(
        &ctx.floor,
        &edge,
        &device,
        &day.to_string(),
        metered,
        &trail,
    ))
    .into_response())
}

/// A site's drop variance for a gaming day.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct VarianceReport {
    pub site: String,
    pub day: String,
    pub currency: String,
    pub machines: Vec<VarianceView>,
    /// Over the machines that were counted.
    pub metered_drop: String,
    pub counted_drop: String,
    pub variance: String,
    pub variance_percent: Option<String>,
    /// Machines with no count yet.
    pub not_counted: usize,
}

/// The daily variance report: each machine's metered drop against its counted drop, in money and
/// percent, and the site's totals (`all` for every site; role viewer).
#[utoipa::path(
    get,
    path = "/api/v1/sites/{site}/days/{day}/variance",
    tag = "accounting",
    params(("site" = String, Path), ("day" = String, Path, description = "gaming day, e.g. 2026-11-30, or `today`")),
    responses(
        (status = 200, description = "The report", body = VarianceReport),
        (status = 400, description = "Not a date", body = ErrorBody),
        (status = 404, description = "Unknown site", body = ErrorBody),
    )
)]
pub async fn site_variance(
    State(ctx): State<Arc<ApiContext>>,
    headers: HeaderMap,
    Path((site, day)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    authorize(&ctx, &headers, Role::Viewer)?;
    let floor = &ctx.floor;
    if site != "all" && floor.site(&site).is_none() {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("no site {site} (or use all)"),
        ));
    }
    let day = if day == "today" {
        // `all` takes the calendar of edges no site lists.
        let calendar = &floor
            .site(&site)
            .unwrap_or_else(|| floor.site_of(""))
            .calendar;
        calendar.gaming_day(outpost_process::clock::unix_us())
    } else {
        parse_day(&day).map_err(|e| bad_request(e.to_string()))?
    };
    let mut machines = Vec::new();
    let (mut metered_total, mut counted_total, mut not_counted) = (0i128, 0i128, 0usize);
    for d in all_devices(&ctx)?
        .into_iter()
        .filter(|d| d.kind == "egm" && (site == "all" || d.site == site))
    {
        let (metered, trail) = drop_variance(&ctx.db, floor, &ctx.counts, &d.edge, &d.device, day)
            .map_err(store_error)?;
        match trail.last() {
            Some(count) => {
                metered_total += metered;
                counted_total += count.amount;
            }
            None => not_counted += 1,
        }
        machines.push(variance_view(
            floor,
            &d.edge,
            &d.device,
            &day.to_string(),
            metered,
            &trail,
        ));
    }
    let variance = counted_total - metered_total;
    Ok(Json(VarianceReport {
        site,
        day: day.to_string(),
        currency: floor.currency.code.clone(),
        machines,
        metered_drop: floor.money(metered_total),
        counted_drop: floor.money(counted_total),
        variance: floor.money(variance),
        variance_percent: (metered_total != 0)
            .then(|| percent(i64::try_from(variance * 10_000 / metered_total).unwrap_or(i64::MAX))),
        not_counted,
    })
    .into_response())
}

// ---------------------------------------------------------------------------------------------
// Player sessions

/// What a closed session added up to, from the meters.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SessionTotals {
    pub currency: String,
    pub coin_in: Option<String>,
    pub coin_out: Option<String>,
    pub jackpot: Option<String>,
    pub drop: Option<String>,
    /// coin in − coin out − jackpot, when all three are known.
    pub net_win: Option<String>,
    pub games_played: Option<u64>,
}

/// A player session.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SessionView {
    pub id: String,
    pub player: String,
    pub edge: String,
    pub device: String,
    /// `open` or `closed`.
    pub state: String,
    pub opened_by: String,
    pub opened: String,
    pub closed_by: Option<String>,
    pub closed: Option<String>,
    /// Present once closed; a meter that reset during the session has no total.
    pub totals: Option<SessionTotals>,
}

fn session_view(floor: &Floor, s: &crate::sessions::Session) -> SessionView {
    use crate::sessions::delta;
    let money = |credits: Option<u64>| {
        credits.map(|c| floor.money(floor.credits_to_minor(&s.edge, &s.device, u128::from(c))))
    };
    let totals = s.close_meters.as_ref().map(|_| {
        let (ci, co, jp) = (delta(s, 0x00), delta(s, 0x01), delta(s, 0x02));
        let net = match (ci, co, jp) {
            (Some(ci), Some(co), Some(jp)) => Some(
                floor.credits_to_minor(&s.edge, &s.device, u128::from(ci))
                    - floor.credits_to_minor(&s.edge, &s.device, u128::from(co))
                    - floor.credits_to_minor(&s.edge, &s.device, u128::from(jp)),
            ),
            _ => None,
        };
        SessionTotals {
            currency: floor.currency.code.clone(),
            coin_in: money(ci),
            coin_out: money(co),
            jackpot: money(jp),
            drop: money(delta(s, 0x24)),
            net_win: net.map(|n| floor.money(n)),
            games_played: delta(s, 0x05),
        }
    });
    SessionView {
        id: s.id.clone(),
        player: s.player.clone(),
        edge: s.edge.clone(),
        device: s.device.clone(),
        state: if s.closed_us.is_some() {
            "closed"
        } else {
            "open"
        }
        .into(),
        opened_by: s.opened_by.clone(),
        opened: time(s.opened_us),
        closed_by: s.closed_by.clone(),
        closed: s.closed_us.map(time),
        totals,
    }
}

fn session_error(e: crate::sessions::SessionError) -> ApiError {
    use crate::sessions::SessionError as E;
    match e {
        E::Busy(..) | E::NoReading(_) => ApiError(StatusCode::CONFLICT, e.to_string()),
        E::NoneOpen(_) | E::UnknownPlayer(_) => ApiError(StatusCode::NOT_FOUND, e.to_string()),
        E::Store(_) => store_error(e),
    }
}

/// A card bound to a machine.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Binding {
    /// The player's card id: 1 to 64 printable characters.
    pub player: String,
}

/// Bind a player's card to a machine: a session opens on the machine's latest meter reading
/// (role operator).
#[utoipa::path(
    post,
    path = "/api/v1/machines/{edge}/{device}/session",
    tag = "sessions",
    params(("edge" = String, Path), ("device" = String, Path)),
    request_body = Binding,
    responses(
        (status = 201, description = "Open", body = SessionView),
        (status = 400, description = "Not a card id", body = ErrorBody),
        (status = 404, description = "Unknown edge or device, or not a slot machine", body = ErrorBody),
        (status = 409, description = "A session is open on it, or it has no meter reading yet", body = ErrorBody),
    )
)]
pub async fn bind_player(
    State(ctx): State<Arc<ApiContext>>,
    headers: HeaderMap,
    Path((edge, device)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let by = authorize(&ctx, &headers, Role::Operator)?;
    machine(&ctx, &edge, &device)?;
    let binding: Binding = serde_json::from_slice(&body)
        .map_err(|e| bad_request(format!("body is not {{\"player\": \"<card id>\"}}: {e}")))?;
    let player = binding.player.trim();
    if player.is_empty() || player.chars().count() > 64 || player.chars().any(char::is_control) {
        return Err(bad_request(
            "player: a card id of 1 to 64 printable characters",
        ));
    }
    let session = ctx
        .player_sessions
        .bind(
            &edge,
            &device,
            player,
            &by,
            outpost_process::clock::unix_us(),
        )
        .map_err(session_error)?;
    Ok((
        StatusCode::CREATED,
        Json(session_view(&ctx.floor, &session)),
    )
        .into_response())
}

/// Close a machine's session (the card is out): its totals are the meters' increase (role
/// operator).
#[utoipa::path(
    post,
    path = "/api/v1/machines/{edge}/{device}/session/close",
    tag = "sessions",
    params(("edge" = String, Path), ("device" = String, Path)),
    responses(
        (status = 200, description = "Closed, with totals", body = SessionView),
        (status = 404, description = "No open session, or unknown machine", body = ErrorBody),
    )
)]
pub async fn close_session(
    State(ctx): State<Arc<ApiContext>>,
    headers: HeaderMap,
    Path((edge, device)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let by = authorize(&ctx, &headers, Role::Operator)?;
    machine(&ctx, &edge, &device)?;
    let session = ctx
        .player_sessions
        .close(&edge, &device, &by, outpost_process::clock::unix_us())
        .map_err(session_error)?;
    Ok(Json(session_view(&ctx.floor, &session)).into_response())
}

/// A machine's open session (role viewer).
#[utoipa::path(
    get,
    path = "/api/v1/machines/{edge}/{device}/session",
    tag = "sessions",
    params(("edge" = String, Path), ("device" = String, Path)),
    responses(
        (status = 200, description = "The open session", body = SessionView),
        (status = 404, description = "No open session, or unknown machine", body = ErrorBody),
    )
)]
pub async fn current_session(
    State(ctx): State<Arc<ApiContext>>,
    headers: HeaderMap,
    Path((edge, device)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    authorize(&ctx, &headers, Role::Viewer)?;
    machine(&ctx, &edge, &device)?;
    let current = match ctx
        .player_sessions
        .current(&edge, &device)
        .map_err(session_error)?
    {
        Some(s) => Some(s),
        // A session the machine opened itself (9E).
        None => ctx
            .player_sessions
            .machine_sessions(Some(&edge), Some(&device))
            .map_err(session_error)?
            .into_iter()
            .find(|s| s.closed_us.is_none()),
    };
    match current {
        Some(s) => Ok(Json(session_view(&ctx.floor, &s)).into_response()),
        None => Err(session_error(crate::sessions::SessionError::NoneOpen(
            format!("{edge}/{device}"),
        ))),
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SessionQuery {
    player: Option<String>,
    edge: Option<String>,
    device: Option<String>,
    /// At most this many (default 100, at most 1000).
    limit: Option<usize>,
}

/// Sessions, newest first (role viewer).
#[utoipa::path(
    get,
    path = "/api/v1/sessions",
    tag = "sessions",
    params(SessionQuery),
    responses((status = 200, description = "Sessions", body = Vec<SessionView>))
)]
pub async fn list_sessions(
    State(ctx): State<Arc<ApiContext>>,
    headers: HeaderMap,
    Query(q): Query<SessionQuery>,
) -> Result<Response, ApiError> {
    authorize(&ctx, &headers, Role::Viewer)?;
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let keep = |s: &crate::sessions::Session| {
        q.player.as_ref().is_none_or(|p| *p == s.player)
            && q.edge.as_ref().is_none_or(|e| *e == s.edge)
            && q.device.as_ref().is_none_or(|d| *d == s.device)
    };
    let mut sessions = ctx
        .player_sessions
        .list(keep, limit)
        .map_err(session_error)?;
    sessions.extend(
        ctx.player_sessions
            .machine_sessions(
                q.edge.as_deref(),
                q.edge.as_deref().and(q.device.as_deref()),
            )
            .map_err(session_error)?
            .into_iter()
            .filter(keep),
    );
    sessions.sort_by_key(|s| std::cmp::Reverse(s.opened_us));
    sessions.truncate(limit);
    let views: Vec<SessionView> = sessions
        .iter()
        .map(|s| session_view(&ctx.floor, s))
        .collect();
    Ok(Json(views).into_response())
}

/// A player's sessions, newest first (role viewer); 404 for a card never bound.
#[utoipa::path(
    get,
    path = "/api/v1/players/{player}/sessions",
    tag = "sessions",
    params(("player" = String, Path)),
    responses(
        (status = 200, description = "Sessions", body = Vec<SessionView>),
        (status = 404, description = "No session ever had this card", body = ErrorBody),
    )
)]
pub async fn player_sessions(
    State(ctx): State<Arc<ApiContext>>,
    headers: HeaderMap,
    Path(player): Path<String>,
) -> Result<Response, ApiError> {
    authorize(&ctx, &headers, Role::Viewer)?;
    let sessions = ctx
        .player_sessions
        .list(|s| s.player == player, 1000)
        .map_err(session_error)?;
    if sessions.is_empty() {
        return Err(session_error(crate::sessions::SessionError::UnknownPlayer(
            player,
        )));
    }
    let views: Vec<SessionView> = sessions
        .iter()
        .map(|s| session_view(&ctx.floor, s))
        .collect();
    Ok(Json(views).into_response())
}

// ---------------------------------------------------------------------------------------------
// Reconciliation for any window

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WindowQuery {
    /// Start (RFC 3339); the window starts at the beginning of the hour it falls in.
    from: String,
    /// End (RFC 3339), exclusive; at most 31 days after `from`.
    to: String,
}

/// A machine's figures and reconciliation over a window.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WindowReport {
    pub edge: String,
    pub device: String,
    /// The hours covered: intervals are filed by the hour of their closing meter reading.
    pub starts: String,
    pub ends: String,
    pub figures: FiguresView,
    pub reconciliation: ReconciliationView,
}

/// A machine's reconciliation for any window, on demand (role viewer).
#[utoipa::path(
    get,
    path = "/api/v1/machines/{edge}/{device}/reconciliation",
    tag = "accounting",
    params(("edge" = String, Path), ("device" = String, Path), WindowQuery),
    responses(
        (status = 200, description = "Figures and reconciliation over the window", body = WindowReport),
        (status = 400, description = "A time that does not read, or a window that is empty or longer than 31 days", body = ErrorBody),
        (status = 404, description = "Unknown edge or device, or not a slot machine", body = ErrorBody),
    )
)]
pub async fn machine_window(
    State(ctx): State<Arc<ApiContext>>,
    headers: HeaderMap,
    Path((edge, device)): Path<(String, String)>,
    Query(q): Query<WindowQuery>,
) -> Result<Response, ApiError> {
    authorize(&ctx, &headers, Role::Viewer)?;
    machine(&ctx, &edge, &device)?;
    let from = parse_rfc3339(&q.from).map_err(|e| bad_request(format!("from: {e}")))?;
    let to = parse_rfc3339(&q.to).map_err(|e| bad_request(format!("to: {e}")))?;
    const MAX_WINDOW_US: i64 = 31 * 24 * 3_600_000_000;
    if to <= from || to - from > MAX_WINDOW_US {
        return Err(bad_request(
            "from must be before to, and the window at most 31 days",
        ));
    }
    let floor = &ctx.floor;
    let calendar = &floor.site_of(&edge).calendar;
    let start = calendar.hour_start(from);
    let total = Bucket::sum(&buckets(&ctx, &edge, &device, start, to)?);
    let terms = floor.terms(&edge, &device);
    let rec = accounting::reconcile(&total, terms.denomination, floor.currency.minor_per_major());
    Ok(Json(WindowReport {
        edge: edge.clone(),
        device: device.clone(),
        starts: calendar.rfc3339(start),
        ends: calendar.rfc3339(to),
        figures: figures_view(floor, &total, terms.denomination, terms.par_bp),
        reconciliation: reconciliation_view(floor, &rec),
    })
    .into_response())
}
