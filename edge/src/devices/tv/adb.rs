//! The host side of ADB over TCP, async: connect and authenticate with the edge's RSA key, then
//! run services one at a time (`shell:`, `exec:`, `sync:` push, `reboot:`).
//!
//! Invariants: every read and write is bounded by the caller's timeout (a hung TV never holds the
//! actor); we OKAY each WRTE the device sends and wait for its OKAY before sending the next
//! WRTE; a protocol error or timeout poisons the connection (the caller drops it).

use std::net::SocketAddr;
use std::time::Duration;

use outpost_adb::auth::{android_public_key, sign_token};
use outpost_adb::message::{MAX_PAYLOAD, auth_type};
use outpost_adb::{Banner, Command, Decoder, Message, Side, SyncDecoder, SyncPacket};
use rsa::RsaPrivateKey;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// The byte stream to a TV: TCP in production, an in-memory pipe in tests.
pub trait AdbStream: AsyncRead + AsyncWrite + Unpin + Send + Sync {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync> AdbStream for T {}

#[derive(Debug, Clone, thiserror::Error)]
pub enum AdbError {
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("timed out {0}")]
    Timeout(&'static str),
    #[error("the TV closed the connection")]
    Closed,
    #[error("the TV did not accept our key (unauthorized)")]
    Unauthorized,
    #[error("protocol: {0}")]
    Protocol(String),
    #[error("io: {0}")]
    Io(String),
    #[error("push failed: {0}")]
    PushFailed(String),
    /// The service never started (the TV did not accept the stream): nothing ran.
    #[error("{0}")]
    NotStarted(Box<AdbError>),
}

impl From<std::io::Error> for AdbError {
    fn from(e: std::io::Error) -> Self {
        AdbError::Io(e.to_string())
    }
}

/// One authenticated ADB connection.
pub struct AdbConnection {
    stream: Box<dyn AdbStream>,
    decoder: Decoder,
    max_payload: u32,
    next_id: u32,
    pub banner: Banner,
    timeout: Duration,
}

impl std::fmt::Debug for AdbConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdbConnection")
            .field("banner", &self.banner)
            .finish_non_exhaustive()
    }
}

