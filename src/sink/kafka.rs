//! Results to a Kafka topic: keyed by the word, the value the same JSON
//! object as a JSON-lines row, through an idempotent producer
//! (`enable.idempotence=true`, `acks=all`).
//!
//! `flush` waits until the brokers have acknowledged every record, so that
//! the lines behind them are acknowledged (and their offsets committed) only
//! once their results are safely in the topic.

use std::io;
use std::time::Duration;

use super::{JsonRow, RunInfo, Sink};
use crate::window::operator::{LateEvent, WindowResult};

/// What a Kafka record is keyed by.
pub trait KafkaKey {
    /// Appends the record key to `out`.
    fn write_key(&self, out: &mut Vec<u8>);
}

impl<K: AsRef<str>, O> KafkaKey for WindowResult<K, O> {
    fn write_key(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.key.as_ref().as_bytes());
    }
}

impl<K: AsRef<str>> KafkaKey for LateEvent<K> {
    fn write_key(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.key.as_ref().as_bytes());
    }
}

/// Writes results to a Kafka topic.
pub struct KafkaSink {
    producer: sluice_kafka::Producer,
    name: String,
    info: RunInfo,
    /// How long a flush may wait for the brokers.
    flush_timeout: Duration,
    /// Reused buffers: no allocation per result.
    key: Vec<u8>,
    value: Vec<u8>,
}

impl KafkaSink {
    /// Connects to `brokers` (checking within `timeout` that they answer and
    /// `topic` exists). `options` are librdkafka properties.
    pub fn connect(
        brokers: &str,
        topic: &str,
        options: &[(String, String)],
        timeout: Duration,
    ) -> Result<Self, String> {
        let producer = sluice_kafka::Producer::connect(brokers, topic, options, timeout).map_err(|e| e.to_string())?;
        Ok(KafkaSink {
            producer,
            name: format!("kafka:{brokers}/{topic}"),
            info: RunInfo { mode: "", batch_interval_ms: None, value_field: "value" },
            flush_timeout: timeout.max(Duration::from_secs(30)),
            key: Vec::with_capacity(32),
            value: Vec::with_capacity(256),
        })
    }
}

impl<R: JsonRow + KafkaKey> Sink<R> for KafkaSink {
    fn open(&mut self, info: &RunInfo) -> io::Result<()> {
        self.info = *info;
        Ok(())
    }

    fn write(&mut self, item: &R) -> io::Result<()> {
        self.key.clear();
        item.write_key(&mut self.key);
        self.value.clear();
        item.write_json(&self.info, &mut self.value);
        self.producer.send(&self.key, &self.value).map_err(io::Error::other)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.producer.flush(self.flush_timeout).map_err(io::Error::other)
    }

    fn name(&self) -> String {
        self.name.clone()
    }
}
