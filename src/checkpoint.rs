//! Checkpoints: the `--checkpoint-dir` directory.
//!
//! The directory holds one file, `checkpoint.json`, written atomically (a
//! temporary file, fsync, rename, fsync of the directory), so a crash leaves
//! either the old or the new version, never a torn one. It is one consistent
//! snapshot of the run, taken at a barrier (a batch boundary, or between two
//! events in per-event mode):
//!
//! ```json
//! {"format": "sluice-checkpoint", "version": 3, "pipeline": "window=tumbling:1s ...", "epoch": 17,
//!  "sources": {"file:/var/log/app.log": {"dev": 2049, "ino": 131, "fingerprint_sum": 1234, "fingerprint_len": 512, "offset": 8812}},
//!  "patterns": {"file:/var/log/web-*.log": [
//!    {"path": "/var/log/web-1.log", "dev": 2049, "ino": 140, "fingerprint_sum": 99, "fingerprint_len": 512, "offset": 4096}]},
//!  "kafka": {"kafka:localhost:9092/logs": {"logs/0": 1200, "logs/1": 1187}},
//!  "sinks": {"jsonl:out.jsonl": 40960},
//!  "window": [ ...the open windows' state, one entry per shard... ]}
//! ```
//!
//! - `sources`, `patterns`: where each input resumes: just after the last
//!   line whose effect is in `window`. A followed file has one position; a
//!   pattern of files has one per file it read that still exists, in reading
//!   order, each with the path it was followed under (files read to their
//!   end are kept, so that a restart does not take a rotated file under a
//!   matching name for a new one). A Kafka source has, per partition, the
//!   next offset to read.
//! - `window`: the open windows and their per-key aggregates, and the
//!   watermark.
//! - `sinks`: per exactly-once file sink, how many bytes of it hold results
//!   of lines up to the positions; a restart cuts the file back to that.
//! - `pipeline`: what the snapshot belongs to; a snapshot of another
//!   pipeline is refused rather than restored into the wrong windows.
//! - `epoch`: counts snapshots.
//!
//! A file of an unknown format or version, or one that does not parse, is
//! refused with a clear error rather than silently reset.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// The checkpoint file's name in the directory.
pub const FILE_NAME: &str = "checkpoint.json";
/// What sluice before version 2 wrote (positions only).
const OLD_FILE_NAME: &str = "positions.json";
/// The file locked while a process uses the directory.
const LOCK_NAME: &str = "lock";
/// What the `format` field says.
const FORMAT: &str = "sluice-checkpoint";
/// The version this sluice writes.
pub const VERSION: u32 = 3;
/// The versions it reads: version 2 differs only in how a key's aggregate
/// is written (an object, not an array), which still reads.
const READS: [u32; 2] = [2, 3];

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
    /// Byte offset of the first line not yet covered by the snapshot.
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
    /// Kafka sources, by source name: per partition (`topic/partition`),
    /// the next offset to read.
    pub kafka: BTreeMap<String, BTreeMap<String, i64>>,
}

/// The file's content.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Saved {
    /// Always `sluice-checkpoint`.
    format: String,
    /// The layout version.
    version: u32,
    /// The pipeline the snapshot belongs to.
    pipeline: String,
    /// Counts snapshots.
    epoch: u64,
    /// Positions by source name (`file:PATH`).
    sources: BTreeMap<String, FilePosition>,
    /// Positions of pattern sources.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    patterns: BTreeMap<String, Vec<PatternFile>>,
    /// Positions of Kafka sources.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    kafka: BTreeMap<String, BTreeMap<String, i64>>,
    /// Committed length of each exactly-once file sink, by sink name.
    #[serde(default)]
    sinks: BTreeMap<String, u64>,
    /// The window state; none before the first snapshot with windows.
    #[serde(default)]
    window: Option<Box<RawValue>>,
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

/// What the last snapshot holds besides positions.
#[derive(Debug, Default)]
struct Committed {
    /// The pipeline it belongs to; empty when there is no snapshot.
    pipeline: String,
    /// Its epoch.
    epoch: u64,
    /// Committed sink lengths.
    sinks: BTreeMap<String, u64>,
    /// The window state.
    window: Option<Arc<RawValue>>,
    /// Whether a snapshot exists on disk.
    exists: bool,
}

