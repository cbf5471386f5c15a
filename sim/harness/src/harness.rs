//! Running Outpost processes as real child processes: start, wait until ready, terminate politely
//! or `kill -9`. Used by the demo, the integration tests and the chaos scenarios.
//!
//! Invariant: a [`SiteProcess`] never outlives its owner by accident: dropping it kills the child.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// What went wrong with a child process.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    #[error("cannot start {name}: {source}")]
    Spawn {
        name: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{name} exited with {status} before it was ready; its log: {log}; it ends:\n{tail}")]
    ExitedEarly {
        name: String,
        status: ExitStatus,
        log: PathBuf,
        /// The log's last lines (the log is gone once the test's directory is).
        tail: String,
    },
    #[error(
        "{name} was not ready within {waited:?} (last /readyz answer: {last}); its log: {log}; \
         it ends:\n{tail}"
    )]
    NotReady {
        name: String,
        waited: Duration,
        last: String,
        log: PathBuf,
        /// The log's last lines (the log is gone once the test's directory is).
        tail: String,
    },
    #[error("cannot signal {name}: {source}")]
    Signal {
        name: String,
        #[source]
        source: nix::Error,
    },
    #[error("timed out after {waited:?} waiting for {what}")]
    TimedOut { what: String, waited: Duration },
    #[error("waiting for {name}: {source}")]
    Wait {
        name: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Layout(#[from] crate::site::SiteError),
}

/// The variable through which a process started by the harness learns its parent's pid: with it,
/// the child asks the kernel for SIGTERM when that parent dies ([`die_with_parent_if_asked`]), so a
/// `kill -9` of the demo or of a test leaves no orphans.
pub const PARENT_PID_ENV: &str = "OUTPOST_PARENT_PID";

/// Called first by `outpost-sim`: when started by the harness (`OUTPOST_PARENT_PID` set), the
/// process gets SIGTERM when its parent dies, and exits at once if the parent is already gone
/// (it died between the fork and this call). Without the variable it does nothing.
pub fn die_with_parent_if_asked() {
    let Some(parent) = std::env::var(PARENT_PID_ENV)
        .ok()
        .and_then(|p| p.parse::<i32>().ok())
    else {
        return;
    };
    if let Err(err) = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM) {
        eprintln!("warning: cannot ask to die with the parent process: {err}");
    }
    if nix::unistd::getppid().as_raw() != parent {
        eprintln!("the parent process (pid {parent}) is gone; exiting");
        std::process::exit(1);
    }
}

/// A running Outpost process with an admin address.
#[derive(Debug)]
pub struct SiteProcess {
    pub name: String,
    pub admin: SocketAddr,
    pub log: PathBuf,
    child: tokio::process::Child,
}

