//! A followed file, or pattern of files: the `sluice-file` tailers adapted
//! to the engine, resuming from the positions of a checkpoint directory and
//! staging their positions for its next snapshot.
//!
//! Every file of a pattern is an input of its own (opened with
//! [`Feed::open_input`]): its lines are acknowledged, and its event-time
//! frontier followed, separately from the other files'.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sluice_file::{
    is_glob, FileId, Fingerprint, GlobOutput, GlobTailer, Lines, Notice, Output, SavedFile, SavedPosition, StartAt,
    TailConfig, Tailer,
};

use super::{Acker, Feed, Source};
use crate::checkpoint::{CheckpointDir, CheckpointError, FilePosition, PatternFile};
use crate::error::RunError;

/// How often the source thread stages a changed position on its own at most
/// (the executor has every source stage its positions for each snapshot).
const SAVE_EVERY: Duration = Duration::from_secs(1);

/// How a followed file is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowOptions {
    /// Read the file found at start from its beginning rather than its end.
    pub from_beginning: bool,
    /// How often to look at the file without a notification.
    pub poll_interval: Duration,
    /// How long a partial last line may wait for its newline.
    pub idle_flush: Duration,
}

impl Default for FollowOptions {
    fn default() -> Self {
        FollowOptions {
            from_beginning: false,
            poll_interval: Duration::from_millis(250),
            idle_flush: Duration::from_secs(5),
        }
    }
}

/// Follows a file, or every file matching a pattern, like `tail -F` until
/// the run stops.
pub struct FollowSource {
    /// What the tailer follows.
    config: TailConfig,
    /// Where positions are saved, if anywhere.
    checkpoint: Option<Saving>,
}

/// How a source saves positions.
enum Saving {
    /// One path.
    File(Arc<FileCheckpoint>),
    /// A pattern, and what was saved for it (none when nothing was).
    Pattern(Arc<PatternCheckpoint>, Option<Vec<SavedFile>>),
}

impl FollowSource {
    /// A source following `path`, a file or a pattern in the file name.
    /// With a checkpoint directory it resumes from the positions saved
    /// there (which win over `from_beginning`), and stages its positions
    /// there as lines are acknowledged, for the next snapshot.
    pub fn new(
        path: PathBuf,
        opts: FollowOptions,
        max_line: usize,
        checkpoint: Option<&CheckpointDir>,
    ) -> Result<Self, CheckpointError> {
        let mut config = TailConfig::new(&path);
        config.start = if opts.from_beginning { StartAt::Beginning } else { StartAt::End };
        config.poll_interval = opts.poll_interval;
        config.idle_flush = opts.idle_flush;
        config.max_line = max_line;
        let key = format!("file:{}", path.display());
        let checkpoint = checkpoint.map(|dir| {
            let saved = dir.positions();
            if is_glob(&path) {
                let files = saved.patterns.get(&key).map(|files| {
                    files
                        .iter()
                        .map(|f| SavedFile { path: PathBuf::from(&f.path), position: saved_position(&f.position) })
                        .collect()
                });
                // Resumed: the last snapshot has this pattern's list, and
                // nothing is written before the next snapshot.
                let state = Mutex::new(PatternState { ever_written: files.is_some(), ..PatternState::default() });
                let write_lock = Mutex::new(());
                Saving::Pattern(Arc::new(PatternCheckpoint { dir: dir.clone(), key, state, write_lock }), files)
            } else {
                if let Some(p) = saved.sources.get(&key) {
                    config.start = StartAt::Saved(saved_position(p));
                }
                let state = Mutex::new(SaveState { saved: saved.sources.get(&key).copied(), ..SaveState::default() });
                Saving::File(Arc::new(FileCheckpoint { dir: dir.clone(), key, state, write_lock: Mutex::new(()) }))
            }
        });
        Ok(FollowSource { config, checkpoint })
    }
}

fn saved_position(p: &FilePosition) -> SavedPosition {
    SavedPosition {
        file: FileId { dev: p.dev, ino: p.ino },
        fingerprint: Fingerprint { sum: p.fingerprint_sum, len: p.fingerprint_len },
        offset: p.offset,
    }
}

fn position(file: FileId, fingerprint: Fingerprint, offset: u64) -> FilePosition {
    FilePosition {
        dev: file.dev,
        ino: file.ino,
        fingerprint_sum: fingerprint.sum,
        fingerprint_len: fingerprint.len,
        offset,
    }
}

