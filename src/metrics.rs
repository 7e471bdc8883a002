//! Live numbers while a run goes on: a Prometheus endpoint
//! (`--metrics-addr`) and a progress line for bounded input on a terminal.
//!
//! The executor publishes a [`Snapshot`] at most every [`PUBLISH_EVERY`]
//! (copying the latency histograms then, never per event); the endpoint's
//! thread formats the latest snapshot of each run (one run for `run`, one
//! per mode for `compare` and `sweep`) when it is scraped, after letting go
//! of the lock the executor publishes under. Nothing on the hot path waits
//! for a scrape.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::latency::{LatencyHistogram, LatencyRecorder};
use crate::time::EpochNanos;

/// How often the executor publishes a snapshot and redraws the progress line.
pub const PUBLISH_EVERY: Duration = Duration::from_millis(250);

/// The state of a run at one moment.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// The run's mode as its samples are labelled: `per-event` or
    /// `micro-batch` for `run`; for `compare` and `sweep`, the mode as
    /// their tables name it (like `micro-batch:100ms`; a bare
    /// `micro-batch` is `micro-batch:1s`).
    pub mode: String,
    /// Shards of the keyed window.
    pub parallelism: usize,
    /// Input events (lines) taken in.
    pub events: u64,
    /// Input bytes taken in.
    pub bytes: u64,
    /// Items (words) that reached the window.
    pub items: u64,
    /// Results handed to the sinks.
    pub results: u64,
    /// Events with a late item.
    pub late_events: u64,
    /// Late items.
    pub late_items: u64,
    /// Lines cut at the maximum length.
    pub truncated: u64,
    /// The event-time watermark, if there is one.
    pub watermark: Option<EpochNanos>,
    /// Wall-clock time of the snapshot.
    pub at: EpochNanos,
    /// Chunks waiting in the input queue.
    pub queued: usize,
    /// What the input queue holds at most.
    pub queue_capacity: usize,
    /// With shards: per shard, the messages (buffers of words, barriers)
    /// waiting in its queue from the router, and what that queue holds at
    /// most.
    pub shard_queues: Vec<(usize, usize)>,
    /// Micro-batch mode: bytes collected for the next batch.
    pub batch_bytes: usize,
    /// `compare` and `sweep`: the rate the input is offered at, lines/s.
    pub offered_rate: Option<f64>,
    /// The latency histograms so far.
    pub latency: LatencyRecorder,
}

/// Upper bounds of the latency histogram buckets, in seconds: 1-2.5-5
/// steps from 1 µs to 10 s.
const BUCKETS: [f64; 22] = [
    1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0,
];

/// A counter family: name (after `sluice_`), help, and its value in a snapshot.
type Counter = (&'static str, &'static str, fn(&Snapshot) -> u64);

/// A gauge family: name, help, and its value in a snapshot if it has one.
type Gauge = (&'static str, &'static str, fn(&Snapshot) -> Option<String>);

const COUNTERS: [Counter; 7] = [
    ("events_in_total", "Input events (lines) taken in.", |s| s.events),
    ("input_bytes_total", "Input bytes taken in.", |s| s.bytes),
    ("items_total", "Items (words) that reached the window operator.", |s| s.items),
    ("events_out_total", "Window results handed to the sinks.", |s| s.results),
    ("late_events_total", "Input events with at least one late item.", |s| s.late_events),
    ("late_items_total", "Items that came after their window closed.", |s| s.late_items),
    ("truncated_lines_total", "Lines cut at the maximum line length.", |s| s.truncated),
];

const GAUGES: [Gauge; 6] = [
    ("parallelism", "Shards of the keyed window.", |s| Some(s.parallelism.to_string())),
    ("input_queue_chunks", "Chunks waiting in the queue from the sources.", |s| Some(s.queued.to_string())),
    ("input_queue_capacity_chunks", "Chunks the input queue holds at most.", |s| Some(s.queue_capacity.to_string())),
    ("batch_pending_bytes", "Micro-batch mode: bytes collected for the next batch.", |s| {
        Some(s.batch_bytes.to_string())
    }),
    ("watermark_lag_seconds", "Wall clock minus the event-time watermark.", |s| {
        s.watermark.map(|wm| format!("{:.6}", s.at.saturating_sub(wm) as f64 / 1e9))
    }),
    ("offered_rate_lines_per_second", "compare and sweep: the rate the input is offered at.", |s| {
        s.offered_rate.map(|r| format!("{r}"))
    }),
];

