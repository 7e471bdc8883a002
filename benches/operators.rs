//! Per-operator benchmarks: each operator alone over the same batch of
//! lines, the window operator alone over the words, and one hop through a
//! bounded channel between two threads (the queue from a source to the
//! executor, and from the router to a shard).
//!
//! Run with `cargo bench --bench operators`; numbers go in BENCHMARKS.md.

// criterion_group! makes an undocumented function.
#![allow(missing_docs)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use sluice::operator::{Keyed, Stage};
use sluice::time::{Clock, NO_TIME};
use sluice::window::operator::WindowOperator;
use sluice::{lines, tokenize, Count, Line, Meta, Position, Record, WindowConfig, WindowSpec, Word};

fn book() -> Bytes {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/moby-dick.txt");
    Bytes::from(std::fs::read(path).unwrap())
}

fn meta(seq: u64) -> Meta {
    Meta { seq, ingest: seq, event_time: NO_TIME, pos: Position::default(), frontier: NO_TIME }
}

/// The book as input records, one per line.
fn records(data: &Bytes) -> Vec<Record<Line>> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, b) in data.iter().enumerate() {
        if *b == b'\n' {
            out.push(Record { value: Line::new(data.slice(start..i)), meta: meta(out.len() as u64) });
            start = i + 1;
        }
    }
    out
}

/// Runs a stage over every line of the book, collecting its outputs, and
/// returns their count.
fn drive<S: Stage<Line>>(stage: &mut S, input: &[Record<Line>], out: &mut Vec<S::Out>) -> usize {
    for rec in input.iter().cloned() {
        stage.push(rec.value, &rec.meta, &mut |o, _| out.push(o));
    }
    let n = out.len();
    out.clear();
    n
}

fn operators(c: &mut Criterion) {
    let data = book();
    let input = records(&data);
    let mut g = c.benchmark_group("operator");
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.bench_function("map (line length)", |b| {
        let mut stage = lines().map(|l: Line| l.as_bytes().len()).into_stage();
        let mut out = Vec::new();
        b.iter(|| drive(&mut stage, &input, &mut out))
    });
    g.bench_function("filter (non-empty lines)", |b| {
        let mut stage = lines().filter(|l: &Line| !l.as_bytes().is_empty()).into_stage();
        let mut out = Vec::new();
        b.iter(|| drive(&mut stage, &input, &mut out))
    });
    g.bench_function("flat_map (tokenize)", |b| {
        let mut stage = lines().flat_map(|l: Line, emit| tokenize(&l.text(), emit)).into_stage();
        let mut out = Vec::new();
        b.iter(|| drive(&mut stage, &input, &mut out))
    });
    g.bench_function("flat_map + key (word as key)", |b| {
        let mut stage = lines().flat_map(|l: Line, emit| tokenize(&l.text(), emit)).key().into_stage();
        let mut out = Vec::new();
        b.iter(|| drive(&mut stage, &input, &mut out))
    });
    g.bench_function("flat_map + key_by (cloned key)", |b| {
        let mut stage =
            lines().flat_map(|l: Line, emit| tokenize(&l.text(), emit)).key_by(|w: &Word| w.clone()).into_stage();
        let mut out = Vec::new();
        b.iter(|| drive(&mut stage, &input, &mut out))
    });
    g.finish();

    // The window operator alone: every word of the book into a global and a
    // tumbling count, per-event mode (the work is the same in both modes).
    let mut words = Vec::new();
    let mut keyer = lines().flat_map(|l: Line, emit| tokenize(&l.text(), emit)).key().into_stage();
    for rec in input.iter().cloned() {
        keyer.push(rec.value, &rec.meta, &mut |kv, meta| words.push((kv, *meta)));
    }
    let mut g = c.benchmark_group("window");
    g.throughput(Throughput::Elements(words.len() as u64));
    for (name, spec) in [
        ("global count", WindowSpec::Global),
        ("tumbling count", WindowSpec::Tumbling { size: Duration::from_secs(1) }),
    ] {
        g.bench_function(name, |b| {
            b.iter_batched(
                || {
                    (
                        WindowOperator::<Word, (), Count>::new(
                            WindowConfig::new(spec),
                            Count,
                            Clock::new(),
                            true,
                            false,
                        ),
                        words.clone(),
                    )
                },
                |(mut op, words): (_, Vec<(Keyed<Word, ()>, Meta)>)| {
                    for (kv, meta) in words {
                        op.process(kv, &meta);
                    }
                    op.counters().items
                },
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

/// One hop through a bounded crossbeam channel to another thread.
fn channel_hop(c: &mut Criterion) {
    let mut g = c.benchmark_group("channel hop");
    // Throughput: messages streamed one way, the receiver draining.
    g.throughput(Throughput::Elements(1));
    g.bench_function("stream (bounded 64)", |b| {
        b.iter_custom(|iters| {
            let (tx, rx) = crossbeam_channel::bounded::<u64>(64);
            let consumer = std::thread::spawn(move || rx.iter().sum::<u64>());
            let start = Instant::now();
            for i in 0..iters {
                tx.send(i).unwrap();
            }
            drop(tx);
            consumer.join().unwrap();
            start.elapsed()
        })
    });
    // Latency: a round trip to a thread that waits on its queue, halved.
    for (name, spin) in [("one way, blocking recv", false), ("one way, polling", true)] {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let (tx, rx) = crossbeam_channel::bounded::<u64>(1);
                let (back, ret) = crossbeam_channel::bounded::<u64>(1);
                let echo = std::thread::spawn(move || loop {
                    let got = if spin {
                        loop {
                            match rx.try_recv() {
                                Ok(v) => break Ok(v),
                                Err(crossbeam_channel::TryRecvError::Empty) => std::hint::spin_loop(),
                                Err(e) => break Err(e),
                            }
                        }
                    } else {
                        rx.recv().map_err(|_| crossbeam_channel::TryRecvError::Disconnected)
                    };
                    match got {
                        Ok(v) => back.send(v).unwrap(),
                        Err(_) => return,
                    }
                });
                let start = Instant::now();
                for i in 0..iters {
                    tx.send(i).unwrap();
                    if spin {
                        while ret.try_recv().is_err() {
                            std::hint::spin_loop();
                        }
                    } else {
                        ret.recv().unwrap();
                    }
                }
                let took = start.elapsed() / 2;
                drop(tx);
                echo.join().unwrap();
                took
            })
        });
    }
    g.finish();
}

criterion_group!(benches, operators, channel_hop);
criterion_main!(benches);
