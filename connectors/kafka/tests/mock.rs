//! Fault injection with librdkafka's in-process cluster (`MockCluster`): a
//! broker down for 30 s and back, failing commit and fetch requests, and a rebalance
//! mid-stream. What must hold: no message is lost, and the committed
//! offsets never pass a message that was not acknowledged.
//!
//! The handler acknowledges late on purpose, like an engine whose windows
//! are still open: only batches older than the last few are acknowledged.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use rdkafka::mocking::MockCluster;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use sluice_kafka::{
    group_offsets, Batch, Consumer, ConsumerSettings, Delivery, Handler, Notice, PartitionAck, PartitionId, Producer,
    StartFrom,
};

const TOPIC: &str = "events";
const TIMEOUT: Duration = Duration::from_secs(10);

/// What every consumer of a test saw and acknowledged, shared with the test.
#[derive(Default)]
struct Seen {
    /// Every (partition, offset) received, with its payload.
    got: BTreeMap<(i32, i64), Vec<u8>>,
    /// Per partition, the highest offset acknowledged (everything below is).
    acked: HashMap<i32, i64>,
    /// Notices, for the failure messages.
    notices: Vec<String>,
    /// Batches refused (backpressure).
    refused: u64,
    /// Messages received, counting each time one is received again.
    received: u64,
}

/// Acknowledges all but the last `lag` batches of each partition.
struct LaggingAcks {
    seen: Arc<Mutex<Seen>>,
    lag: usize,
    /// Refuse every n-th batch once (a full engine queue), if set.
    refuse_every: Option<u64>,
    /// Batches offered so far.
    offered: u64,
    acks: HashMap<PartitionId, PartitionAck>,
    /// Per partition, the next offsets of batches not acknowledged yet.
    open: HashMap<PartitionId, Vec<i64>>,
}

impl LaggingAcks {
    fn new(seen: Arc<Mutex<Seen>>, lag: usize) -> Self {
        LaggingAcks { seen, lag, refuse_every: None, offered: 0, acks: HashMap::new(), open: HashMap::new() }
    }

    /// Acknowledges everything received (the end of a run), and commits.
    fn finish(&mut self) {
        for (p, open) in self.open.drain() {
            if let (Some(&last), Some(ack)) = (open.last(), self.acks.get(&p)) {
                ack.ack(last);
                let mut s = self.seen.lock().unwrap();
                let a = s.acked.entry(p.partition).or_insert(0);
                *a = (*a).max(last);
            }
        }
        if let Some(ack) = self.acks.values().next() {
            ack.commit().unwrap();
        }
    }
}

impl Handler for LaggingAcks {
    fn assigned(&mut self, partitions: Vec<(PartitionId, PartitionAck)>) -> bool {
        for (partition, ack) in partitions {
            self.open.insert(partition.clone(), Vec::new());
            self.acks.insert(partition, ack);
        }
        true
    }

    fn revoked(&mut self, partition: &PartitionId) {
        self.acks.remove(partition);
        self.open.remove(partition);
    }

    fn deliver(&mut self, batch: Batch) -> Delivery {
        self.offered += 1;
        if self.refuse_every.is_some_and(|n| self.offered.is_multiple_of(n)) {
            self.seen.lock().unwrap().refused += 1;
            return Delivery::Full(batch);
        }
        let mut s = self.seen.lock().unwrap();
        s.received += batch.messages.len() as u64;
        for m in &batch.messages {
            s.got.insert((batch.partition.partition, m.offset), batch.data[m.start as usize..m.end as usize].to_vec());
        }
        let open = self.open.entry(batch.partition.clone()).or_default();
        open.push(batch.next_offset);
        if open.len() > self.lag {
            let upto = open.remove(0);
            if let Some(ack) = self.acks.get(&batch.partition) {
                ack.ack(upto);
                let a = s.acked.entry(batch.partition.partition).or_insert(0);
                *a = (*a).max(upto);
            }
        }
        Delivery::Taken
    }

