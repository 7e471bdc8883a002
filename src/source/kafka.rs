//! A Kafka source: the `sluice-kafka` consumer loop adapted to the engine.
//!
//! Each assigned partition is an input of its own ([`Feed::open_input`]):
//! its messages are acknowledged on their own, committed by the consumer
//! loop, and its event-time frontier holds the watermark back until it is
//! idle for `--idle-timeout`. A message is one line. Its event time is the
//! message timestamp (CreateTime or LogAppendTime, as the topic says), or,
//! with `--event-time`, what that finds in the text.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use sluice_kafka::{Batch, Consumer, ConsumerSettings, Delivery, Handler, Notice, PartitionAck, PartitionId};

use super::{Acker, Buffer, EventTimeFormat, Feed, InputChunk, InputLine, KafkaSpec, Source, SourceOptions, TrySend};
use crate::checkpoint::CheckpointDir;
use crate::config::KafkaOptions;
use crate::error::RunError;
use crate::time::NO_TIME;

/// Reads Kafka topics.
pub struct KafkaSource {
    /// What to read.
    spec: KafkaSpec,
    /// Read to the end offsets and stop.
    bounded: bool,
    /// Client settings.
    kafka: KafkaOptions,
    /// Longest message.
    max_message: usize,
    /// The clock of the timestamps seen, for the report.
    clock: Arc<Mutex<Option<&'static str>>>,
    /// Where partitions resume from, and their places are staged for.
    checkpoint: Option<CheckpointDir>,
}

impl KafkaSource {
    /// A source reading `spec`; with `no_follow` in `opts`, up to the end
    /// offsets seen when each partition is assigned.
    pub fn new(spec: KafkaSpec, opts: &SourceOptions) -> Self {
        KafkaSource {
            spec,
            bounded: opts.no_follow,
            kafka: opts.kafka.clone(),
            max_message: opts.max_line,
            clock: Arc::default(),
            checkpoint: opts.checkpoint.clone(),
        }
    }
}

/// A partition as a checkpoint names it: `topic/partition`.
fn partition_key(p: &PartitionId) -> String {
    format!("{}/{}", p.topic, p.partition)
}

/// Acknowledges one partition's messages.
struct PartitionAcker {
    /// The consumer loop's acknowledgements.
    ack: PartitionAck,
    /// With checkpoints: the directory, the source's name and the
    /// partition's key there.
    checkpoint: Option<(CheckpointDir, String, String)>,
    /// With checkpoints: the next offset the last snapshot staged.
    staged: AtomicI64,
}

impl Acker for PartitionAcker {
    fn ack(&self, _file: u64, offset: u64) {
        self.ack.ack(offset as i64);
    }

    fn save(&self, force: bool) -> Result<(), String> {
        // Otherwise the consumer loop stores, and librdkafka commits, as it
        // goes.
        if force {
            self.ack.commit()
        } else {
            Ok(())
        }
    }

    fn stage(&self, _file: u64, offset: u64) {
        let Some((dir, name, key)) = &self.checkpoint else {
            return self.ack(0, offset);
        };
        self.staged.store(offset as i64, Ordering::Relaxed);
        dir.stage(|p| {
            p.kafka.entry(name.clone()).or_default().insert(key.clone(), offset as i64);
        });
    }

    fn staging_done(&self) {
        // `stage` staged it already.
    }

    fn committed(&self) {
        // Only offsets a durable snapshot covers reach the group.
        let next = self.staged.load(Ordering::Relaxed);
        if next >= 0 {
            self.ack.ack(next);
        }
    }
}

/// The consumer loop's handler: partitions become inputs.
struct ToEngine<'a> {
    feed: &'a Feed,
    name: String,
    inputs: HashMap<PartitionId, Feed>,
    clock: Arc<Mutex<Option<&'static str>>>,
    checkpoint: Option<CheckpointDir>,
}

