//! The TV actor: one per Android TV, holding one ADB connection (made with the edge's RSA key),
//! reading telemetry on a schedule, running operators' operations, and healing the TV when it
//! stops answering or its player app is not in front.
//!
//! The self-healing ladder (per TV, `[devices.recovery]`): after `unhealthy_checks` failed checks,
//! reconnect ADB → restart the player app → reboot over ADB → power-cycle by the TV's relay; each
//! step waits its time and is skipped when it cannot apply (no ADB for the app or reboot, no
//! relay); each step taken is an audit event and `outpost_tv_recovery_steps_total{step}`. The TV
//! answering again (healthy) ends the ladder at once. After the last step the ladder starts over
//! after `round_pause_ms`, doubled each round up to `round_pause_max_ms`: it never loops faster.
//!
//! Invariants: every ADB exchange is bounded by `op_timeout_ms`; an operation is typed
//! ([`outpost_command::TvCommand`], valid by construction) and translated by
//! [`outpost_adb::tv::action`]; a push is verified by the TV's own
//! `sha256sum` of the file; a screenshot is a PNG queued for the hub's bulk store.

pub mod adb;

use std::path::Path;
use std::time::{Duration, Instant};

use outpost_adb::tv::{self, TvAction, telemetry};
use outpost_command::{CommandReply, DeviceCommand, DeviceKind, RelayCommand, TvCommand};
use outpost_config::TvConfig;
use outpost_link::{EventBody, EventClass, TvEvent};
use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::metrics;
use crate::shared::{DeviceError, DeviceMsg, DeviceRegistration, EdgeShared};
use adb::{AdbConnection, AdbError};

/// Loads the edge's ADB key from `path`, or makes one there (0600) on first start.
pub fn load_or_create_key(path: &Path) -> anyhow::Result<rsa::RsaPrivateKey> {
    if path.exists() {
        let pem = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("ADB key {}: {e}", path.display()))?;
        return outpost_adb::auth::key_from_pem(&pem)
            .map_err(|e| anyhow::anyhow!("ADB key {}: {e}", path.display()));
    }
    let key = outpost_adb::auth::generate_key()?;
    let pem = outpost_adb::auth::key_to_pem(&key)?;
    let tmp = path.with_extension("tmp");
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(pem.as_bytes())?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    tracing::info!(path = %path.display(), "made this edge's ADB key");
    Ok(key)
}

/// The steps of the ladder, in order.
pub const STEPS: [&str; 4] = ["reconnect", "restart_app", "reboot", "power_cycle"];

#[derive(Debug, Clone, Copy, Default)]
pub struct TvActor;

#[derive(Clone)]
pub struct TvArgs {
    pub config: TvConfig,
    pub shared: EdgeShared,
}

/// Where the ladder is.
#[derive(Debug, Default)]
struct Ladder {
    unhealthy: u32,
    /// Next step index (into [`STEPS`]); `None`: not climbing.
    next: Option<usize>,
    /// No step before this.
    not_before: Option<Instant>,
    rounds: u32,
}

pub struct TvState {
    args: TvArgs,
    _registration: DeviceRegistration,
    key: std::sync::Arc<rsa::RsaPrivateKey>,
    connection: Option<AdbConnection>,
    up: Option<bool>,
    ladder: Ladder,
    timer: Option<tokio::task::JoinHandle<Result<(), ractor::MessagingErr<DeviceMsg>>>>,
}

impl Drop for TvState {
    fn drop(&mut self) {
        if let Some(timer) = self.timer.take() {
            timer.abort();
        }
    }
}

fn ethernet(interface: Option<&str>) -> String {
    match interface {
        Some(name) => std::fs::read_to_string(format!("/sys/class/net/{name}/operstate"))
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| "unknown".into()),
        None => "unknown".into(),
    }
}

impl TvState {
    fn timeout(&self) -> Duration {
        Duration::from_millis(self.args.config.op_timeout_ms)
    }

    fn id(&self) -> &str {
        &self.args.config.id
    }

    async fn connection(&mut self) -> Result<&mut AdbConnection, AdbError> {
        if self.connection.is_none() {
            let name = format!("outpost@{}", self.args.config.id);
            let connection =
                AdbConnection::connect(self.args.config.address, &self.key, &name, self.timeout())
                    .await?;
            self.connection = Some(connection);
        }
        self.connection.as_mut().ok_or(AdbError::Closed)
    }

