//! The workload every real-process chaos scenario runs, and the checks it ends with.
//!
//! A small casino floor: slot machines simulated by `outpost-sim egm` on pty lines, playing
//! games, and a synthetic money device streaming 200-byte events, all on one edge delivering to
//! one hub. The scenario injects its faults into the running [`Floor`] (its `site` is the
//! harness's [`RunningSite`]), then calls [`Floor::finish`], which stops the play, lets the edge
//! drain and checks, with [`crate::checker`]:
//!
//! - per machine: the exceptions the *machine* recorded as acknowledged by the host (the
//!   simulator's own record, in another process, which no fault on the edge or the hub touches)
//!   against the hub's committed exceptions for it. After an edge's *power cut* (not after a
//!   crash), the machine's first acknowledgement is *indeterminate*, not acknowledged: SAS has
//!   no explicit acknowledgement, and an edge that lost its record of the last poll starts with
//!   the sync poll (`80`), which acknowledges, blindly, the reply the dead process may have read
//!   and not stored (`docs/testing.md`, "What the chaos suite found");
//! - the edge's sequence numbers: the hub's log must be `1..=last` (a loss at the hub is a gap
//!   here, since the edge forgets what the hub acknowledged), `last` read once the edge drained;
//!   what the edge stored after that (meter readings until it stops) is indeterminate;
//! - the projections against the machines: each machine's coin in, as the hub's gaming days
//!   report it through the API, equals what the simulator really added;
//! - the processes: hub and edge stop cleanly with SIGTERM at the end.
//!
//! Invariant: the verdicts are computed from what the hub holds on disk after it stopped, read
//! with the hub's own `EventLog`, never from counters the processes report about themselves.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use outpost_harness::harness::{
    EgmSimProcess, HarnessError, RunningSite, scrape, wait_edge_drained, wait_until,
};
use outpost_harness::site::{SiteLayout, SiteSpec, sas_pty_line_toml};
use outpost_link::{EventBody, SasEvent};

use crate::checker::{History, Verdict, align, check};
use crate::power_loss_fs::PowerLossDisk;

/// The synthetic money stream: 100 events/s of 200 bytes.
pub const SYNTHETIC_ID: &str = "money-stream";

