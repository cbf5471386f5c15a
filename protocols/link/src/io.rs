//! Frames over quinn streams, and the TLS configurations of both ends (feature `quinn`).
//!
//! Both ends use TLS 1.3 with the process's one crypto provider (ring), the [`crate::ALPN`] of this
//! protocol version, and certificates from the hub's PKI: the hub requires a client certificate
//! that chains to the CA; the edge requires the hub's certificate to chain to the same CA and to
//! carry the configured server name.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{FrameDecoder, FrameError};

/// What can go wrong moving frames or setting up TLS.
#[derive(Debug, thiserror::Error)]
pub enum LinkIoError {
    #[error("reading {what}: {source}")]
    Pem {
        what: String,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    #[error("TLS configuration: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    #[error("QUIC configuration: {0}")]
    QuicTls(#[from] quinn::crypto::rustls::NoInitialCipherSuite),
    #[error("bad frame: {0}")]
    Frame(#[from] FrameError),
    #[error("stream read: {0}")]
    Read(#[from] quinn::ReadError),
    #[error("stream write: {0}")]
    Write(#[from] quinn::WriteError),
    #[error("connection: {0}")]
    Connection(#[from] quinn::ConnectionError),
    #[error("connect: {0}")]
    Connect(#[from] quinn::ConnectError),
    #[error("stream closed by the peer")]
    Closed,
    #[error("peer did not answer within {0:?}")]
    Timeout(Duration),
    #[error("protocol violation: {0}")]
    Protocol(String),
    #[error("session: {0}")]
    Session(#[from] crate::session::SessionError),
    #[error("nothing heard from the peer for {0:?}: the path is gone")]
    PeerSilent(Duration),
}

/// Resolves once nothing has arrived from the peer for `dead_after`: the path is gone. Both ends
/// send keep-alives (every `keepalive_ms`, well under `dead_after`), so a live peer is heard from
/// even when no stream is busy; quinn's idle timeout stays the backstop. Uses tokio's clock, so it
/// runs on simulated time too.
pub async fn peer_silent(connection: &quinn::Connection, dead_after: Duration) -> LinkIoError {
    let mut heard_datagrams = connection.stats().udp_rx.datagrams;
    let mut heard_at = tokio::time::Instant::now();
    let mut every = tokio::time::interval((dead_after / 8).max(Duration::from_millis(10)));
    loop {
        every.tick().await;
        let datagrams = connection.stats().udp_rx.datagrams;
        if datagrams != heard_datagrams {
            heard_datagrams = datagrams;
            heard_at = tokio::time::Instant::now();
        } else if heard_at.elapsed() >= dead_after {
            return LinkIoError::PeerSilent(dead_after);
        }
    }
}

/// Reads whole frames from a quinn receive stream.
#[derive(Debug)]
pub struct FramedRecv {
    stream: quinn::RecvStream,
    decoder: FrameDecoder,
}

impl FramedRecv {
    pub fn new(stream: quinn::RecvStream) -> Self {
        Self {
            stream,
            decoder: FrameDecoder::default(),
        }
    }

    /// The next frame; `Ok(None)` when the peer finished the stream cleanly between frames.
    pub async fn next<T: DeserializeOwned>(&mut self) -> Result<Option<T>, LinkIoError> {
        loop {
            if let Some(frame) = self.decoder.next_frame()? {
                return Ok(Some(frame));
            }
            if !self.read_chunk().await? {
                self.decoder.finish()?;
                return Ok(None);
            }
        }
    }

    /// Waits until bytes of a next frame are here (already buffered, or one chunk read now);
    /// `Ok(false)` when the stream ended instead. Cancel-safe.
    pub async fn wait_for_bytes(&mut self) -> Result<bool, LinkIoError> {
        if self.decoder.buffered() > 0 {
            return Ok(true);
        }
        self.read_chunk().await
    }

    /// Reads one chunk into the decoder; `Ok(false)` at the end of the stream. Cancel-safe.
    async fn read_chunk(&mut self) -> Result<bool, LinkIoError> {
        let chunk = self
            .stream
            .read_chunk(64 * 1024, true)
            .await
            .map_err(|e| match e {
                // Say why the connection went (the hub's refusal reason, a TLS alert, a timeout).
                quinn::ReadError::ConnectionLost(lost) => LinkIoError::Connection(lost),
                other => LinkIoError::Read(other),
            })?;
        match chunk {
            Some(chunk) => {
                self.decoder.push(&chunk.bytes);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// The stream, and the bytes already read past the last frame.
    pub fn into_parts(mut self) -> (quinn::RecvStream, Vec<u8>) {
        let rest = self.decoder.take_buffered();
        (self.stream, rest)
    }

    /// The next frame, which must arrive within `timeout`.
    pub async fn expect<T: DeserializeOwned>(
        &mut self,
        timeout: Duration,
    ) -> Result<T, LinkIoError> {
        match tokio::time::timeout(timeout, self.next()).await {
            Ok(Ok(Some(frame))) => Ok(frame),
            Ok(Ok(None)) => Err(LinkIoError::Closed),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(LinkIoError::Timeout(timeout)),
        }
    }
}

/// Encodes and writes one frame.
pub async fn write_frame<T: Serialize>(
    stream: &mut quinn::SendStream,
    frame: &T,
) -> Result<(), LinkIoError> {
    let mut bytes = Vec::with_capacity(256);
    crate::encode(frame, &mut bytes)?;
    stream.write_all(&bytes).await?;
    Ok(())
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, LinkIoError> {
    CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|source| LinkIoError::Pem {
            what: path.display().to_string(),
            source,
        })
}

fn key(path: &Path) -> Result<PrivateKeyDer<'static>, LinkIoError> {
    PrivateKeyDer::from_pem_file(path).map_err(|source| LinkIoError::Pem {
        what: path.display().to_string(),
        source,
    })
}

fn roots(ca: &Path) -> Result<Arc<rustls::RootCertStore>, LinkIoError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs(ca)? {
        roots.add(cert)?;
    }
    Ok(Arc::new(roots))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn transport(
    keepalive: Duration,
    idle_timeout: Duration,
    receive_window: u64,
) -> Arc<quinn::TransportConfig> {
    let mut transport = quinn::TransportConfig::default();
    transport.keep_alive_interval(Some(keepalive));
    transport.max_idle_timeout(quinn::IdleTimeout::try_from(idle_timeout).ok());
    // Room for a deep pipeline of event batches on one stream.
    transport.stream_receive_window(quinn::VarInt::from_u32(16 * 1024 * 1024));
    transport.receive_window(quinn::VarInt::from_u64(receive_window).unwrap_or(quinn::VarInt::MAX));
    transport.send_window(32 * 1024 * 1024);
    Arc::new(transport)
}

/// The hub's QUIC server configuration: its certificate, and client certificates required.
/// Each connection starts with `initial_receive_window` bytes of flow-control credit (what an edge
/// may send before the hub admits it; the hub widens it then, `Connection::set_receive_window`).
pub fn server_config(
    ca: &Path,
    cert: &Path,
    key_path: &Path,
    keepalive: Duration,
    idle_timeout: Duration,
    initial_receive_window: u64,
) -> Result<quinn::ServerConfig, LinkIoError> {
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(roots(ca)?, provider())
            .build()?;
    let mut tls = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs(cert)?, key(key_path)?)?;
    tls.alpn_protocols = vec![crate::ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls)?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    config.transport_config(transport(keepalive, idle_timeout, initial_receive_window));
    Ok(config)
}

/// An edge's QUIC client configuration: its certificate, and the hub's verified against the CA.
pub fn client_config(
    ca: &Path,
    cert: &Path,
    key_path: &Path,
    keepalive: Duration,
    idle_timeout: Duration,
) -> Result<quinn::ClientConfig, LinkIoError> {
    let mut tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots(ca)?)
        .with_client_auth_cert(certs(cert)?, key(key_path)?)?;
    tls.alpn_protocols = vec![crate::ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls)?;
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    config.transport_config(transport(keepalive, idle_timeout, 32 * 1024 * 1024));
    Ok(config)
}

/// The leaf certificate the peer presented (DER), if any.
pub fn peer_certificate(connection: &quinn::Connection) -> Option<CertificateDer<'static>> {
    connection
        .peer_identity()?
        .downcast::<Vec<CertificateDer<'static>>>()
        .ok()?
        .into_iter()
        .next()
}

/// Application close codes on the connection.
pub mod close {
    /// The edge is not admitted (unknown, revoked, replaced certificate, id mismatch).
    pub const REFUSED: u32 = 0x10;
    /// A newer session of the same edge replaced this one.
    pub const REPLACED: u32 = 0x11;
    /// The peer broke the protocol (bad frame, unexpected message).
    pub const PROTOCOL: u32 = 0x12;
    /// Clean shutdown of either side.
    pub const SHUTDOWN: u32 = 0x13;
}

/// A bidirectional stream a session opens or accepts after the handshake: its send half and its
/// framed receive half.
pub type Duplex = (quinn::SendStream, FramedRecv);

/// The next frame on `stream` once it is open; pending while it is not.
pub async fn next_on<T: DeserializeOwned>(
    stream: &mut Option<Duplex>,
) -> Result<Option<T>, LinkIoError> {
    match stream {
        Some((_, recv)) => recv.next::<T>().await,
        None => std::future::pending().await,
    }
}

/// Sleeps until a session's timer (`at`, a std instant taken from tokio's clock, so simulated time
/// works too); pending forever when there is none.
pub async fn sleep_until(at: Option<std::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
        None => std::future::pending().await,
    }
}