    fn notice(&mut self, notice: Notice) {
        self.seen.lock().unwrap().notices.push(format!("{notice:?}"));
    }
}

/// Runs a consumer of `group` on a thread until `stop`; then acknowledges
/// everything it received and commits, as the end of a run does.
fn consume(brokers: &str, group: &str, seen: Arc<Mutex<Seen>>, stop: Arc<AtomicBool>) -> thread::JoinHandle<()> {
    consume_refusing(brokers, group, seen, stop, None)
}

/// Like [`consume`], refusing every `refuse_every`-th batch once.
fn consume_refusing(
    brokers: &str,
    group: &str,
    seen: Arc<Mutex<Seen>>,
    stop: Arc<AtomicBool>,
    refuse_every: Option<u64>,
) -> thread::JoinHandle<()> {
    let settings = group_settings(brokers, group);
    thread::spawn(move || {
        let consumer = Consumer::connect(settings).unwrap();
        let mut handler = LaggingAcks::new(seen, 3);
        handler.refuse_every = refuse_every;
        consumer.run(&stop, &mut handler).unwrap();
        handler.finish();
    })
}

/// A member of `group` reading from the earliest offset, with timeouts
/// short enough for tests.
fn group_settings(brokers: &str, group: &str) -> ConsumerSettings {
    let mut settings = ConsumerSettings::new(brokers, vec![TOPIC.to_string()]);
    settings.group = Some(group.to_string());
    settings.start = StartFrom::Earliest;
    settings.connect_timeout = TIMEOUT;
    settings.options = vec![
        ("session.timeout.ms".into(), "6000".into()),
        ("heartbeat.interval.ms".into(), "500".into()),
        ("reconnect.backoff.max.ms".into(), "200".into()),
    ];
    settings
}

fn produce(brokers: &str, from: usize, n: usize) {
    let p = Producer::connect(brokers, TOPIC, &[], TIMEOUT).unwrap();
    for i in from..from + n {
        p.send(i.to_string().as_bytes(), format!("message {i}").as_bytes()).unwrap();
    }
    p.flush(Duration::from_secs(30)).unwrap();
}

/// Asserts the group's committed offsets never pass what was acknowledged.
fn check_commits(brokers: &str, group: &str, seen: &Mutex<Seen>) {
    let offsets = group_offsets(brokers, group, TOPIC, TIMEOUT).unwrap();
    let s = seen.lock().unwrap();
    for p in offsets {
        if let Some(c) = p.committed {
            let acked = s.acked.get(&p.partition).copied().unwrap_or(0);
            assert!(c <= acked, "partition {}: committed {c} passes acknowledged {acked}", p.partition);
        }
    }
}

/// Waits until `n` distinct messages were received, checking commits.
fn wait_for(brokers: &str, group: &str, seen: &Mutex<Seen>, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.lock().unwrap().got.len() < n {
        check_commits(brokers, group, seen);
        let s = seen.lock().unwrap();
        assert!(Instant::now() < deadline, "{} of {n} messages after 60 s; notices {:?}", s.got.len(), s.notices);
        drop(s);
        thread::sleep(Duration::from_millis(100));
    }
}

/// Every message produced was received: offsets 0..end of each partition,
/// with the payloads produced.
fn assert_nothing_lost(brokers: &str, group: &str, seen: &Mutex<Seen>, produced: usize) {
    let offsets = group_offsets(brokers, group, TOPIC, TIMEOUT).unwrap();
    let s = seen.lock().unwrap();
    let payloads: BTreeSet<&[u8]> = s.got.values().map(Vec::as_slice).collect();
    assert_eq!(payloads.len(), produced, "every payload once");
    for p in &offsets {
        for o in 0..p.end {
            assert!(s.got.contains_key(&(p.partition, o)), "partition {} offset {o} never received", p.partition);
        }
        assert_eq!(p.committed, Some(p.end), "after the end of the run, committed is the end: {offsets:?}");
    }
}