/// Why a floor could not be run to its checks.
#[derive(Debug, thiserror::Error)]
pub enum FloorError {
    #[error(transparent)]
    Harness(#[from] HarnessError),
    #[error("site layout: {0}")]
    Site(#[from] outpost_harness::site::SiteError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}: {detail}")]
    Unexpected { what: String, detail: String },
    #[error("reading the hub's log: {0}")]
    Store(String),
    #[error(transparent)]
    Disk(#[from] crate::power_loss_fs::PowerLossFsError),
}

fn io(what: &str) -> impl FnOnce(std::io::Error) -> FloorError + '_ {
    move |source| FloorError::Io {
        what: what.to_owned(),
        source,
    }
}

/// How big the floor is.
#[derive(Debug, Clone)]
pub struct FloorSpec {
    pub lines: usize,
    pub machines_per_line: u8,
    /// Games per second per machine once play starts.
    pub play_rate: f64,
    /// `--faults` for the EGM simulators (noise on the serial line), empty for none.
    pub serial_faults: String,
    pub seed: u64,
    /// Extra TOML appended to the edge's config (for example an `[outbox]` table).
    pub edge_extra_toml: String,
    /// More `[[devices]]` tables for the edge (TVs, say), beside the machines and the stream.
    pub extra_devices_toml: String,
    /// Extra TOML appended to the hub's config (for example a `[hikcentral]` table).
    pub hub_extra_toml: String,
}

impl FloorSpec {
    pub fn new(seed: u64) -> Self {
        Self {
            lines: 2,
            machines_per_line: 3,
            play_rate: 4.0,
            serial_faults: String::new(),
            seed,
            edge_extra_toml: String::new(),
            extra_devices_toml: String::new(),
            hub_extra_toml: String::new(),
        }
    }
}

/// A floor laid out but not started: the scenario may mount disks on its data directories or
/// rewrite its edge's config first.
#[derive(Debug)]
pub struct PreparedFloor {
    pub layout: SiteLayout,
    sims: Vec<EgmSimProcess>,
    machines: Vec<(usize, u8, String)>,
    synthetic_toml: String,
    play_rate: f64,
    edge_prefix: Vec<String>,
}

/// A running floor.
#[derive(Debug)]
pub struct Floor {
    pub site: RunningSite,
    sims: Vec<EgmSimProcess>,
    machines: Vec<(usize, u8, String)>,
    synthetic_toml: String,
    pub hub_data: PathBuf,
    /// Every edge restart: when it was killed, when it was ready again (Unix ms), and whether
    /// its disk lost power with it.
    edge_restarts: Vec<EdgeRestart>,
}

#[derive(Debug, Clone, Copy)]
struct EdgeRestart {
    killed: i64,
    ready: i64,
    power_lost: bool,
}

/// After an edge is ready again, how long until its first poll of every machine (a margin for a
/// loaded machine).
const SYNC_AFTER_READY_MS: i64 = 2_000;

/// What [`Floor::finish`] found.
#[derive(Debug, Clone)]
pub struct FloorReport {
    /// Per machine, then the edge's sequence stream under `"edge sequence"`.
    pub verdicts: BTreeMap<String, Verdict>,
    pub total: Verdict,
    /// Machines whose coin in at the hub differs from the simulator's: (id, hub, machine).
    pub money_mismatches: Vec<(String, i128, i128)>,
    pub stopped_cleanly: bool,
    pub last_seq: u64,
    /// For each stream that differs: where, and the edge restarts near that moment.
    pub divergences: Vec<String>,
    /// The earliest and the latest wall-clock time (Unix µs) the edge put on an event.
    pub edge_wall_us: (i64, i64),
}

impl FloorReport {
    /// Exceptions whose acknowledgement the machines could not know was real (only after an
    /// edge's power cut; see the module docs).
    pub fn machine_indeterminate(&self) -> usize {
        self.verdicts
            .iter()
            .filter(|(stream, _)| stream.as_str() != "edge sequence")
            .map(|(_, v)| v.indeterminate)
            .sum()
    }

    pub fn valid(&self) -> bool {
        self.total.valid() && self.money_mismatches.is_empty() && self.stopped_cleanly
    }
}

impl std::fmt::Display for FloorReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (stream, verdict) in &self.verdicts {
            writeln!(f, "  {stream}: {verdict}")?;
        }
        writeln!(f, "  all streams: {}", self.total)?;
        for (id, hub, machine) in &self.money_mismatches {
            writeln!(
                f,
                "  {id}: coin in {hub} at the hub, {machine} on the machine"
            )?;
        }
        for divergence in &self.divergences {
            writeln!(f, "  {divergence}")?;
        }
        write!(f, "  stopped cleanly: {}", self.stopped_cleanly)
    }
}

/// Where a scenario lays out its site: `OUTPOST_CHAOS_DIR` if set (kept afterwards, to read the
/// logs), else a temporary directory removed at the end (hold the guard).
pub fn scenario_dir() -> (Option<tempfile::TempDir>, PathBuf) {
    match std::env::var_os("OUTPOST_CHAOS_DIR") {
        Some(dir) => (None, PathBuf::from(dir)),
        None => match tempfile::tempdir() {
            Ok(tmp) => {
                let path = tmp.path().to_owned();
                (Some(tmp), path)
            }
            Err(e) => panic!("cannot make a temporary directory: {e}"),
        },
    }
}

/// A scenario's knob from the environment (`OUTPOST_CHAOS_SEED`, …), or its default.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn machine_id(line: usize, address: u8) -> String {
    format!("egm-{line}-{address}")
}

/// A decimal amount (`"12.34"`) in cents.
fn cents(amount: &str) -> Option<i128> {
    let (whole, fraction) = amount.split_once('.').unwrap_or((amount, "0"));
    Some(whole.parse::<i128>().ok()? * 100 + fraction.parse::<i128>().ok()?)
}

