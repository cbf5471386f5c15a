//! The web console in a real browser: a hub, an edge, two simulated slot machines, three TVs (one
//! unreachable, one powered through a relay) and a simulated HikCentral, driven by Playwright in
//! Debian's Chromium (`sim/browser/console.mjs`, which states each check).
//!
//! `.ci/run` installs Chromium and the npm package; without them this test fails saying so.
//! Screenshots of every page land in `target/console-screenshots/`.

#![allow(clippy::unwrap_used)] // In tests a panic is a failed test with its message.

use std::path::{Path, PathBuf};
use std::time::Duration;

use outpost_harness::harness::{EgmSimProcess, HikSimProcess, RunningSite, TvSimProcess};
use outpost_harness::site::{SiteLayout, SiteSpec, http_relay_toml, sas_pty_line_toml, tv_toml};
fn exe() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_outpost-sim"))
}

const HIK_KEY: &str = "23456789";
const HIK_SECRET: &str = "console-test-secret";

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("browser")
}

/// An hour-long opening time that does not include now (UTC, the default site's zone), so an
/// opened door is out of hours.
fn closed_now() -> String {
    let hour = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 3600
        + 6)
        % 24;
    format!("{hour:02}:00-{:02}:00", (hour + 1) % 24)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_in_chromium_logs_in_each_role_shows_the_floor_live_and_acts_through_the_api() {
    let chromium = std::env::var("OUTPOST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "Chromium is not installed at {chromium}; `bash .ci/run` installs it (apt-get install chromium)"
    );
    assert!(
        browser_dir().join("node_modules/playwright-core").exists(),
        "playwright-core is not installed; `bash .ci/run` installs it (npm ci in sim/browser)"
    );
    let tmp = tempfile::tempdir().unwrap();
    let egms =
        EgmSimProcess::spawn_pty_line(exe(), 2, &["--play-rate", "0"], &tmp.path().join("egm.log"))
            .await
            .unwrap();
    let tvs = TvSimProcess::spawn(
        exe(),
        &[
            "--listen",
            "127.0.0.1:0",
            "--count",
            "2",
            "--boot-seconds",
            "1",
        ],
        &tmp.path().join("tv.log"),
    )
    .await
    .unwrap();
    let hik = HikSimProcess::spawn(
        exe(),
        &[
            "--listen",
            "127.0.0.1:0",
            "--app-key",
            HIK_KEY,
            "--app-secret",
            HIK_SECRET,
        ],
        &tmp.path().join("hikcentral.log"),
    )
    .await
    .unwrap();
    // tv-3 answers nowhere: it is down from the start, so a bulk operation skips it.
    let nowhere = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let devices = format!(
        "{}{}{}{}{}",
        sas_pty_line_toml("line-1", &egms.line, &["egm-1".into(), "egm-2".into()], ""),
        http_relay_toml(
            "relay-1",
            &format!("http://{}/tv/0/power", tvs.control),
            1000
        ),
        tv_toml(
            "tv-1",
            tvs.tv(0),
            Some("relay-1"),
            "telemetry_interval_ms = 500",
            "enabled = false"
        ),
        tv_toml(
            "tv-2",
            tvs.tv(1),
            None,
            "telemetry_interval_ms = 500",
            "enabled = false"
        ),
        tv_toml(
            "tv-3",
            nowhere,
            None,
            "telemetry_interval_ms = 500\nop_timeout_ms = 500",
            "enabled = false"
        ),
    );
    let mut hikcentral =
        outpost_harness::visits_driver::config_at(&hik.url, &hik.fingerprint, HIK_KEY, HIK_SECRET);
    hikcentral.retry_initial_ms = 200;
    let mut spec = SiteSpec::single("edge-01", &devices);
    spec.hub_extra_toml = format!(
        "{}\n[alerts]\nevaluate_every_ms = 200\n\n\
         [[alerts.rules]]\nrule = \"door_open_out_of_hours\"\nopen_hours = \"{}\"\n\n\
         [[device_tags]]\nedge = \"edge-01\"\ndevice = \"tv-1\"\ntags = [\"lobby\"]\n\n\
         [[device_tags]]\nedge = \"edge-01\"\ndevice = \"tv-2\"\ntags = [\"lobby\"]\n\n\
         [[device_tags]]\nedge = \"edge-01\"\ndevice = \"tv-3\"\ntags = [\"lobby\"]\n",
        outpost_harness::visits_driver::config_toml(&hikcentral),
        closed_now()
    );
    let layout = SiteLayout::prepare(&tmp.path().join("site"), &spec).unwrap();
    let site = RunningSite::start(exe(), layout).await.unwrap();
    let screenshots = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/console-screenshots");
    std::fs::create_dir_all(&screenshots).unwrap();
    let users: serde_json::Map<String, serde_json::Value> = site
        .layout
        .console_users
        .iter()
        .map(|u| {
            (
                u.role.clone(),
                serde_json::json!({"name": u.name, "password": u.password}),
            )
        })
        .collect();
    let input = serde_json::json!({
        "url": format!("http://{}/", site.layout.hub_api),
        "users": users,
        "egm_control": egms.control.to_string(),
        "tv_control": tvs.control.to_string(),
        "machines": ["egm-1", "egm-2"],
        "screenshots": screenshots,
    });
    let run = tokio::process::Command::new("node")
        .arg(browser_dir().join("console.mjs"))
        .current_dir(browser_dir())
        .env("OUTPOST_CONSOLE", input.to_string())
        .env("OUTPOST_CHROMIUM", &chromium)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(240), run)
        .await
        .expect("the browser test finishes within 4 minutes")
        .expect("node runs (Node.js is on the machine)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "the browser test failed:\n{stdout}\n{stderr}\nlogs: {}",
        tmp.path().display()
    );
    assert!(stdout.contains("all console checks passed"));
    for page in [
        "floor",
        "machine",
        "alerts",
        "fleet",
        "audit",
        "floor-phone",
    ] {
        assert!(
            screenshots.join(format!("{page}.png")).exists(),
            "screenshot of {page}"
        );
    }
    site.stop().await.unwrap();
    egms.kill().await;
    tvs.kill().await;
    hik.kill().await;
}
