//! The configuration types of each binary, and the sections they share.
//!
//! Every struct denies nothing by itself: unknown keys are found by the loader (so that all of
//! them are reported, with locations), and ranges are checked in [`ConfigFile::validate`].

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use crate::{ConfigFile, Validation};

/// `outpost-edge` configuration.
#[derive(Debug, Clone, Deserialize)]
pub struct EdgeConfig {
    pub edge: EdgeSection,
    pub outbox: OutboxConfig,
    pub uplink: UplinkConfig,
    pub admin: AdminConfig,
    pub log: LogConfig,
    pub supervision: SupervisionConfig,
    #[serde(default)]
    pub devices: Vec<DeviceConfig>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct OutboxConfig {
    pub budget_bytes: u64,
    pub max_batch: usize,
    pub compact_above_bytes: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct UplinkConfig {
    pub hub: SocketAddr,
    pub server_name: String,
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub reconnect_initial_ms: u64,
    pub reconnect_max_ms: u64,
    pub batch_max_events: usize,
    pub window_events: u64,
    pub keepalive_ms: u64,
    pub idle_timeout_ms: u64,
    pub dead_after_ms: u64,
}

/// One device the edge supervises.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum DeviceConfig {
    Synthetic(SyntheticDeviceConfig),
    /// A SAS line (one serial port, TCP converter or pty) and the slot machines on it.
    #[serde(rename = "sas_line")]
    SasLine(SasLineConfig),
    /// An Android TV reached over ADB (TCP).
    Tv(TvConfig),
    /// A power relay (GPIO line, HTTP relay board, or in memory).
    Relay(RelayConfig),
}

impl DeviceConfig {
    /// Deserializes one device's table (without `kind`) as its kind's config, where serde can say
    /// where inside it a problem is; `(dotted path inside the table, message)`.
    fn explain_as<C: serde::de::DeserializeOwned>(table: toml::Table) -> Option<(String, String)> {
        let Err(err) = serde_path_to_error::deserialize::<_, C>(toml::Value::Table(table)) else {
            return None;
        };
        let mut path: Vec<String> = err
            .path()
            .iter()
            .filter_map(|segment| match segment {
                serde_path_to_error::Segment::Seq { index } => Some(index.to_string()),
                serde_path_to_error::Segment::Map { key } => Some(key.clone()),
                _ => None,
            })
            .collect();
        let message = err.inner().message().trim_end().to_owned();
        // serde names an unknown field in its message, at the table that holds it.
        if let Some(field) = message
            .strip_prefix("unknown field `")
            .and_then(|rest| rest.split('`').next())
            .filter(|field| path.last().map(String::as_str) != Some(*field))
        {
            path.push(field.to_owned());
        }
        (!path.is_empty()).then(|| (path.join("."), message))
    }
}

fn default_telemetry_interval_ms() -> u64 {
    5000
}
fn default_op_timeout_ms() -> u64 {
    5000
}
fn default_player_app() -> String {
    "com.metro.signage".into()
}
fn default_true() -> bool {
    true
}

/// An Android TV.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TvConfig {
    pub id: String,
    /// `host:port` of the TV's ADB over TCP (usually port 5555).
    pub address: SocketAddr,
    #[serde(default = "default_telemetry_interval_ms")]
    pub telemetry_interval_ms: u64,
    /// Longest wait for any ADB answer.
    #[serde(default = "default_op_timeout_ms")]
    pub op_timeout_ms: u64,
    /// The app that should be in front; its absence counts as unhealthy.
    #[serde(default = "default_player_app")]
    pub player_app: String,
    /// The relay (a `relay` device of this edge) that powers the TV.
    #[serde(default)]
    pub relay: Option<String>,
    /// The board's network interface whose link telemetry reports (`/sys/class/net/<it>`).
    #[serde(default)]
    pub ethernet_interface: Option<String>,
    #[serde(default)]
    pub recovery: RecoveryConfig,
}

/// The self-healing ladder: reconnect → restart the player app → reboot → power-cycle.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecoveryConfig {
    pub enabled: bool,
    /// Consecutive unhealthy checks before the first step.
    pub unhealthy_checks: u32,
    pub reconnect_wait_ms: u64,
    pub restart_app_wait_ms: u64,
    pub reboot_wait_ms: u64,
    pub power_cycle_wait_ms: u64,
    /// After the last step the ladder starts over, pausing this long, doubled each round.
    pub round_pause_ms: u64,
    pub round_pause_max_ms: u64,
}

impl Default for RecoveryConfig {
    fn default() -> Self {
        RecoveryConfig {
            enabled: true,
            unhealthy_checks: 2,
            reconnect_wait_ms: 5_000,
            restart_app_wait_ms: 15_000,
            reboot_wait_ms: 90_000,
            power_cycle_wait_ms: 120_000,
            round_pause_ms: 300_000,
            round_pause_max_ms: 3_600_000,
        }
    }
}

/// How a relay is driven.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RelayBankKind {
    /// A GPIO line through the kernel's character device (v2 uAPI).
    Gpio,
    /// A network relay with an HTTP endpoint: `POST url {"on": bool}`.
    Http,
    /// In memory (no hardware; tests and dry runs).
    Memory,
}

fn default_min_off_ms() -> u64 {
    3000
}

/// A power relay.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelayConfig {
    pub id: String,
    pub bank: RelayBankKind,
    /// GPIO: the chip (`/dev/gpiochip0`) and line offset.
    #[serde(default)]
    pub chip: Option<PathBuf>,
    #[serde(default)]
    pub line: Option<u32>,
    /// GPIO: the relay closes when the line is low.
    #[serde(default)]
    pub active_low: bool,
    /// HTTP: where to POST `{"on": bool}`.
    #[serde(default)]
    pub url: Option<String>,
    /// A power-cycle keeps the power off at least this long, and "on" never follows "off"
    /// sooner (power supplies and TVs need the rest).
    #[serde(default = "default_min_off_ms")]
    pub min_off_ms: u64,
    /// The state it is put in at start.
    #[serde(default = "default_true")]
    pub initially_on: bool,
}

