//! `outpost-sim tv`: simulated Android TVs — the device side of ADB over TCP (adbd), with RSA
//! authentication, the shell commands the edge uses answered with realistic output, `screencap
//! -p` rendered as a real PNG of the TV's state, `sync:` pushes stored in memory, reboot, and
//! faults on demand.
//!
//! Control API (`--control`, printed on the second line): `GET /state`, `GET /tv/{n}`,
//! `POST /tv/{n}/faults` (`{"drop": bool, "hang": bool, "slow_ms": N, "reject_auth": bool}`),
//! `POST /tv/{n}/power` (`{"on": bool}`; what a relay does: off drops every connection and
//! refuses new ones; on boots the TV, clearing drop/hang faults as a reboot would).
//!
//! Invariants: a host is served only after it proved a key (signature over our token with a key
//! it sent before, or a public key we accept); each WRTE we send waits for the host's OKAY; a
//! powered-off or rebooting TV answers nothing.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use outpost_adb::auth::{parse_android_public_key, verify_token};
use outpost_adb::message::{MAX_PAYLOAD, auth_type};
use outpost_adb::{Command, Decoder, Message, Side, SyncDecoder, SyncPacket};
use rsa::RsaPublicKey;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// `outpost-sim tv` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct TvArgs {
    /// Where the first TV listens; TV n listens on the next ports.
    #[arg(long)]
    pub listen: SocketAddr,
    #[arg(long, default_value_t = 1)]
    pub count: u16,
    /// Control API address.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub control: SocketAddr,
    /// Seconds a reboot (or power-on) takes.
    #[arg(long, default_value_t = 2.0)]
    pub boot_seconds: f64,
}

/// Faults set through the control API.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TvFaults {
    /// Close every connection and accept none (the TV's network stack died).
    pub drop: bool,
    /// Accept connections and read, but never answer (a hung adbd).
    pub hang: bool,
    /// Delay before every answer.
    pub slow_ms: u64,
    /// Refuse unknown keys (the user pressed "deny").
    pub reject_auth: bool,
}

/// One TV's state.
#[derive(Debug, Clone, Serialize)]
pub struct TvState {
    pub index: u16,
    pub addr: SocketAddr,
    pub powered: bool,
    /// Booting until this unix ms (no ADB).
    pub booting_until_ms: i64,
    pub screen_on: bool,
    /// 0-15, Android's music stream.
    pub volume: u8,
    pub muted: bool,
    pub input: String,
    pub app: String,
    pub playing: bool,
    pub boots: u32,
    pub keys: Vec<u32>,
    /// Pushed files: path → (SHA-256, size).
    pub files: HashMap<String, (String, usize)>,
    pub faults: TvFaults,
    pub connections: u64,
    pub commands: u64,
    #[serde(skip)]
    file_data: HashMap<String, Vec<u8>>,
    #[serde(skip)]
    keys_known: Vec<RsaPublicKey>,
    /// Bumped when the TV powers off, reboots or drops: live sessions end.
    #[serde(skip)]
    epoch: u64,
}

/// The player app the TVs run.
pub const PLAYER_APP: &str = "com.metro.signage";

impl TvState {
    fn new(index: u16, addr: SocketAddr) -> Self {
        TvState {
            index,
            addr,
            powered: true,
            booting_until_ms: 0,
            screen_on: true,
            volume: 8,
            muted: false,
            input: "hdmi1".into(),
            app: PLAYER_APP.into(),
            playing: true,
            boots: 1,
            keys: Vec::new(),
            files: HashMap::new(),
            faults: TvFaults::default(),
            connections: 0,
            commands: 0,
            file_data: HashMap::new(),
            keys_known: Vec::new(),
            epoch: 0,
        }
    }

    fn up(&self, now_ms: i64) -> bool {
        self.powered && now_ms >= self.booting_until_ms && !self.faults.drop
    }

