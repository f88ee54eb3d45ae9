//! `outage-drill fleet`: several order-service instances, each with its own breaker, against
//! the one payment service, without and with the fleet's trip signal over a real Redis.
//!
//! Every instance is a full [`OrderService`] (its own breaker, queue file and HTTP server)
//! with its own load of orders; they share one [`PaymentService`]. With the signal, each
//! instance runs a [`cutout_fleet::Fleet`] on Redis pub/sub: its breaker's trips are
//! published, and other instances' trips hold its breaker open once the quorum is reached.
//! Each instance's payment client counts the requests that reached the payment service
//! during the outage, and those made while its breaker was half-open (probes).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use cutout::{CircuitBreaker, State};
use cutout_fleet::{Fleet, RedisTransport};
use plotters::prelude::*;
use tokio::time::Instant;
use tower::ServiceBuilder;
use tower::util::BoxCloneSyncService;

use crate::drill::{DrillConfig, DrillError};
use crate::load::{self, Answer, LoadPlan, Tally};
use crate::net::{HttpClient, Server};
use crate::orders::{OrderConfig, OrderService};
use crate::payment::{PaymentService, PaymentStats, Phase};
use crate::report::state_bands;

/// A fleet run's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetConfig {
    /// The per-instance settings: `rate` is each instance's own order rate.
    pub drill: DrillConfig,
    /// Order-service instances.
    pub instances: usize,
    /// Distinct other instances whose trips hold a breaker open.
    pub quorum: usize,
    /// Per-instance order rates, cycled over the instances (instance `i` sends
    /// `rates[i % len]` orders/s); empty: every instance sends `drill.rate`.
    pub rates: Vec<u32>,
}

impl FleetConfig {
    /// Instance `i`'s orders per second.
    pub fn rate_of(&self, i: usize) -> u32 {
        match self.rates.len() {
            0 => self.drill.rate,
            n => self.rates[i % n],
        }
    }
}

/// Calls one instance made to the payment service during the outage.
#[derive(Debug, Default)]
struct Calls {
    during_outage: AtomicU64,
    probes: AtomicU64,
    arrivals: Mutex<Vec<Duration>>,
}

/// What one instance measured.
#[derive(Debug, Clone)]
pub struct InstanceReport {
    /// Requests this instance sent that reached the payment service during its outage.
    pub calls_during_outage: u64,
    /// Of those, the ones sent while its breaker was half-open.
    pub probes: u64,
    /// Transitions of its breaker to open (its own trips and remote holds).
    pub open_periods: u64,
    /// From the outage's start to its breaker's first open; `None` if it never opened.
    pub stopped_after: Option<Duration>,
    /// Orders sent.
    pub sent: u64,
    /// Orders answered `pending` and never paid.
    pub lost: u64,
    /// Orders answered with an error.
    pub failed: u64,
    /// Orders charged more than once.
    pub paid_twice: u64,
    /// Its breaker's state changes, from the start.
    pub changes: Vec<(Duration, State)>,
    /// When its requests reached the payment service during the outage, from the start.
    pub arrivals: Vec<Duration>,
    /// Holds the fleet applied to its breaker.
    pub holds: u64,
}

/// One fleet run.
#[derive(Debug, Clone)]
pub struct FleetRun {
    /// The settings.
    pub config: FleetConfig,
    /// Whether the trip signal was on.
    pub signal: bool,
    /// What carried it: `redis`, `memory`, or `off`.
    pub carrier: &'static str,
    /// When the signal's server was killed, from the start, if it was.
    pub server_killed_at: Option<Duration>,
    /// Per instance.
    pub instances: Vec<InstanceReport>,
    /// What the payment service counted.
    pub payment: PaymentStats,
}

impl FleetRun {
    /// Requests that reached the failing payment service, all instances.
    pub fn calls_during_outage(&self) -> u64 {
        self.instances.iter().map(|i| i.calls_during_outage).sum()
    }

