//! Alerts: rules over the floor's state, firing and resolving with de-duplication.
//!
//! A rule looks at what the hub knows now ([`Facts`]) and names the conditions that hold, each
//! under a key (rule, edge, device). [`AlertBook::update`] turns those into transitions: a key
//! that starts to hold fires one alert, a key that keeps holding changes nothing (however often
//! it is evaluated), a key that stops holding resolves its alert. A key that holds again later
//! fires a new alert.
//!
//! Invariants: at most one firing alert per key; an alert's id never changes; evaluation is a
//! function of the facts and the time given, so it is tested without a clock.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::devices::DeviceState;

/// A rule and its parameters.
#[derive(Debug, Clone, PartialEq)]
pub enum Rule {
    /// A door open outside the site's opening hours (local `open`..`close`, minutes of the day;
    /// `close` < `open` spans midnight).
    DoorOpenOutOfHours {
        open_min: u32,
        close_min: u32,
    },
    HandpayPending {
        after_s: i64,
    },
    CommsLost {
        after_s: i64,
    },
    /// A check of today's reconciliation differs by more than `threshold` minor units.
    ReconciliationDiscrepancy {
        threshold: i128,
    },
    TvDown {
        after_s: i64,
    },
    /// A TV went through every self-healing step and is still down.
    HealingExhausted,
    HikcentralDatabaseFull,
    EdgeOffline {
        after_s: i64,
    },
    /// An edge reports its oldest unacknowledged event older than this.
    OutboxOldestUnacked {
        after_s: i64,
    },
    /// A machine's counted drop differs from its metered drop by more than `threshold` minor
    /// units (today's or yesterday's gaming day).
    DropVariance {
        threshold: i128,
    },
}

impl Rule {
    pub fn name(&self) -> &'static str {
        match self {
            Rule::DoorOpenOutOfHours { .. } => "door_open_out_of_hours",
            Rule::HandpayPending { .. } => "handpay_pending",
            Rule::CommsLost { .. } => "comms_lost",
            Rule::ReconciliationDiscrepancy { .. } => "reconciliation_discrepancy",
            Rule::TvDown { .. } => "tv_down",
            Rule::HealingExhausted => "healing_exhausted",
            Rule::HikcentralDatabaseFull => "hikcentral_database_full",
            Rule::EdgeOffline { .. } => "edge_offline",
            Rule::OutboxOldestUnacked { .. } => "outbox_oldest_unacked",
            Rule::DropVariance { .. } => "drop_variance",
        }
    }
}

/// What one machine's reconciliation today says, for the discrepancy rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discrepancy {
    pub edge: String,
    pub device: String,
    /// The largest difference among its checks (minor units or a count), and that check's name.
    pub largest: i128,
    pub check: String,
}

/// An edge as the hub sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeFact {
    pub id: String,
    pub connected: bool,
    /// When the hub last heard from it (Unix µs), if ever.
    pub last_seen_us: Option<i64>,
    /// The age of its oldest unacknowledged event (ms) as it last reported, while connected.
    pub oldest_unacked_ms: Option<u64>,
}

/// What the hub knows now.
#[derive(Debug, Clone, Default)]
pub struct Facts<'a> {
    pub devices: Vec<&'a DeviceState>,
    pub edges: Vec<EdgeFact>,
    pub discrepancies: Vec<Discrepancy>,
    /// Counted against metered drop, per machine counted (`check` names the day).
    pub drop_variances: Vec<Discrepancy>,
    pub hikcentral_database_full: bool,
    /// Local minute of the day at each edge's site, for opening hours.
    pub local_minute: BTreeMap<String, u32>,
    /// How to write amounts in details (minor units as numbers when absent).
    pub currency: Option<crate::money::Currency>,
}

impl Facts<'_> {
    fn money(&self, minor: i128) -> String {
        match &self.currency {
            Some(c) => format!("{} {}", c.format(minor), c.code),
            None => minor.to_string(),
        }
    }
}

/// A condition that holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub rule: &'static str,
    pub edge: String,
    pub device: String,
    pub detail: String,
}

