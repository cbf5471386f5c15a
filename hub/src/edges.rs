//! What the hub knows about each edge from its last handshake: its devices, clock offset, boot.
//! The API validates commands against it; it survives restarts.
//!
//! On disk: tree `edges`: edge id → [`EdgeInfo`] (JSON, without its devices); tree
//! `edge_devices`: edge id ++ 0x00 ++ device id → [`DeviceInfo`] (JSON). One entry per device keeps
//! every value small however many devices an edge has (see `outpost_storage::MAX_VALUE_BYTES`).

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
    devices: sled::Tree,
}

fn device_prefix(edge: &str) -> Vec<u8> {
    [edge.as_bytes(), &[0]].concat()
}

impl EdgeDirectory {
    pub fn open(db: &sled::Db) -> Result<Self, sled::Error> {
        Ok(Self {
            tree: db.open_tree("edges")?,
            devices: db.open_tree("edge_devices")?,
        })
    }

    fn with_devices(&self, mut info: EdgeInfo) -> EdgeInfo {
        let devices: Vec<DeviceInfo> = self
            .devices
            .scan_prefix(device_prefix(&info.id))
            .filter_map(|entry| entry.ok())
            .filter_map(|(_, v)| serde_json::from_slice(&v).ok())
            .collect();
        // A record written before devices had their own tree keeps its list until the next hello.
        if !devices.is_empty() || !info.devices.is_empty() && self.devices.is_empty() {
            info.devices = devices;
        }
        info
    }

    /// Records a handshake (not fsynced: the next handshake rewrites it anyway).
    pub fn record_hello(
        &self,
        hello: &Hello,
        now_ms: i64,
        clock_offset_ms: i64,
    ) -> Result<(), outpost_storage::StorageError> {
        let sled_err = |source| outpost_storage::StorageError::Sled {
            path: "edge directory".into(),
            source,
        };
        let prefix = device_prefix(&hello.edge_id);
        let mut batch = outpost_storage::Batch::default();
        for entry in self.devices.scan_prefix(&prefix) {
            let (key, _) = entry.map_err(sled_err)?;
            batch.remove(key);
        }
        for device in &hello.devices {
            let key = [&prefix[..], device.id.as_bytes()].concat();
            let value = serde_json::to_vec(device).unwrap_or_default();
            batch.insert(key, value)?;
        }
        self.devices
            .apply_batch(batch.into_inner())
            .map_err(sled_err)?;
        let info = EdgeInfo {
            id: hello.edge_id.clone(),
            devices: Vec::new(),
            software: hello.software.clone(),
            boot_id: format!("{:032x}", hello.boot_id),
            last_hello_ms: now_ms,
            clock_offset_ms,
        };
        let value = serde_json::to_vec(&info).unwrap_or_default();
        outpost_storage::check_entry(hello.edge_id.as_bytes(), &value)?;
        self.tree
            .insert(hello.edge_id.as_bytes(), value)
            .map_err(sled_err)?;
        Ok(())
    }

    pub fn get(&self, edge: &str) -> Option<EdgeInfo> {
        let bytes = self.tree.get(edge.as_bytes()).ok()??;
        serde_json::from_slice(&bytes)
            .ok()
            .map(|info| self.with_devices(info))
    }

    pub fn all(&self) -> Vec<EdgeInfo> {
        self.tree
            .iter()
            .filter_map(|entry| entry.ok())
            .filter_map(|(_, v)| serde_json::from_slice(&v).ok())
            .map(|info| self.with_devices(info))
            .collect()
    }
}