/// The directory's state in this process.
#[derive(Debug, Default)]
struct State {
    /// Positions as the sources last staged them (from the executor's
    /// acknowledgements): what the next snapshot records.
    staged: Positions,
    /// Positions in the snapshot on disk.
    written: Positions,
    /// The rest of the snapshot on disk.
    committed: Committed,
    /// The pipeline this run is.
    pipeline: String,
}

/// A checkpoint directory.
#[derive(Debug, Clone)]
pub struct CheckpointDir {
    /// The directory.
    dir: PathBuf,
    /// Staged and written state, shared by the sources (which stage their
    /// positions) and the executor (which commits snapshots).
    state: Arc<Mutex<State>>,
    /// Held while the file is written: one write at a time, without
    /// holding `state` (and the sources staging into it) for as long.
    writing: Arc<Mutex<()>>,
    /// The `lock` file, locked while this process uses the directory.
    _lock: Arc<File>,
}

impl PartialEq for CheckpointDir {
    /// The same directory.
    fn eq(&self, other: &Self) -> bool {
        self.dir == other.dir
    }
}

/// One snapshot to commit: what the graph holds.
#[derive(Debug, Default)]
pub struct GraphSnapshot {
    /// The window state.
    pub window: Option<Box<RawValue>>,
    /// Committed length of each exactly-once file sink.
    pub sinks: BTreeMap<String, u64>,
    /// Sink files whose data must be on disk before the snapshot is, by
    /// sink name: the sinks wrote out up to their committed lengths, and
    /// [`CheckpointDir::commit`] syncs these first, off the executor when
    /// the executor writes snapshots on a thread of their own.
    pub sync: Vec<(String, Arc<File>)>,
}

/// A sink's file could not be synced for a checkpoint. Unlike a checkpoint
/// that cannot be written, this fails the run: after a failed sync the
/// kernel may have dropped the results, and a later sync that succeeds does
/// not bring them back, so no later checkpoint may count them as written.
/// [`CheckpointDir::commit`] returns it inside its `io::Error`.
#[derive(Debug)]
pub struct SinkSyncError {
    /// The sink's name.
    pub sink: String,
    /// Why the sync failed.
    pub err: io::Error,
}

impl std::fmt::Display for SinkSyncError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.sink, self.err)
    }
}

impl std::error::Error for SinkSyncError {}

impl SinkSyncError {
    /// The sink sync failure inside `e`, if that is what it is; otherwise
    /// `e` back.
    pub fn take(e: io::Error) -> Result<SinkSyncError, io::Error> {
        if !e.get_ref().is_some_and(|inner| inner.is::<SinkSyncError>()) {
            return Err(e);
        }
        let kind = e.kind();
        match e.into_inner().map(|inner| inner.downcast::<SinkSyncError>()) {
            Some(Ok(failed)) => Ok(*failed),
            // Not reached: the error inside was checked above.
            _ => Err(io::Error::new(kind, "a sink's file could not be synced")),
        }
    }
}

