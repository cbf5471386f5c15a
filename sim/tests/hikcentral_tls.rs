//! The hub's Artemis client verifies HikCentral's certificate: by a pinned SHA-256 (the usual
//! self-signed CA:TRUE certificate) or by a CA bundle (a CA:FALSE certificate with an IP SAN);
//! anything else is refused, never silently accepted. And every answer is classified.

#![allow(clippy::unwrap_used)] // In tests a panic is a failed test with its message.

use outpost_artemis::Class;
use outpost_artemis::api;
use outpost_harness::visits_driver::config_for;
use outpost_hub::{ArtemisClient, ArtemisError};
use outpost_simulators::hikcentral::state::{Faults, Profile};
use outpost_simulators::hikcentral::{CertKind, HikSim, RunningHikSim, start};

async fn simulator(kind: CertKind) -> RunningHikSim {
    outpost_process::install_crypto_provider();
    let sim = HikSim::new("12345678", "abcdefghijklmnopqrst", Profile::Current, 900, 1);
    start("127.0.0.1:0".parse().unwrap(), sim, kind)
        .await
        .unwrap()
}

fn client(config: &outpost_config::HikCentralConfig) -> ArtemisClient {
    ArtemisClient::new(config).unwrap()
}

#[tokio::test]
async fn a_pinned_self_signed_certificate_is_accepted_and_a_wrong_pin_is_refused() {
    let sim = simulator(CertKind::SelfSignedCa).await;
    let mut config = config_for(&sim, "12345678", "abcdefghijklmnopqrst");
    let version = client(&config)
        .call(api::VERSION, &serde_json::json!({}))
        .await
        .unwrap();
    assert!(version.code.is_ok());

    config.pin_sha256 = "00".repeat(32);
    let err = client(&config)
        .call(api::VERSION, &serde_json::json!({}))
        .await
        .unwrap_err();
    assert!(matches!(err, ArtemisError::PinMismatch { .. }), "{err}");
    assert_eq!(err.class(), Class::Auth);
}

#[tokio::test]
async fn a_ca_bundle_verifies_a_leaf_certificate_but_not_a_self_signed_ca_one() {
    let dir = tempfile::tempdir().unwrap();
    let leaf = simulator(CertKind::Leaf).await;
    let bundle = dir.path().join("leaf.pem");
    std::fs::write(&bundle, &leaf.certificate.cert_pem).unwrap();
    let mut config = config_for(&leaf, "12345678", "abcdefghijklmnopqrst");
    config.pin_sha256.clear();
    config.ca_file = bundle.display().to_string();
    assert!(
        client(&config)
            .call(api::VERSION, &serde_json::json!({}))
            .await
            .is_ok()
    );

    // rustls refuses a CA:TRUE certificate as a server's own, even when it is the trusted root:
    // that is why HikCentral's default certificate must be pinned.
    let ca = simulator(CertKind::SelfSignedCa).await;
    let ca_bundle = dir.path().join("ca.pem");
    std::fs::write(&ca_bundle, &ca.certificate.cert_pem).unwrap();
    let mut config = config_for(&ca, "12345678", "abcdefghijklmnopqrst");
    config.pin_sha256.clear();
    config.ca_file = ca_bundle.display().to_string();
    let err = client(&config)
        .call(api::VERSION, &serde_json::json!({}))
        .await
        .unwrap_err();
    assert!(matches!(err, ArtemisError::NotSent { .. }), "{err}");
}

#[tokio::test]
async fn answers_are_classified_not_found_unsupported_auth_and_dropped_connections() {
    let sim = simulator(CertKind::SelfSignedCa).await;
    let config = config_for(&sim, "12345678", "abcdefghijklmnopqrst");
    let c = client(&config);
    let missing = c
        .call(api::PERSON_BY_CODE, &api::by_code_body("NOPE"))
        .await
        .unwrap_err();
    assert_eq!(missing.class(), Class::NotFound);
    let unknown_path = c
        .call(
            "/artemis/api/resource/v2/person/personList",
            &serde_json::json!({}),
        )
        .await
        .unwrap_err();
    assert_eq!(unknown_path.class(), Class::Unsupported);

    let mut wrong_secret = config.clone();
    wrong_secret.app_secret = "not-the-secret".into();
    let refused = client(&wrong_secret)
        .call(api::VERSION, &serde_json::json!({}))
        .await
        .unwrap_err();
    assert_eq!(refused.class(), Class::Auth, "{refused}");

    sim.sim.set_faults(Faults {
        commit_then_drop_rate: 1.0,
        ..Faults::default()
    });
    let dropped = c
        .call(api::VERSION, &serde_json::json!({}))
        .await
        .unwrap_err();
    assert_eq!(dropped.class(), Class::OutcomeUnknown, "{dropped}");
    sim.sim.set_faults(Faults {
        db_full: true,
        ..Faults::default()
    });
    let full = c
        .call(api::REAPPLICATION, &api::reapplication_body(&["1"]))
        .await
        .unwrap_err();
    assert_eq!(full.class(), Class::DbFull, "{full}");
}
