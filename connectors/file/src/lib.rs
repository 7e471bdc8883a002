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
//!   its end, and until it has been quiet for `rotate_wait` (a writer may
//!   still be finishing in it), before it is closed; only then is the new
//!   file read, from its start. Files are read one after the other, so every
//!   line handed out is ordered by (generation, offset), and one saved
//!   position says exactly what was handed out;
//! - **copytruncate and truncation in place**: the file is shorter than what
//!   was read, or its first bytes changed (truncated and rewritten between
//!   two looks): the held-back partial line is handed out and reading starts
//!   again at offset 0;
//! - **delete and recreate**, **a directory that does not exist yet or
//!   disappears**: a vanished path is waited for, with one notice; the open
//!   file is read to its end first.
//!
//! [`GlobTailer`] follows every file whose name matches a pattern, each like
//! this, including files that appear later.
//!
//! Watching uses inotify (through `notify`) on the parent directory to wake
//! up early, and polls every `poll_interval` whatever happens, so a missed
//! or unavailable notification only delays reading.

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use sluice_lines::{Chunk, LineReader};

mod glob;
pub use glob::{is_glob, GlobOutput, GlobTailer, SavedFile};

/// How many leading bytes identify a file's content.
pub const HEAD_BYTES: usize = 512;

/// Where to start in the file found at start-up. Files that appear later
/// (after a rotation, or created later) are always read from their start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartAt {
    /// From its first byte.
    Beginning,
    /// From its current end: only lines appended from now on.
    #[default]
    End,
    /// From this byte offset.
    Offset(u64),
    /// From a saved position: the file is found again by its identity and
    /// fingerprint, at the path or, if it was rotated while nobody followed
    /// it, among the other files of the directory. It is read to its end,
    /// then the file at the path from its start.
    Saved(SavedPosition),
}

/// What identifies a file's content: a checksum of its first bytes (up to
/// 512) and how many there were.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Fingerprint {
    /// FNV-1a of the first `len` bytes.
    pub sum: u64,
    /// How many bytes the checksum covers.
    pub len: u32,
}

/// A place to resume reading: which file, and where in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SavedPosition {
    /// Device and inode of the file.
    pub file: FileId,
    /// Its first bytes.
    pub fingerprint: Fingerprint,
    /// The byte offset of the first line not yet acknowledged.
    pub offset: u64,
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
    /// How long a partial last line may stay quiet before it is handed out
    /// as a line of its own.
    pub idle_flush: Duration,
    /// How long a rotated-away file must stay quiet before it is closed and
    /// the new file at the path is read.
    pub rotate_wait: Duration,
    /// Longest line in bytes; longer ones are cut.
    pub max_line: usize,
    /// Files read earlier under this path, saved with positions not read to
    /// their end (a pattern's restart): each is found again like a
    /// [`StartAt::Saved`] file, and read from its offset to its end, oldest
    /// first, before the file `start` names.
    pub drain_first: Vec<SavedPosition>,
}

impl TailConfig {
    /// Follows `path` from its end, looking every 250 ms, flushing partial
    /// lines after 5 s, closing rotated files after 1 s of quiet, with 1 MiB
    /// lines.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        TailConfig {
            path: path.into(),
            start: StartAt::End,
            poll_interval: Duration::from_millis(250),
            idle_flush: Duration::from_secs(5),
            rotate_wait: Duration::from_secs(1),
            max_line: sluice_lines::DEFAULT_MAX_LINE,
            drain_first: Vec::new(),
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
    /// Its first bytes, to find it again after a restart.
    pub fingerprint: Fingerprint,
    /// Counts files in the order they are read: a rotated or truncated file
    /// gets a new number, so (generation, offset) orders every line handed out.
    pub generation: u64,
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
        /// Its first bytes before the truncation (a copy made by
        /// copytruncate starts with them).
        fingerprint: Fingerprint,
    },
    /// The path cannot be read (permission denied, a directory...); said
    /// once until that changes. The tailer keeps trying.
    Unreadable(String),
    /// The file of a saved position is nowhere to be found (deleted while
    /// nobody followed it): reading starts at the path's start.
    SavedFileGone(SavedPosition),
    /// A file was opened for reading at this position, with this generation:
    /// a place to resume from even before any of its lines is handed out.
    Opened {
        /// The file and the offset reading starts at.
        position: SavedPosition,
        /// Its generation.
        generation: u64,
    },
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
    /// Its number in reading order (see [`Lines::generation`]).
    generation: u64,
    /// Whether [`Notice::Opened`] was said for it: when its reading starts,
    /// which for a new file after a rotation is after the old one is done.
    announced: bool,
}

