//! The hub as a process, through its REST API: visits are validated, stored, provisioned and
//! revoked, and provisioning resumes after `kill -9` of the hub — still one person per visit,
//! although requests were in flight and the simulator drops connections after committing.

#![allow(clippy::unwrap_used)] // In tests a panic is a failed test with its message.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use outpost_harness::harness::{RunningSite, scrape, wait_until};
use outpost_harness::site::{SiteLayout, SiteSpec};
use outpost_harness::visits_driver::{
    audit_provisioned, audit_revoked, config_for, config_toml, new_visit, photo,
};
use outpost_hub::Visit;
use outpost_process::clock::unix_ms;
use outpost_simulators::hikcentral::state::{Faults, Profile};
use outpost_simulators::hikcentral::{CertKind, HikSim, start};

const VISITS: usize = 150;

fn exe() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_outpost-sim"))
}

async fn visits(site: &RunningSite, query: &str) -> Vec<Visit> {
    let (status, body) = site
        .api("GET", &format!("/api/v1/visits{query}"), "")
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provisioning_resumes_after_kill_9_of_the_hub_with_one_person_per_visit() {
    outpost_process::install_crypto_provider();
    let sim = start(
        "127.0.0.1:0".parse().unwrap(),
        HikSim::new(
            "12345678",
            "abcdefghijklmnopqrst",
            Profile::Current,
            900,
            11,
        ),
        CertKind::SelfSignedCa,
    )
    .await
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut spec = SiteSpec::single("unused", "");
    spec.edge_ids.clear();
    let mut config = config_for(&sim, "12345678", "abcdefghijklmnopqrst");
    config.max_concurrent_requests = 4;
    spec.hub_extra_toml = config_toml(&config);
    let layout = SiteLayout::prepare(tmp.path(), &spec).unwrap();
    let mut site = RunningSite::start(exe(), layout).await.unwrap();

    // Bad input gets a clear answer and stores nothing.
    let now = unix_ms();
    let mut bad = new_visit("bad", 0, now, now + 3_600_000);
    bad.photo = "aGVsbG8=".into();
    let (status, body) = site
        .api(
            "POST",
            "/api/v1/visits",
            &serde_json::to_string(&serde_json::json!({
                "guest_name": bad.guest_name, "access_level": bad.access_level,
                "begin": bad.begin, "end": bad.end, "photo": bad.photo,
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("JPEG or PNG"), "{body}");
    let (status, body) = site
        .api("POST", "/api/v1/visits", r#"{"guest_name":"x"}"#)
        .await
        .unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("missing field"), "{body}");

    sim.sim.set_faults(Faults {
        latency_ms: 15,
        commit_then_drop_rate: 0.1,
        ..Faults::default()
    });
    let mut photos = HashMap::new();
    for i in 0..VISITS {
        let v = new_visit("r", i, now - 60_000, now + 86_400_000);
        let body = serde_json::json!({
            "id": v.id, "guest_name": v.guest_name, "access_level": v.access_level,
            "begin": v.begin, "end": v.end, "photo": v.photo,
        });
        let (status, answer) = site
            .api("POST", "/api/v1/visits", &body.to_string())
            .await
            .unwrap();
        assert_eq!(status, 201, "{answer}");
        photos.insert(v.id.unwrap().to_ascii_lowercase(), photo(i));
        if i % 50 == 49 {
            site.kill9_hub().await.unwrap();
            site.start_hub().await.unwrap();
        }
    }
    let (status, answer) = site
        .api("POST", "/api/v1/visits", &serde_json::json!({
            "id": "r00000", "guest_name": "Again", "access_level": "1",
            "begin": new_visit("r", 0, now, now + 1000).begin, "end": new_visit("r", 0, now, now + 3_600_000).end,
            "photo": new_visit("r", 0, now, now).photo,
        }).to_string())
        .await
        .unwrap();
    assert_eq!(
        status, 409,
        "a retried create with the same id is refused: {answer}"
    );

    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(700)).await;
        site.kill9_hub().await.unwrap();
        site.start_hub().await.unwrap();
    }
    wait_until("all visits active", Duration::from_secs(120), || async {
        visits(&site, "?state=active").await.len() == VISITS
    })
    .await
    .unwrap();
    let active = visits(&site, "").await;
    audit_provisioned(&sim, &active, &photos).unwrap();

    for v in &active {
        let (status, body) = site
            .api("POST", &format!("/api/v1/visits/{}/cancel", v.id), "")
            .await
            .unwrap();
        assert_eq!(status, 202, "{body}");
    }
    site.kill9_hub().await.unwrap();
    site.start_hub().await.unwrap();
    wait_until("all visits revoked", Duration::from_secs(120), || async {
        visits(&site, "?state=revoked").await.len() == VISITS
    })
    .await
    .unwrap();
    audit_revoked(&sim, &visits(&site, "").await).unwrap();
    let admin = site.layout.hub_admin;
    assert_eq!(
        scrape(admin, "outpost_hikcentral_jobs{state=\"revoked\"}").await,
        Some(VISITS as f64)
    );
    assert_eq!(scrape(admin, "outpost_hikcentral_db_full").await, Some(0.0));
    assert!(site.stop().await.unwrap());
}
