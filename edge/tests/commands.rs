//! Command execution on the edge: at most once per id, never after the deadline, results through
//! the outbox, interrupted commands reported after a restart.

#![allow(clippy::unwrap_used)] // In tests a panic is a failed test with its message.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use outpost_edge::CommandRouter;
use outpost_edge::{CommandMark, Outbox, OutboxLimits};
use outpost_edge::{DeviceMsg, DeviceRegistration, EdgeShared};
use outpost_link::{CommandOutcome, CommandRequest, ControlFrame, EventBody};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::sync::mpsc;

/// A device that counts how often it ran an operation.
struct CountingDevice;

impl Actor for CountingDevice {
    type Msg = DeviceMsg;
    type State = Arc<AtomicUsize>;
    type Arguments = Arc<AtomicUsize>;

    async fn pre_start(
        &self,
        _: ActorRef<DeviceMsg>,
        runs: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(runs)
    }

    async fn handle(
        &self,
        _: ActorRef<DeviceMsg>,
        msg: DeviceMsg,
        runs: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let DeviceMsg::Execute { reply, .. } = msg else {
            return Ok(());
        };
        runs.fetch_add(1, Ordering::SeqCst);
        let _ = reply.send(Ok(outpost_command::CommandReply::Relay {
            on: true,
            off_ms: Some(1),
        }));
        Ok(())
    }
}

struct Fixture {
    _registration: DeviceRegistration,
    router: CommandRouter,
    outbox: Outbox,
    runs: Arc<AtomicUsize>,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let limits = OutboxLimits {
        budget_bytes: 1 << 20,
        max_batch: 64,
        compact_above_bytes: u64::MAX,
    };
    let (outbox, _writer, _) = Outbox::open(dir.path(), limits, |_| {}).unwrap();
    let shared = EdgeShared::default();
    let runs = Arc::new(AtomicUsize::new(0));
    let (device, _) = Actor::spawn(None, CountingDevice, runs.clone())
        .await
        .unwrap();
    let registration = shared.register_device("relay-1", "relay", device);
    Fixture {
        _registration: registration,
        router: CommandRouter::new(outbox.clone(), shared),
        outbox,
        runs,
        _dir: dir,
    }
}

fn request(id: &str, device: &str, remaining_ms: u64) -> CommandRequest {
    CommandRequest {
        id: id.into(),
        device: device.into(),
        command: outpost_command::DeviceCommand::Relay(outpost_command::RelayCommand::Cycle(
            Default::default(),
        )),
        remaining_ms,
        issuer: "test".into(),
    }
}

fn results(outbox: &Outbox) -> Vec<(String, CommandOutcome)> {
    outbox
        .read_from(0, 1000, 1 << 20)
        .unwrap()
        .into_iter()
        .filter_map(|e| match e.body {
            EventBody::CommandResult(r) => Some((r.id, r.outcome)),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn the_same_command_delivered_twice_runs_once_and_is_acknowledged_twice() {
    let f = fixture().await;
    let (tx, mut rx) = mpsc::channel(8);
    f.router
        .handle(request("cmd-1", "relay-1", 60_000), tx.clone())
        .await;
    f.router
        .handle(request("cmd-1", "relay-1", 60_000), tx)
        .await;
    assert_eq!(f.runs.load(Ordering::SeqCst), 1);
    assert_eq!(
        results(&f.outbox),
        [("cmd-1".to_owned(), CommandOutcome::Succeeded)]
    );
    for _ in 0..2 {
        assert_eq!(
            rx.recv().await,
            Some(ControlFrame::CommandAccepted { id: "cmd-1".into() })
        );
    }
}

#[tokio::test]
async fn an_expired_command_is_not_run() {
    let f = fixture().await;
    let (tx, _rx) = mpsc::channel(8);
    f.router.handle(request("cmd-2", "relay-1", 0), tx).await;
    assert_eq!(f.runs.load(Ordering::SeqCst), 0);
    assert_eq!(
        results(&f.outbox),
        [("cmd-2".to_owned(), CommandOutcome::Expired)]
    );
}

#[tokio::test]
async fn a_command_for_a_device_that_is_not_running_is_rejected() {
    let f = fixture().await;
    let (tx, _rx) = mpsc::channel(8);
    f.router
        .handle(request("cmd-3", "tv-404", 60_000), tx)
        .await;
    assert_eq!(
        results(&f.outbox),
        [("cmd-3".to_owned(), CommandOutcome::Rejected)]
    );
}

#[tokio::test]
async fn a_command_running_when_the_edge_stopped_is_reported_interrupted_and_not_rerun() {
    let f = fixture().await;
    f.outbox
        .mark_command("cmd-4", CommandMark::Started)
        .await
        .unwrap();
    f.router.recover().await;
    assert_eq!(
        results(&f.outbox),
        [("cmd-4".to_owned(), CommandOutcome::Interrupted)]
    );
    let (tx, _rx) = mpsc::channel(8);
    f.router
        .handle(request("cmd-4", "relay-1", 60_000), tx)
        .await;
    assert_eq!(
        f.runs.load(Ordering::SeqCst),
        0,
        "never run after an interruption"
    );
    f.router.recover().await;
    assert_eq!(results(&f.outbox).len(), 1, "reported once");
}
