//! The keyed window aggregate: keeps open windows, decides lateness, emits
//! results, and accounts each event's latency when its effect is emitted.
//!
//! The same code serves both modes; only *when* results leave differs:
//! - per-event mode (`immediate`): an update goes out with the event that
//!   caused it, and a window's final result as soon as the watermark passes
//!   its end;
//! - micro-batch mode: changes are marked dirty and go out at the batch
//!   boundary, with the windows the watermark closed during the batch.
//!
//! The watermark moves per item in both modes, so lateness, and therefore
//! every event-time window result, is the same in both modes.

use std::collections::BTreeSet;
use std::hash::Hash;

use rustc_hash::FxHashMap;

use super::keys::{EntryMut, Keys};
use super::{OutputMode, TimeDomain, Watermarks, Window, WindowConfig, WindowSpec};
use crate::aggregate::Aggregate;
use crate::latency::{LatencyRecorder, WindowLatency};
use crate::operator::Keyed;
use crate::record::{Meta, Position};
use crate::time::{Clock, EpochNanos, NO_TIME};

/// One window result: a key's aggregate in one window.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowResult<K, O> {
    /// The window.
    pub window: Window,
    /// The key.
    pub key: K,
    /// The aggregate (for a count, the running or final total).
    pub value: O,
    /// The latest event time among the events this result includes.
    pub max_event_time: Option<EpochNanos>,
    /// True for a window's final result, false for an update.
    pub is_final: bool,
}

/// An item that came too late for its window.
#[derive(Debug, Clone, PartialEq)]
pub struct LateEvent<K> {
    /// Its key.
    pub key: K,
    /// The time that placed it (event time, or processing time).
    pub time: EpochNanos,
    /// The (first) window it missed.
    pub window: Window,
    /// The watermark when it was processed.
    pub watermark: EpochNanos,
    /// Where it came from.
    pub pos: Position,
}

/// Counters the window operator keeps for the report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct WindowCounters {
    /// Items (words) that reached the window operator.
    pub items: u64,
    /// Events (lines) with at least one late item.
    pub late_events: u64,
    /// Items that were late.
    pub late_items: u64,
    /// Results emitted.
    pub results: u64,
}

/// A key's state in one window.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct Entry<A> {
    /// The aggregate so far.
    pub acc: A,
    /// Latest event time included, or `NO_TIME`.
    #[serde(default = "no_time")]
    pub max_event_time: EpochNanos,
    /// Changed since the last update was emitted (micro-batch update
    /// output). Kept here for sessions only: a pane's keys keep theirs in
    /// [`Keys`].
    #[serde(skip)]
    dirty: bool,
}

fn no_time() -> EpochNanos {
    NO_TIME
}

impl<A> Entry<A> {
    /// A state that has not changed since its last update.
    pub(crate) fn new(acc: A, max_event_time: EpochNanos) -> Self {
        Entry { acc, max_event_time, dirty: false }
    }
}

/// A key's state as a checkpoint encodes it: see [`Entry`]'s `Serialize`.
fn serialize_entry<A: serde::Serialize, S: serde::Serializer>(
    acc: &A,
    max_event_time: EpochNanos,
    s: S,
) -> Result<S::Ok, S::Error> {
    use serde::Serialize;
    if max_event_time == NO_TIME {
        (acc,).serialize(s)
    } else {
        (acc, max_event_time).serialize(s)
    }
}

/// A key's state in a pane, borrowed, serialized as [`Entry`] is.
struct EntryRef<'a, A>(&'a A, EpochNanos);

impl<A: serde::Serialize> serde::Serialize for EntryRef<'_, A> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_entry(self.0, self.1, s)
    }
}

/// Encoded as `[acc]`, or `[acc, max_event_time]` when there is an event
/// time: a checkpoint carries one per key and window. (Checkpoint version 2
/// wrote an object with named fields, which still reads.)
impl<A: serde::Serialize> serde::Serialize for Entry<A> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_entry(&self.acc, self.max_event_time, s)
    }
}

/// The earliest source place, per input, of the events a window holds:
/// their lines cannot be acknowledged before the window is emitted.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Oldest(Vec<(u32, (u64, u64))>);

impl Oldest {
    /// Notes an event's position.
    #[inline]
    fn note(&mut self, pos: &Position) {
        match self.0.iter_mut().find(|(i, _)| *i == pos.input) {
            Some((_, place)) => *place = (*place).min(pos.place()),
            None => self.0.push((pos.input, pos.place())),
        }
    }

    /// The earliest place of `input`, if the window holds any of its events.
    fn of(&self, input: u32) -> Option<(u64, u64)> {
        self.0.iter().find(|(i, _)| *i == input).map(|(_, p)| *p)
    }

    fn merge(&mut self, other: &Oldest) {
        for &(input, place) in &other.0 {
            self.note(&Position { input, file: place.0, offset: place.1 });
        }
    }
}

/// One open tumbling, sliding or global window.
struct Pane<K, A> {
    /// Per-key state.
    keys: Keys<K, A>,
    /// Latency summary of the events whose first effect is this window.
    lat: Option<WindowLatency>,
    /// Where its events came from.
    oldest: Oldest,
    /// Sequence number of the last event noted in `oldest`: an event's
    /// items share its position, so it is noted once.
    noted: u64,
}

impl<K, A> Pane<K, A> {
    fn new() -> Self {
        Pane { keys: Keys::default(), lat: None, oldest: Oldest::default(), noted: u64::MAX }
    }
}

/// A pane's place in [`Panes`]: its window as (end, start), so that panes
/// sort by the time they close.
type PaneKey = (EpochNanos, EpochNanos);

/// The open panes, sorted by (end, start). Few panes are open at a time
/// (one or two for a tumbling window, size/slide for a sliding one) and the
/// items of one event go to the same ones, so a sorted vector with the last
/// pane used remembered finds a pane without a tree walk.
struct Panes<K, A> {
    /// The panes in closing order.
    list: Vec<(PaneKey, Pane<K, A>)>,
    /// Index of the pane used last.
    last: usize,
}

impl<K, A> Panes<K, A> {
    fn new() -> Self {
        Panes { list: Vec::new(), last: 0 }
    }

    /// The index of the pane with this key, if it is open.
    #[inline]
    fn find(&mut self, key: PaneKey) -> Result<usize, usize> {
        if self.list.get(self.last).is_some_and(|(k, _)| *k == key) {
            return Ok(self.last);
        }
        // A sliding window's item goes to its windows in order, which lie
        // next to each other here.
        if self.list.get(self.last + 1).is_some_and(|(k, _)| *k == key) {
            self.last += 1;
            return Ok(self.last);
        }
        let found = self.list.binary_search_by(|(k, _)| k.cmp(&key));
        if let Ok(i) = found {
            self.last = i;
        }
        found
    }

    /// The index of the pane with this key, opened empty if need be.
    #[inline]
    fn open(&mut self, key: PaneKey) -> usize {
        match self.find(key) {
            Ok(i) => i,
            Err(i) => {
                self.list.insert(i, (key, Pane::new()));
                self.last = i;
                i
            }
        }
    }

    fn get_mut(&mut self, key: PaneKey) -> Option<&mut Pane<K, A>> {
        let i = self.find(key).ok()?;
        Some(&mut self.list[i].1)
    }

    /// The end of the pane that closes first.
    fn first_end(&self) -> Option<EpochNanos> {
        self.list.first().map(|(k, _)| k.0)
    }

