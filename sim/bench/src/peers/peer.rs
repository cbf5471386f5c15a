//! The peers Outpost is compared with, deployed as a user would deploy them for an edge and a
//! center on one machine: NATS (a leaf node with JetStream sourcing into a hub's stream) and
//! Mosquitto (an edge broker bridged to a center broker with QoS 1). Each has a publisher (the
//! "device", connected to the edge) and a sink (connected to the center).
//!
//! Invariants:
//! - An event's identity and its call time travel in its payload ([`event_payload`]), so the sink
//!   needs nothing from the system but the bytes.
//! - The publisher counts an event acknowledged only when the system acknowledged that very event
//!   (JetStream's publish ack; Mosquitto's PUBACK for the packet id it was sent with); an event
//!   whose acknowledgement did not come is not counted, whatever happened to it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use outpost_harness::harness::{SiteProcess, free_local_addr};
use rumqttc::mqttbytes::QoS;
use rumqttc::mqttbytes::v4::{Connect, Packet, Publish};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::latency::Buckets;

/// Bytes of every event, as in the delivery benchmark.
pub const EVENT_BYTES: usize = 200;
/// How long a publisher waits for the acknowledgements of one batch before it counts the rest as
/// not acknowledged (and, for MQTT, drops the connection so no late PUBACK is misread).
const ACK_TIMEOUT: Duration = Duration::from_secs(5);

pub fn unix_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// `[id u64 LE][call time, Unix µs, u64 LE][filler]`, [`EVENT_BYTES`] long.
pub fn event_payload(id: u64, called_us: u64) -> Bytes {
    let mut payload = vec![0x5au8; EVENT_BYTES];
    payload[..8].copy_from_slice(&id.to_le_bytes());
    payload[8..16].copy_from_slice(&called_us.to_le_bytes());
    Bytes::from(payload)
}

/// The id and call time in a payload [`event_payload`] made, if it is one.
pub fn read_payload(payload: &[u8]) -> Option<(u64, u64)> {
    let id = u64::from_le_bytes(payload.get(..8)?.try_into().ok()?);
    let called = u64::from_le_bytes(payload.get(8..16)?.try_into().ok()?);
    Some((id, called))
}

/// Ids the benchmark's generators use stay below this (its largest run publishes a few million).
const MAX_EVENT_ID: usize = 1 << 30;

/// What a sink received: how often each id, and the latencies of the events called since
/// `measure_from_us`.
#[derive(Debug, Default)]
pub struct Receipts {
    /// `times[id]`: receipts of event `id`.
    pub times: Vec<u8>,
    pub total: u64,
    pub measure_from_us: u64,
    pub latency: Buckets,
}

impl Receipts {
    fn record(&mut self, payload: &[u8]) {
        let now = unix_micros();
        let Some((id, called)) = read_payload(payload) else {
            return;
        };
        // An id no generator of ours reaches is not ours (a stray message on the subject): it
        // must not size the table.
        let Some(index) = usize::try_from(id).ok().filter(|&i| i < MAX_EVENT_ID) else {
            return;
        };
        if self.times.len() <= index {
            self.times.resize(index + 1, 0);
        }
        self.times[index] = self.times[index].saturating_add(1);
        self.total += 1;
        if self.measure_from_us > 0 && called >= self.measure_from_us {
            self.latency
                .observe(now.saturating_sub(called) as f64 / 1_000_000.0);
        }
    }
}

pub type SharedReceipts = Arc<Mutex<Receipts>>;

pub fn lock(receipts: &SharedReceipts) -> std::sync::MutexGuard<'_, Receipts> {
    receipts.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Which peer, and how it syncs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerKind {
    /// NATS JetStream with `sync_interval: always`: every write fsynced before it is acknowledged.
    NatsAlways,
    /// NATS JetStream with its defaults (fsync every 2 minutes).
    NatsDefaults,
    /// Mosquitto 2 bridge, QoS 1, persistence on (written at autosave and shutdown only).
    Mosquitto,
}

