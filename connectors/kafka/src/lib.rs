//! Kafka for sluice, over rdkafka (librdkafka): a consumer loop that stores
//! only acknowledged offsets, and an idempotent producer. It knows nothing
//! of the sluice engine, and it is the only crate of the workspace that
//! names rdkafka; no rdkafka type appears in its API.
//!
//! # The consumer loop
//!
//! [`Consumer::connect`] checks that the brokers answer and the topics exist
//! (within [`ConsumerSettings::connect_timeout`]), then subscribes with the
//! group, or, without a group, assigns every partition of the topics.
//! [`Consumer::run`] polls and hands a [`Handler`]:
//! - the partitions of each assignment, together, each with a
//!   [`PartitionAck`] through which the user acknowledges how far the
//!   partition's messages have had all their effects (`ack(next_offset)`:
//!   every offset below is done). What the loop must ask the brokers about
//!   them (committed, first and end offsets) it asks once per assignment,
//!   not per partition;
//! - [`Batch`]es: runs of messages of one partition, copied into one buffer;
//! - each partition revoked, and [`Notice`]s (brokers down and back, cut
//!   messages), each said once per change of state, not per message.
//!
//! Offsets: `enable.auto.offset.store` is off, so nothing is stored that
//! was not acknowledged. Acknowledgements cover every offset below a point,
//! so what is stored is always contiguous. The loop stores what was
//! acknowledged as it goes, librdkafka commits what is stored every
//! `auto.commit.interval.ms` (1 s here), and [`PartitionAck::commit`]
//! commits synchronously (the end of a run).
//!
//! Rebalances: before partitions are revoked, what was acknowledged for them
//! is stored and committed. Batches of a revoked partition not yet handed
//! over are dropped, and messages handed over but not yet acknowledged are
//! not committed by this consumer any more: the partition's new owner reads
//! them again from the committed offset. Their effects already here stay, so
//! across a rebalance delivery is at least once.
//!
//! Backpressure: when the handler cannot take a batch
//! ([`Delivery::Full`]), every assigned partition is paused, and the loop
//! keeps polling (so that the group does not think this consumer dead)
//! until the batch is taken; then the partitions resume from where they
//! were.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer as _, ConsumerContext, Rebalance, RebalanceProtocol};
use rdkafka::error::KafkaError;
use rdkafka::message::{Message as _, Timestamp};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer as _, ProducerContext};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::ClientContext;

/// Where a partition is read from when the group has no committed offset
/// for it (and, without a group, always).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartFrom {
    /// The first offset still in the partition.
    Earliest,
    /// The end: only messages produced from now on.
    #[default]
    Latest,
    /// The group's committed offset, and an error where there is none.
    Committed,
}

/// What to consume, and how.
#[derive(Debug, Clone)]
pub struct ConsumerSettings {
    /// `host:port[,host:port...]`.
    pub brokers: String,
    /// Topics to read.
    pub topics: Vec<String>,
    /// The consumer group; none assigns every partition explicitly and
    /// commits nothing.
    pub group: Option<String>,
    /// Where to start without a committed offset.
    pub start: StartFrom,
    /// Read up to the end offsets seen when each partition is assigned,
    /// then finish (a backfill), rather than follow.
    pub bounded: bool,
    /// librdkafka properties, passed through (TLS, SASL...); they override
    /// the loop's own defaults, but not `enable.auto.offset.store`.
    pub options: Vec<(String, String)>,
    /// Longest message payload handed over; longer ones are cut.
    pub max_message_bytes: usize,
    /// How long the brokers may take to answer at start.
    pub connect_timeout: Duration,
    /// Set when the caller keeps positions of its own (a checkpoint): per
    /// partition, the next offset to read. A partition is assigned at its
    /// offset here, which wins over the committed offset and `start`; one
    /// revoked and assigned to this consumer again resumes after the last
    /// message handed over; one not here starts as usual, and its handler
    /// is told where ([`PartitionAck::start`]).
    pub resume: Option<HashMap<PartitionId, i64>>,
}

impl ConsumerSettings {
    /// Reads `topics` from `brokers` from the latest offset, without a
    /// group, following, with 1 MiB messages and 30 s to connect.
    pub fn new(brokers: impl Into<String>, topics: Vec<String>) -> Self {
        ConsumerSettings {
            brokers: brokers.into(),
            topics,
            group: None,
            start: StartFrom::Latest,
            bounded: false,
            options: Vec::new(),
            max_message_bytes: 1 << 20,
            connect_timeout: Duration::from_secs(30),
            resume: None,
        }
    }
}

/// A partition of a topic.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PartitionId {
    /// The topic.
    pub topic: Arc<str>,
    /// The partition number.
    pub partition: i32,
}

impl fmt::Display for PartitionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.topic, self.partition)
    }
}

/// Which clock a message's timestamp is on (the topic's
/// `message.timestamp.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeKind {
    /// Set by the producer when it created the message.
    CreateTime,
    /// Set by the broker when it appended the message to the log.
    LogAppendTime,
}

impl TimeKind {
    /// Kafka's name for it.
    pub fn name(self) -> &'static str {
        match self {
            TimeKind::CreateTime => "CreateTime",
            TimeKind::LogAppendTime => "LogAppendTime",
        }
    }
}

/// One message of a [`Batch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message {
    /// First byte of its payload in the batch's buffer.
    pub start: u32,
    /// One past its last byte.
    pub end: u32,
    /// Its offset in the partition.
    pub offset: i64,
    /// Its timestamp, ms since the epoch, if it has one.
    pub timestamp_ms: Option<i64>,
}

