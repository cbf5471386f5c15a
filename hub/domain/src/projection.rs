//! The hub's projections as pure state machines over the event log.
//!
//! A projection takes each edge's events in sequence order ([`Projection::apply`]) and says what
//! to store ([`Projection::flush`]: key → value, in its own keyspace) and what changed for live
//! subscribers ([`Change`]). The hub's runner keeps the cursor (the last sequence applied per
//! edge) and stores it in the same atomic batch as the projection's writes, so after a crash the
//! projection resumes exactly after what it stored.
//!
//! Invariants: `apply` of an event at or below what the projection already applied for its
//! device changes nothing; the stored bytes are a function of the events alone (maps are ordered,
//! encodings fixed), so a rebuild from the log gives identical bytes; a projection that cannot
//! apply an event says why ([`Poison`]) and stays usable for the next one.

use std::collections::BTreeMap;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::StoredEvent;
use crate::accounting::{Bucket, MachineBook, ManualReading};
use crate::devices::{DeviceState, DeviceStates};
use crate::site::Floor;

/// What changed, for live subscribers.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Device(Box<DeviceState>),
    /// A machine's hour bucket after an interval was filed in it.
    Bucket {
        edge: String,
        device: String,
        bucket: Box<Bucket>,
    },
}

// Keys a projection may not use: the hub's runner keeps `v` (version), `c` (cursors) and `p`
// (poison events) in the same tree.

/// Why a projection could not apply an event (it goes on with the next one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Poison(pub String);

/// A stored value that does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("projection {projection}: stored value under {key} does not decode: {reason}")]
pub struct RestoreError {
    pub projection: &'static str,
    pub key: String,
    pub reason: String,
}

/// A projection of the event log.
pub trait Projection: Send + 'static {
    /// Its name: the `projection` label, the CLI's argument, its keyspace.
    fn name(&self) -> &'static str;
    /// The format of what it stores: bump it when that changes, and the hub rebuilds the
    /// projection from the log instead of misreading it.
    fn version(&self) -> u32 {
        1
    }
    /// Takes back one stored entry at start-up.
    fn restore(&mut self, key: &[u8], value: &[u8]) -> Result<(), RestoreError>;
    /// Applies one event of `edge`. `missing_before`: sequence numbers lost just before it (a gap
    /// the hub logged when it committed the event).
    fn apply(
        &mut self,
        edge: &str,
        missing_before: u64,
        event: &StoredEvent,
        changes: &mut Vec<Change>,
    ) -> Result<(), Poison>;
    /// What to store since the last flush.
    fn flush(&mut self, writes: &mut Vec<(Vec<u8>, Vec<u8>)>);
    /// Applies a reading entered by hand for `device` of `edge`, at the projection's place in
    /// that edge's log (the runner records the place, so a rebuild applies it there again).
    /// `stored` reads the projection's stored value under a key. Most projections ignore it.
    fn apply_manual(
        &mut self,
        _edge: &str,
        _device: &str,
        _entry: &ManualReading,
        _stored: &dyn Fn(&[u8]) -> Option<Vec<u8>>,
        _changes: &mut Vec<Change>,
    ) -> Result<(), Poison> {
        Ok(())
    }
}

fn config() -> bincode::config::Configuration<bincode::config::BigEndian> {
    bincode::config::standard().with_big_endian()
}

/// Encodes a stored value.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    bincode::serde::encode_to_vec(value, config()).unwrap_or_default()
}

/// Decodes a stored value.
pub fn decode<T: DeserializeOwned>(
    projection: &'static str,
    key: &[u8],
    bytes: &[u8],
) -> Result<T, RestoreError> {
    bincode::serde::decode_from_slice(bytes, config())
        .map(|(v, _)| v)
        .map_err(|e| RestoreError {
            projection,
            key: String::from_utf8_lossy(key).into_owned(),
            reason: e.to_string(),
        })
}

