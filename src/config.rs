//! Run settings: from the command line, a pipeline file (TOML), or both.
//!
//! Every command-line option of `sluice run` has a key of the same name in
//! the pipeline file (`--batch-interval 200ms` is `batch-interval = "200ms"`),
//! and options on the command line override the file. [`Settings::resolve`]
//! checks everything and names the offending key, with its line in the file.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::error::SpecError;
use crate::executor::Mode;
use crate::source::{EventTimeFormat, FollowOptions, GeneratorConfig, SourceOptions, SourceSpec};
use crate::time::parse_duration;
use crate::window::{OutputMode, TimeDomain, WindowConfig, WindowSpec};

/// A value with the line of the pipeline file it came from, if any.
#[derive(Debug, Clone, PartialEq)]
pub struct Val<T> {
    /// The value as written.
    pub value: T,
    /// 1-based line in the pipeline file; `None` for the command line.
    pub line: Option<usize>,
}

impl<T> From<T> for Val<T> {
    fn from(value: T) -> Self {
        Val { value, line: None }
    }
}

/// The options of a run as written, before checking. Both the command line
/// and the pipeline file produce one; [`RawSettings::overlay`] merges them.
#[derive(Debug, Clone, Default, PartialEq)]
#[allow(missing_docs)]
pub struct RawSettings {
    pub source: Option<Val<String>>,
    pub no_follow: Option<Val<bool>>,
    pub from: Option<Val<String>>,
    pub poll_interval: Option<Val<String>>,
    pub idle_flush: Option<Val<String>>,
    pub checkpoint_dir: Option<Val<String>>,
    pub checkpoint_interval: Option<Val<String>>,
    pub mode: Option<Val<String>>,
    pub batch_interval: Option<Val<String>>,
    pub spin_wait: Option<Val<String>>,
    pub parallelism: Option<Val<u64>>,
    pub metrics_addr: Option<Val<String>>,
    pub no_progress: Option<Val<bool>>,
    pub no_latency: Option<Val<bool>>,
    pub source_thread: Option<Val<bool>>,
    pub window: Option<Val<String>>,
    pub time: Option<Val<String>>,
    pub event_time: Option<Val<String>>,
    pub time_format: Option<Val<String>>,
    pub watermark_delay: Option<Val<String>>,
    pub idle_timeout: Option<Val<String>>,
    pub output: Option<Val<String>>,
    pub sink: Option<Val<Vec<String>>>,
    pub late_sink: Option<Val<String>>,
    pub top: Option<Val<u64>>,
    pub report: Option<Val<String>>,
    pub max_line_bytes: Option<Val<u64>>,
    pub gen_words: Option<Val<u64>>,
    pub seed: Option<Val<u64>>,
    pub count: Option<Val<u64>>,
    pub duration: Option<Val<String>>,
    pub kafka_option: Option<Val<Vec<String>>>,
    pub kafka_timeout: Option<Val<String>>,
}

/// One string or a list of them (`sink = "stdout"` or `sink = ["stdout", ...]`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// The pipeline file as TOML sees it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct FileSettings {
    source: Option<toml::Spanned<String>>,
    no_follow: Option<toml::Spanned<bool>>,
    from: Option<toml::Spanned<String>>,
    poll_interval: Option<toml::Spanned<String>>,
    idle_flush: Option<toml::Spanned<String>>,
    checkpoint_dir: Option<toml::Spanned<String>>,
    checkpoint_interval: Option<toml::Spanned<String>>,
    mode: Option<toml::Spanned<String>>,
    batch_interval: Option<toml::Spanned<String>>,
    spin_wait: Option<toml::Spanned<String>>,
    parallelism: Option<toml::Spanned<u64>>,
    metrics_addr: Option<toml::Spanned<String>>,
    no_progress: Option<toml::Spanned<bool>>,
    no_latency: Option<toml::Spanned<bool>>,
    source_thread: Option<toml::Spanned<bool>>,
    window: Option<toml::Spanned<String>>,
    time: Option<toml::Spanned<String>>,
    event_time: Option<toml::Spanned<String>>,
    time_format: Option<toml::Spanned<String>>,
    watermark_delay: Option<toml::Spanned<String>>,
    idle_timeout: Option<toml::Spanned<String>>,
    output: Option<toml::Spanned<String>>,
    sink: Option<toml::Spanned<OneOrMany>>,
    late_sink: Option<toml::Spanned<String>>,
    top: Option<toml::Spanned<u64>>,
    report: Option<toml::Spanned<String>>,
    max_line_bytes: Option<toml::Spanned<u64>>,
    gen_words: Option<toml::Spanned<u64>>,
    seed: Option<toml::Spanned<u64>>,
    count: Option<toml::Spanned<u64>>,
    duration: Option<toml::Spanned<String>>,
    kafka_option: Option<toml::Spanned<toml::Table>>,
    kafka_timeout: Option<toml::Spanned<String>>,
}

