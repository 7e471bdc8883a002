//! Sources: where events come from.
//!
//! Each source runs on its own thread and hands the executor
//! [`InputChunk`]s, runs of lines that arrived together, through a bounded
//! channel: a full channel blocks the source, which is the backpressure.
//! Line framing is the `sluice-lines` connector's job; this module adds what
//! the engine needs: ingest time, event time, and the input number.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;

use crossbeam_channel::Sender;

use crate::checkpoint::{CheckpointDir, CheckpointError};
use crate::error::{RunError, SpecError};
pub use crate::record::Buffer;
use crate::record::{Line, Meta, Position};
use crate::time::{Clock, EpochNanos, NO_TIME};

mod event_time;
mod file;
mod follow;
mod generator;
mod kafka;
mod tcp;

pub use event_time::{split_time_field, EventTimeFormat};
pub use file::{describe_io, FileSource, StdinSource};
pub use follow::{FollowOptions, FollowSource};
pub use generator::{Generator, GeneratorConfig, DEMO_TEXT};
pub use kafka::KafkaSource;
pub use tcp::TcpSource;

/// A source as the command line names it.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceSpec {
    /// `file:PATH`.
    File(PathBuf),
    /// `stdin`.
    Stdin,
    /// `tcp:HOST:PORT`: connect and read lines.
    Tcp(String),
    /// `gen[:RATE]`: the built-in generator; no rate means as fast as possible.
    Gen(Option<f64>),
    /// `demo[:RATE]`: the bundled book replayed as a live stream.
    Demo(Option<f64>),
    /// `kafka:BROKERS/TOPIC[,TOPIC...][?group=G&from=earliest|latest|committed]`.
    Kafka(KafkaSpec),
}

/// A Kafka source as the command line names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaSpec {
    /// `host:port[,host:port...]`.
    pub brokers: String,
    /// The topics.
    pub topics: Vec<String>,
    /// The consumer group, if any.
    pub group: Option<String>,
    /// Where to start without a committed offset.
    pub from: sluice_kafka::StartFrom,
}

impl KafkaSpec {
    fn parse(spec: &str, arg: &str) -> Result<Self, SpecError> {
        let bad = |why: &str| {
            SpecError::Invalid(format!(
                "invalid source {spec:?}: {why}; write kafka:BROKERS/TOPIC[,TOPIC...][?group=NAME&from=earliest|latest|committed], like kafka:localhost:9092/logs?group=counts"
            ))
        };
        let (addr, query) = arg.split_once('?').unwrap_or((arg, ""));
        let (brokers, topics) = addr.split_once('/').ok_or_else(|| bad("no topic"))?;
        if brokers.is_empty()
            || brokers
                .split(',')
                .any(|b| b.rsplit_once(':').is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err()))
        {
            return Err(bad("brokers are HOST:PORT, separated by commas"));
        }
        let topics: Vec<String> = topics.split(',').map(str::to_string).collect();
        if topics.iter().any(|t| t.is_empty() || t.contains('/')) {
            return Err(bad("empty or malformed topic name"));
        }
        let mut k = KafkaSpec { brokers: brokers.to_string(), topics, group: None, from: Default::default() };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("group", g)) if !g.is_empty() => k.group = Some(g.to_string()),
                Some(("from", "earliest")) => k.from = sluice_kafka::StartFrom::Earliest,
                Some(("from", "latest")) => k.from = sluice_kafka::StartFrom::Latest,
                Some(("from", "committed")) => k.from = sluice_kafka::StartFrom::Committed,
                _ => return Err(bad(&format!("unknown parameter {pair:?}"))),
            }
        }
        if k.from == sluice_kafka::StartFrom::Committed && k.group.is_none() {
            return Err(bad("from=committed needs a group"));
        }
        Ok(k)
    }
}

