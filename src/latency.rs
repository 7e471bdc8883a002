//! Latency recording with HDR histograms.
//!
//! Three kinds, each named with its clock:
//! - **processing**: sink emit time − ingest time, both on the monotonic clock;
//! - **end-to-end**: sink emit time − event time, both on the wall clock;
//! - **result**: sink emit time − window end, on the wall clock (final output).
//!
//! Histograms hold nanoseconds with three significant digits, from 1 ns to
//! one day. A value outside that range (a negative one from clock skew, say)
//! is clamped into it and counted in `clamped`; recording never panics. The
//! counts start small and grow to the largest value recorded, so recording
//! allocates only when a value exceeds every earlier one in its histogram.
//!
//! In final output, an event's latency can only be taken when its window
//! closes, and keeping every event's times until then would cost memory per
//! event. Instead each window keeps a [`WindowLatency`]: two small histograms
//! of its events' ingest and event times, relative to the window. When the
//! window is emitted they are replayed against the emit time. The error this
//! adds is at most 1% of an event's distance from the window's first ingest
//! (ingest) or the window's start (event time), and is documented in README.

use std::path::Path;
use std::time::Duration;

use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::Histogram;
use serde::Serialize;

use crate::time::{EpochNanos, NO_TIME};

/// The largest recordable latency: one day, in ns.
const MAX_NS: u64 = 86_400 * 1_000_000_000;

/// A count in a slot: `u64` for run-wide histograms, `u32` where many
/// small ones are kept (one per open window).
trait Count: Copy + Default + Into<u64> {
    /// `self + n`, saturating.
    fn plus(self, n: Self) -> Self;
    /// `n`, or the largest count when it does not fit.
    fn saturating(n: u64) -> Self;
}

impl Count for u64 {
    #[inline]
    fn plus(self, n: Self) -> Self {
        self.saturating_add(n)
    }

    fn saturating(n: u64) -> Self {
        n
    }
}

impl Count for u32 {
    #[inline]
    fn plus(self, n: Self) -> Self {
        self.saturating_add(n)
    }

    fn saturating(n: u64) -> Self {
        n.min(u32::MAX as u64) as u32
    }
}

/// Counts of values by slot, laid out exactly as HdrHistogram lays out a
/// histogram of unit 1 with `2^BITS` sub-buckets (`BITS` = 11 for three
/// significant digits, 8 for two): values below `2^BITS` have a slot each,
/// and above, each power of two [2^k, 2^(k+1)) is split into `2^(BITS-1)`
/// equal ranges. Reading the counts through HdrHistogram therefore gives
/// the very same results as recording into it.
///
/// Counting only adds to a slot: a dozen instructions, where recording
/// into an `hdrhistogram::Histogram` took about a hundred (it also keeps
/// the least, greatest and total at every record). Per-event mode counts
/// four to six latencies per line (BENCHMARKS.md).
#[derive(Debug, Clone, Default)]
struct Slots<const BITS: u32, C> {
    /// Count per slot; grows to the largest value counted, never shrinks.
    counts: Vec<C>,
}

impl<const BITS: u32, C: Count> Slots<BITS, C> {
    /// The slot counting `v`.
    #[inline]
    fn slot_of(v: u64) -> usize {
        let shift = (64 - BITS) - (v | ((1 << BITS) - 1)).leading_zeros();
        ((shift as usize) << (BITS - 1)) + (v >> shift) as usize
    }

    /// The lowest value counted in `slot`, and how many values share it.
    #[inline]
    fn range_of(slot: usize) -> (u64, u64) {
        let shift = ((slot >> (BITS - 1)) as u32).saturating_sub(1);
        let sub = (slot - ((shift as usize) << (BITS - 1))) as u64;
        (sub << shift, 1 << shift)
    }

    /// Counts `n` values of `v`.
    #[inline]
    fn add_n(&mut self, v: u64, n: C) {
        let slot = Self::slot_of(v);
        match self.counts.get_mut(slot) {
            Some(c) => *c = c.plus(n),
            None => self.grow(slot, n),
        }
    }

    /// Counts reach `slot` (to the end of its power of two), with `n` in it.
    #[cold]
    #[inline(never)]
    fn grow(&mut self, slot: usize, n: C) {
        self.counts.resize((slot | ((1 << (BITS - 1)) - 1)) + 1, C::default());
        self.counts[slot] = n;
    }

    /// Each slot counted in, from the least: (lowest value, how many values
    /// share the slot, count).
    fn each(&self) -> impl Iterator<Item = (u64, u64, u64)> + '_ {
        self.counts.iter().enumerate().filter_map(|(slot, &n)| {
            let n: u64 = n.into();
            (n > 0).then(|| {
                let (low, width) = Self::range_of(slot);
                (low, width, n)
            })
        })
    }

    /// How many values were counted.
    fn total(&self) -> u64 {
        self.counts.iter().map(|&n| n.into()).sum()
    }

    /// How many values were counted in the slots up to `v`'s, inclusive.
    fn at_most(&self, v: u64) -> u64 {
        self.counts.iter().take(Self::slot_of(v) + 1).map(|&n| n.into()).sum()
    }

    /// Adds another's counts, each as the highest value of its slot plus
    /// `shift` (a summary rebased on an earlier base).
    fn add_shifted(&mut self, other: &Self, shift: u64) {
        for (low, width, n) in other.each() {
            self.add_n(low + width - 1 + shift, C::saturating(n));
        }
    }

    /// Adds another's counts.
    fn add(&mut self, other: &Self) {
        if self.counts.len() < other.counts.len() {
            self.counts.resize(other.counts.len(), C::default());
        }
        for (to, &from) in self.counts.iter_mut().zip(&other.counts) {
            *to = to.plus(from);
        }
    }
}

