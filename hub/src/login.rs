//! People logging in: users from the hub config (`[[api.users]]`, argon2 password hashes),
//! console sessions, CSRF tokens and lockout.
//!
//! A session is a random 256-bit token in an `HttpOnly`, `SameSite=Strict` cookie. The hub keeps
//! only its SHA-256 (tree [`TREE`]), so a copy of the database does not let anyone in, and
//! sessions survive a hub restart. Each session has a CSRF token of its own, which the console
//! sends as `X-CSRF-Token` with every request that changes something.
//!
//! Invariants: a password is only ever compared through argon2 (an unknown user costs the same
//! as a wrong password, and both answer the same words); `lockout_failures` wrong passwords in a
//! row lock that name out for `lockout_minutes`, whether or not the user exists, and a locked
//! name is refused before its password is looked at; a session unused for `session_idle_minutes`
//! is gone; a user removed from the config, or given another role, takes effect at their next
//! request (the role is read from the config, not from the session).

use std::collections::HashMap;
use std::sync::Mutex;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use outpost_config::{ApiUser, Role};
use sha2::{Digest, Sha256};

/// The tree of sessions: SHA-256 of the token → [`StoredSession`] (JSON).
pub const TREE: &str = "console/sessions";
/// The session cookie's name.
pub const COOKIE: &str = "outpost_session";
/// The header the console sends its CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// How often a session's last use is written back (it is kept in memory in between).
const TOUCH_EVERY_MS: u64 = 60_000;

/// A logged-in person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub user: String,
    pub role: Role,
    pub csrf: String,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct StoredSession {
    user: String,
    csrf: String,
    created_ms: u64,
    last_used_ms: u64,
}

/// Why a login was refused.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("wrong user name or password")]
    WrongPassword,
    #[error("{user} is locked out for {seconds} s after {failures} wrong passwords in a row")]
    LockedOut {
        user: String,
        failures: u32,
        seconds: u64,
    },
    #[error("cannot store the session: {0}")]
    Storage(#[from] sled::Error),
}

/// Why a password could not be hashed.
#[derive(Debug, thiserror::Error)]
#[error("cannot hash the password: {0}")]
pub struct HashError(String);

/// An argon2id PHC string for `password`, with a fresh salt (what `[[api.users]]` takes).
pub fn hash_password(password: &str) -> Result<String, HashError> {
    let salt: [u8; 16] = rand::random();
    let salt = SaltString::encode_b64(&salt).map_err(|e| HashError(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| HashError(e.to_string()))
}

#[derive(Debug, Default, Clone, Copy)]
struct Failures {
    in_a_row: u32,
    locked_until_ms: u64,
}

/// Names with failures remembered at most; past it, only locked names are kept (a flood of
/// made-up names must not grow memory without bound; it can only reset counts below the limit,
/// and checks are one at a time, so locked names accrue slowly and expire).
const MAX_REMEMBERED_NAMES: usize = 10_000;

/// Users, their sessions and their failures.
pub struct Logins {
    users: Vec<ApiUser>,
    idle_ms: u64,
    lockout_failures: u32,
    lockout_ms: u64,
    tree: sled::Tree,
    /// Sessions read or made since start, by token digest, with the last use written back.
    cache: Mutex<HashMap<[u8; 32], (StoredSession, u64)>>,
    failures: Mutex<HashMap<String, Failures>>,
    /// [`MAX_REMEMBERED_NAMES`], smaller in tests.
    max_names: usize,
    /// Checked when the name is unknown, so that costs what a wrong password costs.
    decoy: String,
}

impl std::fmt::Debug for Logins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Logins")
            .field("users", &self.users.len())
            .finish_non_exhaustive()
    }
}