impl SiteProcess {
    /// Starts `exe args...`, its stdout and stderr appended to `log`.
    pub fn spawn(
        name: &str,
        exe: &Path,
        args: &[OsString],
        admin: SocketAddr,
        log: &Path,
    ) -> Result<Self, HarnessError> {
        let spawn_err = |source| HarnessError::Spawn {
            name: name.to_owned(),
            source,
        };
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(spawn_err)?;
        let err = out.try_clone().map_err(spawn_err)?;
        let child = tokio::process::Command::new(exe)
            .args(args)
            .env(PARENT_PID_ENV, std::process::id().to_string())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
            .map_err(spawn_err)?;
        Ok(Self {
            name: name.to_owned(),
            admin,
            log: log.to_owned(),
            child,
        })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Whether the process has ended (without waiting for it).
    pub fn has_exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    /// The last 25 lines of the process's log.
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(25)..].join("\n")
    }

    /// Polls `GET /readyz` until it answers 200, the process exits, or `timeout` passes.
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<(), HarnessError> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().map_err(|source| HarnessError::Wait {
                name: self.name.clone(),
                source,
            })? {
                return Err(HarnessError::ExitedEarly {
                    name: self.name.clone(),
                    status,
                    log: self.log.clone(),
                    tail: self.log_tail(),
                });
            }
            let last = match outpost_process::admin::get(self.admin, "/readyz").await {
                Ok((200, _)) => return Ok(()),
                Ok((status, body)) => format!("{status} {}", body.trim()),
                Err(err) => err.to_string(),
            };
            if started.elapsed() > timeout {
                return Err(HarnessError::NotReady {
                    name: self.name.clone(),
                    waited: timeout,
                    last,
                    log: self.log.clone(),
                    tail: self.log_tail(),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Resolves when the process exits on its own.
    pub async fn exited(&mut self) -> Result<ExitStatus, HarnessError> {
        self.child
            .wait()
            .await
            .map_err(|source| HarnessError::Wait {
                name: self.name.clone(),
                source,
            })
    }

    /// SIGTERM, then up to `grace` for a clean exit, then SIGKILL.
    pub async fn terminate(mut self, grace: Duration) -> Result<ExitStatus, HarnessError> {
        if let Some(pid) = self.child.id() {
            let pid = Pid::from_raw(pid as i32);
            kill(pid, Signal::SIGTERM).map_err(|source| HarnessError::Signal {
                name: self.name.clone(),
                source,
            })?;
            if let Ok(status) = tokio::time::timeout(grace, self.child.wait()).await {
                return status.map_err(|source| HarnessError::Wait {
                    name: self.name.clone(),
                    source,
                });
            }
            tracing::warn!(process = %self.name, "did not stop within {grace:?}; killing");
        }
        self.kill9().await
    }

    /// `kill -9`: no chance to clean up, as in a power cut of the process.
    pub async fn kill9(&mut self) -> Result<ExitStatus, HarnessError> {
        let name = self.name.clone();
        let wait_err = move |source| HarnessError::Wait { name, source };
        self.child.start_kill().map_err(wait_err.clone())?;
        self.child.wait().await.map_err(wait_err)
    }
}

/// Ports the harness hands out: below Linux's ephemeral range (32768-60999 by default), so the
/// outgoing connections of tests running in parallel never take a port between the moment it was
/// found free and the moment the process under test binds it.
const TEST_PORTS: std::ops::Range<u16> = 20_000..32_000;

/// A loopback address with a port (TCP and UDP) that was free a moment ago, outside the kernel's
/// ephemeral range.
///
/// A port handed out is also reserved for the life of this process by an exclusive `flock` on
/// `$TMPDIR/outpost-test-ports/<port>`, so tests running in parallel (nextest runs a process per
/// test) never hand out the same port between the moment it was found free and the moment the
/// process under test binds it. (CI once saw an edge's admin port taken that way.)
pub fn free_local_addr() -> std::io::Result<SocketAddr> {
    for _ in 0..1000 {
        let port = rand::random_range(TEST_PORTS);
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        if std::net::TcpListener::bind(addr).is_ok()
            && std::net::UdpSocket::bind(addr).is_ok()
            && reserve(port)
        {
            return Ok(addr);
        }
    }
    std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()
}

/// Reservations this process holds (released when it exits).
static RESERVED: std::sync::Mutex<Vec<nix::fcntl::Flock<std::fs::File>>> =
    std::sync::Mutex::new(Vec::new());

/// Whether `port` is now reserved by this process (`true` too where reservations cannot be made:
/// the port was free a moment ago, as before reservations).
fn reserve(port: u16) -> bool {
    let dir = std::env::temp_dir().join("outpost-test-ports");
    let opened = std::fs::create_dir_all(&dir).and_then(|()| {
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(port.to_string()))
    });
    let Ok(file) = opened else {
        return true;
    };
    match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
        Ok(lock) => {
            RESERVED
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(lock);
            true
        }
        // Another test process holds it.
        Err(_) => false,
    }
}

/// The value of metric `series` (name with labels, exactly as exposed, e.g.
/// `outpost_hub_committed_seq{edge="edge-01"}`) on the admin server at `admin`.
pub async fn scrape(admin: SocketAddr, series: &str) -> Option<f64> {
    let (status, body) = outpost_process::admin::get(admin, "/metrics").await.ok()?;
    if status != 200 {
        return None;
    }
    body.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// The sum of every series named `name` (any labels), if there is one.
pub async fn scrape_sum(admin: SocketAddr, name: &str) -> Option<f64> {
    let (status, body) = outpost_process::admin::get(admin, "/metrics").await.ok()?;
    if status != 200 {
        return None;
    }
    let values: Vec<f64> = body
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let rest = l.strip_prefix(name)?;
            let value = match rest.strip_prefix('{') {
                Some(labelled) => labelled.rsplit_once('}')?.1,
                None => rest,
            };
            value.strip_prefix(' ')?.trim().parse().ok()
        })
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