fn parse_rate(spec: &str, text: &str) -> Result<Option<f64>, SpecError> {
    if text.is_empty() {
        return Ok(None);
    }
    let (num, mult) = match text.as_bytes()[text.len() - 1] {
        b'k' | b'K' => (&text[..text.len() - 1], 1e3),
        b'm' | b'M' => (&text[..text.len() - 1], 1e6),
        _ => (text, 1.0),
    };
    match num.parse::<f64>() {
        Ok(r) if (0.01..=1e9).contains(&(r * mult)) => Ok(Some(r * mult)),
        _ => Err(SpecError::Invalid(format!(
            "invalid rate in {spec:?}: give lines per second from 0.01 to 1e9, like gen:10000 or gen:50k"
        ))),
    }
}

impl FromStr for SourceSpec {
    type Err = SpecError;
    fn from_str(s: &str) -> Result<Self, SpecError> {
        let (kind, arg) = s.split_once(':').unwrap_or((s, ""));
        match kind {
            "file" if !arg.is_empty() => Ok(SourceSpec::File(PathBuf::from(arg))),
            "stdin" | "-" if arg.is_empty() => Ok(SourceSpec::Stdin),
            "tcp" => {
                let ok = arg.rsplit_once(':').is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
                if !ok {
                    return Err(SpecError::Invalid(format!(
                        "invalid source {s:?}: write tcp:HOST:PORT, like tcp:127.0.0.1:9999"
                    )));
                }
                Ok(SourceSpec::Tcp(arg.to_string()))
            }
            "gen" => Ok(SourceSpec::Gen(parse_rate(s, arg)?)),
            "demo" => Ok(SourceSpec::Demo(parse_rate(s, arg)?)),
            "kafka" => Ok(SourceSpec::Kafka(KafkaSpec::parse(s, arg)?)),
            _ => Err(SpecError::Source(s.to_string())),
        }
    }
}

/// One line of an [`InputChunk`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputLine {
    /// First byte of the text in the chunk's data (after any time field).
    pub start: u32,
    /// One past the last byte of the text.
    pub end: u32,
    /// Byte offset of the line in its input.
    pub offset: u64,
    /// Event time, or [`NO_TIME`].
    pub event_time: EpochNanos,
}

/// [`Feed::send`] on a full queue: the first nap.
const ROOM_NAP_FIRST: std::time::Duration = std::time::Duration::from_micros(50);

/// [`Feed::send`] naps on a full queue of at least this many chunks.
const ROOM_NAP_QUEUE: usize = 16;

/// [`Feed::send`] on a full queue: the longest nap.
const ROOM_NAP_LONGEST: std::time::Duration = std::time::Duration::from_millis(1);

/// [`Feed::send`] on a full queue: the most it naps in all before it waits
/// in the channel (the executor takes half of a queue of 64 KiB chunks in
/// some 25 ms).
const ROOM_NAP_TOTAL: std::time::Duration = std::time::Duration::from_millis(50);

/// Lines that arrived together from one input.
#[derive(Debug, Clone)]
pub struct InputChunk {
    /// Which input.
    pub input: u32,
    /// Ingest time of every line of the chunk (monotonic ns, run clock).
    pub ingest: u64,
    /// The shared buffer.
    pub data: Buffer,
    /// The lines.
    pub lines: Vec<InputLine>,
    /// Input bytes this chunk covers.
    pub bytes: u64,
    /// Lines cut for being too long.
    pub truncated: u32,
    /// Lines whose event time could not be parsed (ingest time was used).
    pub time_fallbacks: u32,
    /// Which file of the input (see [`crate::Position::file`]).
    pub file: u64,
    /// Offset in that file just after the chunk's last line: where reading
    /// would resume once every line of the chunk is acknowledged.
    pub end_offset: u64,
}

impl InputChunk {
    /// The chunk's lines as events, each with its metadata: the first is
    /// event `seq`, and `frontier` is the latest event time its input had
    /// delivered before the chunk ([`Meta::frontier`]).
    pub(crate) fn events(&self, seq: u64, frontier: EpochNanos) -> Events<'_> {
        let pos = Position { input: self.input, file: self.file, offset: 0 };
        let meta = Meta { seq, ingest: self.ingest, event_time: NO_TIME, pos, frontier };
        Events { data: &self.data, lines: self.lines.iter(), meta }
    }
}

