//! The admin HTTP server: metrics, liveness and readiness over real HTTP.

#![allow(clippy::unwrap_used)] // In tests a panic is a failed test with its message.

use std::time::Duration;

use outpost_actors::Readiness;
use outpost_process::admin::{HttpArgs, HttpServer};
use ractor::Actor;

async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    outpost_process::admin::get(addr, path).await.unwrap()
}

fn free_port() -> std::net::SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

#[tokio::test]
async fn admin_server_serves_metrics_health_and_readiness() {
    outpost_process::register_process_metrics("admin-test");
    let readiness = Readiness::new();
    let listen = free_port();
    let (admin, _) = Actor::spawn(None, HttpServer, HttpArgs::admin(listen, readiness.clone()))
        .await
        .unwrap();

    let (status, body) = get(listen, "/healthz").await;
    assert_eq!(status, 200);
    assert_eq!(body, "ok\n");

    let (status, body) = get(listen, "/metrics").await;
    assert_eq!(status, 200);
    assert!(
        body.contains("outpost_build_info{binary=\"admin-test\""),
        "{body}"
    );
    assert!(
        body.contains(&format!(
            "outpost_build_info{{binary=\"admin-test\",commit=\"{}\"",
            outpost_process::metrics::COMMIT
        )),
        "{body}"
    );
    for standard in [
        "\nprocess_resident_memory_bytes ",
        "\nprocess_cpu_seconds_total ",
        "\nprocess_open_fds ",
    ] {
        assert!(body.contains(standard), "{standard}: {body}");
    }
    assert!(
        !body.contains("outpost_process_"),
        "the standard names only"
    );

    // Nothing registered yet: not ready.
    let (status, _) = get(listen, "/readyz").await;
    assert_eq!(status, 503);
    readiness.set("edge/outbox", false);
    let (status, body) = get(listen, "/readyz").await;
    assert_eq!(status, 503);
    assert!(body.contains("\"edge/outbox\":false"), "{body}");
    readiness.set("edge/outbox", true);
    let (status, body) = get(listen, "/readyz").await;
    assert_eq!(status, 200);
    assert!(body.contains("\"ready\":true"), "{body}");

    // Requests are counted by route template and status class, and timed.
    let _ = get(listen, "/no/such/page").await;
    let (_, body) = get(listen, "/metrics").await;
    // (At least: other tests of this binary may run in the same process under `cargo test`.)
    for (series, at_least) in [
        (
            "outpost_http_requests_total{method=\"GET\",route=\"/readyz\",server=\"admin\",status=\"5xx\"}",
            2.0,
        ),
        (
            "outpost_http_requests_total{method=\"GET\",route=\"/readyz\",server=\"admin\",status=\"2xx\"}",
            1.0,
        ),
        (
            "outpost_http_requests_total{method=\"GET\",route=\"unmatched\",server=\"admin\",status=\"4xx\"}",
            1.0,
        ),
        (
            "outpost_http_request_duration_seconds_count{route=\"/readyz\",server=\"admin\"}",
            3.0,
        ),
    ] {
        let value = body
            .lines()
            .find_map(|l| l.strip_prefix(series))
            .and_then(|v| v.trim().parse::<f64>().ok());
        assert!(value.is_some_and(|v| v >= at_least), "{series}: {body}");
    }

    admin
        .stop_and_wait(None, Some(Duration::from_secs(2)))
        .await
        .unwrap();
}

#[tokio::test]
async fn admin_server_fails_to_start_when_its_port_is_taken() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let listen = taken.local_addr().unwrap();
    let result = Actor::spawn(None, HttpServer, HttpArgs::admin(listen, Readiness::new())).await;
    let Err(err) = result else {
        panic!("admin server started on a taken port");
    };
    let err = err.to_string();
    assert!(err.contains(&format!("cannot listen on {listen}")), "{err}");
}

/// Opens a connection from `from` (a loopback address) to `to` and sends half a request.
async fn half_request(from: &str, to: std::net::SocketAddr) -> Option<tokio::net::TcpStream> {
    use tokio::io::AsyncWriteExt;
    let socket = tokio::net::TcpSocket::new_v4().ok()?;
    socket.bind(format!("{from}:0").parse().ok()?).ok()?;
    let mut stream = socket.connect(to).await.ok()?;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        .await
        .ok()?;
    Some(stream)
}

/// Whether the server closed `stream` (it reads end-of-file, or a reset) within `wait`.
async fn closed_within(stream: &mut tokio::net::TcpStream, wait: Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 64];
    match tokio::time::timeout(wait, stream.read(&mut buf)).await {
        Ok(Ok(0)) | Ok(Err(_)) => true,
        Ok(Ok(_)) => true, // an error answer, then the close
        Err(_) => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_holding_a_thousand_half_sent_requests_keeps_nobody_else_out() {
    let listen = free_port();
    let limits = outpost_process::admin::HttpLimits {
        header_read_timeout: Duration::from_secs(2),
        max_connections: 64,
        max_per_peer: 16,
    };
    let args = HttpArgs {
        limits,
        ..HttpArgs::admin(listen, Readiness::new())
    };
    let (admin, _) = Actor::spawn(None, HttpServer, args).await.unwrap();

    // One client (127.0.0.1) opens 1,100 connections and sends half a request on each.
    let mut held = Vec::new();
    for _ in 0..1_100 {
        if let Some(stream) = half_request("127.0.0.1", listen).await {
            held.push(stream);
        }
    }
    let mut closed_at_once = 0;
    for stream in held.iter_mut() {
        if closed_within(stream, Duration::from_millis(20)).await {
            closed_at_once += 1;
        }
    }
    // (Fewer than 1,100 when this process runs out of file descriptors first.)
    assert!(held.len() >= 200, "{} connections opened", held.len());
    assert!(
        closed_at_once >= held.len() - 16,
        "all but the peer's 16 of {} are closed at once: {closed_at_once}",
        held.len()
    );

    // Someone else (127.0.0.2) is served at once, and the refusals are counted.
    let started = std::time::Instant::now();
    let (status, body) = {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        let mut stream = socket.connect(listen).await.unwrap();
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).await.unwrap();
        let status: u16 = text[9..12].parse().unwrap();
        (status, text)
    };
    assert_eq!(status, 200);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "answered in {:?}",
        started.elapsed()
    );
    let refused = body
        .lines()
        .find(|l| l.starts_with("outpost_http_connections_refused_total{server=\"admin\"}"))
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .unwrap();
    assert!(refused >= (held.len() - 16) as f64, "{refused}");

    // The 16 it was let keep are closed once the header timeout passes.
    let mut still_open = 0;
    for stream in held.iter_mut() {
        if !closed_within(stream, Duration::from_secs(4)).await {
            still_open += 1;
        }
    }
    assert_eq!(still_open, 0, "every half-sent request timed out");
    admin
        .stop_and_wait(None, Some(Duration::from_secs(2)))
        .await
        .unwrap();
}