impl Handler for ToEngine<'_> {
    fn assigned(&mut self, partitions: Vec<(PartitionId, PartitionAck)>) -> bool {
        if let Some(dir) = &self.checkpoint {
            // Partitions the checkpoint has no place for: where they start
            // is written at once (one write for the whole assignment), so
            // that a restart before the next snapshot does not start them
            // elsewhere (at their end, with `from=latest`). The window
            // state holds nothing of them.
            let positions = dir.positions();
            let saved = positions.kafka.get(&self.name);
            let starts: Vec<(String, i64)> = partitions
                .iter()
                .filter_map(|(p, ack)| Some((partition_key(p), ack.start()?)))
                .filter(|(key, _)| !saved.is_some_and(|m| m.contains_key(key)))
                .collect();
            if !starts.is_empty() {
                let written = dir.update(
                    |p| {
                        let saved = p.kafka.entry(self.name.clone()).or_default();
                        for (key, start) in &starts {
                            saved.insert(key.clone(), *start);
                        }
                    },
                    true,
                );
                if let Err(e) = written {
                    let keys: Vec<&str> = starts.iter().map(|(k, _)| k.as_str()).collect();
                    tracing::warn!(source = %self.name, "cannot save where [{}] start: {e}", keys.join(", "));
                }
            }
        }
        for (partition, ack) in partitions {
            let key = partition_key(&partition);
            let acker = PartitionAcker {
                ack,
                checkpoint: self.checkpoint.clone().map(|d| (d, self.name.clone(), key)),
                staged: AtomicI64::new(-1),
            };
            match self.feed.open_input(Some(Arc::new(acker))) {
                Some(f) => {
                    self.inputs.insert(partition, f);
                }
                None => return false,
            }
        }
        true
    }

    fn revoked(&mut self, partition: &PartitionId) {
        if let Some(f) = self.inputs.remove(partition) {
            f.close_input();
        }
    }

    fn deliver(&mut self, mut batch: Batch) -> Delivery {
        let Some(f) = self.inputs.get(&batch.partition) else { return Delivery::Taken };
        let ingest = f.clock().now();
        let format = f.event_time_format();
        // The report names the timestamps' clock when they are the event
        // times (no --event-time reading them from the text).
        if let (Some(kind), EventTimeFormat::None) = (batch.time_kind, format) {
            if let Ok(mut c) = self.clock.lock() {
                c.get_or_insert(kind.name());
            }
        }
        let data = Bytes::from(std::mem::take(&mut batch.data));
        let mut fallbacks = 0;
        let lines = batch
            .messages
            .iter()
            .map(|m| {
                let mut line = InputLine { start: m.start, end: m.end, offset: m.offset as u64, event_time: NO_TIME };
                if *format == EventTimeFormat::None {
                    if let Some(ms) = m.timestamp_ms {
                        line.event_time = ms.saturating_mul(1_000_000);
                    }
                } else {
                    fallbacks += f.stamp(&mut line, &data[m.start as usize..m.end as usize], ingest);
                }
                line
            })
            .collect();
        let chunk = InputChunk {
            input: f.input(),
            ingest,
            bytes: data.len() as u64,
            data: Buffer::check(data),
            lines,
            truncated: batch.cut,
            time_fallbacks: fallbacks,
            file: 0,
            end_offset: batch.next_offset as u64,
        };
        match f.try_send(chunk) {
            TrySend::Sent => Delivery::Taken,
            TrySend::Full(c) => {
                batch.data = Vec::from(c.data.into_bytes());
                Delivery::Full(batch)
            }
            TrySend::Closed => Delivery::Closed,
        }
    }

    fn notice(&mut self, notice: Notice) {
        let name = &self.name;
        match notice {
            Notice::BrokersDown(why) => {
                tracing::warn!(source = %name, "no Kafka broker can be reached ({why}); retrying with backoff")
            }
            Notice::Reconnected => tracing::info!(source = %name, "Kafka brokers reachable again"),
            Notice::Error(why) => tracing::warn!(source = %name, "Kafka: {why}; retrying"),
            Notice::Cut { partition, offset, bytes } => tracing::warn!(
                source = %name,
                "message {partition}@{offset} of {bytes} bytes cut to --max-line-bytes; further ones are counted in the report"
            ),
            Notice::Assignment(parts) => {
                let list: Vec<String> = parts.iter().map(ToString::to_string).collect();
                tracing::info!(source = %name, "reading partitions [{}]", list.join(", "))
            }
        }
    }
}

impl Source for KafkaSource {
    fn name(&self) -> String {
        format!("kafka:{}/{}", self.spec.brokers, self.spec.topics.join(","))
    }

    fn event_time_clock(&self) -> Option<Arc<Mutex<Option<&'static str>>>> {
        Some(self.clock.clone())
    }

    fn resumable(&self) -> bool {
        self.checkpoint.is_some() && !self.bounded
    }

    fn run(self: Box<Self>, feed: Feed) -> Result<(), RunError> {
        let name = self.name();
        let mut settings = ConsumerSettings::new(self.spec.brokers.clone(), self.spec.topics.clone());
        settings.group = self.spec.group.clone();
        settings.start = self.spec.from;
        settings.bounded = self.bounded;
        settings.options = self.kafka.options.clone();
        settings.max_message_bytes = self.max_message;
        settings.connect_timeout = self.kafka.timeout;
        if let Some(dir) = &self.checkpoint {
            // Partitions resume where the last snapshot's window state ends.
            let resume = settings.resume.get_or_insert_with(HashMap::new);
            for (key, &next) in dir.positions().kafka.get(&name).into_iter().flatten() {
                if let Some((topic, n)) = key.rsplit_once('/') {
                    if let Ok(partition) = n.parse() {
                        resume.insert(PartitionId { topic: Arc::from(topic), partition }, next);
                    }
                }
            }
        }
        let fail = |message: String| RunError::Source { source_name: name.clone(), message };
        let consumer = Consumer::connect(settings).map_err(|e| fail(e.to_string()))?;
        let mut handler = ToEngine {
            feed: &feed,
            name: name.clone(),
            inputs: HashMap::new(),
            clock: self.clock,
            checkpoint: self.checkpoint.clone(),
        };
        consumer.run(feed.stop_flag(), &mut handler).map_err(fail)?;
        for f in handler.inputs.values() {
            f.close_input();
        }
        Ok(())
    }
}
