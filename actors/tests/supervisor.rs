//! Supervisor behaviour: restarts with backoff, escalation, strategies, clean stops, shutdown.

#![allow(clippy::unwrap_used)] // In tests a panic is a failed test with its message.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use outpost_actors::{
    Backoff, ChildInfo, ChildSpec, Intensity, PLANNED_RESTART, Readiness, RestartPolicy, Strategy,
    Supervisor, SupervisorMsg, SupervisorSpec,
};
use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};
use tokio::sync::mpsc;

type Log = Arc<Mutex<Vec<String>>>;

/// A child that logs its starts and stops and fails on request.
struct Worker;

#[derive(Clone)]
struct WorkerArgs {
    name: &'static str,
    log: Log,
    starts: Arc<AtomicUsize>,
    /// This many starts fail in pre_start before one succeeds.
    failing_starts: Arc<AtomicUsize>,
}

enum WorkerMsg {
    Panic,
    Fail,
    StopCleanly,
    PlannedRestart,
}

impl Actor for Worker {
    type Msg = WorkerMsg;
    type State = WorkerArgs;
    type Arguments = WorkerArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<WorkerMsg>,
        args: WorkerArgs,
    ) -> Result<WorkerArgs, ActorProcessingErr> {
        args.starts.fetch_add(1, Ordering::SeqCst);
        let left = args.failing_starts.load(Ordering::SeqCst);
        if left > 0 {
            args.failing_starts.store(left - 1, Ordering::SeqCst);
            return Err("device not answering".into());
        }
        args.log
            .lock()
            .unwrap()
            .push(format!("start {}", args.name));
        Ok(args)
    }

    async fn handle(
        &self,
        myself: ActorRef<WorkerMsg>,
        msg: WorkerMsg,
        _state: &mut WorkerArgs,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            WorkerMsg::Panic => panic!("worker panicked on purpose"),
            WorkerMsg::Fail => Err("serial line answered garbage".into()),
            WorkerMsg::StopCleanly => {
                myself.stop(Some("done".into()));
                Ok(())
            }
            WorkerMsg::PlannedRestart => {
                myself.stop(Some(format!("{PLANNED_RESTART}compaction")));
                Ok(())
            }
        }
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<WorkerMsg>,
        state: &mut WorkerArgs,
    ) -> Result<(), ActorProcessingErr> {
        state
            .log
            .lock()
            .unwrap()
            .push(format!("stop {}", state.name));
        Ok(())
    }
}

struct Family {
    log: Log,
    starts: Vec<Arc<AtomicUsize>>,
    failing: Vec<Arc<AtomicUsize>>,
    readiness: Readiness,
}

fn policy(initial_ms: u64, max_restarts: u32) -> RestartPolicy {
    RestartPolicy {
        backoff: Backoff {
            initial: Duration::from_millis(initial_ms),
            max: Duration::from_secs(5),
            multiplier: 2.0,
            jitter: 0.0,
        },
        intensity: Intensity {
            max_restarts,
            within: Duration::from_secs(10),
        },
        stable_after: Duration::from_secs(60),
        shutdown_timeout: Duration::from_secs(2),
    }
}