/// `tag ++ edge ++ 0 ++ device`: edge and device ids never contain NUL (config validates ids).
pub fn device_key(tag: u8, edge: &str, device: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(edge.len() + device.len() + 2);
    key.push(tag);
    key.extend_from_slice(edge.as_bytes());
    key.push(0);
    key.extend_from_slice(device.as_bytes());
    key
}

/// A signed time as a key part that sorts in time order.
pub fn time_key(us: i64) -> [u8; 8] {
    ((us as u64) ^ (1 << 63)).to_be_bytes()
}

/// The time in a key part made by [`time_key`].
pub fn time_from_key(bytes: [u8; 8]) -> i64 {
    (u64::from_be_bytes(bytes) ^ (1 << 63)) as i64
}

/// Every device's state as last stored, shared with readers (the API) so they need not decode
/// the store on each request.
pub type SharedStates = std::sync::Arc<std::sync::RwLock<BTreeMap<(String, String), DeviceState>>>;

/// Device state: `d ++ edge ++ 0 ++ device` → [`DeviceState`].
#[derive(Debug, Default)]
pub struct DevicesProjection {
    pub states: DeviceStates,
    shared: Option<SharedStates>,
    reported: Option<crate::site::ReportedDenominations>,
}

impl DevicesProjection {
    /// A projection that also keeps `shared` up to date with what it stores, and `reported` with
    /// the denominations machines report.
    pub fn sharing(
        shared: SharedStates,
        reported: Option<crate::site::ReportedDenominations>,
    ) -> Self {
        Self {
            states: DeviceStates::default(),
            shared: Some(shared),
            reported,
        }
    }

    fn share(&self, state: &DeviceState) {
        if let Some(shared) = &self.shared {
            shared
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert((state.edge.clone(), state.device.clone()), state.clone());
        }
        if let Some(reported) = &self.reported
            && let Some(cents) = state
                .egm
                .as_ref()
                .and_then(|e| e.identity.as_ref())
                .and_then(|i| i.denomination_cents)
        {
            reported
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert((state.edge.clone(), state.device.clone()), cents);
        }
    }
}

pub const DEVICES: &str = "devices";
pub const ACCOUNTING: &str = "accounting";
pub const DEVICE_EVENTS: &str = "device-events";
pub const HANDPAYS: &str = "handpays";

/// The names of every projection, in the order the hub runs them.
pub const NAMES: [&str; 4] = [DEVICES, ACCOUNTING, DEVICE_EVENTS, HANDPAYS];

impl Projection for DevicesProjection {
    fn name(&self) -> &'static str {
        DEVICES
    }

    /// 2: what a machine says about itself (LP 1F).
    fn version(&self) -> u32 {
        2
    }

    fn restore(&mut self, key: &[u8], value: &[u8]) -> Result<(), RestoreError> {
        if key.first() == Some(&b'd') {
            let state: DeviceState = decode(DEVICES, key, value)?;
            self.share(&state);
            self.states.restore(state);
        }
        Ok(())
    }

    fn apply(
        &mut self,
        edge: &str,
        _missing_before: u64,
        event: &StoredEvent,
        changes: &mut Vec<Change>,
    ) -> Result<(), Poison> {
        if let Some(state) = self.states.apply(edge, event) {
            changes.push(Change::Device(Box::new(state.clone())));
        }
        Ok(())
    }

    fn flush(&mut self, writes: &mut Vec<(Vec<u8>, Vec<u8>)>) {
        let dirty: Vec<DeviceState> = self.states.take_dirty().into_iter().cloned().collect();
        for state in &dirty {
            writes.push((device_key(b'd', &state.edge, &state.device), encode(state)));
            self.share(state);
        }
    }
}

/// Accounting: `m ++ edge ++ 0 ++ device` → [`MachineBook`]; `b ++ edge ++ 0 ++ device ++ 0 ++
/// hour` → [`Bucket`] (hour as [`time_key`]).
#[derive(Debug)]
pub struct AccountingProjection {
    floor: Floor,
    books: BTreeMap<(String, String), MachineBook>,
    dirty: BTreeMap<(String, String), bool>,
    /// Buckets of past hours changed by corrections, by key, until the next flush.
    posted: BTreeMap<Vec<u8>, Bucket>,
    /// Machine sessions ended since the last flush.
    sessions: Vec<(Vec<u8>, Vec<u8>)>,
}