#[test]
fn a_thirty_second_broker_outage_and_failing_requests_lose_nothing_and_never_commit_ahead() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic(TOPIC, 3, 1).unwrap();
    let brokers = cluster.bootstrap_servers();
    produce(&brokers, 0, 2000);

    let seen = Arc::new(Mutex::new(Seen::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let consumer = consume(&brokers, "down-and-back", seen.clone(), stop.clone());
    wait_for(&brokers, "down-and-back", &seen, 500);

    // The broker goes away for 30 s while messages are read (1500 are
    // still to come), then comes back.
    cluster.broker_down(1).unwrap();
    thread::sleep(Duration::from_secs(30));
    cluster.broker_up(1).unwrap();
    // Commits and fetches fail for a while.
    let timed_out = RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT;
    cluster.request_errors(RDKafkaApiKey::OffsetCommit, &[timed_out; 5]);
    cluster.request_errors(RDKafkaApiKey::Fetch, &[timed_out; 5]);
    produce(&brokers, 2000, 2000);
    wait_for(&brokers, "down-and-back", &seen, 4000);
    check_commits(&brokers, "down-and-back", &seen);

    stop.store(true, Ordering::Relaxed);
    consumer.join().unwrap();
    assert_nothing_lost(&brokers, "down-and-back", &seen, 4000);
    let s = seen.lock().unwrap();
    assert!(s.notices.iter().any(|n| n.contains("Assignment")), "{:?}", s.notices);
    let said = |what: &str| s.notices.iter().filter(|n| n.contains(what)).count();
    assert_eq!(
        (said("BrokersDown"), said("Reconnected")),
        (1, 1),
        "the outage and the return are each said once, not per message: {:?}",
        s.notices
    );
}

#[test]
fn a_rebalance_mid_stream_loses_nothing_and_never_commits_ahead() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic(TOPIC, 4, 1).unwrap();
    let brokers = cluster.bootstrap_servers();
    produce(&brokers, 0, 2000);

    let seen = Arc::new(Mutex::new(Seen::default()));
    let (stop_a, stop_b) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
    let a = consume(&brokers, "pair", seen.clone(), stop_a.clone());
    wait_for(&brokers, "pair", &seen, 500);
    // A second member joins: the partitions are split between the two.
    let b = consume(&brokers, "pair", seen.clone(), stop_b.clone());
    produce(&brokers, 2000, 2000);
    wait_for(&brokers, "pair", &seen, 4000);
    check_commits(&brokers, "pair", &seen);

    stop_a.store(true, Ordering::Relaxed);
    a.join().unwrap();
    // The first member left: the second takes its partitions over.
    produce(&brokers, 4000, 1000);
    wait_for(&brokers, "pair", &seen, 5000);
    stop_b.store(true, Ordering::Relaxed);
    b.join().unwrap();
    assert_nothing_lost(&brokers, "pair", &seen, 5000);
    let s = seen.lock().unwrap();
    let assignments = s.notices.iter().filter(|n| n.contains("Assignment")).count();
    assert!(assignments >= 3, "the group rebalanced: {:?}", s.notices);
}

#[test]
fn a_full_engine_pauses_the_partitions_and_loses_nothing() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic(TOPIC, 3, 1).unwrap();
    let brokers = cluster.bootstrap_servers();
    // Many small record batches, so that pauses land in the middle of what
    // librdkafka has fetched.
    produce(&brokers, 0, 3000);
    let seen = Arc::new(Mutex::new(Seen::default()));
    let stop = Arc::new(AtomicBool::new(false));
    // Every batch is refused once before it is taken.
    let consumer = consume_refusing(&brokers, "full", seen.clone(), stop.clone(), Some(2));
    wait_for(&brokers, "full", &seen, 3000);
    produce(&brokers, 3000, 3000);
    wait_for(&brokers, "full", &seen, 6000);
    stop.store(true, Ordering::Relaxed);
    consumer.join().unwrap();
    assert!(seen.lock().unwrap().refused >= 3, "the handler was full several times");
    assert_nothing_lost(&brokers, "full", &seen, 6000);
}