    fn reboot(&mut self, now_ms: i64, boot_ms: i64) {
        self.epoch += 1;
        self.booting_until_ms = now_ms + boot_ms;
        self.boots += 1;
        self.screen_on = true;
        self.app = PLAYER_APP.into();
        self.playing = true;
        self.faults.drop = false;
        self.faults.hang = false;
    }

    fn key(&mut self, code: u32) {
        self.keys.push(code);
        if self.keys.len() > 200 {
            self.keys.remove(0);
        }
        match code {
            24 => {
                self.volume = (self.volume + 1).min(15);
                self.muted = false;
            }
            25 => self.volume = self.volume.saturating_sub(1),
            164 => self.muted = !self.muted,
            26 => self.screen_on = !self.screen_on,
            223 => self.screen_on = false,
            224 => self.screen_on = true,
            85 => self.playing = !self.playing,
            126 => self.playing = true,
            127 => self.playing = false,
            170 => self.input = "tv".into(),
            243..=246 => self.input = format!("hdmi{}", code - 242),
            249 => self.input = "av".into(),
            3 => self.app = "com.google.android.tvlauncher".into(),
            _ => {}
        }
    }

    /// Runs a shell command as the TV's toybox/`cmd` would; returns its output.
    fn shell(&mut self, command: &str) -> String {
        self.commands += 1;
        let words: Vec<&str> = command.split_whitespace().collect();
        match words.as_slice() {
            ["echo", rest @ ..] => format!("{}\n", rest.join(" ")),
            ["getprop", "ro.product.model"] => "MetroView 55\n".into(),
            ["getprop", "persist.sys.tv.input"] => format!("{}\n", self.input),
            ["getprop", "sys.boot_completed"] => "1\n".into(),
            ["dumpsys", "power"] => format!(
                "POWER MANAGER (dumpsys power)\n\nPower Manager State:\n  mDirty=0x0\n  mWakefulness={}\n  mWakefulnessChanging=false\n  mIsPowered=true\n",
                if self.screen_on { "Awake" } else { "Asleep" }
            ),
            ["cmd", "media_session", "volume", "--stream", "3", "--get"] => format!(
                "[V] will get volume\nvolume is {} in range [0..15]\n",
                if self.muted { 0 } else { self.volume }
            ),
            [
                "cmd",
                "media_session",
                "volume",
                "--stream",
                "3",
                "--set",
                n,
            ] => match n.parse::<u8>() {
                Ok(v) if v <= 15 => {
                    self.volume = v;
                    self.muted = false;
                    format!("[V] will set volume to index={v}\n")
                }
                _ => "Error: bad volume index\n".into(),
            },
            ["dumpsys", "activity", "activities"] => format!(
                "ACTIVITY MANAGER ACTIVITIES (dumpsys activity activities)\nDisplay #0 (activities from top to bottom):\n  * Task{{7b1 #12 type=standard A=10093:{app}}}\n    mResumedActivity: ActivityRecord{{2c5e1d u0 {app}/.MainActivity t12}}\n",
                app = self.app
            ),
            ["input", "keyevent", code] => match code.parse::<u32>() {
                Ok(code) => {
                    self.key(code);
                    String::new()
                }
                Err(_) => format!("Error: unknown key {code}\n"),
            },
            ["monkey", "-p", package, ..] => {
                self.app = (*package).to_owned();
                self.playing = true;
                "  bash arg: -p\nEvents injected: 1\n## Network stats: elapsed time=12ms\n".into()
            }
            ["am", "force-stop", package] => {
                if self.app == *package {
                    self.app = "com.google.android.tvlauncher".into();
                    self.playing = false;
                }
                String::new()
            }
            ["sha256sum", path] => match self.file_data.get(*path) {
                Some(data) => format!("{}  {path}\n", hex::encode(Sha256::digest(data))),
                None => format!("sha256sum: {path}: No such file or directory\n"),
            },
            ["mkdir", "-p", _] => String::new(),
            [] => String::new(),
            _ => format!("/system/bin/sh: {}: inaccessible or not found\n", words[0]),
        }
    }

