//! Power relays: a [`RelayBank`] drives one relay (a GPIO line through the kernel's v2 character
//! device, a network relay over HTTP, or memory), and the relay actor turns operators' and TV
//! actors' requests into switching with a minimum off time.
//!
//! Operations ([`outpost_command::RelayCommand`]): `on`, `off`, `cycle` `{"off_ms": N}` (a cycle
//! shorter than the relay's `min_off_ms` is stretched to it; the answer gives the time it was
//! really off), `state`. Every change is an audit event; `outpost_relay_state{device}` follows the
//! state read back from the bank.
//!
//! Invariants: power is never restored sooner than `min_off_ms` after it was cut (an `on` waits);
//! the state reported is the one read back after switching, not the one asked for.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use outpost_command::{CommandReply, DeviceCommand, DeviceKind, RelayCommand};
use outpost_config::{RelayBankKind, RelayConfig};
use outpost_link::{EventBody, EventClass, RelayEvent};
use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::metrics;
use crate::shared::{DeviceError, DeviceMsg, DeviceRegistration, EdgeShared};

#[derive(Debug, Clone, thiserror::Error)]
pub enum RelayError {
    #[error("GPIO: {0}")]
    Gpio(String),
    #[error("HTTP relay: {0}")]
    Http(String),
    #[error("HTTP relay answered {status}: {excerpt}")]
    Status { status: u16, excerpt: String },
    #[error("HTTP relay's answer is over {limit} bytes (a relay's state is a few bytes)")]
    AnswerTooLarge { limit: usize },
    #[error("HTTP relay's answer is not {{\"on\": true|false}} ({reason}): {excerpt}")]
    BadAnswer { reason: String, excerpt: String },
}

/// Most bytes read from a relay board's answer; whatever answers at that address is input.
pub const MAX_ANSWER_BYTES: usize = 4096;

/// The state a relay board's answer reports: status 200 and exactly `{"on": true|false}`.
/// Errors quote at most 200 characters of the body.
pub fn parse_answer(status: u16, body: &[u8]) -> Result<bool, RelayError> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Answer {
        on: bool,
    }
    let excerpt = || outpost_link::clip_text(&String::from_utf8_lossy(body), 200);
    if status != 200 {
        return Err(RelayError::Status {
            status,
            excerpt: excerpt(),
        });
    }
    if body.len() > MAX_ANSWER_BYTES {
        return Err(RelayError::AnswerTooLarge {
            limit: MAX_ANSWER_BYTES,
        });
    }
    serde_json::from_slice::<Answer>(body)
        .map(|answer| answer.on)
        .map_err(|e| RelayError::BadAnswer {
            reason: e.to_string(),
            excerpt: excerpt(),
        })
}

/// One relay's switch.
pub trait RelayBank: Send + Sync {
    fn set(&self, on: bool) -> BoxFuture<'_, Result<(), RelayError>>;
    /// The state read back from the hardware.
    fn get(&self) -> BoxFuture<'_, Result<bool, RelayError>>;
}

/// A relay in memory.
#[derive(Debug, Default)]
pub struct MemoryRelay {
    on: AtomicBool,
}

impl RelayBank for MemoryRelay {
    fn set(&self, on: bool) -> BoxFuture<'_, Result<(), RelayError>> {
        self.on.store(on, Ordering::SeqCst);
        Box::pin(async { Ok(()) })
    }
    fn get(&self) -> BoxFuture<'_, Result<bool, RelayError>> {
        let on = self.on.load(Ordering::SeqCst);
        Box::pin(async move { Ok(on) })
    }
}

/// A GPIO line held as an output for as long as the relay actor runs.
pub struct GpioRelay {
    request: gpiocdev::Request,
    line: u32,
}

impl std::fmt::Debug for GpioRelay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpioRelay")
            .field("line", &self.line)
            .finish()
    }
}

impl GpioRelay {
    pub fn open(
        chip: &std::path::Path,
        line: u32,
        active_low: bool,
        on: bool,
    ) -> Result<Self, RelayError> {
        let value = if on {
            gpiocdev::line::Value::Active
        } else {
            gpiocdev::line::Value::Inactive
        };
        let mut builder = gpiocdev::Request::builder();
        builder
            .on_chip(chip)
            .with_consumer("outpost-edge")
            .with_line(line)
            .as_output(value);
        if active_low {
            builder.as_active_low();
        }
        let request = builder
            .request()
            .map_err(|e| RelayError::Gpio(format!("{}: line {line}: {e}", chip.display())))?;
        Ok(GpioRelay { request, line })
    }
}

