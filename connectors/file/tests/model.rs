//! A model-based test: random sequences of what writers and log rotation do
//! to a file, against what the tailer hands out.
//!
//! The writer writes numbered lines, so each line is unique and the order of
//! writing is known. The assertion: every complete line written is handed
//! out exactly once, in order within each file, and nothing else is.
//!
//! Some races are inherent and kept out of the model, as they are out of the
//! tailer's reach: lines written and then cut away by copytruncate or
//! truncation before anyone looked, a file deleted before it was ever looked
//! at, and a file renamed away before the tailer ever opened it. So the model
//! polls before those operations (as a tailer running alongside the writer
//! would have done); a rename of a file the tailer has open is not preceded
//! by a poll, and the writer keeps writing into the renamed file for a while.

use std::collections::{HashMap, HashSet};
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use proptest::prelude::*;
use sluice_file::{Notice, Output, SavedPosition, StartAt, TailConfig, Tailer};

#[derive(Debug, Clone)]
enum Op {
    /// Complete lines (finishing a partial line first).
    Append(u8),
    /// The first part of a line, without its newline.
    Partial,
    /// The tailer looks.
    Poll,
    /// logrotate `create`: rename away, new empty file at the path.
    Rename,
    /// Copy away, then truncate in place.
    CopyTruncate,
    /// Truncate in place.
    Truncate,
    /// Delete the file; the next write creates it again.
    Delete,
    /// Stop the tailer and start a new one from the saved position of the
    /// last line handed out.
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1u8..6).prop_map(Op::Append),
        2 => Just(Op::Partial),
        4 => Just(Op::Poll),
        1 => Just(Op::Rename),
        1 => Just(Op::CopyTruncate),
        1 => Just(Op::Truncate),
        1 => Just(Op::Delete),
        2 => Just(Op::Restart),
    ]
}

struct Model {
    path: PathBuf,
    dir: PathBuf,
    tailer: Tailer,
    next_line: u32,
    /// The line being written without its newline yet, if any.
    partial: Option<u32>,
    /// Which file generation each line went to.
    generation_of: HashMap<u32, u32>,
    generation: u32,
    rotations: u32,
    written: Vec<u32>,
    emitted: Vec<String>,
    /// A file was created at the path since the tailer last looked.
    created_since_poll: bool,
    /// Where to resume: after the last line handed out, or where the newest
    /// file opened starts, whichever belongs to the later generation.
    /// Keyed by (tailer instance, generation, offset): a new tailer counts
    /// generations from 0 again.
    saved: Option<((u32, u64, u64), SavedPosition)>,
    /// Counts tailer instances.
    instance: u32,
}

impl Model {
    fn write(&mut self, text: &str) {
        self.created_since_poll |= !self.path.exists();
        OpenOptions::new().create(true).append(true).open(&self.path).unwrap().write_all(text.as_bytes()).unwrap();
    }

    fn finish_partial(&mut self) {
        if let Some(id) = self.partial.take() {
            self.write(&format!("{id:06} and the rest\n"));
            self.written.push(id);
        }
    }

    fn poll(&mut self) {
        self.created_since_poll = false;
        let emitted = &mut self.emitted;
        let saved = &mut self.saved;
        let instance = self.instance;
        // Like the engine: the latest place handed out (files are read one
        // after the other, so the latest is also the furthest).
        let mut keep = |generation: u64, p: SavedPosition| {
            let key = (instance, generation, p.offset);
            debug_assert!(saved.is_none_or(|(k, _)| k <= key), "places handed out go forward");
            *saved = Some((key, p));
        };
        self.tailer.poll(&mut |o| {
            match o {
                Output::Lines(l) => {
                    for s in &l.chunk.lines {
                        emitted.push(String::from_utf8_lossy(l.chunk.text(s)).into_owned());
                    }
                    keep(
                        l.generation,
                        SavedPosition { file: l.file, fingerprint: l.fingerprint, offset: l.chunk.end_offset },
                    );
                }
                Output::Notice(Notice::Opened { position, generation }) => keep(generation, position),
                Output::Notice(_) => {}
            }
            true
        });
    }

