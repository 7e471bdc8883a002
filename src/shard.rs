//! `--parallelism N`: the keyed window in N shards, each on a thread of its
//! own, with the keys split between them.
//!
//! The executor's thread is the router. It runs the operators up to the key
//! (tokenizing, keying) on each line in input order, hashes each item's key
//! to pick its shard, and appends the item to that shard's buffer. A buffer
//! goes to its shard's bounded queue when it is full, at the end of every
//! input chunk, and at every flush, so no event waits for a buffer to fill.
//! Each shard runs its own [`WindowOperator`] over its keys and writes its
//! results to the sinks, which the shards share behind a lock.
//!
//! What keeps the results equal to those of one shard:
//! - **Order.** One router sends in input order and every queue is FIFO, so
//!   each shard sees its items in input order.
//! - **Watermarks.** The router moves the watermark with every event,
//!   exactly as one window operator would (the same code,
//!   [`crate::window::operator::event_progress`]), and hands it on with
//!   each event's items. Shards never work out a watermark of their
//!   own, so every item is placed against the single-shard watermark. At
//!   every chunk end, flush and barrier, a shard that missed the events
//!   that moved it gets the watermark too, so windows close in every shard
//!   when the input moves, not only when one of its own keys comes by.
//! - **Compact buffers.** An event's metadata goes once into each shard's
//!   buffer, followed by its words (key and value only).
//! - **Counting events once.** An event's items may land in several shards;
//!   the router marks its first item, and only that item counts the event
//!   for latency and lateness. Session windows judge lateness item by item:
//!   each shard's reply lists the events it found a late item of, and the
//!   router counts each event once per barrier (see
//!   [`WindowOperator::into_shard`]).
//!
//! Flushes, batch boundaries and the end of input are barriers: the router
//! sends every buffer and waits until every shard has processed everything
//! before them, so a flushed sink holds the same results as with one shard.
//! The shards' counters, held positions and (every [`LATENCY_EVERY`]) their
//! latency histograms come back with the barrier's replies.

use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender, TryRecvError};
use rustc_hash::FxHasher;

use crate::aggregate::Aggregate;
use crate::checkpoint::GraphSnapshot;
use crate::error::RunError;
use crate::latency::{LatencyRecorder, LatencyStage};
use crate::operator::{Keyed, Stage};
use crate::pipeline::{write_all, Graph, Key, Outbox, ResultSinks};
use crate::record::{Line, Meta};
use crate::sink::{RunInfo, Sink};
use crate::source::Events;
use crate::time::{Clock, EpochNanos, Stopwatch, NO_TIME};
use crate::window::operator::{
    advance_watermark, event_progress, split_states, watermarks_for, LateEvent, WindowCounters, WindowOperator,
    WindowResult,
};
use crate::window::{TimeDomain, Watermarks, WindowConfig};

/// Items per buffer before it is sent without waiting for the chunk's end.
const BUFFER_ITEMS: usize = 1024;

/// Per-event mode: the least time between two flush barriers (monotonic ns).
const FLUSH_GAP: u64 = 1_000_000;

/// Messages each shard's queue holds before the router blocks.
const QUEUE: usize = 16;

/// How often at most the shards' latency histograms are collected (always
/// at the end of the run).
pub(crate) const LATENCY_EVERY: Duration = Duration::from_millis(250);

/// The sinks every shard writes to.
pub(crate) struct SinkSet<K, O> {
    /// Result sinks.
    pub(crate) results: ResultSinks<K, O>,
    /// Late sinks.
    pub(crate) late: Vec<Box<dyn Sink<LateEvent<K>>>>,
}

impl<K, O> SinkSet<K, O> {
    /// Calls `f` on every sink, result sinks first, stopping at the first
    /// failure.
    fn each(&mut self, mut f: impl FnMut(&mut dyn SinkOps) -> std::io::Result<()>) -> Result<(), RunError> {
        for sink in &mut self.results {
            f(sink).map_err(|err| RunError::Sink { sink: sink.name(), err })?;
        }
        for sink in &mut self.late {
            f(sink).map_err(|err| RunError::Sink { sink: sink.name(), err })?;
        }
        Ok(())
    }

    /// Opens every sink.
    pub(crate) fn open(&mut self, info: &RunInfo) -> Result<(), RunError> {
        self.each(|s| s.open(info))
    }

    /// Flushes every sink.
    pub(crate) fn flush(&mut self) -> Result<(), RunError> {
        self.each(|s| s.flush())
    }

    /// Commits every sink for a checkpoint: the committed length of each
    /// sink that has one, by name, and the files the checkpoint writer
    /// must sync before it writes ([`Sink::commit_deferred`]).
    pub(crate) fn commit(&mut self) -> Result<Commits, RunError> {
        let mut out = Commits::default();
        self.each(|s| {
            let (len, sync) = s.commit_deferred()?;
            if let Some(len) = len {
                out.lengths.insert(s.name(), len);
            }
            out.sync.extend(sync.map(|f| (s.name(), f)));
            Ok(())
        })?;
        Ok(out)
    }

    /// Closes every sink.
    pub(crate) fn close(&mut self) -> Result<(), RunError> {
        self.each(|s| s.close())
    }

    /// Writes results and late items to every sink of their kind.
    pub(crate) fn write(&mut self, results: &[WindowResult<K, O>], late: &[LateEvent<K>]) -> Result<(), RunError> {
        write_all(&mut self.results, results).and(write_all(&mut self.late, late))
    }
}

/// What the sinks committed for a checkpoint.
#[derive(Default)]
pub(crate) struct Commits {
    /// The committed length of each sink that has one, by name.
    pub lengths: std::collections::BTreeMap<String, u64>,
    /// Files to sync before the checkpoint is written, with their sinks'
    /// names.
    pub sync: Vec<(String, std::sync::Arc<std::fs::File>)>,
}

