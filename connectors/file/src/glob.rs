//! Following every file whose name matches a pattern.

use std::collections::{HashSet, VecDeque};
use std::ffi::{OsStr, OsString};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use crate::{
    follow_loop, head_of, parent_dir, FileId, Fingerprint, Notice, Output, SavedPosition, StartAt, TailConfig, Tailer,
    Wake, HEAD_BYTES,
};

/// True when the last component of `path` holds a glob pattern (`*`, `?`,
/// `[...]`).
pub fn is_glob(path: &Path) -> bool {
    path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.contains(['*', '?', '[']))
}

/// A file of a pattern, saved to resume from: the path it was followed
/// under, and the position in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedFile {
    /// The path (matching the pattern) whose tailer read it.
    pub path: PathBuf,
    /// The file and how far it was read.
    pub position: SavedPosition,
}

/// What a [`GlobTailer`] hands out.
#[derive(Debug, Clone)]
pub enum GlobOutput {
    /// A path is followed from now on; what its tailer hands out carries
    /// `slot`, a number never reused.
    Started {
        /// The path's number.
        slot: u64,
        /// The path.
        path: PathBuf,
    },
    /// Something the tailer of a path handed out.
    Slot {
        /// The path's number.
        slot: u64,
        /// What it handed out.
        output: Output,
    },
    /// The path is gone and its files were read to their end: nothing more
    /// comes from this slot.
    Ended {
        /// The path's number.
        slot: u64,
    },
    /// A new file that starts with the same 512 bytes as a file already
    /// followed or just truncated: a copy made by copytruncate. It is not
    /// read: its lines were read from the original.
    Copy(PathBuf),
    /// A file no longer exists and no tailer has it open: what was noted
    /// about it can go.
    Forgotten(FileId),
    /// The directory does not exist (yet); said once until it does.
    Waiting(PathBuf),
    /// A look at the directory and every followed file ended: a place for
    /// periodic work.
    Polled,
}

/// One matched path and its tailer.
struct Slot {
    /// Its number.
    id: u64,
    /// The path that matched.
    path: PathBuf,
    /// Follows it.
    tailer: Tailer,
}

/// Where a path starts: the path, where in its file, and files to read
/// first (see [`TailConfig::drain_first`]).
type Start = (PathBuf, StartAt, Vec<SavedPosition>);

/// How many recently truncated files are remembered, to recognize their
/// copies.
const TRUNCATED_KEPT: usize = 16;

/// Follows every file of a directory whose name matches a pattern, each the
/// way [`Tailer`] follows one path, including files that appear later.
///
/// The pattern may only be in the file name (`/var/log/app-*.log`); the
/// directory is literal. A file is followed under one name only: when a
/// rotated file gets a name that matches too (`app.log` renamed to
/// `app.log.1` under `app.log*`), the tailer that already has it open reads
/// it to its end, and the new name is not followed from its start again.
/// A copy made by copytruncate under a matching name is recognized by its
/// first 512 bytes and not read either.
///
/// Resuming ([`GlobTailer::resume`]) finds each saved file again: by inode
/// and first bytes, or by first bytes alone (a copy) when they are a full
/// 512 bytes. Each resumes at its saved offset. A path whose last saved file
/// is no longer under a matching name (rotated while nobody followed) is
/// resumed like [`StartAt::Saved`]: the rotated file from the saved offset,
/// then the path's new file from its start. Matching files not saved are new
/// since the positions were saved, and are read from their start.
pub struct GlobTailer {
    /// The settings every file is followed with; `path` is the pattern.
    template: TailConfig,
    /// The directory scanned.
    dir: PathBuf,
    /// The file-name pattern.
    pattern: ::glob::Pattern,
    /// The paths followed.
    slots: Vec<Slot>,
    /// The next slot's number.
    next_slot: u64,
    /// Files some tailer has had open, or taken for copies, while they still
    /// exist: a new name for one of them is not a new file.
    claimed: HashSet<FileId>,
    /// First bytes of files recently truncated, whose copies may show up.
    truncated: VecDeque<Fingerprint>,
    /// True until the first scan: files found then start where the template
    /// (or the saved files) say; files found later are read from their start.
    first_scan: bool,
    /// The files to resume, until the first scan.
    saved: Option<Vec<SavedFile>>,
    /// Whether the missing directory was already reported.
    warned_missing: bool,
}