/// When a save is due: never saved yet, or the interval passed.
fn due(last_write: Option<Instant>) -> bool {
    last_write.is_none_or(|t| t.elapsed() >= SAVE_EVERY)
}

/// Stages a followed file's acknowledged position (and writes where it
/// starts reading, on a fresh start).
struct FileCheckpoint {
    /// Where.
    dir: CheckpointDir,
    /// This source's name in the file.
    key: String,
    /// Shared by the source thread (which files exist) and the executor
    /// (what is acknowledged).
    state: Mutex<SaveState>,
    /// Held while the checkpoint file is written.
    write_lock: Mutex<()>,
}

#[derive(Default)]
struct SaveState {
    /// The identity of each file generation not yet fully acknowledged.
    files: BTreeMap<u64, (FileId, Fingerprint)>,
    /// The position last staged (or written).
    saved: Option<FilePosition>,
    /// The position to save, if it changed since the last write.
    pending: Option<FilePosition>,
    /// When the file was last written, or last failed to be.
    last_write: Option<Instant>,
    /// Whether the starting point was handled (saved, or found saved).
    baseline: bool,
    /// Whether the last write failed (to warn once per failing stretch).
    failing: bool,
    /// Whether the pending position is a starting point, written at once
    /// rather than staged for the next snapshot.
    durable: bool,
}

impl FileCheckpoint {
    /// Notes which file a generation is (its fingerprint grows with it).
    fn note(&self, generation: u64, file: FileId, fingerprint: Fingerprint) {
        if let Ok(mut s) = self.state.lock() {
            s.files.insert(generation, (file, fingerprint));
        }
    }

    /// A file starts being read. The first time, if nothing was saved for
    /// this source yet, its starting point is saved at once, so that a
    /// restart before the first acknowledgement does not skip to the end of
    /// the file.
    fn opened(&self, generation: u64, at: SavedPosition) {
        self.note(generation, at.file, at.fingerprint);
        {
            let Ok(mut s) = self.state.lock() else { return };
            if std::mem::replace(&mut s.baseline, true) || s.saved.is_some() {
                return;
            }
            s.pending = Some(position(at.file, at.fingerprint, at.offset));
            s.durable = true;
        }
        let _ = self.write(true);
    }

    /// Stages the pending position for the next snapshot, when `now` or
    /// when due; a starting point is written to disk at once instead. The
    /// state lock is not held while the file is written and synced, so that
    /// acknowledgements (`ack`) never wait for the disk; `write_lock` keeps
    /// writes one at a time.
    fn write(&self, now: bool) -> Result<(), String> {
        let _one = self.write_lock.lock().map_err(|_| format!("{}: position state poisoned", self.key))?;
        let pos = {
            let Ok(mut s) = self.state.lock() else { return Err(format!("{}: position state poisoned", self.key)) };
            if s.pending.is_none() || !(now || due(s.last_write)) {
                return Ok(());
            }
            s.last_write = Some(Instant::now());
            (s.pending.take().expect("checked"), std::mem::take(&mut s.durable))
        };
        let (pos, durable) = pos;
        let change = |p: &mut crate::checkpoint::Positions| {
            p.sources.insert(self.key.clone(), pos);
        };
        let result = if durable {
            // Nothing of this file was handed out yet: nothing newer is
            // staged.
            self.dir.update(change, true)
        } else {
            self.dir.stage(change);
            Ok(())
        };
        let Ok(mut s) = self.state.lock() else { return Err(format!("{}: position state poisoned", self.key)) };
        match result {
            Ok(()) => {
                s.saved = Some(pos);
                s.failing = false;
                Ok(())
            }
            Err(e) => {
                // The last good checkpoint stays; the next try comes after
                // the usual interval (unless a newer position is pending).
                if !std::mem::replace(&mut s.failing, true) {
                    tracing::warn!(source = %self.key, "cannot save the position: {e}; keeping the last saved one");
                }
                // Tried again later, unless an acknowledgement came since:
                // that one is only ever staged.
                if s.pending.is_none() {
                    s.pending = Some(pos);
                    s.durable = durable;
                }
                Err(format!("cannot save the position of {}: {e}", self.key))
            }
        }
    }
}

