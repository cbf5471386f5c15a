//! The hub's link: who is admitted at the handshake, and what a session answers.

#![allow(clippy::unwrap_used)] // In tests a panic is a failed test with its message.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use outpost_config::{HubConfig, load_str};
use outpost_hub::pki;
use outpost_link::io::{FramedRecv, client_config, write_frame};
use outpost_link::{ControlFrame, Hello};

struct RunningHub {
    link: SocketAddr,
    data: std::path::PathBuf,
    pki: std::path::PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    _dir: tempfile::TempDir,
}

impl RunningHub {
    async fn start() -> Self {
        Self::start_with_link("").await
    }

    /// A hub with `link` added to its `[link]` table.
    async fn start_with_link(link_extra: &str) -> Self {
        outpost_process::install_crypto_provider();
        outpost_process::telemetry::init_logging(
            "warn",
            outpost_process::telemetry::LogStyle::Human,
        );
        let dir = tempfile::tempdir().unwrap();
        let pki_dir = dir.path().join("pki");
        pki::init(&pki_dir, &["localhost".to_owned()]).unwrap();
        let link = std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let admin = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let api = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let text = format!(
            "[hub]\ndata_dir = {:?}\n[pki]\ndir = {:?}\n[link]\nlisten = \"{link}\"\n{link_extra}\n[api]\nlisten = \"{api}\"\n[admin]\nlisten = \"{admin}\"\n",
            dir.path().join("data").display().to_string(),
            pki_dir.display().to_string(),
        );
        let config: HubConfig =
            load_str("hub.toml", &text, &std::collections::BTreeMap::new()).unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(outpost_hub::run(config, async {
            let _ = stopped.await;
        }));
        for _ in 0..200 {
            if let Ok((200, _)) = outpost_process::admin::get(admin, "/readyz").await {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Self {
            link,
            data: dir.path().join("data"),
            pki: pki_dir,
            stop: Some(stop),
            task,
            _dir: dir,
        }
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.await.unwrap().unwrap();
    }
}

fn endpoint(config: quinn::ClientConfig) -> quinn::Endpoint {
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(config);
    endpoint
}

fn edge_client(pki_dir: &Path, id: &str, ca_dir: &Path) -> quinn::ClientConfig {
    client_config(
        &ca_dir.join("ca.pem"),
        &pki_dir.join("edges").join(format!("{id}.pem")),
        &pki_dir.join("edges").join(format!("{id}.key")),
        Duration::from_secs(1),
        Duration::from_secs(5),
    )
    .unwrap()
}

fn hello(edge_id: &str) -> ControlFrame {
    hello_trimmed(edge_id, 0)
}

fn hello_trimmed(edge_id: &str, trimmed_seq: u64) -> ControlFrame {
    ControlFrame::Hello(Hello {
        edge_id: edge_id.into(),
        boot_id: 7,
        wall_ms: 0,
        last_seq: trimmed_seq,
        trimmed_seq,
        devices: vec![],
        software: "test".into(),
    })
}

/// Connects, says Hello as `claimed_id`, and returns the hub's first control frame or the error.
async fn handshake(
    config: quinn::ClientConfig,
    hub: SocketAddr,
    claimed_id: &str,
) -> Result<ControlFrame, String> {
    let endpoint = endpoint(config);
    let connection = endpoint
        .connect(hub, "localhost")
        .map_err(|e| e.to_string())?
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let (mut send, recv) = connection.open_bi().await.map_err(|e| e.to_string())?;
    write_frame(&mut send, &hello(claimed_id))
        .await
        .map_err(|e| e.to_string())?;
    let mut recv = FramedRecv::new(recv);
    recv.expect::<ControlFrame>(Duration::from_secs(5))
        .await
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn known_edge_is_welcomed_with_its_committed_sequence() {
    let hub = RunningHub::start().await;
    pki::issue_edge(&hub.pki, "edge-01", false).unwrap();
    let answer = handshake(
        edge_client(&hub.pki, "edge-01", &hub.pki),
        hub.link,
        "edge-01",
    )
    .await;
    match answer {
        Ok(ControlFrame::Welcome(welcome)) => assert_eq!(welcome.committed_seq, 0),
        other => panic!("expected Welcome, got {other:?}"),
    }
    hub.stop().await;
}

#[tokio::test]
async fn revoked_edge_is_refused_after_the_tls_handshake() {
    let hub = RunningHub::start().await;
    pki::issue_edge(&hub.pki, "edge-01", false).unwrap();
    pki::revoke(&hub.pki, "edge-01").unwrap();
    let err = handshake(
        edge_client(&hub.pki, "edge-01", &hub.pki),
        hub.link,
        "edge-01",
    )
    .await
    .unwrap_err();
    assert!(err.contains("edge edge-01 was revoked"), "{err}");
    hub.stop().await;
}

#[tokio::test]
async fn replaced_certificate_is_refused() {
    let hub = RunningHub::start().await;
    pki::issue_edge(&hub.pki, "edge-01", false).unwrap();
    let old = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(old.path().join("edges")).unwrap();
    for ext in ["pem", "key"] {
        std::fs::copy(
            hub.pki.join("edges").join(format!("edge-01.{ext}")),
            old.path().join("edges").join(format!("edge-01.{ext}")),
        )
        .unwrap();
    }
    pki::issue_edge(&hub.pki, "edge-01", true).unwrap();
    let err = handshake(
        edge_client(old.path(), "edge-01", &hub.pki),
        hub.link,
        "edge-01",
    )
    .await
    .unwrap_err();
    assert!(err.contains("replaced"), "{err}");
    hub.stop().await;
}

#[tokio::test]
async fn certificate_from_another_ca_fails_the_tls_handshake() {
    let hub = RunningHub::start().await;
    let other = tempfile::tempdir().unwrap();
    pki::init(other.path(), &["localhost".to_owned()]).unwrap();
    pki::issue_edge(other.path(), "edge-01", false).unwrap();
    // It trusts our hub (our CA) but presents a certificate our CA never issued.
    let err = handshake(
        edge_client(other.path(), "edge-01", &hub.pki),
        hub.link,
        "edge-01",
    )
    .await
    .unwrap_err();
    assert!(err.contains("cryptographic handshake failed"), "{err}");
    assert!(err.contains("invalid peer certificate"), "{err}");
    hub.stop().await;
}

#[tokio::test]
async fn edge_without_a_certificate_fails_the_tls_handshake() {
    let hub = RunningHub::start().await;
    let mut roots = rustls::RootCertStore::empty();
    use rustls::pki_types::pem::PemObject;
    roots
        .add(rustls::pki_types::CertificateDer::from_pem_file(hub.pki.join("ca.pem")).unwrap())
        .unwrap();
    let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    tls.alpn_protocols = vec![outpost_link::ALPN.to_vec()];
    let config = quinn::ClientConfig::new(Arc::new(
        quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap(),
    ));
    let err = handshake(config, hub.link, "edge-01").await.unwrap_err();
    assert!(err.contains("peer sent no certificates"), "{err}");
    hub.stop().await;
}

#[tokio::test]
async fn hello_claiming_another_edge_is_refused() {
    let hub = RunningHub::start().await;
    pki::issue_edge(&hub.pki, "edge-01", false).unwrap();
    pki::issue_edge(&hub.pki, "edge-02", false).unwrap();
    let err = handshake(
        edge_client(&hub.pki, "edge-01", &hub.pki),
        hub.link,
        "edge-02",
    )
    .await
    .unwrap_err();
    assert!(err.contains("certificate is edge-01"), "{err}");
    hub.stop().await;
}

fn event(seq: u64) -> outpost_link::Event {
    outpost_link::Event {
        seq,
        device: "syn-1".into(),
        class: outpost_link::EventClass::Money,
        wall_us: 1,
        mono_us: seq,
        boot_id: 7,
        body: outpost_link::EventBody::Synthetic {
            payload: vec![seq as u8; 16],
        },
    }
}

/// A session past the handshake: send batches, read acks.
struct TestSession {
    _endpoint: quinn::Endpoint,
    events_send: quinn::SendStream,
    events_recv: FramedRecv,
    committed_at_welcome: u64,
    /// Kept open for the session's life.
    control: (quinn::SendStream, FramedRecv),
    connection: quinn::Connection,
}

impl TestSession {
    async fn open(hub: &RunningHub, id: &str) -> Self {
        Self::open_trimmed(hub, id, 0).await
    }

    /// A session of an edge whose outbox holds nothing at or below `trimmed`.
    async fn open_trimmed(hub: &RunningHub, id: &str, trimmed: u64) -> Self {
        let endpoint = endpoint(edge_client(&hub.pki, id, &hub.pki));
        let connection = endpoint
            .connect(hub.link, "localhost")
            .unwrap()
            .await
            .unwrap();
        let (mut send, recv) = connection.open_bi().await.unwrap();
        write_frame(&mut send, &hello_trimmed(id, trimmed))
            .await
            .unwrap();
        let mut control = FramedRecv::new(recv);
        let ControlFrame::Welcome(welcome) = control.expect(Duration::from_secs(5)).await.unwrap()
        else {
            panic!("no welcome");
        };
        let (events_send, events_recv) = connection.open_bi().await.unwrap();
        Self {
            control: (send, control),
            connection: connection.clone(),
            _endpoint: endpoint,
            events_send,
            events_recv: FramedRecv::new(events_recv),
            committed_at_welcome: welcome.committed_seq,
        }
    }

    /// Sends a bulk payload with the given header and returns the hub's answer on the control stream.
    async fn bulk(&mut self, header: &outpost_link::BulkHeader, bytes: &[u8]) -> ControlFrame {
        let mut send = self.connection.open_uni().await.unwrap();
        write_frame(&mut send, header).await.unwrap();
        send.write_all(bytes).await.unwrap();
        send.finish().unwrap();
        self.control.1.expect(Duration::from_secs(5)).await.unwrap()
    }

    async fn send(&mut self, seqs: std::ops::RangeInclusive<u64>) -> u64 {
        let batch = outpost_link::EventFrame::Batch(outpost_link::EventBatch {
            events: seqs.map(event).collect(),
        });
        write_frame(&mut self.events_send, &batch).await.unwrap();
        match self
            .events_recv
            .expect(Duration::from_secs(5))
            .await
            .unwrap()
        {
            outpost_link::EventFrame::Ack { committed_seq } => committed_seq,
            other => panic!("expected Ack, got {other:?}"),
        }
    }
}

fn metric(name: &str) -> f64 {
    outpost_actors::metrics::render()
        .lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn hub_drops_duplicate_batch_after_reconnect() {
    let hub = RunningHub::start().await;
    pki::issue_edge(&hub.pki, "edge-01", false).unwrap();
    let mut first = TestSession::open(&hub, "edge-01").await;
    assert_eq!(first.send(1..=5).await, 5);
    drop(first);

    let mut second = TestSession::open(&hub, "edge-01").await;
    assert_eq!(
        second.committed_at_welcome, 5,
        "the welcome says where to resume"
    );
    assert_eq!(second.send(3..=8).await, 8);
    assert_eq!(metric("outpost_hub_duplicates_total"), 3.0);
    assert_eq!(metric("outpost_hub_events_committed_total"), 8.0);
    assert_eq!(metric("outpost_hub_gaps_total"), 0.0);
    // The same per edge, from the hub alone.
    let edge = |name: &str| metric(&format!("{name}{{edge=\"edge-01\"}}"));
    assert_eq!(edge("outpost_hub_edge_duplicates_total"), 3.0);
    assert_eq!(edge("outpost_hub_edge_gaps_total"), 0.0);
    assert_eq!(edge("outpost_hub_edge_connected"), 1.0);
    let seen = edge("outpost_hub_edge_last_seen_timestamp_seconds");
    let now = outpost_process::clock::unix_ms() as f64 / 1000.0;
    assert!((now - seen).abs() < 60.0, "last seen {seen}, now {now}");
    drop(second);
    for _ in 0..100 {
        if edge("outpost_hub_edge_connected") == 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(edge("outpost_hub_edge_connected"), 0.0, "its session ended");
    hub.stop().await;
}

#[tokio::test]
async fn hub_counts_the_gap_an_edge_declares_loudly_and_still_commits() {
    // The edge trimmed up to 5 (a hub acknowledged them; this one, restored, has only 2).
    let hub = RunningHub::start().await;
    pki::issue_edge(&hub.pki, "edge-01", false).unwrap();
    let mut session = TestSession::open(&hub, "edge-01").await;
    assert_eq!(session.send(1..=2).await, 2);
    drop(session);
    let mut session = TestSession::open_trimmed(&hub, "edge-01", 5).await;
    assert_eq!(session.committed_at_welcome, 2);
    assert_eq!(session.send(6..=6).await, 6);
    assert_eq!(metric("outpost_hub_gaps_total"), 1.0);
    assert_eq!(metric("outpost_hub_missing_events_total"), 3.0);
    assert_eq!(metric("outpost_hub_edge_gaps_total{edge=\"edge-01\"}"), 1.0);
    assert_eq!(
        metric("outpost_hub_edge_missing_events_total{edge=\"edge-01\"}"),
        3.0
    );
    assert_eq!(metric("outpost_hub_committed_seq{edge=\"edge-01\"}"), 6.0);
    hub.stop().await;
}

#[tokio::test]
async fn a_batch_that_skips_ahead_inside_a_session_ends_it_and_commits_nothing() {
    let hub = RunningHub::start().await;
    pki::issue_edge(&hub.pki, "edge-01", false).unwrap();
    let mut session = TestSession::open(&hub, "edge-01").await;
    assert_eq!(session.send(1..=2).await, 2);
    let batch = outpost_link::EventFrame::Batch(outpost_link::EventBatch {
        events: vec![event(6)],
    });
    write_frame(&mut session.events_send, &batch).await.unwrap();
    let ended = session
        .events_recv
        .expect::<outpost_link::EventFrame>(Duration::from_secs(5))
        .await;
    assert!(ended.is_err(), "no Ack, the session ends: {ended:?}");
    let reason = session.connection.closed().await.to_string();
    assert!(reason.contains("beyond 3"), "{reason}");
    let session = TestSession::open(&hub, "edge-01").await;
    assert_eq!(
        session.committed_at_welcome, 2,
        "nothing of the skipping batch was committed"
    );
    assert_eq!(metric("outpost_hub_gaps_total"), 0.0);
    hub.stop().await;
}

fn header(id: &str, bytes: &[u8]) -> outpost_link::BulkHeader {
    use sha2::Digest;
    outpost_link::BulkHeader {
        id: id.into(),
        device: "tv-1".into(),
        content_type: "image/png".into(),
        len: bytes.len() as u64,
        sha256: hex::encode(sha2::Sha256::digest(bytes)),
    }
}

#[tokio::test]
async fn bulk_payload_is_stored_whole_and_confirmed_while_events_flow() {
    let hub = RunningHub::start().await;
    pki::issue_edge(&hub.pki, "edge-01", false).unwrap();
    let mut session = TestSession::open(&hub, "edge-01").await;
    let png: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let answer = session.bulk(&header("tv-1-shot", &png), &png).await;
    assert_eq!(
        answer,
        ControlFrame::BulkStored {
            id: "tv-1-shot".into()
        }
    );
    let stored = std::fs::read(hub.data.join("bulk/edge-01/tv-1-shot")).unwrap();
    assert!(stored == png, "stored bytes differ");
    let meta = std::fs::read_to_string(hub.data.join("bulk/edge-01/tv-1-shot.json")).unwrap();
    assert!(meta.contains("image/png"), "{meta}");
    assert_eq!(session.send(1..=3).await, 3, "events are not held up");
    hub.stop().await;
}

#[tokio::test]
async fn bulk_payload_with_a_wrong_checksum_or_id_is_refused() {
    let hub = RunningHub::start().await;
    pki::issue_edge(&hub.pki, "edge-01", false).unwrap();
    let mut session = TestSession::open(&hub, "edge-01").await;
    let mut bad = header("shot-2", b"abc");
    bad.sha256 = "00".repeat(32);
    match session.bulk(&bad, b"abc").await {
        ControlFrame::BulkRefused { id, reason } => {
            assert_eq!(id, "shot-2");
            assert!(reason.contains("does not match"), "{reason}");
        }
        other => panic!("expected BulkRefused, got {other:?}"),
    }
    match session.bulk(&header("../etc/passwd", b"x"), b"x").await {
        ControlFrame::BulkRefused { reason, .. } => {
            assert!(reason.contains("id must be"), "{reason}")
        }
        other => panic!("expected BulkRefused, got {other:?}"),
    }
    assert!(!hub.data.join("bulk/edge-01/shot-2").exists());
    hub.stop().await;
}

/// Waits until the gauge `name` reads `value`.
async fn wait_metric(name: &str, value: f64) {
    for _ in 0..250 {
        if metric(name) == value {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{name} is {}, not {value}", metric(name));
}

#[tokio::test]
async fn connected_edges_share_the_receive_budget_and_get_it_back_when_one_leaves() {
    const MIB: f64 = 1024.0 * 1024.0;
    let hub = RunningHub::start_with_link("receive_budget_mib = 16").await;
    for id in ["edge-01", "edge-02"] {
        pki::issue_edge(&hub.pki, id, false).unwrap();
    }
    let window = "outpost_hub_link_receive_window_bytes";
    wait_metric(window, 16.0 * MIB).await;
    let mut one = TestSession::open(&hub, "edge-01").await;
    let two = TestSession::open(&hub, "edge-02").await;
    wait_metric(window, 8.0 * MIB).await;
    assert_eq!(
        one.send(1..=1000).await,
        1000,
        "a session on its share still delivers"
    );
    two.connection.close(0u32.into(), b"leaving");
    drop(two);
    wait_metric(window, 16.0 * MIB).await;
    assert_eq!(one.send(1001..=1003).await, 1003);
    hub.stop().await;
}

#[test]
fn each_edge_gets_the_budget_divided_between_a_floor_and_a_ceiling() {
    use outpost_hub::{MIN_RECEIVE_WINDOW, receive_window};
    const MIB: u64 = 1024 * 1024;
    assert_eq!(
        receive_window(64 * MIB, 1),
        32 * MIB,
        "one edge: the transport's ceiling"
    );
    assert_eq!(receive_window(64 * MIB, 0), 32 * MIB);
    assert_eq!(receive_window(64 * MIB, 16), 4 * MIB);
    assert_eq!(
        receive_window(64 * MIB, 1_000),
        67_108,
        "a thousand edges: 64 MiB / 1,000"
    );
    assert_eq!(receive_window(64 * MIB, 2_000), MIN_RECEIVE_WINDOW);
    assert_eq!(receive_window(64 * MIB, 100_000), MIN_RECEIVE_WINDOW);
}
