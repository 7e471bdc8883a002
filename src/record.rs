//! What flows through the graph: a value with its metadata.

use std::borrow::Cow;

use bytes::Bytes;
use bytestring::ByteString;

use crate::time::{EpochNanos, NO_TIME};

/// Where an event came from, so that a checkpoint can resume after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize)]
pub struct Position {
    /// Which input of the run (a file, a socket, later a Kafka partition).
    pub input: u32,
    /// Which file of that input, counted in reading order (a followed file
    /// gets a new number when it is rotated or truncated); 0 otherwise.
    pub file: u64,
    /// Byte offset of the event's line in that file.
    pub offset: u64,
}

impl Position {
    /// The place within its input, ordered: file, then offset.
    pub fn place(&self) -> (u64, u64) {
        (self.file, self.offset)
    }
}

/// The metadata of an input event (a line), from its source to the sinks.
/// A line's record holds it; the operators pass it beside the values made
/// from the line by reference (see [`crate::operator::Stage::push`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    /// Sequence number of the input event (line), counted from 0 in arrival
    /// order. Every value made from one event shares it.
    pub seq: u64,
    /// Ingest time: monotonic ns since the run's [`crate::time::Clock`] started.
    pub ingest: u64,
    /// Event time (wall clock, ns since the epoch), or [`NO_TIME`].
    pub event_time: EpochNanos,
    /// Source position of the event.
    pub pos: Position,
    /// The latest event time its input had delivered up to and including
    /// this event, or [`NO_TIME`]. Watermarks follow it, so that events
    /// which produce no items (blank lines) still move event time, the same
    /// way in both modes.
    pub frontier: EpochNanos,
}

impl Meta {
    /// The event time, if the event has one.
    pub fn event_time(&self) -> Option<EpochNanos> {
        (self.event_time != NO_TIME).then_some(self.event_time)
    }
}

/// A value with the metadata of the event it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<T> {
    /// The value operators work on.
    pub value: T,
    /// Where and when the event came from.
    pub meta: Meta,
}

/// One input line, without its line ending. It shares the buffer it was read
/// into, so making one costs no copy.
#[derive(Debug, Clone)]
pub struct Line {
    repr: Repr,
}

/// What a [`Line`] holds.
#[derive(Debug, Clone)]
enum Repr {
    /// Raw bytes, not necessarily valid UTF-8.
    Bytes(Bytes),
    /// Text its source already checked (see [`crate::source::Buffer`]).
    Text(ByteString),
}

impl Line {
    /// A line over these bytes.
    pub fn new(bytes: Bytes) -> Self {
        Line { repr: Repr::Bytes(bytes) }
    }

    /// The raw bytes of the line.
    pub fn as_bytes(&self) -> &[u8] {
        match &self.repr {
            Repr::Bytes(bytes) => bytes,
            Repr::Text(text) => text.as_bytes(),
        }
    }

    /// The text; invalid UTF-8 is replaced by U+FFFD (which allocates only
    /// for such lines). Text its source checked is not checked again.
    #[inline]
    pub fn text(&self) -> Cow<'_, str> {
        match &self.repr {
            Repr::Bytes(bytes) => crate::tokenize::text_of(bytes),
            Repr::Text(text) => Cow::Borrowed(text),
        }
    }
}

impl Default for Line {
    fn default() -> Self {
        Line::new(Bytes::new())
    }
}

/// Lines are equal when their bytes are, checked or not.
impl PartialEq for Line {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Line {}

impl From<ByteString> for Line {
    /// A line over text known to be valid.
    fn from(text: ByteString) -> Self {
        Line { repr: Repr::Text(text) }
    }
}

impl From<&'static str> for Line {
    fn from(s: &'static str) -> Self {
        Line::from(ByteString::from_static(s))
    }
}
