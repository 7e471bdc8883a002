//! Both modes give identical event-time window results, and those results
//! are right: checked against an independent simulation of the watermark.

use std::collections::{BTreeMap, HashMap};

use crate::util::*;

const BASE_MS: i64 = 1_700_000_000_000;
const DELAY_MS: i64 = 100;

/// The book with a millisecond timestamp before every line: 5 ms apart, and
/// every 10th line or so 0–400 ms early, so some lines arrive out of order
/// and a few are late.
fn timestamped_book() -> (Vec<u8>, Vec<(i64, String)>) {
    let text = std::fs::read(fixture("moby-dick.txt")).unwrap();
    let text = String::from_utf8(text).unwrap();
    let mut out = Vec::new();
    let mut lines = Vec::new();
    let mut rng: u64 = 7;
    for (i, line) in text.split('\n').enumerate() {
        if line.is_empty() && i > 0 && text.ends_with('\n') && i == text.split('\n').count() - 1 {
            break;
        }
        rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let jitter = if (rng >> 33).is_multiple_of(10) { -(((rng >> 40) % 400) as i64) } else { 0 };
        let t = BASE_MS + i as i64 * 5 + jitter;
        out.extend_from_slice(format!("{t} {line}\n").as_bytes());
        lines.push((t, line.to_string()));
    }
    (out, lines)
}

/// What tumbling windows of `size_ms` must hold: the watermark is the
/// latest time so far minus the delay, and a line whose window ended at or
/// before it is late.
fn expected_tumbling(lines: &[(i64, String)], size_ms: i64) -> (BTreeMap<(i64, String), u64>, u64) {
    let mut counts = BTreeMap::new();
    let mut max_t = i64::MIN;
    let mut late = 0;
    for (t, line) in lines {
        max_t = max_t.max(*t);
        let wm = max_t - DELAY_MS;
        let start = t.div_euclid(size_ms) * size_ms;
        let words = independent_count(line.as_bytes());
        if start + size_ms <= wm {
            if !words.is_empty() {
                late += 1;
            }
            continue;
        }
        for (w, n) in words {
            *counts.entry((start, w)).or_insert(0) += n;
        }
    }
    (counts, late)
}

fn run_mode(
    dir: &std::path::Path,
    input: &std::path::Path,
    mode: &str,
    window: &str,
    output: &str,
) -> (Vec<Row>, Vec<String>, serde_json::Value) {
    run_sharded(dir, input, mode, window, output, 1, "10ms")
}

fn run_sharded(
    dir: &std::path::Path,
    input: &std::path::Path,
    mode: &str,
    window: &str,
    output: &str,
    shards: usize,
    batch_interval: &str,
) -> (Vec<Row>, Vec<String>, serde_json::Value) {
    let name = format!("{mode}-{}-{output}-{shards}", window.replace([':', ','], "_"));
    let shards = shards.to_string();
    let late = dir.join(format!("{name}.late.jsonl"));
    let (delay, late_sink) = (format!("{DELAY_MS}ms"), format!("jsonl:{}", late.display()));
    let (mut rows, report) = run_file(
        input,
        &name,
        &[
            "--mode",
            mode,
            "--batch-interval",
            batch_interval,
            "--time",
            "event",
            "--event-time",
            "first-field",
            "--watermark-delay",
            &delay,
            "--window",
            window,
            "--output",
            output,
            "--late-sink",
            &late_sink,
            "--parallelism",
            &shards,
        ],
    );
    rows.sort();
    let mut late_lines: Vec<String> = std::fs::read_to_string(&late).unwrap().lines().map(str::to_string).collect();
    late_lines.sort();
    (rows, late_lines, report)
}

fn epoch_ms(rfc3339: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339).unwrap().timestamp_millis()
}

#[test]
fn modes_agree_on_event_time_windows_of_every_kind() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("timed.txt");
    let (data, _) = timestamped_book();
    std::fs::write(&input, data).unwrap();
    for window in ["tumbling:1s", "sliding:2s,500ms", "session:40ms"] {
        let (a, late_a, rep_a) = run_mode(dir.path(), &input, "per-event", window, "final");
        let (b, late_b, rep_b) = run_mode(dir.path(), &input, "micro-batch", window, "final");
        assert!(a.len() > 1000, "{window}: {} results", a.len());
        assert_eq!(a, b, "{window}: per-event and micro-batch results differ");
        assert_eq!(late_a, late_b, "{window}: late items differ");
        assert_eq!(rep_a["late_events"], rep_b["late_events"]);
        assert_eq!(rep_a["late_items"].as_u64().unwrap(), late_a.len() as u64);
    }
}

