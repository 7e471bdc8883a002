//! Whole-book word counts against an independent count, and report checks.

use std::collections::HashMap;

use crate::util::*;

#[test]
fn global_count_of_a_whole_book_matches_an_independent_count_in_both_modes() {
    let book = fixture("moby-dick.txt");
    let bytes = std::fs::read(&book).unwrap();
    let expected = independent_count(&bytes);
    assert!(expected.len() > 15_000 && expected["whale"] > 500, "the fixture is the whole book");
    let dir = tempfile::tempdir().unwrap();
    for (mode, extra) in [("per-event", None), ("micro-batch", Some("5ms"))] {
        let out = dir.path().join(format!("{mode}.jsonl"));
        let report = dir.path().join(format!("{mode}.json"));
        let (source, sink, rep) =
            (format!("file:{}", book.display()), format!("jsonl:{}", out.display()), report.display().to_string());
        let mut args = vec![
            "run",
            "--source",
            &source,
            "--no-follow",
            "--mode",
            mode,
            "--window",
            "global",
            "--sink",
            &sink,
            "--report",
            &rep,
        ];
        if let Some(i) = extra {
            args.extend(["--batch-interval", i]);
        }
        run_ok(&args);
        let rows = read_rows(&out, mode);
        assert!(
            rows.iter().all(|r| r.window_start.is_none() && r.window_end.is_none()),
            "global window has null bounds"
        );
        let got: HashMap<String, u64> = rows.iter().map(|r| (r.key.clone(), r.count)).collect();
        assert_eq!(got.len(), rows.len(), "one final result per word");
        assert_eq!(got, expected, "{mode} counts differ from the independent count");

        let rep = read_report(&report);
        let lines = bytes.iter().filter(|&&b| b == b'\n').count() as u64 + u64::from(!bytes.ends_with(b"\n"));
        assert_eq!(rep["mode"], mode);
        assert_eq!(rep["events"], lines, "one event per line");
        assert_eq!(rep["bytes"], bytes.len() as u64);
        assert_eq!(rep["items"], expected.values().sum::<u64>());
        assert_eq!(rep["results"], expected.len() as u64);
        assert_eq!(rep["ended_by"], "end-of-input");
        let p = &rep["latency"]["processing"];
        let non_blank = String::from_utf8_lossy(&bytes)
            .lines()
            .filter(|l| independent_count(l.as_bytes()).values().sum::<u64>() > 0)
            .count() as u64;
        assert_eq!(p["count"], non_blank, "every event with words has a latency");
        assert!(p["p50_us"].as_f64().unwrap() <= p["max_us"].as_f64().unwrap());
        assert!(rep["latency"].get("end_to_end").is_none(), "no event times, no end-to-end latency");
        assert_eq!(rep["latency"]["clocks"]["processing"], "monotonic");
        if mode == "micro-batch" {
            assert_eq!(rep["batch_interval_ms"], 5.0);
        } else {
            assert_eq!(rep.get("batch_interval_ms"), Some(&serde_json::Value::Null), "per-event: there, and null");
        }
    }
}

#[test]
fn generator_report_counts_equal_what_was_sent() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("g.jsonl");
    let report = dir.path().join("g.json");
    for mode in ["per-event", "micro-batch"] {
        let output = run_ok(&[
            "run",
            "--source",
            "gen",
            "--count",
            "20000",
            "--gen-words",
            "5",
            "--mode",
            mode,
            "--batch-interval",
            "20ms",
            "--window",
            "global",
            "--output",
            "final",
            "--sink",
            &format!("jsonl:{}", out.display()),
            "--report",
            &report.display().to_string(),
        ]);
        assert!(output.stdout.is_empty(), "stdout carries only what --sink stdout writes");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("sluice run report"), "the report goes to stderr");
        assert_eq!(
            stderr.contains("--batch-interval is ignored in per-event mode"),
            mode == "per-event",
            "a batch interval with per-event mode is accepted with a warning: {stderr}"
        );
        let rep = read_report(&report);
        assert_eq!(rep["events"], 20_000);
        assert_eq!(rep["items"], 100_000);
        assert_eq!(rep["time"], "event", "the generator's send time is the event time");
        assert_eq!(rep["latency"]["processing"]["count"], 20_000);
        assert_eq!(rep["latency"]["end_to_end"]["count"], 20_000);
        let total: u64 = read_rows(&out, mode).iter().map(|r| r.count).sum();
        assert_eq!(total, 100_000, "the counts add up to the words sent");
        assert!(read_rows(&out, mode).iter().all(|r| r.max_event_time.is_some()));
    }
}

#[test]
fn tokenizer_edge_cases_through_the_whole_engine() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("edge.txt");
    let mut data = b"\xEF\xBB\xBF\xE2\x80\x9CCall me Ishmael.\xE2\x80\x9D\r\n".to_vec();
    data.extend_from_slice("Père-Lachaise — MISÉRABLES\r\n\r\n".as_bytes());
    data.extend_from_slice(b"caf\xE9 bad\xFF\x00bytes\n");
    data.extend_from_slice(b"last line without newline");
    let out = dir.path().join("o.jsonl");
    let report = dir.path().join("r.json");
    std::fs::write(&input, &data).unwrap();
    run_ok(&[
        "run",
        "--source",
        &format!("file:{}", input.display()),
        "--no-follow",
        "--sink",
        &format!("jsonl:{}", out.display()),
        "--report",
        &report.display().to_string(),
    ]);
    let got: HashMap<String, u64> = read_rows(&out, "micro-batch").into_iter().map(|r| (r.key, r.count)).collect();
    assert_eq!(got, independent_count(&data));
    for w in ["call", "ishmael", "père-lachaise", "misérables", "caf", "bad\u{FFFD}\u{0}bytes", "newline"] {
        assert!(got.contains_key(w), "{w:?} missing from {got:?}");
    }
    assert_eq!(read_report(&report)["events"], 5, "blank lines are events, and so is a last line without newline");
}

#[test]
fn a_16_mib_line_is_counted_whole_or_cut_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("long.txt");
    let mut line = "word ".repeat((16 << 20) / 5);
    line.push_str("\nafter\n");
    std::fs::write(&input, &line).unwrap();
    let words = (16 << 20) / 5;
    let out = dir.path().join("o.jsonl");
    let report = dir.path().join("r.json");
    let file = format!("file:{}", input.display());
    let sink = format!("jsonl:{}", out.display());
    let rep = report.display().to_string();
    run_ok(&[
        "run",
        "--source",
        &file,
        "--no-follow",
        "--max-line-bytes",
        "33554432",
        "--sink",
        &sink,
        "--report",
        &rep,
    ]);
    let got: HashMap<String, u64> = read_rows(&out, "micro-batch").into_iter().map(|r| (r.key, r.count)).collect();
    assert_eq!(got["word"], words as u64);
    assert_eq!(read_report(&report)["truncated_lines"], 0);

    run_ok(&["run", "--source", &file, "--no-follow", "--max-line-bytes", "1000", "--sink", &sink, "--report", &rep]);
    let got: HashMap<String, u64> = read_rows(&out, "micro-batch").into_iter().map(|r| (r.key, r.count)).collect();
    assert_eq!(got["word"], 200, "only the first 1000 bytes of the long line count");
    assert_eq!(got["after"], 1, "the line after the cut one is intact");
    let r = read_report(&report);
    assert_eq!((r["truncated_lines"].as_u64(), r["events"].as_u64()), (Some(1), Some(2)));
}
