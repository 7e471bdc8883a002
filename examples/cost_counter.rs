//! The COST baseline: the smallest honest single-threaded word counter, to
//! measure what the engine costs on top of the work itself (McSherry et al.,
//! "Scalability! But at what COST?").
//!
//! It does exactly the engine's work and nothing else: it reads the file in
//! large blocks, cuts lines, splits them into words with sluice's own
//! tokenizer (so both count the very same words) and counts them in one
//! hash map. No threads, no windows, no metadata, no latency.
//!
//! ```text
//! cargo run --release --example cost_counter -- FILE
//! ```
//!
//! It prints `words distinct bytes seconds MB/s` on one line; the word
//! totals must equal sluice's `items` for the same file.

use std::io::Read;

use rustc_hash::FxHashMap;
use sluice::tokenize::text_of;
use sluice::{tokenize, Word};

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: cost_counter FILE");
        std::process::exit(2);
    };
    let start = std::time::Instant::now();
    let mut file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: cannot open {path}: {e}");
            std::process::exit(1);
        }
    };
    let mut counts: FxHashMap<Word, u64> = FxHashMap::default();
    let mut buf = vec![0u8; 1 << 20];
    // Bytes of an unfinished line carried into the next block.
    let mut carry = 0usize;
    let mut bytes = 0u64;
    let mut count_line = |line: &[u8]| {
        tokenize(&text_of(line), |w| *counts.entry(w).or_insert(0) += 1);
    };
    loop {
        if carry == buf.len() {
            // A line longer than the buffer: grow it.
            buf.resize(buf.len() * 2, 0);
        }
        let n = match file.read(&mut buf[carry..]) {
            Ok(n) => n,
            Err(e) => {
                eprintln!("error: cannot read {path}: {e}");
                std::process::exit(1);
            }
        };
        bytes += n as u64;
        let filled = carry + n;
        if n == 0 {
            if filled > 0 {
                count_line(&buf[..filled]);
            }
            break;
        }
        let mut from = 0;
        while let Some(i) = memchr::memchr(b'\n', &buf[from..filled]) {
            count_line(&buf[from..from + i]);
            from += i + 1;
        }
        buf.copy_within(from..filled, 0);
        carry = filled - from;
    }
    let secs = start.elapsed().as_secs_f64();
    let words: u64 = counts.values().sum();
    println!("{words} {} {bytes} {secs:.3} {:.1}", counts.len(), bytes as f64 / secs / 1e6);
}