/// One latency histogram (ns, three significant digits) with its clamp
/// counter. It counts into [`Slots`]; reading builds an HdrHistogram.
#[derive(Debug, Clone, Default)]
pub struct LatencyHistogram {
    /// Values in ns.
    slots: Slots<11, u64>,
    /// How many values were out of range and clamped.
    clamped: u64,
}

impl LatencyHistogram {
    /// An empty histogram, 1 ns to one day, 3 significant digits. Its
    /// counts grow to the largest value recorded, instead of covering a day
    /// from the start: a run keeps a dozen histograms per recorder, one
    /// recorder per shard, most of them never reaching seconds, and
    /// zeroing 300 KiB for each cost every run some 10 ms before its first
    /// line (BENCHMARKS.md).
    pub fn new() -> Self {
        LatencyHistogram::default()
    }

    /// Records `n` occurrences of a latency of `ns`.
    #[inline]
    pub fn record_n(&mut self, ns: i64, n: u64) {
        // A negative value is huge as u64: one test catches both ends.
        let v = if ns as u64 > MAX_NS { self.clamp(ns, n) } else { ns as u64 };
        self.slots.add_n(v, n);
    }

    /// The value an out-of-range `ns` is counted as.
    #[cold]
    #[inline(never)]
    fn clamp(&mut self, ns: i64, n: u64) -> u64 {
        self.clamped += n;
        if ns < 0 {
            0
        } else {
            MAX_NS
        }
    }

    /// Records one latency.
    #[inline]
    pub fn record(&mut self, ns: i64) {
        self.record_n(ns, 1)
    }

    /// The counts as an HdrHistogram (ns).
    fn hdr(&self) -> Histogram<u64> {
        let mut h = Histogram::new(3).expect("static histogram precision is valid");
        for (low, _, n) in self.slots.each() {
            // In range by construction, so the only failure would be the
            // counts failing to grow, which cannot happen on 64 bits.
            let _ = h.record_n(low, n);
        }
        h
    }

    /// How many values were recorded.
    pub fn count(&self) -> u64 {
        self.slots.total()
    }

    /// How many values were at most `ns` (to the histogram's precision:
    /// the whole slot `ns` falls in counts).
    pub fn count_at_most(&self, ns: u64) -> u64 {
        self.slots.at_most(ns.min(MAX_NS))
    }

    /// The sum of the values, ns (each at the middle of its slot).
    pub fn sum_ns(&self) -> f64 {
        let mut sum = 0.0;
        self.each_value(|v, n| sum += v as f64 * n as f64);
        sum
    }

    /// Calls `f` with each recorded value (ns, to the histogram's
    /// precision: the middle of its slot, as HdrHistogram's
    /// `median_equivalent`) and its count, from the least.
    pub fn each_value(&self, mut f: impl FnMut(i64, u64)) {
        for (low, width, n) in self.slots.each() {
            f((low + width / 2) as i64, n);
        }
    }

    /// Adds another histogram's values.
    pub fn add(&mut self, other: &LatencyHistogram) {
        self.slots.add(&other.slots);
        self.clamped += other.clamped;
    }

    /// The latency at each percentile, as (quantile, µs) points from 0 to
    /// the last one below 1, closer together towards the tail: the
    /// percentile spectrum that HdrHistogram plots draw.
    pub fn spectrum(&self) -> Vec<(f64, f64)> {
        let h = self.hdr();
        h.iter_quantiles(5)
            .map(|v| (v.quantile_iterated_to(), v.value_iterated_to() as f64 / 1e3))
            .take_while(|&(q, _)| q < 1.0)
            .collect()
    }

    /// The percentiles the report shows, in µs.
    pub fn summary(&self) -> LatencySummary {
        let us = |ns: u64| ns as f64 / 1000.0;
        let h = &self.hdr();
        let empty = h.is_empty();
        let q = |p: f64| {
            if empty {
                0.0
            } else {
                us(h.value_at_quantile(p))
            }
        };
        LatencySummary {
            count: h.len(),
            min_us: if empty { 0.0 } else { us(h.min()) },
            p50_us: q(0.50),
            p90_us: q(0.90),
            p99_us: q(0.99),
            p999_us: q(0.999),
            max_us: if empty { 0.0 } else { us(h.max()) },
            clamped: self.clamped,
        }
    }
}

/// Percentiles of one latency kind, as the run report shows them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, serde::Deserialize)]
pub struct LatencySummary {
    /// Values recorded.
    pub count: u64,
    /// Least value, µs.
    pub min_us: f64,
    /// Median, µs.
    pub p50_us: f64,
    /// 90th percentile, µs.
    pub p90_us: f64,
    /// 99th percentile, µs.
    pub p99_us: f64,
    /// 99.9th percentile, µs.
    pub p999_us: f64,
    /// Greatest value, µs.
    pub max_us: f64,
    /// Values that were out of range and clamped (negative ones included).
    pub clamped: u64,
}

