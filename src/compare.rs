//! `sluice compare`: one pipeline over identical input under several modes,
//! shown side by side.
//!
//! Every mode gets the same input: the generator with the same seed, or the
//! same recorded file, sent at the same fixed rate. Each line's event time
//! is its intended send time, so end-to-end latency counts from when the
//! line was due, not from when the generator got round to sending it: a
//! stalled engine cannot hide its stall by slowing its own load
//! (coordinated omission).
//!
//! Modes run one after another in this process. Each run's generator starts
//! at a wall-clock time chosen just before it, and the run's tumbling and
//! sliding windows are aligned to that start ([`WindowConfig::origin`]), so
//! line `i` falls in the same window, relative to the start, in every mode.
//! In event time the results must then be equal; [`Results::diff`] says
//! where they are not.

use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rustc_hash::FxHashMap;

use crate::checkpoint::CheckpointDir;
use crate::config::Settings;
use crate::error::{RunError, SpecError};
use crate::executor::{run, Checkpointing, Mode, RunOptions};
use crate::latency::LatencyRecorder;
use crate::operator::lines;
use crate::report::RunReport;
use crate::sink::Sink;
use crate::source::{Generator, GeneratorConfig, Source, SourceSpec};
use crate::time::{format_duration, parse_duration, wall_now, EpochNanos};
use crate::tokenize::Word;
use crate::window::operator::WindowResult;
use crate::window::{TimeDomain, Window, WindowConfig};

/// The modes `sluice compare` runs when given none.
pub const DEFAULT_MODES: &str = "per-event,micro-batch:10ms,micro-batch:100ms,micro-batch:1s";

/// How long before its first line each run's generator is told to start:
/// time to set up the run, so that the first line is not already late.
/// It counts in the run's elapsed time, so it is kept short.
const LEAD: Duration = Duration::from_millis(20);

/// Parses `per-event,micro-batch:100ms,...`. A bare `micro-batch` means 1s
/// batches.
pub fn parse_modes(text: &str) -> Result<Vec<Mode>, SpecError> {
    let mut modes = Vec::new();
    for part in text.split(',').map(str::trim) {
        let mode = match part.split_once(':') {
            None if part == "per-event" => Mode::PerEvent,
            None if part == "micro-batch" => Mode::MicroBatch { interval: Duration::from_secs(1) },
            Some(("micro-batch", d)) => {
                let interval = parse_duration(d)?;
                if interval < Duration::from_millis(1) {
                    return Err(SpecError::Invalid(format!(
                        "invalid mode {part:?}: a batch interval must be at least 1ms"
                    )));
                }
                Mode::MicroBatch { interval }
            }
            _ => {
                return Err(SpecError::Invalid(format!(
                    "invalid mode {part:?}: use per-event or micro-batch:INTERVAL, like per-event,micro-batch:100ms"
                )))
            }
        };
        if modes.contains(&mode) {
            return Err(SpecError::Invalid(format!("mode {part:?} is given twice: name each mode once")));
        }
        modes.push(mode);
    }
    Ok(modes)
}

/// How a mode is written on the command line and in the table.
pub fn mode_label(mode: &Mode) -> String {
    match mode {
        Mode::PerEvent => "per-event".to_string(),
        Mode::MicroBatch { interval } => format!("micro-batch:{}", format_duration(*interval)),
    }
}

/// What `sluice compare` replays.
#[derive(Debug, Clone)]
pub enum Input {
    /// The generator's random words.
    Words,
    /// A text, line by line, once (a recorded file, or the demo book).
    Text {
        /// Its name in the report (`demo`, or the file's path).
        name: String,
        /// The text.
        data: Bytes,
    },
}

/// Why a comparison cannot start.
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    /// The options are wrong (exit 2).
    #[error(transparent)]
    Usage(#[from] SpecError),
    /// The input to replay cannot be read (exit 1).
    #[error("{0}")]
    Input(String),
}

/// Everything a comparison needs.
#[derive(Debug, Clone)]
pub struct CompareOptions {
    /// The pipeline's settings; their mode is replaced by each of `modes`.
    pub settings: Settings,
    /// The modes to run, in order.
    pub modes: Vec<Mode>,
    /// What is replayed.
    pub input: Input,
    /// Lines per second.
    pub rate: f64,
    /// Take checkpoints this often (into a temporary directory, removed
    /// after each run), and measure when results become committed, as an
    /// exactly-once sink sees them (the `committed` latency, on one shard).
    pub checkpoint: Option<Duration>,
    /// The metrics endpoint every run publishes to (`--metrics-addr`), its
    /// samples labelled with the run's mode; see
    /// [`CompareOptions::serve_metrics`].
    pub metrics: Option<Arc<crate::metrics::MetricsServer>>,
}

impl CompareOptions {
    /// Starts the metrics endpoint at the settings' `metrics_addr`, if
    /// they have one: one for all the runs, so that a scrape sees the
    /// running mode live and the finished ones as they ended.
    pub fn serve_metrics(&mut self) -> Result<(), String> {
        if let Some(addr) = self.settings.metrics_addr {
            self.metrics = Some(Arc::new(crate::metrics::MetricsServer::start(addr)?));
        }
        Ok(())
    }