impl Acker for FileCheckpoint {
    fn ack(&self, generation: u64, offset: u64) {
        let Ok(mut s) = self.state.lock() else { return };
        // Files are read one after the other, so an acknowledgement names a
        // file that was noted (its lines were handed out) or opened.
        let Some(&(file, fingerprint)) = s.files.get(&generation) else { return };
        // Older files are done with.
        s.files = s.files.split_off(&generation);
        s.baseline = true;
        let pos = position(file, fingerprint, offset);
        if s.saved != Some(pos) || s.pending.is_some() {
            s.pending = Some(pos);
            // An acknowledged place goes with the snapshot being taken:
            // staged, never written on its own.
            s.durable = false;
        }
    }

    fn save(&self, force: bool) -> Result<(), String> {
        self.write(force)
    }
}

/// Stages the positions of the files of a pattern.
struct PatternCheckpoint {
    /// Where.
    dir: CheckpointDir,
    /// This source's name in the file.
    key: String,
    /// Shared by the source thread and the executor.
    state: Mutex<PatternState>,
    /// Held while the checkpoint file is written.
    write_lock: Mutex<()>,
}

#[derive(Default)]
struct PatternState {
    /// The paths followed (and those ended whose files still exist), by
    /// slot number.
    slots: BTreeMap<u64, SlotFiles>,
    /// Counts changes; `written` is the count the last good write saw.
    changes: u64,
    /// The change count of the last good write.
    written: u64,
    /// Whether a write succeeded yet.
    ever_written: bool,
    /// When the file was last written, or last failed to be.
    last_write: Option<Instant>,
    /// Whether the last write failed.
    failing: bool,
}

/// The files read under one path.
struct SlotFiles {
    /// The path.
    path: String,
    /// Each file by generation: which file, how far handed out, how far
    /// acknowledged. Files read to their end stay while they exist.
    files: BTreeMap<u64, FileRecord>,
    /// Whether the path's tailer ended.
    ended: bool,
}

#[derive(Debug, Clone, Copy)]
struct FileRecord {
    /// The file.
    file: FileId,
    /// Its first bytes.
    fingerprint: Fingerprint,
    /// End of the last line handed out.
    end: u64,
    /// Where the first line not acknowledged starts.
    acked: u64,
    /// Where reading it started in this run.
    start: u64,
}

impl PatternCheckpoint {
    fn with<R>(&self, f: impl FnOnce(&mut PatternState) -> R) -> Option<R> {
        self.state.lock().ok().map(|mut s| f(&mut s))
    }

    fn started(&self, slot: u64, path: &std::path::Path) {
        self.with(|s| {
            let path = path.to_string_lossy().into_owned();
            s.slots.insert(slot, SlotFiles { path, files: BTreeMap::new(), ended: false });
        });
    }

    /// A file of the slot starts being read at `at`.
    fn opened(&self, slot: u64, generation: u64, at: SavedPosition) {
        self.with(|s| {
            if let Some(sl) = s.slots.get_mut(&slot) {
                let record = FileRecord {
                    file: at.file,
                    fingerprint: at.fingerprint,
                    end: at.offset,
                    acked: at.offset,
                    start: at.offset,
                };
                sl.files.insert(generation, record);
                s.changes += 1;
            }
        });
    }

    /// Lines of a file of the slot were handed out.
    fn note(&self, slot: u64, lines: &Lines) {
        self.with(|s| {
            if let Some(r) = s.slots.get_mut(&slot).and_then(|sl| sl.files.get_mut(&lines.generation)) {
                r.fingerprint = lines.fingerprint;
                r.end = lines.chunk.end_offset;
            }
        });
    }

    fn ended(&self, slot: u64) {
        self.with(|s| {
            if let Some(sl) = s.slots.get_mut(&slot) {
                sl.ended = true;
            }
            s.slots.retain(|_, sl| !(sl.ended && sl.files.is_empty()));
        });
    }

    /// A file no longer exists: nothing needs to be known of it.
    fn forgotten(&self, file: FileId) {
        self.with(|s| {
            for sl in s.slots.values_mut() {
                let before = sl.files.len();
                sl.files.retain(|_, r| r.file != file);
                s.changes += u64::from(sl.files.len() != before);
            }
            s.slots.retain(|_, sl| !(sl.ended && sl.files.is_empty()));
        });
    }

    fn ack(&self, slot: u64, generation: u64, offset: u64) {
        self.with(|s| {
            let Some(sl) = s.slots.get_mut(&slot) else { return };
            let mut changed = false;
            for (&g, r) in sl.files.range_mut(..=generation) {
                let upto = if g == generation { offset } else { r.end };
                changed |= r.acked != upto;
                r.acked = upto;
            }
            s.changes += u64::from(changed);
        });
    }

