//! Bad input: one clear line, the right exit code, never a panic.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use crate::util::*;

/// Runs sluice expecting failure with `code`; returns stderr.
fn fails(args: &[&str], code: i32) -> String {
    let out = sluice().args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(code), "sluice {args:?}: {stderr}");
    assert!(!stderr.contains("panicked") && !stderr.contains("backtrace"), "{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(errors.len(), 1, "exactly one error line in {stderr:?}");
    errors[0].to_string()
}

#[test]
fn a_missing_or_unreadable_file_is_a_runtime_error() {
    let e = fails(&["run", "--source", "file:/no/such/book.txt", "--no-follow"], 1);
    assert!(e.contains("/no/such/book.txt") && e.contains("no such file"), "{e}");
    let dir = tempfile::tempdir().unwrap();
    let e = fails(&["run", "--source", &format!("file:{}", dir.path().display()), "--no-follow"], 1);
    assert!(e.contains("directory"), "{e}");
}

#[test]
fn malformed_durations_and_windows_are_usage_errors() {
    let e = fails(&["run", "--source", "gen", "--batch-interval", "fast"], 2);
    assert!(e.contains("--batch-interval") && e.contains("500ms"), "{e}");
    let e = fails(&["run", "--source", "gen", "--batch-interval", "0ms"], 2);
    assert!(e.contains("at least 1ms"), "{e}");
    let e = fails(&["run", "--source", "gen", "--window", "tumbling:ten"], 2);
    assert!(e.contains("--window") && e.contains("tumbling:10s"), "{e}");
    let e = fails(&["run", "--source", "gen", "--window", "sliding:1s,3s"], 2);
    assert!(e.contains("slide"), "{e}");
    let e = fails(&["run", "--source", "gen", "--watermark-delay", "2 s x"], 2);
    assert!(e.contains("--watermark-delay"), "{e}");
    let e = fails(&["run", "--source", "carrier-pigeon"], 2);
    assert!(e.contains("--source") && e.contains("file:PATH"), "{e}");
    let e = fails(&["run", "--sink", "printer"], 2);
    assert!(e.contains("jsonl:PATH"), "{e}");
    fails(&["run", "--no-such-flag"], 2);
}

#[test]
fn a_refused_connection_fails_quickly_and_clearly() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let start = Instant::now();
    let e = fails(&["run", "--source", &format!("tcp:127.0.0.1:{port}")], 1);
    assert!(start.elapsed() < Duration::from_secs(10));
    assert!(e.contains("connection refused") && e.contains(&port.to_string()), "{e}");
}

#[test]
fn an_unwritable_sink_is_a_runtime_error() {
    let e = fails(&["run", "--source", "gen", "--count", "1", "--sink", "jsonl:/no/such/dir/out.jsonl"], 1);
    assert!(e.contains("/no/such/dir/out.jsonl"), "{e}");
}

#[test]
fn pipeline_files_are_validated_with_key_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "source = \"gen\"\nwindw = \"global\"\n").unwrap();
    let e = fails(&["validate", bad.to_str().unwrap()], 2);
    assert!(e.contains("bad.toml:2") && e.contains("windw"), "{e}");
    let e = fails(&["run", bad.to_str().unwrap()], 2);
    assert!(e.contains("bad.toml:2"), "{e}");

    std::fs::write(&bad, "source = \"gen\"\n\n\nwatermark-delay = \"soon\"\n").unwrap();
    let e = fails(&["validate", bad.to_str().unwrap()], 2);
    assert!(e.contains("bad.toml:4") && e.contains("watermark-delay") && e.contains("invalid duration"), "{e}");

    std::fs::write(&bad, "source = [\n").unwrap();
    let e = fails(&["validate", bad.to_str().unwrap()], 2);
    assert!(e.contains("bad.toml:"), "{e}");

    let e = fails(&["validate", "/no/such/pipeline.toml"], 2);
    assert!(e.contains("no such file"), "{e}");

    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        "source = \"gen:1000\"\nmode = \"per-event\"\nwindow = \"sliding:10s,2s\"\nsink = [\"null\"]\n",
    )
    .unwrap();
    let out = run_ok(&["validate", good.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok"));
}

#[test]
fn flags_override_the_pipeline_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.toml");
    let report = dir.path().join("r.json");
    std::fs::write(
        &file,
        "source = \"gen\"\ncount = 100\nmode = \"per-event\"\nwindow = \"global\"\nsink = \"null\"\n",
    )
    .unwrap();
    run_ok(&[
        "run",
        file.to_str().unwrap(),
        "--mode",
        "micro-batch",
        "--batch-interval",
        "10ms",
        "--report",
        report.to_str().unwrap(),
    ]);
    let rep = read_report(&report);
    assert_eq!((rep["mode"].as_str(), rep["events"].as_u64()), (Some("micro-batch"), Some(100)));
}