    /// Takes out every pane whose end is at or before `wm`, in order.
    fn close_until(&mut self, wm: EpochNanos) -> std::vec::Drain<'_, (PaneKey, Pane<K, A>)> {
        let n = self.list.partition_point(|(k, _)| k.0 <= wm);
        if n > 0 {
            self.last = 0;
        }
        self.list.drain(..n)
    }

    fn iter(&self) -> impl Iterator<Item = &(PaneKey, Pane<K, A>)> {
        self.list.iter()
    }

    fn len(&self) -> usize {
        self.list.len()
    }
}

/// One open session of one key.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Session<A> {
    /// Its current extent: first event to last event plus the gap.
    pub window: Window,
    /// The key's state in it.
    pub entry: Entry<A>,
    /// Latency summary of its events.
    lat: Option<WindowLatency>,
    /// Where its events came from.
    oldest: Oldest,
}

/// One open tumbling, sliding or global window in a [`WindowState`].
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PaneState<K, A> {
    /// The window.
    pub window: Window,
    /// Each key's state in it.
    pub keys: Vec<(K, Entry<A>)>,
    /// Latency summary of its events (final output).
    lat: Option<WindowLatency>,
    /// Where its events came from.
    oldest: Oldest,
}

/// Everything a window operator must keep across a restart: the open
/// windows with their per-key state, and the watermark. Taken between
/// batches (or events), when nothing is waiting to be emitted.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct WindowState<K, A> {
    /// Open tumbling, sliding and global windows, with their keys' state.
    pub panes: Vec<PaneState<K, A>>,
    /// Open sessions per key.
    pub sessions: Vec<(K, Vec<Session<A>>)>,
    /// Event-time progress.
    pub watermarks: Watermarks,
}

/// An operator's state, borrowed, serialized as [`WindowState`] is (see
/// [`WindowOperator::state_ref`]).
struct StateRef<'a, K, C> {
    panes: &'a Panes<K, C>,
    sessions: &'a FxHashMap<K, Vec<Session<C>>>,
    watermarks: &'a Watermarks,
}

/// Serializes what `F` iterates as a sequence.
struct Seq<F>(F);

impl<F: Fn() -> I, I: Iterator<Item: serde::Serialize>> serde::Serialize for Seq<F> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq((self.0)())
    }
}

/// A pane as [`PaneState`] is serialized, its keys borrowed; like
/// [`WindowOperator::state`], it leaves out latency and source places.
#[derive(serde::Serialize)]
struct PaneRef<Ks> {
    window: Window,
    keys: Ks,
    lat: Option<()>,
    oldest: Oldest,
}

/// A session as [`Session`] is serialized, its entry borrowed.
#[derive(serde::Serialize)]
struct SessionRef<'a, C> {
    window: Window,
    entry: &'a Entry<C>,
    lat: Option<()>,
    oldest: Oldest,
}

impl<K: serde::Serialize, C: serde::Serialize> serde::Serialize for StateRef<'_, K, C> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let panes = Seq(|| {
            self.panes.iter().map(|&((end, start), ref p)| PaneRef {
                window: Window { start, end },
                keys: Seq(|| p.keys.iter().map(|(k, acc, t)| (k, EntryRef(acc, t)))),
                lat: None,
                oldest: Oldest::default(),
            })
        });
        let sessions = Seq(|| {
            self.sessions.iter().map(|(k, list)| {
                let list = Seq(move || {
                    list.iter().map(|s| SessionRef {
                        window: s.window,
                        entry: &s.entry,
                        lat: None,
                        oldest: Oldest::default(),
                    })
                });
                (k, list)
            })
        });
        let mut st = s.serialize_struct("WindowState", 3)?;
        st.serialize_field("panes", &panes)?;
        st.serialize_field("sessions", &sessions)?;
        st.serialize_field("watermarks", self.watermarks)?;
        st.end()
    }
}

/// The keyed window aggregate.
pub struct WindowOperator<K, T, A: Aggregate<T>> {
    /// Window shape, time domain, watermark and output settings.
    config: WindowConfig,
    /// The aggregation.
    agg: A,
    /// Converts ingest times to wall time (processing-time windows).
    clock: Clock,
    /// Per-event mode: emit as soon as there is something to emit.
    immediate: bool,
    /// A global or tumbling window: every item of an event goes to one pane
    /// (see [`Self::add_to_event_pane`]). Read from `config` once: matching
    /// the window's shape for every item cost eight instructions an item.
    one_pane: bool,
    /// Update output (`config.output`), read once too.
    update: bool,
    /// Event-time (or processing-time) progress.
    watermarks: Watermarks,
    /// Open tumbling, sliding and global windows, by (end, start).
    panes: Panes<K, A::Acc>,
    /// Open sessions per key.
    sessions: FxHashMap<K, Vec<Session<A::Acc>>>,
    /// Session ends, to close sessions in order.
    session_ends: BTreeSet<(EpochNanos, K)>,
    /// Micro-batch update output: (window, key) changed in this batch.
    dirty_panes: Vec<((EpochNanos, EpochNanos), K)>,
    /// Micro-batch update output: keys whose sessions changed in this batch.
    dirty_sessions: Vec<K>,
    /// One shard of several (`--parallelism`): whether an event is new, and
    /// the watermark, are told by the router with each item, since the
    /// event's other items may have gone to other shards and other inputs'
    /// events to none of its keys; `process`, `register_input` and
    /// `advance` then never move the watermark themselves.
    shard: bool,
    /// Sharded: the item being processed is its event's first, and its
    /// event's latency is not accounted yet.
    flag_effect: bool,
    /// Sharded: the item being processed is its event's first, and its
    /// event is not counted late yet.
    flag_late: bool,
    /// Whether latency is tracked (`--no-latency` turns it off).
    track: bool,
    /// Sequence number of the event whose items are being processed.
    event_seq: u64,
    /// That event's time (event or processing time).
    event_time: EpochNanos,
    /// Sequence number of the last event whose latency is accounted for.
    accounted_seq: u64,
    /// Sequence number of the last event counted late.
    late_seq: u64,
    /// Sharded session windows: the events with a late item here since
    /// [`WindowOperator::take_late_seqs`], which the router counts once
    /// across shards.
    late_seqs: Vec<u64>,
    /// Update output: (ingest, event time) of events whose first effect is
    /// among the results not yet handed to the sinks.
    pending_events: Vec<(u64, EpochNanos)>,
    /// Final output: latency summaries of windows whose results are not yet
    /// handed to the sinks, with the window end.
    pending_windows: Vec<(Window, Option<WindowLatency>, u64)>,
    /// Results not yet handed to the sinks.
    results: Vec<WindowResult<K, A::Out>>,
    /// Late items not yet handed to the late sinks.
    late: Vec<LateEvent<K>>,
    /// Whether anyone wants late items.
    keep_late: bool,
    /// Counters.
    counters: WindowCounters,
    /// The value type.
    _t: std::marker::PhantomData<fn(T)>,
}

