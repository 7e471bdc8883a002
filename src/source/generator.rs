//! The built-in generator, and the demo that replays a bundled book.
//!
//! Both send lines at a fixed rate. Line `i` has the intended send time
//! `start + i / rate`, and that is its event time: latency measured from it
//! includes any time the generator itself fell behind, which corrects for
//! coordinated omission. Lines that are due together are sent together.

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};

use super::{Buffer, Chained, Feed, InputChunk, InputLine, Poll, Source};
use crate::error::RunError;
use crate::metrics::Extent;
use crate::time::{Clock, EpochNanos, PRECISE_SPIN};

/// The book `sluice run` replays when given no source: Moby Dick, from
/// Project Gutenberg (public domain in the USA; its licence is inside).
pub const DEMO_TEXT: &str = include_str!("../../tests/fixtures/moby-dick.txt");

/// Most lines in one chunk when running flat out.
const MAX_CHUNK_LINES: u64 = 1024;

/// Settings of the generator.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneratorConfig {
    /// Lines per second; `None` is as fast as possible.
    pub rate: Option<f64>,
    /// Words per generated line.
    pub words_per_line: usize,
    /// Seed of the word draw, so runs can be repeated.
    pub seed: u64,
    /// Stop after this many lines.
    pub count: Option<u64>,
    /// Stop after this long (by intended send time).
    pub duration: Option<Duration>,
    /// The intended send time of the first line (wall clock); `None` is
    /// at once. `sluice compare` starts every mode's generator at the same
    /// phase of the window grid with it.
    pub start_at: Option<EpochNanos>,
    /// Stop this long after the first line's intended send time, even with
    /// lines still due: `sluice sweep` sets it, so that a rate far above
    /// what sluice can take ends in bounded time instead of sending every
    /// overdue line.
    pub deadline: Option<Duration>,
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        GeneratorConfig {
            rate: None,
            words_per_line: 8,
            seed: 42,
            count: None,
            duration: None,
            start_at: None,
            deadline: None,
        }
    }
}

/// A fixed vocabulary; rank order gives the Zipf frequencies.
const VOCABULARY: &[&str] = &[
    "the",
    "of",
    "and",
    "to",
    "a",
    "in",
    "is",
    "that",
    "for",
    "it",
    "as",
    "was",
    "with",
    "be",
    "by",
    "on",
    "not",
    "he",
    "this",
    "are",
    "or",
    "his",
    "from",
    "at",
    "which",
    "but",
    "have",
    "an",
    "had",
    "they",
    "you",
    "were",
    "their",
    "one",
    "all",
    "we",
    "can",
    "her",
    "has",
    "there",
    "been",
    "if",
    "more",
    "when",
    "will",
    "would",
    "who",
    "so",
    "no",
    "she",
    "other",
    "its",
    "may",
    "these",
    "about",
    "them",
    "what",
    "some",
    "out",
    "time",
    "into",
    "only",
    "do",
    "could",
    "new",
    "up",
    "two",
    "than",
    "first",
    "then",
    "any",
    "my",
    "like",
    "now",
    "over",
    "such",
    "our",
    "man",
    "me",
    "even",
    "most",
    "made",
    "after",
    "also",
    "did",
    "many",
    "before",
    "must",
    "through",
    "back",
    "years",
    "where",
    "much",
    "your",
    "way",
    "well",
    "down",
    "should",
    "because",
    "each",
    "just",
    "those",
    "people",
    "how",
    "too",
    "little",
    "state",
    "good",
    "very",
    "make",
    "world",
    "still",
    "own",
    "see",
    "men",
    "work",
    "long",
    "get",
    "here",
    "between",
    "both",
    "life",
    "being",
    "under",
    "never",
    "day",
    "same",
    "another",
    "know",
    "while",
    "last",
    "might",
    "us",
    "great",
    "old",
    "year",
    "off",
    "come",
    "since",
    "against",
    "go",
    "came",
    "right",
    "used",
    "take",
    "three",
    "stream",
    "window",
    "batch",
    "event",
    "latency",
    "whale",
    "sea",
    "ship",
    "captain",
    "harpoon",
    "ocean",
    "storm",
    "river",
    "sluice",
    "water",
    "gate",
    "flow",
    "count",
    "word",
    "log",
    "topic",
    "broker",
    "partition",
    "offset",
    "watermark",
    "session",
    "tumble",
    "slide",
    "sink",
    "source",
    "kafka",
    "spark",
    "spout",
    "micro",
    "second",
    "millisecond",
    "record",
];

