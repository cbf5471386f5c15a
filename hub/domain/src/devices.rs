//! Device state: what each slot machine, TV and relay is doing now, as its events say.
//!
//! Invariants: a device's state is a function of its events in sequence order; an event at or
//! below the last sequence applied to its device changes nothing (so a replay is harmless); only
//! a device whose state really changed is reported dirty and as a change.

use std::collections::{BTreeMap, BTreeSet};

use outpost_command::CommandReply;
use outpost_link::{CommandOutcome, EventBody, RelayEvent, SasEvent, TvEvent};
use outpost_sas::egm::meter;
use outpost_sas::names::{self, exception};
use serde::{Deserialize, Serialize};

use crate::StoredEvent;
use crate::readable::door;

/// What the events of one device say about it now.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DeviceState {
    pub edge: String,
    pub device: String,
    /// The last sequence of this edge applied to this device.
    pub last_seq: u64,
    /// When its last event happened (Unix µs, hub clock).
    pub last_event_us: i64,
    pub egm: Option<EgmState>,
    pub tv: Option<TvState>,
    pub relay: Option<RelayState>,
}

/// A slot machine.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct EgmState {
    /// Whether the edge has the machine (false after a comms loss until it answers again).
    pub online: bool,
    /// Since when `online` has been what it is (Unix µs), once known.
    pub since_us: Option<i64>,
    /// The last time the machine told the host something (a poll that gave data).
    pub last_poll_us: i64,
    /// Credits on the machine at the last meter reading.
    pub credits: Option<u64>,
    /// Doors open now (`slot`, `drop`, `card_cage`, `cashbox`, `belly`).
    pub doors_open: BTreeSet<String>,
    /// The last tilt, by exception name, and when.
    pub tilt: Option<Noted>,
    /// Credits of the pending handpay (the machine is locked up), when one is.
    pub handpay_pending: Option<u64>,
    /// Since when that handpay has been pending.
    pub handpay_since_us: Option<i64>,
    /// Whether play is enabled, as the last enable/disable command the machine acknowledged set it.
    pub play_enabled: Option<bool>,
    pub bill_acceptor_enabled: Option<bool>,
    pub last_exception: Option<Noted>,
    pub power_on: Option<bool>,
    /// Who the machine says it is (LP 1F), once it said.
    pub identity: Option<MachineIdentity>,
}

/// What a machine says about itself (LP 1F).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MachineIdentity {
    pub game_id: String,
    pub paytable: String,
    /// Base payback as the machine writes it (`9250` is 92.50 %).
    pub base_percent: String,
    pub max_bet_credits: u8,
    pub denomination_code: u8,
    /// The credit value in cents, when the code names one (SAS table C-4).
    pub denomination_cents: Option<u32>,
}

/// Something that happened, by name, and when.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Noted {
    pub code: u8,
    pub name: String,
    pub at_us: i64,
}

/// An Android TV.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TvState {
    /// Whether the TV answers over ADB.
    pub up: bool,
    pub since_us: Option<i64>,
    /// The last telemetry in which it answered.
    pub last_seen_us: Option<i64>,
    pub screen_on: Option<bool>,
    pub volume: Option<u8>,
    pub input: Option<String>,
    pub app: Option<String>,
    pub ethernet: Option<String>,
    pub last_screenshot: Option<Screenshot>,
    /// The last self-healing step taken, when one was.
    pub healing: Option<Healing>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Screenshot {
    pub at_us: i64,
    pub bulk_id: String,
    pub bytes: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Healing {
    pub step: String,
    pub detail: String,
    pub at_us: i64,
}

/// A power relay.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RelayState {
    pub on: bool,
    pub reason: String,
    pub switched_us: i64,
}

/// Tilt exceptions (reference §3.8: 20–25, 27–2C, 40–46, 60/61).
fn is_tilt(code: u8) -> bool {
    matches!(code, 0x20..=0x25 | 0x27..=0x2C | 0x40..=0x46 | 0x60 | 0x61)
}