    /// `screencap -p`: a PNG showing the TV's state — background by input, a volume bar (red
    /// when muted), a band coloured by the foreground app, black when the screen is off; the
    /// state is also in tEXt chunks.
    pub fn screenshot(&self) -> Vec<u8> {
        const W: u32 = 320;
        const H: u32 = 180;
        let background: [u8; 3] = match self.input.as_str() {
            "hdmi1" => [30, 60, 160],
            "hdmi2" => [30, 140, 60],
            "hdmi3" => [140, 60, 160],
            "hdmi4" => [160, 120, 30],
            "tv" => [90, 30, 120],
            _ => [200, 110, 20],
        };
        let app_hash = Sha256::digest(self.app.as_bytes());
        let app_color = [app_hash[0], app_hash[1], app_hash[2]];
        let mut pixels = Vec::with_capacity((W * H * 3) as usize);
        for y in 0..H {
            for x in 0..W {
                let rgb = if !self.screen_on || !self.powered {
                    [0, 0, 0]
                } else if (10..22).contains(&y) && x >= 10 && x < 10 + u32::from(self.volume) * 20 {
                    if self.muted {
                        [220, 30, 30]
                    } else {
                        [240, 240, 240]
                    }
                } else if y >= H - 30 {
                    app_color
                } else {
                    background
                };
                pixels.extend_from_slice(&rgb);
            }
        }
        let mut out = Vec::new();
        {
            let mut encoder = png::Encoder::new(&mut out, W, H);
            encoder.set_color(png::ColorType::Rgb);
            encoder.set_depth(png::BitDepth::Eight);
            for (k, v) in [
                ("input", self.input.clone()),
                (
                    "volume",
                    if self.muted {
                        "muted".into()
                    } else {
                        self.volume.to_string()
                    },
                ),
                ("app", self.app.clone()),
                (
                    "screen",
                    if self.screen_on {
                        "on".into()
                    } else {
                        "off".into()
                    },
                ),
            ] {
                let _ = encoder.add_text_chunk(k.into(), v);
            }
            if let Ok(mut writer) = encoder.write_header() {
                let _ = writer.write_image_data(&pixels);
            }
        }
        out
    }
}

/// All simulated TVs.
#[derive(Clone)]
pub struct TvFleet {
    tvs: Arc<Vec<Mutex<TvState>>>,
    boot_ms: i64,
}

impl std::fmt::Debug for TvFleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TvFleet")
            .field("tvs", &self.tvs.len())
            .finish()
    }
}

fn now_ms() -> i64 {
    crate::unix_ms()
}

impl TvFleet {
    pub fn tv(&self, index: usize) -> Option<std::sync::MutexGuard<'_, TvState>> {
        self.tvs
            .get(index)
            .map(|m| m.lock().unwrap_or_else(|p| p.into_inner()))
    }

    pub fn len(&self) -> usize {
        self.tvs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tvs.is_empty()
    }

    pub fn set_faults(&self, index: usize, faults: TvFaults) -> Option<()> {
        let mut tv = self.tv(index)?;
        if faults.drop || faults.hang {
            tv.epoch += 1;
        }
        tv.faults = faults;
        Some(())
    }

    /// What a relay does to the TV's mains.
    pub fn set_power(&self, index: usize, on: bool) -> Option<()> {
        let mut tv = self.tv(index)?;
        if on && !tv.powered {
            tv.powered = true;
            tv.reboot(now_ms(), self.boot_ms);
        } else if !on && tv.powered {
            tv.powered = false;
            tv.epoch += 1;
        }
        Some(())
    }

    fn snapshot(&self) -> Vec<TvState> {
        (0..self.len())
            .filter_map(|i| self.tv(i).map(|t| t.clone()))
            .collect()
    }
}

#[derive(Debug, thiserror::Error)]
enum SessionEnd {
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("protocol: {0}")]
    Protocol(String),
    #[error("the TV went away")]
    Gone,
}

