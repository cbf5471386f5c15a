//! A command's result reaches the command log even when the hub dies between committing the
//! result's event and recording it there: the event log lists each edge's committed results in
//! the same batch as their events, and the next start applies what is still listed. The list is
//! one value per edge, overwritten, never removed (see `outpost_hub::EventLog`).

#![allow(clippy::unwrap_used)] // In tests a panic is a failed test with its message.

use std::path::Path;
use std::sync::Arc;

use outpost_hub::{CommandLog, CommandRecord, CommandStatus, EventLog};
use outpost_link::{CommandOutcome, CommandResult, Event, EventBody, EventClass};
use outpost_storage::DurableDb;

const EDGE: &str = "edge-01";

struct Hub {
    eventlog: EventLog,
    commands: CommandLog,
}

fn open(dir: &Path) -> Hub {
    let durable = Arc::new(DurableDb::open(&dir.join("db")).unwrap());
    let eventlog =
        EventLog::start(durable.clone(), 64, |err| panic!("event log failed: {err}")).unwrap();
    let commands = CommandLog::open(durable).unwrap();
    Hub { eventlog, commands }
}

fn command(id: &str) -> CommandRecord {
    CommandRecord {
        id: id.into(),
        issuer: "test".into(),
        edge: EDGE.into(),
        device: "tv-1".into(),
        kind: outpost_command::DeviceKind::Tv,
        op: "key".into(),
        args: serde_json::json!({ "code": 29 }),
        created_ms: 1,
        deadline_ms: i64::MAX,
        status: CommandStatus::Pending,
        detail: None,
        result: None,
        updated_ms: 1,
    }
}

fn event(seq: u64, body: EventBody) -> Event {
    Event {
        seq,
        device: "tv-1".into(),
        class: EventClass::Audit,
        wall_us: 1,
        mono_us: 1,
        boot_id: 7,
        body,
    }
}

fn result_event(seq: u64, id: &str) -> Event {
    event(
        seq,
        EventBody::CommandResult(CommandResult::new(
            id,
            CommandOutcome::Failed,
            "adb: device offline",
        )),
    )
}