/// Now, in ms since the epoch, as logins count time.
pub fn now_ms() -> u64 {
    u64::try_from(outpost_process::clock::unix_ms()).unwrap_or(0)
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn random_token() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

impl Logins {
    pub fn open(db: &sled::Db, api: &outpost_config::ApiConfig) -> Result<Self, sled::Error> {
        Ok(Self {
            users: api.users.clone(),
            idle_ms: api.session_idle_minutes.saturating_mul(60_000),
            lockout_failures: api.lockout_failures,
            lockout_ms: api.lockout_minutes.saturating_mul(60_000),
            tree: db.open_tree(TREE)?,
            cache: Mutex::default(),
            failures: Mutex::default(),
            max_names: MAX_REMEMBERED_NAMES,
            decoy: hash_password("decoy").unwrap_or_default(),
        })
    }

    /// Checks `password` for `user` (costly: run it off the async workers) and opens a session:
    /// its token (for the cookie) and the person.
    pub fn login(
        &self,
        user: &str,
        password: &str,
        now_ms: u64,
    ) -> Result<(String, Person), LoginError> {
        {
            let failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(f) = failures.get(user)
                && f.locked_until_ms > now_ms
            {
                return Err(LoginError::LockedOut {
                    user: user.to_owned(),
                    failures: f.in_a_row,
                    seconds: (f.locked_until_ms - now_ms).div_ceil(1000),
                });
            }
        }
        let known = self.users.iter().find(|u| u.name == user);
        let hash = known.map_or(self.decoy.as_str(), |u| u.password_hash.as_str());
        let matches = PasswordHash::new(hash).is_ok_and(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        });
        let Some(known) = known.filter(|_| matches) else {
            let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
            if failures.len() >= self.max_names {
                failures.retain(|_, f| f.locked_until_ms > now_ms);
            }
            let f = failures.entry(user.to_owned()).or_default();
            f.in_a_row = f.in_a_row.saturating_add(1);
            if f.in_a_row >= self.lockout_failures {
                f.locked_until_ms = now_ms.saturating_add(self.lockout_ms);
                tracing::warn!(
                    user,
                    failures = f.in_a_row,
                    minutes = self.lockout_ms / 60_000,
                    "console user locked out after wrong passwords"
                );
            }
            return Err(LoginError::WrongPassword);
        };
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(user);
        let token = random_token();
        let stored = StoredSession {
            user: known.name.clone(),
            csrf: random_token(),
            created_ms: now_ms,
            last_used_ms: now_ms,
        };
        self.store(&digest(&token), &stored)?;
        Ok((
            token,
            Person {
                user: stored.user,
                role: known.role,
                csrf: stored.csrf,
            },
        ))
    }

    fn store(&self, key: &[u8; 32], session: &StoredSession) -> Result<(), sled::Error> {
        let bytes = serde_json::to_vec(session).unwrap_or_default();
        self.tree.insert(key, bytes)?;
        self.tree.flush()?;
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(*key, (session.clone(), session.last_used_ms));
        Ok(())
    }

    /// The person whose session `token` is, if it is open and their user still exists.
    pub fn person(&self, token: &str, now_ms: u64) -> Option<Person> {
        let key = digest(token);
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let (session, written) = match cache.entry(key) {
            std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::hash_map::Entry::Vacant(entry) => {
                let stored = self.tree.get(key).ok().flatten()?;
                let session: StoredSession = serde_json::from_slice(&stored).ok()?;
                let written = session.last_used_ms;
                entry.insert((session, written))
            }
        };
        if now_ms.saturating_sub(session.last_used_ms) > self.idle_ms {
            cache.remove(&key);
            drop(cache);
            let _ = self.tree.remove(key);
            return None;
        }
        let user = self.users.iter().find(|u| u.name == session.user)?;
        let person = Person {
            user: user.name.clone(),
            role: user.role,
            csrf: session.csrf.clone(),
        };
        session.last_used_ms = session.last_used_ms.max(now_ms);
        if session.last_used_ms.saturating_sub(*written) > TOUCH_EVERY_MS
            && let Ok(bytes) = serde_json::to_vec(&*session)
            // Losing this write costs at most a minute of idle time after a restart.
            && self.tree.insert(key, bytes).is_ok()
        {
            *written = session.last_used_ms;
        }
        Some(person)
    }

    /// Ends the session `token`.
    pub fn logout(&self, token: &str) -> Result<(), sled::Error> {
        let key = digest(token);
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&key);
        self.tree.remove(key)?;
        self.tree.flush()?;
        Ok(())
    }

    /// Removes sessions idle for longer than allowed (run now and then).
    pub fn sweep(&self, now_ms: u64) -> usize {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.retain(|_, (s, _)| now_ms.saturating_sub(s.last_used_ms) <= self.idle_ms);
        let mut gone = 0;
        for (key, value) in self.tree.iter().flatten() {
            let in_use = <[u8; 32]>::try_from(key.as_ref()).is_ok_and(|k| cache.contains_key(&k));
            let idle = serde_json::from_slice::<StoredSession>(&value).map_or(true, |s| {
                now_ms.saturating_sub(s.last_used_ms) > self.idle_ms
            });
            if !in_use && idle && self.tree.remove(&key).is_ok() {
                gone += 1;
            }
        }
        gone
    }
}

/// The session token in a request's `Cookie` header, if any.
pub fn session_cookie(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == COOKIE && !value.is_empty()).then_some(value)
        })
}

