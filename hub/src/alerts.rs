//! Alerts at the hub: the rules of `[alerts]` evaluated against the floor's state, alerts kept,
//! published to the live stream and to webhooks, listed and acknowledged through the API.
//!
//! On disk (sled trees of the hub database): `alerts`: `a ++ n (u64 BE)` → [`Alert`] (JSON), `n`
//! → the last alert number; `alert_webhooks`: `webhook index (u16 BE) ++ delivery id (u64 BE)` →
//! the body to deliver, removed once the webhook answered 2xx.
//!
//! Invariants: an alert is stored before it is published or queued for a webhook; a webhook
//! delivery is retried (backoff doubling to `webhook_retry_max_ms`) until it is accepted and
//! survives a restart; deliveries to one webhook go in order; every body is signed
//! (`X-Outpost-Signature: sha256=<hex HMAC-SHA256 of the body, keyed with the webhook's secret>`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hmac::{Hmac, Mac};
use outpost_actors::{ChildSpec, OwnedTask, Restart};
use outpost_config::{AlertsConfig, WebhookConfig, parse_open_hours};
use outpost_domain::accounting;
use outpost_domain::alerts::{
    Alert, AlertBook, Discrepancy, EdgeFact, Facts, Rule, Transition, evaluate,
};
use outpost_domain::money::Currency;
use outpost_domain::site::Floor;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use sha2::Sha256;

use crate::edges::EdgeDirectory;
use crate::link::Sessions;
use crate::metrics;
use crate::stream::LiveStream;

/// The rules of `config` in the domain's terms.
pub fn rules(config: &AlertsConfig, currency: &Currency) -> Vec<Rule> {
    config
        .rules
        .iter()
        .filter_map(|r| {
            let after_s = r
                .after_seconds
                .unwrap_or(r.after_minutes.unwrap_or(0).saturating_mul(60))
                as i64;
            Some(match r.rule.as_str() {
                "door_open_out_of_hours" => {
                    let (open_min, close_min) = parse_open_hours(r.open_hours.as_deref()?)?;
                    Rule::DoorOpenOutOfHours {
                        open_min,
                        close_min,
                    }
                }
                "handpay_pending" => Rule::HandpayPending { after_s },
                "comms_lost" => Rule::CommsLost { after_s },
                "reconciliation_discrepancy" => Rule::ReconciliationDiscrepancy {
                    threshold: currency.parse(r.threshold.as_deref()?, false).ok()?,
                },
                "tv_down" => Rule::TvDown { after_s },
                "healing_exhausted" => Rule::HealingExhausted,
                "hikcentral_database_full" => Rule::HikcentralDatabaseFull,
                "edge_offline" => Rule::EdgeOffline { after_s },
                "outbox_oldest_unacked" => Rule::OutboxOldestUnacked { after_s },
                "drop_variance" => Rule::DropVariance {
                    threshold: currency.parse(r.threshold.as_deref()?, false).ok()?,
                },
                _ => return None,
            })
        })
        .collect()
}

/// Why an alert operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    #[error("no alert {0}")]
    Unknown(String),
    #[error("alert {id} was acknowledged by {by} already")]
    Acknowledged { id: String, by: String },
    #[error("alert store: {0}")]
    Store(String),
}

impl From<sled::Error> for AlertError {
    fn from(e: sled::Error) -> Self {
        AlertError::Store(e.to_string())
    }
}

/// The tree holding the alerts (the MSSQL sink watches it).
pub(crate) const TREE: &str = "alerts";

/// The alerts: the book of firing ones, the store of all, and the webhook queue.
pub struct Alerts {
    book: Mutex<AlertBook>,
    tree: sled::Tree,
    outbox: sled::Tree,
    db: sled::Db,
    stream: Arc<LiveStream>,
    webhooks: Vec<WebhookConfig>,
    wake: tokio::sync::Notify,
}

