//! Saved source positions: the `--checkpoint-dir` directory.
//!
//! The directory holds one file, `positions.json`, written atomically (a
//! temporary file, fsync, rename, fsync of the directory), so a crash leaves
//! either the old or the new version, never a torn one:
//!
//! ```json
//! {"format": "sluice-checkpoint", "version": 1,
//!  "sources": {"file:/var/log/app.log": {"dev": 2049, "ino": 131, "fingerprint_sum": 1234, "fingerprint_len": 512, "offset": 8812}},
//!  "patterns": {"file:/var/log/web-*.log": [
//!    {"path": "/var/log/web-1.log", "dev": 2049, "ino": 140, "fingerprint_sum": 99, "fingerprint_len": 512, "offset": 4096}]}}
//! ```
//!
//! A followed file has one position. A pattern of files has one per file it
//! read that still exists, in reading order, each with the path it was
//! followed under: files read to their end are kept too, so that a restart
//! does not take a rotated file under a matching name for a new one.
//!
//! A position is the first line not yet acknowledged: every line before it
//! had all its effects flushed by the sinks. The format is versioned from the
//! start: the crash-safety work adds window state next to the positions, as
//! version 2. A file of an unknown format or version, or one that does not
//! parse, is refused with a clear error rather than silently reset.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

/// The checkpoint file's name in the directory.
pub const FILE_NAME: &str = "positions.json";
/// The file locked while a process uses the directory.
const LOCK_NAME: &str = "lock";
/// What the `format` field says.
const FORMAT: &str = "sluice-checkpoint";
/// The version this sluice writes and reads.
pub const VERSION: u32 = 1;

/// Where a followed file is to be resumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilePosition {
    /// Device of the file.
    pub dev: u64,
    /// Inode of the file.
    pub ino: u64,
    /// Checksum of its first bytes.
    pub fingerprint_sum: u64,
    /// How many first bytes the checksum covers.
    pub fingerprint_len: u32,
    /// Byte offset of the first line not yet acknowledged.
    pub offset: u64,
}

/// A file read by a pattern source, and where to resume it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatternFile {
    /// The path it was followed under (a path matching the pattern).
    pub path: String,
    /// The position.
    #[serde(flatten)]
    pub position: FilePosition,
}

/// Every saved position.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Positions {
    /// Followed files, by source name (`file:PATH`).
    pub sources: BTreeMap<String, FilePosition>,
    /// Patterns of files, by source name (`file:PATTERN`).
    pub patterns: BTreeMap<String, Vec<PatternFile>>,
}

/// The file's content.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Saved {
    /// Always `sluice-checkpoint`.
    format: String,
    /// The layout version.
    version: u32,
    /// Positions by source name (`file:PATH`).
    sources: BTreeMap<String, FilePosition>,
    /// Positions of pattern sources.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    patterns: BTreeMap<String, Vec<PatternFile>>,
}

/// A checkpoint directory that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// The directory or file cannot be read or created.
    #[error("checkpoint directory {dir}: {err}; check the path and its permissions")]
    Io {
        /// The directory.
        dir: PathBuf,
        /// What failed.
        #[source]
        err: io::Error,
    },
    /// Another process uses the directory.
    #[error("checkpoint directory {dir} is in use by another running sluice; give each run its own --checkpoint-dir")]
    InUse {
        /// The directory.
        dir: PathBuf,
    },
    /// The file is not a checkpoint this sluice understands.
    #[error("checkpoint {path}: {why}; move it away to start over, or use another --checkpoint-dir")]
    Unusable {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
}

/// A checkpoint directory.
#[derive(Debug, Clone)]
pub struct CheckpointDir {
    /// The directory.
    dir: PathBuf,
    /// What was last written (or loaded), shared by the sources that save
    /// here, so that none writes back another's stale position.
    written: Arc<Mutex<Positions>>,
    /// The `lock` file, locked while this process uses the directory.
    _lock: Arc<File>,
}