/// The key of a session a machine ended: `s ++ edge ++ 0 ++ device ++ 0 ++ opened_seq` (u64 BE).
pub fn machine_session_key(edge: &str, device: &str, opened_seq: u64) -> Vec<u8> {
    let mut key = device_key(b's', edge, device);
    key.push(0);
    key.extend_from_slice(&opened_seq.to_be_bytes());
    key
}

impl AccountingProjection {
    pub fn new(floor: Floor) -> Self {
        Self {
            floor,
            books: BTreeMap::new(),
            dirty: BTreeMap::new(),
            posted: BTreeMap::new(),
            sessions: Vec::new(),
        }
    }

    pub fn book(&self, edge: &str, device: &str) -> Option<&MachineBook> {
        self.books.get(&(edge.to_owned(), device.to_owned()))
    }
}

/// The key of a machine's bucket.
pub fn bucket_key(edge: &str, device: &str, hour_us: i64) -> Vec<u8> {
    let mut key = device_key(b'b', edge, device);
    key.push(0);
    key.extend_from_slice(&time_key(hour_us));
    key
}

impl Projection for AccountingProjection {
    fn name(&self) -> &'static str {
        ACCOUNTING
    }

    /// 2: readings entered by hand (book marks, bucket adjustments, flags); 3: per-game meters;
    /// 4: sessions the machine reports.
    fn version(&self) -> u32 {
        4
    }

    fn restore(&mut self, key: &[u8], value: &[u8]) -> Result<(), RestoreError> {
        if key.first() == Some(&b'm') {
            let book: MachineBook = decode(ACCOUNTING, key, value)?;
            self.books
                .insert((book.edge.clone(), book.device.clone()), book);
        }
        Ok(())
    }

    fn apply(
        &mut self,
        edge: &str,
        missing_before: u64,
        event: &StoredEvent,
        changes: &mut Vec<Change>,
    ) -> Result<(), Poison> {
        if missing_before > 0 {
            // Lost events could have been any machine's: every open interval of the edge may miss
            // some.
            for ((e, d), book) in self.books.range_mut((edge.to_owned(), String::new())..) {
                if e != edge {
                    break;
                }
                book.open_flags.missing_events += missing_before;
                self.dirty.entry((e.clone(), d.clone())).or_insert(false);
            }
        }
        if !matches!(event.event.body, outpost_link::EventBody::Sas(_)) {
            return Ok(());
        }
        let device = &event.event.device;
        let key = (edge.to_owned(), device.clone());
        let calendar = &self.floor.site_of(edge).calendar;
        let book = self
            .books
            .entry(key.clone())
            .or_insert_with(|| MachineBook::new(edge, device));
        if event.event.seq <= book.last_seq {
            return Ok(());
        }
        let filed = book.apply(event, 0, calendar).cloned();
        // An hour the machine moved on from within this batch is stored as it ended.
        for closed in book.closed.drain(..) {
            self.posted
                .insert(bucket_key(edge, device, closed.hour_us), closed);
        }
        for session in book.ended_sessions.drain(..) {
            self.sessions.push((
                machine_session_key(edge, device, session.opened_seq),
                encode(&session),
            ));
        }
        let flag = self.dirty.entry(key).or_insert(false);
        if let Some(bucket) = filed {
            *flag = true;
            changes.push(Change::Bucket {
                edge: edge.to_owned(),
                device: device.clone(),
                bucket: Box::new(bucket),
            });
        }
        Ok(())
    }

    fn apply_manual(
        &mut self,
        edge: &str,
        device: &str,
        entry: &ManualReading,
        stored: &dyn Fn(&[u8]) -> Option<Vec<u8>>,
        changes: &mut Vec<Change>,
    ) -> Result<(), Poison> {
        let key = (edge.to_owned(), device.to_owned());
        let calendar = &self.floor.site_of(edge).calendar;
        let book = self
            .books
            .entry(key.clone())
            .or_insert_with(|| MachineBook::new(edge, device));
        let elsewhere = book
            .apply_manual(entry, calendar)
            .map_err(|e| Poison(e.to_string()))?;
        for closed in book.closed.drain(..) {
            self.posted
                .insert(bucket_key(edge, device, closed.hour_us), closed);
        }
        self.dirty.insert(key, true);
        if let Some(current) = &book.current {
            changes.push(Change::Bucket {
                edge: edge.to_owned(),
                device: device.to_owned(),
                bucket: Box::new(current.clone()),
            });
        }
        for posting in elsewhere {
            let bucket_key = bucket_key(edge, device, posting.hour_us);
            let mut bucket = match self.posted.remove(&bucket_key) {
                Some(bucket) => bucket,
                None => match stored(&bucket_key) {
                    Some(bytes) => decode::<Bucket>(ACCOUNTING, &bucket_key, &bytes)
                        .map_err(|e| Poison(e.to_string()))?,
                    None => {
                        return Err(Poison(format!(
                            "the bucket of {} holding the corrected reading is not stored",
                            posting.hour_us
                        )));
                    }
                },
            };
            bucket.post(&posting);
            changes.push(Change::Bucket {
                edge: edge.to_owned(),
                device: device.to_owned(),
                bucket: Box::new(bucket.clone()),
            });
            self.posted.insert(bucket_key, bucket);
        }
        Ok(())
    }

    fn flush(&mut self, writes: &mut Vec<(Vec<u8>, Vec<u8>)>) {
        for (key, bucket) in std::mem::take(&mut self.posted) {
            writes.push((key, encode(&bucket)));
        }
        writes.append(&mut self.sessions);
        for ((edge, device), bucket_changed) in std::mem::take(&mut self.dirty) {
            let Some(book) = self.books.get(&(edge.clone(), device.clone())) else {
                continue;
            };
            writes.push((device_key(b'm', &edge, &device), encode(book)));
            if bucket_changed && let Some(bucket) = &book.current {
                writes.push((bucket_key(&edge, &device, bucket.hour_us), encode(bucket)));
            }
        }
    }
}