impl Tracked {
    fn open(path: &Path, offset: u64, max_line: usize, generation: u64) -> io::Result<Tracked> {
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
            generation,
            announced: false,
        })
    }

    fn fingerprint(&self) -> Fingerprint {
        Fingerprint { sum: self.head.0, len: self.head.1 as u32 }
    }

    /// Tells the user where reading of this file starts (once).
    fn announce(&mut self, out: &mut dyn FnMut(Output) -> bool) -> bool {
        if self.announced {
            return true;
        }
        self.announced = true;
        let position =
            SavedPosition { file: self.id, fingerprint: self.fingerprint(), offset: self.reader.resume_offset() };
        out(Output::Notice(Notice::Opened { position, generation: self.generation }))
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

    /// Hands out every complete line available now. Any bytes arriving,
    /// even half a line, count as activity.
    fn drain(&mut self, out: &mut dyn FnMut(Output) -> bool) -> io::Result<bool> {
        if !self.announce(out) {
            return Ok(false);
        }
        let before = self.reader.stats().bytes;
        let result = self.drain_lines(out);
        if self.reader.stats().bytes > before {
            self.last_data = Instant::now();
        }
        result
    }

    fn drain_lines(&mut self, out: &mut dyn FnMut(Output) -> bool) -> io::Result<bool> {
        // A regular file no longer than what was read has nothing new: no
        // read then, which would first clear a 64 KiB buffer (for each of
        // the idle files of a pattern, at every poll). A length of 0 is
        // not trusted: files of /proc say 0 and have text.
        let meta = self.reader.get_ref().metadata().ok().filter(|m| m.is_file() && m.len() > 0);
        if let Some(m) = meta {
            if m.len() <= self.read_to() {
                return Ok(true);
            }
            self.reader.expect(m.len() - self.read_to());
        }
        while let Some(chunk) = self.reader.read_available()? {
            if self.head.1 < HEAD_BYTES && chunk.end_offset > self.head.1 as u64 {
                // Identify the file by the bytes handed out so far, so that a
                // saved position can tell this file from a rewritten one.
                let covered = chunk.end_offset.min(HEAD_BYTES as u64) as usize;
                self.head = head_of(self.reader.get_ref(), covered)?;
            }
            if !out(Output::Lines(self.lines(chunk))) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn lines(&self, chunk: Chunk) -> Lines {
        Lines { file: self.id, fingerprint: self.fingerprint(), generation: self.generation, chunk }
    }

    /// Hands out the held-back partial line, if any.
    fn flush_partial(&mut self, out: &mut dyn FnMut(Output) -> bool) -> bool {
        match self.reader.take_partial() {
            Some(chunk) => out(Output::Lines(self.lines(chunk))),
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
    fn restart(&mut self, generation: u64, out: &mut dyn FnMut(Output) -> bool) -> io::Result<bool> {
        if !self.flush_partial(out) {
            return Ok(false);
        }
        self.generation = generation;
        self.reader.seek_to(0)?;
        self.head = head_of(self.reader.get_ref(), HEAD_BYTES)?;
        self.last_data = Instant::now();
        self.announced = false;
        Ok(true)
    }
}

/// A checksum (FNV-1a) of the first `limit` bytes, and how many there were.
pub(crate) fn head_of(file: &File, limit: usize) -> io::Result<(u64, usize)> {
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

/// Whether the file at `p` is the one of `saved`: the same first bytes, and
/// at least as long. A file saved while still empty has no content to
/// recognize it by, so only its inode can.
fn same_file(p: &Path, saved: SavedPosition) -> io::Result<bool> {
    let file = File::open(p)?;
    let meta = file.metadata()?;
    let len = saved.fingerprint.len as usize;
    Ok(meta.is_file()
        && meta.len() >= saved.offset
        && (len > 0 || FileId::of(&meta) == saved.file)
        && head_of(&file, len)? == (saved.fingerprint.sum, len))
}

/// Finds the file of a saved position among the neighbours of `path` (not
/// `path` itself; regular files only): the same inode first, then the same
/// content (a copy made by copytruncate), the most recently modified first.
/// Also returns the saved file itself if it was found renamed but truncated
/// since (what it holds now was written after the truncation). An error
/// names a file that could not be looked at.
type Found = (Option<PathBuf>, Option<PathBuf>);
fn find_saved(path: &Path, saved: SavedPosition) -> Result<Found, (PathBuf, io::Error)> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut candidates: Vec<(bool, std::cmp::Reverse<std::time::SystemTime>, PathBuf)> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| *p != path)
        .filter_map(|p| {
            let meta = fs::metadata(&p).ok().filter(|m| m.is_file())?;
            let modified = meta.modified().unwrap_or(std::time::UNIX_EPOCH);
            Some((FileId::of(&meta) != saved.file, std::cmp::Reverse(modified), p))
        })
        .collect();
    candidates.sort();
    let mut found = None;
    let mut cut_original = None;
    for (other, _, p) in &candidates {
        match same_file(p, saved) {
            Ok(true) if found.is_none() => found = Some(p.clone()),
            Ok(true) => {}
            Ok(false) if !*other => cut_original = Some(p.clone()),
            Ok(false) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err((p.clone(), e)),
        }
    }
    Ok((found, cut_original))
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
    /// The generation the next file (or restarted file) gets.
    next_generation: u64,
}

impl Tailer {
    /// A tailer for `config`. Nothing is opened until the first poll.
    pub fn new(config: TailConfig) -> Self {
        Tailer { config, current: None, draining: Vec::new(), first_open: true, last_notice: None, next_generation: 0 }
    }

    /// The file currently followed and how far it has been read (handed out
    /// or held back).
    pub fn position(&self) -> Option<(FileId, u64)> {
        self.current.as_ref().map(|t| (t.id, t.read_to()))
    }

    fn generation(&mut self) -> u64 {
        self.next_generation += 1;
        self.next_generation - 1
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
        // Files rotated away, oldest first: read to the end; close once
        // quiet. The next one (and the file at the path) waits its turn.
        while let Some(t) = self.draining.first_mut() {
            if t.truncated() {
                let (read_to, fingerprint) = (t.read_to(), t.fingerprint());
                let generation = self.next_generation;
                self.next_generation += 1;
                if !t.restart(generation, out).unwrap_or(true)
                    || !out(Output::Notice(Notice::Truncated { file: t.id, read_to, fingerprint }))
                {
                    return false;
                }
            }
            // A file that became unreadable is closed once quiet, like the rest.
            if !t.drain(out).unwrap_or(true) {
                return false;
            }
            if t.last_data.elapsed() < self.config.rotate_wait {
                return true;
            }
            if !t.flush_partial(out) {
                return false;
            }
            self.draining.remove(0);
        }

        if let Some(t) = self.current.as_mut() {
            match t.drain(out) {
                Ok(true) => {}
                Ok(false) => return false,
                Err(e) => {
                    let msg = format!("{}: {e}", self.config.path.display());
                    return self.notice(Notice::Unreadable(msg), out);
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
        if self.first_open && !self.config.drain_first.is_empty() {
            for saved in std::mem::take(&mut self.config.drain_first) {
                let (found, cut_original) = match find_saved(&path, saved) {
                    Ok(f) => f,
                    Err((p, e)) => {
                        if !self.notice(Notice::Unreadable(format!("{}: {e}", p.display())), out) {
                            return false;
                        }
                        (None, None)
                    }
                };
                if found.is_none() && !self.notice(Notice::SavedFileGone(saved), out) {
                    return false;
                }
                let files = found.map(|f| (f, saved.offset)).into_iter().chain(cut_original.map(|f| (f, 0)));
                for (old, offset) in files {
                    let generation = self.generation();
                    match Tracked::open(&old, offset, self.config.max_line, generation) {
                        Ok(t) => t.retire(&mut self.draining),
                        Err(e) => {
                            if !self.notice(Notice::Unreadable(format!("{}: {e}", old.display())), out) {
                                return false;
                            }
                        }
                    }
                }
            }
        }
        let meta = match fs::metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // Deleted or renamed away: read what is left, then close.
                if let Some(t) = self.current.take() {
                    t.retire(&mut self.draining);
                }
                if self.first_open {
                    if let StartAt::Saved(saved) = self.config.start {
                        // The saved file may have been rotated away while
                        // nobody followed it; the path comes back later.
                        return self.resume(saved, None, out);
                    }
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
        let generation = self.next_generation;
        if let Some(t) = self.current.as_mut() {
            if t.id != id {
                let from = t.id;
                // The old file may also have been cut before it was renamed.
                if t.truncated() {
                    self.next_generation += 1;
                    if !t.restart(generation, out).unwrap_or(true) {
                        return false;
                    }
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
                let (read_to, fingerprint) = (t.read_to(), t.fingerprint());
                self.next_generation += 1;
                match t.restart(generation, out) {
                    Ok(true) => {}
                    Ok(false) => return false,
                    Err(e) => return self.notice(Notice::Unreadable(format!("{}: {e}", path.display())), out),
                }
                self.last_notice = None;
                return self.notice(Notice::Truncated { file: id, read_to, fingerprint }, out);
            }
            return true;
        }
        let offset = match (self.first_open, self.config.start) {
            (true, StartAt::End) => meta.len(),
            (true, StartAt::Offset(o)) => o,
            (true, StartAt::Saved(saved)) => return self.resume(saved, Some(id), out),
            _ => 0,
        };
        self.open(&path, offset, out)
    }

    /// Finds the file of a saved position again. At the path: resume there.
    /// Rotated away while nobody followed: read it from the saved offset to
    /// its end, then the path's file from its start. Nowhere: say so, and
    /// read the path's file from its start.
    fn resume(&mut self, saved: SavedPosition, at_path: Option<FileId>, out: &mut dyn FnMut(Output) -> bool) -> bool {
        let path = self.config.path.clone();
        if at_path == Some(saved.file) {
            match same_file(&path, saved) {
                Ok(true) => return self.open(&path, saved.offset, out),
                Ok(false) => {}
                Err(e) => {
                    return self.notice(Notice::Unreadable(format!("{}: {e}; will look again", path.display())), out)
                }
            }
        }
        // A file that cannot be opened now is asked again at the next poll
        // rather than taken for another file.
        let (found, cut_original) = match find_saved(&path, saved) {
            Ok(f) => f,
            Err((p, e)) => {
                return self.notice(Notice::Unreadable(format!("{}: {e}; will look again", p.display())), out)
            }
        };
        self.first_open = false;
        let mut resume_from = Vec::new();
        match found {
            Some(old) => resume_from.push((old, saved.offset)),
            None => {
                if !self.notice(Notice::SavedFileGone(saved), out) {
                    return false;
                }
            }
        }
        resume_from.extend(cut_original.map(|p| (p, 0)));
        for (old, offset) in resume_from {
            let generation = self.generation();
            match Tracked::open(&old, offset, self.config.max_line, generation) {
                Ok(t) => t.retire(&mut self.draining),
                Err(e) => return self.notice(Notice::Unreadable(format!("{}: {e}", old.display())), out),
            }
        }
        if at_path.is_none() {
            return self.notice(Notice::Waiting(path), out);
        }
        self.open(&path, 0, out)
    }

    fn open(&mut self, path: &Path, offset: u64, out: &mut dyn FnMut(Output) -> bool) -> bool {
        let generation = self.next_generation;
        match Tracked::open(path, offset, self.config.max_line, generation) {
            Ok(t) => {
                self.current = Some(t);
                self.next_generation += 1;
                self.first_open = false;
                self.last_notice = None;
                true
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => self.notice(Notice::Waiting(path.to_path_buf()), out),
            Err(e) => self.notice(Notice::Unreadable(format!("{}: {e}", path.display())), out),
        }
    }

    /// True while a file rotated away is still being read to its end.
    pub fn is_draining(&self) -> bool {
        !self.draining.is_empty()
    }

    /// True when no file is open: the path is missing and everything read.
    pub fn is_idle(&self) -> bool {
        self.current.is_none() && self.draining.is_empty()
    }

    /// The files open now (being read, or read to their end before closing).
    pub fn open_files(&self) -> impl Iterator<Item = FileId> + '_ {
        self.current.iter().chain(&self.draining).map(|t| t.id)
    }

    /// The first bytes of the files open now.
    pub fn fingerprints(&self) -> impl Iterator<Item = Fingerprint> + '_ {
        self.current.iter().chain(&self.draining).map(Tracked::fingerprint)
    }

    /// Polls until `stop` is set or `out` returns false, waking up on file
    /// system notifications for the parent directory, and at least every
    /// `poll_interval`.
    pub fn run(self, stop: &AtomicBool, out: impl FnMut(Output) -> bool) {
        self.run_ticking(stop, out, || {});
    }

    /// Like [`Tailer::run`], calling `tick` after every poll: a place for
    /// periodic work on the same thread, like saving positions.
    pub fn run_ticking(mut self, stop: &AtomicBool, mut out: impl FnMut(Output) -> bool, mut tick: impl FnMut()) {
        let interval = self.config.poll_interval;
        // One file: every wake-up looks at it.
        follow_loop(&parent_dir(&self.config.path), interval, stop, |_| {
            let more = self.poll(&mut out);
            tick();
            more
        });
    }
}

/// The directory a path is in (`.` for a bare name).
pub(crate) fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Why [`follow_loop`] polls.
#[derive(Debug, Default)]
pub(crate) enum Wake {
    /// Look at everything: the first poll, every `interval`, and any
    /// notification other than a file's data or metadata changing.
    #[default]
    All,
    /// Only the data (or metadata) of these files in the directory changed,
    /// by file name.
    Changed(HashSet<OsString>),
}

impl Wake {
    /// Adds what a notification says.
    fn add(&mut self, event: notify::Result<notify::Event>) {
        use notify::event::{EventKind, ModifyKind};
        let Wake::Changed(names) = self else { return };
        let only_data = event.as_ref().is_ok_and(|e| {
            !e.need_rescan()
                && !e.paths.is_empty()
                && matches!(
                    e.kind,
                    EventKind::Modify(ModifyKind::Data(_) | ModifyKind::Metadata(_)) | EventKind::Access(_)
                )
        });
        match event {
            Ok(e) if only_data => names.extend(e.paths.iter().filter_map(|p| p.file_name().map(OsString::from))),
            _ => *self = Wake::All,
        }
    }
}

/// Calls `poll` until `stop` is set or it returns false, waking up on file
/// system notifications for `dir`, and looking at everything at least
/// every `interval`. A notification that only some files' data changed
/// wakes it with their names: with many files followed, only those need a
/// look.
pub(crate) fn follow_loop(dir: &Path, interval: Duration, stop: &AtomicBool, mut poll: impl FnMut(&Wake) -> bool) {
    let (tx, rx) = mpsc::sync_channel(WAKE_QUEUE);
    let mut watcher: Option<notify::RecommendedWatcher> = None;
    let mut wake = Wake::All;
    let mut last_all = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        if watcher.is_none() && dir.is_dir() {
            watcher = watch(dir, tx.clone());
        }
        if matches!(wake, Wake::All) {
            last_all = Instant::now();
        }
        if !poll(&wake) {
            return;
        }
        wake = Wake::Changed(HashSet::new());
        let left = interval.saturating_sub(last_all.elapsed());
        match rx.recv_timeout(left) {
            Ok(event) => {
                wake.add(event);
                while let Ok(event) = rx.try_recv() {
                    wake.add(event);
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => wake = Wake::All,
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                std::thread::sleep(left);
                wake = Wake::All;
            }
        }
        if last_all.elapsed() >= interval {
            wake = Wake::All;
        }
        if !dir.is_dir() {
            watcher = None; // the directory went away: watch it again when it is back
        }
    }
}

/// Notifications waiting for the loop; when it is full, the watcher drops
/// new ones, and what they said waits for the loop's next look at
/// everything, at most `interval` away.
const WAKE_QUEUE: usize = 4096;

/// A watcher on `dir` that sends every notification; `None` when the
/// platform cannot watch (polling still works).
fn watch(dir: &Path, tx: mpsc::SyncSender<notify::Result<notify::Event>>) -> Option<notify::RecommendedWatcher> {
    use notify::Watcher;
    let mut w = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        // Full: see `WAKE_QUEUE`.
        let _ = tx.try_send(res);
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
            config.rotate_wait = Duration::from_millis(200);
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
        assert_eq!(h.poll(), v(&["c", "e"]), "the new file waits until the old one is done");
        assert!(h.notices.iter().any(|n| matches!(n, Notice::Rotated { .. })));
        h.append(&rotated, "f\n");
        h.append(&p, "g\n");
        assert_eq!(h.poll(), v(&["f"]), "the rotated file is still read until it goes quiet");
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(h.poll(), v(&["d", "g"]), "then the new file, from its start");
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

    /// Follows `path` from the start, and returns the saved position of the
    /// line `n` lines in (as if everything before it was acknowledged).
    fn position_after(path: &Path, n: usize) -> SavedPosition {
        let mut config = TailConfig::new(path);
        config.start = StartAt::Beginning;
        let mut t = Tailer::new(config);
        let mut saved = None;
        let mut seen = 0;
        t.poll(&mut |o| {
            if let Output::Lines(l) = o {
                for s in &l.chunk.lines {
                    if seen == n {
                        saved.get_or_insert(SavedPosition {
                            file: l.file,
                            fingerprint: l.fingerprint,
                            offset: s.offset,
                        });
                    }
                    seen += 1;
                }
            }
            true
        });
        saved.expect("enough lines")
    }

    fn resumed(path: &Path, saved: SavedPosition) -> (Vec<String>, Vec<Notice>) {
        let mut config = TailConfig::new(path);
        config.start = StartAt::Saved(saved);
        config.idle_flush = Duration::from_millis(1);
        config.rotate_wait = Duration::from_millis(1);
        let mut t = Tailer::new(config);
        let (mut lines, mut notices) = (Vec::new(), Vec::new());
        for _ in 0..3 {
            t.poll(&mut |o| {
                match o {
                    Output::Lines(l) => lines
                        .extend(l.chunk.lines.iter().map(|s| String::from_utf8_lossy(l.chunk.text(s)).into_owned())),
                    Output::Notice(n) => notices.push(n),
                }
                true
            });
            std::thread::sleep(Duration::from_millis(5));
        }
        (lines, notices)
    }

    #[test]
    fn resumes_at_a_saved_position() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("app.log");
        fs::write(&p, "a\nb\nc\n").unwrap();
        let saved = position_after(&p, 1);
        fs::OpenOptions::new().append(true).open(&p).unwrap().write_all(b"d\n").unwrap();
        assert_eq!(resumed(&p, saved).0, v(&["b", "c", "d"]));
    }

    #[test]
    fn resumes_in_a_file_rotated_while_down() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("app.log");
        fs::write(&p, "a\nb\nc\n").unwrap();
        let saved = position_after(&p, 2);
        fs::rename(&p, dir.path().join("app.log.1")).unwrap();
        fs::write(&p, "d\ne\n").unwrap();
        assert_eq!(resumed(&p, saved).0, v(&["c", "d", "e"]));
    }

    #[test]
    fn resumes_in_the_copy_after_a_copytruncate_while_down() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("app.log");
        fs::write(&p, "first\nsecond\nthird\n").unwrap();
        let saved = position_after(&p, 1);
        fs::copy(&p, dir.path().join("app.log.1")).unwrap();
        fs::OpenOptions::new().write(true).open(&p).unwrap().set_len(0).unwrap();
        fs::OpenOptions::new().append(true).open(&p).unwrap().write_all(b"fourth\n").unwrap();
        assert_eq!(resumed(&p, saved).0, v(&["second", "third", "fourth"]));
    }

    #[test]
    fn a_saved_file_that_is_gone_is_said_and_the_path_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("app.log");
        fs::write(&p, "a\nb\n").unwrap();
        let saved = position_after(&p, 1);
        fs::remove_file(&p).unwrap();
        fs::write(&p, "new\n").unwrap();
        let (lines, notices) = resumed(&p, saved);
        assert_eq!(lines, v(&["new"]));
        assert!(notices.contains(&Notice::SavedFileGone(saved)), "{notices:?}");
    }

    #[test]
    fn generations_order_files_and_truncations() {
        let mut h = Harness::new(StartAt::Beginning, |_| {});
        let p = h.path();
        h.append(&p, "a\n");
        let mut gens = Vec::new();
        let mut poll = |h: &mut Harness| {
            h.tailer.poll(&mut |o| {
                if let Output::Lines(l) = o {
                    gens.push(l.generation);
                }
                true
            });
        };
        poll(&mut h);
        fs::rename(&p, p.with_extension("log.1")).unwrap();
        h.append(&p, "b\n");
        poll(&mut h);
        std::thread::sleep(Duration::from_millis(300));
        poll(&mut h);
        OpenOptions::new().write(true).open(&p).unwrap().set_len(0).unwrap();
        h.append(&p, "c\n");
        poll(&mut h);
        assert_eq!(gens, vec![0, 1, 2]);
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

    #[test]
    fn only_data_notices_name_files_every_other_one_looks_at_everything() {
        use notify::event::{CreateKind, DataChange, EventKind, ModifyKind, RenameMode};
        let event = |kind, name: &str| Ok(notify::Event::new(kind).add_path(PathBuf::from("/logs").join(name)));
        let data = EventKind::Modify(ModifyKind::Data(DataChange::Any));
        let mut wake = Wake::Changed(HashSet::new());
        wake.add(event(data, "a.log"));
        wake.add(event(data, "b.log"));
        let Wake::Changed(names) = &wake else { panic!("data changes name their files: {wake:?}") };
        let mut names: Vec<_> = names.iter().cloned().collect();
        names.sort();
        assert_eq!(names, [OsString::from("a.log"), OsString::from("b.log")]);
        for other in [EventKind::Create(CreateKind::File), EventKind::Modify(ModifyKind::Name(RenameMode::Any))] {
            let mut wake = Wake::Changed(HashSet::new());
            wake.add(event(data, "a.log"));
            wake.add(event(other, "a.log"));
            wake.add(event(data, "b.log"));
            assert!(matches!(wake, Wake::All), "{other:?} looks at everything: {wake:?}");
        }
        let mut wake = Wake::Changed(HashSet::new());
        wake.add(Err(notify::Error::generic("queue overflow")));
        assert!(matches!(wake, Wake::All), "an error looks at everything");
        let mut wake = Wake::Changed(HashSet::new());
        wake.add(Ok(notify::Event::new(data)));
        assert!(matches!(wake, Wake::All), "a notice without a path looks at everything");
    }
}