/// An error in the settings, naming the key and, for a file, its line.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    /// The pipeline file, when the error is in one.
    pub file: Option<PathBuf>,
    /// The line in that file.
    pub line: Option<usize>,
    /// The key (or option) at fault, if one is.
    pub key: Option<String>,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.file, self.line) {
            (Some(file), Some(line)) => write!(f, "{}:{line}: ", file.display())?,
            (Some(file), None) => write!(f, "{}: ", file.display())?,
            _ => {}
        }
        match (&self.key, self.line) {
            (Some(key), Some(_)) => write!(f, "key `{key}`: ")?,
            (Some(key), None) => write!(f, "--{key}: ")?,
            _ => {}
        }
        write!(f, "{}", self.message)
    }
}

impl std::error::Error for ConfigError {}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].bytes().filter(|&b| b == b'\n').count() + 1
}

impl RawSettings {
    /// Reads a pipeline file.
    pub fn from_file(path: &Path) -> Result<RawSettings, ConfigError> {
        let err = |line, key: Option<String>, message: String| ConfigError {
            file: Some(path.to_path_buf()),
            line,
            key,
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| {
            err(None, None, format!("cannot read the pipeline file: {}", crate::source::describe_io(&e)))
        })?;
        Self::from_toml(&text).map_err(|mut e| {
            e.file = Some(path.to_path_buf());
            e
        })
    }

    /// Parses pipeline-file text.
    pub fn from_toml(text: &str) -> Result<RawSettings, ConfigError> {
        let file: FileSettings = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| line_of(text, s.start));
            let msg = e.message().trim().replace('\n', "; ");
            let message = if let Some(rest) = msg.strip_prefix("unknown field ") {
                let (name, expected) = rest.split_once(", expected").unwrap_or((rest, ""));
                format!(
                    "unknown key {name}; remove it or use one of{}",
                    expected.trim_start_matches(" one of").trim_start_matches(" one of")
                )
            } else {
                format!("{msg}; see the pipeline file format in README.md")
            };
            ConfigError { file: None, line, key: None, message }
        })?;
        fn v<T>(text: &str, s: Option<toml::Spanned<T>>) -> Option<Val<T>> {
            s.map(|s| {
                let line = Some(line_of(text, s.span().start));
                Val { value: s.into_inner(), line }
            })
        }
        Ok(RawSettings {
            source: v(text, file.source),
            no_follow: v(text, file.no_follow),
            from: v(text, file.from),
            poll_interval: v(text, file.poll_interval),
            idle_flush: v(text, file.idle_flush),
            checkpoint_dir: v(text, file.checkpoint_dir),
            checkpoint_interval: v(text, file.checkpoint_interval),
            mode: v(text, file.mode),
            batch_interval: v(text, file.batch_interval),
            spin_wait: v(text, file.spin_wait),
            parallelism: v(text, file.parallelism),
            metrics_addr: v(text, file.metrics_addr),
            no_progress: v(text, file.no_progress),
            no_latency: v(text, file.no_latency),
            source_thread: v(text, file.source_thread),
            window: v(text, file.window),
            time: v(text, file.time),
            event_time: v(text, file.event_time),
            time_format: v(text, file.time_format),
            watermark_delay: v(text, file.watermark_delay),
            idle_timeout: v(text, file.idle_timeout),
            output: v(text, file.output),
            sink: v(text, file.sink).map(|s| Val {
                value: match s.value {
                    OneOrMany::One(x) => vec![x],
                    OneOrMany::Many(v) => v,
                },
                line: s.line,
            }),
            late_sink: v(text, file.late_sink),
            top: v(text, file.top),
            report: v(text, file.report),
            max_line_bytes: v(text, file.max_line_bytes),
            gen_words: v(text, file.gen_words),
            seed: v(text, file.seed),
            count: v(text, file.count),
            duration: v(text, file.duration),
            kafka_option: v(text, file.kafka_option).map(|t| Val {
                value: t
                    .value
                    .into_iter()
                    .map(|(k, v)| match v {
                        toml::Value::String(s) => format!("{k}={s}"),
                        other => format!("{k}={other}"),
                    })
                    .collect(),
                line: t.line,
            }),
            kafka_timeout: v(text, file.kafka_timeout),
        })
    }

    /// These settings with every value `over` has replacing ours.
    pub fn overlay(self, over: RawSettings) -> RawSettings {
        // Kafka options add up: the file's first, then the command line's,
        // which win for a key given in both.
        let kafka_option = match (&self.kafka_option, &over.kafka_option) {
            (Some(a), Some(b)) => {
                Some(Val { value: a.value.iter().chain(&b.value).cloned().collect(), line: b.line.or(a.line) })
            }
            (a, b) => b.clone().or(a.clone()),
        };
        macro_rules! pick {
            ($($f:ident),*) => { RawSettings { $($f: over.$f.or(self.$f)),* } };
        }
        let merged = pick!(
            source,
            no_follow,
            from,
            poll_interval,
            idle_flush,
            checkpoint_dir,
            checkpoint_interval,
            mode,
            batch_interval,
            spin_wait,
            parallelism,
            metrics_addr,
            no_progress,
            no_latency,
            source_thread,
            window,
            time,
            event_time,
            time_format,
            watermark_delay,
            idle_timeout,
            output,
            sink,
            late_sink,
            top,
            report,
            max_line_bytes,
            gen_words,
            seed,
            count,
            duration,
            kafka_timeout,
            kafka_option
        );
        RawSettings { kafka_option, ..merged }
    }
}

