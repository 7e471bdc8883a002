//! The `sluice` command: parses flags and calls the library.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use sluice::config::{ConfigError, RawSettings, Settings, Val};
use sluice::executor::Mode;
use sluice::wordcount::run_word_count;

/// sluice: windowed word counts over live data, in micro-batch or per-event
/// mode, with latency you can trust.
#[derive(Parser)]
#[command(name = "sluice", version, about, arg_required_else_help = true)]
struct Cli {
    /// What to do.
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a pipeline. With no options: replay a bundled book as a live
    /// stream and show windowed counts and the latency report.
    Run(Box<RunArgs>),
    /// Run one pipeline over identical input under several modes, and show
    /// latency and cost side by side.
    Compare(Box<CompareArgs>),
    /// Find the highest rate each mode keeps up with, plot latency against
    /// rate, and recommend a mode for a p99 target.
    Sweep(Box<SweepArgs>),
    /// Check a pipeline file and explain each error with its line.
    Validate {
        /// The pipeline file (TOML).
        file: PathBuf,
    },
}

/// Every option has a key of the same name in the pipeline file.
#[derive(Args, Default)]
struct RunArgs {
    /// A pipeline file (TOML); options given here override it.
    file: Option<PathBuf>,
    /// file:PATH | stdin | tcp:HOST:PORT | kafka:BROKERS/TOPIC[?group=G&from=earliest|latest|committed] | gen[:RATE] | demo[:RATE]  [default: demo:4000]
    #[arg(long)]
    source: Option<String>,
    /// Read a file to its end and stop, rather than follow it like tail -F.
    #[arg(long)]
    no_follow: bool,
    /// Where to start following a file that exists at start: beginning | end  [default: end]
    #[arg(long)]
    from: Option<String>,
    /// How often a followed file is looked at without a notification  [default: 250ms]
    #[arg(long)]
    poll_interval: Option<String>,
    /// How long a followed file's last line may wait for its newline  [default: 5s]
    #[arg(long)]
    idle_flush: Option<String>,
    /// Take checkpoints here (window state, file positions, sink lengths) and resume from the last one; makes jsonl: sinks exactly-once
    #[arg(long)]
    checkpoint_dir: Option<String>,
    /// Least time between two checkpoints, like 500ms  [default: 1s]
    #[arg(long)]
    checkpoint_interval: Option<String>,
    /// micro-batch | per-event  [default: micro-batch]
    #[arg(long)]
    mode: Option<String>,
    /// Micro-batch interval, 1ms and up, like 200ms  [default: 1s]
    #[arg(long)]
    batch_interval: Option<String>,
    /// Per-event mode: poll the input queue this long before sleeping, which trades CPU for wake-up latency; 0 sleeps at once  [default: 20us]
    #[arg(long)]
    spin_wait: Option<String>,
    /// Shards of the keyed window, each on a thread, keys split by hash; 1 runs on one thread  [default: the number of cores]
    #[arg(long)]
    parallelism: Option<u64>,
    /// Serve Prometheus metrics at http://ADDR/metrics; a bare port listens on loopback only, like 9898 or 0.0.0.0:9898
    #[arg(long, value_name = "ADDR")]
    metrics_addr: Option<String>,
    /// No progress line, even for a bounded input on a terminal.
    #[arg(long)]
    no_progress: bool,
    /// Record no latency: no clock reads or histogram records per event (to measure what measuring costs)
    #[arg(long)]
    no_latency: bool,
    /// Per-event mode: run the generator (gen:, demo) on a thread of its own instead of on the executor's, between events; the executor then waits on a queue
    #[arg(long)]
    source_thread: bool,
    /// global | tumbling:SIZE | sliding:SIZE,SLIDE | session:GAP  [default: global for files and stdin, tumbling:1s otherwise]
    #[arg(long)]
    window: Option<String>,
    /// processing | event  [default: event when events carry a time]
    #[arg(long)]
    time: Option<String>,
    /// first-field | syslog | apache | iso8601 | regex:PATTERN (with --time-format)
    #[arg(long)]
    event_time: Option<String>,
    /// chrono format of what --event-time regex:PATTERN finds, like '%Y-%m-%d %H:%M:%S'
    #[arg(long)]
    time_format: Option<String>,
    /// Bounded out-of-orderness of event time, like 2s  [default: 0s]
    #[arg(long)]
    watermark_delay: Option<String>,
    /// An input quiet this long stops holding the watermark back  [default: 10s]
    #[arg(long)]
    idle_timeout: Option<String>,
    /// final | update  [default: final]
    #[arg(long)]
    output: Option<String>,
    /// stdout | stdout:json | jsonl:PATH | kafka:BROKERS/TOPIC | null; repeat for several  [default: stdout]
    #[arg(long)]
    sink: Vec<String>,
    /// Where late items go: stdout | jsonl:PATH | null  [default: only counted]
    #[arg(long)]
    late_sink: Option<String>,
    /// Rows per window in the stdout table  [default: 10]
    #[arg(long)]
    top: Option<u64>,
    /// Write the run report as JSON to this path.
    #[arg(long)]
    report: Option<String>,
    /// Longest line in bytes; longer ones are cut and counted  [default: 1048576]
    #[arg(long)]
    max_line_bytes: Option<u64>,
    /// Words per generated line  [default: 8]
    #[arg(long)]
    gen_words: Option<u64>,
    /// Seed of the generator  [default: 42]
    #[arg(long)]
    seed: Option<u64>,
    /// Stop the generator after this many lines.
    #[arg(long)]
    count: Option<u64>,
    /// Stop the generator after this long, like 10s.
    #[arg(long)]
    duration: Option<String>,
    /// A librdkafka property for Kafka sources and sinks, like security.protocol=SSL; repeat for several
    #[arg(long, value_name = "KEY=VALUE")]
    kafka_option: Vec<String>,
    /// How long Kafka brokers may take to answer at start  [default: 30s]
    #[arg(long)]
    kafka_timeout: Option<String>,
}