impl DeviceConfig {
    pub fn id(&self) -> &str {
        match self {
            DeviceConfig::Synthetic(d) => &d.id,
            DeviceConfig::SasLine(d) => &d.id,
            DeviceConfig::Tv(d) => &d.id,
            DeviceConfig::Relay(d) => &d.id,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            DeviceConfig::Synthetic(_) => "synthetic",
            DeviceConfig::SasLine(_) => "sas_line",
            DeviceConfig::Tv(_) => "tv",
            DeviceConfig::Relay(_) => "relay",
        }
    }

    /// The devices this entry puts on the edge (a SAS line is one device per EGM), as
    /// `(id, kind)`.
    pub fn devices(&self) -> Vec<(String, &'static str)> {
        match self {
            DeviceConfig::Synthetic(d) => vec![(d.id.clone(), "synthetic")],
            DeviceConfig::SasLine(line) => {
                line.egms.iter().map(|e| (e.id.clone(), "egm")).collect()
            }
            DeviceConfig::Tv(d) => vec![(d.id.clone(), "tv")],
            DeviceConfig::Relay(d) => vec![(d.id.clone(), "relay")],
        }
    }
}

/// How a SAS line is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SasTransport {
    /// A tty (`path`) with real mark/space parity for the wake-up bit.
    Serial,
    /// A pty (`path`), the wake-up bit in the marked test encoding.
    Pty,
    /// A serial-over-IP converter (`connect`), the wake-up bit in the marked encoding.
    Tcp,
}

/// How the wake-up bit travels, when not the transport's default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SasWakeup {
    /// Real mark/space parity on a tty.
    Parity,
    /// `FF 00 b` for a byte with the bit, `FF FF` for a literal `FF` (pty, TCP).
    Marked,
    /// Not sent at all; the EGM must frame by length (lenient).
    None,
}

/// One SAS line.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SasLineConfig {
    pub id: String,
    pub transport: SasTransport,
    #[serde(default)]
    pub path: Option<PathBuf>,
    #[serde(default)]
    pub connect: Option<SocketAddr>,
    #[serde(default)]
    pub wakeup: Option<SasWakeup>,
    /// Least time between two polls of one EGM.
    #[serde(default = "default_poll_interval_ms")]
    pub poll_interval_ms: u64,
    /// How long to wait for the first byte of a reply.
    #[serde(default = "default_reply_timeout_ms")]
    pub reply_timeout_ms: u64,
    /// Meters (LP 2F) are read this often, and after every link-up.
    #[serde(default = "default_meter_interval_ms")]
    pub meter_interval_ms: u64,
    /// How often each game's meters are read (LP 2F per game, machines with 2 or more games);
    /// 0: never.
    #[serde(default = "default_game_meter_interval_ms")]
    pub game_meter_interval_ms: u64,
    pub egms: Vec<EgmConfig>,
}

fn default_poll_interval_ms() -> u64 {
    200
}
fn default_reply_timeout_ms() -> u64 {
    40
}
fn default_meter_interval_ms() -> u64 {
    10_000
}
fn default_game_meter_interval_ms() -> u64 {
    900_000
}

impl SasLineConfig {
    /// The wake-up encoding in effect: the configured one or the transport's default.
    pub fn wakeup(&self) -> SasWakeup {
        self.wakeup.unwrap_or(match self.transport {
            SasTransport::Serial => SasWakeup::Parity,
            SasTransport::Pty | SasTransport::Tcp => SasWakeup::Marked,
        })
    }
}

/// One slot machine on a SAS line.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EgmConfig {
    pub id: String,
    /// SAS address, 1-127.
    pub address: u8,
    /// Ask for real-time event reporting (LP 0E) once the EGM answers.
    #[serde(default)]
    pub real_time_events: bool,
}

/// Smallest `outbox.compact_above_bytes`: below it an outbox under steady load would compact
/// (restart) every few seconds.
pub const MIN_COMPACT_ABOVE_BYTES: u64 = 16 * 1024 * 1024;

/// Largest payload of a synthetic device's events: with its envelope an event stays under the
/// 4 KiB an event may have.
pub const MAX_SYNTHETIC_PAYLOAD_BYTES: usize = 3584;

/// A device that emits events at a rate: the whole delivery path, and load, without hardware.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyntheticDeviceConfig {
    pub id: String,
    pub rate_per_second: f64,
    pub payload_bytes: usize,
    pub class: EventClassConfig,
    #[serde(default)]
    pub count: u64,
}

/// Event class as written in config files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventClassConfig {
    Money,
    Audit,
    Telemetry,
}

#[derive(Debug, Clone, Deserialize)]
pub struct EdgeSection {
    pub id: String,
    pub data_dir: PathBuf,
}

/// `outpost-hub` configuration.
#[derive(Debug, Clone, Deserialize)]
pub struct HubConfig {
    pub hub: HubSection,
    pub pki: PkiConfig,
    pub link: LinkConfig,
    pub api: ApiConfig,
    pub admin: AdminConfig,
    pub log: LogConfig,
    pub supervision: SupervisionConfig,
    pub hikcentral: HikCentralConfig,
    pub mssql: MssqlConfig,
    /// Hubs that share a chain's edges (`[cluster]`); empty: this hub alone, owning every edge.
    #[serde(default)]
    pub cluster: ClusterConfig,
    pub accounting: AccountingConfig,
    #[serde(default)]
    pub sites: Vec<SiteConfig>,
    #[serde(default)]
    pub machines: Vec<MachineConfig>,
    /// Tags on devices, for filtering the floor (`[[device_tags]]`).
    #[serde(default)]
    pub device_tags: Vec<DeviceTagsConfig>,
    pub alerts: AlertsConfig,
}

/// Tags of one device (`[[device_tags]]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceTagsConfig {
    pub edge: String,
    pub device: String,
    pub tags: Vec<String>,
}

/// Alert rules and where alerts go (`[alerts]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    pub evaluate_every_ms: u64,
    pub webhook_retry_max_ms: u64,
    #[serde(default = "default_alert_rules")]
    pub rules: Vec<AlertRuleConfig>,
    #[serde(default)]
    pub webhooks: Vec<WebhookConfig>,
}

/// One rule (`[[alerts.rules]]`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertRuleConfig {
    pub rule: String,
    pub after_minutes: Option<u64>,
    /// Instead of `after_minutes`, for short delays.
    pub after_seconds: Option<u64>,
    /// Money (a decimal string) for reconciliation_discrepancy.
    pub threshold: Option<String>,
    /// `HH:MM-HH:MM`, local, for door_open_out_of_hours.
    pub open_hours: Option<String>,
}

