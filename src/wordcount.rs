//! The word-count pipeline the `sluice` command runs, built from
//! [`Settings`] with the library API.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::checkpoint::CheckpointDir;
use crate::config::{KafkaOptions, Settings, SinkSpec};
use crate::error::RunError;
use crate::executor::{run, Checkpointing, RunOptions, RunOutcome};
use crate::operator::lines;
use crate::pipeline::Pipeline;
use crate::sink::{JsonLines, KafkaSink, Null, Sink, TopTable};
use crate::tokenize::Word;
use crate::window::operator::{LateEvent, WindowResult};

/// A JSON-lines file sink: exactly-once when checkpoints cover it, cut back
/// to what the last checkpoint committed.
fn open_jsonl(path: &std::path::Path, checkpoint: Option<&CheckpointDir>) -> Result<JsonLines, RunError> {
    let name = format!("jsonl:{}", path.display());
    match checkpoint {
        Some(dir) => JsonLines::exactly_once(path, dir.sink_length(&name).unwrap_or(0)),
        None => JsonLines::create(path),
    }
    .map_err(|err| RunError::Sink { sink: name, err })
}

fn open_kafka(brokers: &str, topic: &str, kafka: &KafkaOptions) -> Result<KafkaSink, RunError> {
    KafkaSink::connect(brokers, topic, &kafka.options, kafka.timeout)
        .map_err(|e| RunError::Sink { sink: format!("kafka:{brokers}/{topic}"), err: std::io::Error::other(e) })
}

fn result_sink(
    spec: &SinkSpec,
    top: usize,
    kafka: &KafkaOptions,
    checkpoint: Option<&CheckpointDir>,
) -> Result<Box<dyn Sink<WindowResult<Word, u64>>>, RunError> {
    Ok(match spec {
        SinkSpec::StdoutTable => Box::new(TopTable::stdout(top)),
        SinkSpec::StdoutJson => Box::new(JsonLines::stdout()),
        SinkSpec::Jsonl(path) => Box::new(open_jsonl(path, checkpoint)?),
        SinkSpec::Null => Box::new(Null),
        SinkSpec::Kafka { brokers, topic } => Box::new(open_kafka(brokers, topic, kafka)?),
    })
}

fn late_sink(
    spec: &SinkSpec,
    kafka: &KafkaOptions,
    checkpoint: Option<&CheckpointDir>,
) -> Result<Box<dyn Sink<LateEvent<Word>>>, RunError> {
    Ok(match spec {
        SinkSpec::StdoutTable | SinkSpec::StdoutJson => Box::new(JsonLines::stdout()),
        SinkSpec::Jsonl(path) => Box::new(open_jsonl(path, checkpoint)?),
        SinkSpec::Null => Box::new(Null),
        SinkSpec::Kafka { brokers, topic } => Box::new(open_kafka(brokers, topic, kafka)?),
    })
}

/// The windowed word count: lines → words → keyed by word → window → count
/// → every configured sink. Opening a file sink can fail. With a
/// checkpoint directory, JSON-lines file sinks are exactly-once.
pub fn word_count(settings: &Settings, checkpoint: Option<&CheckpointDir>) -> Result<Pipeline, RunError> {
    let mut counted = lines().words().key().window(settings.window).count();
    for spec in &settings.sinks {
        counted = counted.boxed_sink(result_sink(spec, settings.top, &settings.kafka, checkpoint)?);
    }
    if let Some(spec) = &settings.late_sink {
        counted = counted.boxed_late_sink(late_sink(spec, &settings.kafka, checkpoint)?);
    }
    Ok(counted.build())
}

/// Runs the word count as `settings` say, until the input ends or
/// `interrupt` is set.
pub fn run_word_count(settings: &Settings, interrupt: Arc<AtomicBool>) -> Result<RunOutcome, RunError> {
    let checkpoint = match &settings.checkpoint_dir {
        Some(path) => {
            let dir = CheckpointDir::open(path)?;
            dir.check_pipeline(&settings.pipeline_id)?;
            Some(Checkpointing { dir, interval: settings.checkpoint_interval, require_resumable: true })
        }
        None => None,
    };
    let dir = checkpoint.as_ref().map(|c| &c.dir);
    let pipeline = word_count(settings, dir)?;
    let mut source_options = settings.source_options.clone();
    source_options.checkpoint = dir.cloned();
    let source = settings.source.build(&source_options)?;
    let mut opts = RunOptions::new(settings.mode);
    opts.checkpoint = checkpoint;
    opts.event_time = settings.event_time.clone();
    opts.spin_wait = settings.spin_wait;
    opts.parallelism = settings.parallelism;
    opts.metrics_addr = settings.metrics_addr;
    opts.progress = settings.progress;
    opts.latency = settings.latency;
    opts.chain_source = !settings.source_thread;
    opts.interrupt = interrupt;
    Ok(run(pipeline, vec![source], &opts))
}