/// Messages of one partition, in offset order, in one buffer.
#[derive(Debug, Clone)]
pub struct Batch {
    /// The partition.
    pub partition: PartitionId,
    /// Every payload, one after the other.
    pub data: Vec<u8>,
    /// The messages. Messages without a payload (tombstones) are left out,
    /// but covered by `next_offset`.
    pub messages: Vec<Message>,
    /// The offset after the batch's last message: where reading resumes
    /// once the batch is acknowledged.
    pub next_offset: i64,
    /// The clock of the timestamps (of the batch's first timestamped
    /// message).
    pub time_kind: Option<TimeKind>,
    /// Messages cut to [`ConsumerSettings::max_message_bytes`].
    pub cut: u32,
}

/// Whether the handler took a batch.
#[derive(Debug)]
pub enum Delivery {
    /// Taken.
    Taken,
    /// Not now (its queue is full): hand it over again later.
    Full(Batch),
    /// Never: the run is over.
    Closed,
}

/// Something the loop wants its user to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// No broker can be reached; librdkafka keeps retrying with backoff.
    /// Said once until [`Notice::Reconnected`].
    BrokersDown(String),
    /// Messages arrive again after [`Notice::BrokersDown`].
    Reconnected,
    /// An error librdkafka recovers from by itself (said once per kind).
    Error(String),
    /// The first message cut for being longer than the limit (then counted
    /// in [`Batch::cut`]).
    Cut {
        /// The partition.
        partition: PartitionId,
        /// The message.
        offset: i64,
        /// Its length.
        bytes: usize,
    },
    /// The partitions assigned to this consumer changed; all of them now.
    Assignment(Vec<PartitionId>),
}

/// What the loop hands its output to.
pub trait Handler {
    /// Partitions are now read by this consumer (those of one assignment,
    /// together); acknowledge each one's messages through its `ack`.
    /// Return false to stop.
    fn assigned(&mut self, partitions: Vec<(PartitionId, PartitionAck)>) -> bool;
    /// A partition is no longer read by this consumer (see the crate
    /// documentation for what happens to what was not acknowledged).
    fn revoked(&mut self, partition: &PartitionId);
    /// Messages of one partition.
    fn deliver(&mut self, batch: Batch) -> Delivery;
    /// Something to say.
    fn notice(&mut self, notice: Notice);
}

/// Why the consumer cannot start.
#[derive(Debug)]
pub enum ConnectError {
    /// The settings are refused by librdkafka (an unknown property...).
    Config(String),
    /// The brokers did not answer in time.
    Unreachable(String),
    /// A topic does not exist.
    NoTopic(String),
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectError::Config(m) | ConnectError::Unreachable(m) | ConnectError::NoTopic(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for ConnectError {}

/// Per partition read by this process: how far it is acknowledged.
#[derive(Debug, Default)]
struct AckState {
    /// Partitions assigned now, with their acknowledgement state.
    parts: HashMap<PartitionId, PartAck>,
    /// Counts assignments, so that acknowledgements from an earlier
    /// assignment of a partition are told apart.
    epoch: u64,
    /// The last synchronous commit that failed after its retries, so that
    /// the next one (another partition's, a moment later) fails at once
    /// instead of retrying as long again.
    commit_failed: Option<(Instant, String)>,
}

#[derive(Debug, Clone, Copy)]
struct PartAck {
    /// The assignment this state belongs to.
    epoch: u64,
    /// Every offset below is acknowledged; -1 before any.
    acked: i64,
    /// What was last handed to librdkafka's offset store.
    stored: i64,
    /// What was last committed by a synchronous commit.
    committed: i64,
    /// The offset after the last message handed over; -1 before any.
    handed: i64,
}

/// The consumer's context: rebalance callbacks and errors.
struct Ctx {
    acks: Arc<Mutex<AckState>>,
    /// Rebalance events for the loop, in order.
    events: Mutex<VecDeque<Event>>,
    /// Whether offsets are committed (there is a group).
    commits: bool,
    /// With the caller's positions: where each partition is assigned.
    resume: Option<Mutex<HashMap<PartitionId, i64>>>,
}

#[derive(Debug)]
enum Event {
    Assigned(Vec<PartitionId>),
    Revoked(Vec<PartitionId>),
    Error(KafkaError, String),
}

fn partitions(tpl: &TopicPartitionList) -> Vec<PartitionId> {
    tpl.elements().iter().map(|e| PartitionId { topic: Arc::from(e.topic()), partition: e.partition() }).collect()
}

/// The partitions of `tpl` that have an offset (and no error), with it.
fn offsets(tpl: &TopicPartitionList) -> HashMap<PartitionId, i64> {
    let with_offset = tpl.elements().into_iter().filter(|e| e.error().is_ok()).filter_map(|e| match e.offset() {
        Offset::Offset(o) => Some((PartitionId { topic: Arc::from(e.topic()), partition: e.partition() }, o)),
        _ => None,
    });
    with_offset.collect()
}

impl ClientContext for Ctx {
    fn error(&self, error: KafkaError, reason: &str) {
        // The end of a partition (bounded reads ask for it) also comes this
        // way, without the partition: it is no error, and the partition's
        // own end-of-partition event or its end offset ends the read.
        if error.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::PartitionEOF) {
            return;
        }
        if let Ok(mut ev) = self.events.lock() {
            ev.push_back(Event::Error(error, reason.to_string()));
        }
    }

    fn log(&self, _level: rdkafka::config::RDKafkaLogLevel, _fac: &str, _log_message: &str) {
        // Errors that matter come through `error`; librdkafka's own log is
        // left out rather than printed past the engine's logging.
    }
}

impl ConsumerContext for Ctx {
    /// librdkafka's default rebalance, with one change: with the caller's
    /// positions, partitions are assigned at them (set in the list before
    /// the assignment, so that fetching starts there).
    fn rebalance(&self, consumer: &BaseConsumer<Self>, err: RDKafkaRespErr, tpl: &mut TopicPartitionList) {
        let assign = err == RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS;
        if assign {
            if let Some(resume) = self.resume.as_ref().and_then(|r| r.lock().ok()) {
                for p in partitions(tpl) {
                    if let Some(&at) = resume.get(&p) {
                        let _ = tpl.set_partition_offset(&p.topic, p.partition, Offset::Offset(at));
                    }
                }
            }
        }
        let rebalance = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => Rebalance::Assign(tpl),
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => Rebalance::Revoke(tpl),
            other => Rebalance::Error(KafkaError::Rebalance(other.into())),
        };
        self.pre_rebalance(consumer, &rebalance);
        let cooperative = matches!(consumer.rebalance_protocol(), RebalanceProtocol::Cooperative);
        let done = match (assign, cooperative) {
            (true, true) => consumer.incremental_assign(tpl),
            (true, false) => consumer.assign(tpl),
            (false, true) => consumer.incremental_unassign(tpl),
            (false, false) => consumer.unassign(),
        };
        if let Err(e) = done {
            if let Ok(mut ev) = self.events.lock() {
                ev.push_back(Event::Error(e, "rebalance".into()));
            }
        }
        self.post_rebalance(consumer, &rebalance);
    }

    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let revoked = partitions(tpl);
            // With the caller's positions: a partition assigned here again
            // resumes after what was handed over, which the caller holds.
            if let (Some(resume), Ok(acks)) = (self.resume.as_ref(), self.acks.lock()) {
                if let Ok(mut resume) = resume.lock() {
                    for p in &revoked {
                        if let Some(a) = acks.parts.get(p).filter(|a| a.handed >= 0) {
                            resume.insert(p.clone(), a.handed);
                        }
                    }
                }
            }
            // Commit what was acknowledged while the partitions are still ours.
            if self.commits {
                if let Ok(mut acks) = self.acks.lock() {
                    let mut list = TopicPartitionList::new();
                    for p in &revoked {
                        if let Some(a) = acks.parts.get(p) {
                            if a.acked > a.committed.max(-1) {
                                let _ = list.add_partition_offset(&p.topic, p.partition, Offset::Offset(a.acked));
                            }
                        }
                    }
                    if list.count() > 0 {
                        let _ = consumer.store_offsets(&list);
                        let _ = consumer.commit(&list, CommitMode::Sync);
                    }
                    for p in &revoked {
                        acks.parts.remove(p);
                    }
                }
            } else if let Ok(mut acks) = self.acks.lock() {
                for p in &revoked {
                    acks.parts.remove(p);
                }
            }
            if let Ok(mut ev) = self.events.lock() {
                ev.push_back(Event::Revoked(revoked));
            }
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            if let Ok(mut ev) = self.events.lock() {
                ev.push_back(Event::Assigned(partitions(tpl)));
            }
        }
    }
}