/// The events of each device, so a device's events are found without scanning its edge's:
/// `i ++ edge ++ 0 ++ device ++ 0 ++ block (u64 BE)` → the device's sequence numbers in that
/// block (`seq / BLOCK_SEQS`), ascending, 8 bytes BE each. One write per device and flush instead
/// of one per event; a block holds at most [`BLOCK_SEQS`] numbers (4 KiB).
#[derive(Debug, Default)]
pub struct DeviceEventsProjection {
    /// Each device's latest block: (block, its sequence numbers).
    open: BTreeMap<(String, String), (u64, Vec<u64>)>,
    dirty: std::collections::BTreeSet<(String, String)>,
    /// Blocks closed since the last flush, to store whole.
    closed: Vec<(Vec<u8>, Vec<u8>)>,
}

fn block_value(seqs: &[u64]) -> Vec<u8> {
    seqs.iter().flat_map(|s| s.to_be_bytes()).collect()
}

/// Sequence numbers per block of the device index.
pub const BLOCK_SEQS: u64 = 512;

/// The key of a device's index block.
pub fn device_block_key(edge: &str, device: &str, block: u64) -> Vec<u8> {
    let mut key = device_key(b'i', edge, device);
    key.push(0);
    key.extend_from_slice(&block.to_be_bytes());
    key
}

/// The sequence numbers stored in an index block.
pub fn block_seqs(value: &[u8]) -> impl DoubleEndedIterator<Item = u64> + '_ {
    value
        .chunks_exact(8)
        .filter_map(|c| c.try_into().ok().map(u64::from_be_bytes))
}