impl PeerKind {
    pub fn label(self) -> &'static str {
        match self {
            Self::NatsAlways => "NATS JetStream, sync always",
            Self::NatsDefaults => "NATS JetStream, defaults",
            Self::Mosquitto => "Mosquitto bridge, QoS 1",
        }
    }
}

/// Where the peers' programs are.
#[derive(Debug, Clone)]
pub struct PeerTools {
    pub nats_server: PathBuf,
    pub mosquitto: PathBuf,
}

/// One deployment of a peer: its edge and center processes and the ports between them.
#[derive(Debug)]
pub struct PeerSite {
    pub kind: PeerKind,
    dir: PathBuf,
    tools: PeerTools,
    pub edge: Option<SiteProcess>,
    center: Option<SiteProcess>,
    /// Where the publisher connects.
    pub edge_addr: SocketAddr,
    /// Where the sink connects.
    sink_addr: SocketAddr,
    /// The edge→center link's port on the center: what a partition cuts.
    pub link_port: u16,
    edge_config: PathBuf,
    pub edge_store: PathBuf,
    pub center_store: PathBuf,
}

impl PeerSite {
    /// Writes the configuration into `dir` and starts the center, then the edge.
    pub async fn start(kind: PeerKind, tools: &PeerTools, dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let edge_addr = free_local_addr()?;
        let sink_addr = free_local_addr()?;
        let link = free_local_addr()?;
        let edge_store = dir.join("edge-store");
        let center_store = dir.join("center-store");
        std::fs::create_dir_all(&edge_store)?;
        std::fs::create_dir_all(&center_store)?;
        let (edge_text, center_text) = match kind {
            PeerKind::NatsAlways | PeerKind::NatsDefaults => {
                let sync = if kind == PeerKind::NatsAlways {
                    "\n  sync_interval: always"
                } else {
                    ""
                };
                (
                    format!(
                        "server_name: leaf\nlisten: {edge_addr}\njetstream {{\n  store_dir: \"{}\"\n  domain: leaf{sync}\n}}\nleafnodes {{\n  remotes [ {{ url: \"nats-leaf://{link}\" }} ]\n  reconnect: \"1s\"\n}}\n",
                        edge_store.display()
                    ),
                    format!(
                        "server_name: hub\nlisten: {sink_addr}\njetstream {{\n  store_dir: \"{}\"\n  domain: hub{sync}\n}}\nleafnodes {{\n  listen: {link}\n}}\n",
                        center_store.display()
                    ),
                )
            }
            PeerKind::Mosquitto => {
                let user = if nix::unistd::Uid::effective().is_root() {
                    "user root\n"
                } else {
                    ""
                };
                let sink_port = sink_addr.port();
                let (edge_port, link_port) = (edge_addr.port(), link.port());
                (
                    format!(
                        "{user}listener {edge_port} 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location {}/\nmax_queued_messages 0\n\nconnection center\naddress 127.0.0.1:{link_port}\ntopic events/# out 1\ncleansession false\nrestart_timeout 1 2\n",
                        edge_store.display()
                    ),
                    format!(
                        "{user}listener {sink_port} 127.0.0.1\nlistener {link_port} 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location {}/\nmax_queued_messages 0\n",
                        center_store.display()
                    ),
                )
            }
        };
        let edge_config = dir.join("edge.conf");
        let center_config = dir.join("center.conf");
        std::fs::write(&edge_config, edge_text)?;
        std::fs::write(&center_config, center_text)?;
        let mut site = Self {
            kind,
            dir: dir.to_owned(),
            tools: tools.clone(),
            edge: None,
            center: None,
            edge_addr,
            sink_addr,
            link_port: link.port(),
            edge_config,
            edge_store,
            center_store,
        };
        let center = site.spawn("center", &center_config, sink_addr)?;
        site.center = Some(center);
        wait_listening(sink_addr).await?;
        site.start_edge().await?;
        if kind != PeerKind::Mosquitto {
            site.create_streams().await?;
        }
        Ok(site)
    }