impl<K, T, A> WindowOperator<K, T, A>
where
    K: Hash + Eq + Ord + Clone,
    A: Aggregate<T>,
{
    /// An operator for `config` aggregating with `agg`; `immediate` for
    /// per-event mode, `keep_late` when a late sink is attached.
    pub fn new(config: WindowConfig, agg: A, clock: Clock, immediate: bool, keep_late: bool) -> Self {
        WindowOperator {
            watermarks: watermarks_for(&config),
            one_pane: matches!(config.spec, WindowSpec::Global | WindowSpec::Tumbling { .. }),
            update: config.output == OutputMode::Update,
            config,
            agg,
            clock,
            immediate,
            panes: Panes::new(),
            sessions: FxHashMap::default(),
            session_ends: BTreeSet::new(),
            dirty_panes: Vec::new(),
            dirty_sessions: Vec::new(),
            shard: false,
            track: true,
            flag_effect: false,
            flag_late: false,
            event_seq: u64::MAX,
            event_time: NO_TIME,
            accounted_seq: u64::MAX,
            late_seq: u64::MAX,
            late_seqs: Vec::new(),
            pending_events: Vec::new(),
            pending_windows: Vec::new(),
            results: Vec::new(),
            late: Vec::new(),
            keep_late,
            counters: WindowCounters::default(),
            _t: std::marker::PhantomData,
        }
    }

    /// The aggregation.
    pub fn aggregate(&self) -> &A {
        &self.agg
    }

    /// An input opened at monotonic `now`: in event time it holds the
    /// watermark until it delivers or goes idle (see
    /// [`Watermarks::register`]).
    pub fn register_input(&mut self, input: u32, now: u64) {
        // A shard's watermark comes from the router.
        if self.config.time == TimeDomain::Event && !self.shard {
            self.watermarks.register(input, now);
        }
    }

    /// The current watermark.
    pub fn watermark(&self) -> EpochNanos {
        self.watermarks.get()
    }

    /// Counters so far.
    pub fn counters(&self) -> WindowCounters {
        self.counters
    }

    /// A copy of the state to checkpoint. What belongs to this run only is
    /// left out: latency summaries (monotonic times) and the places events
    /// came from (file numbers are counted per run).
    pub fn state(&self) -> WindowState<K, A::Acc> {
        WindowState {
            panes: self
                .panes
                .iter()
                .map(|&((end, start), ref p)| {
                    let keys = p.keys.iter().map(|(k, acc, t)| (k.clone(), Entry::new(acc.clone(), t))).collect();
                    PaneState { window: Window { start, end }, keys, lat: None, oldest: Oldest::default() }
                })
                .collect(),
            sessions: self
                .sessions
                .iter()
                .map(|(k, v)| {
                    let list = v
                        .iter()
                        .map(|s| Session {
                            window: s.window,
                            entry: Entry::new(s.entry.acc.clone(), s.entry.max_event_time),
                            lat: None,
                            oldest: Oldest::default(),
                        })
                        .collect();
                    (k.clone(), list)
                })
                .collect(),
            watermarks: self.watermarks.clone(),
        }
    }

    /// What [`WindowOperator::state`] returns, encoded the same way, but
    /// read in place: taking a checkpoint copies no key.
    pub(crate) fn state_ref(&self) -> impl serde::Serialize + '_
    where
        K: serde::Serialize,
        A::Acc: serde::Serialize,
    {
        StateRef { panes: &self.panes, sessions: &self.sessions, watermarks: &self.watermarks }
    }

    /// Replaces the state with a checkpointed one.
    pub fn restore(&mut self, state: WindowState<K, A::Acc>) {
        self.restore_from(vec![state]);
    }

    /// Replaces the state with that of several checkpointed states (one per
    /// shard of the run that took them, split for this run's shards by
    /// [`split_states`]). The watermark is the latest of theirs;
    /// each input's own progress starts again (input numbers are given per
    /// run), so an input holds the watermark where it is until it delivers.
    pub(crate) fn restore_from(&mut self, states: Vec<WindowState<K, A::Acc>>) {
        let mut panes: Vec<(PaneKey, Pane<K, A::Acc>)> = Vec::new();
        let mut sessions: FxHashMap<K, Vec<Session<A::Acc>>> = FxHashMap::default();
        let mut watermark = EpochNanos::MIN;
        for state in states {
            watermark = watermark.max(state.watermarks.get());
            for p in state.panes {
                let at = (p.window.end, p.window.start);
                let i = match panes.iter().position(|(k, _)| *k == at) {
                    Some(i) => i,
                    None => {
                        panes.push((at, Pane::new()));
                        panes.len() - 1
                    }
                };
                panes[i].1.keys.extend(p.keys);
            }
            sessions.extend(state.sessions);
        }
        panes.retain(|(_, p)| !p.keys.is_empty());
        panes.sort_by_key(|(k, _)| *k);
        self.panes = Panes { list: panes, last: 0 };
        self.event_seq = u64::MAX;
        self.session_ends =
            sessions.iter().flat_map(|(k, list)| list.iter().map(move |s| (s.window.end, k.clone()))).collect();
        self.sessions = sessions;
        self.watermarks.raise(watermark);
    }

    /// The earliest place (file, offset) of `input` among the events that
    /// open windows hold: lines from there on are not acknowledged yet.
    pub fn unacked(&self, input: u32) -> Option<(u64, u64)> {
        let panes = self.panes.iter().filter_map(|(_, p)| p.oldest.of(input));
        let sessions = self.sessions.values().flatten().filter_map(|s| s.oldest.of(input));
        panes.chain(sessions).min()
    }

    /// Open windows (panes and sessions).
    pub fn open_windows(&self) -> usize {
        self.panes.len() + self.session_ends.len()
    }

    /// Makes this operator one shard of several: the watermark is the one
    /// the router hands over, and events are counted (for latency and
    /// lateness) by their first item, which the router marks, wherever
    /// their other items go. Session windows judge lateness item by item:
    /// there, each shard lists the events it found a late item of
    /// ([`WindowOperator::take_late_seqs`]) and the router counts each
    /// event once; but an event whose first item is late and another is
    /// not is not accounted for latency (one operator would account it at
    /// its first item on time). Tumbling, sliding and global windows place
    /// every item of an event alike, so for them nothing changes.
    pub(crate) fn into_shard(mut self) -> Self {
        self.shard = true;
        self
    }

    /// Sharded session windows: the events with a late item since the last
    /// call, in order, for the router to count once across shards.
    pub(crate) fn take_late_seqs(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.late_seqs)
    }

    /// Tracks no latency: nothing is noted per event for the histograms.
    pub(crate) fn without_latency(mut self) -> Self {
        self.track = false;
        self
    }

    /// Sharded: processes an item; `first` when it is its event's first
    /// item, `watermark` the watermark the router worked out with its event
    /// (see [`crate::shard`]).
    #[inline]
    pub(crate) fn process_marked(&mut self, item: Keyed<K, T>, meta: &Meta, first: bool, watermark: EpochNanos) {
        self.watermarks.raise(watermark);
        self.flag_effect = first;
        self.flag_late = first;
        self.process(item, meta);
    }

    /// Sharded: the router's watermark moved without an item for this
    /// shard; in per-event mode, what it closes goes out now.
    pub(crate) fn raise_watermark(&mut self, watermark: EpochNanos) {
        if watermark > self.watermarks.get() {
            self.watermarks.raise(watermark);
            if self.immediate {
                self.close_ripe();
            }
        }
    }

    /// Processes one keyed item of the event `meta`. In per-event mode,
    /// what it causes is ready in [`Self::take_results`] right after.
    #[inline(always)]
    pub fn process(&mut self, item: Keyed<K, T>, meta: &Meta) {
        let Keyed { key, value } = item;
        self.counters.items += 1;
        if self.event_seq != meta.seq {
            self.start_event(meta);
        }
        if let Some(key) = self.add_to_event_pane(key, &value, meta) {
            self.place(key, value, meta);
        }
    }

    /// Places an item in its windows: everything [`Self::add_to_event_pane`]
    /// leaves, out of line so that the common case inlines into the
    /// operators before it.
    #[inline(never)]
    fn place(&mut self, key: K, value: T, meta: &Meta) {
        match self.config.spec {
            WindowSpec::Global => self.add_to_pane(Window::GLOBAL, key, &value, meta),
            WindowSpec::Tumbling { size } => {
                let (t, wm) = (self.event_time, self.watermarks.get());
                let w = self.tumbling(size);
                if w.end <= wm {
                    self.late(key, t, w, wm, meta);
                } else {
                    self.add_to_pane(w, key, &value, meta);
                }
            }
            WindowSpec::Sliding { size, slide } => self.add_sliding(size, slide, key, &value, meta),
            WindowSpec::Session { gap } => {
                let t = self.event_time;
                let w = Window { start: t, end: t.saturating_add(gap.as_nanos() as i64) };
                self.add_to_session(w, key, &value, meta);
            }
        }
    }

    /// The common case, small enough to inline: a global or tumbling
    /// window, and an item of an event whose first item (in this shard)
    /// was placed already, into a key its window has. Every item of an event
    /// goes to the same pane of these windows, and nothing moves the
    /// watermark between them. So when the pane used last has noted this
    /// event (only [`Self::add_to_pane`] notes one, after the event's
    /// first effect and lateness were dealt with), it is this item's pane,
    /// and the item is not late. The item is added as `add_to_pane`
    /// would, except that its key moves into the update
    /// where that path copies it. Anything else gives the key back for the
    /// general path.
    #[inline(always)]
    fn add_to_event_pane(&mut self, key: K, value: &T, meta: &Meta) -> Option<K> {
        if !self.one_pane {
            return Some(key);
        }
        let Some((wkey, pane)) = self.panes.list.get_mut(self.panes.last) else {
            return Some(key);
        };
        if pane.noted != meta.seq {
            return Some(key);
        }
        let Some(mut entry) = pane.keys.get_mut(&key) else {
            return Some(key);
        };
        self.agg.add(entry.acc, value);
        entry.note_time(meta.event_time);
        if self.update {
            let dirty = (!self.immediate).then_some(&mut self.dirty_panes);
            changed(&self.agg, entry, *wkey, key, &mut self.results, dirty);
        }
        None
    }

    /// The first item of an event: the items of one event share its
    /// metadata, so its time and the watermark it brings are worked out
    /// once, here.
    #[inline(never)]
    fn start_event(&mut self, meta: &Meta) {
        self.event_seq = meta.seq;
        // A shard's watermark was moved by the router already.
        self.event_time = event_progress(self.config.time, &mut self.watermarks, &self.clock, meta, !self.shard);
        if self.immediate {
            // What the new watermark closes goes out now. The event's
            // own items go to windows that end after it, so closing
            // before adding them gives the same results.
            self.close_ripe();
        }
        // A global or tumbling window puts every item of the event in one
        // pane: enter it now, so that the first item, like the others,
        // takes the short way in (`add_to_event_pane`). A late event
        // enters nothing; its items go the general way, to `late`.
        let w = match self.config.spec {
            WindowSpec::Global => Window::GLOBAL,
            WindowSpec::Tumbling { size } => self.tumbling(size),
            WindowSpec::Sliding { .. } | WindowSpec::Session { .. } => return,
        };
        if w.is_global() || w.end > self.watermarks.get() {
            self.enter_pane(w, meta);
        }
    }

    /// The tumbling window of `size` that holds the current event.
    #[inline]
    fn tumbling(&self, size: std::time::Duration) -> Window {
        let size = size.as_nanos() as i64;
        let off = self.config.origin.rem_euclid(size);
        let start = (self.event_time - off).div_euclid(size) * size + off;
        Window { start, end: start.saturating_add(size) }
    }

    /// An item into each of its sliding windows that is still open, and
    /// late for those already closed.
    #[inline(never)]
    fn add_sliding(&mut self, size: std::time::Duration, slide: std::time::Duration, key: K, value: &T, meta: &Meta) {
        let (t, wm) = (self.event_time, self.watermarks.get());
        let (size, slide) = (size.as_nanos() as i64, slide.as_nanos() as i64);
        let off = self.config.origin.rem_euclid(slide);
        let last = (t - off).div_euclid(slide) * slide + off;
        let first = last - size + slide;
        // The item's windows in order of their end: the first ones may
        // be closed already, the rest are open.
        let mut start = first;
        while start <= last && start.saturating_add(size) <= wm {
            start += slide;
        }
        if start != first {
            let missed = Window { start: first, end: first.saturating_add(size) };
            self.late(key.clone(), t, missed, wm, meta);
        }
        while start <= last {
            let w = Window { start, end: start.saturating_add(size) };
            self.add_to_pane(w, key.clone(), value, meta);
            start += slide;
        }
    }

    /// Time passed without events: processing time reached `now_mono`
    /// (monotonic ns). Closes what the new watermark allows. (A shard only
    /// closes what its watermark, raised by the router, allows.)
    pub fn advance(&mut self, now_mono: u64) {
        if !self.shard {
            advance_watermark(self.config.time, &mut self.watermarks, &self.clock, now_mono);
        }
        self.close_ripe();
    }

    /// End of input: the watermark goes to +∞ and every window closes.
    pub fn finish(&mut self) {
        self.watermarks.raise(EpochNanos::MAX);
        self.close_ripe();
    }

    /// The earliest wall-clock time at which a processing-time window will
    /// close, so per-event mode can wake up for it.
    pub fn next_close(&self) -> Option<EpochNanos> {
        if self.config.time != TimeDomain::Processing {
            return None;
        }
        let pane = self.panes.first_end();
        let session = self.session_ends.iter().next().map(|k| k.0);
        match (pane, session) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
        .filter(|&e| e != EpochNanos::MAX)
    }

    /// Micro-batch update output: turns this batch's changes into results.
    pub fn emit_updates(&mut self) {
        for (wkey, key) in self.dirty_panes.drain(..) {
            if let Some(pane) = self.panes.get_mut(wkey) {
                if let Some(mut e) = pane.keys.get_mut(&key) {
                    e.unflag();
                    let window = Window { start: wkey.1, end: wkey.0 };
                    self.results.push(result(&self.agg, window, key, e.acc, e.max_event_time(), false));
                }
            }
        }
        for key in self.dirty_sessions.drain(..) {
            if let Some(list) = self.sessions.get_mut(&key) {
                for s in list.iter_mut().filter(|s| s.entry.dirty) {
                    s.entry.dirty = false;
                    self.results.push(result(
                        &self.agg,
                        s.window,
                        key.clone(),
                        &s.entry.acc,
                        s.entry.max_event_time,
                        false,
                    ));
                }
            }
        }
    }

    /// Moves the ready results into `out` (which the caller drains).
    pub fn take_results(&mut self, out: &mut Vec<WindowResult<K, A::Out>>) {
        self.counters.results += self.results.len() as u64;
        out.append(&mut self.results);
    }

    /// Moves the late items into `out`.
    pub fn take_late(&mut self, out: &mut Vec<LateEvent<K>>) {
        out.append(&mut self.late);
    }

    /// True when results, late items or latencies wait to be delivered.
    #[inline]
    pub fn has_output(&self) -> bool {
        !self.results.is_empty() || !self.late.is_empty() || self.has_pending_latency()
    }

    /// True when emitted results carry events whose latency is not yet
    /// recorded.
    #[inline]
    pub fn has_pending_latency(&self) -> bool {
        !self.pending_events.is_empty() || !self.pending_windows.is_empty()
    }

    /// Records the latency of every event whose first effect was among the
    /// results just handed to the sinks, as emitted at these times; the
    /// results were ready (their windows closed) at monotonic `ready`.
    pub fn account_emitted(&mut self, rec: &mut LatencyRecorder, ready: u64, emit_mono: u64, emit_wall: EpochNanos) {
        for (ingest, et) in self.pending_events.drain(..) {
            rec.record_event(ingest, et, emit_mono, emit_wall);
        }
        for (window, lat, results) in self.pending_windows.drain(..) {
            if let Some(lat) = lat {
                lat.replay(rec, ready, emit_mono, emit_wall);
            }
            if !window.is_global() && self.config.output == OutputMode::Final {
                rec.result_n(emit_wall.saturating_sub(window.end), results);
            }
        }
    }

    /// True when the item's event is seen for the first time: its latency
    /// is accounted with this item's effect.
    #[inline]
    fn first_effect(&mut self, meta: &Meta) -> bool {
        if self.shard {
            return std::mem::take(&mut self.flag_effect);
        }
        let first = self.accounted_seq != meta.seq;
        self.accounted_seq = meta.seq;
        first
    }

    #[cold]
    #[inline(never)]
    fn late(&mut self, key: K, time: EpochNanos, window: Window, watermark: EpochNanos, meta: &Meta) {
        self.counters.late_items += 1;
        let session = matches!(self.config.spec, WindowSpec::Session { .. });
        if self.shard && session {
            // Another shard may have a late item of the same event: the
            // router counts it once.
            if self.late_seq != meta.seq {
                self.late_seq = meta.seq;
                self.late_seqs.push(meta.seq);
            }
        } else if self.shard {
            if std::mem::take(&mut self.flag_late) {
                self.counters.late_events += 1;
            }
        } else if self.late_seq != meta.seq {
            self.late_seq = meta.seq;
            self.counters.late_events += 1;
        }
        if self.keep_late {
            self.late.push(LateEvent { key, time, window, watermark, pos: meta.pos });
        }
    }

    /// The pane of `w`, opened if need be, with the event `meta` noted in
    /// it: its source place, and its latency when this is its first effect.
    /// Noting an event again in the same pane changes nothing.
    #[inline]
    fn enter_pane(&mut self, w: Window, meta: &Meta) -> usize {
        let first = self.first_effect(meta);
        let update = self.update;
        let i = self.panes.open((w.end, w.start));
        let pane = &mut self.panes.list[i].1;
        if pane.noted != meta.seq {
            pane.noted = meta.seq;
            pane.oldest.note(&meta.pos);
        }
        if first && self.track {
            if update {
                self.pending_events.push((meta.ingest, meta.event_time));
            } else {
                let base = if w.is_global() { meta.event_time } else { w.start };
                pane.lat
                    .get_or_insert_with(|| WindowLatency::new(meta.ingest, base))
                    .note(meta.ingest, meta.event_time);
            }
        }
        i
    }

    #[inline]
    fn add_to_pane(&mut self, w: Window, key: K, value: &T, meta: &Meta) {
        let update = self.update;
        let i = self.enter_pane(w, meta);
        let pane = &mut self.panes.list[i].1;
        // Only update output needs the key after it went into the index.
        let key_copy = update.then(|| key.clone());
        let agg = &self.agg;
        let new = || agg.init();
        // On one shard the key was built a moment ago, and copying it into
        // the index reads it with loads wider than the stores that
        // wrote it, which stall: a key already in the window (almost every
        // one) is looked up by reference instead. A shard's keys come from
        // the router's buffers, long written, where the plain entry is
        // faster (BENCHMARKS.md; measured again with shards on the inlined
        // path for an event's later items: per-event, two shards, 25 MB,
        // 153 ms against 157 ms by reference).
        let entry = if self.shard {
            pane.keys.get_or_insert_with(key, new)
        } else {
            match pane.keys.get_mut(&key) {
                Some(entry) => entry,
                None => pane.keys.get_or_insert_with(key, new),
            }
        };
        let mut entry = entry;
        self.agg.add(entry.acc, value);
        entry.note_time(meta.event_time);
        if let Some(key) = key_copy {
            let dirty = (!self.immediate).then_some(&mut self.dirty_panes);
            changed(&self.agg, entry, (w.end, w.start), key, &mut self.results, dirty);
        }
    }

    #[inline(never)]
    fn add_to_session(&mut self, w: Window, key: K, value: &T, meta: &Meta) {
        let update = self.update;
        let wm = self.watermarks.get();
        // An event is late when neither its own session nor any open session
        // it joins ends after the watermark.
        let open_touching = |s: &Session<A::Acc>| s.window.end > wm && s.window.start < w.end && w.start < s.window.end;
        let joins_open = self.sessions.get(&key).is_some_and(|list| list.iter().any(open_touching));
        if w.end <= wm && !joins_open {
            self.late(key, w.start, w, wm, meta);
            return;
        }
        let first = self.first_effect(meta);
        let list = self.sessions.entry(key.clone()).or_default();
        let mut merged =
            Session { window: w, entry: Entry::new(self.agg.init(), NO_TIME), lat: None, oldest: Oldest::default() };
        merged.oldest.note(&meta.pos);
        // Merge every open session this event touches: events less than the
        // gap apart. Sessions whose end the watermark passed are closed, even
        // if not emitted yet.
        let mut i = 0;
        while i < list.len() {
            let s = &list[i];
            let touches = s.window.start < merged.window.end && merged.window.start < s.window.end;
            if s.window.end > wm && touches {
                let s = list.swap_remove(i);
                self.session_ends.remove(&(s.window.end, key.clone()));
                merged.window.start = merged.window.start.min(s.window.start);
                merged.window.end = merged.window.end.max(s.window.end);
                self.agg.merge(&mut merged.entry.acc, s.entry.acc);
                merged.entry.max_event_time = merged.entry.max_event_time.max(s.entry.max_event_time);
                merged.entry.dirty |= s.entry.dirty;
                merged.oldest.merge(&s.oldest);
                merged.lat = match (merged.lat.take(), s.lat) {
                    (Some(mut a), Some(b)) => {
                        a.merge(b);
                        Some(a)
                    }
                    (a, b) => a.or(b),
                };
            } else {
                i += 1;
            }
        }
        if first && self.track {
            if update {
                self.pending_events.push((meta.ingest, meta.event_time));
            } else {
                merged
                    .lat
                    .get_or_insert_with(|| WindowLatency::new(meta.ingest, w.start))
                    .note(meta.ingest, meta.event_time);
            }
        }
        self.agg.add(&mut merged.entry.acc, value);
        merged.entry.max_event_time = merged.entry.max_event_time.max(meta.event_time);
        self.session_ends.insert((merged.window.end, key.clone()));
        if update {
            if self.immediate {
                let e = &merged.entry;
                self.results.push(result(&self.agg, merged.window, key.clone(), &e.acc, e.max_event_time, false));
            } else if !merged.entry.dirty {
                merged.entry.dirty = true;
                self.dirty_sessions.push(key);
            }
        }
        list.push(merged);
    }

    /// Closes every window whose end the watermark reached. In final output
    /// their results go out; in update output their state is dropped.
    fn close_ripe(&mut self) {
        let wm = self.watermarks.get();
        let final_output = self.config.output == OutputMode::Final;
        if !final_output && !self.immediate {
            // Changes of this batch go out before their windows are dropped.
            self.emit_updates();
        }
        // Per-event mode asks with every event; almost always nothing is
        // ripe, and then nothing else is done.
        let ripe_pane = self.panes.first_end().is_some_and(|end| end <= wm);
        let ripe_session = self.session_ends.first().is_some_and(|&(end, _)| end <= wm);
        if !ripe_pane && !ripe_session {
            return;
        }
        for ((end, start), pane) in self.panes.close_until(wm) {
            let window = Window { start, end };
            let n = pane.keys.len() as u64;
            if final_output {
                for (key, e) in pane.keys {
                    self.results.push(result(&self.agg, window, key, &e.acc, e.max_event_time, true));
                }
            }
            self.pending_windows.push((window, pane.lat, n));
        }
        while let Some(first) = self.session_ends.first() {
            if first.0 > wm {
                break;
            }
            let (end, key) = self.session_ends.pop_first().expect("checked non-empty");
            let Some(list) = self.sessions.get_mut(&key) else {
                continue;
            };
            let Some(i) = list.iter().position(|s| s.window.end == end) else {
                continue;
            };
            let s = list.swap_remove(i);
            if list.is_empty() {
                self.sessions.remove(&key);
            }
            if final_output {
                self.results.push(result(&self.agg, s.window, key, &s.entry.acc, s.entry.max_event_time, true));
            }
            self.pending_windows.push((s.window, s.lat, 1));
        }
    }
}

