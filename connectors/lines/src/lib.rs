//! Line framing for byte streams.
//!
//! This crate turns any [`std::io::Read`] (a file, stdin, a TCP socket) into
//! [`Chunk`]s: one shared buffer holding a run of complete lines, plus the span
//! and byte offset of each line. It knows nothing of the sluice engine; the
//! engine adapts chunks into its own events.
//!
//! The contract, which the engine's tokenizer and the tests rely on:
//! - a line ends at `\n`; a `\r` right before the `\n` is not part of the line;
//! - a UTF-8 byte-order mark at stream offset 0 is not part of the first line;
//! - at end of input, a last line without `\n` is still a line;
//! - a line longer than `max_line` bytes is cut to its first `max_line` bytes,
//!   marked [`LineSpan::truncated`], and the rest of it is skipped;
//! - bytes are handed out as read: validating UTF-8 is the caller's business.
//!
//! Moving whole chunks between threads, never single lines, keeps the cost of a
//! channel hop per chunk rather than per line.
//!
//! ```
//! use sluice_lines::LineReader;
//! let input: &[u8] = b"\xEF\xBB\xBFone\r\ntwo\nthree";
//! let mut reader = LineReader::new(input, 1024);
//! let mut lines = Vec::new();
//! while let Some(chunk) = reader.next_chunk().unwrap() {
//!     for span in &chunk.lines {
//!         lines.push((span.offset, chunk.text(span).to_vec()));
//!     }
//! }
//! assert_eq!(lines, vec![(3, b"one".to_vec()), (8, b"two".to_vec()), (12, b"three".to_vec())]);
//! ```

use std::io::{self, Read};

use bytes::{Bytes, BytesMut};

/// The default longest line, in bytes, before a line is cut: 1 MiB.
pub const DEFAULT_MAX_LINE: usize = 1 << 20;

/// How many bytes one read asks for at most.
const READ_SIZE: usize = 64 * 1024;
/// How many bytes one read asks for at least.
const MIN_READ_SIZE: usize = 4 * 1024;

/// Chunks up to this size are copied out of the read buffer rather than
/// sharing it (see [`LineReader::take_front`]).
const COPY_UP_TO: usize = 4 * 1024;

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Where one line sits inside a [`Chunk`] and in the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineSpan {
    /// First byte of the line's text within [`Chunk::data`].
    pub start: u32,
    /// One past the last byte of the text (the `\r\n` or `\n` is excluded).
    pub end: u32,
    /// Byte offset of the line's first byte in the whole stream, so that a
    /// reader can resume or acknowledge exactly this line.
    pub offset: u64,
    /// True when the line was longer than the limit and was cut.
    pub truncated: bool,
}

/// A run of complete lines that arrived together, in one shared buffer.
#[derive(Debug, Clone, Default)]
pub struct Chunk {
    /// The raw bytes; spans index into it. Cloning or slicing it is cheap.
    pub data: Bytes,
    /// The lines, in stream order.
    pub lines: Vec<LineSpan>,
    /// Stream offset one past the last byte this chunk covers (including the
    /// newline and any skipped tail of an overlong line): where to resume.
    pub end_offset: u64,
}

impl Chunk {
    /// The text of one line of this chunk.
    pub fn text(&self, span: &LineSpan) -> &[u8] {
        &self.data[span.start as usize..span.end as usize]
    }
}

/// Counters a [`LineReader`] keeps, so that callers can report them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FramingStats {
    /// Bytes read from the underlying reader.
    pub bytes: u64,
    /// Lines handed out.
    pub lines: u64,
    /// Lines cut because they were longer than the limit.
    pub truncated: u64,
}

/// Reads a byte stream and hands out [`Chunk`]s of complete lines.
#[derive(Debug)]
pub struct LineReader<R> {
    /// The source of bytes.
    inner: R,
    /// Bytes read but not yet handed out: always the start of an incomplete line.
    pending: BytesMut,
    /// Stream offset of `pending[0]`.
    pending_offset: u64,
    /// How many bytes the next read asks for.
    read_size: usize,
    /// Longest line handed out whole; longer ones are cut.
    max_line: usize,
    /// True while skipping the tail of a line that was already cut.
    skipping: bool,
    /// True until the first bytes were looked at for a byte-order mark.
    at_start: bool,
    /// True once the reader returned end of file.
    eof: bool,
    /// Counters for reporting.
    stats: FramingStats,
}

