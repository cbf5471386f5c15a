//! The hub's stores stay within the entry limits that keep every sled page in its log (see
//! `outpost_storage`), whatever size their records would naturally have: an edge with hundreds of
//! devices, a command that carries a pushed file, a visit with a long history and a large photo.

#![allow(clippy::unwrap_used)] // In tests a panic is a failed test with its message.

use std::sync::Arc;

use outpost_hub::EdgeDirectory;
use outpost_hub::{CommandLog, CommandRecord, CommandStatus};
use outpost_hub::{Visit, VisitState, VisitStore};
use outpost_link::{DeviceInfo, Hello};
use outpost_storage::DurableDb;

fn open(dir: &std::path::Path) -> Arc<DurableDb> {
    Arc::new(DurableDb::open(&dir.join("db")).unwrap())
}

#[test]
fn an_edge_with_five_hundred_devices_is_recorded_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let durable = open(dir.path());
    let edges = EdgeDirectory::open(durable.db()).unwrap();
    let devices: Vec<DeviceInfo> = (0..500)
        .map(|i| DeviceInfo {
            id: format!("metro-station-{i:03}-platform-screen"),
            kind: "tv".into(),
        })
        .collect();
    let mut hello = Hello {
        edge_id: "edge-01".into(),
        boot_id: 7,
        wall_ms: 0,
        last_seq: 0,
        trimmed_seq: 0,
        devices: devices.clone(),
        software: "test".into(),
    };
    edges.record_hello(&hello, 1, 0).unwrap();
    assert_eq!(edges.get("edge-01").unwrap().devices, devices);
    hello.devices.truncate(3);
    edges.record_hello(&hello, 2, 0).unwrap();
    assert_eq!(
        edges.get("edge-01").unwrap().devices,
        devices[..3],
        "devices the edge no longer reports are gone"
    );
    assert_eq!(durable.blob_files(), 0);
}

fn command(id: &str, args: serde_json::Value) -> CommandRecord {
    CommandRecord {
        id: id.into(),
        issuer: "test".into(),
        edge: "edge-01".into(),
        device: "tv-1".into(),
        kind: outpost_command::DeviceKind::Tv,
        op: "push".into(),
        args,
        created_ms: 1,
        deadline_ms: i64::MAX,
        status: CommandStatus::Pending,
        detail: None,
        result: None,
        updated_ms: 1,
    }
}

#[tokio::test]
async fn a_command_carrying_a_pushed_file_keeps_its_arguments_apart() {
    let dir = tempfile::tempdir().unwrap();
    let log = CommandLog::open(open(dir.path())).unwrap();
    let big = serde_json::json!({"path": "/sdcard/ad.mp4", "data": "A".repeat(300_000)});
    log.create(command("cmd-big", big.clone())).await.unwrap();
    log.create(command("cmd-small", serde_json::json!({"level": 3})))
        .await
        .unwrap();
    assert_eq!(log.get("cmd-big").unwrap().unwrap().args, big);
    assert!(dir.path().join("command-args/cmd-big.json").exists());
    assert!(
        !dir.path().join("command-args/cmd-small.json").exists(),
        "a small command stays in its record"
    );
    let updated = log
        .update(
            "cmd-big",
            CommandStatus::Succeeded,
            Some("x".repeat(10_000)),
        )
        .unwrap()
        .unwrap();
    assert_eq!(updated.args, big, "an update keeps the arguments");
    let stored = log.get("cmd-big").unwrap().unwrap();
    assert_eq!(stored.status, CommandStatus::Succeeded);
    assert_eq!(
        stored.detail.unwrap().chars().count(),
        1025,
        "the detail is clipped to 1,024 characters and marked"
    );
}

#[tokio::test]
async fn a_visit_with_a_long_history_and_a_large_photo_stays_within_the_limits() {
    let dir = tempfile::tempdir().unwrap();
    let durable = open(dir.path());
    let store = VisitStore::open(durable.clone()).unwrap();
    let photo = vec![0xABu8; 190 * 1024];
    let mut visit: Visit = serde_json::from_value(serde_json::json!({
        "id": "v1", "guest_name": "Ana Guest", "family_name": "Guest", "given_name": "Ana",
        "access_level": "1", "begin": "2026-11-30T10:00:00+00:00",
        "end": "2026-11-30T12:00:00+00:00", "begin_ms": 0, "end_ms": 1,
        "photo_sha256": hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&photo)),
        "photo_bytes": photo.len(), "created_by": "test", "created_ms": 0, "state": "new",
        "person_code": "VV1", "person_id": null, "cancel_requested": false,
        "cancelled_by": null, "uncertain": false, "attempts": 0, "next_attempt_ms": 0,
        "last_error": null, "blocked_at": null, "apply_unconfirmed": false,
        "face_unverified": false, "history": [], "updated_ms": 0
    }))
    .unwrap();
    store.create(visit.clone(), photo.clone()).await.unwrap();
    for i in 0..64 {
        visit.note(format!(
            "step {i}: {}",
            "HikCentral said something long ".repeat(20)
        ));
    }
    visit.last_error = Some("e".repeat(5_000));
    visit.enter(VisitState::Active, "active");
    store.save(&visit).await.unwrap();
    let stored = store.get("v1").unwrap().unwrap();
    assert_eq!(stored.state, VisitState::Active);
    assert_eq!(
        stored.history.last().unwrap().note,
        "active",
        "the newest history is kept"
    );
    assert!(stored.history.len() < 64, "older lines made room");
    assert!(stored.last_error.unwrap().chars().count() <= 241);
    assert_eq!(store.photo("v1").unwrap().unwrap(), photo);
    assert!(
        store.create(visit, photo).await.is_err(),
        "a repeated id is refused"
    );
    assert_eq!(durable.blob_files(), 0);
}
