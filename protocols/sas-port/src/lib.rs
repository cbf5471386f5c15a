//! Byte transports for a SAS line, host side and EGM side alike.
//!
//! - **Serial** (a real tty, on tokio-serial): 19200 baud, 8 data bits, SPACE parity with
//!   `INPCK|PARMRK`, so a received byte whose 9th bit is set arrives as `FF 00 b`. To send a byte
//!   with the wake-up bit the port switches to MARK parity (`PARENB|CMSPAR|PARODD`), writes it,
//!   drains, and switches back to SPACE (reference §3.1). termios is set through a second
//!   descriptor on the same tty (settings belong to the device, not the descriptor); no-op
//!   `tcsetattr` calls are skipped.
//! - **Pty** and **TCP**: the 9th bit cannot cross them, so both ends write the marked encoding of
//!   [`outpost_sas::wire`] (or, with [`WakeupEncoding::None`], plain bytes for peers that frame by
//!   length).
//!
//! Invariants: received bytes always go through one [`MarkDecoder`] (unless the encoding is
//! `None`), so a real tty and the test transports share one receive path; a read of 0 bytes
//! (the other end of a pty or TCP connection went away) is [`PortError::Closed`], never a
//! silent spin.

use std::collections::VecDeque;
use std::fs::File;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::sys::termios::{self, ControlFlags, InputFlags, SetArg, Termios};
use outpost_sas::wire::{MarkDecoder, Symbol, push_marked};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

/// How the wake-up (9th) bit travels: the configuration's own type (`wakeup` of a SAS line).
/// How the wake-up bit travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WakeupEncoding {
    /// Real mark/space parity on a tty.
    Parity,
    /// `FF 00 b` for a byte with the bit, `FF FF` for a literal `FF` (pty, TCP).
    Marked,
    /// Not sent at all; the EGM must frame by length (lenient).
    None,
}

/// A transport could not be opened or failed.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    #[error("cannot open {what}: {source}")]
    Open {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("termios on {path}: {source}")]
    Termios {
        path: String,
        #[source]
        source: nix::Error,
    },
    #[error("i/o on {port}: {source}")]
    Io {
        port: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}: the other end closed the line")]
    Closed(String),
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send + Sync {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync> Stream for T {}

/// Parity control of a real tty (a second descriptor used only for termios).
struct ParityControl {
    tty: File,
    path: String,
    mark: bool,
}

impl ParityControl {
    fn open(path: &Path) -> Result<Self, PortError> {
        let tty = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(nix::fcntl::OFlag::O_NOCTTY.bits() | nix::fcntl::OFlag::O_NONBLOCK.bits())
            .open(path)
            .map_err(|source| PortError::Open {
                what: path.display().to_string(),
                source,
            })?;
        Ok(Self {
            tty,
            path: path.display().to_string(),
            mark: true,
        })
    }

    fn termios_error(&self, source: nix::Error) -> PortError {
        PortError::Termios {
            path: self.path.clone(),
            source,
        }
    }

    /// SPACE parity, parity errors marked on input, raw otherwise.
    fn configure(&mut self) -> Result<(), PortError> {
        let mut t = termios::tcgetattr(&self.tty).map_err(|e| self.termios_error(e))?;
        termios::cfmakeraw(&mut t);
        t.control_flags |= ControlFlags::PARENB | ControlFlags::CMSPAR | ControlFlags::CREAD;
        t.control_flags |= ControlFlags::CLOCAL;
        t.control_flags &= !ControlFlags::PARODD;
        t.input_flags |= InputFlags::INPCK | InputFlags::PARMRK;
        t.input_flags &= !(InputFlags::IGNPAR | InputFlags::ISTRIP);
        termios::tcsetattr(&self.tty, SetArg::TCSANOW, &t).map_err(|e| self.termios_error(e))?;
        self.mark = false;
        Ok(())
    }

    fn set_mark(&mut self, mark: bool) -> Result<(), PortError> {
        if self.mark == mark {
            return Ok(());
        }
        let mut t: Termios = termios::tcgetattr(&self.tty).map_err(|e| self.termios_error(e))?;
        t.control_flags.set(ControlFlags::PARODD, mark);
        termios::tcsetattr(&self.tty, SetArg::TCSANOW, &t).map_err(|e| self.termios_error(e))?;
        self.mark = mark;
        Ok(())
    }

    /// Waits until everything written has left the UART (at 19200 baud, ~0.6 ms per byte).
    fn drain(&self) -> Result<(), PortError> {
        termios::tcdrain(&self.tty).map_err(|e| self.termios_error(e))
    }
}

/// One end of a SAS line.
pub struct SasPort {
    io: Box<dyn Stream>,
    encoding: WakeupEncoding,
    parity: Option<ParityControl>,
    decoder: MarkDecoder,
    inbound: VecDeque<Symbol>,
    scratch: Vec<Symbol>,
    name: String,
}

impl std::fmt::Debug for SasPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SasPort")
            .field("name", &self.name)
            .field("encoding", &self.encoding)
            .finish_non_exhaustive()
    }
}

