//! The live stream (`GET /api/v1/stream`, Server-Sent Events): committed events as people read
//! them, device state changes, filed figures, command results (they are events) and alerts.
//!
//! Each item gets an id `<epoch>-<n>`: `epoch` names this hub process, `n` counts up without
//! gaps. The last [`RING`] items are kept, so a subscriber that reconnects with `Last-Event-ID`
//! gets exactly what it missed. When that cannot be done (the hub restarted, or the subscriber
//! fell further behind than the ring), it gets a `reset` item first: refetch state through the
//! REST API, then carry on with the live items.
//!
//! Invariants: items are published in one order and every subscriber sees them in that order; a
//! subscriber never sees a gap without a `reset` before it; publishing never waits for a
//! subscriber (a slow one is cut off with a `reset`, not waited for).

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use outpost_actors::{ChildSpec, OwnedTask, Restart};
use outpost_domain::projection::Change;
use outpost_domain::site::Floor;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde::Serialize;
use tokio::sync::broadcast;

use crate::edges::EdgeDirectory;
use crate::eventlog::EventLog;

/// Items kept for subscribers that reconnect.
pub const RING: usize = 10_000;

/// One item of the stream.
#[derive(Debug, Clone, Serialize)]
pub struct StreamItem {
    /// `<epoch>-<n>`.
    pub id: String,
    #[serde(skip)]
    pub n: u64,
    /// `event`, `device`, `figures`, `alert` or `reset`.
    pub kind: &'static str,
    pub edge: String,
    pub device: String,
    /// For `event` items, the event's `type`.
    #[serde(skip)]
    pub event_type: String,
    /// The JSON payload.
    #[serde(skip)]
    pub data: Arc<str>,
}

/// The stream's publisher and its memory.
pub struct LiveStream {
    epoch: u64,
    inner: Mutex<Inner>,
    tx: broadcast::Sender<StreamItem>,
}

struct Inner {
    next: u64,
    ring: VecDeque<StreamItem>,
}

impl std::fmt::Debug for LiveStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveStream")
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

/// Where a subscriber starts.
pub struct Subscription {
    /// Items it missed, to send first.
    pub replay: Vec<StreamItem>,
    /// Whether it must be told to refetch state (it asked for a place the stream no longer has).
    pub reset: bool,
    pub live: broadcast::Receiver<StreamItem>,
}