impl GlobTailer {
    /// Follows the files matching `template.path`. Fails when the pattern is
    /// malformed.
    pub fn new(template: TailConfig) -> Result<Self, String> {
        let name = template.path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let pattern = ::glob::Pattern::new(name)
            .map_err(|e| format!("invalid file pattern {name:?}: {e}; use *, ? and [...]"))?;
        if template.path.parent().and_then(|d| d.to_str()).is_some_and(|d| d.contains(['*', '?', '['])) {
            return Err(format!(
                "{}: a pattern may only be in the file name, like /var/log/app-*.log",
                template.path.display()
            ));
        }
        Ok(GlobTailer {
            dir: parent_dir(&template.path),
            pattern,
            template,
            slots: Vec::new(),
            next_slot: 0,
            claimed: HashSet::new(),
            truncated: VecDeque::new(),
            first_scan: true,
            saved: None,
            warned_missing: false,
        })
    }

    /// Follows the files matching `template.path`, resuming from saved
    /// files (see the type's documentation); `template.start` is not used.
    /// The saved files are in the order they were read: for a path, the
    /// last one is where its reading was.
    pub fn resume(template: TailConfig, saved: Vec<SavedFile>) -> Result<Self, String> {
        let mut g = GlobTailer::new(template)?;
        g.saved = Some(saved);
        Ok(g)
    }

    fn start(&mut self, (path, start, drain_first): Start, out: &mut dyn FnMut(GlobOutput) -> bool) -> bool {
        let mut config = self.template.clone();
        config.path = path.clone();
        config.start = start;
        config.drain_first = drain_first;
        let id = self.next_slot;
        self.next_slot += 1;
        self.slots.push(Slot { id, path: path.clone(), tailer: Tailer::new(config) });
        out(GlobOutput::Started { slot: id, path })
    }

    /// A file found after the first scan that starts with the full first
    /// bytes of a file followed now or recently truncated: a copy.
    fn is_copy(&self, path: &Path) -> bool {
        let Ok(file) = fs::File::open(path) else { return false };
        let Ok((sum, len)) = head_of(&file, HEAD_BYTES) else { return false };
        let head = Fingerprint { sum, len: len as u32 };
        len == HEAD_BYTES
            && (self.truncated.contains(&head) || self.slots.iter().any(|s| s.tailer.fingerprints().any(|f| f == head)))
    }