impl CheckpointDir {
    /// Opens (creating if needed) a checkpoint directory, and reads what it
    /// holds.
    pub fn open(dir: &Path) -> Result<Self, CheckpointError> {
        let io = |err| CheckpointError::Io { dir: dir.to_path_buf(), err };
        fs::create_dir_all(dir).map_err(io)?;
        // Two processes saving to one directory would each overwrite the
        // other's snapshots: the second is refused. The lock goes with the
        // process, so one left by a `kill -9` blocks nobody.
        let lock = File::options().create(true).truncate(false).write(true).open(dir.join(LOCK_NAME)).map_err(io)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Err(CheckpointError::InUse { dir: dir.to_path_buf() }),
            Err(fs::TryLockError::Error(err)) => return Err(io(err)),
        }
        let d = CheckpointDir {
            dir: dir.to_path_buf(),
            state: Arc::default(),
            writing: Arc::default(),
            _lock: Arc::new(lock),
        };
        if !d.path().exists() && dir.join(OLD_FILE_NAME).exists() {
            return Err(CheckpointError::Unusable {
                path: dir.join(OLD_FILE_NAME),
                why: "positions saved by an older sluice, without window state".into(),
            });
        }
        let (positions, committed) = d.load()?;
        {
            let mut s = d.lock();
            s.staged = positions.clone();
            s.written = positions;
            s.committed = committed;
        }
        Ok(d)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding it left consistent data: every change is
        // made on a copy first.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Names the pipeline this run is. A snapshot of another pipeline is
    /// refused: restoring its windows here would mix two computations.
    pub fn check_pipeline(&self, pipeline: &str) -> Result<(), CheckpointError> {
        let mut s = self.lock();
        if s.committed.exists && s.committed.pipeline != pipeline {
            return Err(CheckpointError::Unusable {
                path: self.path(),
                why: format!(
                    "it was written by another pipeline ({}), not this one ({pipeline})",
                    s.committed.pipeline
                ),
            });
        }
        s.pipeline = pipeline.to_string();
        Ok(())
    }

    /// Whether a snapshot was found (or has been written).
    pub fn has_snapshot(&self) -> bool {
        self.lock().committed.exists
    }

    /// The epoch of the last snapshot (0: none).
    pub fn epoch(&self) -> u64 {
        self.lock().committed.epoch
    }

    /// The window state of the last snapshot.
    pub fn window(&self) -> Option<Arc<RawValue>> {
        self.lock().committed.window.clone()
    }

    /// The committed length of the exactly-once file sink `name` in the
    /// last snapshot; none when there is no snapshot or it has no such sink.
    pub fn sink_length(&self, name: &str) -> Option<u64> {
        self.lock().committed.sinks.get(name).copied()
    }

    /// The positions to resume from: those of the last snapshot, with the
    /// changes staged since.
    pub fn positions(&self) -> Positions {
        self.lock().staged.clone()
    }

    /// Changes the staged positions with `change`; the next snapshot
    /// records them.
    pub fn stage(&self, change: impl FnOnce(&mut Positions)) {
        change(&mut self.lock().staged);
    }

    /// Changes the positions with `change` and writes them at once, with
    /// the rest of the last snapshot: only for where an input starts
    /// reading on a fresh start, which the last snapshot's window state
    /// holds nothing of. With `also_stage`, the change is staged too (the
    /// caller knows that nothing staged for it is newer). On failure, the
    /// last snapshot stays on disk.
    pub fn update(&self, change: impl Fn(&mut Positions), also_stage: bool) -> io::Result<()> {
        let _one = self.writing.lock().unwrap_or_else(|p| p.into_inner());
        let (pipeline, epoch, next, sinks, window) = {
            let mut s = self.lock();
            // Onto what is on disk, not what is staged: staged positions go
            // with window state not committed yet.
            let mut next = s.written.clone();
            change(&mut next);
            if also_stage {
                change(&mut s.staged);
            }
            if next == s.written && s.committed.exists {
                return Ok(());
            }
            (s.pipeline.clone(), s.committed.epoch, next, s.committed.sinks.clone(), s.committed.window.clone())
        };
        self.store(&pipeline, epoch, &next, &sinks, window.as_deref())?;
        let mut s = self.lock();
        s.written = next;
        s.committed.exists = true;
        s.committed.pipeline = pipeline;
        Ok(())
    }

    /// Writes a snapshot: the staged positions, with the graph's state.
    /// Returns its epoch. On failure, the last snapshot stays, on disk and
    /// here. The sources may stage meanwhile: what they stage goes with the
    /// next snapshot.
    pub fn commit(&self, graph: GraphSnapshot) -> io::Result<u64> {
        let _one = self.writing.lock().unwrap_or_else(|p| p.into_inner());
        // The results the snapshot counts as written must be on disk before
        // it is.
        for (sink, file) in &graph.sync {
            file.sync_data().map_err(|err| {
                let kind = err.kind();
                io::Error::new(kind, SinkSyncError { sink: sink.clone(), err })
            })?;
        }
        let (pipeline, epoch, positions) = {
            let s = self.lock();
            (s.pipeline.clone(), s.committed.epoch + 1, s.staged.clone())
        };
        self.store(&pipeline, epoch, &positions, &graph.sinks, graph.window.as_deref())?;
        let mut s = self.lock();
        s.written = positions;
        s.committed =
            Committed { pipeline, epoch, sinks: graph.sinks, window: graph.window.map(Arc::from), exists: true };
        Ok(epoch)
    }