fn in_hours(minute: u32, open: u32, close: u32) -> bool {
    if open <= close {
        (open..close).contains(&minute)
    } else {
        minute >= open || minute < close
    }
}

/// The conditions `rules` find in `facts` at `now_us`.
pub fn evaluate(rules: &[Rule], facts: &Facts<'_>, now_us: i64) -> Vec<Condition> {
    let mut out = Vec::new();
    let held_for = |since: Option<i64>| since.map_or(0, |s| (now_us - s) / 1_000_000);
    for rule in rules {
        let name = rule.name();
        let mut hold = |edge: &str, device: &str, detail: String| {
            out.push(Condition {
                rule: name,
                edge: edge.to_owned(),
                device: device.to_owned(),
                detail,
            })
        };
        match rule {
            Rule::DoorOpenOutOfHours {
                open_min,
                close_min,
            } => {
                for d in &facts.devices {
                    let Some(egm) = &d.egm else { continue };
                    let minute = facts.local_minute.get(&d.edge).copied().unwrap_or(0);
                    if !egm.doors_open.is_empty() && !in_hours(minute, *open_min, *close_min) {
                        let doors: Vec<&str> = egm.doors_open.iter().map(String::as_str).collect();
                        hold(
                            &d.edge,
                            &d.device,
                            format!("{} door open out of hours", doors.join(", ")),
                        );
                    }
                }
            }
            Rule::HandpayPending { after_s } => {
                for d in &facts.devices {
                    let Some(egm) = &d.egm else { continue };
                    if let (Some(credits), Some(since)) =
                        (egm.handpay_pending, egm.handpay_since_us)
                        && held_for(Some(since)) >= *after_s
                    {
                        hold(
                            &d.edge,
                            &d.device,
                            format!(
                                "handpay of {credits} credits pending for {} min",
                                held_for(Some(since)) / 60
                            ),
                        );
                    }
                }
            }
            Rule::CommsLost { after_s } => {
                for d in &facts.devices {
                    let Some(egm) = &d.egm else { continue };
                    if !egm.online && held_for(egm.since_us) >= *after_s {
                        hold(
                            &d.edge,
                            &d.device,
                            format!("no comms for {} min", held_for(egm.since_us) / 60),
                        );
                    }
                }
            }
            Rule::ReconciliationDiscrepancy { threshold } => {
                for x in &facts.discrepancies {
                    if x.largest.abs() > *threshold {
                        hold(
                            &x.edge,
                            &x.device,
                            if x.check == "games" {
                                format!("games off by {} today", x.largest)
                            } else {
                                format!("{} off by {} today", x.check, facts.money(x.largest))
                            },
                        );
                    }
                }
            }
            Rule::TvDown { after_s } => {
                for d in &facts.devices {
                    let Some(tv) = &d.tv else { continue };
                    if !tv.up && held_for(tv.since_us) >= *after_s {
                        hold(
                            &d.edge,
                            &d.device,
                            format!("down for {} min", held_for(tv.since_us) / 60),
                        );
                    }
                }
            }
            Rule::HealingExhausted => {
                for d in &facts.devices {
                    let Some(tv) = &d.tv else { continue };
                    if !tv.up && tv.healing.as_ref().is_some_and(|h| h.step == "exhausted") {
                        hold(
                            &d.edge,
                            &d.device,
                            "every self-healing step was tried and the TV is still down".into(),
                        );
                    }
                }
            }
            Rule::HikcentralDatabaseFull => {
                if facts.hikcentral_database_full {
                    hold(
                        "",
                        "",
                        "HikCentral answers that its database is full; visit provisioning is held"
                            .into(),
                    );
                }
            }
            Rule::DropVariance { threshold } => {
                for x in &facts.drop_variances {
                    if x.largest.abs() > *threshold {
                        hold(
                            &x.edge,
                            &x.device,
                            format!(
                                "counted drop off the meters by {} on {}",
                                facts.money(x.largest),
                                x.check
                            ),
                        );
                    }
                }
            }
            Rule::OutboxOldestUnacked { after_s } => {
                for e in &facts.edges {
                    if let Some(ms) = e.oldest_unacked_ms
                        && e.connected
                        && (ms / 1000) as i64 > *after_s
                    {
                        hold(
                            &e.id,
                            "",
                            format!("its oldest unacknowledged event is {} s old", ms / 1000),
                        );
                    }
                }
            }
            Rule::EdgeOffline { after_s } => {
                for e in &facts.edges {
                    if !e.connected && held_for(e.last_seen_us) >= *after_s {
                        hold(
                            &e.id,
                            "",
                            format!("offline for {} min", held_for(e.last_seen_us) / 60),
                        );
                    }
                }
            }
        }
    }
    out
}

