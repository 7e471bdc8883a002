//! Live numbers while a run goes on: a Prometheus endpoint
//! (`--metrics-addr`) and a progress line for bounded input on a terminal.
//!
//! The executor publishes a [`Snapshot`] at most every [`PUBLISH_EVERY`]
//! (copying the latency histograms then, never per event); the endpoint's
//! thread formats the latest snapshot when it is scraped. Nothing on the
//! hot path waits for a scrape.

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
    /// `per-event` or `micro-batch`.
    pub mode: &'static str,
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
    /// Micro-batch mode: bytes collected for the next batch.
    pub batch_bytes: usize,
    /// The latency histograms so far.
    pub latency: LatencyRecorder,
}

/// Upper bounds of the latency histogram buckets, in seconds: 1-2.5-5
/// steps from 1 µs to 10 s.
const BUCKETS: [f64; 22] = [
    1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0,
];

impl Snapshot {
    /// The snapshot in the Prometheus text format (version 0.0.4).
    pub fn prometheus(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        let mode = self.mode;
        let mut counter = |name: &str, help: &str, v: u64| {
            out.push_str(&format!(
                "# HELP sluice_{name} {help}\n# TYPE sluice_{name} counter\nsluice_{name}{{mode=\"{mode}\"}} {v}\n"
            ));
        };
        counter("events_in_total", "Input events (lines) taken in.", self.events);
        counter("input_bytes_total", "Input bytes taken in.", self.bytes);
        counter("items_total", "Items (words) that reached the window operator.", self.items);
        counter("events_out_total", "Window results handed to the sinks.", self.results);
        counter("late_events_total", "Input events with at least one late item.", self.late_events);
        counter("late_items_total", "Items that came after their window closed.", self.late_items);
        counter("truncated_lines_total", "Lines cut at the maximum line length.", self.truncated);
        let mut gauge = |name: &str, help: &str, v: String| {
            out.push_str(&format!(
                "# HELP sluice_{name} {help}\n# TYPE sluice_{name} gauge\nsluice_{name}{{mode=\"{mode}\"}} {v}\n"
            ));
        };
        gauge("parallelism", "Shards of the keyed window.", self.parallelism.to_string());
        gauge("input_queue_chunks", "Chunks waiting in the queue from the sources.", self.queued.to_string());
        gauge("input_queue_capacity_chunks", "Chunks the input queue holds at most.", self.queue_capacity.to_string());
        gauge(
            "batch_pending_bytes",
            "Micro-batch mode: bytes collected for the next batch.",
            self.batch_bytes.to_string(),
        );
        if let Some(wm) = self.watermark {
            gauge(
                "watermark_lag_seconds",
                "Wall clock minus the event-time watermark.",
                format!("{:.6}", (self.at.saturating_sub(wm)) as f64 / 1e9),
            );
        }
        out.push_str(
            "# HELP sluice_latency_seconds Latency of each kind and stage; clock says which clock measured it.\n\
             # TYPE sluice_latency_seconds histogram\n",
        );
        let l = &self.latency;
        let s = &*l.stages;
        for (kind, clock, h) in [
            ("processing", "monotonic", &l.processing),
            ("end_to_end", "wall", &l.end_to_end),
            ("result", "wall", &l.result),
            ("source_wait", "wall", &s.source_wait),
            ("batch_wait", "monotonic", &s.batch_wait),
            ("queueing", "monotonic", &s.queueing),
            ("compute", "monotonic", &s.compute),
            ("window_hold", "monotonic", &s.window_hold),
            ("sink_write", "monotonic", &s.sink_write),
        ] {
            histogram(&mut out, mode, kind, clock, h);
        }
        out
    }
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
/// latest snapshot. It stops when dropped.
pub struct MetricsServer {
    /// The latest snapshot.
    latest: Arc<Mutex<Snapshot>>,
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
        let latest = Arc::new(Mutex::new(Snapshot::default()));
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

    /// Replaces the snapshot scrapes see.
    pub fn publish(&self, snap: Snapshot) {
        *self.latest.lock().unwrap_or_else(|p| p.into_inner()) = snap;
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
fn answer(mut conn: TcpStream, latest: &Mutex<Snapshot>) {
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
        let text = latest.lock().unwrap_or_else(|p| p.into_inner()).prometheus();
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

/// The progress line for a bounded input on a terminal, on stderr.
pub struct Progress {
    /// Bytes the input holds in all.
    total: u64,
    /// When the run started.
    started: Instant,
    /// Whether a line was drawn (and must be cleared).
    drawn: bool,
}

impl Progress {
    /// A progress line when stderr is a terminal and the input's size is known.
    pub fn on_terminal(total: Option<u64>) -> Option<Progress> {
        use std::io::IsTerminal;
        let total = total.filter(|&t| t > 0)?;
        std::io::stderr().is_terminal().then(|| Progress { total, started: Instant::now(), drawn: false })
    }

    /// Redraws the line for `bytes` read so far.
    pub fn draw(&mut self, bytes: u64) {
        let frac = (bytes as f64 / self.total as f64).clamp(0.0, 1.0);
        let secs = self.started.elapsed().as_secs_f64();
        let rate = if secs > 0.0 { bytes as f64 / secs } else { 0.0 };
        let eta = if rate > 0.0 { (self.total.saturating_sub(bytes)) as f64 / rate } else { f64::NAN };
        const WIDTH: usize = 30;
        let full = (frac * WIDTH as f64) as usize;
        let bar: String = (0..WIDTH).map(|i| if i < full { '#' } else { '.' }).collect();
        let eta = if eta.is_finite() { format!("{eta:.0}s left") } else { "…".to_string() };
        eprint!(
            "\r[{bar}] {:5.1}%  {:.1}/{:.1} MB  {:.1} MB/s  {eta}   ",
            frac * 100.0,
            bytes as f64 / 1e6,
            self.total as f64 / 1e6,
            rate / 1e6
        );
        let _ = std::io::stderr().flush();
        self.drawn = true;
    }

    /// Clears the line, before the report is printed.
    pub fn clear(&mut self) {
        if self.drawn {
            eprint!("\r{:80}\r", "");
            let _ = std::io::stderr().flush();
            self.drawn = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
