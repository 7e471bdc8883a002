//! Following a file the way `tail -F` does.
//!
//! A [`Tailer`] watches one path and hands out [`Lines`]: chunks of complete
//! lines with the identity of the file they came from and their byte offsets
//! in it. It knows nothing of the sluice engine.
//!
//! What it survives, and how:
//! - **appends**: read as they come; a line without its `\n` is held back
//!   until the `\n` arrives, or until the file has been quiet for
//!   `idle_flush` (then it is handed out as a line of its own), or until the
//!   file is rotated away;
//! - **rename rotation** (logrotate `create`): the path now names another
//!   file (device and inode differ). The old file stays open and is read to
//!   its end, and until it has been quiet for `idle_flush` (a writer may
//!   still be finishing a line in it), before it is closed; the new file is
//!   read from its start;
//! - **copytruncate and truncation in place**: the file is shorter than what
//!   was read, or its first bytes changed (truncated and rewritten between
//!   two looks): the held-back partial line is handed out and reading starts
//!   again at offset 0;
//! - **delete and recreate**, **a directory that does not exist yet or
//!   disappears**: a vanished path is waited for, with one notice; the open
//!   file is read to its end first.
//!
//! Watching uses inotify (through `notify`) on the parent directory to wake
//! up early, and polls every `poll_interval` whatever happens, so a missed
//! or unavailable notification only delays reading.

use std::fs::{self, File};
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use sluice_lines::{Chunk, LineReader};

/// How many leading bytes identify a file's content.
const HEAD_BYTES: usize = 512;

/// Where to start in the file found at start-up. Files that appear later
/// (after a rotation, or created later) are always read from their start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartAt {
    /// From its first byte.
    Beginning,
    /// From its current end: only lines appended from now on.
    #[default]
    End,
    /// From this byte offset (a saved position).
    Offset(u64),
}

/// What to follow, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TailConfig {
    /// The path to follow; it may not exist yet.
    pub path: PathBuf,
    /// Where to start in the file found at start-up.
    pub start: StartAt,
    /// How often to look at the path even without a notification.
    pub poll_interval: Duration,
    /// How long a partial last line, or a rotated-away file, may stay quiet
    /// before the line is handed out (or the file closed).
    pub idle_flush: Duration,
    /// Longest line in bytes; longer ones are cut.
    pub max_line: usize,
}

impl TailConfig {
    /// Follows `path` from its end, looking every 250 ms, flushing partial
    /// lines after 5 s, with 1 MiB lines.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        TailConfig {
            path: path.into(),
            start: StartAt::End,
            poll_interval: Duration::from_millis(250),
            idle_flush: Duration::from_secs(5),
            max_line: sluice_lines::DEFAULT_MAX_LINE,
        }
    }
}

/// Which file a line came from: device and inode, which rename rotation
/// keeps and a recreated file does not share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId {
    /// Device number.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
}

impl FileId {
    fn of(meta: &fs::Metadata) -> Self {
        FileId { dev: meta.dev(), ino: meta.ino() }
    }
}

/// Complete lines from one file.
#[derive(Debug, Clone)]
pub struct Lines {
    /// The file they came from.
    pub file: FileId,
    /// The lines, with offsets in that file.
    pub chunk: Chunk,
}

/// Something the tailer wants its user to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// The path does not exist (yet); said once until it appears.
    Waiting(PathBuf),
    /// The path names a new file; the old one is read to its end first.
    Rotated {
        /// The file that was rotated away.
        from: FileId,
        /// The file now at the path.
        to: FileId,
    },
    /// The file got shorter or its start was rewritten: reading restarts at 0.
    Truncated {
        /// The file.
        file: FileId,
        /// How far it had been read.
        read_to: u64,
    },
    /// The path cannot be read (permission denied, a directory...); said
    /// once until that changes. The tailer keeps trying.
    Unreadable(String),
}

/// What the tailer hands out.
#[derive(Debug, Clone)]
pub enum Output {
    /// Lines.
    Lines(Lines),
    /// A notice.
    Notice(Notice),
}

