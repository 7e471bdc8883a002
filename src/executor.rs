//! The two executors: micro-batch and per-event.
//!
//! Both take the same [`Pipeline`] and the same sources:
//! - **per-event**: each chunk a source hands over is processed line by line
//!   as soon as it arrives; every line goes through the whole graph and its
//!   effect reaches the sinks before the next line is looked at. Sinks are
//!   flushed whenever the input queue is empty (with shards, within a
//!   millisecond of it). Timers exist only to close
//!   processing-time windows when no events come.
//! - **micro-batch**: chunks are collected until the batch boundary (every
//!   `interval`, on a grid from the start of the run); then the whole batch
//!   is processed (each line through every operator into the window, none
//!   delivered yet), and results go out at the boundary.
//!   An empty interval still advances processing time and watermarks. At the
//!   end of input the last batch runs at once, and so does a batch that
//!   fills up ([`RunOptions::max_batch_bytes`]) before its boundary.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, TryRecvError};

use crate::checkpoint::CheckpointDir;
use crate::error::RunError;
use crate::latency::{IntervalLog, LatencyRecorder, LatencyStage};
use crate::pipeline::Pipeline;
use crate::report::CheckpointReport;
use crate::report::{LatencyReport, RunReport};
use crate::sink::RunInfo;
use crate::source::{Acker, Chained, EventTimeFormat, Events, Feed, InputChunk, Message, Poll, Source};
use crate::time::{Clock, NO_TIME, PRECISE_SPIN};
use crate::window::{OutputMode, TimeDomain};

/// How the graph is driven.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Spark Streaming style: collect for `interval`, then process the batch.
    MicroBatch {
        /// The batch interval.
        interval: Duration,
    },
    /// Storm style: every event through the whole graph as it arrives.
    PerEvent,
}

impl Mode {
    /// `micro-batch` or `per-event`.
    pub fn name(&self) -> &'static str {
        match self {
            Mode::MicroBatch { .. } => "micro-batch",
            Mode::PerEvent => "per-event",
        }
    }
}

/// How long per-event mode polls its input queue before sleeping, unless
/// told otherwise ([`RunOptions::spin_wait`]).
pub const DEFAULT_SPIN: Duration = Duration::from_micros(20);

/// The default [`RunOptions::max_batch_bytes`]: 8 MiB.
pub const DEFAULT_MAX_BATCH_BYTES: usize = 8 << 20;

/// The default [`RunOptions::queue_chunks`]: 128 chunks, 8 MiB of a file's
/// 64 KiB reads, so that a full micro-batch fits in the queue. Under a
/// backlog the next batch is then queued already when one ends. With 64
/// chunks (4 MiB), the executor took the queue's half of every full batch
/// at once and then waited while the source read the other half (100 MB,
/// one core, micro-batch: 583–761 ms, 583–653 ms with 128; BENCHMARKS.md).
pub const DEFAULT_QUEUE_CHUNKS: usize = 128;

/// How a run is carried out.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The execution mode.
    pub mode: Mode,
    /// How sources find event times.
    pub event_time: EventTimeFormat,
    /// Chunks the source-to-executor queue holds before sources block.
    pub queue_chunks: usize,
    /// A micro-batch that holds this many bytes before its boundary runs at
    /// once: the input comes faster than batches run (a backlog), and, as
    /// Spark caps a batch with `maxBytesPerTrigger` and starts the next one
    /// right after, memory stays bounded however large the input.
    pub max_batch_bytes: usize,
    /// Set from outside (Ctrl-C, SIGTERM) to end the run cleanly: queued
    /// input is processed, open windows are flushed, the report is made.
    pub interrupt: Arc<AtomicBool>,
    /// Shards of the keyed window, each on a thread of its own, with the
    /// keys split between them (see `--parallelism`); 1 runs the whole graph
    /// on the executor's thread.
    pub parallelism: usize,
    /// Per-event mode: how long to poll the input queue before going to
    /// sleep on it. Waking a sleeping thread costs some 10 µs here, which
    /// would be most of an event's processing latency; polling costs CPU
    /// for up to this long per wait instead.
    pub spin_wait: Duration,
    /// Record latency (the default). Off, the executors and operators read
    /// no clocks and record nothing per event, which is how the cost of
    /// measuring is measured (`--no-latency`).
    pub latency: bool,
    /// Serve Prometheus metrics here while the run goes on.
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Publish metrics to this endpoint, already serving (`sluice compare`
    /// and `sweep` keep one for all their runs), instead of starting one
    /// at `metrics_addr`.
    pub metrics_server: Option<Arc<crate::metrics::MetricsServer>>,
    /// The `mode` label of the run's metrics, if not the mode's name
    /// (`compare` tells its runs apart by the names its table gives them,
    /// like `micro-batch:100ms`).
    pub metrics_label: Option<String>,
    /// The rate the input is offered at, lines/s, when known (`compare`,
    /// `sweep`), for metrics.
    pub offered_rate: Option<f64>,
    /// Draw a progress line on stderr when it is a terminal and the input's
    /// size is known.
    pub progress: bool,
    /// Write an HdrHistogram interval log to this path, one interval per
    /// the given duration (see [`IntervalLog`]).
    pub interval_log: Option<(PathBuf, Duration)>,
    /// Take checkpoints, and start from the last one (see
    /// [`crate::checkpoint`]).
    pub checkpoint: Option<Checkpointing>,
    /// Per-event mode: a run's only source, if it can be chained (the
    /// generator, see [`Source::chained`]), is driven by the executor's
    /// thread between events instead of by a thread of its own (the
    /// default). One busy thread instead of two leaves this machine's
    /// other core to everything else, which is what takes a busy thread
    /// off its core for milliseconds (BENCHMARKS.md).
    pub chain_source: bool,
    /// Micro-batch mode: where the batch grid starts (wall time), if not
    /// when the run does. `sluice compare` starts it with the generator's
    /// first line, so that a run of whole intervals is whole batches: a
    /// short last batch (input that ends just after a boundary) would
    /// shorten its lines' waits and flatter the percentiles.
    pub batch_origin: Option<crate::time::EpochNanos>,
}