/// The latency histograms of one run.
#[derive(Debug, Clone, Default)]
pub struct LatencyRecorder {
    /// Emit − ingest, monotonic clock.
    pub processing: LatencyHistogram,
    /// Emit − event time, wall clock.
    pub end_to_end: LatencyHistogram,
    /// Emit − window end, wall clock.
    pub result: LatencyHistogram,
    /// Where each event's time went, stage by stage.
    pub stages: Box<StageHistograms>,
    /// Every kind and stage again, for the current interval only, while
    /// an interval log is kept (see [`IntervalLog`]).
    interval: Option<Box<IntervalHists>>,
    /// Set when the run records no latency at all (`--no-latency`): the
    /// executors and operators then skip their clock reads and records.
    pub(crate) off: bool,
    /// Checkpoint commit − event time, wall clock: when each event's effect
    /// became committed (an exactly-once sink's results are final only
    /// then). Measured with checkpoints, on one shard.
    pub committed: LatencyHistogram,
    /// Events emitted and not yet committed, while that is measured.
    commits: Option<Box<Commits>>,
}

/// The event times of events emitted since `base` (wall clock), as
/// distances from it: a histogram's precision is relative to its values,
/// and these stay about one checkpoint interval long.
#[derive(Debug, Clone)]
struct Pending {
    /// Wall time the distances are from.
    base: EpochNanos,
    /// `base − event time`, for events older than `base`.
    before: LatencyHistogram,
    /// `event time − base`, for the others.
    after: LatencyHistogram,
    /// When sealed: every event in it was emitted by then.
    sealed_at: EpochNanos,
}

impl Pending {
    fn new(base: EpochNanos) -> Self {
        Pending { base, before: LatencyHistogram::new(), after: LatencyHistogram::new(), sealed_at: base }
    }

    /// Notes `n` events of `event_time`.
    fn note(&mut self, event_time: EpochNanos, n: u64) {
        let d = event_time.saturating_sub(self.base);
        if d < 0 {
            self.before.record_n(-d, n);
        } else {
            self.after.record_n(d, n);
        }
    }

    /// Calls `f` with each event time noted (to the histograms' precision)
    /// and its count.
    fn each(&self, mut f: impl FnMut(EpochNanos, u64)) {
        self.before.each_value(|v, n| f(self.base - v, n));
        self.after.each_value(|v, n| f(self.base + v, n));
    }
}

/// Emitted events on their way to being committed.
#[derive(Debug, Clone)]
struct Commits {
    /// Emitted since the last snapshot.
    open: Pending,
    /// Emitted before the snapshots not yet known to be written (one, into
    /// which the events of snapshots that failed to be written are folded,
    /// so that failing checkpoints do not grow it).
    sealed: Option<Pending>,
}

/// The stages an event's latency is split into, one histogram each (ns).
/// Every line is counted in every stage that applies to it, whether or not
/// it had an effect.
#[derive(Debug, Clone, Default)]
pub struct StageHistograms {
    /// Event time → ingest, wall clock: how late the line reached sluice
    /// (for the generator, how far it fell behind its schedule).
    pub source_wait: LatencyHistogram,
    /// Ingest → the batch boundary that takes the line, monotonic clock;
    /// zero in per-event mode.
    pub batch_wait: LatencyHistogram,
    /// Waiting to be processed, monotonic clock. Per-event mode: ingest →
    /// the start of the line's own processing (the queue from the source,
    /// and earlier lines). Micro-batch mode: the boundary → the batch's
    /// start, when the previous batch overran (Spark's scheduling delay).
    pub queueing: LatencyHistogram,
    /// Processing through the operators, monotonic clock. Per-event mode:
    /// the line's own trip. Micro-batch mode: the whole batch's, since no
    /// result leaves before the batch is done.
    pub compute: LatencyHistogram,
    /// Final output only: ingest → the close of the line's window,
    /// monotonic clock. Update output holds nothing back.
    pub window_hold: LatencyHistogram,
    /// Handing the results to the sinks, monotonic clock.
    pub sink_write: LatencyHistogram,
}

/// One of the stages of [`StageHistograms`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LatencyStage {
    /// Event time → ingest.
    SourceWait,
    /// Ingest → the batch boundary.
    BatchWait,
    /// Waiting to be processed.
    Queueing,
    /// Processing through the operators.
    Compute,
    /// Ingest → the close of the line's window (final output).
    WindowHold,
    /// Handing the results to the sinks.
    SinkWrite,
}

impl LatencyStage {
    /// Every stage, in the order an event goes through them.
    pub const ALL: [LatencyStage; 6] = [
        LatencyStage::SourceWait,
        LatencyStage::BatchWait,
        LatencyStage::Queueing,
        LatencyStage::Compute,
        LatencyStage::WindowHold,
        LatencyStage::SinkWrite,
    ];