/// The pipeline options of `run` that make sense when the input is
/// replayed for every mode (`compare` and `sweep`).
#[derive(Args, Default)]
struct ReplayArgs {
    /// How long each run's generator runs, like 10s  [default: 10s for compare, 3s for sweep; a file is replayed in full]
    #[arg(long)]
    duration: Option<String>,
    /// Stop each run's generator after this many lines.
    #[arg(long)]
    count: Option<u64>,
    /// global | tumbling:SIZE | sliding:SIZE,SLIDE | session:GAP  [default: tumbling:1s]
    #[arg(long)]
    window: Option<String>,
    /// final | update  [default: update]
    #[arg(long)]
    output: Option<String>,
    /// event | processing; results are checked for equality in event time  [default: event]
    #[arg(long)]
    time: Option<String>,
    /// Bounded out-of-orderness of event time  [default: 0s]
    #[arg(long)]
    watermark_delay: Option<String>,
    /// Words per generated line  [default: 8]
    #[arg(long)]
    gen_words: Option<u64>,
    /// Seed of the generator  [default: 42]
    #[arg(long)]
    seed: Option<u64>,
    /// Per-event mode: poll the input queue this long before sleeping; 0 sleeps at once  [default: 20us]
    #[arg(long)]
    spin_wait: Option<String>,
    /// Per-event mode: run the generator on a thread of its own instead of on the executor's, between events
    #[arg(long)]
    source_thread: bool,
    /// Shards of the keyed window in every run; more than 1 adds a thread hop, which on a machine with few cores costs per-event latency  [default: 1]
    #[arg(long)]
    parallelism: Option<u64>,
    /// The modes, comma-separated  [default: per-event,micro-batch:10ms,micro-batch:100ms,micro-batch:1s]
    #[arg(long)]
    modes: Option<String>,
    /// Write the run reports as a JSON array to this path.
    #[arg(long)]
    report: Option<String>,
    /// Draw the latency plot to this SVG file (a path ending in .svg).
    #[arg(long)]
    plot: Option<String>,
    /// Serve Prometheus metrics at http://ADDR/metrics while the runs go on, each run's labelled with its mode; a bare port listens on loopback only
    #[arg(long)]
    metrics_addr: Option<String>,
}