/// Where and how often checkpoints are taken.
#[derive(Debug, Clone)]
pub struct Checkpointing {
    /// The directory, opened, with the pipeline named
    /// ([`CheckpointDir::check_pipeline`]).
    pub dir: CheckpointDir,
    /// The least time between two snapshots: in micro-batch mode one is
    /// taken at the first batch boundary after it; in per-event mode at the
    /// first flush after it (the input queue ran empty, or every 200 ms
    /// under sustained input).
    pub interval: Duration,
    /// Refuse sources a restart cannot resume (the command line); off only
    /// to measure what checkpoints cost (`sluice compare`).
    pub require_resumable: bool,
}

/// The default [`Checkpointing::interval`].
pub const DEFAULT_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);

impl RunOptions {
    /// Options for `mode` with defaults for the rest.
    pub fn new(mode: Mode) -> Self {
        RunOptions {
            mode,
            event_time: EventTimeFormat::None,
            queue_chunks: DEFAULT_QUEUE_CHUNKS,
            max_batch_bytes: DEFAULT_MAX_BATCH_BYTES,
            interrupt: Arc::new(AtomicBool::new(false)),
            spin_wait: DEFAULT_SPIN,
            parallelism: 1,
            latency: true,
            metrics_addr: None,
            metrics_server: None,
            metrics_label: None,
            offered_rate: None,
            progress: false,
            interval_log: None,
            checkpoint: None,
            chain_source: true,
            batch_origin: None,
        }
    }
}

/// What a run produced: its report, and the error that ended it, if any.
/// Results before an error were delivered and flushed.
#[derive(Debug)]
pub struct RunOutcome {
    /// The report.
    pub report: RunReport,
    /// The error that ended the run early.
    pub error: Option<RunError>,
    /// The latency histograms the report summarizes.
    pub latency: crate::latency::LatencyRecorder,
}

/// Input counters the executor keeps.
#[derive(Debug, Default)]
struct Tally {
    /// Next event sequence number, and so the number of events.
    seq: u64,
    /// Input bytes.
    bytes: u64,
    /// Lines cut.
    truncated: u64,
    /// Event-time fallbacks.
    fallbacks: u64,
    /// Batches run.
    batches: u64,
    /// Batches run early because they were full.
    full_batches: u64,
    /// Per input, the latest event time delivered so far.
    frontiers: Vec<i64>,
    /// Per input, the place (file, offset) just after the last line
    /// processed.
    processed: Vec<Option<(u64, u64)>>,
}

impl Tally {
    /// Counts a chunk and notes each line's source wait (event time →
    /// ingest) in `lat`; returns its lines as events, numbered on from the
    /// chunks before.
    fn events<'a>(&mut self, chunk: &'a InputChunk, lat: &mut LatencyRecorder, clock: &Clock) -> Events<'a> {
        self.bytes += chunk.bytes;
        self.truncated += chunk.truncated as u64;
        self.fallbacks += chunk.time_fallbacks as u64;
        let input = chunk.input as usize;
        if self.frontiers.len() <= input {
            self.frontiers.resize(input + 1, NO_TIME);
            self.processed.resize(input + 1, None);
        }
        self.processed[input] = Some((chunk.file, chunk.end_offset));
        let before = self.frontiers[input];
        let mut frontier = before;
        let ingest_wall = clock.to_wall(chunk.ingest);
        for l in chunk.lines.iter().filter(|l| l.event_time != NO_TIME) {
            frontier = frontier.max(l.event_time);
            if !lat.off {
                lat.stage_n(LatencyStage::SourceWait, ingest_wall.saturating_sub(l.event_time), 1);
            }
        }
        self.frontiers[input] = frontier;
        let seq = self.seq;
        self.seq += chunk.lines.len() as u64;
        chunk.events(seq, before)
    }
}

/// Keeps the error of a snapshot's write that ended after the run did. A
/// sink that failed outranks a source that failed: the run then ends
/// without a final checkpoint (a failed sync may have lost results, and the
/// final checkpoint would count them), where a failing source alone keeps
/// one.
fn note_write_error(error: &mut Option<RunError>, e: RunError) {
    match error {
        Some(source @ RunError::Source { .. }) if matches!(e, RunError::Sink { .. }) => {
            tracing::error!("{source}");
            *error = Some(e);
        }
        _ => {
            error.get_or_insert(e);
        }
    }
}

