//! Time behaviour, driven through the library with a scripted source:
//! per-event emits without timers, micro-batch only at boundaries,
//! processing time moves without events, late events are routed.

use std::sync::mpsc::{channel, Receiver, Sender};
use std::thread;
use std::time::{Duration, Instant};

use sluice::source::EventTimeFormat;
use sluice::source::{Feed, Source};
use sluice::{
    lines, run, tokenize, Mode, OutputMode, RunError, RunOptions, WindowConfig, WindowResult, WindowSpec, Word,
};

use crate::util::*;

/// A source that sends what the test tells it to, when it tells it to.
struct Scripted(Receiver<String>);

impl Source for Scripted {
    fn name(&self) -> String {
        "scripted".into()
    }
    fn run(self: Box<Self>, feed: Feed) -> Result<(), RunError> {
        for text in self.0.iter() {
            let mut reader = sluice_lines::LineReader::new(text.as_bytes(), 1 << 20);
            while let Some(chunk) = reader.next_chunk().unwrap() {
                feed.send_lines(chunk, text.len() as u64, 0);
            }
        }
        Ok(())
    }
}

type Results = Receiver<(String, u64, bool)>;

/// Starts a word count over a scripted source; returns the line sender, the
/// results, and the run's thread.
fn start(
    mode: Mode,
    config: WindowConfig,
    event_time: bool,
) -> (Sender<String>, Results, thread::JoinHandle<sluice::RunOutcome>) {
    let (line_tx, line_rx) = channel();
    let (res_tx, res_rx) = channel();
    let pipeline = lines()
        .flat_map(|line, emit| tokenize(&line.text(), emit))
        .key_by(|w: &Word| w.clone())
        .window(config)
        .count()
        .sink(sluice::sink::from_fn(move |r: &WindowResult<Word, u64>| {
            let _ = res_tx.send((r.key.to_string(), r.value, r.is_final));
            Ok(())
        }))
        .build();
    let mut opts = RunOptions::new(mode);
    if event_time {
        opts.event_time = EventTimeFormat::FirstField;
    }
    let handle = thread::spawn(move || run(pipeline, vec![Box::new(Scripted(line_rx))], &opts));
    (line_tx, res_rx, handle)
}

const WAIT: Duration = Duration::from_secs(10);

fn expect(rx: &Results, n: usize) -> Vec<(String, u64, bool)> {
    let mut got: Vec<_> =
        (0..n).map(|i| rx.recv_timeout(WAIT).unwrap_or_else(|_| panic!("result {i} of {n} never came"))).collect();
    got.sort();
    got
}

fn r(k: &str, n: u64, f: bool) -> (String, u64, bool) {
    (k.to_string(), n, f)
}

#[test]
fn per_event_emits_each_event_before_the_next_arrives() {
    let config = WindowConfig::new(WindowSpec::Tumbling { size: Duration::from_secs(3600) })
        .event_time(Duration::ZERO)
        .output(OutputMode::Update);
    let (tx, rx, handle) = start(Mode::PerEvent, config, true);
    tx.send("1700000000000 hello world\n".into()).unwrap();
    // Nothing else is sent until these arrive: no timer, no other event.
    assert_eq!(expect(&rx, 2), vec![r("hello", 1, false), r("world", 1, false)]);
    tx.send("1700000000001 hello\n".into()).unwrap();
    assert_eq!(expect(&rx, 1), vec![r("hello", 2, false)]);
    drop(tx);
    let outcome = handle.join().unwrap();
    assert!(outcome.error.is_none());
    assert_eq!(outcome.report.events, 2);
    assert_eq!(outcome.report.latency.processing.count, 2);
}

#[test]
fn per_event_final_results_leave_as_soon_as_the_watermark_passes() {
    let config = WindowConfig::new(WindowSpec::Tumbling { size: Duration::from_secs(1) }).event_time(Duration::ZERO);
    let (tx, rx, handle) = start(Mode::PerEvent, config, true);
    tx.send("1700000000100 a a\n".into()).unwrap();
    tx.send("1700000002000 b\n".into()).unwrap();
    // The second event moved the watermark past the first window's end.
    assert_eq!(expect(&rx, 1), vec![r("a", 2, true)]);
    drop(tx);
    assert_eq!(expect(&rx, 1), vec![r("b", 1, true)], "end of input closes the rest");
    let outcome = handle.join().unwrap();
    assert_eq!(outcome.report.latency.result.unwrap().count, 2);
}