/// The rules that need a delay.
pub const ALERT_RULES_WITH_DELAY: [&str; 5] = [
    "handpay_pending",
    "comms_lost",
    "tv_down",
    "edge_offline",
    "outbox_oldest_unacked",
];
/// Every rule.
pub const ALERT_RULES: [&str; 10] = [
    "drop_variance",
    "outbox_oldest_unacked",
    "door_open_out_of_hours",
    "handpay_pending",
    "comms_lost",
    "reconciliation_discrepancy",
    "tv_down",
    "healing_exhausted",
    "hikcentral_database_full",
    "edge_offline",
];

fn default_alert_rules() -> Vec<AlertRuleConfig> {
    let rule = |name: &str, minutes: Option<u64>| AlertRuleConfig {
        rule: name.into(),
        after_minutes: minutes,
        ..AlertRuleConfig::default()
    };
    vec![
        rule("comms_lost", Some(5)),
        rule("handpay_pending", Some(10)),
        rule("tv_down", Some(5)),
        rule("healing_exhausted", None),
        rule("edge_offline", Some(5)),
        rule("hikcentral_database_full", None),
        AlertRuleConfig {
            rule: "drop_variance".into(),
            threshold: Some("20.00".into()),
            ..AlertRuleConfig::default()
        },
        AlertRuleConfig {
            rule: "outbox_oldest_unacked".into(),
            after_seconds: Some(300),
            ..AlertRuleConfig::default()
        },
        AlertRuleConfig {
            rule: "reconciliation_discrepancy".into(),
            threshold: Some("10.00".into()),
            ..AlertRuleConfig::default()
        },
    ]
}

/// `HH:MM-HH:MM` as minutes of the day (open, close).
pub fn parse_open_hours(text: &str) -> Option<(u32, u32)> {
    let minute = |hm: &str| -> Option<u32> {
        let (h, m) = hm.trim().split_once(':')?;
        let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
        (h < 24 && m < 60).then_some(h * 60 + m)
    };
    let (open, close) = text.split_once('-')?;
    let (open, close) = (minute(open)?, minute(close)?);
    (open != close).then_some((open, close))
}

/// A webhook (`[[alerts.webhooks]]`).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub url: String,
    pub secret: String,
}

impl std::fmt::Debug for WebhookConfig {
    // The secret never appears in logs or debug output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl AlertsConfig {
    fn validate(&self, v: &mut Validation) {
        if self.evaluate_every_ms < 100 {
            v.invalid("alerts.evaluate_every_ms", "at least 100");
        }
        if self.webhook_retry_max_ms < 1000 {
            v.invalid("alerts.webhook_retry_max_ms", "at least 1000");
        }
        for (i, r) in self.rules.iter().enumerate() {
            let key = |k: &str| format!("alerts.rules.{i}.{k}");
            if !ALERT_RULES.contains(&r.rule.as_str()) {
                v.invalid(&key("rule"), format!("one of {}", ALERT_RULES.join(", ")));
                continue;
            }
            let delay = ALERT_RULES_WITH_DELAY.contains(&r.rule.as_str());
            let delays =
                usize::from(r.after_minutes.is_some()) + usize::from(r.after_seconds.is_some());
            if (delay && delays != 1) || (!delay && delays != 0) {
                // Point at a key the file has: the delay when given, else the rule's name.
                let at = if r.after_minutes.is_some() {
                    key("after_minutes")
                } else if r.after_seconds.is_some() {
                    key("after_seconds")
                } else {
                    key("rule")
                };
                v.invalid(
                    &at,
                    if delay {
                        format!(
                            "after_minutes (or after_seconds, not both): how long before {} alerts",
                            r.rule
                        )
                    } else {
                        format!("nothing: {} takes no delay", r.rule)
                    },
                );
            }
            let threshold = r.rule == "reconciliation_discrepancy" || r.rule == "drop_variance";
            let decimal = |t: &str| {
                let (w, f) = t.split_once('.').unwrap_or((t, ""));
                !w.is_empty()
                    && w.bytes().all(|b| b.is_ascii_digit())
                    && f.bytes().all(|b| b.is_ascii_digit())
                    && f.len() <= 4
            };
            match (&r.threshold, threshold) {
                (Some(t), true) if !decimal(t) => {
                    v.invalid(&key("threshold"), "an amount such as \"10.00\"")
                }
                (None, true) => v.invalid(
                    &key("rule"),
                    format!("a threshold = \"10.00\" (an amount) with {}", r.rule),
                ),
                (Some(_), false) => v.invalid(
                    &key("threshold"),
                    format!("nothing: {} takes no threshold", r.rule),
                ),
                _ => {}
            }
            let hours = r.rule == "door_open_out_of_hours";
            match (&r.open_hours, hours) {
                (Some(h), true) if parse_open_hours(h).is_none() => {
                    v.invalid(&key("open_hours"), "HH:MM-HH:MM, for example 08:00-02:00")
                }
                (None, true) => v.invalid(
                    &key("rule"),
                    "open_hours = \"HH:MM-HH:MM\" with door_open_out_of_hours",
                ),
                (Some(_), false) => v.invalid(
                    &key("open_hours"),
                    format!("nothing: {} takes no hours", r.rule),
                ),
                _ => {}
            }
            if self.rules[..i].iter().any(|o| o.rule == r.rule) {
                v.invalid(&key("rule"), format!("{} once", r.rule));
            }
        }
        for (i, w) in self.webhooks.iter().enumerate() {
            if !(w.url.starts_with("http://") || w.url.starts_with("https://")) {
                v.invalid(
                    &format!("alerts.webhooks.{i}.url"),
                    "an http:// or https:// URL",
                );
            }
            if w.secret.len() < 16 {
                v.invalid(
                    &format!("alerts.webhooks.{i}.secret"),
                    "at least 16 characters (it signs every delivery)",
                );
            }
        }
    }
}

/// Money and gaming days (`[accounting]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountingConfig {
    /// ISO 4217 code.
    pub currency: String,
    pub currency_decimals: u8,
    /// Minor units per credit.
    pub denomination: u32,
    /// 0: unknown.
    pub par_percent: f64,
    pub time_zone: String,
    pub gaming_day_start_hour: u8,
}

