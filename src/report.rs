//! The run report: what a run did and what it cost, per mode.

use std::fmt::Write;

use serde::{Deserialize, Serialize};

use crate::latency::{LatencyRecorder, LatencySummary};

/// The latency part of a report. Each kind is present only when it applies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencyReport {
    /// Sink emit − ingest, monotonic clock, one value per event that had an effect.
    pub processing: LatencySummary,
    /// Sink emit − event time, wall clock; present when events have event times.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub end_to_end: Option<LatencySummary>,
    /// Sink emit − window end, wall clock, one value per final result.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub result: Option<LatencySummary>,
    /// Checkpoint commit − event time, wall clock: when each event's effect
    /// became committed (final in an exactly-once sink); with checkpoints,
    /// on one shard.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub committed: Option<LatencySummary>,
    /// Where the time went, stage by stage (see
    /// [`crate::latency::StageHistograms`]). Every line counts in each
    /// stage that applies to it.
    pub stages: StageReport,
    /// The clock each kind uses.
    pub clocks: Clocks,
    /// False when the run recorded no latency (`--no-latency`).
    #[serde(default = "yes")]
    pub recorded: bool,
}

/// Reports written before `recorded` existed recorded latency.
fn yes() -> bool {
    true
}

/// The per-stage percentiles of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageReport {
    /// Event time → ingest, wall clock; absent without event times.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub source_wait: Option<LatencySummary>,
    /// Ingest → batch boundary, monotonic; zero in per-event mode.
    pub batch_wait: LatencySummary,
    /// Waiting to be processed, monotonic.
    pub queueing: LatencySummary,
    /// Through the operators, monotonic.
    pub compute: LatencySummary,
    /// Ingest → window close, monotonic; final output only.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub window_hold: Option<LatencySummary>,
    /// Handing results to the sinks, monotonic.
    pub sink_write: LatencySummary,
}

impl StageReport {
    /// The stages as (name \[clock\], summary) rows, in the order an event
    /// meets them; those that do not apply are left out.
    pub fn rows(&self) -> Vec<(&'static str, &LatencySummary)> {
        let mut rows = Vec::new();
        if let Some(l) = &self.source_wait {
            rows.push(("source wait [wall]", l));
        }
        rows.push(("batch wait [mono]", &self.batch_wait));
        rows.push(("queueing [mono]", &self.queueing));
        rows.push(("compute [mono]", &self.compute));
        if let Some(l) = &self.window_hold {
            rows.push(("window hold [mono]", l));
        }
        rows.push(("sink write [mono]", &self.sink_write));
        rows
    }
}

/// Which clock each latency kind is read from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Clocks {
    /// Always `monotonic`.
    pub processing: String,
    /// Always `wall`.
    pub end_to_end: String,
    /// Always `wall`.
    pub result: String,
}

/// Everything a run reports. The JSON shape is a contract for scripts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    /// `micro-batch` or `per-event`.
    pub mode: String,
    /// The batch interval in micro-batch mode; null in per-event mode.
    #[serde(default)]
    pub batch_interval_ms: Option<f64>,
    /// Shards of the keyed window (`--parallelism`).
    #[serde(default = "one")]
    pub parallelism: usize,
    /// Input events (lines), blank ones included.
    pub events: u64,
    /// Input bytes.
    pub bytes: u64,
    /// From the start of the run to the last result, in seconds.
    pub elapsed_s: f64,
    /// `events / elapsed_s`.
    pub events_per_s: f64,
    /// `bytes / elapsed_s / 10^6`.
    pub mb_per_s: f64,
    /// CPU seconds (user + system) the process used during the run, every
    /// thread included; absent where `/proc` is not available.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub cpu_s: Option<f64>,
    /// The most memory resident during the run, in bytes (process-wide).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub peak_rss_bytes: Option<u64>,
    /// Items (words) that reached the window.
    pub items: u64,
    /// Window results emitted (final results and updates).
    pub results: u64,
    /// Events with at least one late item.
    pub late_events: u64,
    /// Late items.
    pub late_items: u64,
    /// Lines cut for being longer than the maximum line length.
    pub truncated_lines: u64,
    /// Lines whose event time could not be read (ingest time was used).
    pub event_time_fallbacks: u64,
    /// Micro-batch mode: batches run.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub batches: Option<u64>,
    /// Micro-batch mode: batches that filled up and ran before their
    /// boundary (a backlog).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub full_batches: Option<u64>,
    /// The window, as given.
    pub window: String,
    /// `final` or `update`.
    pub output: String,
    /// `processing` or `event`.
    pub time: String,
    /// How the run ended: `end-of-input`, `stopped` (Ctrl-C or SIGTERM),
    /// or `failed`.
    pub ended_by: String,
    /// Latency percentiles.
    pub latency: LatencyReport,
    /// Checkpoints, when a checkpoint directory was given.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub checkpoints: Option<CheckpointReport>,
}