/// Where the generator's lines come from.
#[derive(Clone)]
enum Lines {
    /// Random words drawn with Zipf frequencies.
    Words {
        /// Cumulative weights, scaled to `u64`, one per vocabulary word.
        cdf: Vec<u64>,
        /// xorshift64* state.
        rng: u64,
        /// Words per line.
        per_line: usize,
    },
    /// The lines of a text, in order, once.
    Text {
        /// The whole text.
        data: Bytes,
        /// Where the next line starts.
        at: usize,
    },
}

/// The generator source.
#[derive(Clone)]
pub struct Generator {
    /// Settings.
    config: GeneratorConfig,
    /// What it sends.
    lines: Lines,
    /// Name for messages.
    name: String,
}

impl Generator {
    /// Random words from the built-in vocabulary, each line prefixed with its
    /// intended send time in Unix ns.
    pub fn words(config: GeneratorConfig) -> Self {
        let weights: Vec<f64> = (1..=VOCABULARY.len()).map(|r| 1.0 / (r as f64).powf(1.07)).collect();
        let total: f64 = weights.iter().sum();
        let mut acc = 0.0;
        let cdf = weights
            .iter()
            .map(|w| {
                acc += w / total;
                (acc.min(1.0) * u64::MAX as f64) as u64
            })
            .collect();
        let rng = config.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let per_line = config.words_per_line;
        Generator { config, lines: Lines::Words { cdf, rng, per_line }, name: "gen".into() }
    }

    /// The bundled book, line by line, with the intended send time as event
    /// time (the text itself carries no time field).
    pub fn demo(config: GeneratorConfig) -> Self {
        Self::replay(config, "demo", Bytes::from_static(DEMO_TEXT.as_bytes()))
    }

    /// The lines of `text` (a recorded file, say), in order, once, each
    /// with its intended send time as event time. A UTF-8 byte-order mark
    /// at the start and `\r` before each newline are left out.
    pub fn replay(config: GeneratorConfig, name: &str, text: Bytes) -> Self {
        let at = if text.starts_with("\u{FEFF}".as_bytes()) { 3 } else { 0 };
        Generator { config, lines: Lines::Text { data: text, at }, name: name.to_string() }
    }

    /// Appends one line to `buf` (without newline); returns the text's start
    /// within the line, or `None` when the text ran out.
    fn next_line(&mut self, buf: &mut BytesMut, intended: i64) -> Option<usize> {
        match &mut self.lines {
            Lines::Words { cdf, rng, per_line } => {
                let digits = push_u64(buf, intended.max(0) as u64);
                for _ in 0..*per_line {
                    // xorshift64*
                    *rng ^= *rng >> 12;
                    *rng ^= *rng << 25;
                    *rng ^= *rng >> 27;
                    let r = rng.wrapping_mul(0x2545_F491_4F6C_DD1D);
                    let i = cdf.partition_point(|&c| c < r).min(VOCABULARY.len() - 1);
                    buf.put_u8(b' ');
                    buf.put_slice(VOCABULARY[i].as_bytes());
                }
                Some(digits + 1)
            }
            Lines::Text { data, at } => {
                let rest = data.get(*at..).filter(|r| !r.is_empty())?;
                let (line, used) = match rest.iter().position(|&b| b == b'\n') {
                    Some(i) => (&rest[..i], i + 1),
                    None => (rest, rest.len()),
                };
                *at += used;
                buf.put_slice(line.strip_suffix(b"\r").unwrap_or(line));
                Some(0)
            }
        }
    }
}

/// Writes `v` in decimal; returns the number of digits.
fn push_u64(buf: &mut BytesMut, mut v: u64) -> usize {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    buf.put_slice(&tmp[i..]);
    tmp.len() - i
}

impl Source for Generator {
    fn name(&self) -> String {
        match self.config.rate {
            Some(r) => format!("{}:{r}", self.name),
            None => self.name.to_string(),
        }
    }

    fn extent(&self) -> Option<Extent> {
        let c = &self.config;
        // A paced generator sends `rate` lines a second until its duration
        // ends, unless its count ends it first.
        let timed = c.duration.map(|d| match c.rate {
            Some(r) => Extent::Lines((r * d.as_secs_f64()).ceil() as u64),
            None => Extent::Time(d),
        });
        match (c.count, timed) {
            (Some(n), Some(Extent::Lines(m))) => Some(Extent::Lines(n.min(m))),
            (Some(n), _) => Some(Extent::Lines(n)),
            (None, timed) => timed,
        }
    }

