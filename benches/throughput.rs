//! Throughput benchmarks: the tokenizer alone, the whole word-count pipeline
//! in each mode over a real book, and the cost of recording one latency.
//!
//! Run with `cargo bench --bench throughput`; numbers go in BENCHMARKS.md.

// criterion_group! makes an undocumented function.
#![allow(missing_docs)]

use std::path::PathBuf;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use sluice::latency::LatencyRecorder;
use sluice::source::{FileSource, Source};
use sluice::{lines, run, sink, tokenize, Mode, RunOptions, WindowConfig, WindowSpec};

fn book() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/moby-dick.txt")
}

fn tokenizer(c: &mut Criterion) {
    let text = std::fs::read_to_string(book()).unwrap();
    let mut g = c.benchmark_group("tokenize");
    g.throughput(Throughput::Bytes(text.len() as u64));
    g.bench_function("moby-dick", |b| {
        b.iter(|| {
            let mut n = 0usize;
            for line in text.lines() {
                tokenize(line, |w| n += w.len());
            }
            n
        })
    });
    g.finish();
}

fn pipeline(c: &mut Criterion) {
    let path = book();
    let bytes = std::fs::metadata(&path).unwrap().len();
    let mut g = c.benchmark_group("word-count");
    g.throughput(Throughput::Bytes(bytes));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(8));
    for (name, mode, shards) in [
        ("per-event", Mode::PerEvent, 1),
        ("micro-batch-10ms", Mode::MicroBatch { interval: Duration::from_millis(10) }, 1),
        ("per-event, 2 shards", Mode::PerEvent, 2),
        ("micro-batch-10ms, 2 shards", Mode::MicroBatch { interval: Duration::from_millis(10) }, 2),
    ] {
        g.bench_function(name, |b| {
            b.iter_batched(
                || {
                    lines()
                        .flat_map(|line, emit| tokenize(&line.text(), emit))
                        .key()
                        .window(WindowConfig::new(WindowSpec::Global))
                        .count()
                        .sink(sink::Null)
                        .build()
                },
                |p| {
                    let source: Box<dyn Source> = Box::new(FileSource::new(path.clone(), 1 << 20));
                    let mut opts = RunOptions::new(mode);
                    opts.parallelism = shards;
                    let outcome = run(p, vec![source], &opts);
                    assert!(outcome.error.is_none());
                    outcome.report.items
                },
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

fn latency_recording(c: &mut Criterion) {
    let mut rec = LatencyRecorder::default();
    let mut i = 0u64;
    c.bench_function("latency/record_event", |b| {
        b.iter(|| {
            i = i.wrapping_add(7919);
            rec.record_event(1_000, 1_700_000_000_000_000_000, 1_000 + (i % 100_000), 1_700_000_000_000_500_000);
        })
    });
    // The other half of what per-event mode pays to measure: one reading
    // of the run's monotonic clock, one or two a line.
    let clock = sluice::time::Clock::new();
    c.bench_function("latency/clock_now", |b| b.iter(|| clock.now()));
    // What per-event mode reads instead within a chunk: the time-stamp
    // counter, from one reading of that clock.
    let mut watch = sluice::time::Stopwatch::new(&clock, clock.now());
    c.bench_function("latency/stopwatch_now", |b| b.iter(|| watch.now()));
}

criterion_group!(benches, tokenizer, pipeline, latency_recording);
criterion_main!(benches);
