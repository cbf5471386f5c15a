//! Power cuts, not just `kill -9`: the data directory of the hub (or of the edge) is on a
//! loop-mounted ext4 whose crash image holds only what the kernel had sent to the disk (see
//! `outpost_harness::power_cut`). At random moments the power is cut and the same config is started on
//! the crash image. Every store must open, no acknowledged event may be lost, nothing may be
//! doubled, and after the drain the hub holds `1..=last` exactly once. While the hub is cut, an
//! operator keeps issuing commands and booking guest visits with 150 KiB photos through its API:
//! every one the API confirmed is in the command log and the visit store afterwards, each visit
//! with its whole photo.
//!
//! Needs root (CI runs as root). `OUTPOST_POWER_CUTS` sets the number of cuts per side (50),
//! `OUTPOST_CHAOS_SEED` replays a run.

#![allow(clippy::unwrap_used)] // In tests a panic is a failed test with its message.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use outpost_harness::harness::{RunningSite, scrape, wait_edge_drained};
use outpost_harness::power_cut::CutDisk;
use outpost_harness::site::{SiteLayout, SiteSpec};
use outpost_hub::CommandLog;
use outpost_hub::EventLog;
use outpost_hub::VisitStore;
use outpost_storage::DurableDb;
use rand::{Rng, SeedableRng};

fn exe() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_outpost-sim"))
}

