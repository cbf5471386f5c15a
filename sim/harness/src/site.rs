//! A whole site laid out on disk: a fresh PKI, a hub and edges with their configs, data
//! directories and free loopback ports. The demo, the process tests and the chaos scenarios start
//! from one.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::harness::free_local_addr;

/// One edge of a site.
#[derive(Debug, Clone)]
pub struct EdgeLayout {
    pub id: String,
    pub config: PathBuf,
    pub admin: SocketAddr,
    pub data_dir: PathBuf,
}

/// Where everything of one site lives.
#[derive(Debug, Clone)]
pub struct SiteLayout {
    pub dir: PathBuf,
    pub pki_dir: PathBuf,
    pub hub_config: PathBuf,
    pub hub_admin: SocketAddr,
    pub hub_link: SocketAddr,
    pub hub_api: SocketAddr,
    pub hub_data_dir: PathBuf,
    /// Bearer token of the site's operator (role operator).
    pub api_token: String,
    /// Console users, one per role (viewer, operator, supervisor, admin), named after it.
    pub console_users: Vec<ConsoleUser>,
    pub edges: Vec<EdgeLayout>,
}

/// A person who logs in to the site's console.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ConsoleUser {
    pub name: String,
    pub role: String,
    pub password: String,
}

impl SiteLayout {
    /// The console user with `role`.
    pub fn console_user(&self, role: &str) -> Option<&ConsoleUser> {
        self.console_users.iter().find(|u| u.role == role)
    }
}

/// What to put on a site.
#[derive(Debug, Clone)]
pub struct SiteSpec {
    pub edge_ids: Vec<String>,
    /// `[[devices]]` tables written into every edge's config.
    pub devices_toml: String,
    /// Extra TOML appended to every edge's config (for example `[outbox]` sizes).
    pub edge_extra_toml: String,
    /// Extra TOML appended to the hub's config (for example `[hikcentral]`).
    pub hub_extra_toml: String,
    /// Devices for one edge each (by index), after `devices_toml`.
    pub edge_devices_toml: Vec<String>,
}

impl SiteSpec {
    /// One edge with the given devices.
    pub fn single(edge_id: &str, devices_toml: &str) -> Self {
        Self {
            edge_ids: vec![edge_id.to_owned()],
            devices_toml: devices_toml.to_owned(),
            edge_extra_toml: String::new(),
            hub_extra_toml: String::new(),
            edge_devices_toml: Vec::new(),
        }
    }
}

/// Why a site could not be laid out.
#[derive(Debug, thiserror::Error)]
pub enum SiteError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("PKI: {0}")]
    Pki(#[from] outpost_hub::pki::PkiError),
    #[error("console users: {0}")]
    Password(#[from] outpost_hub::login::HashError),
    #[error("{path}: not a site this harness laid out ({reason}); use an empty or new directory")]
    NotASite { path: PathBuf, reason: String },
}

/// What a site keeps between runs besides its PKI and data: the API token and the console users'
/// passwords (`site.json`, mode 0600), so a site laid out again in the same directory is the same
/// site to its users.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct SiteSecrets {
    api_token: String,
    console_users: Vec<ConsoleUser>,
}

const SECRETS_FILE: &str = "site.json";

impl SiteSecrets {
    fn load(dir: &Path) -> Result<Option<Self>, SiteError> {
        let path = dir.join(SECRETS_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|e| SiteError::NotASite {
                        path,
                        reason: e.to_string(),
                    })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(SiteError::Io { path, source }),
        }
    }

    fn fresh() -> Self {
        Self {
            api_token: format!("{:032x}", rand::random::<u128>()),
            console_users: ["viewer", "operator", "supervisor", "admin"]
                .iter()
                .map(|role| ConsoleUser {
                    name: (*role).to_owned(),
                    role: (*role).to_owned(),
                    password: format!("{:016x}", rand::random::<u64>()),
                })
                .collect(),
        }
    }

    fn save(&self, dir: &Path) -> Result<(), SiteError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let path = dir.join(SECRETS_FILE);
        let io = |source| SiteError::Io {
            path: path.clone(),
            source,
        };
        let text = serde_json::to_vec_pretty(self).map_err(|e| io(std::io::Error::other(e)))?;
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .and_then(|mut f| f.write_all(&text))
            .map_err(io)
    }
}

fn quoted(path: &Path) -> String {
    format!("{:?}", path.display().to_string())
}