impl<R: Read> LineReader<R> {
    /// A reader over `inner` that cuts lines longer than `max_line` bytes.
    pub fn new(inner: R, max_line: usize) -> Self {
        Self::starting_at(inner, max_line, 0)
    }

    /// Like [`LineReader::new`], for a stream whose first byte is at `offset`
    /// (a file opened at a saved position). A byte-order mark is only looked
    /// for when `offset` is 0.
    pub fn starting_at(inner: R, max_line: usize, offset: u64) -> Self {
        LineReader {
            inner,
            pending: BytesMut::new(),
            pending_offset: offset,
            read_size: READ_SIZE,
            max_line: max_line.max(1),
            skipping: false,
            at_start: offset == 0,
            eof: false,
            stats: FramingStats::default(),
        }
    }

    /// Stream offset of the first byte not yet handed out or skipped: where a
    /// restarted reader would pick up.
    pub fn resume_offset(&self) -> u64 {
        self.pending_offset
    }

    /// The inner reader.
    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    /// Counters so far.
    pub fn stats(&self) -> FramingStats {
        self.stats
    }

    /// The next chunk of complete lines, waiting for input as the inner
    /// reader does; `None` once the input has ended and every line was handed
    /// out. An error from the inner reader is returned as is; the lines
    /// before it were already handed out.
    pub fn next_chunk(&mut self) -> io::Result<Option<Chunk>> {
        loop {
            if self.eof {
                return Ok(self.finish());
            }
            let (scanned, n) = self.read_once()?;
            if n == 0 {
                self.eof = true;
                continue;
            }
            if let Some(chunk) = self.take_complete(scanned) {
                return Ok(Some(chunk));
            }
        }
    }

    /// For an input that keeps growing (a followed file): the complete lines
    /// available now, or `None` at the current end. Reaching the end is not
    /// final here: an incomplete last line stays pending, and a later call
    /// picks up whatever was appended since.
    pub fn read_available(&mut self) -> io::Result<Option<Chunk>> {
        loop {
            let (scanned, n) = self.read_once()?;
            if n == 0 {
                return Ok(None);
            }
            if let Some(chunk) = self.take_complete(scanned) {
                return Ok(Some(chunk));
            }
        }
    }

    /// Hands out the incomplete last line, if there is one, as a line of its
    /// own: for a followed file that went idle or was rotated away.
    pub fn take_partial(&mut self) -> Option<Chunk> {
        self.finish()
    }

    /// Says how many bytes are expected (a followed file's length minus
    /// what was read): reads then ask for about that many, between 4 and
    /// 64 KiB, so that a file that gets a line now and then does not hold
    /// a 64 KiB buffer, nor clear one for every line.
    pub fn expect(&mut self, bytes: u64) {
        self.read_size = (bytes.min(READ_SIZE as u64) as usize).max(MIN_READ_SIZE);
    }

    /// Bytes of an incomplete line held back.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// One read into `pending`: returns how many bytes were there before
    /// (known to hold no newline) and how many arrived.
    fn read_once(&mut self) -> io::Result<(usize, usize)> {
        let old_len = self.pending.len();
        self.pending.resize(old_len + self.read_size, 0);
        let n = loop {
            match self.inner.read(&mut self.pending[old_len..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.pending.truncate(old_len);
                    return Err(e);
                }
            }
        };
        self.pending.truncate(old_len + n);
        self.stats.bytes += n as u64;
        Ok((old_len, n))
    }

    /// Splits off every complete line in `pending`; `scanned` bytes at its
    /// start are known to hold no newline.
    fn take_complete(&mut self, scanned: usize) -> Option<Chunk> {
        if self.at_start && !self.pending.is_empty() {
            if self.pending.len() < BOM.len() && BOM.starts_with(&self.pending) {
                return None; // too few bytes to tell yet
            }
            self.at_start = false;
            if self.pending.starts_with(BOM) {
                let _ = self.pending.split_to(BOM.len());
                self.pending_offset += BOM.len() as u64;
                return self.take_complete(0);
            }
        }
        match memchr::memrchr(b'\n', &self.pending[scanned..]) {
            Some(i) => {
                let data = self.take_front(scanned + i + 1);
                Some(self.frame(data))
            }
            None => self.cut_overlong(),
        }
    }

