//! `outage-drill drill`: the payment outage, without and then with the circuit breaker,
//! measured; prints the before/after table and writes an SVG timeline.

#![forbid(unsafe_code)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    rust_2018_idioms
)]

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser, Subcommand};
use outage_drill::drill::{self, DrillConfig, Mode, Progress};
use outage_drill::net::Transport;
use outage_drill::payment::Phase;
use outage_drill::report;

/// The cutout outage drill: a payment service fails in the middle of a stream of orders.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the drill without, then with, the breaker; print the table, write the timeline.
    Drill(DrillArgs),
    /// Several order-service instances against one payment service, without and with the
    /// fleet's trip signal over a real Redis; print the table, write a timeline per size.
    Fleet(outage_drill::fleet::FleetArgs),
}

#[derive(Debug, clap::Args)]
struct DrillArgs {
    /// How long orders are sent (each run), e.g. `30s`, `1m`, `2500ms`.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    duration: Duration,
    /// Orders per second.
    #[arg(long, default_value_t = 100)]
    rate: u32,
    /// When the payment outage begins.
    #[arg(long, default_value = "8s", value_parser = parse_duration)]
    outage_start: Duration,
    /// How long the payment outage lasts; it must end before the load does.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    outage: Duration,
    /// Seed for the payment service's latencies and faults and the breaker's jitter.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// The order service's timeout for a payment call.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    timeout: Duration,
    /// How long a hanging payment request holds its connection open.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    hang: Duration,
    /// Consecutive failures that trip the breaker.
    #[arg(long, default_value_t = 5)]
    failure_threshold: u32,
    /// Where to write the SVG timeline.
    #[arg(long, default_value = "outage-drill.svg")]
    svg: PathBuf,
    /// Where to keep the queue files (redb); by default a temporary directory, removed
    /// at the end.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// No progress line on stderr.
    #[arg(long)]
    quiet: bool,
}

/// Parses `30`, `30s`, `1.5s`, `250ms` or `2m`.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (number, unit) = match s.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a duration; try 30s, 1500ms or 2m"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" | "min" => value * 60.0,
        other => return Err(format!("unknown unit `{other}`; use ms, s or m")),
    };
    if !seconds.is_finite() || seconds < 0.0 {
        return Err(format!("`{s}` is not a duration"));
    }
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("`{s}` is too long"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let args = match cli.command {
        Command::Drill(args) => args,
        Command::Fleet(args) => return outage_drill::fleet::main(args),
    };

    let mut config = DrillConfig::new(std::env::temp_dir());
    config.duration = args.duration;
    config.rate = args.rate;
    config.outage_start = args.outage_start;
    config.outage = args.outage;
    config.seed = args.seed;
    config.timeout = args.timeout;
    config.hang = args.hang;
    config.failure_threshold = args.failure_threshold;
    config.transport = Transport::Tcp;
    if let Err(e) = config.validate() {
        Cli::command()
            .error(ErrorKind::ValueValidation, e.to_string())
            .exit();
    }
    // Removed when dropped, at the end of main.
    let _temp = match &args.data_dir {
        Some(dir) => {
            config.data_dir = dir.clone();
            None
        }
        None => match tempfile::Builder::new().prefix("outage-drill-").tempdir() {
            Ok(dir) => {
                config.data_dir = dir.path().to_path_buf();
                Some(dir)
            }
            Err(e) => {
                eprintln!("error: cannot make a temporary directory: {e}");
                return ExitCode::FAILURE;
            }
        },
    };

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let started = Instant::now();
    let mut line = ProgressLine::new(!args.quiet, config.duration);
    let result = runtime.block_on(async {
        let without = drill::run(&config, Mode::WithoutBreaker, &mut |p| line.show(p)).await?;
        line.finish();
        let with = drill::run(&config, Mode::WithBreaker, &mut |p| line.show(p)).await?;
        line.finish();
        Ok::<_, drill::DrillError>((without, with))
    });
    let (without, with) = match result {
        Ok(runs) => runs,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let wall = started.elapsed();

    println!("{}", report::table(&without, &with));
    match report::svg(&without, &with).map(|svg| std::fs::write(&args.svg, svg)) {
        Ok(Ok(())) => println!("timeline: {}", args.svg.display()),
        Ok(Err(e)) => eprintln!("warning: cannot write {}: {e}", args.svg.display()),
        Err(e) => eprintln!("warning: cannot draw the timeline: {e}"),
    }
    println!("drill wall time: {:.1} s", wall.as_secs_f64());
    ExitCode::SUCCESS
}

/// The progress line on stderr: rewritten in place on a terminal, a line every five
/// seconds otherwise.
struct ProgressLine {
    enabled: bool,
    terminal: bool,
    duration: Duration,
    last_printed: Option<u64>,
    dirty: bool,
}

impl ProgressLine {
    fn new(enabled: bool, duration: Duration) -> Self {
        Self {
            enabled,
            terminal: std::io::stderr().is_terminal(),
            duration,
            last_printed: None,
            dirty: false,
        }
    }

    fn show(&mut self, p: &Progress) {
        if !self.enabled {
            return;
        }
        let breaker = p.breaker.map_or("-", |s| s.as_str());
        let mode = match p.mode {
            Mode::WithoutBreaker => "without",
            Mode::WithBreaker => "with",
        };
        let stage = if p.draining {
            format!("draining, {} queued", p.queued)
        } else {
            format!(
                "{:>4.1}/{:.0}s",
                p.elapsed.as_secs_f64(),
                self.duration.as_secs_f64()
            )
        };
        let phase = match p.phase {
            Phase::Healthy => "healthy",
            Phase::Outage => "OUTAGE",
            Phase::Recovered => "recovered",
        };
        let text = format!(
            "[{mode:<7}] payment {phase:<9} breaker {breaker:<9} sent {:>5}: ok {:>5}, queued {:>5}, failed {:>5}  {stage}",
            p.sent, p.completed, p.pending, p.failed,
        );
        let mut err = std::io::stderr().lock();
        if self.terminal {
            let _ = write!(err, "\r{text}\x1b[K");
            let _ = err.flush();
            self.dirty = true;
        } else {
            let slot = p.elapsed.as_secs() / 5;
            if self.last_printed != Some(slot) {
                self.last_printed = Some(slot);
                let _ = writeln!(err, "{text}");
            }
        }
    }

    fn finish(&mut self) {
        if self.enabled && self.terminal && self.dirty {
            let _ = writeln!(std::io::stderr());
        }
        self.dirty = false;
        self.last_printed = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("3h").is_err());
        assert!(parse_duration("1e300s").is_err());
    }

    #[test]
    fn the_cli_is_well_formed() {
        Cli::command().debug_assert();
    }
}
