//! `sluice compare`: every mode sees the same input, the report has one
//! entry per mode with its stages, the plot and the interval logs are
//! written and readable, and bad options are refused.

use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
use hdrhistogram::serialization::Deserializer;
use hdrhistogram::Histogram;

use crate::util::*;

/// Sums the histograms tagged `tag` in an HdrHistogram interval log.
fn log_count(text: &[u8], tag: &str) -> (u64, usize) {
    let mut de = Deserializer::new();
    let (mut count, mut intervals) = (0, 0);
    for entry in IntervalLogIterator::new(text) {
        if let LogEntry::Interval(h) = entry.expect("a well-formed log line") {
            if h.tag().map(|t| t.as_str()) != Some(tag) {
                continue;
            }
            let bytes = base64_decode(h.encoded_histogram());
            let hist: Histogram<u64> = de.deserialize(&mut &bytes[..]).expect("a readable histogram");
            count += hist.len();
            intervals += 1;
        }
    }
    (count, intervals)
}

/// Standard base64, written out here so the test relies on nothing the
/// engine uses to write the log.
fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    } as u32;
    let mut out = Vec::new();
    for quad in s.trim_end_matches('=').as_bytes().chunks(4) {
        let mut n = 0u32;
        for (i, &c) in quad.iter().enumerate() {
            n |= val(c) << (18 - 6 * i);
        }
        out.extend_from_slice(&n.to_be_bytes()[1..quad.len()]);
    }
    out
}

#[test]
fn compare_runs_each_mode_on_the_same_input() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("r.json");
    let plot = dir.path().join("p.svg");
    let logs = dir.path().join("logs");
    let out = run_ok(&[
        "compare",
        "--source",
        "gen:2000",
        "--duration",
        "2s",
        "--modes",
        "per-event,micro-batch:100ms",
        "--window",
        "tumbling:1s",
        "--output",
        "update",
        "--plot",
        plot.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
        "--hdr-log",
        logs.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let n: usize = stdout
        .split("results: equal in every mode (")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no result check in\n{stdout}"));
    // 2 s of 1 s windows: two or three windows, each with many words.
    assert!(n > 100, "{n} window results");
    for row in ["per-event", "micro-batch:100ms", "end-to-end [wall]", "· batch wait [mono]", "· compute [mono]"] {
        assert!(stdout.contains(row), "{row} missing from\n{stdout}");
    }

    let runs = read_report(&report);
    let runs = runs.as_array().expect("the report is an array");
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0]["mode"], "per-event");
    assert_eq!(runs[1]["mode"], "micro-batch");
    assert_eq!(runs[1]["batch_interval_ms"], 100.0);
    for r in runs {
        // 2 s at 2000 lines/s, by intended send time.
        assert_eq!(r["events"], 4000, "{r}");
        assert_eq!(r["output"], "update");
        assert_eq!(r["time"], "event");
        assert!(r["cpu_s"].as_f64().unwrap() > 0.0, "{r}");
        assert!(r["peak_rss_bytes"].as_u64().unwrap() > 1 << 20, "{r}");
        let lat = &r["latency"];
        assert_eq!(lat["end_to_end"]["count"], 4000, "every line has words, so every line has an effect");
        assert_eq!(lat["stages"]["source_wait"]["count"], 4000);
        assert!(lat["stages"]["window_hold"].is_null(), "update output holds nothing back");
    }
    let stages = |i: usize, s: &str, q: &str| runs[i]["latency"]["stages"][s][q].as_f64().unwrap();
    assert_eq!(stages(0, "batch_wait", "max_us"), 0.0, "per-event mode has no batches");
    // Lines wait for the next 100 ms boundary: half of them 50 ms or more,
    // and none longer than an interval (the histogram's precision aside).
    assert!(stages(1, "batch_wait", "p50_us") > 30_000.0, "{}", runs[1]);
    assert!(stages(1, "batch_wait", "max_us") <= 100_100.0, "{}", runs[1]);
    let e2e = |i: usize, q: &str| runs[i]["latency"]["end_to_end"][q].as_f64().unwrap();
    assert!(e2e(1, "p50_us") > e2e(0, "p50_us"), "micro-batches hold lines back");

    let svg = std::fs::read_to_string(&plot).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"), "{}", &svg[..100.min(svg.len())]);
    assert!(svg.contains("per-event") && svg.contains("micro-batch:100ms"), "the legend names each mode");

    for (i, name) in ["per-event.hlog", "micro-batch-100ms.hlog"].iter().enumerate() {
        let text = std::fs::read(logs.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let (count, intervals) = log_count(&text, "end-to-end");
        assert_eq!(count, runs[i]["latency"]["end_to_end"]["count"].as_u64().unwrap(), "{name}");
        assert!(intervals >= 2, "{name}: a 2 s run is cut into 1 s intervals, got {intervals}");
        let (processing, _) = log_count(&text, "processing");
        assert_eq!(processing, 4000, "{name}");
        // Every stage the report shows is in the log, with the same count.
        for (tag, key) in [
            ("source-wait", "source_wait"),
            ("batch-wait", "batch_wait"),
            ("queueing", "queueing"),
            ("compute", "compute"),
            ("sink-write", "sink_write"),
        ] {
            let want = runs[i]["latency"]["stages"][key]["count"].as_u64().unwrap();
            assert!(want > 0, "{name}: {key} recorded");
            assert_eq!(log_count(&text, tag).0, want, "{name}: {tag}");
        }
        assert_eq!(log_count(&text, "window-hold").1, 0, "{name}: update output holds nothing back");
    }
}