/// A site's processes: the hub and its edges, each started, stopped and killed at will.
#[derive(Debug)]
pub struct RunningSite {
    pub layout: crate::site::SiteLayout,
    binaries: Binaries,
    pub hub: Option<SiteProcess>,
    pub edges: Vec<Option<SiteProcess>>,
    /// A command the edges are started under (for example `ip netns exec NS`), empty for none.
    /// It must `exec` the edge, so the pid killed is the edge's.
    pub edge_prefix: Vec<OsString>,
    /// The same for the hub (`valgrind --tool=callgrind`, which runs it in its own process).
    pub hub_prefix: Vec<OsString>,
    /// How long a started hub or edge may take to be ready (30 s; more under valgrind).
    pub ready_timeout: Duration,
}

/// What a site runs its hub and edges with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Binaries {
    /// `outpost-sim hub run` and `outpost-sim edge run`: the one binary `cargo run` and the tests
    /// build. The same code as the product's, with the simulators and benchmarks linked in.
    Sim(PathBuf),
    /// The product's own `outpost-hub` and `outpost-edge`, as a user installs them: what a
    /// measure of their memory is about (the binary's pages are most of an idle edge's RSS).
    Product { hub: PathBuf, edge: PathBuf },
}

/// A process of a site.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Hub,
    Edge,
}

impl Binaries {
    /// The program and arguments that run `role` with `config`.
    fn command(&self, role: Role, config: &Path) -> (PathBuf, Vec<OsString>) {
        let tail = [
            "run".into(),
            "--config".into(),
            config.as_os_str().to_owned(),
        ];
        match (self, role) {
            (Self::Sim(exe), _) => {
                let subcommand = match role {
                    Role::Hub => "hub",
                    Role::Edge => "edge",
                };
                let args = [subcommand.into()].into_iter().chain(tail).collect();
                (exe.clone(), args)
            }
            (Self::Product { hub, .. }, Role::Hub) => (hub.clone(), tail.to_vec()),
            (Self::Product { edge, .. }, Role::Edge) => (edge.clone(), tail.to_vec()),
        }
    }
}

impl std::fmt::Display for Binaries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sim(exe) => write!(f, "{} hub run / edge run", exe.display()),
            Self::Product { hub, edge } => write!(f, "{} and {}", hub.display(), edge.display()),
        }
    }
}

/// `prefix… exe args…` as a program and its arguments.
fn under(prefix: &[OsString], command: (PathBuf, Vec<OsString>)) -> (PathBuf, Vec<OsString>) {
    let (exe, args) = command;
    match prefix.split_first() {
        Some((first, rest)) => (
            PathBuf::from(first),
            rest.iter()
                .cloned()
                .chain([exe.into_os_string()])
                .chain(args)
                .collect(),
        ),
        None => (exe, args),
    }
}

impl RunningSite {
    /// Starts the hub and every edge of `layout` and waits until all are ready.
    pub async fn start(exe: &Path, layout: crate::site::SiteLayout) -> Result<Self, HarnessError> {
        Self::start_with(Binaries::Sim(exe.to_owned()), layout).await
    }

    /// [`RunningSite::start`] with `binaries`.
    pub async fn start_with(
        binaries: Binaries,
        layout: crate::site::SiteLayout,
    ) -> Result<Self, HarnessError> {
        let mut site = Self::stopped_with(binaries, layout);
        site.start_hub().await?;
        for i in 0..site.edges.len() {
            site.start_edge(i).await?;
        }
        Ok(site)
    }

    /// The site of `layout` with nothing started yet.
    pub fn stopped(exe: &Path, layout: crate::site::SiteLayout) -> Self {
        Self::stopped_with(Binaries::Sim(exe.to_owned()), layout)
    }

    /// [`RunningSite::stopped`] with `binaries`.
    pub fn stopped_with(binaries: Binaries, layout: crate::site::SiteLayout) -> Self {
        let edges = layout.edges.iter().map(|_| None).collect();
        Self {
            layout,
            binaries,
            hub: None,
            edges,
            edge_prefix: Vec::new(),
            hub_prefix: Vec::new(),
            ready_timeout: Duration::from_secs(30),
        }
    }

