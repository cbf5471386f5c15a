//! The edge's ADB client against a TV that answers nonsense, over an in-memory pipe: whatever the
//! device sends, the client ends with an error that names it — within its timeout, without
//! panicking or allocating what a header claims.

#![allow(clippy::unwrap_used)] // In tests a panic is a failed test with its message.

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use outpost_adb::{Command, Decoder, Message};
use outpost_edge::{AdbConnection, AdbError};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

static KEY: LazyLock<rsa::RsaPrivateKey> =
    LazyLock::new(|| outpost_adb::auth::generate_key().unwrap());

const TIMEOUT: Duration = Duration::from_millis(300);

/// A TV that reads the host's CNXN, then sends `answer` and keeps the pipe open a while.
async fn tv(mut device: DuplexStream, answer: Vec<u8>) {
    let mut decoder = Decoder::new(outpost_adb::message::MAX_PAYLOAD);
    let mut buf = [0u8; 4096];
    while decoder.next_message().ok().flatten().is_none() {
        let Ok(n) = device.read(&mut buf).await else {
            return;
        };
        if n == 0 {
            return;
        }
        decoder.push(&buf[..n]);
    }
    let _ = device.write_all(&answer).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
}

async fn connect_to(answer: Vec<u8>) -> (Result<AdbConnection, AdbError>, Duration) {
    let (host, device) = tokio::io::duplex(64 * 1024);
    tokio::spawn(tv(device, answer));
    let key = LazyLock::force(&KEY);
    let started = Instant::now();
    let result = AdbConnection::over(Box::new(host), key, "edge@test", TIMEOUT).await;
    (result, started.elapsed())
}

fn header(command: &[u8; 4], length: u32, magic_ok: bool) -> Vec<u8> {
    let code = u32::from_le_bytes(*command);
    let magic = if magic_ok { code ^ 0xFFFF_FFFF } else { code };
    [code, 0, 0, length, 0, magic]
        .iter()
        .flat_map(|w| w.to_le_bytes())
        .collect()
}

#[tokio::test]
async fn a_tv_that_answers_cnxn_at_once_is_connected_with_its_banner() {
    let answer = Message::new(
        Command::Cnxn,
        0x0100_0001,
        4096,
        b"device::ro.product.model=Hostile;features=shell_v2\0".to_vec(),
    )
    .encode();
    let (result, _) = connect_to(answer).await;
    let adb = result.unwrap();
    assert_eq!(adb.banner.get("ro.product.model"), Some("Hostile"));
}

#[tokio::test]
async fn garbage_a_wrong_magic_or_a_huge_length_claim_is_a_protocol_error() {
    for answer in [
        b"HTTP/1.1 400 Bad Request\r\n\r\n".to_vec(),
        header(b"CNXN", 0, false),
        header(b"WRTE", u32::MAX, true),
    ] {
        let (result, took) = connect_to(answer.clone()).await;
        assert!(
            matches!(result, Err(AdbError::Protocol(_))),
            "{answer:02x?}: {result:?}"
        );
        assert!(took < TIMEOUT, "decided at once, not by the timeout");
    }
}

#[tokio::test]
async fn a_half_message_then_silence_ends_at_the_timeout_and_a_closed_pipe_at_once() {
    let (result, took) = connect_to(header(b"CNXN", 100, true)).await;
    assert!(matches!(result, Err(AdbError::Timeout(_))), "{result:?}");
    assert!(took >= TIMEOUT && took < TIMEOUT * 3, "{took:?}");

    let (host, device) = tokio::io::duplex(1024);
    drop(device);
    let result = AdbConnection::over(Box::new(host), &KEY, "edge@test", TIMEOUT).await;
    assert!(
        matches!(result, Err(AdbError::Closed | AdbError::Io(_))),
        "{result:?}"
    );
}

#[tokio::test]
async fn an_unexpected_message_while_authenticating_is_named() {
    let answer = Message::new(Command::Wrte, 1, 1, b"hello".to_vec()).encode();
    let (result, _) = connect_to(answer).await;
    let Err(AdbError::Protocol(reason)) = result else {
        panic!("{result:?}");
    };
    assert!(reason.contains("Wrte"), "{reason}");
}
