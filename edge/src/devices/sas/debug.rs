//! Debug commands for field engineers: decode a SAS frame copied from a line capture, or compute
//! a CRC as it goes on the wire. Output is JSON (or a precise error and exit status 1).

use outpost_sas::{Expectation, Reply, ReplyDecoder, Request, crc16_kermit};
use serde_json::json;

/// Why a frame could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DebugError {
    #[error("not hex: {0}")]
    Hex(String),
    #[error("empty frame")]
    Empty,
    #[error("host frame: {0}")]
    Request(#[from] outpost_sas::request::RequestError),
    #[error("EGM frame: {0}")]
    Reply(#[from] outpost_sas::ReplyError),
}

/// Parses hex with optional spaces, colons or a `0x` prefix per byte.
pub fn parse_hex(text: &str) -> Result<Vec<u8>, DebugError> {
    let cleaned: String = text
        .split(|c: char| c.is_whitespace() || c == ':' || c == ',')
        .map(|part| part.trim_start_matches("0x").trim_start_matches("0X"))
        .collect();
    if cleaned.is_empty() {
        return Err(DebugError::Empty);
    }
    hex::decode(&cleaned).map_err(|e| DebugError::Hex(format!("{text:?}: {e}")))
}

fn hex_spaced(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `sas crc HEX`: the CRC-16/KERMIT of the bytes, as a value and as the two wire bytes (LSB first).
pub fn crc(text: &str) -> Result<serde_json::Value, DebugError> {
    let bytes = parse_hex(text)?;
    let crc = crc16_kermit(&bytes);
    Ok(json!({
        "bytes": hex_spaced(&bytes),
        "crc": format!("0x{crc:04X}"),
        "wire": hex_spaced(&crc.to_le_bytes()),
    }))
}

fn request_json(request: &Request) -> serde_json::Value {
    match request {
        Request::GeneralPoll { address: 0 } => json!({"type": "global_poll"}),
        Request::GeneralPoll { address } => json!({"type": "general_poll", "address": address}),
        Request::LongPoll {
            address,
            command,
            data,
        } => json!({
            "type": if *address == 0 { "global_long_poll" } else { "long_poll" },
            "address": address,
            "command": format!("{command:02X}"),
            "data": hex_spaced(data),
        }),
    }
}

fn reply_json(reply: &Reply) -> serde_json::Value {
    match reply {
        Reply::Exception(code) => json!({"type": "exception", "code": format!("{code:02X}")}),
        Reply::Ack => json!({"type": "ack"}),
        Reply::Nack => json!({"type": "nack"}),
        Reply::Busy => json!({"type": "busy"}),
        Reply::Data { command, payload } => json!({
            "type": "data", "command": format!("{command:02X}"), "payload": hex_spaced(payload),
        }),
        Reply::RealTimeEvent { code, data } => json!({
            "type": "real_time_event", "code": format!("{code:02X}"), "data": hex_spaced(data),
        }),
        Reply::RomSignature(signature) => {
            json!({"type": "rom_signature", "signature": format!("{signature:04X}")})
        }
    }
}

/// `sas decode --from host HEX`.
pub fn decode_host(text: &str) -> Result<serde_json::Value, DebugError> {
    let bytes = parse_hex(text)?;
    let request = Request::decode(&bytes)?;
    let mut out = request_json(&request);
    out["bytes"] = json!(hex_spaced(&bytes));
    Ok(out)
}

/// `sas decode --from egm HEX [--request HEX]`. Without the request, the reply is read against a
/// long poll of the command it echoes; a single byte is ambiguous and all readings are listed.
pub fn decode_egm(text: &str, request: Option<&str>) -> Result<serde_json::Value, DebugError> {
    let bytes = parse_hex(text)?;
    let expectation = match request {
        Some(request) => {
            let request = Request::decode(&parse_hex(request)?)?;
            Expectation::for_request(&request, false).ok_or(DebugError::Reply(
                outpost_sas::ReplyError::Malformed("a global poll gets no reply".into()),
            ))?
        }
        None => match bytes.as_slice() {
            [] => return Err(DebugError::Empty),
            [byte] => {
                let mut readings = vec![
                    json!({"after": "general poll", "type": "exception", "code": format!("{byte:02X}")}),
                ];
                if (1..=127).contains(byte) {
                    readings.push(json!({"after": "control poll", "type": "ack", "address": byte}));
                } else if (0x81..=0xFF).contains(byte) {
                    readings.push(
                        json!({"after": "any long poll", "type": "nack", "address": byte & 0x7F}),
                    );
                }
                return Ok(json!({"bytes": hex_spaced(&bytes), "ambiguous": readings}));
            }
            [address, 0xFF, ..] => Expectation::GeneralPoll {
                address: *address,
                real_time: true,
            },
            [address, command, ..] => {
                let address = if *command == 0x00 {
                    *address
                } else {
                    *address & 0x7F
                };
                Expectation::for_request(&Request::long(address.max(1), *command), false).ok_or(
                    DebugError::Reply(outpost_sas::ReplyError::Malformed(
                        "address 0 never replies".into(),
                    )),
                )?
            }
        },
    };
    let mut decoder = ReplyDecoder::new(expectation);
    decoder.feed(&bytes);
    let reply = decoder.finish()?;
    let mut out = reply_json(&reply);
    out["bytes"] = json!(hex_spaced(&bytes));
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn crc_prints_the_wire_bytes_lsb_first() {
        let out = crc("01 1A 00 00 12 34").unwrap();
        assert_eq!(out["crc"], "0x2D45");
        assert_eq!(out["wire"], "45 2D");
    }

    #[test]
    fn a_host_long_poll_decodes_with_its_data() {
        let out = decode_host("01 2F 05 00 00 00 01 0C FB 3C").unwrap();
        assert_eq!(out["type"], "long_poll");
        assert_eq!(out["command"], "2F");
        assert_eq!(out["data"], "05 00 00 00 01 0C");
    }

    #[test]
    fn a_host_frame_with_a_bad_crc_is_a_precise_error() {
        let err = decode_host("01 2F 05 00 00 00 01 0C FB 3D").unwrap_err();
        assert!(err.to_string().contains("bad CRC"), "{err}");
    }

    #[test]
    fn an_egm_data_reply_decodes_against_the_command_it_echoes() {
        let out = decode_egm("01 1A 00 00 12 34 45 2D", None).unwrap();
        assert_eq!(out["type"], "data");
        assert_eq!(out["payload"], "00 00 12 34");
        let err = decode_egm("01 1A 00 00 12 34 45 2E", None).unwrap_err();
        assert!(err.to_string().contains("CRC"), "{err}");
    }

    #[test]
    fn a_single_egm_byte_lists_its_readings() {
        let out = decode_egm("7E", None).unwrap();
        assert_eq!(out["ambiguous"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn bad_hex_is_refused() {
        assert!(matches!(parse_hex("01 zz"), Err(DebugError::Hex(_))));
    }
}