    fn log(&self, name: &str) -> PathBuf {
        self.layout.dir.join(format!("{name}.log"))
    }

    pub async fn start_hub(&mut self) -> Result<(), HarnessError> {
        self.launch_hub()?;
        let timeout = self.ready_timeout;
        if let Some(hub) = self.hub.as_mut() {
            hub.wait_ready(timeout).await?;
        }
        Ok(())
    }

    /// Starts the hub without waiting for it to be ready (as a service manager does: a hub
    /// waiting for its store is running, not failed).
    pub fn launch_hub(&mut self) -> Result<(), HarnessError> {
        let command = self.binaries.command(Role::Hub, &self.layout.hub_config);
        let (program, args) = under(&self.hub_prefix, command);
        let hub = SiteProcess::spawn(
            "outpost-hub",
            &program,
            &args,
            self.layout.hub_admin,
            &self.log("hub"),
        )?;
        self.hub = Some(hub);
        Ok(())
    }

    pub async fn start_edge(&mut self, index: usize) -> Result<(), HarnessError> {
        let edge = &self.layout.edges[index];
        let command = self.binaries.command(Role::Edge, &edge.config);
        let (program, args) = under(&self.edge_prefix, command);
        let mut process =
            SiteProcess::spawn(&edge.id, &program, &args, edge.admin, &self.log(&edge.id))?;
        process.wait_ready(self.ready_timeout).await?;
        self.edges[index] = Some(process);
        Ok(())
    }

    /// `kill -9` edge `index` and start it again with `devices` (`[[devices]]` TOML written into
    /// its config) taken out: the drain at the end of a delivery test, with nothing new arriving.
    pub async fn restart_edge_without(
        &mut self,
        index: usize,
        devices: &str,
    ) -> Result<(), HarnessError> {
        self.kill9_edge(index).await?;
        let config = self.layout.edges[index].config.clone();
        let edit = |source| HarnessError::Spawn {
            name: config.display().to_string(),
            source,
        };
        let text = std::fs::read_to_string(&config).map_err(edit)?;
        std::fs::write(&config, text.replace(devices, "")).map_err(edit)?;
        self.start_edge(index).await
    }

    /// `kill -9` the hub (if running).
    pub async fn kill9_hub(&mut self) -> Result<(), HarnessError> {
        if let Some(mut hub) = self.hub.take() {
            hub.kill9().await?;
        }
        Ok(())
    }

    /// `kill -9` edge `index` (if running).
    pub async fn kill9_edge(&mut self, index: usize) -> Result<(), HarnessError> {
        if let Some(mut edge) = self.edges[index].take() {
            edge.kill9().await?;
        }
        Ok(())
    }

    /// Stops the hub with SIGTERM (its stores flushed), if running.
    pub async fn stop_hub(&mut self) -> Result<(), HarnessError> {
        if let Some(hub) = self.hub.take() {
            hub.terminate(Duration::from_secs(20)).await?;
        }
        Ok(())
    }

    /// Stops edge `index` with SIGTERM.
    pub async fn stop_edge(&mut self, index: usize) -> Result<(), HarnessError> {
        if let Some(edge) = self.edges[index].take() {
            edge.terminate(Duration::from_secs(20)).await?;
        }
        Ok(())
    }

    /// Stops everything with SIGTERM, edges first; returns whether each exited cleanly.
    pub async fn stop(mut self) -> Result<bool, HarnessError> {
        let mut clean = true;
        for edge in self.edges.iter_mut() {
            if let Some(edge) = edge.take() {
                clean &= edge.terminate(Duration::from_secs(20)).await?.success();
            }
        }
        if let Some(hub) = self.hub.take() {
            clean &= hub.terminate(Duration::from_secs(20)).await?.success();
        }
        Ok(clean)
    }