    /// Its name in interval logs, like `source-wait`.
    pub fn tag(self) -> &'static str {
        match self {
            LatencyStage::SourceWait => "source-wait",
            LatencyStage::BatchWait => "batch-wait",
            LatencyStage::Queueing => "queueing",
            LatencyStage::Compute => "compute",
            LatencyStage::WindowHold => "window-hold",
            LatencyStage::SinkWrite => "sink-write",
        }
    }
}

impl StageHistograms {
    /// The histogram of `stage`.
    #[inline]
    pub fn get(&self, stage: LatencyStage) -> &LatencyHistogram {
        match stage {
            LatencyStage::SourceWait => &self.source_wait,
            LatencyStage::BatchWait => &self.batch_wait,
            LatencyStage::Queueing => &self.queueing,
            LatencyStage::Compute => &self.compute,
            LatencyStage::WindowHold => &self.window_hold,
            LatencyStage::SinkWrite => &self.sink_write,
        }
    }

    /// The histogram of `stage`, to record into.
    #[inline]
    fn get_mut(&mut self, stage: LatencyStage) -> &mut LatencyHistogram {
        match stage {
            LatencyStage::SourceWait => &mut self.source_wait,
            LatencyStage::BatchWait => &mut self.batch_wait,
            LatencyStage::Queueing => &mut self.queueing,
            LatencyStage::Compute => &mut self.compute,
            LatencyStage::WindowHold => &mut self.window_hold,
            LatencyStage::SinkWrite => &mut self.sink_write,
        }
    }

    /// Adds another's values, stage by stage.
    fn add(&mut self, other: &StageHistograms) {
        for stage in LatencyStage::ALL {
            self.get_mut(stage).add(other.get(stage));
        }
    }
}

/// What one interval of an interval log recorded: every kind and stage.
#[derive(Debug, Clone, Default)]
struct IntervalHists {
    /// Processing, end-to-end and result latencies, in recorder order.
    kinds: [LatencyHistogram; 3],
    /// The stages.
    stages: StageHistograms,
    /// Committed latencies.
    committed: LatencyHistogram,
}

impl LatencyRecorder {
    /// Records `n` latencies of `ns` in `stage`.
    #[inline]
    pub fn stage_n(&mut self, stage: LatencyStage, ns: i64, n: u64) {
        self.stages.get_mut(stage).record_n(ns, n);
        if let Some(i) = &mut self.interval {
            i.stages.get_mut(stage).record_n(ns, n);
        }
    }

    /// Micro-batch mode: a batch of `lines` lines that started at `start`
    /// had its results ready at `ready` and handed over at `emit`
    /// (monotonic ns).
    pub(crate) fn batch_done(&mut self, start: u64, ready: u64, emit: u64, lines: u64) {
        self.stage_n(LatencyStage::Compute, ready.saturating_sub(start) as i64, lines);
        self.stage_n(LatencyStage::SinkWrite, emit.saturating_sub(ready) as i64, lines);
    }

    /// Records one event whose effect was emitted at (`emit_mono`, `emit_wall`).
    #[inline]
    pub fn record_event(&mut self, ingest: u64, event_time: EpochNanos, emit_mono: u64, emit_wall: EpochNanos) {
        self.processing_n(emit_mono as i64 - ingest as i64, 1);
        if event_time != NO_TIME {
            self.end_to_end_n(emit_wall.saturating_sub(event_time), 1);
            self.pending_n(event_time, 1);
        }
    }

    /// Starts measuring when effects are committed (see
    /// [`LatencyRecorder::committed`]), from wall time `now`.
    pub fn measure_commits(&mut self, now: EpochNanos) {
        self.commits = Some(Box::new(Commits { open: Pending::new(now), sealed: None }));
    }

    /// Notes `n` emitted events of `event_time`, to be committed.
    #[inline]
    fn pending_n(&mut self, event_time: EpochNanos, n: u64) {
        if let Some(c) = &mut self.commits {
            c.open.note(event_time, n);
        }
    }

    /// A snapshot was taken at wall time `now`: what was emitted until now
    /// is committed when it is written.
    pub fn seal(&mut self, now: EpochNanos) {
        if let Some(c) = &mut self.commits {
            let mut open = std::mem::replace(&mut c.open, Pending::new(now));
            open.sealed_at = now;
            match &mut c.sealed {
                Some(sealed) => {
                    open.each(|t, n| sealed.note(t, n));
                    sealed.sealed_at = now;
                }
                None => c.sealed = Some(open),
            }
        }
    }

    /// The snapshots sealed so far were written at wall time `at`: their
    /// events' committed latencies are recorded.
    pub fn committed_at(&mut self, at: EpochNanos) {
        let Some(p) = self.commits.as_mut().and_then(|c| c.sealed.take()) else { return };
        // Every event was emitted by the seal: at least that long before
        // the commit, whatever the histograms' rounding says.
        let least = at.saturating_sub(p.sealed_at);
        let interval = &mut self.interval;
        p.each(|t, n| {
            let ns = at.saturating_sub(t).max(least);
            self.committed.record_n(ns, n);
            if let Some(i) = interval {
                i.committed.record_n(ns, n);
            }
        });
    }

    /// Records `n` processing latencies of `ns`.
    #[inline]
    pub fn processing_n(&mut self, ns: i64, n: u64) {
        self.processing.record_n(ns, n);
        if let Some(i) = &mut self.interval {
            i.kinds[0].record_n(ns, n);
        }
    }

