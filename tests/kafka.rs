//! Kafka against a real broker: run when `SLUICE_KAFKA_BROKERS` names one
//! (`.ci/run` starts tansu and sets it; see README.md to use any broker).
//! Without it these tests say so and pass, as they have nothing to test.

use std::collections::HashMap;
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::util::*;

/// The broker to test against, if any.
fn brokers() -> Option<String> {
    match std::env::var("SLUICE_KAFKA_BROKERS") {
        Ok(b) if !b.is_empty() => Some(b),
        _ => {
            eprintln!(
                "SLUICE_KAFKA_BROKERS is not set: no broker to test against (scripts/kafka-broker.sh starts one)"
            );
            None
        }
    }
}

/// A name no earlier run used: topics and groups are fresh for each test
/// (a consumer group's first join is slow on tansu, and names must not
/// collide across runs against a long-lived broker).
fn fresh(prefix: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

const TIMEOUT: Duration = Duration::from_secs(30);

/// Kills a child still running when a test fails, so no sluice outlives it.
struct KillOnDrop(Option<std::process::Child>);

impl KillOnDrop {
    fn take(&mut self) -> std::process::Child {
        self.0.take().expect("child")
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Produces every line of `text` as one message, one message per batch so
/// that the broker's end offsets are exact (tansu reports a partition's end
/// as the base offset of its last batch plus one).
fn produce_lines(brokers: &str, topic: &str, text: &str) -> usize {
    let options = [("batch.num.messages".to_string(), "1".to_string()), ("linger.ms".to_string(), "0".to_string())];
    let p = sluice_kafka::Producer::connect(brokers, topic, &options, TIMEOUT).unwrap();
    let mut n = 0;
    for line in text.split_inclusive('\n') {
        p.send(b"", line.trim_end_matches(['\n', '\r']).as_bytes()).unwrap();
        n += 1;
    }
    p.flush(Duration::from_secs(120)).unwrap();
    n
}

fn counts(path: &std::path::Path, mode: &str) -> HashMap<String, u64> {
    let mut got = HashMap::new();
    for r in read_rows(path, mode) {
        *got.entry(r.key).or_insert(0) += r.count;
    }
    got
}

#[test]
fn a_book_through_a_three_partition_topic_counts_like_the_book_and_commits_to_the_end() {
    let Some(brokers) = brokers() else { return };
    let book = std::fs::read_to_string(fixture("moby-dick.txt")).unwrap();
    let topic = fresh("book");
    sluice_kafka::create_topic(&brokers, &topic, 3, TIMEOUT).unwrap();
    let produced = produce_lines(&brokers, &topic, &book);
    let group = fresh("count");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("counts.jsonl");
    let report = dir.path().join("report.json");
    let start = Instant::now();
    let run = sluice()
        .args(["run", "--source", &format!("kafka:{brokers}/{topic}?group={group}&from=earliest"), "--no-follow"])
        .args(["--mode", "per-event", "--window", "global", "--sink", &format!("jsonl:{}", out.display())])
        .args(["--report", &report.display().to_string()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert!(start.elapsed() < Duration::from_secs(180), "took {:?}", start.elapsed());
    assert_eq!(counts(&out, "per-event"), independent_count(book.as_bytes()), "{stderr}");
    let r = read_report(&report);
    assert_eq!(r["events"].as_u64(), Some(produced as u64), "one event per message");
    let clock = r["latency"]["clocks"]["end_to_end"].as_str().unwrap();
    assert!(clock.contains("CreateTime") || clock.contains("LogAppendTime"), "{clock}");

    // After a clean stop, the group's committed offsets are the end offsets.
    let offsets = sluice_kafka::group_offsets(&brokers, &group, &topic, TIMEOUT).unwrap();
    assert_eq!(offsets.len(), 3);
    for p in &offsets {
        assert_eq!(p.committed, Some(p.end), "partition {}: {offsets:?}", p.partition);
    }
    assert_eq!(offsets.iter().map(|p| p.end).sum::<i64>(), produced as i64);
}

#[test]
fn two_processes_in_one_group_split_the_partitions_and_together_count_the_book() {
    let Some(brokers) = brokers() else { return };
    let book = std::fs::read_to_string(fixture("moby-dick.txt")).unwrap();
    let topic = fresh("split");
    sluice_kafka::create_topic(&brokers, &topic, 3, TIMEOUT).unwrap();
    let group = fresh("pair");
    let dir = tempfile::tempdir().unwrap();
    let start = |name: &str| {
        let out = dir.path().join(format!("{name}.jsonl"));
        let child = sluice()
            .args(["run", "--source", &format!("kafka:{brokers}/{topic}?group={group}&from=earliest")])
            // Windows that close on their own, so that offsets are
            // acknowledged and committed while the processes run.
            .args(["--mode", "per-event", "--window", "tumbling:500ms", "--time", "processing"])
            .args(["--sink", &format!("jsonl:{}", out.display())])
            .env("RUST_LOG", "info")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        (KillOnDrop(Some(child)), out)
    };
    let (mut a, out_a) = start("a");
    let (mut b, out_b) = start("b");
    // Both join the group (slow on tansu), then the book arrives.
    std::thread::sleep(Duration::from_secs(40));
    produce_lines(&brokers, &topic, &book);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let offsets = sluice_kafka::group_offsets(&brokers, &group, &topic, TIMEOUT).unwrap();
        if offsets.iter().all(|p| p.committed == Some(p.end)) {
            break;
        }
        assert!(Instant::now() < deadline, "not everything committed within 2 min: {offsets:?}");
        std::thread::sleep(Duration::from_millis(500));
    }
    let (err_a, err_b) = (stop(a.take()), stop(b.take()));
    let (got_a, got_b) = (counts(&out_a, "per-event"), counts(&out_b, "per-event"));
    assert!(!got_a.is_empty() && !got_b.is_empty(), "both read a share\n{err_a}\n{err_b}");
    let mut sum = got_a;
    for (k, v) in got_b {
        *sum.entry(k).or_insert(0) += v;
    }
    assert_eq!(sum, independent_count(book.as_bytes()), "\n{err_a}\n{err_b}");
}

#[test]
fn malformed_kafka_specs_are_usage_errors() {
    for (args, says) in [
        (vec!["--source", "kafka:localhost:9092"], "no topic"),
        (vec!["--source", "kafka:localhost/t"], "HOST:PORT"),
        (vec!["--source", "kafka:localhost:9092/t?from=middle"], "unknown parameter"),
        (vec!["--source", "kafka:localhost:9092/t?from=committed"], "needs a group"),
        (vec!["--sink", "kafka:localhost:9092"], "kafka:BROKERS/TOPIC"),
        (vec!["--source", "gen", "--kafka-option", "novalue"], "KEY=VALUE"),
        (vec!["--source", "gen", "--kafka-timeout", "1ms"], "at least 100ms"),
    ] {
        let out = sluice().arg("run").args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says) && err.lines().count() == 1, "{args:?}: {err}");
    }
}

#[test]
fn an_unreachable_broker_is_one_error_after_the_timeout() {
    // Nothing listens on port 1.
    let start = Instant::now();
    let out = sluice()
        .args(["run", "--source", "kafka:127.0.0.1:1/logs", "--kafka-timeout", "2s", "--sink", "null"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("cannot reach the Kafka brokers 127.0.0.1:1") && err.contains("--kafka-timeout"), "{err}");
    assert_eq!(err.lines().filter(|l| l.starts_with("error")).count(), 1, "{err}");
    assert!(start.elapsed() < Duration::from_secs(60), "gave up after {:?}", start.elapsed());
}

#[test]
fn a_missing_topic_is_one_error_for_sources_and_sinks() {
    let Some(brokers) = brokers() else { return };
    let topic = fresh("absent");
    for args in [
        vec!["--source".to_string(), format!("kafka:{brokers}/{topic}"), "--sink".into(), "null".into()],
        vec![
            "--source".to_string(),
            "gen".into(),
            "--count".into(),
            "10".into(),
            "--sink".into(),
            format!("kafka:{brokers}/{topic}"),
        ],
    ] {
        let out = sluice().arg("run").args(&args).args(["--kafka-timeout", "10s"]).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(&format!("topic \"{topic}\" does not exist")), "{args:?}: {err}");
    }
}

#[test]
fn event_time_windows_over_three_partitions_follow_every_partition_and_nothing_is_late() {
    let Some(brokers) = brokers() else { return };
    let topic = fresh("times");
    sluice_kafka::create_topic(&brokers, &topic, 3, TIMEOUT).unwrap();
    // 3000 lines 10 ms apart, in order; each partition gets an ordered
    // share, but a consumer reads the partitions in bursts, one ahead of
    // another. One watermark per partition keeps every line on time.
    let t0: i64 = 1_700_000_000_000; // ms
    let mut text = String::new();
    let mut want: HashMap<i64, u64> = HashMap::new(); // window start (ms) -> words
    for i in 0..3000i64 {
        let t = t0 + i * 10;
        text.push_str(&format!("{} w{} common\n", t * 1_000_000, i % 7));
        *want.entry(t - t.rem_euclid(5_000)).or_insert(0) += 2;
    }
    produce_lines(&brokers, &topic, &text);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("windows.jsonl");
    let report = dir.path().join("report.json");
    let run = sluice()
        .args(["run", "--source", &format!("kafka:{brokers}/{topic}?from=earliest"), "--no-follow"])
        .args(["--event-time", "first-field", "--window", "tumbling:5s", "--mode", "per-event"])
        .args(["--sink", &format!("jsonl:{}", out.display()), "--report", &report.display().to_string()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    let r = read_report(&report);
    assert_eq!(r["late_events"].as_u64(), Some(0), "{stderr}");
    let mut got: HashMap<i64, u64> = HashMap::new();
    for row in read_rows(&out, "per-event") {
        let start = chrono::DateTime::parse_from_rfc3339(row.window_start.as_deref().unwrap()).unwrap();
        *got.entry(start.timestamp_millis()).or_insert(0) += row.count;
    }
    assert_eq!(got, want);
}

#[test]
fn compare_replays_a_recorded_topic_for_every_mode() {
    let Some(brokers) = brokers() else { return };
    let book = std::fs::read_to_string(fixture("moby-dick.txt")).unwrap();
    // The first 2000 lines, one message each.
    let text: String = book.split_inclusive('\n').take(2000).collect();
    let topic = fresh("replay");
    sluice_kafka::create_topic(&brokers, &topic, 1, TIMEOUT).unwrap();
    let n = produce_lines(&brokers, &topic, &text);
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("r.json");
    let source = format!("kafka:{brokers}/{topic}?group={}&from=earliest", fresh("replay-group"));
    let out = run_ok(&[
        "compare",
        "--source",
        &source,
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
    let words: u64 = independent_count(text.as_bytes()).values().sum();
    let reports = read_report(&report);
    assert_eq!(reports.as_array().unwrap().len(), 2);
    for r in reports.as_array().unwrap() {
        assert_eq!(r["events"], n as u64, "every message replayed once: {r}");
        assert_eq!(r["items"], words, "{r}");
    }
}

/// Final window results as a multiset of (window start, key, count), from
/// JSON lines, leaving out the window that starts at `open`.
fn final_results(text: &str, open: &str) -> std::collections::BTreeMap<(String, String, u64), u32> {
    let mut m = std::collections::BTreeMap::new();
    for l in text.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}"));
        let start = v["window_start"].as_str().expect("tumbling windows have a start").to_string();
        if start != open {
            let key = (start, v["key"].as_str().unwrap().to_string(), v["count"].as_u64().unwrap());
            *m.entry(key).or_insert(0) += 1;
        }
    }
    m
}

#[test]
fn kill_nine_five_times_while_reading_a_topic_exactly_once_into_a_file_at_least_once_into_kafka() {
    let Some(brokers) = brokers() else { return };
    let (topic, out_topic) = (fresh("ckpt-in"), fresh("ckpt-out"));
    sluice_kafka::create_topic(&brokers, &topic, 3, TIMEOUT).unwrap();
    sluice_kafka::create_topic(&brokers, &out_topic, 1, TIMEOUT).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (ckpt, out) = (dir.path().join("ckpt"), dir.path().join("counts.jsonl"));
    let options = [("batch.num.messages".to_string(), "1".to_string()), ("linger.ms".to_string(), "0".to_string())];
    let producer = std::sync::Arc::new(sluice_kafka::Producer::connect(&brokers, &topic, &options, TIMEOUT).unwrap());
    let words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta"];
    let (mut all, mut n, mut t_ms, mut rng) = (String::new(), 0usize, 1_700_000_000_000u64, 0x9e37_79b9u64);
    let mut next = |below: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % below
    };
    let window = ["--window", "tumbling:1s", "--time", "event", "--event-time", "first-field"];
    // No group: every partition is assigned at once (a group's join takes
    // about 25 s on tansu); the checkpoint alone says where to resume.
    let source = format!("kafka:{brokers}/{topic}?from=earliest");
    let start = |mode: &str| {
        let child = sluice()
            .args(["run", "--source", &source, "--mode", mode, "--batch-interval", "50ms"])
            .args(window)
            .args(["--checkpoint-dir", &ckpt.display().to_string(), "--checkpoint-interval", "500ms"])
            .args(["--sink", &format!("jsonl:{}", out.display()), "--sink", &format!("kafka:{brokers}/{out_topic}")])
            // One record per batch, so that tansu's end offsets are exact
            // when the topic is read back.
            .args(["--kafka-option", "batch.num.messages=1"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        KillOnDrop(Some(child))
    };
    let checkpointed = || -> i64 {
        let Ok(text) = std::fs::read_to_string(ckpt.join("checkpoint.json")) else { return 0 };
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let name = format!("kafka:{brokers}/{topic}");
        v["kafka"][&name].as_object().map_or(0, |m| m.values().map(|o| o.as_i64().unwrap()).sum())
    };
    let mut uncommitted = 0;
    for round in 0..5 {
        let mut child = start(if round % 2 == 0 { "per-event" } else { "micro-batch" });
        // Messages arrive while sluice is killed: a thread produces them
        // over about a second, and the kill comes in the middle.
        let mut batch = Vec::new();
        for _ in 0..600 + next(600) {
            t_ms += 1 + next(9);
            let mut line = format!("{}.{:03}", t_ms / 1000, t_ms % 1000);
            for _ in 0..1 + next(4) {
                line.push(' ');
                line.push_str(words[next(words.len() as u64) as usize]);
            }
            all.push_str(&line);
            all.push('\n');
            batch.push((format!("k{n}"), line));
            n += 1;
        }
        let producing = {
            let producer = producer.clone();
            std::thread::spawn(move || {
                for chunk in batch.chunks(40) {
                    for (key, line) in chunk {
                        producer.send(key.as_bytes(), line.as_bytes()).unwrap();
                    }
                    producer.flush(TIMEOUT).unwrap();
                    std::thread::sleep(Duration::from_millis(30));
                }
            })
        };
        std::thread::sleep(Duration::from_millis(800 + next(600)));
        let c = child.0.as_mut().unwrap();
        if let Some(status) = c.try_wait().unwrap() {
            let err = std::io::read_to_string(c.stderr.take().unwrap()).unwrap();
            panic!("round {round}: sluice exited by itself with {status:?}:\n{err}");
        }
        let mut c = child.take();
        c.kill().unwrap();
        c.wait().unwrap();
        producing.join().unwrap();
        let text = std::fs::read_to_string(ckpt.join("checkpoint.json")).unwrap_or_default();
        let committed = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["sinks"][format!("jsonl:{}", out.display())].as_u64());
        uncommitted += u32::from(std::fs::metadata(&out).map_or(0, |m| m.len()) > committed.unwrap_or(0));
    }
    // A line far later in every partition closes every window before it.
    for k in 0..30 {
        producer.send(format!("s{k}").as_bytes(), b"1800000000.000 sentinel").unwrap();
        all.push_str("1800000000.000 sentinel\n");
        n += 1;
    }
    producer.flush(TIMEOUT).unwrap();
    let mut child = start("per-event");
    let began = Instant::now();
    while checkpointed() < n as i64 {
        let c = child.0.as_mut().unwrap();
        assert!(c.try_wait().unwrap().is_none(), "sluice exited");
        assert!(began.elapsed() < Duration::from_secs(120), "not caught up: {} of {n}", checkpointed());
        std::thread::sleep(Duration::from_millis(50));
    }
    let stderr = stop(child.take());
    assert!(uncommitted >= 1, "no kill came with results past the last checkpoint");

    let input = dir.path().join("all.log");
    std::fs::write(&input, &all).unwrap();
    let mut args = window.to_vec();
    args.extend(["--mode", "per-event", "--parallelism", "1"]);
    let (_, _) = run_file(&input, "reference", &args);
    let open = "2027-01-15T08:00:00.000Z";
    let want = final_results(&std::fs::read_to_string(dir.path().join("reference.jsonl")).unwrap(), open);
    assert!(want.len() > 50, "enough windows: {}", want.len());
    let got = final_results(&std::fs::read_to_string(&out).unwrap(), open);
    assert_eq!(got, want, "the file: each window result exactly once\n{stderr}");

    // The Kafka sink: every result at least once, and nothing else.
    let recorded = sluice::source::record(
        &format!("kafka:{brokers}/{out_topic}?from=earliest").parse().unwrap(),
        &sluice::source::SourceOptions::default(),
    )
    .unwrap();
    let from_kafka = final_results(std::str::from_utf8(&recorded).unwrap(), open);
    let keys = |m: &std::collections::BTreeMap<(String, String, u64), u32>| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&from_kafka), keys(&want), "the topic: every result, none wrong");
}