    /// Checks that `settings` describe input that can be replayed the same
    /// way for every mode, at a fixed rate, and reads a recorded file.
    /// `rate` is `--rate`, needed for files.
    /// A generator with neither `--duration` nor `--count` runs for
    /// `default_duration`.
    pub fn new(
        settings: Settings,
        modes: Vec<Mode>,
        rate: Option<f64>,
        default_duration: Duration,
    ) -> Result<Self, CompareError> {
        let fixed = |r: Option<f64>, spec: &str| match (r, rate) {
            (Some(_), Some(_)) => Err(SpecError::Invalid(format!(
                "the rate is given twice, in --source {spec}:RATE and in --rate: give it once"
            ))),
            (Some(r), None) | (None, Some(r)) => Ok(r),
            (None, None) => Err(SpecError::Invalid(format!(
                "compare replays input at a fixed rate: write --source {spec}:RATE, like {spec}:20000"
            ))),
        };
        let (input, rate) = match &settings.source {
            SourceSpec::Gen(r) => (Input::Words, fixed(*r, "gen")?),
            SourceSpec::Demo(r) => (
                Input::Text { name: "demo".into(), data: Bytes::from_static(crate::source::DEMO_TEXT.as_bytes()) },
                fixed(*r, "demo")?,
            ),
            SourceSpec::File(path) => {
                let Some(rate) = rate else {
                    return Err(SpecError::Invalid(
                        "compare replays a recorded file at a fixed rate: add --rate LINES_PER_SECOND, like --rate 20000"
                            .into(),
                    )
                    .into());
                };
                let data = std::fs::read(path).map_err(|e| {
                    CompareError::Input(format!(
                        "cannot read {} to replay it: {}",
                        path.display(),
                        crate::source::describe_io(&e)
                    ))
                })?;
                (Input::Text { name: format!("file:{}", path.display()), data: Bytes::from(data) }, rate)
            }
            spec @ SourceSpec::Kafka(_) => {
                let Some(rate) = rate else {
                    return Err(SpecError::Invalid(
                        "compare replays a recorded topic at a fixed rate: add --rate LINES_PER_SECOND, like --rate 20000"
                            .into(),
                    )
                    .into());
                };
                // Recorded once, up to the end offsets seen at start, and
                // replayed from memory for every mode.
                let data = crate::source::record(spec, &settings.source_options)
                    .map_err(|e| CompareError::Input(format!("cannot record the topic to replay it: {e}")))?;
                (Input::Text { name: "kafka".into(), data }, rate)
            }
            other => {
                return Err(SpecError::Invalid(format!(
                    "compare cannot replay {other:?} identically for every mode: use gen:RATE, demo:RATE, or file:PATH or kafka:BROKERS/TOPIC with --rate"
                ))
                .into())
            }
        };
        if !(rate.is_finite() && rate > 0.0) {
            return Err(SpecError::Invalid(format!("invalid rate {rate}: give lines per second, like 20000")).into());
        }
        if modes.is_empty() {
            return Err(
                SpecError::Invalid("no modes to compare: give --modes per-event,micro-batch:100ms".into()).into()
            );
        }
        let mut settings = settings;
        let g = &mut settings.source_options.generator;
        if matches!(input, Input::Words) && g.count.is_none() && g.duration.is_none() {
            g.duration = Some(default_duration);
        }
        Ok(CompareOptions { settings, modes, input, rate, checkpoint: None, metrics: None })
    }

    /// The source of one run, starting at `start_at`, sending at `rate`.
    /// How long replaying the input at `rate` takes, as planned.
    fn planned(&self, rate: f64) -> Option<Duration> {
        let g = &self.settings.source_options.generator;
        let lines = match &self.input {
            Input::Text { data, .. } => Some(memchr::memchr_iter(b'\n', data).count() as u64),
            Input::Words => g.count,
        };
        let by_count = lines.map(|n| Duration::from_secs_f64(n as f64 / rate));
        match (g.duration, by_count) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn source(&self, start_at: EpochNanos, rate: f64, deadline: Option<Duration>) -> Box<dyn Source> {
        let config = GeneratorConfig {
            rate: Some(rate),
            start_at: Some(start_at),
            deadline,
            ..self.settings.source_options.generator.clone()
        };
        match &self.input {
            Input::Words => Box::new(Generator::words(config)),
            Input::Text { name, data } => Box::new(Generator::replay(config, name, data.clone())),
        }
    }
}

/// The last value of every (window, key), windows taken relative to the
/// run's start: what a reader of the results would end up with.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Results {
    /// (window start, window end) relative to the run's start (global:
    /// `i64::MIN..i64::MAX`), then key, to value.
    pub values: FxHashMap<(EpochNanos, EpochNanos), FxHashMap<Word, u64>>,
}

