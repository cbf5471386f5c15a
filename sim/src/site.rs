//! A whole site laid out on disk: a fresh PKI, a hub and an edge with their configs, data
//! directories and free loopback ports. The demo and the process tests start from one.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::harness::free_local_addr;

/// Where everything of one site lives.
#[derive(Debug, Clone)]
pub struct SiteLayout {
    pub dir: PathBuf,
    pub pki_dir: PathBuf,
    pub hub_config: PathBuf,
    pub edge_config: PathBuf,
    pub hub_admin: SocketAddr,
    pub edge_admin: SocketAddr,
    pub edge_id: String,
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
}

impl SiteLayout {
    /// Creates PKI, configs and data directories for one hub and edge `edge_id` under `dir`.
    pub fn prepare(dir: &Path, edge_id: &str) -> Result<Self, SiteError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| SiteError::Io { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let pki_dir = dir.join("pki");
        let names: Vec<String> = outpost_hub::pki::DEFAULT_HUB_NAMES
            .iter()
            .map(|s| s.to_string())
            .collect();
        outpost_hub::pki::init(&pki_dir, &names)?;
        outpost_hub::pki::issue_edge(&pki_dir, edge_id, false)?;

        let hub_admin = free_local_addr().map_err(io(dir))?;
        let edge_admin = free_local_addr().map_err(io(dir))?;
        let hub_config = dir.join("hub.toml");
        let edge_config = dir.join("edge.toml");
        let hub_toml = format!(
            "# Written by outpost-sim for this site.\n[hub]\ndata_dir = {data:?}\n\n[pki]\ndir = {pki:?}\n\n[admin]\nlisten = \"{hub_admin}\"\n",
            data = dir.join("hub-data").display().to_string(),
            pki = pki_dir.display().to_string(),
        );
        let edge_toml = format!(
            "# Written by outpost-sim for this site.\n[edge]\nid = \"{edge_id}\"\ndata_dir = {data:?}\n\n[admin]\nlisten = \"{edge_admin}\"\n",
            data = dir.join(format!("{edge_id}-data")).display().to_string(),
        );
        std::fs::write(&hub_config, hub_toml).map_err(io(&hub_config))?;
        std::fs::write(&edge_config, edge_toml).map_err(io(&edge_config))?;
        Ok(Self {
            dir: dir.to_owned(),
            pki_dir,
            hub_config,
            edge_config,
            hub_admin,
            edge_admin,
            edge_id: edge_id.to_owned(),
        })
    }
}