    /// Issues a command through the hub's API and waits (up to `timeout`) for its final status;
    /// returns the command record, or the API's refusal as `Err`.
    pub async fn command(
        &self,
        edge: &str,
        device: &str,
        op: &str,
        args: serde_json::Value,
        timeout: Duration,
    ) -> Result<serde_json::Value, String> {
        let body = serde_json::json!({"edge": edge, "device": device, "op": op, "args": args});
        let (status, text) = self
            .api("POST", "/api/v1/commands", &body.to_string())
            .await
            .map_err(|e| e.to_string())?;
        if status != 201 {
            return Err(format!("{status} {text}"));
        }
        let record: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        let id = record["id"].as_str().unwrap_or_default().to_owned();
        let started = std::time::Instant::now();
        loop {
            let (_, text) = self
                .api("GET", &format!("/api/v1/commands/{id}"), "")
                .await
                .map_err(|e| e.to_string())?;
            let record: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| e.to_string())?;
            let status = record["status"].as_str().unwrap_or_default();
            if !matches!(status, "pending" | "delivered") {
                return Ok(record);
            }
            if started.elapsed() > timeout {
                return Err(format!(
                    "command {id} not final after {timeout:?}: {record}"
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends an API request to the hub with the site's operator token.
    pub async fn api(
        &self,
        method: &str,
        path: &str,
        body: &str,
    ) -> std::io::Result<(u16, String)> {
        self.api_as(&self.layout.api_token, method, path, body)
            .await
    }

    /// Sends an API request to the hub with `token`.
    pub async fn api_as(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: &str,
    ) -> std::io::Result<(u16, String)> {
        let auth = format!("Bearer {token}");
        outpost_process::admin::request(
            self.layout.hub_api,
            method,
            path,
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
            ],
            body.as_bytes(),
        )
        .await
    }
}

/// Waits (up to `timeout`) until projection `name` of the hub at `hub_admin` has applied every
/// committed event (`outpost_projection_lag_events` 0).
pub async fn wait_projection_caught_up(
    hub_admin: SocketAddr,
    name: &str,
    timeout: Duration,
) -> Result<(), HarnessError> {
    let series = format!("outpost_projection_lag_events{{projection=\"{name}\"}}");
    wait_until(
        &format!("projection {name} to catch up"),
        timeout,
        || async { scrape(hub_admin, &series).await == Some(0.0) },
    )
    .await
}

/// Polls `check` every 100 ms until it is true, or fails after `timeout`.
pub async fn wait_until<F, Fut>(what: &str, timeout: Duration, check: F) -> Result<(), HarnessError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    wait_until_every(what, timeout, Duration::from_millis(100), check).await
}

/// Polls `check` every `every` until it is true, or fails after `timeout` (a short `every` for
/// timing what is waited for).
pub async fn wait_until_every<F, Fut>(
    what: &str,
    timeout: Duration,
    every: Duration,
    mut check: F,
) -> Result<(), HarnessError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        if started.elapsed() >= timeout {
            return Err(HarnessError::TimedOut {
                what: what.to_owned(),
                waited: started.elapsed(),
            });
        }
        tokio::time::sleep(every).await;
    }
    Ok(())
}

/// Waits until the hub has acknowledged every event the edge at `admin` stored (and it stored
/// at least one); returns the edge's last sequence number.
pub async fn wait_edge_drained(admin: SocketAddr, timeout: Duration) -> Result<u64, HarnessError> {
    wait_until("the edge's events to be acknowledged", timeout, || async {
        let last = scrape(admin, "outpost_outbox_last_seq")
            .await
            .unwrap_or(-1.0);
        let acked = scrape(admin, "outpost_outbox_acked_seq")
            .await
            .unwrap_or(-2.0);
        last > 0.0 && last == acked
    })
    .await?;
    Ok(scrape(admin, "outpost_outbox_last_seq")
        .await
        .unwrap_or(0.0) as u64)
}

/// Starts `exe subcommand args...` (a simulator), stderr to `log`, and returns it with the first
/// `lines` lines it printed (where it listens); the rest of its stdout is drained so it never
/// blocks on a full pipe.
async fn spawn_simulator(
    exe: &Path,
    subcommand: &str,
    args: &[&str],
    log: &Path,
    lines: usize,
) -> Result<(tokio::process::Child, Vec<String>), HarnessError> {
    let name = format!("outpost-sim {subcommand}");
    let err = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|source| HarnessError::Spawn {
            name: name.clone(),
            source,
        })?;
    let mut command = tokio::process::Command::new(exe);
    command.arg(subcommand).args(args).stderr(err);
    spawn_reading(&name, command, Duration::from_secs(20), |_, n| n == lines).await
}