    /// Records `n` end-to-end latencies of `ns`.
    #[inline]
    pub fn end_to_end_n(&mut self, ns: i64, n: u64) {
        self.end_to_end.record_n(ns, n);
        if let Some(i) = &mut self.interval {
            i.kinds[1].record_n(ns, n);
        }
    }

    /// Adds everything `other` recorded (a shard's recorder) to this one,
    /// the current interval included.
    pub fn absorb(&mut self, other: LatencyRecorder) {
        let [p, e, r] = [&other.processing, &other.end_to_end, &other.result];
        if let Some(i) = &mut self.interval {
            i.kinds[0].add(p);
            i.kinds[1].add(e);
            i.kinds[2].add(r);
            i.stages.add(&other.stages);
            i.committed.add(&other.committed);
        }
        self.processing.add(p);
        self.end_to_end.add(e);
        self.result.add(r);
        self.stages.add(&other.stages);
        self.committed.add(&other.committed);
    }

    /// Records `n` result latencies of `ns`.
    #[inline]
    pub fn result_n(&mut self, ns: i64, n: u64) {
        self.result.record_n(ns, n);
        if let Some(i) = &mut self.interval {
            i.kinds[2].record_n(ns, n);
        }
    }
}

/// The tags of the three kinds in an interval log, in recorder order.
const TAGS: [&str; 3] = ["processing", "end-to-end", "result"];

/// The comment at the head of an interval log: units, tags and clocks.
const LOG_COMMENT: &str = "sluice latency interval log; values in ns; tags and clocks: processing [monotonic], \
end-to-end [wall], result [wall], committed [wall]; stages: source-wait [wall], batch-wait, queueing, compute, \
window-hold, sink-write [monotonic]";

/// One finished interval on its way to the log writer.
struct Interval {
    /// Its start, from the start of the run.
    start: Duration,
    /// Its length.
    length: Duration,
    /// What was recorded in it.
    hists: Box<IntervalHists>,
}

/// An HdrHistogram interval log: every `every`, the latencies recorded in
/// the interval are written as one compressed histogram per kind, tagged
/// `processing`, `end-to-end`, `result` or `committed`, and per stage,
/// tagged with [`LatencyStage::tag`]; values in ns. A thread of its
/// own encodes and writes them; the executor only swaps histograms, so the
/// log adds no pause to the run.
pub struct IntervalLog {
    /// Finished intervals, to the writer (bounded).
    tx: Option<std::sync::mpsc::SyncSender<Interval>>,
    /// The writer; its result says whether every interval was written.
    writer: Option<std::thread::JoinHandle<Result<(), String>>>,
    /// The interval length, ns.
    every: u64,
    /// Start of the current interval, monotonic ns.
    started: u64,
}

impl IntervalLog {
    /// Creates the log at `path`, for a run whose clock started at
    /// `run_start` (wall clock), cutting an interval every `every`.
    pub fn create(path: &Path, run_start: EpochNanos, every: Duration) -> Result<Self, String> {
        let file = std::fs::File::create(path).map_err(|e| {
            format!("cannot create the interval log {}: {}", path.display(), crate::source::describe_io(&e))
        })?;
        let shown = path.display().to_string();
        let (tx, rx) = std::sync::mpsc::sync_channel::<Interval>(4);
        let start = std::time::UNIX_EPOCH + Duration::from_nanos(run_start.max(0) as u64);
        let writer = std::thread::Builder::new()
            .name("hdr-log".into())
            .spawn(move || {
                let fail = |e: &dyn std::fmt::Display| format!("cannot write the interval log {shown}: {e}");
                let mut out = std::io::BufWriter::new(file);
                let mut ser = V2DeflateSerializer::new();
                let mut log = IntervalLogWriterBuilder::new()
                    .add_comment(LOG_COMMENT)
                    .with_start_time(start)
                    .with_base_time(start)
                    .with_max_value_divisor(1e6)
                    .begin_log_with(&mut out, &mut ser)
                    .map_err(|e| fail(&e))?;
                for iv in rx {
                    let h = &iv.hists;
                    let kinds = h.kinds.iter().zip(TAGS);
                    let rest = std::iter::once((&h.committed, "committed"))
                        .chain(LatencyStage::ALL.map(|s| (h.stages.get(s), s.tag())));
                    for (k, (hist, tag)) in kinds.chain(rest).enumerate() {
                        // Processing latency is written for every interval,
                        // the others when they have values.
                        if k > 0 && hist.count() == 0 {
                            continue;
                        }
                        log.write_histogram(&hist.hdr(), iv.start, iv.length, Tag::new(tag)).map_err(|e| fail(&e))?;
                    }
                }
                drop(log);
                std::io::Write::flush(&mut out).map_err(|e| fail(&e))
            })
            .map_err(|e| format!("cannot start the interval-log thread: {e}"))?;
        Ok(IntervalLog { tx: Some(tx), writer: Some(writer), every: every.as_nanos().max(1) as u64, started: 0 })
    }

    /// Starts recording intervals into `rec`, at monotonic `now`.
    pub fn begin(&mut self, rec: &mut LatencyRecorder, now: u64) {
        rec.interval = Some(Box::default());
        self.started = now;
    }

