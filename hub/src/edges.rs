//! What the hub knows about each edge from its last handshake: its devices, clock offset, boot.
//! The API validates commands against it; it survives restarts (sled tree `edges`).

use outpost_link::{DeviceInfo, Hello};
use serde::{Deserialize, Serialize};

/// An edge as of its last `Hello`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EdgeInfo {
    pub id: String,
    pub devices: Vec<DeviceInfo>,
    pub software: String,
    /// Hex of the edge's boot id.
    pub boot_id: String,
    pub last_hello_ms: i64,
    /// Edge clock minus hub clock at that handshake, ms.
    pub clock_offset_ms: i64,
}

#[derive(Debug, Clone)]
pub struct EdgeDirectory {
    tree: sled::Tree,
}

impl EdgeDirectory {
    pub fn open(db: &sled::Db) -> Result<Self, sled::Error> {
        Ok(Self {
            tree: db.open_tree("edges")?,
        })
    }

    /// Records a handshake (not fsynced: the next handshake rewrites it anyway).
    pub fn record_hello(
        &self,
        hello: &Hello,
        now_ms: i64,
        clock_offset_ms: i64,
    ) -> Result<(), sled::Error> {
        let info = EdgeInfo {
            id: hello.edge_id.clone(),
            devices: hello.devices.clone(),
            software: hello.software.clone(),
            boot_id: format!("{:032x}", hello.boot_id),
            last_hello_ms: now_ms,
            clock_offset_ms,
        };
        let value = serde_json::to_vec(&info).unwrap_or_default();
        self.tree.insert(hello.edge_id.as_bytes(), value)?;
        Ok(())
    }

    pub fn get(&self, edge: &str) -> Option<EdgeInfo> {
        let bytes = self.tree.get(edge.as_bytes()).ok()??;
        serde_json::from_slice(&bytes).ok()
    }

    pub fn all(&self) -> Vec<EdgeInfo> {
        self.tree
            .iter()
            .filter_map(|entry| entry.ok())
            .filter_map(|(_, v)| serde_json::from_slice(&v).ok())
            .collect()
    }
}