/// Spawns `command` (stdin closed, stdout read, killed on drop, dying with this process) and reads
/// its stdout lines until `done(line, lines read)`; the rest is drained so it never blocks on a
/// full pipe. Each line must come within `timeout`.
async fn spawn_reading(
    name: &str,
    mut command: tokio::process::Command,
    timeout: Duration,
    mut done: impl FnMut(&str, usize) -> bool,
) -> Result<(tokio::process::Child, Vec<String>), HarnessError> {
    use tokio::io::AsyncBufReadExt;
    let spawn_err = |source| HarnessError::Spawn {
        name: name.to_owned(),
        source,
    };
    let mut child = command
        .env(PARENT_PID_ENV, std::process::id().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(spawn_err)?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| spawn_err(std::io::Error::other("no stdout")))?;
    let mut reader = tokio::io::BufReader::new(stdout).lines();
    let mut printed = Vec::new();
    loop {
        let line = tokio::time::timeout(timeout, reader.next_line())
            .await
            .map_err(|_| {
                spawn_err(std::io::Error::other(format!(
                    "no output within {timeout:?}"
                )))
            })?
            .map_err(spawn_err)?
            .ok_or_else(|| {
                spawn_err(std::io::Error::other(format!(
                    "exited before it was up; it printed: {printed:?}"
                )))
            })?;
        let finished = done(&line, printed.len() + 1);
        printed.push(line);
        if finished {
            break;
        }
    }
    tokio::spawn(async move { while let Ok(Some(_)) = reader.next_line().await {} });
    Ok((child, printed))
}

/// A running `outpost-sim demo`, and what it printed up to the line that says it now waits
/// (`Stopping in …` or `Press Ctrl-C …`); the rest of its output is drained.
#[derive(Debug)]
pub struct DemoProcess {
    pub child: tokio::process::Child,
    pub printed: Vec<String>,
}

impl DemoProcess {
    /// Starts `exe demo --dir dir args...` (its site in `dir`, so nothing is left elsewhere).
    pub async fn start(exe: &Path, dir: &Path, args: &[&str]) -> Result<Self, HarnessError> {
        let mut command = tokio::process::Command::new(exe);
        command.arg("demo").arg("--dir").arg(dir).args(args);
        let (child, printed) = spawn_reading(
            "outpost-sim demo",
            command,
            Duration::from_secs(90),
            |line, _| line.starts_with("Stopping in") || line.starts_with("Press Ctrl-C"),
        )
        .await?;
        Ok(Self { child, printed })
    }

    /// The admin addresses (`host:port`) of the hub's and the edge's `/metrics`, as printed.
    pub fn metrics_admins(&self) -> Vec<String> {
        self.printed
            .iter()
            .filter(|l| l.contains("hub   metrics") || l.contains("edge  metrics"))
            .filter_map(|l| l.split_whitespace().find(|w| w.starts_with("http://")))
            .map(|url| {
                url.trim_start_matches("http://")
                    .trim_end_matches("/metrics")
                    .to_owned()
            })
            .collect()
    }

    /// The `demo.env` file it printed a `. FILE` line for.
    pub fn env_file(&self) -> Option<PathBuf> {
        self.printed.iter().find_map(|l| {
            l.trim_start()
                .strip_prefix("shell    . ")
                .and_then(|rest| rest.split_whitespace().next())
                .map(PathBuf::from)
        })
    }
}

/// A running `outpost-sim hikcentral` process: its HTTPS URL and certificate fingerprint.
#[derive(Debug)]
pub struct HikSimProcess {
    pub url: String,
    pub fingerprint: String,
    child: tokio::process::Child,
}

impl HikSimProcess {
    /// Starts `exe hikcentral args...`; its stderr goes to `log`.
    pub async fn spawn(exe: &Path, args: &[&str], log: &Path) -> Result<Self, HarnessError> {
        let (child, printed) = spawn_simulator(exe, "hikcentral", args, log, 2).await?;
        let fingerprint = printed[1]
            .strip_prefix("sha256 ")
            .ok_or_else(|| HarnessError::Spawn {
                name: "outpost-sim hikcentral".into(),
                source: std::io::Error::other(format!("no fingerprint in {:?}", printed[1])),
            })?
            .to_owned();
        Ok(Self {
            url: printed[0].clone(),
            fingerprint,
            child,
        })
    }