impl LiveStream {
    pub fn new(epoch: u64) -> Self {
        let (tx, _) = broadcast::channel(RING);
        Self {
            epoch,
            inner: Mutex::new(Inner {
                next: 1,
                ring: VecDeque::with_capacity(RING),
            }),
            tx,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Publishes one item.
    pub fn publish(
        &self,
        kind: &'static str,
        edge: &str,
        device: &str,
        event_type: &str,
        data: &impl Serialize,
    ) {
        let data: Arc<str> = match serde_json::to_string(data) {
            Ok(text) => text.into(),
            Err(err) => {
                tracing::error!(%err, kind, "stream item does not serialise; not published");
                return;
            }
        };
        let mut inner = self.lock();
        let n = inner.next;
        inner.next += 1;
        let item = StreamItem {
            id: format!("{}-{n}", self.epoch),
            n,
            kind,
            edge: edge.to_owned(),
            device: device.to_owned(),
            event_type: event_type.to_owned(),
            data,
        };
        if inner.ring.len() >= RING {
            inner.ring.pop_front();
        }
        inner.ring.push_back(item.clone());
        // Sent under the lock, so a subscription made under it sees each item once: in its replay
        // or live, never both and never neither.
        let _ = self.tx.send(item);
    }

    /// Subscribes after `last_event_id` (from `Last-Event-ID`), or from now.
    pub fn subscribe(&self, last_event_id: Option<&str>) -> Subscription {
        let inner = self.lock();
        let live = self.tx.subscribe();
        let Some(last) = last_event_id else {
            return Subscription {
                replay: Vec::new(),
                reset: false,
                live,
            };
        };
        let resumable = last
            .split_once('-')
            .and_then(|(epoch, n)| Some((epoch.parse::<u64>().ok()?, n.parse::<u64>().ok()?)))
            .filter(|(epoch, n)| {
                *epoch == self.epoch
                    && *n < inner.next
                    && inner.ring.front().is_none_or(|first| *n + 1 >= first.n)
            });
        match resumable {
            Some((_, n)) => Subscription {
                replay: inner.ring.iter().filter(|i| i.n > n).cloned().collect(),
                reset: false,
                live,
            },
            None => Subscription {
                replay: Vec::new(),
                reset: true,
                live,
            },
        }
    }

    /// The id a `reset` item carries: the last published, so a resume from it works.
    pub fn last_id(&self) -> String {
        format!("{}-{}", self.epoch, self.lock().next - 1)
    }
}

/// What the stream actor needs.
#[derive(Clone)]
pub struct StreamArgs {
    pub stream: Arc<LiveStream>,
    pub eventlog: EventLog,
    pub floor: Floor,
    pub edges: EdgeDirectory,
    pub changes: broadcast::Sender<Change>,
}

impl StreamArgs {
    pub fn child_spec(self) -> ChildSpec {
        ChildSpec::new("stream", move || (StreamActor, self.clone())).restart(Restart::Permanent)
    }
}

/// Follows the event log (from its head when it starts) and the projections' changes, and
/// publishes both.
pub struct StreamActor;

pub struct StreamState {
    _events: OwnedTask,
    _changes: OwnedTask,
}

impl Actor for StreamActor {
    type Msg = ();
    type State = StreamState;
    type Arguments = StreamArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        let events = {
            let args = args.clone();
            let mut commits = args.eventlog.subscribe_commits();
            let mut seen: BTreeMap<String, u64> =
                args.eventlog.committed_marks().into_iter().collect();
            OwnedTask::ending_owner(myself.clone(), async move {
                loop {
                    for (edge, committed) in args.eventlog.committed_marks() {
                        let from = seen.get(&edge).copied().unwrap_or(0);
                        if committed <= from {
                            continue;
                        }
                        let mut at = from;
                        while at < committed {
                            let batch = match args.eventlog.read(&edge, at + 1, 1024) {
                                Ok(batch) if !batch.is_empty() => batch,
                                Ok(_) => break,
                                Err(err) => return Some(format!("stream: {err}")),
                            };
                            for stored in &batch {
                                let readable =
                                    outpost_domain::readable::readable(&args.floor, &edge, stored);
                                args.stream.publish(
                                    "event",
                                    &edge,
                                    &readable.device,
                                    readable.what.type_name(),
                                    &readable,
                                );
                                at = stored.event.seq;
                            }
                        }
                        seen.insert(edge, at);
                    }
                    tokio::select! {
                        changed = commits.changed() => if changed.is_err() { return None },
                        () = tokio::time::sleep(Duration::from_millis(500)) => {}
                    }
                }
            })
        };
        let changes = {
            let mut rx = args.changes.subscribe();
            let args = args.clone();
            OwnedTask::ending_owner(myself, async move {
                loop {
                    match rx.recv().await {
                        Ok(change) => publish_change(&args, change),
                        Err(broadcast::error::RecvError::Lagged(missed)) => {
                            tracing::warn!(missed, "stream fell behind the projections' changes");
                        }
                        Err(broadcast::error::RecvError::Closed) => return None,
                    }
                }
            })
        };
        Ok(StreamState {
            _events: events,
            _changes: changes,
        })
    }
}

fn publish_change(args: &StreamArgs, change: Change) {
    match change {
        Change::Device(state) => {
            let kind = args
                .edges
                .get(&state.edge)
                .and_then(|e| e.devices.into_iter().find(|d| d.id == state.device))
                .map(|d| d.kind)
                .unwrap_or_default();
            let summary = crate::floor_api::summarize(
                &args.floor,
                &state.edge,
                &state.device,
                &kind,
                Some(&state),
            );
            args.stream
                .publish("device", &state.edge, &state.device, "", &summary);
        }
        Change::Bucket {
            edge,
            device,
            bucket,
        } => {
            let view = crate::floor_api::hour_view(&args.floor, &edge, &device, &bucket);
            args.stream.publish("figures", &edge, &device, "", &view);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn publish(stream: &LiveStream, n: usize) {
        for i in 0..n {
            stream.publish("event", "edge-1", "egm-1", "sas.bill", &i);
        }
    }

    #[test]
    fn a_subscriber_that_reconnects_gets_exactly_what_it_missed() {
        let stream = LiveStream::new(7);
        publish(&stream, 5);
        let sub = stream.subscribe(Some("7-2"));
        assert!(!sub.reset);
        let ids: Vec<&str> = sub.replay.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(ids, ["7-3", "7-4", "7-5"]);
    }

    #[test]
    fn a_place_the_stream_no_longer_has_means_reset() {
        let stream = LiveStream::new(7);
        publish(&stream, RING + 10);
        assert!(stream.subscribe(Some("7-3")).reset, "fell out of the ring");
        assert!(stream.subscribe(Some("6-3")).reset, "another hub process");
        assert!(
            stream.subscribe(Some("7-99999999")).reset,
            "from the future"
        );
        assert!(stream.subscribe(Some("garbage")).reset);
        let at_edge = format!("7-{}", 10);
        assert!(
            !stream.subscribe(Some(&at_edge)).reset,
            "the oldest kept is reachable"
        );
    }

    #[tokio::test]
    async fn live_items_follow_the_replay_without_a_gap_or_a_repeat() {
        let stream = LiveStream::new(1);
        publish(&stream, 3);
        let mut sub = stream.subscribe(Some("1-1"));
        publish(&stream, 2);
        let mut ns: Vec<u64> = sub.replay.iter().map(|i| i.n).collect();
        while let Ok(item) = sub.live.try_recv() {
            ns.push(item.n);
        }
        assert_eq!(ns, [2, 3, 4, 5]);
    }
}