    fn apply(&mut self, op: &Op) {
        match op {
            Op::Append(n) => {
                self.finish_partial();
                let mut text = String::new();
                for _ in 0..*n {
                    let id = self.next_line;
                    self.next_line += 1;
                    self.generation_of.insert(id, self.generation);
                    text.push_str(&format!("{id:06} log line {}\n", "x".repeat(id as usize % 40)));
                    self.written.push(id);
                }
                self.write(&text);
            }
            Op::Partial => {
                if self.partial.is_none() {
                    let id = self.next_line;
                    self.next_line += 1;
                    self.generation_of.insert(id, self.generation);
                    self.write(&format!("{id:06} half"));
                    self.partial = Some(id);
                }
            }
            Op::Poll => self.poll(),
            Op::Restart => {
                let start = self.saved.map_or(StartAt::Beginning, |(_, p)| StartAt::Saved(p));
                self.tailer = Tailer::new(config(&self.path, start));
                self.instance += 1;
            }
            Op::Rename => {
                self.finish_partial();
                if self.created_since_poll {
                    self.poll();
                }
                if self.path.exists() {
                    self.rotations += 1;
                    let old = self.dir.join(format!("app.log.{}", self.rotations));
                    fs::rename(&self.path, &old).unwrap();
                    fs::write(&self.path, b"").unwrap();
                    self.created_since_poll = true;
                    // The writer has not reopened yet: two more lines go to
                    // the renamed file.
                    let mut text = String::new();
                    for _ in 0..2 {
                        let id = self.next_line;
                        self.next_line += 1;
                        self.generation_of.insert(id, self.generation);
                        text.push_str(&format!("{id:06} late in the old file\n"));
                        self.written.push(id);
                    }
                    OpenOptions::new().append(true).open(&old).unwrap().write_all(text.as_bytes()).unwrap();
                    self.generation += 1;
                }
            }
            Op::CopyTruncate | Op::Truncate => {
                self.finish_partial();
                self.poll();
                if self.path.exists() {
                    if matches!(op, Op::CopyTruncate) {
                        self.rotations += 1;
                        fs::copy(&self.path, self.dir.join(format!("app.log.{}", self.rotations))).unwrap();
                    }
                    OpenOptions::new().write(true).open(&self.path).unwrap().set_len(0).unwrap();
                    self.generation += 1;
                }
            }
            Op::Delete => {
                self.finish_partial();
                self.poll();
                if self.path.exists() {
                    fs::remove_file(&self.path).unwrap();
                    self.generation += 1;
                }
            }
        }
    }
}

fn config(path: &std::path::Path, start: StartAt) -> TailConfig {
    let mut config = TailConfig::new(path);
    config.start = start;
    config.idle_flush = Duration::from_secs(3600); // partial lines wait for their newline
                                                   // A rotated file is closed as soon as it was read to its end (the model's
                                                   // writer finishes with it before the next look).
    config.rotate_wait = Duration::ZERO;
    config
}

fn check(ops: &[Op]) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    let mut m = Model {
        tailer: Tailer::new(config(&path, StartAt::Beginning)),
        path,
        dir: dir.path().to_path_buf(),
        next_line: 0,
        partial: None,
        generation_of: HashMap::new(),
        generation: 0,
        rotations: 0,
        written: Vec::new(),
        emitted: Vec::new(),
        created_since_poll: false,
        saved: None,
        instance: 0,
    };
    for op in ops {
        m.apply(op);
    }
    m.finish_partial();
    m.poll();
    m.poll();

    let ids: Vec<u32> = m
        .emitted
        .iter()
        .map(|line| {
            line.get(..6).and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("not a written line: {line:?}"))
        })
        .collect();
    let unique: HashSet<u32> = ids.iter().copied().collect();
    prop_assert_eq!(unique.len(), ids.len(), "a line was handed out twice: {:?}", ids);
    let written: HashSet<u32> = m.written.iter().copied().collect();
    prop_assert_eq!(&unique, &written, "handed out {:?}, written {:?}", ids, m.written);
    // In order within each file generation.
    let mut last: HashMap<u32, u32> = HashMap::new();
    for id in &ids {
        let g = m.generation_of[id];
        if let Some(prev) = last.insert(g, *id) {
            prop_assert!(prev < *id, "out of order in file generation {}: {:?}", g, ids);
        }
    }
    // Whole lines only: a partial line is handed out with its rest.
    for line in &m.emitted {
        prop_assert!(!line.ends_with("half"), "a partial line was handed out alone: {:?}", line);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn every_complete_line_exactly_once_in_order(ops in proptest::collection::vec(op(), 1..40)) {
        check(&ops)?;
    }
}

#[test]
fn a_known_tricky_sequence() {
    use Op::*;
    check(&[
        Append(2),
        Poll,
        Partial,
        Rename,
        Append(1),
        Delete,
        Append(3),
        CopyTruncate,
        Append(1),
        Truncate,
        Append(2),
    ])
    .unwrap();
    check(&[Append(1), Poll, Append(2), Rename, Rename, Poll, Append(1)]).unwrap();
    check(&[Append(2), Poll, Append(1), Rename, Restart, Append(1), Restart, Poll, Restart]).unwrap();
}