/// A chunk's lines with their metadata, made one at a time as they are
/// taken: nothing per line is stored between the source's chunk and the
/// operators (see [`InputChunk::events`]).
pub(crate) struct Events<'a> {
    /// The chunk's buffer.
    data: &'a Buffer,
    /// Its lines not taken yet.
    lines: std::slice::Iter<'a, InputLine>,
    /// The metadata of the next line but for its own fields, and its
    /// sequence number.
    meta: Meta,
}

impl Iterator for Events<'_> {
    type Item = (Line, Meta);

    #[inline(always)]
    fn next(&mut self) -> Option<(Line, Meta)> {
        let l = self.lines.next()?;
        let meta = &mut self.meta;
        meta.event_time = l.event_time;
        meta.pos.offset = l.offset;
        meta.frontier = meta.frontier.max(l.event_time);
        let event = (self.data.line(l.start as usize, l.end as usize), *meta);
        meta.seq += 1;
        Some(event)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.lines.size_hint()
    }
}

/// Takes acknowledgements: every line of an input before a place (file,
/// offset) has had all its effects flushed by the sinks. A source that can
/// resume (a followed file) saves it.
pub trait Acker: Send + Sync {
    /// Everything before `(file, offset)` is acknowledged.
    fn ack(&self, file: u64, offset: u64);

    /// Saves what was acknowledged: now when `force`, otherwise when due.
    /// The executor calls it with `force` at the end of a run only; the
    /// source saves when due on its own thread, so that the executor never
    /// waits for an fsync. An error says the position could not be saved
    /// (the last saved one stays).
    fn save(&self, force: bool) -> Result<(), String>;

    /// With checkpoints: the snapshot being taken holds every line before
    /// `(file, offset)`; that place is for it. By default it is
    /// acknowledged, and [`Acker::staging_done`] stages it.
    fn stage(&self, file: u64, offset: u64) {
        self.ack(file, offset);
    }

    /// With checkpoints: every input's place was given to
    /// [`Acker::stage`]; stage what is not staged yet. By default that is
    /// `save` (a followed file stages rather than writes when checkpoints
    /// are on): the files of a pattern share one list, made once for all of
    /// them, however many files there are.
    fn staging_done(&self) {
        let _ = self.save(true);
    }

    /// With checkpoints: the snapshot with the places staged last is
    /// durable. A source that also tells someone else (Kafka's committed
    /// offsets) does it now, never before.
    fn committed(&self) {}
}

/// What sources send the executor.
pub enum Message {
    /// Lines.
    Chunk(InputChunk),
    /// A source opened another input (a file of a pattern, a partition);
    /// it comes before the input's first chunk.
    Opened(u32, Option<Arc<dyn Acker>>),
    /// An input opened with [`Feed::open_input`] sends nothing more; its
    /// source goes on.
    Closed(u32),
    /// The source of this input (the one it was started with) ended
    /// normally, with every input it opened.
    End(u32),
    /// The source failed; what it sent before is valid.
    Failed(u32, RunError),
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Message::Chunk(c) => f.debug_tuple("Chunk").field(c).finish(),
            Message::Opened(i, a) => f.debug_tuple("Opened").field(i).field(&a.is_some()).finish(),
            Message::Closed(i) => f.debug_tuple("Closed").field(i).finish(),
            Message::End(i) => f.debug_tuple("End").field(i).finish(),
            Message::Failed(i, e) => f.debug_tuple("Failed").field(i).field(e).finish(),
        }
    }
}

/// A source's handle on the executor: sends chunks, tells the time, and
/// says when to stop.
#[derive(Clone)]
pub struct Feed {
    /// The bounded channel to the executor.
    tx: Sender<Message>,
    /// The run's clock, for ingest times.
    clock: Clock,
    /// Set when the run is stopping (Ctrl-C, or the executor ended).
    stop: Arc<AtomicBool>,
    /// This source's input number.
    input: u32,
    /// The next input number to hand out, shared by every source of the run.
    next_input: Arc<AtomicU32>,
    /// How to find event times.
    event_time: EventTimeFormat,
    /// True when the executor takes each line as it comes (per-event
    /// mode): see [`Feed::precise_pacing`].
    precise: bool,
}