#[test]
fn a_group_member_resumes_at_the_callers_offsets_not_the_committed_ones() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic(TOPIC, 3, 1).unwrap();
    let brokers = cluster.bootstrap_servers();
    produce(&brokers, 0, 900);
    // The group has committed offsets: a first member read everything and
    // committed 20 for partition 0 and 200 for partition 1.
    let first = Consumer::connect(group_settings(&brokers, "resume")).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let committing = {
        let (stop, seen) = (stop.clone(), seen.clone());
        thread::spawn(move || {
            struct CommitAt(Arc<Mutex<Seen>>, HashMap<PartitionId, PartitionAck>);
            impl Handler for CommitAt {
                fn assigned(&mut self, partitions: Vec<(PartitionId, PartitionAck)>) -> bool {
                    for (p, ack) in partitions {
                        ack.ack([20, 200, 0][p.partition as usize]);
                        self.1.insert(p, ack);
                    }
                    true
                }
                fn revoked(&mut self, _p: &PartitionId) {}
                fn deliver(&mut self, batch: Batch) -> Delivery {
                    self.0.lock().unwrap().received += batch.messages.len() as u64;
                    Delivery::Taken
                }
                fn notice(&mut self, _n: Notice) {}
            }
            let mut h = CommitAt(seen, HashMap::new());
            first.run(&stop, &mut h).unwrap();
            h.1.values().next().unwrap().commit().unwrap();
        })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.lock().unwrap().received < 900 {
        assert!(Instant::now() < deadline, "the first member did not read everything");
        thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::Relaxed);
    committing.join().unwrap();
    let offsets = group_offsets(&brokers, "resume", TOPIC, TIMEOUT).unwrap();
    let ends: HashMap<i32, i64> = offsets.iter().map(|p| (p.partition, p.end)).collect();
    let committed: HashMap<i32, Option<i64>> = offsets.iter().map(|p| (p.partition, p.committed)).collect();
    assert_eq!((committed[&0], committed[&1]), (Some(20), Some(200)), "{offsets:?}");
    assert!(ends.values().all(|&e| e > 200), "every partition has messages: {ends:?}");

    // The caller's checkpoint says 50 for partition 0 (ahead of the group)
    // and 120 for partition 1 (behind it); partition 2 is not in it.
    let topic: Arc<str> = Arc::from(TOPIC);
    let resume = HashMap::from([
        (PartitionId { topic: topic.clone(), partition: 0 }, 50),
        (PartitionId { topic: topic.clone(), partition: 1 }, 120),
    ]);
    let mut settings = group_settings(&brokers, "resume");
    settings.resume = Some(resume);
    let seen = Arc::new(Mutex::new(Seen::default()));
    let starts = Arc::new(Mutex::new(HashMap::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let consumer = {
        let (seen, stop, starts) = (seen.clone(), stop.clone(), starts.clone());
        thread::spawn(move || {
            struct Noting(LaggingAcks, Arc<Mutex<HashMap<i32, Option<i64>>>>);
            impl Handler for Noting {
                fn assigned(&mut self, partitions: Vec<(PartitionId, PartitionAck)>) -> bool {
                    self.1.lock().unwrap().extend(partitions.iter().map(|(p, ack)| (p.partition, ack.start())));
                    self.0.assigned(partitions)
                }
                fn revoked(&mut self, p: &PartitionId) {
                    self.0.revoked(p)
                }
                fn deliver(&mut self, batch: Batch) -> Delivery {
                    self.0.deliver(batch)
                }
                fn notice(&mut self, n: Notice) {
                    self.0.notice(n)
                }
            }
            let consumer = Consumer::connect(settings).unwrap();
            consumer.run(&stop, &mut Noting(LaggingAcks::new(seen, 0), starts)).unwrap();
        })
    };
    // Partition 2 starts at the group's committed offset: 0.
    let want = (ends[&0] - 50 + ends[&1] - 120 + ends[&2]) as usize;
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.lock().unwrap().got.len() < want {
        assert!(Instant::now() < deadline, "{} of {want} messages", seen.lock().unwrap().got.len());
        thread::sleep(Duration::from_millis(50));
    }
    thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    consumer.join().unwrap();
    let s = seen.lock().unwrap();
    let floor = |p: i32| [50, 120, 0][p as usize];
    for (&p, &end) in &ends {
        for o in 0..end {
            assert_eq!(s.got.contains_key(&(p, o)), o >= floor(p), "partition {p} offset {o}");
        }
    }
    assert_eq!(s.received, s.got.len() as u64, "no message received twice");
    // Told where the partition without a position starts; not the others.
    let starts = starts.lock().unwrap();
    assert_eq!((starts[&0], starts[&1], starts[&2]), (None, None, Some(0)));
}

/// Records where each newly assigned partition starts, and how many
/// partitions each assignment brought.
struct Starts {
    starts: Arc<Mutex<HashMap<i32, Option<i64>>>>,
    batches: Arc<Mutex<Vec<usize>>>,
}

impl Handler for Starts {
    fn assigned(&mut self, partitions: Vec<(PartitionId, PartitionAck)>) -> bool {
        self.batches.lock().unwrap().push(partitions.len());
        self.starts.lock().unwrap().extend(partitions.iter().map(|(p, ack)| (p.partition, ack.start())));
        true
    }
    fn revoked(&mut self, _p: &PartitionId) {}
    fn deliver(&mut self, _batch: Batch) -> Delivery {
        Delivery::Taken
    }
    fn notice(&mut self, _n: Notice) {}
}

#[test]
fn partitions_without_a_position_are_told_the_first_or_end_offset_all_in_one_assignment() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic(TOPIC, 3, 1).unwrap();
    let brokers = cluster.bootstrap_servers();
    produce(&brokers, 0, 900);
    // The end offsets as librdkafka's watermark query reports them, one
    // partition at a time: what the loop's one listing must agree with.
    let ends: HashMap<i32, i64> =
        group_offsets(&brokers, "nobody", TOPIC, TIMEOUT).unwrap().iter().map(|p| (p.partition, p.end)).collect();
    assert!(ends.values().all(|&e| e > 0), "every partition has messages: {ends:?}");
    let topic: Arc<str> = Arc::from(TOPIC);
    for start in [StartFrom::Latest, StartFrom::Earliest] {
        // Positions for partition 1 only; no group: every partition is
        // assigned at once.
        let mut settings = ConsumerSettings::new(brokers.clone(), vec![TOPIC.to_string()]);
        settings.start = start;
        settings.connect_timeout = TIMEOUT;
        settings.resume = Some(HashMap::from([(PartitionId { topic: topic.clone(), partition: 1 }, 7)]));
        let starts = Arc::new(Mutex::new(HashMap::new()));
        let batches = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let run = {
            let mut handler = Starts { starts: starts.clone(), batches: batches.clone() };
            let stop = stop.clone();
            thread::spawn(move || Consumer::connect(settings).unwrap().run(&stop, &mut handler).unwrap())
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while starts.lock().unwrap().len() < 3 {
            assert!(Instant::now() < deadline, "partitions not assigned after 30 s");
            thread::sleep(Duration::from_millis(20));
        }
        stop.store(true, Ordering::Relaxed);
        run.join().unwrap();
        let starts = starts.lock().unwrap();
        let want = |p: i32| if start == StartFrom::Latest { ends[&p] } else { 0 };
        assert_eq!(
            (starts[&0], starts[&1], starts[&2]),
            (Some(want(0)), None, Some(want(2))),
            "{start:?}: told where partitions 0 and 2 start; partition 1 has its position"
        );
        assert_eq!(*batches.lock().unwrap(), vec![3], "one assignment of three partitions");
    }
}
