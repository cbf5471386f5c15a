//! The Artemis client: signed JSON POSTs to HikCentral over verified TLS, every answer classified.
//!
//! Invariants: the body is serialised once and exactly those bytes are signed and sent, with
//! `Accept` and `Content-Type` set explicitly (reqwest would add `Accept: */*`, which is signed);
//! the server is verified by a pinned certificate fingerprint or a CA bundle, never not at all;
//! at most `max_concurrent_requests` requests are in flight; a request that may have reached the
//! server but got no answer is [`Class::OutcomeUnknown`], one that never left is
//! [`Class::Retryable`]; the app secret is never logged.

use std::sync::Arc;
use std::time::{Duration, Instant};

use outpost_artemis::api::endpoint_label;
use outpost_artemis::{Class, Envelope, SignedForm, classify_code, classify_http, sign_json_post};
use outpost_config::HikCentralConfig;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::metrics;

/// What went wrong with one request; [`ArtemisError::class`] says what to do about it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ArtemisError {
    #[error("{endpoint}: not sent: {detail}")]
    NotSent { endpoint: String, detail: String },
    #[error("{endpoint}: sent, but no answer: {detail}")]
    NoAnswer { endpoint: String, detail: String },
    #[error("{endpoint}: the server certificate does not match the pinned fingerprint")]
    PinMismatch { endpoint: String },
    #[error("{endpoint}: HTTP {status}{}", retry_after.map(|d| format!(" (retry after {} s)", d.as_secs())).unwrap_or_default())]
    Http {
        endpoint: String,
        status: u16,
        retry_after: Option<Duration>,
        class: Class,
    },
    #[error("{endpoint}: code {code}: {msg}")]
    Api {
        endpoint: String,
        code: String,
        msg: String,
        class: Class,
    },
    #[error("{endpoint}: answer does not decode: {detail}")]
    Decode { endpoint: String, detail: String },
}