/// Runs `pipeline` over `sources` until they end, fail or are interrupted.
pub fn run(pipeline: Pipeline, mut sources: Vec<Box<dyn Source>>, opts: &RunOptions) -> RunOutcome {
    let Pipeline { config, mut graph } = pipeline;
    let parallelism = opts.parallelism.max(1);
    graph.latency_mut().off = !opts.latency;
    // With shards, polling pays only with a core to spare for every thread
    // that polls: on a smaller machine the shard threads need the cores the
    // router would spin on, waiting for input or for the shards' answers
    // (the shards follow the same rule). Measured on 2 cores, per-event at
    // 100,000 lines/s with two shards: p50 120 µs → 17 µs (BENCHMARKS.md).
    let spin = if parallelism > 1 && crate::config::default_parallelism() < parallelism + 2 {
        Duration::ZERO
    } else {
        opts.spin_wait
    };
    if parallelism > 1 {
        graph = graph.shard(parallelism, spin);
    }
    let mut checkpoints = opts.checkpoint.as_ref().map(|c| CheckpointReport {
        epoch: c.dir.epoch(),
        restored: c.dir.window().is_some(),
        ..Default::default()
    });
    if let Some(window) = opts.checkpoint.as_ref().and_then(|c| c.dir.window()) {
        graph.restore(window);
    }
    let strict = opts.checkpoint.as_ref().is_some_and(|c| c.require_resumable);
    let unresumable: Vec<String> = sources.iter().filter(|s| strict && !s.resumable()).map(|s| s.name()).collect();
    let usage = crate::usage::Usage::start();
    let clock = Clock::new();
    let (tx, rx) = bounded(opts.queue_chunks.max(1));
    let stop = Arc::new(AtomicBool::new(false));
    let alive = sources.len();
    let mut acks = Acks::default();
    for (i, s) in sources.iter().enumerate() {
        acks.opened(i as u32, s.acker());
    }
    let next_input = Arc::new(AtomicU32::new(sources.len() as u32));
    let event_clocks: Vec<_> = sources.iter().filter_map(|s| s.event_time_clock()).collect();
    let extent = crate::metrics::Extent::of_all(sources.iter().map(|s| s.extent()));
    if opts.checkpoint.is_some() && parallelism == 1 && opts.latency {
        // When effects become committed is measured on one shard.
        graph.latency_mut().measure_commits(clock.to_wall(clock.now()));
    }
    let mut live = Live {
        metrics: None,
        progress: if opts.progress { crate::metrics::Progress::on_terminal(extent) } else { None },
        last: Instant::now(),
        parallelism,
    };
    let mut error = None;
    if let Some(name) = unresumable.first() {
        // Its input cannot be read again from a saved position: restoring
        // windows and reading it from its start would count twice.
        error = Some(RunError::Source {
            source_name: name.clone(),
            message: "cannot be resumed from a checkpoint; checkpoints work with followed files and Kafka topics, without --no-follow; drop --checkpoint-dir".into(),
        });
    }
    if let Some(server) = &opts.metrics_server {
        live.metrics = Some(server.clone());
    } else if let Some(addr) = opts.metrics_addr {
        match crate::metrics::MetricsServer::start(addr) {
            Ok(m) => live.metrics = Some(Arc::new(m)),
            Err(message) => {
                error = Some(RunError::Sink { sink: "metrics".into(), err: std::io::Error::other(message) })
            }
        }
    }
    // Per-event mode with one source that can be chained: the executor
    // drives it, and no source thread runs.
    let mut chained = None;
    if opts.chain_source && matches!(opts.mode, Mode::PerEvent) && sources.len() == 1 && error.is_none() {
        chained = sources[0].chained(clock, 0);
        if chained.is_some() {
            sources.clear();
        }
    }
    for (i, source) in sources.into_iter().enumerate() {
        let feed = Feed::new(tx.clone(), clock, stop.clone(), i as u32, next_input.clone(), opts.event_time.clone())
            .with_precise_pacing(matches!(opts.mode, Mode::PerEvent));
        let tx = tx.clone();
        let name = source.name();
        let spawned = thread::Builder::new().name(format!("source-{i}")).spawn(move || {
            let msg = match source.run(feed) {
                Ok(()) => Message::End(i as u32),
                Err(e) => Message::Failed(i as u32, e),
            };
            let _ = tx.send(msg);
        });
        if let Err(e) = spawned {
            tracing::error!(source = %name, "cannot start a thread: {e}");
        }
    }
    drop(tx);

    let (interval_ms, immediate) = match opts.mode {
        Mode::MicroBatch { interval } => (Some(interval.as_secs_f64() * 1e3), false),
        Mode::PerEvent => (None, true),
    };
    let info = RunInfo { mode: opts.mode.name(), batch_interval_ms: interval_ms.map(|ms| ms as u64), value_field: "" };
    let mut tally = Tally::default();
    let mut hlog = None;
    if let Some((path, every)) = &opts.interval_log {
        match IntervalLog::create(path, clock.to_wall(0), *every) {
            Ok(mut log) => {
                log.begin(graph.latency_mut(), clock.now());
                hlog = Some(log);
            }
            Err(message) => {
                error = Some(RunError::Sink { sink: "hdr-log".into(), err: std::io::Error::other(message) })
            }
        }
    }
    let mut run = Runner {
        chained,
        spin,
        graph: &mut *graph,
        rx: &rx,
        clock,
        tally: &mut tally,
        opts,
        alive,
        stop: &stop,
        acks: &mut acks,
        last_ack: Instant::now(),
        failure: None,
        ended_by: "end-of-input",
        hlog: &mut hlog,
        live: &mut live,
        pending_bytes: 0,
        checkpoint: opts.checkpoint.as_ref(),
        last_checkpoint: Instant::now(),
        checkpoints: &mut checkpoints,
        checkpoint_ms: 0.0,
        checkpointed: None,
        checkpoint_failing: false,
        in_flight: None,
        pauses: 0,
        write_ms: 0.0,
    };
    if error.is_none() {
        error = run.graph.open(info, clock, immediate).err();
    }
    if error.is_none() {
        let result = match opts.mode {
            Mode::PerEvent => run.per_event(),
            Mode::MicroBatch { interval } => run.micro_batch(interval),
        };
        // A failing source ends the run after what was accepted is processed.
        error = result.err().or(run.failure.take());
    }
    let mut ended_by = run.ended_by;
    // A snapshot still being written is finished first, whatever happens
    // next: the final one must not race it, and a failed run keeps it.
    if let Err(e) = run.finish_write(true) {
        note_write_error(&mut error, e);
    }
    // With checkpoints, the run ends with one, and open windows stay in it
    // for the restart rather than being emitted early; unless a sink
    // failed, when what the sinks hold is unknown and the last good
    // checkpoint is where a restart resumes. Input that ended (bounded)
    // has no restart to wait for: its windows close first, as without
    // checkpoints.
    let keep = opts.checkpoint.is_some() && matches!(error, None | Some(RunError::Source { .. }));
    let mut final_checkpoint = Ok(());
    if keep && unresumable.is_empty() {
        let ended = run.ended_by == "end-of-input";
        if ended {
            final_checkpoint = run.graph.close_windows();
        }
        final_checkpoint = final_checkpoint.and_then(|()| run.take_checkpoint(true));
        if let (Some(c), true) = (run.checkpoints.as_mut(), final_checkpoint.is_ok()) {
            c.open_windows_kept = !ended;
        }
    }
    if let Some(p) = live.progress.as_mut() {
        p.clear();
    }
    stop.store(true, Ordering::Relaxed);
    let finished = if opts.checkpoint.is_some() { final_checkpoint.and(graph.suspend()) } else { graph.finish() };
    if let Some(log) = hlog.take() {
        if let Err(message) = log.finish(graph.latency_mut(), clock.now()) {
            error.get_or_insert(RunError::Sink { sink: "hdr-log".into(), err: std::io::Error::other(message) });
        }
    }
    // The run as it ended: a shared endpoint (`compare`) keeps serving it
    // while the next runs go on.
    if let Some(m) = &live.metrics {
        m.publish(live.snapshot(&*graph, &tally, opts, &rx, 0));
    }
    // Every window was emitted and flushed: all processed lines are
    // acknowledged, unless a sink failed on the way (a source failing does
    // not make what was delivered less delivered).
    if opts.checkpoint.is_none() && finished.is_ok() && matches!(error, None | Some(RunError::Source { .. })) {
        if let Err(message) = acks.acknowledge(&mut *graph, &tally, true) {
            // The run's results are out, but a restart would count some again.
            error.get_or_insert(RunError::SavePosition { message });
        }
    }
    if error.is_none() {
        // Otherwise the first error is the one to report.
        error = finished.err();
    }
    if error.is_some() {
        ended_by = "failed";
    }
    let elapsed = clock.now() as f64 / 1e9;
    let counters = graph.counters();
    let report = RunReport {
        mode: opts.mode.name().to_string(),
        batch_interval_ms: interval_ms,
        parallelism,
        events: tally.seq,
        bytes: tally.bytes,
        elapsed_s: elapsed,
        events_per_s: if elapsed > 0.0 { tally.seq as f64 / elapsed } else { 0.0 },
        mb_per_s: if elapsed > 0.0 { tally.bytes as f64 / elapsed / 1e6 } else { 0.0 },
        cpu_s: usage.cpu_s(),
        peak_rss_bytes: usage.peak_rss_bytes(),
        items: counters.items,
        results: counters.results,
        late_events: counters.late_events,
        late_items: counters.late_items,
        truncated_lines: tally.truncated,
        event_time_fallbacks: tally.fallbacks,
        batches: interval_ms.map(|_| tally.batches),
        full_batches: interval_ms.map(|_| tally.full_batches),
        window: config.spec.to_string(),
        output: match config.output {
            OutputMode::Final => "final",
            OutputMode::Update => "update",
        }
        .to_string(),
        time: match config.time {
            TimeDomain::Processing => "processing",
            TimeDomain::Event => "event",
        }
        .to_string(),
        ended_by: ended_by.to_string(),
        latency: LatencyReport::from_recorder(graph.latency()),
        checkpoints,
    };
    let mut report = report;
    if let Some(kind) = event_clocks.iter().find_map(|c| c.lock().ok().and_then(|k| *k)) {
        report.latency.clocks.end_to_end = format!("wall; event time is the Kafka message timestamp ({kind})");
    }
    RunOutcome { report, error, latency: graph.latency().clone() }
}

