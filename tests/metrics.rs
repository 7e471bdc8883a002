//! The Prometheus endpoint answers scrapes while a run goes on, with
//! counters that grow and histograms that are well formed.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::util::*;

/// A free loopback port (bound and released; the test uses it at once).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// GETs `path`; returns the status line and the body.
fn get(port: u16, path: &str) -> Option<(String, String)> {
    let mut conn = TcpStream::connect(("127.0.0.1", port)).ok()?;
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(conn, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").ok()?;
    let mut text = String::new();
    conn.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    Some((head.lines().next()?.to_string(), body.to_string()))
}

/// Samples by their full name with labels.
fn samples(body: &str) -> BTreeMap<String, f64> {
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (name, value) = l.rsplit_once(' ').unwrap_or_else(|| panic!("malformed sample line {l:?}"));
            (name.to_string(), value.parse::<f64>().unwrap_or_else(|_| panic!("bad value in {l:?}")))
        })
        .collect()
}

#[test]
fn metrics_endpoint_serves_growing_counters_and_sound_histograms() {
    let port = free_port();
    let addr = port.to_string();
    let child = sluice()
        .args(["run", "--source", "gen:4000", "--duration", "6s", "--mode", "per-event", "--output", "update"])
        .args(["--sink", "null", "--metrics-addr", &addr])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The first scrape that shows input.
    let deadline = Instant::now() + Duration::from_secs(30);
    let first = loop {
        assert!(Instant::now() < deadline, "no metrics with input within 30s");
        if let Some((status, body)) = get(port, "/metrics") {
            assert_eq!(status, "HTTP/1.1 200 OK");
            let s = samples(&body);
            if s.get("sluice_events_in_total{mode=\"per-event\"}").is_some_and(|&v| v > 0.0) {
                break s;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    std::thread::sleep(Duration::from_millis(1500));
    let (_, body) = get(port, "/metrics").expect("a second scrape");
    let second = samples(&body);
    let events = |s: &BTreeMap<String, f64>| s["sluice_events_in_total{mode=\"per-event\"}"];
    assert!(events(&second) > events(&first), "events grow: {} then {}", events(&first), events(&second));
    assert!(second["sluice_items_total{mode=\"per-event\"}"] >= 8.0 * events(&first), "8 words a line");
    assert!(second.contains_key("sluice_watermark_lag_seconds{mode=\"per-event\"}"), "event time has a watermark");
    // Every histogram: buckets never fall, +Inf equals the count.
    for kind in ["processing", "end_to_end", "queueing", "compute", "sink_write", "source_wait"] {
        let clock = if matches!(kind, "end_to_end" | "source_wait") { "wall" } else { "monotonic" };
        let labels = format!("mode=\"per-event\",kind=\"{kind}\",clock=\"{clock}\"");
        let count = second[&format!("sluice_latency_seconds_count{{{labels}}}")];
        assert!(count > 0.0, "{kind}: recorded");
        let inf = second[&format!("sluice_latency_seconds_bucket{{{labels},le=\"+Inf\"}}")];
        assert_eq!(inf, count, "{kind}: +Inf bucket holds every value");
        // Cumulative in the order of the bounds.
        let mut bounded: Vec<(f64, f64)> = second
            .iter()
            .filter_map(|(name, v)| {
                let rest = name.strip_prefix(&format!("sluice_latency_seconds_bucket{{{labels},le=\""))?;
                let le = rest.trim_end_matches("\"}").parse::<f64>().ok()?;
                le.is_finite().then_some((le, *v))
            })
            .collect();
        bounded.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap());
        assert_eq!(bounded.len(), 22, "{kind}: buckets");
        assert!(bounded.windows(2).all(|w| w[0].1 <= w[1].1), "{kind}: cumulative buckets: {bounded:?}");
        assert!(bounded[21].1 <= inf, "{kind}: the last bucket is at most the count");
    }
    let (status, _) = get(port, "/other").expect("a scrape of another path");
    assert_eq!(status, "HTTP/1.1 404 Not Found");
    let stderr = stop(child);
    assert!(stderr.contains("events"), "the run report follows: {stderr}");
}

/// Micro-batch mode on two shards: the shards' latency histograms reach
/// the endpoint while the run goes on, not only at its end.
#[test]
fn sharded_micro_batch_latency_is_served_while_the_run_goes_on() {
    let port = free_port();
    let addr = port.to_string();
    let mut child = sluice()
        .args([
            "run",
            "--source",
            "gen:2000",
            "--duration",
            "20s",
            "--mode",
            "micro-batch",
            "--batch-interval",
            "100ms",
        ])
        .args(["--parallelism", "2", "--output", "update", "--sink", "null", "--metrics-addr", &addr])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let labels = "mode=\"micro-batch\",kind=\"end_to_end\",clock=\"wall\"";
    let deadline = Instant::now() + Duration::from_secs(15);
    let (served, s) = loop {
        assert!(Instant::now() < deadline, "no end-to-end latency served within 15s of a 20s run");
        if let Some((_, body)) = get(port, "/metrics") {
            let s = samples(&body);
            if let Some(&n) = s.get(&format!("sluice_latency_seconds_count{{{labels}}}")).filter(|&&n| n > 0.0) {
                break (n, s);
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(child.try_wait().unwrap().is_none(), "served while running ({served} latencies)");
    // Each shard's queue from the router: its depth, within its capacity.
    for shard in 0..2 {
        let key = |name: &str| format!("sluice_{name}{{mode=\"micro-batch\",shard=\"{shard}\"}}");
        let capacity = s[&key("shard_queue_capacity_messages")];
        let depth = s[&key("shard_queue_messages")];
        assert!(capacity > 0.0 && (0.0..=capacity).contains(&depth), "shard {shard}: {depth} of {capacity}");
    }
    assert!(!s.keys().any(|k| k.contains("shard=\"2\"")), "two shards, no third");
    let stderr = stop(child);
    assert!(stderr.contains("events"), "the run report follows: {stderr}");
}

/// `compare --metrics-addr`: one endpoint for all the runs. While the
/// second mode runs, the first one's samples stay, as it ended, beside the
/// second's, each family declared once and every sample labelled with its
/// mode as the table names it.
#[test]
fn compare_serves_every_mode_under_its_own_label() {
    let port = free_port();
    let addr = port.to_string();
    let mut child = sluice()
        .args(["compare", "--source", "gen:2000", "--duration", "4s", "--modes", "per-event,micro-batch:100ms"])
        .args(["--metrics-addr", &addr])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let events = |mode: &str| format!("sluice_events_in_total{{mode=\"{mode}\"}}");
    let deadline = Instant::now() + Duration::from_secs(40);
    let (body, s) = loop {
        assert!(Instant::now() < deadline, "no scrape showed both modes within 40s");
        assert!(child.try_wait().unwrap().is_none(), "compare ended before a scrape showed both modes");
        if let Some((_, body)) = get(port, "/metrics") {
            let s = samples(&body);
            if s.get(&events("micro-batch:100ms")).is_some_and(|&v| v > 0.0) {
                break (body, s);
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    // The first run ended: its count is the whole of its 4 s at 2000/s.
    assert_eq!(s[&events("per-event")], 8000.0, "{body}");
    for mode in ["per-event", "micro-batch:100ms"] {
        assert_eq!(s[&format!("sluice_offered_rate_lines_per_second{{mode=\"{mode}\"}}")], 2000.0);
        let labels = format!("mode=\"{mode}\",kind=\"end_to_end\",clock=\"wall\"");
        assert!(s.contains_key(&format!("sluice_latency_seconds_count{{{labels}}}")), "{mode}: latency");
    }
    let mut types: Vec<&str> = body.lines().filter(|l| l.starts_with("# TYPE ")).collect();
    let all = types.len();
    types.sort();
    types.dedup();
    assert_eq!(types.len(), all, "a family is declared once: {body}");
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("results: equal in every mode"));
}

#[test]
fn a_bad_metrics_address_is_a_usage_error() {
    for (command, source) in [("run", "gen"), ("compare", "gen:1000"), ("sweep", "gen")] {
        let out = sluice().args([command, "--source", source, "--metrics-addr", "localhost"]).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{command}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("invalid metrics address") && err.contains("HOST:PORT"), "{command}: {err}");
        assert_eq!(err.lines().count(), 1, "{command}: one line: {err}");
    }
}
