//! Word count with the library API: the same pipeline under both modes.
//!
//! ```text
//! cargo run --release --example wordcount -- tests/fixtures/moby-dick.txt
//! ```
//!
//! It counts the words longer than three letters of a file in one global
//! window, prints the ten most frequent, and shows the per-event and
//! micro-batch reports one after the other.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sluice::source::{FileSource, Source};
use sluice::{lines, run, sink, tokenize, Mode, RunOptions, WindowConfig, WindowResult, WindowSpec, Word};

fn main() {
    let path = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "tests/fixtures/moby-dick.txt".into()));
    for mode in [Mode::PerEvent, Mode::MicroBatch { interval: Duration::from_millis(100) }] {
        let counts = Arc::new(Mutex::new(Vec::new()));
        let seen = counts.clone();
        // The pipeline: defined once, with no mention of the mode.
        let pipeline = lines()
            .flat_map(|line, emit| tokenize(&line.text(), emit))
            .filter(|word: &Word| word.len() > 3)
            .key_by(|word: &Word| word.clone())
            .window(WindowConfig::new(WindowSpec::Global))
            .count()
            .sink(sink::from_fn(move |r: &WindowResult<Word, u64>| {
                seen.lock().expect("not poisoned").push((r.value, r.key.clone()));
                Ok(())
            }))
            .build();
        let source: Box<dyn Source> = Box::new(FileSource::new(path.clone(), 1 << 20));
        let outcome = run(pipeline, vec![source], &RunOptions::new(mode));
        if let Some(e) = outcome.error {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
        let mut counts = counts.lock().expect("not poisoned").clone();
        counts.sort_unstable_by(|a, b| b.cmp(a));
        let top: Vec<String> = counts.iter().take(10).map(|(n, w)| format!("{w} {n}")).collect();
        println!("{}: {}", mode.name(), top.join(", "));
        eprint!("{}", outcome.report.render());
    }
}