/// One host connection to TV `index`.
struct Session {
    fleet: TvFleet,
    index: usize,
    stream: TcpStream,
    decoder: Decoder,
    epoch: u64,
    max_payload: u32,
    next_id: u32,
}

impl Session {
    async fn send(&mut self, message: Message) -> Result<(), SessionEnd> {
        let slow = self
            .fleet
            .tv(self.index)
            .map(|t| t.faults.slow_ms)
            .unwrap_or(0);
        if slow > 0 {
            tokio::time::sleep(Duration::from_millis(slow)).await;
        }
        self.check()?;
        self.stream.write_all(&message.encode()).await?;
        Ok(())
    }

    fn check(&self) -> Result<(), SessionEnd> {
        let tv = self.fleet.tv(self.index).ok_or(SessionEnd::Gone)?;
        if tv.epoch != self.epoch || !tv.up(now_ms()) {
            return Err(SessionEnd::Gone);
        }
        Ok(())
    }

    async fn recv(&mut self) -> Result<Message, SessionEnd> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            if let Some(m) = self
                .decoder
                .next_message()
                .map_err(|e| SessionEnd::Protocol(e.to_string()))?
            {
                return Ok(m);
            }
            let read =
                tokio::time::timeout(Duration::from_millis(200), self.stream.read(&mut buf)).await;
            self.check()?;
            match read {
                Err(_) => continue,
                Ok(Ok(0)) => return Err(SessionEnd::Gone),
                Ok(Ok(n)) => self.decoder.push(&buf[..n]),
                Ok(Err(e)) => return Err(e.into()),
            }
        }
    }

    async fn authenticate(&mut self) -> Result<(), SessionEnd> {
        let first = self.recv().await?;
        if first.command != Command::Cnxn {
            return Err(SessionEnd::Protocol(format!(
                "expected CNXN, got {:?}",
                first.command
            )));
        }
        self.max_payload = first.arg1.clamp(4096, MAX_PAYLOAD);
        let mut token = [0u8; 20];
        loop {
            rand::Rng::fill(&mut rand::rng(), &mut token[..]);
            self.send(Message::new(
                Command::Auth,
                auth_type::TOKEN,
                0,
                token.to_vec(),
            ))
            .await?;
            let answer = self.recv().await?;
            match (answer.command, answer.arg0) {
                (Command::Auth, auth_type::SIGNATURE) => {
                    let known = self
                        .fleet
                        .tv(self.index)
                        .map(|t| t.keys_known.clone())
                        .unwrap_or_default();
                    if known
                        .iter()
                        .any(|k| verify_token(k, &token, &answer.payload))
                    {
                        break;
                    }
                    // Unknown key: ask again; the host then offers its public key.
                }
                (Command::Auth, auth_type::RSA_PUBLIC_KEY) => {
                    let (key, name) = parse_android_public_key(&answer.payload)
                        .map_err(|e| SessionEnd::Protocol(e.to_string()))?;
                    let reject = self
                        .fleet
                        .tv(self.index)
                        .map(|t| t.faults.reject_auth)
                        .unwrap_or(true);
                    if reject {
                        tracing::info!(tv = self.index, %name, "key rejected (fault)");
                        // A real TV shows a dialog that nobody accepts: nothing comes back.
                        loop {
                            let _ = self.recv().await?;
                        }
                    }
                    if let Some(mut tv) = self.fleet.tv(self.index) {
                        tv.keys_known.push(key);
                    }
                    break;
                }
                (command, _) => {
                    return Err(SessionEnd::Protocol(format!(
                        "unexpected {command:?} during auth"
                    )));
                }
            }
        }
        let banner = "device::ro.product.name=metroview;ro.product.model=MetroView 55;ro.product.device=metroview;features=cmd";
        self.send(Message::connect(MAX_PAYLOAD, banner)).await
    }

    /// Sends `data` on stream (local, remote) in chunks, each after the host's OKAY.
    async fn write_stream(
        &mut self,
        local: u32,
        remote: u32,
        data: &[u8],
    ) -> Result<(), SessionEnd> {
        for chunk in data.chunks(self.max_payload as usize) {
            self.send(Message::new(Command::Wrte, local, remote, chunk.to_vec()))
                .await?;
            loop {
                let m = self.recv().await?;
                match m.command {
                    Command::Okay if m.arg1 == local => break,
                    Command::Clse if m.arg1 == local => return Ok(()),
                    _ => {}
                }
            }
        }
        Ok(())
    }

    async fn serve(&mut self) -> Result<(), SessionEnd> {
        self.authenticate().await?;
        loop {
            let m = self.recv().await?;
            match m.command {
                Command::Open => {
                    let remote = m.arg0;
                    self.next_id += 1;
                    let local = self.next_id;
                    let service = String::from_utf8_lossy(&m.payload)
                        .trim_end_matches('\0')
                        .to_owned();
                    self.send(Message::new(Command::Okay, local, remote, vec![]))
                        .await?;
                    self.service(local, remote, &service).await?;
                }
                Command::Wrte => {
                    self.send(Message::new(Command::Okay, m.arg1, m.arg0, vec![]))
                        .await?;
                }
                Command::Okay | Command::Clse => {}
                other => return Err(SessionEnd::Protocol(format!("unexpected {other:?}"))),
            }
        }
    }

    async fn service(&mut self, local: u32, remote: u32, service: &str) -> Result<(), SessionEnd> {
        if let Some(command) = service
            .strip_prefix("shell:")
            .or_else(|| service.strip_prefix("exec:"))
        {
            let output = {
                let mut tv = self.fleet.tv(self.index).ok_or(SessionEnd::Gone)?;
                let words: Vec<String> = command
                    .split_whitespace()
                    .map(|w| w.trim_matches(|c| c == '\'' || c == '"').to_owned())
                    .collect();
                tracing::debug!(tv = self.index, service, "service");
                if words.first().map(String::as_str) == Some("screencap")
                    && words.iter().any(|w| w == "-p")
                {
                    tv.commands += 1;
                    tv.screenshot()
                } else {
                    tv.shell(command).into_bytes()
                }
            };
            self.write_stream(local, remote, &output).await?;
            self.send(Message::new(Command::Clse, local, remote, vec![]))
                .await?;
            return Ok(());
        }
        if service.starts_with("reboot:") {
            self.send(Message::new(Command::Clse, local, remote, vec![]))
                .await?;
            let boot_ms = self.fleet.boot_ms;
            if let Some(mut tv) = self.fleet.tv(self.index) {
                tv.reboot(now_ms(), boot_ms);
            }
            return Err(SessionEnd::Gone);
        }
        if service.starts_with("sync:") {
            return self.sync(local, remote).await;
        }
        self.send(Message::new(Command::Clse, local, remote, vec![]))
            .await
    }

    async fn sync(&mut self, local: u32, remote: u32) -> Result<(), SessionEnd> {
        let mut decoder = SyncDecoder::new(Side::Device);
        let mut receiving: Option<(String, Vec<u8>)> = None;
        loop {
            let m = self.recv().await?;
            match m.command {
                Command::Wrte => {
                    self.send(Message::new(Command::Okay, local, remote, vec![]))
                        .await?;
                    decoder.push(&m.payload);
                }
                Command::Clse => return Ok(()),
                _ => continue,
            }
            loop {
                let packet = match decoder.next_packet() {
                    Ok(Some(p)) => p,
                    Ok(None) => break,
                    Err(e) => return Err(SessionEnd::Protocol(e.to_string())),
                };
                let reply = match packet {
                    SyncPacket::Stat(path) => {
                        let tv = self.fleet.tv(self.index).ok_or(SessionEnd::Gone)?;
                        Some(match tv.file_data.get(&path) {
                            Some(d) => SyncPacket::StatReply {
                                mode: 0o100644,
                                size: d.len() as u32,
                                mtime: 0,
                            },
                            None if path.ends_with('/') || path == "/sdcard" => {
                                SyncPacket::StatReply {
                                    mode: 0o040755,
                                    size: 0,
                                    mtime: 0,
                                }
                            }
                            None => SyncPacket::StatReply {
                                mode: 0,
                                size: 0,
                                mtime: 0,
                            },
                        })
                    }
                    SyncPacket::Send(spec) => {
                        let path = spec
                            .rsplit_once(',')
                            .map(|(p, _)| p)
                            .unwrap_or(&spec)
                            .to_owned();
                        receiving = Some((path, Vec::new()));
                        None
                    }
                    SyncPacket::Data(data) => {
                        if let Some((_, buf)) = receiving.as_mut() {
                            buf.extend_from_slice(&data);
                        }
                        None
                    }
                    SyncPacket::Done(_) => match receiving.take() {
                        Some((path, data)) if path.starts_with('/') => {
                            let mut tv = self.fleet.tv(self.index).ok_or(SessionEnd::Gone)?;
                            tv.files.insert(
                                path.clone(),
                                (hex::encode(Sha256::digest(&data)), data.len()),
                            );
                            tv.file_data.insert(path, data);
                            Some(SyncPacket::Okay)
                        }
                        Some((path, _)) => Some(SyncPacket::Fail(format!(
                            "remote path {path} is not absolute"
                        ))),
                        None => Some(SyncPacket::Fail("DONE without SEND".into())),
                    },
                    SyncPacket::Quit => {
                        self.send(Message::new(Command::Clse, local, remote, vec![]))
                            .await?;
                        return Ok(());
                    }
                    other => Some(SyncPacket::Fail(format!(
                        "unsupported sync request {other:?}"
                    ))),
                };
                if let Some(reply) = reply {
                    self.write_stream(local, remote, &reply.encode()).await?;
                }
            }
        }
    }
}