impl SiteLayout {
    /// Creates PKI, configs and data directories for one hub and the edges of `spec` under `dir`.
    /// A directory that already holds a site (its `site.json`) is reopened: its PKI, data, API
    /// token and console passwords are kept; the configs are written again with fresh ports.
    pub fn prepare(dir: &Path, spec: &SiteSpec) -> Result<Self, SiteError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| SiteError::Io { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let pki_dir = dir.join("pki");
        let secrets = match SiteSecrets::load(dir)? {
            Some(kept) => kept,
            None => {
                let names: Vec<String> = outpost_hub::pki::DEFAULT_HUB_NAMES
                    .iter()
                    .map(|s| s.to_string())
                    .collect();
                outpost_hub::pki::init(&pki_dir, &names)?;
                let fresh = SiteSecrets::fresh();
                fresh.save(dir)?;
                fresh
            }
        };

        let hub_admin = free_local_addr().map_err(io(dir))?;
        let hub_api = free_local_addr().map_err(io(dir))?;
        let hub_link = free_local_addr().map_err(io(dir))?;
        let hub_data_dir = dir.join("hub-data");
        let api_token = secrets.api_token;
        let hub_config = dir.join("hub.toml");
        let console_users = secrets.console_users;
        let mut users_toml = String::new();
        for user in &console_users {
            let hash = outpost_hub::login::hash_password(&user.password)?;
            users_toml.push_str(&format!(
                "[[api.users]]\nname = \"{}\"\nrole = \"{}\"\npassword_hash = \"{hash}\"\n\n",
                user.name, user.role
            ));
        }
        let hub_toml = format!(
            "# Written by outpost-sim for this site.\n\
             [hub]\ndata_dir = {data}\n\n\
             [pki]\ndir = {pki}\n\n\
             [link]\nlisten = \"{hub_link}\"\n\n\
             [api]\nlisten = \"{hub_api}\"\n\n\
             [[api.tokens]]\nname = \"site-operator\"\ntoken = \"{api_token}\"\nrole = \"operator\"\n\n\
             {users_toml}\
             [admin]\nlisten = \"{hub_admin}\"\n\n\
             [supervision]\nbackoff_max_ms = 2000\n\n{extra}\n",
            data = quoted(&hub_data_dir),
            pki = quoted(&pki_dir),
            extra = spec.hub_extra_toml,
        );
        std::fs::write(&hub_config, hub_toml).map_err(io(&hub_config))?;

        let mut edges = Vec::new();
        for (index, id) in spec.edge_ids.iter().enumerate() {
            let issued = match outpost_hub::pki::issued_edge_files(&pki_dir, id) {
                Some(kept) => kept,
                None => outpost_hub::pki::issue_edge(&pki_dir, id, false)?,
            };
            let admin = free_local_addr().map_err(io(dir))?;
            let data_dir = dir.join(format!("{id}-data"));
            let config = dir.join(format!("{id}.toml"));
            let edge_toml = format!(
                "# Written by outpost-sim for this site.\n\
                 [edge]\nid = \"{id}\"\ndata_dir = {data}\n\n\
                 [uplink]\nhub = \"{hub_link}\"\nserver_name = \"localhost\"\n\
                 ca = {ca}\ncert = {cert}\nkey = {key}\n\
                 reconnect_initial_ms = 100\nreconnect_max_ms = 2000\n\n\
                 [admin]\nlisten = \"{admin}\"\n\n\
                 [supervision]\nbackoff_max_ms = 2000\n\n\
                 {extra}\n\n{devices}\n{own}\n",
                data = quoted(&data_dir),
                ca = quoted(&issued.ca),
                cert = quoted(&issued.cert),
                key = quoted(&issued.key),
                extra = spec.edge_extra_toml,
                devices = spec.devices_toml,
                own = spec
                    .edge_devices_toml
                    .get(index)
                    .map(String::as_str)
                    .unwrap_or(""),
            );
            std::fs::write(&config, edge_toml).map_err(io(&config))?;
            edges.push(EdgeLayout {
                id: id.clone(),
                config,
                admin,
                data_dir,
            });
        }
        Ok(Self {
            dir: dir.to_owned(),
            pki_dir,
            hub_config,
            hub_admin,
            hub_link,
            hub_api,
            hub_data_dir,
            api_token,
            console_users,
            edges,
        })
    }
}

/// A `[[devices]]` table for a SAS line on the pty at `path` with the machines `egm_ids` at
/// addresses 1, 2, ... (as `outpost-sim egm --address 1 --count N` simulates them); `extra` adds
/// keys, for example `meter_interval_ms = 1000`.
pub fn sas_pty_line_toml(line_id: &str, path: &str, egm_ids: &[String], extra: &str) -> String {
    let egms: Vec<String> = egm_ids
        .iter()
        .zip(1..)
        .map(|(id, address)| format!("{{ id = {id:?}, address = {address} }}"))
        .collect();
    format!(
        "\n[[devices]]\nkind = \"sas_line\"\nid = {line_id:?}\ntransport = \"pty\"\npath = {path:?}\n{extra}\negms = [{}]\n",
        egms.join(", ")
    )
}

/// The gaming-day start hour that is 12 hours from now (UTC), for a hub config: a test that runs
/// for minutes then never spans two gaming days.
pub fn gaming_day_start_hour_far_from_now() -> i64 {
    (outpost_process::clock::unix_us() / 3_600_000_000 + 12) % 24
}

/// A `[[devices]]` table for the TV at `address`, optionally powered by relay `relay`; `extra`
/// adds keys (before the `recovery` table, which `recovery` fills when given).
pub fn tv_toml(
    id: &str,
    address: SocketAddr,
    relay: Option<&str>,
    extra: &str,
    recovery: &str,
) -> String {
    let relay = relay
        .map(|r| format!("relay = {r:?}\n"))
        .unwrap_or_default();
    let recovery = if recovery.is_empty() {
        String::new()
    } else {
        format!("[devices.recovery]\n{recovery}\n")
    };
    format!(
        "\n[[devices]]\nkind = \"tv\"\nid = {id:?}\naddress = \"{address}\"\n{relay}{extra}\n{recovery}"
    )
}

/// A `[[devices]]` table for an HTTP relay at `url` (the TV simulator's `/tv/{n}/power`).
pub fn http_relay_toml(id: &str, url: &str, min_off_ms: u64) -> String {
    format!(
        "\n[[devices]]\nkind = \"relay\"\nid = {id:?}\nbank = \"http\"\nurl = {url:?}\nmin_off_ms = {min_off_ms}\n"
    )
}