fn family(
    sup_name: &str,
    names: &[&'static str],
    strategy: Strategy,
    policy: RestartPolicy,
) -> (SupervisorSpec, Family) {
    let log: Log = Arc::default();
    let readiness = Readiness::new();
    let mut starts = Vec::new();
    let mut failing = Vec::new();
    let children = names
        .iter()
        .map(|name| {
            let args = WorkerArgs {
                name,
                log: log.clone(),
                starts: Arc::default(),
                failing_starts: Arc::default(),
            };
            starts.push(args.starts.clone());
            failing.push(args.failing_starts.clone());
            ChildSpec::new(*name, move || (Worker, args.clone()))
        })
        .collect();
    let spec = SupervisorSpec {
        name: sup_name.to_owned(),
        strategy,
        policy,
        children,
        readiness: readiness.clone(),
    };
    (
        spec,
        Family {
            log,
            starts,
            failing,
            readiness,
        },
    )
}

async fn children(sup: &ActorRef<SupervisorMsg>) -> Vec<ChildInfo> {
    ractor::call!(sup, SupervisorMsg::Children).unwrap()
}

async fn child(sup: &ActorRef<SupervisorMsg>, index: usize) -> ActorRef<WorkerMsg> {
    children(sup).await[index]
        .cell
        .clone()
        .expect("child is running")
        .into()
}

/// Waits until child `index` runs again as a different actor than `old`, or panics after 3 s.
async fn wait_for_new_child(
    sup: &ActorRef<SupervisorMsg>,
    index: usize,
    old: ractor::ActorId,
) -> ActorRef<WorkerMsg> {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        if let Some(cell) = &children(sup).await[index].cell
            && cell.get_id() != old
        {
            return cell.clone().into();
        }
        assert!(Instant::now() < deadline, "child {index} did not come back");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A parent that reports its child supervisor's fate.
struct Probe;

impl Actor for Probe {
    type Msg = ();
    type State = mpsc::UnboundedSender<String>;
    type Arguments = mpsc::UnboundedSender<String>;

    async fn pre_start(
        &self,
        _myself: ActorRef<()>,
        tx: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(tx)
    }

    async fn handle_supervisor_evt(
        &self,
        _myself: ActorRef<()>,
        event: SupervisionEvent,
        tx: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let line = match event {
            SupervisionEvent::ActorFailed(_, err) => format!("failed: {err}"),
            SupervisionEvent::ActorTerminated(_, _, reason) => format!("terminated: {reason:?}"),
            _ => return Ok(()),
        };
        let _ = tx.send(line);
        Ok(())
    }
}

#[tokio::test]
async fn panicking_child_comes_back_after_its_backoff() {
    let (spec, fam) = family("t-panic", &["egm-1"], Strategy::OneForOne, policy(300, 5));
    let (sup, _) = Actor::spawn(None, Supervisor, spec).await.unwrap();
    let first = child(&sup, 0).await;
    let crashed_at = Instant::now();
    first.send_message(WorkerMsg::Panic).unwrap();

    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        children(&sup).await[0].cell.is_none(),
        "restarted before its backoff"
    );
    assert!(!fam.readiness.is_ready(), "ready while a child is down");

    let second = wait_for_new_child(&sup, 0, first.get_id()).await;
    assert!(crashed_at.elapsed() >= Duration::from_millis(300));
    assert_eq!(fam.starts[0].load(Ordering::SeqCst), 2);
    assert_eq!(children(&sup).await[0].restarts, 1);
    assert!(fam.readiness.is_ready());
    // The new incarnation works.
    second.send_message(WorkerMsg::StopCleanly).unwrap();
    sup.stop_and_wait(None, None).await.unwrap();
}

#[tokio::test]
async fn child_returning_an_error_is_restarted_and_counted_in_metrics() {
    let (spec, _fam) = family("t-metrics", &["tv-3"], Strategy::OneForOne, policy(10, 5));
    let (sup, _) = Actor::spawn(None, Supervisor, spec).await.unwrap();
    let first = child(&sup, 0).await;
    first.send_message(WorkerMsg::Fail).unwrap();
    wait_for_new_child(&sup, 0, first.get_id()).await;

    let text = outpost_actors::metrics::render();
    assert!(
        text.contains("outpost_actor_restarts_total{actor=\"t-metrics/tv-3\"} 1"),
        "{text}"
    );
    assert!(text.contains("outpost_actor_up{actor=\"t-metrics/tv-3\"} 1"));
    sup.stop_and_wait(None, None).await.unwrap();
}

#[tokio::test]
async fn child_that_keeps_failing_escalates_to_its_parent() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (probe, _) = Actor::spawn(None, Probe, tx).await.unwrap();
    let (spec, fam) = family(
        "t-escalate",
        &["relay-1", "relay-2"],
        Strategy::OneForOne,
        policy(5, 3),
    );
    // relay-1 never manages to start.
    fam.failing[0].store(usize::MAX, Ordering::SeqCst);
    let (sup, handle) = Actor::spawn_linked(None, Supervisor, spec, probe.get_cell())
        .await
        .unwrap();

    let event = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("supervisor escalated in time")
        .unwrap();
    assert!(event.starts_with("failed: "), "{event}");
    assert!(event.contains("restarts within"), "{event}");
    assert!(event.contains("t-escalate/relay-1"), "{event}");
    handle.await.unwrap();
    assert_eq!(sup.get_status(), ractor::ActorStatus::Stopped);
    // 1 initial start + 3 restarts allowed; the 4th failure escalates.
    assert_eq!(fam.starts[0].load(Ordering::SeqCst), 4);
    // The healthy sibling was stopped cleanly on the way out.
    assert!(fam.log.lock().unwrap().contains(&"stop relay-2".to_owned()));
    probe.stop(None);
}