/// An open file being read.
struct Tracked {
    /// Reads lines, from the file's start or a given offset.
    reader: LineReader<File>,
    /// Device and inode.
    id: FileId,
    /// Checksum and length of the first bytes read, to notice a rewrite.
    head: (u64, usize),
    /// When data last arrived from it.
    last_data: Instant,
}

impl Tracked {
    fn open(path: &Path, offset: u64, max_line: usize) -> io::Result<Tracked> {
        let mut file = File::open(path)?;
        let meta = file.metadata()?;
        if meta.is_dir() {
            return Err(io::Error::new(io::ErrorKind::IsADirectory, "is a directory"));
        }
        let offset = offset.min(meta.len());
        file.seek(SeekFrom::Start(offset))?;
        let head = head_of(&file, HEAD_BYTES)?;
        Ok(Tracked {
            reader: LineReader::starting_at(file, max_line, offset),
            id: FileId::of(&meta),
            head,
            last_data: Instant::now(),
        })
    }

    /// Moves it to the files read to their end: it gets a full quiet period
    /// from now, for a writer that has not reopened yet.
    fn retire(mut self, draining: &mut Vec<Tracked>) {
        self.last_data = Instant::now();
        draining.push(self);
    }

    /// Bytes read from the file so far, handed out or held back.
    fn read_to(&self) -> u64 {
        self.reader.resume_offset() + self.reader.pending_len() as u64
    }