/// A site (`[[sites]]`): edges under one roof and their gaming day.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteConfig {
    pub id: String,
    #[serde(default)]
    pub name: String,
    pub edges: Vec<String>,
    pub time_zone: String,
    pub gaming_day_start_hour: u8,
}

/// A machine's own terms (`[[machines]]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MachineConfig {
    pub edge: String,
    pub device: String,
    pub denomination: Option<u32>,
    pub par_percent: Option<f64>,
}

/// A par in percent as basis points (`None` for 0, unknown).
pub fn par_basis_points(percent: f64) -> Option<u32> {
    (percent > 0.0 && percent <= 100.0).then(|| (percent * 100.0).round() as u32)
}

fn valid_zone(zone: &str) -> bool {
    jiff::tz::TimeZone::get(zone).is_ok()
}

impl HubConfig {
    fn validate_accounting(&self, v: &mut Validation) {
        let a = &self.accounting;
        if a.currency.len() != 3 || !a.currency.bytes().all(|b| b.is_ascii_uppercase()) {
            v.invalid("accounting.currency", "an ISO 4217 code such as \"USD\"");
        }
        if a.currency_decimals > 4 {
            v.invalid("accounting.currency_decimals", "0 to 4");
        }
        if a.denomination == 0 {
            v.invalid(
                "accounting.denomination",
                "at least 1 (minor units per credit)",
            );
        }
        let par = |key: &str, p: f64, v: &mut Validation| {
            if !(0.0..=100.0).contains(&p) || p.is_nan() {
                v.invalid(key, "0 (unknown) to 100 percent");
            }
        };
        par("accounting.par_percent", a.par_percent, v);
        if !valid_zone(&a.time_zone) {
            v.invalid(
                "accounting.time_zone",
                "an IANA time zone such as \"Europe/Berlin\" or \"UTC\"",
            );
        }
        if a.gaming_day_start_hour > 23 {
            v.invalid("accounting.gaming_day_start_hour", "0 to 23");
        }
        let mut seen_edges: Vec<(&str, &str)> = Vec::new();
        for (i, site) in self.sites.iter().enumerate() {
            if site.id.is_empty() || site.id == "default" || site.id.contains('/') {
                v.invalid(
                    &format!("sites.{i}.id"),
                    "a name of its own (not empty, not \"default\", no '/')",
                );
            }
            if self.sites[..i].iter().any(|s| s.id == site.id) {
                v.invalid(&format!("sites.{i}.id"), "unique among [[sites]]");
            }
            if !valid_zone(&site.time_zone) {
                v.invalid(
                    &format!("sites.{i}.time_zone"),
                    "an IANA time zone such as \"Europe/Berlin\" or \"UTC\"",
                );
            }
            if site.gaming_day_start_hour > 23 {
                v.invalid(&format!("sites.{i}.gaming_day_start_hour"), "0 to 23");
            }
            for edge in &site.edges {
                if let Some((_, other)) = seen_edges.iter().find(|(e, _)| e == edge) {
                    v.invalid(
                        &format!("sites.{i}.edges"),
                        format!("edges in one site only ({edge} is also in site {other})"),
                    );
                }
                seen_edges.push((edge, &site.id));
            }
        }
        for (i, t) in self.device_tags.iter().enumerate() {
            if t.tags.iter().any(|tag| {
                tag.is_empty()
                    || tag.len() > 64
                    || tag.contains(',')
                    || tag.chars().any(char::is_control)
            }) {
                v.invalid(
                    &format!("device_tags.{i}.tags"),
                    "tags of 1 to 64 characters without commas",
                );
            }
            if self.device_tags[..i]
                .iter()
                .any(|o| o.edge == t.edge && o.device == t.device)
            {
                v.invalid(
                    &format!("device_tags.{i}"),
                    format!(
                        "one entry per device ({}/{} is listed twice)",
                        t.edge, t.device
                    ),
                );
            }
        }
        for (i, m) in self.machines.iter().enumerate() {
            if m.denomination == Some(0) {
                v.invalid(&format!("machines.{i}.denomination"), "at least 1");
            }
            if let Some(p) = m.par_percent {
                par(&format!("machines.{i}.par_percent"), p, v);
            }
            if self.machines[..i]
                .iter()
                .any(|o| o.edge == m.edge && o.device == m.device)
            {
                v.invalid(
                    &format!("machines.{i}"),
                    format!(
                        "one entry per machine ({}/{} is listed twice)",
                        m.edge, m.device
                    ),
                );
            }
        }
    }
}

/// HikCentral Professional (Artemis OpenAPI) for guest visits.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HikCentralConfig {
    pub enabled: bool,
    /// `https://host:port` of the Artemis gateway (paths start with `/artemis/api/`).
    pub base_url: String,
    pub app_key: String,
    pub app_secret: String,
    /// SHA-256 of the server certificate (hex, colons allowed), when it is pinned.
    pub pin_sha256: String,
    /// A PEM CA bundle that issued the server certificate, when it is not pinned.
    pub ca_file: String,
    /// Where new persons go.
    pub org_index_code: String,
    pub connect_timeout_ms: u64,
    pub request_timeout_ms: u64,
    /// Requests in flight to HikCentral at once.
    pub max_concurrent_requests: usize,
    pub retry_initial_ms: u64,
    pub retry_max_ms: u64,
    pub db_full_initial_ms: u64,
    pub db_full_max_ms: u64,
    /// Consecutive code 5 answers that open the circuit breaker.
    pub breaker_threshold: u32,
    /// Attempts of a step that keeps getting codes the tables do not know, before it blocks.
    pub max_unknown_attempts: u32,
    /// Reapplications answered with an error before the job goes on with `apply_unconfirmed`.
    pub reapply_attempts: u32,
}

impl std::fmt::Debug for HikCentralConfig {
    // The app secret never appears in logs or debug output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HikCentralConfig")
            .field("enabled", &self.enabled)
            .field("base_url", &self.base_url)
            .field("app_key", &self.app_key)
            .field("pin_sha256", &self.pin_sha256)
            .field("ca_file", &self.ca_file)
            .finish_non_exhaustive()
    }
}

