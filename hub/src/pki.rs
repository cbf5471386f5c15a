//! The Outpost PKI: a CA that the hub owns, the hub's server certificate, and one client
//! certificate per edge whose identity (subject CN and DNS SAN) is the edge id.
//!
//! On-disk layout of the PKI directory:
//! - `ca.pem`, `ca.key`: the CA (the key never leaves this directory).
//! - `hub.pem`, `hub.key`: the hub's server certificate.
//! - `edges/<id>.pem`, `edges/<id>.key`: what an edge needs, with `ca.pem`.
//! - `edges.toml`: the registry — for each edge id the serial of its current certificate, when it
//!   was issued, whether it is revoked, and the serials it replaced.
//!
//! Invariants: private keys are created with mode 0600 and never overwritten; the registry is
//! replaced atomically (write, fsync, rename, fsync the directory); an edge is admitted only if its
//! id is in the registry, not revoked, and its certificate's serial is the current one.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use serde::{Deserialize, Serialize};

const CA_CERT: &str = "ca.pem";
const CA_KEY: &str = "ca.key";
const HUB_CERT: &str = "hub.pem";
const HUB_KEY: &str = "hub.key";
const EDGES_DIR: &str = "edges";
const REGISTRY: &str = "edges.toml";

/// Names the hub certificate is valid for when none are given.
pub const DEFAULT_HUB_NAMES: &[&str] = &["localhost", "127.0.0.1", "::1", "outpost-hub"];

/// What can go wrong managing the PKI.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("{dir} already holds a CA ({CA_CERT}); refusing to overwrite it")]
    AlreadyInitialized { dir: PathBuf },
    #[error("{dir} holds no CA; run `outpost-hub pki init --dir {dir}` first")]
    NotInitialized { dir: PathBuf },
    #[error("{0}")]
    InvalidEdgeId(String),
    #[error(
        "edge {id} already has a certificate (serial {serial}); pass --replace to issue a new one and retire the old"
    )]
    EdgeExists { id: String, serial: String },
    #[error("edge {id} is not in the registry")]
    UnknownEdge { id: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Corrupt { path: PathBuf, message: String },
    #[error("certificate generation failed: {0}")]
    Certificate(#[from] rcgen::Error),
    #[error("certificate is not an Outpost edge certificate: {0}")]
    NotAnEdgeCertificate(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PkiError + '_ {
    move |source| PkiError::Io {
        path: path.to_owned(),
        source,
    }
}

/// One edge in the registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EdgeRecord {
    /// Serial of the current certificate, lowercase hex.
    pub serial: String,
    /// SHA-256 of the current certificate (DER), lowercase hex.
    pub fingerprint_sha256: String,
    pub issued_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
    /// Serials of earlier certificates for this id, never admitted again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retired_serials: Vec<String>,
}

/// The registry of edges the hub knows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EdgeRegistry {
    #[serde(default)]
    pub edges: BTreeMap<String, EdgeRecord>,
}

/// Why an edge is refused at the handshake.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("edge {id} is unknown to this hub")]
    UnknownEdge { id: String },
    #[error("edge {id} was revoked at {since}")]
    Revoked { id: String, since: String },
    #[error("edge {id} presented certificate serial {serial}, which was replaced")]
    SupersededCertificate { id: String, serial: String },
}

impl EdgeRegistry {
    /// Loads the registry of `dir` (an empty registry if the file does not exist yet).
    pub fn load(dir: &Path) -> Result<Self, PkiError> {
        let path = dir.join(REGISTRY);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(io(&path)(e)),
        };
        toml::from_str(&text).map_err(|e| PkiError::Corrupt {
            path,
            message: e.message().to_owned(),
        })
    }

    fn save(&self, dir: &Path) -> Result<(), PkiError> {
        let path = dir.join(REGISTRY);
        let text = toml::to_string_pretty(self).map_err(|e| PkiError::Corrupt {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let text = format!(
            "# Registry of edge certificates issued by this hub's CA. Managed by `outpost-hub pki`.\n{text}"
        );
        write_atomically(&path, text.as_bytes(), 0o644)
    }

    /// Decides whether an edge presenting a certificate with `serial` may connect as `id`.
    pub fn admit(&self, id: &str, serial: &str) -> Result<(), Refusal> {
        let record = self
            .edges
            .get(id)
            .ok_or_else(|| Refusal::UnknownEdge { id: id.into() })?;
        if let Some(since) = &record.revoked_at {
            return Err(Refusal::Revoked {
                id: id.into(),
                since: since.clone(),
            });
        }
        if !record.serial.eq_ignore_ascii_case(serial) {
            return Err(Refusal::SupersededCertificate {
                id: id.into(),
                serial: serial.into(),
            });
        }
        Ok(())
    }
}

/// The id and serial an edge certificate carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeIdentity {
    pub id: String,
    pub serial: String,
}