/// Where results go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkSpec {
    /// A top-N table per window on stdout.
    StdoutTable,
    /// JSON lines on stdout.
    StdoutJson,
    /// JSON lines in a file, truncated at start.
    Jsonl(PathBuf),
    /// Nowhere (benchmarks).
    Null,
    /// A Kafka topic: `kafka:BROKERS/TOPIC`.
    Kafka {
        /// `host:port[,host:port...]`.
        brokers: String,
        /// The topic.
        topic: String,
    },
}

impl std::str::FromStr for SinkSpec {
    type Err = SpecError;
    fn from_str(s: &str) -> Result<Self, SpecError> {
        match s.split_once(':').unwrap_or((s, "")) {
            ("stdout", "") | ("stdout", "table") => Ok(SinkSpec::StdoutTable),
            ("stdout", "json") => Ok(SinkSpec::StdoutJson),
            ("jsonl", path) if !path.is_empty() => Ok(SinkSpec::Jsonl(PathBuf::from(path))),
            ("null", "") => Ok(SinkSpec::Null),
            ("kafka", rest) => match rest.split_once('/') {
                Some((brokers, topic))
                    if !brokers.is_empty() && !topic.is_empty() && !topic.contains(['/', '?', ',']) =>
                {
                    Ok(SinkSpec::Kafka { brokers: brokers.to_string(), topic: topic.to_string() })
                }
                _ => Err(SpecError::Invalid(format!(
                    "invalid sink {s:?}: write kafka:BROKERS/TOPIC, like kafka:localhost:9092/counts"
                ))),
            },
            _ => Err(SpecError::Sink(s.to_string())),
        }
    }
}

/// Checked settings of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// The source.
    pub source: SourceSpec,
    /// Source options.
    pub source_options: SourceOptions,
    /// The execution mode.
    pub mode: Mode,
    /// Per-event mode: how long to poll the input queue before sleeping.
    pub spin_wait: Duration,
    /// Shards of the keyed window.
    pub parallelism: usize,
    /// Where to serve Prometheus metrics.
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Draw a progress line for bounded input on a terminal.
    pub progress: bool,
    /// Record latency (`--no-latency` turns it off).
    pub latency: bool,
    /// Per-event mode: run the generator on a thread of its own, not
    /// chained to the executor's (`--source-thread`).
    pub source_thread: bool,
    /// True when a batch interval was given with per-event mode (ignored).
    pub ignored_batch_interval: bool,
    /// Windowing.
    pub window: WindowConfig,
    /// How event times are found.
    pub event_time: EventTimeFormat,
    /// Result sinks.
    pub sinks: Vec<SinkSpec>,
    /// Late-item sink.
    pub late_sink: Option<SinkSpec>,
    /// Rows per window in the stdout table.
    pub top: usize,
    /// Where to write the JSON report.
    pub report: Option<PathBuf>,
    /// Kafka client settings (sources and sinks).
    pub kafka: KafkaOptions,
    /// Where checkpoints go, if anywhere.
    pub checkpoint_dir: Option<PathBuf>,
    /// The least time between two checkpoints.
    pub checkpoint_interval: Duration,
    /// What the pipeline computes, as a checkpoint records it: a snapshot
    /// of another pipeline is refused.
    pub pipeline_id: String,
}