impl Projection for DeviceEventsProjection {
    fn name(&self) -> &'static str {
        DEVICE_EVENTS
    }

    fn version(&self) -> u32 {
        2
    }

    fn restore(&mut self, key: &[u8], value: &[u8]) -> Result<(), RestoreError> {
        // Keys come in order, so the last block seen for a device is its latest.
        let bad = |reason: &str| RestoreError {
            projection: DEVICE_EVENTS,
            key: String::from_utf8_lossy(key).into_owned(),
            reason: reason.to_owned(),
        };
        if key.first() != Some(&b'i') {
            return Ok(());
        }
        let rest = &key[1..];
        let (ids, block) = rest
            .split_at_checked(rest.len().saturating_sub(9))
            .ok_or_else(|| bad("short key"))?;
        let block = block
            .get(1..)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_be_bytes)
            .ok_or_else(|| bad("no block number"))?;
        let text = std::str::from_utf8(ids).map_err(|_| bad("ids are not UTF-8"))?;
        let (edge, device) = text
            .split_once('\0')
            .ok_or_else(|| bad("no edge/device separator"))?;
        if !value.len().is_multiple_of(8) {
            return Err(bad("block length is not a multiple of 8"));
        }
        self.open.insert(
            (edge.to_owned(), device.to_owned()),
            (block, block_seqs(value).collect()),
        );
        Ok(())
    }

    fn apply(
        &mut self,
        edge: &str,
        _missing_before: u64,
        event: &StoredEvent,
        _changes: &mut Vec<Change>,
    ) -> Result<(), Poison> {
        let seq = event.event.seq;
        let block = seq / BLOCK_SEQS;
        let key = (edge.to_owned(), event.event.device.clone());
        let (open_block, seqs) = self.open.entry(key.clone()).or_insert((block, Vec::new()));
        if seqs.last().is_some_and(|&last| seq <= last) || block < *open_block {
            return Ok(()); // applied already
        }
        if block > *open_block {
            if self.dirty.contains(&key) {
                self.closed.push((
                    device_block_key(&key.0, &key.1, *open_block),
                    block_value(seqs),
                ));
            }
            *open_block = block;
            seqs.clear();
        }
        seqs.push(seq);
        self.dirty.insert(key);
        Ok(())
    }

    fn flush(&mut self, writes: &mut Vec<(Vec<u8>, Vec<u8>)>) {
        writes.append(&mut self.closed);
        for key in std::mem::take(&mut self.dirty) {
            if let Some((block, seqs)) = self.open.get(&key) {
                writes.push((device_block_key(&key.0, &key.1, *block), block_value(seqs)));
            }
        }
    }
}

/// A handpay as the machine reported it.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Handpay {
    pub edge: String,
    pub device: String,
    /// The sequence of the event that reported it (with edge and device, its id).
    pub seq: u64,
    pub credits: u64,
    /// When the machine reported it (Unix µs).
    pub pending_us: i64,
    /// When the machine reported it reset (52), and that event's sequence.
    pub reset_us: Option<i64>,
    pub reset_seq: Option<u64>,
}

impl Handpay {
    /// `edge/device/seq`.
    pub fn id(&self) -> String {
        format!("{}/{}/{}", self.edge, self.device, self.seq)
    }
}

