//! A built pipeline: the typed operator chain, the window aggregate and the
//! sinks, behind one object-safe interface the executors drive.

use std::hash::Hash;
use std::io;
use std::sync::{Arc, Mutex};

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::value::RawValue;

use crate::aggregate::{Aggregate, Count, Extreme, Fold, Sum};
use crate::checkpoint::GraphSnapshot;
use crate::error::RunError;
use crate::latency::{LatencyRecorder, LatencyStage};
use crate::operator::{Keyed, KeyedStream, Stage};
use crate::record::{Line, Meta};
use crate::shard::{Sharded, SinkSet};
use crate::sink::{RunInfo, Sink};
use crate::source::Events;
use crate::time::{Clock, Stopwatch};
use crate::window::operator::{LateEvent, WindowCounters, WindowOperator, WindowResult};
use crate::window::WindowConfig;

/// Keys usable in windows: hashable, ordered, and serializable so that
/// window state can be checkpointed.
pub trait Key: Hash + Eq + Ord + Clone + Send + Serialize + DeserializeOwned + 'static {}
impl<K: Hash + Eq + Ord + Clone + Send + Serialize + DeserializeOwned + 'static> Key for K {}

impl<K, T, S> KeyedStream<K, T, S>
where
    S: Stage<Line, Out = Keyed<K, T>>,
{
    /// Groups the keyed values into windows.
    pub fn window(self, config: WindowConfig) -> WindowedStream<K, T, S> {
        WindowedStream { stages: self.into_stage(), config, _t: std::marker::PhantomData }
    }
}

/// A keyed, windowed stream; the next step is an aggregation.
pub struct WindowedStream<K, T, S> {
    /// The stages up to the window.
    stages: S,
    /// How to window.
    config: WindowConfig,
    /// Types, for inference.
    _t: std::marker::PhantomData<fn() -> (K, T)>,
}

impl<K, T, S> WindowedStream<K, T, S>
where
    K: Key,
    T: Send + 'static,
    S: Stage<Line, Out = Keyed<K, T>> + Send + 'static,
{
    /// Aggregates with any [`Aggregate`].
    pub fn aggregate<A: Aggregate<T>>(self, agg: A) -> Aggregated<K, T, S, A> {
        Aggregated { stages: self.stages, config: self.config, agg, sinks: Vec::new(), late_sinks: Vec::new() }
    }

    /// Counts the values per key and window.
    pub fn count(self) -> Aggregated<K, T, S, Count> {
        self.aggregate(Count)
    }

    /// Sums `of(value)` per key and window.
    pub fn sum<F: Fn(&T) -> i64 + Clone + Send + 'static>(self, of: F) -> Aggregated<K, T, S, Sum<F, T>> {
        self.aggregate(Sum::new(of))
    }

    /// The least `of(value)` per key and window.
    pub fn min<V, F>(self, of: F) -> Aggregated<K, T, S, Extreme<F, T>>
    where
        V: Ord + Clone + Send + Serialize + DeserializeOwned + 'static,
        F: Fn(&T) -> V + Clone + Send + 'static,
    {
        self.aggregate(Extreme::min(of))
    }

    /// The greatest `of(value)` per key and window.
    pub fn max<V, F>(self, of: F) -> Aggregated<K, T, S, Extreme<F, T>>
    where
        V: Ord + Clone + Send + Serialize + DeserializeOwned + 'static,
        F: Fn(&T) -> V + Clone + Send + 'static,
    {
        self.aggregate(Extreme::max(of))
    }

    /// A user fold: `init()` per key and window, `step` per value, `merge`
    /// when session windows join.
    pub fn fold<Acc, I, F, M>(self, init: I, step: F, merge: M) -> Aggregated<K, T, S, Fold<Acc, I, F, M, T>>
    where
        Acc: Clone + Send + Serialize + DeserializeOwned + 'static,
        I: Fn() -> Acc + Clone + Send + 'static,
        F: Fn(&mut Acc, &T) + Clone + Send + 'static,
        M: Fn(&mut Acc, Acc) + Clone + Send + 'static,
    {
        self.aggregate(Fold::new(init, step, merge))
    }
}

/// Boxed sinks of window results.
pub(crate) type ResultSinks<K, O> = Vec<Box<dyn Sink<WindowResult<K, O>>>>;