    /// Ends the current interval if it is due at monotonic `now`.
    #[inline]
    pub fn tick(&mut self, rec: &mut LatencyRecorder, now: u64) {
        if now.saturating_sub(self.started) >= self.every {
            self.cut(rec, now);
        }
    }

    /// Ends the current interval at `now` and starts the next.
    fn cut(&mut self, rec: &mut LatencyRecorder, now: u64) {
        let Some(hists) = rec.interval.replace(Box::default()) else { return };
        let iv = Interval {
            start: Duration::from_nanos(self.started),
            length: Duration::from_nanos(now.saturating_sub(self.started)),
            hists,
        };
        self.started = now;
        if let Some(tx) = &self.tx {
            // A writer that failed has said why; its result reports it.
            let _ = tx.send(iv);
        }
    }

    /// Writes the last interval and closes the log.
    pub fn finish(mut self, rec: &mut LatencyRecorder, now: u64) -> Result<(), String> {
        self.cut(rec, now);
        rec.interval = None;
        self.tx = None;
        match self.writer.take().map(|w| w.join()) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err("the interval-log writer stopped unexpectedly".into()),
            None => Ok(()),
        }
    }
}

/// The per-window summary of event times that final output replays at emit.
/// It serializes as its recorded (value, count) pairs, each value the
/// highest its slot holds (as HdrHistogram's recorded iteration gives
/// them, which earlier checkpoints hold).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(into = "WindowLatencyState", from = "WindowLatencyState")]
pub struct WindowLatency {
    /// Ingest time of the window's first event (monotonic ns).
    first_ingest: u64,
    /// The event time the `event` offsets count from.
    base_time: EpochNanos,
    /// Ingest offsets from `first_ingest`, µs, two significant digits.
    ingest: Slots<8, u32>,
    /// Event-time offsets from `base_time`, µs, two significant digits;
    /// empty without event times.
    event: Slots<8, u32>,
}

/// The serialized form of a [`WindowLatency`].
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct WindowLatencyState {
    /// See [`WindowLatency`].
    first_ingest: u64,
    /// See [`WindowLatency`].
    base_time: EpochNanos,
    /// Ingest offsets, µs, with their counts.
    ingest: Vec<(u64, u64)>,
    /// Event-time offsets, µs, with their counts.
    event: Vec<(u64, u64)>,
}

/// Each slot's highest value with its count.
fn pairs(s: &Slots<8, u32>) -> Vec<(u64, u64)> {
    s.each().map(|(low, width, n)| (low + width - 1, n)).collect()
}

/// Counts the pairs into slots.
fn unpair(pairs: Vec<(u64, u64)>) -> Slots<8, u32> {
    let mut s = Slots::default();
    for (v, n) in pairs {
        s.add_n(v, u32::saturating(n));
    }
    s
}

impl From<WindowLatency> for WindowLatencyState {
    fn from(w: WindowLatency) -> Self {
        WindowLatencyState {
            first_ingest: w.first_ingest,
            base_time: w.base_time,
            ingest: pairs(&w.ingest),
            event: pairs(&w.event),
        }
    }
}

impl From<WindowLatencyState> for WindowLatency {
    fn from(s: WindowLatencyState) -> Self {
        WindowLatency {
            first_ingest: s.first_ingest,
            base_time: s.base_time,
            ingest: unpair(s.ingest),
            event: unpair(s.event),
        }
    }
}

impl WindowLatency {
    /// A summary for a window whose first event has these times; event-time
    /// offsets count from `base_time` (the window start, or for windows
    /// without a fixed start the first event's time).
    pub fn new(first_ingest: u64, base_time: EpochNanos) -> Self {
        WindowLatency { first_ingest, base_time, ingest: Slots::default(), event: Slots::default() }
    }

    /// Notes one event of the window.
    #[inline]
    pub fn note(&mut self, ingest: u64, event_time: EpochNanos) {
        self.ingest.add_n(ingest.saturating_sub(self.first_ingest) / 1000, 1);
        if event_time != NO_TIME {
            self.event.add_n(event_time.saturating_sub(self.base_time).max(0) as u64 / 1000, 1);
        }
    }

    /// Folds another window's summary into this one (sessions merging).
    /// Each kind of offset is rebased on the earlier of the two bases, so
    /// that neither side's events move.
    pub fn merge(&mut self, mut other: WindowLatency) {
        if other.first_ingest < self.first_ingest {
            std::mem::swap(&mut self.first_ingest, &mut other.first_ingest);
            std::mem::swap(&mut self.ingest, &mut other.ingest);
        }
        self.ingest.add_shifted(&other.ingest, (other.first_ingest - self.first_ingest) / 1000);
        if other.base_time < self.base_time {
            std::mem::swap(&mut self.base_time, &mut other.base_time);
            std::mem::swap(&mut self.event, &mut other.event);
        }
        self.event.add_shifted(&other.event, other.base_time.saturating_sub(self.base_time) as u64 / 1000);
    }

