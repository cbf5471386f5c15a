//! `outpost-sim demo`: a whole site on this machine with no set-up.
//!
//! It lays out a fresh site (PKI, configs, data) in a temporary directory (or `--dir`), starts the
//! hub and the edge as separate processes of this same binary, waits until both report ready, prints
//! where to look, and runs until Ctrl-C (or `--duration`), then stops both cleanly.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use crate::harness::SiteProcess;
use crate::site::{SiteLayout, SiteSpec};

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

/// Options of the demo.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Keep the site in DIR (must not exist yet) instead of a temporary directory.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Stop after this many seconds instead of waiting for Ctrl-C.
    #[arg(long)]
    pub duration: Option<u64>,
}

/// Runs the demo.
pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let exe = std::env::current_exe()?;
    let temp;
    let dir = match &args.dir {
        Some(dir) => {
            anyhow::ensure!(
                !dir.exists(),
                "{} already exists; the demo wants a fresh directory",
                dir.display()
            );
            dir.clone()
        }
        None => {
            temp = tempfile::Builder::new().prefix("outpost-demo-").tempdir()?;
            temp.path().to_owned()
        }
    };
    let spec = SiteSpec::single("edge-01", DEMO_DEVICES);
    let site = SiteLayout::prepare(&dir, &spec)?;
    let edge_layout = &site.edges[0];
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs)?;

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
    let edge_id = &edge_layout.id;
    println!(
        "  hub   metrics  http://{0}/metrics   ready: http://{0}/readyz",
        site.hub_admin
    );
    println!(
        "  hub   API      http://{}/api/v1/   token: {}",
        site.hub_api, site.api_token
    );
    println!(
        "  edge  metrics  http://{0}/metrics   ready: http://{0}/readyz   id: {edge_id}",
        edge_layout.admin
    );
    println!("  devices on {edge_id}: meter-stream (money, 20 events/s), telemetry (200 events/s)");
    println!(
        "  try:  curl -s -H 'Authorization: Bearer {}' -d '{{\"edge\":\"{edge_id}\",\"device\":\"meter-stream\",\"op\":\"ping\"}}' http://{}/api/v1/commands",
        site.api_token, site.hub_api
    );
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
            None => outpost_actors::process::shutdown_signal().await,
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
    println!("Demo stopped cleanly.");
    Ok(())
}