    /// Stages the positions for the next snapshot, if something changed
    /// and it is due (or `force`d). On a fresh start (the last snapshot has
    /// no list for this pattern), the first call also writes at once where
    /// each file started being read, even an empty list, so that a restart
    /// before the first snapshot reads files that appeared meanwhile from
    /// their start: it goes to disk with the last snapshot's window state,
    /// which none of this run's lines are in. Until that write succeeds,
    /// every call tries it again, as long as no line was acknowledged.
    fn save(&self, force: bool) -> Result<(), String> {
        let poisoned = || format!("{}: position state poisoned", self.key);
        // One write at a time; the state lock is not held while writing, so
        // acknowledgements (`ack`) never wait for the disk.
        let _one = self.write_lock.lock().map_err(|_| poisoned())?;
        let (starts, acked, version) = {
            let mut s = self.state.lock().map_err(|_| poisoned())?;
            let mut first = !s.ever_written;
            if first && s.slots.values().any(|sl| sl.files.values().any(|r| r.acked != r.start)) {
                // Lines were acknowledged before the starting points could
                // be written: snapshots carry the positions from now on,
                // and the starting points, behind them, must never reach
                // the disk.
                s.ever_written = true;
                first = false;
            }
            if !first && (s.changes == s.written || !(force || due(s.last_write))) {
                return Ok(());
            }
            s.last_write = Some(Instant::now());
            let list = |start: bool| -> Vec<PatternFile> {
                s.slots
                    .values()
                    .flat_map(|sl| {
                        sl.files.values().map(move |r| PatternFile {
                            path: sl.path.clone(),
                            position: position(r.file, r.fingerprint, if start { r.start } else { r.acked }),
                        })
                    })
                    .collect()
            };
            (first.then(|| list(true)), list(false), s.changes)
        };
        let mut result = Ok(());
        if let Some(starts) = starts {
            // Staged too, at once: a snapshot written between this write
            // and the staging below would otherwise go to disk without the
            // list (no snapshot so far holds a line of these files, so the
            // starting points go with any of them). The acknowledged
            // places staged below are the same while nothing is
            // acknowledged, and newer after.
            let written = self.dir.update(
                |p| {
                    p.patterns.insert(self.key.clone(), starts.clone());
                },
                true,
            );
            let mut s = self.state.lock().map_err(|_| poisoned())?;
            match written {
                Ok(()) => {
                    s.ever_written = true;
                    s.failing = false;
                }
                Err(e) => {
                    if !std::mem::replace(&mut s.failing, true) {
                        tracing::warn!(source = %self.key, "cannot save where reading starts: {e}; will keep trying");
                    }
                    result = Err(format!("cannot save the positions of {}: {e}", self.key));
                }
            }
        }
        // Acknowledged places go with the window state of the snapshot
        // being taken: staged for it, never written on their own.
        self.dir.stage(|p| {
            p.patterns.insert(self.key.clone(), acked.clone());
        });
        let mut s = self.state.lock().map_err(|_| poisoned())?;
        s.written = s.written.max(version);
        result
    }
}

/// The acknowledgements of one file of a pattern.
struct SlotAcker {
    /// The pattern's positions.
    shared: Arc<PatternCheckpoint>,
    /// Which path.
    slot: u64,
}

impl Acker for SlotAcker {
    fn ack(&self, generation: u64, offset: u64) {
        self.shared.ack(self.slot, generation, offset);
    }

    fn save(&self, force: bool) -> Result<(), String> {
        self.shared.save(force)
    }
}

/// Hands lines to the executor, warning about cut lines; false when the
/// tailer should stop.
fn send(feed: &Feed, name: &str, lines: Lines) -> bool {
    let cut = lines.chunk.lines.iter().filter(|l| l.truncated).count() as u32;
    if cut > 0 {
        tracing::warn!(source = %name, lines = cut, "cut lines longer than the maximum line length (--max-line-bytes)");
    }
    let bytes = lines.chunk.data.len() as u64;
    feed.send_file_lines(lines.chunk, lines.generation, bytes, cut)
}

/// Logs a tailer's notice about `path`.
fn log_notice(name: &str, path: &std::path::Path, n: &Notice) {
    let path = path.display();
    match n {
        Notice::Waiting(p) => tracing::warn!(source = %name, "waiting for {} to appear", p.display()),
        Notice::Rotated { .. } => tracing::info!(source = %name, "{path} rotated; reading the old file to its end"),
        Notice::Truncated { read_to, .. } => {
            tracing::warn!(source = %name, read_to, "{path} truncated; reading it again from its start")
        }
        Notice::Unreadable(why) => tracing::warn!(source = %name, "cannot read {why}; will keep trying"),
        Notice::SavedFileGone(_) => {
            tracing::warn!(source = %name, "the file of the saved position of {path} is gone; reading from the start")
        }
        Notice::Opened { .. } => {}
    }
}