/// Splits checkpointed window states (one per shard of the run that saved
/// them) by key into `n` parts, `part(key)` naming each key's: what each
/// shard of this run restores, whatever the number of shards that saved
/// them, decoded once. Every part keeps each state's watermark.
pub(crate) fn split_states<K, A>(
    states: Vec<WindowState<K, A>>,
    n: usize,
    part: impl Fn(&K) -> usize,
) -> Vec<Vec<WindowState<K, A>>> {
    let mut out: Vec<Vec<WindowState<K, A>>> = (0..n).map(|_| Vec::with_capacity(states.len())).collect();
    for state in states {
        let mut parts: Vec<WindowState<K, A>> = (0..n)
            .map(|_| WindowState { panes: Vec::new(), sessions: Vec::new(), watermarks: state.watermarks.clone() })
            .collect();
        for pane in state.panes {
            let mut keys: Vec<Vec<(K, Entry<A>)>> = (0..n).map(|_| Vec::new()).collect();
            for (k, e) in pane.keys {
                keys[part(&k).min(n - 1)].push((k, e));
            }
            for (j, keys) in keys.into_iter().enumerate() {
                // Checkpointed panes carry no latency summary and no source
                // places (see `state`).
                parts[j].panes.push(PaneState { window: pane.window, keys, lat: None, oldest: Oldest::default() });
            }
        }
        for (k, list) in state.sessions {
            parts[part(&k).min(n - 1)].sessions.push((k, list));
        }
        for (j, p) in parts.into_iter().enumerate() {
            out[j].push(p);
        }
    }
    out
}