    fn spawn(&self, name: &str, config: &Path, addr: SocketAddr) -> anyhow::Result<SiteProcess> {
        let (program, flag) = match self.kind {
            PeerKind::Mosquitto => (&self.tools.mosquitto, "-c"),
            _ => (&self.tools.nats_server, "-c"),
        };
        Ok(SiteProcess::spawn(
            name,
            program,
            &[flag.into(), config.as_os_str().to_owned()],
            addr,
            &self.dir.join(format!("{name}.log")),
        )?)
    }

    /// Starts the edge process (again), on its existing store.
    pub async fn start_edge(&mut self) -> anyhow::Result<()> {
        let edge = self.spawn("edge", &self.edge_config.clone(), self.edge_addr)?;
        self.edge = Some(edge);
        wait_listening(self.edge_addr).await
    }

    /// `kill -9` of the edge process.
    pub async fn kill9_edge(&mut self) -> anyhow::Result<()> {
        if let Some(mut edge) = self.edge.take() {
            edge.kill9().await?;
        }
        Ok(())
    }

    pub fn edge_pid(&self) -> Option<u32> {
        self.edge.as_ref().and_then(SiteProcess::pid)
    }

    pub fn center_pid(&self) -> Option<u32> {
        self.center.as_ref().and_then(SiteProcess::pid)
    }

    /// Stream EDGE on the leaf's JetStream, CENTER on the hub's sourcing it across the leaf
    /// connection (the leaf's JetStream domain), both on files.
    async fn create_streams(&self) -> anyhow::Result<()> {
        use async_nats::jetstream::stream::{Config, External, Source, StorageType};
        let leaf = async_nats::jetstream::new(async_nats::connect(nats_url(self.edge_addr)).await?);
        leaf.create_stream(Config {
            name: "EDGE".into(),
            subjects: vec!["events.>".into()],
            storage: StorageType::File,
            ..Config::default()
        })
        .await?;
        let hub = async_nats::jetstream::new(async_nats::connect(nats_url(self.sink_addr)).await?);
        hub.create_stream(Config {
            name: "CENTER".into(),
            storage: StorageType::File,
            sources: Some(vec![Source {
                name: "EDGE".into(),
                external: Some(External {
                    api_prefix: "$JS.leaf.API".into(),
                    delivery_prefix: None,
                }),
                ..Source::default()
            }]),
            ..Config::default()
        })
        .await?;
        Ok(())
    }

    /// Events the edge's own store holds now (NATS: the leaf's stream; Mosquitto keeps its queue
    /// in memory, so `None`): after a kill, tells loss at the edge from loss on the way.
    pub async fn edge_stored(&self) -> Option<u64> {
        if self.kind == PeerKind::Mosquitto {
            return None;
        }
        let leaf =
            async_nats::jetstream::new(async_nats::connect(nats_url(self.edge_addr)).await.ok()?);
        let mut stream = leaf.get_stream("EDGE").await.ok()?;
        Some(stream.info().await.ok()?.state.messages)
    }

    /// Starts the sink at the center: every event it receives goes into `receipts`.
    pub async fn sink(
        &self,
        receipts: SharedReceipts,
    ) -> anyhow::Result<tokio::task::JoinHandle<()>> {
        match self.kind {
            PeerKind::Mosquitto => {
                let mut options =
                    rumqttc::MqttOptions::new("bench-sink", "127.0.0.1", self.sink_addr.port());
                options.set_keep_alive(Duration::from_secs(30));
                options.set_max_packet_size(1 << 20, 1 << 20);
                let (client, mut events) = rumqttc::AsyncClient::new(options, 64);
                client.subscribe("events/#", QoS::AtLeastOnce).await?;
                Ok(tokio::spawn(async move {
                    let _client = client;
                    loop {
                        match events.poll().await {
                            Ok(rumqttc::Event::Incoming(Packet::Publish(p))) => {
                                lock(&receipts).record(&p.payload);
                            }
                            Ok(_) => {}
                            Err(err) => {
                                eprintln!("bench: mosquitto sink: {err}; reconnecting");
                                tokio::time::sleep(Duration::from_millis(200)).await;
                            }
                        }
                    }
                }))
            }
            _ => {
                use async_nats::jetstream::consumer::pull::OrderedConfig;
                let hub = async_nats::jetstream::new(
                    async_nats::connect(nats_url(self.sink_addr)).await?,
                );
                let stream = hub.get_stream("CENTER").await?;
                let consumer = stream.create_consumer(OrderedConfig::default()).await?;
                let mut messages = consumer.messages().await?;
                Ok(tokio::spawn(async move {
                    while let Some(message) = messages.next().await {
                        match message {
                            Ok(m) => lock(&receipts).record(&m.payload),
                            Err(err) => eprintln!("bench: nats sink: {err}"),
                        }
                    }
                }))
            }
        }
    }