    /// Deals with an incomplete line that is already too long: the first
    /// `max_line` bytes go out as a cut line, the rest is skipped up to the
    /// next newline, so memory stays bounded by the limit.
    fn cut_overlong(&mut self) -> Option<Chunk> {
        if self.skipping {
            self.pending_offset += self.pending.len() as u64;
            self.pending.clear();
            return None;
        }
        // One byte of slack for a `\r` whose `\n` has not arrived yet.
        if self.pending.len() <= self.max_line + 1 {
            return None;
        }
        let head = self.pending.split_to(self.max_line).freeze();
        let span = LineSpan { start: 0, end: self.max_line as u32, offset: self.pending_offset, truncated: true };
        self.pending_offset += (self.max_line + self.pending.len()) as u64;
        self.pending.clear();
        self.skipping = true;
        self.stats.truncated += 1;
        self.stats.lines += 1;
        Some(Chunk { data: head, lines: vec![span], end_offset: self.pending_offset })
    }

    /// The first `n` pending bytes. A small piece is copied out, and the
    /// read buffer stays this reader's to reuse: shared, it would stay
    /// allocated, whole, for as long as the piece lives (a followed file
    /// that gets a line now and then would hold 64 KiB per chunk on its way
    /// through the engine). A large piece is handed out without a copy.
    fn take_front(&mut self, n: usize) -> Bytes {
        if n <= COPY_UP_TO {
            let data = Bytes::copy_from_slice(&self.pending[..n]);
            bytes::Buf::advance(&mut self.pending, n);
            data
        } else {
            self.pending.split_to(n).freeze()
        }
    }

    /// Splits `data` into lines; every line but possibly the last ends in `\n`.
    fn frame(&mut self, data: Bytes) -> Chunk {
        let base = self.pending_offset;
        let mut lines = Vec::new();
        let mut start = 0usize;
        let len = data.len();
        while start < len {
            let nl = memchr::memchr(b'\n', &data[start..]).map(|i| start + i);
            let (line_end, next) = match nl {
                Some(i) => (i, i + 1),
                None => (len, len),
            };
            if self.skipping {
                // The tail of a line that was cut earlier.
                self.skipping = nl.is_none();
                start = next;
                continue;
            }
            let mut end = line_end;
            if nl.is_some() && end > start && data[end - 1] == b'\r' {
                end -= 1;
            }
            let truncated = end - start > self.max_line;
            if truncated {
                end = start + self.max_line;
                self.stats.truncated += 1;
            }
            lines.push(LineSpan { start: start as u32, end: end as u32, offset: base + start as u64, truncated });
            start = next;
        }
        self.stats.lines += lines.len() as u64;
        self.pending_offset = base + len as u64;
        Chunk { data, lines, end_offset: self.pending_offset }
    }

    /// At end of input: the last line without a newline, if any.
    fn finish(&mut self) -> Option<Chunk> {
        if self.at_start && self.pending.starts_with(BOM) {
            let _ = self.pending.split_to(BOM.len());
            self.pending_offset += BOM.len() as u64;
        }
        self.at_start = false;
        if self.pending.is_empty() {
            return None;
        }
        let data = self.take_front(self.pending.len());
        let chunk = self.frame(data);
        self.skipping = false;
        if chunk.lines.is_empty() {
            None
        } else {
            Some(chunk)
        }
    }
}

