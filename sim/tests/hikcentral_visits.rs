//! Guest visits end provisioned, then revoked, with exactly one person per visit, under every
//! fault the HikCentral simulator injects: 500 visits each. The hub's visit service and jobs run
//! in-process against the simulator over HTTPS (pinned certificate); the simulator's records are
//! the truth the audit reads.

#![allow(clippy::unwrap_used)] // In tests a panic is a failed test with its message.

use std::collections::HashMap;
use std::time::Duration;

use outpost_harness::visits_driver::{
    HubVisits, audit_provisioned, audit_revoked, config_for, new_visit, photo, wait_all,
};
use outpost_hub::VisitState;
use outpost_process::clock::unix_ms;
use outpost_simulators::hikcentral::state::{Faults, Profile};
use outpost_simulators::hikcentral::{CertKind, HikSim, RunningHikSim, start};

const KEY: &str = "12345678";
const SECRET: &str = "abcdefghijklmnopqrst";
const VISITS: usize = 500;

async fn simulator(profile: Profile, seed: u64) -> RunningHikSim {
    outpost_process::install_crypto_provider();
    let sim = HikSim::new(KEY, SECRET, profile, 900, seed);
    start("127.0.0.1:0".parse().unwrap(), sim, CertKind::SelfSignedCa)
        .await
        .unwrap()
}

/// Creates `VISITS` visits (half end by themselves a few seconds after provisioning, half are
/// cancelled), waits for them to be active, audits, lets `while_active` act, waits for every
/// visit to be revoked, audits again.
async fn provision_and_revoke(sim: &RunningHikSim, faults: Faults, clear_after: Option<Duration>) {
    let dir = tempfile::tempdir().unwrap();
    let hub = HubVisits::start(&config_for(sim, KEY, SECRET), dir.path())
        .await
        .unwrap();
    sim.sim.set_faults(faults);
    let now = unix_ms();
    let mut ids = Vec::new();
    let mut photos = HashMap::new();
    for i in 0..VISITS {
        // Even visits end on their own 20 s from now (after provisioning, even under faults);
        // odd ones last a day and are cancelled.
        let end = if i % 2 == 0 {
            now + 20_000
        } else {
            now + 86_400_000
        };
        let visit = hub
            .visits
            .create(new_visit("t", i, now - 60_000, end), "test")
            .await
            .unwrap();
        photos.insert(visit.id.clone(), photo(i));
        ids.push(visit.id);
    }
    if let Some(after) = clear_after {
        tokio::time::sleep(after).await;
        sim.sim.set_faults(Faults::default());
    }
    let took = wait_all(&hub.visits, &ids, Duration::from_secs(120), |v| {
        v.state == VisitState::Active
    })
    .await
    .unwrap();
    let active = hub.visits.list(Some(VisitState::Active)).unwrap();
    assert_eq!(active.len(), VISITS);
    audit_provisioned(sim, &active, &photos).unwrap();
    eprintln!("{VISITS} visits active after {took:?}");

    for id in ids.iter().skip(1).step_by(2) {
        hub.visits.cancel(id, "test").await.unwrap();
    }
    wait_all(&hub.visits, &ids, Duration::from_secs(120), |v| {
        v.state == VisitState::Revoked
    })
    .await
    .unwrap();
    let revoked = hub.visits.list(None).unwrap();
    audit_revoked(sim, &revoked).unwrap();
    let ended = revoked
        .iter()
        .filter(|v| v.history.iter().any(|h| h.note.starts_with("visit ended")))
        .count();
    assert_eq!(
        ended,
        VISITS / 2,
        "half ended on their own, half were cancelled"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn visits_are_provisioned_once_and_revoked_when_nothing_goes_wrong() {
    let sim = simulator(Profile::Current, 1).await;
    provision_and_revoke(&sim, Faults::default(), None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn visits_survive_code_5_until_it_is_cleared_without_duplicates() {
    let sim = simulator(Profile::Current, 2).await;
    let faults = Faults {
        db_full: true,
        ..Faults::default()
    };
    provision_and_revoke(&sim, faults, Some(Duration::from_secs(3))).await;
    let code5 = sim
        .sim
        .calls()
        .iter()
        .filter(|c| c.code.as_deref() == Some("5"))
        .count();
    assert!(code5 >= 3, "code 5 was answered ({code5} times)");
    assert!(
        code5 < 200,
        "the breaker held writes instead of hammering a full database ({code5} code 5 answers)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn visits_survive_connections_dropped_after_the_commit_without_duplicates() {
    let sim = simulator(Profile::Current, 3).await;
    let faults = Faults {
        commit_then_drop_rate: 0.2,
        ..Faults::default()
    };
    provision_and_revoke(&sim, faults, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn visits_survive_connections_dropped_before_the_commit() {
    let sim = simulator(Profile::Current, 4).await;
    let faults = Faults {
        drop_before_commit_rate: 0.2,
        ..Faults::default()
    };
    provision_and_revoke(&sim, faults, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn visits_survive_http_500_answers() {
    let sim = simulator(Profile::Current, 5).await;
    let faults = Faults {
        http_error_rate: 0.15,
        http_error_status: Some(500),
        ..Faults::default()
    };
    provision_and_revoke(&sim, faults, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn visits_survive_http_429_answers_honouring_retry_after() {
    let sim = simulator(Profile::Current, 6).await;
    let faults = Faults {
        http_error_rate: 0.1,
        http_error_status: Some(429),
        ..Faults::default()
    };
    provision_and_revoke(&sim, faults, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn visits_survive_latency_and_reapplication_unknown_errors() {
    let sim = simulator(Profile::Current, 7).await;
    let faults = Faults {
        latency_ms: 20,
        reapply_unknown_rate: 0.3,
        ..Faults::default()
    };
    provision_and_revoke(&sim, faults, None).await;
    let code1 = sim
        .sim
        .calls()
        .iter()
        .filter(|c| c.code.as_deref() == Some("1"))
        .count();
    assert!(code1 > 50, "reapplication answered code 1 ({code1} times)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_hikcentral_without_person_search_or_status_gets_the_fallback_lookups() {
    let sim = simulator(Profile::Old, 8).await;
    // Drops make the jobs look persons up, which on this version needs the fallback.
    let faults = Faults {
        commit_then_drop_rate: 0.1,
        ..Faults::default()
    };
    provision_and_revoke(&sim, faults, None).await;
    let calls = sim.sim.calls();
    let searches = calls
        .iter()
        .filter(|c| c.path.ends_with("/person/search"))
        .count();
    let by_code = calls
        .iter()
        .filter(|c| c.path.ends_with("/personCode/personInfo"))
        .count();
    assert!(
        (1..=8).contains(&searches),
        "code 8 is remembered after the first searches in flight ({searches})"
    );
    assert!(by_code > 0, "persons were looked up by code instead");
}