    /// A publisher connected to the edge.
    pub async fn publisher(&self) -> anyhow::Result<Publisher> {
        match self.kind {
            PeerKind::Mosquitto => Ok(Publisher::Mqtt(MqttPublisher {
                addr: self.edge_addr,
                stream: None,
                buffer: BytesMut::new(),
            })),
            _ => {
                let client = async_nats::ConnectOptions::new()
                    .retry_on_initial_connect()
                    .connect(nats_url(self.edge_addr))
                    .await?;
                Ok(Publisher::Nats(async_nats::jetstream::new(client)))
            }
        }
    }

    /// Stops both processes gracefully (SIGTERM).
    pub async fn stop(mut self) -> anyhow::Result<()> {
        for process in [self.edge.take(), self.center.take()].into_iter().flatten() {
            process.terminate(Duration::from_secs(10)).await?;
        }
        Ok(())
    }
}

fn nats_url(addr: SocketAddr) -> String {
    format!("nats://{addr}")
}

/// Waits until something accepts TCP connections on `addr` (a started broker is listening).
async fn wait_listening(addr: SocketAddr) -> anyhow::Result<()> {
    for _ in 0..300 {
        if TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    anyhow::bail!("nothing listens on {addr} after 6 s (see the peer's log)")
}

/// Publishes events to a peer's edge and reports which it acknowledged.
pub enum Publisher {
    Nats(async_nats::jetstream::Context),
    Mqtt(MqttPublisher),
}

impl Publisher {
    /// Publishes events `ids` at once, each stamped with its call time, and appends those the
    /// system acknowledged to `acked`.
    pub async fn publish(&mut self, ids: std::ops::Range<u64>, acked: &mut Vec<u64>) {
        match self {
            Self::Nats(js) => {
                let mut pending = Vec::with_capacity((ids.end - ids.start) as usize);
                for id in ids {
                    if let Ok(ack) = js
                        .publish("events.edge", event_payload(id, unix_micros()))
                        .await
                    {
                        pending.push((id, ack));
                    }
                }
                let acks =
                    futures::future::join_all(pending.into_iter().map(|(id, ack)| async move {
                        (id, tokio::time::timeout(ACK_TIMEOUT, ack).await)
                    }))
                    .await;
                acked.extend(
                    acks.into_iter()
                        .filter(|(_, result)| matches!(result, Ok(Ok(_))))
                        .map(|(id, _)| id),
                );
            }
            Self::Mqtt(mqtt) => mqtt.publish(ids, acked).await,
        }
    }
}

/// An MQTT 3.1.1 publisher at QoS 1 over one TCP connection, on rumqttc's packet codec. Packet ids
/// are the events' own (mod 65,535), so a PUBACK names exactly the event it acknowledges; a batch
/// is at most `Pacer::MAX_IN_FLIGHT` (4,096) events, so ids never collide within one.
pub struct MqttPublisher {
    addr: SocketAddr,
    stream: Option<TcpStream>,
    buffer: BytesMut,
}

impl MqttPublisher {
    const MAX_PACKET: usize = 1 << 20;

    fn pkid(id: u64) -> u16 {
        (id % 65_535) as u16 + 1
    }

    async fn connect(&mut self) -> anyhow::Result<TcpStream> {
        let mut stream = TcpStream::connect(self.addr).await?;
        stream.set_nodelay(true)?;
        let mut out = BytesMut::new();
        let mut connect = Connect::new(format!("bench-publisher-{}", std::process::id()));
        connect.keep_alive = 60;
        connect.clean_session = true;
        connect.write(&mut out)?;
        stream.write_all(&out).await?;
        self.buffer.clear();
        match read_packet(&mut stream, &mut self.buffer).await? {
            Packet::ConnAck(ack) if ack.code == rumqttc::ConnectReturnCode::Success => Ok(stream),
            other => anyhow::bail!("the broker refused the connection: {other:?}"),
        }
    }

    async fn publish(&mut self, ids: std::ops::Range<u64>, acked: &mut Vec<u64>) {
        let mut stream = match self.stream.take() {
            Some(stream) => stream,
            None => match self.connect().await {
                Ok(stream) => stream,
                Err(_) => return,
            },
        };
        let mut waiting: HashMap<u16, u64> = HashMap::with_capacity((ids.end - ids.start) as usize);
        let mut out = BytesMut::with_capacity((ids.end - ids.start) as usize * (EVENT_BYTES + 24));
        for id in ids {
            let mut publish = Publish::new(
                "events/edge",
                QoS::AtLeastOnce,
                event_payload(id, unix_micros()).to_vec(),
            );
            publish.pkid = Self::pkid(id);
            if publish.write(&mut out).is_err() {
                return;
            }
            waiting.insert(publish.pkid, id);
        }
        if stream.write_all(&out).await.is_err() {
            return;
        }
        let answered = tokio::time::timeout(ACK_TIMEOUT, async {
            while !waiting.is_empty() {
                match read_packet(&mut stream, &mut self.buffer).await {
                    Ok(Packet::PubAck(ack)) => {
                        if let Some(id) = waiting.remove(&ack.pkid) {
                            acked.push(id);
                        }
                    }
                    Ok(_) => {}
                    Err(_) => return false,
                }
            }
            true
        })
        .await;
        if answered == Ok(true) {
            self.stream = Some(stream);
        }
    }
}

/// The next MQTT packet from `stream`, reading into `buffer` as needed.
async fn read_packet(stream: &mut TcpStream, buffer: &mut BytesMut) -> anyhow::Result<Packet> {
    loop {
        match Packet::read(buffer, MqttPublisher::MAX_PACKET) {
            Ok(packet) => return Ok(packet),
            Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) => {}
            Err(err) => anyhow::bail!("a malformed MQTT packet from the broker: {err:?}"),
        }
        if stream.read_buf(buffer).await? == 0 {
            anyhow::bail!("the broker closed the connection");
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_payload_carries_its_id_and_call_time() {
        let payload = event_payload(42, 1_700_000_000_000_000);
        assert_eq!(payload.len(), EVENT_BYTES);
        assert_eq!(read_payload(&payload), Some((42, 1_700_000_000_000_000)));
        assert_eq!(read_payload(&payload[..10]), None);
    }

    #[test]
    fn a_receipt_counts_each_id_and_only_measured_latencies() {
        let mut receipts = Receipts {
            measure_from_us: 10,
            ..Receipts::default()
        };
        receipts.record(&event_payload(3, 5));
        receipts.record(&event_payload(3, unix_micros()));
        receipts.record(b"short");
        receipts.record(&event_payload(u64::MAX, 5));
        assert_eq!(receipts.times, vec![0, 0, 0, 2]);
        assert_eq!(receipts.total, 2);
        assert_eq!(receipts.latency.count(), 1);
    }

    #[test]
    fn mqtt_packet_ids_within_a_batch_are_distinct_and_never_zero() {
        let ids: std::collections::HashSet<u16> =
            (65_000..65_000 + 4096).map(MqttPublisher::pkid).collect();
        assert_eq!(ids.len(), 4096);
        assert!(!ids.contains(&0));
    }
}
