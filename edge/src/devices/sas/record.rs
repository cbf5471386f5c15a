//! What the edge stores of what a SAS line learnt: one event per [`HostEvent`] that reports
//! something, in the link's vocabulary. The protocol facts (which replies are meters or handpays,
//! how they read, which exception is no activity) are `outpost_sas::data`'s; this module only
//! names them as stored events.
//!
//! Invariant: nothing an EGM said is dropped. A data reply that does not read is stored raw
//! ([`SasEvent::Data`]) and the reason is logged.

use outpost_link::{EventClass, MeterReading, SasEvent};
use outpost_sas::data::{self, DataReply};
use outpost_sas::egm::REPORTED_METERS;
use outpost_sas::{Bcd, HostEvent};

/// A stored event: its class, body, and the `kind` label of `outpost_sas_events_total`.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub class: EventClass,
    pub event: SasEvent,
    pub kind: &'static str,
}

/// The event to store for `event`, if it reports something.
pub fn record(event: &HostEvent, device: &str) -> Option<Record> {
    let (class, event, kind) = match event {
        HostEvent::Exception { code, .. } if data::is_event(*code) => (
            EventClass::Money,
            SasEvent::Exception { code: *code },
            "exception",
        ),
        HostEvent::Exception { .. } => return None,
        HostEvent::RealTimeEvent { code, data, .. } => (
            EventClass::Money,
            SasEvent::RealTimeEvent {
                code: *code,
                data: data.clone(),
            },
            "real_time_event",
        ),
        HostEvent::Data {
            command, payload, ..
        } => {
            let (event, kind) = data_event(*command, payload, device);
            (EventClass::Money, event, kind)
        }
        HostEvent::RomSignature {
            seed, signature, ..
        } => (
            EventClass::Audit,
            SasEvent::RomSignature {
                seed: *seed,
                signature: *signature,
            },
            "rom_signature",
        ),
        HostEvent::LinkDown { .. } => (EventClass::Audit, SasEvent::Link { up: false }, "link"),
        HostEvent::LinkUp { .. } => (EventClass::Audit, SasEvent::Link { up: true }, "link"),
        HostEvent::Acked { .. } | HostEvent::PollFailed { .. } => return None,
    };
    Some(Record { class, event, kind })
}

fn reading((code, bcd): (u8, Bcd)) -> MeterReading {
    MeterReading {
        code,
        value: bcd.value,
        bytes: bcd.bytes,
    }
}

fn data_event(command: u8, payload: &[u8], device: &str) -> (SasEvent, &'static str) {
    match data::data_reply(command, payload, &REPORTED_METERS) {
        DataReply::Meters(read) => (
            SasEvent::Meters {
                game: read.game,
                meters: read.meters.into_iter().map(reading).collect(),
            },
            "meters",
        ),
        DataReply::LegacyMeters(meters) => (
            SasEvent::Meters {
                game: 0,
                meters: meters.into_iter().map(reading).collect(),
            },
            "meters",
        ),
        DataReply::Handpay { amount } => (
            SasEvent::Handpay {
                credits: amount.value,
                raw: payload.to_vec(),
            },
            "handpay",
        ),
        // Stored as the machine said it; the hub reads it (`outpost_sas::data::machine_info`).
        DataReply::MachineInfo(_) => (raw(command, payload).0, "machine_info"),
        DataReply::GameCount(_) => (raw(command, payload).0, "game_count"),
        DataReply::Other => raw(command, payload),
        DataReply::Unread(err) => {
            tracing::warn!(device, %err, "data reply does not read; stored raw");
            raw(command, payload)
        }
    }
}

fn raw(command: u8, payload: &[u8]) -> (SasEvent, &'static str) {
    (
        SasEvent::Data {
            command,
            payload: payload.to_vec(),
        },
        "data",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_activity_and_acks_are_not_stored_but_every_other_exception_is() {
        assert_eq!(
            record(
                &HostEvent::Exception {
                    address: 1,
                    code: 0
                },
                "egm-1"
            ),
            None
        );
        assert_eq!(
            record(
                &HostEvent::Acked {
                    address: 1,
                    command: 1
                },
                "egm-1"
            ),
            None
        );
        let stored = record(
            &HostEvent::Exception {
                address: 1,
                code: 0x51,
            },
            "egm-1",
        );
        assert_eq!(
            stored.map(|r| (r.class, r.event)),
            Some((EventClass::Money, SasEvent::Exception { code: 0x51 }))
        );
    }

    #[test]
    fn a_data_reply_that_does_not_read_is_stored_raw() {
        let stored = record(
            &HostEvent::Data {
                address: 1,
                command: 0x1C,
                payload: vec![0xFF; 3],
            },
            "egm-1",
        );
        assert_eq!(
            stored.map(|r| (r.event, r.kind)),
            Some((
                SasEvent::Data {
                    command: 0x1C,
                    payload: vec![0xFF; 3]
                },
                "data"
            ))
        );
    }

    #[test]
    fn a_rom_signature_is_an_audit_event_with_the_seed_that_asked_for_it() {
        let stored = record(
            &HostEvent::RomSignature {
                address: 1,
                seed: 7,
                signature: 0xBEEF,
            },
            "egm-1",
        );
        assert_eq!(
            stored.map(|r| (r.class, r.event)),
            Some((
                EventClass::Audit,
                SasEvent::RomSignature {
                    seed: 7,
                    signature: 0xBEEF
                }
            ))
        );
    }
}