/// `sluice compare`.
#[derive(Args, Default)]
struct CompareArgs {
    /// gen:RATE | demo:RATE | file:PATH or kafka:BROKERS/TOPIC (recorded once, replayed with --rate)  [default: gen:20000]
    #[arg(long)]
    source: Option<String>,
    /// Lines per second to replay a file or topic at.
    #[arg(long)]
    rate: Option<f64>,
    /// Write an HdrHistogram interval log per mode into this directory.
    #[arg(long)]
    hdr_log: Option<String>,
    /// Take checkpoints this often in every run (in a temporary directory) and show when results become committed, as an exactly-once sink sees them, like 1s
    #[arg(long)]
    checkpoint_interval: Option<String>,
    #[command(flatten)]
    common: ReplayArgs,
}

/// `sluice sweep`.
#[derive(Args, Default)]
struct SweepArgs {
    /// gen | demo | file:PATH  [default: gen]
    #[arg(long)]
    source: Option<String>,
    /// Offered rates in lines per second, increasing  [default: 1k,2k,5k,10k,20k,50k,100k,200k,500k,1M,2M]
    #[arg(long)]
    rates: Option<String>,
    /// Recommend the mode that meets this p99 at the highest rate, like 50ms
    #[arg(long)]
    target_p99: Option<String>,
    #[command(flatten)]
    common: ReplayArgs,
}

impl ReplayArgs {
    fn raw(&self, source: String) -> RawSettings {
        let s = |v: &Option<String>| v.clone().map(Val::from);
        RawSettings {
            source: Some(Val::from(source)),
            window: Some(Val::from(self.window.clone().unwrap_or_else(|| "tumbling:1s".into()))),
            output: Some(Val::from(self.output.clone().unwrap_or_else(|| "update".into()))),
            watermark_delay: s(&self.watermark_delay),
            gen_words: self.gen_words.map(Val::from),
            seed: self.seed.map(Val::from),
            count: self.count.map(Val::from),
            duration: s(&self.duration),
            spin_wait: s(&self.spin_wait),
            source_thread: self.source_thread.then_some(Val::from(true)),
            parallelism: Some(Val::from(self.parallelism.unwrap_or(1))),
            sink: Some(Val::from(vec!["null".to_string()])),
            no_follow: Some(Val::from(true)),
            metrics_addr: s(&self.metrics_addr),
            ..Default::default()
        }
    }

    /// Checked options for replaying `source` at `rate` (or the source's own).
    fn options(
        &self,
        source: String,
        rate: Option<f64>,
        duration: std::time::Duration,
    ) -> Result<sluice::compare::CompareOptions, ExitCode> {
        use sluice::compare;
        let settings = Settings::resolve(&self.raw(source)).map_err(|e| usage_error(&e));
        let mut settings = settings?;
        // Every replayed line carries its intended send time as event time.
        settings.window.time =
            self.time.as_deref().unwrap_or("event").parse().map_err(|e| usage_error(&format!("--time: {e}")))?;
        let modes = compare::parse_modes(self.modes.as_deref().unwrap_or(compare::DEFAULT_MODES))
            .map_err(|e| usage_error(&format!("--modes: {e}")))?;
        if let Some(path) = &self.plot {
            let svg = std::path::Path::new(path).extension().is_some_and(|e| e.eq_ignore_ascii_case("svg"));
            if !svg {
                return Err(usage_error(&format!(
                    "--plot {path:?}: the plot is drawn as SVG: give a path ending in .svg"
                )));
            }
        }
        let mut opts = compare::CompareOptions::new(settings, modes, rate, duration).map_err(|e| match e {
            compare::CompareError::Usage(e) => usage_error(&e),
            compare::CompareError::Input(message) => {
                eprintln!("error: {message}");
                ExitCode::from(FAILURE)
            }
        })?;
        if let Err(message) = opts.serve_metrics() {
            eprintln!("error: {message}");
            return Err(ExitCode::from(FAILURE));
        }
        Ok(opts)
    }