    /// From the outage's start until every instance's breaker had opened.
    pub fn all_stopped_after(&self) -> Option<Duration> {
        self.instances
            .iter()
            .map(|i| i.stopped_after)
            .try_fold(Duration::ZERO, |max, d| Some(max.max(d?)))
    }

    /// From the moment the quorum had tripped (the `quorum`-th instance to open) until
    /// every instance had opened.
    pub fn all_stopped_after_quorum(&self) -> Option<Duration> {
        let mut opened: Vec<Duration> = self
            .instances
            .iter()
            .map(|i| i.stopped_after)
            .collect::<Option<_>>()?;
        opened.sort();
        let quorum_at = opened[self.config.quorum.clamp(1, opened.len()) - 1];
        Some(opened[opened.len() - 1].saturating_sub(quorum_at))
    }

    /// Probes per open period, over all instances.
    pub fn probes_per_open_period(&self) -> f64 {
        let probes: u64 = self.instances.iter().map(|i| i.probes).sum();
        let periods: u64 = self.instances.iter().map(|i| i.open_periods).sum();
        probes as f64 / periods.max(1) as f64
    }

    /// Orders answered with an error, all instances.
    pub fn failed(&self) -> u64 {
        self.instances.iter().map(|i| i.failed).sum()
    }

    /// Orders lost, all instances.
    pub fn lost(&self) -> u64 {
        self.instances.iter().map(|i| i.lost).sum()
    }

    /// Orders paid twice, all instances.
    pub fn paid_twice(&self) -> u64 {
        self.instances.iter().map(|i| i.paid_twice).sum()
    }
}

/// A `redis-server` child process on a free loopback port, without persistence; killed
/// when dropped.
#[derive(Debug)]
pub struct RedisServer {
    child: Child,
    port: u16,
}

