//! How fast the tailer splits a file into lines, against `cat FILE > /dev/null`
//! in the same run.
//!
//! ```text
//! cargo run --release -p sluice-file --example tail_speed -- FILE [--growing]
//! ```
//!
//! Without `--growing` the file is read as it is. With `--growing` a writer
//! thread appends the file's content to a new file in 1 MiB pieces while the
//! tailer follows it, to show the speed holds while the file still grows.

use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sluice_file::{Output, StartAt, TailConfig, Tailer};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(path) = args.get(1) else {
        eprintln!("usage: tail_speed FILE [--growing]");
        std::process::exit(2);
    };
    let growing = args.iter().any(|a| a == "--growing");
    let size = fs::metadata(path).map(|m| m.len()).unwrap_or_else(|e| {
        eprintln!("error: {path}: {e}");
        std::process::exit(1);
    });
    let mb = size as f64 / 1e6;

    let _ = fs::read(path); // warm the page cache
    let t = Instant::now();
    let status = Command::new("cat").arg(path).stdout(Stdio::null()).status().expect("cat runs");
    assert!(status.success());
    let cat = t.elapsed();

    let dir = std::env::temp_dir().join(format!("tail_speed_{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let followed = if growing { dir.join("growing.log") } else { path.into() };
    let writer = growing.then(|| {
        let (src, dst) = (path.clone(), followed.clone());
        fs::write(&dst, b"").unwrap();
        std::thread::spawn(move || {
            let started = Instant::now();
            let mut input = fs::File::open(src).unwrap();
            let mut out = OpenOptions::new().append(true).open(dst).unwrap();
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = input.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                out.write_all(&buf[..n]).unwrap();
            }
            started.elapsed()
        })
    });

    let mut config = TailConfig::new(&followed);
    config.start = StartAt::Beginning;
    config.poll_interval = Duration::from_millis(1);
    let mut tailer = Tailer::new(config);
    let (mut bytes, mut lines) = (0u64, 0u64);
    let t = Instant::now();
    // Done when every byte was read (a last line without newline is held
    // back, but it has been read).
    while tailer.position().map_or(0, |p| p.1) < size {
        let before = bytes;
        tailer.poll(&mut |o| {
            if let Output::Lines(l) = o {
                lines += l.chunk.lines.len() as u64;
                bytes = l.chunk.end_offset;
            }
            true
        });
        if bytes == before {
            // Caught up with the writer: give it the CPU, as the inotify
            // wait in `Tailer::run` would.
            std::thread::sleep(Duration::from_micros(200));
        }
        if t.elapsed() > Duration::from_secs(120) {
            eprintln!("error: the tailer read only {bytes} of {size} bytes in 120 s");
            std::process::exit(1);
        }
    }
    let tail = t.elapsed();
    let writer_took = writer.map(|w| w.join().unwrap());
    let _ = fs::remove_dir_all(&dir);
    let speed = |d: Duration| mb / d.as_secs_f64();
    println!("file: {mb:.1} MB, {lines} lines{}", if growing { ", followed while growing" } else { "" });
    println!("cat > /dev/null: {:>8.1} ms  {:>8.0} MB/s", cat.as_secs_f64() * 1e3, speed(cat));
    println!("tailer -> null:  {:>8.1} ms  {:>8.0} MB/s", tail.as_secs_f64() * 1e3, speed(tail));
    if let Some(w) = writer_took {
        println!(
            "writer alone:    {:>8.1} ms  {:>8.0} MB/s  (the tailer cannot finish before it)",
            w.as_secs_f64() * 1e3,
            speed(w)
        );
    }
    println!("tailer / cat speed: {:.2}", speed(tail) / speed(cat));
}
