//! Following a file like tail -F, end to end through the binary.

use std::collections::HashMap;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

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
    let settle = || std::thread::sleep(Duration::from_millis(1800)); // rotated files are closed after 1 s of quiet
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

#[test]
fn event_time_from_real_log_lines() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "apache",
            None,
            "127.0.0.1 - - [17/May/2015:10:05:03 +0000] \"GET /a HTTP/1.1\" 200\n\
             127.0.0.1 - - [17/May/2015:10:05:59 +0000] \"GET /b HTTP/1.1\" 200\n\
             127.0.0.1 - - [17/May/2015:10:06:01 +0000] \"GET /c HTTP/1.1\" 404\n",
            vec![("2015-05-17T10:05:00.000Z", "get", 2), ("2015-05-17T10:06:00.000Z", "get", 1)],
        ),
        (
            "iso8601",
            None,
            "2015-10-18 18:01:47,978 INFO started\n2015-10-18 18:02:01,000 INFO stopped\nno time on this line\n",
            vec![("2015-10-18T18:01:00.000Z", "info", 1), ("2015-10-18T18:02:00.000Z", "info", 1)],
        ),
        (
            r"regex:ts=(\d+/\d+/\d+ [\d:]+)",
            Some("%Y/%m/%d %H:%M:%S"),
            "lvl=info ts=2024/01/02 03:04:05 msg=hello\nlvl=warn ts=2024/01/02 03:05:06 msg=hello\n",
            vec![("2024-01-02T03:04:00.000Z", "msg=hello", 1), ("2024-01-02T03:05:00.000Z", "msg=hello", 1)],
        ),
    ];
    for (format, time_format, text, expect) in cases {
        let input = dir.path().join("in.log");
        let out = dir.path().join("o.jsonl");
        let report = dir.path().join("r.json");
        fs::write(&input, text).unwrap();
        let mut args = vec![
            "run".to_string(),
            "--source".into(),
            format!("file:{}", input.display()),
            "--no-follow".into(),
            "--event-time".into(),
            format.into(),
            "--window".into(),
            "tumbling:1m".into(),
            "--sink".into(),
            format!("jsonl:{}", out.display()),
            "--report".into(),
            report.display().to_string(),
        ];
        if let Some(f) = time_format {
            args.extend(["--time-format".into(), f.into()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_ok(&args);
        let rows = read_rows(&out, "micro-batch");
        for (start, key, count) in &expect {
            assert!(
                rows.iter().any(|r| r.window_start.as_deref() == Some(start) && r.key == *key && r.count == *count),
                "{format}: no {key}={count} in the window at {start}: {rows:?}"
            );
        }
        let rep = read_report(&report);
        assert_eq!(rep["late_events"], 0, "{format}");
        if format == "iso8601" {
            assert_eq!(rep["event_time_fallbacks"], 1, "the line without a time is counted, not dropped");
            assert!(rows.iter().any(|r| r.key == "this"), "and its words are counted");
            assert!(!rows.iter().any(|r| r.key.starts_with("2015")), "a leading time is not a word");
        }
    }
}

fn start_following(log: &Path, ckpt: &Path, out: &Path) -> Child {
    sluice()
        .args(["run", "--source", &format!("file:{}", log.display()), "--from", "beginning"])
        .args(["--checkpoint-dir", &ckpt.display().to_string(), "--poll-interval", "20ms", "--idle-flush", "300ms"])
        .args(["--mode", "per-event", "--window", "global", "--output", "update"])
        .args(["--sink", &format!("jsonl:{}", out.display())])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn add_counts(into: &mut HashMap<String, u64>, rows: Vec<Row>) {
    for r in rows {
        *into.entry(r.key).or_insert(0) += r.count;
    }
}

/// The latest update of each key: with a global window in update output,
/// the count so far (across restarts, since the windows are restored).
fn latest(rows: Vec<Row>) -> HashMap<String, u64> {
    rows.into_iter().map(|r| (r.key, r.count)).collect()
}

#[test]
fn a_restart_resumes_where_it_stopped_even_after_a_rotation_while_down() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let ckpt = dir.path().join("ckpt");
    let mut written = String::new();
    let mut write = |path: &Path, text: String| {
        append(path, &text);
        written.push_str(&text);
    };
    write(&log, log_lines(0, 100));

    let out = dir.path().join("counts.jsonl");
    let child = start_following(&log, &ckpt, &out);
    std::thread::sleep(Duration::from_millis(600));
    write(&log, log_lines(100, 50));
    // A second sluice on the same checkpoint directory is refused.
    let mut second = start_following(&log, &ckpt, &dir.path().join("second.jsonl"));
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(s) = second.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > Duration::from_secs(10) {
            second.kill().unwrap();
            panic!("a second sluice on the same checkpoint directory kept running");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let err = std::io::read_to_string(second.stderr.take().unwrap()).unwrap();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("in use by another running sluice") && err.lines().count() == 1, "{err}");
    std::thread::sleep(Duration::from_millis(600));
    stop(child);
    let saved = fs::read_to_string(ckpt.join("checkpoint.json")).unwrap();
    assert!(saved.contains("\"version\":3") && saved.contains("app.log"), "{saved}");

    // While sluice is down: more lines, then a rename rotation, then more.
    write(&log, log_lines(150, 30));
    fs::rename(&log, dir.path().join("app.log.1")).unwrap();
    write(&log, log_lines(180, 40));

    let child = start_following(&log, &ckpt, &out);
    std::thread::sleep(Duration::from_millis(2000));
    let stderr = stop(child);

    // The window was restored: its counts go on from the first run's.
    let got = latest(read_rows(&out, "per-event"));
    assert_eq!(got, independent_count(written.as_bytes()), "every line exactly once over both runs\n{stderr}");
}

#[test]
fn kill_9_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let ckpt = dir.path().join("ckpt");
    let mut written = String::new();
    let first = log_lines(0, 200);
    append(&log, &first);
    written.push_str(&first);
    let out = dir.path().join("counts.jsonl");
    let mut child = start_following(&log, &ckpt, &out);
    std::thread::sleep(Duration::from_millis(1500));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let more = log_lines(200, 50);
    append(&log, &more);
    written.push_str(&more);
    let child = start_following(&log, &ckpt, &out);
    std::thread::sleep(Duration::from_millis(1000));
    stop(child);
    // The restart restored the window from the last checkpoint, cut the
    // updates written after it, and read the lines after it again: every
    // line counted once.
    assert_eq!(latest(read_rows(&out, "per-event")), independent_count(written.as_bytes()));
}

#[test]
fn a_pattern_follows_every_matching_file_and_reads_them_all_without_follow() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut written = String::new();
    for (name, text) in [("a.log", log_lines(0, 30)), ("b.log", log_lines(30, 30))] {
        append(&d.join(name), &text);
        written.push_str(&text);
    }
    append(&d.join("other.txt"), "ignored words here\n");
    let pattern = d.join("*.log");

    let out = d.join("bounded.jsonl");
    run_ok(&[
        "run",
        "--source",
        &format!("file:{}", pattern.display()),
        "--no-follow",
        "--sink",
        &format!("jsonl:{}", out.display()),
    ]);
    let got: HashMap<String, u64> = read_rows(&out, "micro-batch").into_iter().map(|r| (r.key, r.count)).collect();
    assert_eq!(got, independent_count(written.as_bytes()));

    let out = d.join("followed.jsonl");
    let child = sluice()
        .args(["run", "--source", &format!("file:{}", pattern.display()), "--from", "beginning"])
        .args(["--poll-interval", "20ms", "--mode", "per-event", "--window", "global"])
        .args(["--sink", &format!("jsonl:{}", out.display())])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let later = log_lines(60, 20);
    append(&d.join("c.log"), &later);
    written.push_str(&later);
    std::thread::sleep(Duration::from_millis(800));
    stop(child);
    let got: HashMap<String, u64> = read_rows(&out, "per-event").into_iter().map(|r| (r.key, r.count)).collect();
    assert_eq!(got, independent_count(written.as_bytes()), "a file matching later is followed too");

    let e = sluice()
        .args(["run", "--source", &format!("file:{}/none-*.log", d.display()), "--no-follow"])
        .output()
        .unwrap();
    assert_eq!(e.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&e.stderr).contains("no file matches"));
}