impl Commits {
    /// The snapshot of a graph whose sinks committed this, with `window`.
    pub(crate) fn with_window(self, window: Option<Box<serde_json::value::RawValue>>) -> GraphSnapshot {
        GraphSnapshot { window, sinks: self.lengths, sync: self.sync }
    }
}

/// The lifecycle of a sink, whatever it takes.
trait SinkOps {
    fn open(&mut self, info: &RunInfo) -> std::io::Result<()>;
    fn flush(&mut self) -> std::io::Result<()>;
    fn close(&mut self) -> std::io::Result<()>;
    fn commit_deferred(&mut self) -> std::io::Result<crate::sink::Deferred>;
    fn name(&self) -> String;
}

impl<R> SinkOps for Box<dyn Sink<R>> {
    fn open(&mut self, info: &RunInfo) -> std::io::Result<()> {
        (**self).open(info)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        (**self).flush()
    }
    fn close(&mut self) -> std::io::Result<()> {
        (**self).close()
    }
    fn commit_deferred(&mut self) -> std::io::Result<crate::sink::Deferred> {
        (**self).commit_deferred()
    }
    fn name(&self) -> String {
        (**self).name()
    }
}

/// Locks the sinks; a shard that panicked while holding the lock left them
/// usable (a write is all-or-nothing per item).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One step of a shard's input: an event whose items follow, or the
/// watermark moving.
#[derive(Debug, Clone, Copy)]
enum Step {
    /// An event; its items are the next `count` of the buffer's `items`.
    /// `first` when the first of them is the event's first item anywhere
    /// (it counts the event for latency and lateness).
    Event {
        /// The event's metadata, once for all its items.
        meta: Meta,
        /// See above.
        first: bool,
        /// How many items it has here.
        count: u32,
        /// The watermark with this event, as the router worked it out.
        watermark: EpochNanos,
    },
    /// The router's watermark, for a shard that missed the events that
    /// moved it.
    Watermark(EpochNanos),
}

/// What one send carries to a shard: steps in input order, and the keyed
/// values of their events. An event's metadata travels once per shard, not
/// with each of its words, so routing a word copies only its key and value.
struct Buffer<K, T> {
    /// Events and watermarks, in input order.
    steps: Vec<Step>,
    /// Keys and values, grouped by event.
    items: Vec<(K, T)>,
}

impl<K, T> Buffer<K, T> {
    fn with_capacity(items: usize) -> Self {
        Buffer { steps: Vec::with_capacity(items / 4), items: Vec::with_capacity(items) }
    }

    fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    fn clear(&mut self) {
        self.steps.clear();
        self.items.clear();
    }
}

/// What the router tells a shard.
enum ToShard<K, T> {
    /// Items and watermarks, in input order.
    Entries(Buffer<K, T>),
    /// An input opened (the router moved the watermark for it).
    Register(u32),
    /// Time passed without events (or a batch ended), and the watermark
    /// is this now: close what can close, deliver, reply (with the latency
    /// histograms when `latency`).
    Advance {
        /// The router's watermark.
        watermark: EpochNanos,
        /// Reply with the latency histograms.
        latency: bool,
    },
    /// Reply once everything sent before is processed.
    Sync {
        /// With the latency histograms.
        latency: bool,
        /// With the places open windows hold.
        unacked: bool,
    },
    /// End of input: close every window, deliver, reply with everything,
    /// and stop.
    Finish,
    /// Reply with the window state, for a checkpoint.
    Snapshot,
    /// Close every window, deliver, reply, and go on (the end of input,
    /// before the last checkpoint).
    CloseAll,
    /// Stop, keeping open windows (they are in the checkpoint): deliver
    /// what is ready, reply with everything, and stop.
    Suspend,
}

/// A shard's answer to a barrier.
struct Reply {
    /// Which shard.
    shard: usize,
    /// Session windows: the events it found a late item of since its last
    /// reply (see [`WindowOperator::take_late_seqs`]).
    late_seqs: Vec<u64>,
    /// Its window counters.
    counters: WindowCounters,
    /// Per input, the earliest place its open windows hold, when asked.
    unacked: Option<Vec<Option<(u64, u64)>>>,
    /// Its next processing-time window close.
    next_close: Option<EpochNanos>,
    /// Its watermark.
    watermark: EpochNanos,
    /// Its latency histograms since the last time they were asked for.
    latency: Option<LatencyRecorder>,
    /// When its results were ready and handed over (monotonic), for
    /// `Advance`.
    ready: u64,
    /// See `ready`.
    emit: u64,
    /// Its window state as JSON, for `Snapshot`.
    state: Option<Box<serde_json::value::RawValue>>,
}

/// The first failure of any shard.
#[derive(Default)]
struct Failure {
    /// Set with `error`, read without a lock on every line.
    flag: AtomicBool,
    /// The error.
    error: Mutex<Option<RunError>>,
}

impl Failure {
    fn set(&self, e: RunError) {
        lock(&self.error).get_or_insert(e);
        self.flag.store(true, Ordering::Release);
    }

    fn take(&self) -> Option<RunError> {
        if !self.flag.load(Ordering::Acquire) {
            return None;
        }
        lock(&self.error).take()
    }
}

/// Waits for a message, polling for up to `spin` before sleeping, and
/// sleeping at most `limit` at a time; `Timeout` lets the caller look
/// around.
pub(crate) fn recv_spinning<M>(rx: &Receiver<M>, spin: Duration, limit: Duration) -> Result<M, RecvTimeoutError> {
    if !spin.is_zero() {
        let until = Instant::now() + spin;
        loop {
            match rx.try_recv() {
                Ok(m) => return Ok(m),
                Err(TryRecvError::Disconnected) => return Err(RecvTimeoutError::Disconnected),
                Err(TryRecvError::Empty) => {}
            }
            if Instant::now() >= until {
                break;
            }
            std::hint::spin_loop();
        }
    }
    rx.recv_timeout(limit)
}