impl CheckpointDir {
    /// Opens (creating if needed) a checkpoint directory, and reads what it
    /// holds.
    pub fn open(dir: &Path) -> Result<Self, CheckpointError> {
        let io = |err| CheckpointError::Io { dir: dir.to_path_buf(), err };
        fs::create_dir_all(dir).map_err(io)?;
        // Two processes saving to one directory would each overwrite the
        // other's positions: the second is refused.
        let lock = File::options().create(true).truncate(false).write(true).open(dir.join(LOCK_NAME)).map_err(io)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Err(CheckpointError::InUse { dir: dir.to_path_buf() }),
            Err(fs::TryLockError::Error(err)) => return Err(io(err)),
        }
        let mut d = CheckpointDir { dir: dir.to_path_buf(), written: Arc::default(), _lock: Arc::new(lock) };
        d.written = Arc::new(Mutex::new(d.load()?));
        Ok(d)
    }

    /// The positions as loaded at open, with the changes saved since.
    pub fn positions(&self) -> Positions {
        self.written.lock().map(|p| p.clone()).unwrap_or_default()
    }

    /// Changes the positions with `change` and saves them all atomically.
    /// On failure, the last saved version stays, on disk and here.
    pub fn update(&self, change: impl FnOnce(&mut Positions)) -> io::Result<()> {
        let mut written = self.written.lock().map_err(|_| io::Error::other("checkpoint state poisoned"))?;
        let mut next = written.clone();
        change(&mut next);
        if next == *written && self.path().exists() {
            return Ok(());
        }
        self.store(&next)?;
        *written = next;
        Ok(())
    }

    fn path(&self) -> PathBuf {
        self.dir.join(FILE_NAME)
    }

    /// The saved positions, read from the file now; none when nothing was
    /// saved yet.
    pub fn load(&self) -> Result<Positions, CheckpointError> {
        let path = self.path();
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Positions::default()),
            Err(err) => return Err(CheckpointError::Io { dir: self.dir.clone(), err }),
        };
        let unusable = |why: String| CheckpointError::Unusable { path: path.clone(), why };
        let saved: Saved = serde_json::from_str(&text).map_err(|e| unusable(format!("corrupt or truncated ({e})")))?;
        if saved.format != FORMAT {
            return Err(unusable(format!("not a sluice checkpoint (format {:?})", saved.format)));
        }
        if saved.version != VERSION {
            return Err(unusable(format!("version {} is not the version {VERSION} this sluice reads", saved.version)));
        }
        Ok(Positions { sources: saved.sources, patterns: saved.patterns })
    }

    /// Saves positions atomically: the old file stays until the new one is
    /// complete on disk.
    fn store(&self, positions: &Positions) -> io::Result<()> {
        let saved = Saved {
            format: FORMAT.to_string(),
            version: VERSION,
            sources: positions.sources.clone(),
            patterns: positions.patterns.clone(),
        };
        let tmp = self.dir.join(format!(".{FILE_NAME}.{}.tmp", std::process::id()));
        {
            let mut f = File::create(&tmp)?;
            serde_json::to_writer_pretty(&mut f, &saved)?;
            f.write_all(b"\n")?;
            f.sync_all()?;
        }
        fs::rename(&tmp, self.path())?;
        File::open(&self.dir)?.sync_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(offset: u64) -> FilePosition {
        FilePosition { dev: 1, ino: 2, fingerprint_sum: 3, fingerprint_len: 4, offset }
    }

    #[test]
    fn round_trip_and_refusals() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = CheckpointDir::open(&tmp.path().join("ckpt")).unwrap();
        assert_eq!(dir.load().unwrap(), Positions::default(), "nothing saved yet");
        dir.update(|p| {
            p.sources.insert("file:/a".to_string(), pos(10));
        })
        .unwrap();
        // Another source of the same directory keeps the first one's change.
        let other = dir.clone();
        other
            .update(|p| {
                p.patterns.insert(
                    "file:/l/*.log".to_string(),
                    vec![PatternFile { path: "/l/x.log".into(), position: pos(5) }],
                );
            })
            .unwrap();
        dir.update(|p| {
            p.sources.insert("file:/a".to_string(), pos(20));
        })
        .unwrap();
        let loaded = dir.load().unwrap();
        assert_eq!(loaded, dir.positions());
        assert_eq!(loaded.sources["file:/a"], pos(20));
        assert_eq!(loaded.patterns["file:/l/*.log"][0].position, pos(5));
        let e = CheckpointDir::open(&tmp.path().join("ckpt")).unwrap_err().to_string();
        assert!(e.contains("in use by another running sluice"), "{e}");
        drop((dir, other));
        let dir = CheckpointDir::open(&tmp.path().join("ckpt")).unwrap();
        assert_eq!(dir.positions(), loaded, "read at open");

        let path = tmp.path().join("ckpt").join(FILE_NAME);
        let text = fs::read_to_string(&path).unwrap();
        fs::write(&path, &text[..text.len() / 2]).unwrap();
        let e = dir.load().unwrap_err().to_string();
        assert!(e.contains("corrupt or truncated") && e.contains("move it away"), "{e}");

        fs::write(&path, text.replace("\"version\": 1", "\"version\": 7")).unwrap();
        assert!(dir.load().unwrap_err().to_string().contains("version 7"));
    }
}