/// Acknowledges the messages of one assigned partition.
#[derive(Clone)]
pub struct PartitionAck {
    consumer: Arc<BaseConsumer<Ctx>>,
    acks: Arc<Mutex<AckState>>,
    partition: PartitionId,
    epoch: u64,
    commits: bool,
    /// How long a synchronous commit may keep retrying.
    timeout: Duration,
    /// See [`PartitionAck::start`].
    start: Option<i64>,
}

impl fmt::Debug for PartitionAck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PartitionAck").field("partition", &self.partition).field("epoch", &self.epoch).finish()
    }
}

impl PartitionAck {
    /// With the caller's positions ([`ConsumerSettings::resume`]), for a
    /// partition it had no position for: where reading starts (the group's
    /// committed offset, else the partition's first or end offset as
    /// `start` says, as they were when it was assigned), so that the caller
    /// can keep it as the partition's position before any message arrives.
    pub fn start(&self) -> Option<i64> {
        self.start
    }

    /// Every message of the partition below `next_offset` has had all its
    /// effects. Acknowledgements never move back, and are ignored once the
    /// partition is revoked.
    pub fn ack(&self, next_offset: i64) {
        if let Ok(mut acks) = self.acks.lock() {
            if let Some(a) = acks.parts.get_mut(&self.partition) {
                if a.epoch == self.epoch && next_offset > a.acked {
                    a.acked = next_offset;
                }
            }
        }
    }