async fn serve_tv(fleet: TvFleet, index: usize, listener: tokio::net::TcpListener) {
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            continue;
        };
        let (up, hang, epoch) = match fleet.tv(index) {
            Some(mut tv) => {
                tv.connections += 1;
                (tv.up(now_ms()), tv.faults.hang, tv.epoch)
            }
            None => return,
        };
        if !up {
            drop(stream);
            continue;
        }
        let fleet = fleet.clone();
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            if hang {
                // Read and never answer until the TV is power-cycled.
                let mut stream = stream;
                let mut buf = [0u8; 4096];
                loop {
                    let gone = fleet
                        .tv(index)
                        .is_none_or(|t| t.epoch != epoch || !t.powered);
                    if gone {
                        return;
                    }
                    match tokio::time::timeout(Duration::from_millis(200), stream.read(&mut buf))
                        .await
                    {
                        Ok(Ok(0)) | Ok(Err(_)) => return,
                        _ => {}
                    }
                }
            }
            let mut session = Session {
                fleet,
                index,
                stream,
                decoder: Decoder::new(MAX_PAYLOAD),
                epoch,
                max_payload: MAX_PAYLOAD,
                next_id: 0,
            };
            if let Err(end) = session.serve().await {
                tracing::debug!(tv = index, %peer, %end, "session ended");
            }
        });
    }
}