    /// Replays the window's events into `rec` as emitted at the given
    /// times, the window having closed at monotonic `ready`. Each slot's
    /// events are taken at the middle of the slot.
    pub fn replay(&self, rec: &mut LatencyRecorder, ready: u64, emit_mono: u64, emit_wall: EpochNanos) {
        for (low, width, n) in self.ingest.each() {
            let ingest = self.first_ingest + (low + width / 2) * 1000;
            rec.processing_n(emit_mono as i64 - ingest as i64, n);
            rec.stage_n(LatencyStage::WindowHold, ready as i64 - ingest as i64, n);
        }
        for (low, width, n) in self.event.each() {
            let t = self.base_time + ((low + width / 2) * 1000) as i64;
            rec.end_to_end_n(emit_wall.saturating_sub(t), n);
            rec.pending_n(t, n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]

        /// The counts read back exactly as an HdrHistogram that had the
        /// same values recorded into it directly: every percentile, the
        /// least and greatest value, the cumulative counts, and each value
        /// with its count.
        #[test]
        fn reads_as_hdrhistogram_recording_directly(
            values in proptest::collection::vec((0u32..48, proptest::num::u64::ANY, 1u64..4), 1..200),
        ) {
            let mut ours = LatencyHistogram::new();
            let mut theirs = Histogram::<u64>::new(3).unwrap();
            let mut all = Vec::new();
            for (bits, raw, n) in values {
                // Spread over every magnitude up to a day, plus some out of
                // range on either side.
                let v = match bits {
                    0 => -((raw % 1_000) as i64) - 1,
                    47 => MAX_NS as i64 + 1 + (raw % 1_000) as i64,
                    b => (raw % (1u64 << b)).min(MAX_NS) as i64,
                };
                ours.record_n(v, n);
                theirs.record_n(v.clamp(0, MAX_NS as i64) as u64, n).unwrap();
                all.push(v.clamp(0, MAX_NS as i64) as u64);
            }
            let s = ours.summary();
            let us = |ns: u64| ns as f64 / 1000.0;
            proptest::prop_assert_eq!(s.count, theirs.len());
            proptest::prop_assert_eq!(ours.count(), theirs.len());
            proptest::prop_assert_eq!(s.min_us, us(theirs.min()));
            proptest::prop_assert_eq!(s.max_us, us(theirs.max()));
            for (got, q) in [(s.p50_us, 0.5), (s.p90_us, 0.9), (s.p99_us, 0.99), (s.p999_us, 0.999)] {
                proptest::prop_assert_eq!(got, us(theirs.value_at_quantile(q)));
            }
            for v in all.iter().flat_map(|&v| [v, v.saturating_sub(1), v + 1]).chain([0, u64::MAX]) {
                proptest::prop_assert_eq!(ours.count_at_most(v), theirs.count_between(0, v), "at {}", v);
            }
            let mut got = Vec::new();
            ours.each_value(|v, n| got.push((v as u64, n)));
            let want: Vec<_> = theirs
                .iter_recorded()
                .map(|v| (theirs.median_equivalent(v.value_iterated_to()), v.count_at_value()))
                .collect();
            proptest::prop_assert_eq!(got, want);
            let sum = theirs.mean() * theirs.len() as f64;
            proptest::prop_assert!((ours.sum_ns() - sum).abs() <= sum * 1e-9 + 1e-6);

            // The windows' two-digit slots, against HdrHistogram's
            // two-digit histogram: the pairs a checkpoint holds, and the
            // values replay takes.
            let mut window = Slots::<8, u32>::default();
            let mut hdr2 = Histogram::<u32>::new(2).unwrap();
            for &v in &all {
                window.add_n(v, 1);
                hdr2.record(v).unwrap();
            }
            let want: Vec<_> = hdr2
                .iter_recorded()
                .map(|v| (v.value_iterated_to(), hdr2.median_equivalent(v.value_iterated_to()), v.count_at_value() as u64))
                .collect();
            let got: Vec<_> = window.each().map(|(low, width, n)| (low + width - 1, low + width / 2, n)).collect();
            proptest::prop_assert_eq!(got, want);
            let back = unpair(pairs(&window));
            proptest::prop_assert_eq!(back.counts, window.counts);
        }
    }

    #[test]
    fn clamps_and_counts_out_of_range() {
        let mut h = LatencyHistogram::new();
        h.record(-5);
        h.record(i64::MAX);
        h.record(1_000);
        let s = h.summary();
        assert_eq!((s.count, s.clamped), (3, 2));
        assert_eq!(s.min_us, 0.0);
    }

    /// Counts start small and grow to the largest value recorded, also
    /// when a histogram of larger values is added in: percentiles and
    /// counts stay those of the values (within 3 significant digits).
    #[test]
    fn a_histogram_grows_to_its_values() {
        let close = |got: f64, want: f64| (got - want).abs() <= want * 1e-3;
        let mut small = LatencyHistogram::new();
        for _ in 0..99 {
            small.record(2_000);
        }
        let mut large = LatencyHistogram::new();
        large.record(7_200 * 1_000_000_000); // two hours
        large.record(MAX_NS as i64 + 1); // clamped to a day
        small.add(&large);
        let s = small.summary();
        assert_eq!((s.count, s.clamped), (101, 1));
        assert!(close(s.p50_us, 2.0) && close(s.p90_us, 2.0) && close(s.p99_us, 7_200e6), "{s:?}");
        assert!(close(s.max_us, MAX_NS as f64 / 1e3), "{s:?}");
        assert_eq!(small.count_at_most(3_000), 99);
        assert_eq!(small.count_at_most(8_000 * 1_000_000_000), 100);
        assert_eq!(small.count_at_most(u64::MAX), 101);
        let mut points = Vec::new();
        small.each_value(|ns, n| points.push((ns as f64, n)));
        let want = [(2_000.0, 99), (7_200e9, 1), (MAX_NS as f64, 1)];
        assert_eq!(points.len(), want.len(), "{points:?}");
        for ((got, n), (value, count)) in points.iter().zip(want) {
            assert!(close(*got, value) && *n == count, "{points:?}");
        }
    }

    /// Sessions merge in whatever order their list holds: a summary whose
    /// events came earlier, in ingest and in event time, folded into a
    /// later one keeps every event where it was.
    #[test]
    fn merging_an_earlier_window_keeps_every_event_in_place() {
        const MS: u64 = 1_000_000;
        let (ingest_base, event_base) = (1_000 * MS, 5_000_000 * MS as i64);
        // (ingest, event time) of the later window's events, then the
        // earlier one's.
        let later = [(300 * MS, 300 * MS as i64), (350 * MS, 380 * MS as i64)];
        let earlier = [(100 * MS, 50 * MS as i64), (120 * MS, 90 * MS as i64)];
        let summary = |events: &[(u64, i64)]| {
            let mut w = WindowLatency::new(ingest_base + events[0].0, event_base + events[0].1);
            for &(i, t) in events {
                w.note(ingest_base + i, event_base + t);
            }
            w
        };
        let mut merged = summary(&later);
        merged.merge(summary(&earlier));
        let (emit_mono, emit_wall) = (ingest_base + 1_000 * MS, event_base + 1_000 * MS as i64);
        let mut rec = LatencyRecorder::default();
        merged.replay(&mut rec, emit_mono, emit_mono, emit_wall);
        let mut processing = Vec::new();
        rec.processing.each_value(|v, n| processing.extend(std::iter::repeat_n(v as u64 / MS, n as usize)));
        let mut end_to_end = Vec::new();
        rec.end_to_end.each_value(|v, n| end_to_end.extend(std::iter::repeat_n(v as u64 / MS, n as usize)));
        // Exact: 1000 ms less each ingest, and less each event time; the
        // summaries keep two significant digits of each offset from the
        // earliest event.
        let near =
            |got: &[u64], want: [u64; 4]| got.len() == 4 && got.iter().zip(want).all(|(&g, w)| g.abs_diff(w) <= 3);
        assert!(near(&processing, [650, 700, 880, 900]), "{processing:?}");
        assert!(near(&end_to_end, [620, 700, 910, 950]), "{end_to_end:?}");
    }

    #[test]
    fn window_replay_is_close_to_exact() {
        let mut w = WindowLatency::new(1_000_000, 5_000_000_000);
        let ingests = [1_000_000u64, 3_000_000, 250_000_000];
        for (i, ing) in ingests.iter().enumerate() {
            w.note(*ing, 5_000_000_000 + i as i64 * 100_000_000);
        }
        let mut rec = LatencyRecorder::default();
        w.replay(&mut rec, 1_000_000_000, 1_000_000_000, 6_000_000_000);
        let p = rec.processing.summary();
        assert_eq!(p.count, 3);
        // Exact values: 999 ms, 997 ms, 750 ms; 1% of the offset at most.
        assert!((p.max_us - 999_000.0).abs() < 1_000.0, "{p:?}");
        assert!((p.min_us - 750_000.0).abs() < 3_000.0, "{p:?}");
        let e = rec.end_to_end.summary();
        assert_eq!(e.count, 3);
        assert!((e.max_us - 1_000_000.0).abs() < 1_000.0, "{e:?}");
        assert!((e.min_us - 800_000.0).abs() < 3_000.0, "{e:?}");
    }

    #[test]
    fn committed_latency_counts_from_event_time_to_the_commit_that_covers_it() {
        const MS: i64 = 1_000_000;
        let mut rec = LatencyRecorder::default();
        rec.measure_commits(1_000 * MS);
        // Emitted in the first epoch: an event from before it began, and
        // one during it.
        rec.record_event(0, 900 * MS, 0, 1_100 * MS);
        rec.record_event(0, 1_050 * MS, 0, 1_100 * MS);
        rec.seal(1_200 * MS);
        // That snapshot failed to be written; the next one covers both
        // epochs.
        rec.record_event(0, 1_250 * MS, 0, 1_300 * MS);
        rec.seal(1_400 * MS);
        rec.committed_at(1_410 * MS);
        // Nothing sealed since: nothing more is recorded.
        rec.committed_at(1_500 * MS);
        let c = &rec.committed;
        assert_eq!((c.count(), c.clamped), (3, 0));
        let mut got = Vec::new();
        c.each_value(|v, n| got.push((v / MS, n)));
        got.sort_unstable();
        let near = |a: i64, b: i64| (a - b).abs() <= b / 500 + 1;
        let want = [(160, 1), (360, 1), (510, 1)];
        assert!(got.len() == 3 && got.iter().zip(want).all(|(g, w)| near(g.0, w.0) && g.1 == w.1), "{got:?}");
    }
}