    /// Writes the reports, if asked to; false when that failed.
    fn write_report<T: serde::Serialize>(&self, reports: &[T]) -> bool {
        let Some(path) = &self.report else { return true };
        let json = serde_json::to_string_pretty(reports).unwrap_or_default();
        match std::fs::write(path, json + "\n") {
            Ok(()) => true,
            Err(e) => {
                eprintln!("error: cannot write the report to {path}: {}", sluice::source::describe_io(&e));
                false
            }
        }
    }
}

impl RunArgs {
    fn raw(&self) -> RawSettings {
        let s = |v: &Option<String>| v.clone().map(Val::from);
        RawSettings {
            source: s(&self.source),
            no_follow: self.no_follow.then_some(Val::from(true)),
            from: s(&self.from),
            poll_interval: s(&self.poll_interval),
            idle_flush: s(&self.idle_flush),
            checkpoint_dir: s(&self.checkpoint_dir),
            checkpoint_interval: s(&self.checkpoint_interval),
            mode: s(&self.mode),
            batch_interval: s(&self.batch_interval),
            spin_wait: s(&self.spin_wait),
            parallelism: self.parallelism.map(Val::from),
            metrics_addr: s(&self.metrics_addr),
            no_progress: self.no_progress.then_some(Val::from(true)),
            no_latency: self.no_latency.then_some(Val::from(true)),
            source_thread: self.source_thread.then_some(Val::from(true)),
            window: s(&self.window),
            time: s(&self.time),
            event_time: s(&self.event_time),
            time_format: s(&self.time_format),
            watermark_delay: s(&self.watermark_delay),
            idle_timeout: s(&self.idle_timeout),
            output: s(&self.output),
            sink: (!self.sink.is_empty()).then(|| Val::from(self.sink.clone())),
            late_sink: s(&self.late_sink),
            top: self.top.map(Val::from),
            report: s(&self.report),
            max_line_bytes: self.max_line_bytes.map(Val::from),
            gen_words: self.gen_words.map(Val::from),
            seed: self.seed.map(Val::from),
            count: self.count.map(Val::from),
            kafka_option: (!self.kafka_option.is_empty()).then(|| Val::from(self.kafka_option.clone())),
            kafka_timeout: s(&self.kafka_timeout),
            duration: s(&self.duration),
        }
    }
}

/// Exit code for usage errors.
const USAGE: u8 = 2;
/// Exit code for runtime failures.
const FAILURE: u8 = 1;

fn settings(args: &RunArgs) -> Result<Settings, ConfigError> {
    let file = match &args.file {
        Some(path) => RawSettings::from_file(path)?,
        None => RawSettings::default(),
    };
    Settings::resolve(&file.overlay(args.raw())).map_err(|mut e| {
        if e.line.is_some() {
            e.file = args.file.clone();
        }
        e
    })
}

fn run(args: RunArgs) -> ExitCode {
    let settings = match settings(&args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(USAGE);
        }
    };
    if settings.ignored_batch_interval {
        tracing::warn!("--batch-interval is ignored in per-event mode");
    }
    let interrupt = interrupt_flag();
    if let Mode::MicroBatch { interval } = settings.mode {
        tracing::info!(interval_ms = interval.as_millis() as u64, "micro-batch mode");
    }
    let outcome = match run_word_count(&settings, interrupt) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(FAILURE);
        }
    };
    eprint!("{}", outcome.report.render());
    let mut code = ExitCode::SUCCESS;
    if let Some(path) = &settings.report {
        let json = serde_json::to_string_pretty(&outcome.report).unwrap_or_default();
        if let Err(e) = std::fs::write(path, json + "\n") {
            eprintln!("error: cannot write the report to {}: {}", path.display(), sluice::source::describe_io(&e));
            code = ExitCode::from(FAILURE);
        }
    }
    if let Some(e) = outcome.error {
        eprintln!("error: {e}");
        code = ExitCode::from(FAILURE);
    }
    code
}