impl HikCentralConfig {
    fn validate(&self, v: &mut Validation) {
        if !self.enabled {
            return;
        }
        if !self.base_url.starts_with("https://") {
            v.invalid(
                "hikcentral.base_url",
                "an https:// URL of the Artemis gateway",
            );
        }
        if self.app_key.is_empty() {
            v.invalid("hikcentral.app_key", "the partner's AppKey");
        }
        if self.app_secret.is_empty() {
            v.invalid(
                "hikcentral.app_secret",
                "the partner's AppSecret (or OUTPOST_HIKCENTRAL__APP_SECRET)",
            );
        }
        let pin: String = self.pin_sha256.chars().filter(|c| *c != ':').collect();
        match (pin.is_empty(), self.ca_file.is_empty()) {
            (true, true) | (false, false) => v.invalid(
                "hikcentral.pin_sha256",
                "exactly one of pin_sha256 and ca_file (never no verification)",
            ),
            (false, true) if pin.len() != 64 || !pin.chars().all(|c| c.is_ascii_hexdigit()) => {
                v.invalid("hikcentral.pin_sha256", "64 hex digits (SHA-256)")
            }
            _ => {}
        }
        if self.max_concurrent_requests == 0 {
            v.invalid("hikcentral.max_concurrent_requests", "at least 1");
        }
        if self.retry_initial_ms == 0 || self.retry_max_ms < self.retry_initial_ms {
            v.invalid("hikcentral.retry_max_ms", "at least retry_initial_ms (> 0)");
        }
        if self.db_full_initial_ms == 0 || self.db_full_max_ms < self.db_full_initial_ms {
            v.invalid(
                "hikcentral.db_full_max_ms",
                "at least db_full_initial_ms (> 0)",
            );
        }
        if self.breaker_threshold == 0 {
            v.invalid("hikcentral.breaker_threshold", "at least 1");
        }
    }
}

/// Microsoft SQL Server, the system of record finance and BI tools read (`outpost-hub mssql`).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MssqlConfig {
    pub enabled: bool,
    pub host: String,
    pub port: u16,
    pub database: String,
    pub user: String,
    /// Prefer the environment (`OUTPOST_MSSQL__PASSWORD`) or `password_file`.
    pub password: String,
    /// A file holding the password (its first line), read at start-up.
    pub password_file: String,
    /// TLS for the whole connection (TDS `ENCRYPT_REQUIRED`); off only for a test server.
    pub encrypt: bool,
    /// A PEM CA bundle that issued the server's certificate.
    pub ca_file: String,
    /// Accept the server's certificate unchecked (SQL Server's self-signed one): the connection
    /// is encrypted but not authenticated. Off by default; `config check` warns when on.
    pub trust_server_certificate: bool,
    pub connect_timeout_ms: u64,
    /// Events per batch written to SQL Server (one transaction each).
    pub batch_rows: usize,
    /// Retried errors back off from retry_initial_ms to retry_max_ms (with jitter).
    pub retry_initial_ms: u64,
    pub retry_max_ms: u64,
    /// Blocking errors (login failed, schema missing, disk full) are tried again this often.
    pub blocked_retry_ms: u64,
}

impl std::fmt::Debug for MssqlConfig {
    // The password never appears in logs or debug output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MssqlConfig")
            .field("enabled", &self.enabled)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("database", &self.database)
            .field("user", &self.user)
            .field("password_file", &self.password_file)
            .field("encrypt", &self.encrypt)
            .field("ca_file", &self.ca_file)
            .field("trust_server_certificate", &self.trust_server_certificate)
            .finish_non_exhaustive()
    }
}

/// Hubs that share a chain's edges: which hub this is, where each hub's API answers, and which
/// hub owns which edge (the directory). An edge the directory does not name is this hub's.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// This hub's id (one of `hubs`); empty when there is no cluster.
    #[serde(default)]
    pub hub_id: String,
    #[serde(default)]
    pub hubs: Vec<ClusterHubConfig>,
    /// Edges owned by a hub: `{ edge = "...", hub = "..." }`.
    #[serde(default)]
    pub edges: Vec<EdgeOwnerConfig>,
}

/// One hub of the cluster.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterHubConfig {
    pub id: String,
    /// Its API's base URL (`http://hub-b.example:8080`): requests for its edges go there.
    pub api_url: String,
}

/// Which hub owns an edge.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeOwnerConfig {
    pub edge: String,
    pub hub: String,
}

impl ClusterConfig {
    fn validate(&self, v: &mut Validation) {
        if self.hubs.is_empty() && self.edges.is_empty() && self.hub_id.is_empty() {
            return;
        }
        if !self.hubs.iter().any(|h| h.id == self.hub_id) {
            v.invalid(
                "cluster.hub_id",
                "this hub's id, one of cluster.hubs (each with its id and api_url)",
            );
        }
        for (i, hub) in self.hubs.iter().enumerate() {
            if hub.id.is_empty() || self.hubs[..i].iter().any(|h| h.id == hub.id) {
                v.invalid(&format!("cluster.hubs.{i}.id"), "a hub id of its own");
            }
            if !(hub.api_url.starts_with("http://") || hub.api_url.starts_with("https://")) {
                v.invalid(
                    &format!("cluster.hubs.{i}.api_url"),
                    "the hub API's base URL, http://host:port or https://host:port",
                );
            }
        }
        for (i, owner) in self.edges.iter().enumerate() {
            if let Err(e) = validate_edge_id(&owner.edge) {
                v.invalid(&format!("cluster.edges.{i}.edge"), e);
            }
            if self.edges[..i].iter().any(|o| o.edge == owner.edge) {
                v.invalid(
                    &format!("cluster.edges.{i}.edge"),
                    "an edge named once (an edge has one owner)",
                );
            }
            if !self.hubs.iter().any(|h| h.id == owner.hub) {
                v.invalid(&format!("cluster.edges.{i}.hub"), "one of cluster.hubs");
            }
        }
    }
}

/// How the example hub config (`deploy/examples/hub.toml`) marks the API token to replace;
/// `config check` warns about a token that still starts with it.
pub const EXAMPLE_TOKEN_PLACEHOLDER: &str = "replace-with-";

/// The most rows one batch may hold.
pub const MSSQL_MAX_BATCH_ROWS: usize = 10_000;