impl Results {
    /// Windows taken relative to `origin`.
    fn relative(windows: FxHashMap<Window, FxHashMap<Word, u64>>, origin: EpochNanos) -> Self {
        let values = windows
            .into_iter()
            .map(|(w, keys)| {
                let at = if w.is_global() { (w.start, w.end) } else { (w.start - origin, w.end - origin) };
                (at, keys)
            })
            .collect();
        Results { values }
    }

    /// (window, key) pairs held.
    pub fn len(&self) -> usize {
        self.values.values().map(|k| k.len()).sum()
    }

    /// True when there are no results.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Where `other` differs from these results: `None` when they are
    /// equal, else how many (window, key) pairs differ and the first few.
    pub fn diff(&self, other: &Results, name: &str, other_name: &str) -> Option<String> {
        let mut keys: Vec<(EpochNanos, EpochNanos, &Word)> = Vec::new();
        for (w, ks) in self.values.iter().chain(&other.values) {
            keys.extend(ks.keys().map(|k| (w.0, w.1, k)));
        }
        keys.sort();
        keys.dedup();
        let get = |r: &Results, (s, e, k): (EpochNanos, EpochNanos, &Word)| -> Option<u64> {
            r.values.get(&(s, e)).and_then(|m| m.get(k)).copied()
        };
        let differing: Vec<_> = keys.into_iter().filter(|&k| get(self, k) != get(other, k)).collect();
        if differing.is_empty() {
            return None;
        }
        let mut s = format!(
            "{} of {} (window, word) results differ between {name} and {other_name}",
            differing.len(),
            self.len().max(other.len())
        );
        let show = |v: Option<u64>| v.map_or("none".to_string(), |v| v.to_string());
        for &(start, end, word) in differing.iter().take(5) {
            let window = if start == EpochNanos::MIN {
                "global".to_string()
            } else {
                format!("[{:.3}s, {:.3}s)", start as f64 / 1e9, end as f64 / 1e9)
            };
            let _ = write!(
                s,
                "; {window} {word:?}: {} vs {}",
                show(get(self, (start, end, word))),
                show(get(other, (start, end, word)))
            );
        }
        Some(s)
    }
}

/// The sink of a comparison: keeps the last value of each (window, key).
/// A hit costs two hash look-ups and no allocation.
struct LastValues {
    /// Window → key → latest value.
    windows: FxHashMap<Window, FxHashMap<Word, u64>>,
    /// Where the values go when the run closes the sink.
    out: Arc<Mutex<FxHashMap<Window, FxHashMap<Word, u64>>>>,
}

impl Sink<WindowResult<Word, u64>> for LastValues {
    fn write(&mut self, r: &WindowResult<Word, u64>) -> io::Result<()> {
        let keys = self.windows.entry(r.window).or_default();
        match keys.get_mut(&r.key) {
            Some(v) => *v = r.value,
            None => {
                keys.insert(r.key.clone(), r.value);
            }
        }
        Ok(())
    }

    fn close(&mut self) -> io::Result<()> {
        if let Ok(mut out) = self.out.lock() {
            *out = std::mem::take(&mut self.windows);
        }
        Ok(())
    }

    fn name(&self) -> String {
        "compare".into()
    }
}

/// One mode's run.
#[derive(Debug)]
pub struct ModeRun {
    /// The mode as written, like `micro-batch:100ms`.
    pub label: String,
    /// Its report.
    pub report: RunReport,
    /// Its results, windows relative to the run's start.
    pub results: Results,
    /// Its latency histograms.
    pub latency: LatencyRecorder,
    /// The error that ended it early, if any.
    pub error: Option<RunError>,
}

/// Runs the word count under each mode in turn. `interrupt` ends the
/// current run cleanly and skips the rest. `each` is told of every finished
/// run (to print progress).
/// With `hdr_log`, each run writes an HdrHistogram interval log (one
/// interval a second) into that directory, named by [`hdr_log_path`].
pub fn compare(
    opts: &CompareOptions,
    interrupt: Arc<AtomicBool>,
    hdr_log: Option<&Path>,
    mut each: impl FnMut(&ModeRun),
) -> Vec<ModeRun> {
    let mut runs = Vec::new();
    for &mode in &opts.modes {
        if interrupt.load(Ordering::Relaxed) {
            break;
        }
        let log = hdr_log.map(|dir| hdr_log_path(dir, &mode_label(&mode)));
        let mr = run_mode(opts, mode, opts.rate, interrupt.clone(), log, None);
        each(&mr);
        runs.push(mr);
    }
    runs
}

