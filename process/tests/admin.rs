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
        body.contains("outpost_process_resident_memory_bytes"),
        "{body}"
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