    fn path(&self) -> PathBuf {
        self.dir.join(FILE_NAME)
    }

    /// The last snapshot, read from the file now; nothing when none was
    /// written yet.
    fn load(&self) -> Result<(Positions, Committed), CheckpointError> {
        let path = self.path();
        let text = match fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Default::default()),
            Err(err) => return Err(CheckpointError::Io { dir: self.dir.clone(), err }),
        };
        decode(&text).map_err(|why| CheckpointError::Unusable { path: path.clone(), why })
    }

    /// Saves a snapshot atomically: the old file stays until the new one is
    /// complete on disk.
    fn store(
        &self,
        pipeline: &str,
        epoch: u64,
        positions: &Positions,
        sinks: &BTreeMap<String, u64>,
        window: Option<&RawValue>,
    ) -> io::Result<()> {
        #[derive(Serialize)]
        struct Out<'a> {
            format: &'a str,
            version: u32,
            pipeline: &'a str,
            epoch: u64,
            sources: &'a BTreeMap<String, FilePosition>,
            #[serde(skip_serializing_if = "BTreeMap::is_empty")]
            patterns: &'a BTreeMap<String, Vec<PatternFile>>,
            #[serde(skip_serializing_if = "BTreeMap::is_empty")]
            kafka: &'a BTreeMap<String, BTreeMap<String, i64>>,
            sinks: &'a BTreeMap<String, u64>,
            window: Option<&'a RawValue>,
        }
        let out = Out {
            format: FORMAT,
            version: VERSION,
            pipeline,
            epoch,
            sources: &positions.sources,
            patterns: &positions.patterns,
            kafka: &positions.kafka,
            sinks,
            window,
        };
        let tmp = self.dir.join(format!(".{FILE_NAME}.{}.tmp", std::process::id()));
        let written = (|| {
            let mut f = BufWriter::new(File::create(&tmp)?);
            serde_json::to_writer(&mut f, &out)?;
            f.write_all(b"\n")?;
            let f = f.into_inner().map_err(|e| e.into_error())?;
            f.sync_all()?;
            fs::rename(&tmp, self.path())?;
            File::open(&self.dir)?.sync_all()
        })();
        if written.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        written
    }
}