impl std::fmt::Debug for Alerts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Alerts").finish_non_exhaustive()
    }
}

fn alert_key(id: &str) -> Option<Vec<u8>> {
    let n: u64 = id.strip_prefix("alert-")?.parse().ok()?;
    Some([&b"a"[..], &n.to_be_bytes()].concat())
}

impl Alerts {
    /// Opens the store and restores the firing alerts.
    pub fn open(
        db: &sled::Db,
        stream: Arc<LiveStream>,
        webhooks: Vec<WebhookConfig>,
    ) -> Result<Self, AlertError> {
        let tree = db.open_tree(TREE)?;
        let outbox = db.open_tree("alert_webhooks")?;
        let next = tree
            .get(b"n")?
            .and_then(|v| v.as_ref().try_into().ok().map(u64::from_be_bytes))
            .unwrap_or(0);
        let mut firing = Vec::new();
        for entry in tree.scan_prefix(b"a") {
            let (_, value) = entry?;
            let alert: Alert =
                serde_json::from_slice(&value).map_err(|e| AlertError::Store(e.to_string()))?;
            if alert.state == "firing" {
                metrics::ALERTS_FIRING
                    .with_label_values(&[&alert.rule, &alert.site, &alert.device])
                    .set(1);
                firing.push(alert);
            }
        }
        Ok(Self {
            book: Mutex::new(AlertBook::restore(firing, next)),
            tree,
            outbox,
            db: db.clone(),
            stream,
            webhooks,
            wake: tokio::sync::Notify::new(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, AlertBook> {
        self.book.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stores, publishes and queues one alert as it is now.
    fn record(&self, alert: &Alert, what: &str, next: u64) -> Result<(), AlertError> {
        let key = alert_key(&alert.id).ok_or_else(|| AlertError::Unknown(alert.id.clone()))?;
        let body = serde_json::json!({ "what": what, "alert": alert_view(alert) });
        let bytes = serde_json::to_vec(alert).map_err(|e| AlertError::Store(e.to_string()))?;
        let mut batch = sled::Batch::default();
        batch.insert(key, bytes);
        batch.insert(&b"n"[..], &next.to_be_bytes());
        self.tree.apply_batch(batch)?;
        let body = serde_json::to_vec(&body).map_err(|e| AlertError::Store(e.to_string()))?;
        for index in 0..self.webhooks.len() {
            let id = self.db.generate_id()?;
            let key = [&(index as u16).to_be_bytes()[..], &id.to_be_bytes()].concat();
            self.outbox.insert(key, body.as_slice())?;
        }
        self.db.flush()?;
        self.wake.notify_waiters();
        self.stream.publish(
            "alert",
            &alert.edge,
            &alert.device,
            what,
            &alert_view(alert),
        );
        Ok(())
    }

    /// Applies the conditions found now.
    fn apply(
        &self,
        conditions: Vec<outpost_domain::alerts::Condition>,
        floor: &Floor,
        now_us: i64,
    ) -> Result<(), AlertError> {
        let mut book = self.lock();
        let transitions = book.update(conditions, |edge| floor.site_of(edge).id.clone(), now_us);
        let next = book.next_id();
        for t in transitions {
            match t {
                Transition::Fired(alert) => {
                    tracing::warn!(alert = %alert.id, rule = %alert.rule, edge = %alert.edge, device = %alert.device, detail = %alert.detail, "alert firing");
                    metrics::ALERTS_FIRING
                        .with_label_values(&[&alert.rule, &alert.site, &alert.device])
                        .set(1);
                    self.record(&alert, "fired", next)?;
                }
                Transition::Resolved(alert) => {
                    tracing::info!(alert = %alert.id, rule = %alert.rule, edge = %alert.edge, device = %alert.device, "alert resolved");
                    metrics::ALERTS_FIRING
                        .with_label_values(&[&alert.rule, &alert.site, &alert.device])
                        .set(0);
                    self.record(&alert, "resolved", next)?;
                }
            }
        }
        Ok(())
    }

    /// Alerts newest first, matching `keep`, at most `limit`.
    pub fn list(
        &self,
        keep: impl Fn(&Alert) -> bool,
        limit: usize,
    ) -> Result<Vec<Alert>, AlertError> {
        let mut out = Vec::new();
        for entry in self.tree.scan_prefix(b"a").rev() {
            let (_, value) = entry?;
            let alert: Alert =
                serde_json::from_slice(&value).map_err(|e| AlertError::Store(e.to_string()))?;
            if keep(&alert) {
                out.push(alert);
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Acknowledges alert `id` on behalf of `by` (audited: logged, stored with the alert,
    /// published and sent to the webhooks).
    pub fn acknowledge(
        &self,
        id: &str,
        by: &str,
        note: &str,
        now_us: i64,
    ) -> Result<Alert, AlertError> {
        let key = alert_key(id).ok_or_else(|| AlertError::Unknown(id.to_owned()))?;
        let mut book = self.lock();
        let stored = self
            .tree
            .get(&key)?
            .ok_or_else(|| AlertError::Unknown(id.to_owned()))?;
        let mut alert: Alert =
            serde_json::from_slice(&stored).map_err(|e| AlertError::Store(e.to_string()))?;
        if let Some(by) = alert.acknowledged_by {
            return Err(AlertError::Acknowledged {
                id: id.to_owned(),
                by,
            });
        }
        alert = match book.acknowledge(id, by, note, now_us) {
            Some(firing) => firing,
            None => {
                alert.acknowledged_by = Some(by.to_owned());
                alert.acknowledged_us = Some(now_us);
                alert.acknowledged_note = Some(note.to_owned());
                alert
            }
        };
        let next = book.next_id();
        self.record(&alert, "acknowledged", next)?;
        tracing::info!(alert = %id, by, note, "alert acknowledged");
        Ok(alert)
    }

    /// Deliveries waiting for webhook `index`.
    fn first_delivery(&self, index: usize) -> Result<Option<(sled::IVec, sled::IVec)>, AlertError> {
        Ok(self
            .outbox
            .scan_prefix((index as u16).to_be_bytes())
            .next()
            .transpose()?)
    }
}

/// An alert as the API, the stream and webhooks show it.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct AlertView {
    pub id: String,
    /// The rule's name (`comms_lost`, `handpay_pending`, …).
    pub rule: String,
    pub site: String,
    pub edge: String,
    pub device: String,
    pub detail: String,
    /// `firing` or `resolved`.
    pub state: String,
    pub fired: String,
    pub resolved: Option<String>,
    pub acknowledged_by: Option<String>,
    pub acknowledged: Option<String>,
    pub acknowledged_note: Option<String>,
}

pub fn alert_view(a: &Alert) -> AlertView {
    use outpost_domain::calendar::rfc3339_utc;
    AlertView {
        id: a.id.clone(),
        rule: a.rule.clone(),
        site: a.site.clone(),
        edge: a.edge.clone(),
        device: a.device.clone(),
        detail: a.detail.clone(),
        state: a.state.clone(),
        fired: rfc3339_utc(a.fired_us),
        resolved: a.resolved_us.map(rfc3339_utc),
        acknowledged_by: a.acknowledged_by.clone(),
        acknowledged: a.acknowledged_us.map(rfc3339_utc),
        acknowledged_note: a.acknowledged_note.clone(),
    }
}

/// `sha256=<hex>` of `body` keyed with `secret`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(mac) => mac,
        // HMAC takes a key of any length; this cannot happen.
        Err(_) => return String::new(),
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// What the evaluator needs.
#[derive(Clone)]
pub struct AlertArgs {
    pub alerts: Arc<Alerts>,
    pub config: AlertsConfig,
    pub floor: Floor,
    pub edges: EdgeDirectory,
    pub sessions: Arc<Sessions>,
    pub visits: Option<crate::hikcentral::Visits>,
    pub counts: Arc<crate::counts::Counts>,
    /// Every device's state, as the devices projection keeps it.
    pub device_states: outpost_domain::projection::SharedStates,
}

impl AlertArgs {
    pub fn child_spec(self) -> ChildSpec {
        ChildSpec::new("alerts", move || (AlertActor, self.clone())).restart(Restart::Permanent)
    }
}

/// Evaluates the rules on a period and delivers to the webhooks.
pub struct AlertActor;

pub struct AlertState {
    _tasks: Vec<OwnedTask>,
}

impl Actor for AlertActor {
    type Msg = ();
    type State = AlertState;
    type Arguments = AlertArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        let mut tasks = Vec::new();
        let rules = rules(&args.config, &args.floor.currency);
        let evaluator = args.clone();
        tasks.push(OwnedTask::ending_owner(myself.clone(), async move {
            let mut offline_since: BTreeMap<String, i64> = BTreeMap::new();
            let every = Duration::from_millis(evaluator.config.evaluate_every_ms);
            loop {
                let now = outpost_process::clock::unix_us();
                let args = evaluator.clone();
                let rules = rules.clone();
                let mut since = std::mem::take(&mut offline_since);
                let done = tokio::task::spawn_blocking(move || {
                    let result = evaluate_once(&args, &rules, &mut since, now);
                    (since, result)
                })
                .await;
                match done {
                    Ok((since, result)) => {
                        offline_since = since;
                        if let Err(err) = result {
                            tracing::error!(%err, "alert evaluation failed; trying again");
                        }
                    }
                    Err(err) => return Some(format!("alert evaluation: {err}")),
                }
                tokio::time::sleep(every).await;
            }
        }));
        for index in 0..args.alerts.webhooks.len() {
            let alerts = args.alerts.clone();
            let retry_max = Duration::from_millis(args.config.webhook_retry_max_ms);
            tasks.push(OwnedTask::ending_owner(myself.clone(), async move {
                deliver(alerts, index, retry_max).await
            }));
        }
        Ok(AlertState { _tasks: tasks })
    }
}

fn evaluate_once(
    args: &AlertArgs,
    rules: &[Rule],
    offline_since: &mut BTreeMap<String, i64>,
    now: i64,
) -> Result<(), AlertError> {
    let db = &args.alerts.db;
    let states: Vec<_> = args
        .device_states
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .values()
        .cloned()
        .collect();
    let connected = args.sessions.connected();
    let edges: Vec<EdgeFact> = args
        .edges
        .all()
        .into_iter()
        .map(|e| {
            let up = connected.contains(&e.id);
            let since = if up {
                offline_since.remove(&e.id);
                None
            } else {
                Some(*offline_since.entry(e.id.clone()).or_insert(now))
            };
            let oldest_unacked_ms = args
                .sessions
                .status(&e.id)
                .map(|(s, _)| s.oldest_unacked_ms);
            EdgeFact {
                id: e.id,
                connected: up,
                last_seen_us: since,
                oldest_unacked_ms,
            }
        })
        .collect();
    let wants_reconciliation = rules
        .iter()
        .any(|r| matches!(r, Rule::ReconciliationDiscrepancy { .. }));
    let mut discrepancies = Vec::new();
    if wants_reconciliation {
        for s in states.iter().filter(|s| s.egm.is_some()) {
            let calendar = &args.floor.site_of(&s.edge).calendar;
            let (start, end) = calendar.day_bounds(calendar.gaming_day(now));
            let day = accounting::Bucket::sum(
                &crate::floor_api::stored_buckets(db, &s.edge, &s.device, start, end)
                    .map_err(AlertError::Store)?,
            );
            let terms = args.floor.terms(&s.edge, &s.device);
            let rec = accounting::reconcile(
                &day,
                terms.denomination,
                args.floor.currency.minor_per_major(),
            );
            if let Some(worst) = rec
                .checks
                .iter()
                .filter(|c| c.verdict == accounting::Verdict::Discrepancy)
                .max_by_key(|c| c.difference().abs())
            {
                discrepancies.push(Discrepancy {
                    edge: s.edge.clone(),
                    device: s.device.clone(),
                    largest: worst.difference(),
                    check: worst.name.clone(),
                });
            }
        }
    }
    let mut drop_variances = Vec::new();
    if rules.iter().any(|r| matches!(r, Rule::DropVariance { .. })) {
        for s in states.iter().filter(|s| s.egm.is_some()) {
            let calendar = &args.floor.site_of(&s.edge).calendar;
            let today = calendar.gaming_day(now);
            for day in [today.yesterday().unwrap_or(today), today] {
                let (metered, trail) = crate::floor_api::drop_variance(
                    db,
                    &args.floor,
                    &args.counts,
                    &s.edge,
                    &s.device,
                    day,
                )
                .map_err(AlertError::Store)?;
                if let Some(count) = trail.last() {
                    drop_variances.push(Discrepancy {
                        edge: s.edge.clone(),
                        device: s.device.clone(),
                        largest: count.amount - metered,
                        check: day.to_string(),
                    });
                }
            }
        }
    }
    let local_minute = args
        .edges
        .all()
        .into_iter()
        .map(|e| {
            let minute = args.floor.site_of(&e.id).calendar.local_minute(now);
            (e.id, minute)
        })
        .collect();
    let facts = Facts {
        devices: states.iter().collect(),
        edges,
        discrepancies,
        drop_variances,
        currency: Some(args.floor.currency.clone()),
        hikcentral_database_full: args.visits.as_ref().is_some_and(|v| v.breaker_open()),
        local_minute,
    };
    let conditions = evaluate(rules, &facts, now);
    args.alerts.apply(conditions, &args.floor, now)
}

fn webhook_client() -> Result<reqwest::Client, String> {
    let mut roots = rustls::RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    for cert in found.certs {
        let _ = roots.add(cert);
    }
    let tls = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(15))
        .build()
        .map_err(|e| e.to_string())
}

/// Delivers webhook `index`'s queue, in order, until the hub stops.
async fn deliver(alerts: Arc<Alerts>, index: usize, retry_max: Duration) -> Option<String> {
    let webhook = alerts.webhooks.get(index)?.clone();
    let client = match webhook_client() {
        Ok(client) => client,
        Err(err) => return Some(format!("webhook {}: {err}", webhook.url)),
    };
    let mut backoff = Duration::from_secs(1);
    loop {
        let next = match alerts.first_delivery(index) {
            Ok(next) => next,
            Err(err) => return Some(format!("webhook queue: {err}")),
        };
        let Some((key, body)) = next else {
            tokio::select! {
                () = alerts.wake.notified() => {}
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            continue;
        };
        let sent = client
            .post(&webhook.url)
            .header("Content-Type", "application/json")
            .header("X-Outpost-Signature", signature(&webhook.secret, &body))
            .body(body.to_vec())
            .send()
            .await;
        match sent {
            Ok(response) if response.status().is_success() => {
                metrics::WEBHOOK_DELIVERIES.with_label_values(&["ok"]).inc();
                if let Err(err) = alerts.outbox.remove(&key) {
                    return Some(format!("webhook queue: {err}"));
                }
                backoff = Duration::from_secs(1);
            }
            outcome => {
                let why = match outcome {
                    Ok(response) => format!("answered {}", response.status()),
                    Err(err) => err.to_string(),
                };
                metrics::WEBHOOK_DELIVERIES
                    .with_label_values(&["failed"])
                    .inc();
                tracing::warn!(url = %webhook.url, %why, retry_in_ms = backoff.as_millis() as u64, "alert webhook delivery failed; will retry");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(retry_max);
            }
        }
    }
}