    /// Commits what is acknowledged for every partition assigned now,
    /// waiting for the broker's answer, and retrying with backoff for up to
    /// the connect timeout. Nothing to do without a group.
    pub fn commit(&self) -> Result<(), String> {
        if !self.commits {
            return Ok(());
        }
        let mut list = TopicPartitionList::new();
        let mut done = Vec::new();
        if let Ok(acks) = self.acks.lock() {
            for (p, a) in &acks.parts {
                if a.acked >= 0 && a.acked > a.committed {
                    list.add_partition_offset(&p.topic, p.partition, Offset::Offset(a.acked))
                        .map_err(|e| format!("cannot commit offsets of {p}: {e}"))?;
                    done.push((p.clone(), a.acked));
                }
            }
        }
        if list.count() == 0 {
            return Ok(());
        }
        if let Some((at, e)) = self.acks.lock().ok().and_then(|a| a.commit_failed.clone()) {
            if at.elapsed() < self.timeout {
                return Err(e);
            }
        }
        // Stored too: librdkafka commits what is stored when the consumer
        // closes, which must not take the committed offsets back.
        let _ = self.consumer.store_offsets(&list);
        // A commit can fail for a while (a coordinator moving, a request
        // timing out): retry with backoff until the timeout.
        let deadline = Instant::now() + self.timeout;
        let mut pause = Duration::from_millis(50);
        loop {
            match self.consumer.commit(&list, CommitMode::Sync) {
                Ok(()) => break,
                Err(e) if Instant::now() + pause < deadline => {
                    let _ = e;
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_secs(1));
                }
                Err(e) => {
                    let e = format!("cannot commit offsets within {:?}: {e}", self.timeout);
                    if let Ok(mut acks) = self.acks.lock() {
                        acks.commit_failed = Some((Instant::now(), e.clone()));
                    }
                    return Err(e);
                }
            }
        }
        if let Ok(mut acks) = self.acks.lock() {
            acks.commit_failed = None;
            for (p, offset) in done {
                if let Some(a) = acks.parts.get_mut(&p) {
                    a.committed = a.committed.max(offset);
                }
            }
        }
        Ok(())
    }

    /// The partition.
    pub fn partition(&self) -> &PartitionId {
        &self.partition
    }
}

/// The partition numbers of `topic`, checking within `timeout` that the
/// brokers answer and the topic exists.
fn partitions_of<C: ClientContext>(
    client: &rdkafka::client::Client<C>,
    brokers: &str,
    topic: &str,
    timeout: Duration,
) -> Result<Vec<i32>, ConnectError> {
    let md = client.fetch_metadata(Some(topic), timeout).map_err(|e| {
        ConnectError::Unreachable(format!(
            "cannot reach the Kafka brokers {brokers} within {timeout:?}: {e}; check the address, or give more time with --kafka-timeout"
        ))
    })?;
    match md.topics().iter().find(|t| t.name() == topic) {
        Some(t) if t.error().is_none() && !t.partitions().is_empty() => {
            Ok(t.partitions().iter().map(|p| p.id()).collect())
        }
        _ => Err(ConnectError::NoTopic(format!(
            "topic {topic:?} does not exist on {brokers}; create it, or check the name"
        ))),
    }
}

/// A connected consumer.
pub struct Consumer {
    consumer: Arc<BaseConsumer<Ctx>>,
    settings: ConsumerSettings,
    acks: Arc<Mutex<AckState>>,
    /// Every partition of the topics, for explicit assignment.
    all: Vec<PartitionId>,
}

fn config(settings: &ConsumerSettings) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &settings.brokers)
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "1000")
        .set("enable.partition.eof", if settings.bounded { "true" } else { "false" })
        .set("allow.auto.create.topics", "false")
        .set(
            "auto.offset.reset",
            match settings.start {
                StartFrom::Earliest => "earliest",
                StartFrom::Latest => "latest",
                StartFrom::Committed => "error",
            },
        );
    // librdkafka's default group id is only used without a group, for
    // metadata; nothing is committed then.
    c.set("group.id", settings.group.as_deref().unwrap_or("sluice-no-group"));
    for (k, v) in &settings.options {
        c.set(k, v);
    }
    // Never store an offset that was not acknowledged.
    c.set("enable.auto.offset.store", "false");
    c
}

impl Consumer {
    /// Creates the consumer, checks that the brokers answer and every topic
    /// exists, and subscribes (with a group) or assigns every partition.
    pub fn connect(mut settings: ConsumerSettings) -> Result<Self, ConnectError> {
        let acks = Arc::new(Mutex::new(AckState::default()));
        let ctx = Ctx {
            acks: acks.clone(),
            events: Mutex::new(VecDeque::new()),
            commits: settings.group.is_some(),
            // Kept here only: the rebalance callback reads and moves it.
            resume: settings.resume.take().map(Mutex::new),
        };
        let consumer: BaseConsumer<Ctx> =
            config(&settings).create_with_context(ctx).map_err(|e| ConnectError::Config(format!("kafka: {e}")))?;
        let mut all = Vec::new();
        for topic in &settings.topics {
            let ids = partitions_of(consumer.client(), &settings.brokers, topic, settings.connect_timeout)?;
            let name: Arc<str> = Arc::from(topic.as_str());
            all.extend(ids.into_iter().map(|partition| PartitionId { topic: name.clone(), partition }));
        }
        if settings.group.is_some() {
            let topics: Vec<&str> = settings.topics.iter().map(String::as_str).collect();
            consumer.subscribe(&topics).map_err(|e| ConnectError::Config(format!("kafka: cannot subscribe: {e}")))?;
        }
        Ok(Consumer { consumer: Arc::new(consumer), settings, acks, all })
    }

    fn assign_all(&self) -> Result<(), String> {
        if self.settings.start == StartFrom::Committed {
            return Err("from=committed needs a consumer group: add group=NAME".into());
        }
        let offset = if self.settings.start == StartFrom::Earliest { Offset::Beginning } else { Offset::End };
        let mut list = TopicPartitionList::new();
        {
            let resume = self.consumer.context().resume.as_ref().and_then(|r| r.lock().ok());
            for p in &self.all {
                let offset = resume.as_ref().and_then(|r| r.get(p)).map_or(offset, |&o| Offset::Offset(o));
                list.add_partition_offset(&p.topic, p.partition, offset).map_err(|e| format!("kafka: {e}"))?;
            }
        }
        self.consumer.assign(&list).map_err(|e| format!("kafka: cannot assign partitions: {e}"))?;
        if let Ok(mut ev) = self.consumer.context().events.lock() {
            ev.push_back(Event::Assigned(self.all.clone()));
        }
        Ok(())
    }