impl PreparedFloor {
    /// Starts the simulators and lays out the site under `dir` (nothing of Outpost runs yet).
    pub async fn prepare(exe: &Path, dir: &Path, spec: &FloorSpec) -> Result<Self, FloorError> {
        let mut sims = Vec::new();
        let mut devices = String::new();
        let mut machines = Vec::new();
        for line in 0..spec.lines {
            let log = dir.join(format!("egm-line-{line}.log"));
            let seed = (spec.seed + line as u64).to_string();
            let mut args = vec!["--play-rate", "0", "--seed", &seed];
            if !spec.serial_faults.is_empty() {
                args.extend(["--faults", &spec.serial_faults]);
            }
            let sim =
                EgmSimProcess::spawn_pty_line(exe, spec.machines_per_line, &args, &log).await?;
            let ids: Vec<String> = (1..=spec.machines_per_line)
                .map(|a| machine_id(line, a))
                .collect();
            devices += &sas_pty_line_toml(
                &format!("line-{line}"),
                &sim.line,
                &ids,
                "meter_interval_ms = 1000",
            );
            machines.extend((1..=spec.machines_per_line).map(|a| (line, a, machine_id(line, a))));
            sims.push(sim);
        }
        let synthetic_toml = format!(
            "\n[[devices]]\nkind = \"synthetic\"\nid = \"{SYNTHETIC_ID}\"\nrate_per_second = 100.0\n\
             payload_bytes = 200\nclass = \"money\"\n"
        );
        let mut site = SiteSpec::single(
            "edge-01",
            &format!("{devices}{}{synthetic_toml}", spec.extra_devices_toml),
        );
        site.edge_extra_toml = spec.edge_extra_toml.clone();
        site.hub_extra_toml = spec.hub_extra_toml.clone();
        let layout = SiteLayout::prepare(dir, &site)?;
        Ok(Self {
            layout,
            sims,
            machines,
            synthetic_toml,
            play_rate: spec.play_rate,
            edge_prefix: Vec::new(),
        })
    }

    /// Puts the hub's and the edge's data directories each on a disk of its own
    /// ([`crate::power_loss_fs`]) of the given sizes; returns (hub's, edge's).
    pub fn mount_disks(
        &self,
        hub_bytes: u64,
        edge_bytes: u64,
    ) -> Result<(PowerLossDisk, PowerLossDisk), FloorError> {
        let hub_dir = &self.layout.hub_data_dir;
        let edge_dir = &self.layout.edges[0].data_dir;
        std::fs::create_dir_all(hub_dir).map_err(io("making the hub's data directory"))?;
        std::fs::create_dir_all(edge_dir).map_err(io("making the edge's data directory"))?;
        Ok((
            PowerLossDisk::mount(hub_dir, hub_bytes)?,
            PowerLossDisk::mount(edge_dir, edge_bytes)?,
        ))
    }

    /// Starts the edge under `prefix` (a command that `exec`s it: `ip netns exec NS`, `env
    /// VAR=…`).
    pub fn edge_under(&mut self, prefix: Vec<String>) {
        self.edge_prefix = prefix;
    }

    /// Puts the edge on another network: it is started under `prefix` (for example
    /// `ip netns exec NS`), its admin endpoint listens on `edge_ip` (same port), and it reaches
    /// the hub's link at `hub` (a proxy, say) instead of the hub's loopback address.
    pub fn edge_on_network(
        &mut self,
        prefix: Vec<String>,
        edge_ip: std::net::IpAddr,
        hub: std::net::SocketAddr,
    ) -> Result<(), FloorError> {
        let edge = &mut self.layout.edges[0];
        let admin = std::net::SocketAddr::new(edge_ip, edge.admin.port());
        let text =
            std::fs::read_to_string(&edge.config).map_err(io("reading the edge's config"))?;
        let text = text
            .replace(
                &format!("hub = \"{}\"", self.layout.hub_link),
                &format!("hub = \"{hub}\""),
            )
            .replace(
                &format!("listen = \"{}\"", edge.admin),
                &format!("listen = \"{admin}\""),
            );
        std::fs::write(&edge.config, text).map_err(io("writing the edge's config"))?;
        edge.admin = admin;
        self.edge_under(prefix);
        Ok(())
    }

    /// Starts hub and edge, waits until every machine's first meter reading (its baseline) is
    /// stored, and starts the play.
    pub async fn start(self, exe: &Path) -> Result<Floor, FloorError> {
        let hub_data = self.layout.hub_data_dir.clone();
        let edge_admin = self.layout.edges[0].admin;
        let mut site = RunningSite::stopped(exe, self.layout);
        site.edge_prefix = self.edge_prefix.iter().map(Into::into).collect();
        site.start_hub().await?;
        site.start_edge(0).await?;
        let machines = self.machines.clone();
        wait_until(
            "a first meter reading of every machine",
            Duration::from_secs(60),
            || async {
                let mut all = true;
                for (_, _, id) in &machines {
                    let series =
                        format!("outpost_sas_events_total{{device=\"{id}\",kind=\"meters\"}}");
                    all &= scrape(edge_admin, &series).await.unwrap_or(0.0) >= 1.0;
                }
                all
            },
        )
        .await?;
        // The baselines must be durable at the hub before play: wait for the drain.
        wait_edge_drained(edge_admin, Duration::from_secs(60)).await?;
        for sim in &self.sims {
            sim.post("/play", &serde_json::json!({"rate": self.play_rate}))
                .await
                .map_err(io("starting the play"))?;
        }
        Ok(Floor {
            site,
            sims: self.sims,
            machines: self.machines,
            synthetic_toml: self.synthetic_toml,
            hub_data,
            edge_restarts: Vec::new(),
        })
    }
}

