//! The machine's own latency floor: how often a busy thread loses its core.
//!
//! ```text
//! cargo run --release --example sched_gaps -- [THREADS] [SECONDS]   # defaults 2 and 5
//! ```
//!
//! THREADS threads each read the monotonic clock in a tight loop for
//! SECONDS, the way a per-event run's generator and executor poll, and
//! count the gaps between two reads: time the thread did not run. Nothing
//! else of sluice runs. A per-event latency percentile cannot be better
//! than what this shows for the same number of busy threads: a line that
//! arrives while its thread is off the core waits for it to come back.

use std::time::{Duration, Instant};

/// Gap thresholds, µs.
const LIMITS: [u64; 5] = [10, 50, 100, 500, 1000];

fn spin(secs: u64) -> ([u64; 5], Duration, Duration) {
    let start = Instant::now();
    let until = start + Duration::from_secs(secs);
    let mut counts = [0u64; 5];
    let mut lost = Duration::ZERO;
    let mut worst = Duration::ZERO;
    let mut last = start;
    loop {
        let now = Instant::now();
        let gap = now - last;
        last = now;
        if gap > Duration::from_micros(LIMITS[0]) {
            lost += gap;
            worst = worst.max(gap);
            for (c, &l) in counts.iter_mut().zip(&LIMITS) {
                if gap > Duration::from_micros(l) {
                    *c += 1;
                }
            }
        }
        if now >= until {
            return (counts, lost, worst);
        }
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let parse = |a: Option<String>, default: u64, what: &str| match a {
        None => default,
        Some(s) => s.parse().unwrap_or_else(|_| {
            eprintln!("error: {what} must be a whole number, not {s:?}; usage: sched_gaps [THREADS] [SECONDS]");
            std::process::exit(2);
        }),
    };
    let threads = parse(args.next(), 2, "THREADS").max(1);
    let secs = parse(args.next(), 5, "SECONDS").max(1);
    let handles: Vec<_> = (0..threads).map(|_| std::thread::spawn(move || spin(secs))).collect();
    println!("{threads} busy thread(s) for {secs} s; gaps in a clock-polling loop, per second:");
    for (i, h) in handles.into_iter().enumerate() {
        let Ok((counts, lost, worst)) = h.join() else {
            eprintln!("error: a spinning thread failed");
            std::process::exit(1);
        };
        let per_s: Vec<String> =
            counts.iter().zip(&LIMITS).map(|(c, l)| format!(">{l} µs {:.1}", *c as f64 / secs as f64)).collect();
        println!(
            "  thread {i}: {}; off the core {:.2}% of the time; longest gap {:.0} µs",
            per_s.join(", "),
            lost.as_secs_f64() / secs as f64 * 100.0,
            worst.as_secs_f64() * 1e6
        );
    }
}