impl DeviceState {
    /// Applies one event of this device; returns whether anything changed.
    pub fn apply(&mut self, stored: &StoredEvent) -> bool {
        let event = &stored.event;
        if event.seq <= self.last_seq {
            return false;
        }
        let before = self.clone();
        let at = stored.happened_us();
        self.last_seq = event.seq;
        self.last_event_us = at;
        match &event.body {
            EventBody::Sas(sas) => self.sas(sas, at),
            EventBody::Tv(tv) => self.tv_event(tv, at),
            EventBody::Relay(RelayEvent::State { on, reason }) => {
                self.relay = Some(RelayState {
                    on: *on,
                    reason: reason.clone(),
                    switched_us: at,
                });
            }
            EventBody::CommandResult(result) if result.outcome == CommandOutcome::Succeeded => {
                self.command_reply(result.reply.as_ref(), at)
            }
            EventBody::CommandResult(_) | EventBody::Shed | EventBody::Synthetic { .. } => {}
        }
        // Sequence and time move on every event; a change is anything else.
        let mut unchanged = before.clone();
        unchanged.last_seq = self.last_seq;
        unchanged.last_event_us = self.last_event_us;
        unchanged != *self
    }

    fn egm_mut(&mut self) -> &mut EgmState {
        self.egm.get_or_insert_with(|| EgmState {
            online: true,
            ..EgmState::default()
        })
    }

    fn sas(&mut self, sas: &SasEvent, at: i64) {
        let egm = self.egm_mut();
        match sas {
            SasEvent::Link { up } => {
                if egm.since_us.is_none() || egm.online != *up {
                    egm.since_us = Some(at);
                }
                egm.online = *up;
                return;
            }
            SasEvent::Exception { code } | SasEvent::RealTimeEvent { code, .. } => {
                let noted = Noted {
                    code: *code,
                    name: names::exception_name(*code),
                    at_us: at,
                };
                if let Some((door, open)) = door(*code) {
                    if open {
                        egm.doors_open.insert(door.to_owned());
                    } else {
                        egm.doors_open.remove(door);
                    }
                }
                if is_tilt(*code) {
                    egm.tilt = Some(noted.clone());
                }
                match *code {
                    exception::HANDPAY_RESET => {
                        egm.handpay_pending = None;
                        egm.handpay_since_us = None;
                    }
                    exception::AC_POWER_LOST => egm.power_on = Some(false),
                    exception::AC_POWER_APPLIED => egm.power_on = Some(true),
                    _ => {}
                }
                egm.last_exception = Some(noted);
            }
            SasEvent::Meters { game: 0, meters } => {
                if let Some(credits) = meters.iter().find(|m| m.code == meter::CURRENT_CREDITS) {
                    egm.credits = Some(credits.value);
                }
            }
            SasEvent::Handpay { credits, .. } => {
                if egm.handpay_pending.is_none() {
                    egm.handpay_since_us = Some(at);
                }
                egm.handpay_pending = Some(*credits);
            }
            SasEvent::Data {
                command: outpost_sas::data::MACHINE_INFO,
                payload,
            } => {
                // A reply that does not read leaves what the machine said before.
                if let Ok(info) = outpost_sas::data::machine_info(payload) {
                    egm.identity = Some(MachineIdentity {
                        denomination_cents: info.denomination_cents(),
                        game_id: info.game_id,
                        paytable: info.paytable,
                        base_percent: info.base_percent,
                        max_bet_credits: info.max_bet,
                        denomination_code: info.denomination_code,
                    });
                }
            }
            SasEvent::Meters { .. } | SasEvent::RomSignature { .. } | SasEvent::Data { .. } => {}
        }
        // Any answer with data means the machine is there.
        if !egm.online {
            egm.online = true;
            egm.since_us = Some(at);
        }
        egm.last_poll_us = at;
    }