/// What checkpointing did and cost.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CheckpointReport {
    /// Snapshots written.
    pub taken: u64,
    /// Snapshots that could not be written (the last good one stayed).
    pub failed: u64,
    /// The epoch of the last snapshot written (or restored from).
    pub epoch: u64,
    /// Whether the run started from a snapshot.
    pub restored: bool,
    /// Whether the run ended with a snapshot that keeps the open windows,
    /// rather than emitting them.
    pub open_windows_kept: bool,
    /// Time the executor spent per snapshot, events waiting meanwhile
    /// (barrier, sink sync, encoding the window state), monotonic clock:
    /// mean and most, in ms.
    pub mean_ms: f64,
    /// See `mean_ms`.
    pub max_ms: f64,
    /// Time a snapshot then took to be written, synced and renamed into
    /// place, on a thread of its own while events went on: mean and most,
    /// in ms.
    pub write_mean_ms: f64,
    /// See `write_mean_ms`.
    pub write_max_ms: f64,
}

impl LatencyReport {
    /// Summarizes the recorder; kinds with no values are left out.
    pub fn from_recorder(rec: &LatencyRecorder) -> Self {
        let some = |h: &crate::latency::LatencyHistogram| (h.count() > 0).then(|| h.summary());
        LatencyReport {
            processing: rec.processing.summary(),
            end_to_end: some(&rec.end_to_end),
            result: some(&rec.result),
            committed: some(&rec.committed),
            stages: StageReport {
                source_wait: some(&rec.stages.source_wait),
                batch_wait: rec.stages.batch_wait.summary(),
                queueing: rec.stages.queueing.summary(),
                compute: rec.stages.compute.summary(),
                window_hold: some(&rec.stages.window_hold),
                sink_write: rec.stages.sink_write.summary(),
            },
            clocks: Clocks { processing: "monotonic".into(), end_to_end: "wall".into(), result: "wall".into() },
            recorded: !rec.off,
        }
    }
}

impl RunReport {
    /// A human-readable rendering, for stderr.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let interval = self.batch_interval_ms.map(|ms| format!(" ({ms} ms batches)")).unwrap_or_default();
        let _ = writeln!(
            s,
            "── sluice run report: {}{} · window {} · {} time · {} output",
            self.mode, interval, self.window, self.time, self.output
        );
        let _ = writeln!(
            s,
            "   events {}  bytes {}  elapsed {:.3} s  {:.0} events/s  {:.2} MB/s  ended by {}",
            self.events, self.bytes, self.elapsed_s, self.events_per_s, self.mb_per_s, self.ended_by
        );
        if let (Some(cpu), Some(rss)) = (self.cpu_s, self.peak_rss_bytes) {
            let _ = writeln!(s, "   cpu {cpu:.2} s  peak rss {:.1} MiB", rss as f64 / (1u64 << 20) as f64);
        }
        let _ = writeln!(
            s,
            "   words {}  results {}  late events {} (items {})  cut lines {}  time fallbacks {}",
            self.items,
            self.results,
            self.late_events,
            self.late_items,
            self.truncated_lines,
            self.event_time_fallbacks
        );
        if let Some(c) = &self.checkpoints {
            let _ = writeln!(
                s,
                "   checkpoints {} (failed {})  epoch {}{}  pause {:.2} ms mean, {:.2} ms max; write {:.2} ms mean, {:.2} ms max [mono]{}",
                c.taken,
                c.failed,
                c.epoch,
                if c.restored { " (restored)" } else { "" },
                c.mean_ms,
                c.max_ms,
                c.write_mean_ms,
                c.write_max_ms,
                if c.open_windows_kept { "  open windows kept for the restart" } else { "" }
            );
        }
        if !self.latency.recorded {
            let _ = writeln!(s, "   latency: not recorded (--no-latency)");
            return s;
        }
        let _ = writeln!(
            s,
            "   latency (µs)            count        min        p50        p90        p99      p99.9        max"
        );
        let mut row = |name: &str, l: &LatencySummary| {
            let _ = writeln!(
                s,
                "   {name:<20} {:>9} {:>10.1} {:>10.1} {:>10.1} {:>10.1} {:>10.1} {:>10.1}{}",
                l.count,
                l.min_us,
                l.p50_us,
                l.p90_us,
                l.p99_us,
                l.p999_us,
                l.max_us,
                if l.clamped > 0 { format!("  ({} clamped)", l.clamped) } else { String::new() }
            );
        };
        row("processing [mono]", &self.latency.processing);
        if let Some(l) = &self.latency.end_to_end {
            row("end-to-end [wall]", l);
        }
        if let Some(l) = &self.latency.result {
            row("result [wall]", l);
        }
        if let Some(l) = &self.latency.committed {
            row("committed [wall]", l);
        }
        for (name, l) in self.latency.stages.rows() {
            row(&format!("· {name}"), l);
        }
        s
    }
}

/// The parallelism of reports written before it was recorded.
fn one() -> usize {
    1
}