/// An aggregated stream: attach sinks, then [`Aggregated::build`].
pub struct Aggregated<K, T, S, A: Aggregate<T>> {
    /// The stages up to the window.
    stages: S,
    /// How to window.
    config: WindowConfig,
    /// The aggregation.
    agg: A,
    /// Every result goes to each of these (fan-out).
    sinks: ResultSinks<K, A::Out>,
    /// Late items go to each of these.
    late_sinks: Vec<Box<dyn Sink<LateEvent<K>>>>,
}

impl<K, T, S, A> Aggregated<K, T, S, A>
where
    K: Key,
    T: Send + 'static,
    A: Aggregate<T>,
    S: Stage<Line, Out = Keyed<K, T>> + Send + 'static,
{
    /// Adds a sink; every result goes to every sink.
    pub fn sink(mut self, sink: impl Sink<WindowResult<K, A::Out>> + 'static) -> Self {
        self.sinks.push(Box::new(sink));
        self
    }

    /// Adds a boxed sink.
    pub fn boxed_sink(mut self, sink: Box<dyn Sink<WindowResult<K, A::Out>>>) -> Self {
        self.sinks.push(sink);
        self
    }

    /// Adds a sink for late items; without one they are only counted.
    pub fn late_sink(mut self, sink: impl Sink<LateEvent<K>> + 'static) -> Self {
        self.late_sinks.push(Box::new(sink));
        self
    }

    /// Adds a boxed late sink.
    pub fn boxed_late_sink(mut self, sink: Box<dyn Sink<LateEvent<K>>>) -> Self {
        self.late_sinks.push(sink);
        self
    }

    /// Finishes the pipeline; run it with [`crate::run`].
    pub fn build(self) -> Pipeline {
        Pipeline {
            config: self.config,
            graph: Box::new(Job {
                stages: self.stages,
                config: self.config,
                agg: Some(self.agg),
                window: None,
                sinks: SinkSet { results: self.sinks, late: self.late_sinks },
                outbox: Outbox::default(),
                info: None,
                latency: LatencyRecorder::default(),
                clock: Clock::new(),
                restored: None,
            }),
        }
    }
}

/// A pipeline ready to run under either mode.
pub struct Pipeline {
    /// Its window settings, for reports.
    pub(crate) config: WindowConfig,
    /// The graph itself.
    pub(crate) graph: Box<dyn Graph>,
}

impl Pipeline {
    /// Its window settings.
    pub fn window_config(&self) -> WindowConfig {
        self.config
    }
}