/// One shard: its window operator and what it needs to deliver.
struct Shard<K, T, A: Aggregate<T>> {
    /// Its index.
    index: usize,
    /// The window operator over its keys.
    window: WindowOperator<K, T, A>,
    /// The shared sinks.
    sinks: Arc<Mutex<SinkSet<K, A::Out>>>,
    /// Its latency histograms.
    latency: LatencyRecorder,
    /// The run's clock.
    clock: Clock,
    /// Per-event mode.
    immediate: bool,
    /// Results and late items on their way to the sinks.
    outbox: Outbox<K, A::Out>,
    /// Inputs seen so far (one more than the highest index).
    inputs: usize,
    /// Per-event mode: first items of events not yet delivered.
    firsts: u64,
    /// Whether latency is recorded.
    track: bool,
    /// Where the first failure goes.
    failure: Arc<Failure>,
    /// Emptied buffers, back to the router.
    recycle: Sender<Buffer<K, T>>,
    /// Set once a sink failed: items are dropped from then on, as the
    /// single-shard run stops processing.
    failed: bool,
}

impl<K: Key, T: Send + 'static, A: Aggregate<T>> Shard<K, T, A> {
    fn run(mut self, rx: Receiver<ToShard<K, T>>, replies: Sender<Reply>, spin: Duration) {
        loop {
            let msg = match recv_spinning(&rx, spin, Duration::from_secs(3600)) {
                Ok(m) => m,
                Err(RecvTimeoutError::Timeout) => continue,
                // The router is gone.
                Err(RecvTimeoutError::Disconnected) => return,
            };
            match msg {
                ToShard::Entries(entries) => self.entries(entries),
                // The router holds the watermark back for a new input; the
                // shard only needs to ask about its held places.
                ToShard::Register(input) => self.inputs = self.inputs.max(input as usize + 1),
                ToShard::Advance { watermark, latency } => {
                    self.window.raise_watermark(watermark);
                    self.window.advance(self.clock.now());
                    let ready = self.clock.now();
                    let emit = self.deliver(ready);
                    let _ = replies.send(self.reply(latency, true, ready, emit));
                }
                ToShard::Sync { latency, unacked } => {
                    let now = self.clock.now();
                    let _ = replies.send(self.reply(latency, unacked, now, now));
                }
                ToShard::Finish | ToShard::Suspend => {
                    if matches!(msg, ToShard::Finish) {
                        self.window.finish();
                    }
                    let ready = self.clock.now();
                    let emit = self.deliver(ready);
                    let _ = replies.send(self.reply(true, true, ready, emit));
                    return;
                }
                ToShard::CloseAll => {
                    self.window.finish();
                    let ready = self.clock.now();
                    let emit = self.deliver(ready);
                    let _ = replies.send(self.reply(true, true, ready, emit));
                }
                ToShard::Snapshot => {
                    let now = self.clock.now();
                    let mut reply = self.reply(false, false, now, now);
                    match crate::pipeline::encode_window(&self.window.state_ref()) {
                        Ok(v) => reply.state = Some(v),
                        Err(e) => self.failure.set(e),
                    }
                    let _ = replies.send(reply);
                }
            }
        }
    }

    fn entries(&mut self, mut buffer: Buffer<K, T>) {
        if !self.failed {
            self.apply(&mut buffer);
        }
        // The emptied buffer goes back to the router to be filled again.
        buffer.clear();
        let _ = self.recycle.try_send(buffer);
    }

    fn apply(&mut self, buffer: &mut Buffer<K, T>) {
        let mut items = buffer.items.drain(..);
        let mut events = 0usize;
        // Per-event mode reads the time twice an event that has output.
        let mut watch = Stopwatch::new(&self.clock, if self.immediate && self.track { self.clock.now() } else { 0 });
        for step in &buffer.steps {
            match *step {
                Step::Event { meta, first, count, watermark } => {
                    // Per-event mode: an event's effects leave before the
                    // next event is looked at.
                    if self.immediate && events > 0 {
                        self.deliver_if_any(&mut watch);
                    }
                    events += 1;
                    self.firsts += u64::from(first);
                    self.inputs = self.inputs.max(meta.pos.input as usize + 1);
                    let mut first = first;
                    for (key, value) in items.by_ref().take(count as usize) {
                        self.window.process_marked(Keyed { key, value }, &meta, first, watermark);
                        first = false;
                    }
                }
                Step::Watermark(watermark) => self.window.raise_watermark(watermark),
            }
        }
        if self.immediate {
            self.deliver_if_any(&mut watch);
        }
    }

    /// Per-event mode: delivers, if there is anything to deliver, and
    /// records the sink-write stage of the events whose first item came
    /// here (each event once, wherever its other items went).
    #[inline]
    fn deliver_if_any(&mut self, watch: &mut Stopwatch) {
        let took = if !self.window.has_output() {
            0
        } else if self.track {
            let ready = watch.now();
            self.deliver_timed(ready, || watch.now()) - ready
        } else {
            self.deliver(0);
            0
        };
        if self.firsts > 0 && self.track {
            self.latency.stage_n(LatencyStage::SinkWrite, took as i64, self.firsts);
            self.firsts = 0;
        }
    }

    /// Hands ready results to the sinks and accounts the latency of the
    /// events they carry; returns when they were handed over.
    fn deliver(&mut self, ready: u64) -> u64 {
        let clock = self.clock;
        self.deliver_timed(ready, || clock.now())
    }

    /// [`Shard::deliver`], reading the time of the handover with `now`.
    fn deliver_timed(&mut self, ready: u64, now: impl FnOnce() -> u64) -> u64 {
        let sinks = &self.sinks;
        let write = |r: &[_], l: &[_]| lock(sinks).write(r, l);
        match self.outbox.deliver(&mut self.window, write, &mut self.latency, &self.clock, now, ready, self.track) {
            Ok(emit) => emit,
            Err(e) => {
                self.failed = true;
                self.failure.set(e);
                ready
            }
        }
    }

    fn reply(&mut self, with_latency: bool, with_unacked: bool, ready: u64, emit: u64) -> Reply {
        Reply {
            shard: self.index,
            late_seqs: self.window.take_late_seqs(),
            counters: self.window.counters(),
            unacked: with_unacked.then(|| (0..self.inputs as u32).map(|i| self.window.unacked(i)).collect()),
            next_close: self.window.next_close(),
            watermark: self.window.watermark(),
            latency: with_latency.then(|| std::mem::take(&mut self.latency)),
            ready,
            emit,
            state: None,
        }
    }
}