#[test]
fn a_pattern_resumes_every_file_across_restarts_and_rotations() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ckpt = d.join("ckpt");
    let pattern = d.join("app-*.log");
    let mut written = String::new();
    let mut n = 0;
    let mut write = |path: &Path, lines: usize| {
        let text = log_lines(n, lines);
        n += lines;
        append(path, &text);
        written.push_str(&text);
    };
    let (a, b) = (d.join("app-a.log"), d.join("app-b.log"));
    write(&a, 40);
    write(&b, 40);

    let run = |out: &Path| {
        sluice()
            .args(["run", "--source", &format!("file:{}", pattern.display()), "--from", "beginning"])
            .args(["--checkpoint-dir", &ckpt.display().to_string(), "--poll-interval", "20ms"])
            .args(["--mode", "per-event", "--window", "global", "--output", "update"])
            .args(["--sink", &format!("jsonl:{}", out.display())])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let settle = || std::thread::sleep(Duration::from_millis(1800)); // rotated files are closed after 1 s of quiet

    let out = d.join("counts.jsonl");
    let child = run(&out);
    settle();
    // Rotated while followed, to a name that does not match.
    fs::rename(&b, d.join("app-b.log.1")).unwrap();
    write(&d.join("app-b.log.1"), 5);
    write(&b, 10);
    settle();
    let stderr1 = stop(child);

    // While sluice is down: appends, a rotation to a name that does not
    // match, a rename to a name that does, and a new file.
    write(&a, 10);
    fs::rename(&a, d.join("app-a.log.1")).unwrap();
    write(&d.join("app-a.log.1"), 5);
    write(&a, 7);
    fs::rename(&b, d.join("app-old.log")).unwrap();
    write(&d.join("app-old.log"), 3);
    write(&d.join("app-c.log"), 12);

    let child = run(&out);
    settle();
    let stderr2 = stop(child);
    let saved = fs::read_to_string(ckpt.join("checkpoint.json")).unwrap();
    assert!(saved.contains("app-old.log") && saved.contains("app-c.log"), "{saved}");

    // Nothing changed: a third run reads nothing again.
    let before = fs::read(&out).unwrap();
    let child = run(&out);
    std::thread::sleep(Duration::from_millis(1000));
    let stderr3 = stop(child);

    assert_eq!(
        latest(read_rows(&out, "per-event")),
        independent_count(written.as_bytes()),
        "every line exactly once over three runs\n{stderr1}\n{stderr2}\n{stderr3}"
    );
    assert_eq!(fs::read(&out).unwrap(), before, "the third run read nothing again");
}

