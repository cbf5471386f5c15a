//! The relay actor: switches through its bank, reads the state back, never restores power sooner
//! than its minimum off time (a shorter cycle is stretched and says so), and refuses commands for
//! other kinds of device.

#![allow(clippy::unwrap_used)] // In tests a panic is a failed test with its message.

use std::time::{Duration, Instant};

use outpost_command::{DeviceCommand, DeviceKind};
use outpost_config::{RelayBankKind, RelayConfig};
use outpost_edge::{DeviceError, DeviceMsg, EdgeShared};
use outpost_edge::{HttpRelay, RelayActor, RelayArgs, RelayBank, RelayError};
use ractor::Actor;

fn config(min_off_ms: u64) -> RelayConfig {
    RelayConfig {
        id: "relay-1".into(),
        bank: RelayBankKind::Memory,
        chip: None,
        line: None,
        active_low: false,
        url: None,
        min_off_ms,
        initially_on: true,
    }
}

async fn execute(
    actor: &ractor::ActorRef<DeviceMsg>,
    op: &str,
    args: serde_json::Value,
) -> Result<serde_json::Value, DeviceError> {
    let command = DeviceCommand::parse(DeviceKind::Relay, op, args).unwrap();
    send(actor, command).await
}

async fn send(
    actor: &ractor::ActorRef<DeviceMsg>,
    command: DeviceCommand,
) -> Result<serde_json::Value, DeviceError> {
    let answer = actor
        .call(
            |reply| DeviceMsg::Execute { command, reply },
            Some(Duration::from_secs(10)),
        )
        .await
        .unwrap();
    match answer {
        ractor::rpc::CallResult::Success(result) => {
            result.map(|reply| serde_json::to_value(reply).unwrap()["relay"].clone())
        }
        other => panic!("no answer: {other:?}"),
    }
}

#[tokio::test]
async fn power_comes_back_only_after_the_minimum_off_time() {
    let shared = EdgeShared::default();
    let (actor, _) = Actor::spawn(
        None,
        RelayActor,
        RelayArgs {
            config: config(300),
            shared: shared.clone(),
        },
    )
    .await
    .unwrap();
    assert!(
        shared.device("relay-1").is_some(),
        "registered for commands"
    );
    assert_eq!(
        execute(&actor, "state", serde_json::json!({}))
            .await
            .unwrap()["on"],
        true
    );
    assert_eq!(
        execute(&actor, "off", serde_json::json!({})).await.unwrap()["on"],
        false
    );
    let started = Instant::now();
    assert_eq!(
        execute(&actor, "on", serde_json::json!({})).await.unwrap()["on"],
        true
    );
    assert!(
        started.elapsed() >= Duration::from_millis(290),
        "{:?}",
        started.elapsed()
    );

    let started = Instant::now();
    let cycled = execute(&actor, "cycle", serde_json::json!({}))
        .await
        .unwrap();
    assert_eq!(cycled["on"], true);
    assert!(started.elapsed() >= Duration::from_millis(290));
    actor.stop(None);
}

#[tokio::test]
async fn a_cycle_shorter_than_the_minimum_off_time_is_stretched_and_says_how_long_it_was_off() {
    let (actor, _) = Actor::spawn(
        None,
        RelayActor,
        RelayArgs {
            config: config(400),
            shared: EdgeShared::default(),
        },
    )
    .await
    .unwrap();
    let started = Instant::now();
    let cycled = execute(&actor, "cycle", serde_json::json!({"off_ms": 10}))
        .await
        .unwrap();
    assert_eq!(cycled["on"], true);
    let off_ms = cycled["off_ms"].as_u64().unwrap();
    assert!((390..2000).contains(&off_ms), "{cycled}");
    assert!(started.elapsed() >= Duration::from_millis(390));
    actor.stop(None);
}

#[tokio::test]
async fn a_command_for_another_kind_of_device_is_refused() {
    let (actor, _) = Actor::spawn(
        None,
        RelayActor,
        RelayArgs {
            config: config(1000),
            shared: EdgeShared::default(),
        },
    )
    .await
    .unwrap();
    let ping = DeviceCommand::parse(DeviceKind::Synthetic, "ping", serde_json::json!({})).unwrap();
    let err = send(&actor, ping).await.unwrap_err();
    assert!(matches!(err, DeviceError::Refused(_)), "{err}");
    assert_eq!(err.to_string(), "a relay cannot run a synthetic command");
    actor.stop(None);
}

