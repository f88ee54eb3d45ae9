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
use outage_drill::cli::parse_duration;
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
    /// Run the payment or the order service as a process on 127.0.0.1, until Ctrl-C.
    Serve {
        #[command(subcommand)]
        service: outage_drill::serve::Service,
    },
    /// Load a running order service while its payment service flips between healthy and
    /// failing; print req/s, latency, errors and the breaker's states.
    Load(outage_drill::load_run::LoadArgs),
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    let args = match cli.command {
        Command::Drill(args) => args,
        Command::Fleet(args) => return outage_drill::fleet::main(args),
        Command::Serve { service } => return outage_drill::serve::main(service),
        Command::Load(args) => return outage_drill::load_run::main(args),
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
    fn the_cli_is_well_formed() {
        Cli::command().debug_assert();
    }
}