/// Settings of every Kafka client of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaOptions {
    /// librdkafka properties, passed through, in order.
    pub options: Vec<(String, String)>,
    /// How long brokers may take to answer at start.
    pub timeout: Duration,
}

impl Default for KafkaOptions {
    fn default() -> Self {
        KafkaOptions { options: Vec::new(), timeout: Duration::from_secs(30) }
    }
}

/// The most shards `--parallelism` takes.
pub const MAX_PARALLELISM: usize = 256;

/// The shortest checkpoint interval taken: below it, writing checkpoints
/// would be most of the work.
pub fn check_checkpoint_interval(interval: Duration) -> Result<(), &'static str> {
    if interval < Duration::from_millis(10) {
        return Err("a checkpoint interval must be at least 10ms");
    }
    Ok(())
}

/// The default `--parallelism`: the number of cores.
pub fn default_parallelism() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()).min(MAX_PARALLELISM)
}

/// The rate `sluice run` replays the demo book at when no source is given.
pub const DEMO_RATE: f64 = 4000.0;

impl Settings {
    /// Checks raw settings and fills in defaults.
    pub fn resolve(raw: &RawSettings) -> Result<Settings, ConfigError> {
        fn fail<T>(key: &str, line: Option<usize>, e: impl fmt::Display) -> Result<T, ConfigError> {
            Err(ConfigError { file: None, line, key: Some(key.to_string()), message: e.to_string() })
        }
        fn parse<T: std::str::FromStr>(key: &str, v: &Option<Val<String>>) -> Result<Option<T>, ConfigError>
        where
            T::Err: fmt::Display,
        {
            match v {
                None => Ok(None),
                Some(v) => match v.value.parse::<T>() {
                    Ok(x) => Ok(Some(x)),
                    Err(e) => fail(key, v.line, e),
                },
            }
        }
        fn duration(key: &str, v: &Option<Val<String>>) -> Result<Option<Duration>, ConfigError> {
            match v {
                None => Ok(None),
                Some(v) => match parse_duration(&v.value) {
                    Ok(d) => Ok(Some(d)),
                    Err(e) => fail(key, v.line, e),
                },
            }
        }
        let line = |v: &Option<Val<String>>| v.as_ref().and_then(|v| v.line);

        let source: SourceSpec = parse("source", &raw.source)?.unwrap_or(SourceSpec::Demo(Some(DEMO_RATE)));
        let no_follow = raw.no_follow.as_ref().is_some_and(|v| v.value);
        let mut follow = FollowOptions::default();
        match raw.from.as_ref().map(|v| (v.value.as_str(), v.line)) {
            None | Some(("end", _)) => {}
            Some(("beginning", _)) => follow.from_beginning = true,
            Some((other, l)) => return fail("from", l, format!("invalid start {other:?}: use beginning or end")),
        }
        if let Some(d) = duration("poll-interval", &raw.poll_interval)? {
            if d < Duration::from_millis(1) {
                return fail("poll-interval", line(&raw.poll_interval), "the poll interval must be at least 1ms");
            }
            follow.poll_interval = d;
        }
        if let Some(d) = duration("idle-flush", &raw.idle_flush)? {
            follow.idle_flush = d;
        }
        let checkpoint_dir = raw.checkpoint_dir.as_ref().map(|v| PathBuf::from(&v.value));
        let checkpoint_interval = duration("checkpoint-interval", &raw.checkpoint_interval)?
            .unwrap_or(crate::executor::DEFAULT_CHECKPOINT_INTERVAL);
        if let Err(message) = check_checkpoint_interval(checkpoint_interval) {
            return fail("checkpoint-interval", line(&raw.checkpoint_interval), message);
        }
        if checkpoint_dir.is_none() && raw.checkpoint_interval.is_some() {
            return fail(
                "checkpoint-interval",
                line(&raw.checkpoint_interval),
                "--checkpoint-interval needs --checkpoint-dir DIR, where checkpoints are written",
            );
        }
        let interval = duration("batch-interval", &raw.batch_interval)?;
        if interval.is_some_and(|d| d < Duration::from_millis(1)) {
            return fail("batch-interval", line(&raw.batch_interval), "a batch interval must be at least 1ms");
        }
        let spin_wait = match &raw.spin_wait {
            Some(v) if v.value.trim() == "0" => Duration::ZERO,
            _ => duration("spin-wait", &raw.spin_wait)?.unwrap_or(crate::executor::DEFAULT_SPIN),
        };
        if spin_wait > Duration::from_millis(10) {
            return fail(
                "spin-wait",
                line(&raw.spin_wait),
                "a spin wait above 10ms only burns CPU: use at most 10ms, or 0 to sleep at once",
            );
        }
        let parallelism = match &raw.parallelism {
            None => default_parallelism(),
            Some(v) if (1..=MAX_PARALLELISM as u64).contains(&v.value) => v.value as usize,
            Some(v) => {
                return fail(
                    "parallelism",
                    v.line,
                    format!("invalid parallelism {}: use 1 to {MAX_PARALLELISM} shards", v.value),
                )
            }
        };
        let metrics_addr = match &raw.metrics_addr {
            None => None,
            Some(v) => match crate::metrics::parse_addr(&v.value) {
                Ok(a) => Some(a),
                Err(e) => return fail("metrics-addr", v.line, e),
            },
        };
        let mode = match raw.mode.as_ref().map(|v| (v.value.as_str(), v.line)) {
            None | Some(("micro-batch", _)) => {
                Mode::MicroBatch { interval: interval.unwrap_or(Duration::from_secs(1)) }
            }
            Some(("per-event", _)) => Mode::PerEvent,
            Some((other, l)) => {
                return fail("mode", l, format!("invalid mode {other:?}: use micro-batch or per-event"))
            }
        };
        let spec: WindowSpec = parse("window", &raw.window)?.unwrap_or(match source {
            SourceSpec::File(_) | SourceSpec::Stdin => WindowSpec::Global,
            _ => WindowSpec::Tumbling { size: Duration::from_secs(1) },
        });
        let generated = matches!(source, SourceSpec::Gen(_) | SourceSpec::Demo(_));
        let time_format = raw.time_format.as_ref().map(|v| v.value.as_str());
        let event_time = match &raw.event_time {
            Some(v) => match EventTimeFormat::parse(&v.value, time_format) {
                Ok(f) => f,
                Err(e) => return fail("event-time", v.line, e),
            },
            None if time_format.is_some() => {
                return fail(
                    "time-format",
                    line(&raw.time_format),
                    "--time-format goes with --event-time regex:PATTERN",
                )
            }
            None if generated => EventTimeFormat::FirstField,
            None => EventTimeFormat::None,
        };
        // Kafka messages carry a timestamp, used when no --event-time is given.
        let stamped = matches!(source, SourceSpec::Kafka(_));
        let has_event_time = generated || stamped || event_time != EventTimeFormat::None;
        let time: TimeDomain = parse("time", &raw.time)?.unwrap_or(if has_event_time {
            TimeDomain::Event
        } else {
            TimeDomain::Processing
        });
        if time == TimeDomain::Event && !has_event_time {
            return fail(
                "time",
                line(&raw.time),
                "event time needs events that carry one: add --event-time first-field",
            );
        }
        let output: OutputMode = parse("output", &raw.output)?.unwrap_or_default();
        let mut window = WindowConfig::new(spec).output(output);
        window.time = time;
        if let Some(d) = duration("watermark-delay", &raw.watermark_delay)? {
            window.watermark_delay = d;
        }
        if let Some(d) = duration("idle-timeout", &raw.idle_timeout)? {
            window.idle_timeout = d;
        }
        let mut sinks = Vec::new();
        if let Some(v) = &raw.sink {
            for s in &v.value {
                match s.parse::<SinkSpec>() {
                    Ok(s) => sinks.push(s),
                    Err(e) => return fail("sink", v.line, e),
                }
            }
        }
        if sinks.is_empty() {
            sinks.push(SinkSpec::StdoutTable);
        }
        let late_sink = parse("late-sink", &raw.late_sink)?;
        // Two sinks writing one file would interleave their lines (and, with
        // checkpoints, each would record only its own length).
        let mut files: Vec<PathBuf> = Vec::new();
        for spec in sinks.iter().chain(&late_sink) {
            if let SinkSpec::Jsonl(path) = spec {
                let same = |p: &PathBuf| {
                    p == path || (p.exists() && path.exists() && p.canonicalize().ok() == path.canonicalize().ok())
                };
                if files.iter().any(same) {
                    let at = raw.sink.as_ref().and_then(|v| v.line).or(line(&raw.late_sink));
                    let why = format!("{} is the file of two sinks; give each sink its own file", path.display());
                    return fail("sink", at, why);
                }
                files.push(path.clone());
            }
        }
        let top = raw.top.as_ref().map(|v| v.value).unwrap_or(10);
        if top == 0 {
            return fail("top", raw.top.as_ref().and_then(|v| v.line), "--top must be at least 1");
        }
        let max_line = raw.max_line_bytes.as_ref().map(|v| v.value).unwrap_or(sluice_lines::DEFAULT_MAX_LINE as u64);
        if max_line == 0 || max_line > u32::MAX as u64 / 2 {
            return fail(
                "max-line-bytes",
                raw.max_line_bytes.as_ref().and_then(|v| v.line),
                "the maximum line length must be from 1 byte to 2 GiB",
            );
        }
        let gen_words = raw.gen_words.as_ref().map(|v| v.value).unwrap_or(8);
        if gen_words == 0 || gen_words > 10_000 {
            return fail(
                "gen-words",
                raw.gen_words.as_ref().and_then(|v| v.line),
                "the generator needs 1 to 10000 words per line",
            );
        }
        let generator = GeneratorConfig {
            rate: None,
            words_per_line: gen_words as usize,
            seed: raw.seed.as_ref().map(|v| v.value).unwrap_or(42),
            count: raw.count.as_ref().map(|v| v.value),
            duration: duration("duration", &raw.duration)?,
            start_at: None,
            deadline: None,
        };
        let mut kafka = KafkaOptions::default();
        if let Some(v) = &raw.kafka_option {
            for kv in &v.value {
                match kv.split_once('=') {
                    Some((k, val)) if !k.trim().is_empty() => {
                        kafka.options.push((k.trim().to_string(), val.to_string()))
                    }
                    _ => {
                        return fail(
                            "kafka-option",
                            v.line,
                            format!("invalid Kafka option {kv:?}: write KEY=VALUE, like security.protocol=SSL"),
                        )
                    }
                }
            }
        }
        if let Some(d) = duration("kafka-timeout", &raw.kafka_timeout)? {
            if d < Duration::from_millis(100) {
                return fail("kafka-timeout", line(&raw.kafka_timeout), "the Kafka timeout must be at least 100ms");
            }
            kafka.timeout = d;
        }
        if checkpoint_dir.is_some() && (no_follow || !matches!(source, SourceSpec::File(_) | SourceSpec::Kafka(_))) {
            return fail(
                "checkpoint-dir",
                line(&raw.checkpoint_dir),
                "--checkpoint-dir needs an input a restart can resume: a followed file or a Kafka topic, without --no-follow",
            );
        }
        let text = |v: &Option<Val<String>>| v.as_ref().map(|v| v.value.clone()).unwrap_or_default();
        let pipeline_id = format!(
            "source={} window={} time={:?} output={:?} watermark-delay={:?} idle-timeout={:?} event-time={}{} max-line-bytes={}",
            source_text(&source),
            window.spec,
            window.time,
            window.output,
            window.watermark_delay,
            window.idle_timeout,
            text(&raw.event_time),
            raw.time_format.as_ref().map(|v| format!(" time-format={}", v.value)).unwrap_or_default(),
            max_line,
        );
        Ok(Settings {
            source,
            source_options: SourceOptions {
                no_follow,
                follow,
                checkpoint: None,
                max_line: max_line as usize,
                generator,
                kafka: kafka.clone(),
            },
            ignored_batch_interval: mode == Mode::PerEvent && interval.is_some(),
            spin_wait,
            parallelism,
            metrics_addr,
            progress: !raw.no_progress.as_ref().is_some_and(|v| v.value),
            latency: !raw.no_latency.as_ref().is_some_and(|v| v.value),
            source_thread: raw.source_thread.as_ref().is_some_and(|v| v.value),
            mode,
            window,
            event_time,
            sinks,
            late_sink,
            top: top as usize,
            report: raw.report.as_ref().map(|v| PathBuf::from(&v.value)),
            kafka,
            checkpoint_dir,
            checkpoint_interval,
            pipeline_id,
        })
    }
}

