//! The hub's durable command log: what operators asked for, of which device, by when, and what
//! became of it.
//!
//! Invariants: a command is durable (flushed and fdatasynced) before the API answers that it was
//! accepted; its status only moves forward (pending → delivered → a final status, or pending → a
//! final status) and a final status never changes; a command past its deadline is never sent.
//!
//! On disk (sled trees of the hub database): `commands`: id → [`CommandRecord`] (JSON);
//! `pending`: `edge ++ 0x00 ++ id` → () for commands not yet accepted by their edge;
//! `commands_by_time`: `created_ms (u64 BE, offset) ++ id` → (), the listing's order (filled from
//! `commands` once when a store made before it is opened).

use std::sync::Arc;

use outpost_command::{CommandError, CommandReply, DeviceCommand, DeviceKind};
use outpost_link::{CommandOutcome, CommandRequest};
use outpost_process::clock::unix_ms;
use outpost_storage::DurableDb;
use serde::{Deserialize, Serialize};

use crate::eventlog::{CommittedResult, EventLog};
use crate::metrics;

/// Where a command is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CommandStatus {
    /// Stored; waiting for its edge.
    Pending,
    /// The edge recorded it durably and will run it at most once.
    Delivered,
    Succeeded,
    Failed,
    /// Not run: its deadline passed first (at the hub or at the edge).
    Expired,
    /// Not run: the edge refused it (unknown device or operation, bad arguments).
    Rejected,
    /// The edge restarted while it ran: whether it took effect is unknown.
    Interrupted,
}

impl CommandStatus {
    pub const ALL: [CommandStatus; 7] = [
        CommandStatus::Pending,
        CommandStatus::Delivered,
        CommandStatus::Succeeded,
        CommandStatus::Failed,
        CommandStatus::Expired,
        CommandStatus::Rejected,
        CommandStatus::Interrupted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CommandStatus::Pending => "pending",
            CommandStatus::Delivered => "delivered",
            CommandStatus::Succeeded => "succeeded",
            CommandStatus::Failed => "failed",
            CommandStatus::Expired => "expired",
            CommandStatus::Rejected => "rejected",
            CommandStatus::Interrupted => "interrupted",
        }
    }

    pub fn is_final(self) -> bool {
        !matches!(self, CommandStatus::Pending | CommandStatus::Delivered)
    }

    fn rank(self) -> u8 {
        match self {
            CommandStatus::Pending => 0,
            CommandStatus::Delivered => 1,
            _ => 2,
        }
    }
}

impl From<CommandOutcome> for CommandStatus {
    fn from(outcome: CommandOutcome) -> Self {
        match outcome {
            CommandOutcome::Succeeded => CommandStatus::Succeeded,
            CommandOutcome::Failed => CommandStatus::Failed,
            CommandOutcome::Expired => CommandStatus::Expired,
            CommandOutcome::Rejected => CommandStatus::Rejected,
            CommandOutcome::Interrupted => CommandStatus::Interrupted,
        }
    }
}

/// One command and its fate: the audit record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = Command)]
pub struct CommandRecord {
    pub id: String,
    /// Name of the API token that issued it.
    pub issuer: String,
    pub edge: String,
    pub device: String,
    /// The device's kind when the command was issued (what `op` and `args` were checked against).
    pub kind: DeviceKind,
    pub op: String,
    /// The arguments as the vocabulary writes them back (defaults filled in, keys by name).
    #[schema(value_type = Object)]
    pub args: serde_json::Value,
    pub created_ms: i64,
    pub deadline_ms: i64,
    pub status: CommandStatus,
    /// The edge's answer or error in words, when there is one.
    pub detail: Option<String>,
    /// The device's typed answer, when it succeeded.
    #[serde(default)]
    pub result: Option<CommandReply>,
    pub updated_ms: i64,
}

/// What to do with a stored command now.
#[derive(Debug)]
pub enum Dispatch {
    /// Send this frame to its edge.
    Send(CommandRequest),
    /// Its deadline has passed: never send it.
    Expired,
    /// It no longer parses (stored by a hub whose vocabulary differed): never send it.
    Refused(CommandError),
}