/// On two shards the shards' histograms reach the interval log through the
/// router: every stage's count in the log is still the report's.
#[test]
fn interval_logs_of_sharded_runs_hold_every_stage() {
    let dir = tempfile::tempdir().unwrap();
    let (report, logs) = (dir.path().join("r.json"), dir.path().join("logs"));
    run_ok(&[
        "compare",
        "--source",
        "gen:2000",
        "--duration",
        "2s",
        "--modes",
        "per-event,micro-batch:100ms",
        "--parallelism",
        "2",
        "--report",
        report.to_str().unwrap(),
        "--hdr-log",
        logs.to_str().unwrap(),
    ]);
    let runs = read_report(&report);
    for (i, name) in ["per-event.hlog", "micro-batch-100ms.hlog"].iter().enumerate() {
        let text = std::fs::read(logs.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let lat = &runs[i]["latency"];
        assert_eq!(log_count(&text, "end-to-end").0, lat["end_to_end"]["count"].as_u64().unwrap(), "{name}");
        // Sink write is the shards' own in per-event mode.
        let stages = [
            ("source-wait", "source_wait"),
            ("queueing", "queueing"),
            ("compute", "compute"),
            ("sink-write", "sink_write"),
        ];
        for (tag, key) in stages {
            let want = lat["stages"][key]["count"].as_u64().unwrap();
            assert!(want > 0, "{name}: {key} recorded");
            assert_eq!(log_count(&text, tag).0, want, "{name}: {tag}");
        }
    }
}

#[test]
fn compare_replays_a_recorded_file_in_full() {
    let dir = tempfile::tempdir().unwrap();
    // The first 3000 lines of the book, with its BOM and CRLFs.
    let book = std::fs::read(fixture("moby-dick.txt")).unwrap();
    let cut = book.iter().enumerate().filter(|(_, &b)| b == b'\n').nth(2999).unwrap().0 + 1;
    let input = dir.path().join("in.txt");
    std::fs::write(&input, &book[..cut]).unwrap();
    let report = dir.path().join("r.json");
    let out = run_ok(&[
        "compare",
        "--source",
        &format!("file:{}", input.display()),
        "--rate",
        "20000",
        "--window",
        "global",
        "--modes",
        "per-event,micro-batch:20ms",
        "--report",
        report.to_str().unwrap(),
    ]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("results: equal in every mode"));
    let words: u64 = independent_count(&book[..cut]).values().sum();
    for r in read_report(&report).as_array().unwrap() {
        assert_eq!(r["events"], 3000, "{r}");
        assert_eq!(r["items"], words, "{r}");
    }
}

#[test]
fn compare_refuses_input_it_cannot_replay() {
    for (args, want) in [
        (&["--source", "gen"][..], "fixed rate"),
        (&["--source", "stdin"][..], "cannot replay"),
        (&["--source", "file:Cargo.toml"][..], "--rate"),
        (&["--source", "gen:100", "--rate", "100"][..], "given twice"),
        (&["--modes", "per-event,storm"][..], "invalid mode \"storm\""),
        (&["--modes", "micro-batch:0ms"][..], "at least 1ms"),
        (&["--window", "tumbling:0s"][..], "window"),
        (&["--plot", "latency.png"][..], "ending in .svg"),
    ] {
        let out = sluice().arg("compare").args(args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(want) && err.lines().count() == 1, "{args:?}: {err}");
    }
    // Input that cannot be read is a runtime failure, as for `run`.
    let out = sluice().args(["compare", "--source", "file:/nonexistent/x.log", "--rate", "100"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("cannot read /nonexistent/x.log") && err.lines().count() == 1, "{err}");
}

#[test]
fn sweep_finds_what_each_mode_keeps_up_with() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("s.json");
    let plot = dir.path().join("s.svg");
    let out = run_ok(&[
        "sweep",
        "--rates",
        "500,1k",
        "--modes",
        "per-event,micro-batch:50ms",
        "--duration",
        "2s",
        "--target-p99",
        "10s",
        "--report",
        report.to_str().unwrap(),
        "--plot",
        plot.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let points = read_report(&report);
    let points = points.as_array().unwrap();
    // Each mode is tried at the first rate, and at the second only if it
    // kept up with the first.
    assert!(points.len() >= 2 && points.len() <= 4, "{points:?}");
    for p in points {
        let rate = p["rate"].as_f64().unwrap();
        assert!(rate == 500.0 || rate == 1000.0, "{p}");
        assert_eq!(p["events"].as_f64().unwrap(), 2.0 * rate, "{p}");
        let keeps_up = p["keeps_up"].as_bool().unwrap();
        let behind = p["latency"]["stages"]["source_wait"]["p99_us"].as_f64().unwrap();
        let slack = p["batch_interval_ms"].as_f64().unwrap_or(0.0).max(10.0) * 1e3;
        assert_eq!(keeps_up, behind <= slack && p["events_per_s"].as_f64().unwrap() >= 0.9 * rate, "{p}");
    }
    for mode in ["per-event", "micro-batch:50ms"] {
        assert!(
            ["keeps up to", "keeps up with every rate tried", "kept up with none"]
                .iter()
                .any(|how| stdout.contains(&format!("{mode}: {how}"))),
            "{stdout}"
        );
        // Kept up at 1k, the highest rate tried: the limit is not known.
        let kind = mode.split(':').next().unwrap();
        let top = points.iter().any(|p| p["mode"] == kind && p["rate"] == 1000.0 && p["keeps_up"] == true);
        assert_eq!(stdout.contains(&format!("{mode}: keeps up with every rate tried, up to 1000")), top, "{stdout}");
    }
    // A 10 s target is met by any mode that keeps up at all.
    let any = points.iter().any(|p| p["keeps_up"] == true);
    assert!(stdout.contains("recommendation for p99 <= 10s: "), "{stdout}");
    assert_eq!(!stdout.contains("no mode met it"), any, "{stdout}");
    assert!(std::fs::read_to_string(&plot).unwrap().contains("per-event"));
}

#[test]
fn sweep_refuses_bad_options() {
    for (args, want) in [
        (&["--source", "gen:100"][..], "chooses the rates"),
        (&["--rates", "10k,5k"][..], "rates must increase"),
        (&["--target-p99", "soon"][..], "--target-p99"),
        (&["--plot", "knee"][..], "ending in .svg"),
    ] {
        let out = sluice().arg("sweep").args(args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(want) && err.lines().count() == 1, "{args:?}: {err}");
    }
}

#[test]
fn compare_with_checkpoints_measures_when_results_become_committed() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    let out = run_ok(&[
        "compare",
        "--source",
        "gen:2000",
        "--duration",
        "2s",
        "--modes",
        "per-event,micro-batch:50ms",
        // Final output: the last windows close only at the end of the
        // input, before the last checkpoint, and must be counted too.
        "--output",
        "final",
        "--checkpoint-interval",
        "200ms",
        "--report",
        &report.display().to_string(),
        "--hdr-log",
        &dir.path().join("logs").display().to_string(),
    ]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("committed [wall]"), "{table}");
    // Final output has results' latency from their window's end: a row too.
    assert_eq!(table.matches("result [wall]").count(), 2, "one per mode: {table}");
    let runs = read_report(&report);
    for r in runs.as_array().unwrap() {
        let (e2e, committed) = (&r["latency"]["end_to_end"], &r["latency"]["committed"]);
        // Every line had words, so every one's effect was emitted, the last
        // windows' when the input ended; and every emitted one became
        // committed, at the last checkpoint at the latest.
        assert_eq!(e2e["count"], r["events"], "{r}");
        assert_eq!(committed["count"], e2e["count"], "{r}");
        assert_eq!(committed["clamped"], 0, "{r}");
        assert!(e2e["count"].as_u64().unwrap() > 1000, "{r}");
        let us = |l: &serde_json::Value, p: &str| l[p].as_f64().unwrap();
        // Committed comes after emitted, at most one interval (and the time
        // to take the checkpoint) later.
        assert!(us(committed, "min_us") >= us(e2e, "min_us"), "{r}");
        assert!(us(committed, "p50_us") > us(e2e, "p50_us"), "{r}");
        // Taken at the first flush or boundary after the interval, and
        // taking time itself: generous bounds, for a loaded machine.
        assert!(us(committed, "max_us") <= us(e2e, "max_us") + 2.0 * 200_000.0 + 500_000.0, "{r}");
        assert!(r["checkpoints"]["taken"].as_u64().unwrap() >= 5, "{r}");
        // The interval log has them too, and the window hold of final output.
        let name = if r["mode"] == "per-event" { "per-event.hlog" } else { "micro-batch-50ms.hlog" };
        let text = std::fs::read(dir.path().join("logs").join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(log_count(&text, "committed").0, committed["count"].as_u64().unwrap(), "{name}");
        let hold = r["latency"]["stages"]["window_hold"]["count"].as_u64().unwrap();
        assert!(hold > 0, "{r}");
        assert_eq!(log_count(&text, "window-hold").0, hold, "{name}");
    }
    let e = sluice().args(["compare", "--checkpoint-interval", "5ms"]).output().unwrap();
    assert_eq!(e.status.code(), Some(2));
}