/// The slave side of a pty the EGM simulator created: kept open so the master never sees EIO
/// while no host has the path open.
pub struct PtySlave {
    _slave: tokio_serial::SerialStream,
    pub path: PathBuf,
}

impl std::fmt::Debug for PtySlave {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PtySlave")
            .field("path", &self.path)
            .finish()
    }
}

impl SasPort {
    fn new(io: Box<dyn Stream>, encoding: WakeupEncoding, name: String) -> Self {
        Self {
            io,
            encoding,
            parity: None,
            decoder: MarkDecoder::new(),
            inbound: VecDeque::new(),
            scratch: Vec::new(),
            name,
        }
    }

    /// A serial device at 19200 baud. With [`WakeupEncoding::Parity`] the tty is put in
    /// SPACE parity with marked parity errors (a real SAS port); a pty path takes `Marked`.
    pub fn open_serial(path: &Path, encoding: WakeupEncoding) -> Result<Self, PortError> {
        // The termios descriptor is opened first: tokio-serial makes the port exclusive.
        let mut parity = match encoding {
            WakeupEncoding::Parity => Some(ParityControl::open(path)?),
            _ => None,
        };
        let builder = tokio_serial::new(path.to_string_lossy(), 19_200)
            .data_bits(tokio_serial::DataBits::Eight)
            .stop_bits(tokio_serial::StopBits::One)
            .parity(tokio_serial::Parity::None)
            .flow_control(tokio_serial::FlowControl::None);
        let stream = tokio_serial::SerialStream::open(&builder).map_err(|e| PortError::Open {
            what: path.display().to_string(),
            source: std::io::Error::other(e.to_string()),
        })?;
        if let Some(parity) = parity.as_mut() {
            parity.configure()?;
        }
        // Bytes that arrived before this host opened the port answer polls it never sent (a
        // previous host process's last poll, answered after it died; a pty or a UART keeps them):
        // read as the answer to this host's first poll, they would be taken for a reply to it.
        {
            use tokio_serial::SerialPort;
            stream
                .clear(tokio_serial::ClearBuffer::Input)
                .map_err(|e| PortError::Open {
                    what: path.display().to_string(),
                    source: std::io::Error::other(format!("discarding stale input: {e}")),
                })?;
        }
        let mut port = Self::new(Box::new(stream), encoding, path.display().to_string());
        port.parity = parity;
        Ok(port)
    }

    /// A new pty pair: the master as a port, and the slave kept open (its path is what a host
    /// opens).
    pub fn pty(encoding: WakeupEncoding) -> Result<(Self, PtySlave), PortError> {
        use tokio_serial::SerialPort;
        let (master, slave) = tokio_serial::SerialStream::pair().map_err(|e| PortError::Open {
            what: "a new pty".into(),
            source: std::io::Error::other(e.to_string()),
        })?;
        let path = slave
            .name()
            .map(PathBuf::from)
            .ok_or_else(|| PortError::Open {
                what: "a new pty".into(),
                source: std::io::Error::other("the pty slave has no name"),
            })?;
        let port = Self::new(
            Box::new(master),
            encoding,
            format!("pty master of {}", path.display()),
        );
        Ok((
            port,
            PtySlave {
                _slave: slave,
                path,
            },
        ))
    }

