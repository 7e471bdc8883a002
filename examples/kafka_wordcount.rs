//! Word count over a Kafka topic with the library API, results to another
//! topic.
//!
//! ```text
//! cargo run --release --example kafka_wordcount -- localhost:9092 logs counts
//! ```
//!
//! It joins the consumer group `kafka-wordcount`, reads `logs` from the
//! earliest offset the group has not committed, counts words in tumbling
//! 10 s windows of the message timestamps (per-event mode), and writes each
//! window's counts to `counts`, keyed by word, as JSON. Offsets are
//! committed only for messages whose counts the brokers have acknowledged.
//! Ctrl-C stops it: open windows are emitted and the offsets committed.
//! With a fourth argument `--no-follow`, it reads up to the end offsets and
//! stops.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sluice::config::KafkaOptions;
use sluice::sink::KafkaSink;
use sluice::source::{SourceOptions, SourceSpec};
use sluice::{lines, run, tokenize, Mode, RunOptions, TimeDomain, WindowConfig, WindowSpec, Word};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [brokers, input, output, rest @ ..] = args.as_slice() else {
        eprintln!("usage: kafka_wordcount BROKERS INPUT_TOPIC OUTPUT_TOPIC [--no-follow]");
        std::process::exit(2);
    };
    let kafka = KafkaOptions::default();
    let sink = match KafkaSink::connect(brokers, output, &kafka.options, kafka.timeout) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    };
    let mut window = WindowConfig::new(WindowSpec::Tumbling { size: Duration::from_secs(10) });
    window.time = TimeDomain::Event;
    window.watermark_delay = Duration::from_secs(2);
    let pipeline = lines()
        .flat_map(|line, emit| tokenize(&line.text(), emit))
        .key_by(|w: &Word| w.clone())
        .window(window)
        .count()
        .sink(sink)
        .build();

    let spec: SourceSpec = match format!("kafka:{brokers}/{input}?group=kafka-wordcount&from=earliest").parse() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let opts = SourceOptions { no_follow: rest.iter().any(|a| a == "--no-follow"), kafka, ..SourceOptions::default() };
    let source = spec.build(&opts).expect("a Kafka source needs no checkpoint directory");

    let interrupt = Arc::new(AtomicBool::new(false));
    let flag = interrupt.clone();
    let _ = signal_hook::flag::register(signal_hook::consts::SIGINT, flag);
    let mut run_opts = RunOptions::new(Mode::PerEvent);
    run_opts.interrupt = interrupt.clone();
    let outcome = run(pipeline, vec![source], &run_opts);
    eprint!("{}", outcome.report.render());
    if let Some(e) = outcome.error {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
    if interrupt.load(Ordering::Relaxed) {
        eprintln!("stopped; offsets committed");
    }
}