    /// Hands out every complete line available now.
    fn drain(&mut self, out: &mut dyn FnMut(Output) -> bool) -> io::Result<bool> {
        while let Some(chunk) = self.reader.read_available()? {
            self.last_data = Instant::now();
            if !out(Output::Lines(Lines { file: self.id, chunk })) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Hands out the held-back partial line, if any.
    fn flush_partial(&mut self, out: &mut dyn FnMut(Output) -> bool) -> bool {
        match self.reader.take_partial() {
            Some(chunk) => out(Output::Lines(Lines { file: self.id, chunk })),
            None => true,
        }
    }

    /// True when the file (looked at through its open handle, whatever its
    /// name now) is shorter than what was read, or its start no longer
    /// matches: it was truncated, and maybe written again, since.
    fn truncated(&self) -> bool {
        let file = self.reader.get_ref();
        let Ok(meta) = file.metadata() else { return false };
        if meta.len() < self.read_to() {
            return true;
        }
        let (sum, len) = self.head;
        len > 0 && head_of(file, len).is_ok_and(|h| h.0 != sum)
    }

    /// After a truncation: hands out the held-back partial line, and reads
    /// the same file again from its start.
    fn restart(&mut self, out: &mut dyn FnMut(Output) -> bool) -> io::Result<bool> {
        if !self.flush_partial(out) {
            return Ok(false);
        }
        self.reader.seek_to(0)?;
        self.head = head_of(self.reader.get_ref(), HEAD_BYTES)?;
        self.last_data = Instant::now();
        Ok(true)
    }
}

/// A checksum (FNV-1a) of the first `limit` bytes, and how many there were.
fn head_of(file: &File, limit: usize) -> io::Result<(u64, usize)> {
    let mut buf = [0u8; HEAD_BYTES];
    let limit = limit.min(HEAD_BYTES);
    let mut n = 0;
    while n < limit {
        match file.read_at(&mut buf[n..limit], n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let sum = buf[..n].iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3));
    Ok((sum, n))
}

/// Follows one path.
pub struct Tailer {
    /// What to follow.
    config: TailConfig,
    /// The file at the path, if open.
    current: Option<Tracked>,
    /// Files rotated away or deleted, read to their end before closing.
    draining: Vec<Tracked>,
    /// True until the first file was opened (it starts where `start` says).
    first_open: bool,
    /// The last notice about the path's state, so each is said once.
    last_notice: Option<Notice>,
}

impl Tailer {
    /// A tailer for `config`. Nothing is opened until the first poll.
    pub fn new(config: TailConfig) -> Self {
        Tailer { config, current: None, draining: Vec::new(), first_open: true, last_notice: None }
    }

    /// The file currently followed and how far it has been read (handed out
    /// or held back).
    pub fn position(&self) -> Option<(FileId, u64)> {
        self.current.as_ref().map(|t| (t.id, t.read_to()))
    }

    fn notice(&mut self, n: Notice, out: &mut dyn FnMut(Output) -> bool) -> bool {
        if self.last_notice.as_ref() == Some(&n) {
            return true;
        }
        self.last_notice = Some(n.clone());
        out(Output::Notice(n))
    }

    /// One look at the path and the open files: hands out every line that
    /// can be handed out now. Returns false when `out` returned false.
    pub fn poll(&mut self, out: &mut dyn FnMut(Output) -> bool) -> bool {
        let idle = self.config.idle_flush;
        // First see whether the path still names the open file, so that a
        // file rotated away is read to its end before the new one.
        if !self.look(out) {
            return false;
        }
        // Files rotated away: read to the end; close once quiet.
        let mut keep = Vec::with_capacity(self.draining.len());
        for mut t in std::mem::take(&mut self.draining) {
            if t.truncated() {
                let read_to = t.read_to();
                if !t.restart(out).unwrap_or(true) || !out(Output::Notice(Notice::Truncated { file: t.id, read_to })) {
                    return false;
                }
            }
            // A file that became unreadable is closed once quiet, like the rest.
            if !t.drain(out).unwrap_or(true) {
                return false;
            }
            if t.last_data.elapsed() >= idle {
                if !t.flush_partial(out) {
                    return false;
                }
            } else {
                keep.push(t);
            }
        }
        self.draining = keep;

        if let Some(t) = self.current.as_mut() {
            match t.drain(out) {
                Ok(true) => {}
                Ok(false) => return false,
                Err(e) => {
                    let msg = format!("{}: {e}", self.config.path.display());
                    return self.notice(Notice::Unreadable(msg), out);
                }
            }
            if t.head.1 < HEAD_BYTES {
                // The file was short when opened: identify it by more bytes.
                let read = t.read_to().min(HEAD_BYTES as u64) as usize;
                if read > t.head.1 {
                    t.head = head_of(t.reader.get_ref(), read).unwrap_or(t.head);
                }
            }
            if t.reader.pending_len() > 0 && t.last_data.elapsed() >= idle && !t.flush_partial(out) {
                return false;
            }
        }
        true
    }

    /// Compares the path with the open file: rotation, truncation, deletion.
    fn look(&mut self, out: &mut dyn FnMut(Output) -> bool) -> bool {
        let path = self.config.path.clone();
        let meta = match fs::metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // Deleted or renamed away: read what is left, then close.
                if let Some(t) = self.current.take() {
                    t.retire(&mut self.draining);
                }
                // A file that appears from now on is new: read it whole.
                self.first_open = false;
                return self.notice(Notice::Waiting(path), out);
            }
            Err(e) => return self.notice(Notice::Unreadable(format!("{}: {e}", path.display())), out),
        };
        if meta.is_dir() {
            return self.notice(Notice::Unreadable(format!("{} is a directory; name a file", path.display())), out);
        }
        let id = FileId::of(&meta);
        if let Some(t) = self.current.as_mut() {
            if t.id != id {
                let from = t.id;
                // The old file may also have been cut before it was renamed.
                if t.truncated() && !t.restart(out).unwrap_or(true) {
                    return false;
                }
                if let Some(old) = self.current.take() {
                    old.retire(&mut self.draining);
                }
                if !self.open(&path, 0, out) {
                    return false;
                }
                return self.notice(Notice::Rotated { from, to: id }, out);
            }
            if t.truncated() {
                // Whatever is in the file now is new.
                let read_to = t.read_to();
                match t.restart(out) {
                    Ok(true) => {}
                    Ok(false) => return false,
                    Err(e) => return self.notice(Notice::Unreadable(format!("{}: {e}", path.display())), out),
                }
                self.last_notice = None;
                return self.notice(Notice::Truncated { file: id, read_to }, out);
            }
            return true;
        }
        let offset = match (self.first_open, self.config.start) {
            (true, StartAt::End) => meta.len(),
            (true, StartAt::Offset(o)) => o,
            _ => 0,
        };
        self.open(&path, offset, out)
    }

