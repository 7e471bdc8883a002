//! What one fetch of a partition's last message costs the broker, for
//! `benches/kafka-fetch-cost.sh`.
//!
//! ```text
//! fetch_cost BROKERS TOPIC [TRIES]
//! ```
//!
//! Partition 0 of TOPIC must hold messages already. The consumer seeks to
//! the partition's last message TRIES times (default 20) and times each
//! fetch from the seek until that message is in hand, with the connection
//! already open. It prints the least and the median time, in ms: on a
//! broker whose fetch cost does not depend on how long the partition is,
//! both stay flat as the partition grows.

use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: fetch_cost BROKERS TOPIC [TRIES]");
        std::process::exit(2);
    }
    let (brokers, topic) = (&args[1], &args[2]);
    let tries: usize = args.get(3).and_then(|t| t.parse().ok()).unwrap_or(20);
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "sluice-fetch-cost")
        .set("enable.auto.commit", "false")
        // Short waits: an empty fetch in flight when seeking holds the
        // next one back only this long.
        .set("fetch.wait.max.ms", "5")
        .create()
        .unwrap_or_else(|e| fail(&format!("cannot create a consumer: {e}")));
    let (_, high) = consumer
        .fetch_watermarks(topic, 0, Duration::from_secs(30))
        .unwrap_or_else(|e| fail(&format!("cannot read the end offset of {topic} [0]: {e}")));
    if high < 1 {
        fail(&format!("{topic} [0] is empty; produce messages into it first"));
    }
    let last = high - 1;
    let mut list = TopicPartitionList::new();
    list.add_partition_offset(topic, 0, Offset::Offset(last)).unwrap_or_else(|e| fail(&e.to_string()));
    consumer.assign(&list).unwrap_or_else(|e| fail(&format!("cannot assign {topic} [0]: {e}")));
    // The first fetch also opens the connection; it is not counted.
    wait_for(&consumer, last);
    let mut took = Vec::with_capacity(tries);
    for _ in 0..tries {
        let start = Instant::now();
        consumer
            .seek(topic, 0, Offset::Offset(last), Duration::from_secs(10))
            .unwrap_or_else(|e| fail(&format!("cannot seek: {e}")));
        wait_for(&consumer, last);
        took.push(start.elapsed().as_secs_f64() * 1e3);
    }
    took.sort_by(f64::total_cmp);
    println!(
        "{topic}: {high} messages; fetching the last one took least {:.1} ms, median {:.1} ms ({tries} tries)",
        took[0],
        took[took.len() / 2]
    );
}

/// Polls until the message at `offset` arrives (a minute at most).
fn wait_for(consumer: &BaseConsumer, offset: i64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) if m.offset() == offset => return,
            Some(Err(e)) => fail(&format!("fetch failed: {e}")),
            _ => {}
        }
    }
    fail(&format!("offset {offset} did not arrive within a minute"));
}

fn fail(what: &str) -> ! {
    eprintln!("fetch_cost: {what}");
    std::process::exit(1);
}