/// Binds `count` listeners on consecutive ports from `listen`'s port; port 0 picks a free run of
/// consecutive ports.
async fn bind_consecutive(
    listen: SocketAddr,
    count: u16,
) -> anyhow::Result<Vec<tokio::net::TcpListener>> {
    let bind_run = |base: u16| async move {
        let mut listeners = Vec::new();
        for i in 0..count {
            let addr = SocketAddr::new(listen.ip(), base.checked_add(i)?);
            listeners.push(tokio::net::TcpListener::bind(addr).await.ok()?);
        }
        Some(listeners)
    };
    if listen.port() != 0 {
        return bind_run(listen.port()).await.ok_or_else(|| {
            anyhow::anyhow!("cannot listen on {count} consecutive ports from {listen}")
        });
    }
    for _ in 0..100 {
        let base: u16 = rand::random_range(20_000..60_000);
        if let Some(listeners) = bind_run(base).await {
            return Ok(listeners);
        }
    }
    anyhow::bail!("found no {count} free consecutive ports")
}

/// Starts `count` TVs from `listen` on; returns the fleet and the TVs' addresses.
pub async fn start(
    listen: SocketAddr,
    count: u16,
    boot_seconds: f64,
) -> anyhow::Result<(TvFleet, Vec<SocketAddr>)> {
    let listeners = bind_consecutive(listen, count).await?;
    let addrs: Vec<SocketAddr> = listeners
        .iter()
        .filter_map(|l| l.local_addr().ok())
        .collect();
    let fleet = TvFleet {
        tvs: Arc::new(
            addrs
                .iter()
                .enumerate()
                .map(|(i, a)| Mutex::new(TvState::new(i as u16, *a)))
                .collect(),
        ),
        boot_ms: (boot_seconds * 1000.0) as i64,
    };
    for (i, listener) in listeners.into_iter().enumerate() {
        tokio::spawn(serve_tv(fleet.clone(), i, listener));
    }
    Ok((fleet, addrs))
}