    fn run(self: Box<Self>, feed: Feed) -> Result<(), RunError> {
        let clock = *feed.clock();
        let mut pacer = Pacer::new(*self, clock, feed.input(), false);
        // In micro-batch mode a line waits for the boundary anyway: polling
        // the clock would take a core from the engine (at 20,000 lines/s,
        // all of one) and change nothing but the line's source wait.
        let spin = if feed.precise_pacing() { PRECISE_SPIN } else { 0 };
        while !feed.stopping() {
            match pacer.poll(clock.now()) {
                Poll::Lines(chunk) => {
                    if !feed.send(chunk) {
                        break;
                    }
                }
                Poll::Until(at) => clock.wait_until(at, spin),
                Poll::End => break,
            }
        }
        Ok(())
    }

    fn chained(&mut self, clock: Clock, input: u32) -> Option<Box<dyn Chained>> {
        Some(Box::new(Pacer::new(self.clone(), clock, input, true)))
    }
}

/// The generator as a state machine: asked at a time, it hands over the
/// lines due by then, or says when the next one is due. Its own thread
/// drives it ([`Source::run`]), or, chained, the executor's.
struct Pacer {
    /// What it sends.
    generator: Generator,
    /// The run's clock.
    clock: Clock,
    /// Its input number.
    input: u32,
    /// The intended send time of line 0 (monotonic); `None` until the
    /// first poll when it starts at once.
    start: Option<u64>,
    /// Nanoseconds between lines; `None` is as fast as possible.
    period: Option<f64>,
    /// Lines to send in all.
    limit: u64,
    /// Lines sent so far.
    sent: u64,
    /// Input bytes sent so far (the next line's offset).
    offset: u64,
    /// The text the next lines are written into.
    buf: BytesMut,
    /// Set once the lines ran out (count, duration or text).
    exhausted: bool,
    /// Driven by the executor: a chunk's ingest time is when its last
    /// line was due (when a source thread that is never late would have
    /// sent it), not when the executor got round to asking, so that the
    /// time lines wait for a busy executor counts as queueing (processing
    /// latency), as it does behind a source thread's queue. On its own
    /// thread, a chunk is stamped when it is sent.
    chained: bool,
}

impl Pacer {
    fn new(generator: Generator, clock: Clock, input: u32, chained: bool) -> Self {
        let config = &generator.config;
        Pacer {
            // Event times count from `start_at` exactly, even when the run
            // started so late that the first lines are already overdue.
            start: config.start_at.map(|wall| clock.to_mono(wall)),
            period: config.rate.map(|r| 1e9 / r),
            limit: config.count.unwrap_or(u64::MAX),
            sent: 0,
            offset: 0,
            buf: BytesMut::with_capacity(64 * 1024),
            exhausted: false,
            chained,
            clock,
            input,
            generator,
        }
    }
}