/// The shard of a key among `n`. The hash is mixed again so that the
/// shards' own hash maps, which use the same hash's low and high bits, still
/// see their keys spread over every bucket.
#[inline]
fn shard_of<K: Hash + ?Sized>(key: &K, n: usize) -> usize {
    let mut h = FxHasher::default();
    key.hash(&mut h);
    let mut x = h.finish();
    x ^= x >> 31;
    x = x.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^= x >> 29;
    ((x as u128 * n as u128) >> 64) as usize
}

/// The routing half of the router: buffers, queues, and the watermark.
///
/// The router moves the watermark with every event, exactly as one window
/// operator would, and hands it to the shards: with each event's items, and
/// at every chunk end, flush and barrier ([`Router::send_all`]) to the
/// shards that missed the events that moved it. A shard never works out a
/// watermark of its own, so it places every item against the watermark one
/// operator would have had.
struct Router<K, T> {
    /// Per shard, the items and watermarks not yet sent.
    buffers: Vec<Buffer<K, T>>,
    /// Per shard, the sequence number of the event whose step is the last
    /// in its buffer (`u64::MAX`: none).
    open: Vec<u64>,
    /// Per shard, its queue.
    to: Vec<Sender<ToShard<K, T>>>,
    /// Per shard, the buffers it emptied, to fill again.
    recycled: Vec<Receiver<Buffer<K, T>>>,
    /// Sequence number of the event whose items are being routed.
    last_seq: u64,
    /// The time domain of the windows.
    time: TimeDomain,
    /// The run's clock.
    clock: Clock,
    /// The watermark, moved as one window operator would move it.
    watermarks: Watermarks,
    /// Per shard, the latest watermark it was given.
    told: Vec<EpochNanos>,
}

impl<K: Hash, T> Router<K, T> {
    fn new(
        to: Vec<Sender<ToShard<K, T>>>,
        recycled: Vec<Receiver<Buffer<K, T>>>,
        config: &WindowConfig,
        clock: Clock,
        watermark: EpochNanos,
    ) -> Self {
        let n = to.len();
        let mut watermarks = watermarks_for(config);
        watermarks.raise(watermark);
        Router {
            buffers: (0..n).map(|_| Buffer::with_capacity(BUFFER_ITEMS)).collect(),
            open: vec![u64::MAX; n],
            to,
            recycled,
            last_seq: u64::MAX,
            time: config.time,
            clock,
            told: vec![watermarks.get(); n],
            watermarks,
        }
    }

    /// The shard of a key. The hash is mixed again so that the shards'
    /// own hash maps, which use the same hash's low and high bits, still
    /// see their keys spread over every bucket.
    #[inline]
    fn shard_of(&self, key: &K) -> usize {
        shard_of(key, self.to.len())
    }

    /// An input opened at monotonic `now`.
    fn register(&mut self, input: u32, now: u64) {
        if self.time == TimeDomain::Event {
            self.watermarks.register(input, now);
        }
    }

    /// Time reached monotonic `now`: the watermark the shards close with.
    fn advance(&mut self, now: u64) -> EpochNanos {
        advance_watermark(self.time, &mut self.watermarks, &self.clock, now);
        self.watermarks.get()
    }

    #[inline(always)]
    fn route(&mut self, kv: Keyed<K, T>, meta: &Meta) {
        let Keyed { key, value } = kv;
        let first = meta.seq != self.last_seq;
        if first {
            self.last_seq = meta.seq;
            event_progress(self.time, &mut self.watermarks, &self.clock, meta, true);
        }
        let j = self.shard_of(&key);
        let buffer = &mut self.buffers[j];
        match buffer.steps.last_mut() {
            // The event's earlier items went to this shard, in this buffer.
            Some(Step::Event { count, .. }) if self.open[j] == meta.seq => *count += 1,
            _ => {
                let watermark = self.watermarks.get();
                self.told[j] = watermark;
                self.open[j] = meta.seq;
                buffer.steps.push(Step::Event { meta: *meta, first, count: 1, watermark });
            }
        }
        let buffer = &mut self.buffers[j];
        buffer.items.push((key, value));
        if buffer.items.len() >= BUFFER_ITEMS {
            self.send(j);
        }
    }

    fn send(&mut self, j: usize) {
        // A buffer the shard emptied, or a small new one (it grows as
        // needed, and the big ones come back).
        let fresh = self.recycled[j].try_recv().unwrap_or_else(|_| Buffer::with_capacity(64));
        let buffer = std::mem::replace(&mut self.buffers[j], fresh);
        // The event's next items here, if any, start a new step.
        self.open[j] = u64::MAX;
        // A shard only stops when told to; a send fails only if it died,
        // which the barrier that follows finds out.
        let _ = self.to[j].send(ToShard::Entries(buffer));
    }

    /// Sends every buffer, with the watermark to each shard that missed
    /// the events that moved it.
    fn send_all(&mut self) {
        let watermark = self.watermarks.get();
        for j in 0..self.to.len() {
            if self.told[j] != watermark {
                self.told[j] = watermark;
                self.buffers[j].steps.push(Step::Watermark(watermark));
            }
            if !self.buffers[j].is_empty() {
                self.send(j);
            }
        }
    }

    fn broadcast(&self, msg: impl Fn() -> ToShard<K, T>) {
        for to in &self.to {
            let _ = to.send(msg());
        }
    }
}

