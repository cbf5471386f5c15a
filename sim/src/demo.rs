//! `outpost-sim demo`: a whole site on this machine with no set-up.
//!
//! It lays out a fresh site (PKI, configs, data) in a temporary directory (or `--dir`), starts the
//! hub and the edge as separate processes of this same binary, with simulated slot machines and a
//! simulated HikCentral (processes too), waits until both report ready, books three guest visits,
//! prints where to look, and runs until Ctrl-C (or `--duration`), then stops both cleanly.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use outpost_harness::harness::{EgmSimProcess, HikSimProcess, SiteProcess, TvSimProcess};
use outpost_harness::site::{SiteLayout, SiteSpec};

/// What the demo edge runs: a money stream and a telemetry stream.
const DEMO_DEVICES: &str = r#"
[[devices]]
kind = "synthetic"
id = "meter-stream"
rate_per_second = 20.0
payload_bytes = 200
class = "money"

[[devices]]
kind = "synthetic"
id = "telemetry"
rate_per_second = 200.0
payload_bytes = 200
class = "telemetry"
"#;

/// Simulated slot machines: lines, machines per line.
const DEMO_SAS_LINES: usize = 2;
const DEMO_EGMS_PER_LINE: u8 = 2;

fn sas_devices(lines: &[EgmSimProcess]) -> String {
    let mut out = String::new();
    for (i, sim) in lines.iter().enumerate() {
        let ids: Vec<String> = (1..=DEMO_EGMS_PER_LINE)
            .map(|a| format!("egm-{}-{a}", i + 1))
            .collect();
        out += &outpost_harness::site::sas_pty_line_toml(
            &format!("line-{}", i + 1),
            &sim.line,
            &ids,
            "meter_interval_ms = 5000",
        );
    }
    out
}

/// Simulated TVs; the first is powered through a relay (the simulator's power endpoint).
const DEMO_TVS: u16 = 3;

fn tv_devices(sim: &TvSimProcess) -> String {
    let mut out = outpost_harness::site::http_relay_toml(
        "relay-1",
        &format!("http://{}/tv/0/power", sim.control),
        3000,
    );
    for i in 0..DEMO_TVS {
        out += &outpost_harness::site::tv_toml(
            &format!("tv-{}", i + 1),
            sim.tv(i),
            (i == 0).then_some("relay-1"),
            "telemetry_interval_ms = 2000",
            "reconnect_wait_ms = 2000\nrestart_app_wait_ms = 5000\nreboot_wait_ms = 10000\npower_cycle_wait_ms = 15000\nround_pause_ms = 60000",
        );
    }
    out
}

/// The simulated HikCentral's partner credentials.
const DEMO_HIK_KEY: &str = "23456789";
const DEMO_HIK_SECRET: &str = "demo-secret-not-for-production";

/// Guest visits the demo books: name, access level, hours until the visit ends.
const DEMO_VISITS: &[(&str, &str, f64)] = &[
    ("Ada Lovelace", "7", 0.05),
    ("Grace Hopper", "2", 8.0),
    ("Alan Turing", "3", 8.0),
];

/// The `[hikcentral]` table pointing the demo hub at the simulator.
fn hikcentral_toml(sim: &HikSimProcess) -> String {
    let mut config = outpost_harness::visits_driver::config_at(
        &sim.url,
        &sim.fingerprint,
        DEMO_HIK_KEY,
        DEMO_HIK_SECRET,
    );
    config.max_concurrent_requests = 4;
    config.retry_initial_ms = 500;
    config.retry_max_ms = 10_000;
    config.db_full_initial_ms = 5_000;
    config.db_full_max_ms = 60_000;
    config.request_timeout_ms = 10_000;
    outpost_harness::visits_driver::config_toml(&config)
}