/// An alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Alert {
    pub id: String,
    pub rule: String,
    pub site: String,
    pub edge: String,
    pub device: String,
    pub detail: String,
    /// `firing` or `resolved`.
    pub state: String,
    pub fired_us: i64,
    pub resolved_us: Option<i64>,
    pub acknowledged_by: Option<String>,
    pub acknowledged_us: Option<i64>,
    pub acknowledged_note: Option<String>,
}

/// What changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    Fired(Alert),
    Resolved(Alert),
}

/// The firing alerts, by key.
#[derive(Debug, Clone, Default)]
pub struct AlertBook {
    firing: BTreeMap<(String, String, String), Alert>,
    next: u64,
}

impl AlertBook {
    /// A book holding `firing` (from the store) whose next id counts from `next`.
    pub fn restore(firing: Vec<Alert>, next: u64) -> Self {
        Self {
            firing: firing
                .into_iter()
                .map(|a| ((a.rule.clone(), a.edge.clone(), a.device.clone()), a))
                .collect(),
            next,
        }
    }

    pub fn next_id(&self) -> u64 {
        self.next
    }

    /// Fires new conditions, resolves those that stopped holding, keeps the rest.
    pub fn update(
        &mut self,
        conditions: Vec<Condition>,
        site_of: impl Fn(&str) -> String,
        now_us: i64,
    ) -> Vec<Transition> {
        let mut out = Vec::new();
        let mut holding = std::collections::BTreeSet::new();
        for c in conditions {
            let key = (c.rule.to_owned(), c.edge.clone(), c.device.clone());
            holding.insert(key.clone());
            if let Some(alert) = self.firing.get_mut(&key) {
                alert.detail = c.detail;
                continue;
            }
            self.next += 1;
            let alert = Alert {
                id: format!("alert-{}", self.next),
                rule: c.rule.to_owned(),
                site: site_of(&c.edge),
                edge: c.edge,
                device: c.device,
                detail: c.detail,
                state: "firing".into(),
                fired_us: now_us,
                resolved_us: None,
                acknowledged_by: None,
                acknowledged_us: None,
                acknowledged_note: None,
            };
            self.firing.insert(key, alert.clone());
            out.push(Transition::Fired(alert));
        }
        let stopped: Vec<_> = self
            .firing
            .keys()
            .filter(|k| !holding.contains(*k))
            .cloned()
            .collect();
        for key in stopped {
            if let Some(mut alert) = self.firing.remove(&key) {
                alert.state = "resolved".into();
                alert.resolved_us = Some(now_us);
                out.push(Transition::Resolved(alert));
            }
        }
        out
    }

    pub fn firing(&self) -> impl Iterator<Item = &Alert> {
        self.firing.values()
    }

