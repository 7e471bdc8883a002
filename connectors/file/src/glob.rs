//! Following every file whose name matches a pattern.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use crate::{follow_loop, parent_dir, FileId, Notice, Output, StartAt, TailConfig, Tailer};

/// True when the last component of `path` holds a glob pattern (`*`, `?`,
/// `[...]`).
pub fn is_glob(path: &Path) -> bool {
    path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.contains(['*', '?', '[']))
}

/// One matched path and its tailer.
struct Slot {
    /// The path that matched.
    path: PathBuf,
    /// Follows it.
    tailer: Tailer,
}

/// Follows every file of a directory whose name matches a pattern, each the
/// way [`Tailer`] follows one path, including files that appear later.
///
/// The pattern may only be in the file name (`/var/log/app-*.log`); the
/// directory is literal. A file is followed under one name only: when a
/// rotated file gets a name that matches too (`app.log` renamed to
/// `app.log.1` under `app.log*`), the tailer that already has it open reads
/// it to its end, and the new name is not followed from its start again.
pub struct GlobTailer {
    /// The settings every file is followed with; `path` is the pattern.
    template: TailConfig,
    /// The directory scanned.
    dir: PathBuf,
    /// The file-name pattern.
    pattern: ::glob::Pattern,
    /// The paths followed.
    slots: Vec<Slot>,
    /// Files some tailer has had open, while they still exist: a new name for
    /// one of them is a rotation, not a new file.
    claimed: HashSet<FileId>,
    /// True until the first scan: files found then start where the template
    /// says; files found later are read from their start.
    first_scan: bool,
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
            claimed: HashSet::new(),
            first_scan: true,
            warned_missing: false,
        })
    }

    /// One look at the directory and every followed file.
    pub fn poll(&mut self, out: &mut dyn FnMut(Output) -> bool) -> bool {
        let mut present = HashSet::new();
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
                    if !matches || self.slots.iter().any(|s| s.path == path) || self.claimed.contains(&id) {
                        continue;
                    }
                    let mut config = self.template.clone();
                    config.path = path.clone();
                    if !self.first_scan {
                        config.start = StartAt::Beginning;
                    }
                    self.slots.push(Slot { path, tailer: Tailer::new(config) });
                }
            }
            Err(_) if !self.warned_missing => {
                self.warned_missing = true;
                if !out(Output::Notice(Notice::Waiting(self.dir.clone()))) {
                    return false;
                }
            }
            Err(_) => {}
        }
        self.first_scan = false;
        for slot in &mut self.slots {
            // A path that vanished is not waited for: its file is read to its
            // end and the slot goes; a file matching again is new.
            let ok = slot.tailer.poll(&mut |o| match o {
                Output::Notice(Notice::Waiting(_)) => true,
                other => out(other),
            });
            if !ok {
                return false;
            }
            self.claimed.extend(slot.tailer.open_files());
        }
        self.slots.retain(|s| !s.tailer.is_idle() || s.path.exists());
        let open: HashSet<FileId> = self.slots.iter().flat_map(|s| s.tailer.open_files()).collect();
        self.claimed.retain(|id| present.contains(id) || open.contains(id));
        true
    }

    /// The paths followed now.
    pub fn paths(&self) -> impl Iterator<Item = &Path> {
        self.slots.iter().map(|s| s.path.as_path())
    }

    /// Polls until `stop` is set or `out` returns false, like [`Tailer::run`].
    pub fn run(mut self, stop: &AtomicBool, mut out: impl FnMut(Output) -> bool) {
        let (dir, interval) = (self.dir.clone(), self.template.poll_interval);
        follow_loop(&dir, interval, stop, || self.poll(&mut out));
    }
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
            if let Output::Lines(l) = o {
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

    #[test]
    fn patterns_only_in_the_file_name() {
        assert!(GlobTailer::new(TailConfig::new("/var/*/app.log")).is_err());
        assert!(GlobTailer::new(TailConfig::new("/var/log/[.log")).is_err());
        assert!(is_glob(Path::new("/var/log/*.log")) && !is_glob(Path::new("/var/log/app.log")));
    }
}