#[test]
fn a_gpio_relay_on_a_missing_chip_fails_with_the_path_in_the_error() {
    let relay =
        outpost_edge::GpioRelay::open(std::path::Path::new("/dev/gpiochip-none"), 3, false, true);
    let err = relay.err().unwrap().to_string();
    assert!(err.contains("/dev/gpiochip-none"), "{err}");
}

#[tokio::test]
async fn a_stopped_device_does_not_take_its_successor_out_of_the_directory() {
    let shared = EdgeShared::default();
    let spawn = || {
        Actor::spawn(
            None,
            RelayActor,
            RelayArgs {
                config: config(0),
                shared: shared.clone(),
            },
        )
    };
    let (old, old_handle) = spawn().await.unwrap();
    let (new, _) = spawn().await.unwrap();
    old.stop(None);
    old_handle.await.unwrap();
    let entry = shared.device("relay-1").expect("still registered");
    assert_eq!(entry.actor.get_id(), new.get_id());
    new.stop(None);
}

/// A one-shot HTTP server at a loopback address that answers `raw` to whatever it is sent.
async fn answering(raw: Vec<u8>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        if let Ok((mut stream, _)) = listener.accept().await {
            let mut request = vec![0u8; 4096];
            let _ = stream.read(&mut request).await;
            let _ = stream.write_all(&raw).await;
            let _ = stream.shutdown().await;
        }
    });
    format!("http://{addr}/relay/1")
}

async fn switch_on(raw: Vec<u8>) -> Result<(), outpost_edge::RelayError> {
    outpost_process::install_crypto_provider();
    let relay = HttpRelay::new(&answering(raw).await).unwrap();
    relay.set(true).await
}

fn http(status_line: &str, body: &[u8], with_length: bool) -> Vec<u8> {
    let mut raw = format!("{status_line}\r\nContent-Type: application/json\r\n").into_bytes();
    if with_length {
        raw.extend(format!("Content-Length: {}\r\n", body.len()).into_bytes());
    }
    raw.extend(b"Connection: close\r\n\r\n");
    raw.extend(body);
    raw
}

#[tokio::test]
async fn an_http_relay_reports_the_state_its_board_answers() {
    outpost_process::install_crypto_provider();
    let relay = HttpRelay::new(&answering(http("HTTP/1.1 200 OK", br#"{"on":false}"#, true)).await)
        .unwrap();
    relay.set(true).await.unwrap();
    assert!(
        !relay.get().await.unwrap(),
        "the state read back, not the one asked for"
    );
}

#[tokio::test]
async fn an_http_relay_answer_is_bounded_and_parsed_strictly() {
    let big = vec![b'x'; 1024 * 1024];
    for (name, raw) in [
        ("long, with its length", http("HTTP/1.1 200 OK", &big, true)),
        ("long, until close", http("HTTP/1.1 200 OK", &big, false)),
    ] {
        let err = switch_on(raw).await.unwrap_err();
        assert!(
            matches!(err, RelayError::AnswerTooLarge { .. }),
            "{name}: {err}"
        );
    }
    let err = switch_on(http("HTTP/1.1 +20 OK", br#"{"on":true}"#, true))
        .await
        .unwrap_err();
    assert!(
        matches!(err, RelayError::Http(_)),
        "a status of +20 is not HTTP: {err}"
    );
    let err = switch_on(http("HTTP/1.1 500 Oops", &vec![b'e'; 3000], true))
        .await
        .unwrap_err();
    match &err {
        RelayError::Status {
            status: 500,
            excerpt,
        } => {
            assert!(
                excerpt.chars().count() <= 201,
                "the body is not copied whole: {err}"
            )
        }
        other => panic!("{other}"),
    }
    for body in [
        &br#"{"on":"yes"}"#[..],
        br#"{"on":true,"extra":1}"#,
        b"on",
        b"",
    ] {
        let err = switch_on(http("HTTP/1.1 200 OK", body, true))
            .await
            .unwrap_err();
        assert!(matches!(err, RelayError::BadAnswer { .. }), "{err}");
    }
}

proptest::proptest! {
    #[test]
    fn any_answer_parses_to_a_state_or_an_error_without_panicking(
        status in 0u16..1000,
        body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512),
    ) {
        let _ = outpost_edge::parse_relay_answer(status, &body);
    }
}