    pub async fn kill(mut self) {
        let _ = self.child.kill().await;
    }
}

/// `GET path` of a simulator's control API, as JSON (an error unless 200).
async fn control_get(control: SocketAddr, path: &str) -> std::io::Result<serde_json::Value> {
    let (status, body) = outpost_process::admin::get(control, path).await?;
    if status != 200 {
        return Err(std::io::Error::other(format!("{path}: {status} {body}")));
    }
    serde_json::from_str(&body).map_err(std::io::Error::other)
}

/// `POST path` with a JSON body to a simulator's control API; the response body.
async fn control_post(
    control: SocketAddr,
    path: &str,
    body: &serde_json::Value,
) -> std::io::Result<String> {
    let (status, text) = outpost_process::admin::request(
        control,
        "POST",
        path,
        &[("Content-Type", "application/json")],
        body.to_string().as_bytes(),
    )
    .await?;
    if status != 200 {
        return Err(std::io::Error::other(format!("{path}: {status} {text}")));
    }
    Ok(text)
}

/// A running `outpost-sim tv` process: the first TV's ADB address (the others follow on the
/// next ports) and the control API.
#[derive(Debug)]
pub struct TvSimProcess {
    pub first: SocketAddr,
    pub control: SocketAddr,
    child: tokio::process::Child,
}

impl TvSimProcess {
    /// Starts `exe tv args...`; its stderr goes to `log`.
    pub async fn spawn(exe: &Path, args: &[&str], log: &Path) -> Result<Self, HarnessError> {
        let (child, printed) = spawn_simulator(exe, "tv", args, log, 2).await?;
        let bad = |what: &str| HarnessError::Spawn {
            name: "outpost-sim tv".into(),
            source: std::io::Error::other(format!("no {what} in {printed:?}")),
        };
        let first = printed[0].trim().parse().map_err(|_| bad("address"))?;
        let control = printed[1]
            .rsplit("control http://")
            .next()
            .and_then(|a| a.trim().parse().ok())
            .ok_or_else(|| bad("control address"))?;
        Ok(Self {
            first,
            control,
            child,
        })
    }

    /// TV `n`'s ADB address.
    pub fn tv(&self, n: u16) -> SocketAddr {
        SocketAddr::new(self.first.ip(), self.first.port() + n)
    }

    /// `GET path` of the control API as JSON.
    pub async fn get(&self, path: &str) -> std::io::Result<serde_json::Value> {
        control_get(self.control, path).await
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, body: &serde_json::Value) -> std::io::Result<()> {
        control_post(self.control, path, body).await.map(|_| ())
    }

    pub async fn kill(mut self) {
        let _ = self.child.kill().await;
    }
}

/// A running `outpost-sim egm` process: where its line is (pty path or TCP address) and its
/// control API.
#[derive(Debug)]
pub struct EgmSimProcess {
    /// The first line it printed: the pty path, serial path or TCP address of the line.
    pub line: String,
    pub control: SocketAddr,
    child: tokio::process::Child,
}

impl EgmSimProcess {
    /// Starts `exe egm args...` and reads where it listens; its stderr goes to `log`.
    pub async fn spawn(exe: &Path, args: &[&str], log: &Path) -> Result<Self, HarnessError> {
        let (child, printed) = spawn_simulator(exe, "egm", args, log, 2).await?;
        let describe = &printed[1];
        let control = describe
            .rsplit("control http://")
            .next()
            .and_then(|a| a.trim().parse().ok())
            .ok_or_else(|| HarnessError::Spawn {
                name: "outpost-sim egm".into(),
                source: std::io::Error::other(format!("no control address in {describe:?}")),
            })?;
        Ok(Self {
            line: printed[0].clone(),
            control,
            child,
        })
    }

    /// Starts a simulator of `machines` EGMs at addresses 1, 2, ... on a new pty (the layout
    /// [`crate::site::sas_pty_line_toml`] describes), with `more` arguments.
    pub async fn spawn_pty_line(
        exe: &Path,
        machines: u8,
        more: &[&str],
        log: &Path,
    ) -> Result<Self, HarnessError> {
        let count = machines.to_string();
        let mut args = vec!["--pty", "--address", "1", "--count", &count];
        args.extend_from_slice(more);
        Self::spawn(exe, &args, log).await
    }

