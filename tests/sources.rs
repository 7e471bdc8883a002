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
