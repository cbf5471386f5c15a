//! The Artemis request signature (reference §2): `X-Ca-Signature = base64(HMAC-SHA256(appSecret,
//! stringToSign))`.
//!
//! Invariants: absent standard headers leave no empty line (the vendor SDK's form, not Alibaba's);
//! signed custom headers appear as `lower-case-name:value`, sorted by name; query and form
//! parameters are signed raw (not percent-encoded), sorted by key, a blank value as the bare key.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use sha2::Sha256;

/// Everything that goes into one request's string-to-sign.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Canonical {
    pub method: String,
    pub accept: Option<String>,
    pub content_md5: Option<String>,
    pub content_type: Option<String>,
    pub date: Option<String>,
    /// The signed custom headers (`x-ca-key`, `x-ca-nonce`, ...), any case, any order.
    pub headers: Vec<(String, String)>,
    /// The full request path, `/artemis/api/...`.
    pub path: String,
    /// Query (and form) parameters, raw values, any order.
    pub params: Vec<(String, String)>,
}

impl Canonical {
    /// The signed header names as `X-Ca-Signature-Headers` carries them: lower-case, sorted,
    /// comma-separated.
    pub fn signature_headers(&self) -> String {
        self.sorted_headers()
            .iter()
            .map(|(name, _)| name.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }

    fn sorted_headers(&self) -> Vec<(String, String)> {
        let mut headers: Vec<(String, String)> = self
            .headers
            .iter()
            .map(|(name, value)| (name.to_ascii_lowercase(), value.clone()))
            .collect();
        headers.sort();
        headers
    }

    /// The string the signature is computed over.
    pub fn string_to_sign(&self) -> String {
        let mut out = String::with_capacity(256);
        out.push_str(&self.method.to_ascii_uppercase());
        out.push('\n');
        for value in [
            &self.accept,
            &self.content_md5,
            &self.content_type,
            &self.date,
        ]
        .into_iter()
        .flatten()
        {
            out.push_str(value);
            out.push('\n');
        }
        for (name, value) in self.sorted_headers() {
            out.push_str(&name);
            out.push(':');
            out.push_str(&value);
            out.push('\n');
        }
        out.push_str(&self.path);
        if !self.params.is_empty() {
            let mut params = self.params.clone();
            params.sort_by(|a, b| a.0.cmp(&b.0));
            out.push('?');
            let joined: Vec<String> = params
                .into_iter()
                .map(|(key, value)| {
                    if value.trim().is_empty() {
                        key
                    } else {
                        format!("{key}={value}")
                    }
                })
                .collect();
            out.push_str(&joined.join("&"));
        }
        out
    }
}

/// `base64(HMAC-SHA256(secret, string_to_sign))`.
pub fn signature(app_secret: &str, string_to_sign: &str) -> String {
    // HMAC accepts a key of any length; this cannot fail.
    let mut mac = match Hmac::<Sha256>::new_from_slice(app_secret.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    mac.update(string_to_sign.as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

/// `Content-MD5`: base64 of the body's MD5 digest (not of its hex form).
pub fn content_md5(body: &[u8]) -> String {
    STANDARD.encode(Md5::digest(body))
}

/// Which custom headers a request signs (reference §2.2). The hub uses the vendor SDK's
/// [`SignedForm::KeyNonceTimestamp`]; the others exist for odd deployments and for the CLI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignedForm {
    /// Form A: no `X-Ca-Signature-Headers` at all (HCP 2.4.1 wiki).
    None,
    /// Form B: `x-ca-key` only.
    KeyOnly,
    /// Form C: `x-ca-key,x-ca-nonce,x-ca-timestamp` (the vendor SDK).
    #[default]
    KeyNonceTimestamp,
}

/// The headers to send with a signed JSON POST, and the string that was signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedRequest {
    /// Header name and value pairs, in the order they should be sent.
    pub headers: Vec<(String, String)>,
    pub string_to_sign: String,
    pub signature: String,
}

/// Signs a JSON POST of `path` the way the vendor SDK does, with `Accept` set explicitly.
pub fn sign_json_post(
    app_key: &str,
    app_secret: &str,
    path: &str,
    accept: &str,
    form: SignedForm,
    timestamp_ms: i64,
    nonce: &str,
) -> SignedRequest {
    let mut custom: Vec<(String, String)> = Vec::new();
    match form {
        SignedForm::None => {}
        SignedForm::KeyOnly => custom.push(("x-ca-key".into(), app_key.into())),
        SignedForm::KeyNonceTimestamp => {
            custom.push(("x-ca-key".into(), app_key.into()));
            custom.push(("x-ca-nonce".into(), nonce.into()));
            custom.push(("x-ca-timestamp".into(), timestamp_ms.to_string()));
        }
    }
    let canonical = Canonical {
        method: "POST".into(),
        accept: Some(accept.into()),
        content_type: Some("application/json".into()),
        headers: custom.clone(),
        path: path.into(),
        ..Canonical::default()
    };
    let string_to_sign = canonical.string_to_sign();
    let signature = signature(app_secret, &string_to_sign);
    let mut headers = vec![
        ("accept".to_owned(), accept.to_owned()),
        ("content-type".to_owned(), "application/json".to_owned()),
    ];
    if form == SignedForm::None {
        // Form A sends the key unsigned: the gateway still needs to know who is calling.
        headers.push(("x-ca-key".into(), app_key.into()));
    } else {
        headers.extend(custom);
        headers.push((
            "x-ca-signature-headers".into(),
            canonical.signature_headers(),
        ));
    }
    headers.push(("x-ca-signature".into(), signature.clone()));
    SignedRequest {
        headers,
        string_to_sign,
        signature,
    }
}