#[test]
fn micro_batch_emits_only_at_batch_boundaries() {
    let config = WindowConfig::new(WindowSpec::Global).output(OutputMode::Update);
    let (tx, rx, handle) = start(Mode::MicroBatch { interval: Duration::from_secs(3600) }, config, false);
    tx.send("one two\n".into()).unwrap();
    thread::sleep(Duration::from_millis(500));
    assert!(rx.try_recv().is_err(), "nothing may leave before the boundary");
    drop(tx);
    assert_eq!(expect(&rx, 2), vec![r("one", 1, false), r("two", 1, false)]);
    let outcome = handle.join().unwrap();
    assert_eq!(outcome.report.batches, Some(1));

    // With a short interval, results come at the next boundary without any
    // further input, and one batch's changes come together.
    let (tx, rx, handle) = start(Mode::MicroBatch { interval: Duration::from_millis(200) }, config, false);
    let sent = Instant::now();
    tx.send("x x y\n".into()).unwrap();
    assert_eq!(expect(&rx, 2), vec![r("x", 2, false), r("y", 1, false)]);
    assert!(sent.elapsed() < WAIT);
    drop(tx);
    let outcome = handle.join().unwrap();
    assert!(outcome.report.batches.unwrap() >= 1);
}

#[test]
fn processing_time_windows_close_without_further_events_in_both_modes() {
    for mode in [Mode::PerEvent, Mode::MicroBatch { interval: Duration::from_millis(50) }] {
        let config = WindowConfig::new(WindowSpec::Tumbling { size: Duration::from_millis(300) });
        let (tx, rx, handle) = start(mode, config, false);
        tx.send("tick\n".into()).unwrap();
        // No more input: only the passing of time can close the window.
        assert_eq!(expect(&rx, 1), vec![r("tick", 1, true)], "{mode:?}");
        drop(tx);
        handle.join().unwrap();
    }
}

#[test]
fn late_events_are_counted_routed_and_never_added() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("late.txt");
    std::fs::write(&input, "1700000010500 a b\n1700000012100 c\n1700000010700 late\n1700000012200 c\n").unwrap();
    for mode in ["per-event", "micro-batch"] {
        let late = dir.path().join(format!("{mode}.late.jsonl"));
        let late_sink = format!("jsonl:{}", late.display());
        let (rows, rep) = run_file(
            &input,
            mode,
            &["--mode", mode, "--event-time", "first-field", "--window", "tumbling:1s", "--late-sink", &late_sink],
        );
        let mut rows: Vec<(String, String, u64)> =
            rows.into_iter().map(|r| (r.window_start.unwrap(), r.key, r.count)).collect();
        rows.sort();
        assert_eq!(
            rows,
            vec![
                ("2023-11-14T22:13:30.000Z".into(), "a".into(), 1),
                ("2023-11-14T22:13:30.000Z".into(), "b".into(), 1),
                ("2023-11-14T22:13:32.000Z".into(), "c".into(), 2),
            ],
            "{mode}"
        );
        let late_text = std::fs::read_to_string(&late).unwrap();
        let v: serde_json::Value = serde_json::from_str(late_text.trim()).unwrap();
        assert_eq!((v["key"].as_str(), v["window_end"].as_str()), (Some("late"), Some("2023-11-14T22:13:31.000Z")));
        assert_eq!(v["watermark"], "2023-11-14T22:13:32.100Z");
        assert_eq!((rep["late_events"].as_u64(), rep["late_items"].as_u64()), (Some(1), Some(1)));
        assert_eq!(rep["latency"]["processing"]["count"], 3, "late events have no emitted effect");
    }
}

#[test]
fn lines_without_a_time_never_move_the_watermark() {
    // A header and blank lines in a historical log: with wall-clock time in
    // the watermark, everything after them would be late.
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("hist.txt");
    std::fs::write(&input, "# exported log\n1700000010500 a\n\n1700000010600 b\n").unwrap();
    let (rows, rep) =
        run_file(&input, "hist", &["--mode", "per-event", "--event-time", "first-field", "--window", "tumbling:1s"]);
    assert_eq!(rep["late_events"], 0);
    assert_eq!(rep["event_time_fallbacks"], 1, "the header; blank lines are not fallbacks");
    let ab: Vec<_> = rows.iter().filter(|r| r.key == "a" || r.key == "b").collect();
    assert_eq!(ab.len(), 2);
    assert!(ab.iter().all(|r| r.window_start.as_deref() == Some("2023-11-14T22:13:30.000Z")));
}