    /// The first scan with saved files: where each matching file starts,
    /// and which paths resume a file rotated away while nobody followed.
    fn first_starts(&self, saved: &[SavedFile], found: &[(PathBuf, FileId)]) -> Vec<Start> {
        let mut used = vec![false; saved.len()];
        let mut starts = Vec::new();
        for (path, id) in found {
            let Ok(file) = fs::File::open(path) else {
                // Unreadable now: its tailer says so, and retries from the start.
                starts.push((path.clone(), StartAt::Beginning, Vec::new()));
                continue;
            };
            let Ok(meta) = file.metadata() else { continue };
            let holds = |p: &SavedPosition| {
                let len = p.fingerprint.len as usize;
                meta.len() >= p.offset
                    && if len == 0 {
                        p.file == *id
                    } else {
                        (p.file == *id || len == HEAD_BYTES)
                            && head_of(&file, len).is_ok_and(|h| h == (p.fingerprint.sum, len))
                    }
            };
            // The same inode first, then the latest saved.
            let hit =
                (0..saved.len()).filter(|&i| holds(&saved[i].position)).max_by_key(|&i| saved[i].position.file == *id);
            match hit {
                Some(i) => {
                    used[i] = true;
                    starts.push((path.clone(), StartAt::Offset(saved[i].position.offset), Vec::new()));
                }
                None => starts.push((path.clone(), StartAt::Beginning, Vec::new())),
            }
        }
        // Per path, the saved files not found under a matching name (rotated
        // while nobody followed): read from their offsets before the path's
        // file. The last of them, if it is the path's last saved file, is
        // where the path was (rotated while down): resumed like
        // StartAt::Saved; the others are drained first.
        let mut paths: Vec<&PathBuf> = Vec::new();
        for s in saved {
            if !paths.contains(&&s.path) {
                paths.push(&s.path);
            }
        }
        for path in paths {
            let mine: Vec<usize> = (0..saved.len()).filter(|&i| saved[i].path == *path).collect();
            let mut unmatched: Vec<SavedPosition> =
                mine.iter().filter(|&&i| !used[i]).map(|&i| saved[i].position).collect();
            if unmatched.is_empty() {
                continue;
            }
            let last_unmatched = mine.last().is_some_and(|&i| !used[i]);
            match starts.iter_mut().find(|(p, _, _)| p == path) {
                Some((_, start, drain)) => {
                    if last_unmatched && *start == StartAt::Beginning {
                        *start = StartAt::Saved(unmatched.pop().expect("not empty"));
                    }
                    *drain = unmatched;
                }
                // Gone, or renamed away without a new file: find the old ones.
                None if parent_dir(path) == self.dir
                    && path.file_name().and_then(|n| n.to_str()).is_some_and(|n| self.pattern.matches(n)) =>
                {
                    let last = unmatched.pop().expect("not empty");
                    starts.push((path.clone(), StartAt::Saved(last), unmatched));
                }
                None => {}
            }
        }
        starts
    }

    /// One look at the directory and every followed file.
    pub fn poll(&mut self, out: &mut dyn FnMut(GlobOutput) -> bool) -> bool {
        let mut present = HashSet::new();
        let mut found = Vec::new();
        // Looked up once per directory entry: a set, not a scan of the
        // slots (a directory of thousands of logs).
        let followed: HashSet<&Path> = self.slots.iter().map(|s| s.path.as_path()).collect();
        match fs::read_dir(&self.dir) {
            Ok(entries) => {
                self.warned_missing = false;
                for entry in entries.flatten() {
                    let path = entry.path();
                    let matches = path.file_name().and_then(|n| n.to_str()).is_some_and(|n| self.pattern.matches(n));
                    let Ok(meta) = fs::metadata(&path) else { continue };
                    if !meta.is_file() {
                        continue;
                    }
                    let id = FileId::of(&meta);
                    present.insert(id);
                    if !matches || followed.contains(path.as_path()) || self.claimed.contains(&id) {
                        continue;
                    }
                    found.push((path, id));
                }
            }
            Err(_) if !self.warned_missing => {
                self.warned_missing = true;
                if !out(GlobOutput::Waiting(self.dir.clone())) {
                    return false;
                }
            }
            Err(_) => {}
        }
        drop(followed);
        found.sort();
        let starts: Vec<Start> = match (self.first_scan, self.saved.take()) {
            (true, Some(saved)) => self.first_starts(&saved, &found),
            (true, None) => found.into_iter().map(|(p, _)| (p, self.template.start, Vec::new())).collect(),
            (false, _) => {
                let mut starts = Vec::new();
                for (path, id) in found {
                    if self.is_copy(&path) {
                        self.claimed.insert(id);
                        if !out(GlobOutput::Copy(path)) {
                            return false;
                        }
                    } else {
                        starts.push((path, StartAt::Beginning, Vec::new()));
                    }
                }
                starts
            }
        };
        self.first_scan = false;
        for start in starts {
            if !self.start(start, out) {
                return false;
            }
        }
        for slot in &mut self.slots {
            if !poll_slot(slot, &mut self.truncated, &mut self.claimed, out) {
                return false;
            }
        }
        let mut ended = Vec::new();
        self.slots.retain(|s| {
            let keep = !s.tailer.is_idle() || s.path.exists();
            if !keep {
                ended.push(s.id);
            }
            keep
        });
        for slot in ended {
            if !out(GlobOutput::Ended { slot }) {
                return false;
            }
        }
        let open: HashSet<FileId> = self.slots.iter().flat_map(|s| s.tailer.open_files()).collect();
        let mut forgotten = Vec::new();
        self.claimed.retain(|id| {
            let keep = present.contains(id) || open.contains(id);
            if !keep {
                forgotten.push(*id);
            }
            keep
        });
        for id in forgotten {
            if !out(GlobOutput::Forgotten(id)) {
                return false;
            }
        }
        out(GlobOutput::Polled)
    }

