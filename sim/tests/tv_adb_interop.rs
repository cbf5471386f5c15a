//! Debian's real `adb` against our TV simulator: it connects with RSA authentication (its own
//! key, offered and accepted), runs a shell command, takes a screenshot with `exec-out screencap
//! -p` that decodes as a PNG of the TV's state, and pushes a file whose checksum the TV reports.
//! A TV that refuses the key leaves adb unauthorized. Ports stay outside 5555-5585.

#![allow(clippy::unwrap_used)] // In tests a panic is a failed test with its message.

use std::process::Output;
use std::time::Duration;

use outpost_simulators::tv::{TvFaults, start};
use sha2::{Digest, Sha256};

struct Adb {
    home: tempfile::TempDir,
    port: u16,
}

impl Adb {
    fn new() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Adb {
            home: tempfile::tempdir().unwrap(),
            port,
        }
    }

    async fn run(&self, args: &[&str]) -> Output {
        let out = tokio::time::timeout(
            Duration::from_secs(30),
            tokio::process::Command::new("adb")
                .arg("-P")
                .arg(self.port.to_string())
                .args(args)
                .env("HOME", self.home.path())
                .env("ANDROID_SDK_HOME", self.home.path())
                .kill_on_drop(true)
                .output(),
        )
        .await
        .expect("adb answered within 30 s")
        .expect("adb is installed (`bash .ci/run` installs it)");
        eprintln!(
            "adb {args:?} -> {}: {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}

impl Drop for Adb {
    fn drop(&mut self) {
        let _ = std::process::Command::new("adb")
            .args(["-P", &self.port.to_string(), "kill-server"])
            .env("HOME", self.home.path())
            .output();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_adb_connects_with_auth_runs_shell_takes_a_png_screenshot_and_pushes_a_file() {
    let (fleet, addrs) = start("127.0.0.1:0".parse().unwrap(), 1, 0.5).await.unwrap();
    let serial = addrs[0].to_string();
    let adb = Adb::new();
    adb.run(&["start-server"]).await;
    adb.run(&["connect", &serial]).await;
    let mut state = String::new();
    for _ in 0..50 {
        let out = adb.run(&["devices"]).await;
        state = String::from_utf8_lossy(&out.stdout).into_owned();
        if state.contains(&format!("{serial}\tdevice")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(state.contains(&format!("{serial}\tdevice")), "{state}");
    assert!(
        adb.home.path().join(".android/adbkey").exists(),
        "adb made its own key"
    );

    let out = adb
        .run(&["-s", &serial, "shell", "getprop", "ro.product.model"])
        .await;
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "MetroView 55");

    adb.run(&["-s", &serial, "shell", "input", "keyevent", "244"])
        .await;
    let out = adb
        .run(&["-s", &serial, "exec-out", "screencap", "-p"])
        .await;
    assert!(out.status.success());
    let decoder = png::Decoder::new(std::io::Cursor::new(out.stdout));
    let mut reader = decoder.read_info().expect("a valid PNG");
    let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
    reader.next_frame(&mut pixels).expect("PNG data decodes");
    let info = reader.info();
    assert_eq!((info.width, info.height), (320, 180));
    let texts: Vec<(String, String)> = info
        .uncompressed_latin1_text
        .iter()
        .map(|t| (t.keyword.clone(), t.text.clone()))
        .collect();
    assert!(
        texts.contains(&("input".into(), "hdmi2".into())),
        "{texts:?}"
    );

    let file = adb.home.path().join("ad.mp4");
    let media: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&file, &media).unwrap();
    let out = adb
        .run(&[
            "-s",
            &serial,
            "push",
            file.to_str().unwrap(),
            "/sdcard/Movies/ad.mp4",
        ])
        .await;
    assert!(out.status.success());
    let want = hex::encode(Sha256::digest(&media));
    assert_eq!(
        fleet
            .tv(0)
            .unwrap()
            .files
            .get("/sdcard/Movies/ad.mp4")
            .map(|f| f.0.clone()),
        Some(want.clone())
    );
    let out = adb
        .run(&["-s", &serial, "shell", "sha256sum", "/sdcard/Movies/ad.mp4"])
        .await;
    assert!(String::from_utf8_lossy(&out.stdout).starts_with(&want));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tv_that_refuses_the_key_leaves_real_adb_unauthorized() {
    let (fleet, addrs) = start("127.0.0.1:0".parse().unwrap(), 1, 0.5).await.unwrap();
    fleet.set_faults(
        0,
        TvFaults {
            reject_auth: true,
            ..TvFaults::default()
        },
    );
    let serial = addrs[0].to_string();
    let adb = Adb::new();
    adb.run(&["start-server"]).await;
    adb.run(&["connect", &serial]).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let out = adb.run(&["devices"]).await;
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(!listed.contains(&format!("{serial}\tdevice")), "{listed}");
    let out = adb.run(&["-s", &serial, "shell", "echo", "hi"]).await;
    assert!(!out.status.success());
    assert_eq!(fleet.tv(0).unwrap().commands, 0, "nothing ran");
}