/// What the executors need of a pipeline, free of its types.
pub(crate) trait Graph: Send {
    /// Opens the sinks; `immediate` is per-event mode.
    fn open(&mut self, info: RunInfo, clock: Clock, immediate: bool) -> Result<(), RunError>;
    /// Per-event mode: a chunk's events, one at a time
    /// through the whole graph, each one's effects to the sinks before the
    /// next is looked at. The first starts at monotonic `start`, a reading
    /// just taken, each next one when the one before was handed over;
    /// returns the last handover. The times in between are read with a
    /// [`Stopwatch`] started at `start`. (One call a chunk, not an event:
    /// the loop over its events is then compiled with the pipeline's own
    /// types.)
    fn push(&mut self, events: Events<'_>, start: u64) -> Result<u64, RunError>;
    /// Micro-batch mode: a batch's lines (one chunk's at a time) through
    /// the operators into the window; results wait for [`Graph::advance`]
    /// at the batch boundary.
    fn push_batch(&mut self, events: Events<'_>);
    /// Time reached `now` (monotonic ns): close what can close, and hand
    /// everything ready to the sinks. In micro-batch mode `batch` is the
    /// batch's start and its number of lines, for the stage histograms.
    fn advance(&mut self, now: u64, batch: Option<(u64, u64)>) -> Result<(), RunError>;
    /// The wall-clock time of the next processing-time window close.
    fn next_close(&self) -> Option<i64>;
    /// Flushes the sinks.
    fn flush(&mut self) -> Result<(), RunError>;
    /// End of input: every window closes, results go out, sinks close.
    fn finish(&mut self) -> Result<(), RunError>;
    /// Counters of the window operator.
    fn counters(&self) -> WindowCounters;
    /// The event-time watermark, once there is one.
    fn watermark(&self) -> Option<crate::time::EpochNanos>;
    /// Brings what [`Graph::unacked`] says up to date; false when that
    /// failed and nothing may be acknowledged.
    fn settle(&mut self) -> bool {
        true
    }
    /// The earliest place of `input` held in open windows. Call it right
    /// after a flush and [`Graph::settle`].
    fn unacked(&self, input: u32) -> Option<(u64, u64)>;
    /// A source opened `input` at monotonic `now`.
    fn register_input(&mut self, input: u32, now: u64);
    /// The latency histograms.
    fn latency(&self) -> &LatencyRecorder;
    /// The latency histograms, to cut intervals from.
    fn latency_mut(&mut self) -> &mut LatencyRecorder;
    /// Per-event mode: the lines of one input chunk have all been pushed.
    fn chunk_done(&mut self) {}
    /// Window state to start from, from a checkpoint (see
    /// [`crate::checkpoint`]); call it before [`Graph::open`], which
    /// restores it.
    fn restore(&mut self, window: Arc<RawValue>);
    /// A snapshot for a checkpoint, taken between events or batches: every
    /// line pushed so far has its effect in the window state it returns or
    /// in the sinks, which are committed (made durable) first.
    fn snapshot(&mut self) -> Result<GraphSnapshot, RunError>;
    /// The snapshots taken so far were written at wall time `at` (see
    /// [`LatencyRecorder::committed`]).
    fn committed(&mut self, at: crate::time::EpochNanos) {
        let _ = at;
    }
    /// End of input with checkpoints: every window closes and its results
    /// go out, the sinks stay open for the last checkpoint.
    fn close_windows(&mut self) -> Result<(), RunError>;
    /// Ends the run keeping the open windows for the checkpoint: results
    /// ready are delivered, sinks close, open windows are not emitted.
    fn suspend(&mut self) -> Result<(), RunError>;
    /// With shards: per shard, the messages waiting in its queue from the
    /// router, and what the queue holds at most.
    fn shard_queues(&self) -> Vec<(usize, usize)> {
        Vec::new()
    }
    /// The same graph with its window in `n` shards (see [`crate::shard`]);
    /// `spin` is how long its waiting threads poll before sleeping in
    /// per-event mode. Call it before [`Graph::open`].
    fn shard(self: Box<Self>, n: usize, spin: std::time::Duration) -> Box<dyn Graph>;
}

/// The concrete graph.
struct Job<K, T, S, A: Aggregate<T>> {
    /// Operators up to the window.
    stages: S,
    /// Window settings.
    config: WindowConfig,
    /// The aggregation until the window operator is made at open.
    agg: Option<A>,
    /// The window operator, made at open.
    window: Option<WindowOperator<K, T, A>>,
    /// Result and late sinks.
    sinks: SinkSet<K, A::Out>,
    /// Results and late items on their way to the sinks.
    outbox: Outbox<K, A::Out>,
    /// Set at open.
    info: Option<RunInfo>,
    /// Latency histograms.
    latency: LatencyRecorder,
    /// The run's clock.
    clock: Clock,
    /// Window state to restore at open.
    restored: Option<Arc<RawValue>>,
}

/// Decodes checkpointed window state: one [`WindowState`] per shard of the
/// run that took it.
pub(crate) fn decode_window<K: Key, Acc: serde::de::DeserializeOwned>(
    value: &RawValue,
) -> Result<Vec<crate::window::operator::WindowState<K, Acc>>, RunError> {
    serde_json::from_str(value.get())
        .map_err(|e| RunError::Restore { message: format!("its window state does not decode ({e})") })
}

/// Encodes window state for a checkpoint as JSON text: one state (a shard
/// encodes its own), or the array of every shard's (their texts copied as
/// they are, not parsed again). Straight to text, since a JSON value tree
/// would cost an allocation per key.
pub(crate) fn encode_window<T: Serialize + ?Sized>(state: &T) -> Result<Box<RawValue>, RunError> {
    serde_json::value::to_raw_value(state)
        .map_err(|e| RunError::Restore { message: format!("cannot encode window state ({e})") })
}

fn sink_err(name: String, err: io::Error) -> RunError {
    RunError::Sink { sink: name, err }
}

/// Results and late items on their way from a window operator to the
/// sinks; the vectors are reused from one delivery to the next.
pub(crate) struct Outbox<K, O> {
    /// Results.
    results: Vec<WindowResult<K, O>>,
    /// Late items.
    late: Vec<LateEvent<K>>,
}

impl<K, O> Default for Outbox<K, O> {
    fn default() -> Self {
        Outbox { results: Vec::new(), late: Vec::new() }
    }
}

impl<K, O> Outbox<K, O> {
    /// Hands what `window` has ready to `write`, then accounts the latency
    /// of the events it carries as emitted at `now()` (monotonic, of
    /// `clock`). `ready` is when it was ready; `track` is false with
    /// `--no-latency`. Returns when it was handed over (`ready` when there
    /// was nothing to hand over); on a failed write, the error, and nothing
    /// is accounted.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn deliver<T, A: Aggregate<T, Out = O>>(
        &mut self,
        window: &mut WindowOperator<K, T, A>,
        write: impl FnOnce(&[WindowResult<K, O>], &[LateEvent<K>]) -> Result<(), RunError>,
        latency: &mut LatencyRecorder,
        clock: &Clock,
        now: impl FnOnce() -> u64,
        ready: u64,
        track: bool,
    ) -> Result<u64, RunError>
    where
        K: std::hash::Hash + Eq + Ord + Clone,
    {
        // Per-event mode asks after every event, and almost always there is
        // nothing: appending two empty vectors cost two calls to `memcpy`.
        if !window.has_output() {
            return Ok(ready);
        }
        window.take_results(&mut self.results);
        window.take_late(&mut self.late);
        let wrote = !self.results.is_empty() || !self.late.is_empty();
        // Handed over once, even when a sink fails part-way: a retry at
        // finish must not write them again to the sinks that took them.
        let written = if wrote { write(&self.results, &self.late) } else { Ok(()) };
        self.results.clear();
        self.late.clear();
        written?;
        let pending = window.has_pending_latency();
        let emit = if (wrote && track) || pending { now() } else { ready };
        if pending {
            window.account_emitted(latency, ready, emit, clock.to_wall(emit));
        }
        Ok(emit)
    }
}

/// Writes every item to every sink, stopping at the first failure.
pub(crate) fn write_all<R>(sinks: &mut [Box<dyn Sink<R>>], items: &[R]) -> Result<(), RunError> {
    if items.is_empty() {
        return Ok(());
    }
    for sink in sinks {
        for item in items {
            sink.write(item).map_err(|e| sink_err(sink.name(), e))?;
        }
    }
    Ok(())
}

impl<K, T, S, A> Job<K, T, S, A>
where
    K: Key,
    T: Send + 'static,
    A: Aggregate<T>,
    S: Stage<Line, Out = Keyed<K, T>> + Send + 'static,
{
    /// Per-event mode: one event through the whole graph, and its effects
    /// to the sinks, starting at monotonic `start`; returns when its effects
    /// were handed over.
    #[inline]
    fn push_event(&mut self, line: Line, meta: &Meta, start: u64, watch: &mut Stopwatch) -> Result<u64, RunError> {
        let Some(window) = self.window.as_mut() else {
            return Ok(start);
        };
        self.stages.push(line, meta, &mut |kv, meta| window.process(kv, meta));
        if self.latency.off {
            return self.deliver_timed(start, || watch.now());
        }
        let ingest = meta.ingest;
        let ready = watch.now();
        let emit = self.deliver_timed(ready, || watch.now())?;
        let lat = &mut self.latency;
        lat.stage_n(LatencyStage::Queueing, start.saturating_sub(ingest) as i64, 1);
        lat.stage_n(LatencyStage::Compute, ready.saturating_sub(start) as i64, 1);
        lat.stage_n(LatencyStage::SinkWrite, emit.saturating_sub(ready) as i64, 1);
        Ok(emit)
    }

    /// Hands ready results and late items to the sinks, then accounts the
    /// latency of the events they carry, as emitted now. `ready` is when
    /// the results were ready (monotonic); returns when they were handed
    /// over (`ready` when there was nothing to hand over).
    fn deliver(&mut self, ready: u64) -> Result<u64, RunError> {
        let clock = self.clock;
        self.deliver_timed(ready, || clock.now())
    }

    /// [`Job::deliver`], reading the time of the handover with `now`.
    #[inline]
    fn deliver_timed(&mut self, ready: u64, now: impl FnOnce() -> u64) -> Result<u64, RunError> {
        let Some(window) = self.window.as_mut() else {
            return Ok(ready);
        };
        let sinks = &mut self.sinks;
        let track = !self.latency.off;
        self.outbox.deliver(window, |r, l| sinks.write(r, l), &mut self.latency, &self.clock, now, ready, track)
    }
}

impl<K, T, S, A> Graph for Job<K, T, S, A>
where
    K: Key,
    T: Send + 'static,
    A: Aggregate<T>,
    S: Stage<Line, Out = Keyed<K, T>> + Send + 'static,
{
    fn open(&mut self, mut info: RunInfo, clock: Clock, immediate: bool) -> Result<(), RunError> {
        let agg = self.agg.take().expect("a pipeline is opened once");
        info.value_field = agg.name();
        self.clock = clock;
        let mut window = WindowOperator::new(self.config, agg, clock, immediate, !self.sinks.late.is_empty());
        if self.latency.off {
            window = window.without_latency();
        }
        if let Some(state) = self.restored.take() {
            window.restore_from(decode_window(&state)?);
        }
        self.window = Some(window);
        self.sinks.open(&info)?;
        self.info = Some(info);
        Ok(())
    }

    fn push(&mut self, events: Events<'_>, mut at: u64) -> Result<u64, RunError> {
        let mut watch = Stopwatch::new(&self.clock, at);
        for (line, meta) in events {
            at = self.push_event(line, &meta, at, &mut watch)?;
        }
        Ok(at)
    }

    fn push_batch(&mut self, events: Events<'_>) {
        let Some(window) = self.window.as_mut() else {
            return;
        };
        // Each line through every operator into the window, one after the
        // other: nothing is stored on the way, and nothing leaves the
        // window before the boundary.
        for (line, meta) in events {
            self.stages.push(line, &meta, &mut |kv, meta| window.process(kv, meta));
        }
    }

    fn advance(&mut self, now: u64, batch: Option<(u64, u64)>) -> Result<(), RunError> {
        if let Some(window) = self.window.as_mut() {
            window.advance(now);
        }
        let ready = if batch.is_some() { self.clock.now() } else { now };
        let emit = self.deliver(ready)?;
        if self.latency.off {
            return Ok(());
        }
        if let Some((start, lines)) = batch {
            self.latency.batch_done(start, ready, emit, lines);
        }
        Ok(())
    }

    fn next_close(&self) -> Option<i64> {
        self.window.as_ref().and_then(|w| w.next_close())
    }

    fn flush(&mut self) -> Result<(), RunError> {
        self.sinks.flush()
    }

    fn finish(&mut self) -> Result<(), RunError> {
        if let Some(window) = self.window.as_mut() {
            window.finish();
        }
        self.deliver(self.clock.now())?;
        self.sinks.close()
    }

    fn counters(&self) -> WindowCounters {
        self.window.as_ref().map(|w| w.counters()).unwrap_or_default()
    }

    fn watermark(&self) -> Option<crate::time::EpochNanos> {
        self.window.as_ref().map(|w| w.watermark()).filter(|&w| w != crate::time::NO_TIME && w != i64::MAX)
    }

    fn unacked(&self, input: u32) -> Option<(u64, u64)> {
        self.window.as_ref().and_then(|w| w.unacked(input))
    }

    fn register_input(&mut self, input: u32, now: u64) {
        if let Some(w) = self.window.as_mut() {
            w.register_input(input, now);
        }
    }

    fn latency(&self) -> &LatencyRecorder {
        &self.latency
    }

    fn latency_mut(&mut self) -> &mut LatencyRecorder {
        &mut self.latency
    }

    fn restore(&mut self, window: Arc<RawValue>) {
        self.restored = Some(window);
    }

    fn snapshot(&mut self) -> Result<GraphSnapshot, RunError> {
        self.latency.seal(self.clock.to_wall(self.clock.now()));
        let c = self.sinks.commit()?;
        let window = match self.window.as_ref() {
            // The checkpoint holds one state per shard: here, one.
            Some(w) => Some(encode_window(&[w.state_ref()])?),
            None => None,
        };
        Ok(c.with_window(window))
    }

    fn committed(&mut self, at: crate::time::EpochNanos) {
        self.latency.committed_at(at);
    }

    fn close_windows(&mut self) -> Result<(), RunError> {
        if let Some(window) = self.window.as_mut() {
            window.finish();
        }
        self.deliver(self.clock.now()).map(|_| ())
    }

    fn suspend(&mut self) -> Result<(), RunError> {
        self.deliver(self.clock.now())?;
        self.sinks.close()
    }

    fn shard(self: Box<Self>, n: usize, spin: std::time::Duration) -> Box<dyn Graph> {
        let job = *self;
        let Some(agg) = job.agg else {
            // Already open: it stays as it is.
            return Box::new(Job { agg: None, ..job });
        };
        let track = !job.latency.off;
        Box::new(Sharded {
            track,
            stages: job.stages,
            config: job.config,
            agg,
            n,
            sinks: Arc::new(Mutex::new(job.sinks)),
            latency: job.latency,
            spin,
            running: None,
            deferred: None,
            restored: job.restored,
        })
    }
}