    /// The paths followed now.
    pub fn paths(&self) -> impl Iterator<Item = &Path> {
        self.slots.iter().map(|s| s.path.as_path())
    }

    /// Looks only at the files whose names are in `changed` (their data
    /// changed), and at files still being read after a rotation; a name
    /// that matches the pattern but is not followed (a new file, a rotated
    /// one) makes it a full [`GlobTailer::poll`].
    pub fn poll_changed(&mut self, changed: &HashSet<OsString>, out: &mut dyn FnMut(GlobOutput) -> bool) -> bool {
        if self.first_scan {
            return self.poll(out);
        }
        let followed: HashSet<&OsStr> = self.slots.iter().filter_map(|s| s.path.file_name()).collect();
        let unknown = changed
            .iter()
            .any(|n| !followed.contains(n.as_os_str()) && n.to_str().is_some_and(|n| self.pattern.matches(n)));
        drop(followed);
        if unknown {
            return self.poll(out);
        }
        for slot in &mut self.slots {
            let named = slot.path.file_name().is_some_and(|n| changed.contains(n));
            if (named || slot.tailer.is_draining()) && !poll_slot(slot, &mut self.truncated, &mut self.claimed, out) {
                return false;
            }
        }
        out(GlobOutput::Polled)
    }

    /// Polls until `stop` is set or `out` returns false, like [`Tailer::run`]:
    /// a notification that only some files changed looks at those alone
    /// ([`GlobTailer::poll_changed`]), and everything is looked at at least
    /// every `poll_interval`.
    pub fn run(mut self, stop: &AtomicBool, mut out: impl FnMut(GlobOutput) -> bool) {
        let (dir, interval) = (self.dir.clone(), self.template.poll_interval);
        follow_loop(&dir, interval, stop, |wake| match wake {
            Wake::All => self.poll(&mut out),
            Wake::Changed(names) => self.poll_changed(names, &mut out),
        });
    }
}

/// Polls one path's tailer, passing its output on. A path that vanished is
/// not waited for: its file is read to its end and the slot goes; a file
/// matching again is new.
fn poll_slot(
    slot: &mut Slot,
    truncated: &mut VecDeque<Fingerprint>,
    claimed: &mut HashSet<FileId>,
    out: &mut dyn FnMut(GlobOutput) -> bool,
) -> bool {
    let id = slot.id;
    let ok = slot.tailer.poll(&mut |o| match o {
        Output::Notice(Notice::Waiting(_)) => true,
        output => {
            if let Output::Notice(Notice::Truncated { fingerprint, .. }) = &output {
                if fingerprint.len as usize == HEAD_BYTES {
                    truncated.push_back(*fingerprint);
                    if truncated.len() > TRUNCATED_KEPT {
                        truncated.pop_front();
                    }
                }
            }
            out(GlobOutput::Slot { slot: id, output })
        }
    });
    claimed.extend(slot.tailer.open_files());
    ok
}