/// One run of the word count in `mode` over the input sent at `rate`.
fn run_mode(
    opts: &CompareOptions,
    mode: Mode,
    rate: f64,
    interrupt: Arc<AtomicBool>,
    hdr_log: Option<PathBuf>,
    deadline: Option<Duration>,
) -> ModeRun {
    let start_at = wall_now() + LEAD.as_nanos() as i64;
    let mut window: WindowConfig = opts.settings.window;
    window.origin = start_at;
    let out = Arc::new(Mutex::new(FxHashMap::default()));
    let pipeline = lines()
        .words()
        .key()
        .window(window)
        .count()
        .sink(LastValues { windows: FxHashMap::default(), out: out.clone() })
        .build();
    let mut ro = RunOptions::new(mode);
    ro.event_time = opts.settings.event_time.clone();
    ro.spin_wait = opts.settings.spin_wait;
    ro.chain_source = !opts.settings.source_thread;
    // Batches on the generator's grid: a run of whole intervals is whole
    // batches, the steady state the targets speak of.
    ro.batch_origin = Some(start_at);
    ro.parallelism = opts.settings.parallelism;
    ro.interrupt = interrupt;
    ro.interval_log = hdr_log.map(|path| (path, Duration::from_secs(1)));
    ro.metrics_server = opts.metrics.clone();
    ro.metrics_label = Some(mode_label(&mode));
    ro.offered_rate = Some(rate);
    let mut setup_error = None;
    let scratch = opts.checkpoint.map(|interval| {
        let nanos = wall_now();
        let dir = std::env::temp_dir().join(format!("sluice-compare-{}-{nanos}", std::process::id()));
        match CheckpointDir::open(&dir) {
            Ok(d) => {
                ro.checkpoint = Some(Checkpointing { dir: d, interval, require_resumable: false });
            }
            Err(e) => setup_error = Some(RunError::from(e)),
        }
        dir
    });
    let mut outcome = run(pipeline, vec![opts.source(start_at, rate, deadline)], &ro);
    drop(ro);
    if setup_error.is_some() {
        // It ran without the checkpoints asked for: not a run to compare.
        outcome.report.ended_by = "failed".into();
    }
    if let Some(dir) = scratch {
        let _ = std::fs::remove_dir_all(dir);
    }
    let windows = std::mem::take(&mut *out.lock().unwrap_or_else(|p| p.into_inner()));
    ModeRun {
        label: mode_label(&mode),
        report: outcome.report,
        latency: outcome.latency,
        results: Results::relative(windows, start_at),
        error: setup_error.or(outcome.error),
    }
}

/// One point of a sweep: a mode at an offered rate.
#[derive(Debug)]
pub struct SweepPoint {
    /// The offered rate, lines per second.
    pub rate: f64,
    /// Whether the mode kept up (see [`keeps_up`]).
    pub keeps_up: bool,
    /// The run.
    pub run: ModeRun,
}

/// Whether a run kept up with its offered rate: the generator was never
/// held up for long, that is the 99th percentile of source wait (how far
/// lines fell behind their intended send time before sluice took them)
/// stays within one batch interval, and within 10 ms in per-event mode;
/// and, as a guard, the run took in at least 90% of the offered lines per
/// second over its whole length (start-up and the final flush included).
pub fn keeps_up(report: &RunReport, rate: f64) -> bool {
    let slack_us = report.batch_interval_ms.unwrap_or(0.0).max(10.0) * 1e3;
    let behind = report.latency.stages.source_wait.as_ref().map_or(0.0, |l| l.p99_us);
    report.ended_by == "end-of-input" && report.events_per_s >= 0.9 * rate && behind <= slack_us
}

/// The rates `sluice sweep` tries when given none: 1-2-5 steps from 1000 to
/// 2 million lines per second.
pub const DEFAULT_RATES: &str = "1k,2k,5k,10k,20k,50k,100k,200k,500k,1M,2M";

/// Parses rates like `1k,20000,1.5M`, in increasing order.
pub fn parse_rates(text: &str) -> Result<Vec<f64>, SpecError> {
    let mut rates: Vec<f64> = Vec::new();
    for part in text.split(',').map(str::trim) {
        let (num, mult) = match part.char_indices().last() {
            Some((i, 'k')) => (&part[..i], 1e3),
            Some((i, 'M')) => (&part[..i], 1e6),
            _ => (part, 1.0),
        };
        let r = num.parse::<f64>().ok().map(|n| n * mult).filter(|r| r.is_finite() && *r >= 1.0);
        let Some(r) = r else {
            return Err(SpecError::Invalid(format!(
                "invalid rate {part:?}: give lines per second of 1 or more, like 1k,10k,100k"
            )));
        };
        if rates.last().is_some_and(|&last| r <= last) {
            return Err(SpecError::Invalid(format!("rates must increase: {part:?} comes after a rate as high")));
        }
        rates.push(r);
    }
    Ok(rates)
}

/// Runs every mode at each rate in turn, lowest first, until the mode no
/// longer keeps up (higher rates would only be worse). `each` is told of
/// every point.
pub fn sweep(
    opts: &CompareOptions,
    rates: &[f64],
    interrupt: Arc<AtomicBool>,
    mut each: impl FnMut(&SweepPoint),
) -> Vec<SweepPoint> {
    let mut points = Vec::new();
    for &mode in &opts.modes {
        for &rate in rates {
            if interrupt.load(Ordering::Relaxed) {
                return points;
            }
            // A rate far above capacity would otherwise run until every
            // overdue line is sent: twice the planned time, and a second.
            let deadline = opts.planned(rate).map(|d| d * 2 + Duration::from_secs(1));
            let run = run_mode(opts, mode, rate, interrupt.clone(), None, deadline);
            let point = SweepPoint { rate, keeps_up: keeps_up(&run.report, rate), run };
            each(&point);
            let stop = !point.keeps_up;
            points.push(point);
            if stop {
                break;
            }
        }
    }
    points
}