impl<R: Read + io::Seek> LineReader<R> {
    /// Starts over at `offset` of the same input (a file truncated in
    /// place): whatever was read and not handed out is dropped.
    pub fn seek_to(&mut self, offset: u64) -> io::Result<()> {
        self.inner.seek(io::SeekFrom::Start(offset))?;
        self.pending.clear();
        self.pending_offset = offset;
        self.skipping = false;
        self.at_start = offset == 0;
        self.eof = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that returns at most `step` bytes per read, to cut lines,
    /// CRLFs and byte-order marks at every possible place.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.step.min(buf.len()).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    /// (offset, text, truncated) of each line.
    type Lines = Vec<(u64, Vec<u8>, bool)>;

    fn lines(data: &[u8], step: usize, max: usize) -> (Lines, FramingStats, u64) {
        let mut r = LineReader::new(Trickle { data, step }, max);
        let mut out = Vec::new();
        while let Some(c) = r.next_chunk().unwrap() {
            for s in &c.lines {
                out.push((s.offset, c.text(s).to_vec(), s.truncated));
            }
        }
        (out, r.stats(), r.resume_offset())
    }

    #[test]
    fn same_lines_whatever_the_read_sizes() {
        let data = b"\xEF\xBB\xBFfirst\r\nsecond\n\nthird\r\nlast without newline";
        let expect = vec![
            (3, b"first".to_vec(), false),
            (10, b"second".to_vec(), false),
            (17, b"".to_vec(), false),
            (18, b"third".to_vec(), false),
            (25, b"last without newline".to_vec(), false),
        ];
        for step in 1..=data.len() {
            let (got, stats, end) = lines(data, step, 1024);
            assert_eq!(got, expect, "read size {step}");
            assert_eq!((stats.lines, stats.bytes, end), (5, data.len() as u64, data.len() as u64));
        }
    }

    #[test]
    fn bom_only_at_the_start_and_short_inputs() {
        assert_eq!(lines(b"\xEF\xBB\xBF", 1, 10).0, vec![]);
        assert_eq!(lines(b"\xEF\xBB", 1, 10).0, vec![(0, b"\xEF\xBB".to_vec(), false)]);
        assert_eq!(
            lines(b"a\n\xEF\xBB\xBFb\n", 2, 10).0,
            vec![(0, b"a".to_vec(), false), (2, b"\xEF\xBB\xBFb".to_vec(), false)]
        );
        assert_eq!(lines(b"", 4, 10).0, vec![]);
        assert_eq!(lines(b"\n", 4, 10).0, vec![(0, b"".to_vec(), false)]);
    }

    #[test]
    fn overlong_lines_are_cut_and_counted() {
        let mut data = vec![b'x'; 100];
        data.extend_from_slice(b"\nshort\n");
        data.extend(vec![b'y'; 50]);
        for step in [1, 7, 64, 1000] {
            let (got, stats, end) = lines(&data, step, 10);
            assert_eq!(
                got,
                vec![(0, vec![b'x'; 10], true), (101, b"short".to_vec(), false), (107, vec![b'y'; 10], true)],
                "read size {step}"
            );
            assert_eq!(stats.truncated, 2);
            assert_eq!(end, data.len() as u64);
        }
    }

    #[test]
    fn a_growing_input_keeps_its_partial_line_until_told() {
        let data = std::rc::Rc::new(std::cell::RefCell::new(Vec::<u8>::new()));
        struct Growing(std::rc::Rc<std::cell::RefCell<Vec<u8>>>, usize);
        impl Read for Growing {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let d = self.0.borrow();
                let n = (d.len() - self.1).min(buf.len());
                buf[..n].copy_from_slice(&d[self.1..self.1 + n]);
                self.1 += n;
                Ok(n)
            }
        }
        let mut r = LineReader::new(Growing(data.clone(), 0), 100);
        data.borrow_mut().extend_from_slice(
            b"one
tw",
        );
        let c = r.read_available().unwrap().unwrap();
        assert_eq!(c.lines.len(), 1);
        assert!(r.read_available().unwrap().is_none());
        assert_eq!(r.pending_len(), 2);
        data.borrow_mut().extend_from_slice(
            b"o
thr",
        );
        let c = r.read_available().unwrap().unwrap();
        assert_eq!((c.text(&c.lines[0]), c.lines[0].offset), (&b"two"[..], 4));
        assert!(r.read_available().unwrap().is_none());
        let c = r.take_partial().unwrap();
        assert_eq!((c.text(&c.lines[0]), c.lines[0].offset), (&b"thr"[..], 8));
        assert!(r.take_partial().is_none());
        data.borrow_mut().extend_from_slice(
            b"ee
",
        );
        let c = r.read_available().unwrap().unwrap();
        assert_eq!(
            (c.text(&c.lines[0]), c.lines[0].offset),
            (&b"ee"[..], 11),
            "after a forced partial, the rest is a line of its own"
        );
    }

    #[test]
    fn invalid_utf8_and_nul_pass_through_as_bytes() {
        let (got, _, _) = lines(b"a\x00b\xFF\nc", 3, 100);
        assert_eq!(got, vec![(0, b"a\x00b\xFF".to_vec(), false), (5, b"c".to_vec(), false)]);
    }

    #[test]
    fn read_errors_are_returned_and_lines_before_them_kept() {
        struct Broken(bool);
        impl Read for Broken {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0 {
                    return Err(io::Error::new(io::ErrorKind::ConnectionReset, "reset"));
                }
                self.0 = true;
                buf[..4].copy_from_slice(b"ok\np");
                Ok(4)
            }
        }
        let mut r = LineReader::new(Broken(false), 10);
        let c = r.next_chunk().unwrap().unwrap();
        assert_eq!(c.lines.len(), 1);
        assert_eq!(r.next_chunk().unwrap_err().kind(), io::ErrorKind::ConnectionReset);
    }
}
