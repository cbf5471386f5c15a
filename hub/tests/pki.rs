//! The PKI: a CA, the hub certificate and edge certificates that real TLS verifiers accept, with
//! the edge id as identity, keys kept private, and a registry that admits, revokes and replaces.

#![allow(clippy::unwrap_used)] // In tests a panic is a failed test with its message.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use outpost_hub::pki::{self, EdgeRegistry, PkiError, Refusal};
use rustls::RootCertStore;
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

fn hub_names() -> Vec<String> {
    pki::DEFAULT_HUB_NAMES
        .iter()
        .map(|s| s.to_string())
        .collect()
}

fn roots(dir: &Path) -> Arc<RootCertStore> {
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(dir.join("ca.pem")).unwrap())
        .unwrap();
    Arc::new(roots)
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn init_creates_a_ca_and_a_hub_certificate_that_verifies_for_its_names() {
    outpost_process::install_crypto_provider();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("pki");
    pki::init(&dir, &hub_names()).unwrap();

    let verifier = rustls::client::WebPkiServerVerifier::builder(roots(&dir))
        .build()
        .unwrap();
    let hub = CertificateDer::from_pem_file(dir.join("hub.pem")).unwrap();
    for name in ["localhost", "127.0.0.1", "outpost-hub"] {
        verifier
            .verify_server_cert(
                &hub,
                &[],
                &ServerName::try_from(name).unwrap(),
                &[],
                UnixTime::now(),
            )
            .unwrap_or_else(|e| panic!("hub certificate refused for {name}: {e}"));
    }
    assert!(
        verifier
            .verify_server_cert(
                &hub,
                &[],
                &ServerName::try_from("evil.example").unwrap(),
                &[],
                UnixTime::now()
            )
            .is_err()
    );
}

#[test]
fn private_keys_are_written_with_mode_0600() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("pki");
    pki::init(&dir, &hub_names()).unwrap();
    let edge = pki::issue_edge(&dir, "edge-01", false).unwrap();
    assert_eq!(mode(&dir.join("ca.key")), 0o600);
    assert_eq!(mode(&dir.join("hub.key")), 0o600);
    assert_eq!(mode(&edge.key), 0o600);
    assert_eq!(mode(&dir), 0o700);
}

#[test]
fn init_refuses_to_overwrite_an_existing_ca() {
    let tmp = tempfile::tempdir().unwrap();
    pki::init(tmp.path(), &hub_names()).unwrap();
    let before = std::fs::read(tmp.path().join("ca.key")).unwrap();
    let err = pki::init(tmp.path(), &hub_names()).unwrap_err();
    assert!(matches!(err, PkiError::AlreadyInitialized { .. }), "{err}");
    assert_eq!(std::fs::read(tmp.path().join("ca.key")).unwrap(), before);
}

#[test]
fn edge_certificate_is_accepted_as_a_client_and_names_the_edge() {
    outpost_process::install_crypto_provider();
    let tmp = tempfile::tempdir().unwrap();
    pki::init(tmp.path(), &hub_names()).unwrap();
    let issued = pki::issue_edge(tmp.path(), "metro-station-12", false).unwrap();

    let verifier = rustls::server::WebPkiClientVerifier::builder(roots(tmp.path()))
        .build()
        .unwrap();
    let cert = CertificateDer::from_pem_file(&issued.cert).unwrap();
    verifier
        .verify_client_cert(&cert, &[], UnixTime::now())
        .expect("edge certificate verifies as a client");

    let identity = pki::edge_identity(&cert).unwrap();
    assert_eq!(identity.id, "metro-station-12");
    assert_eq!(identity.serial, issued.serial);
}

#[test]
fn edge_certificate_from_another_ca_is_refused_by_the_verifier() {
    outpost_process::install_crypto_provider();
    let ours = tempfile::tempdir().unwrap();
    let theirs = tempfile::tempdir().unwrap();
    pki::init(ours.path(), &hub_names()).unwrap();
    pki::init(theirs.path(), &hub_names()).unwrap();
    let foreign = pki::issue_edge(theirs.path(), "edge-01", false).unwrap();

    let verifier = rustls::server::WebPkiClientVerifier::builder(roots(ours.path()))
        .build()
        .unwrap();
    let cert = CertificateDer::from_pem_file(&foreign.cert).unwrap();
    assert!(
        verifier
            .verify_client_cert(&cert, &[], UnixTime::now())
            .is_err()
    );
}

#[test]
fn registry_admits_issued_edges_and_refuses_unknown_ones() {
    let tmp = tempfile::tempdir().unwrap();
    pki::init(tmp.path(), &hub_names()).unwrap();
    let issued = pki::issue_edge(tmp.path(), "edge-01", false).unwrap();
    let registry = EdgeRegistry::load(tmp.path()).unwrap();
    assert_eq!(registry.admit("edge-01", &issued.serial), Ok(()));
    assert_eq!(
        registry.admit("edge-02", &issued.serial),
        Err(Refusal::UnknownEdge {
            id: "edge-02".into()
        })
    );
}

#[test]
fn revoked_edge_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    pki::init(tmp.path(), &hub_names()).unwrap();
    let issued = pki::issue_edge(tmp.path(), "edge-01", false).unwrap();
    pki::revoke(tmp.path(), "edge-01").unwrap();
    let registry = EdgeRegistry::load(tmp.path()).unwrap();
    assert!(matches!(
        registry.admit("edge-01", &issued.serial),
        Err(Refusal::Revoked { .. })
    ));
}

#[test]
fn issuing_twice_needs_replace_and_retires_the_old_serial() {
    let tmp = tempfile::tempdir().unwrap();
    pki::init(tmp.path(), &hub_names()).unwrap();
    let old = pki::issue_edge(tmp.path(), "edge-01", false).unwrap();
    assert!(matches!(
        pki::issue_edge(tmp.path(), "edge-01", false),
        Err(PkiError::EdgeExists { .. })
    ));
    let new = pki::issue_edge(tmp.path(), "edge-01", true).unwrap();
    assert_ne!(old.serial, new.serial);
    let registry = EdgeRegistry::load(tmp.path()).unwrap();
    assert_eq!(registry.admit("edge-01", &new.serial), Ok(()));
    assert!(matches!(
        registry.admit("edge-01", &old.serial),
        Err(Refusal::SupersededCertificate { .. })
    ));
    assert_eq!(registry.edges["edge-01"].retired_serials, [old.serial]);
}

#[test]
fn invalid_edge_ids_and_missing_ca_get_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let err = pki::issue_edge(tmp.path(), "edge-01", false).unwrap_err();
    assert!(err.to_string().contains("pki init"), "{err}");
    pki::init(tmp.path(), &hub_names()).unwrap();
    let err = pki::issue_edge(tmp.path(), "Edge 01", false).unwrap_err();
    assert!(matches!(err, PkiError::InvalidEdgeId(_)), "{err}");
    let err = pki::revoke(tmp.path(), "nobody").unwrap_err();
    assert!(matches!(err, PkiError::UnknownEdge { .. }), "{err}");
}

#[test]
fn a_corrupt_registry_is_reported_not_replaced() {
    let tmp = tempfile::tempdir().unwrap();
    pki::init(tmp.path(), &hub_names()).unwrap();
    std::fs::write(tmp.path().join("edges.toml"), "[edges.x\n").unwrap();
    let err = pki::issue_edge(tmp.path(), "edge-01", false).unwrap_err();
    assert!(matches!(err, PkiError::Corrupt { .. }), "{err}");
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("edges.toml")).unwrap(),
        "[edges.x\n"
    );
}