impl ArtemisError {
    pub fn class(&self) -> Class {
        match self {
            ArtemisError::NotSent { .. } => Class::Retryable,
            ArtemisError::NoAnswer { .. } | ArtemisError::Decode { .. } => Class::OutcomeUnknown,
            ArtemisError::PinMismatch { .. } => Class::Auth,
            ArtemisError::Http { class, .. } | ArtemisError::Api { class, .. } => *class,
        }
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ArtemisError::Http { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientSetupError {
    #[error("hikcentral.pin_sha256 is not 64 hex digits")]
    BadPin,
    #[error("hikcentral.ca_file {path}: {detail}")]
    CaFile { path: String, detail: String },
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    #[error("HTTP client: {0}")]
    Http(String),
}

/// Accepts exactly one server certificate, by the SHA-256 of its DER; handshake signatures are
/// still verified.
#[derive(Debug)]
struct PinnedCertificate {
    sha256: [u8; 32],
    provider: Arc<rustls::crypto::CryptoProvider>,
}

const PIN_MISMATCH: &str = "server certificate does not match the pinned SHA-256";

impl ServerCertVerifier for PinnedCertificate {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let actual: [u8; 32] = Sha256::digest(end_entity.as_ref()).into();
        // The fingerprint is public (the server shows its certificate to anyone): no secret to
        // protect with a constant-time comparison.
        if actual == self.sha256 {
            Ok(ServerCertVerified::assertion())
        } else {
            tracing::error!(
                presented = %hex::encode(actual),
                "HikCentral certificate does not match hikcentral.pin_sha256; refusing to talk to it"
            );
            Err(rustls::Error::General(PIN_MISMATCH.into()))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Parses a SHA-256 fingerprint written as hex, with or without colons.
pub fn parse_pin(text: &str) -> Option<[u8; 32]> {
    let hex_digits: String = text.chars().filter(|c| *c != ':').collect();
    hex::decode(hex_digits).ok()?.try_into().ok()
}

fn tls_config(config: &HikCentralConfig) -> Result<rustls::ClientConfig, ClientSetupError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    if !config.pin_sha256.is_empty() {
        let sha256 = parse_pin(&config.pin_sha256).ok_or(ClientSetupError::BadPin)?;
        return Ok(builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinnedCertificate { sha256, provider }))
            .with_no_client_auth());
    }
    let ca_error = |detail: String| ClientSetupError::CaFile {
        path: config.ca_file.clone(),
        detail,
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in
        CertificateDer::pem_file_iter(&config.ca_file).map_err(|e| ca_error(e.to_string()))?
    {
        roots
            .add(cert.map_err(|e| ca_error(e.to_string()))?)
            .map_err(|e| ca_error(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(ca_error("no certificate in the file".into()));
    }
    Ok(builder.with_root_certificates(roots).with_no_client_auth())
}

/// The Artemis client of one HikCentral server.
#[derive(Clone)]
pub struct ArtemisClient {
    base: String,
    app_key: String,
    app_secret: Arc<str>,
    form: SignedForm,
    http: reqwest::Client,
    in_flight: Arc<tokio::sync::Semaphore>,
}

impl std::fmt::Debug for ArtemisClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArtemisClient")
            .field("base", &self.base)
            .field("app_key", &self.app_key)
            .finish_non_exhaustive()
    }
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

impl ArtemisClient {
    pub fn new(config: &HikCentralConfig) -> Result<Self, ClientSetupError> {
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls_config(config)?)
            .connect_timeout(Duration::from_millis(config.connect_timeout_ms))
            .timeout(Duration::from_millis(config.request_timeout_ms))
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| ClientSetupError::Http(e.to_string()))?;
        Ok(ArtemisClient {
            base: config.base_url.trim_end_matches('/').to_owned(),
            app_key: config.app_key.clone(),
            app_secret: config.app_secret.as_str().into(),
            form: SignedForm::KeyNonceTimestamp,
            http,
            in_flight: Arc::new(tokio::sync::Semaphore::new(config.max_concurrent_requests)),
        })
    }

    /// POSTs `body` to `path`; `Ok` only for code 0.
    pub async fn call(&self, path: &str, body: &Value) -> Result<Envelope, ArtemisError> {
        let endpoint = endpoint_label(path).to_owned();
        let bytes = body.to_string().into_bytes();
        let _permit = self
            .in_flight
            .acquire()
            .await
            .map_err(|_| ArtemisError::NotSent {
                endpoint: endpoint.clone(),
                detail: "client closed".into(),
            })?;
        let nonce = uuid::Uuid::new_v4().to_string();
        let signed = sign_json_post(
            &self.app_key,
            &self.app_secret,
            path,
            "application/json",
            self.form,
            outpost_process::clock::unix_ms(),
            &nonce,
        );
        let mut request = self.http.post(format!("{}{path}", self.base));
        for (name, value) in &signed.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let started = Instant::now();
        let result = self.exchange(&endpoint, request.body(bytes)).await;
        let label = match &result {
            Ok(e) => e.code.to_string(),
            Err(ArtemisError::Api { code, .. }) => code.clone(),
            Err(ArtemisError::Http { status, .. }) => format!("http_{status}"),
            Err(ArtemisError::Decode { .. }) => "undecodable".into(),
            Err(ArtemisError::PinMismatch { .. }) => "pin_mismatch".into(),
            Err(ArtemisError::NotSent { .. }) => "not_sent".into(),
            Err(ArtemisError::NoAnswer { .. }) => "no_answer".into(),
        };
        metrics::HIK_REQUESTS
            .with_label_values(&[endpoint.as_str(), label.as_str()])
            .inc();
        metrics::HIK_REQUEST_SECONDS
            .with_label_values(&[endpoint.as_str()])
            .observe(started.elapsed().as_secs_f64());
        if let Err(err) = &result {
            tracing::debug!(endpoint = %endpoint, class = err.class().as_str(), error = %err, "HikCentral request failed");
        }
        result
    }

    async fn exchange(
        &self,
        endpoint: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<Envelope, ArtemisError> {
        let response = match request.send().await {
            Ok(response) => response,
            Err(err) => {
                let detail = error_chain(&err);
                if detail.contains(PIN_MISMATCH) {
                    return Err(ArtemisError::PinMismatch {
                        endpoint: endpoint.into(),
                    });
                }
                return Err(if err.is_connect() {
                    ArtemisError::NotSent {
                        endpoint: endpoint.into(),
                        detail,
                    }
                } else {
                    ArtemisError::NoAnswer {
                        endpoint: endpoint.into(),
                        detail,
                    }
                });
            }
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = response.bytes().await.map_err(|e| ArtemisError::NoAnswer {
            endpoint: endpoint.into(),
            detail: error_chain(&e),
        })?;
        // The gateway answers JSON whatever Content-Type it announces; business errors come with
        // HTTP 200, gateway errors sometimes with a real status and an envelope.
        let envelope = Envelope::parse(&body);
        if !(200..300).contains(&status) {
            let class = match &envelope {
                Ok(e) if classify_code(&e.code) == Class::Auth => Class::Auth,
                _ => classify_http(status),
            };
            return Err(ArtemisError::Http {
                endpoint: endpoint.into(),
                status,
                retry_after,
                class,
            });
        }
        let envelope = envelope.map_err(|e| ArtemisError::Decode {
            endpoint: endpoint.into(),
            detail: e.to_string(),
        })?;
        match classify_code(&envelope.code) {
            Class::Ok => Ok(envelope),
            class => Err(ArtemisError::Api {
                endpoint: endpoint.into(),
                code: envelope.code.to_string(),
                msg: envelope.msg,
                class,
            }),
        }
    }
}