/// The sharded graph: the router's half. Built from a single-shard graph
/// by [`crate::pipeline::Graph::shard`].
pub(crate) struct Sharded<K, T, S, A: Aggregate<T>> {
    /// Operators up to the key, run by the router.
    pub(crate) stages: S,
    /// Window settings.
    pub(crate) config: WindowConfig,
    /// The aggregation, copied into each shard at open.
    pub(crate) agg: A,
    /// Number of shards.
    pub(crate) n: usize,
    /// The sinks, shared with the shards.
    pub(crate) sinks: Arc<Mutex<SinkSet<K, A::Out>>>,
    /// Latency histograms: the router's stages, and the shards' latencies
    /// as collected.
    pub(crate) latency: LatencyRecorder,
    /// Per-event mode: how long a waiting thread polls before sleeping.
    pub(crate) spin: Duration,
    /// Whether latency is recorded.
    pub(crate) track: bool,
    /// Set at open.
    pub(crate) running: Option<Running<K, T>>,
    /// A failure found where it could not be returned (`settle`), for the
    /// next call that can.
    pub(crate) deferred: Option<RunError>,
    /// Window state to restore at open, from a checkpoint.
    pub(crate) restored: Option<Arc<serde_json::value::RawValue>>,
}

/// The sharded graph's state while it runs.
pub(crate) struct Running<K, T> {
    /// The router.
    router: Router<K, T>,
    /// Barrier replies from every shard.
    replies: Receiver<Reply>,
    /// The shard threads.
    threads: Vec<JoinHandle<()>>,
    /// The first shard failure.
    failure: Arc<Failure>,
    /// Per shard, from its last reply.
    counters: Vec<WindowCounters>,
    /// Session windows: events with a late item, each counted once across
    /// the shards (the shards' own counts leave them out).
    late_events: u64,
    /// Per shard, from its last reply that had them.
    unacked: Vec<Vec<Option<(u64, u64)>>>,
    /// Whether `unacked` is up to date: nothing reached the shards since.
    unacked_fresh: bool,
    /// Per shard, from its last reply.
    next_close: Vec<Option<EpochNanos>>,
    /// Per shard, from its last reply.
    watermarks: Vec<EpochNanos>,
    /// When the latency histograms were last collected.
    latency_at: Instant,
    /// The run's clock.
    clock: Clock,
    /// Set once the shards were told to finish.
    finished: bool,
    /// Per-event mode.
    immediate: bool,
    /// When the last barrier ended (monotonic).
    synced_at: u64,
    /// A flush was put off (see `flush`).
    flush_owed: bool,
    /// Items or watermarks were routed since the last barrier.
    routed: bool,
    /// Per shard, its state from the last `Snapshot`.
    states: Vec<Option<Box<serde_json::value::RawValue>>>,
}