    fn open(&mut self, path: &Path, offset: u64, out: &mut dyn FnMut(Output) -> bool) -> bool {
        match Tracked::open(path, offset, self.config.max_line) {
            Ok(t) => {
                self.current = Some(t);
                self.first_open = false;
                self.last_notice = None;
                true
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => self.notice(Notice::Waiting(path.to_path_buf()), out),
            Err(e) => self.notice(Notice::Unreadable(format!("{}: {e}", path.display())), out),
        }
    }

    /// Polls until `stop` is set or `out` returns false, waking up on file
    /// system notifications for the parent directory, and at least every
    /// `poll_interval`.
    pub fn run(mut self, stop: &AtomicBool, mut out: impl FnMut(Output) -> bool) {
        let (tx, rx) = mpsc::channel();
        let mut watcher: Option<notify::RecommendedWatcher> = None;
        let dir = self.config.path.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."));
        let dir = if dir.as_os_str().is_empty() { PathBuf::from(".") } else { dir };
        while !stop.load(Ordering::Relaxed) {
            if watcher.is_none() && dir.is_dir() {
                watcher = watch(&dir, tx.clone());
            }
            if !self.poll(&mut out) {
                return;
            }
            match rx.recv_timeout(self.config.poll_interval) {
                Ok(()) => while rx.try_recv().is_ok() {},
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => std::thread::sleep(self.config.poll_interval),
            }
            if !dir.is_dir() {
                watcher = None; // the directory went away: watch it again when it is back
            }
        }
    }
}

/// A watcher on `dir` that sends a wake-up on every event; `None` when the
/// platform cannot watch (polling still works).
fn watch(dir: &Path, tx: mpsc::Sender<()>) -> Option<notify::RecommendedWatcher> {
    use notify::Watcher;
    let mut w = notify::recommended_watcher(move |_res: notify::Result<notify::Event>| {
        let _ = tx.send(());
    })
    .ok()?;
    w.watch(dir, notify::RecursiveMode::NonRecursive).ok()?;
    Some(w)
}

#[cfg(test)]
mod tests {
    use std::fs::OpenOptions;
    use std::io::Write;

    use super::*;

    struct Harness {
        dir: tempfile::TempDir,
        tailer: Tailer,
        lines: Vec<String>,
        notices: Vec<Notice>,
    }

    impl Harness {
        fn new(start: StartAt, prepare: impl FnOnce(&Path)) -> Self {
            let dir = tempfile::tempdir().unwrap();
            prepare(dir.path());
            let mut config = TailConfig::new(dir.path().join("logs/app.log"));
            config.start = start;
            config.idle_flush = Duration::from_millis(200);
            Harness { tailer: Tailer::new(config), dir, lines: Vec::new(), notices: Vec::new() }
        }

        fn path(&self) -> PathBuf {
            self.dir.path().join("logs/app.log")
        }

        fn append(&self, path: &Path, text: &str) {
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            OpenOptions::new().create(true).append(true).open(path).unwrap().write_all(text.as_bytes()).unwrap();
        }

        /// Polls and returns the new lines.
        fn poll(&mut self) -> Vec<String> {
            let mut got = Vec::new();
            let mut notices = Vec::new();
            self.tailer.poll(&mut |o| {
                match o {
                    Output::Lines(l) => {
                        for s in &l.chunk.lines {
                            got.push(String::from_utf8_lossy(l.chunk.text(s)).to_string());
                        }
                    }
                    Output::Notice(n) => notices.push(n),
                }
                true
            });
            self.lines.extend(got.iter().cloned());
            self.notices.extend(notices);
            got
        }
    }