/// Decodes a checkpoint file, or says what is wrong with it.
fn decode(text: &[u8]) -> Result<(Positions, Committed), String> {
    // The format and version first, so that a file of another version is
    // named as such rather than as malformed.
    #[derive(Deserialize)]
    struct Head {
        format: Option<String>,
        version: Option<u32>,
    }
    let head: Head = serde_json::from_slice(text).map_err(|e| format!("corrupt or truncated ({e})"))?;
    if head.format.as_deref() != Some(FORMAT) {
        return Err(format!("not a sluice checkpoint (format {:?})", head.format.unwrap_or_default()));
    }
    if !head.version.is_some_and(|v| READS.contains(&v)) {
        return Err(format!(
            "version {} is not a version this sluice reads ({} or {VERSION})",
            head.version.map(|v| v.to_string()).unwrap_or_else(|| "(none)".into()),
            READS[0]
        ));
    }
    let saved: Saved = serde_json::from_slice(text).map_err(|e| format!("corrupt ({e})"))?;
    Ok((
        Positions { sources: saved.sources, patterns: saved.patterns, kafka: saved.kafka },
        Committed {
            pipeline: saved.pipeline,
            epoch: saved.epoch,
            sinks: saved.sinks,
            window: saved.window.map(Arc::from),
            exists: true,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(offset: u64) -> FilePosition {
        FilePosition { dev: 1, ino: 2, fingerprint_sum: 3, fingerprint_len: 4, offset }
    }

    /// A sink file that cannot be synced fails the snapshot, which then
    /// is not written, and says which sink it was, so that the run fails
    /// instead of going on to a later snapshot that counts lost results.
    #[test]
    fn a_sink_that_cannot_sync_fails_the_snapshot_and_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = CheckpointDir::open(&tmp.path().join("ckpt")).unwrap();
        dir.check_pipeline("p1").unwrap();
        // A pipe cannot be synced (EINVAL).
        let (_reader, writer) = std::io::pipe().unwrap();
        let pipe = File::from(std::os::fd::OwnedFd::from(writer));
        let good = tempfile::tempfile().unwrap();
        let graph = GraphSnapshot {
            window: None,
            sinks: BTreeMap::from([("jsonl:ok".into(), 0), ("jsonl:bad".into(), 0)]),
            sync: vec![("jsonl:ok".into(), Arc::new(good)), ("jsonl:bad".into(), Arc::new(pipe))],
        };
        let e = dir.commit(graph).unwrap_err();
        let failed = SinkSyncError::take(e).expect("a sink sync failure");
        assert_eq!(failed.sink, "jsonl:bad");
        assert!(!dir.dir().join(FILE_NAME).exists(), "nothing was written");
        assert_eq!(dir.epoch(), 0);
        // A failure of the checkpoint's own file is not a sink's.
        let other = SinkSyncError::take(io::Error::other("disk full")).unwrap_err();
        assert_eq!(other.to_string(), "disk full", "and it comes back whole");
    }

    #[test]
    fn snapshots_round_trip() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("ckpt");
        let dir = CheckpointDir::open(&path).unwrap();
        dir.check_pipeline("p1").unwrap();
        assert!(!dir.has_snapshot());
        assert_eq!(dir.positions(), Positions::default(), "nothing saved yet");
        // A source's starting point is written at once.
        dir.update(
            |p| {
                p.sources.insert("file:/a".to_string(), pos(10));
            },
            true,
        )
        .unwrap();
        assert_eq!((dir.has_snapshot(), dir.epoch()), (true, 0));
        // Staged positions wait for the next commit.
        let other = dir.clone();
        other.stage(|p| {
            p.patterns
                .insert("file:/l/*.log".to_string(), vec![PatternFile { path: "/l/x.log".into(), position: pos(5) }]);
            p.sources.insert("file:/a".to_string(), pos(20));
        });
        let window = r#"[{"panes":[1,2,3]}]"#;
        let sinks = BTreeMap::from([("jsonl:out".to_string(), 77)]);
        let blob = RawValue::from_string(window.to_string()).unwrap();
        assert_eq!(dir.commit(GraphSnapshot { window: Some(blob), sinks, sync: Vec::new() }).unwrap(), 1);
        // A later starting point keeps the last snapshot's window and sinks.
        dir.update(
            |p| {
                p.sources.insert("file:/b".to_string(), pos(0));
            },
            true,
        )
        .unwrap();
        drop((dir, other));

        let dir = CheckpointDir::open(&path).unwrap();
        dir.check_pipeline("p1").unwrap();
        let p = dir.positions();
        assert_eq!((p.sources["file:/a"], p.sources["file:/b"]), (pos(20), pos(0)));
        assert_eq!(p.patterns["file:/l/*.log"][0].position, pos(5));
        assert_eq!(dir.window().map(|w| w.get().to_string()).as_deref(), Some(window));
        assert_eq!((dir.sink_length("jsonl:out"), dir.sink_length("jsonl:other")), (Some(77), None));
        assert_eq!(dir.epoch(), 1);
    }

    #[test]
    fn refusals() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("ckpt");
        let dir = CheckpointDir::open(&path).unwrap();
        dir.check_pipeline("window=tumbling:1s").unwrap();
        dir.commit(GraphSnapshot::default()).unwrap();
        let e = CheckpointDir::open(&path).unwrap_err().to_string();
        assert!(e.contains("in use by another running sluice"), "{e}");
        drop(dir);

        let dir = CheckpointDir::open(&path).unwrap();
        let e = dir.check_pipeline("window=global").unwrap_err().to_string();
        assert!(e.contains("another pipeline (window=tumbling:1s)") && e.contains("another --checkpoint-dir"), "{e}");
        drop(dir);

        let file = path.join(FILE_NAME);
        let text = fs::read_to_string(&file).unwrap();
        for (bad, says) in [
            (text[..text.len() / 2].to_string(), "corrupt or truncated"),
            (text.replace("\"version\":3", "\"version\":7"), "version 7"),
            (text.replace("sluice-checkpoint", "other"), "not a sluice checkpoint"),
            (text.replace("\"epoch\":1", "\"epoch\":\"x\""), "corrupt"),
            (String::new(), "corrupt or truncated"),
        ] {
            fs::write(&file, &bad).unwrap();
            let e = CheckpointDir::open(&path).unwrap_err().to_string();
            assert!(e.contains(says) && e.contains("move it away"), "{says}: {e}");
        }

        // A version 2 file (the same but for how window entries are
        // written) still opens.
        fs::write(&file, text.replace("\"version\":3", "\"version\":2")).unwrap();
        let dir = CheckpointDir::open(&path).unwrap();
        dir.check_pipeline("window=tumbling:1s").unwrap();
        assert!(dir.has_snapshot(), "version 2 reads");
        drop(dir);

        let old = tmp.path().join("old");
        fs::create_dir(&old).unwrap();
        fs::write(old.join("positions.json"), "{}").unwrap();
        let e = CheckpointDir::open(&old).unwrap_err().to_string();
        assert!(e.contains("older sluice"), "{e}");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(500))]

        /// Any bytes are a checkpoint or a clear refusal, never a panic.
        #[test]
        fn any_bytes_decode_or_are_refused(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            if let Err(why) = decode(&bytes) {
                proptest::prop_assert!(!why.is_empty());
            }
        }

        /// A real checkpoint cut short or with one byte changed is refused
        /// or decodes; it never panics, and a cut one is never taken whole.
        #[test]
        fn damaged_checkpoints_are_refused(cut in 0usize..400, at in 0usize..400, byte in proptest::num::u8::ANY) {
            let tmp = tempfile::tempdir().unwrap();
            let dir = CheckpointDir::open(tmp.path()).unwrap();
            dir.check_pipeline("p").unwrap();
            dir.stage(|p| {
                p.sources.insert("file:/a".into(), pos(1234));
            });
            let window = RawValue::from_string(r#"[{"panes":[],"sessions":[]}]"#.to_string()).unwrap();
            dir.commit(GraphSnapshot {
                window: Some(window),
                sinks: BTreeMap::from([("jsonl:o".into(), 9)]),
                sync: Vec::new(),
            })
            .unwrap();
            let good = fs::read(tmp.path().join(FILE_NAME)).unwrap();
            let whole = good.len() - 1; // without the final newline
            if cut < whole {
                proptest::prop_assert!(decode(&good[..cut]).is_err());
            }
            let mut changed = good.clone();
            let i = at % good.len();
            changed[i] = byte;
            let _ = decode(&changed);
        }

        /// Positions written are the positions read.
        #[test]
        fn positions_round_trip(offsets in proptest::collection::vec(0u64..u64::MAX, 0..5)) {
            let tmp = tempfile::tempdir().unwrap();
            let dir = CheckpointDir::open(tmp.path()).unwrap();
            dir.check_pipeline("p").unwrap();
            dir.stage(|p| {
                for (i, &o) in offsets.iter().enumerate() {
                    p.sources.insert(format!("file:/{i}"), pos(o));
                }
            });
            dir.commit(GraphSnapshot::default()).unwrap();
            let (read, committed) = decode(&fs::read(tmp.path().join(FILE_NAME)).unwrap()).unwrap();
            proptest::prop_assert_eq!(read, dir.positions());
            proptest::prop_assert_eq!(committed.epoch, 1);
        }
    }
}