impl Floor {
    /// `kill -9` of the edge; [`Self::start_edge`] brings it back (the pair is recorded).
    /// `power_lost`: the scenario cuts the power of the edge's disk too, before the start.
    pub async fn kill9_edge(&mut self, power_lost: bool) -> Result<(), FloorError> {
        self.edge_going_down(power_lost);
        Ok(self.site.kill9_edge(0).await?)
    }

    /// What systemd's `Restart=always` does: starts again the hub or the edge if its process
    /// ended by itself (the hub stops when a commit fails, for one). Returns how many it started.
    pub async fn restart_what_exited(&mut self) -> Result<u32, FloorError> {
        let mut started = 0;
        if self.site.hub.as_mut().is_some_and(|hub| hub.has_exited()) {
            self.site.hub = None;
            tracing::info!("the hub exited by itself; starting it again");
            self.site.launch_hub()?;
            started += 1;
        }
        if self.site.edges[0]
            .as_mut()
            .is_some_and(|edge| edge.has_exited())
        {
            self.site.edges[0] = None;
            tracing::info!("the edge exited by itself; starting it again");
            self.start_edge_after_exit().await?;
            started += 1;
        }
        Ok(started)
    }

    async fn start_edge_after_exit(&mut self) -> Result<(), FloorError> {
        self.edge_going_down(false);
        self.start_edge().await
    }

    /// Starts the edge again after [`Self::kill9_edge`].
    pub async fn start_edge(&mut self) -> Result<(), FloorError> {
        self.site.start_edge(0).await?;
        self.edge_ready_again();
        Ok(())
    }

    /// Records that the edge is going down now (the checker's restart windows).
    fn edge_going_down(&mut self, power_lost: bool) {
        self.edge_restarts.push(EdgeRestart {
            killed: outpost_process::clock::unix_ms(),
            ready: i64::MAX,
            power_lost,
        });
    }

    /// Records that the edge that last went down is ready again.
    fn edge_ready_again(&mut self) {
        if let Some(last) = self.edge_restarts.last_mut() {
            last.ready = outpost_process::clock::unix_ms();
        }
    }

    /// Which of a machine's acknowledgements (their times, in order) may have been blind: per
    /// edge restart whose disk lost power, the machine's first acknowledgement after the kill, if
    /// it came before the new edge had been ready for [`SYNC_AFTER_READY_MS`]. After a power cut
    /// the edge has forgotten its last poll (`edge::devices::sas::last_poll` is not synced), so
    /// it starts with the sync poll, which acknowledges the reply the dead process may have read
    /// and not stored: one per machine at most. After a crash alone nothing is indeterminate.
    fn blind_acknowledgements(
        restarts: &[EdgeRestart],
        acknowledged_at: &[i64],
    ) -> BTreeSet<usize> {
        restarts
            .iter()
            .filter(|r| r.power_lost)
            .filter_map(|r| {
                let first = acknowledged_at.partition_point(|&at| at < r.killed);
                let at = *acknowledged_at.get(first)?;
                (at <= r.ready.saturating_add(SYNC_AFTER_READY_MS)).then_some(first)
            })
            .collect()
    }

