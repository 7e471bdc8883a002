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
/// It is made as the line goes into the operators
/// ([`crate::source::InputChunk`]'s events), which pass it beside the values
/// made from the line by reference (see [`crate::operator::Stage::push`]).
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
    data: Buffer,
}

impl Line {
    /// A line over these bytes.
    pub fn new(bytes: Bytes) -> Self {
        Line { data: Buffer::Bytes(bytes) }
    }

    /// The raw bytes of the line.
    pub fn as_bytes(&self) -> &[u8] {
        &self.data
    }

    /// The text; invalid UTF-8 is replaced by U+FFFD (which allocates only
    /// for such lines). Text its source checked is not checked again.
    #[inline]
    pub fn text(&self) -> Cow<'_, str> {
        match &self.data {
            Buffer::Bytes(bytes) => crate::tokenize::text_of(bytes),
            Buffer::Text(text) => Cow::Borrowed(text),
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
        Line { data: Buffer::Text(text) }
    }
}

impl From<&'static str> for Line {
    fn from(s: &'static str) -> Self {
        Line::from(ByteString::from_static(s))
    }
}

/// A chunk's buffer (or a line's part of it), checked for UTF-8 once, on the
/// source's thread, so that the executor takes its lines' text without
/// checking each line again (on a word count the check was about 5% of the
/// executor's time, BENCHMARKS.md). A buffer that is not valid UTF-8
/// throughout keeps its bytes, and each of its lines is checked, and
/// repaired, by itself.
#[derive(Debug, Clone)]
pub enum Buffer {
    /// Valid UTF-8 throughout.
    Text(ByteString),
    /// Not valid UTF-8 somewhere.
    Bytes(Bytes),
}

impl Buffer {
    /// Checks `bytes`.
    pub fn check(bytes: Bytes) -> Self {
        match ByteString::try_from(bytes.clone()) {
            Ok(text) => Buffer::Text(text),
            Err(_) => Buffer::Bytes(bytes),
        }
    }

    /// The bytes.
    pub fn into_bytes(self) -> Bytes {
        match self {
            Buffer::Text(text) => text.into_bytes(),
            Buffer::Bytes(bytes) => bytes,
        }
    }

    /// The line at `start..end`: known text if the buffer is text and the
    /// range falls on character boundaries (an overlong line cut in the
    /// middle of a character does not), bytes otherwise.
    #[inline]
    pub fn line(&self, start: usize, end: usize) -> Line {
        match self {
            Buffer::Text(text) => match text.get(start..end) {
                Some(part) => Line::from(text.slice_ref(part)),
                None => Line::new(text.as_bytes().slice(start..end)),
            },
            Buffer::Bytes(bytes) => Line::new(bytes.slice(start..end)),
        }
    }
}

impl std::ops::Deref for Buffer {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Buffer::Text(text) => text.as_bytes(),
            Buffer::Bytes(bytes) => bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A buffer checked once gives its lines the same bytes and text as
    /// checking each line by itself, for valid text, for a buffer with an
    /// invalid byte, and for a range that cuts a character in two.
    #[test]
    fn a_checked_buffer_gives_lines_the_text_each_would_have_alone() {
        let valid = Bytes::from("caf\u{e9} \u{201c}Quoted\u{201d}\r\nplain\n\u{feff}BOM".to_string());
        let invalid = Bytes::from_static(b"caf\xe9 latin-1\nfine line\n");
        assert!(matches!(Buffer::check(valid.clone()), Buffer::Text(_)));
        assert!(matches!(Buffer::check(invalid.clone()), Buffer::Bytes(_)));
        for bytes in [valid, invalid] {
            let buffer = Buffer::check(bytes.clone());
            assert_eq!(&buffer[..], &bytes[..]);
            // Every range, including those inside a character.
            for start in 0..=bytes.len() {
                for end in start..=bytes.len() {
                    let line = buffer.line(start, end);
                    let alone = Line::new(bytes.slice(start..end));
                    assert_eq!(line.as_bytes(), &bytes[start..end]);
                    assert_eq!(line.text(), alone.text(), "{start}..{end}");
                    assert_eq!(line, alone);
                }
            }
            assert_eq!(buffer.into_bytes(), bytes);
        }
        // The text of a checked line is borrowed, not checked and copied.
        let buffer = Buffer::check(Bytes::from_static("\u{201c}a\u{201d}".as_bytes()));
        assert!(matches!(buffer.line(0, 7).text(), std::borrow::Cow::Borrowed("\u{201c}a\u{201d}")));
        assert!(matches!(buffer.line(0, 2).text(), std::borrow::Cow::Owned(_)), "cut inside a character");
    }
}