/// The end-to-end p99 of a run (processing latency when there is none), µs.
fn p99_us(report: &RunReport) -> f64 {
    report.latency.end_to_end.as_ref().unwrap_or(&report.latency.processing).p99_us
}

/// Where a mode's sweep ended.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Knee {
    /// The highest rate it kept up with, and that run's p99 (µs).
    pub kept_up: Option<(f64, f64)>,
    /// The first rate above that one it fell behind at; `None` when every
    /// rate above was kept up with (or none was tried): the limit is higher.
    pub fell_behind: Option<f64>,
}

/// For each mode, in the points' order, where its sweep ended.
pub fn knees(points: &[SweepPoint]) -> Vec<(String, Knee)> {
    let mut out: Vec<(String, Knee)> = Vec::new();
    for p in points {
        if out.last().is_none_or(|(l, _)| *l != p.run.label) {
            out.push((p.run.label.clone(), Knee::default()));
        }
        let Some((_, knee)) = out.last_mut() else { continue };
        if p.keeps_up {
            *knee = Knee { kept_up: Some((p.rate, p99_us(&p.run.report))), fell_behind: None };
        } else if knee.fell_behind.is_none() {
            knee.fell_behind = Some(p.rate);
        }
    }
    out
}

/// The mode that meets `target_us` at p99 (end-to-end) at the highest rate
/// it keeps up with: (mode, rate, p99 µs). Ties go to the lower p99.
pub fn recommend(points: &[SweepPoint], target_us: f64) -> Option<(String, f64, f64)> {
    points
        .iter()
        .filter(|p| p.keeps_up && p99_us(&p.run.report) <= target_us)
        .map(|p| (p.run.label.clone(), p.rate, p99_us(&p.run.report)))
        .max_by(|a, b| a.1.total_cmp(&b.1).then(b.2.total_cmp(&a.2)))
}

/// The sweep as a table: one row per point.
pub fn render_sweep(points: &[SweepPoint]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<19} {:>10} {:>10} {:>8} {:>10} {:>10} {:>10} {:>7}",
        "mode", "offered/s", "taken/s", "keeps up", "e2e p50", "e2e p99", "behind p99", "cpu s"
    );
    for p in points {
        let r = &p.run.report;
        let e2e = r.latency.end_to_end.as_ref().unwrap_or(&r.latency.processing);
        let _ = writeln!(
            s,
            "{:<19} {:>10.0} {:>10.0} {:>8} {:>10} {:>10} {:>10} {:>7}",
            p.run.label,
            p.rate,
            r.events_per_s,
            if p.keeps_up { "yes" } else { "no" },
            fmt_us(e2e.p50_us),
            fmt_us(e2e.p99_us),
            r.latency.stages.source_wait.as_ref().map_or("-".into(), |l| fmt_us(l.p99_us)),
            r.cpu_s.map_or("-".into(), |c| format!("{c:.2}")),
        );
    }
    s
}

/// One line of a log-log chart: its label, its points, and the points to
/// mark with a cross.
struct Line {
    /// The legend's text.
    label: String,
    /// The points, in x order.
    points: Vec<(f64, f64)>,
    /// Points marked with a cross.
    crosses: Vec<(f64, f64)>,
}

/// What is drawn around the lines of a log-log chart.
struct Axes<'a> {
    /// The title.
    title: String,
    /// The x axis's name.
    x_desc: &'a str,
    /// The y axis's name.
    y_desc: &'a str,
    /// The x range.
    x: std::ops::Range<f64>,
    /// The y range.
    y: std::ops::Range<f64>,
    /// Formats an x label.
    x_label: &'a dyn Fn(&f64) -> String,
    /// The legend goes top left (else bottom right).
    legend_top_left: bool,
}