impl Feed {
    pub(crate) fn new(
        tx: Sender<Message>,
        clock: Clock,
        stop: Arc<AtomicBool>,
        input: u32,
        next_input: Arc<AtomicU32>,
        event_time: EventTimeFormat,
    ) -> Self {
        Feed { tx, clock, stop, input, next_input, event_time, precise: false }
    }

    /// Says whether the executor takes each line as it comes (per-event
    /// mode) or waits for a batch boundary (micro-batch mode).
    pub(crate) fn with_precise_pacing(mut self, precise: bool) -> Self {
        self.precise = precise;
        self
    }

    /// True when a source that sends at a fixed rate should send each
    /// line at its intended time to the microsecond, polling the clock for
    /// it: the executor takes lines as they come (per-event mode), and a
    /// line sent late would count as the engine's latency. False in
    /// micro-batch mode, where a line waits for the batch boundary anyway:
    /// sleeping until it is due, which here wakes some 50 µs late, leaves
    /// the core to the engine.
    pub fn precise_pacing(&self) -> bool {
        self.precise
    }

    /// Opens another input for this source: a stream of its own, with its
    /// own positions (acknowledged to `acker`) and its own event-time
    /// frontier, like a file of a pattern or a Kafka partition. Returns a
    /// feed sending as that input, or `None` when the run no longer takes
    /// input. End it with [`Feed::close_input`].
    pub fn open_input(&self, acker: Option<Arc<dyn Acker>>) -> Option<Feed> {
        let input = self.next_input.fetch_add(1, Ordering::Relaxed);
        self.tx.send(Message::Opened(input, acker)).ok()?;
        Some(Feed { input, ..self.clone() })
    }

    /// Says that this input, opened with [`Feed::open_input`], sends
    /// nothing more.
    pub fn close_input(&self) -> bool {
        self.tx.send(Message::Closed(self.input)).is_ok()
    }

    /// The run's clock.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// True once the run is stopping; sources should return soon.
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// The flag behind [`Feed::stopping`], for mechanisms that poll it.
    pub fn stop_flag(&self) -> &AtomicBool {
        &self.stop
    }

    /// This source's input number.
    pub fn input(&self) -> u32 {
        self.input
    }

    /// Sends a framed chunk, stamping its ingest time now and finding event
    /// times. Returns false when the run no longer takes input or is
    /// stopping (see [`Feed::send`]).
    pub fn send_lines(&self, chunk: sluice_lines::Chunk, bytes: u64, truncated: u32) -> bool {
        self.send_file_lines(chunk, 0, bytes, truncated)
    }

    /// Like [`Feed::send_lines`], for lines of file number `file` of this
    /// input (see [`crate::Position::file`]).
    pub fn send_file_lines(&self, chunk: sluice_lines::Chunk, file: u64, bytes: u64, truncated: u32) -> bool {
        let ingest = self.clock.now();
        let mut fallbacks = 0;
        let lines = chunk
            .lines
            .iter()
            .map(|span| {
                let mut line = InputLine { start: span.start, end: span.end, offset: span.offset, event_time: NO_TIME };
                if self.event_time != EventTimeFormat::None {
                    fallbacks += self.stamp(&mut line, chunk.text(span), ingest);
                }
                line
            })
            .collect();
        self.send(InputChunk {
            input: self.input,
            ingest,
            file,
            end_offset: chunk.end_offset,
            data: Buffer::check(chunk.data),
            lines,
            bytes,
            truncated,
            time_fallbacks: fallbacks,
        })
    }