/// The watermark tracker for `config`.
pub(crate) fn watermarks_for(config: &WindowConfig) -> Watermarks {
    Watermarks::new(
        config.watermark_delay.as_nanos().min(i64::MAX as u128) as i64,
        config.idle_timeout.as_nanos().min(u64::MAX as u128) as u64,
    )
}

/// An event's time in `time`'s domain; with `observe`, the watermark moves
/// as the event says. One operator and the router of several shards both
/// move the watermark with this, so that every shard judges lateness
/// against the watermark one operator would have.
#[inline]
pub(crate) fn event_progress(
    time: TimeDomain,
    watermarks: &mut Watermarks,
    clock: &Clock,
    meta: &Meta,
    observe: bool,
) -> EpochNanos {
    match time {
        TimeDomain::Event => {
            // The watermark follows the input's event-time frontier, which
            // lines without a time of their own never move.
            if observe && meta.frontier != NO_TIME {
                watermarks.observe(meta.pos.input, meta.frontier, meta.ingest);
            }
            match meta.event_time {
                NO_TIME => clock.to_wall(meta.ingest),
                t => t,
            }
        }
        TimeDomain::Processing => {
            // Processing time is never late: an item that waited in a queue
            // while its window closed goes to the earliest open one. (A
            // shard's watermark already is this time: the router raised it.)
            let t = clock.to_wall(meta.ingest).max(watermarks.get());
            watermarks.raise(t);
            t
        }
    }
}