/// Draws lines on log-log axes into an SVG file: what both plots share.
fn draw_log_log(path: &Path, axes: Axes, lines: Vec<Line>) -> Result<(), String> {
    use plotters::prelude::*;

    let err = |e: &dyn std::fmt::Display| format!("cannot write the plot to {}: {e}", path.display());
    let root = SVGBackend::new(path, (960, 540)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(axes.title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(70)
        .build_cartesian_2d(axes.x.log_scale(), axes.y.log_scale())
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc(axes.x_desc)
        .y_desc(axes.y_desc)
        .x_label_formatter(axes.x_label)
        .y_label_formatter(&|v| format!("{v}"))
        .draw()
        .map_err(|e| err(&e))?;
    for (i, line) in lines.into_iter().enumerate() {
        let color = Palette99::pick(i).to_rgba().stroke_width(2);
        chart
            .draw_series(LineSeries::new(line.points, color))
            .map_err(|e| err(&e))?
            .label(line.label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        chart.draw_series(line.crosses.into_iter().map(|p| Cross::new(p, 6, color))).map_err(|e| err(&e))?;
    }
    let position = if axes.legend_top_left { SeriesLabelPosition::UpperLeft } else { SeriesLabelPosition::LowerRight };
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))
}

/// Draws p99 end-to-end latency against offered rate, one line per mode,
/// both axes logarithmic; points where the mode did not keep up are drawn
/// as crosses.
pub fn plot_sweep_svg(points: &[SweepPoint], path: &Path) -> Result<(), String> {
    let mut lines: Vec<Line> = Vec::new();
    for p in points {
        if lines.last().is_none_or(|l| l.label != p.run.label) {
            lines.push(Line { label: p.run.label.clone(), points: Vec::new(), crosses: Vec::new() });
        }
        let at = (p.rate, (p99_us(&p.run.report) / 1e3).max(1e-3));
        if let Some(line) = lines.last_mut() {
            line.points.push(at);
            if !p.keeps_up {
                line.crosses.push(at);
            }
        }
    }
    let all = || lines.iter().flat_map(|l| l.points.iter());
    let (xmin, xmax) = all().fold((f64::INFINITY, 1.0f64), |(lo, hi), p| (lo.min(p.0), hi.max(p.0)));
    let (ymin, ymax) = all().fold((f64::INFINITY, 1e-3f64), |(lo, hi), p| (lo.min(p.1), hi.max(p.1)));
    let (xmin, ymin) = (xmin.min(xmax) / 1.5, ymin.min(ymax) / 2.0);
    let axes = Axes {
        title: "sluice sweep: p99 end-to-end latency [wall clock] against offered rate".into(),
        x_desc: "offered rate, lines/s",
        y_desc: "p99 latency, ms",
        x: xmin..xmax * 1.5,
        y: ymin..ymax * 2.0,
        x_label: &|v| format!("{v:.0}"),
        legend_top_left: true,
    };
    draw_log_log(path, axes, lines)
}

/// True for a run that read all its input and failed nowhere: only such
/// runs are expected to have equal results.
pub fn complete(run: &ModeRun) -> bool {
    run.error.is_none() && run.report.ended_by == "end-of-input"
}

/// The first difference between the complete runs' results, if any; `None`
/// also when results are not expected to be equal (processing time).
pub fn check(runs: &[ModeRun], time: TimeDomain) -> Option<String> {
    if time != TimeDomain::Event {
        return None;
    }
    let complete: Vec<&ModeRun> = runs.iter().filter(|r| complete(r)).collect();
    let (first, rest) = complete.split_first()?;
    rest.iter().find_map(|r| first.results.diff(&r.results, &first.label, &r.label))
}

/// A latency in µs, in the unit that keeps it short.
fn fmt_us(us: f64) -> String {
    if us < 1_000.0 {
        format!("{us:.1}µs")
    } else if us < 1_000_000.0 {
        format!("{:.2}ms", us / 1e3)
    } else {
        format!("{:.2}s", us / 1e6)
    }
}

/// The side-by-side table: one block per mode, one row per latency kind.
pub fn render_table(runs: &[ModeRun]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<19} {:>10} {:>7} {:>8}  {:<20} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "mode", "events/s", "cpu s", "rss MiB", "latency [clock]", "p50", "p90", "p99", "p99.9", "max"
    );
    for run in runs {
        let r = &run.report;
        let mut rows: Vec<(String, &crate::latency::LatencySummary)> = Vec::new();
        if let Some(l) = &r.latency.end_to_end {
            rows.push(("end-to-end [wall]".into(), l));
        }
        if let Some(l) = &r.latency.committed {
            rows.push(("committed [wall]".into(), l));
        }
        // Final output: window end → emit, what a result's reader waits.
        if let Some(l) = &r.latency.result {
            rows.push(("result [wall]".into(), l));
        }
        rows.push(("processing [mono]".into(), &r.latency.processing));
        // The stages of processing, marked as its parts.
        for (name, l) in r.latency.stages.rows() {
            rows.push((format!("· {name}"), l));
        }
        for (i, (name, l)) in rows.iter().enumerate() {
            let head = if i == 0 {
                format!(
                    "{:<19} {:>10.0} {:>7} {:>8}",
                    run.label,
                    r.events_per_s,
                    r.cpu_s.map_or("-".into(), |c| format!("{c:.2}")),
                    r.peak_rss_bytes.map_or("-".into(), |b| format!("{:.1}", b as f64 / (1u64 << 20) as f64)),
                )
            } else {
                format!("{:<19} {:>10} {:>7} {:>8}", "", "", "", "")
            };
            let _ = writeln!(
                s,
                "{head}  {:<20} {:>9} {:>9} {:>9} {:>9} {:>9}",
                name,
                fmt_us(l.p50_us),
                fmt_us(l.p90_us),
                fmt_us(l.p99_us),
                fmt_us(l.p999_us),
                fmt_us(l.max_us)
            );
        }
    }
    s
}