impl CommandRecord {
    /// The frame that carries this command to its edge, unless it must not be sent.
    pub fn dispatch(&self, now_ms: i64) -> Dispatch {
        let remaining = self.deadline_ms - now_ms;
        if remaining <= 0 {
            return Dispatch::Expired;
        }
        match DeviceCommand::parse(self.kind, &self.op, self.args.clone()) {
            Ok(command) => Dispatch::Send(CommandRequest {
                id: self.id.clone(),
                device: self.device.clone(),
                command,
                remaining_ms: remaining as u64,
                issuer: self.issuer.clone(),
            }),
            Err(err) => Dispatch::Refused(err),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CommandLogError {
    #[error("command log storage: {0}")]
    Storage(String),
    #[error("the command is too large to store: {0}")]
    TooLarge(String),
    #[error("stored command {id} does not decode: {reason}")]
    Corrupt { id: String, reason: String },
    #[error("no command {0}")]
    Unknown(String),
}

impl From<outpost_storage::StorageError> for CommandLogError {
    fn from(e: outpost_storage::StorageError) -> Self {
        match e {
            outpost_storage::StorageError::EntryTooLarge { .. } => {
                CommandLogError::TooLarge(e.to_string())
            }
            other => CommandLogError::Storage(other.to_string()),
        }
    }
}

/// Most characters of a command's result detail kept in its record (a TV's answer can be long).
const DETAIL_CHARS: usize = 1024;

impl From<sled::Error> for CommandLogError {
    fn from(e: sled::Error) -> Self {
        CommandLogError::Storage(e.to_string())
    }
}

/// A command as stored: its record, with arguments too large for the store (a TV's pushed file)
/// kept in a file of their own and named here.
#[derive(Debug, Serialize, Deserialize)]
struct StoredCommand {
    #[serde(flatten)]
    record: CommandRecord,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    args_file: Option<String>,
}

/// The tree holding the commands (the MSSQL sink watches it).
pub(crate) const TREE: &str = "commands";

/// Handle to the command log.
#[derive(Clone)]
pub struct CommandLog {
    durable: Arc<DurableDb>,
    /// Where arguments too large for a record are kept: `<id>.json`.
    args_dir: std::path::PathBuf,
    commands: sled::Tree,
    pending: sled::Tree,
    by_time: sled::Tree,
}

/// What `GET /api/v1/commands` filters by.
#[derive(Debug, Clone, Default)]
pub struct CommandFilter {
    pub edge: Option<String>,
    pub device: Option<String>,
    pub status: Option<CommandStatus>,
    pub issuer: Option<String>,
    /// Created at or after (Unix ms).
    pub since_ms: Option<i64>,
    /// Created before (Unix ms).
    pub until_ms: Option<i64>,
}

fn time_key(created_ms: i64, id: &str) -> Vec<u8> {
    [
        &((created_ms as u64) ^ (1 << 63)).to_be_bytes()[..],
        id.as_bytes(),
    ]
    .concat()
}

impl std::fmt::Debug for CommandLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommandLog").finish_non_exhaustive()
    }
}

fn pending_key(edge: &str, id: &str) -> Vec<u8> {
    [edge.as_bytes(), &[0], id.as_bytes()].concat()
}

impl CommandLog {
    pub fn open(durable: Arc<DurableDb>) -> Result<Self, CommandLogError> {
        let commands = durable.db().open_tree(TREE)?;
        let pending = durable.db().open_tree("pending")?;
        let by_time = durable.db().open_tree("commands_by_time")?;
        if by_time.is_empty() && !commands.is_empty() {
            for entry in commands.iter() {
                let (key, value) = entry?;
                if let Ok(stored) = serde_json::from_slice::<StoredCommand>(&value) {
                    by_time.insert(
                        time_key(stored.record.created_ms, &String::from_utf8_lossy(&key)),
                        &[],
                    )?;
                }
            }
        }
        let args_dir = durable
            .path()
            .parent()
            .unwrap_or(durable.path())
            .join("command-args");
        Ok(Self {
            durable,
            args_dir,
            commands,
            pending,
            by_time,
        })
    }