/// The `Set-Cookie` value that carries `token` (or, with `None`, ends the cookie).
pub fn set_cookie(token: Option<&str>) -> String {
    match token {
        Some(token) => format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict"),
        None => format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `[api]` of these tests: 10 minutes idle, 3 failures lock for 1 minute.
    fn api_config(users: &[(&str, &str, Role)]) -> outpost_config::ApiConfig {
        outpost_config::ApiConfig {
            listen: "127.0.0.1:0".parse().expect("addr"),
            default_command_deadline_seconds: 60,
            tokens: Vec::new(),
            users: users
                .iter()
                .map(|(name, password, role)| ApiUser {
                    name: (*name).to_owned(),
                    password_hash: hash_password(password).expect("hash"),
                    role: *role,
                })
                .collect(),
            session_idle_minutes: 10,
            lockout_failures: 3,
            lockout_minutes: 1,
        }
    }

    fn logins(users: &[(&str, &str, Role)]) -> (tempfile::TempDir, Logins) {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = sled::open(dir.path()).expect("db");
        let logins = Logins::open(&db, &api_config(users)).expect("open");
        (dir, logins)
    }

    #[test]
    fn the_right_password_opens_a_session_that_names_the_user_and_role() {
        let (_dir, l) = logins(&[("maria", "correct horse", Role::Supervisor)]);
        let (token, person) = l.login("maria", "correct horse", 1_000).expect("login");
        assert_eq!(person.user, "maria");
        assert_eq!(person.role, Role::Supervisor);
        assert_eq!(l.person(&token, 2_000), Some(person));
        assert_eq!(l.person("not-a-token", 2_000), None);
    }

    #[test]
    fn a_wrong_password_and_an_unknown_user_are_refused_in_the_same_words() {
        let (_dir, l) = logins(&[("maria", "correct horse", Role::Viewer)]);
        let wrong = l.login("maria", "battery", 0).expect_err("wrong");
        let unknown = l.login("nobody", "battery", 0).expect_err("unknown");
        assert_eq!(wrong.to_string(), unknown.to_string());
    }

    #[test]
    fn repeated_wrong_passwords_lock_the_name_out_even_for_the_right_one_until_it_expires() {
        let (_dir, l) = logins(&[("maria", "correct horse", Role::Viewer)]);
        for _ in 0..3 {
            assert!(matches!(
                l.login("maria", "guess", 0),
                Err(LoginError::WrongPassword)
            ));
        }
        assert!(matches!(
            l.login("maria", "correct horse", 1_000),
            Err(LoginError::LockedOut { seconds: 59, .. })
        ));
        assert!(l.login("maria", "correct horse", 61_000).is_ok());
    }

    #[test]
    fn a_flood_of_made_up_names_is_forgotten_but_a_locked_name_stays_locked() {
        let (_dir, mut l) = logins(&[("maria", "correct horse", Role::Viewer)]);
        l.max_names = 5;
        l.lockout_ms = 10 * 60_000;
        for _ in 0..3 {
            let _ = l.login("maria", "guess", 0);
        }
        for n in 0..20 {
            let _ = l.login(&format!("made-up-{n}"), "guess", 120_000 + n);
        }
        let remembered = l.failures.lock().unwrap_or_else(|e| e.into_inner()).len();
        assert!(remembered <= 6, "{remembered} names remembered");
        assert!(matches!(
            l.login("maria", "correct horse", 120_100),
            Err(LoginError::LockedOut { .. })
        ));
    }

    #[test]
    fn a_session_ends_at_logout_and_after_idling_too_long() {
        let (_dir, l) = logins(&[("maria", "correct horse", Role::Viewer)]);
        let (a, _) = l.login("maria", "correct horse", 0).expect("login");
        let (b, _) = l.login("maria", "correct horse", 0).expect("login");
        l.logout(&a).expect("logout");
        assert_eq!(l.person(&a, 1), None);
        // Used within the idle time, it lives on; 10 minutes idle, it is gone.
        assert!(l.person(&b, 9 * 60_000).is_some());
        assert!(l.person(&b, 18 * 60_000).is_some());
        assert_eq!(l.person(&b, 29 * 60_000), None);
    }

    #[test]
    fn sessions_survive_a_restart_and_only_the_token_digest_is_stored() {
        let dir = tempfile::tempdir().expect("temp dir");
        let api = api_config(&[("maria", "pw", Role::Admin)]);
        // DurableDb, not sled::open: it waits for the first handle's file lock, which sled
        // releases from its own threads a moment after the drop (CI once failed on WouldBlock).
        let token = {
            let durable = outpost_storage::DurableDb::open(dir.path()).expect("db");
            let l = Logins::open(durable.db(), &api).expect("open");
            l.login("maria", "pw", 0).expect("login").0
        };
        let durable = outpost_storage::DurableDb::open(dir.path()).expect("db");
        let db = durable.db();
        let tree = db.open_tree(TREE).expect("tree");
        for (key, value) in tree.iter().flatten() {
            assert!(!String::from_utf8_lossy(&key).contains(&token));
            assert!(!String::from_utf8_lossy(&value).contains(&token));
        }
        let l = Logins::open(db, &api).expect("open");
        assert_eq!(l.person(&token, 1).map(|p| p.role), Some(Role::Admin));
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        let mut headers = axum::http::HeaderMap::new();
        headers.insert(
            axum::http::header::COOKIE,
            "theme=dark; outpost_session=abc123; x=y"
                .parse()
                .expect("header"),
        );
        assert_eq!(session_cookie(&headers), Some("abc123"));
        assert!(set_cookie(Some("t")).contains("HttpOnly"));
    }
}