/// Writes the latency percentile spectrum as an SVG: one line per mode,
/// latency against percentile on a log scale that spreads out the tail
/// (50%, 90%, 99%, 99.9%...), as HdrHistogram's plots do. The end-to-end
/// latency is drawn when the runs have it, else processing latency.
pub fn plot_svg(runs: &[ModeRun], path: &Path) -> Result<(), String> {
    let spectrum = |run: &ModeRun| -> Vec<(f64, f64)> {
        let h = if run.latency.end_to_end.count() > 0 { &run.latency.end_to_end } else { &run.latency.processing };
        h.spectrum().into_iter().map(|(q, us)| (1.0 / (1.0 - q), (us / 1e3).max(1e-3))).collect()
    };
    let lines: Vec<Line> =
        runs.iter().map(|r| Line { label: r.label.clone(), points: spectrum(r), crosses: Vec::new() }).collect();
    let all = || lines.iter().flat_map(|l| l.points.iter());
    let ymax = all().map(|p| p.1).fold(1e-3, f64::max) * 2.0;
    let ymin = all().map(|p| p.1).fold(f64::INFINITY, f64::min).min(ymax / 10.0) / 2.0;
    let xmax = all().map(|p| p.0).fold(10.0, f64::max);
    let kind = if runs.iter().all(|r| r.report.latency.end_to_end.is_some()) {
        "end-to-end latency [wall clock]"
    } else {
        "processing latency [monotonic clock]"
    };
    let percentile = |v: &f64| {
        let p = 100.0 - 100.0 / v;
        if p < 99.0 {
            format!("{p:.0}%")
        } else {
            format!("{}%", format!("{p:.5}").trim_end_matches('0').trim_end_matches('.'))
        }
    };
    let axes = Axes {
        title: format!("sluice compare: {kind} by percentile"),
        x_desc: "percentile",
        y_desc: "latency, ms",
        x: 1.0..xmax,
        y: ymin..ymax,
        x_label: &percentile,
        legend_top_left: false,
    };
    draw_log_log(path, axes, lines)
}