/// Snapshots of several runs (one per mode) in the Prometheus text format
/// (version 0.0.4): each family once, with a sample per run, labelled by
/// its mode.
pub fn prometheus<S: std::borrow::Borrow<Snapshot>>(snaps: &[S]) -> String {
    let snaps: &[&Snapshot] = &snaps.iter().map(|s| s.borrow()).collect::<Vec<_>>();
    use std::fmt::Write as _;
    let mut out = String::with_capacity(16 * 1024 * snaps.len().max(1));
    let head = |out: &mut String, name: &str, kind: &str, help: &str| {
        let _ = write!(out, "# HELP sluice_{name} {help}\n# TYPE sluice_{name} {kind}\n");
    };
    for (name, help, value) in COUNTERS {
        head(&mut out, name, "counter", help);
        for s in snaps {
            let _ = writeln!(out, "sluice_{name}{{mode=\"{}\"}} {}", s.mode, value(s));
        }
    }
    for (name, help, value) in GAUGES {
        let values: Vec<(&str, String)> = snaps.iter().filter_map(|s| Some((s.mode.as_str(), value(s)?))).collect();
        if values.is_empty() {
            continue;
        }
        head(&mut out, name, "gauge", help);
        for (mode, v) in values {
            let _ = writeln!(out, "sluice_{name}{{mode=\"{mode}\"}} {v}");
        }
    }
    if snaps.iter().any(|s| !s.shard_queues.is_empty()) {
        for (name, help, pick) in [
            (
                "shard_queue_messages",
                "Messages (buffers of words, barriers) waiting in each shard's queue from the router.",
                (|q: &(usize, usize)| q.0) as fn(&(usize, usize)) -> usize,
            ),
            ("shard_queue_capacity_messages", "Messages each shard's queue holds at most.", |q| q.1),
        ] {
            head(&mut out, name, "gauge", help);
            for s in snaps {
                for (k, q) in s.shard_queues.iter().enumerate() {
                    let _ = writeln!(out, "sluice_{name}{{mode=\"{}\",shard=\"{k}\"}} {}", s.mode, pick(q));
                }
            }
        }
    }
    head(
        &mut out,
        "latency_seconds",
        "histogram",
        "Latency of each kind and stage; clock says which clock measured it.",
    );
    for snap in snaps {
        let l = &snap.latency;
        let s = &*l.stages;
        for (kind, clock, h) in [
            ("processing", "monotonic", &l.processing),
            ("end_to_end", "wall", &l.end_to_end),
            ("result", "wall", &l.result),
            ("committed", "wall", &l.committed),
            ("source_wait", "wall", &s.source_wait),
            ("batch_wait", "monotonic", &s.batch_wait),
            ("queueing", "monotonic", &s.queueing),
            ("compute", "monotonic", &s.compute),
            ("window_hold", "monotonic", &s.window_hold),
            ("sink_write", "monotonic", &s.sink_write),
        ] {
            histogram(&mut out, &snap.mode, kind, clock, h);
        }
    }
    out
}

/// One latency histogram as Prometheus buckets, cumulative.
fn histogram(out: &mut String, mode: &str, kind: &str, clock: &str, h: &LatencyHistogram) {
    let labels = format!("mode=\"{mode}\",kind=\"{kind}\",clock=\"{clock}\"");
    let total = h.count();
    for le in BUCKETS {
        let n = if total == 0 { 0 } else { h.count_at_most((le * 1e9) as u64) };
        out.push_str(&format!("sluice_latency_seconds_bucket{{{labels},le=\"{le}\"}} {n}\n"));
    }
    out.push_str(&format!("sluice_latency_seconds_bucket{{{labels},le=\"+Inf\"}} {total}\n"));
    out.push_str(&format!("sluice_latency_seconds_sum{{{labels}}} {:.9}\n", h.sum_ns() / 1e9));
    out.push_str(&format!("sluice_latency_seconds_count{{{labels}}} {total}\n"));
}

/// The Prometheus endpoint: a thread answering `GET /metrics` with the
/// latest snapshot of each run. It stops when dropped.
pub struct MetricsServer {
    /// The latest snapshot of each run (mode) published.
    latest: Arc<Mutex<Vec<Arc<Snapshot>>>>,
    /// Tells the thread to stop.
    stop: Arc<AtomicBool>,
    /// The thread.
    thread: Option<JoinHandle<()>>,
    /// Where it listens.
    addr: SocketAddr,
}