    /// Records an acknowledgement on a firing alert (the store keeps resolved ones).
    pub fn acknowledge(&mut self, id: &str, by: &str, note: &str, now_us: i64) -> Option<Alert> {
        let alert = self.firing.values_mut().find(|a| a.id == id)?;
        alert.acknowledged_by = Some(by.to_owned());
        alert.acknowledged_us = Some(now_us);
        alert.acknowledged_note = Some(note.to_owned());
        Some(alert.clone())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::devices::{EgmState, TvState};

    const MIN: i64 = 60_000_000;

    fn egm(online: bool, since: i64) -> DeviceState {
        DeviceState {
            edge: "edge-1".into(),
            device: "egm-1".into(),
            egm: Some(EgmState {
                online,
                since_us: Some(since),
                ..EgmState::default()
            }),
            ..DeviceState::default()
        }
    }

    #[test]
    fn comms_lost_fires_once_after_its_delay_and_resolves_when_the_machine_is_back() {
        let rules = [Rule::CommsLost { after_s: 300 }];
        let mut book = AlertBook::default();
        let lost = egm(false, 0);
        let facts = Facts {
            devices: vec![&lost],
            ..Facts::default()
        };
        let site = |_: &str| "default".to_owned();
        assert!(
            book.update(evaluate(&rules, &facts, 4 * MIN), site, 4 * MIN)
                .is_empty()
        );
        let fired = book.update(evaluate(&rules, &facts, 6 * MIN), site, 6 * MIN);
        assert!(matches!(&fired[..], [Transition::Fired(a)] if a.rule == "comms_lost"));
        for t in 7..20 {
            assert!(
                book.update(evaluate(&rules, &facts, t * MIN), site, t * MIN)
                    .is_empty(),
                "still firing: no new alert"
            );
        }
        let back = egm(true, 20 * MIN);
        let facts = Facts {
            devices: vec![&back],
            ..Facts::default()
        };
        let resolved = book.update(evaluate(&rules, &facts, 21 * MIN), site, 21 * MIN);
        assert!(
            matches!(&resolved[..], [Transition::Resolved(a)] if a.resolved_us == Some(21 * MIN))
        );
    }

    #[test]
    fn a_door_is_fine_in_hours_and_an_alert_out_of_hours_across_midnight() {
        let rules = [Rule::DoorOpenOutOfHours {
            open_min: 8 * 60,
            close_min: 2 * 60,
        }];
        let mut state = egm(true, 0);
        if let Some(e) = state.egm.as_mut() {
            e.doors_open.insert("slot".into());
        }
        let at = |minute: u32| Facts {
            devices: vec![&state],
            local_minute: [("edge-1".to_owned(), minute)].into(),
            ..Facts::default()
        };
        assert!(
            evaluate(&rules, &at(23 * 60), 0).is_empty(),
            "open at 23:00"
        );
        assert!(evaluate(&rules, &at(60), 0).is_empty(), "open at 01:00");
        assert_eq!(evaluate(&rules, &at(5 * 60), 0).len(), 1, "closed at 05:00");
    }

    #[test]
    fn an_edge_that_reports_an_old_unacknowledged_event_alerts_while_connected() {
        let edge = |connected, ms| EdgeFact {
            id: "edge-1".into(),
            connected,
            last_seen_us: None,
            oldest_unacked_ms: Some(ms),
        };
        let rules = [Rule::OutboxOldestUnacked { after_s: 300 }];
        let at = |e: EdgeFact| Facts {
            edges: vec![e],
            ..Facts::default()
        };
        assert_eq!(evaluate(&rules, &at(edge(true, 301_000)), 0).len(), 1);
        assert!(evaluate(&rules, &at(edge(true, 299_000)), 0).is_empty());
        assert!(
            evaluate(&rules, &at(edge(false, 999_000)), 0).is_empty(),
            "offline is edge_offline's business"
        );
    }

    #[test]
    fn an_exhausted_ladder_alerts_while_the_tv_stays_down() {
        let tv = DeviceState {
            edge: "edge-1".into(),
            device: "tv-1".into(),
            tv: Some(TvState {
                up: false,
                healing: Some(crate::devices::Healing {
                    step: "exhausted".into(),
                    detail: String::new(),
                    at_us: 0,
                }),
                ..TvState::default()
            }),
            ..DeviceState::default()
        };
        let facts = Facts {
            devices: vec![&tv],
            ..Facts::default()
        };
        assert_eq!(evaluate(&[Rule::HealingExhausted], &facts, 0).len(), 1);
    }
}
