//! Real sockets, pipes and signals.

use std::collections::HashMap;
use std::io::Write;
use std::net::TcpListener;
use std::process::Stdio;
use std::time::Duration;

use crate::util::*;

fn counts(rows: Vec<Row>) -> HashMap<String, u64> {
    rows.into_iter().map(|r| (r.key, r.count)).collect()
}

#[test]
fn tcp_source_reads_lines_until_the_peer_closes() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tcp.jsonl");
    let mut child = sluice()
        .args(["run", "--source", &format!("tcp:127.0.0.1:{port}"), "--mode", "per-event", "--window", "global"])
        .args(["--sink", &format!("jsonl:{}", out.display())])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (mut conn, _) = listener.accept().unwrap();
    let book = std::fs::read(fixture("moby-dick.txt")).unwrap();
    for piece in book.chunks(7919) {
        conn.write_all(piece).unwrap();
    }
    drop(conn);
    let status = child.wait().unwrap();
    assert!(status.success());
    assert_eq!(counts(read_rows(&out, "per-event")), independent_count(&book));
}

#[test]
fn stdin_source_reads_until_end_of_input() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("stdin.jsonl");
    let mut child = sluice()
        .args(["run", "--source", "stdin", "--sink", &format!("jsonl:{}", out.display())])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let text = b"to be or not to be\r\nthat is the question";
    child.stdin.take().unwrap().write_all(text).unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(counts(read_rows(&out, "micro-batch")), independent_count(text));
}

#[test]
fn sigterm_flushes_open_windows_reports_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("gen.jsonl");
    let report = dir.path().join("gen.json");
    for mode in ["per-event", "micro-batch"] {
        let child = sluice()
            .args(["run", "--source", "gen:2000", "--mode", mode, "--batch-interval", "100ms", "--window", "global"])
            .args(["--sink", &format!("jsonl:{}", out.display()), "--report", &report.display().to_string()])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(1500));
        let stderr = stop(child);
        assert!(stderr.contains("sluice run report"), "the report is printed: {stderr}");
        let rep = read_report(&report);
        assert_eq!(rep["ended_by"], "stopped");
        let events = rep["events"].as_u64().unwrap();
        assert!(events > 100, "{mode}: {events} events in 1.5 s at 2000/s");
        let total: u64 = read_rows(&out, mode).iter().map(|r| r.count).sum();
        assert_eq!(total, events * 8, "{mode}: the open global window was flushed with every accepted word");
    }
}

/// The generator chained to the executor (per-event mode's default) and on
/// a thread of its own send the same lines, and the engine counts the same
/// words. (Their windows differ: event time is the wall time of each run;
/// `sluice compare`, whose tests check windows, starts every run's
/// generator at the same phase.)
#[test]
fn a_chained_generator_gives_the_results_of_one_on_its_own_thread() {
    let dir = tempfile::tempdir().unwrap();
    let mut results = Vec::new();
    for thread in [false, true] {
        let out = dir.path().join(format!("gen-{thread}.jsonl"));
        let report = dir.path().join(format!("gen-{thread}.json"));
        let mut cmd = sluice();
        cmd.args(["run", "--source", "gen:200000", "--count", "30000", "--mode", "per-event"])
            .args(["--window", "global", "--output", "final", "--no-progress"])
            .args(["--sink", &format!("jsonl:{}", out.display()), "--report", &report.display().to_string()]);
        if thread {
            cmd.arg("--source-thread");
        }
        let output = cmd.output().unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let rep = read_report(&report);
        assert_eq!(rep["events"], 30_000);
        assert_eq!(rep["ended_by"], "end-of-input");
        let rows = counts(read_rows(&out, "per-event"));
        assert_eq!(rows.values().sum::<u64>(), 240_000, "every word of 30,000 lines of 8");
        results.push(rows);
    }
    assert!(results[0].len() > 100, "many words: {}", results[0].len());
    assert_eq!(results[0], results[1], "the same words, counted the same");
}

/// With a chained generator and no line due for a while, processing-time
/// windows still close on time: the executor wakes for them as it would
/// on a quiet input queue, not only when the next line comes.
#[test]
fn a_chained_generator_closes_processing_time_windows_between_lines() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("slow.jsonl");
    let started = std::time::Instant::now();
    // One line every 5 s: the first at once, the second 5 s later.
    let child = sluice()
        .args(["run", "--source", "gen:0.2", "--duration", "60s", "--mode", "per-event", "--time", "processing"])
        .args(["--window", "tumbling:200ms", "--output", "final", "--no-progress"])
        .args(["--sink", &format!("jsonl:{}", out.display())])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut rows = Vec::new();
    while rows.is_empty() && started.elapsed() < Duration::from_millis(4500) {
        std::thread::sleep(Duration::from_millis(100));
        rows = std::fs::read_to_string(&out).unwrap_or_default().lines().map(str::to_string).collect();
    }
    let stderr = stop(child);
    assert!(!rows.is_empty(), "the first line's window was not written before the second line came: {stderr}");
    let words: u64 =
        rows.iter().map(|r| serde_json::from_str::<serde_json::Value>(r).unwrap()["count"].as_u64().unwrap()).sum();
    assert_eq!(words, 8, "the first line's 8 words, in one window: {rows:?}");
}
