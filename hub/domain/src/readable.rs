//! Events as people read them: the one JSON shape the API, the live stream, the console and
//! MSSQL give (`{"type": "sas.bill", "amount": "20.00", "currency": "USD", ...}`).
//!
//! Invariants: every stored event has exactly one readable form, computed from the event and the
//! floor's config alone; money is a decimal string with its currency; times are RFC 3339; meters
//! and exceptions carry their SAS names next to their codes; nothing the edge said is dropped
//! (what has no better shape is given raw, in hex).

use std::collections::BTreeMap;

use outpost_link::{CommandOutcome, EventBody, RelayEvent, SasEvent, TvEvent};
use outpost_sas::names::{self, MeterUnit, exception};
use serde::{Deserialize, Serialize};

use crate::StoredEvent;
use crate::calendar::rfc3339_utc;
use crate::site::Floor;

/// One event as people read it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReadableEvent {
    pub edge: String,
    /// The event's place in its edge's sequence (from 1, without gaps).
    pub seq: u64,
    pub device: String,
    /// `money`, `audit` or `telemetry`.
    pub class: String,
    /// When it happened: the edge's clock corrected by its offset to the hub's (RFC 3339, UTC).
    pub time: String,
    /// When the hub committed it (RFC 3339, UTC).
    pub received: String,
    #[serde(flatten)]
    pub what: What,
}

/// A meter as people read it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReadableMeter {
    pub code: u8,
    /// The raw reading (credits, cents or a count).
    pub value: u64,
    /// The reading in money, for meters that count money.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amount: Option<String>,
}

/// What happened, by type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type")]
pub enum What {
    /// A bill was accepted; `amount` is absent when the machine did not say its value (4F).
    #[serde(rename = "sas.bill")]
    Bill {
        #[serde(skip_serializing_if = "Option::is_none")]
        amount: Option<String>,
        currency: String,
        exception: u8,
    },
    /// A game started; `wager` in real-time event mode only.
    #[serde(rename = "sas.game_start")]
    GameStart {
        #[serde(skip_serializing_if = "Option::is_none")]
        wager: Option<String>,
        currency: String,
    },
    /// A game ended; `win` in real-time event mode only.
    #[serde(rename = "sas.game_end")]
    GameEnd {
        #[serde(skip_serializing_if = "Option::is_none")]
        win: Option<String>,
        currency: String,
    },
    /// The machine locked up for a handpay of `amount`.
    #[serde(rename = "sas.handpay_pending")]
    HandpayPending {
        amount: String,
        currency: String,
        credits: u64,
    },
    /// The pending handpay was reset (paid).
    #[serde(rename = "sas.handpay_reset")]
    HandpayReset,
    /// A door (`slot`, `drop`, `card_cage`, `cashbox`, `belly`) opened or closed.
    #[serde(rename = "sas.door")]
    Door { door: String, open: bool },
    /// AC power lost or applied.
    #[serde(rename = "sas.power")]
    Power { on: bool },
    /// A ticket: `out` printed at cash-out (3D); `in` inserted (67) or its credits transferred
    /// (68). Amounts are in the machine's ticket meters (`ticket_in_cents`, `ticket_out_cents`);
    /// per-ticket amounts need the validation polls (LP 4D, 70), which the hub does not send.
    #[serde(rename = "sas.ticket")]
    Ticket {
        direction: String,
        step: String,
        exception: u8,
    },
    /// Any other exception, by name.
    #[serde(rename = "sas.exception")]
    Exception { code: u8, name: String },
    /// A real-time event without a better shape, its data in hex.
    #[serde(rename = "sas.real_time_event")]
    RealTimeEvent {
        code: u8,
        name: String,
        data: String,
    },
    /// A meter reading, by meter name.
    #[serde(rename = "sas.meters")]
    Meters {
        game: u16,
        currency: String,
        meters: BTreeMap<String, ReadableMeter>,
    },
    #[serde(rename = "sas.rom_signature")]
    RomSignature { seed: u16, signature: u16 },
    /// The edge lost or regained the machine (comms).
    #[serde(rename = "sas.link")]
    SasLink { up: bool },
    /// A data reply without a better shape, in hex.
    #[serde(rename = "sas.data")]
    SasData { command: u8, payload: String },
    #[serde(rename = "tv.telemetry")]
    TvTelemetry {
        answers: bool,
        screen_on: Option<bool>,
        volume: Option<u8>,
        input: Option<String>,
        app: Option<String>,
        ethernet: String,
    },
    #[serde(rename = "tv.link")]
    TvLink { up: bool },
    /// A self-healing step (`reconnect`, `restart_app`, `reboot`, `power_cycle`).
    #[serde(rename = "tv.recovery")]
    TvRecovery { step: String, detail: String },
    #[serde(rename = "relay.state")]
    RelayState { on: bool, reason: String },
    /// A command ended on the edge.
    #[serde(rename = "command.result")]
    CommandResult {
        command: String,
        /// `succeeded`, `failed`, `expired`, `rejected` or `interrupted`.
        outcome: String,
        detail: String,
        #[cfg_attr(feature = "openapi", schema(value_type = Object))]
        result: Option<serde_json::Value>,
    },
    /// A telemetry event the edge shed under back-pressure: only its place remains.
    #[serde(rename = "shed")]
    Shed,
    #[serde(rename = "synthetic")]
    Synthetic { bytes: usize },
}