    /// Polls until `stop` is set, the handler says stop, or (bounded) every
    /// assigned partition was read to its end offset. Returns an error only
    /// for what the loop cannot recover from.
    pub fn run(self, stop: &AtomicBool, handler: &mut dyn Handler) -> Result<(), String> {
        if self.settings.group.is_none() {
            self.assign_all()?;
        }
        let mut run = Loop {
            c: &self,
            assigned: HashMap::new(),
            pending: VecDeque::new(),
            paused: false,
            down: false,
            errors_said: Vec::new(),
            cut_said: false,
            last_store: Instant::now(),
        };
        run.run(stop, handler)
    }
}

/// Per assigned partition, in the loop.
struct Assigned {
    /// Where a bounded read ends (the end offset when assigned).
    end: Option<i64>,
    /// The offset after the last message taken from librdkafka, once one
    /// was: where reading resumes after a pause.
    taken: Option<i64>,
    /// For a bounded read, where reading starts, when known.
    start: Option<i64>,
    /// librdkafka said the partition's end was reached (bounded reads).
    eof: bool,
}

/// What the brokers said of newly assigned partitions (see
/// [`Loop::ask_offsets`]).
#[derive(Default)]
struct Known {
    /// The group's committed offsets, for the partitions that have one;
    /// none when they could not be read.
    committed: Option<HashMap<PartitionId, i64>>,
    /// Each partition's first and end offsets, where they could be read.
    marks: HashMap<PartitionId, (i64, i64)>,
}

/// The consumer loop's state.
struct Loop<'a> {
    c: &'a Consumer,
    assigned: HashMap<PartitionId, Assigned>,
    /// Batches not taken yet, in order.
    pending: VecDeque<Batch>,
    paused: bool,
    /// Whether the brokers are down (said once).
    down: bool,
    /// Error kinds already said.
    errors_said: Vec<String>,
    /// Whether a cut message was said.
    cut_said: bool,
    last_store: Instant,
}

/// Largest batch buffer before it is handed over.
const BATCH_BYTES: usize = 64 * 1024;
/// How long one poll waits.
const POLL: Duration = Duration::from_millis(50);

