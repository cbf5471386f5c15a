//! Player sessions: a player card bound to a machine through the API; a session is the machine's
//! meters when it opened and when it closed, so its totals are meter deltas (rollover-aware).
//!
//! On disk (sled tree `player_sessions`): `s ++ n (u64 BE)` → [`Session`] (JSON); `c ++ edge ++ 0
//! ++ device` → the open session's number. Snapshots are the machine's latest stored meter reading
//! (the edge reads meters every `meter_interval_ms`), and each session keeps when that reading was
//! taken, so its precision is visible.
//!
//! Invariants: at most one open session per machine; a closed session never changes; binding a
//! machine that has an open session is refused (close it first), so no play is counted twice.

use std::collections::BTreeMap;

use outpost_domain::accounting::{MachineBook, MachineSession};
use outpost_domain::projection::{self, decode, device_key};
use serde::{Deserialize, Serialize};

/// The tree holding the sessions (the MSSQL sink watches it).
pub(crate) const TREE: &str = "player_sessions";

/// A session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub id: String,
    pub player: String,
    pub edge: String,
    pub device: String,
    pub opened_by: String,
    pub opened_us: i64,
    /// The meters (code → (value, BCD bytes)) at the reading the session opened on.
    pub open_meters: BTreeMap<u8, (u64, u8)>,
    pub closed_by: Option<String>,
    pub closed_us: Option<i64>,
    pub close_meters: Option<BTreeMap<u8, (u64, u8)>>,
}

/// Why a session operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("{0} has an open session for player {1}: close it first (POST …/session/close)")]
    Busy(String, String),
    #[error("{0} has no open session")]
    NoneOpen(String),
    #[error("{0} has no meter reading yet: wait for its first (every meter_interval_ms)")]
    NoReading(String),
    #[error(
        "no sessions for player {0} (players appear when a card is bound: POST /api/v1/machines/{{edge}}/{{device}}/session)"
    )]
    UnknownPlayer(String),
    #[error("session store: {0}")]
    Store(String),
}

fn store<E: std::fmt::Display>(e: E) -> SessionError {
    SessionError::Store(e.to_string())
}

/// The sessions.
pub struct Sessions {
    db: sled::Db,
    tree: sled::Tree,
    lock: std::sync::Mutex<()>,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions").finish_non_exhaustive()
    }
}

impl Sessions {
    pub fn open(db: &sled::Db) -> Result<Self, sled::Error> {
        Ok(Self {
            db: db.clone(),
            tree: db.open_tree(TREE)?,
            lock: std::sync::Mutex::new(()),
        })
    }

    /// The machine's latest stored meters.
    fn meters(&self, edge: &str, device: &str) -> Result<BTreeMap<u8, (u64, u8)>, SessionError> {
        let tree = crate::projections::tree(&self.db, projection::ACCOUNTING).map_err(store)?;
        let key = device_key(b'm', edge, device);
        let book: Option<MachineBook> = match tree.get(&key).map_err(store)? {
            Some(v) => Some(decode(projection::ACCOUNTING, &key, &v).map_err(store)?),
            None => None,
        };
        book.map(|b| b.last)
            .filter(|m| !m.is_empty())
            .ok_or_else(|| SessionError::NoReading(format!("{edge}/{device}")))
    }

    fn current_key(edge: &str, device: &str) -> Vec<u8> {
        device_key(b'c', edge, device)
    }

    fn save(&self, n: u64, session: &Session) -> Result<(), SessionError> {
        let bytes = serde_json::to_vec(session).map_err(store)?;
        self.tree
            .insert([&b"s"[..], &n.to_be_bytes()].concat(), bytes)
            .map_err(store)?;
        Ok(())
    }

    fn number(id: &str) -> Option<u64> {
        id.strip_prefix("session-")?.parse().ok()
    }

    /// The open session of a machine.
    pub fn current(&self, edge: &str, device: &str) -> Result<Option<Session>, SessionError> {
        let Some(n) = self
            .tree
            .get(Self::current_key(edge, device))
            .map_err(store)?
        else {
            return Ok(None);
        };
        let n: [u8; 8] = n.as_ref().try_into().map_err(store_text)?;
        self.get_n(u64::from_be_bytes(n))
    }

    fn get_n(&self, n: u64) -> Result<Option<Session>, SessionError> {
        match self
            .tree
            .get([&b"s"[..], &n.to_be_bytes()].concat())
            .map_err(store)?
        {
            Some(v) => Ok(Some(serde_json::from_slice(&v).map_err(store)?)),
            None => Ok(None),
        }
    }

    /// Opens a session of `player` on a machine.
    pub fn bind(
        &self,
        edge: &str,
        device: &str,
        player: &str,
        by: &str,
        now_us: i64,
    ) -> Result<Session, SessionError> {
        let _one = self
            .lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(open) = self.current(edge, device)? {
            return Err(SessionError::Busy(format!("{edge}/{device}"), open.player));
        }
        let meters = self.meters(edge, device)?;
        let n = self.db.generate_id().map_err(store)? + 1;
        let session = Session {
            id: format!("session-{n}"),
            player: player.to_owned(),
            edge: edge.to_owned(),
            device: device.to_owned(),
            opened_by: by.to_owned(),
            opened_us: now_us,
            open_meters: meters,
            closed_by: None,
            closed_us: None,
            close_meters: None,
        };
        self.save(n, &session)?;
        self.tree
            .insert(Self::current_key(edge, device), &n.to_be_bytes())
            .map_err(store)?;
        self.db.flush().map_err(store)?;
        tracing::info!(session = %session.id, player, edge, device, by, "player session opened");
        Ok(session)
    }