/// The type names, in order, for documentation and filters.
pub const TYPES: &[&str] = &[
    "sas.bill",
    "sas.game_start",
    "sas.game_end",
    "sas.handpay_pending",
    "sas.handpay_reset",
    "sas.door",
    "sas.power",
    "sas.ticket",
    "sas.exception",
    "sas.real_time_event",
    "sas.meters",
    "sas.rom_signature",
    "sas.link",
    "sas.data",
    "tv.telemetry",
    "tv.link",
    "tv.recovery",
    "relay.state",
    "command.result",
    "shed",
    "synthetic",
];

impl What {
    /// Its `type`.
    pub fn type_name(&self) -> &'static str {
        match self {
            What::Bill { .. } => "sas.bill",
            What::GameStart { .. } => "sas.game_start",
            What::GameEnd { .. } => "sas.game_end",
            What::HandpayPending { .. } => "sas.handpay_pending",
            What::HandpayReset => "sas.handpay_reset",
            What::Door { .. } => "sas.door",
            What::Power { .. } => "sas.power",
            What::Ticket { .. } => "sas.ticket",
            What::Exception { .. } => "sas.exception",
            What::RealTimeEvent { .. } => "sas.real_time_event",
            What::Meters { .. } => "sas.meters",
            What::RomSignature { .. } => "sas.rom_signature",
            What::SasLink { .. } => "sas.link",
            What::SasData { .. } => "sas.data",
            What::TvTelemetry { .. } => "tv.telemetry",
            What::TvLink { .. } => "tv.link",
            What::TvRecovery { .. } => "tv.recovery",
            What::RelayState { .. } => "relay.state",
            What::CommandResult { .. } => "command.result",
            What::Shed => "shed",
            What::Synthetic { .. } => "synthetic",
        }
    }
}

/// A door exception: which door, and whether it opened.
pub fn door(code: u8) -> Option<(&'static str, bool)> {
    Some(match code {
        0x11 => ("slot", true),
        0x12 => ("slot", false),
        0x13 => ("drop", true),
        0x14 => ("drop", false),
        0x15 => ("card_cage", true),
        0x16 => ("card_cage", false),
        0x19 => ("cashbox", true),
        0x1A => ("cashbox", false),
        0x1D => ("belly", true),
        0x1E => ("belly", false),
        _ => return None,
    })
}

/// Reads `bytes` of BCD as a number (`None` if a nibble is not a digit).
pub fn bcd_value(bytes: &[u8]) -> Option<u64> {
    outpost_sas::Bcd::decode(bytes).ok().map(|b| b.value)
}

/// The credits wagered in a real-time 7E (2 BCD) and won in a 7F (4 BCD).
pub fn rte_wager(data: &[u8]) -> Option<u64> {
    data.get(..2).and_then(bcd_value)
}

pub fn rte_win(data: &[u8]) -> Option<u64> {
    data.get(..4).and_then(bcd_value)
}