    /// Runs `service` on the connection; a failure drops it (the next call reconnects). A
    /// connection found dead before the service started (the TV rebooted, say) is replaced once:
    /// nothing ran, so trying again cannot run anything twice.
    async fn run_service(&mut self, service: &str) -> Result<Vec<u8>, AdbError> {
        let reused = self.connection.is_some();
        let mut result = self.connection().await?.run(service).await;
        if reused && matches!(result, Err(AdbError::NotStarted(_))) {
            self.connection = None;
            result = self.connection().await?.run(service).await;
        }
        if result.is_err() {
            self.connection = None;
        }
        result
    }

    async fn shell(&mut self, command: &str) -> Result<String, AdbError> {
        let bytes = self.run_service(&format!("shell:{command}")).await?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    async fn record(&self, class: EventClass, event: TvEvent) {
        if let Some(outbox) = self.args.shared.outbox()
            && let Err(err) = outbox.append(self.id(), class, EventBody::Tv(event)).await
        {
            tracing::warn!(device = %self.id(), %err, "TV event not stored");
        }
    }

    fn set_up(&mut self, up: bool) -> bool {
        let changed = self.up != Some(up);
        self.up = Some(up);
        metrics::TV_UP
            .with_label_values(&[self.id()])
            .set(i64::from(up));
        changed
    }

    /// One telemetry reading; returns whether the TV is healthy (answers, player in front).
    async fn check(&mut self) -> bool {
        let reading = async {
            let power = self.shell("dumpsys power").await?;
            let volume = self
                .shell("cmd media_session volume --stream 3 --get")
                .await?;
            let input = self.shell("getprop persist.sys.tv.input").await?;
            let activities = self.shell("dumpsys activity activities").await?;
            Ok::<_, AdbError>((power, volume, input, activities))
        }
        .await;
        let ethernet = ethernet(self.args.config.ethernet_interface.as_deref());
        let (healthy, event) = match reading {
            Ok((power, volume, input, activities)) => {
                metrics::TV_LAST_SEEN
                    .with_label_values(&[self.id()])
                    .set(outpost_process::clock::unix_ms() as f64 / 1000.0);
                let app = telemetry::foreground_app(&activities);
                let healthy = app.as_deref() == Some(self.args.config.player_app.as_str());
                let input = input.trim();
                (
                    healthy,
                    TvEvent::Telemetry {
                        answers: true,
                        screen_on: telemetry::screen_on(&power),
                        volume: telemetry::volume(&volume),
                        input: (!input.is_empty()).then(|| input.to_owned()),
                        app,
                        ethernet,
                    },
                )
            }
            Err(err) => {
                tracing::debug!(device = %self.id(), %err, "TV check failed");
                (
                    false,
                    TvEvent::Telemetry {
                        answers: false,
                        screen_on: None,
                        volume: None,
                        input: None,
                        app: None,
                        ethernet,
                    },
                )
            }
        };
        self.record(EventClass::Telemetry, event).await;
        let answers = self.connection.is_some();
        if self.set_up(healthy) {
            tracing::info!(device = %self.id(), healthy, answers, "TV health changed");
            self.record(EventClass::Audit, TvEvent::Link { up: healthy })
                .await;
        }
        healthy
    }

    /// Advances the ladder after a check.
    async fn heal(&mut self, healthy: bool) {
        let recovery = self.args.config.recovery.clone();
        if healthy {
            if self.ladder.next.is_some() {
                tracing::info!(device = %self.id(), "TV healthy again; recovery ends");
                self.record(
                    EventClass::Audit,
                    TvEvent::Recovery {
                        step: "recovered".into(),
                        detail: "the TV answers and its player is in front".into(),
                    },
                )
                .await;
            }
            self.ladder = Ladder::default();
            return;
        }
        if !recovery.enabled {
            return;
        }
        self.ladder.unhealthy += 1;
        if self.ladder.unhealthy < recovery.unhealthy_checks {
            return;
        }
        if self.ladder.not_before.is_some_and(|t| Instant::now() < t) {
            return;
        }
        let index = self.ladder.next.unwrap_or(0);
        if index >= STEPS.len() {
            // A round finished: start over after the pause (doubling).
            self.ladder.rounds += 1;
            let pause = recovery
                .round_pause_ms
                .saturating_mul(1u64 << self.ladder.rounds.min(20).saturating_sub(1))
                .min(recovery.round_pause_max_ms);
            self.ladder.next = Some(0);
            self.ladder.not_before = Some(Instant::now() + Duration::from_millis(pause));
            tracing::warn!(device = %self.id(), round = self.ladder.rounds, pause_ms = pause, "every recovery step tried; starting over after a pause");
            // The hub alerts on this (rule healing_exhausted) while the TV stays down.
            self.record(
                EventClass::Audit,
                TvEvent::Recovery {
                    step: "exhausted".into(),
                    detail: format!(
                        "every recovery step was tried (round {}); starting over in {} s",
                        self.ladder.rounds,
                        pause / 1000
                    ),
                },
            )
            .await;
            return;
        }
        let step = STEPS[index];
        let (taken, detail, wait) = self.take_step(step).await;
        self.ladder.next = Some(index + 1);
        if taken {
            metrics::TV_RECOVERY_STEPS
                .with_label_values(&[self.id(), step])
                .inc();
            tracing::warn!(device = %self.id(), step, %detail, "recovery step");
            self.record(
                EventClass::Audit,
                TvEvent::Recovery {
                    step: step.into(),
                    detail,
                },
            )
            .await;
            self.ladder.not_before = Some(Instant::now() + Duration::from_millis(wait));
        } else {
            tracing::info!(device = %self.id(), step, %detail, "recovery step skipped");
        }
    }

    /// Takes one step: (taken, what happened, wait before the next).
    async fn take_step(&mut self, step: &str) -> (bool, String, u64) {
        let r = self.args.config.recovery.clone();
        let app = self.args.config.player_app.clone();
        match step {
            "reconnect" => {
                self.connection = None;
                let detail = match self.connection().await {
                    Ok(_) => "reconnected".to_owned(),
                    Err(e) => format!("reconnect failed: {e}"),
                };
                (true, detail, r.reconnect_wait_ms)
            }
            "restart_app" => {
                if self.connection.is_none() {
                    return (false, "no ADB connection".into(), 0);
                }
                let result = async {
                    self.shell(&format!("am force-stop {app}")).await?;
                    self.shell(&format!(
                        "monkey -p {app} -c android.intent.category.LAUNCHER 1"
                    ))
                    .await
                }
                .await;
                let detail = match result {
                    Ok(_) => format!("restarted {app}"),
                    Err(e) => format!("restart of {app} failed: {e}"),
                };
                (true, detail, r.restart_app_wait_ms)
            }
            "reboot" => {
                let Some(connection) = self.connection.take() else {
                    return (false, "no ADB connection".into(), 0);
                };
                let detail = match connection.reboot().await {
                    Ok(()) => "rebooting".to_owned(),
                    Err(e) => format!("reboot failed: {e}"),
                };
                (true, detail, r.reboot_wait_ms)
            }
            _ => {
                let Some(relay) = self.args.config.relay.clone() else {
                    return (false, "no relay powers this TV".into(), 0);
                };
                self.connection = None;
                let detail = match self.args.shared.device(&relay) {
                    None => format!("relay {relay} is not running"),
                    Some(entry) => {
                        let call = entry.actor.call(
                            |reply| DeviceMsg::Execute {
                                command: DeviceCommand::Relay(RelayCommand::Cycle(
                                    Default::default(),
                                )),
                                reply,
                            },
                            Some(Duration::from_secs(620)),
                        );
                        match call.await {
                            Ok(ractor::rpc::CallResult::Success(Ok(detail))) => {
                                format!("relay {relay} cycled: {detail}")
                            }
                            Ok(ractor::rpc::CallResult::Success(Err(e))) => {
                                format!("relay {relay} failed: {e}")
                            }
                            Ok(_) => format!("relay {relay} did not answer"),
                            Err(e) => format!("relay {relay}: {e}"),
                        }
                    }
                };
                (true, detail, r.power_cycle_wait_ms)
            }
        }
    }

    async fn execute(&mut self, command: DeviceCommand) -> Result<CommandReply, DeviceError> {
        let DeviceCommand::Tv(command) = command else {
            return Err(command.wrong_kind(DeviceKind::Tv).into());
        };
        let op = command.op();
        let started = Instant::now();
        let result = self.run(command).await;
        metrics::TV_OP_SECONDS
            .with_label_values(&[op])
            .observe(started.elapsed().as_secs_f64());
        if let Err(err) = &result {
            tracing::info!(device = %self.id(), op, %err, "TV operation failed");
        }
        result
    }

    async fn run(&mut self, command: TvCommand) -> Result<CommandReply, DeviceError> {
        let failed = |e: AdbError| DeviceError::Failed(e.to_string());
        match (tv::action(&command), command) {
            (TvAction::Shell(line), command) => {
                let output = self.shell(&line).await.map_err(failed)?;
                if output.contains("Error") || output.contains("not found") {
                    return Err(DeviceError::Failed(format!(
                        "the TV answered: {}",
                        output.trim()
                    )));
                }
                Ok(match command {
                    TvCommand::Volume(args) => CommandReply::Volume {
                        level: args.level.get(),
                    },
                    TvCommand::Launch(args) => CommandReply::Launched {
                        package: args.package.as_str().to_owned(),
                    },
                    _ => CommandReply::sent(&line),
                })
            }
            (TvAction::Screenshot, _) => {
                let png = self
                    .run_service("exec:screencap -p")
                    .await
                    .map_err(failed)?;
                if !png.starts_with(b"\x89PNG\r\n\x1a\n") {
                    return Err(DeviceError::Failed(format!(
                        "screencap did not return a PNG: {}",
                        String::from_utf8_lossy(&png[..png.len().min(80)])
                    )));
                }
                let bytes = png.len() as u64;
                let sha256 = tv::hex_sha256(&png);
                let bulk_id = self
                    .args
                    .shared
                    .bulk
                    .submit(self.id(), "image/png", png)
                    .map_err(|e| DeviceError::Failed(e.to_string()))?;
                Ok(CommandReply::Screenshot {
                    bulk_id,
                    bytes,
                    sha256,
                })
            }
            (TvAction::Reboot, _) => {
                let connection = {
                    self.connection().await.map_err(failed)?;
                    self.connection
                        .take()
                        .ok_or_else(|| failed(AdbError::Closed))?
                };
                connection.reboot().await.map_err(failed)?;
                Ok(CommandReply::Rebooting {})
            }
            (TvAction::Push, TvCommand::Push(push)) => {
                let path = push.path().as_str();
                let result = self
                    .connection()
                    .await
                    .map_err(failed)?
                    .push(path, 0o644, push.data())
                    .await;
                result
                    .inspect_err(|_| self.connection = None)
                    .map_err(failed)?;
                let check = self
                    .shell(&format!("sha256sum {path}"))
                    .await
                    .map_err(failed)?;
                let reported = check.split_whitespace().next().unwrap_or_default();
                if reported != push.sha256() {
                    return Err(DeviceError::Failed(format!(
                        "pushed {path}, but the TV computes SHA-256 {reported:?}, not {}",
                        push.sha256()
                    )));
                }
                Ok(CommandReply::Pushed {
                    path: path.to_owned(),
                    bytes: push.data().len() as u64,
                    sha256: push.sha256().to_owned(),
                })
            }
            (TvAction::Push, other) => {
                Err(DeviceError::Failed(format!("{} is not a push", other.op())))
            }
        }
    }

    fn schedule(&mut self, myself: &ActorRef<DeviceMsg>) {
        if let Some(timer) = self.timer.take() {
            timer.abort();
        }
        let every = Duration::from_millis(self.args.config.telemetry_interval_ms);
        self.timer = Some(myself.send_after(every, || DeviceMsg::Tick));
    }
}

impl Actor for TvActor {
    type Msg = DeviceMsg;
    type State = TvState;
    type Arguments = TvArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<DeviceMsg>,
        args: TvArgs,
    ) -> Result<TvState, ActorProcessingErr> {
        let key = args
            .shared
            .adb_key
            .clone()
            .ok_or("the edge has no ADB key")?;
        let registration = args
            .shared
            .register_device(&args.config.id, "tv", myself.clone());
        metrics::tv_started(&args.config.id);
        myself.cast(DeviceMsg::Tick)?;
        Ok(TvState {
            args,
            _registration: registration,
            key,
            connection: None,
            up: None,
            ladder: Ladder::default(),
            timer: None,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<DeviceMsg>,
        message: DeviceMsg,
        state: &mut TvState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            DeviceMsg::Tick => {
                let healthy = state.check().await;
                state.heal(healthy).await;
                state.schedule(&myself);
            }
            DeviceMsg::Execute { command, reply } => {
                let result = state.execute(command).await;
                let _ = reply.send(result);
            }
        }
        Ok(())
    }
}