impl Loop<'_> {
    fn run(&mut self, stop: &AtomicBool, handler: &mut dyn Handler) -> Result<(), String> {
        let mut batch: Option<Batch> = None;
        while !stop.load(Ordering::Relaxed) {
            if !self.events(handler) {
                return Ok(());
            }
            self.store();
            // Hand over what is waiting; while the handler is full, keep
            // polling with every partition paused.
            while let Some(b) = self.pending.pop_front() {
                let handed = (b.partition.clone(), b.next_offset);
                match handler.deliver(b) {
                    Delivery::Taken => {
                        if self.c.consumer.context().resume.is_some() {
                            if let Some(a) = self.c.acks.lock().ok().as_mut().and_then(|a| a.parts.get_mut(&handed.0)) {
                                a.handed = a.handed.max(handed.1);
                            }
                        }
                    }
                    Delivery::Full(b) => {
                        self.pending.push_front(b);
                        break;
                    }
                    Delivery::Closed => return Ok(()),
                }
            }
            if !self.pending.is_empty() {
                if !self.paused {
                    self.pause(true);
                }
                // Rebalances and errors are served by polling; messages are
                // not returned for paused partitions.
                match self.c.consumer.poll(POLL) {
                    Some(Ok(m)) => self.add(&mut batch, &m, handler),
                    Some(Err(KafkaError::PartitionEOF(n))) => self.eof(n),
                    Some(Err(e)) => self.error(e, String::new(), handler),
                    None => {}
                }
                self.close_batch(&mut batch);
                continue;
            }
            if self.paused {
                self.pause(false);
            }
            if self.bounded_done() {
                return Ok(());
            }
            // Collect what is there into batches, one partition at a time.
            let mut wait = POLL;
            loop {
                match self.c.consumer.poll(wait) {
                    Some(Ok(m)) => {
                        if self.down {
                            self.down = false;
                            handler.notice(Notice::Reconnected);
                        }
                        self.add(&mut batch, &m, handler);
                        wait = Duration::ZERO;
                        if batch.as_ref().is_some_and(|b| b.data.len() >= BATCH_BYTES) {
                            break;
                        }
                    }
                    Some(Err(KafkaError::PartitionEOF(n))) => {
                        self.eof(n);
                        break;
                    }
                    Some(Err(e)) => {
                        self.error(e, String::new(), handler);
                        break;
                    }
                    None => break,
                }
            }
            self.close_batch(&mut batch);
        }
        Ok(())
    }

    /// Queues a finished batch for the handler, and notes how far its
    /// partition was taken (once per batch, not per message).
    fn close_batch(&mut self, batch: &mut Option<Batch>) {
        if let Some(b) = batch.take() {
            if let Some(a) = self.assigned.get_mut(&b.partition) {
                a.taken = Some(b.next_offset);
            }
            self.pending.push_back(b);
        }
    }

    /// Adds a message to the batch, handing the batch to `pending` first if
    /// it is of another partition.
    fn add(&mut self, batch: &mut Option<Batch>, m: &rdkafka::message::BorrowedMessage<'_>, handler: &mut dyn Handler) {
        let same =
            batch.as_ref().is_some_and(|b| b.partition.partition == m.partition() && *b.partition.topic == *m.topic());
        if !same {
            self.close_batch(batch);
            let topic = self
                .assigned
                .keys()
                .find(|p| *p.topic == *m.topic())
                .map(|p| p.topic.clone())
                .unwrap_or_else(|| Arc::from(m.topic()));
            *batch = Some(Batch {
                partition: PartitionId { topic, partition: m.partition() },
                data: Vec::with_capacity(BATCH_BYTES.min(64 * 1024)),
                messages: Vec::new(),
                next_offset: m.offset(),
                time_kind: None,
                cut: 0,
            });
        }
        let Some(b) = batch.as_mut() else { return };
        b.next_offset = m.offset() + 1;
        let Some(payload) = m.payload() else { return };
        let limit = self.c.settings.max_message_bytes;
        let take = if payload.len() > limit {
            b.cut += 1;
            if !self.cut_said {
                self.cut_said = true;
                handler.notice(Notice::Cut {
                    partition: b.partition.clone(),
                    offset: m.offset(),
                    bytes: payload.len(),
                });
            }
            &payload[..limit]
        } else {
            payload
        };
        let start = b.data.len() as u32;
        b.data.extend_from_slice(take);
        let (kind, ms) = match m.timestamp() {
            Timestamp::CreateTime(t) => (Some(TimeKind::CreateTime), Some(t)),
            Timestamp::LogAppendTime(t) => (Some(TimeKind::LogAppendTime), Some(t)),
            Timestamp::NotAvailable => (None, None),
        };
        if b.time_kind.is_none() {
            b.time_kind = kind;
        }
        b.messages.push(Message { start, end: b.data.len() as u32, offset: m.offset(), timestamp_ms: ms });
    }

    /// Handles rebalance and error events; false to stop.
    fn events(&mut self, handler: &mut dyn Handler) -> bool {
        let events: Vec<Event> = match self.c.consumer.context().events.lock() {
            Ok(mut ev) => ev.drain(..).collect(),
            Err(_) => return true,
        };
        for e in events {
            match e {
                Event::Assigned(parts) => {
                    let new: Vec<PartitionId> = parts.into_iter().filter(|p| !self.assigned.contains_key(p)).collect();
                    let known = self.ask_offsets(&new);
                    let mut handed = Vec::with_capacity(new.len());
                    for p in new {
                        let epoch = match self.c.acks.lock() {
                            Ok(mut acks) => {
                                acks.epoch += 1;
                                let epoch = acks.epoch;
                                acks.parts.insert(
                                    p.clone(),
                                    PartAck { epoch, acked: -1, stored: -1, committed: -1, handed: -1 },
                                );
                                epoch
                            }
                            Err(_) => 0,
                        };
                        let ack = PartitionAck {
                            consumer: self.c.consumer.clone(),
                            acks: self.c.acks.clone(),
                            partition: p.clone(),
                            epoch,
                            commits: self.c.settings.group.is_some(),
                            timeout: self.c.settings.connect_timeout,
                            start: self.first_offset(&p, &known),
                        };
                        let (end, start) = self.bounds(&p, &known);
                        self.assigned.insert(p.clone(), Assigned { end, start, taken: None, eof: false });
                        if self.paused {
                            // Backpressure holds: the new partition waits too.
                            self.pause_one(&p);
                        }
                        handed.push((p, ack));
                    }
                    if !handed.is_empty() && !handler.assigned(handed) {
                        return false;
                    }
                    self.say_assignment(handler);
                }
                Event::Revoked(parts) => {
                    for p in parts {
                        self.assigned.remove(&p);
                        // Not handed over: dropped; the new owner reads them.
                        self.pending.retain(|b| b.partition != p);
                        handler.revoked(&p);
                    }
                    self.say_assignment(handler);
                }
                Event::Error(e, reason) => self.error(e, reason, handler),
            }
        }
        true
    }

    fn say_assignment(&self, handler: &mut dyn Handler) {
        let mut all: Vec<PartitionId> = self.assigned.keys().cloned().collect();
        all.sort();
        handler.notice(Notice::Assignment(all));
    }

    /// Whether the loop must know where `p` starts or ends: for a bounded
    /// read, and for the caller's positions when they have none for it.
    fn needs_offsets(&self, p: &PartitionId) -> bool {
        self.c.settings.bounded
            || self.c.consumer.context().resume.as_ref().is_some_and(|r| r.lock().is_ok_and(|r| !r.contains_key(p)))
    }

    /// Asks the brokers, once for all of `new` (newly assigned partitions),
    /// what [`Loop::first_offset`] and [`Loop::bounds`] need: the group's
    /// committed offsets, and each partition's first and end offsets. One
    /// request of each kind per assignment (librdkafka sends one per
    /// partition leader), however many partitions there are.
    fn ask_offsets(&self, new: &[PartitionId]) -> Known {
        let mut known = Known::default();
        let mut list = TopicPartitionList::new();
        for p in new.iter().filter(|p| self.needs_offsets(p)) {
            let _ = list.add_partition(&p.topic, p.partition);
        }
        if list.count() == 0 {
            return known;
        }
        let timeout = self.c.settings.connect_timeout;
        if self.c.settings.group.is_some() {
            known.committed = self.c.consumer.committed_offsets(list.clone(), timeout).ok().map(|c| offsets(&c));
        }
        // The first and the end offset are what the broker lists for the
        // special times "earliest" and "latest" (as librdkafka's own
        // watermark query asks).
        let listed = |at: Offset| {
            let mut times = list.clone();
            times.set_all_offsets(at).ok()?;
            self.c.consumer.offsets_for_times(times, timeout).ok().map(|got| offsets(&got))
        };
        if let (Some(low), Some(high)) = (listed(Offset::Beginning), listed(Offset::End)) {
            known.marks = low.into_iter().filter_map(|(p, l)| Some((l, *high.get(&p)?)).map(|m| (p, m))).collect();
        }
        known
    }

    /// With the caller's positions, for a partition it has none for: where
    /// reading starts (see [`PartitionAck::start`]); none if that cannot be
    /// told.
    fn first_offset(&self, p: &PartitionId, known: &Known) -> Option<i64> {
        let resume = self.c.consumer.context().resume.as_ref()?;
        if resume.lock().ok()?.contains_key(p) {
            return None;
        }
        if self.c.settings.group.is_some() {
            if let Some(&o) = known.committed.as_ref()?.get(p) {
                return Some(o);
            }
        }
        let &(low, high) = known.marks.get(p)?;
        match self.c.settings.start {
            StartFrom::Earliest => Some(low),
            StartFrom::Latest => Some(high),
            StartFrom::Committed => None,
        }
    }

    /// For a bounded read: the partition's end offset now, and where
    /// reading starts (to know when there is nothing to read at all).
    fn bounds(&self, p: &PartitionId, known: &Known) -> (Option<i64>, Option<i64>) {
        if !self.c.settings.bounded {
            return (None, None);
        }
        let Some(&(low, high)) = known.marks.get(p) else {
            // Unknown: read until the partition's end shows up.
            return (None, None);
        };
        let group = self.c.settings.group.is_some();
        let committed = if group { known.committed.as_ref().and_then(|c| c.get(p).copied()) } else { None };
        let start = match (committed, group, self.c.settings.start) {
            (Some(c), _, _) => Some(c),
            // A group whose committed offset could not be read: unknown;
            // the end of the partition (EOF) tells.
            (None, true, _) => None,
            (None, false, StartFrom::Earliest) => Some(low),
            (None, false, _) => Some(high),
        };
        (Some(high), start)
    }

    /// A bounded read is over when partitions are assigned and each was
    /// read to its end offset.
    fn bounded_done(&self) -> bool {
        self.c.settings.bounded
            && !self.assigned.is_empty()
            && self
                .assigned
                .values()
                .all(|a| a.eof || a.end.is_some_and(|end| a.taken.or(a.start).is_some_and(|next| next >= end)))
    }

    /// Pauses or resumes every assigned partition. librdkafka drops what it
    /// had fetched for a paused partition and resumes after the last
    /// message it returned; each partition is also sought there explicitly
    /// (the offset after the last message taken), so that where reading
    /// resumes does not rest on that.
    fn pause(&mut self, pause: bool) {
        let mut list = TopicPartitionList::new();
        for p in self.assigned.keys() {
            let _ = list.add_partition(&p.topic, p.partition);
        }
        if pause {
            let _ = self.c.consumer.pause(&list);
        } else {
            for (p, a) in &self.assigned {
                if let Some(next) = a.taken {
                    let _ = self.c.consumer.seek(&p.topic, p.partition, Offset::Offset(next), Duration::from_secs(10));
                }
            }
            let _ = self.c.consumer.resume(&list);
        }
        self.paused = pause;
    }

    fn pause_one(&self, p: &PartitionId) {
        let mut list = TopicPartitionList::new();
        let _ = list.add_partition(&p.topic, p.partition);
        let _ = self.c.consumer.pause(&list);
    }

    /// The end of partition number `n` (of some topic) was reached. Which
    /// topic is not said: with several topics, only the partitions whose
    /// position is at their end offset are marked.
    fn eof(&mut self, n: i32) {
        let numbered: Vec<PartitionId> = self.assigned.keys().filter(|p| p.partition == n).cloned().collect();
        if numbered.len() == 1 {
            if let Some(a) = self.assigned.get_mut(&numbered[0]) {
                a.eof = true;
            }
            return;
        }
        let Ok(positions) = self.c.consumer.position() else { return };
        for p in numbered {
            let pos = positions.find_partition(&p.topic, p.partition).and_then(|e| match e.offset() {
                Offset::Offset(o) => Some(o),
                _ => None,
            });
            if let Some(a) = self.assigned.get_mut(&p) {
                if pos.is_some_and(|o| a.end.is_some_and(|end| o >= end)) {
                    a.eof = true;
                }
            }
        }
    }

    /// Hands librdkafka's offset store what was acknowledged (at most every
    /// 100 ms); librdkafka commits it.
    fn store(&mut self) {
        if self.c.settings.group.is_none() || self.last_store.elapsed() < Duration::from_millis(100) {
            return;
        }
        self.last_store = Instant::now();
        let Ok(mut acks) = self.c.acks.lock() else { return };
        let mut list = TopicPartitionList::new();
        let mut stored = Vec::new();
        for (p, a) in acks.parts.iter() {
            if a.acked > a.stored && list.add_partition_offset(&p.topic, p.partition, Offset::Offset(a.acked)).is_ok() {
                stored.push((p.clone(), a.acked));
            }
        }
        if list.count() > 0 && self.c.consumer.store_offsets(&list).is_ok() {
            for (p, offset) in stored {
                if let Some(a) = acks.parts.get_mut(&p) {
                    a.stored = a.stored.max(offset);
                }
            }
        }
    }

    /// Says an error once per kind; brokers down once until reconnected.
    fn error(&mut self, e: KafkaError, reason: String, handler: &mut dyn Handler) {
        let text = if reason.is_empty() { e.to_string() } else { format!("{e}: {reason}") };
        let all_down = matches!(e.rdkafka_error_code(), Some(rdkafka::types::RDKafkaErrorCode::AllBrokersDown));
        if all_down {
            if !self.down {
                self.down = true;
                handler.notice(Notice::BrokersDown(text));
            }
            return;
        }
        let kind = format!("{:?}", e.rdkafka_error_code());
        if !self.errors_said.contains(&kind) {
            self.errors_said.push(kind);
            handler.notice(Notice::Error(text));
        }
    }
}