impl MetricsServer {
    /// Listens on `addr`.
    pub fn start(addr: SocketAddr) -> Result<MetricsServer, String> {
        let listener = TcpListener::bind(addr)
            .map_err(|e| format!("--metrics-addr {addr}: cannot listen: {e}; choose another address or port"))?;
        let addr = listener.local_addr().unwrap_or(addr);
        // Polled, so that the thread notices when to stop.
        listener.set_nonblocking(true).map_err(|e| format!("--metrics-addr {addr}: {e}"))?;
        let latest = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (snap, halt) = (latest.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("metrics".into())
            .spawn(move || {
                while !halt.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((conn, _)) => answer(conn, &snap),
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(20))
                        }
                        Err(e) => {
                            tracing::warn!("metrics endpoint: {e}");
                            std::thread::sleep(Duration::from_millis(100));
                        }
                    }
                }
            })
            .map_err(|e| format!("cannot start the metrics thread: {e}"))?;
        tracing::info!("metrics at http://{addr}/metrics");
        Ok(MetricsServer { latest, stop, thread: Some(thread), addr })
    }

    /// Where it listens (the port the system chose, for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Replaces the snapshot scrapes see of `snap`'s mode; the other
    /// modes' (earlier runs of `compare` and `sweep`) stay as they were.
    pub fn publish(&self, snap: Snapshot) {
        let snap = Arc::new(snap);
        let mut latest = self.latest.lock().unwrap_or_else(|p| p.into_inner());
        match latest.iter_mut().find(|s| s.mode == snap.mode) {
            Some(old) => *old = snap,
            None => latest.push(snap),
        }
    }
}

impl std::fmt::Debug for MetricsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsServer").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Answers one HTTP request.
fn answer(mut conn: TcpStream, latest: &Mutex<Vec<Arc<Snapshot>>>) {
    let _ = conn.set_nonblocking(false);
    let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = conn.set_write_timeout(Some(Duration::from_secs(2)));
    let mut req = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    // The request line and headers, up to 16 KiB, within 2 s in all: a
    // slow client cannot hold the only metrics thread.
    let deadline = Instant::now() + Duration::from_secs(2);
    while !req.windows(4).any(|w| w == b"\r\n\r\n") && req.len() < 16 * 1024 && Instant::now() < deadline {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => req.extend_from_slice(&buf[..n]),
        }
    }
    let line = req.split(|&b| b == b'\r').next().unwrap_or_default();
    let (status, body) = if line.starts_with(b"GET /metrics ") || line == b"GET /metrics" {
        // Formatted without the lock: a publish never waits for it.
        let snaps: Vec<Arc<Snapshot>> = latest.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let text = prometheus(&snaps);
        ("200 OK", text)
    } else if line.starts_with(b"GET ") {
        ("404 Not Found", "not found: the metrics are at /metrics\n".to_string())
    } else {
        ("405 Method Not Allowed", "only GET /metrics is served\n".to_string())
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = conn.write_all(head.as_bytes()).and_then(|_| conn.write_all(body.as_bytes()));
}

/// Parses `--metrics-addr`: `HOST:PORT`, or a bare port, which listens on
/// loopback only. A host name (`localhost:9898`) is resolved, IPv4 first.
pub fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    if let Ok(port) = s.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let named = s.rsplit_once(':').is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if !named {
        return Err(format!(
            "invalid metrics address {s:?}: write HOST:PORT, like 127.0.0.1:9898, or a port for loopback"
        ));
    }
    let addrs: Vec<SocketAddr> = std::net::ToSocketAddrs::to_socket_addrs(s).map(Iterator::collect).unwrap_or_default();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| format!("cannot resolve the metrics address {s:?}: give an IP address, like 127.0.0.1:9898"))
}

/// How much a bounded input holds, for the progress line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Extent {
    /// Bytes (a file read to its end).
    Bytes(u64),
    /// Lines (a generator with `--count`, or a paced one with `--duration`).
    Lines(u64),
    /// A length of time (an unpaced generator with `--duration`).
    Time(Duration),
}