/// Books the demo's guest visits through the hub's API; returns their ids.
async fn book_visits(site: &SiteLayout) -> anyhow::Result<Vec<String>> {
    use base64::Engine;
    let now = outpost_process::clock::unix_ms();
    let at = |ms: i64| {
        outpost_artemis::api::format_time(
            time::OffsetDateTime::from_unix_timestamp(ms / 1000)
                .unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
        )
    };
    let auth = format!("Bearer {}", site.api_token);
    let mut ids = Vec::new();
    for (i, (name, level, hours)) in DEMO_VISITS.iter().enumerate() {
        let body = serde_json::json!({
            "guest_name": name,
            "access_level": level,
            "begin": at(now),
            "end": at(now + (hours * 3_600_000.0) as i64),
            "photo": base64::engine::general_purpose::STANDARD.encode(outpost_harness::visits_driver::photo(i)),
        });
        let (status, answer) = outpost_process::admin::request(
            site.hub_api,
            "POST",
            "/api/v1/visits",
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
            ],
            body.to_string().as_bytes(),
        )
        .await?;
        anyhow::ensure!(status == 201, "booking a demo visit: {status} {answer}");
        let visit: serde_json::Value = serde_json::from_str(&answer)?;
        ids.push(visit["id"].as_str().unwrap_or_default().to_owned());
    }
    Ok(ids)
}

/// Options of the demo.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// The site's directory: a new or empty one lays a site out there; one a demo used before is
    /// started again with its data, PKI, users and logs. Without it, a new directory under the
    /// system's temporary directory (kept after the demo, and printed).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Stop after this many seconds instead of waiting for Ctrl-C.
    #[arg(long)]
    pub duration: Option<u64>,
}

