//! Load for the Kafka benchmarks (`benches/kafka.sh`).
//!
//! ```text
//! kafka_load produce BROKERS TOPIC RATE COUNT [KEY=VALUE...]   # RATE messages/s (0: flat out); producer options
//! kafka_load drain BROKERS TOPIC                # read the topic to its end offsets with no engine
//! kafka_load latency BROKERS TOPIC COUNT [KEY=VALUE...]   # follow from the end with no engine: receipt - send time
//! ```
//!
//! `produce` sends lines of eight words, each starting with its intended
//! send time in Unix ns: message i is due at start + i/RATE, and when the
//! producer falls behind it still carries its due time, so latency measured
//! from it (`--event-time first-field`) is corrected for coordinated
//! omission. `linger.ms=0`: each message leaves at once.
//!
//! `drain` reads every partition from the start to its end offset with the
//! bare consumer loop and a handler that only counts: what the broker and
//! librdkafka deliver, without sluice's engine.

use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sluice_kafka::{
    Batch, Consumer, ConsumerSettings, Delivery, Handler, Notice, PartitionAck, PartitionId, StartFrom,
};

const WORDS: [&str; 16] = [
    "the", "whale", "sea", "ship", "captain", "ahab", "white", "water", "boat", "men", "old", "time", "head", "long",
    "stubb", "queequeg",
];

fn produce(brokers: &str, topic: &str, rate: f64, count: u64, extra: &[&str]) {
    let mut options = vec![("linger.ms".to_string(), "0".to_string())];
    for kv in extra {
        let (k, v) = kv.split_once('=').expect("options are KEY=VALUE");
        options.push((k.to_string(), v.to_string()));
    }
    let p = sluice_kafka::Producer::connect(brokers, topic, &options, Duration::from_secs(30)).expect("producer");
    let wall0 = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64;
    let start = Instant::now();
    let mut line = String::with_capacity(128);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for i in 0..count {
        let due = if rate > 0.0 { Duration::from_secs_f64(i as f64 / rate) } else { start.elapsed() };
        if let Some(wait) = due.checked_sub(start.elapsed()) {
            std::thread::sleep(wait);
        }
        line.clear();
        use std::fmt::Write;
        let _ = write!(line, "{}", wall0 + due.as_nanos() as u64);
        for _ in 0..8 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            line.push(' ');
            line.push_str(WORDS[(x % 16) as usize]);
        }
        p.send(&i.to_le_bytes(), line.as_bytes()).expect("send");
    }
    p.flush(Duration::from_secs(120)).expect("flush");
    let secs = start.elapsed().as_secs_f64();
    eprintln!("produced {count} messages in {secs:.2} s: {:.0} messages/s", count as f64 / secs);
}

struct Counter {
    messages: u64,
    bytes: u64,
    /// With `latency`: receipt time minus the first field, per message, ns.
    lat: Option<Vec<u64>>,
    /// Stop after this many messages (latency mode).
    stop_at: u64,
}

impl Handler for Counter {
    fn assigned(&mut self, _: Vec<(PartitionId, PartitionAck)>) -> bool {
        true
    }
    fn revoked(&mut self, _: &PartitionId) {}
    fn deliver(&mut self, batch: Batch) -> Delivery {
        self.messages += batch.messages.len() as u64;
        self.bytes += batch.data.len() as u64;
        if let Some(lat) = &mut self.lat {
            let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64;
            for m in &batch.messages {
                let text = &batch.data[m.start as usize..m.end as usize];
                let first = text.split(|&b| b == b' ').next().unwrap_or_default();
                if let Some(t) = std::str::from_utf8(first).ok().and_then(|f| f.parse::<u64>().ok()) {
                    lat.push(now.saturating_sub(t));
                }
            }
            if self.messages >= self.stop_at {
                return Delivery::Closed;
            }
        }
        Delivery::Taken
    }
    fn notice(&mut self, _: Notice) {}
}

/// Follows a topic from its end with the bare consumer loop until `count`
/// messages arrived, and prints receipt time − intended send time: the
/// latency of the producer, the broker and librdkafka, without sluice.
fn latency(brokers: &str, topic: &str, count: u64, extra: &[&str]) {
    let mut settings = ConsumerSettings::new(brokers, vec![topic.to_string()]);
    settings.start = StartFrom::Latest;
    for kv in extra {
        let (k, v) = kv.split_once('=').expect("options are KEY=VALUE");
        settings.options.push((k.to_string(), v.to_string()));
    }
    let consumer = Consumer::connect(settings).expect("consumer");
    let mut counter = Counter { messages: 0, bytes: 0, lat: Some(Vec::new()), stop_at: count };
    consumer.run(&AtomicBool::new(false), &mut counter).expect("latency");
    let mut lat = counter.lat.unwrap_or_default();
    lat.sort_unstable();
    let q = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1))).copied().unwrap_or(0) / 1000
    };
    println!(
        "bare consumer: {} messages, receipt - intended send (µs): p50 {} p90 {} p99 {} max {}",
        lat.len(),
        q(0.5),
        q(0.9),
        q(0.99),
        lat.last().copied().unwrap_or(0) / 1000
    );
}

fn drain(brokers: &str, topic: &str) {
    let mut settings = ConsumerSettings::new(brokers, vec![topic.to_string()]);
    settings.start = StartFrom::Earliest;
    settings.bounded = true;
    let consumer = Consumer::connect(settings).expect("consumer");
    let mut counter = Counter { messages: 0, bytes: 0, lat: None, stop_at: 0 };
    let start = Instant::now();
    consumer.run(&AtomicBool::new(false), &mut counter).expect("drain");
    let secs = start.elapsed().as_secs_f64();
    println!(
        "drained {} messages, {} bytes in {secs:.2} s: {:.0} messages/s, {:.1} MB/s",
        counter.messages,
        counter.bytes,
        counter.messages as f64 / secs,
        counter.bytes as f64 / secs / 1e6
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["produce", brokers, topic, rate, count, extra @ ..] => {
            produce(brokers, topic, rate.parse().expect("RATE"), count.parse().expect("COUNT"), extra)
        }
        ["drain", brokers, topic] => drain(brokers, topic),
        ["latency", brokers, topic, count, extra @ ..] => latency(brokers, topic, count.parse().expect("COUNT"), extra),
        _ => {
            eprintln!(
                "usage: kafka_load produce BROKERS TOPIC RATE COUNT [KEY=VALUE...] | drain BROKERS TOPIC | latency BROKERS TOPIC COUNT [KEY=VALUE...]"
            );
            std::process::exit(2);
        }
    }
}
