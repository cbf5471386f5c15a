//! The audit log: who did what through the API, and what came of it.
//!
//! Every request that changes something (POST, PUT, PATCH, DELETE) is recorded after it is
//! answered, with who asked (a user by their session, a machine by its token's name, or
//! `anonymous`), the route and the path, and the status of the answer, refused requests included.
//! Logins and failed logins are recorded by the login endpoint itself. Records live in tree
//! [`TREE`], keyed by time then a unique id, and are read newest first (`GET /api/v1/audit`).
//!
//! Invariants: a record is written before the answer leaves the hub; records are never changed
//! or removed by the hub; nothing secret is recorded (no bodies, no tokens, no passwords).

use serde::{Deserialize, Serialize};

/// The tree of records: `time_us (8 bytes BE) ++ id (8 bytes BE)` → [`AuditRecord`] (JSON).
pub const TREE: &str = "audit";

/// One thing someone did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditRecord {
    /// When it was answered (RFC 3339, UTC).
    pub at: String,
    /// Who: a user or a token's name; `anonymous` when neither was presented or valid.
    pub who: String,
    /// How they identified: `session` (the console), `token` or `none`.
    pub via: String,
    /// `POST`, `PUT`, `PATCH`, `DELETE`, or `LOGIN` for a login attempt.
    pub method: String,
    /// The route (`/api/v1/commands`, `/api/v1/alerts/{id}/acknowledge`).
    pub route: String,
    /// The path as asked.
    pub path: String,
    /// The answer's status code.
    pub status: u16,
}

/// The audit log.
#[derive(Debug, Clone)]
pub struct AuditLog {
    db: sled::Db,
    tree: sled::Tree,
}

/// A filter for reading the log.
#[derive(Debug, Default, Clone, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditFilter {
    /// Only this user or token name.
    pub who: Option<String>,
    /// Only records whose route or path contains this text (`commands`, `handpays`, `session`).
    pub action: Option<String>,
    /// Only answers with a status in this class: `2xx`, `4xx` or `5xx`.
    pub status: Option<String>,
    /// Not before this time (RFC 3339).
    pub since: Option<String>,
    /// Before this time (RFC 3339).
    pub until: Option<String>,
    /// At most this many (default 200, at most 5000), newest first.
    pub limit: Option<usize>,
}

impl AuditLog {
    pub fn open(db: &sled::Db) -> Result<Self, sled::Error> {
        Ok(Self {
            db: db.clone(),
            tree: db.open_tree(TREE)?,
        })
    }

    /// Records `record` made at `at_us`, durably.
    pub fn record(&self, at_us: i64, record: &AuditRecord) -> Result<(), sled::Error> {
        let id = self.db.generate_id()?;
        let mut key = [0u8; 16];
        key[..8].copy_from_slice(&(at_us.max(0) as u64).to_be_bytes());
        key[8..].copy_from_slice(&id.to_be_bytes());
        let value = serde_json::to_vec(record).unwrap_or_default();
        self.tree.insert(key, value)?;
        self.tree.flush()?;
        Ok(())
    }

    /// Records matching `filter` between `since_us` and `until_us`, newest first.
    pub fn read(
        &self,
        filter: &AuditFilter,
        since_us: Option<i64>,
        until_us: Option<i64>,
    ) -> Vec<AuditRecord> {
        let limit = filter.limit.unwrap_or(200).clamp(1, 5000);
        let low = since_us.map_or(0, |t| t.max(0) as u64).to_be_bytes();
        let high = until_us.map_or(u64::MAX, |t| t.max(0) as u64).to_be_bytes();
        let class = filter
            .status
            .as_deref()
            .and_then(|c| c.chars().next())
            .and_then(|c| c.to_digit(10));
        self.tree
            .range(low.as_slice()..high.as_slice())
            .rev()
            .filter_map(|entry| entry.ok())
            .filter_map(|(_, value)| serde_json::from_slice::<AuditRecord>(&value).ok())
            .filter(|r| filter.who.as_ref().is_none_or(|w| *w == r.who))
            .filter(|r| {
                filter
                    .action
                    .as_ref()
                    .is_none_or(|a| r.route.contains(a.as_str()) || r.path.contains(a.as_str()))
            })
            .filter(|r| class.is_none_or(|c| u32::from(r.status / 100) == c))
            .take(limit)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(who: &str, route: &str, status: u16) -> AuditRecord {
        AuditRecord {
            at: String::new(),
            who: who.into(),
            via: "session".into(),
            method: "POST".into(),
            route: route.into(),
            path: route.into(),
            status,
        }
    }

    #[test]
    fn records_are_read_newest_first_and_filtered_by_who_action_status_and_time() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = sled::open(dir.path()).expect("db");
        let log = AuditLog::open(&db).expect("open");
        log.record(1_000, &record("maria", "/api/v1/commands", 201))
            .expect("record");
        log.record(2_000, &record("joe", "/api/v1/commands", 403))
            .expect("record");
        log.record(
            3_000,
            &record("maria", "/api/v1/alerts/{id}/acknowledge", 200),
        )
        .expect("record");
        // Two records in the same microsecond are both kept.
        log.record(3_000, &record("maria", "/api/v1/session", 200))
            .expect("record");
        let all = log.read(&AuditFilter::default(), None, None);
        assert_eq!(all.len(), 4);
        assert_eq!(all[3].who, "maria");
        assert_eq!(all[2].who, "joe");
        let maria = AuditFilter {
            who: Some("maria".into()),
            ..AuditFilter::default()
        };
        assert_eq!(log.read(&maria, None, None).len(), 3);
        let commands = AuditFilter {
            action: Some("commands".into()),
            status: Some("4xx".into()),
            ..AuditFilter::default()
        };
        assert_eq!(
            log.read(&commands, None, None),
            vec![record("joe", "/api/v1/commands", 403)]
        );
        assert_eq!(
            log.read(&AuditFilter::default(), Some(1_500), Some(2_500))
                .len(),
            1
        );
    }
}