    /// Makes sure hub and edge run (a scenario may end with either down), stops the play and the
    /// synthetic stream, drains, stops both, and checks (module docs).
    pub async fn finish(mut self) -> Result<FloorReport, FloorError> {
        let edge_admin = self.site.layout.edges[0].admin;
        for sim in &self.sims {
            sim.post("/play", &serde_json::json!({"rate": 0.0}))
                .await
                .map_err(io("stopping the play"))?;
        }
        self.restart_what_exited().await?;
        if self.site.hub.is_none() {
            self.site.start_hub().await?;
        }
        // The edge again without the synthetic device: nothing new arrives while it drains.
        self.edge_going_down(false);
        self.site
            .restart_edge_without(0, &self.synthetic_toml)
            .await?;
        self.edge_ready_again();
        let sims = &self.sims;
        wait_until(
            "every exception to be acknowledged by the host",
            Duration::from_secs(60),
            || async {
                let mut done = true;
                for sim in sims {
                    done &= sim.state().await.is_ok_and(|s| {
                        s["egms"]
                            .as_array()
                            .is_some_and(|m| m.iter().all(|m| m["pending"] == 0))
                    });
                }
                done
            },
        )
        .await?;
        // One more meter reading of every machine after its last game.
        tokio::time::sleep(Duration::from_millis(2_500)).await;
        let last_seq = wait_edge_drained(edge_admin, Duration::from_secs(120)).await?;
        let hub_admin = self.site.layout.hub_admin;
        wait_until(
            "the projections to apply every committed event",
            Duration::from_secs(60),
            || async {
                scrape(
                    hub_admin,
                    "outpost_projection_lag_events{projection=\"accounting\"}",
                )
                .await
                    == Some(0.0)
            },
        )
        .await?;

        // Gaming days from two days before to two days after today (UTC): an edge whose clock
        // ran hours ahead files play under tomorrow's gaming day, which the API's default range
        // (up to today) leaves out. (A CI run at 00:50 UTC, with the edge six hours ahead, read
        // coin in 0 for every machine that way.)
        let today = jiff::Timestamp::now()
            .to_zoned_datetime(jiff::tz::TimeZone::UTC)
            .date();
        let around = |days: i64| {
            today
                .checked_add(jiff::Span::new().days(days))
                .unwrap_or(today)
        };
        let range = format!("from={}&to={}", around(-2), around(2));
        let mut coin_in_at_hub = BTreeMap::new();
        for (_, _, id) in &self.machines {
            let (status, text) = self
                .site
                .api(
                    "GET",
                    &format!("/api/v1/machines/edge-01/{id}/days?{range}"),
                    "",
                )
                .await
                .map_err(io("reading gaming days"))?;
            let days: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| FloorError::Unexpected {
                    what: format!("gaming days of {id} (HTTP {status})"),
                    detail: format!("{e}: {text}"),
                })?;
            let total: i128 = days
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|d| d["figures"]["coin_in"].as_str().and_then(cents))
                .sum();
            coin_in_at_hub.insert(id.clone(), total);
        }
        let mut states = Vec::new();
        for sim in &self.sims {
            states.push(
                sim.state()
                    .await
                    .map_err(io("reading a simulator's state"))?,
            );
        }
        let restarts = self.edge_restarts.clone();
        let stopped_cleanly = self.site.stop().await?;
        for sim in self.sims {
            sim.kill().await;
        }

        let hub = read_hub_log(&self.hub_data)?;
        let mut verdicts = BTreeMap::new();
        let mut money_mismatches = Vec::new();
        let mut divergences = Vec::new();
        for (line, address, id) in &self.machines {
            let machine = states[*line]["egms"]
                .as_array()
                .and_then(|m| m.iter().find(|m| m["address"] == u64::from(*address)))
                .ok_or_else(|| FloorError::Unexpected {
                    what: format!("machine {id} in its simulator's state"),
                    detail: states[*line].to_string(),
                })?;
            let delivered: Vec<u8> = machine["delivered"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c.as_u64().map(|c| c as u8))
                .collect();
            let acknowledged_at: Vec<i64> = machine["delivered_at_ms"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| t.as_i64())
                .collect();
            // Ids: the machine's own order. A hub exception is the machine's exception it lines up
            // with, or a new id past the end (extra).
            let blind = Self::blind_acknowledgements(&restarts, &acknowledged_at);
            let (acknowledged, indeterminate): (Vec<usize>, Vec<usize>) =
                (0..delivered.len()).partition(|i| !blind.contains(i));
            let history = History {
                acknowledged,
                indeterminate,
            };
            let at_hub = hub.exceptions.get(id).cloned().unwrap_or_default();
            let observed: Vec<usize> = align(&delivered, &at_hub, |i| !blind.contains(&i))
                .into_iter()
                .enumerate()
                .map(|(j, matched)| matched.unwrap_or(delivered.len() + j))
                .collect();
            let verdict = check(&history, &observed);
            if !verdict.valid() {
                let diverges = delivered
                    .iter()
                    .zip(&at_hub)
                    .position(|(a, b)| a != b)
                    .unwrap_or(delivered.len().min(at_hub.len()));
                let at = acknowledged_at.get(diverges).copied().unwrap_or(0);
                let near: Vec<String> = restarts
                    .iter()
                    .filter(|r| (r.killed - at).abs() < 10_000)
                    .map(|r| {
                        format!(
                            "killed {:+} ms, ready {:+} ms{}",
                            r.killed - at,
                            r.ready.saturating_sub(at),
                            if r.power_lost { ", power lost" } else { "" }
                        )
                    })
                    .collect();
                divergences.push(format!(
                    "{id}: first difference at exception {diverges} (machine {:02X?}, hub {:02X?}), acknowledged at {at}; edge restarts near it: {near:?}",
                    delivered.get(diverges.saturating_sub(1)..(diverges + 3).min(delivered.len())),
                    at_hub.get(diverges.saturating_sub(1)..(diverges + 3).min(at_hub.len())),
                ));
            }
            verdicts.insert(id.clone(), verdict);
            let lifetime = machine["lifetime"][outpost_sas::egm::meter::COIN_IN.to_string()]
                .as_u64()
                .unwrap_or(0) as i128;
            let at_hub = coin_in_at_hub.get(id).copied().unwrap_or(0);
            if lifetime != at_hub {
                money_mismatches.push((id.clone(), at_hub, lifetime));
            }
        }
        // The edge goes on reading meters between the drain and its stop: what it stored after
        // `last_seq` was measured may or may not have reached the hub (outcome unknown).
        let beyond = hub.seqs.iter().copied().max().unwrap_or(0).max(last_seq);
        let edge = check(
            &History {
                acknowledged: (1..=last_seq).collect(),
                indeterminate: (last_seq + 1..=beyond).collect(),
            },
            &hub.seqs,
        );
        if !edge.valid() {
            // What the hub holds around where the edge's own sequence ends.
            let around: Vec<String> = hub
                .events
                .iter()
                .filter(|(seq, ..)| seq.abs_diff(last_seq) <= 6)
                .map(|(seq, device, boot, wall_us)| {
                    format!("{seq} {device} boot {boot:04x} at {wall_us}")
                })
                .collect();
            divergences.push(format!(
                "edge sequence: the edge's last is {last_seq}; the hub holds near it: {around:?}"
            ));
        }
        verdicts.insert("edge sequence".to_owned(), edge);
        let mut total = Verdict::default();
        for verdict in verdicts.values() {
            total.add(verdict);
        }
        Ok(FloorReport {
            verdicts,
            total,
            money_mismatches,
            stopped_cleanly,
            last_seq,
            divergences,
            edge_wall_us: hub.wall_us,
        })
    }
}