#[test]
fn absurd_sizes_rates_and_timestamps_are_refused_or_counted() {
    let e = fails(&["run", "--source", "gen", "--window", "tumbling:110000d"], 2);
    assert!(e.contains("3650d"), "{e}");
    let e = fails(&["run", "--source", "gen:0.000000000001"], 2);
    assert!(e.contains("0.01"), "{e}");

    // Times far outside 1824..2116 are not times: counted, placed by ingest
    // time, and they never move the watermark.
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("t.txt");
    std::fs::write(&input, "1700000000000 a\n9223372036000000000 b\n99999999999999 c\n1700000000500 d\n").unwrap();
    let (rows, rep) = run_file(&input, "t", &["--event-time", "first-field", "--window", "sliding:10s,2s"]);
    assert_eq!((rep["event_time_fallbacks"].as_u64(), rep["late_events"].as_u64()), (Some(2), Some(0)));
    assert_eq!(rows.iter().filter(|r| r.key == "d").count(), 5, "d is in its five sliding windows, not late");
    assert!(rows.iter().any(|r| r.key == "9223372036000000000"), "the bad field stays as text");
}

#[test]
fn nul_bytes_invalid_utf8_binary_and_empty_files_are_counted_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    // Text with NUL bytes and invalid UTF-8, then a stretch of binary.
    let mut content = b"plain words\nnul\0inside and \0edges\0\ncaf\xE9 \xFF\xFE ok\n\xE2\x82\nend\n".to_vec();
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    for _ in 0..200_000 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        content.push((state >> 24) as u8);
    }
    content.extend_from_slice(b"\nafter the binary\n");
    let input = dir.path().join("mixed.bin");
    std::fs::write(&input, &content).unwrap();
    for mode in ["per-event", "micro-batch"] {
        let (rows, report) = run_file(&input, mode, &["--mode", mode]);
        let got: std::collections::HashMap<String, u64> = rows.into_iter().map(|r| (r.key, r.count)).collect();
        assert_eq!(got, independent_count(&content), "{mode}");
        assert!(got.contains_key("nul\0inside") && got.contains_key("ok"), "{mode}");
        assert_eq!(report["ended_by"], "end-of-input");
    }

    let empty = dir.path().join("empty.txt");
    std::fs::write(&empty, "").unwrap();
    let (rows, report) = run_file(&empty, "empty", &[]);
    assert!(rows.is_empty());
    assert_eq!(report["events"], 0);
}

#[test]
fn a_file_deleted_while_being_read_is_read_to_its_end() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("going.txt");
    let text = "the quick brown fox jumps over the lazy dog\n".repeat(400_000);
    std::fs::write(&input, &text).unwrap();
    let out = dir.path().join("counts.jsonl");
    let child = sluice()
        .args(["run", "--source", &format!("file:{}", input.display()), "--no-follow", "--mode", "per-event"])
        .args(["--sink", &format!("jsonl:{}", out.display())])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(50));
    std::fs::remove_file(&input).unwrap();
    let done = child.wait_with_output().unwrap();
    assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));
    let got: std::collections::HashMap<String, u64> =
        read_rows(&out, "per-event").into_iter().map(|r| (r.key, r.count)).collect();
    assert_eq!(got, independent_count(text.as_bytes()), "the open file is read to its end");
}