/// What the producer context keeps: the first delivery failure.
struct ProdCtx {
    failed: Mutex<Option<String>>,
}

impl ClientContext for ProdCtx {
    fn log(&self, _level: rdkafka::config::RDKafkaLogLevel, _fac: &str, _log_message: &str) {}
    fn error(&self, error: KafkaError, reason: &str) {
        // Transient errors are retried by librdkafka; a delivery that fails
        // for good comes through `delivery`.
        let _ = (error, reason);
    }
}

impl ProducerContext for ProdCtx {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            if let Ok(mut f) = self.failed.lock() {
                f.get_or_insert_with(|| e.to_string());
            }
        }
    }
}

/// An idempotent producer to one topic (`enable.idempotence=true`,
/// `acks=all`).
pub struct Producer {
    inner: BaseProducer<ProdCtx>,
    topic: String,
    brokers: String,
}

impl Producer {
    /// Connects, checking within `timeout` that the brokers answer and the
    /// topic exists. `options` are librdkafka properties, passed through;
    /// idempotence and `acks=all` cannot be turned off.
    pub fn connect(
        brokers: &str,
        topic: &str,
        options: &[(String, String)],
        timeout: Duration,
    ) -> Result<Self, ConnectError> {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", brokers).set("linger.ms", "5");
        for (k, v) in options {
            c.set(k, v);
        }
        c.set("enable.idempotence", "true").set("acks", "all");
        let inner: BaseProducer<ProdCtx> = c
            .create_with_context(ProdCtx { failed: Mutex::new(None) })
            .map_err(|e| ConnectError::Config(format!("kafka: {e}")))?;
        partitions_of(inner.client(), brokers, topic, timeout)?;
        Ok(Producer { inner, topic: topic.to_string(), brokers: brokers.to_string() })
    }