    /// Stores a new command durably.
    pub async fn create(&self, record: CommandRecord) -> Result<(), CommandLogError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let value = this.encode(&record)?;
            let pending = pending_key(&record.edge, &record.id);
            outpost_storage::check_entry(&pending, &[])?;
            this.durable
                .insert(&this.commands, record.id.as_bytes(), value)?;
            this.durable.insert(&this.pending, pending, [])?;
            this.durable
                .insert(&this.by_time, time_key(record.created_ms, &record.id), [])?;
            this.durable
                .commit()
                .map_err(|e| CommandLogError::Storage(e.to_string()))?;
            metrics::COMMANDS_ISSUED.inc();
            Ok(())
        })
        .await
        .map_err(|e| CommandLogError::Storage(e.to_string()))?
    }

    /// The stored form of `record`: as it is, or with its arguments in `<args_dir>/<id>.json`
    /// (written durably, once) when the whole would not fit the store's value limit.
    fn encode(&self, record: &CommandRecord) -> Result<Vec<u8>, CommandLogError> {
        let encode = |stored: &StoredCommand| {
            serde_json::to_vec(stored).map_err(|e| CommandLogError::Storage(e.to_string()))
        };
        let whole = StoredCommand {
            record: record.clone(),
            args_file: None,
        };
        let value = encode(&whole)?;
        if value.len() <= outpost_storage::MAX_VALUE_BYTES {
            return Ok(value);
        }
        let name = format!("{}.json", record.id);
        if !self.args_dir.join(&name).exists() {
            let args = serde_json::to_vec(&record.args)
                .map_err(|e| CommandLogError::Storage(e.to_string()))?;
            outpost_storage::write_file_durably(&self.args_dir, &name, &args)?;
        }
        let mut slim = whole;
        slim.record.args = serde_json::Value::Null;
        slim.args_file = Some(name);
        encode(&slim)
    }

    pub fn get(&self, id: &str) -> Result<Option<CommandRecord>, CommandLogError> {
        let corrupt = |reason: String| CommandLogError::Corrupt {
            id: id.to_owned(),
            reason,
        };
        let Some(bytes) = self.commands.get(id.as_bytes())? else {
            return Ok(None);
        };
        let stored: StoredCommand =
            serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
        let mut record = stored.record;
        if let Some(name) = stored.args_file {
            let path = self.args_dir.join(&name);
            let text = std::fs::read(&path)
                .map_err(|e| corrupt(format!("arguments in {}: {e}", path.display())))?;
            record.args = serde_json::from_slice(&text)
                .map_err(|e| corrupt(format!("arguments in {}: {e}", path.display())))?;
        }
        Ok(Some(record))
    }

    /// Commands matching `filter`, newest first, at most `limit`, created before the command
    /// `before` (an id from the previous page). Returns them and the id to continue before.
    pub fn list(
        &self,
        filter: &CommandFilter,
        limit: usize,
        before: Option<&str>,
    ) -> Result<(Vec<CommandRecord>, Option<String>), CommandLogError> {
        let upper = match before {
            Some(id) => match self.get(id)? {
                Some(r) => time_key(r.created_ms, id),
                None => return Err(CommandLogError::Unknown(id.to_owned())),
            },
            None => time_key(filter.until_ms.unwrap_or(i64::MAX), ""),
        };
        let lower = time_key(filter.since_ms.unwrap_or(i64::MIN), "");
        let mut out = Vec::new();
        for entry in self.by_time.range(lower..upper).rev() {
            let (key, _) = entry?;
            let id = String::from_utf8_lossy(&key[8..]).into_owned();
            let Some(record) = self.get(&id)? else {
                continue;
            };
            let keep = filter.edge.as_ref().is_none_or(|e| *e == record.edge)
                && filter.device.as_ref().is_none_or(|d| *d == record.device)
                && filter.status.is_none_or(|s| s == record.status)
                && filter.issuer.as_ref().is_none_or(|i| *i == record.issuer)
                && filter.until_ms.is_none_or(|u| record.created_ms < u);
            if !keep {
                continue;
            }
            if out.len() >= limit {
                let last = out.last().map(|r: &CommandRecord| r.id.clone());
                return Ok((out, last));
            }
            out.push(record);
        }
        Ok((out, None))
    }

    /// Commands of `edge` its edge has not accepted yet, oldest id order.
    pub fn pending_for(&self, edge: &str) -> Result<Vec<CommandRecord>, CommandLogError> {
        let prefix = [edge.as_bytes(), &[0]].concat();
        let mut records = Vec::new();
        for entry in self.pending.scan_prefix(&prefix) {
            let (key, _) = entry?;
            let id = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
            if let Some(record) = self.get(&id)? {
                records.push(record);
            }
        }
        records.sort_by_key(|r| r.created_ms);
        Ok(records)
    }

    /// Moves command `id` to `status` (ignored if that would go backwards or change a final
    /// status). Returns the record as it is now.
    pub fn update(
        &self,
        id: &str,
        status: CommandStatus,
        detail: Option<String>,
    ) -> Result<Option<CommandRecord>, CommandLogError> {
        self.transition(id, status, detail, None)
    }

    fn transition(
        &self,
        id: &str,
        status: CommandStatus,
        detail: Option<String>,
        result: Option<CommandReply>,
    ) -> Result<Option<CommandRecord>, CommandLogError> {
        let Some(mut record) = self.get(id)? else {
            tracing::warn!(command = %id, status = status.as_str(), "update for an unknown command");
            return Ok(None);
        };
        if record.status.is_final() || status.rank() <= record.status.rank() && !status.is_final() {
            return Ok(Some(record));
        }
        record.status = status;
        if let Some(detail) = detail {
            record.detail = Some(outpost_link::clip_text(&detail, DETAIL_CHARS));
        }
        if result.is_some() {
            record.result = result;
        }
        record.updated_ms = unix_ms();
        let value = self.encode(&record)?;
        self.durable.insert(&self.commands, id.as_bytes(), value)?;
        if status != CommandStatus::Pending {
            self.pending.remove(pending_key(&record.edge, id))?;
        }
        if status.is_final() {
            metrics::COMMANDS
                .with_label_values(&[status.as_str()])
                .inc();
        }
        tracing::info!(command = %id, edge = %record.edge, device = %record.device, op = %record.op, status = status.as_str(), "command status");
        Ok(Some(record))
    }

    /// Records results the event log committed, durably, then lets the log forget that they were
    /// pending. A hub that stops in between finds them again with [`Self::recover_results`].
    pub async fn apply_committed(
        &self,
        eventlog: &EventLog,
        results: Vec<CommittedResult>,
    ) -> Result<(), CommandLogError> {
        let (this, eventlog) = (self.clone(), eventlog.clone());
        tokio::task::spawn_blocking(move || {
            for CommittedResult { result, .. } in &results {
                this.transition(
                    &result.id,
                    result.outcome.into(),
                    Some(result.detail.clone()),
                    result.reply.clone(),
                )?;
            }
            this.durable.commit()?;
            eventlog
                .results_applied(&results)
                .map_err(|e| CommandLogError::Storage(e.to_string()))
        })
        .await
        .map_err(|e| CommandLogError::Storage(e.to_string()))?
    }

    /// Applies the results the event log committed and this log did not record before the hub
    /// stopped (it died between the two). Returns how many there were. Run before the link serves.
    pub async fn recover_results(&self, eventlog: &EventLog) -> Result<usize, CommandLogError> {
        let results = eventlog
            .unapplied_results()
            .map_err(|e| CommandLogError::Storage(e.to_string()))?;
        let count = results.len();
        if count > 0 {
            tracing::warn!(
                results = count,
                "applying command results committed before the hub stopped"
            );
            self.apply_committed(eventlog, results).await?;
        }
        Ok(count)
    }
}
