//! Crash safety, end to end through the binary: `kill -9` at random moments
//! while a writer appends to a file and rotates it, and the exactly-once
//! JSON-lines sink still ends up with every window result exactly once.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::util::*;

/// Words of the test lines.
const WORDS: [&str; 9] = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota"];

/// Writes a log with increasing event times, rotating it on demand, and
/// keeps every line written, in order.
struct Writer {
    /// The followed path.
    log: PathBuf,
    /// Every line written, in order.
    all: String,
    /// Event time of the next line, ms since the epoch.
    t_ms: u64,
    /// xorshift state.
    rng: u64,
    /// Rotations so far (for the rotated files' names).
    rotations: u32,
}

impl Writer {
    fn new(log: PathBuf, seed: u64) -> Self {
        fs::write(&log, "").unwrap();
        Writer { log, all: String::new(), t_ms: 1_700_000_000_000, rng: seed | 1, rotations: 0 }
    }

    fn next(&mut self, below: u64) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng % below
    }

    /// Appends `n` lines, each a few ms of event time after the last.
    fn lines(&mut self, n: usize) {
        let mut text = String::new();
        for _ in 0..n {
            self.t_ms += 1 + self.next(7);
            text.push_str(&format!("{}.{:03}", self.t_ms / 1000, self.t_ms % 1000));
            for _ in 0..1 + self.next(5) {
                text.push(' ');
                text.push_str(WORDS[self.next(WORDS.len() as u64) as usize]);
            }
            text.push('\n');
        }
        self.append(&text);
    }

    fn append(&mut self, text: &str) {
        OpenOptions::new().append(true).open(&self.log).unwrap().write_all(text.as_bytes()).unwrap();
        self.all.push_str(text);
    }

    /// logrotate's `create`: rename, and a new empty file at the path.
    fn rename(&mut self) {
        self.rotations += 1;
        fs::rename(&self.log, self.log.with_extension(format!("log.{}", self.rotations))).unwrap();
        fs::write(&self.log, "").unwrap();
    }

    /// logrotate's `copytruncate`.
    fn copytruncate(&mut self) {
        self.rotations += 1;
        fs::copy(&self.log, self.log.with_extension(format!("log.{}", self.rotations))).unwrap();
        OpenOptions::new().write(true).open(&self.log).unwrap().set_len(0).unwrap();
    }
}

/// Whether the last checkpoint resumes in the file now at `log` (`whole`:
/// at its end).
fn caught_up(ckpt: &Path, log: &Path, whole: bool) -> bool {
    let Ok(text) = fs::read_to_string(ckpt.join("checkpoint.json")) else { return false };
    let Ok(saved) = serde_json::from_str::<serde_json::Value>(&text) else { return false };
    let pos = &saved["sources"][format!("file:{}", log.display())];
    let meta = fs::metadata(log).unwrap();
    pos["ino"].as_u64() == Some(meta.ino()) && (!whole || pos["offset"].as_u64() == Some(meta.len()))
}

/// Waits until the last checkpoint covers the whole file, failing the test
/// if sluice exits or takes more than 60 s.
fn wait_caught_up(child: &mut Child, ckpt: &Path, log: &Path) {
    wait_reached(child, ckpt, log, true);
}