    fn v(lines: &[&str]) -> Vec<String> {
        lines.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn appends_and_partial_lines() {
        let mut h = Harness::new(StartAt::Beginning, |_| {});
        let p = h.path();
        assert!(h.poll().is_empty());
        assert!(matches!(h.notices[..], [Notice::Waiting(_)]));
        h.append(&p, "one\ntw");
        assert_eq!(h.poll(), v(&["one"]));
        h.append(&p, "o\n");
        assert_eq!(h.poll(), v(&["two"]), "a partial line waits for its newline");
        h.append(&p, "three");
        assert!(h.poll().is_empty());
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(h.poll(), v(&["three"]), "and is handed out after the idle time");
    }

    #[test]
    fn start_at_end_skips_what_was_there() {
        let mut h = Harness::new(StartAt::End, |d| {
            fs::create_dir_all(d.join("logs")).unwrap();
            fs::write(d.join("logs/app.log"), "old\n").unwrap();
        });
        let p = h.path();
        assert!(h.poll().is_empty());
        h.append(&p, "new\n");
        assert_eq!(h.poll(), v(&["new"]));
    }

    #[test]
    fn rename_rotation_reads_the_old_file_to_its_end_first() {
        let mut h = Harness::new(StartAt::Beginning, |_| {});
        let p = h.path();
        h.append(&p, "a\nb\n");
        assert_eq!(h.poll(), v(&["a", "b"]));
        h.append(&p, "c\n");
        let rotated = p.with_extension("log.1");
        fs::rename(&p, &rotated).unwrap();
        h.append(&p, "d\n");
        h.append(&rotated, "e\n"); // the writer had it open still
        assert_eq!(h.poll(), v(&["c", "e", "d"]));
        assert!(h.notices.iter().any(|n| matches!(n, Notice::Rotated { .. })));
        h.append(&rotated, "f\n");
        h.append(&p, "g\n");
        assert_eq!(h.poll(), v(&["f", "g"]), "the rotated file is still read until it goes quiet");
    }

    #[test]
    fn copytruncate_and_truncation_start_again_at_zero() {
        let mut h = Harness::new(StartAt::Beginning, |_| {});
        let p = h.path();
        h.append(&p, "a\nb\npartial");
        assert_eq!(h.poll(), v(&["a", "b"]));
        fs::copy(&p, p.with_extension("log.1")).unwrap();
        OpenOptions::new().write(true).open(&p).unwrap().set_len(0).unwrap();
        h.append(&p, "c\n");
        assert_eq!(h.poll(), v(&["partial", "c"]));
        assert!(h.notices.iter().any(|n| matches!(n, Notice::Truncated { .. })));
    }

    #[test]
    fn truncate_and_rewrite_longer_is_noticed_by_content() {
        let mut h = Harness::new(StartAt::Beginning, |_| {});
        let p = h.path();
        h.append(&p, "first line\n");
        assert_eq!(h.poll(), v(&["first line"]));
        fs::write(&p, "REWRITTEN from the start, and longer\n").unwrap();
        assert_eq!(h.poll(), v(&["REWRITTEN from the start, and longer"]));
    }

    #[test]
    fn delete_and_recreate_and_a_directory_that_comes_and_goes() {
        let mut h = Harness::new(StartAt::End, |_| {});
        let p = h.path();
        assert!(h.poll().is_empty());
        h.append(&p, "born later\n");
        assert_eq!(h.poll(), v(&["born later"]), "a file that appears after start is read whole");
        h.append(&p, "last words");
        fs::remove_dir_all(p.parent().unwrap()).unwrap();
        assert!(h.poll().is_empty());
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(h.poll(), v(&["last words"]), "the deleted file is read to its end");
        h.append(&p, "again\n");
        assert_eq!(h.poll(), v(&["again"]));
        let waits = h.notices.iter().filter(|n| matches!(n, Notice::Waiting(_))).count();
        assert_eq!(waits, 2, "one notice each time the path goes missing: {:?}", h.notices);
    }

    #[test]
    fn offsets_are_file_offsets() {
        let mut h = Harness::new(StartAt::Offset(2), |d| {
            fs::create_dir_all(d.join("logs")).unwrap();
            fs::write(d.join("logs/app.log"), "a\nbb\nccc\n").unwrap();
        });
        let mut offsets = Vec::new();
        h.tailer.poll(&mut |o| {
            if let Output::Lines(l) = o {
                offsets.extend(l.chunk.lines.iter().map(|s| s.offset));
            }
            true
        });
        assert_eq!(offsets, vec![2, 5]);
        assert_eq!(h.tailer.position().unwrap().1, 9);
    }
}