/// The metrics endpoint and the progress line, fed every
/// [`crate::metrics::PUBLISH_EVERY`].
struct Live {
    /// The Prometheus endpoint, if asked for.
    metrics: Option<Arc<crate::metrics::MetricsServer>>,
    /// The progress line, if drawn.
    progress: Option<crate::metrics::Progress>,
    /// When they were last fed.
    last: Instant,
    /// Shards of the keyed window.
    parallelism: usize,
}

impl Live {
    fn snapshot(
        &self,
        graph: &dyn crate::pipeline::Graph,
        tally: &Tally,
        opts: &RunOptions,
        rx: &Receiver<Message>,
        batch_bytes: usize,
    ) -> crate::metrics::Snapshot {
        let c = graph.counters();
        crate::metrics::Snapshot {
            mode: opts.metrics_label.clone().unwrap_or_else(|| opts.mode.name().to_string()),
            parallelism: self.parallelism,
            events: tally.seq,
            bytes: tally.bytes,
            items: c.items,
            results: c.results,
            late_events: c.late_events,
            late_items: c.late_items,
            truncated: tally.truncated,
            watermark: graph.watermark(),
            at: crate::time::wall_now(),
            queued: rx.len(),
            queue_capacity: rx.capacity().unwrap_or(0),
            shard_queues: graph.shard_queues(),
            batch_bytes,
            offered_rate: opts.offered_rate,
            latency: graph.latency().clone(),
        }
    }
}

/// The executor's loop state.
struct Runner<'a> {
    /// Per-event mode: the source the executor's thread drives, if chained.
    chained: Option<Box<dyn Chained>>,
    /// The pipeline.
    graph: &'a mut dyn crate::pipeline::Graph,
    /// Chunks from the sources.
    rx: &'a Receiver<Message>,
    /// The run's clock.
    clock: Clock,
    /// Input counters.
    tally: &'a mut Tally,
    /// Options.
    opts: &'a RunOptions,
    /// Per-event mode: how long the input queue is polled before sleeping.
    spin: Duration,
    /// Sources still running.
    alive: usize,
    /// Tells the sources to stop.
    stop: &'a AtomicBool,
    /// Where acknowledgements go.
    acks: &'a mut Acks,
    /// When acknowledgements were last computed.
    last_ack: Instant,
    /// The first source failure; the run ends after draining.
    failure: Option<RunError>,
    /// How the run ended.
    ended_by: &'static str,
    /// The interval log, if one is kept.
    hlog: &'a mut Option<IntervalLog>,
    /// Metrics and progress.
    live: &'a mut Live,
    /// Micro-batch mode: bytes collected for the next batch, for metrics.
    pending_bytes: usize,
    /// Checkpoints, if taken.
    checkpoint: Option<&'a Checkpointing>,
    /// When the last checkpoint was taken (or the run started).
    last_checkpoint: Instant,
    /// What checkpointing did, for the report.
    checkpoints: &'a mut Option<CheckpointReport>,
    /// Total ms the executor spent taking snapshots.
    checkpoint_ms: f64,
    /// Events and results at the last checkpoint.
    checkpointed: Option<(u64, u64)>,
    /// Whether the last snapshot failed to be written (to warn once per
    /// failing stretch).
    checkpoint_failing: bool,
    /// A snapshot being written on its own thread.
    in_flight: Option<InFlight>,
    /// Snapshots taken (written or not).
    pauses: u64,
    /// Total ms snapshots took to be written.
    write_ms: f64,
}

/// A snapshot taken, being written and synced off the executor's thread.
struct InFlight {
    /// The write.
    write: std::thread::JoinHandle<Written>,
    /// When the write started.
    started: Instant,
    /// Events and results the snapshot covers.
    progress: (u64, u64),
}

/// How a snapshot's write ended.
struct Written {
    /// The snapshot's epoch once it is on disk.
    result: std::io::Result<u64>,
    /// When the write ended, monotonic.
    done: Instant,
    /// The same, as wall time: when its results became committed.
    done_wall: crate::time::EpochNanos,
}

impl Written {
    /// Writes `snapshot` into `dir` now.
    fn write(dir: &crate::checkpoint::CheckpointDir, snapshot: crate::checkpoint::GraphSnapshot, clock: Clock) -> Self {
        let result = dir.commit(snapshot);
        Written { result, done: Instant::now(), done_wall: clock.to_wall(clock.now()) }
    }
}

/// How often acknowledgements are computed at most.
const ACK_EVERY: Duration = Duration::from_millis(200);

/// Where each input's acknowledgements go.
#[derive(Default)]
struct Acks {
    /// Per input, its acker, while it may still get acknowledgements.
    ackers: Vec<Option<Arc<dyn Acker>>>,
    /// Per input, whether it sends nothing more.
    closed: Vec<bool>,
    /// Per input, whether it had closed when the snapshot last staged was:
    /// only then does that snapshot hold its last place, and its acker may
    /// go once the snapshot is durable.
    closed_when_staged: Vec<bool>,
}

