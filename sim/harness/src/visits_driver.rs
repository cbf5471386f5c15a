//! Drives the hub's guest-visit provisioning against the HikCentral simulator, in-process, and
//! audits the result against the simulator's own records. The visit tests and the benchmark use
//! it.
//!
//! The audit is the specification: every visit has exactly one person in HikCentral with its
//! code, created once, with the visit's window, face and access level; after revocation no
//! person of a visit is left and none was deleted before it left its access level.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use outpost_config::HikCentralConfig;
use outpost_hub::{NewVisit, Visits};
use outpost_hub::{Visit, VisitState};
use outpost_storage::DurableDb;
use sha2::{Digest, Sha256};

use outpost_simulators::hikcentral::RunningHikSim;

/// The `[hikcentral]` section that points at `sim`, pinned to its certificate (see
/// [`config_at`]).
pub fn config_for(sim: &RunningHikSim, app_key: &str, app_secret: &str) -> HikCentralConfig {
    config_at(&sim.url, &sim.certificate.fingerprint, app_key, app_secret)
}

/// The `[hikcentral]` section for the gateway at `url` whose certificate has SHA-256 `pin`, timed
/// for tests (short retries and breaker periods, so faults resolve in seconds); callers change
/// the fields they care about.
pub fn config_at(url: &str, pin: &str, app_key: &str, app_secret: &str) -> HikCentralConfig {
    HikCentralConfig {
        enabled: true,
        base_url: url.into(),
        app_key: app_key.into(),
        app_secret: app_secret.into(),
        pin_sha256: pin.into(),
        ca_file: String::new(),
        org_index_code: "1".into(),
        connect_timeout_ms: 2_000,
        request_timeout_ms: 5_000,
        max_concurrent_requests: 8,
        retry_initial_ms: 50,
        retry_max_ms: 1_000,
        db_full_initial_ms: 500,
        db_full_max_ms: 2_000,
        breaker_threshold: 3,
        max_unknown_attempts: 50,
        reapply_attempts: 5,
    }
}

/// The `[hikcentral]` table of a hub config file for `sim` (what [`config_for`] builds).
pub fn config_toml(config: &HikCentralConfig) -> String {
    format!(
        "[hikcentral]\nenabled = true\nbase_url = {:?}\napp_key = {:?}\napp_secret = {:?}\n\
         pin_sha256 = {:?}\nrequest_timeout_ms = {}\nmax_concurrent_requests = {}\n\
         retry_initial_ms = {}\nretry_max_ms = {}\ndb_full_initial_ms = {}\ndb_full_max_ms = {}\n\
         breaker_threshold = {}\n",
        config.base_url,
        config.app_key,
        config.app_secret,
        config.pin_sha256,
        config.request_timeout_ms,
        config.max_concurrent_requests,
        config.retry_initial_ms,
        config.retry_max_ms,
        config.db_full_initial_ms,
        config.db_full_max_ms,
        config.breaker_threshold,
    )
}

/// The hub's visits service on a fresh database, with its job manager running.
pub struct HubVisits {
    pub visits: Visits,
    manager: ractor::ActorRef<outpost_hub::ManagerMsg>,
}

impl std::fmt::Debug for HubVisits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubVisits").finish_non_exhaustive()
    }
}

impl Drop for HubVisits {
    fn drop(&mut self) {
        self.manager.stop(None);
    }
}

impl HubVisits {
    pub async fn start(config: &HikCentralConfig, data_dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(data_dir)?;
        let durable = Arc::new(DurableDb::open(&data_dir.join("db"))?);
        let visits = Visits::open(config, durable)?;
        let (manager, _) = visits.spawn_manager().await?;
        Ok(HubVisits { visits, manager })
    }
}

/// A small JPEG-looking photo, different per guest.
pub fn photo(i: usize) -> Vec<u8> {
    let mut bytes = vec![0xFF, 0xD8, 0xFF, 0xE0];
    bytes.extend((0..2048).map(|k| ((k * 31 + i * 7) % 251) as u8));
    bytes.extend([0xFF, 0xD9]);
    bytes
}

/// Visit `i`: guest "Guest{i} Visitor{i}", access level one of the simulator's, window from
/// `begin_ms` to `end_ms`.
pub fn new_visit(prefix: &str, i: usize, begin_ms: i64, end_ms: i64) -> NewVisit {
    use base64::Engine;
    let at = |ms: i64| {
        outpost_artemis::api::format_time(
            time::OffsetDateTime::from_unix_timestamp(ms / 1000)
                .unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
        )
    };
    let levels = ["1", "2", "3", "7"];
    NewVisit {
        id: Some(format!("{prefix}{i:05}")),
        guest_name: format!("Guest{i} Visitor{i}"),
        access_level: levels[i % levels.len()].into(),
        begin: at(begin_ms),
        end: at(end_ms),
        photo: base64::engine::general_purpose::STANDARD.encode(photo(i)),
    }
}