/// Runs the demo.
pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let exe = std::env::current_exe()?;
    let dir = match &args.dir {
        Some(dir) => {
            let reused = dir.join("site.json").is_file();
            let empty = std::fs::read_dir(dir).map_or(true, |mut d| d.next().is_none());
            anyhow::ensure!(
                reused || empty,
                "{} holds files but no demo site (no site.json): give a new or empty directory, \
                 or one an earlier demo used",
                dir.display()
            );
            if reused {
                println!("Starting the demo site in {} again", dir.display());
            }
            dir.clone()
        }
        // Kept after the demo, so the logs it printed can still be read and the site continued.
        None => tempfile::Builder::new()
            .prefix("outpost-demo-")
            .tempdir()?
            .keep(),
    };
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs)?;
    // Slot machines first: the edge's config names their ptys.
    let mut egm_sims = Vec::new();
    for line in 1..=DEMO_SAS_LINES {
        egm_sims.push(
            EgmSimProcess::spawn_pty_line(
                &exe,
                DEMO_EGMS_PER_LINE,
                &[
                    "--play-rate",
                    "0.5",
                    "--faults",
                    "drop=0.01,corrupt=0.01,busy=0.005",
                ],
                &logs.join(format!("egm-line-{line}.log")),
            )
            .await?,
        );
    }
    let hik = HikSimProcess::spawn(
        &exe,
        &[
            "--listen",
            "127.0.0.1:0",
            "--app-key",
            DEMO_HIK_KEY,
            "--app-secret",
            DEMO_HIK_SECRET,
        ],
        &logs.join("hikcentral.log"),
    )
    .await?;
    let tvs = TvSimProcess::spawn(
        &exe,
        &[
            "--listen",
            "127.0.0.1:0",
            "--count",
            &DEMO_TVS.to_string(),
            "--boot-seconds",
            "3",
        ],
        &logs.join("tvs.log"),
    )
    .await?;
    let devices = format!(
        "{DEMO_DEVICES}{}{}",
        sas_devices(&egm_sims),
        tv_devices(&tvs)
    );
    let mut spec = SiteSpec::single("edge-01", &devices);
    spec.hub_extra_toml = hikcentral_toml(&hik);
    // The TVs form a group (a tag) the console's TV wall can act on at once.
    for i in 1..=DEMO_TVS {
        spec.hub_extra_toml += &format!(
            "\n[[device_tags]]\nedge = \"edge-01\"\ndevice = \"tv-{i}\"\ntags = [\"lobby\"]\n"
        );
    }
    let site = SiteLayout::prepare(&dir, &spec)?;
    let edge_layout = &site.edges[0];

    let run_args = |kind: &str, config: &PathBuf| -> Vec<OsString> {
        vec![kind.into(), "run".into(), "--config".into(), config.into()]
    };
    let mut hub = SiteProcess::spawn(
        "outpost-hub",
        &exe,
        &run_args("hub", &site.hub_config),
        site.hub_admin,
        &logs.join("hub.log"),
    )?;
    let mut edge = SiteProcess::spawn(
        "outpost-edge",
        &exe,
        &run_args("edge", &edge_layout.config),
        edge_layout.admin,
        &logs.join("edge.log"),
    )?;
    hub.wait_ready(Duration::from_secs(20)).await?;
    edge.wait_ready(Duration::from_secs(20)).await?;

    println!("Outpost demo site is up (site directory {})", dir.display());
    let users_file = dir.join("console-users.txt");
    let users: String = site
        .console_users
        .iter()
        .map(|u| format!("{:<11} {:<11} {}\n", u.name, u.role, u.password))
        .collect();
    std::fs::write(
        &users_file,
        format!("user        role        password\n{users}"),
    )?;
    if let Some(admin) = site.console_user("admin") {
        println!(
            "  console  http://{}/   user: {}   password: {}   (a user per role: {})",
            site.hub_api,
            admin.name,
            admin.password,
            users_file.display()
        );
    }
    let edge_id = &edge_layout.id;
    println!(
        "  hub   metrics  http://{0}/metrics   ready: http://{0}/readyz",
        site.hub_admin
    );
    println!(
        "  hub   API      http://{}/api/v1/   token: {}",
        site.hub_api, site.api_token
    );
    // The commands in docs/api.md are written against these variables (and a guest's photo).
    let env_file = dir.join("demo.env");
    std::fs::write(
        dir.join("guest.jpg"),
        outpost_harness::visits_driver::photo(0),
    )?;
    std::fs::write(
        &env_file,
        format!(
            "export HUB=http://{} TOKEN={} DEMO='{}'\n",
            site.hub_api,
            site.api_token,
            dir.display()
        ),
    )?;
    println!(
        "  shell    . {}   (sets HUB, TOKEN and DEMO for the commands in docs/api.md)",
        env_file.display()
    );
    println!(
        "  edge  metrics  http://{0}/metrics   ready: http://{0}/readyz   id: {edge_id}",
        edge_layout.admin
    );
    println!("  devices on {edge_id}: meter-stream (money, 20 events/s), telemetry (200 events/s)");
    for (i, sim) in egm_sims.iter().enumerate() {
        println!(
            "  slot machines on line-{} ({}): egm-{}-1..{} playing, 1% faults; simulator state: http://{}/state",
            i + 1,
            sim.line,
            i + 1,
            DEMO_EGMS_PER_LINE,
            sim.control
        );
    }
    for (device, op) in [("meter-stream", "ping"), ("egm-1-1", "disable")] {
        println!(
            "  try:  curl -s -H 'Authorization: Bearer {}' -d '{{\"edge\":\"{edge_id}\",\"device\":\"{device}\",\"op\":\"{op}\"}}' http://{}/api/v1/commands",
            site.api_token, site.hub_api
        );
    }
    println!(
        "  TVs on {edge_id}: tv-1..{DEMO_TVS} (simulated Android TVs over ADB; tv-1 powered by relay-1); simulator: http://{}/state",
        tvs.control
    );
    for (device, op, args) in [
        ("tv-2", "volume", "{\"level\":12}"),
        ("tv-2", "screenshot", "{}"),
        ("relay-1", "cycle", "{}"),
    ] {
        println!(
            "  try:  curl -s -H 'Authorization: Bearer {}' -d '{{\"edge\":\"{edge_id}\",\"device\":\"{device}\",\"op\":\"{op}\",\"args\":{args}}}' http://{}/api/v1/commands",
            site.api_token, site.hub_api
        );
    }
    println!(
        "        (a command's result: GET http://{}/api/v1/commands/<id>; a screenshot's result.screenshot.bulk_id names the PNG: GET /api/v1/bulk/{edge_id}/<bulk_id>)",
        site.hub_api
    );
    let visit_ids = book_visits(&site).await?;
    println!(
        "  HikCentral (simulated) {}  sha256 {}  state: curl -sk {}/__sim/state",
        hik.url, hik.fingerprint, hik.url
    );
    println!(
        "  guest visits: curl -s -H 'Authorization: Bearer {}' http://{}/api/v1/visits",
        site.api_token, site.hub_api
    );
    if let Some(id) = visit_ids.get(1) {
        println!(
            "  try:  curl -s -X POST -H 'Authorization: Bearer {}' http://{}/api/v1/visits/{id}/cancel",
            site.api_token, site.hub_api
        );
    }
    // A first look at the slot machines: polls answered and events stored so far.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut polls = 0.0;
    let mut events = 0.0;
    for line in 1..=DEMO_SAS_LINES {
        for a in 1..=DEMO_EGMS_PER_LINE {
            let device = format!("egm-{line}-{a}");
            polls += outpost_harness::harness::scrape(
                edge_layout.admin,
                &format!("outpost_sas_polls_total{{device=\"{device}\",result=\"ok\"}}"),
            )
            .await
            .unwrap_or(0.0);
            for kind in ["exception", "meters"] {
                events += outpost_harness::harness::scrape(
                    edge_layout.admin,
                    &format!("outpost_sas_events_total{{device=\"{device}\",kind=\"{kind}\"}}"),
                )
                .await
                .unwrap_or(0.0);
            }
        }
    }
    println!(
        "  slot machines after 3 s: {polls} polls answered, {events} exceptions and meter readings stored"
    );
    let mut up = 0.0;
    for i in 1..=DEMO_TVS {
        up += outpost_harness::harness::scrape(
            edge_layout.admin,
            &format!("outpost_tv_up{{device=\"tv-{i}\"}}"),
        )
        .await
        .unwrap_or(0.0);
    }
    println!("  TVs after 3 s: {up} of {DEMO_TVS} answering with their player app in front");
    // A first screenshot of every TV, for the console's TV wall: one bulk operation.
    let (status, answer) = outpost_process::admin::request(
        site.hub_api,
        "POST",
        "/api/v1/batches",
        &[
            ("Authorization", &format!("Bearer {}", site.api_token)),
            ("Content-Type", "application/json"),
        ],
        br#"{"tag": "lobby", "kind": "tv", "op": "screenshot"}"#,
    )
    .await?;
    let batch: serde_json::Value = serde_json::from_str(&answer).unwrap_or_default();
    match batch["id"].as_str() {
        Some(id) if status == 201 => println!(
            "  screenshots of the lobby TVs, asked for in one bulk operation: curl -s -H 'Authorization: Bearer {}' http://{}/api/v1/batches/{id}",
            site.api_token, site.hub_api
        ),
        _ => println!("  screenshots of the lobby TVs were not asked for ({status}): {answer}"),
    }
    print_floor(&site, edge_id).await?;
    let (_, answer) = outpost_process::admin::request(
        site.hub_api,
        "GET",
        "/api/v1/visits",
        &[("Authorization", &format!("Bearer {}", site.api_token))],
        b"",
    )
    .await?;
    let booked: Vec<serde_json::Value> = serde_json::from_str(&answer).unwrap_or_default();
    for visit in &booked {
        println!(
            "  guest visit {} {:<13} access level {} until {}: {} (HikCentral person {})",
            visit["id"].as_str().unwrap_or("?"),
            visit["guest_name"].as_str().unwrap_or("?"),
            visit["access_level"].as_str().unwrap_or("?"),
            visit["end"].as_str().unwrap_or("?"),
            visit["state"].as_str().unwrap_or("?"),
            visit["person_id"].as_str().unwrap_or("-"),
        );
    }
    println!(
        "  PKI   {}  (CA, hub and edge certificates)",
        site.pki_dir.display()
    );
    println!("  logs  {}", logs.display());
    match args.duration {
        Some(secs) => println!("Stopping in {secs} s."),
        None => println!("Press Ctrl-C to stop."),
    }

    let wait = async {
        match args.duration {
            Some(secs) => tokio::time::sleep(Duration::from_secs(secs)).await,
            None => outpost_process::shutdown_signal().await,
        }
    };
    let outcome = tokio::select! {
        () = wait => Ok(()),
        status = hub.exited() => Err(anyhow::anyhow!("the hub exited unexpectedly ({:?}); see {}", status, logs.join("hub.log").display())),
        status = edge.exited() => Err(anyhow::anyhow!("the edge exited unexpectedly ({:?}); see {}", status, logs.join("edge.log").display())),
    };
    let grace = Duration::from_secs(10);
    let edge_status = edge.terminate(grace).await?;
    let hub_status = hub.terminate(grace).await?;
    outcome?;
    anyhow::ensure!(
        edge_status.success(),
        "the edge did not stop cleanly: {edge_status}"
    );
    anyhow::ensure!(
        hub_status.success(),
        "the hub did not stop cleanly: {hub_status}"
    );
    for sim in egm_sims {
        sim.kill().await;
    }
    hik.kill().await;
    tvs.kill().await;
    println!("Demo stopped cleanly.");
    println!(
        "The site is kept in {dir}: `cargo run --release --bin outpost-sim -- demo --dir {dir}` \
         starts it again with its data; `rm -rf {dir}` removes it.",
        dir = dir.display()
    );
    Ok(())
}

