//! Under systemd (`Type=notify`, `WatchdogSec=`): the hub and the edge say `READY=1` once they
//! serve, feed the watchdog while their supervision tree answers, say `STOPPING=1` on SIGTERM,
//! and a process waiting for a store that does not open is started (ready, with the reason as its
//! status) and fed, not restarted by systemd in a loop. This test plays systemd: it owns the
//! notify socket and reads what the processes send.

#![allow(clippy::unwrap_used)] // In tests a panic is a failed test with its message.

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use outpost_harness::site::{SiteLayout, SiteSpec};

const DEVICES: &str = r#"
[[devices]]
kind = "synthetic"
id = "heartbeat"
rate_per_second = 5.0
payload_bytes = 20
class = "telemetry"
"#;

fn exe() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_outpost-sim"))
}

/// The notify socket systemd would own, and what arrived on it.
struct FakeSystemd {
    socket: UnixDatagram,
    path: std::path::PathBuf,
    received: Vec<String>,
}

impl FakeSystemd {
    fn bind(dir: &Path, name: &str) -> Self {
        let path = dir.join(format!("{name}.notify"));
        let socket = UnixDatagram::bind(&path).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        Self {
            socket,
            path,
            received: Vec::new(),
        }
    }

    /// Starts `outpost-sim <side> run --config <config>` as systemd would, with a watchdog of
    /// 600 ms.
    fn start(&self, side: &str, config: &Path, log: &Path) -> Child {
        let out = std::fs::File::create(log).unwrap();
        Command::new(exe())
            .args([side, "run", "--config"])
            .arg(config)
            .env("NOTIFY_SOCKET", &self.path)
            .env("WATCHDOG_USEC", "600000")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap()
    }

    /// Reads notifications for `window`.
    fn listen(&mut self, window: Duration) {
        let until = Instant::now() + window;
        let mut buf = [0u8; 4096];
        while Instant::now() < until {
            if let Ok(n) = self.socket.recv(&mut buf) {
                self.received
                    .push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        }
    }

    /// Reads until a notification containing `line` arrives, or `timeout`.
    fn wait_for(&mut self, line: &str, timeout: Duration) -> bool {
        let until = Instant::now() + timeout;
        let mut buf = [0u8; 4096];
        while Instant::now() < until {
            if let Ok(n) = self.socket.recv(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                let found = text.lines().any(|l| l == line);
                self.received.push(text);
                if found {
                    return true;
                }
            }
        }
        false
    }

    fn count(&self, line: &str) -> usize {
        self.received
            .iter()
            .filter(|m| m.lines().any(|l| l == line))
            .count()
    }

    fn statuses(&self) -> Vec<&str> {
        self.received
            .iter()
            .flat_map(|m| m.lines())
            .filter_map(|l| l.strip_prefix("STATUS="))
            .collect()
    }
}

fn terminate(child: &mut Child) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
}

#[test]
fn the_hub_and_the_edge_say_ready_feed_the_watchdog_and_say_stopping_on_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = SiteLayout::prepare(tmp.path(), &SiteSpec::single("edge-01", DEVICES)).unwrap();
    for (side, config) in [
        ("hub", layout.hub_config.clone()),
        ("edge", layout.edges[0].config.clone()),
    ] {
        let mut systemd = FakeSystemd::bind(tmp.path(), side);
        let log = tmp.path().join(format!("{side}.log"));
        let mut child = systemd.start(side, &config, &log);
        let ready = systemd.wait_for("READY=1", Duration::from_secs(30));
        let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
        assert!(
            ready,
            "{side} said READY=1: {:?}\n{}",
            systemd.received,
            log_text()
        );
        // A watchdog of 600 ms is fed every 200 ms while the tree answers.
        systemd.listen(Duration::from_secs(2));
        let fed = systemd.count("WATCHDOG=1");
        assert!(fed >= 5, "{side} fed the watchdog {fed} times in 2 s");
        assert!(
            systemd.statuses().iter().any(|s| s.starts_with("running")),
            "{side} status: {:?}",
            systemd.statuses()
        );
        terminate(&mut child);
        assert!(
            systemd.wait_for("STOPPING=1", Duration::from_secs(30)),
            "{side} said STOPPING=1: {:?}",
            systemd.received
        );
        let status = child.wait().unwrap();
        assert!(status.success(), "{side} exited {status} after SIGTERM");
        assert_eq!(systemd.count("READY=1"), 1, "{side} said READY=1 once");
    }
}

#[test]
fn a_hub_waiting_for_a_store_that_does_not_open_is_started_with_the_reason_and_fed() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = SiteLayout::prepare(tmp.path(), &SiteSpec::single("edge-01", DEVICES)).unwrap();
    // sled refuses a database whose conf does not parse, every time.
    let store = layout.hub_data_dir.join("db");
    std::fs::create_dir_all(&store).unwrap();
    std::fs::write(store.join("conf"), b"segment_size: banana\n").unwrap();

    let mut systemd = FakeSystemd::bind(tmp.path(), "hub");
    let log = tmp.path().join("hub.log");
    let mut child = systemd.start("hub", &layout.hub_config, &log);
    assert!(
        systemd.wait_for("READY=1", Duration::from_secs(30)),
        "a waiting hub is started, not failed: {:?}",
        systemd.received
    );
    assert!(
        systemd
            .statuses()
            .iter()
            .any(|s| s.contains("waiting for store hub to open")),
        "its status says why: {:?}",
        systemd.statuses()
    );
    systemd.listen(Duration::from_secs(2));
    assert!(
        systemd.count("WATCHDOG=1") >= 5,
        "and it is fed while it waits: {:?}",
        systemd.received
    );
    terminate(&mut child);
    let status = child.wait().unwrap();
    assert!(status.success(), "exited {status} after SIGTERM");
}
