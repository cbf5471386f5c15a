//! The device index: every event of a device is found, across block boundaries, after a restore,
//! and applying an event twice changes nothing.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use outpost_domain::StoredEvent;
use outpost_domain::projection::{BLOCK_SEQS, DeviceEventsProjection, Projection, block_seqs};
use outpost_link::{Event, EventBody, EventClass};

fn event(seq: u64, device: &str) -> StoredEvent {
    StoredEvent {
        event: Event {
            seq,
            device: device.into(),
            class: EventClass::Telemetry,
            wall_us: 0,
            mono_us: 0,
            boot_id: 1,
            body: EventBody::Shed,
        },
        hub_received_us: 0,
        clock_offset_ms: 0,
    }
}

/// Applies `seqs` (device by parity), flushing every `flush_every`, into `store`.
fn run(
    projection: &mut DeviceEventsProjection,
    seqs: impl Iterator<Item = u64>,
    flush_every: usize,
    store: &mut BTreeMap<Vec<u8>, Vec<u8>>,
) {
    let mut changes = Vec::new();
    for (i, seq) in seqs.enumerate() {
        let device = if seq % 2 == 0 { "tv-even" } else { "tv-odd" };
        projection
            .apply("edge-1", 0, &event(seq, device), &mut changes)
            .unwrap();
        if (i + 1) % flush_every == 0 {
            let mut writes = Vec::new();
            projection.flush(&mut writes);
            store.extend(writes);
        }
    }
    let mut writes = Vec::new();
    projection.flush(&mut writes);
    store.extend(writes);
}

fn indexed(store: &BTreeMap<Vec<u8>, Vec<u8>>, device: &str) -> Vec<u64> {
    let prefix = [&b"i"[..], b"edge-1\0", device.as_bytes(), b"\0"].concat();
    store
        .iter()
        .filter(|(k, _)| k.starts_with(&prefix))
        .flat_map(|(_, v)| block_seqs(v).collect::<Vec<_>>())
        .collect()
}

#[test]
fn every_event_is_indexed_across_blocks_whatever_the_flush_rhythm() {
    let last = BLOCK_SEQS * 3 + 17;
    for flush_every in [1, 7, 1000, 100_000] {
        let mut store = BTreeMap::new();
        run(
            &mut DeviceEventsProjection::default(),
            1..=last,
            flush_every,
            &mut store,
        );
        let odd: Vec<u64> = (1..=last).filter(|s| s % 2 == 1).collect();
        let even: Vec<u64> = (1..=last).filter(|s| s % 2 == 0).collect();
        assert_eq!(indexed(&store, "tv-odd"), odd, "flush every {flush_every}");
        assert_eq!(
            indexed(&store, "tv-even"),
            even,
            "flush every {flush_every}"
        );
    }
}

#[test]
fn a_restored_index_continues_and_a_replay_changes_nothing() {
    let mut store = BTreeMap::new();
    run(
        &mut DeviceEventsProjection::default(),
        1..=700,
        50,
        &mut store,
    );
    let mut restored = DeviceEventsProjection::default();
    for (k, v) in &store {
        restored.restore(k, v).unwrap();
    }
    let before = store.clone();
    run(&mut restored, 1..=700, 50, &mut store);
    assert_eq!(store, before, "the same events again store the same bytes");
    run(&mut restored, 701..=1300, 50, &mut store);
    assert_eq!(
        indexed(&store, "tv-odd").len() + indexed(&store, "tv-even").len(),
        1300
    );
}