/// The key of a handpay.
pub fn handpay_key(edge: &str, device: &str, seq: u64) -> Vec<u8> {
    let mut key = device_key(b'h', edge, device);
    key.push(0);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// Handpays: `h ++ edge ++ 0 ++ device ++ 0 ++ seq` → [`Handpay`]; `s ++ edge ++ 0 ++ device` →
/// the last sequence applied for the machine (u64 BE), so an event applied twice changes nothing.
/// A handpay opens with the machine's LP 1B answer and closes with its 52 (reset); a second LP 1B
/// answer while one is open is the same handpay.
#[derive(Debug, Default)]
pub struct HandpaysProjection {
    open: BTreeMap<(String, String), Handpay>,
    seen: BTreeMap<(String, String), u64>,
    dirty: Vec<Handpay>,
    dirty_seen: std::collections::BTreeSet<(String, String)>,
}

impl Projection for HandpaysProjection {
    fn name(&self) -> &'static str {
        HANDPAYS
    }

    fn restore(&mut self, key: &[u8], value: &[u8]) -> Result<(), RestoreError> {
        match key.first() {
            Some(b'h') => {
                let handpay: Handpay = decode(HANDPAYS, key, value)?;
                if handpay.reset_us.is_none() {
                    self.open
                        .insert((handpay.edge.clone(), handpay.device.clone()), handpay);
                }
            }
            Some(b's') => {
                let text = String::from_utf8_lossy(&key[1..]).into_owned();
                if let (Some((edge, device)), Ok(seq)) =
                    (text.split_once('\0'), <[u8; 8]>::try_from(value))
                {
                    self.seen.insert(
                        (edge.to_owned(), device.to_owned()),
                        u64::from_be_bytes(seq),
                    );
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn apply(
        &mut self,
        edge: &str,
        _missing_before: u64,
        event: &StoredEvent,
        _changes: &mut Vec<Change>,
    ) -> Result<(), Poison> {
        let outpost_link::EventBody::Sas(sas) = &event.event.body else {
            return Ok(());
        };
        let key = (edge.to_owned(), event.event.device.clone());
        let seen = self.seen.entry(key.clone()).or_insert(0);
        if event.event.seq <= *seen {
            return Ok(());
        }
        *seen = event.event.seq;
        let relevant = match sas {
            outpost_link::SasEvent::Handpay { .. } => true,
            outpost_link::SasEvent::Exception { code }
            | outpost_link::SasEvent::RealTimeEvent { code, .. } => {
                *code == outpost_sas::names::exception::HANDPAY_RESET
            }
            _ => false,
        };
        if relevant {
            self.dirty_seen.insert(key.clone());
        }
        match sas {
            outpost_link::SasEvent::Handpay { credits, .. } => {
                if self
                    .open
                    .get(&key)
                    .is_some_and(|h| event.event.seq <= h.seq || h.credits == *credits)
                {
                    return Ok(()); // the same handpay read again, or a replay
                }
                let handpay = Handpay {
                    edge: edge.to_owned(),
                    device: event.event.device.clone(),
                    seq: event.event.seq,
                    credits: *credits,
                    pending_us: event.happened_us(),
                    reset_us: None,
                    reset_seq: None,
                };
                self.dirty.push(handpay.clone());
                self.open.insert(key, handpay);
            }
            outpost_link::SasEvent::Exception { code }
            | outpost_link::SasEvent::RealTimeEvent { code, .. }
                if *code == outpost_sas::names::exception::HANDPAY_RESET =>
            {
                if let Some(mut handpay) = self.open.remove(&key) {
                    if event.event.seq <= handpay.seq {
                        self.open.insert(key, handpay);
                        return Ok(());
                    }
                    handpay.reset_us = Some(event.happened_us());
                    handpay.reset_seq = Some(event.event.seq);
                    self.dirty.push(handpay);
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn flush(&mut self, writes: &mut Vec<(Vec<u8>, Vec<u8>)>) {
        for h in self.dirty.drain(..) {
            writes.push((handpay_key(&h.edge, &h.device, h.seq), encode(&h)));
        }
        // The last sequence is stored only for machines whose handpays moved: enough to refuse
        // a repeat of those events, without a write per event.
        for key in std::mem::take(&mut self.dirty_seen) {
            if let Some(seq) = self.seen.get(&key) {
                writes.push((device_key(b's', &key.0, &key.1), seq.to_be_bytes().to_vec()));
            }
        }
    }
}

/// A fresh projection by name, for the hub and for `projections rebuild`.
pub fn by_name(name: &str, floor: &Floor) -> Option<Box<dyn Projection>> {
    Some(match name {
        DEVICES => Box::new(DevicesProjection::default()),
        ACCOUNTING => Box::new(AccountingProjection::new(floor.clone())),
        DEVICE_EVENTS => Box::new(DeviceEventsProjection::default()),
        HANDPAYS => Box::new(HandpaysProjection::default()),
        _ => return None,
    })
}