struct HubLog {
    seqs: Vec<u64>,
    /// (seq, device, low bits of the boot id, wall time) of every event, for diagnoses.
    events: Vec<(u64, String, u16, i64)>,
    exceptions: BTreeMap<String, Vec<u8>>,
    wall_us: (i64, i64),
}

fn read_hub_log(hub_data: &Path) -> Result<HubLog, FloorError> {
    let store = |e: &dyn std::fmt::Display| FloorError::Store(e.to_string());
    let durable =
        Arc::new(outpost_storage::DurableDb::open(&hub_data.join("db")).map_err(|e| store(&e))?);
    let log = outpost_hub::EventLog::start(durable, 64, |_| {}).map_err(|e| store(&e))?;
    let events = log.read("edge-01", 0, usize::MAX).map_err(|e| store(&e))?;
    let mut seqs = Vec::with_capacity(events.len());
    let mut exceptions: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut wall_us = (i64::MAX, i64::MIN);
    let mut listed = Vec::with_capacity(events.len());
    for stored in &events {
        seqs.push(stored.event.seq);
        listed.push((
            stored.event.seq,
            stored.event.device.clone(),
            stored.event.boot_id as u16,
            stored.event.wall_us,
        ));
        wall_us = (
            wall_us.0.min(stored.event.wall_us),
            wall_us.1.max(stored.event.wall_us),
        );
        if let EventBody::Sas(SasEvent::Exception { code }) = &stored.event.body {
            exceptions
                .entry(stored.event.device.clone())
                .or_default()
                .push(*code);
        }
    }
    Ok(HubLog {
        seqs,
        events: listed,
        exceptions,
        wall_us,
    })
}
