//! Following a file like tail -F, end to end through the binary.

use std::collections::HashMap;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::util::*;

fn append(path: &Path, text: &str) {
    OpenOptions::new().create(true).append(true).open(path).unwrap().write_all(text.as_bytes()).unwrap();
}

fn log_lines(from: usize, n: usize) -> String {
    (from..from + n)
        .map(|i| {
            format!(
                "2026-11-23T10:{:02}:{:02}Z web-{} app[{}]: GET /api/v1/items/{} status={} took={}ms user=u{}\n",
                (i / 60) % 60,
                i % 60,
                i % 3,
                1000 + i % 7,
                i,
                [200, 200, 404, 500][i % 4],
                i % 97,
                i % 11
            )
        })
        .collect()
}

fn stop(mut child: Child) -> String {
    let killed = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "sluice did not stop within 10 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    let stderr = std::io::read_to_string(child.stderr.take().unwrap()).unwrap();
    assert!(status.success(), "{status:?}\n{stderr}");
    stderr
}

#[test]
fn follows_appends_and_two_rotations_then_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let out = dir.path().join("counts.jsonl");
    let report = dir.path().join("report.json");
    let mut written = String::new();
    let first = log_lines(0, 100);
    append(&log, &first);
    written.push_str(&first);

    let child = sluice()
        .args(["run", "--source", &format!("file:{}", log.display()), "--from", "beginning"])
        .args(["--poll-interval", "20ms", "--idle-flush", "300ms", "--mode", "per-event", "--window", "global"])
        .args(["--sink", &format!("jsonl:{}", out.display()), "--report", &report.display().to_string()])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let settle = || std::thread::sleep(Duration::from_millis(800));
    for burst in 0..4 {
        let text = log_lines(100 + burst * 50, 50);
        append(&log, &text);
        written.push_str(&text);
        std::thread::sleep(Duration::from_millis(30));
    }
    settle();

    // Rotation 1, logrotate `create`: rename, new file; the writer finishes
    // a few lines into the old one before it reopens.
    let rotated = dir.path().join("app.log.1");
    fs::rename(&log, &rotated).unwrap();
    let late_in_old = log_lines(300, 20);
    append(&rotated, &late_in_old);
    written.push_str(&late_in_old);
    let text = log_lines(320, 200);
    append(&log, &text);
    written.push_str(&text);
    settle();

    // Rotation 2, copytruncate: copy, then cut the file to nothing in place.
    fs::copy(&log, dir.path().join("app.log.2")).unwrap();
    OpenOptions::new().write(true).open(&log).unwrap().set_len(0).unwrap();
    let text = log_lines(520, 100);
    append(&log, &text);
    written.push_str(&text);
    settle();

    let stderr = stop(child);
    let got: HashMap<String, u64> = read_rows(&out, "per-event").into_iter().map(|r| (r.key, r.count)).collect();
    let want = independent_count(written.as_bytes());
    assert_eq!(got.len(), want.len(), "{stderr}");
    assert_eq!(got, want, "every line written was counted exactly once");
    let rep = read_report(&report);
    assert_eq!(rep["ended_by"], "stopped");
    assert_eq!(rep["events"], 620);
}

#[test]
fn following_a_missing_file_waits_for_it_with_one_warning() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("later/app.log");
    let out = dir.path().join("counts.jsonl");
    let child = sluice()
        .args(["run", "--source", &format!("file:{}", log.display()), "--poll-interval", "20ms"])
        .args(["--mode", "per-event", "--window", "global", "--sink", &format!("jsonl:{}", out.display())])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    fs::create_dir_all(log.parent().unwrap()).unwrap();
    append(&log, "hello world\nhello\n");
    std::thread::sleep(Duration::from_millis(800));
    let stderr = stop(child);
    assert_eq!(stderr.matches("waiting for").count(), 1, "{stderr}");
    let got: HashMap<String, u64> = read_rows(&out, "per-event").into_iter().map(|r| (r.key, r.count)).collect();
    assert_eq!(
        got,
        HashMap::from([("hello".to_string(), 2), ("world".to_string(), 1)]),
        "a file created later is read whole"
    );
}