    /// Sends a chunk as is. Returns false when the run no longer takes
    /// input, or is stopping: then the chunk sent (if it was) is the last
    /// one, so that a source reading a long backlog stops at once.
    ///
    /// When the queue is full, the executor is behind: the source naps
    /// until the executor has taken half of the queue, and only then waits
    /// in the channel. A source blocked in the channel is woken by every
    /// chunk the executor takes, and refills the one free place: a
    /// wake-up (a futex call, and on a VM an interrupt to the other core)
    /// per chunk on the executor's thread, 1.71% of the samples of a
    /// one-thread word count of a file (BENCHMARKS.md), and a sleep and a
    /// wake-up per chunk on the source's. The naps end after
    /// [`ROOM_NAP_TOTAL`] in all: a source is never held back long behind
    /// another that keeps the queue half full, and one whose executor is
    /// gone (a panic leaves the stop flag unset) finds the channel closed.
    pub fn send(&self, chunk: InputChunk) -> bool {
        let msg = match self.tx.try_send(Message::Chunk(chunk)) {
            Ok(()) => return !self.stopping(),
            Err(crossbeam_channel::TrySendError::Full(msg)) => msg,
            Err(crossbeam_channel::TrySendError::Disconnected(_)) => return false,
        };
        self.wait_for_room();
        self.tx.send(msg).is_ok() && !self.stopping()
    }

    /// Naps until the executor's queue is at most half full, or the run
    /// stops; each nap twice the one before, from 50 µs up to 1 ms, so
    /// that a queue of small chunks, taken quickly, is not left to run
    /// dry, and a queue of large ones costs a few wake-ups.
    /// A queue shorter than [`ROOM_NAP_QUEUE`] is waited on in the channel
    /// at once: its half would be drained before a nap ended.
    fn wait_for_room(&self) {
        let Some(capacity) = self.tx.capacity().filter(|&c| c >= ROOM_NAP_QUEUE) else { return };
        let mut nap = ROOM_NAP_FIRST;
        let mut napped = std::time::Duration::ZERO;
        while self.tx.len() > capacity / 2 && !self.stopping() && napped < ROOM_NAP_TOTAL {
            std::thread::sleep(nap);
            napped += nap;
            nap = (nap * 2).min(ROOM_NAP_LONGEST);
        }
    }

    /// Sends a chunk if the executor's queue has room, without waiting.
    pub fn try_send(&self, chunk: InputChunk) -> TrySend {
        match self.tx.try_send(Message::Chunk(chunk)) {
            Ok(()) => TrySend::Sent,
            Err(crossbeam_channel::TrySendError::Full(Message::Chunk(c))) => TrySend::Full(c),
            Err(_) => TrySend::Closed,
        }
    }

    /// How event times are found in line text.
    pub fn event_time_format(&self) -> &EventTimeFormat {
        &self.event_time
    }

    /// Sets `line`'s event time from its text (`--event-time`), skipping a
    /// time at its start. Returns 1 for a fallback: no time found, so the
    /// line keeps its ingest time for window assignment but never moves the
    /// watermark. Blank lines have nothing to count and are not fallbacks.
    pub fn stamp(&self, line: &mut InputLine, text: &[u8], ingest: u64) -> u32 {
        match self.event_time.find(text, self.clock.to_wall(ingest)) {
            Some((t, skip)) => {
                line.event_time = t;
                line.start += skip as u32;
                0
            }
            None => u32::from(!text.iter().all(u8::is_ascii_whitespace)),
        }
    }
}

/// What [`Feed::try_send`] did.
#[derive(Debug)]
pub enum TrySend {
    /// Sent.
    Sent,
    /// The queue is full: the chunk is handed back.
    Full(InputChunk),
    /// The run no longer takes input.
    Closed,
}

/// A source of lines.
pub trait Source: Send + 'static {
    /// The source as the user named it, for messages.
    fn name(&self) -> String;

    /// Reads until the input ends or [`Feed::stopping`], sending chunks.
    /// An error ends this input; what was sent before it stands.
    fn run(self: Box<Self>, feed: Feed) -> Result<(), RunError>;

    /// Where acknowledgements go, for a source that saves its position.
    fn acker(&self) -> Option<Arc<dyn Acker>> {
        None
    }

    /// Whether it can resume from positions saved in a checkpoint (a
    /// followed file); checkpoints are refused for runs with other sources.
    fn resumable(&self) -> bool {
        false
    }

    /// How much it will deliver in all, when known in advance (a file read
    /// to its end, a bounded generator), for the progress line.
    fn extent(&self) -> Option<crate::metrics::Extent> {
        None
    }

    /// Where the source tells which clock its event times are on (like
    /// Kafka's CreateTime), once it knows, for the report.
    fn event_time_clock(&self) -> Option<Arc<std::sync::Mutex<Option<&'static str>>>> {
        None
    }

    /// The source as a state machine the executor's own thread can drive,
    /// between events, instead of a thread of its own (the way Flink chains
    /// a source with its operators), for input `input` on `clock`. Only a
    /// source that never blocks can be chained: the generator; the others
    /// say `None`. A source that gave its machine is not run.
    fn chained(&mut self, clock: Clock, input: u32) -> Option<Box<dyn Chained>> {
        let _ = (clock, input);
        None
    }
}