    /// Closes a machine's open session.
    pub fn close(
        &self,
        edge: &str,
        device: &str,
        by: &str,
        now_us: i64,
    ) -> Result<Session, SessionError> {
        let _one = self
            .lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut session = self
            .current(edge, device)?
            .ok_or_else(|| SessionError::NoneOpen(format!("{edge}/{device}")))?;
        let n = Self::number(&session.id).ok_or_else(|| store_text("session id"))?;
        session.close_meters = Some(self.meters(edge, device)?);
        session.closed_by = Some(by.to_owned());
        session.closed_us = Some(now_us);
        self.save(n, &session)?;
        self.tree
            .remove(Self::current_key(edge, device))
            .map_err(store)?;
        self.db.flush().map_err(store)?;
        tracing::info!(session = %session.id, player = %session.player, edge, device, by, "player session closed");
        Ok(session)
    }

    /// Sessions the machines reported themselves (9E … 9F), as the accounting stored them:
    /// those of `edge`'s machines (of one `device` when given), or every machine's. Their player
    /// is [`MACHINE_PLAYER`].
    pub fn machine_sessions(
        &self,
        edge: Option<&str>,
        device: Option<&str>,
    ) -> Result<Vec<Session>, SessionError> {
        let tree = crate::projections::tree(&self.db, projection::ACCOUNTING).map_err(store)?;
        let prefix = |tag: u8| match (edge, device) {
            (Some(e), Some(d)) => device_key(tag, e, d),
            (Some(e), None) => [&[tag][..], e.as_bytes(), &[0]].concat(),
            _ => vec![tag],
        };
        let mut out = Vec::new();
        for entry in tree.scan_prefix(prefix(b's')) {
            let (key, value) = entry.map_err(store)?;
            let session: MachineSession =
                decode(projection::ACCOUNTING, &key, &value).map_err(store)?;
            if let Some((e, d)) = machine_of(&key) {
                out.push(from_machine(&e, &d, session));
            }
        }
        for entry in tree.scan_prefix(prefix(b'm')) {
            let (key, value) = entry.map_err(store)?;
            let book: MachineBook = decode(projection::ACCOUNTING, &key, &value).map_err(store)?;
            if let Some(open) = book.machine_session {
                out.push(from_machine(&book.edge, &book.device, open));
            }
        }
        Ok(out)
    }

    /// Sessions matching `keep`, newest first, at most `limit`.
    pub fn list(
        &self,
        keep: impl Fn(&Session) -> bool,
        limit: usize,
    ) -> Result<Vec<Session>, SessionError> {
        let mut out = Vec::new();
        for entry in self.tree.scan_prefix(b"s").rev() {
            let (_, v) = entry.map_err(store)?;
            let session: Session = serde_json::from_slice(&v).map_err(store)?;
            if keep(&session) {
                out.push(session);
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }
}

/// The player of a session a machine reported itself (it does not say who played).
pub const MACHINE_PLAYER: &str = "(machine)";

/// Edge and device of a machine-session key (`s ++ edge ++ 0 ++ device ++ 0 ++ seq`).
fn machine_of(key: &[u8]) -> Option<(String, String)> {
    let body = key.get(1..key.len().checked_sub(9)?)?;
    let split = body.iter().position(|b| *b == 0)?;
    Some((
        String::from_utf8_lossy(&body[..split]).into_owned(),
        String::from_utf8_lossy(&body[split + 1..]).into_owned(),
    ))
}

fn from_machine(edge: &str, device: &str, m: MachineSession) -> Session {
    Session {
        id: format!("machine-{edge}-{device}-{}", m.opened_seq),
        player: MACHINE_PLAYER.into(),
        edge: edge.into(),
        device: device.into(),
        opened_by: "machine (9E)".into(),
        opened_us: m.opened_us,
        open_meters: m.open_meters,
        closed_by: m.closed_us.map(|_| "machine (9F)".into()),
        closed_us: m.closed_us,
        close_meters: m.close_meters,
    }
}

fn store_text(what: impl std::fmt::Debug) -> SessionError {
    SessionError::Store(format!("stored session is malformed: {what:?}"))
}

/// The increase of meter `code` over a session (None while it is open or when the meter reset).
pub fn delta(session: &Session, code: u8) -> Option<u64> {
    let close = session.close_meters.as_ref()?;
    let (a, bytes_a) = *session.open_meters.get(&code)?;
    let (b, bytes_b) = *close.get(&code)?;
    match outpost_sas::MeterDelta::between(
        outpost_sas::Bcd {
            value: a,
            bytes: bytes_a,
        },
        outpost_sas::Bcd {
            value: b,
            bytes: bytes_b,
        },
    ) {
        outpost_sas::MeterDelta::Increase { by, .. } => Some(by),
        outpost_sas::MeterDelta::Reset { .. } => None,
    }
}
