//! A followed file: the `sluice-file` tailer adapted to the engine, with
//! its position saved in a checkpoint directory.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sluice_file::{
    is_glob, FileId, Fingerprint, GlobTailer, Notice, Output, SavedPosition, StartAt, TailConfig, Tailer,
};

use super::{Acker, Feed, Source};
use crate::checkpoint::{CheckpointDir, CheckpointError, FilePosition};
use crate::error::RunError;

/// How often a changed position is written at most (the last one is always
/// written when the run ends).
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

/// Follows a file like `tail -F` until the run stops.
pub struct FollowSource {
    /// What the tailer follows.
    config: TailConfig,
    /// Where its position is saved, if anywhere.
    checkpoint: Option<Arc<FileCheckpoint>>,
}

impl FollowSource {
    /// A source following `path`. With a checkpoint directory it resumes
    /// from the position saved there (which wins over `from_beginning`), and
    /// saves its position as lines are acknowledged.
    pub fn new(
        path: std::path::PathBuf,
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
        let checkpoint = match checkpoint {
            Some(dir) => {
                let saved = dir.load()?;
                if let Some(p) = saved.get(&key) {
                    config.start = StartAt::Saved(SavedPosition {
                        file: FileId { dev: p.dev, ino: p.ino },
                        fingerprint: Fingerprint { sum: p.fingerprint_sum, len: p.fingerprint_len },
                        offset: p.offset,
                    });
                }
                Some(Arc::new(FileCheckpoint {
                    dir: dir.clone(),
                    key,
                    state: Mutex::new(SaveState { positions: saved, ..SaveState::default() }),
                }))
            }
            None => None,
        };
        Ok(FollowSource { config, checkpoint })
    }
}

/// Saves a followed file's acknowledged position.
struct FileCheckpoint {
    /// Where.
    dir: CheckpointDir,
    /// This source's name in the file.
    key: String,
    /// Shared by the source thread (which files exist) and the executor
    /// (what is acknowledged).
    state: Mutex<SaveState>,
}

#[derive(Default)]
struct SaveState {
    /// The identity of each file generation not yet fully acknowledged.
    files: BTreeMap<u64, (FileId, Fingerprint)>,
    /// Every saved position (other sources' too), as last written.
    positions: BTreeMap<String, FilePosition>,
    /// The position to save, if it changed since the last write.
    pending: Option<FilePosition>,
    /// When the file was last written, or last failed to be.
    last_write: Option<Instant>,
    /// Whether the starting point was handled (saved, or found saved).
    baseline: bool,
    /// Whether the last write failed (to warn once per failing stretch).
    failing: bool,
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
        let Ok(mut s) = self.state.lock() else { return };
        if std::mem::replace(&mut s.baseline, true) || s.positions.contains_key(&self.key) {
            return;
        }
        s.pending = Some(position(at.file, at.fingerprint, at.offset));
        let _ = self.save(&mut s);
    }

    fn save(&self, s: &mut SaveState) -> Result<(), String> {
        let Some(pos) = s.pending.take() else { return Ok(()) };
        let mut positions = s.positions.clone();
        positions.insert(self.key.clone(), pos);
        s.last_write = Some(Instant::now());
        match self.dir.store(&positions) {
            Ok(()) => {
                s.positions = positions;
                s.failing = false;
                Ok(())
            }
            Err(e) => {
                // The last good checkpoint stays; the next try comes after
                // the usual interval.
                if !std::mem::replace(&mut s.failing, true) {
                    tracing::warn!(source = %self.key, "cannot save the position: {e}; keeping the last saved one");
                }
                s.pending = Some(pos);
                Err(format!("cannot save the position of {}: {e}", self.key))
            }
        }
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

impl Acker for FileCheckpoint {
    fn ack(&self, generation: u64, offset: u64, force: bool) -> Result<(), String> {
        let Ok(mut s) = self.state.lock() else { return Err(format!("{}: position state poisoned", self.key)) };
        // Files are read one after the other, so an acknowledgement names a
        // file that was noted (its lines were handed out) or opened.
        let Some(&(file, fingerprint)) = s.files.get(&generation) else { return Ok(()) };
        // Older files are done with.
        s.files = s.files.split_off(&generation);
        s.baseline = true;
        let pos = position(file, fingerprint, offset);
        if s.positions.get(&self.key) != Some(&pos) || s.pending.is_some() {
            s.pending = Some(pos);
        }
        if force || s.last_write.is_none_or(|t| t.elapsed() >= SAVE_EVERY) {
            return self.save(&mut s);
        }
        Ok(())
    }
}

impl Source for FollowSource {
    fn name(&self) -> String {
        format!("file:{}", self.config.path.display())
    }

    fn acker(&self) -> Option<Arc<dyn Acker>> {
        self.checkpoint.clone().map(|c| c as Arc<dyn Acker>)
    }

    fn run(self: Box<Self>, feed: Feed) -> Result<(), RunError> {
        let name = self.name();
        let checkpoint = self.checkpoint;
        let glob = if is_glob(&self.config.path) {
            let g = GlobTailer::new(self.config.clone())
                .map_err(|message| RunError::Source { source_name: name.clone(), message })?;
            Some(g)
        } else {
            None
        };
        let handle = |out: Output| match out {
            Output::Lines(lines) => {
                let cut = lines.chunk.lines.iter().filter(|l| l.truncated).count() as u32;
                if cut > 0 {
                    tracing::warn!(source = %name, lines = cut, "cut lines longer than the maximum line length (--max-line-bytes)");
                }
                if let Some(c) = &checkpoint {
                    c.note(lines.generation, lines.file, lines.fingerprint);
                }
                let bytes = lines.chunk.data.len() as u64;
                feed.send_file_lines(lines.chunk, lines.generation, bytes, cut)
            }
            Output::Notice(n) => {
                match n {
                    Notice::Waiting(path) => tracing::warn!(source = %name, "waiting for {} to appear", path.display()),
                    Notice::Rotated { .. } => {
                        tracing::info!(source = %name, "file rotated; reading the old one to its end")
                    }
                    Notice::Truncated { read_to, .. } => {
                        tracing::warn!(source = %name, read_to, "file truncated; reading again from its start")
                    }
                    Notice::Unreadable(why) => tracing::warn!(source = %name, "cannot read {why}; will keep trying"),
                    Notice::SavedFileGone(_) => {
                        tracing::warn!(source = %name, "the file of the saved position is gone; reading from the start")
                    }
                    Notice::Opened { position, generation } => {
                        if let Some(c) = &checkpoint {
                            c.opened(generation, position);
                        }
                    }
                }
                true
            }
        };
        match glob {
            Some(g) => g.run(feed.stop_flag(), handle),
            None => Tailer::new(self.config).run(feed.stop_flag(), handle),
        }
        Ok(())
    }
}