impl RelayBank for GpioRelay {
    fn set(&self, on: bool) -> BoxFuture<'_, Result<(), RelayError>> {
        let value = if on {
            gpiocdev::line::Value::Active
        } else {
            gpiocdev::line::Value::Inactive
        };
        let result = self
            .request
            .set_value(self.line, value)
            .map(|_| ())
            .map_err(|e| RelayError::Gpio(e.to_string()));
        Box::pin(async move { result })
    }
    fn get(&self) -> BoxFuture<'_, Result<bool, RelayError>> {
        let result = self
            .request
            .value(self.line)
            .map(|v| v == gpiocdev::line::Value::Active)
            .map_err(|e| RelayError::Gpio(e.to_string()));
        Box::pin(async move { result })
    }
}

/// A network relay: `POST url {"on": bool}` answers `{"on": bool}`, the state it is in.
#[derive(Debug)]
pub struct HttpRelay {
    url: String,
    client: reqwest::Client,
    last: AtomicBool,
}

impl HttpRelay {
    pub fn new(url: &str) -> Result<Self, RelayError> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| RelayError::Http(format!("{url}: only http:// relays are supported")))?;
        let host = rest.split_once('/').map_or(rest, |(host, _)| host);
        host.parse::<SocketAddr>()
            .map_err(|e| RelayError::Http(format!("{url}: host must be IP:port ({e})")))?;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| RelayError::Http(format!("cannot make an HTTP client: {e}")))?;
        Ok(HttpRelay {
            url: url.to_owned(),
            client,
            last: AtomicBool::new(true),
        })
    }

    /// Posts `{"on": on}` and reads at most [`MAX_ANSWER_BYTES`] of the answer.
    async fn post(&self, on: bool) -> Result<bool, RelayError> {
        let failed = |e: reqwest::Error| {
            RelayError::Http(if e.is_timeout() {
                "no answer within 5 s".into()
            } else {
                e.to_string()
            })
        };
        let mut response = self
            .client
            .post(&self.url)
            .header("Content-Type", "application/json")
            .body(serde_json::json!({ "on": on }).to_string())
            .send()
            .await
            .map_err(failed)?;
        let status = response.status().as_u16();
        if response
            .content_length()
            .is_some_and(|len| len > MAX_ANSWER_BYTES as u64)
        {
            return Err(RelayError::AnswerTooLarge {
                limit: MAX_ANSWER_BYTES,
            });
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(failed)? {
            if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(RelayError::AnswerTooLarge {
                    limit: MAX_ANSWER_BYTES,
                });
            }
            body.extend_from_slice(&chunk);
        }
        parse_answer(status, &body)
    }
}

impl RelayBank for HttpRelay {
    fn set(&self, on: bool) -> BoxFuture<'_, Result<(), RelayError>> {
        Box::pin(async move {
            let state = self.post(on).await?;
            self.last.store(state, Ordering::SeqCst);
            Ok(())
        })
    }
    fn get(&self) -> BoxFuture<'_, Result<bool, RelayError>> {
        let on = self.last.load(Ordering::SeqCst);
        Box::pin(async move { Ok(on) })
    }
}

/// Builds the bank a relay's config names.
pub fn bank(config: &RelayConfig) -> Result<Arc<dyn RelayBank>, RelayError> {
    Ok(match config.bank {
        RelayBankKind::Memory => {
            let relay = MemoryRelay::default();
            relay.on.store(config.initially_on, Ordering::SeqCst);
            Arc::new(relay)
        }
        RelayBankKind::Gpio => {
            let chip = config
                .chip
                .clone()
                .ok_or_else(|| RelayError::Gpio("no chip".into()))?;
            let line = config
                .line
                .ok_or_else(|| RelayError::Gpio("no line".into()))?;
            Arc::new(GpioRelay::open(
                &chip,
                line,
                config.active_low,
                config.initially_on,
            )?)
        }
        RelayBankKind::Http => Arc::new(HttpRelay::new(config.url.as_deref().unwrap_or_default())?),
    })
}