impl Extent {
    /// The extent of several inputs read together: bytes add up; any other
    /// kind is known only for a lone input.
    pub fn of_all(extents: impl IntoIterator<Item = Option<Extent>>) -> Option<Extent> {
        let all: Vec<Option<Extent>> = extents.into_iter().collect();
        match all.as_slice() {
            [] => return None,
            [only] => return *only,
            _ => {}
        }
        all.into_iter().try_fold(Extent::Bytes(0), |sum, e| match (sum, e?) {
            (Extent::Bytes(a), Extent::Bytes(b)) => Some(Extent::Bytes(a + b)),
            _ => None,
        })
    }
}

/// The progress line for a bounded input on a terminal, on stderr.
pub struct Progress {
    /// What the input holds in all.
    total: Extent,
    /// When the run started.
    started: Instant,
    /// The width of the line drawn last (0: none, nothing to clear).
    drawn: usize,
}

impl Progress {
    /// A progress line when stderr is a terminal and the input's extent is
    /// known.
    pub fn on_terminal(total: Option<Extent>) -> Option<Progress> {
        use std::io::IsTerminal;
        let total = total.filter(|t| match *t {
            Extent::Bytes(n) | Extent::Lines(n) => n > 0,
            Extent::Time(d) => !d.is_zero(),
        })?;
        std::io::stderr().is_terminal().then(|| Progress { total, started: Instant::now(), drawn: 0 })
    }

    /// Redraws the line for `bytes` and `lines` taken in so far.
    pub fn draw(&mut self, bytes: u64, lines: u64) {
        let line = self.line(bytes, lines, self.started.elapsed());
        // Padded over what the line before left, should this one be shorter.
        let width = line.chars().count();
        eprint!("\r{line}{:pad$}", "", pad = self.drawn.saturating_sub(width));
        let _ = std::io::stderr().flush();
        self.drawn = self.drawn.max(width);
    }

    /// The line for `bytes` and `lines` taken in `elapsed` after the start.
    fn line(&self, bytes: u64, lines: u64, elapsed: Duration) -> String {
        let secs = elapsed.as_secs_f64();
        let per_s = |n: u64| if secs > 0.0 { n as f64 / secs } else { 0.0 };
        // How far, what is shown of it, and the time left at this pace.
        let (frac, amount, left) = match self.total {
            Extent::Bytes(total) => {
                let rate = per_s(bytes);
                (
                    bytes as f64 / total as f64,
                    format!("{:.1}/{:.1} MB  {:.1} MB/s", bytes as f64 / 1e6, total as f64 / 1e6, rate / 1e6),
                    total.saturating_sub(bytes) as f64 / rate,
                )
            }
            Extent::Lines(total) => {
                let rate = per_s(lines);
                (
                    lines as f64 / total as f64,
                    format!("{lines}/{total} lines  {rate:.0} lines/s"),
                    total.saturating_sub(lines) as f64 / rate,
                )
            }
            Extent::Time(total) => (
                secs / total.as_secs_f64(),
                format!("{secs:.1}/{:.1} s  {lines} lines  {:.0} lines/s", total.as_secs_f64(), per_s(lines)),
                (total.as_secs_f64() - secs).max(0.0),
            ),
        };
        let frac = frac.clamp(0.0, 1.0);
        const WIDTH: usize = 30;
        let full = (frac * WIDTH as f64) as usize;
        let bar: String = (0..WIDTH).map(|i| if i < full { '#' } else { '.' }).collect();
        let left = if left.is_finite() { format!("{left:.0}s left") } else { "…".to_string() };
        format!("[{bar}] {:5.1}%  {amount}  {left}", frac * 100.0)
    }