/// Waits until every visit of `ids` satisfies `done`; the error lists the stragglers.
pub async fn wait_all(
    visits: &Visits,
    ids: &[String],
    timeout: Duration,
    done: impl Fn(&Visit) -> bool,
) -> Result<Duration, String> {
    let start = std::time::Instant::now();
    loop {
        let all = visits.list(None).map_err(|e| e.to_string())?;
        let by_id: HashMap<&str, &Visit> = all.iter().map(|v| (v.id.as_str(), v)).collect();
        let waiting: Vec<&Visit> = ids
            .iter()
            .filter_map(|id| by_id.get(id.as_str()).copied())
            .filter(|v| !done(v))
            .collect();
        if waiting.is_empty() {
            return Ok(start.elapsed());
        }
        if start.elapsed() > timeout {
            let mut states: BTreeMap<&str, usize> = BTreeMap::new();
            for v in &waiting {
                *states.entry(v.state.as_str()).or_default() += 1;
            }
            let sample = waiting
                .first()
                .map(|v| format!("{} {:?} last error {:?}", v.id, v.state, v.last_error))
                .unwrap_or_default();
            return Err(format!(
                "{} visits not done after {timeout:?}: {states:?}; e.g. {sample}",
                waiting.len()
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn instant(text: Option<&str>) -> Option<i64> {
    text.and_then(outpost_artemis::api::parse_time)
        .map(|t| t.unix_timestamp())
}

/// Checks the provisioned state: one person per visit, created once, right window, face and
/// level. `photo_of(i)` gives the photo bytes of each visit (by id).
pub fn audit_provisioned(
    sim: &RunningHikSim,
    visits: &[Visit],
    photos: &HashMap<String, Vec<u8>>,
) -> Result<(), String> {
    let state = sim.sim.snapshot();
    let persons = state["persons"].as_array().cloned().unwrap_or_default();
    let adds = committed_adds(sim);
    for visit in visits {
        let mine: Vec<&serde_json::Value> = persons
            .iter()
            .filter(|p| p["personCode"].as_str() == Some(visit.person_code.as_str()))
            .collect();
        if mine.len() != 1 {
            return Err(format!(
                "visit {}: {} persons with code {}",
                visit.id,
                mine.len(),
                visit.person_code
            ));
        }
        let p = mine[0];
        if adds.get(&visit.person_code).copied().unwrap_or(0) != 1 {
            return Err(format!(
                "visit {}: person created {} times",
                visit.id,
                adds.get(&visit.person_code).copied().unwrap_or(0)
            ));
        }
        if p["personId"].as_str() != visit.person_id.as_deref() {
            return Err(format!(
                "visit {}: stored person id {:?}, HikCentral has {}",
                visit.id, visit.person_id, p["personId"]
            ));
        }
        let levels: Vec<&str> = p["levels"]
            .as_array()
            .map(|l| l.iter().filter_map(|x| x.as_str()).collect())
            .unwrap_or_default();
        if levels != [visit.access_level.as_str()] {
            return Err(format!(
                "visit {}: levels {levels:?}, want [{}]",
                visit.id, visit.access_level
            ));
        }
        if instant(p["beginTime"].as_str()) != Some(visit.begin_ms / 1000)
            || instant(p["endTime"].as_str()) != Some(visit.end_ms / 1000)
        {
            return Err(format!(
                "visit {}: window {} - {} in HikCentral, want {} - {}",
                visit.id, p["beginTime"], p["endTime"], visit.begin, visit.end
            ));
        }
        let want_face = photos
            .get(&visit.id)
            .map(|b| hex::encode(Sha256::digest(b)));
        if p["faceSha256"].as_str().map(str::to_owned) != want_face {
            return Err(format!(
                "visit {}: face {} in HikCentral",
                visit.id, p["faceSha256"]
            ));
        }
        if !visit.apply_unconfirmed && p["applied"] != serde_json::json!(true) {
            return Err(format!("visit {}: not applied to devices", visit.id));
        }
    }
    Ok(())
}

/// How many times each personCode was created (committed `person/single/add` calls).
pub fn committed_adds(sim: &RunningHikSim) -> HashMap<String, usize> {
    let mut adds = HashMap::new();
    for call in sim.sim.calls() {
        if call.committed
            && call.path.ends_with("/person/single/add")
            && let Some(code) = call.body["personCode"].as_str()
        {
            *adds.entry(code.to_owned()).or_default() += 1;
        }
    }
    adds
}

/// Checks the revoked state: no person of any visit left, none created twice, and every delete
/// came after the person left its access level.
pub fn audit_revoked(sim: &RunningHikSim, visits: &[Visit]) -> Result<(), String> {
    let state = sim.sim.snapshot();
    let persons = state["persons"].as_array().cloned().unwrap_or_default();
    let adds = committed_adds(sim);
    let calls = sim.sim.calls();
    for visit in visits {
        if visit.state != VisitState::Revoked {
            return Err(format!("visit {} is {:?}", visit.id, visit.state));
        }
        if persons
            .iter()
            .any(|p| p["personCode"].as_str() == Some(visit.person_code.as_str()))
        {
            return Err(format!(
                "visit {}: a person with code {} is left behind",
                visit.id, visit.person_code
            ));
        }
        if adds.get(&visit.person_code).copied().unwrap_or(0) > 1 {
            return Err(format!(
                "visit {}: person created {} times",
                visit.id, adds[&visit.person_code]
            ));
        }
        if let Some(id) = &visit.person_id {
            let seq_of = |suffix: &str| {
                calls
                    .iter()
                    .filter(|c| c.committed && c.path.ends_with(suffix))
                    .filter(|c| {
                        c.body["personId"].as_str() == Some(id.as_str())
                            || c.body["list"][0]["id"].as_str() == Some(id.as_str())
                    })
                    .map(|c| c.seq)
                    .max()
            };
            if let (Some(deleted), Some(removed)) =
                (seq_of("/person/single/delete"), seq_of("/deletePersons"))
                && deleted < removed
            {
                return Err(format!(
                    "visit {}: person deleted before it left its access level",
                    visit.id
                ));
            }
        }
    }
    Ok(())
}