impl<K, T, S, A> Sharded<K, T, S, A>
where
    K: Key,
    T: Send + 'static,
    A: Aggregate<T>,
    S: Stage<Line, Out = Keyed<K, T>> + Send + 'static,
{
    /// Sends every buffer and `msg` to every shard, and waits for all the
    /// replies; returns the latest (ready, emit) among them.
    fn barrier(&mut self, msg: impl Fn() -> ToShard<K, T>) -> Result<(u64, u64), RunError> {
        let spin = self.spin;
        let Some(run) = self.running.as_mut() else { return Ok((0, 0)) };
        if run.finished {
            // The shards are gone; what they last said stands.
            return Ok((0, 0));
        }
        run.router.send_all();
        run.router.broadcast(msg);
        run.routed = false;
        let (mut ready, mut emit) = (0, 0);
        let mut waiting = self.n;
        let mut replied = vec![false; self.n];
        // An event's items all reached the shards before this barrier, so
        // the late ones it has in several shards are all in these replies.
        let mut late_seqs = Vec::new();
        while waiting > 0 {
            match recv_spinning(&run.replies, spin, Duration::from_millis(100)) {
                Ok(r) => {
                    waiting -= 1;
                    replied[r.shard] = true;
                    late_seqs.extend_from_slice(&r.late_seqs);
                    ready = ready.max(r.ready);
                    emit = emit.max(r.emit);
                    run.counters[r.shard] = r.counters;
                    if let Some(u) = r.unacked {
                        run.unacked[r.shard] = u;
                    }
                    run.next_close[r.shard] = r.next_close;
                    run.watermarks[r.shard] = r.watermark;
                    if let Some(lat) = r.latency {
                        self.latency.absorb(lat);
                    }
                    if r.state.is_some() {
                        run.states[r.shard] = r.state;
                    }
                }
                Err(e) => {
                    // A shard that replied to `Finish` has stopped, as it
                    // should; one that stopped without replying failed.
                    let died = run.threads.iter().enumerate().any(|(i, t)| !replied[i] && t.is_finished());
                    if e.is_disconnected() || died {
                        return Err(RunError::Worker { message: "a shard thread stopped unexpectedly".into() });
                    }
                }
            }
        }
        late_seqs.sort_unstable();
        late_seqs.dedup();
        run.late_events += late_seqs.len() as u64;
        run.synced_at = run.clock.now();
        match run.failure.take() {
            Some(e) => Err(e),
            None => Ok((ready, emit)),
        }
    }

    /// A sync barrier; collects the latency histograms when they are due,
    /// and the held places when `unacked`.
    fn sync(&mut self, unacked: bool) -> Result<(), RunError> {
        let latency = self.latency_due();
        self.barrier(|| ToShard::Sync { latency, unacked })?;
        if unacked {
            if let Some(r) = self.running.as_mut() {
                r.unacked_fresh = true;
            }
        }
        Ok(())
    }

    /// Whether a barrier now collects the shards' latency histograms: at
    /// most every [`LATENCY_EVERY`], so that the metrics endpoint and the
    /// interval log see them while the run goes on.
    fn latency_due(&mut self) -> bool {
        let Some(r) = self.running.as_mut() else { return false };
        let due = self.track && r.latency_at.elapsed() >= LATENCY_EVERY;
        if due {
            r.latency_at = Instant::now();
        }
        due
    }

    /// Something reached the shards: the held places they last told are
    /// out of date, and a flush needs a barrier.
    #[inline]
    fn changed(&mut self) {
        if let Some(r) = self.running.as_mut() {
            r.unacked_fresh = false;
            r.routed = true;
        }
    }

    /// Per-event mode: one event through the operators to its shards'
    /// buffers, starting at monotonic `start`; returns when it was routed.
    #[inline]
    fn push_event(&mut self, line: Line, meta: &Meta, start: u64, watch: &mut Stopwatch) -> Result<u64, RunError> {
        let Some(run) = self.running.as_mut() else { return Ok(start) };
        let ingest = meta.ingest;
        let router = &mut run.router;
        self.stages.push(line, meta, &mut |kv, meta| router.route(kv, meta));
        run.unacked_fresh = false;
        run.routed = true;
        if !self.track {
            self.check()?;
            return Ok(start);
        }
        let ready = watch.now();
        let lat = &mut self.latency;
        lat.stage_n(LatencyStage::Queueing, start.saturating_sub(ingest) as i64, 1);
        lat.stage_n(LatencyStage::Compute, ready.saturating_sub(start) as i64, 1);
        self.check()?;
        Ok(ready)
    }

    /// The first failure, if there was one: a deferred one, or one a shard
    /// reported since.
    fn check(&mut self) -> Result<(), RunError> {
        if let Some(e) = self.deferred.take() {
            return Err(e);
        }
        match self.running.as_ref().and_then(|r| r.failure.take()) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Stops the shards with `msg` (`Finish`: windows close first;
    /// `Suspend`: they stay as they are), waits for them, and closes the
    /// sinks.
    fn stop_shards(&mut self, msg: fn() -> ToShard<K, T>) -> Result<(), RunError> {
        let already = self.running.as_ref().is_none_or(|r| r.finished);
        if already {
            return self.check();
        }
        let stopped = self.barrier(msg);
        let stopped = match (stopped, self.deferred.take()) {
            (Err(e), _) | (Ok(_), Some(e)) => Err(e),
            (Ok(_), None) => Ok(()),
        };
        if let Some(run) = self.running.as_mut() {
            // The last replies carried every shard's held places.
            run.unacked_fresh = stopped.is_ok();
            run.finished = true;
            for t in run.threads.drain(..) {
                let _ = t.join();
            }
        }
        stopped?;
        lock(&self.sinks).close()
    }

    /// Flushes the shared sinks.
    fn flush_sinks(&mut self) -> Result<(), RunError> {
        if let Some(r) = self.running.as_mut() {
            r.flush_owed = false;
        }
        lock(&self.sinks).flush()
    }
}

impl<K, T, S, A> Graph for Sharded<K, T, S, A>
where
    K: Key,
    T: Send + 'static,
    A: Aggregate<T>,
    S: Stage<Line, Out = Keyed<K, T>> + Send + 'static,
{
    fn open(&mut self, mut info: RunInfo, clock: Clock, immediate: bool) -> Result<(), RunError> {
        info.value_field = self.agg.name();
        lock(&self.sinks).open(&info)?;
        let keep_late = !lock(&self.sinks).late.is_empty();
        let failure = Arc::new(Failure::default());
        let (reply_tx, replies) = bounded(self.n);
        let mut to = Vec::new();
        let mut recycled = Vec::new();
        let mut threads = Vec::new();
        let mut restored = EpochNanos::MIN;
        // The checkpointed state, decoded once and split by key: each shard
        // takes the keys that are its own now, whatever the number of
        // shards that saved them.
        let n = self.n;
        let mut parts = match &self.restored {
            Some(state) => Some(split_states(crate::pipeline::decode_window(state)?, n, |k| shard_of(k, n))),
            None => None,
        };
        for index in 0..self.n {
            let (tx, rx) = bounded(QUEUE);
            let (back, returned) = bounded(QUEUE + 1);
            recycled.push(returned);
            let shard = Shard {
                index,
                window: {
                    let w = WindowOperator::new(self.config, self.agg.clone(), clock, immediate, keep_late);
                    let mut w = if self.track { w.into_shard() } else { w.into_shard().without_latency() };
                    if let Some(parts) = parts.as_mut() {
                        w.restore_from(std::mem::take(&mut parts[index]));
                        restored = restored.max(w.watermark());
                    }
                    w
                },
                track: self.track,
                sinks: self.sinks.clone(),
                latency: LatencyRecorder::default(),
                clock,
                immediate,
                outbox: Outbox::default(),
                inputs: 0,
                firsts: 0,
                failure: failure.clone(),
                recycle: back,
                failed: false,
            };
            let replies = reply_tx.clone();
            // Polling pays only on a core of its own: the router and a
            // source need theirs too.
            let spare = crate::config::default_parallelism() >= self.n + 2;
            let spin = if immediate && spare { self.spin } else { Duration::ZERO };
            let thread = std::thread::Builder::new()
                .name(format!("shard-{index}"))
                .spawn(move || shard.run(rx, replies, spin))
                .map_err(|e| RunError::Worker { message: format!("cannot start a shard thread: {e}") })?;
            to.push(tx);
            threads.push(thread);
        }
        self.running = Some(Running {
            router: Router::new(to, recycled, &self.config, clock, restored),
            replies,
            threads,
            failure,
            counters: vec![WindowCounters::default(); self.n],
            late_events: 0,
            unacked: vec![Vec::new(); self.n],
            unacked_fresh: true,
            next_close: vec![None; self.n],
            watermarks: vec![NO_TIME; self.n],
            latency_at: Instant::now(),
            clock,
            finished: false,
            immediate,
            synced_at: 0,
            flush_owed: false,
            routed: false,
            states: vec![None; self.n],
        });
        Ok(())
    }

    fn push(&mut self, events: Events<'_>, mut at: u64) -> Result<u64, RunError> {
        let Some(clock) = self.running.as_ref().map(|r| r.clock) else {
            return Ok(at);
        };
        let mut watch = Stopwatch::new(&clock, at);
        for (line, meta) in events {
            at = self.push_event(line, &meta, at, &mut watch)?;
        }
        Ok(at)
    }

    fn chunk_done(&mut self) {
        if let Some(run) = self.running.as_mut() {
            run.router.send_all();
        }
    }

    fn push_batch(&mut self, events: Events<'_>) {
        self.changed();
        let Some(run) = self.running.as_mut() else {
            return;
        };
        // Each line through every operator up to the key, then to its
        // shard's buffer: nothing is stored on the way.
        let router = &mut run.router;
        for (line, meta) in events {
            self.stages.push(line, &meta, &mut |kv, meta| router.route(kv, meta));
        }
    }

    fn advance(&mut self, now: u64, batch: Option<(u64, u64)>) -> Result<(), RunError> {
        self.check()?;
        let Some(watermark) = self.running.as_mut().map(|r| r.router.advance(now)) else { return Ok(()) };
        let latency = self.latency_due();
        let (ready, emit) = self.barrier(|| ToShard::Advance { watermark, latency })?;
        // The replies carried where the windows stand now.
        if let Some(r) = self.running.as_mut() {
            r.unacked_fresh = true;
        }
        if !self.track {
            return Ok(());
        }
        if let Some((start, lines)) = batch {
            self.latency.batch_done(start, ready, emit, lines);
        }
        Ok(())
    }

    fn next_close(&self) -> Option<i64> {
        let run = self.running.as_ref()?;
        let owed = run.flush_owed.then(|| run.clock.to_wall(run.synced_at + FLUSH_GAP));
        run.next_close.iter().flatten().copied().chain(owed).min()
    }

    fn flush(&mut self) -> Result<(), RunError> {
        self.check()?;
        if let Some(run) = self.running.as_mut() {
            if run.routed {
                // Per-event mode flushes whenever the input queue is empty.
                // A barrier at most every FLUSH_GAP keeps the router from
                // waiting on the shards after every line; the items move on
                // at once, and `next_close` wakes the executor for the flush
                // put off.
                if run.immediate && run.clock.now() < run.synced_at + FLUSH_GAP {
                    run.router.send_all();
                    run.flush_owed = true;
                    return Ok(());
                }
                self.sync(false)?;
            }
            // Else nothing reached the shards since the last barrier: every
            // result is in the sinks already.
        }
        self.flush_sinks()
    }

    fn finish(&mut self) -> Result<(), RunError> {
        self.stop_shards(|| ToShard::Finish)
    }

    fn counters(&self) -> WindowCounters {
        let late_events = self.running.as_ref().map_or(0, |r| r.late_events);
        let mut total = WindowCounters { late_events, ..WindowCounters::default() };
        for c in self.running.iter().flat_map(|r| r.counters.iter()) {
            total.items += c.items;
            total.late_events += c.late_events;
            total.late_items += c.late_items;
            total.results += c.results;
        }
        total
    }

    fn settle(&mut self) -> bool {
        if self.deferred.is_some() {
            return false;
        }
        let fresh = self.running.as_ref().is_none_or(|r| r.unacked_fresh);
        if !fresh {
            if let Err(e) = self.sync(true) {
                // Kept for the next call that can report it.
                self.deferred = Some(e);
                return false;
            }
        }
        // Acknowledged lines must have their results in the sinks, not in
        // the sinks' buffers: flush them (a put-off flush included).
        if let Err(e) = self.flush_sinks() {
            self.deferred = Some(e);
            return false;
        }
        true
    }

    fn watermark(&self) -> Option<EpochNanos> {
        // Every shard holds the router's watermark as of the last barrier
        // (the live one moves ahead of what they have processed); the
        // least is the safe one.
        let run = self.running.as_ref()?;
        run.watermarks.iter().copied().min().filter(|&w| w != NO_TIME && w != i64::MAX)
    }

    fn shard_queues(&self) -> Vec<(usize, usize)> {
        let Some(run) = self.running.as_ref() else { return Vec::new() };
        run.router.to.iter().map(|q| (q.len(), q.capacity().unwrap_or(0))).collect()
    }

    fn unacked(&self, input: u32) -> Option<(u64, u64)> {
        let run = self.running.as_ref()?;
        run.unacked.iter().filter_map(|u| u.get(input as usize).copied().flatten()).min()
    }

    fn register_input(&mut self, input: u32, now: u64) {
        self.changed();
        if let Some(run) = self.running.as_mut() {
            // After the items routed before it, as with one shard.
            run.router.send_all();
            run.router.register(input, now);
            run.router.broadcast(|| ToShard::Register(input));
        }
    }

    fn latency(&self) -> &LatencyRecorder {
        &self.latency
    }

    fn latency_mut(&mut self) -> &mut LatencyRecorder {
        &mut self.latency
    }

    fn restore(&mut self, window: Arc<serde_json::value::RawValue>) {
        self.restored = Some(window);
    }

    fn snapshot(&mut self) -> Result<GraphSnapshot, RunError> {
        self.check()?;
        if self.running.as_ref().is_none_or(|r| r.finished) {
            return Ok(lock(&self.sinks).commit()?.with_window(None));
        }
        self.barrier(|| ToShard::Snapshot)?;
        let c = self.flush_sinks().and_then(|()| lock(&self.sinks).commit())?;
        let run = self.running.as_mut().expect("checked");
        let states: Option<Vec<_>> = run.states.iter_mut().map(Option::take).collect();
        let Some(states) = states else {
            return Err(RunError::Worker { message: "a shard sent no state for a checkpoint".into() });
        };
        Ok(c.with_window(Some(crate::pipeline::encode_window(&states)?)))
    }

    fn suspend(&mut self) -> Result<(), RunError> {
        self.stop_shards(|| ToShard::Suspend)
    }

    fn close_windows(&mut self) -> Result<(), RunError> {
        self.check()?;
        self.barrier(|| ToShard::CloseAll).map(|_| ())
    }

    fn shard(self: Box<Self>, _n: usize, _spin: Duration) -> Box<dyn Graph> {
        self
    }
}

impl<K, T, S, A: Aggregate<T>> Drop for Sharded<K, T, S, A> {
    fn drop(&mut self) {
        // Shards stop when their queues close; wait for them so that no
        // thread outlives the run.
        if let Some(run) = self.running.take() {
            drop(run.router);
            for t in run.threads {
                let _ = t.join();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::Count;
    use crate::record::Position;
    use crate::window::WindowSpec;

    fn item(seq: u64, input: u32, frontier: EpochNanos, ingest: u64, key: &str) -> (Keyed<String, ()>, Meta) {
        let pos = Position { input, file: 0, offset: seq };
        (Keyed { key: key.to_string(), value: () }, Meta { seq, ingest, event_time: frontier, pos, frontier })
    }

    fn route(router: &mut Router<String, ()>, (kv, meta): (Keyed<String, ()>, Meta)) {
        router.route(kv, &meta);
    }

    /// What a shard's buffer holds, readably: `item:KEY:first@WATERMARK`
    /// or `wm:WATERMARK`.
    fn shown(buffer: &Buffer<String, ()>) -> Vec<String> {
        let mut items = buffer.items.iter();
        let mut out = Vec::new();
        for step in &buffer.steps {
            match *step {
                Step::Event { first, count, watermark, .. } => {
                    for (n, (key, ())) in items.by_ref().take(count as usize).enumerate() {
                        out.push(format!("item:{key}:{}@{watermark}", first && n == 0));
                    }
                }
                Step::Watermark(w) => out.push(format!("wm:{w}")),
            }
        }
        assert!(items.next().is_none(), "every item belongs to a step");
        out
    }

    /// A shard's end of its queue, in these tests.
    type Queue = Receiver<ToShard<String, ()>>;

    fn router(n: usize, config: &WindowConfig) -> (Router<String, ()>, Vec<Queue>) {
        let (mut to, mut rx, mut recycled) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..n {
            let (t, r) = bounded(QUEUE);
            to.push(t);
            rx.push(r);
            recycled.push(bounded(1).1);
        }
        (Router::new(to, recycled, config, Clock::new(), EpochNanos::MIN), rx)
    }

    /// A key that lands in shard `j` of two.
    fn key_in(j: usize, prefix: &str) -> String {
        (0..).map(|i| format!("{prefix}{i}")).find(|k| shard_of(k, 2) == j).unwrap()
    }

    #[test]
    fn items_carry_the_watermark_and_a_shard_without_items_hears_of_it_at_the_send() {
        let config =
            WindowConfig::new(WindowSpec::Tumbling { size: Duration::from_nanos(100) }).event_time(Duration::ZERO);
        let (mut router, rx) = router(2, &config);
        let (a, b) = (key_in(0, "a"), key_in(1, "b"));
        route(&mut router, item(0, 0, 10, 0, &a)); // input 0 reaches 10: shard 0 only
        route(&mut router, item(1, 0, 20, 1, &a));
        route(&mut router, item(1, 0, 20, 1, &b)); // the same event's second word, in shard 1
        route(&mut router, item(2, 0, 40, 2, &a)); // input 0 reaches 40
        assert_eq!(
            shown(&router.buffers[0]),
            [format!("item:{a}:true@10"), format!("item:{a}:true@20"), format!("item:{a}:true@40")]
        );
        assert_eq!(shown(&router.buffers[1]), [format!("item:{b}:false@20")]);
        router.send_all();
        let sent = |r: &Queue| match r.try_recv() {
            Ok(ToShard::Entries(e)) => shown(&e),
            _ => panic!("a buffer was sent"),
        };
        assert_eq!(sent(&rx[0]).len(), 3, "shard 0 saw every event: nothing more");
        assert_eq!(sent(&rx[1]), [format!("item:{b}:false@20"), "wm:40".to_string()]);
        // Nothing new: nothing more to send.
        router.send_all();
        assert!(rx.iter().all(|r| r.is_empty()));
    }

    #[test]
    fn the_routers_watermark_is_that_of_one_operator_at_every_item() {
        // Three inputs, one of which goes idle and comes back, and events
        // scattered over two shards: at each item, the watermark its shard
        // gets equals the watermark one operator had when it placed it.
        let config = WindowConfig {
            idle_timeout: Duration::from_nanos(1_000),
            ..WindowConfig::new(WindowSpec::Tumbling { size: Duration::from_nanos(100) })
        }
        .event_time(Duration::from_nanos(5));
        let clock = Clock::new();
        let mut one = WindowOperator::new(config, Count, clock, false, false);
        let (mut router, _rx) = router(2, &config);
        router.register(2, 0);
        one.register_input(2, 0);
        let events: [(u32, EpochNanos, u64); 9] = [
            (0, 100, 0),
            (1, 50, 0),
            (0, 200, 500),
            (2, 70, 600),
            (0, 300, 1_600),
            (1, 60, 1_650),
            (2, 310, 1_700),
            (0, 400, 2_800),
            (1, 420, 2_900),
        ];
        let mut expected = Vec::new();
        for (seq, &(input, frontier, ingest)) in events.iter().enumerate() {
            let seq = seq as u64;
            for k in 0..3 {
                let key = format!("k{}", seq * 3 + k);
                let (kv, meta) = item(seq, input, frontier, ingest, &key);
                one.process(kv, &meta);
                expected.push((key.clone(), one.watermark()));
                route(&mut router, item(seq, input, frontier, ingest, &key));
            }
        }
        let mut got = Vec::new();
        for buffer in &router.buffers {
            let mut items = buffer.items.iter();
            for step in &buffer.steps {
                if let Step::Event { count, watermark, .. } = *step {
                    got.extend(items.by_ref().take(count as usize).map(|(k, ())| (k.clone(), watermark)));
                }
            }
        }
        got.sort();
        expected.sort();
        assert_eq!(got, expected);
        // Idle inputs made a difference on the way: without idleness it
        // would not have passed 305.
        assert!(expected.iter().any(|&(_, w)| w == 395), "{expected:?}");
    }
}