    /// Clears the line, before the report is printed.
    pub fn clear(&mut self) {
        if self.drawn > 0 {
            eprint!("\r{:w$}\r", "", w = self.drawn);
            let _ = std::io::stderr().flush();
            self.drawn = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// The progress line shows how far a bounded input is, in its own
    /// unit: bytes of a file, lines of a counted generator, seconds of a
    /// timed one; and what is left at the pace so far.
    #[test]
    fn progress_is_drawn_in_the_inputs_own_unit() {
        let at = |total| Progress { total, started: Instant::now(), drawn: 0 };
        let half = Duration::from_secs(2);
        let bytes = at(Extent::Bytes(4_000_000)).line(2_000_000, 10, half);
        assert!(bytes.starts_with("[###############...............]  50.0%"), "{bytes}");
        assert!(bytes.contains("2.0/4.0 MB  1.0 MB/s  2s left"), "{bytes}");
        let lines = at(Extent::Lines(1000)).line(99, 250, half);
        assert!(lines.contains(" 25.0%  250/1000 lines  125 lines/s  6s left"), "{lines}");
        let time = at(Extent::Time(Duration::from_secs(8))).line(0, 500, half);
        assert!(time.contains(" 25.0%  2.0/8.0 s  500 lines  250 lines/s  6s left"), "{time}");
        // Nothing taken in yet: no pace, so no estimate; past the end, full.
        assert!(at(Extent::Lines(10)).line(0, 0, Duration::ZERO).ends_with("…"));
        assert!(at(Extent::Lines(10)).line(0, 20, half).contains("100.0%"));
    }

    /// Several runs on one endpoint: each family is declared once and its
    /// samples follow its declaration together, one per run (and shard);
    /// families no run has are left out.
    #[test]
    fn several_runs_share_each_family() {
        let mut a = Snapshot { mode: "per-event".into(), events: 5, ..Default::default() };
        a.latency.processing.record(1500);
        let b = Snapshot {
            mode: "micro-batch:100ms".into(),
            events: 7,
            shard_queues: vec![(1, 16), (0, 16)],
            offered_rate: Some(2000.0),
            ..Default::default()
        };
        let text = prometheus(&[a, b]);
        let mut family = String::new();
        let mut seen: Vec<String> = Vec::new();
        let mut samples: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                family = rest.split(' ').next().unwrap().to_string();
                assert!(!seen.contains(&family), "{family} declared twice:\n{text}");
                seen.push(family.clone());
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap();
                let base = ["_bucket", "_sum", "_count"].iter().fold(name, |n, s| n.strip_suffix(s).unwrap_or(n));
                assert_eq!(base, family, "{line} outside its family:\n{text}");
                samples.entry(family.clone()).or_default().push(line.to_string());
            }
        }
        assert_eq!(
            samples["sluice_events_in_total"],
            ["sluice_events_in_total{mode=\"per-event\"} 5", "sluice_events_in_total{mode=\"micro-batch:100ms\"} 7"]
        );
        assert_eq!(
            samples["sluice_shard_queue_messages"],
            [
                "sluice_shard_queue_messages{mode=\"micro-batch:100ms\",shard=\"0\"} 1",
                "sluice_shard_queue_messages{mode=\"micro-batch:100ms\",shard=\"1\"} 0"
            ]
        );
        assert_eq!(samples["sluice_offered_rate_lines_per_second"].len(), 1, "only the run that has one");
        assert!(!seen.iter().any(|f| f.contains("watermark")), "no run has a watermark");
        // 10 kinds × (22 buckets, +Inf, sum, count) per run.
        assert_eq!(samples["sluice_latency_seconds"].len(), 2 * 10 * 25);
        let count = "sluice_latency_seconds_count{mode=\"per-event\",kind=\"processing\",clock=\"monotonic\"} 1";
        assert!(text.contains(count), "{text}");
    }

    #[test]
    fn extents_of_several_inputs_add_up_only_in_bytes() {
        assert_eq!(Extent::of_all([Some(Extent::Bytes(3)), Some(Extent::Bytes(4))]), Some(Extent::Bytes(7)));
        assert_eq!(Extent::of_all([Some(Extent::Lines(5))]), Some(Extent::Lines(5)));
        assert_eq!(Extent::of_all([Some(Extent::Lines(5)), Some(Extent::Bytes(4))]), None);
        assert_eq!(Extent::of_all([Some(Extent::Bytes(3)), None]), None);
        assert_eq!(Extent::of_all([]), None, "no input, nothing to show");
    }

    #[test]
    fn metrics_addresses_take_ports_ips_and_host_names() {
        assert_eq!(parse_addr("9898"), Ok(SocketAddr::from(([127, 0, 0, 1], 9898))));
        assert_eq!(parse_addr("0.0.0.0:9898"), Ok(SocketAddr::from(([0, 0, 0, 0], 9898))));
        let local = parse_addr("localhost:9898").expect("localhost resolves");
        assert!(local.ip().is_loopback() && local.port() == 9898, "{local}");
        for bad in ["localhost", "localhost:", ":9898", "localhost:99999", "no such host"] {
            let err = parse_addr(bad).expect_err(bad);
            assert!(err.contains("invalid metrics address") && err.contains("HOST:PORT"), "{bad}: {err}");
        }
    }
}