#[test]
fn tumbling_results_match_an_independent_simulation() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("timed.txt");
    let (data, lines) = timestamped_book();
    std::fs::write(&input, data).unwrap();
    let (expected, late) = expected_tumbling(&lines, 1000);
    assert!(late > 10, "the fixture must produce late events, got {late}");
    for mode in ["per-event", "micro-batch"] {
        let (rows, _, rep) = run_mode(dir.path(), &input, mode, "tumbling:1s", "final");
        let got: BTreeMap<(i64, String), u64> = rows
            .iter()
            .map(|r| {
                let start = epoch_ms(r.window_start.as_deref().unwrap());
                assert_eq!(epoch_ms(r.window_end.as_deref().unwrap()) - start, 1000);
                ((start, r.key.clone()), r.count)
            })
            .collect();
        assert_eq!(got.len(), rows.len(), "{mode}: one final result per window and key");
        assert_same_map(&got, &expected, &format!("{mode}: window counts"));
        assert_eq!(rep["late_events"], late, "{mode}: late events");
        // max_event_time lies inside its window.
        for r in &rows {
            let t = epoch_ms(r.max_event_time.as_deref().unwrap());
            assert!(
                t >= epoch_ms(r.window_start.as_deref().unwrap()) && t < epoch_ms(r.window_end.as_deref().unwrap())
            );
        }
    }
}

#[test]
fn update_output_converges_to_the_final_results() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("timed.txt");
    let (data, _) = timestamped_book();
    std::fs::write(&input, data).unwrap();
    let (finals, _, _) = run_mode(dir.path(), &input, "per-event", "tumbling:1s", "final");
    let finals: HashMap<(Option<String>, String), u64> =
        finals.into_iter().map(|r| ((r.window_start, r.key), r.count)).collect();
    for mode in ["per-event", "micro-batch"] {
        let (updates, _, rep) = run_mode(dir.path(), &input, mode, "tumbling:1s", "update");
        // Running totals: the largest update of each window and key is its final count.
        let mut last: HashMap<(Option<String>, String), u64> = HashMap::new();
        for r in &updates {
            let e = last.entry((r.window_start.clone(), r.key.clone())).or_insert(0);
            *e = (*e).max(r.count);
        }
        assert_eq!(last, finals, "{mode}: update totals end at the final counts");
        if mode == "per-event" {
            assert_eq!(
                updates.len() as u64,
                rep["items"].as_u64().unwrap() - rep["late_items"].as_u64().unwrap(),
                "one update per counted word"
            );
        } else {
            assert!(
                (updates.len() as u64) < rep["items"].as_u64().unwrap(),
                "micro-batch updates once per key per batch"
            );
        }
        assert!(rep["latency"].get("result").is_none(), "result latency is for final output");
    }
}

#[test]
fn shards_give_the_results_of_one_shard() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("timed.txt");
    let (data, _) = timestamped_book();
    std::fs::write(&input, data).unwrap();
    // Update output too where the window operator has its inlined path
    // for an event's later items (global and tumbling windows).
    let runs = [
        ("tumbling:1s", "final"),
        ("sliding:2s,500ms", "final"),
        ("session:40ms", "final"),
        ("global", "final"),
        ("tumbling:1s", "update"),
        ("global", "update"),
    ];
    for (window, output) in runs {
        for mode in ["per-event", "micro-batch"] {
            // Micro-batch updates depend on where the batch boundaries fall
            // in the input, which wall-clock time decides: one batch longer
            // than the run (it ends at the end of input) makes them the same
            // in every run.
            let batch = if mode == "micro-batch" && output == "update" { "1h" } else { "10ms" };
            let (one, late_one, rep_one) = run_sharded(dir.path(), &input, mode, window, output, 1, batch);
            assert!(one.len() > 1000, "{window}: {} results", one.len());
            for shards in [2, 3] {
                let what = format!("{mode}, {window}, {output}, {shards} shards");
                let (many, late_many, rep) = run_sharded(dir.path(), &input, mode, window, output, shards, batch);
                assert_eq!(rep["parallelism"], shards, "{what}");
                assert_eq!(many, one, "{what}: results differ from one shard's");
                assert_eq!(late_many, late_one, "{what}: late items differ");
                for counter in ["items", "late_items", "results", "events"] {
                    assert_eq!(rep[counter], rep_one[counter], "{what}: {counter}");
                }
                let events = |r: &serde_json::Value| {
                    (r["late_events"].as_u64().unwrap(), r["latency"]["processing"]["count"].as_u64().unwrap())
                };
                let ((late, seen), (late_1, seen_1)) = (events(&rep), events(&rep_one));
                assert_eq!(late, late_1, "{what}: late events");
                if window.starts_with("session") {
                    // Sessions judge each word of an event apart: an event
                    // whose first word is late but another is not is not
                    // accounted for latency (WindowOperator::into_shard).
                    assert!(seen <= seen_1 && seen + late >= seen_1, "{what}: {late} {seen}");
                } else {
                    assert_eq!(seen, seen_1, "{what}: every event's latency is recorded once");
                }
            }
        }
    }
}
