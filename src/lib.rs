//! # sluice
//!
//! A stream-processing engine: sources feed one operator graph, which runs
//! either in fixed-interval micro-batches (Spark Streaming style) or one event
//! at a time (Storm style), emits windowed aggregates (word counts first of
//! all) to sinks, and measures what each mode costs in latency.
//!
//! ## Layout
//! - [`record`]: what flows: a [`Line`] or a value in a [`Record`] with its
//!   [`Meta`] (sequence number, ingest time, event time, source position).
//! - [`operator`]: the typed operator chain, one operator per file:
//!   `map`, `filter`, `flat_map`, `words`, `key_by`; every operator runs per item
//!   (per-event mode) or per batch (micro-batch mode).
//! - [`window`]: window shapes, time domains, watermarks, and the keyed
//!   window aggregate that decides lateness and emits results.
//! - [`aggregate`]: count, sum, min, max, and user folds.
//! - [`sink`]: the [`Sink`] trait and the built-in sinks.
//! - [`source`]: files, stdin, TCP, the generator and the demo; line framing
//!   comes from the `sluice-lines` connector.
//! - [`executor`]: the two modes, and [`run`].
//! - [`latency`]: HDR histograms for processing, end-to-end and result latency.
//! - [`report`]: the run report.
//! - [`compare`]: `sluice compare`, one pipeline under several modes.
//! - [`config`]: the pipeline file (TOML) and its validation.
//! - [`usage`]: CPU time and peak memory of a run.
//! - [`tokenize()`]: the exact word tokenizer.
//!
//! ## A pipeline, defined once, run in either mode
//!
//! ```
//! use std::time::Duration;
//! use sluice::{lines, run, tokenize, Mode, RunOptions, Word, WindowConfig, WindowSpec};
//! use sluice::source::{FileSource, Source};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("in.txt");
//! std::fs::write(&path, "the cat\nthe hat\n").unwrap();
//!
//! for mode in [Mode::PerEvent, Mode::MicroBatch { interval: Duration::from_millis(10) }] {
//!     let (tx, rx) = std::sync::mpsc::channel();
//!     let pipeline = lines()
//!         .flat_map(|line, emit| tokenize(&line.text(), emit))
//!         .key_by(|w: &Word| w.clone())
//!         .window(WindowConfig::new(WindowSpec::Global))
//!         .count()
//!         .sink(sluice::sink::from_fn(move |r: &sluice::WindowResult<Word, u64>| {
//!             tx.send((r.key.to_string(), r.value)).unwrap();
//!             Ok(())
//!         }))
//!         .build();
//!     let source: Box<dyn Source> = Box::new(FileSource::new(path.clone(), 1 << 20));
//!     let outcome = run(pipeline, vec![source], &RunOptions::new(mode));
//!     assert!(outcome.error.is_none());
//!     let mut counts: Vec<_> = rx.try_iter().collect();
//!     counts.sort();
//!     assert_eq!(counts, [("cat".into(), 1), ("hat".into(), 1), ("the".into(), 2)]);
//! }
//! ```

#![deny(missing_docs)]

pub mod aggregate;
pub mod checkpoint;
pub mod compare;
pub mod config;
pub mod error;
pub mod executor;
pub mod latency;
pub mod metrics;
pub mod operator;
mod pipeline;
pub mod record;
pub mod report;
mod shard;
pub mod sink;
pub mod source;
pub mod time;
pub mod tokenize;
pub mod usage;
pub mod window;
pub mod word;
pub mod wordcount;

pub use aggregate::{Aggregate, Count};
pub use error::{RunError, SpecError};
pub use executor::{run, Mode, RunOptions, RunOutcome};
pub use operator::{lines, KeyedStream, Stream};
pub use pipeline::{Aggregated, Key, Pipeline, WindowedStream};
pub use record::{Line, Meta, Position, Record};
pub use report::RunReport;
pub use sink::Sink;
pub use tokenize::{tokenize, Word};
pub use window::operator::{LateEvent, WindowResult};
pub use window::{OutputMode, TimeDomain, Window, WindowConfig, WindowSpec};
