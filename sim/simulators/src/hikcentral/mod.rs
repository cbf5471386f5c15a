//! `outpost-sim hikcentral`: an HTTPS Artemis gateway that behaves like HikCentral Professional
//! for the calls the hub makes (reference §9): it verifies signatures, timestamps and nonces
//! ([`verify`], written apart from the hub's signer), stores persons, faces and access levels
//! ([`state`]), emulates version profiles and injects faults on demand.
//!
//! Control (unsigned, same port): `GET /__sim/calls`, `GET /__sim/state`, `GET|POST /__sim/faults`
//! (a [`state::Faults`] JSON), `POST /__sim/profile` (`{"profile":"old"|"current"}`).
//!
//! Invariants: a request with a bad signature changes nothing; every request is recorded; a
//! "drop" fault closes the TLS connection without an answer (after or before the commit, as
//! named).

pub mod state;
pub mod verify;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Args;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use serde_json::json;
use sha2::{Digest, Sha256};

use state::{Answer, Faults, Profile, SimState};
use verify::{Received, Verifier};

/// `outpost-sim hikcentral` arguments.
#[derive(Debug, Clone, Args)]
pub struct HikArgs {
    /// Where to listen (HTTPS).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    #[arg(long, default_value = "12345678")]
    pub app_key: String,
    #[arg(long, default_value = "abcdefghijklmnopqrst")]
    pub app_secret: String,
    /// Which HikCentral to be: `current` (3.x) or `old` (2.4: no /person/search, no status).
    #[arg(long, value_enum, default_value = "current")]
    pub profile: ProfileArg,
    /// Certificate kind: a self-signed CA:TRUE one like HikCentral ships (pin it), or a CA:FALSE
    /// leaf with an IP SAN (trust it as a CA bundle).
    #[arg(long, value_enum, default_value = "self-signed-ca")]
    pub cert: CertKind,
    /// Also write the certificate (PEM) here.
    #[arg(long)]
    pub cert_out: Option<std::path::PathBuf>,
    /// Accepted clock skew of `x-ca-timestamp`, seconds.
    #[arg(long, default_value_t = 900)]
    pub timestamp_window_seconds: i64,
    /// Seed for fault draws.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ProfileArg {
    Current,
    Old,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CertKind {
    SelfSignedCa,
    Leaf,
}

/// The simulator: its state behind a lock, and the verifier.
#[derive(Clone)]
pub struct HikSim {
    state: Arc<Mutex<SimState>>,
    verifier: Arc<Mutex<Verifier>>,
}

impl std::fmt::Debug for HikSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HikSim").finish_non_exhaustive()
    }
}

fn now_ms() -> i64 {
    crate::unix_ms()
}

type Body = Full<Bytes>;

fn respond(status: u16, headers: Vec<(&'static str, String)>, body: Vec<u8>) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json;charset=UTF-8"),
    );
    for (name, value) in headers {
        if let Ok(value) = hyper::header::HeaderValue::from_str(&value) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

fn json_response(status: u16, value: &serde_json::Value) -> Response<Body> {
    respond(status, vec![], value.to_string().into_bytes())
}

/// The connection is to be closed without an answer.
#[derive(Debug)]
pub struct DropConnection;

impl std::fmt::Display for DropConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("fault: connection dropped")
    }
}

impl std::error::Error for DropConnection {}