impl Chained for Pacer {
    fn poll(&mut self, now: u64) -> Poll {
        if self.exhausted || self.sent >= self.limit {
            return Poll::End;
        }
        let start = *self.start.get_or_insert(now);
        if now < start {
            return Poll::Until(start);
        }
        let config = &self.generator.config;
        let end = config.duration.map(|d| start.saturating_add(d.as_nanos() as u64));
        let deadline = config.deadline.map(|d| start.saturating_add(d.as_nanos() as u64));
        let base_wall = config.start_at;
        if end.is_some_and(|e| now >= e) && self.period.is_none() {
            return Poll::End;
        }
        if deadline.is_some_and(|d| now >= d) {
            tracing::debug!(sent = self.sent, "the generator's deadline passed: stopping with lines still due");
            return Poll::End;
        }
        // How many lines are due now.
        let i = self.sent;
        let due = match self.period {
            Some(p) => ((now - start) as f64 / p) as u64 + 1,
            None => i + MAX_CHUNK_LINES,
        };
        if due <= i {
            return Poll::Until(start + (i as f64 * self.period.unwrap_or(0.0)) as u64);
        }
        let n = (due - i).min(self.limit - i).min(16 * MAX_CHUNK_LINES);
        let mut lines = Vec::with_capacity(n as usize);
        let mut last_due = now;
        for k in i..i + n {
            let intended = match self.period {
                Some(p) => start + (k as f64 * p) as u64,
                None => now,
            };
            if end.is_some_and(|e| intended >= e) {
                self.exhausted = true;
                break;
            }
            let event_time = match (base_wall, self.period) {
                (Some(base), Some(p)) => base + (k as f64 * p) as i64,
                _ => self.clock.to_wall(intended),
            };
            let line_start = self.buf.len();
            let Some(text_at) = self.generator.next_line(&mut self.buf, event_time) else {
                self.exhausted = true;
                break;
            };
            lines.push(InputLine {
                start: (line_start + text_at) as u32,
                end: self.buf.len() as u32,
                offset: self.offset,
                event_time,
            });
            self.buf.put_u8(b'\n');
            self.offset += (self.buf.len() - line_start) as u64;
            last_due = intended;
        }
        self.sent += lines.len() as u64;
        if lines.is_empty() {
            return Poll::End;
        }
        let data = self.buf.split().freeze();
        if self.buf.capacity() < 4096 {
            self.buf.reserve(64 * 1024);
        }
        Poll::Lines(InputChunk {
            input: self.input,
            ingest: if self.chained { last_due.min(self.clock.now()) } else { self.clock.now() },
            bytes: data.len() as u64,
            data: Buffer::check(data),
            lines,
            truncated: 0,
            time_fallbacks: 0,
            file: 0,
            end_offset: self.offset,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the progress line counts to: lines when a count or a pace
    /// bounds them, the duration of an unpaced generator, nothing for an
    /// endless one.
    #[test]
    fn a_bounded_generator_says_how_much_it_will_send() {
        let extent = |rate, count, secs: Option<u64>| {
            Generator::words(GeneratorConfig {
                rate,
                count,
                duration: secs.map(Duration::from_secs),
                ..Default::default()
            })
            .extent()
        };
        assert_eq!(extent(None, Some(500), None), Some(Extent::Lines(500)));
        assert_eq!(extent(Some(1000.0), None, Some(3)), Some(Extent::Lines(3000)));
        assert_eq!(extent(Some(1000.0), Some(500), Some(3)), Some(Extent::Lines(500)), "the count ends it first");
        assert_eq!(extent(Some(100.0), Some(500), Some(3)), Some(Extent::Lines(300)), "the duration ends it first");
        assert_eq!(extent(None, None, Some(3)), Some(Extent::Time(Duration::from_secs(3))));
        assert_eq!(extent(Some(1000.0), None, None), None);
    }

    #[test]
    fn the_pacer_hands_over_what_is_due_and_says_when_the_next_line_is() {
        let clock = Clock::new();
        let start_wall = clock.to_wall(clock.now());
        let start = clock.to_mono(start_wall);
        let config =
            GeneratorConfig { rate: Some(1000.0), count: Some(5), start_at: Some(start_wall), ..Default::default() };
        let mut pacer = Pacer::new(Generator::words(config), clock, 7, true);
        // The polls below ask about times that have passed.
        std::thread::sleep(std::time::Duration::from_millis(5));
        // 2.5 ms in: lines 0, 1 and 2 are due, one a millisecond.
        let Poll::Lines(first) = pacer.poll(start + 2_500_000) else { panic!("lines are due") };
        assert_eq!(first.input, 7);
        assert_eq!(first.lines.len(), 3);
        // Chained, the chunk was ingested when its last line was due.
        assert_eq!(first.ingest, start + 2_000_000);
        let mut offset = 0;
        for (k, line) in first.lines.iter().enumerate() {
            assert_eq!(line.event_time, start_wall + k as i64 * 1_000_000);
            assert_eq!(line.offset, offset);
            // The text is the words after the line's send time.
            let text = &first.data[line.start as usize..line.end as usize];
            assert_eq!(text.split(|&b| b == b' ').count(), 8);
            offset = u64::from(line.end) + 1 - first.lines[0].offset;
        }
        assert_eq!(first.end_offset, first.data.len() as u64);
        // Nothing more before line 3's time, 3 ms in.
        assert!(matches!(pacer.poll(start + 2_600_000), Poll::Until(t) if t == start + 3_000_000));
        let Poll::Lines(rest) = pacer.poll(start + 60_000_000) else { panic!("lines are due") };
        assert_eq!(rest.lines.len(), 2, "the count caps what is due");
        assert_eq!(rest.lines[0].offset, first.end_offset);
        assert_eq!(rest.lines[1].event_time, start_wall + 4_000_000);
        assert!(matches!(pacer.poll(start + 70_000_000), Poll::End));
        assert!(matches!(pacer.poll(start + 80_000_000), Poll::End), "and it stays ended");
    }

    #[test]
    fn words_follow_zipf_and_repeat_by_seed() {
        let draw = |seed| {
            let mut g = Generator::words(GeneratorConfig { seed, words_per_line: 1000, ..Default::default() });
            let mut buf = BytesMut::new();
            let at = g.next_line(&mut buf, 1_700_000_000_000_000_000).unwrap();
            assert_eq!(&buf[..at - 1], b"1700000000000000000");
            String::from_utf8(buf[at..].to_vec()).unwrap()
        };
        let a = draw(1);
        assert_eq!(a, draw(1));
        assert_ne!(a, draw(2));
        let the = a.split(' ').filter(|w| *w == "the").count();
        let rare = a.split(' ').filter(|w| *w == "record").count();
        assert!(the > 50 && the > rare * 5, "the={the} record={rare}");
    }
}