impl Acks {
    fn opened(&mut self, input: u32, acker: Option<Arc<dyn Acker>>) {
        let i = input as usize;
        if self.ackers.len() <= i {
            self.ackers.resize(i + 1, None);
            self.closed.resize(i + 1, false);
        }
        self.ackers[i] = acker;
    }

    fn closed(&mut self, input: u32) {
        if let Some(c) = self.closed.get_mut(input as usize) {
            *c = true;
        }
    }

    fn any(&self) -> bool {
        self.ackers.iter().any(Option::is_some)
    }

    /// With checkpoints, before a snapshot is written: every line processed
    /// has its effect in it, so each input's acker stages the place after
    /// its last processed line for it.
    fn stage_processed(&mut self, tally: &Tally) {
        for (input, acker) in self.ackers.iter().enumerate() {
            let Some(acker) = acker else { continue };
            if let Some((file, offset)) = tally.processed.get(input).copied().flatten() {
                acker.stage(file, offset);
            }
        }
        for acker in self.ackers.iter().flatten() {
            acker.staging_done();
        }
        self.closed_when_staged.clone_from(&self.closed);
    }

    /// With checkpoints, once the snapshot is durable: the ackers may tell
    /// others (Kafka commits its offsets); with `last`, they do it now. An
    /// input that had closed when the snapshot was staged is done with (one
    /// that closed while it was being written still has its last place to
    /// stage, in the next one).
    fn committed(&mut self, last: bool) -> Result<(), String> {
        let mut result = Ok(());
        for (input, slot) in self.ackers.iter_mut().enumerate() {
            let Some(acker) = slot else { continue };
            acker.committed();
            if last {
                if let Err(e) = acker.save(true) {
                    result = Err(e);
                }
            }
            if self.closed_when_staged.get(input).copied().unwrap_or(false) {
                *slot = None;
            }
        }
        result
    }

    /// Tells each input's acker how far its lines are acknowledged: up to
    /// the earliest line still held in an open window, or else up to the
    /// last line processed; with `force`, has them saved now. Call it only
    /// right after the sinks were flushed. A closed input whose lines are all
    /// acknowledged is done with.
    fn acknowledge(
        &mut self,
        graph: &mut dyn crate::pipeline::Graph,
        tally: &Tally,
        force: bool,
    ) -> Result<(), String> {
        if !graph.settle() {
            // Where the windows stand is unknown: acknowledge nothing now.
            return Ok(());
        }
        let mut done = Vec::new();
        for (input, acker) in self.ackers.iter().enumerate() {
            let Some(acker) = acker else { continue };
            let processed = tally.processed.get(input).copied().flatten();
            let held = graph.unacked(input as u32);
            let upto = match (held, processed) {
                (Some(h), Some(p)) => Some(h.min(p)),
                (h, p) => h.or(p),
            };
            if let Some((file, offset)) = upto {
                acker.ack(file, offset);
            }
            if self.closed[input] && held.is_none() {
                done.push(input);
            }
        }
        // Sources save when due on their own threads; the end of a run
        // saves here, so that it is done before the run returns.
        let mut result = Ok(());
        if force {
            for acker in self.ackers.iter().flatten() {
                if let Err(e) = acker.save(true) {
                    result = Err(e);
                }
            }
        }
        for input in done {
            self.ackers[input] = None;
        }
        result
    }
}

/// The longest the executors block without looking at the interrupt flag.
const POLL: Duration = Duration::from_millis(50);

/// While chunks keep arriving, micro-batch mode collects them this long at
/// a time (sleeping, then taking everything queued) instead of waking for
/// each: the batch runs only at its boundary, so waking per chunk bought
/// nothing, and with a source that sends a line at a time (the generator
/// at 20,000 lines/s) cost the executor a quarter of a core in the
/// channel's back-off and the source a futex wake-up per chunk. A source
/// blocks only if it sends more than the queue holds
/// ([`DEFAULT_QUEUE_CHUNKS`] by default) in a nap, and then its lines come
/// in larger chunks.
const COLLECT_NAP: Duration = Duration::from_millis(1);

/// Micro-batch mode: a batch boundary is waited for by polling the queue
/// and the clock for this long before it, and by sleeping before that. A
/// sleeping executor woke some 75 µs late here, and every line of the batch
/// waited that much longer (queueing); the polling costs 1% of a core at
/// 10 ms batches.
const BOUNDARY_SPIN: u64 = 100_000;