impl HikSim {
    pub fn new(
        app_key: &str,
        app_secret: &str,
        profile: Profile,
        window_s: i64,
        seed: u64,
    ) -> Self {
        HikSim {
            state: Arc::new(Mutex::new(SimState::new(profile, seed))),
            verifier: Arc::new(Mutex::new(Verifier::new(
                app_key,
                app_secret,
                window_s * 1000,
            ))),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SimState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn set_faults(&self, faults: Faults) {
        self.lock().faults = faults;
    }

    pub fn set_profile(&self, profile: Profile) {
        self.lock().profile = profile;
    }

    pub fn snapshot(&self) -> serde_json::Value {
        self.lock().snapshot()
    }

    pub fn calls(&self) -> Vec<state::Call> {
        self.lock().calls.clone()
    }

    /// Serves one request.
    pub async fn serve(
        &self,
        request: Request<Incoming>,
    ) -> Result<Response<Body>, DropConnection> {
        let (parts, body) = request.into_parts();
        let body = match body.collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(_) => return Err(DropConnection),
        };
        let path = parts.uri.path().to_owned();
        if let Some(control) = path.strip_prefix("/__sim/") {
            return Ok(self.control(parts.method.as_str(), control, &body));
        }
        let headers: Vec<(String, String)> = parts
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let latency = self.lock().faults.latency_ms;
        if latency > 0 {
            tokio::time::sleep(Duration::from_millis(latency)).await;
        }
        let now = now_ms();
        let verified = self
            .verifier
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .verify(
                &Received {
                    method: parts.method.as_str(),
                    path: &path,
                    query: parts.uri.query(),
                    headers: &headers,
                    body: &body,
                },
                now,
            );
        let signed = match verified {
            Ok(signed) => signed,
            Err(refusal) => {
                tracing::info!(path = %path, reason = %refusal.reason, "request refused");
                let mut state = self.lock();
                let seq = state.calls.len() as u64 + 1;
                state.calls.push(state::Call {
                    seq,
                    at_ms: now,
                    method: parts.method.to_string(),
                    path: path.clone(),
                    signed_headers: vec![],
                    body: serde_json::Value::Null,
                    http_status: 401,
                    code: Some(refusal.code.to_owned()),
                    committed: false,
                    fault: Some(format!("refused: {}", refusal.reason)),
                });
                return Ok(json_response(
                    401,
                    &json!({"code": refusal.code, "msg": refusal.reason, "data": null}),
                ));
            }
        };
        match self
            .lock()
            .handle(parts.method.as_str(), &path, signed, &body, now)
        {
            Answer::Respond(status, headers, body) => Ok(respond(status, headers, body)),
            Answer::Drop => Err(DropConnection),
        }
    }

    fn control(&self, method: &str, what: &str, body: &[u8]) -> Response<Body> {
        match (method, what) {
            ("GET", "calls") => json_response(200, &json!(self.calls())),
            ("GET", "state") => json_response(200, &self.snapshot()),
            ("GET", "faults") => json_response(200, &json!(self.lock().faults)),
            ("POST", "faults") => match serde_json::from_slice::<Faults>(body) {
                Ok(faults) => {
                    tracing::info!(?faults, "faults set");
                    self.set_faults(faults.clone());
                    json_response(200, &json!(faults))
                }
                Err(e) => json_response(400, &json!({"error": format!("faults: {e}")})),
            },
            ("POST", "profile") => {
                match serde_json::from_slice::<serde_json::Value>(body)
                    .ok()
                    .and_then(|v| serde_json::from_value::<Profile>(v["profile"].clone()).ok())
                {
                    Some(profile) => {
                        self.set_profile(profile);
                        json_response(200, &json!({"profile": profile}))
                    }
                    None => json_response(
                        400,
                        &json!({"error": "send {\"profile\": \"old\"|\"current\"}"}),
                    ),
                }
            }
            _ => json_response(
                404,
                &json!({"error": format!("no control route {method} /__sim/{what}")}),
            ),
        }
    }
}

/// A certificate and key for the simulator, and the certificate's SHA-256 fingerprint.
pub struct SimCertificate {
    pub cert_der: Vec<u8>,
    pub cert_pem: String,
    pub key_der: Vec<u8>,
    pub fingerprint: String,
}

impl std::fmt::Debug for SimCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimCertificate")
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

/// Makes a certificate for `ip`: self-signed CA:TRUE (HikCentral's habit) or a CA:FALSE leaf.
pub fn certificate(kind: CertKind, ip: std::net::IpAddr) -> anyhow::Result<SimCertificate> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(DnType::CommonName, "HikCentral Professional (simulated)");
    match kind {
        CertKind::SelfSignedCa => {
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        }
        CertKind::Leaf => {
            params.is_ca = IsCa::ExplicitNoCa;
            params.subject_alt_names = vec![
                SanType::IpAddress(ip),
                SanType::DnsName("localhost".try_into()?),
            ];
        }
    }
    let cert = params.self_signed(&key)?;
    let cert_der = cert.der().to_vec();
    Ok(SimCertificate {
        fingerprint: hex::encode(Sha256::digest(&cert_der)),
        cert_pem: cert.pem(),
        cert_der,
        key_der: key.serialize_der(),
    })
}

/// A running simulator: its URL, certificate and handle.
#[derive(Debug)]
pub struct RunningHikSim {
    pub url: String,
    pub addr: SocketAddr,
    pub certificate: SimCertificate,
    pub sim: HikSim,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RunningHikSim {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Binds `listen` and serves `sim` over HTTPS until the returned handle is dropped.
pub async fn start(
    listen: SocketAddr,
    sim: HikSim,
    kind: CertKind,
) -> anyhow::Result<RunningHikSim> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let certificate = certificate(kind, addr.ip())?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(
            vec![rustls_pki_types::CertificateDer::from(
                certificate.cert_der.clone(),
            )],
            rustls_pki_types::PrivateKeyDer::Pkcs8(certificate.key_der.clone().into()),
        )?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let served = sim.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, peer)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            let sim = served.clone();
            tokio::spawn(async move {
                let tls = match acceptor.accept(tcp).await {
                    Ok(tls) => tls,
                    Err(e) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                };
                let service = hyper::service::service_fn(move |request| {
                    let sim = sim.clone();
                    async move { sim.serve(request).await }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    Ok(RunningHikSim {
        url: format!("https://{addr}"),
        addr,
        certificate,
        sim,
        task,
    })
}

/// `outpost-sim hikcentral`: prints the URL and the certificate fingerprint, then serves.
pub async fn run(args: HikArgs) -> anyhow::Result<()> {
    let profile = match args.profile {
        ProfileArg::Current => Profile::Current,
        ProfileArg::Old => Profile::Old,
    };
    let sim = HikSim::new(
        &args.app_key,
        &args.app_secret,
        profile,
        args.timestamp_window_seconds,
        args.seed,
    );
    let running = start(args.listen, sim, args.cert).await?;
    if let Some(path) = &args.cert_out {
        std::fs::write(path, &running.certificate.cert_pem)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    }
    println!("{}", running.url);
    println!("sha256 {}", running.certificate.fingerprint);
    tracing::info!(url = %running.url, fingerprint = %running.certificate.fingerprint, "HikCentral simulator listening");
    tokio::signal::ctrl_c().await?;
    Ok(())
}