/// Where each mode's interval log goes: `DIR/LABEL.hlog`, with `:` left
/// out of the name.
pub fn hdr_log_path(dir: &Path, label: &str) -> PathBuf {
    dir.join(format!("{}.hlog", label.replace(':', "-")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse() {
        let m = parse_modes("per-event, micro-batch:100ms,micro-batch").unwrap();
        assert_eq!(
            m,
            vec![
                Mode::PerEvent,
                Mode::MicroBatch { interval: Duration::from_millis(100) },
                Mode::MicroBatch { interval: Duration::from_secs(1) }
            ]
        );
        assert_eq!(m.iter().map(mode_label).collect::<Vec<_>>(), ["per-event", "micro-batch:100ms", "micro-batch:1s"]);
        for bad in ["", "per-event,", "storm", "micro-batch:0ms", "micro-batch:fast", "per-event,per-event"] {
            let e = parse_modes(bad).unwrap_err().to_string();
            assert!(e.contains("mode") || e.contains("duration"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn rates_parse() {
        assert_eq!(parse_rates("1k, 20000,1.5M").unwrap(), vec![1e3, 2e4, 1.5e6]);
        assert_eq!(parse_rates(DEFAULT_RATES).unwrap().len(), 11);
        for bad in ["", "fast", "0", "10k,5k", "1k,1k", "-5", "1G"] {
            assert!(parse_rates(bad).unwrap_err().to_string().contains("rate"), "{bad}");
        }
    }

    /// A sweep point with the numbers `keeps_up`, `knees` and `recommend`
    /// look at: the offered rate, the rate taken in, how the run ended, and
    /// the p99 of source wait and of end-to-end latency (µs).
    fn point(label: &str, rate: f64, taken: f64, ended_by: &str, wait_p99_us: f64, e2e_p99_us: f64) -> SweepPoint {
        let mode = parse_modes(label).unwrap()[0];
        let mut rec = LatencyRecorder::default();
        // Every value the same, so that each percentile is that value.
        rec.stages.source_wait.record_n((wait_p99_us * 1e3) as i64, 100);
        rec.end_to_end_n((e2e_p99_us * 1e3) as i64, 100);
        rec.processing_n(1_000, 100);
        let report = RunReport {
            mode: mode.name().into(),
            batch_interval_ms: match mode {
                Mode::MicroBatch { interval } => Some(interval.as_secs_f64() * 1e3),
                Mode::PerEvent => None,
            },
            parallelism: 1,
            events: taken as u64,
            bytes: 0,
            elapsed_s: 1.0,
            events_per_s: taken,
            mb_per_s: 0.0,
            cpu_s: None,
            peak_rss_bytes: None,
            items: 0,
            results: 0,
            late_events: 0,
            late_items: 0,
            truncated_lines: 0,
            event_time_fallbacks: 0,
            batches: None,
            full_batches: None,
            checkpoints: None,
            window: "tumbling:1s".into(),
            output: "update".into(),
            time: "event".into(),
            ended_by: ended_by.into(),
            latency: crate::report::LatencyReport::from_recorder(&rec),
        };
        let keeps = keeps_up(&report, rate);
        SweepPoint {
            rate,
            keeps_up: keeps,
            run: ModeRun { label: label.into(), report, results: Results::default(), latency: rec, error: None },
        }
    }

    #[test]
    fn keeping_up_needs_the_rate_the_slack_and_the_end() {
        let ok = |p: SweepPoint| p.keeps_up;
        assert!(ok(point("per-event", 1000.0, 1000.0, "end-of-input", 50.0, 100.0)));
        // 90% of the offered rate is enough, less is not.
        assert!(ok(point("per-event", 1000.0, 900.0, "end-of-input", 50.0, 100.0)));
        assert!(!ok(point("per-event", 1000.0, 890.0, "end-of-input", 50.0, 100.0)));
        // Source wait: within 10 ms in per-event mode, one interval in micro-batch mode.
        assert!(ok(point("per-event", 1000.0, 1000.0, "end-of-input", 9_900.0, 100.0)));
        assert!(!ok(point("per-event", 1000.0, 1000.0, "end-of-input", 10_200.0, 100.0)));
        assert!(ok(point("micro-batch:100ms", 1000.0, 1000.0, "end-of-input", 99_000.0, 100.0)));
        assert!(!ok(point("micro-batch:100ms", 1000.0, 1000.0, "end-of-input", 101_000.0, 100.0)));
        // A run that was stopped or failed did not keep up.
        assert!(!ok(point("per-event", 1000.0, 1000.0, "stopped", 50.0, 100.0)));
        assert!(!ok(point("per-event", 1000.0, 1000.0, "failed", 50.0, 100.0)));
    }

    #[test]
    fn knees_and_recommendation_come_from_the_points_that_kept_up() {
        let points = vec![
            point("per-event", 1e3, 1e3, "end-of-input", 10.0, 200.0),
            point("per-event", 1e4, 1e4, "end-of-input", 10.0, 300.0),
            point("per-event", 1e5, 5e4, "end-of-input", 90_000.0, 90_000.0),
            point("micro-batch:100ms", 1e3, 1e3, "end-of-input", 10.0, 101_000.0),
            point("micro-batch:100ms", 1e4, 1e4, "end-of-input", 10.0, 101_500.0),
            point("micro-batch:100ms", 1e5, 1e5, "end-of-input", 10.0, 102_000.0),
            point("micro-batch:1s", 1e3, 1e3, "stopped", 10.0, 1_000_000.0),
        ];
        let k = knees(&points);
        let knee = |label: &str| k.iter().find(|(l, _)| l == label).unwrap().1;
        assert_eq!(knee("per-event").kept_up.map(|(r, _)| r), Some(1e4));
        assert_eq!(knee("per-event").fell_behind, Some(1e5), "bounded by the rate it fell behind at");
        assert_eq!(knee("micro-batch:100ms").kept_up.map(|(r, _)| r), Some(1e5));
        assert_eq!(knee("micro-batch:100ms").fell_behind, None, "kept up with every rate: its limit is higher");
        assert_eq!(knee("micro-batch:1s").kept_up, None, "a mode that never kept up has no knee");
        assert_eq!(knee("micro-batch:1s").fell_behind, Some(1e3));
        // A tight target only per-event meets; a loose one micro-batch meets
        // at a higher rate; one nothing meets.
        let (label, rate, _) = recommend(&points, 1_000.0).unwrap();
        assert_eq!((label.as_str(), rate), ("per-event", 1e4));
        let (label, rate, _) = recommend(&points, 150_000.0).unwrap();
        assert_eq!((label.as_str(), rate), ("micro-batch:100ms", 1e5));
        assert!(recommend(&points, 100.0).is_none());
    }

    #[test]
    fn diff_names_what_differs() {
        let mut a = Results::default();
        a.values.entry((0, 1_000_000_000)).or_default().insert(Word::from("the"), 3);
        a.values.entry((0, 1_000_000_000)).or_default().insert(Word::from("cat"), 1);
        let mut b = a.clone();
        assert_eq!(a.diff(&b, "a", "b"), None);
        b.values.entry((0, 1_000_000_000)).or_default().insert(Word::from("the"), 2);
        b.values.entry((1_000_000_000, 2_000_000_000)).or_default().insert(Word::from("hat"), 1);
        let d = a.diff(&b, "per-event", "micro-batch:1s").unwrap();
        assert!(d.starts_with("2 of 3 (window, word) results differ between per-event and micro-batch:1s"), "{d}");
        assert!(d.contains("[0.000s, 1.000s) \"the\": 3 vs 2"), "{d}");
        assert!(d.contains("\"hat\": none vs 1"), "{d}");
    }
}