impl RedisServer {
    /// Starts `redis-server` (from `PATH`, or `/usr/bin`) and waits, at most 10 s, until it
    /// accepts connections. The error says how to install it when it is missing.
    pub async fn start() -> Result<RedisServer, String> {
        let binary = std::env::var_os("PATH")
            .and_then(|path| {
                std::env::split_paths(&path)
                    .map(|dir| dir.join("redis-server"))
                    .find(|p| p.exists())
            })
            .or_else(|| Some(PathBuf::from("/usr/bin/redis-server")).filter(|p| p.exists()))
            .ok_or_else(|| {
                "the fleet mode needs redis-server for the trip signal, and it is not installed: \
                 `apt-get install -y redis-server` (or run `outage-drill fleet --no-signal`)"
                    .to_owned()
            })?;
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free loopback port: {e}"))?
            .port();
        let port_arg = port.to_string();
        let child = Command::new(&binary)
            .args([
                "--port",
                &port_arg,
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        let server = RedisServer { child, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            if Instant::now() >= deadline {
                return Err(format!(
                    "redis-server did not listen on 127.0.0.1:{port} within 10 s"
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(server)
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Running {
    orders: OrderService,
    server: Server,
    calls: Arc<Calls>,
    fleet: Option<Fleet>,
}

/// How the instances share their trips.
#[derive(Debug, Clone, Copy)]
pub enum Signal<'a> {
    /// Not at all: the baseline.
    Off,
    /// Over Redis pub/sub at this URL.
    Redis(&'a str),
    /// Over an in-process bus (the tests, on paused time).
    Memory(&'a cutout_fleet::MemoryBus),
}

/// Runs the fleet once.
///
/// # Errors
///
/// A bad setting, a server or order service that cannot start, a fleet that does not
/// subscribe within 10 s.
pub async fn run(config: &FleetConfig, signal: Signal<'_>) -> Result<FleetRun, DrillError> {
    let drill = &config.drill;
    drill.validate().map_err(DrillError::Config)?;
    std::fs::create_dir_all(&drill.data_dir).map_err(DrillError::Io)?;
    let origin = Instant::now();
    let payment = PaymentService::new(drill.fault_plan(), origin);
    let payment_server = Server::start(payment.router(), drill.transport)
        .await
        .map_err(DrillError::Io)?;
    let channel = format!(
        "outage-drill-fleet-{}-{}",
        std::process::id(),
        config.instances
    );

    let mut running = Vec::new();
    for i in 0..config.instances {
        let queue_path = drill.data_dir.join(format!(
            "fleet-{}-{}-{i}.redb",
            config.instances,
            if matches!(signal, Signal::Off) {
                "alone"
            } else {
                "signal"
            }
        ));
        match std::fs::remove_file(&queue_path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(DrillError::Io(e)),
        }
        let builder = Fleet::builder()
            .instance_id(i as u64 + 1)
            .quorum(config.quorum);
        let fleet = match signal {
            Signal::Off => None,
            Signal::Redis(url) => {
                let transport = RedisTransport::new(url, channel.as_str()).map_err(io_error)?;
                Some(builder.start(transport).map_err(io_error)?)
            }
            Signal::Memory(bus) => Some(builder.start(bus.transport()).map_err(io_error)?),
        };
        let mut breaker = drill.breaker();
        if let Some(fleet) = &fleet {
            breaker = breaker.listener(fleet.listener());
        }
        let calls = Arc::new(Calls::default());
        let cell: Arc<OnceLock<CircuitBreaker>> = Arc::new(OnceLock::new());
        let client = counting(payment_server.client(), &payment, &calls, &cell, origin);
        let orders = OrderService::open(
            OrderConfig {
                payment_uri: payment_server.base_uri(),
                timeout: drill.timeout,
                breaker: Some(breaker),
                queue_path,
                drain_concurrency: 16,
            },
            client,
        )
        .map_err(DrillError::Open)?;
        if let Some(b) = orders.breaker() {
            let _ = cell.set(b.clone());
            if let Some(fleet) = &fleet {
                fleet.attach(b);
            }
        }
        let server = Server::start(orders.router(), drill.transport)
            .await
            .map_err(DrillError::Io)?;
        running.push(Running {
            orders,
            server,
            calls,
            fleet,
        });
    }
    // Every fleet subscribed before the load starts (bounded).
    let deadline = Instant::now() + Duration::from_secs(10);
    while running
        .iter()
        .any(|r| r.fleet.as_ref().is_some_and(|f| !f.link_up()))
    {
        if Instant::now() >= deadline {
            return Err(DrillError::Io(std::io::Error::other(
                "the fleet did not subscribe to redis within 10 s",
            )));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let plan = LoadPlan {
        rate: drill.rate,
        duration: drill.duration,
        patience: drill
            .timeout
            .saturating_mul(10)
            .max(Duration::from_secs(10)),
    };
    let uris: Vec<String> = running.iter().map(|r| r.server.base_uri()).collect();
    let loads = running.iter().zip(&uris).enumerate().map(|(i, (r, uri))| {
        load::run_with_ids(
            r.server.client(),
            uri,
            plan,
            origin,
            Arc::new(Tally::default()),
            move |n| format!("i{i}-{n:06}"),
        )
    });
    let records = futures::future::join_all(loads).await;

    // Drain every queue, or give up after the drain timeout.
    let deadline = Instant::now() + drill.drain_timeout;
    while running
        .iter()
        .any(|r| r.orders.queue().pending_len().unwrap_or(0) > 0)
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let outage_start = drill.outage_start;
    let mut instances = Vec::new();
    for (r, records) in running.into_iter().zip(records) {
        let completions: HashMap<String, String> = r
            .orders
            .queue()
            .completed()
            .map_err(DrillError::Queue)?
            .into_iter()
            .collect();
        let changes: Vec<(Duration, State)> = r
            .orders
            .state_changes()
            .into_iter()
            .map(|c| (c.at.saturating_duration_since(origin), c.to))
            .collect();
        let mut report = InstanceReport {
            calls_during_outage: r.calls.during_outage.load(Ordering::Relaxed),
            probes: r.calls.probes.load(Ordering::Relaxed),
            open_periods: changes.iter().filter(|(_, s)| *s == State::Open).count() as u64,
            stopped_after: changes
                .iter()
                .find(|(at, s)| *at >= outage_start && *s == State::Open)
                .map(|(at, _)| at.saturating_sub(outage_start)),
            sent: records.len() as u64,
            lost: 0,
            failed: 0,
            paid_twice: 0,
            changes,
            arrivals: std::mem::take(
                &mut *r.calls.arrivals.lock().unwrap_or_else(|e| e.into_inner()),
            ),
            holds: r.fleet.as_ref().map_or(0, |f| f.stats().holds),
        };
        for record in &records {
            match &record.answer {
                Answer::Pending(_) if !completions.contains_key(&record.order_id) => {
                    report.lost += 1
                }
                Answer::Failed(_) => report.failed += 1,
                _ => {}
            }
            if payment.charges_for(&record.order_id) > 1 {
                report.paid_twice += 1;
            }
        }
        instances.push(report);
        r.server.shutdown().await;
        r.orders.shutdown().await;
    }
    payment_server.shutdown().await;
    Ok(FleetRun {
        config: config.clone(),
        signal: !matches!(signal, Signal::Off),
        carrier: match signal {
            Signal::Off => "off",
            Signal::Redis(_) => "redis",
            Signal::Memory(_) => "memory",
        },
        server_killed_at: None,
        instances,
        payment: payment.stats(),
    })
}

fn io_error(e: impl std::error::Error + Send + Sync + 'static) -> DrillError {
    DrillError::Io(std::io::Error::other(e))
}

/// The instance's payment client, counting what reaches the payment service during its
/// outage (inside the breaker: only calls the breaker let through).
fn counting(
    client: HttpClient,
    payment: &PaymentService,
    calls: &Arc<Calls>,
    breaker: &Arc<OnceLock<CircuitBreaker>>,
    origin: Instant,
) -> HttpClient {
    let (payment, calls, breaker) = (payment.clone(), calls.clone(), breaker.clone());
    BoxCloneSyncService::new(
        ServiceBuilder::new()
            .map_request(move |request| {
                if payment.phase() == Phase::Outage {
                    calls.during_outage.fetch_add(1, Ordering::Relaxed);
                    if breaker.get().map(CircuitBreaker::state) == Some(State::HalfOpen) {
                        calls.probes.fetch_add(1, Ordering::Relaxed);
                    }
                    if let Ok(mut arrivals) = calls.arrivals.lock() {
                        arrivals.push(origin.elapsed());
                    }
                }
                request
            })
            .service(client),
    )
}

fn secs(d: Option<Duration>) -> String {
    d.map_or("never".to_owned(), |d| format!("{:.2} s", d.as_secs_f64()))
}

/// The table of fleet runs, one row per run.
pub fn table(runs: &[FleetRun]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| instances | trip signal | calls reaching the failing payment service, per instance | all | N x T | T + N | every instance stopped after (from outage / from quorum) | probes per open period | holds | orders failed | orders lost | paid twice |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|---|");
    for run in runs {
        let n = run.instances.len() as u64;
        let t = u64::from(run.config.drill.failure_threshold);
        let per: Vec<String> = run
            .instances
            .iter()
            .map(|i| i.calls_during_outage.to_string())
            .collect();
        let _ = writeln!(
            out,
            "| {n} | {} | {} | {} | {} | {} | {} / {} | {:.1} | {} | {} | {} | {} |",
            match (run.signal, run.server_killed_at) {
                (false, _) => "off".to_owned(),
                (true, None) => format!("{}, quorum {}", run.carrier, run.config.quorum),
                (true, Some(at)) => format!(
                    "{}, quorum {}, server killed at {:.1} s",
                    run.carrier,
                    run.config.quorum,
                    at.as_secs_f64()
                ),
            },
            per.join(" "),
            run.calls_during_outage(),
            n * t,
            t + n,
            secs(run.all_stopped_after()),
            if run.signal {
                secs(run.all_stopped_after_quorum())
            } else {
                "-".to_owned()
            },
            run.probes_per_open_period(),
            run.instances.iter().map(|i| i.holds).sum::<u64>(),
            run.failed(),
            run.lost(),
            run.paid_twice(),
        );
    }
    out
}

const RED: RGBColor = RGBColor(207, 34, 46);
const AMBER: RGBColor = RGBColor(210, 153, 34);
const GREY: RGBColor = RGBColor(110, 118, 129);

/// One timeline per instance, for the runs of one fleet size (without, then with, the
/// signal): the breaker's open (red) and half-open (amber) periods, a tick for every request
/// that reached the failing payment service, and the outage as a grey band. Returns the SVG
/// document (no font file is read).
pub fn svg(runs: &[&FleetRun]) -> Result<String, Box<dyn std::error::Error>> {
    let rows: Vec<(String, &InstanceReport, &FleetRun)> = runs
        .iter()
        .flat_map(|run| {
            run.instances.iter().enumerate().map(move |(i, report)| {
                let label = format!("{} #{}", if run.signal { "signal" } else { "alone" }, i + 1);
                (label, report, *run)
            })
        })
        .collect();
    let Some(first) = runs.first() else {
        return Err("no run to draw".into());
    };
    let plan = first.config.drill.fault_plan();
    let end = first.config.drill.duration.as_secs_f64();
    let height = 120 + 28 * rows.len() as u32;
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (1100, height)).into_drawing_area();
        root.fill(&WHITE)?;
        let labels: Vec<String> = rows.iter().map(|(l, _, _)| l.clone()).collect();
        let caption = format!(
            "{} instances: calls reaching the failing payment service, alone {} / with the trip signal {}",
            first.instances.len(),
            runs.iter()
                .find(|r| !r.signal)
                .map_or(0, |r| r.calls_during_outage()),
            runs.iter()
                .find(|r| r.signal)
                .map_or(0, |r| r.calls_during_outage()),
        );
        let mut chart = ChartBuilder::on(&root)
            .caption(caption, ("sans-serif", 17))
            .margin(12)
            .x_label_area_size(32)
            .y_label_area_size(90)
            .build_cartesian_2d(0f64..end, 0f64..rows.len() as f64)?;
        chart
            .configure_mesh()
            .x_desc("seconds since start")
            .y_labels(rows.len() + 1)
            .y_label_formatter(&|v| {
                let i = v.floor() as usize;
                if (*v - v.floor()).abs() < 1e-9 {
                    labels.get(i).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .light_line_style(WHITE)
            .draw()?;
        chart.draw_series(std::iter::once(Rectangle::new(
            [
                (plan.outage_start.as_secs_f64(), 0.0),
                (plan.outage_end().as_secs_f64(), rows.len() as f64),
            ],
            GREY.mix(0.12).filled(),
        )))?;
        for (row, (_, report, _)) in rows.iter().enumerate() {
            let y = row as f64;
            for (from, to, state) in state_bands(&report.changes, Duration::from_secs_f64(end)) {
                let color = match state {
                    State::Open | State::ForcedOpen => RED.mix(0.35),
                    State::HalfOpen => AMBER.mix(0.6),
                    _ => continue,
                };
                chart.draw_series(std::iter::once(Rectangle::new(
                    [(from, y + 0.15), (to, y + 0.85)],
                    color.filled(),
                )))?;
            }
            chart.draw_series(report.arrivals.iter().map(|at| {
                let x = at.as_secs_f64();
                PathElement::new([(x, y + 0.25), (x, y + 0.75)], BLACK.stroke_width(1))
            }))?;
        }
    }
    Ok(out)
}

/// `outage-drill fleet`: the arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct FleetArgs {
    /// Fleet sizes to run, each without and then with the trip signal.
    #[arg(long, value_delimiter = ',', default_value = "2,4,8")]
    pub instances: Vec<usize>,
    /// Distinct other instances whose trips hold a breaker open.
    #[arg(long, default_value_t = 2)]
    pub quorum: usize,
    /// How long orders are sent (each run), in seconds.
    #[arg(long, default_value_t = 10.0)]
    pub duration_secs: f64,
    /// When the payment outage begins, in seconds.
    #[arg(long, default_value_t = 3.0)]
    pub outage_start_secs: f64,
    /// How long the payment outage lasts, in seconds.
    #[arg(long, default_value_t = 4.0)]
    pub outage_secs: f64,
    /// Orders per second, per instance.
    #[arg(long, default_value_t = 20)]
    pub rate: u32,
    /// Uneven load: per-instance rates, cycled over the instances (`--rates 40,4`: the
    /// first instance 40/s, the second 4/s, the third 40/s ...); overrides `--rate`.
    #[arg(long, value_delimiter = ',')]
    pub rates: Vec<u32>,
    /// Consecutive failures that trip each instance's breaker.
    #[arg(long, default_value_t = 5)]
    pub failure_threshold: u32,
    /// Seed for the payment service's faults.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Kill the signal's redis-server this many seconds into each run with the signal (it
    /// is not restarted): the instances go on on their local breakers.
    #[arg(long)]
    pub kill_redis_at_secs: Option<f64>,
    /// Only the runs without the signal (no Redis needed).
    #[arg(long)]
    pub no_signal: bool,
    /// Where to write the timelines: `<prefix>-<instances>.svg`.
    #[arg(long, default_value = "outage-drill-fleet")]
    pub svg_prefix: String,
}

fn seconds(name: &str, value: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(value)
        .map_err(|_| format!("--{name} must be a number of seconds, not {value}"))
}

/// Runs `outage-drill fleet`: prints the table and writes one SVG per fleet size.
pub fn main(args: FleetArgs) -> std::process::ExitCode {
    use std::process::ExitCode;
    let fail = |message: String| {
        eprintln!("error: {message}");
        ExitCode::FAILURE
    };
    if args.instances.is_empty() || args.instances.iter().any(|&n| n == 0 || n > 64) {
        return fail("--instances takes fleet sizes from 1 to 64, such as 2,4,8".into());
    }
    if args.quorum == 0 {
        return fail("--quorum must be at least 1".into());
    }
    if args.rates.iter().any(|&r| r == 0 || r > 5000) {
        return fail("--rates takes orders per second from 1 to 5000, such as 40,4".into());
    }
    let temp = match tempfile::Builder::new()
        .prefix("outage-drill-fleet-")
        .tempdir()
    {
        Ok(dir) => dir,
        Err(e) => return fail(format!("cannot make a temporary directory: {e}")),
    };
    let mut drill = DrillConfig::new(temp.path());
    drill.rate = args.rate;
    drill.failure_threshold = args.failure_threshold;
    drill.seed = args.seed;
    drill.drain_timeout = Duration::from_secs(20);
    for (name, value, slot) in [
        ("duration-secs", args.duration_secs, &mut drill.duration),
        (
            "outage-start-secs",
            args.outage_start_secs,
            &mut drill.outage_start,
        ),
        ("outage-secs", args.outage_secs, &mut drill.outage),
    ] {
        match seconds(name, value) {
            Ok(d) => *slot = d,
            Err(e) => return fail(e),
        }
    }
    if let Err(e) = drill.validate() {
        return fail(e.to_string());
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(format!("cannot start the tokio runtime: {e}")),
    };
    let result = runtime.block_on(async {
        let kill_at = match args.kill_redis_at_secs {
            Some(secs) => Some(seconds("kill-redis-at-secs", secs)?),
            None => None,
        };
        let mut runs = Vec::new();
        for &n in &args.instances {
            let config = FleetConfig {
                drill: drill.clone(),
                instances: n,
                quorum: args.quorum,
                rates: args.rates.clone(),
            };
            eprintln!("fleet of {n}: without the trip signal ...");
            let alone = run(&config, Signal::Off).await.map_err(|e| e.to_string())?;
            let signal = if args.no_signal {
                None
            } else {
                eprintln!("fleet of {n}: with the trip signal over redis ...");
                // A fresh server per run, so that a run that kills it leaves the next alone.
                let server = RedisServer::start().await?;
                let url = server.url();
                let fleet_run = run(&config, Signal::Redis(&url));
                let mut done = match kill_at {
                    Some(at) => {
                        let killer = async move {
                            tokio::time::sleep(at).await;
                            drop(server);
                        };
                        tokio::join!(fleet_run, killer).0
                    }
                    None => {
                        let done = fleet_run.await;
                        drop(server);
                        done
                    }
                }
                .map_err(|e| e.to_string())?;
                done.server_killed_at = kill_at;
                Some(done)
            };
            let pair: Vec<&FleetRun> = std::iter::once(&alone).chain(signal.as_ref()).collect();
            let path = format!("{}-{n}.svg", args.svg_prefix);
            match svg(&pair).map(|doc| std::fs::write(&path, doc)) {
                Ok(Ok(())) => eprintln!("timeline: {path}"),
                Ok(Err(e)) => eprintln!("warning: cannot write {path}: {e}"),
                Err(e) => eprintln!("warning: cannot draw {path}: {e}"),
            }
            runs.push(alone);
            runs.extend(signal);
        }
        Ok::<_, String>(runs)
    });
    match result {
        Ok(runs) => {
            println!("{}", table(&runs));
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(calls: u64, stopped_ms: Option<u64>) -> InstanceReport {
        InstanceReport {
            calls_during_outage: calls,
            probes: 2,
            open_periods: 2,
            stopped_after: stopped_ms.map(Duration::from_millis),
            sent: 10,
            lost: 0,
            failed: 0,
            paid_twice: 0,
            changes: Vec::new(),
            arrivals: Vec::new(),
            holds: 1,
        }
    }

    fn run(instances: Vec<InstanceReport>) -> FleetRun {
        FleetRun {
            config: FleetConfig {
                drill: DrillConfig::new("/tmp"),
                instances: instances.len(),
                quorum: 2,
                rates: Vec::new(),
            },
            signal: true,
            carrier: "redis",
            server_killed_at: None,
            instances,
            payment: PaymentService::new(DrillConfig::new("/tmp").fault_plan(), Instant::now())
                .stats(),
        }
    }

    #[tokio::test]
    async fn the_totals_and_the_stop_times_come_from_the_instances() {
        let r = run(vec![
            report(5, Some(300)),
            report(6, Some(100)),
            report(1, Some(450)),
        ]);
        assert_eq!(r.calls_during_outage(), 12);
        assert_eq!(r.all_stopped_after(), Some(Duration::from_millis(450)));
        // The quorum (2) was complete at 300 ms; the last stopped 150 ms later.
        assert_eq!(
            r.all_stopped_after_quorum(),
            Some(Duration::from_millis(150))
        );
        assert_eq!(r.probes_per_open_period(), 1.0);
        let t = table(&[r]);
        assert!(
            t.contains(
                "| 3 | redis, quorum 2 | 5 6 1 | 12 | 15 | 8 | 0.45 s / 0.15 s | 1.0 | 3 | 0 | 0 |"
            ),
            "{t}"
        );
    }

    #[tokio::test]
    async fn an_instance_that_never_stopped_makes_the_fleet_never_stop() {
        let r = run(vec![report(5, Some(300)), report(60, None)]);
        assert_eq!(r.all_stopped_after(), None);
        assert_eq!(r.all_stopped_after_quorum(), None);
    }
}