fn cuts() -> u32 {
    std::env::var("OUTPOST_POWER_CUTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(50)
}

fn seeded_rng() -> rand::rngs::StdRng {
    let seed: u64 = std::env::var("OUTPOST_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    println!("power-cut seed {seed} (replay with OUTPOST_CHAOS_SEED={seed})");
    rand::rngs::StdRng::seed_from_u64(seed)
}

fn synthetic(id: &str, rate: u32, payload_bytes: usize) -> String {
    format!(
        "[[devices]]\nkind = \"synthetic\"\nid = \"{id}\"\nrate_per_second = {rate}.0\n\
         payload_bytes = {payload_bytes}\nclass = \"money\"\n"
    )
}

/// Files sled wrote outside its log: each one is a page a power cut can leave empty.
fn blob_files(db: &Path) -> usize {
    std::fs::read_dir(db.join("blobs"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Copies a data directory that did not open to `/tmp/outpost-power-cut-<side>-cut<n>-<pid>`,
/// which outlives the test's temporary directory, and returns where.
fn keep_for_post_mortem(data_dir: &Path, side: &str, cut: u32) -> std::path::PathBuf {
    let to = std::env::temp_dir().join(format!(
        "outpost-power-cut-{side}-cut{cut}-{}",
        std::process::id()
    ));
    let copied = std::process::Command::new("cp")
        .arg("-a")
        .arg(data_dir)
        .arg(&to)
        .status();
    if !matches!(copied, Ok(s) if s.success()) {
        eprintln!("could not keep {} in {}", data_dir.display(), to.display());
    }
    to
}

/// What the hub's API confirmed (201) while the power was being cut.
#[derive(Debug, Default)]
struct Confirmed {
    commands: Vec<String>,
    visits: Vec<String>,
}

/// A JPEG-looking photo of 150 KiB, different per visit.
fn large_photo(i: usize) -> Vec<u8> {
    let mut bytes = vec![0xFF, 0xD8, 0xFF, 0xE0];
    bytes.extend((0..150 * 1024).map(|k| ((k * 31 + i * 7) % 251) as u8));
    bytes.extend([0xFF, 0xD9]);
    bytes
}

/// Issues a `ping` command every 50 ms and books a visit every 250 ms through the hub's API until
/// `stop`, keeping the ids the API confirmed. Requests that meet a stopped or restarting hub fail
/// and are not retried: only confirmations count.
async fn operator(
    api: std::net::SocketAddr,
    token: String,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> Confirmed {
    use base64::Engine;
    let auth = format!("Bearer {token}");
    let headers = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
    ];
    let mut confirmed = Confirmed::default();
    let now = outpost_process::clock::unix_ms();
    let at = |ms: i64| {
        outpost_artemis::api::format_time(
            time::OffsetDateTime::from_unix_timestamp(ms / 1000).unwrap(),
        )
    };
    let mut tick = 0usize;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        tick += 1;
        let (path, body) = if tick.is_multiple_of(5) {
            let photo = base64::engine::general_purpose::STANDARD.encode(large_photo(tick));
            let body = serde_json::json!({
                "id": format!("v{tick}"), "guest_name": format!("Guest {tick}"),
                "access_level": "1", "begin": at(now), "end": at(now + 86_400_000),
                "photo": photo,
            });
            ("/api/v1/visits", body)
        } else {
            let body = serde_json::json!({"edge": "edge-01", "device": "coin-in", "op": "ping"});
            ("/api/v1/commands", body)
        };
        let sent = tokio::time::timeout(
            Duration::from_secs(5),
            outpost_process::admin::request(
                api,
                "POST",
                path,
                &headers,
                body.to_string().as_bytes(),
            ),
        )
        .await;
        if let Ok(Ok((201, text))) = sent {
            let record: serde_json::Value = serde_json::from_str(&text).unwrap();
            let id = record["id"].as_str().unwrap().to_owned();
            if path.ends_with("visits") {
                confirmed.visits.push(id);
            } else {
                confirmed.commands.push(id);
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    confirmed
}

/// Every command and visit the API confirmed is in the hub's database, each visit with its photo.
fn check_confirmed(hub_data: &Path, confirmed: &Confirmed) {
    use sha2::Digest;
    let durable = Arc::new(DurableDb::open(&hub_data.join("db")).unwrap());
    let commands = CommandLog::open(durable.clone()).unwrap();
    for id in &confirmed.commands {
        assert!(
            commands.get(id).unwrap().is_some(),
            "confirmed command {id} is stored"
        );
    }
    let visits = VisitStore::open(durable).unwrap();
    for id in &confirmed.visits {
        let visit = visits
            .get(id)
            .unwrap()
            .unwrap_or_else(|| panic!("visit {id} is stored"));
        let photo = visits.photo(id).unwrap().unwrap();
        assert_eq!(
            hex::encode(sha2::Sha256::digest(&photo)),
            visit.photo_sha256,
            "visit {id} has its whole photo"
        );
    }
}

/// Drains the edge with its device removed and checks the hub's log is `1..=last`, each once.
async fn drain_and_check(mut site: RunningSite, devices: &str) -> u64 {
    let edge_admin = site.layout.edges[0].admin;
    site.restart_edge_without(0, devices).await.unwrap();
    if site.hub.is_none() {
        site.start_hub().await.unwrap();
    }
    let last = wait_edge_drained(edge_admin, Duration::from_secs(120))
        .await
        .unwrap();
    let hub_data = site.layout.hub_data_dir.clone();
    assert!(site.stop().await.unwrap(), "hub and edge stopped cleanly");

    let durable = Arc::new(DurableDb::open(&hub_data.join("db")).unwrap());
    let log = EventLog::start(durable, 64, |_| {}).unwrap();
    let seqs: Vec<u64> = log
        .read("edge-01", 0, usize::MAX)
        .unwrap()
        .iter()
        .map(|e| e.event.seq)
        .collect();
    let missing = (1..=last)
        .filter(|s| seqs.binary_search(s).is_err())
        .count();
    let doubled = seqs.windows(2).filter(|w| w[0] == w[1]).count();
    assert_eq!(
        (missing, doubled),
        (0, 0),
        "the hub's log holds 1..={last} exactly once ({} events stored)",
        seqs.len()
    );
    assert!(
        seqs == (1..=last).collect::<Vec<_>>(),
        "the hub's log is 1..={last} in order"
    );
    last
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_cut_hub_keeps_every_acknowledged_event_at_3000_per_second() {
    if let Err(e) = CutDisk::check_privileges() {
        println!("SKIPPED: {e}");
        return;
    }
    let mut rng = seeded_rng();
    outpost_process::install_crypto_provider();
    let hik = outpost_simulators::hikcentral::start(
        "127.0.0.1:0".parse().unwrap(),
        outpost_simulators::hikcentral::HikSim::new(
            "12345678",
            "abcdefghijklmnopqrst",
            outpost_simulators::hikcentral::state::Profile::Current,
            900,
            11,
        ),
        outpost_simulators::hikcentral::CertKind::SelfSignedCa,
    )
    .await
    .unwrap();
    let devices = synthetic("coin-in", 3000, 200);
    let tmp = tempfile::tempdir().unwrap();
    let mut spec = SiteSpec::single("edge-01", &devices);
    spec.hub_extra_toml = outpost_harness::visits_driver::config_toml(
        &outpost_harness::visits_driver::config_for(&hik, "12345678", "abcdefghijklmnopqrst"),
    );
    let layout = SiteLayout::prepare(tmp.path(), &spec).unwrap();
    let hub_admin = layout.hub_admin;
    let edge_admin = layout.edges[0].admin;
    let mut disk =
        CutDisk::create(&tmp.path().join("hub.img"), &layout.hub_data_dir, 1024).unwrap();
    let mut site = RunningSite::start(exe(), layout).await.unwrap();
    let db = site.layout.hub_data_dir.join("db");
    let stop_operator = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let operator = tokio::spawn(operator(
        site.layout.hub_api,
        site.layout.api_token.clone(),
        stop_operator.clone(),
    ));

    let started = Instant::now();
    let mut most_blobs = 0;
    for cut in 1..=cuts() {
        tokio::time::sleep(Duration::from_millis(rng.random_range(300..2500))).await;
        assert_eq!(
            scrape(hub_admin, "outpost_hub_missing_events_total").await,
            Some(0.0),
            "before cut {cut}: the hub saw no gap (a gap is an event it acknowledged and lost); \
             blob files {}",
            blob_files(&db)
        );
        most_blobs = most_blobs.max(blob_files(&db));
        let pid = site.hub.as_ref().and_then(|h| h.pid()).unwrap();
        disk.cut(pid).unwrap();
        let acked = scrape(edge_admin, "outpost_outbox_acked_seq").await;
        site.kill9_hub().await.unwrap();
        disk.power_on().unwrap();
        if let Err(e) = site.start_hub().await {
            panic!(
                "cut {cut}: the hub does not start on the crash image (edge acknowledged through \
                 {acked:?}; blob files {}; kept in {}): {e}",
                blob_files(&db),
                keep_for_post_mortem(&site.layout.hub_data_dir, "hub", cut).display()
            );
        }
    }
    let cut_count = disk.cuts();
    let retaken = disk.copies_retaken();
    let awaited = disk.stops_awaited();
    let elapsed = started.elapsed();
    stop_operator.store(true, std::sync::atomic::Ordering::Relaxed);
    let confirmed = operator.await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        scrape(hub_admin, "outpost_hub_missing_events_total").await,
        Some(0.0),
        "after the last cut: no gap"
    );
    let hub_data = site.layout.hub_data_dir.clone();
    let last = drain_and_check(site, &devices).await;
    check_confirmed(&hub_data, &confirmed);
    drop(disk);
    println!(
        "hub: {cut_count} power cuts in {elapsed:.0?}, {last} events, 0 lost, 0 doubled; {} \
         commands and {} visits (150 KiB photos) confirmed, all stored; most blob files seen \
         {most_blobs}; crash images copied again because the disk changed during the copy \
         {retaken}; cuts that waited for a thread to stop {awaited}",
        confirmed.commands.len(),
        confirmed.visits.len()
    );
    assert!(
        confirmed.commands.len() > 100 && confirmed.visits.len() > 20,
        "the operator was served"
    );
    assert_eq!(most_blobs, 0, "sled never wrote a page outside its log");
    assert!(last > 10_000, "the stream ran: {last} events");
}

/// The `last_seq` the edge's outbox recovered at its most recent start, from its log.
fn recovered_last_seq(log: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(log).ok()?;
    let line = text.lines().rev().find(|l| l.contains("outbox opened"))?;
    let value = line.split("last_seq=").nth(1)?;
    value
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_cut_edge_keeps_every_large_event_it_acknowledged_while_the_hub_is_away() {
    if let Err(e) = CutDisk::check_privileges() {
        println!("SKIPPED: {e}");
        return;
    }
    let mut rng = seeded_rng();
    let devices = synthetic("note-in", 1000, 1500);
    let tmp = tempfile::tempdir().unwrap();
    let layout = SiteLayout::prepare(tmp.path(), &SiteSpec::single("edge-01", &devices)).unwrap();
    let edge_admin = layout.edges[0].admin;
    let edge_log = tmp.path().join("edge-01.log");
    let mut disk = CutDisk::create(
        &tmp.path().join("edge.img"),
        &layout.edges[0].data_dir,
        2048,
    )
    .unwrap();
    let mut site = RunningSite::stopped(exe(), layout);
    site.start_edge(0).await.unwrap();
    let outbox = site.layout.edges[0].data_dir.join("outbox");

    let started = Instant::now();
    let mut most_blobs = 0;
    for cut in 1..=cuts() {
        tokio::time::sleep(Duration::from_millis(rng.random_range(300..2000))).await;
        // Every event up to here was acknowledged to the device.
        let acknowledged = scrape(edge_admin, "outpost_outbox_last_seq").await.unwrap() as u64;
        most_blobs = most_blobs.max(blob_files(&outbox));
        let pid = site.edges[0].as_ref().and_then(|e| e.pid()).unwrap();
        disk.cut(pid).unwrap();
        site.kill9_edge(0).await.unwrap();
        disk.power_on().unwrap();
        if let Err(e) = site.start_edge(0).await {
            panic!(
                "cut {cut}: the edge does not start on the crash image ({acknowledged} events \
                 acknowledged to the device; blob files {}; kept in {}): {e}",
                blob_files(&outbox),
                keep_for_post_mortem(&site.layout.edges[0].data_dir, "edge", cut).display()
            );
        }
        let recovered = recovered_last_seq(&edge_log).unwrap();
        assert!(
            recovered >= acknowledged,
            "cut {cut}: the outbox recovered through {recovered}, but {acknowledged} events had \
             been acknowledged to the device"
        );
    }
    let cut_count = disk.cuts();
    let retaken = disk.copies_retaken();
    let awaited = disk.stops_awaited();
    let elapsed = started.elapsed();
    let last = drain_and_check(site, &devices).await;
    drop(disk);
    println!(
        "edge: {cut_count} power cuts in {elapsed:.0?}, {last} events of 1,500 bytes, 0 lost, 0 \
         doubled; most blob files seen {most_blobs}; crash images copied again {retaken}; cuts that waited for a thread to stop {awaited}"
    );
    assert_eq!(most_blobs, 0, "sled never wrote a page outside its log");
    assert!(last > 10_000, "the stream ran: {last} events");
}