#[derive(Debug, Deserialize)]
struct PowerBody {
    on: bool,
}

/// The control API.
pub fn control_router(fleet: TvFleet) -> Router {
    type Reply = Result<Json<serde_json::Value>, (axum::http::StatusCode, String)>;
    fn missing(n: usize) -> (axum::http::StatusCode, String) {
        (axum::http::StatusCode::NOT_FOUND, format!("no TV {n}"))
    }
    Router::new()
        .route("/state", get(|State(f): State<TvFleet>| async move { Json(serde_json::json!(f.snapshot())) }))
        .route(
            "/tv/{n}",
            get(|State(f): State<TvFleet>, Path(n): Path<usize>| async move {
                let tv = f.tv(n).map(|t| t.clone()).ok_or_else(|| missing(n))?;
                Ok::<_, (axum::http::StatusCode, String)>(Json(serde_json::json!(tv)))
            }),
        )
        .route(
            "/tv/{n}/faults",
            post(|State(f): State<TvFleet>, Path(n): Path<usize>, Json(faults): Json<TvFaults>| async move {
                f.set_faults(n, faults.clone()).ok_or_else(|| missing(n))?;
                tracing::info!(tv = n, ?faults, "faults set");
                Reply::Ok(Json(serde_json::json!(faults)))
            }),
        )
        .route(
            "/tv/{n}/power",
            post(|State(f): State<TvFleet>, Path(n): Path<usize>, Json(body): Json<PowerBody>| async move {
                f.set_power(n, body.on).ok_or_else(|| missing(n))?;
                tracing::info!(tv = n, on = body.on, "power");
                Reply::Ok(Json(serde_json::json!({"on": body.on})))
            }),
        )
        .with_state(fleet)
}

/// `outpost-sim tv`: first line the first TV's address, second `control http://ADDR`.
pub async fn run(args: TvArgs) -> anyhow::Result<()> {
    let (fleet, addrs) = start(args.listen, args.count, args.boot_seconds).await?;
    let control = tokio::net::TcpListener::bind(args.control).await?;
    let control_addr = control.local_addr()?;
    println!(
        "{}",
        addrs.first().map(|a| a.to_string()).unwrap_or_default()
    );
    println!(
        "{} TVs on consecutive ports; control http://{control_addr}",
        addrs.len()
    );
    tokio::spawn(async move {
        if let Err(err) = axum::serve(control, control_router(fleet)).await {
            tracing::error!(%err, "tv control server stopped");
        }
    });
    tokio::signal::ctrl_c().await?;
    Ok(())
}
