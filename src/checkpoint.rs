//! Saved source positions: the `--checkpoint-dir` directory.
//!
//! The directory holds one file, `positions.json`, written atomically (a
//! temporary file, fsync, rename, fsync of the directory), so a crash leaves
//! either the old or the new version, never a torn one:
//!
//! ```json
//! {"format": "sluice-checkpoint", "version": 1,
//!  "sources": {"file:/var/log/app.log": {"dev": 2049, "ino": 131, "fingerprint_sum": 1234, "fingerprint_len": 512, "offset": 8812}}}
//! ```
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

use serde::{Deserialize, Serialize};

/// The checkpoint file's name in the directory.
pub const FILE_NAME: &str = "positions.json";
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
}

impl CheckpointDir {
    /// Opens (creating if needed) a checkpoint directory.
    pub fn open(dir: &Path) -> Result<Self, CheckpointError> {
        fs::create_dir_all(dir).map_err(|err| CheckpointError::Io { dir: dir.to_path_buf(), err })?;
        Ok(CheckpointDir { dir: dir.to_path_buf() })
    }

    fn path(&self) -> PathBuf {
        self.dir.join(FILE_NAME)
    }

    /// The saved positions; none when nothing was saved yet.
    pub fn load(&self) -> Result<BTreeMap<String, FilePosition>, CheckpointError> {
        let path = self.path();
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
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
        Ok(saved.sources)
    }

    /// Saves positions atomically: the old file stays until the new one is
    /// complete on disk.
    pub fn store(&self, sources: &BTreeMap<String, FilePosition>) -> io::Result<()> {
        let saved = Saved { format: FORMAT.to_string(), version: VERSION, sources: sources.clone() };
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
        assert!(dir.load().unwrap().is_empty(), "nothing saved yet");
        let mut m = BTreeMap::new();
        m.insert("file:/a".to_string(), pos(10));
        dir.store(&m).unwrap();
        m.insert("file:/a".to_string(), pos(20));
        dir.store(&m).unwrap();
        assert_eq!(dir.load().unwrap(), m);

        let path = tmp.path().join("ckpt").join(FILE_NAME);
        let text = fs::read_to_string(&path).unwrap();
        fs::write(&path, &text[..text.len() / 2]).unwrap();
        let e = dir.load().unwrap_err().to_string();
        assert!(e.contains("corrupt or truncated") && e.contains("move it away"), "{e}");

        fs::write(&path, text.replace("\"version\": 1", "\"version\": 7")).unwrap();
        assert!(dir.load().unwrap_err().to_string().contains("version 7"));
    }
}