impl Source for FollowSource {
    fn name(&self) -> String {
        format!("file:{}", self.config.path.display())
    }

    fn resumable(&self) -> bool {
        self.checkpoint.is_some()
    }

    fn acker(&self) -> Option<Arc<dyn Acker>> {
        match &self.checkpoint {
            Some(Saving::File(c)) => Some(c.clone() as Arc<dyn Acker>),
            _ => None,
        }
    }

    fn run(self: Box<Self>, feed: Feed) -> Result<(), RunError> {
        let name = self.name();
        if !is_glob(&self.config.path) {
            let checkpoint = match self.checkpoint {
                Some(Saving::File(c)) => Some(c),
                _ => None,
            };
            let path = self.config.path.clone();
            let handle = |out| match out {
                Output::Lines(lines) => {
                    if let Some(c) = &checkpoint {
                        c.note(lines.generation, lines.file, lines.fingerprint);
                        // Also here: one poll may read a long backlog.
                        let _ = c.save(false);
                    }
                    send(&feed, &name, lines)
                }
                Output::Notice(n) => {
                    if let (Some(c), Notice::Opened { position, generation }) = (&checkpoint, &n) {
                        c.opened(*generation, *position);
                    }
                    log_notice(&name, &path, &n);
                    true
                }
            };
            // A starting point is written here, not on the executor's
            // thread, so that its fsync does not delay events.
            let tick = || {
                if let Some(c) = &checkpoint {
                    let _ = c.save(false);
                }
            };
            Tailer::new(self.config).run_ticking(feed.stop_flag(), handle, tick);
            return Ok(());
        }
        let (checkpoint, saved) = match self.checkpoint {
            Some(Saving::Pattern(c, saved)) => (Some(c), saved),
            _ => (None, None),
        };
        let glob = match saved {
            Some(saved) => GlobTailer::resume(self.config, saved),
            None => GlobTailer::new(self.config),
        }
        .map_err(|message| RunError::Source { source_name: name.clone(), message })?;
        // Per slot: its input's feed and its path.
        let mut slots: HashMap<u64, (Feed, PathBuf)> = HashMap::new();
        glob.run(feed.stop_flag(), |out| match out {
            GlobOutput::Started { slot, path } => {
                let acker = checkpoint.as_ref().map(|c| {
                    c.started(slot, &path);
                    Arc::new(SlotAcker { shared: c.clone(), slot }) as Arc<dyn Acker>
                });
                tracing::info!(source = %name, "following {}", path.display());
                match feed.open_input(acker) {
                    Some(f) => {
                        slots.insert(slot, (f, path));
                        true
                    }
                    None => false,
                }
            }
            GlobOutput::Slot { slot, output } => {
                let Some((f, path)) = slots.get(&slot) else { return true };
                match output {
                    Output::Lines(lines) => {
                        if let Some(c) = &checkpoint {
                            c.note(slot, &lines);
                            let _ = c.save(false);
                        }
                        send(f, &name, lines)
                    }
                    Output::Notice(n) => {
                        if let (Some(c), Notice::Opened { position, generation }) = (&checkpoint, &n) {
                            c.opened(slot, *generation, *position);
                        }
                        log_notice(&name, path, &n);
                        true
                    }
                }
            }
            GlobOutput::Ended { slot } => {
                if let Some(c) = &checkpoint {
                    c.ended(slot);
                }
                slots.remove(&slot).is_none_or(|(f, _)| f.close_input())
            }
            GlobOutput::Copy(path) => {
                tracing::info!(source = %name, "{} is a copy of a file already read (copytruncate); not reading it again", path.display());
                true
            }
            GlobOutput::Forgotten(file) => {
                if let Some(c) = &checkpoint {
                    c.forgotten(file);
                }
                true
            }
            GlobOutput::Waiting(dir) => {
                tracing::warn!(source = %name, "waiting for the directory {} to appear", dir.display());
                true
            }
            GlobOutput::Polled => {
                if let Some(c) = &checkpoint {
                    // Failures are warned about once, and retried.
                    let _ = c.save(false);
                }
                true
            }
        });
        Ok(())
    }
}