    /// A serial-over-IP converter at `addr`.
    pub async fn connect_tcp(
        addr: SocketAddr,
        encoding: WakeupEncoding,
    ) -> Result<Self, PortError> {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|source| PortError::Open {
                what: format!("tcp {addr}"),
                source,
            })?;
        let _ = stream.set_nodelay(true);
        Ok(Self::new(Box::new(stream), encoding, format!("tcp {addr}")))
    }

    /// An accepted TCP connection (the EGM simulator's side).
    pub fn from_tcp(stream: tokio::net::TcpStream, encoding: WakeupEncoding) -> Self {
        let _ = stream.set_nodelay(true);
        let name = stream
            .peer_addr()
            .map(|a| format!("tcp peer {a}"))
            .unwrap_or_else(|_| "tcp peer".into());
        Self::new(Box::new(stream), encoding, name)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn encoding(&self) -> WakeupEncoding {
        self.encoding
    }

    fn io_error(&self, source: std::io::Error) -> PortError {
        PortError::Io {
            port: self.name.clone(),
            source,
        }
    }

    /// Sends a message; `wakeup_first` puts the wake-up bit on its first byte (host messages).
    pub async fn send_message(
        &mut self,
        bytes: &[u8],
        wakeup_first: bool,
    ) -> Result<(), PortError> {
        let symbols: Vec<Symbol> = bytes
            .iter()
            .enumerate()
            .map(|(i, &byte)| Symbol {
                byte,
                wakeup: wakeup_first && i == 0,
            })
            .collect();
        self.send(&symbols).await
    }

    /// Sends symbols with their wake-up bits, as this port's encoding carries them.
    pub async fn send(&mut self, symbols: &[Symbol]) -> Result<(), PortError> {
        match self.encoding {
            WakeupEncoding::Marked => {
                let mut wire = Vec::with_capacity(symbols.len() + 4);
                for &s in symbols {
                    push_marked(&mut wire, s);
                }
                self.write(&wire).await
            }
            WakeupEncoding::None => {
                let wire: Vec<u8> = symbols.iter().map(|s| s.byte).collect();
                self.write(&wire).await
            }
            WakeupEncoding::Parity => {
                for run in symbols.chunk_by(|a, b| a.wakeup == b.wakeup) {
                    let mark = run.first().is_some_and(|s| s.wakeup);
                    if let Some(parity) = self.parity.as_mut() {
                        parity.set_mark(mark)?;
                    }
                    let bytes: Vec<u8> = run.iter().map(|s| s.byte).collect();
                    self.write(&bytes).await?;
                    if let Some(parity) = self.parity.as_ref() {
                        // Blocks this worker for the bytes' wire time (under 1 ms for one byte).
                        parity.drain()?;
                    }
                }
                if let Some(parity) = self.parity.as_mut() {
                    parity.set_mark(false)?;
                }
                Ok(())
            }
        }
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), PortError> {
        let result = async {
            self.io.write_all(bytes).await?;
            self.io.flush().await
        }
        .await;
        result.map_err(|e| self.io_error(e))
    }

    /// The next received symbol, or `None` if nothing arrives before `deadline`.
    pub async fn recv(&mut self, deadline: Instant) -> Result<Option<Symbol>, PortError> {
        loop {
            if let Some(symbol) = self.inbound.pop_front() {
                return Ok(Some(symbol));
            }
            let mut buf = [0u8; 512];
            let n = match tokio::time::timeout_at(deadline, self.io.read(&mut buf)).await {
                Err(_) => return Ok(None),
                Ok(Err(e)) => return Err(self.io_error(e)),
                Ok(Ok(0)) => return Err(PortError::Closed(self.name.clone())),
                Ok(Ok(n)) => n,
            };
            match self.encoding {
                WakeupEncoding::None => self
                    .inbound
                    .extend(buf[..n].iter().map(|&b| Symbol::plain(b))),
                _ => {
                    self.scratch.clear();
                    self.decoder.feed(&buf[..n], &mut self.scratch);
                    self.inbound.extend(self.scratch.drain(..));
                }
            }
        }
    }

    /// Drops whatever was received and not yet read.
    pub fn discard_input(&mut self) -> usize {
        let n = self.inbound.len();
        self.inbound.clear();
        n
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_host_message_crosses_a_pty_with_its_wakeup_bit_marked() {
        let (mut egm, slave) = SasPort::pty(WakeupEncoding::Marked).unwrap();
        let mut host = SasPort::open_serial(&slave.path, WakeupEncoding::Marked).unwrap();
        host.send_message(&[0x01, 0xFF, 0x1A], true).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut got = Vec::new();
        while got.len() < 3 {
            got.push(egm.recv(deadline).await.unwrap().unwrap());
        }
        assert_eq!(
            got,
            vec![Symbol::wakeup(1), Symbol::plain(0xFF), Symbol::plain(0x1A)]
        );
        // And back: a chirp (wake-up) and a plain reply byte.
        egm.send(&[Symbol::wakeup(0x01), Symbol::plain(0x00)])
            .await
            .unwrap();
        assert_eq!(host.recv(deadline).await.unwrap(), Some(Symbol::wakeup(1)));
        assert_eq!(host.recv(deadline).await.unwrap(), Some(Symbol::plain(0)));
        assert_eq!(
            host.recv(Instant::now() + Duration::from_millis(20))
                .await
                .unwrap(),
            None,
            "nothing more"
        );
    }

    #[tokio::test]
    async fn bytes_sent_before_the_host_opened_the_line_are_never_read_as_a_reply() {
        let (mut egm, slave) = SasPort::pty(WakeupEncoding::Marked).unwrap();
        // A reply to a poll of the host process that died: in the line's buffer, nobody reading.
        egm.send(&[Symbol::plain(0x01), Symbol::plain(0x7E)])
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut host = SasPort::open_serial(&slave.path, WakeupEncoding::Marked).unwrap();
        assert_eq!(
            host.recv(Instant::now() + Duration::from_millis(100))
                .await
                .unwrap(),
            None,
            "the stale reply was discarded when the line opened"
        );
        egm.send(&[Symbol::plain(0x00)]).await.unwrap();
        assert_eq!(
            host.recv(Instant::now() + Duration::from_secs(2))
                .await
                .unwrap(),
            Some(Symbol::plain(0)),
            "what comes after the opening is read"
        );
    }

    #[tokio::test]
    async fn a_closed_tcp_peer_is_reported_as_closed() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accept = tokio::spawn(async move { listener.accept().await.unwrap().0 });
        let mut host = SasPort::connect_tcp(addr, WakeupEncoding::Marked)
            .await
            .unwrap();
        drop(accept.await.unwrap());
        let err = host
            .recv(Instant::now() + Duration::from_secs(2))
            .await
            .unwrap_err();
        assert!(matches!(err, PortError::Closed(_)), "{err}");
    }
}