fn interrupt_flag() -> Arc<AtomicBool> {
    let interrupt = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // A second signal while the first is being handled exits at once.
        let _ = signal_hook::flag::register_conditional_shutdown(signal, 130, interrupt.clone());
        let _ = signal_hook::flag::register(signal, interrupt.clone());
    }
    interrupt
}

fn usage_error(e: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(USAGE)
}

fn compare(args: CompareArgs) -> ExitCode {
    use sluice::compare;
    let source = args.source.clone().unwrap_or_else(|| "gen:20000".into());
    let mut opts = match args.common.options(source, args.rate, std::time::Duration::from_secs(10)) {
        Ok(o) => o,
        Err(code) => return code,
    };
    if let Some(text) = &args.checkpoint_interval {
        match sluice::time::parse_duration(text) {
            Ok(d) => match sluice::config::check_checkpoint_interval(d) {
                Ok(()) => opts.checkpoint = Some(d),
                Err(message) => return usage_error(&format!("--checkpoint-interval: {message}")),
            },
            Err(e) => return usage_error(&format!("--checkpoint-interval: {e}")),
        }
    }
    if let Some(dir) = &args.hdr_log {
        if let Err(e) = std::fs::create_dir_all(dir) {
            eprintln!("error: cannot create the interval-log directory {dir}: {}", sluice::source::describe_io(&e));
            return ExitCode::from(FAILURE);
        }
    }
    let total = opts.modes.len();
    let mut done = 0;
    let runs = compare::compare(&opts, interrupt_flag(), args.hdr_log.as_deref().map(std::path::Path::new), |run| {
        done += 1;
        eprintln!(
            "[{done}/{total}] {}: {} events, {:.0} events/s, ended by {}",
            run.label, run.report.events, run.report.events_per_s, run.report.ended_by
        );
    });
    print!("{}", compare::render_table(&runs));
    let mut code = ExitCode::SUCCESS;
    for run in &runs {
        if let Some(e) = &run.error {
            eprintln!("error: {}: {e}", run.label);
            code = ExitCode::from(FAILURE);
        }
    }
    let reports: Vec<_> = runs.iter().map(|r| &r.report).collect();
    if !args.common.write_report(&reports) {
        code = ExitCode::from(FAILURE);
    }
    if let Some(path) = &args.common.plot {
        if let Err(e) = compare::plot_svg(&runs, std::path::Path::new(path)) {
            eprintln!("error: {e}");
            code = ExitCode::from(FAILURE);
        }
    }
    match compare::check(&runs, opts.settings.window.time) {
        Some(diff) => {
            eprintln!("error: results differ between modes, which is a bug: {diff}");
            code = ExitCode::from(FAILURE);
        }
        None if opts.settings.window.time == sluice::TimeDomain::Event => {
            let done: Vec<_> = runs.iter().filter(|r| compare::complete(r)).collect();
            let skipped = runs.len() - done.len();
            let note = if skipped > 0 { format!("; {skipped} incomplete run(s) not compared") } else { String::new() };
            match done.first() {
                Some(first) if done.len() > 1 => {
                    println!("results: equal in every mode ({} window results{note})", first.results.len())
                }
                _ => println!("results: fewer than two complete runs, nothing to compare{note}"),
            }
        }
        None => println!("results: not compared (processing-time windows differ from run to run)"),
    }
    code
}