/// Waits until the last checkpoint resumes in the file now at `log`
/// (`whole`: at its end).
fn wait_reached(child: &mut Child, ckpt: &Path, log: &Path, whole: bool) {
    let start = Instant::now();
    while !caught_up(ckpt, log, whole) {
        if let Some(status) = child.try_wait().unwrap() {
            let err = std::io::read_to_string(child.stderr.take().unwrap()).unwrap();
            panic!("sluice exited with {status:?}:\n{err}");
        }
        assert!(start.elapsed() < Duration::from_secs(60), "sluice did not catch up within 60 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The options every run of a kill test uses; only the sink and report
/// paths differ.
fn window_args(mode: &str) -> Vec<String> {
    ["--mode", mode, "--batch-interval", "20ms", "--window", "tumbling:1s", "--time", "event"]
        .into_iter()
        .chain(["--event-time", "first-field"])
        .map(str::to_string)
        .collect()
}

/// Starts a run with `shards` shards: the window state a run restores may
/// come from a run with another number of them.
fn start(mode: &str, shards: u32, log: &Path, ckpt: &Path, out: &Path, report: &Path) -> Child {
    sluice()
        .args(["run", "--source", &format!("file:{}", log.display()), "--from", "beginning"])
        .args(["--checkpoint-dir", &ckpt.display().to_string(), "--checkpoint-interval", "200ms"])
        .args(["--poll-interval", "20ms", "--parallelism", &shards.to_string()])
        .args(window_args(mode))
        .args(["--sink", &format!("jsonl:{}", out.display()), "--report", &report.display().to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Window results as a multiset of (window start, key, count), leaving out
/// the window that starts at `open` (still open when a run stops).
fn results(rows: Vec<Row>, open: &str) -> BTreeMap<(String, String, u64), u32> {
    let mut m = BTreeMap::new();
    for r in rows {
        let start = r.window_start.expect("tumbling windows have a start");
        if start != open {
            *m.entry((start, r.key, r.count)).or_insert(0) += 1;
        }
    }
    m
}

fn kill_nine_at_random_moments(mode: &str, seed: u64) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (log, ckpt, out, report) = (d.join("app.log"), d.join("ckpt"), d.join("counts.jsonl"), d.join("report.json"));
    let mut w = Writer::new(log.clone(), seed);
    w.lines(300);
    let mut rotations = (0, 0);
    // Kills that left results past the last checkpoint in the file, which
    // the restart must cut back.
    let mut uncommitted = 0;
    for round in 0..20 {
        let mut child = start(mode, 1 + round % 3, &log, &ckpt, &out, &report);
        std::thread::sleep(Duration::from_millis(w.next(300)));
        for _ in 0..1 + w.next(3) {
            let n = 200 + w.next(3000) as usize;
            w.lines(n);
            std::thread::sleep(Duration::from_millis(w.next(100)));
        }
        // A rename rotation once sluice has reached the current file (one
        // path followed: a file rotated away twice before sluice reached it
        // is out of its sight, as for tail -F), often with lines of it
        // still unread, so that kills land in the middle of a rotated file.
        // A copytruncate once it has read the file whole: lines it had not
        // read when the file was cut are in the copy, which a follower that
        // is running does not read (the copytruncate race, as for tail -F).
        if round % 5 == 2 || round % 5 == 4 {
            if round % 5 == 2 {
                wait_reached(&mut child, &ckpt, &log, false);
                w.rename();
                rotations.0 += 1;
            } else {
                wait_caught_up(&mut child, &ckpt, &log);
                w.copytruncate();
                rotations.1 += 1;
            }
            let n = 50 + w.next(200) as usize;
            w.lines(n);
        }
        std::thread::sleep(Duration::from_millis(w.next(150)));
        if let Some(status) = child.try_wait().unwrap() {
            let err = std::io::read_to_string(child.stderr.take().unwrap()).unwrap();
            panic!("round {round}: sluice exited by itself with {status:?}:\n{err}");
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let committed = fs::read_to_string(ckpt.join("checkpoint.json")).ok().and_then(|t| {
            let v: serde_json::Value = serde_json::from_str(&t).ok()?;
            v["sinks"][format!("jsonl:{}", out.display())].as_u64()
        });
        let len = fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
        uncommitted += u32::from(len > committed.unwrap_or(0));
    }
    assert_eq!(rotations, (4, 4));
    assert!(uncommitted >= 1, "only {uncommitted} kills came with results past the last checkpoint");
    // A line far later closes every window before it.
    w.lines(100);
    w.append("1800000000.000 sentinel\n");
    // The last run stops cleanly once it has caught up.
    let mut child = start(mode, 2, &log, &ckpt, &out, &report);
    wait_caught_up(&mut child, &ckpt, &log);
    let stderr = stop(child);
    let rep = read_report(&report);
    assert_eq!(rep["checkpoints"]["restored"], true, "{stderr}");
    assert!(rep["checkpoints"]["taken"].as_u64().unwrap() >= 1, "{stderr}");
    assert_eq!(rep["checkpoints"]["open_windows_kept"], true, "{stderr}");
    // Written (temporary file, fsync, rename) on their own thread, which the
    // report times apart from the executor's pause.
    assert!(rep["checkpoints"]["write_max_ms"].as_f64().unwrap() > 0.0, "{stderr}");

    // One uninterrupted run over the same lines.
    let all = d.join("all.log");
    fs::write(&all, &w.all).unwrap();
    let mut args = window_args(mode);
    args.extend(["--parallelism".to_string(), "1".to_string()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (want, _) = run_file(&all, "reference", &args);
    let open = "2027-01-15T08:00:00.000Z"; // the sentinel's window
    let want = results(want, open);
    let got = results(read_rows(&out, mode), open);
    assert!(want.len() > 100, "enough windows to compare: {}", want.len());
    let (missing, extra): (Vec<_>, Vec<_>) = (
        want.iter().filter(|(k, n)| got.get(k) != Some(n)).take(5).collect(),
        got.iter().filter(|(k, n)| want.get(k) != Some(n)).take(5).collect(),
    );
    assert!(
        missing.is_empty() && extra.is_empty(),
        "after 20 kills, the results differ from one uninterrupted run:\nmissing or fewer: {missing:?}\nextra or more: {extra:?}\n{stderr}"
    );
}

/// Whether the last checkpoint covers every file of the pattern whole.
fn pattern_caught_up(ckpt: &Path, pattern: &Path, files: &[PathBuf]) -> bool {
    let Ok(text) = fs::read_to_string(ckpt.join("checkpoint.json")) else { return false };
    let Ok(saved) = serde_json::from_str::<serde_json::Value>(&text) else { return false };
    let Some(list) = saved["patterns"][format!("file:{}", pattern.display())].as_array().cloned() else {
        return false;
    };
    files.iter().all(|f| {
        let meta = fs::metadata(f).unwrap();
        list.iter().any(|p| p["ino"].as_u64() == Some(meta.ino()) && p["offset"].as_u64() == Some(meta.len()))
    })
}

#[test]
fn kill_nine_at_20_random_moments_with_a_pattern_of_files() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (ckpt, out, report) = (d.join("ckpt"), d.join("counts.jsonl"), d.join("report.json"));
    let files = [d.join("app-a.log"), d.join("app-b.log"), d.join("app-c.log")];
    let pattern = d.join("app-*.log");
    let mut w = Writer::new(files[0].clone(), 0x5eed_0003);
    w.lines(300);
    let mut uncommitted = 0;
    for round in 0..20 {
        // A third file appears half-way.
        let live = if round < 10 { 2 } else { 3 };
        let mut child = start(
            if round % 2 == 0 { "per-event" } else { "micro-batch" },
            1 + round % 3,
            &pattern,
            &ckpt,
            &out,
            &report,
        );
        std::thread::sleep(Duration::from_millis(w.next(300)));
        for _ in 0..1 + w.next(3) {
            // Event time goes on across the files, so no item is late
            // whichever file is read first.
            w.log = files[w.next(live) as usize].clone();
            if !w.log.exists() {
                fs::write(&w.log, "").unwrap();
            }
            let n = 200 + w.next(2000) as usize;
            w.lines(n);
            std::thread::sleep(Duration::from_millis(w.next(100)));
        }
        std::thread::sleep(Duration::from_millis(w.next(60)));
        if let Some(status) = child.try_wait().unwrap() {
            let err = std::io::read_to_string(child.stderr.take().unwrap()).unwrap();
            panic!("round {round}: sluice exited by itself with {status:?}:\n{err}");
        }
        child.kill().unwrap();
        child.wait().unwrap();
        let committed = fs::read_to_string(ckpt.join("checkpoint.json")).ok().and_then(|t| {
            let v: serde_json::Value = serde_json::from_str(&t).ok()?;
            v["sinks"][format!("jsonl:{}", out.display())].as_u64()
        });
        uncommitted += u32::from(fs::metadata(&out).map(|m| m.len()).unwrap_or(0) > committed.unwrap_or(0));
    }
    assert!(uncommitted >= 1, "only {uncommitted} kills came with results past the last checkpoint");
    // Each file is an input whose progress holds the watermark back: a
    // line far later in each closes every window before it.
    for f in &files {
        w.log = f.clone();
        w.append("1800000000.000 sentinel\n");
    }
    let mut child = start("per-event", 2, &pattern, &ckpt, &out, &report);
    let start_at = Instant::now();
    while !pattern_caught_up(&ckpt, &pattern, &files) {
        assert!(child.try_wait().unwrap().is_none(), "sluice exited");
        assert!(start_at.elapsed() < Duration::from_secs(60), "sluice did not catch up within 60 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    let stderr = stop(child);
    let all = d.join("all.log");
    fs::write(&all, &w.all).unwrap();
    let mut args = window_args("per-event");
    args.extend(["--parallelism".to_string(), "1".to_string()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (want, _) = run_file(&all, "reference", &args);
    let open = "2027-01-15T08:00:00.000Z";
    let want = results(want, open);
    // Rows of both modes: compare without the mode field.
    let got = results(read_rows_any_mode(&out), open);
    assert!(want.len() > 100, "enough windows to compare: {}", want.len());
    let differ: Vec<_> = want.iter().filter(|(k, n)| got.get(k) != Some(n)).take(5).collect();
    let extra: Vec<_> = got.iter().filter(|(k, n)| want.get(k) != Some(n)).take(5).collect();
    assert!(differ.is_empty() && extra.is_empty(), "missing or fewer: {differ:?}\nextra or more: {extra:?}\n{stderr}");
}

/// Window results whatever mode wrote them.
fn read_rows_any_mode(path: &Path) -> Vec<Row> {
    let text = fs::read_to_string(path).unwrap();
    text.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            Row {
                window_start: v["window_start"].as_str().map(str::to_string),
                window_end: v["window_end"].as_str().map(str::to_string),
                key: v["key"].as_str().unwrap().to_string(),
                count: v["count"].as_u64().unwrap(),
                max_event_time: v["max_event_time"].as_str().map(str::to_string),
            }
        })
        .collect()
}

#[test]
fn kill_nine_at_20_random_moments_per_event_loses_and_repeats_nothing() {
    kill_nine_at_random_moments("per-event", 0x5eed_0001);
}

#[test]
fn kill_nine_at_20_random_moments_micro_batch_loses_and_repeats_nothing() {
    kill_nine_at_random_moments("micro-batch", 0x5eed_0002);
}

/// Runs sluice to its exit with `args`, and returns its exit code and stderr.
fn refused(args: &[&str]) -> (Option<i32>, String) {
    let out = sluice().args(args).output().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn unusable_checkpoints_and_sinks_are_refused_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (log, ckpt, out) = (d.join("app.log"), d.join("ckpt"), d.join("counts.jsonl"));
    fs::write(&log, "1700000000.000 one two\n1700000001.500 three\n").unwrap();
    let (source, ckpt_s, sink) =
        (format!("file:{}", log.display()), ckpt.display().to_string(), format!("jsonl:{}", out.display()));
    let run = |window: &str, signal: &str| {
        let child = sluice()
            .args(["run", "--source", &source, "--from", "beginning", "--checkpoint-dir", &ckpt_s])
            .args(["--window", window, "--time", "event", "--event-time", "first-field", "--sink", &sink])
            .args(["--mode", "per-event", "--poll-interval", "20ms"])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(800));
        stop_with(child, signal)
    };
    run("tumbling:1s", "-TERM");
    let committed = fs::metadata(&out).unwrap().len();
    assert!(committed > 0, "the first window was emitted");

    // Another pipeline on the same directory.
    let args = |window: &'static str| {
        let mut a = vec!["run", "--source", &source, "--checkpoint-dir", &ckpt_s, "--window", window];
        a.extend(["--time", "event", "--event-time", "first-field", "--sink", &sink]);
        a
    };
    let (code, err) = refused(&args("tumbling:2s"));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("another pipeline") && err.lines().count() == 1, "{err}");

    // A results file shorter than what the checkpoint committed.
    let text = fs::read(&out).unwrap();
    fs::write(&out, &text[..text.len() - 5]).unwrap();
    let (code, err) = refused(&args("tumbling:1s"));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("changed outside sluice") && err.lines().count() == 1, "{err}");
    fs::write(&out, &text).unwrap();

    // A truncated checkpoint: refused, never silently reset.
    let file = ckpt.join("checkpoint.json");
    let saved = fs::read(&file).unwrap();
    fs::write(&file, &saved[..saved.len() / 2]).unwrap();
    let (code, err) = refused(&args("tumbling:1s"));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("corrupt or truncated") && err.lines().count() == 1, "{err}");
    fs::write(&file, &saved).unwrap();

    // Results written after the last checkpoint are cut back at restart.
    OpenOptions::new().append(true).open(&out).unwrap().write_all(b"{\"not\":\"committed\"}\n").unwrap();
    fs::write(&log, "1700000000.000 one two\n1700000001.500 three\n1700000003.000 four\n").unwrap();
    // Ctrl-C stops as cleanly as SIGTERM: a last checkpoint, exit 0.
    run("tumbling:1s", "-INT");
    let text = fs::read_to_string(&out).unwrap();
    assert!(!text.contains("not"), "{text}");
    let rows = read_rows(&out, "per-event");
    let mut keys: Vec<&str> = rows.iter().map(|r| r.key.as_str()).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["one", "three", "two"], "each window once");

    // Checkpoints need an input a restart can resume.
    for extra in [&["--no-follow"][..], &["--checkpoint-interval", "5ms"]] {
        let mut a = vec!["run", "--source", &source, "--checkpoint-dir", &ckpt_s];
        a.extend_from_slice(extra);
        let (code, err) = refused(&a);
        assert_eq!(code, Some(2), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    let (code, err) = refused(&["run", "--source", "gen:100", "--checkpoint-dir", &ckpt_s]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("followed file"), "{err}");
    // Two sinks on one file.
    let (code, err) = refused(&["run", "--source", &source, "--sink", &sink, "--late-sink", &sink]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("the file of two sinks"), "{err}");
}

/// A small tmpfs, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Self {
        fs::create_dir_all(at).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs", &at.display().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "mounting a tmpfs needs root (CI runs as root)");
        Tmpfs(at.to_path_buf())
    }

    fn resize(&self, size: &str) {
        let ok = std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={size}"), &self.0.display().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok);
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_checkpoint_disk_keeps_the_last_good_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (log, out) = (d.join("app.log"), d.join("counts.jsonl"));
    let disk = Tmpfs::mount(&d.join("small"), "64k");
    let ckpt = disk.0.join("ckpt");
    let mut written = String::from("one two three\n");
    fs::write(&log, &written).unwrap();
    let run = || {
        sluice()
            .args(["run", "--source", &format!("file:{}", log.display()), "--from", "beginning"])
            .args(["--checkpoint-dir", &ckpt.display().to_string(), "--checkpoint-interval", "50ms"])
            .args(["--mode", "per-event", "--window", "global", "--output", "update", "--poll-interval", "20ms"])
            .args(["--sink", &format!("jsonl:{}", out.display())])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut child = run();
    wait_caught_up(&mut child, &ckpt, &log);
    let good = fs::read_to_string(ckpt.join("checkpoint.json")).unwrap();
    // Thousands of new words: the window state no longer fits on the disk.
    let many: String = (0..6000).map(|i| format!("word{i:05} ")).collect::<String>() + "\n";
    OpenOptions::new().append(true).open(&log).unwrap().write_all(many.as_bytes()).unwrap();
    written.push_str(&many);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(child.try_wait().unwrap().is_none(), "the run goes on while checkpoints fail");
    assert_eq!(fs::read_to_string(ckpt.join("checkpoint.json")).unwrap(), good, "the last good checkpoint stays");
    // The stop cannot write its checkpoint either: exit 1, one error.
    std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let status = child.wait().unwrap();
    let err = std::io::read_to_string(child.stderr.take().unwrap()).unwrap();
    assert_eq!(status.code(), Some(1), "{err}");
    assert_eq!(err.matches("cannot write a checkpoint").count(), 2, "warned once, then the final error:\n{err}");
    assert!(err.contains("the last good one (epoch"), "{err}");
    assert_eq!(fs::read_to_string(ckpt.join("checkpoint.json")).unwrap(), good);

    // Room again: the restart resumes from the last good checkpoint, and
    // counts every word once.
    disk.resize("16m");
    let child = run();
    std::thread::sleep(Duration::from_millis(1500));
    stop(child);
    let got: std::collections::HashMap<String, u64> =
        read_rows(&out, "per-event").into_iter().map(|r| (r.key, r.count)).collect();
    assert_eq!(got, independent_count(written.as_bytes()));
}

/// Resident memory of a process, in bytes.
fn rss(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?.trim().trim_end_matches(" kB").trim();
    kb.parse::<u64>().ok().map(|kb| kb * 1024)
}

/// The bound on resident memory the README promises for the word count
/// with default settings, whatever the input's size and however slow the
/// sink.
const RSS_BOUND: u64 = 64 << 20;

#[test]
fn a_slow_sink_stops_the_file_source_and_memory_stays_bounded() {
    use std::io::Read;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // 100 MB of 200-byte lines, one word each.
    let (log, fifo, report) = (d.join("big.log"), d.join("slow.fifo"), d.join("report.json"));
    let line = |i: usize| format!("{:<8} {}\n", WORDS[i % WORDS.len()], "-".repeat(190));
    let block: String = (0..WORDS.len() * 100).map(line).collect();
    let mut f = fs::File::create(&log).unwrap();
    for _ in 0..(100 << 20) / block.len() {
        f.write_all(block.as_bytes()).unwrap();
    }
    drop(f);
    let size = fs::metadata(&log).unwrap().len();
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());

    // The sink is a pipe read at 20 KB/s: about 1% of what the source can
    // deliver here, until told to go fast.
    let fast = Arc::new(AtomicBool::new(false));
    let reader = {
        let (fifo, fast) = (fifo.clone(), fast.clone());
        std::thread::spawn(move || {
            let mut pipe = fs::File::open(&fifo).unwrap();
            let mut got = Vec::new();
            let mut buf = vec![0u8; 1 << 16];
            loop {
                let want = if fast.load(Ordering::Relaxed) { buf.len() } else { 2048 };
                match pipe.read(&mut buf[..want]).unwrap() {
                    0 => return got,
                    n => got.extend_from_slice(&buf[..n]),
                }
                if !fast.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        })
    };
    let mut child = sluice()
        .args(["run", "--source", &format!("file:{}", log.display()), "--from", "beginning"])
        .args(["--mode", "per-event", "--window", "global", "--output", "update"])
        .args(["--sink", &format!("jsonl:{}", fifo.display()), "--report", &report.display().to_string()])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut most = 0;
    for _ in 0..40 {
        std::thread::sleep(Duration::from_millis(100));
        most = most.max(rss(child.id()).unwrap_or(0));
    }
    std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    fast.store(true, Ordering::Relaxed);
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "sluice did not stop within 60 s of SIGTERM");
        most = most.max(rss(child.id()).unwrap_or(0));
        std::thread::sleep(Duration::from_millis(20));
    };
    let err = std::io::read_to_string(child.stderr.take().unwrap()).unwrap();
    assert!(status.success(), "{status:?}\n{err}");
    let out = reader.join().unwrap();

    let rep = read_report(&report);
    let (bytes, events) = (rep["bytes"].as_u64().unwrap(), rep["events"].as_u64().unwrap());
    assert!(bytes < size / 4, "the source stopped reading: {bytes} of {size} bytes read");
    assert!(most < RSS_BOUND, "peak RSS {most} bytes");
    // Where the time went: lines waited in the queue for the sink.
    let queueing = rep["latency"]["stages"]["queueing"]["max_us"].as_f64().unwrap();
    assert!(queueing > 500_000.0, "queueing shows the wait: {queueing} µs");
    // Nothing accepted was dropped: the last update of each word is its
    // count in the lines read.
    assert_eq!(bytes, events * 200);
    let mut want = std::collections::HashMap::new();
    for i in 0..events as usize {
        *want.entry(WORDS[i % WORDS.len()].to_string()).or_insert(0u64) += 1;
    }
    let mut got = std::collections::HashMap::new();
    for l in String::from_utf8(out).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        got.insert(v["key"].as_str().unwrap().to_string(), v["count"].as_u64().unwrap());
    }
    assert_eq!(got, want);
}