/// Runs sluice as an unprivileged user when the tests run as root (root
/// reads any file), so that a permission error is real.
fn sluice_unprivileged() -> std::process::Command {
    let root = std::process::Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    if !root {
        return sluice();
    }
    let mut c = std::process::Command::new("setpriv");
    c.args(["--reuid=65534", "--regid=65534", "--clear-groups", env!("CARGO_BIN_EXE_sluice")]);
    c
}

#[test]
fn an_unreadable_file_is_a_warning_and_the_others_are_read() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::set_permissions(d, fs::Permissions::from_mode(0o777)).unwrap();
    let readable = log_lines(0, 30);
    append(&d.join("a.log"), &readable);
    let secret = log_lines(30, 10);
    append(&d.join("secret.log"), &secret);
    fs::set_permissions(d.join("secret.log"), fs::Permissions::from_mode(0o000)).unwrap();
    let out = d.join("counts.jsonl");
    let child = sluice_unprivileged()
        .args(["run", "--source", &format!("file:{}", d.join("*.log").display()), "--from", "beginning"])
        .args(["--poll-interval", "20ms", "--mode", "per-event", "--window", "global"])
        .args(["--sink", &format!("jsonl:{}", out.display())])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    // Readable again: it is read, without a restart.
    fs::set_permissions(d.join("secret.log"), fs::Permissions::from_mode(0o644)).unwrap();
    std::thread::sleep(Duration::from_millis(800));
    let stderr = stop(child);
    assert!(stderr.contains("cannot read") && stderr.contains("secret.log"), "{stderr}");
    assert_eq!(stderr.matches("cannot read").count(), 1, "warned once: {stderr}");
    let got: HashMap<String, u64> = read_rows(&out, "per-event").into_iter().map(|r| (r.key, r.count)).collect();
    assert_eq!(got, independent_count(format!("{readable}{secret}").as_bytes()), "{stderr}");
}

#[test]
fn positions_of_a_pattern_are_saved_while_running_so_kill_9_after_a_quiet_spell_repeats_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ckpt = d.join("ckpt");
    let mut written = String::new();
    for (name, from) in [("a.log", 0), ("b.log", 100)] {
        let text = log_lines(from, 60);
        append(&d.join(name), &text);
        written.push_str(&text);
    }
    let run = |out: &Path| {
        sluice()
            .args(["run", "--source", &format!("file:{}", d.join("*.log").display()), "--from", "beginning"])
            .args(["--checkpoint-dir", &ckpt.display().to_string(), "--poll-interval", "20ms"])
            .args(["--mode", "per-event", "--window", "tumbling:200ms", "--time", "processing"])
            .args(["--sink", &format!("jsonl:{}", out.display())])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let out = d.join("counts.jsonl");
    let mut child = run(&out);
    // A checkpoint is taken every second, also while the input is quiet.
    std::thread::sleep(Duration::from_millis(2500));
    child.kill().unwrap();
    child.wait().unwrap();
    let saved: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(ckpt.join("checkpoint.json")).unwrap()).unwrap();
    let files = saved["patterns"][format!("file:{}", d.join("*.log").display())].as_array().unwrap().clone();
    assert_eq!(files.len(), 2, "{saved}");
    for f in &files {
        let len = fs::metadata(f["path"].as_str().unwrap()).unwrap().len();
        assert_eq!(f["offset"].as_u64(), Some(len), "read and checkpointed to the end: {saved}");
    }
    let more = log_lines(300, 20);
    append(&d.join("b.log"), &more);
    written.push_str(&more);
    let child = run(&out);
    // The restored windows closed long ago (processing time): they are
    // emitted at once; the new lines' window closes 200 ms on.
    std::thread::sleep(Duration::from_millis(1000));
    stop(child);
    let mut got = HashMap::new();
    add_counts(&mut got, read_rows(&out, "per-event"));
    assert_eq!(got, independent_count(written.as_bytes()), "every line once over both runs");
}