/// A hub with one delivered command whose failure the event log committed (event 2, after a
/// telemetry-free event 1) and nobody applied: the state a `kill -9` between the two leaves.
async fn hub_that_died_after_committing(dir: &Path) -> String {
    let hub = open(dir);
    let id = "cmd-0001".to_string();
    hub.commands.create(command(&id)).await.unwrap();
    hub.commands
        .update(&id, CommandStatus::Delivered, None)
        .unwrap();
    let outcome = hub
        .eventlog
        .commit(
            EDGE,
            vec![
                event(
                    1,
                    EventBody::Synthetic {
                        payload: vec![0; 8],
                    },
                ),
                result_event(2, &id),
            ],
            0,
        )
        .await
        .unwrap();
    assert_eq!(outcome.committed_seq, 2);
    assert_eq!(outcome.command_results.len(), 1);
    assert_eq!(outcome.command_results[0].seq, 2);
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_committed_just_before_the_hub_died_is_recorded_at_its_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let id = hub_that_died_after_committing(dir.path()).await;

    let hub = open(dir.path());
    let before = hub.commands.get(&id).unwrap().unwrap();
    assert_eq!(
        before.status,
        CommandStatus::Delivered,
        "without recovery the command would stay delivered"
    );
    assert_eq!(
        hub.commands.recover_results(&hub.eventlog).await.unwrap(),
        1
    );
    let after = hub.commands.get(&id).unwrap().unwrap();
    assert_eq!(after.status, CommandStatus::Failed);
    assert_eq!(after.detail.as_deref(), Some("adb: device offline"));
    assert_eq!(
        hub.commands.recover_results(&hub.eventlog).await.unwrap(),
        0,
        "a recovered result is not applied again"
    );
    drop(hub);

    let hub = open(dir.path());
    assert_eq!(
        hub.commands.recover_results(&hub.eventlog).await.unwrap(),
        0,
        "nor after another restart"
    );
    assert_eq!(
        hub.commands.get(&id).unwrap().unwrap().status,
        CommandStatus::Failed
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_recorded_while_the_hub_ran_is_not_pending_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let hub = open(dir.path());
    let id = "cmd-0002";
    hub.commands.create(command(id)).await.unwrap();
    let outcome = hub
        .eventlog
        .commit(EDGE, vec![result_event(1, id)], 0)
        .await
        .unwrap();
    hub.commands
        .apply_committed(&hub.eventlog, outcome.command_results)
        .await
        .unwrap();
    assert_eq!(
        hub.commands.get(id).unwrap().unwrap().status,
        CommandStatus::Failed
    );
    assert!(hub.eventlog.unapplied_results().unwrap().is_empty());
    drop(hub);

    let hub = open(dir.path());
    assert!(hub.eventlog.unapplied_results().unwrap().is_empty());
    assert_eq!(
        hub.commands.recover_results(&hub.eventlog).await.unwrap(),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_for_a_command_the_hub_does_not_know_is_dropped_once_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let hub = open(dir.path());
    hub.eventlog
        .commit(EDGE, vec![result_event(1, "cmd-unknown")], 0)
        .await
        .unwrap();
    drop(hub);

    let hub = open(dir.path());
    assert_eq!(
        hub.commands.recover_results(&hub.eventlog).await.unwrap(),
        1
    );
    assert!(hub.eventlog.unapplied_results().unwrap().is_empty());
    assert!(hub.commands.get("cmd-unknown").unwrap().is_none());
}

fn pending_key() -> Vec<u8> {
    [&b"p"[..], EDGE.as_bytes()].concat()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_result_naming_no_result_is_forgotten_and_the_hub_still_starts() {
    let dir = tempfile::tempdir().unwrap();
    let id = hub_that_died_after_committing(dir.path()).await;
    {
        // Damage: the list names event 1, which is no command result, and event 9, which is not
        // in the log, instead of event 2; and half a sequence follows.
        let durable = DurableDb::open(&dir.path().join("db")).unwrap();
        let mut list = [1u64.to_be_bytes(), 9u64.to_be_bytes()].concat();
        list.extend_from_slice(&[0, 0, 0]);
        durable.db().insert(pending_key(), list).unwrap();
        durable.db().flush().unwrap();
    }
    let hub = open(dir.path());
    assert_eq!(
        hub.commands.recover_results(&hub.eventlog).await.unwrap(),
        0
    );
    assert!(hub.eventlog.unapplied_results().unwrap().is_empty());
    assert_eq!(
        hub.commands.get(&id).unwrap().unwrap().status,
        CommandStatus::Delivered,
        "its real entry is gone, so nothing applies it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_marker_of_the_earlier_one_key_per_result_format_is_applied_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let id = hub_that_died_after_committing(dir.path()).await;
    {
        // The store as the hub of 2026-12-07 (afternoon) left it: a key per pending result.
        let durable = DurableDb::open(&dir.path().join("db")).unwrap();
        let db = durable.db();
        db.remove(pending_key()).unwrap();
        let marker = [&b"r"[..], EDGE.as_bytes(), &[0], &2u64.to_be_bytes()].concat();
        db.insert(marker, &[]).unwrap();
        db.insert(b"rx", &[]).unwrap();
        db.flush().unwrap();
    }
    let hub = open(dir.path());
    assert_eq!(
        hub.commands.recover_results(&hub.eventlog).await.unwrap(),
        1
    );
    assert_eq!(
        hub.commands.get(&id).unwrap().unwrap().status,
        CommandStatus::Failed
    );
    assert_eq!(hub.eventlog.durable().db().scan_prefix(b"r").count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_results_applied_leave_one_empty_list_per_edge_and_remove_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let hub = open(dir.path());
    let db = hub.eventlog.durable().db().clone();
    for seq in 1..=200u64 {
        let id = format!("cmd-{seq:04}");
        hub.commands.create(command(&id)).await.unwrap();
        let outcome = hub
            .eventlog
            .commit(EDGE, vec![result_event(seq, &id)], 0)
            .await
            .unwrap();
        assert_eq!(
            db.get(pending_key()).unwrap().unwrap().as_ref(),
            &seq.to_be_bytes(),
            "result {seq} is listed as soon as it is committed"
        );
        hub.commands
            .apply_committed(&hub.eventlog, outcome.command_results)
            .await
            .unwrap();
        assert_eq!(db.get(pending_key()).unwrap().unwrap().len(), 0);
    }
    let keys: Vec<_> = db
        .iter()
        .keys()
        .map(|k| k.unwrap()[0])
        .filter(|first| *first != b'e')
        .collect();
    assert_eq!(keys, vec![b'h', b'p'], "one mark and one list, no markers");
    assert_eq!(
        hub.commands.get("cmd-0200").unwrap().unwrap().status,
        CommandStatus::Failed
    );
}