    fn tv_event(&mut self, tv: &TvEvent, at: i64) {
        let state = self.tv.get_or_insert_with(TvState::default);
        match tv {
            TvEvent::Telemetry {
                answers,
                screen_on,
                volume,
                input,
                app,
                ethernet,
            } => {
                if state.since_us.is_none() || state.up != *answers {
                    state.since_us = Some(at);
                }
                state.up = *answers;
                if *answers {
                    state.last_seen_us = Some(at);
                    state.screen_on = *screen_on;
                    state.volume = *volume;
                    state.input = input.clone();
                    state.app = app.clone();
                }
                state.ethernet = Some(ethernet.clone());
            }
            TvEvent::Link { up } => {
                if state.since_us.is_none() || state.up != *up {
                    state.since_us = Some(at);
                }
                state.up = *up;
                if *up {
                    state.last_seen_us = Some(at);
                }
            }
            TvEvent::Recovery { step, detail } => {
                state.healing = Some(Healing {
                    step: step.clone(),
                    detail: detail.clone(),
                    at_us: at,
                });
            }
        }
    }

    fn command_reply(&mut self, reply: Option<&CommandReply>, at: i64) {
        match reply {
            Some(CommandReply::Play { enabled }) => self.egm_mut().play_enabled = Some(*enabled),
            Some(CommandReply::BillAcceptor { enabled }) => {
                self.egm_mut().bill_acceptor_enabled = Some(*enabled)
            }
            Some(CommandReply::Screenshot {
                bulk_id,
                bytes,
                sha256,
            }) => {
                self.tv.get_or_insert_with(TvState::default).last_screenshot = Some(Screenshot {
                    at_us: at,
                    bulk_id: bulk_id.clone(),
                    bytes: *bytes,
                    sha256: sha256.clone(),
                });
            }
            Some(CommandReply::Volume { level }) => {
                self.tv.get_or_insert_with(TvState::default).volume = Some(*level)
            }
            Some(CommandReply::Relay { on, .. }) => {
                let relay = self.relay.get_or_insert_with(RelayState::default);
                if relay.on != *on {
                    relay.switched_us = at;
                }
                relay.on = *on;
            }
            _ => {}
        }
    }
}

/// Every device's state, keyed by (edge, device).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceStates {
    states: BTreeMap<(String, String), DeviceState>,
    dirty: BTreeSet<(String, String)>,
}

impl DeviceStates {
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies one event of `edge`; returns the device's new state when it changed.
    pub fn apply(&mut self, edge: &str, stored: &StoredEvent) -> Option<&DeviceState> {
        let device = &stored.event.device;
        if device.is_empty() {
            return None;
        }
        let key = (edge.to_owned(), device.clone());
        // A command's result or a shed tombstone says nothing about a device not seen yet (an
        // interrupted command's result is filed under the edge itself).
        if matches!(
            stored.event.body,
            EventBody::CommandResult(_) | EventBody::Shed
        ) && !self.states.contains_key(&key)
        {
            return None;
        }
        let state = self
            .states
            .entry(key.clone())
            .or_insert_with(|| DeviceState {
                edge: edge.to_owned(),
                device: device.clone(),
                ..DeviceState::default()
            });
        let before = state.last_seq;
        let changed = state.apply(stored);
        if state.last_seq != before {
            self.dirty.insert(key.clone());
        }
        if changed { self.states.get(&key) } else { None }
    }

    /// Restores one device's state.
    pub fn restore(&mut self, state: DeviceState) {
        self.states
            .insert((state.edge.clone(), state.device.clone()), state);
    }

    pub fn get(&self, edge: &str, device: &str) -> Option<&DeviceState> {
        self.states.get(&(edge.to_owned(), device.to_owned()))
    }

    pub fn all(&self) -> impl Iterator<Item = &DeviceState> {
        self.states.values()
    }

    /// The states changed since the last call.
    pub fn take_dirty(&mut self) -> Vec<&DeviceState> {
        let dirty = std::mem::take(&mut self.dirty);
        dirty.iter().filter_map(|k| self.states.get(k)).collect()
    }
}