/// Reads the identity from an edge certificate (DER): the subject CN, which must be a valid edge
/// id, and the serial.
pub fn edge_identity(cert_der: &[u8]) -> Result<EdgeIdentity, PkiError> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der)
        .map_err(|e| PkiError::NotAnEdgeCertificate(e.to_string()))?;
    let id = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .ok_or_else(|| PkiError::NotAnEdgeCertificate("no subject common name".into()))?
        .to_owned();
    outpost_config::validate_edge_id(&id).map_err(PkiError::NotAnEdgeCertificate)?;
    Ok(EdgeIdentity {
        id,
        serial: hex::encode(cert.raw_serial()),
    })
}

/// Paths of what `issue_edge` wrote.
#[derive(Debug, Clone)]
pub struct IssuedEdge {
    pub id: String,
    pub serial: String,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
}

/// Creates the CA and the hub certificate in `dir` (created if missing, mode 0700).
pub fn init(dir: &Path, hub_names: &[String]) -> Result<(), PkiError> {
    if dir.join(CA_CERT).exists() {
        return Err(PkiError::AlreadyInitialized { dir: dir.into() });
    }
    fs::create_dir_all(dir.join(EDGES_DIR)).map_err(io(dir))?;
    set_mode(dir, 0o700)?;

    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::default();
    ca.distinguished_name = name("Outpost CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.serial_number = Some(random_serial());
    ca.not_before = yesterday();
    ca.not_after = years_from_now(20);
    let ca_cert = ca.self_signed(&ca_key)?;

    let hub_key = KeyPair::generate()?;
    let mut hub = CertificateParams::default();
    hub.distinguished_name = name("outpost-hub");
    hub.subject_alt_names = hub_names.iter().map(|n| san(n)).collect::<Result<_, _>>()?;
    hub.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    hub.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    hub.serial_number = Some(random_serial());
    hub.not_before = yesterday();
    hub.not_after = years_from_now(10);
    let issuer = Issuer::new(ca, ca_key);
    let hub_cert = hub.signed_by(&hub_key, &issuer)?;

    write_new(
        &dir.join(CA_KEY),
        issuer.key().serialize_pem().as_bytes(),
        0o600,
    )?;
    write_new(
        &dir.join(HUB_KEY),
        hub_key.serialize_pem().as_bytes(),
        0o600,
    )?;
    write_new(&dir.join(HUB_CERT), hub_cert.pem().as_bytes(), 0o644)?;
    EdgeRegistry::default().save(dir)?;
    // The CA certificate last: its presence is what marks the directory as initialized.
    write_new(&dir.join(CA_CERT), ca_cert.pem().as_bytes(), 0o644)?;
    Ok(())
}

/// Issues a client certificate for edge `id`. With `replace`, an existing edge gets a new
/// certificate and its old serial is retired (and a revoked edge is reinstated).
pub fn issue_edge(dir: &Path, id: &str, replace: bool) -> Result<IssuedEdge, PkiError> {
    outpost_config::validate_edge_id(id).map_err(PkiError::InvalidEdgeId)?;
    let (ca_pem, ca_key) = load_ca(dir)?;
    let mut registry = EdgeRegistry::load(dir)?;
    if let Some(existing) = registry.edges.get(id)
        && !replace
    {
        return Err(PkiError::EdgeExists {
            id: id.into(),
            serial: existing.serial.clone(),
        });
    }

    let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key)?;
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    params.distinguished_name = name(id);
    params.subject_alt_names = vec![san(id)?];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let serial = random_serial();
    let serial_hex = hex::encode(serial.to_bytes());
    params.serial_number = Some(serial);
    params.not_before = yesterday();
    params.not_after = years_from_now(10);
    let cert = params.signed_by(&key, &issuer)?;

    let cert_path = dir.join(EDGES_DIR).join(format!("{id}.pem"));
    let key_path = dir.join(EDGES_DIR).join(format!("{id}.key"));
    fs::create_dir_all(dir.join(EDGES_DIR)).map_err(io(dir))?;
    write_atomically(&key_path, key.serialize_pem().as_bytes(), 0o600)?;
    write_atomically(&cert_path, cert.pem().as_bytes(), 0o644)?;

    let mut retired = Vec::new();
    if let Some(old) = registry.edges.remove(id) {
        retired = old.retired_serials;
        retired.push(old.serial);
    }
    registry.edges.insert(
        id.to_owned(),
        EdgeRecord {
            serial: serial_hex.clone(),
            fingerprint_sha256: sha256_hex(cert.der()),
            issued_at: now_rfc3339(),
            revoked_at: None,
            retired_serials: retired,
        },
    );
    registry.save(dir)?;
    Ok(IssuedEdge {
        id: id.into(),
        serial: serial_hex,
        cert: cert_path,
        key: key_path,
        ca: dir.join(CA_CERT),
    })
}