/// A source that tells what its feed says of pacing, then ends.
struct AsksPacing(Sender<bool>);

impl Source for AsksPacing {
    fn name(&self) -> String {
        "asks-pacing".into()
    }
    fn run(self: Box<Self>, feed: Feed) -> Result<(), RunError> {
        let _ = self.0.send(feed.precise_pacing());
        Ok(())
    }
}

#[test]
fn only_per_event_mode_asks_paced_sources_to_poll_the_clock() {
    for (mode, precise) in [(Mode::PerEvent, true), (Mode::MicroBatch { interval: Duration::from_millis(100) }, false)]
    {
        let (tx, rx) = channel();
        let pipeline = lines()
            .flat_map(|line, emit| tokenize(&line.text(), emit))
            .key_by(|w: &Word| w.clone())
            .window(WindowConfig::new(WindowSpec::Global))
            .count()
            .sink(sluice::sink::from_fn(|_: &WindowResult<Word, u64>| Ok(())))
            .build();
        let outcome = run(pipeline, vec![Box::new(AsksPacing(tx))], &RunOptions::new(mode));
        assert!(outcome.error.is_none(), "{:?}", outcome.error);
        assert_eq!(rx.recv_timeout(WAIT), Ok(precise), "{mode:?}");
    }
}

/// A source much faster than the executor, into a short queue: it waits
/// for room (16 chunks: napping until half the queue is free, then in the
/// channel; 1 chunk: in the channel) and every line still arrives, in both
/// modes. (Not micro-batch with one chunk: its executor takes the queue
/// once a millisecond while chunks arrive, so this input's 12,000 chunks
/// would take 12 s.)
#[test]
fn a_source_that_fills_a_tiny_queue_loses_nothing() {
    struct Fast(Vec<u8>);
    impl Source for Fast {
        fn name(&self) -> String {
            "fast".into()
        }
        fn run(self: Box<Self>, feed: Feed) -> Result<(), RunError> {
            // Reads of at most 100 bytes, so chunks of a line or two:
            // thousands of them.
            struct Trickle<'a>(&'a [u8]);
            impl std::io::Read for Trickle<'_> {
                fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                    let n = buf.len().min(100).min(self.0.len());
                    buf[..n].copy_from_slice(&self.0[..n]);
                    self.0 = &self.0[n..];
                    Ok(n)
                }
            }
            let mut reader = sluice_lines::LineReader::new(Trickle(&self.0), 1 << 20);
            while let Some(chunk) = reader.next_chunk().unwrap() {
                let bytes = chunk.data.len() as u64;
                if !feed.send_lines(chunk, bytes, 0) {
                    break;
                }
            }
            Ok(())
        }
    }
    let book = std::fs::read(fixture("moby-dick.txt")).unwrap();
    let want = independent_count(&book);
    let micro_batch = Mode::MicroBatch { interval: Duration::from_millis(5) };
    for (mode, queue) in [(Mode::PerEvent, 1), (Mode::PerEvent, 16), (micro_batch, 16)] {
        let (res_tx, res_rx) = channel();
        let pipeline = lines()
            .words()
            .key()
            .window(WindowConfig::new(WindowSpec::Global))
            .count()
            .sink(sluice::sink::from_fn(move |r: &WindowResult<Word, u64>| {
                let _ = res_tx.send((r.key.to_string(), r.value));
                Ok(())
            }))
            .build();
        let mut opts = RunOptions::new(mode);
        opts.queue_chunks = queue;
        let source = Fast(book.clone());
        let (done_tx, done_rx) = channel();
        thread::spawn(move || {
            let _ = done_tx.send(run(pipeline, vec![Box::new(source)], &opts));
        });
        let outcome = done_rx.recv_timeout(Duration::from_secs(120)).expect("the run ended");
        assert!(outcome.error.is_none(), "{mode:?}, queue {queue}: {:?}", outcome.error);
        let got: std::collections::HashMap<String, u64> = res_rx.try_iter().collect();
        assert_eq!(got, want, "{mode:?}, queue {queue}");
    }
}