    /// `GET /state` as JSON.
    pub async fn state(&self) -> std::io::Result<serde_json::Value> {
        control_get(self.control, "/state").await
    }

    /// `POST path` with a JSON body; the response body.
    pub async fn post(&self, path: &str, body: &serde_json::Value) -> std::io::Result<String> {
        control_post(self.control, path, body).await
    }

    pub async fn kill(mut self) {
        let _ = self.child.kill().await;
    }
}

/// What most floor tests start from: a simulated SAS line (a pty, `sim_args` for the simulator)
/// with `machines` at addresses 1, 2, …, read by edge `edge-01` as `line-1` (`line_toml` added to
/// the line's table), and a hub (`hub_toml` added to its config). Files go under `dir`.
pub async fn start_sas_line_site(
    exe: &Path,
    dir: &Path,
    machines: &[&str],
    sim_args: &[&str],
    line_toml: &str,
    hub_toml: String,
) -> Result<(EgmSimProcess, RunningSite), HarnessError> {
    let count = u8::try_from(machines.len()).unwrap_or(u8::MAX);
    let sim = EgmSimProcess::spawn_pty_line(exe, count, sim_args, &dir.join("egm.log")).await?;
    let ids: Vec<String> = machines.iter().map(|m| (*m).to_owned()).collect();
    let devices = crate::site::sas_pty_line_toml("line-1", &sim.line, &ids, line_toml);
    let mut spec = crate::site::SiteSpec::single("edge-01", &devices);
    spec.hub_extra_toml = hub_toml;
    let layout = crate::site::SiteLayout::prepare(dir, &spec)?;
    let site = RunningSite::start(exe, layout).await?;
    Ok((sim, site))
}

/// The Python interpreter of the protocol peers' venv (`OUTPOST_PEERS_PYTHON`, set by `.ci/run`;
/// else `target/peers-venv`). Panics with what to run if it is not installed: tests call it.
pub fn peers_python() -> PathBuf {
    let path = std::env::var_os("OUTPOST_PEERS_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/peers-venv/bin/python")
        });
    assert!(
        path.exists(),
        "the Python peers are not installed ({}); `bash .ci/run` installs them",
        path.display()
    );
    path
}

/// Runs `exe bench <args>` (`outpost-sim`) and returns the JSON document it prints on stdout, or
/// everything it said when it failed or printed something else (for the benchmarks' smoke tests).
pub fn bench_json<S: AsRef<std::ffi::OsStr>>(
    exe: &Path,
    args: impl IntoIterator<Item = S>,
) -> Result<serde_json::Value, String> {
    let out = std::process::Command::new(exe)
        .arg("bench")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", exe.display()))?;
    let said = String::from_utf8_lossy(&out.stdout);
    let log = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(format!("{}: {said}\n{log}", out.status));
    }
    serde_json::from_str(&said).map_err(|e| format!("not JSON ({e}): {said}\n{log}"))
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;
    use std::path::{Path, PathBuf};

    use super::{Binaries, Role};

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    #[test]
    fn outpost_sim_runs_each_role_through_its_subcommand() {
        let sim = Binaries::Sim(PathBuf::from("/t/outpost-sim"));
        assert_eq!(
            sim.command(Role::Edge, Path::new("e.toml")),
            (
                PathBuf::from("/t/outpost-sim"),
                args(&["edge", "run", "--config", "e.toml"])
            )
        );
        assert_eq!(
            sim.command(Role::Hub, Path::new("h.toml")).1,
            args(&["hub", "run", "--config", "h.toml"])
        );
    }

    #[test]
    fn the_product_runs_each_role_as_its_own_binary() {
        let product = Binaries::Product {
            hub: PathBuf::from("/t/outpost-hub"),
            edge: PathBuf::from("/t/outpost-edge"),
        };
        assert_eq!(
            product.command(Role::Hub, Path::new("h.toml")),
            (
                PathBuf::from("/t/outpost-hub"),
                args(&["run", "--config", "h.toml"])
            )
        );
        assert_eq!(
            product.command(Role::Edge, Path::new("e.toml")).0,
            PathBuf::from("/t/outpost-edge")
        );
    }
}