impl AdbConnection {
    /// Connects to `addr` and authenticates (signature first, then our public key).
    pub async fn connect(
        addr: SocketAddr,
        key: &RsaPrivateKey,
        key_name: &str,
        timeout: Duration,
    ) -> Result<Self, AdbError> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| AdbError::Timeout("connecting"))?
            .map_err(|e| AdbError::Connect(e.to_string()))?;
        let _ = stream.set_nodelay(true);
        Self::over(Box::new(stream), key, key_name, timeout).await
    }

    /// Authenticates over `stream` (already connected to the TV).
    pub async fn over(
        stream: Box<dyn AdbStream>,
        key: &RsaPrivateKey,
        key_name: &str,
        timeout: Duration,
    ) -> Result<Self, AdbError> {
        let mut connection = AdbConnection {
            stream,
            decoder: Decoder::new(MAX_PAYLOAD),
            max_payload: MAX_PAYLOAD,
            next_id: 0,
            banner: Banner::default(),
            timeout,
        };
        connection
            .send(Message::connect(MAX_PAYLOAD, "host::outpost-edge"))
            .await?;
        let mut signed = false;
        let mut offered = false;
        loop {
            let message = match connection.recv("authenticating").await {
                // We offered our key and the TV says nothing: it waits for someone to accept
                // it on screen (or refused it). Silence before that is a hung TV.
                Err(AdbError::Timeout(_)) if offered => return Err(AdbError::Unauthorized),
                other => other?,
            };
            match (message.command, message.arg0) {
                (Command::Cnxn, _) => {
                    connection.max_payload = message.arg1.clamp(1024, MAX_PAYLOAD);
                    connection.banner = Banner::parse(&message.payload);
                    return Ok(connection);
                }
                (Command::Auth, auth_type::TOKEN) if !signed => {
                    signed = true;
                    let signature = sign_token(key, &message.payload)
                        .map_err(|e| AdbError::Protocol(e.to_string()))?;
                    connection
                        .send(Message::new(
                            Command::Auth,
                            auth_type::SIGNATURE,
                            0,
                            signature,
                        ))
                        .await?;
                }
                (Command::Auth, auth_type::TOKEN) if !offered => {
                    offered = true;
                    let public = android_public_key(&key.to_public_key(), key_name)
                        .map_err(|e| AdbError::Protocol(e.to_string()))?;
                    let mut payload = public.into_bytes();
                    payload.push(0);
                    connection
                        .send(Message::new(
                            Command::Auth,
                            auth_type::RSA_PUBLIC_KEY,
                            0,
                            payload,
                        ))
                        .await?;
                }
                (Command::Auth, _) => return Err(AdbError::Unauthorized),
                (command, _) => {
                    return Err(AdbError::Protocol(format!(
                        "unexpected {command:?} while authenticating"
                    )));
                }
            }
        }
    }

    async fn send(&mut self, message: Message) -> Result<(), AdbError> {
        tokio::time::timeout(self.timeout, self.stream.write_all(&message.encode()))
            .await
            .map_err(|_| AdbError::Timeout("sending"))??;
        Ok(())
    }

    async fn recv(&mut self, what: &'static str) -> Result<Message, AdbError> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        let mut buf = [0u8; 16 * 1024];
        loop {
            if let Some(message) = self
                .decoder
                .next_message()
                .map_err(|e| AdbError::Protocol(e.to_string()))?
            {
                return Ok(message);
            }
            let n = tokio::time::timeout_at(deadline, self.stream.read(&mut buf))
                .await
                .map_err(|_| AdbError::Timeout(what))??;
            if n == 0 {
                return Err(AdbError::Closed);
            }
            self.decoder.push(&buf[..n]);
        }
    }

    /// Opens `service`; returns our stream id and the device's. A failure here means nothing
    /// ran ([`AdbError::NotStarted`]).
    async fn open(&mut self, service: &str) -> Result<(u32, u32), AdbError> {
        self.open_stream(service)
            .await
            .map_err(|e| AdbError::NotStarted(Box::new(e)))
    }

    async fn open_stream(&mut self, service: &str) -> Result<(u32, u32), AdbError> {
        self.next_id += 1;
        let local = self.next_id;
        let mut payload = service.as_bytes().to_vec();
        payload.push(0);
        self.send(Message::new(Command::Open, local, 0, payload))
            .await?;
        loop {
            let m = self.recv("opening a stream").await?;
            match m.command {
                Command::Okay if m.arg1 == local => return Ok((local, m.arg0)),
                Command::Clse if m.arg1 == local => {
                    return Err(AdbError::Protocol(format!("the TV refused {service}")));
                }
                _ => {}
            }
        }
    }

    /// Runs `service` (`shell:...` or `exec:...`) and returns everything it wrote.
    pub async fn run(&mut self, service: &str) -> Result<Vec<u8>, AdbError> {
        let (local, remote) = self.open(service).await?;
        let mut output = Vec::new();
        loop {
            let m = self.recv("reading output").await?;
            if m.arg1 != local {
                continue;
            }
            match m.command {
                Command::Wrte => {
                    output.extend_from_slice(&m.payload);
                    self.send(Message::new(Command::Okay, local, remote, vec![]))
                        .await?;
                }
                Command::Clse => {
                    self.send(Message::new(Command::Clse, local, remote, vec![]))
                        .await?;
                    return Ok(output);
                }
                _ => {}
            }
        }
    }

    /// A shell command's output as text.
    pub async fn shell(&mut self, command: &str) -> Result<String, AdbError> {
        let bytes = self.run(&format!("shell:{command}")).await?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Writes `data` to the stream and waits for the device's OKAY of each WRTE.
    async fn write(&mut self, local: u32, remote: u32, data: &[u8]) -> Result<(), AdbError> {
        for chunk in data.chunks(self.max_payload as usize) {
            self.send(Message::new(Command::Wrte, local, remote, chunk.to_vec()))
                .await?;
            loop {
                let m = self.recv("waiting for the TV to take data").await?;
                match m.command {
                    Command::Okay if m.arg1 == local => break,
                    Command::Clse if m.arg1 == local => return Err(AdbError::Closed),
                    Command::Wrte if m.arg1 == local => {
                        // A sync answer arriving early; keep it for the reader.
                        self.send(Message::new(Command::Okay, local, remote, vec![]))
                            .await?;
                        return Err(AdbError::Protocol(format!(
                            "unexpected sync answer: {:?}",
                            String::from_utf8_lossy(&m.payload)
                        )));
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// Pushes `data` to `path` with `mode` (sync SEND/DATA/DONE), and waits for OKAY.
    pub async fn push(&mut self, path: &str, mode: u32, data: &[u8]) -> Result<(), AdbError> {
        let (local, remote) = self.open("sync:").await?;
        let mut request = SyncPacket::Send(format!("{path},{mode}")).encode();
        for chunk in data.chunks(outpost_adb::sync::MAX_CHUNK) {
            request.extend(SyncPacket::Data(chunk.to_vec()).encode());
        }
        let mtime = (outpost_process::clock::unix_ms() / 1000) as u32;
        request.extend(SyncPacket::Done(mtime).encode());
        self.write(local, remote, &request).await?;
        let mut decoder = SyncDecoder::new(Side::Host);
        let outcome = loop {
            let m = self.recv("waiting for the push to complete").await?;
            if m.arg1 != local {
                continue;
            }
            match m.command {
                Command::Wrte => {
                    self.send(Message::new(Command::Okay, local, remote, vec![]))
                        .await?;
                    decoder.push(&m.payload);
                    match decoder.next_packet() {
                        Ok(Some(SyncPacket::Okay)) => break Ok(()),
                        Ok(Some(SyncPacket::Fail(msg))) => break Err(AdbError::PushFailed(msg)),
                        Ok(Some(other)) => {
                            break Err(AdbError::Protocol(format!("unexpected {other:?}")));
                        }
                        Ok(None) => {}
                        Err(e) => break Err(AdbError::Protocol(e.to_string())),
                    }
                }
                Command::Clse => return Err(AdbError::Closed),
                _ => {}
            }
        };
        let _ = self.write(local, remote, &SyncPacket::Quit.encode()).await;
        outcome
    }

    /// Asks the TV to reboot; the connection ends.
    pub async fn reboot(mut self) -> Result<(), AdbError> {
        let _ = self.open("reboot:").await?;
        Ok(())
    }
}