impl Runner<'_> {
    /// Flushes the sinks, and acknowledges what they now hold (at most
    /// every [`ACK_EVERY`]); with checkpoints, takes one when due instead.
    fn flush(&mut self) -> Result<(), RunError> {
        self.graph.flush()?;
        if let Some(log) = self.hlog.as_mut() {
            log.tick(self.graph.latency_mut(), self.clock.now());
        }
        self.live_tick();
        if let Some(c) = self.checkpoint {
            self.finish_write(false)?;
            // Lines are acknowledged by checkpoints, not by flushes.
            if self.last_checkpoint.elapsed() >= c.interval {
                // Nothing new since the last one (quiet input): the last
                // one still says everything.
                let now = (self.tally.seq, self.graph.counters().results);
                if self.checkpointed != Some(now) {
                    self.take_checkpoint(false)?;
                }
            }
            return Ok(());
        }
        if self.acks.any() && self.last_ack.elapsed() >= ACK_EVERY {
            self.last_ack = Instant::now();
            // Not forced: nothing is written here, so nothing can fail.
            let _ = self.acks.acknowledge(&mut *self.graph, self.tally, false);
        }
        Ok(())
    }

    /// Takes a checkpoint now: the graph's snapshot (its sinks committed),
    /// the positions just after every line processed, one atomic write. The
    /// executor only takes the snapshot; the write and its fsyncs happen on
    /// a thread of their own while events go on, one snapshot at a time
    /// (the `last` one of the run is written before this returns). A
    /// snapshot that cannot be written is warned about (once per failing
    /// stretch) and the last good one stays, unless it is the `last` one,
    /// which then fails the run. A sink that fails ends the run.
    fn take_checkpoint(&mut self, last: bool) -> Result<(), RunError> {
        let Some(c) = self.checkpoint else { return Ok(()) };
        // The one before goes to disk first: positions are staged for one
        // snapshot at a time.
        self.finish_write(true)?;
        let started = Instant::now();
        self.last_checkpoint = started;
        let progress = (self.tally.seq, self.graph.counters().results);
        let snapshot = self.graph.snapshot()?;
        // Every line processed has its effect in the snapshot: the sources
        // stage where they stand for it. Nothing stages a place past it
        // before the next snapshot, which waits for this one's write.
        self.acks.stage_processed(self.tally);
        let (dir, clock) = (c.dir.clone(), self.clock);
        // Handed over in a slot, so that it can be written here if no
        // thread can be started.
        let slot = Arc::new(Mutex::new(Some(snapshot)));
        let taken = slot.clone();
        let spawned = std::thread::Builder::new().name("sluice-checkpoint".into()).spawn(move || {
            let snapshot = taken.lock().ok().and_then(|mut s| s.take()).unwrap_or_default();
            Written::write(&dir, snapshot, clock)
        });
        let ms = started.elapsed().as_secs_f64() * 1e3;
        self.pauses += 1;
        self.checkpoint_ms += ms;
        if let Some(report) = self.checkpoints.as_mut() {
            report.max_ms = report.max_ms.max(ms);
            report.mean_ms = self.checkpoint_ms / self.pauses as f64;
        }
        let write_started = Instant::now();
        match spawned {
            Ok(write) => self.in_flight = Some(InFlight { write, started: write_started, progress }),
            Err(e) => {
                tracing::warn!("cannot start a thread to write the checkpoint ({e}); writing it here");
                let snapshot = slot.lock().ok().and_then(|mut s| s.take()).unwrap_or_default();
                let written = Written::write(&c.dir, snapshot, self.clock);
                return self.account_write(written, write_started, progress, last);
            }
        }
        if last {
            self.finish_write_as(true, true)?;
        }
        Ok(())
    }

    /// Finishes the snapshot being written, if its write is done (or
    /// waiting for it with `wait`): tells the graph and the sources that it
    /// is durable, and counts it. A failed write is warned about; the last
    /// good snapshot stays.
    fn finish_write(&mut self, wait: bool) -> Result<(), RunError> {
        self.finish_write_as(wait, false)
    }

    fn finish_write_as(&mut self, wait: bool, last: bool) -> Result<(), RunError> {
        if !wait && !self.in_flight.as_ref().is_some_and(|f| f.write.is_finished()) {
            return Ok(());
        }
        let Some(f) = self.in_flight.take() else { return Ok(()) };
        let written = f.write.join().unwrap_or_else(|_| Written {
            result: Err(std::io::Error::other("the checkpoint writer panicked")),
            done: Instant::now(),
            done_wall: self.clock.to_wall(self.clock.now()),
        });
        self.account_write(written, f.started, f.progress, last)
    }

    /// What follows a snapshot's write: the graph and the sources are told
    /// it is durable (as of when the write ended), and it is counted; a
    /// failure is warned about, or fails the run when it is the `last`
    /// snapshot.
    fn account_write(
        &mut self,
        written: Written,
        started: Instant,
        progress: (u64, u64),
        last: bool,
    ) -> Result<(), RunError> {
        let Some(c) = self.checkpoint else { return Ok(()) };
        let write_ms = written.done.saturating_duration_since(started).as_secs_f64() * 1e3;
        if written.result.is_ok() {
            self.graph.committed(written.done_wall);
            if let Err(message) = self.acks.committed(last) {
                // The snapshot stands; the Kafka group's offsets lag behind
                // it, which a restart from the snapshot does not mind.
                tracing::warn!("{message}");
            }
        }
        let Some(report) = self.checkpoints.as_mut() else { return Ok(()) };
        match written.result {
            Ok(epoch) => {
                self.checkpointed = Some(progress);
                report.taken += 1;
                report.epoch = epoch;
                self.write_ms += write_ms;
                report.write_mean_ms = self.write_ms / report.taken as f64;
                report.write_max_ms = report.write_max_ms.max(write_ms);
                if std::mem::take(&mut self.checkpoint_failing) {
                    tracing::info!(epoch, "checkpoints are written again");
                }
                Ok(())
            }
            Err(e) => {
                report.failed += 1;
                let e = match crate::checkpoint::SinkSyncError::take(e) {
                    Ok(failed) => return Err(RunError::Sink { sink: failed.sink, err: failed.err }),
                    Err(e) => e,
                };
                let message = format!(
                    "cannot write a checkpoint in {}: {e}; the last good one (epoch {}) stays, and a restart resumes from it",
                    c.dir.dir().display(),
                    report.epoch
                );
                if last {
                    return Err(RunError::CheckpointWrite { message });
                }
                if !std::mem::replace(&mut self.checkpoint_failing, true) {
                    tracing::warn!("{message}; will keep trying");
                }
                Ok(())
            }
        }
    }

    /// Publishes metrics and redraws the progress line, when due.
    fn live_tick(&mut self) {
        if (self.live.metrics.is_some() || self.live.progress.is_some())
            && self.live.last.elapsed() >= crate::metrics::PUBLISH_EVERY
        {
            self.live.last = Instant::now();
            if let Some(m) = &self.live.metrics {
                m.publish(self.live.snapshot(&*self.graph, self.tally, self.opts, self.rx, self.pending_bytes));
            }
            if let Some(p) = self.live.progress.as_mut() {
                p.draw(self.tally.bytes, self.tally.seq);
            }
        }
    }

    fn interrupted(&self) -> bool {
        self.opts.interrupt.load(Ordering::Relaxed)
    }

    /// Handles a message other than a chunk: an input opened or closed, a
    /// source's end or failure. True when the run should end: no source is
    /// left, or one failed (then the others are stopped).
    fn control(&mut self, msg: Message) -> bool {
        match msg {
            Message::Chunk(_) => false,
            Message::Opened(input, acker) => {
                self.acks.opened(input, acker);
                self.graph.register_input(input, self.clock.now());
                false
            }
            Message::Closed(input) => {
                self.acks.closed(input);
                false
            }
            Message::End(_) => {
                self.alive -= 1;
                self.alive == 0
            }
            Message::Failed(_, e) => {
                self.alive -= 1;
                self.failure.get_or_insert(e);
                self.stop.store(true, Ordering::Relaxed);
                self.ended_by = "failed";
                true
            }
        }
    }

    /// Stops the sources and collects what they had already handed over,
    /// so that nothing accepted is lost. A source blocked in a read that
    /// cannot be interrupted (stdin) is not waited for longer than a moment.
    fn drain(&mut self) -> Vec<InputChunk> {
        self.stop.store(true, Ordering::Relaxed);
        let mut chunks = Vec::new();
        while self.alive > 0 {
            match self.rx.recv_timeout(Duration::from_millis(200)) {
                Ok(Message::Chunk(c)) => chunks.push(c),
                Ok(msg) => {
                    self.control(msg);
                }
                Err(_) => break,
            }
        }
        chunks
    }

    fn per_event(&mut self) -> Result<(), RunError> {
        if self.alive == 0 {
            return Ok(());
        }
        if let Some(source) = self.chained.take() {
            return self.per_event_chained(source);
        }
        loop {
            if self.interrupted() {
                self.ended_by = "stopped";
                // Input already queued was accepted: process it.
                for c in self.drain() {
                    self.per_event_chunk(c)?;
                }
                return Ok(());
            }
            let mut wait = POLL;
            if let Some(close) = self.graph.next_close() {
                let at = self.clock.to_mono(close);
                wait = wait.min(Duration::from_nanos(at.saturating_sub(self.clock.now())));
            }
            let received = crate::shard::recv_spinning(self.rx, self.spin, wait);
            match received {
                Ok(Message::Chunk(c)) => {
                    self.per_event_chunk(c)?;
                    // Flush when the queue is drained, and under sustained
                    // input at least every ACK_EVERY, so that positions keep
                    // being acknowledged.
                    if self.rx.is_empty() || self.last_ack.elapsed() >= ACK_EVERY {
                        self.flush()?;
                    }
                }
                Ok(msg) => {
                    if self.control(msg) {
                        for c in self.drain() {
                            self.per_event_chunk(c)?;
                        }
                        return Ok(());
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    self.graph.advance(self.clock.now(), None)?;
                    self.flush()?;
                }
                Err(RecvTimeoutError::Disconnected) => return Ok(()),
            }
        }
    }

    /// Per-event mode with a chained source: between events, the executor
    /// asks the source for what is due, and waits for it as the source's
    /// own thread would (sleeping while it is far, polling the clock for
    /// its last [`PRECISE_SPIN`]). Sinks are flushed when nothing more is
    /// due, as when the input queue runs empty; windows close on time and
    /// every [`POLL`] without input, as when the queue stays empty.
    fn per_event_chained(&mut self, mut source: Box<dyn Chained>) -> Result<(), RunError> {
        let mut quiet_since = self.clock.now();
        let mut unflushed = false;
        loop {
            if self.interrupted() {
                self.ended_by = "stopped";
                return Ok(());
            }
            let now = self.clock.now();
            let next = match source.poll(now) {
                Poll::Lines(chunk) => {
                    self.per_event_chunk(chunk)?;
                    quiet_since = self.clock.now();
                    unflushed = true;
                    // Under sustained input, flush at least every
                    // ACK_EVERY, so that positions keep being acknowledged.
                    if self.last_ack.elapsed() >= ACK_EVERY {
                        self.flush()?;
                        unflushed = false;
                    }
                    continue;
                }
                Poll::Until(at) => at,
                Poll::End => {
                    self.alive -= 1;
                    return Ok(());
                }
            };
            // Nothing is due: the input queue would be empty now.
            if unflushed {
                self.flush()?;
                unflushed = false;
            }
            let mut wake = next.min(quiet_since + POLL.as_nanos() as u64);
            if let Some(close) = self.graph.next_close() {
                wake = wake.min(self.clock.to_mono(close));
            }
            let now = self.clock.now();
            if wake <= now && next > now {
                // A window to close, or a quiet stretch: as a timeout on
                // the queue would.
                self.graph.advance(now, None)?;
                self.flush()?;
                quiet_since = now;
                continue;
            }
            self.clock.wait_until(wake, PRECISE_SPIN);
        }
    }

    fn per_event_chunk(&mut self, chunk: InputChunk) -> Result<(), RunError> {
        let lines = chunk.lines.len() as u64;
        let events = self.tally.events(&chunk, self.graph.latency_mut(), &self.clock);
        // No batches here: every line's batch wait is zero.
        let lat = self.graph.latency_mut();
        if !lat.off {
            lat.stage_n(LatencyStage::BatchWait, 0, lines);
        }
        // Each line starts as the one before it was handed over.
        let at = self.clock.now();
        self.graph.push(events, at)?;
        self.graph.chunk_done();
        Ok(())
    }

    fn micro_batch(&mut self, interval: Duration) -> Result<(), RunError> {
        let step = interval.as_nanos().max(1) as u64;
        let origin = match self.opts.batch_origin {
            Some(wall) => self.clock.to_mono(wall),
            None => self.clock.now(),
        };
        let mut boundary = origin + step;
        let mut pending: Vec<InputChunk> = Vec::new();
        let mut pending_bytes = 0usize;
        let mut done = self.alive == 0;
        // The last look at the queue found something: nap, then take what
        // came meanwhile (`COLLECT_NAP`); otherwise block until a message.
        let mut arriving = false;
        while !done {
            if self.interrupted() {
                self.ended_by = "stopped";
                pending.extend(self.drain());
                break;
            }
            let now = self.clock.now();
            if now >= boundary {
                // What already waits in the queue arrived by the boundary:
                // it belongs to this batch, not the next.
                while !done && pending_bytes < self.opts.max_batch_bytes {
                    match self.rx.try_recv() {
                        Ok(msg) => done = self.collect(msg, &mut pending, &mut pending_bytes),
                        Err(_) => break,
                    }
                }
                if done {
                    // The last batch runs below.
                    continue;
                }
                self.pending_bytes = 0;
                self.run_batch(&mut pending, (origin, step))?;
                pending_bytes = 0;
                let now = self.clock.now();
                while boundary <= now {
                    boundary += step;
                }
                continue;
            }
            self.pending_bytes = pending_bytes;
            self.live_tick();
            // A snapshot whose write ended is accounted for now, not at the
            // next boundary: the sources that tell someone else (a Kafka
            // group's offsets) hear of it while the batch is collected.
            self.finish_write(false)?;
            if pending_bytes >= self.opts.max_batch_bytes {
                // The batch is full before its boundary: a backlog. It runs
                // now; the next one collects from here, on the same grid.
                self.pending_bytes = 0;
                self.run_batch(&mut pending, (origin, step))?;
                pending_bytes = 0;
                self.tally.full_batches += 1;
                continue;
            }
            match self.rx.try_recv() {
                Ok(msg) => {
                    arriving = true;
                    done = self.collect(msg, &mut pending, &mut pending_bytes);
                    continue;
                }
                Err(TryRecvError::Disconnected) => {
                    done = true;
                    continue;
                }
                Err(TryRecvError::Empty) => {}
            }
            if boundary - now <= BOUNDARY_SPIN {
                std::hint::spin_loop();
                continue;
            }
            let wait = Duration::from_nanos(boundary - now - BOUNDARY_SPIN).min(POLL);
            if arriving {
                arriving = false;
                thread::sleep(wait.min(COLLECT_NAP));
                continue;
            }
            match self.rx.recv_timeout(wait) {
                Ok(msg) => {
                    arriving = true;
                    done = self.collect(msg, &mut pending, &mut pending_bytes);
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => done = true,
            }
        }
        // End of input (or interrupt): the last batch runs now.
        self.run_batch(&mut pending, (origin, step))
    }

    /// Micro-batch mode: adds a chunk to the pending batch, or handles a
    /// control message; true when the input has ended (what the sources
    /// still had is then pending too).
    fn collect(&mut self, msg: Message, pending: &mut Vec<InputChunk>, pending_bytes: &mut usize) -> bool {
        match msg {
            Message::Chunk(c) => {
                *pending_bytes += c.data.len();
                pending.push(c);
                false
            }
            msg => {
                let ended = self.control(msg);
                if ended {
                    pending.extend(self.drain());
                }
                ended
            }
        }
    }

    /// Runs a batch now. Boundaries lie on the grid `origin + k·step`,
    /// k ≥ 1; a line's batch wait lasts until the first boundary at or
    /// after its ingest, and any time from there to the batch's start is
    /// queueing (an earlier batch overran).
    fn run_batch(&mut self, pending: &mut Vec<InputChunk>, (origin, step): (u64, u64)) -> Result<(), RunError> {
        let start = self.clock.now();
        let mut lines = 0;
        // The batch's lines go through the operators chunk by chunk, each
        // line through every operator in turn, as Spark pipelines a stage's
        // narrow operators over a partition: the results are those of the
        // whole batch at once (operators keep the order and nothing leaves
        // before the boundary), and a line's metadata is made only as it
        // goes in.
        for chunk in pending.drain(..) {
            let (n, ingest) = (chunk.lines.len() as u64, chunk.ingest);
            lines += n;
            let due = due_at(origin, step, ingest).min(start);
            let lat = self.graph.latency_mut();
            if !lat.off {
                lat.stage_n(LatencyStage::BatchWait, due.saturating_sub(ingest) as i64, n);
                lat.stage_n(LatencyStage::Queueing, start.saturating_sub(due) as i64, n);
            }
            let events = self.tally.events(&chunk, self.graph.latency_mut(), &self.clock);
            self.graph.push_batch(events);
        }
        self.graph.advance(self.clock.now(), Some((start, lines)))?;
        self.flush()?;
        self.tally.batches += 1;
        Ok(())
    }
}

/// The boundary a line ingested at `ingest` waits for: the first on the
/// grid `origin + k·step` at or after it, k ≥ 1 (no batch runs at the
/// origin itself, so a line ingested there waits for the first).
fn due_at(origin: u64, step: u64, ingest: u64) -> u64 {
    origin + ingest.saturating_sub(origin).div_ceil(step).max(1) * step
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_waits_for_the_first_boundary_at_or_after_it() {
        let (origin, step) = (1_000, 100);
        for (ingest, due) in [(1_000, 1_100), (1_001, 1_100), (1_100, 1_100), (1_101, 1_200), (1_250, 1_300)] {
            assert_eq!(due_at(origin, step, ingest), due, "ingest {ingest}");
        }
        // Input queued before a grid that starts later waits for its first
        // boundary too.
        assert_eq!(due_at(origin, step, 10), 1_100);
    }

    /// A checkpoint write that failed on a sink's sync, found after a
    /// source failed, decides how the run ends: no final checkpoint.
    #[test]
    fn a_failed_sink_sync_outranks_a_failed_source() {
        let source = || RunError::Source { source_name: "file:x".into(), message: "gone".into() };
        let sink = || RunError::Sink { sink: "jsonl:o".into(), err: std::io::Error::other("sync") };
        let mut error = Some(source());
        note_write_error(&mut error, sink());
        assert!(matches!(error, Some(RunError::Sink { .. })), "{error:?}");
        // Otherwise the first error stays.
        let mut error = Some(sink());
        note_write_error(&mut error, RunError::CheckpointWrite { message: "full".into() });
        assert!(matches!(error, Some(RunError::Sink { .. })), "{error:?}");
        let mut error = Some(source());
        note_write_error(&mut error, RunError::CheckpointWrite { message: "full".into() });
        assert!(matches!(error, Some(RunError::Source { .. })), "{error:?}");
        let mut error = None;
        note_write_error(&mut error, sink());
        assert!(matches!(error, Some(RunError::Sink { .. })), "{error:?}");
    }

    /// Notes what it is told.
    #[derive(Default)]
    struct Noting(Mutex<Vec<String>>);

    impl Acker for Noting {
        fn ack(&self, _file: u64, offset: u64) {
            self.0.lock().unwrap().push(format!("ack {offset}"));
        }
        fn save(&self, _force: bool) -> Result<(), String> {
            Ok(())
        }
        fn committed(&self) {
            self.0.lock().unwrap().push("committed".into());
        }
    }

    #[test]
    fn an_input_closed_while_a_snapshot_is_written_stages_its_last_place_in_the_next() {
        let noting = Arc::new(Noting::default());
        let mut acks = Acks::default();
        acks.opened(0, Some(noting.clone()));
        let mut tally = Tally { processed: vec![Some((0, 10))], ..Tally::default() };
        acks.stage_processed(&tally);
        // While snapshot 1 is written: the input's last lines, then its end.
        tally.processed[0] = Some((0, 25));
        acks.closed(0);
        acks.committed(false).unwrap();
        assert!(acks.any(), "kept: its last place is in no snapshot yet");
        acks.stage_processed(&tally);
        acks.committed(false).unwrap();
        assert!(!acks.any(), "done with once a snapshot staged after it closed is durable");
        assert_eq!(*noting.0.lock().unwrap(), ["ack 10", "committed", "ack 25", "committed"]);
    }
}