/// A source driven by the executor's thread (see [`Source::chained`]).
pub trait Chained: Send {
    /// What is due at monotonic `now`. Never blocks.
    fn poll(&mut self, now: u64) -> Poll;
}

/// What a [`Chained`] source has at a time.
#[derive(Debug)]
pub enum Poll {
    /// Lines that are due.
    Lines(InputChunk),
    /// Nothing is due before this monotonic time.
    Until(u64),
    /// The input ended.
    End,
}

/// The options sources are built with.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceOptions {
    /// Stop at the end of a file rather than follow it.
    pub no_follow: bool,
    /// How to follow a file.
    pub follow: FollowOptions,
    /// The checkpoint directory followed files resume from and stage their
    /// positions in.
    pub checkpoint: Option<CheckpointDir>,
    /// Longest line before it is cut, in bytes.
    pub max_line: usize,
    /// The generator's settings (also used by `demo`).
    pub generator: GeneratorConfig,
    /// Kafka client settings.
    pub kafka: crate::config::KafkaOptions,
}

impl Default for SourceOptions {
    /// Follow files from their end, 1 MiB lines, default generator and Kafka
    /// settings, no checkpoint directory.
    fn default() -> Self {
        SourceOptions {
            no_follow: false,
            follow: FollowOptions::default(),
            checkpoint: None,
            max_line: sluice_lines::DEFAULT_MAX_LINE,
            generator: GeneratorConfig::default(),
            kafka: crate::config::KafkaOptions::default(),
        }
    }
}

impl SourceSpec {
    /// Makes the running source: a `file:` source follows the file unless
    /// `no_follow` is set. Fails when the checkpoint directory is unusable.
    pub fn build(&self, opts: &SourceOptions) -> Result<Box<dyn Source>, CheckpointError> {
        Ok(match self {
            SourceSpec::File(path) if opts.no_follow => Box::new(FileSource::new(path.clone(), opts.max_line)),
            SourceSpec::File(path) => {
                Box::new(FollowSource::new(path.clone(), opts.follow, opts.max_line, opts.checkpoint.as_ref())?)
            }
            SourceSpec::Stdin => Box::new(StdinSource::new(opts.max_line)),
            SourceSpec::Tcp(addr) => Box::new(TcpSource::new(addr.clone(), opts.max_line)),
            SourceSpec::Gen(rate) => {
                Box::new(Generator::words(GeneratorConfig { rate: *rate, ..opts.generator.clone() }))
            }
            SourceSpec::Demo(rate) => {
                Box::new(Generator::demo(GeneratorConfig { rate: *rate, ..opts.generator.clone() }))
            }
            SourceSpec::Kafka(spec) => Box::new(KafkaSource::new(spec.clone(), opts)),
        })
    }
}