#[derive(Debug, Clone, Copy, Default)]
pub struct RelayActor;

#[derive(Clone)]
pub struct RelayArgs {
    pub config: RelayConfig,
    pub shared: EdgeShared,
}

pub struct RelayState {
    args: RelayArgs,
    _registration: DeviceRegistration,
    bank: Arc<dyn RelayBank>,
    off_since: Option<Instant>,
}

impl RelayState {
    async fn switch(&mut self, on: bool, reason: &str) -> Result<bool, DeviceError> {
        let min_off = Duration::from_millis(self.args.config.min_off_ms);
        if on && let Some(since) = self.off_since {
            let rest = min_off.saturating_sub(since.elapsed());
            if !rest.is_zero() {
                tokio::time::sleep(rest).await;
            }
        }
        self.bank
            .set(on)
            .await
            .map_err(|e| DeviceError::Failed(e.to_string()))?;
        let state = self
            .bank
            .get()
            .await
            .map_err(|e| DeviceError::Failed(e.to_string()))?;
        if state != on {
            return Err(DeviceError::Failed(format!(
                "asked {} but the relay reads {}",
                onoff(on),
                onoff(state)
            )));
        }
        self.off_since = if on { None } else { Some(Instant::now()) };
        let id = &self.args.config.id;
        metrics::RELAY_STATE
            .with_label_values(&[id])
            .set(i64::from(on));
        tracing::info!(device = %id, on, reason, "relay switched");
        if let Some(outbox) = self.args.shared.outbox() {
            outbox
                .append(
                    id,
                    EventClass::Audit,
                    EventBody::Relay(RelayEvent::State {
                        on,
                        reason: reason.to_owned(),
                    }),
                )
                .await
                .map_err(|e| {
                    DeviceError::Failed(format!("switched, but the event was not stored: {e}"))
                })?;
        }
        Ok(state)
    }

    async fn execute(&mut self, command: DeviceCommand) -> Result<CommandReply, DeviceError> {
        let DeviceCommand::Relay(command) = command else {
            return Err(command.wrong_kind(DeviceKind::Relay).into());
        };
        let on = match command {
            RelayCommand::On(_) => self.switch(true, "operator").await?,
            RelayCommand::Off(_) => self.switch(false, "operator").await?,
            RelayCommand::Cycle(args) => {
                // The relay's own floor wins: a shorter cycle is stretched to min_off_ms (`switch`
                // waits for it), and the answer says how long the power was really off.
                let asked = args.off_ms.map_or(0, |ms| ms.get());
                self.switch(false, "power cycle").await?;
                let off_at = Instant::now();
                tokio::time::sleep(Duration::from_millis(u64::from(asked))).await;
                let on = self.switch(true, "power cycle").await?;
                let off_ms = u32::try_from(off_at.elapsed().as_millis()).unwrap_or(u32::MAX);
                return Ok(CommandReply::Relay {
                    on,
                    off_ms: Some(off_ms),
                });
            }
            RelayCommand::State(_) => self
                .bank
                .get()
                .await
                .map_err(|e| DeviceError::Failed(e.to_string()))?,
        };
        Ok(CommandReply::Relay { on, off_ms: None })
    }
}

fn onoff(on: bool) -> &'static str {
    if on { "on" } else { "off" }
}

impl Actor for RelayActor {
    type Msg = DeviceMsg;
    type State = RelayState;
    type Arguments = RelayArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<DeviceMsg>,
        args: RelayArgs,
    ) -> Result<RelayState, ActorProcessingErr> {
        let bank = bank(&args.config)?;
        let on = bank.get().await?;
        metrics::RELAY_STATE
            .with_label_values(&[&args.config.id])
            .set(i64::from(on));
        let registration = args
            .shared
            .register_device(&args.config.id, "relay", myself);
        Ok(RelayState {
            args,
            _registration: registration,
            bank,
            off_since: None,
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<DeviceMsg>,
        message: DeviceMsg,
        state: &mut RelayState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            DeviceMsg::Execute { command, reply } => {
                let result = state.execute(command).await;
                let _ = reply.send(result);
            }
            DeviceMsg::Tick => {}
        }
        Ok(())
    }
}