#[tokio::test]
async fn child_failing_to_start_is_retried_until_it_starts() {
    let (spec, fam) = family(
        "t-startfail",
        &["egm-9"],
        Strategy::OneForOne,
        policy(10, 10),
    );
    fam.failing[0].store(2, Ordering::SeqCst);
    let (sup, _) = Actor::spawn(None, Supervisor, spec).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    while children(&sup).await[0].cell.is_none() {
        assert!(Instant::now() < deadline, "never started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(fam.starts[0].load(Ordering::SeqCst), 3);
    assert_eq!(children(&sup).await[0].restarts, 2);
    sup.stop_and_wait(None, None).await.unwrap();
}

#[tokio::test]
async fn one_for_one_leaves_siblings_untouched() {
    let (spec, fam) = family(
        "t-ofo",
        &["a", "b", "c"],
        Strategy::OneForOne,
        policy(10, 5),
    );
    let (sup, _) = Actor::spawn(None, Supervisor, spec).await.unwrap();
    let before: Vec<_> = children(&sup)
        .await
        .iter()
        .map(|c| c.cell.as_ref().unwrap().get_id())
        .collect();
    child(&sup, 1).await.send_message(WorkerMsg::Panic).unwrap();
    wait_for_new_child(&sup, 1, before[1]).await;

    let after: Vec<_> = children(&sup)
        .await
        .iter()
        .map(|c| c.cell.as_ref().unwrap().get_id())
        .collect();
    assert_eq!(after[0], before[0]);
    assert_eq!(after[2], before[2]);
    let starts: Vec<usize> = fam
        .starts
        .iter()
        .map(|s| s.load(Ordering::SeqCst))
        .collect();
    assert_eq!(starts, [1, 2, 1]);
    sup.stop_and_wait(None, None).await.unwrap();
}

#[tokio::test]
async fn rest_for_one_restarts_younger_siblings_in_order() {
    let (spec, fam) = family(
        "t-rfo",
        &["a", "b", "c"],
        Strategy::RestForOne,
        policy(10, 5),
    );
    let (sup, _) = Actor::spawn(None, Supervisor, spec).await.unwrap();
    let a_before = child(&sup, 0).await.get_id();
    let c_before = child(&sup, 2).await.get_id();
    fam.log.lock().unwrap().clear();

    child(&sup, 1).await.send_message(WorkerMsg::Fail).unwrap();
    wait_for_new_child(&sup, 2, c_before).await;

    assert_eq!(*fam.log.lock().unwrap(), ["stop c", "start b", "start c"]);
    assert_eq!(
        child(&sup, 0).await.get_id(),
        a_before,
        "older sibling untouched"
    );
    sup.stop_and_wait(None, None).await.unwrap();
}

#[tokio::test]
async fn clean_stop_is_not_restarted() {
    let (spec, fam) = family("t-clean", &["a", "b"], Strategy::OneForOne, policy(10, 5));
    let (sup, _) = Actor::spawn(None, Supervisor, spec).await.unwrap();
    child(&sup, 0)
        .await
        .send_message(WorkerMsg::StopCleanly)
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    let now = children(&sup).await;
    assert!(now[0].cell.is_none());
    assert_eq!(now[0].restarts, 0);
    assert_eq!(fam.starts[0].load(Ordering::SeqCst), 1);
    // A finished child does not hold readiness down.
    assert!(fam.readiness.is_ready());
    assert!(!fam.readiness.snapshot().contains_key("t-clean/a"));
    sup.stop_and_wait(None, None).await.unwrap();
}

#[tokio::test]
async fn stopping_the_supervisor_stops_children_youngest_first() {
    let (spec, fam) = family(
        "t-shutdown",
        &["a", "b", "c"],
        Strategy::OneForOne,
        policy(10, 5),
    );
    let (sup, _) = Actor::spawn(None, Supervisor, spec).await.unwrap();
    // Children start in post_start; a call is answered only after it.
    assert_eq!(children(&sup).await.len(), 3);
    fam.log.lock().unwrap().clear();
    sup.stop_and_wait(None, Some(Duration::from_secs(5)))
        .await
        .unwrap();
    assert_eq!(*fam.log.lock().unwrap(), ["stop c", "stop b", "stop a"]);
    assert!(fam.readiness.snapshot().is_empty());
}

#[tokio::test]
async fn nested_supervisor_restarts_its_own_children_without_bothering_the_parent() {
    let (inner, fam) = family(
        "t-nest/devices",
        &["egm-1"],
        Strategy::OneForOne,
        policy(10, 5),
    );
    let root = SupervisorSpec {
        name: "t-nest".into(),
        strategy: Strategy::OneForOne,
        policy: policy(10, 5),
        children: vec![ChildSpec::supervisor(inner)],
        readiness: fam.readiness.clone(),
    };
    let (sup, _) = Actor::spawn(None, Supervisor, root).await.unwrap();
    let devices: ActorRef<SupervisorMsg> = children(&sup).await[0].cell.clone().unwrap().into();
    let first = child(&devices, 0).await;
    first.send_message(WorkerMsg::Panic).unwrap();
    wait_for_new_child(&devices, 0, first.get_id()).await;
    assert_eq!(children(&sup).await[0].restarts, 0);
    let ready = fam.readiness.snapshot();
    // Paths without repeated segments: the nested supervisor's name is its path already.
    assert_eq!(ready.get("t-nest/devices"), Some(&true));
    assert_eq!(ready.get("t-nest/t-nest/devices"), None);
    assert_eq!(ready.get("t-nest/devices/egm-1"), Some(&true));
    sup.stop_and_wait(None, None).await.unwrap();
}

#[tokio::test]
async fn a_child_asking_for_a_planned_restart_right_after_starting_is_paced_not_spun() {
    let (spec, _fam) = family("t-paced", &["a"], Strategy::OneForOne, policy(1000, 2));
    let (sup, _) = Actor::spawn(None, Supervisor, spec).await.unwrap();
    let started = Instant::now();
    for _ in 0..4 {
        let a = child(&sup, 0).await;
        let before = a.get_id();
        a.send_message(WorkerMsg::PlannedRestart).unwrap();
        wait_for_new_child(&sup, 0, before).await;
    }
    let pace = outpost_actors::supervisor::PLANNED_RESTART_PACE;
    assert!(
        started.elapsed() >= pace * 3,
        "four restarts asked at once took {:?}",
        started.elapsed()
    );
    assert_eq!(children(&sup).await[0].restarts, 0, "still not a failure");
    sup.stop_and_wait(None, None).await.unwrap();
}

#[tokio::test]
async fn planned_restarts_are_immediate_and_never_escalate() {
    // Backoff 1 s and at most 2 restarts in 10 s: twenty failures would escalate and take seconds.
    let (spec, fam) = family(
        "t-planned",
        &["a", "b"],
        Strategy::RestForOne,
        policy(1000, 2),
    );
    let (sup, _) = Actor::spawn(None, Supervisor, spec).await.unwrap();
    let mut waited = Duration::ZERO;
    for _ in 0..20 {
        let a = child(&sup, 0).await;
        let b_before = child(&sup, 1).await.get_id();
        // A child that ran a while: its planned restart is immediate (no pace, no backoff).
        tokio::time::sleep(outpost_actors::supervisor::PLANNED_RESTART_PACE).await;
        let asked = Instant::now();
        a.send_message(WorkerMsg::PlannedRestart).unwrap();
        wait_for_new_child(&sup, 1, b_before).await;
        waited += asked.elapsed();
    }
    assert!(
        waited < Duration::from_secs(2),
        "no backoff: {waited:?} for 20 restarts"
    );
    let now = children(&sup).await;
    assert_eq!(now[0].restarts, 0, "not counted as a failure");
    assert_eq!(fam.starts[0].load(Ordering::SeqCst), 21);
    assert_eq!(
        fam.starts[1].load(Ordering::SeqCst),
        21,
        "the younger sibling restarted too"
    );
    assert!(fam.readiness.is_ready());
    sup.stop_and_wait(None, None).await.unwrap();
}