/// The readable form of `stored`, an event of `edge`, priced by `floor`.
pub fn readable(floor: &Floor, edge: &str, stored: &StoredEvent) -> ReadableEvent {
    let event = &stored.event;
    let currency = floor.currency.code.clone();
    let money = |credits: u64| {
        floor.money(floor.credits_to_minor(edge, &event.device, u128::from(credits)))
    };
    let what = match &event.body {
        EventBody::Sas(sas) => match sas {
            SasEvent::Exception { code } => exception_what(floor, edge, &event.device, *code),
            SasEvent::RealTimeEvent { code, data } => match *code {
                exception::GAME_STARTED => What::GameStart {
                    wager: rte_wager(data).map(money),
                    currency,
                },
                exception::GAME_ENDED => What::GameEnd {
                    win: rte_win(data).map(money),
                    currency,
                },
                code if names::is_bill(code) || door(code).is_some() => {
                    exception_what(floor, edge, &event.device, code)
                }
                code => What::RealTimeEvent {
                    code,
                    name: names::exception_name(code),
                    data: hex::encode(data),
                },
            },
            SasEvent::Meters { game, meters } => What::Meters {
                game: *game,
                currency,
                meters: meters
                    .iter()
                    .map(|m| {
                        let amount = match names::meter(m.code).unit {
                            MeterUnit::Credits => Some(money(m.value)),
                            MeterUnit::Cents => Some(floor.money(i128::from(m.value))),
                            MeterUnit::Count => None,
                        };
                        (
                            names::meter_name(m.code),
                            ReadableMeter {
                                code: m.code,
                                value: m.value,
                                amount,
                            },
                        )
                    })
                    .collect(),
            },
            SasEvent::Handpay { credits, .. } => What::HandpayPending {
                amount: money(*credits),
                currency,
                credits: *credits,
            },
            SasEvent::RomSignature { seed, signature } => What::RomSignature {
                seed: *seed,
                signature: *signature,
            },
            SasEvent::Link { up } => What::SasLink { up: *up },
            SasEvent::Data { command, payload } => What::SasData {
                command: *command,
                payload: hex::encode(payload),
            },
        },
        EventBody::Tv(tv) => match tv {
            TvEvent::Telemetry {
                answers,
                screen_on,
                volume,
                input,
                app,
                ethernet,
            } => What::TvTelemetry {
                answers: *answers,
                screen_on: *screen_on,
                volume: *volume,
                input: input.clone(),
                app: app.clone(),
                ethernet: ethernet.clone(),
            },
            TvEvent::Link { up } => What::TvLink { up: *up },
            TvEvent::Recovery { step, detail } => What::TvRecovery {
                step: step.clone(),
                detail: detail.clone(),
            },
        },
        EventBody::Relay(RelayEvent::State { on, reason }) => What::RelayState {
            on: *on,
            reason: reason.clone(),
        },
        EventBody::CommandResult(result) => What::CommandResult {
            command: result.id.clone(),
            outcome: outcome_name(result.outcome).into(),
            detail: result.detail.clone(),
            result: result
                .reply
                .as_ref()
                .and_then(|r| serde_json::to_value(r).ok()),
        },
        EventBody::Shed => What::Shed,
        EventBody::Synthetic { payload } => What::Synthetic {
            bytes: payload.len(),
        },
    };
    ReadableEvent {
        edge: edge.to_owned(),
        seq: event.seq,
        device: event.device.clone(),
        class: match event.class {
            outpost_link::EventClass::Money => "money",
            outpost_link::EventClass::Audit => "audit",
            outpost_link::EventClass::Telemetry => "telemetry",
        }
        .into(),
        time: rfc3339_utc(stored.happened_us()),
        received: rfc3339_utc(stored.hub_received_us),
        what,
    }
}

fn exception_what(floor: &Floor, edge: &str, device: &str, code: u8) -> What {
    if names::is_bill(code) {
        return What::Bill {
            amount: names::bill_value(code).map(|major| {
                floor.money(i128::from(major) * i128::from(floor.currency.minor_per_major()))
            }),
            currency: floor.currency.code.clone(),
            exception: code,
        };
    }
    if let Some((door, open)) = door(code) {
        return What::Door {
            door: door.into(),
            open,
        };
    }
    let _ = (edge, device);
    match code {
        exception::GAME_STARTED => What::GameStart {
            wager: None,
            currency: floor.currency.code.clone(),
        },
        exception::GAME_ENDED => What::GameEnd {
            win: None,
            currency: floor.currency.code.clone(),
        },
        exception::HANDPAY_RESET => What::HandpayReset,
        exception::AC_POWER_APPLIED => What::Power { on: true },
        exception::AC_POWER_LOST => What::Power { on: false },
        exception::CASHOUT_TICKET_PRINTED
        | exception::TICKET_INSERTED
        | exception::TICKET_TRANSFERRED => {
            let (direction, step) = match code {
                exception::CASHOUT_TICKET_PRINTED => ("out", "printed"),
                exception::TICKET_INSERTED => ("in", "inserted"),
                _ => ("in", "transferred"),
            };
            What::Ticket {
                direction: direction.into(),
                step: step.into(),
                exception: code,
            }
        }
        code => What::Exception {
            code,
            name: names::exception_name(code),
        },
    }
}

/// An outcome's name in the readable shape.
pub fn outcome_name(outcome: CommandOutcome) -> &'static str {
    match outcome {
        CommandOutcome::Succeeded => "succeeded",
        CommandOutcome::Failed => "failed",
        CommandOutcome::Expired => "expired",
        CommandOutcome::Rejected => "rejected",
        CommandOutcome::Interrupted => "interrupted",
    }
}