#[cfg(test)]
mod tests {
    use std::fs::OpenOptions;
    use std::io::Write;
    use std::time::Duration;

    use super::*;

    fn append(path: &Path, text: &str) {
        OpenOptions::new().create(true).append(true).open(path).unwrap().write_all(text.as_bytes()).unwrap();
    }

    fn poll(g: &mut GlobTailer) -> Vec<String> {
        let mut got = Vec::new();
        g.poll(&mut |o| {
            if let GlobOutput::Slot { output: Output::Lines(l), .. } = o {
                got.extend(l.chunk.lines.iter().map(|s| String::from_utf8_lossy(l.chunk.text(s)).into_owned()));
            }
            true
        });
        got.sort();
        got
    }

    fn sorted(v: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
        v.sort();
        v
    }

    #[test]
    fn follows_matching_files_including_new_ones() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        append(&d.join("a.log"), "a1\n");
        append(&d.join("b.log"), "b1\n");
        append(&d.join("c.txt"), "not me\n");
        let mut config = TailConfig::new(d.join("*.log"));
        config.start = StartAt::Beginning;
        config.rotate_wait = Duration::from_millis(50);
        let mut g = GlobTailer::new(config).unwrap();
        assert_eq!(poll(&mut g), sorted(&["a1", "b1"]));
        append(&d.join("a.log"), "a2\n");
        append(&d.join("new.log"), "n1\n");
        assert_eq!(poll(&mut g), sorted(&["a2", "n1"]), "a file created later is read from its start");
        fs::remove_file(d.join("b.log")).unwrap();
        assert!(poll(&mut g).is_empty());
        std::thread::sleep(Duration::from_millis(100));
        poll(&mut g);
        assert_eq!(g.paths().count(), 2, "a vanished path is dropped once read");
    }

    fn poll_names(g: &mut GlobTailer, names: &[&str]) -> Vec<String> {
        let changed: HashSet<OsString> = names.iter().map(OsString::from).collect();
        let mut got = Vec::new();
        g.poll_changed(&changed, &mut |o| {
            if let GlobOutput::Slot { output: Output::Lines(l), .. } = o {
                got.extend(l.chunk.lines.iter().map(|s| String::from_utf8_lossy(l.chunk.text(s)).into_owned()));
            }
            true
        });
        got.sort();
        got
    }

    #[test]
    fn a_change_notice_reads_the_named_files_and_a_new_name_looks_at_everything() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        append(&d.join("a.log"), "a1\n");
        append(&d.join("b.log"), "b1\n");
        let mut config = TailConfig::new(d.join("*.log"));
        config.start = StartAt::Beginning;
        let mut g = GlobTailer::new(config).unwrap();
        assert_eq!(poll_names(&mut g, &["a.log"]), sorted(&["a1", "b1"]), "the first look is at everything");
        append(&d.join("a.log"), "a2\n");
        append(&d.join("b.log"), "b2\n");
        assert_eq!(poll_names(&mut g, &["a.log", "other.txt"]), sorted(&["a2"]), "only the named file");
        assert_eq!(poll(&mut g), sorted(&["b2"]), "the full look finds the rest");
        append(&d.join("b.log"), "b3\n");
        append(&d.join("new.log"), "n1\n");
        assert_eq!(poll_names(&mut g, &["new.log"]), sorted(&["b3", "n1"]), "a new matching name: everything");
    }

    #[test]
    fn a_file_rotated_away_is_read_on_any_change_notice() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let log = d.join("app.log");
        append(&log, "one\n");
        let mut config = TailConfig::new(d.join("*.log"));
        config.start = StartAt::Beginning;
        config.rotate_wait = Duration::from_secs(30);
        let mut g = GlobTailer::new(config).unwrap();
        assert_eq!(poll(&mut g), sorted(&["one"]));
        // Rotated to a name the pattern does not match; the writer still
        // has the old file open.
        fs::rename(&log, d.join("app.old")).unwrap();
        append(&log, "new file\n");
        assert_eq!(poll(&mut g), Vec::<String>::new(), "the old file is read to its end first");
        append(&d.join("app.old"), "two\n");
        assert_eq!(poll_names(&mut g, &["app.old"]), sorted(&["two"]), "the rotated file, under a name not followed");
    }

    #[test]
    fn a_rotated_name_that_matches_is_not_read_twice() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let log = d.join("app.log");
        append(&log, "one\ntwo\n");
        let mut config = TailConfig::new(d.join("app.log*"));
        config.start = StartAt::Beginning;
        config.rotate_wait = Duration::from_millis(50);
        let mut g = GlobTailer::new(config).unwrap();
        assert_eq!(poll(&mut g), sorted(&["one", "two"]));
        fs::rename(&log, d.join("app.log.1")).unwrap();
        append(&d.join("app.log.1"), "three\n");
        append(&log, "four\n");
        let mut all = poll(&mut g);
        for _ in 0..5 {
            std::thread::sleep(Duration::from_millis(60));
            all.extend(poll(&mut g));
        }
        all.sort();
        assert_eq!(all, sorted(&["three", "four"]), "each line once, though app.log.1 matches too");
    }

    /// Polls `g` until nothing came for a few polls; returns the lines
    /// and keeps, per file of each path, the position after its last line
    /// (as an engine acknowledging everything would save).
    fn settle(g: &mut GlobTailer, saved: &mut Vec<SavedFile>) -> Vec<String> {
        let mut got = Vec::new();
        let mut paths: std::collections::HashMap<u64, PathBuf> =
            g.slots.iter().map(|s| (s.id, s.path.clone())).collect();
        let mut quiet = 0;
        while quiet < 6 {
            let before = got.len();
            g.poll(&mut |o| {
                match o {
                    GlobOutput::Started { slot, path } => {
                        paths.insert(slot, path);
                    }
                    GlobOutput::Slot { slot, output: Output::Lines(l) } => {
                        got.extend(l.chunk.lines.iter().map(|s| String::from_utf8_lossy(l.chunk.text(s)).into_owned()));
                        let position =
                            SavedPosition { file: l.file, fingerprint: l.fingerprint, offset: l.chunk.end_offset };
                        // One entry per file of a path (a truncated file, read
                        // again from 0, is another), as an engine keeps them.
                        let path = paths[&slot].clone();
                        let same = |s: &&mut SavedFile| {
                            s.path == path && s.position.file == l.file && s.position.offset <= position.offset
                        };
                        match saved.iter_mut().rev().find(same) {
                            Some(s) => s.position = position,
                            None => saved.push(SavedFile { path, position }),
                        }
                    }
                    _ => {}
                }
                true
            });
            quiet = if got.len() == before { quiet + 1 } else { 0 };
            std::thread::sleep(Duration::from_millis(30));
        }
        got.sort();
        got
    }

    fn config(pattern: PathBuf) -> TailConfig {
        let mut config = TailConfig::new(pattern);
        config.start = StartAt::Beginning;
        config.rotate_wait = Duration::from_millis(50);
        config
    }

    #[test]
    fn resumes_every_file_and_reads_new_ones_whole() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        append(&d.join("a.log"), "a1\na2\n");
        append(&d.join("b.log"), "b1\n");
        append(&d.join("gone.log"), "g1\n");
        let mut saved = Vec::new();
        let mut g = GlobTailer::new(config(d.join("*.log"))).unwrap();
        assert_eq!(settle(&mut g, &mut saved), sorted(&["a1", "a2", "b1", "g1"]));
        drop(g);

        // While nobody follows: appends, a new file, a rotation to a name
        // that does not match, a rotation without a new file, a deletion.
        append(&d.join("a.log"), "a3\n");
        append(&d.join("c.log"), "c1\n");
        fs::rename(d.join("b.log"), d.join("b.log.1")).unwrap();
        append(&d.join("b.log.1"), "b2\n");
        append(&d.join("b.log"), "b3\n");
        fs::rename(d.join("gone.log"), d.join("gone.log.1")).unwrap();
        append(&d.join("gone.log.1"), "g2\n");

        let mut g = GlobTailer::resume(config(d.join("*.log")), saved.clone()).unwrap();
        assert_eq!(settle(&mut g, &mut saved), sorted(&["a3", "b2", "b3", "c1", "g2"]));
        drop(g);
        let mut g = GlobTailer::resume(config(d.join("*.log")), saved.clone()).unwrap();
        assert!(settle(&mut g, &mut saved).is_empty(), "nothing is read twice");
    }

    #[test]
    fn a_copy_made_by_copytruncate_is_not_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let log = d.join("app.log");
        let long: String = (0..40).map(|i| format!("line number {i:03}\n")).collect();
        append(&log, &long);
        let mut saved = Vec::new();
        let mut g = GlobTailer::new(config(d.join("app.log*"))).unwrap();
        assert_eq!(settle(&mut g, &mut saved).len(), 40);

        // Following: the copy shows up, the original is cut.
        fs::copy(&log, d.join("app.log.1")).unwrap();
        fs::File::create(&log).unwrap();
        append(&log, "after the first\n");
        assert_eq!(settle(&mut g, &mut saved), sorted(&["after the first"]));
        drop(g);

        // Stopped before the next truncation was seen: the copy is found by
        // content, and the cut file read whole.
        let before_cut = saved.clone();
        fs::copy(&log, d.join("app.log.2")).unwrap();
        fs::File::create(&log).unwrap();
        append(&log, "after the second\n");
        // (app.log.2 holds one short line: fewer than 512 bytes do not tell
        // a copy from another file that starts alike, so it is read.)
        let mut g = GlobTailer::resume(config(d.join("app.log*")), before_cut).unwrap();
        let got = settle(&mut g, &mut saved);
        assert!(got.contains(&"after the second".to_string()), "{got:?}");
        assert!(!got.iter().any(|l| l.starts_with("line number")), "the first copy is not read: {got:?}");
    }

    #[test]
    fn unacknowledged_lines_of_a_file_rotated_away_are_read_again_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let log = d.join("app.log");
        append(&log, "a1\na2\n");
        let mut saved = Vec::new();
        let mut g = GlobTailer::new(config(d.join("*.log"))).unwrap();
        assert_eq!(settle(&mut g, &mut saved), sorted(&["a1", "a2"]));
        // Rotated while followed, to a name that does not match.
        fs::rename(&log, d.join("app.log.1")).unwrap();
        append(&d.join("app.log.1"), "a3\n");
        append(&log, "b1\n");
        assert_eq!(settle(&mut g, &mut saved), sorted(&["a3", "b1"]));
        drop(g);
        // A crash while a window still held "a3": its file was saved at the
        // offset before it, the new file after "b1".
        let last_of = |ino: u64| saved.iter().rev().find(|s| s.position.file.ino == ino).unwrap().clone();
        let old = fs::metadata(d.join("app.log.1")).unwrap();
        let new = fs::metadata(&log).unwrap();
        use std::os::unix::fs::MetadataExt;
        let mut first = last_of(old.ino());
        first.position.offset = 6;
        let crashed = vec![first, last_of(new.ino())];
        let mut g = GlobTailer::resume(config(d.join("*.log")), crashed).unwrap();
        assert_eq!(settle(&mut g, &mut saved), sorted(&["a3"]), "the unacknowledged line once more, nothing else");
    }

    #[test]
    fn patterns_only_in_the_file_name() {
        assert!(GlobTailer::new(TailConfig::new("/var/*/app.log")).is_err());
        assert!(GlobTailer::new(TailConfig::new("/var/log/[.log")).is_err());
        assert!(is_glob(Path::new("/var/log/*.log")) && !is_glob(Path::new("/var/log/app.log")));
    }
}