fn sweep(args: SweepArgs) -> ExitCode {
    use sluice::compare;
    let source = args.source.clone().unwrap_or_else(|| "gen".into());
    if source.starts_with("gen:") || source.starts_with("demo:") {
        return usage_error(&"--source: sweep chooses the rates itself: write --source gen and --rates 1k,10k,100k");
    }
    let rates = match compare::parse_rates(args.rates.as_deref().unwrap_or(compare::DEFAULT_RATES)) {
        Ok(r) => r,
        Err(e) => return usage_error(&format!("--rates: {e}")),
    };
    let target = match args.target_p99.as_deref().map(sluice::time::parse_duration).transpose() {
        Ok(t) => t,
        Err(e) => return usage_error(&format!("--target-p99: {e}")),
    };
    let opts = match args.common.options(source, rates.first().copied(), std::time::Duration::from_secs(3)) {
        Ok(o) => o,
        Err(code) => return code,
    };
    let points = compare::sweep(&opts, &rates, interrupt_flag(), |p| {
        eprintln!(
            "{} at {:.0}/s: took {:.0}/s, {}",
            p.run.label,
            p.rate,
            p.run.report.events_per_s,
            if p.keeps_up { "keeps up" } else { "falls behind" }
        );
    });
    print!("{}", compare::render_sweep(&points));
    let mut code = ExitCode::SUCCESS;
    for p in &points {
        if let Some(e) = &p.run.error {
            eprintln!("error: {} at {:.0}/s: {e}", p.run.label, p.rate);
            code = ExitCode::from(FAILURE);
        }
    }
    for (label, knee) in compare::knees(&points) {
        match (knee.kept_up, knee.fell_behind) {
            (Some((rate, p99)), Some(behind)) => println!(
                "{label}: keeps up to {rate:.0} lines/s (p99 {:.3} ms there), falls behind at {behind:.0}",
                p99 / 1e3
            ),
            (Some((rate, p99)), None) => println!(
                "{label}: keeps up with every rate tried, up to {rate:.0} lines/s (p99 {:.3} ms there): \
                 its limit is higher; try higher --rates",
                p99 / 1e3
            ),
            (None, _) => println!("{label}: kept up with none of the rates tried"),
        }
    }
    if let Some(target) = target {
        let us = target.as_secs_f64() * 1e6;
        match compare::recommend(&points, us) {
            Some((label, rate, p99)) => println!(
                "recommendation for p99 <= {}: {label}, which keeps up to {rate:.0} lines/s with p99 {:.3} ms",
                sluice::time::format_duration(target),
                p99 / 1e3
            ),
            None => println!(
                "recommendation for p99 <= {}: no mode met it at any rate tried",
                sluice::time::format_duration(target)
            ),
        }
    }
    #[derive(serde::Serialize)]
    struct Point<'a> {
        rate: f64,
        keeps_up: bool,
        #[serde(flatten)]
        report: &'a sluice::RunReport,
    }
    let reports: Vec<_> =
        points.iter().map(|p| Point { rate: p.rate, keeps_up: p.keeps_up, report: &p.run.report }).collect();
    if !args.common.write_report(&reports) {
        code = ExitCode::from(FAILURE);
    }
    if let Some(path) = &args.common.plot {
        if let Err(e) = compare::plot_sweep_svg(&points, std::path::Path::new(path)) {
            eprintln!("error: {e}");
            code = ExitCode::from(FAILURE);
        }
    }
    code
}

fn validate(file: PathBuf) -> ExitCode {
    let args = RunArgs { file: Some(file.clone()), ..Default::default() };
    match settings(&args) {
        Ok(s) => {
            println!(
                "{}: ok: source {:?}, mode {}, window {}, {} time, {} output, {} sink(s)",
                file.display(),
                s.source,
                s.mode.name(),
                s.window.spec,
                if s.window.time == sluice::TimeDomain::Event { "event" } else { "processing" },
                if s.window.output == sluice::OutputMode::Final { "final" } else { "update" },
                s.sinks.len()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(USAGE)
        }
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { USAGE } else { 0 });
        }
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    match cli.command {
        Command::Run(args) => run(*args),
        Command::Compare(args) => compare(*args),
        Command::Sweep(args) => sweep(*args),
        Command::Validate { file } => validate(file),
    }
}