/// The files of edge `id` as [`issue_edge`] wrote them, if it was issued and they are there.
pub fn issued_edge_files(dir: &Path, id: &str) -> Option<IssuedEdge> {
    let registry = EdgeRegistry::load(dir).ok()?;
    let record = registry.edges.get(id)?;
    let cert = dir.join(EDGES_DIR).join(format!("{id}.pem"));
    let key = dir.join(EDGES_DIR).join(format!("{id}.key"));
    (cert.is_file() && key.is_file()).then(|| IssuedEdge {
        id: id.into(),
        serial: record.serial.clone(),
        cert,
        key,
        ca: dir.join(CA_CERT),
    })
}

/// Marks edge `id` revoked; the hub refuses it from then on. Revoking twice keeps the first time.
pub fn revoke(dir: &Path, id: &str) -> Result<EdgeRecord, PkiError> {
    load_ca(dir)?;
    let mut registry = EdgeRegistry::load(dir)?;
    let record = registry
        .edges
        .get_mut(id)
        .ok_or_else(|| PkiError::UnknownEdge { id: id.into() })?;
    if record.revoked_at.is_none() {
        record.revoked_at = Some(now_rfc3339());
    }
    let record = record.clone();
    registry.save(dir)?;
    Ok(record)
}

fn load_ca(dir: &Path) -> Result<(String, KeyPair), PkiError> {
    let cert_path = dir.join(CA_CERT);
    if !cert_path.exists() {
        return Err(PkiError::NotInitialized { dir: dir.into() });
    }
    let ca_pem = fs::read_to_string(&cert_path).map_err(io(&cert_path))?;
    let key_path = dir.join(CA_KEY);
    let key_pem = fs::read_to_string(&key_path).map_err(io(&key_path))?;
    let key = KeyPair::from_pem(&key_pem).map_err(|e| PkiError::Corrupt {
        path: key_path,
        message: e.to_string(),
    })?;
    Ok((ca_pem, key))
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Outpost");
    dn.push(DnType::CommonName, common_name);
    dn
}

fn san(name: &str) -> Result<SanType, PkiError> {
    Ok(match name.parse::<std::net::IpAddr>() {
        Ok(ip) => SanType::IpAddress(ip),
        Err(_) => SanType::DnsName(name.try_into()?),
    })
}

fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    // Positive and exactly 16 bytes in DER: top bit clear, next bit set.
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    SerialNumber::from_slice(&bytes)
}

fn yesterday() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc() - time::Duration::days(1)
}

fn years_from_now(years: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc() + time::Duration::days(365 * years)
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "unknown".into())
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

fn set_mode(path: &Path, mode: u32) -> Result<(), PkiError> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(io(path))
}

/// Creates `path` with `mode`; fails if it exists (keys are never overwritten in place).
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), PkiError> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(io(path))?;
    file.write_all(bytes).map_err(io(path))?;
    file.sync_all().map_err(io(path))?;
    sync_parent(path)
}

/// Replaces `path` with `bytes` so that a crash leaves either the old or the new content.
fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> Result<(), PkiError> {
    let tmp = path.with_extension("tmp");
    let _ = fs::remove_file(&tmp);
    write_new(&tmp, bytes, mode)?;
    fs::rename(&tmp, path).map_err(io(path))?;
    sync_parent(path)
}

fn sync_parent(path: &Path) -> Result<(), PkiError> {
    let parent = path.parent().unwrap_or(Path::new("."));
    fs::File::open(parent)
        .and_then(|d| d.sync_all())
        .map_err(io(parent))
}
