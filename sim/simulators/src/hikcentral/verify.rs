//! The gateway's side of the Artemis signature (reference §9.1), written apart from the hub's
//! signer (`outpost-artemis::sign`) so the two cannot share one misunderstanding: it starts from
//! the request as received — whatever case the names have, whatever order they came in, with
//! percent-encoded query values — and uses `ring`'s HMAC and constant-time verification.
//!
//! Invariants: a request is accepted only if its `x-ca-key` is the configured key, its signature
//! verifies over exactly the headers it names, a `Content-MD5` it sends matches the body, a
//! timestamp it sends lies within the window, and a nonce it sends was not seen in that window.

use std::collections::{BTreeMap, HashMap, VecDeque};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// Why a request was refused; `code` is the gateway code the simulator answers with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: &'static str,
    pub reason: String,
}

fn refuse(code: &'static str, reason: impl Into<String>) -> Refusal {
    Refusal {
        code,
        reason: reason.into(),
    }
}

/// What the verifier needs of a received request.
#[derive(Debug)]
pub struct Received<'a> {
    pub method: &'a str,
    pub path: &'a str,
    /// The raw query string (without `?`), as it came on the wire.
    pub query: Option<&'a str>,
    /// Header names as received (any case) with their values.
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
}

/// Checks signatures, timestamps and nonces for one app key.
pub struct Verifier {
    app_key: String,
    key: ring::hmac::Key,
    window_ms: i64,
    /// Nonces seen, with their timestamps, oldest first (and a set for lookups).
    nonces: VecDeque<(i64, String)>,
    seen: HashMap<String, i64>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("app_key", &self.app_key)
            .finish_non_exhaustive()
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) => hex(h).zip(hex(l)).map(|(h, l)| h << 4 | l),
            _ => None,
        };
        match (escaped, bytes[i]) {
            (Some(b), _) => {
                out.push(b);
                i += 3;
            }
            (None, b'+') => {
                out.push(b' ');
                i += 1;
            }
            (None, other) => {
                out.push(other);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Verifier {
    pub fn new(app_key: &str, app_secret: &str, window_ms: i64) -> Self {
        Verifier {
            app_key: app_key.to_owned(),
            key: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, app_secret.as_bytes()),
            window_ms,
            nonces: VecDeque::new(),
            seen: HashMap::new(),
        }
    }

    /// Verifies `request` at `now_ms`; on success returns the signed header names (lower-case).
    pub fn verify(&mut self, request: &Received<'_>, now_ms: i64) -> Result<Vec<String>, Refusal> {
        let headers: BTreeMap<String, &str> = request
            .headers
            .iter()
            .map(|(n, v)| (n.to_ascii_lowercase(), v.trim()))
            .collect();
        let key = headers
            .get("x-ca-key")
            .ok_or_else(|| refuse("0x02401000", "x-ca-key is missing"))?;
        if *key != self.app_key {
            return Err(refuse(
                "0x02401001",
                format!("no partner with AppKey {key}"),
            ));
        }
        let presented = headers
            .get("x-ca-signature")
            .ok_or_else(|| refuse("0x02401002", "x-ca-signature is missing"))?;
        let mut names: Vec<String> = headers
            .get("x-ca-signature-headers")
            .map(|list| {
                list.split(',')
                    .map(|n| n.trim().to_ascii_lowercase())
                    .filter(|n| !n.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names.dedup();

        let mut text = format!("{}\n", request.method.to_uppercase());
        for standard in ["accept", "content-md5", "content-type", "date"] {
            if let Some(value) = headers.get(standard) {
                text += value;
                text += "\n";
            }
        }
        for name in &names {
            let value = headers.get(name.as_str()).ok_or_else(|| {
                refuse("0x02401003", format!("signed header {name} was not sent"))
            })?;
            text += &format!("{name}:{value}\n");
        }
        text += request.path;
        let mut params: Vec<(String, Option<String>)> = request
            .query
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|pair| match pair.split_once('=') {
                Some((k, v)) => (percent_decode(k), Some(percent_decode(v))),
                None => (percent_decode(pair), None),
            })
            .collect();
        let is_form = headers
            .get("content-type")
            .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
        if is_form {
            let body = String::from_utf8_lossy(request.body);
            params.extend(body.split('&').filter(|p| !p.is_empty()).map(|pair| {
                match pair.split_once('=') {
                    Some((k, v)) => (percent_decode(k), Some(percent_decode(v))),
                    None => (percent_decode(pair), None),
                }
            }));
        }
        if !params.is_empty() {
            params.sort_by(|a, b| a.0.cmp(&b.0));
            let rendered: Vec<String> = params
                .into_iter()
                .map(|(k, v)| match v {
                    Some(v) if !v.is_empty() => format!("{k}={v}"),
                    _ => k,
                })
                .collect();
            text += "?";
            text += &rendered.join("&");
        }
        let signature = STANDARD
            .decode(presented)
            .map_err(|_| refuse("0x02401003", "x-ca-signature is not base64"))?;
        ring::hmac::verify(&self.key, text.as_bytes(), &signature)
            .map_err(|_| refuse("0x02401003", "signature incorrect"))?;

        if let Some(md5) = headers.get("content-md5") {
            let actual = STANDARD.encode(md5_digest(request.body));
            if *md5 != actual {
                return Err(refuse("0x02401003", "Content-MD5 does not match the body"));
            }
        }
        let timestamp = match headers.get("x-ca-timestamp") {
            Some(ts) => {
                let ts: i64 = ts
                    .parse()
                    .map_err(|_| refuse("0x02401003", "x-ca-timestamp is not a number"))?;
                if (now_ms - ts).abs() > self.window_ms {
                    return Err(refuse(
                        "0x02401003",
                        format!("x-ca-timestamp is {} s away from now", (now_ms - ts) / 1000),
                    ));
                }
                Some(ts)
            }
            None => None,
        };
        if let Some(nonce) = headers.get("x-ca-nonce") {
            self.forget_before(now_ms - self.window_ms);
            if self.seen.contains_key(*nonce) {
                return Err(refuse("0x02401003", format!("nonce {nonce} replayed")));
            }
            let at = timestamp.unwrap_or(now_ms);
            self.seen.insert((*nonce).to_owned(), at);
            self.nonces.push_back((now_ms, (*nonce).to_owned()));
        }
        Ok(names)
    }

    fn forget_before(&mut self, cutoff_ms: i64) {
        while let Some((at, _)) = self.nonces.front() {
            if *at >= cutoff_ms {
                break;
            }
            if let Some((_, nonce)) = self.nonces.pop_front() {
                self.seen.remove(&nonce);
            }
        }
    }
}

fn md5_digest(input: &[u8]) -> [u8; 16] {
    use md5::Digest;
    md5::Md5::digest(input).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATH: &str = "/artemis/api/resource/v1/person/single/add";

    fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    fn verify(pairs: &[(&str, &str)], now_ms: i64) -> Result<Vec<String>, Refusal> {
        let mut verifier = Verifier::new("12345678", "abcdefghijklmnopqrst", 15 * 60 * 1000);
        let hs = headers(pairs);
        verifier.verify(
            &Received {
                method: "POST",
                path: PATH,
                query: None,
                headers: &hs,
                body: b"{}",
            },
            now_ms,
        )
    }

    #[test]
    fn vector_v1_is_accepted_within_the_timestamp_window() {
        let names = verify(
            &[
                ("Accept", "*/*"),
                ("Content-Type", "application/json"),
                ("X-Ca-Key", "12345678"),
                ("X-Ca-Nonce", "2b9f0c6e-8f1a-4c3b-9d2e-7a6b5c4d3e2f"),
                ("X-Ca-Timestamp", "1700000000000"),
                (
                    "X-Ca-Signature-Headers",
                    "X-Ca-Key,X-Ca-Nonce,X-Ca-Timestamp",
                ),
                (
                    "X-Ca-Signature",
                    "zlXB3xd8PUmphFq0ClOoWRzkdlE0q+bH5zGyL/3AAGc=",
                ),
            ],
            1_700_000_060_000,
        )
        .expect("V1 verifies");
        assert_eq!(names, ["x-ca-key", "x-ca-nonce", "x-ca-timestamp"]);
    }

    #[test]
    fn vector_v1_is_refused_twenty_minutes_later() {
        let refusal = verify(
            &[
                ("accept", "*/*"),
                ("content-type", "application/json"),
                ("x-ca-key", "12345678"),
                ("x-ca-nonce", "2b9f0c6e-8f1a-4c3b-9d2e-7a6b5c4d3e2f"),
                ("x-ca-timestamp", "1700000000000"),
                (
                    "x-ca-signature-headers",
                    "x-ca-key,x-ca-nonce,x-ca-timestamp",
                ),
                (
                    "x-ca-signature",
                    "zlXB3xd8PUmphFq0ClOoWRzkdlE0q+bH5zGyL/3AAGc=",
                ),
            ],
            1_700_000_000_000 + 20 * 60 * 1000,
        )
        .expect_err("too old");
        assert!(refusal.reason.contains("x-ca-timestamp"));
    }

    #[test]
    fn vectors_v0_and_v3_are_accepted() {
        verify(
            &[
                ("accept", "*/*"),
                ("content-type", "application/json"),
                ("x-ca-key", "12345678"),
                (
                    "x-ca-signature",
                    "9RgbChxnF12zGVpoA8Qrapt37527hSC9Ij5W/BrT83c=",
                ),
            ],
            0,
        )
        .expect("V0 verifies");
        verify(
            &[
                ("accept", "application/json"),
                ("content-type", "application/json"),
                ("x-ca-key", "12345678"),
                ("x-ca-signature-headers", "x-ca-key"),
                (
                    "x-ca-signature",
                    "gTYAy3HywUBtO5VCpnDjaTcLUPrKcoxa4hOhwJPgTYc=",
                ),
            ],
            0,
        )
        .expect("V3 verifies");
    }

    #[test]
    fn a_changed_accept_header_breaks_the_signature() {
        let refusal = verify(
            &[
                ("accept", "application/json"),
                ("content-type", "application/json"),
                ("x-ca-key", "12345678"),
                (
                    "x-ca-signature",
                    "9RgbChxnF12zGVpoA8Qrapt37527hSC9Ij5W/BrT83c=",
                ),
            ],
            0,
        )
        .expect_err("Accept is signed");
        assert_eq!(refusal.code, "0x02401003");
    }

    #[test]
    fn an_unknown_key_is_refused_before_the_signature_is_looked_at() {
        let refusal =
            verify(&[("x-ca-key", "999"), ("x-ca-signature", "x")], 0).expect_err("unknown key");
        assert_eq!(refusal.code, "0x02401001");
    }

    #[test]
    fn percent_encoded_query_values_are_signed_decoded() {
        assert_eq!(percent_decode("Head%20Office"), "Head Office");
        assert_eq!(percent_decode("a+b%2"), "a b%2");
    }
}