/// A source as a checkpoint names it.
fn source_text(source: &SourceSpec) -> String {
    match source {
        SourceSpec::File(p) => format!("file:{}", p.display()),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_errors_name_key_and_line() {
        let e = RawSettings::from_toml("mode = \"per-event\"\nwindw = \"global\"\n").unwrap_err();
        assert_eq!(e.line, Some(2));
        assert!(e.message.contains("unknown key `windw`"), "{e}");

        let raw = RawSettings::from_toml("source = \"gen\"\n\nbatch-interval = \"2 parsecs\"\n").unwrap();
        let e = Settings::resolve(&raw).unwrap_err();
        assert_eq!((e.line, e.key.as_deref()), (Some(3), Some("batch-interval")));
        assert!(e.to_string().contains("invalid duration"), "{e}");

        let raw = RawSettings::from_toml("window = \"tumbling:0s\"").unwrap();
        let e = Settings::resolve(&raw).unwrap_err();
        assert_eq!((e.line, e.key.as_deref()), (Some(1), Some("window")));
    }

    #[test]
    fn command_line_overrides_file_and_defaults_fill_in() {
        let file = RawSettings::from_toml(
            "source = \"file:a.txt\"\nno-follow = true\nmode = \"per-event\"\nsink = \"null\"\n",
        )
        .unwrap();
        let cli = RawSettings { mode: Some(Val::from("micro-batch".to_string())), ..Default::default() };
        let s = Settings::resolve(&file.overlay(cli)).unwrap();
        assert_eq!(s.mode, Mode::MicroBatch { interval: Duration::from_secs(1) });
        assert_eq!(s.window.spec, WindowSpec::Global);
        assert_eq!(s.window.time, TimeDomain::Processing);
        assert_eq!(s.sinks, vec![SinkSpec::Null]);

        let s = Settings::resolve(&RawSettings::default()).unwrap();
        assert_eq!(s.source, SourceSpec::Demo(Some(DEMO_RATE)));
        assert_eq!(s.window.time, TimeDomain::Event);
    }

    #[test]
    fn event_time_without_a_source_of_it_is_refused() {
        let raw = RawSettings {
            source: Some(Val::from("stdin".to_string())),
            time: Some(Val::from("event".to_string())),
            ..Default::default()
        };
        let e = Settings::resolve(&raw).unwrap_err();
        assert!(e.to_string().contains("--event-time first-field"), "{e}");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(500))]

        /// Any pipeline file either parses or is refused with a message;
        /// nothing panics.
        #[test]
        fn any_pipeline_file_is_read_or_refused(text in "\\PC{0,80}|([a-z-]{1,14} = (\"[a-z0-9:,./]{0,14}\"|[0-9]{1,4}|true)\n){0,6}") {
            if let Ok(raw) = RawSettings::from_toml(&text) {
                let _ = Settings::resolve(&raw);
            }
        }

        /// Any value of the options that take a spec is accepted or refused
        /// with a message naming the option.
        #[test]
        fn any_option_value_is_accepted_or_refused(
            key in 0usize..9,
            value in "\\PC{0,20}|[a-z]{1,9}:[0-9a-z.,:/]{0,12}|[0-9.]{1,6}(ms|s|m)?",
        ) {
            let v = Some(Val::from(value));
            let mut raw = RawSettings::default();
            match key {
                0 => raw.window = v,
                1 => raw.source = v,
                2 => raw.batch_interval = v,
                3 => raw.watermark_delay = v,
                4 => raw.event_time = v,
                5 => raw.mode = v,
                6 => raw.output = v,
                7 => raw.checkpoint_interval = v,
                _ => raw.late_sink = v,
            }
            if let Err(e) = Settings::resolve(&raw) {
                proptest::prop_assert!(!e.to_string().is_empty());
                proptest::prop_assert!(!e.to_string().contains('\n'), "{}", e);
            }
        }
    }
}