impl MssqlConfig {
    fn validate(&self, v: &mut Validation) {
        if !self.enabled {
            return;
        }
        if self.host.is_empty() {
            v.invalid("mssql.host", "the SQL Server's host name or address");
        }
        if self.database.is_empty() {
            v.invalid("mssql.database", "a database name");
        }
        if self.user.is_empty() {
            v.invalid("mssql.user", "a SQL login");
        }
        if !self.password.is_empty() && !self.password_file.is_empty() {
            v.invalid(
                "mssql.password_file",
                "either password (or OUTPOST_MSSQL__PASSWORD) or password_file, not both",
            );
        }
        if self.batch_rows == 0 || self.batch_rows > MSSQL_MAX_BATCH_ROWS {
            v.invalid("mssql.batch_rows", "between 1 and 10000");
        }
        if self.retry_initial_ms == 0 || self.retry_max_ms < self.retry_initial_ms {
            v.invalid("mssql.retry_max_ms", "at least retry_initial_ms (> 0)");
        }
        if self.blocked_retry_ms == 0 {
            v.invalid("mssql.blocked_retry_ms", "more than 0");
        }
        if self.connect_timeout_ms == 0 {
            v.invalid("mssql.connect_timeout_ms", "more than 0");
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct HubSection {
    pub data_dir: PathBuf,
    /// sled's page cache for the hub's database, MiB.
    pub cache_mib: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PkiConfig {
    pub dir: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LinkConfig {
    pub listen: SocketAddr,
    pub max_batch: usize,
    pub keepalive_ms: u64,
    pub idle_timeout_ms: u64,
    pub dead_after_ms: u64,
    /// Event bytes the hub lets all connected edges together have in flight before it reads
    /// them, MiB: each connection's QUIC receive window is this shared among the edges.
    pub receive_budget_mib: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ApiConfig {
    pub listen: SocketAddr,
    pub default_command_deadline_seconds: u64,
    #[serde(default)]
    pub tokens: Vec<ApiToken>,
    /// People who log in (the web console), each with a password hash and a role.
    #[serde(default)]
    pub users: Vec<ApiUser>,
    /// A console session not used for this long ends.
    pub session_idle_minutes: u64,
    /// This many wrong passwords in a row lock a user out ...
    pub lockout_failures: u32,
    /// ... for this long.
    pub lockout_minutes: u64,
}

/// A person who logs in to the console.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiUser {
    pub name: String,
    /// An argon2 PHC string (`outpost-hub console hash-password` prints one).
    pub password_hash: String,
    pub role: Role,
}

impl std::fmt::Debug for ApiUser {
    // The hash is a secret too: it can be attacked offline.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiUser")
            .field("name", &self.name)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// A bearer token and what it may do.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiToken {
    pub name: String,
    pub token: String,
    pub role: Role,
}

impl std::fmt::Debug for ApiToken {
    // The token is a secret: never in logs or debug output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiToken")
            .field("name", &self.name)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// API roles, each allowed what the one before it may do and more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Operator,
    /// Approves what needs a second person (handpays).
    Supervisor,
    Admin,
}

/// `outpost-sim` configuration.
#[derive(Debug, Clone, Deserialize)]
pub struct SimConfig {
    pub admin: AdminConfig,
    pub log: LogConfig,
    pub supervision: SupervisionConfig,
}

/// The admin HTTP server every process runs.
#[derive(Debug, Clone, Deserialize)]
pub struct AdminConfig {
    pub listen: SocketAddr,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LogConfig {
    pub level: LogLevel,
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Human,
    Json,
}

/// Restart policy of a process's supervisors.
#[derive(Debug, Clone, Deserialize)]
pub struct SupervisionConfig {
    pub backoff_initial_ms: u64,
    pub backoff_max_ms: u64,
    pub jitter: f64,
    pub stable_after_seconds: u64,
    pub max_restarts: u32,
    pub within_seconds: u64,
    pub shutdown_timeout_ms: u64,
}

impl SupervisionConfig {
    fn validate(&self, v: &mut Validation) {
        if self.backoff_initial_ms == 0 {
            v.invalid(
                "supervision.backoff_initial_ms",
                "at least 1 (milliseconds)",
            );
        }
        if self.backoff_max_ms < self.backoff_initial_ms {
            v.invalid(
                "supervision.backoff_max_ms",
                format!("at least backoff_initial_ms ({})", self.backoff_initial_ms),
            );
        }
        if !(0.0..=1.0).contains(&self.jitter) {
            v.invalid("supervision.jitter", "a fraction from 0.0 to 1.0");
        }
        if self.max_restarts == 0 {
            v.invalid("supervision.max_restarts", "at least 1");
        }
        if self.within_seconds == 0 {
            v.invalid("supervision.within_seconds", "at least 1 (seconds)");
        }
        if self.shutdown_timeout_ms == 0 {
            v.invalid(
                "supervision.shutdown_timeout_ms",
                "at least 1 (milliseconds)",
            );
        }
    }
}

/// Edge ids name certificates, metrics labels and directories: keep them boring.
fn is_valid_edge_id(id: &str) -> bool {
    let bytes = id.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes[0] != b'-'
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
}

/// An edge's id, checked: 1 to 63 lowercase letters, digits and '-', not starting with '-'. Every
/// place that takes an edge id from outside (config, PKI, API paths and bodies) makes one, so no id
/// can alias another in a store's key space (a NUL, a separator).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EdgeId(String);

impl EdgeId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for EdgeId {
    type Err = String;

    fn from_str(id: &str) -> Result<Self, String> {
        validate_edge_id(id).map(|()| EdgeId(id.to_owned()))
    }
}

impl std::fmt::Display for EdgeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks an edge id the way the config and the PKI both need it checked.
pub fn validate_edge_id(id: &str) -> Result<(), String> {
    if is_valid_edge_id(id) {
        Ok(())
    } else {
        Err(format!(
            "edge id {id:?} is not valid: use 1 to 63 lowercase letters, digits and '-', not starting with '-'"
        ))
    }
}

/// `http://IP:port/...` (network relays are addressed by IP; no DNS on the board's path).
fn http_ip_url(url: &str) -> bool {
    url.strip_prefix("http://")
        .and_then(|rest| rest.split('/').next())
        .is_some_and(|host| host.parse::<SocketAddr>().is_ok())
}

fn validate_sas_line(
    line: &SasLineConfig,
    i: usize,
    seen: &mut std::collections::HashSet<String>,
    v: &mut Validation,
) {
    let key = |k: &str| format!("devices.{i}.{k}");
    match line.transport {
        SasTransport::Serial | SasTransport::Pty if line.path.is_none() => {
            v.invalid(&key("path"), "the tty's path (transport serial or pty)")
        }
        SasTransport::Tcp if line.connect.is_none() => {
            v.invalid(&key("connect"), "the converter's address (transport tcp)")
        }
        _ => {}
    }
    if line.wakeup() == SasWakeup::Parity && line.transport != SasTransport::Serial {
        v.invalid(
            &key("wakeup"),
            "marked or none (parity needs a real serial port)",
        );
    }
    if !(40..=5_000).contains(&line.poll_interval_ms) {
        v.invalid(
            &key("poll_interval_ms"),
            "40 to 5000 (SAS: 200 unless the EGM allows 40)",
        );
    }
    if !(10..=1_000).contains(&line.reply_timeout_ms) {
        v.invalid(&key("reply_timeout_ms"), "10 to 1000");
    }
    if line.meter_interval_ms < 1_000 {
        v.invalid(&key("meter_interval_ms"), "at least 1000");
    }
    if line.game_meter_interval_ms != 0 && line.game_meter_interval_ms < 1_000 {
        v.invalid(&key("game_meter_interval_ms"), "0 (never) or at least 1000");
    }
    if line.egms.is_empty() || line.egms.len() > 32 {
        v.invalid(&key("egms"), "1 to 32 machines");
    }
    let mut addresses = std::collections::HashSet::new();
    for (j, egm) in line.egms.iter().enumerate() {
        if !(1..=127).contains(&egm.address) || !addresses.insert(egm.address) {
            v.invalid(
                &format!("devices.{i}.egms.{j}.address"),
                "1 to 127, unique on the line",
            );
        }
        if !is_valid_edge_id(&egm.id) || !seen.insert(egm.id.clone()) {
            v.invalid(
                &format!("devices.{i}.egms.{j}.id"),
                "a valid id (lowercase letters, digits, '-') no other device of this edge has",
            );
        }
    }
}

impl ConfigFile for EdgeConfig {
    const KIND: &'static str = "edge";
    const DEFAULT_TOML: &'static str = include_str!("../defaults/edge.toml");

    fn data_dir(&self) -> Option<&std::path::Path> {
        Some(&self.edge.data_dir)
    }

    fn storage_budget(&self) -> Option<u64> {
        Some(self.outbox.budget_bytes)
    }

    fn files(&self) -> Vec<(&'static str, &std::path::Path)> {
        vec![
            ("uplink.ca", &self.uplink.ca),
            ("uplink.cert", &self.uplink.cert),
            ("uplink.key", &self.uplink.key),
        ]
    }

    fn explain(key: &str, value: &toml::Value) -> Option<(String, String)> {
        let index = key.strip_prefix("devices.")?;
        index.parse::<usize>().ok()?;
        let mut table = value.as_table()?.clone();
        let kind = table.remove("kind")?;
        match kind.as_str()? {
            "synthetic" => DeviceConfig::explain_as::<SyntheticDeviceConfig>(table),
            "sas_line" => DeviceConfig::explain_as::<SasLineConfig>(table),
            "tv" => DeviceConfig::explain_as::<TvConfig>(table),
            "relay" => DeviceConfig::explain_as::<RelayConfig>(table),
            _ => None,
        }
    }

    fn validate(&self, v: &mut Validation) {
        if !is_valid_edge_id(&self.edge.id) {
            v.invalid(
                "edge.id",
                "1 to 63 lowercase letters, digits and '-', not starting with '-'",
            );
        }
        if self.edge.data_dir.as_os_str().is_empty() {
            v.invalid("edge.data_dir", "a directory path");
        }
        if self.outbox.budget_bytes < 64 * 1024 {
            v.invalid("outbox.budget_bytes", "at least 65536 (bytes)");
        }
        if !(1..=65536).contains(&self.outbox.max_batch) {
            v.invalid("outbox.max_batch", "1 to 65536");
        }
        if self.outbox.compact_above_bytes < MIN_COMPACT_ABOVE_BYTES {
            v.invalid(
                "outbox.compact_above_bytes",
                format!(
                    "at least {MIN_COMPACT_ABOVE_BYTES} (16 MiB): each compaction restarts the outbox \
                     and the actors after it"
                ),
            );
        }
        let u = &self.uplink;
        if u.reconnect_initial_ms == 0 || u.reconnect_max_ms < u.reconnect_initial_ms {
            v.invalid(
                "uplink.reconnect_max_ms",
                "reconnect_initial_ms at least 1 and reconnect_max_ms at least reconnect_initial_ms",
            );
        }
        if !(1..=16384).contains(&u.batch_max_events) {
            v.invalid("uplink.batch_max_events", "1 to 16384");
        }
        if u.window_events < u.batch_max_events as u64 {
            v.invalid("uplink.window_events", "at least batch_max_events");
        }
        if u.keepalive_ms == 0 || u.idle_timeout_ms <= u.keepalive_ms {
            v.invalid(
                "uplink.idle_timeout_ms",
                "more than keepalive_ms (and keepalive_ms at least 1)",
            );
        }
        if u.dead_after_ms < 3 * u.keepalive_ms || u.dead_after_ms > u.idle_timeout_ms {
            v.invalid(
                "uplink.dead_after_ms",
                "at least 3 × keepalive_ms and at most idle_timeout_ms",
            );
        }
        let mut seen = std::collections::HashSet::new();
        for (i, device) in self.devices.iter().enumerate() {
            if !is_valid_edge_id(device.id()) {
                v.invalid(
                    &format!("devices.{i}.id"),
                    "1 to 63 lowercase letters, digits and '-', not starting with '-'",
                );
            }
            if !seen.insert(device.id().to_owned()) {
                v.invalid(
                    &format!("devices.{i}.id"),
                    "an id no other device of this edge has",
                );
            }
            match device {
                DeviceConfig::Synthetic(s) => {
                    if !(s.rate_per_second > 0.0 && s.rate_per_second <= 1_000_000.0) {
                        v.invalid(
                            &format!("devices.{i}.rate_per_second"),
                            "more than 0 and at most 1000000",
                        );
                    }
                    // An event's frame may have at most 4 KiB (outpost_link::MAX_EVENT_BYTES).
                    if s.payload_bytes > MAX_SYNTHETIC_PAYLOAD_BYTES {
                        v.invalid(
                            &format!("devices.{i}.payload_bytes"),
                            format!(
                                "at most {MAX_SYNTHETIC_PAYLOAD_BYTES} (an event may have at most 4 KiB)"
                            ),
                        );
                    }
                }
                DeviceConfig::SasLine(line) => validate_sas_line(line, i, &mut seen, v),
                DeviceConfig::Tv(tv) => {
                    if tv.telemetry_interval_ms < 100 || tv.op_timeout_ms < 100 {
                        v.invalid(
                            &format!("devices.{i}.telemetry_interval_ms"),
                            "telemetry_interval_ms and op_timeout_ms at least 100",
                        );
                    }
                    if let Some(relay) = &tv.relay {
                        let known = self
                            .devices
                            .iter()
                            .any(|d| matches!(d, DeviceConfig::Relay(r) if &r.id == relay));
                        if !known {
                            v.invalid(
                                &format!("devices.{i}.relay"),
                                "the id of a relay device of this edge",
                            );
                        }
                    }
                }
                DeviceConfig::Relay(relay) => match relay.bank {
                    RelayBankKind::Gpio if relay.chip.is_none() || relay.line.is_none() => v
                        .invalid(
                            &format!("devices.{i}.chip"),
                            "chip and line for a gpio relay",
                        ),
                    RelayBankKind::Http if !relay.url.as_deref().is_some_and(http_ip_url) => v
                        .invalid(
                            &format!("devices.{i}.url"),
                            "http://IP:port/path for an http relay",
                        ),
                    _ => {}
                },
            }
        }
        self.supervision.validate(v);
    }
}

impl ConfigFile for HubConfig {
    const KIND: &'static str = "hub";
    const DEFAULT_TOML: &'static str = include_str!("../defaults/hub.toml");

    fn data_dir(&self) -> Option<&std::path::Path> {
        Some(&self.hub.data_dir)
    }

    fn warnings(&self) -> Vec<String> {
        let mut said = Vec::new();
        for token in &self.api.tokens {
            if token.token.starts_with(EXAMPLE_TOKEN_PLACEHOLDER) {
                said.push(format!(
                    "api token {} is still the example's placeholder: anyone who has read the \
                     example can use it; give it a long random string (openssl rand -hex 32)",
                    token.name
                ));
            }
        }
        if self.mssql.enabled && !self.mssql.encrypt {
            said.push("mssql.encrypt is off: events cross the network to SQL Server in clear (the login alone is encrypted)".to_owned());
        } else if self.mssql.enabled && self.mssql.trust_server_certificate {
            said.push("mssql.trust_server_certificate is on: the connection to SQL Server is encrypted but whoever answers at mssql.host is believed; give its CA in mssql.ca_file instead".to_owned());
        }
        said
    }

    fn validate(&self, v: &mut Validation) {
        if !(4..=65_536).contains(&self.hub.cache_mib) {
            v.invalid("hub.cache_mib", "4 to 65536");
        }
        if self.hub.data_dir.as_os_str().is_empty() {
            v.invalid("hub.data_dir", "a directory path");
        }
        if self.pki.dir.as_os_str().is_empty() {
            v.invalid("pki.dir", "a directory path");
        }
        if !(1..=65536).contains(&self.link.max_batch) {
            v.invalid("link.max_batch", "1 to 65536");
        }
        if !(16..=65_536).contains(&self.link.receive_budget_mib) {
            v.invalid("link.receive_budget_mib", "16 to 65536");
        }
        if self.link.keepalive_ms == 0 || self.link.idle_timeout_ms <= self.link.keepalive_ms {
            v.invalid(
                "link.idle_timeout_ms",
                "more than keepalive_ms (and keepalive_ms at least 1)",
            );
        }
        let l = &self.link;
        if l.dead_after_ms < 3 * l.keepalive_ms || l.dead_after_ms > l.idle_timeout_ms {
            v.invalid(
                "link.dead_after_ms",
                "at least 3 × keepalive_ms and at most idle_timeout_ms",
            );
        }
        if self.api.default_command_deadline_seconds == 0 {
            v.invalid("api.default_command_deadline_seconds", "at least 1");
        }
        for (i, token) in self.api.tokens.iter().enumerate() {
            if token.token.len() < 16 {
                v.invalid(&format!("api.tokens.{i}.token"), "at least 16 characters");
            }
            if let Some(first) = self.api.tokens[..i]
                .iter()
                .position(|t| t.token == token.token)
            {
                v.invalid(
                    &format!("api.tokens.{i}.token"),
                    format!(
                        "a token of its own (it is the token of api.tokens[{first}], \
                         {:?}; a token says who is calling and with which role)",
                        self.api.tokens[first].name
                    ),
                );
            }
        }
        for (i, user) in self.api.users.iter().enumerate() {
            let valid_name = !user.name.is_empty()
                && user.name.len() <= 64
                && user
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-@".contains(c));
            if !valid_name {
                v.invalid(
                    &format!("api.users.{i}.name"),
                    "1 to 64 letters, digits, '.', '_', '-' or '@'",
                );
            }
            if self.api.users[..i].iter().any(|u| u.name == user.name) {
                v.invalid(&format!("api.users.{i}.name"), "a name of its own");
            }
            if !user.password_hash.starts_with("$argon2") {
                v.invalid(
                    &format!("api.users.{i}.password_hash"),
                    "an argon2 hash ($argon2id$...), as `outpost-hub console hash-password` prints; never the password itself",
                );
            }
        }
        if self.api.session_idle_minutes == 0 {
            v.invalid("api.session_idle_minutes", "at least 1");
        }
        if self.api.lockout_failures == 0 {
            v.invalid("api.lockout_failures", "at least 1");
        }
        self.hikcentral.validate(v);
        self.mssql.validate(v);
        self.cluster.validate(v);
        self.validate_accounting(v);
        self.alerts.validate(v);
        self.supervision.validate(v);
    }
}

impl ConfigFile for SimConfig {
    const KIND: &'static str = "sim";
    const DEFAULT_TOML: &'static str = include_str!("../defaults/sim.toml");

    fn validate(&self, v: &mut Validation) {
        self.supervision.validate(v);
    }
}