    /// Queues a record; waits while librdkafka's queue is full.
    pub fn send(&self, key: &[u8], value: &[u8]) -> Result<(), String> {
        let mut record = BaseRecord::to(&self.topic).key(key).payload(value);
        loop {
            match self.inner.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    self.inner.poll(Duration::from_millis(10));
                }
                Err((e, _)) => return Err(format!("kafka {}: cannot produce to {}: {e}", self.brokers, self.topic)),
            }
        }
    }

    /// Waits until every queued record is acknowledged by the brokers (or
    /// `timeout`); fails if any record could not be delivered.
    pub fn flush(&self, timeout: Duration) -> Result<(), String> {
        self.inner.flush(timeout).map_err(|e| {
            format!("kafka {}: records to {} not delivered within {timeout:?}: {e}", self.brokers, self.topic)
        })?;
        if let Some(e) = self.inner.context().failed.lock().ok().and_then(|f| f.clone()) {
            return Err(format!("kafka {}: a record to {} was not delivered: {e}", self.brokers, self.topic));
        }
        Ok(())
    }
}

/// Creates a topic with `partitions` partitions (replication factor 1), for
/// tests and examples. An existing topic is not an error.
pub fn create_topic(brokers: &str, topic: &str, partitions: i32, timeout: Duration) -> Result<(), String> {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", brokers).create().map_err(|e| format!("kafka {brokers}: {e}"))?;
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let opts = AdminOptions::new().operation_timeout(Some(timeout)).request_timeout(Some(timeout));
    let results = futures_executor::block_on(admin.create_topics([&new], &opts))
        .map_err(|e| format!("kafka {brokers}: cannot create topic {topic}: {e}"))?;
    for r in results {
        match r {
            Ok(_) => {}
            Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => return Err(format!("kafka {brokers}: cannot create topic {name}: {code}")),
        }
    }
    Ok(())
}

/// A partition's committed offset for a group, and its end offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionOffsets {
    /// The partition number.
    pub partition: i32,
    /// The group's committed offset, if any.
    pub committed: Option<i64>,
    /// The end offset (high watermark) as the broker reports it.
    pub end: i64,
}

/// The committed and end offsets of every partition of `topic` for
/// `group`: to check what a group has consumed.
pub fn group_offsets(
    brokers: &str,
    group: &str,
    topic: &str,
    timeout: Duration,
) -> Result<Vec<PartitionOffsets>, String> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .map_err(|e| format!("kafka {brokers}: {e}"))?;
    let md = c.fetch_metadata(Some(topic), timeout).map_err(|e| format!("kafka {brokers}: {e}"))?;
    let t = md.topics().iter().find(|t| t.name() == topic).ok_or_else(|| format!("no topic {topic}"))?;
    let mut list = TopicPartitionList::new();
    for p in t.partitions() {
        list.add_partition(topic, p.id());
    }
    let committed = c.committed_offsets(list, timeout).map_err(|e| format!("kafka {brokers}: {e}"))?;
    let mut out = Vec::new();
    for p in t.partitions() {
        let (_, end) = c.fetch_watermarks(topic, p.id(), timeout).map_err(|e| format!("kafka {brokers}: {e}"))?;
        let committed = committed.find_partition(topic, p.id()).and_then(|e| match e.offset() {
            Offset::Offset(o) => Some(o),
            _ => None,
        });
        out.push(PartitionOffsets { partition: p.id(), committed, end });
    }
    out.sort_by_key(|p| p.partition);
    Ok(out)
}
