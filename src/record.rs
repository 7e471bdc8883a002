//! What flows through the graph: a value with its metadata.

use std::borrow::Cow;

use bytes::Bytes;

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
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Line {
    /// The raw bytes, not necessarily valid UTF-8.
    bytes: Bytes,
}

impl Line {
    /// A line over these bytes.
    pub fn new(bytes: Bytes) -> Self {
        Line { bytes }
    }

    /// The raw bytes of the line.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The text; invalid UTF-8 is replaced by U+FFFD (which allocates only
    /// for such lines).
    pub fn text(&self) -> Cow<'_, str> {
        crate::tokenize::text_of(&self.bytes)
    }
}

impl From<&'static str> for Line {
    fn from(s: &'static str) -> Self {
        Line::new(Bytes::from_static(s.as_bytes()))
    }
}