/// GET `path` from the hub's API with the demo's token, as JSON.
async fn api_json(site: &SiteLayout, path: &str) -> anyhow::Result<serde_json::Value> {
    let (status, answer) = outpost_process::admin::request(
        site.hub_api,
        "GET",
        path,
        &[("Authorization", &format!("Bearer {}", site.api_token))],
        b"",
    )
    .await?;
    anyhow::ensure!(status == 200, "GET {path}: {status} {answer}");
    Ok(serde_json::from_str(&answer)?)
}

/// The floor as the hub understands it: the device list, and one machine's gaming day with its
/// reconciliation (waiting up to 15 s for a meter reading that files played games).
async fn print_floor(site: &SiteLayout, edge_id: &str) -> anyhow::Result<()> {
    let auth = format!("-H 'Authorization: Bearer {}'", site.api_token);
    let devices = api_json(site, "/api/v1/devices").await?;
    let mut by_status: std::collections::BTreeMap<String, usize> = Default::default();
    for d in devices["devices"].as_array().into_iter().flatten() {
        *by_status
            .entry(d["status"].as_str().unwrap_or("?").to_owned())
            .or_default() += 1;
    }
    let summary: Vec<String> = by_status.iter().map(|(s, n)| format!("{n} {s}")).collect();
    println!(
        "  devices ({} known: {}): curl -s {auth} http://{}/api/v1/devices",
        devices["total"],
        summary.join(", "),
        site.hub_api
    );
    let machine = "egm-1-1";
    let day_path = format!("/api/v1/machines/{edge_id}/{machine}/days/today");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let day = loop {
        let day = api_json(site, &day_path).await?;
        if day["figures"]["games_played"].as_u64().unwrap_or(0) > 0
            || tokio::time::Instant::now() >= deadline
        {
            break day;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let f = &day["figures"];
    println!(
        "  {machine} gaming day {}: coin in {} {cur}, coin out {} {cur}, drop {} {cur}, net win {} {cur}, {} games",
        day["day"].as_str().unwrap_or("?"),
        f["coin_in"].as_str().unwrap_or("?"),
        f["coin_out"].as_str().unwrap_or("?"),
        f["drop"].as_str().unwrap_or("?"),
        f["net_win"].as_str().unwrap_or("?"),
        f["games_played"],
        cur = f["currency"].as_str().unwrap_or(""),
    );
    println!("        curl -s {auth} http://{}{day_path}", site.hub_api);
    let rec = &day["reconciliation"];
    let checks: Vec<String> = rec["checks"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            format!(
                "{} {}/{}",
                c["name"].as_str().unwrap_or("?"),
                c["metered"].as_str().unwrap_or("?"),
                c["counted"].as_str().unwrap_or("?")
            )
        })
        .collect();
    println!(
        "  {machine} reconciliation: {} over {} meter interval(s) (metered/counted: {})",
        rec["verdict"].as_str().unwrap_or("?"),
        rec["intervals"],
        checks.join(", ")
    );
    let floor = api_json(site, "/api/v1/sites/all/days/today").await?;
    println!(
        "  the whole floor today: {} machines, {} balanced, {} with a discrepancy: curl -s {auth} http://{}/api/v1/sites/all/days/today",
        floor["machines"].as_array().map_or(0, Vec::len),
        floor["balanced"],
        floor["discrepancies"],
        site.hub_api
    );
    Ok(())
}