/// Reads a bounded source (a Kafka topic with `--no-follow`: up to the end
/// offsets seen at start) to its end, into one buffer of its lines, each
/// ended by `\n`, in the order they arrived: what `sluice compare` replays
/// for every mode. The whole input is held in memory.
pub fn record(spec: &SourceSpec, opts: &SourceOptions) -> Result<bytes::Bytes, RunError> {
    let mut opts = opts.clone();
    opts.no_follow = true;
    let source = spec.build(&opts)?;
    let (tx, rx) = crossbeam_channel::bounded(64);
    let stop = Arc::new(AtomicBool::new(false));
    let feed = Feed::new(tx.clone(), Clock::new(), stop, 0, Arc::new(AtomicU32::new(1)), EventTimeFormat::None);
    let reader = std::thread::Builder::new()
        .name("record".into())
        .spawn(move || {
            let msg = match source.run(feed) {
                Ok(()) => Message::End(0),
                Err(e) => Message::Failed(0, e),
            };
            let _ = tx.send(msg);
        })
        .map_err(|e| RunError::Worker { message: format!("cannot start a thread: {e}") })?;
    let mut out = Vec::new();
    let mut result = Ok(());
    for msg in rx {
        match msg {
            Message::Chunk(c) => {
                for l in &c.lines {
                    out.extend_from_slice(&c.data[l.start as usize..l.end as usize]);
                    out.push(b'\n');
                }
            }
            Message::End(_) => break,
            Message::Failed(_, e) => {
                result = Err(e);
                break;
            }
            Message::Opened(..) | Message::Closed(_) => {}
        }
    }
    let _ = reader.join();
    result.map(|()| bytes::Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_specs() {
        assert_eq!("file:a.txt".parse::<SourceSpec>().unwrap(), SourceSpec::File("a.txt".into()));
        assert_eq!("stdin".parse::<SourceSpec>().unwrap(), SourceSpec::Stdin);
        assert_eq!("tcp:localhost:9".parse::<SourceSpec>().unwrap(), SourceSpec::Tcp("localhost:9".into()));
        assert_eq!("gen".parse::<SourceSpec>().unwrap(), SourceSpec::Gen(None));
        assert_eq!("gen:50k".parse::<SourceSpec>().unwrap(), SourceSpec::Gen(Some(50_000.0)));
        for bad in
            ["file:", "tcp:host", "tcp:host:http", "gen:-5", "gen:fast", "gen:1e-12", "gen:5000M", "kafka", "ftp:x"]
        {
            assert!(bad.parse::<SourceSpec>().is_err(), "{bad}");
        }
    }

    /// Each line comes with its own metadata: numbered on from `seq`, its
    /// offset and event time, and its input's frontier up to and
    /// including it, from the frontier before the chunk.
    #[test]
    fn a_chunks_events_carry_each_lines_metadata() {
        let data = Buffer::check(bytes::Bytes::from_static(b"a b\n\nc\nd e\n"));
        let spans = [(0, 3, 5), (4, 4, NO_TIME), (5, 6, 3), (7, 10, 9)];
        let lines = spans
            .iter()
            .map(|&(start, end, event_time)| InputLine { start, end, offset: 100 + start as u64, event_time })
            .collect();
        let chunk = InputChunk {
            input: 2,
            ingest: 77,
            data,
            lines,
            bytes: 10,
            truncated: 0,
            time_fallbacks: 0,
            file: 4,
            end_offset: 110,
        };
        let events: Vec<(String, Meta)> =
            chunk.events(40, 4).map(|(line, meta)| (line.text().into_owned(), meta)).collect();
        let texts: Vec<&str> = events.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(texts, ["a b", "", "c", "d e"]);
        let metas: Vec<(u64, u64, i64, i64)> =
            events.iter().map(|(_, m)| (m.seq, m.pos.offset, m.event_time, m.frontier)).collect();
        assert_eq!(metas, [(40, 100, 5, 5), (41, 104, NO_TIME, 5), (42, 105, 3, 5), (43, 107, 9, 9)]);
        for (_, m) in &events {
            assert_eq!((m.ingest, m.pos.input, m.pos.file), (77, 2, 4));
        }
    }

    #[test]
    fn time_field_is_split_off() {
        assert_eq!(split_time_field(b"1700000000 hello"), Some((1_700_000_000_000_000_000, 11)));
        assert_eq!(split_time_field(b"1700000000\t\thello"), Some((1_700_000_000_000_000_000, 12)));
        assert_eq!(split_time_field(b"1700000000"), Some((1_700_000_000_000_000_000, 10)));
        assert_eq!(split_time_field(b"hello 1700000000"), None);
    }
}
