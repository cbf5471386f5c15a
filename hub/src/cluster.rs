//! Hubs that share a chain's edges (`[cluster]`): the directory says which hub owns an edge.
//! The link refuses an edge another hub owns; the API hands a request for such an edge to its
//! hub and returns that hub's answer; an edge moved to this hub continues from the sequence its
//! old hub committed (`outpost-hub edges adopt`, the `adopted` tree: edge → that sequence).
//!
//! Invariants: an edge the directory does not name is this hub's (one hub alone needs no
//! `[cluster]`); a request is handed on at most once (a request that arrives handed on is
//! answered here, whatever the directory says, so two hubs that disagree cannot loop).

use std::collections::BTreeMap;

use outpost_config::ClusterConfig;

/// The header a hub sets on a request it hands to another hub.
pub const FORWARDED_BY: &str = "x-outpost-forwarded-by";

/// Who owns an edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner<'a> {
    Here,
    Hub { id: &'a str, api_url: &'a str },
}

/// The directory of a cluster, as this hub sees it.
#[derive(Debug, Clone, Default)]
pub struct Directory {
    me: String,
    api_urls: BTreeMap<String, String>,
    owners: BTreeMap<String, String>,
}

impl Directory {
    pub fn from_config(config: &ClusterConfig) -> Self {
        Self {
            me: config.hub_id.clone(),
            api_urls: config
                .hubs
                .iter()
                .map(|h| (h.id.clone(), h.api_url.trim_end_matches('/').to_owned()))
                .collect(),
            owners: config
                .edges
                .iter()
                .map(|o| (o.edge.clone(), o.hub.clone()))
                .collect(),
        }
    }

    /// This hub's id ("" without a cluster).
    pub fn me(&self) -> &str {
        &self.me
    }

    pub fn owner(&self, edge: &str) -> Owner<'_> {
        match self.owners.get(edge) {
            Some(hub) if *hub != self.me => match self.api_urls.get(hub) {
                Some(api_url) => Owner::Hub { id: hub, api_url },
                None => Owner::Here,
            },
            _ => Owner::Here,
        }
    }
}

/// The tree of edges adopted from another hub: edge → the sequence that hub committed.
const ADOPTED: &str = "adopted";

/// The sequence edge `edge` was adopted at (0: it started here).
pub fn adopted_at(db: &sled::Db, edge: &str) -> Result<u64, sled::Error> {
    Ok(db
        .open_tree(ADOPTED)?
        .get(edge.as_bytes())?
        .and_then(|v| v.as_ref().try_into().ok().map(u64::from_be_bytes))
        .unwrap_or(0))
}

/// Every adopted edge and the sequence it was adopted at.
pub fn adopted(db: &sled::Db) -> Result<BTreeMap<String, u64>, sled::Error> {
    let mut out = BTreeMap::new();
    for entry in db.open_tree(ADOPTED)?.iter() {
        let (edge, seq) = entry?;
        if let Ok(seq) = <[u8; 8]>::try_from(seq.as_ref()) {
            out.insert(
                String::from_utf8_lossy(&edge).into_owned(),
                u64::from_be_bytes(seq),
            );
        }
    }
    Ok(out)
}

/// Why an edge cannot be adopted.
#[derive(Debug, thiserror::Error)]
pub enum AdoptError {
    #[error("store: {0}")]
    Store(#[from] sled::Error),
    #[error(transparent)]
    Log(#[from] crate::eventlog::EventLogError),
    #[error(
        "edge {edge} already has events up to {committed} at this hub: adopt it before it first connects here"
    )]
    HasEvents { edge: String, committed: u64 },
}

/// Makes this hub continue edge `edge` from `committed`, the sequence its old hub committed:
/// the link welcomes it at that sequence (the edge sends what follows), and the projections and
/// the MSSQL events stream start there instead of counting `1..=committed` as missing. Run with
/// the hub stopped (the store is opened here).
pub fn adopt(db: &sled::Db, edge: &str, committed: u64) -> Result<(), AdoptError> {
    let marks = crate::eventlog::marks(db)?;
    if let Some(&have) = marks.get(edge)
        && have > 0
        && have != committed
    {
        return Err(AdoptError::HasEvents {
            edge: edge.to_owned(),
            committed: have,
        });
    }
    db.open_tree(ADOPTED)?
        .insert(edge.as_bytes(), &committed.to_be_bytes())?;
    crate::eventlog::set_mark(db, edge, committed)?;
    db.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use outpost_config::{ClusterHubConfig, EdgeOwnerConfig};

    fn directory(me: &str) -> Directory {
        Directory::from_config(&ClusterConfig {
            hub_id: me.into(),
            hubs: vec![
                ClusterHubConfig {
                    id: "hub-a".into(),
                    api_url: "http://a:8080/".into(),
                },
                ClusterHubConfig {
                    id: "hub-b".into(),
                    api_url: "http://b:8080".into(),
                },
            ],
            edges: vec![EdgeOwnerConfig {
                edge: "edge-x".into(),
                hub: "hub-b".into(),
            }],
        })
    }

    #[test]
    fn an_edge_is_this_hubs_unless_the_directory_gives_it_to_another() {
        let a = directory("hub-a");
        assert_eq!(
            a.owner("edge-x"),
            Owner::Hub {
                id: "hub-b",
                api_url: "http://b:8080"
            }
        );
        assert_eq!(a.owner("edge-unlisted"), Owner::Here);
        assert_eq!(directory("hub-b").owner("edge-x"), Owner::Here);
        assert_eq!(Directory::default().owner("edge-x"), Owner::Here);
    }

    #[test]
    fn an_adopted_edge_continues_from_the_sequence_its_old_hub_committed() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        adopt(&db, "edge-x", 4_200).unwrap();
        assert_eq!(adopted_at(&db, "edge-x").unwrap(), 4_200);
        assert_eq!(crate::eventlog::marks(&db).unwrap()["edge-x"], 4_200);
        assert_eq!(adopted_at(&db, "edge-y").unwrap(), 0);
        assert_eq!(adopted(&db).unwrap().len(), 1);
        adopt(&db, "edge-x", 4_200).unwrap(); // again: the same, fine
        assert!(matches!(
            adopt(&db, "edge-x", 5_000),
            Err(AdoptError::HasEvents {
                committed: 4_200,
                ..
            })
        ));
    }
}
