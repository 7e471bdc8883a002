//! Helpers for the integration tests: running the binary, reading its
//! output, and an independent word count.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

/// The `sluice` binary under test.
pub fn sluice() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
}

/// A fixture file.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// Runs `sluice` with `args`, failing the test with its stderr if it fails.
pub fn run_ok(args: &[&str]) -> Output {
    let out = sluice().args(args).output().expect("sluice runs");
    assert!(
        out.status.success(),
        "sluice {args:?} failed with {:?}:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// One window result as the JSON-lines sink writes it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Row {
    pub window_start: Option<String>,
    pub window_end: Option<String>,
    pub key: String,
    pub count: u64,
    pub max_event_time: Option<String>,
}

/// Reads a JSON-lines result file, checking the fields every line must have.
pub fn read_rows(path: &Path, mode: &str) -> Vec<Row> {
    let text = std::fs::read_to_string(path).expect("results file");
    text.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON {l:?}: {e}"));
            assert_eq!(v["mode"], mode, "{l}");
            for field in ["window_start", "window_end", "key", "count"] {
                assert!(v.get(field).is_some(), "{field} missing in {l}");
            }
            let s = |f: &str| v[f].as_str().map(str::to_string);
            Row {
                window_start: s("window_start"),
                window_end: s("window_end"),
                key: v["key"].as_str().expect("key is a string").to_string(),
                count: v["count"].as_u64().expect("count is a number"),
                max_event_time: s("max_event_time"),
            }
        })
        .collect()
}

/// Reads a JSON report.
pub fn read_report(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("report file")).expect("report is JSON")
}

/// Counts words the way the tokenizer contract says, written independently
/// of the engine: split on whitespace (and U+FEFF), trim what is not
/// alphanumeric, lower-case, drop empties.
pub fn independent_count(bytes: &[u8]) -> HashMap<String, u64> {
    let text = String::from_utf8_lossy(bytes);
    let mut counts = HashMap::new();
    for raw in text.split(|c: char| c.is_whitespace() || c == '\u{FEFF}') {
        let word = raw.trim_matches(|c: char| !c.is_alphanumeric()).to_lowercase();
        if !word.is_empty() {
            *counts.entry(word).or_insert(0) += 1;
        }
    }
    counts
}

/// Asserts two maps are equal, showing only the first differences.
pub fn assert_same_map<K: Ord + std::fmt::Debug + Clone, V: PartialEq + std::fmt::Debug + Clone>(
    got: &std::collections::BTreeMap<K, V>,
    want: &std::collections::BTreeMap<K, V>,
    what: &str,
) {
    if got == want {
        return;
    }
    let mut diffs = Vec::new();
    for (k, v) in want {
        if got.get(k) != Some(v) {
            diffs.push(format!("{k:?}: got {:?}, want {v:?}", got.get(k)));
        }
    }
    for (k, v) in got {
        if !want.contains_key(k) {
            diffs.push(format!("{k:?}: got {v:?}, want nothing"));
        }
    }
    let n = diffs.len();
    diffs.truncate(10);
    panic!("{what}: {n} differences, first ones:\n{}", diffs.join("\n"));
}

/// Sends SIGTERM to a running sluice, waits (at most 10 s) for it to exit,
/// checks it exited 0, and returns its stderr.
pub fn stop(child: Child) -> String {
    stop_with(child, "-TERM")
}

/// [`stop`] with another signal (`-INT` is Ctrl-C).
pub fn stop_with(mut child: Child, signal: &str) -> String {
    let killed = std::process::Command::new("kill").args([signal, &child.id().to_string()]).status().unwrap();
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

/// Runs sluice to the end of a bounded file with `args`, with a JSON-lines
/// sink and a report written next to the input under `name`; returns the
/// results (checked against the report's mode) and the report.
pub fn run_file(input: &Path, name: &str, args: &[&str]) -> (Vec<Row>, serde_json::Value) {
    let dir = input.parent().expect("the input is in a directory");
    let (out, report) = (dir.join(format!("{name}.jsonl")), dir.join(format!("{name}.report.json")));
    let (source, sink, rep) =
        (format!("file:{}", input.display()), format!("jsonl:{}", out.display()), report.display().to_string());
    let mut all = vec!["run", "--source", source.as_str(), "--no-follow"];
    all.extend_from_slice(args);
    all.extend(["--sink", sink.as_str(), "--report", rep.as_str()]);
    run_ok(&all);
    let report = read_report(&report);
    let rows = read_rows(&out, report["mode"].as_str().expect("the report names its mode"));
    (rows, report)
}