/// Time reached monotonic `now` without events: the watermark moves as
/// processing time, or as inputs going idle, allow.
pub(crate) fn advance_watermark(time: TimeDomain, watermarks: &mut Watermarks, clock: &Clock, now: u64) {
    match time {
        TimeDomain::Processing => watermarks.raise(clock.to_wall(now)),
        TimeDomain::Event => watermarks.recompute(now),
    }
}

/// A key's state changed in update output: the change goes out at once
/// into `results` (per-event mode), or, when `dirty` is given (micro-batch
/// mode), the key is marked there once, for the batch's end.
#[inline(always)]
fn changed<K, T, A: Aggregate<T>>(
    agg: &A,
    mut entry: EntryMut<'_, A::Acc>,
    wkey: PaneKey,
    key: K,
    results: &mut Vec<WindowResult<K, A::Out>>,
    dirty: Option<&mut Vec<(PaneKey, K)>>,
) {
    match dirty {
        None => {
            let window = Window { start: wkey.1, end: wkey.0 };
            results.push(result(agg, window, key, entry.acc, entry.max_event_time(), false));
        }
        Some(dirty) => {
            if entry.flag() {
                dirty.push((wkey, key));
            }
        }
    }
}

fn result<K, T, A: Aggregate<T>>(
    agg: &A,
    window: Window,
    key: K,
    acc: &A::Acc,
    max_event_time: EpochNanos,
    is_final: bool,
) -> WindowResult<K, A::Out> {
    WindowResult {
        window,
        key,
        value: agg.result(acc),
        max_event_time: (max_event_time != NO_TIME).then_some(max_event_time),
        is_final,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::Duration;

    use super::*;
    use crate::aggregate::Count;

    /// Feeds (key, event time in ms) items in order, as one input would.
    struct Feeder {
        op: WindowOperator<String, (), Count>,
        seq: u64,
        frontier: EpochNanos,
        out: Vec<WindowResult<String, u64>>,
    }

    impl Feeder {
        fn new(spec: WindowSpec, delay_ms: u64) -> Self {
            let config = WindowConfig::new(spec).event_time(Duration::from_millis(delay_ms));
            Feeder {
                op: WindowOperator::new(config, Count, Clock::new(), true, true),
                seq: 0,
                frontier: NO_TIME,
                out: Vec::new(),
            }
        }

        fn push(&mut self, key: &str, t_ms: i64) {
            let t = t_ms * 1_000_000;
            self.frontier = self.frontier.max(t);
            let meta = Meta {
                seq: self.seq,
                ingest: self.seq,
                event_time: t,
                pos: Position::default(),
                frontier: self.frontier,
            };
            self.seq += 1;
            self.op.process(Keyed { key: key.to_string(), value: () }, &meta);
            self.op.take_results(&mut self.out);
        }

        fn finish(mut self) -> (Vec<(i64, i64, String, u64)>, WindowCounters) {
            self.op.finish();
            self.op.take_results(&mut self.out);
            let mut v: Vec<_> = self
                .out
                .iter()
                .map(|r| (r.window.start / 1_000_000, r.window.end / 1_000_000, r.key.clone(), r.value))
                .collect();
            v.sort();
            (v, self.op.counters())
        }
    }

    /// Events of several items each (keys repeated within an event, keys
    /// new to their window, late events), with a watermark delay longer
    /// than a window so that two panes are open and events alternate
    /// between them. Items after an event's first take
    /// `add_to_event_pane` when their key is known, the rest the general
    /// path; both must give what a naive count per (window, key) gives:
    /// - update output, per-event: one update per counted item, with its
    ///   running total and the latest event time of its (window, key) so
    ///   far, in order;
    /// - update output, micro-batch (a batch per event here): one update per
    ///   (window, key) the batch changed, in the order first changed;
    /// - final output: each window's totals once.
    #[test]
    fn every_item_of_an_event_counts_in_its_own_window_and_key() {
        type Out = Vec<(i64, String, u64, i64)>;
        // (event time ms, words); delay 250 ms, so 80 ms is late once 520 ms went by.
        let events: [(i64, &[&str]); 9] = [
            (10, &["a", "b", "a"]),
            (150, &["b", "c", "b", "b"]),
            (40, &["a", "c", "a", "d"]),
            (160, &["c", "e", "e"]),
            (70, &["a", "d", "b"]),
            (520, &["a", "b"]),
            (80, &["a", "e"]),
            (530, &["e", "e", "a"]),
            (199, &["b", "b"]),
        ];
        let specs = [WindowSpec::Global, WindowSpec::Tumbling { size: Duration::from_millis(100) }];
        for (spec, output, immediate) in specs
            .into_iter()
            .flat_map(|s| [(s, OutputMode::Update, true), (s, OutputMode::Update, false), (s, OutputMode::Final, true)])
        {
            let config = WindowConfig::new(spec).event_time(Duration::from_millis(250)).output(output);
            let mut op: WindowOperator<String, (), Count> =
                WindowOperator::new(config, Count, Clock::new(), immediate, true);
            let (mut out, mut want) = (Vec::new(), Out::new());
            // The model: (count, latest event time) per (window start, key).
            let mut model: HashMap<(i64, String), (u64, i64)> = HashMap::new();
            let (mut frontier, mut late_items) = (NO_TIME, 0);
            let ms = |ns: i64| if ns == Window::GLOBAL.start { ns } else { ns / 1_000_000 };
            for (seq, (t_ms, words)) in events.iter().enumerate() {
                let t = t_ms * 1_000_000;
                frontier = frontier.max(t);
                let meta =
                    Meta { seq: seq as u64, ingest: seq as u64, event_time: t, pos: Position::default(), frontier };
                let start = if spec == WindowSpec::Global { Window::GLOBAL.start } else { t_ms / 100 * 100 };
                let late = spec != WindowSpec::Global && start + 100 <= frontier / 1_000_000 - 250;
                let mut changed: Vec<(i64, String)> = Vec::new();
                for w in *words {
                    op.process(Keyed { key: w.to_string(), value: () }, &meta);
                    if late {
                        late_items += 1;
                        continue;
                    }
                    let e = model.entry((start, w.to_string())).or_insert((0, NO_TIME));
                    *e = (e.0 + 1, e.1.max(*t_ms));
                    if output == OutputMode::Update && immediate {
                        want.push((start, w.to_string(), e.0, e.1));
                    } else if !changed.contains(&(start, w.to_string())) {
                        changed.push((start, w.to_string()));
                    }
                }
                if output == OutputMode::Update && !immediate {
                    op.emit_updates();
                    for (start, w) in changed {
                        let (n, m) = model[&(start, w.clone())];
                        want.push((start, w, n, m));
                    }
                }
                op.take_results(&mut out);
            }
            let what = format!("{spec:?} {output:?} immediate {immediate}");
            if output == OutputMode::Final {
                op.finish();
                op.take_results(&mut out);
                want = model.iter().map(|((start, w), (n, m))| (*start, w.clone(), *n, *m)).collect();
                want.sort();
            }
            // Final output gives only final results (some before the end,
            // as the watermark passes their windows), update output only
            // updates until the end.
            assert!(out.iter().all(|r| r.is_final == (output == OutputMode::Final)), "{what}: {out:?}");
            let mut got: Out = out
                .into_iter()
                .map(|r| (ms(r.window.start), r.key, r.value, r.max_event_time.map_or(NO_TIME, |m| m / 1_000_000)))
                .collect();
            if output == OutputMode::Final {
                got.sort();
            }
            assert_eq!(got, want, "{what}");
            assert_eq!(op.counters().late_items, late_items, "{what}");
            assert_eq!(late_items > 0, spec != WindowSpec::Global, "{what}: the fixture has a late event");
        }
    }

    #[test]
    fn windows_align_to_the_origin() {
        let origin_ms = 250;
        for (spec, want) in [
            (
                WindowSpec::Tumbling { size: Duration::from_secs(1) },
                vec![(-750, 250, "a".to_string(), 1), (250, 1250, "a".to_string(), 2)],
            ),
            (
                WindowSpec::Sliding { size: Duration::from_secs(1), slide: Duration::from_millis(500) },
                vec![
                    (-750, 250, "a".to_string(), 1),
                    (-250, 750, "a".to_string(), 2),
                    (250, 1250, "a".to_string(), 2),
                    (750, 1750, "a".to_string(), 1),
                ],
            ),
        ] {
            let mut f = Feeder::new(spec, 0);
            // An origin far from zero, in whole windows, changes nothing.
            f.op.config.origin = origin_ms * 1_000_000 + 7 * 86_400 * 1_000_000_000;
            for t in [100, 300, 900] {
                f.push("a", t);
            }
            assert_eq!(f.finish().0, want, "{spec}");
        }
    }

    #[test]
    fn state_survives_a_serde_round_trip_mid_stream() {
        let events: Vec<(&str, i64)> =
            (0..400).map(|i| (["a", "b", "c"][i % 3], (i as i64 * 37) % 1000 + i as i64 * 5)).collect();
        for spec in [
            WindowSpec::Tumbling { size: Duration::from_millis(100) },
            WindowSpec::Sliding { size: Duration::from_millis(300), slide: Duration::from_millis(100) },
            WindowSpec::Session { gap: Duration::from_millis(40) },
            WindowSpec::Global,
        ] {
            let mut whole = Feeder::new(spec, 50);
            for (k, t) in &events {
                whole.push(k, *t);
            }
            let mut first = Feeder::new(spec, 50);
            for (k, t) in &events[..200] {
                first.push(k, *t);
            }
            // What a checkpoint writes: the state read in place, encoded
            // exactly as the copy would be.
            let json = serde_json::to_string(&first.op.state_ref()).unwrap();
            assert_eq!(json, serde_json::to_string(&first.op.state()).unwrap(), "{spec}");
            let mut second = Feeder::new(spec, 50);
            second.op.restore(serde_json::from_str(&json).unwrap());
            second.seq = first.seq;
            second.frontier = first.frontier;
            second.out = std::mem::take(&mut first.out);
            for (k, t) in &events[200..] {
                second.push(k, *t);
            }
            let (a, ca) = whole.finish();
            let (b, cb) = second.finish();
            assert_eq!(a, b, "{spec}: results after restore");
            assert_eq!(ca.late_items, cb.late_items + first.op.counters().late_items, "{spec}");
        }
    }

    #[test]
    fn entries_read_in_both_encodings_and_write_the_short_one() {
        let with_time = Entry { acc: 3u64, max_event_time: 5, dirty: false };
        let without = Entry { acc: 4u64, max_event_time: NO_TIME, dirty: false };
        assert_eq!(serde_json::to_string(&with_time).unwrap(), "[3,5]");
        assert_eq!(serde_json::to_string(&without).unwrap(), "[4]");
        for (text, want) in [
            ("[3,5]", &with_time),
            ("[4]", &without),
            // Checkpoint version 2.
            (r#"{"acc":3,"max_event_time":5}"#, &with_time),
            (r#"{"acc":4,"max_event_time":-9223372036854775808}"#, &without),
        ] {
            assert_eq!(&serde_json::from_str::<Entry<u64>>(text).unwrap(), want, "{text}");
        }
    }

    #[test]
    fn split_states_give_every_key_to_its_part_once() {
        // Two shards' states of a tumbling and a session run, split three
        // ways: each key lands in its part only, with its state, and every
        // part keeps each state's watermark.
        for spec in [
            WindowSpec::Tumbling { size: Duration::from_millis(100) },
            WindowSpec::Session { gap: Duration::from_millis(40) },
        ] {
            let keys = ["a", "b", "c", "d", "e", "f", "g"];
            let mut saved = Vec::new();
            for half in [&keys[..4], &keys[4..]] {
                let mut f = Feeder::new(spec, 50);
                for (i, k) in half.iter().enumerate() {
                    for n in 0..=i {
                        f.push(k, 10 + n as i64);
                    }
                }
                saved.push(f.op.state());
            }
            let part = |k: &String| (k.as_bytes()[0] - b'a') as usize % 3;
            let parts = split_states(saved.clone(), 3, part);
            assert_eq!(parts.len(), 3);
            let counted = |states: &[WindowState<String, u64>]| -> Vec<(String, u64)> {
                let mut v: Vec<(String, u64)> = states
                    .iter()
                    .flat_map(|s| {
                        let panes = s.panes.iter().flat_map(|p| p.keys.iter().map(|(k, e)| (k.clone(), e.acc)));
                        let sessions =
                            s.sessions.iter().flat_map(|(k, l)| l.iter().map(move |x| (k.clone(), x.entry.acc)));
                        panes.chain(sessions).collect::<Vec<_>>()
                    })
                    .collect();
                v.sort();
                v
            };
            let all = counted(&saved);
            assert_eq!(all.len(), keys.len(), "{spec}: every key saved");
            let mut rejoined = Vec::new();
            for (j, p) in parts.iter().enumerate() {
                assert_eq!(p.len(), saved.len(), "{spec}: one piece per saved state");
                for (piece, state) in p.iter().zip(&saved) {
                    assert_eq!(piece.watermarks, state.watermarks, "{spec}");
                }
                let mine = counted(p);
                assert!(mine.iter().all(|(k, _)| part(k) == j), "{spec}: part {j} has only its keys: {mine:?}");
                rejoined.extend(mine);
            }
            rejoined.sort();
            assert_eq!(rejoined, all, "{spec}: every key once, with its count");
        }
    }

    /// Per-event mode asks whether anything is ripe with every event and
    /// stops at once when nothing is: each window and session still goes
    /// out with the very event whose watermark reaches its end, never
    /// before, and the panes and sessions left open keep counting.
    #[test]
    fn each_window_closes_with_the_event_that_reaches_its_end() {
        // (key, event time ms, results out after it: (start, end, key, count))
        type Step = (&'static str, i64, &'static [(i64, i64, &'static str, u64)]);
        let tumbling: &[Step] = &[
            ("a", 10, &[]),
            ("b", 50, &[]),
            ("a", 99, &[]),
            ("a", 100, &[(0, 100, "a", 2), (0, 100, "b", 1)]),
            ("a", 150, &[]),
            ("b", 120, &[]),
            ("a", 199, &[]),
            ("c", 350, &[(100, 200, "a", 3), (100, 200, "b", 1)]),
            ("c", 360, &[]),
        ];
        let session: &[Step] = &[
            ("k", 0, &[]),
            ("k", 5, &[]),
            ("j", 12, &[]),
            ("k", 14, &[]),
            // The watermark reaches 24: both sessions end by then, and this
            // event starts a session of its own (one gap after the last).
            ("k", 24, &[(0, 24, "k", 3), (12, 22, "j", 1)]),
            ("j", 30, &[]),
            ("x", 34, &[(24, 34, "k", 1)]),
            ("k", 40, &[(30, 40, "j", 1)]),
        ];
        let cases = [
            (WindowSpec::Tumbling { size: Duration::from_millis(100) }, tumbling, vec![(300, 400, "c".to_string(), 2)]),
            (
                WindowSpec::Session { gap: Duration::from_millis(10) },
                session,
                vec![(34, 44, "x".to_string(), 1), (40, 50, "k".to_string(), 1)],
            ),
        ];
        for (spec, steps, at_end) in cases {
            let mut f = Feeder::new(spec, 0);
            for (i, (key, t, want)) in steps.iter().enumerate() {
                f.push(key, *t);
                let mut got: Vec<_> = f
                    .out
                    .drain(..)
                    .map(|r| (r.window.start / 1_000_000, r.window.end / 1_000_000, r.key, r.value))
                    .collect();
                got.sort();
                let want: Vec<_> = want.iter().map(|&(s, e, k, n)| (s, e, k.to_string(), n)).collect();
                assert_eq!(got, want, "{spec:?}, after event {i} ({key} at {t} ms)");
            }
            let (rest, counters) = f.finish();
            assert_eq!(rest, at_end, "{spec:?}: flushed at the end");
            assert_eq!(counters.late_items, 0, "{spec:?}");
        }
    }

    #[test]
    fn out_of_order_event_inside_an_open_session_joins_it() {
        let mut f = Feeder::new(WindowSpec::Session { gap: Duration::from_millis(10) }, 5);
        for t in [0, 5, 100] {
            f.push("k", t);
        }
        // Session [100, 110) is open and the watermark is 95. Events at 98
        // and 90 arrive out of order; their own windows end after the
        // watermark and touch the open session, so they join it.
        f.push("k", 98);
        f.push("k", 90);
        let (results, counters) = f.finish();
        assert_eq!(results, vec![(0, 15, "k".into(), 2), (90, 110, "k".into(), 3)]);
        assert_eq!(counters.late_items, 0);
    }

    #[test]
    fn session_lateness_is_judged_after_merging() {
        let mut f = Feeder::new(WindowSpec::Session { gap: Duration::from_millis(10) }, 0);
        f.push("k", 100);
        f.push("k", 105); // session [100, 115), watermark 105
        f.push("k", 94); // own window [94, 104) ended at the watermark, but it touches the open session
        f.push("k", 50); // [50, 60): closed and touching nothing open: late
        let (results, counters) = f.finish();
        assert_eq!(results, vec![(94, 115, "k".into(), 3)]);
        assert_eq!(counters.late_items, 1);
    }

    #[test]
    fn events_exactly_one_gap_apart_are_separate_sessions() {
        let mut f = Feeder::new(WindowSpec::Session { gap: Duration::from_millis(10) }, 100);
        f.push("k", 0);
        f.push("k", 10);
        f.push("k", 19);
        let (results, _) = f.finish();
        assert_eq!(results, vec![(0, 10, "k".into(), 1), (10, 29, "k".into(), 2)]);
    }

    #[test]
    fn sliding_windows_take_an_item_in_every_open_window() {
        let mut f =
            Feeder::new(WindowSpec::Sliding { size: Duration::from_millis(30), slide: Duration::from_millis(10) }, 0);
        f.push("a", 25);
        f.push("b", 41); // watermark 41: windows ending at 30 and 40 closed
        f.push("a", 29); // its windows end at 30, 40, 50: only [20, 50) is open
        let (results, counters) = f.finish();
        assert_eq!(
            results,
            vec![
                (0, 30, "a".into(), 1),
                (10, 40, "a".into(), 1),
                (20, 50, "a".into(), 2),
                (20, 50, "b".into(), 1),
                (30, 60, "b".into(), 1),
                (40, 70, "b".into(), 1),
            ]
        );
        assert_eq!((counters.late_items, counters.late_events), (1, 1));
    }

    #[test]
    fn negative_and_extreme_times_do_not_overflow() {
        let mut f = Feeder::new(
            WindowSpec::Sliding { size: Duration::from_secs(3650 * 86_400), slide: Duration::from_secs(86_400) },
            0,
        );
        f.push("old", -(crate::time::MAX_ABS_TIME / 1_000_000));
        f.push("new", crate::time::MAX_ABS_TIME / 1_000_000);
        let (results, counters) = f.finish();
        // 3650 windows each, the earliest and the latest times sluice accepts.
        assert_eq!(results.len(), 2 * 3650);
        assert_eq!(counters.late_items, 0);
    }
}
