//! `outage-drill load`: a bounded load run against a running order service (`serve orders`)
//! while its payment service (`serve payment`) flips between healthy and failing.
//!
//! ```text
//! outage-drill load --orders http://127.0.0.1:8080 --payment http://127.0.0.1:8090 --connections 200 --duration 20s --flip 2s
//! ```
//!
//! Each of `--connections` clients sends orders one after another (a closed loop: the next
//! one when the answer is in) for `--duration`, with order ids of its own. Every `--flip`
//! the payment service is told to fail (`/admin/fault`) or to recover. Expected answers are
//! `201` (paid) and `202` (queued); anything else, or no answer within 10 s, is an
//! unexpected error. The breaker's state is sampled from `/health` every 50 ms. After the
//! load, payment is left healthy and the run waits (at most `--settle`) for the breaker to
//! close and the queue to drain, then checks every accepted order against the payment
//! service's ledger (`/admin/charges`): paid exactly once.
//!
//! The report gives requests per second, p50/p99/max latency, the answers, the time spent
//! in each breaker state and the longest half-open stretch; the exit code is 1 when there
//! was an unexpected error, the breaker did not close, or an order was not paid exactly
//! once.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tower::ServiceExt;

use crate::cli::{parse_duration, runtime};
use crate::load::order_request;
use crate::net::{self, HttpClient};
use crate::orders::{OrderReply, OrderState};

/// `load` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct LoadArgs {
    /// The order service's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub orders: String,
    /// The payment service's base URL (for `/admin/fault` and `/admin/charges`).
    #[arg(long, default_value = "http://127.0.0.1:8090")]
    pub payment: String,
    /// Concurrent clients, each with its own connection.
    #[arg(long, default_value_t = 200)]
    pub connections: usize,
    /// How long to send, at most 10 minutes.
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    pub duration: Duration,
    /// How long payment stays healthy, then failing, then healthy ...; 0 keeps it healthy.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub flip: Duration,
    /// After the load, how long the breaker may take to close and the queue to drain.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub settle: Duration,
}

/// Why a load run could not be made (as opposed to a run that found a problem).
#[derive(Debug)]
pub struct LoadError(String);

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LoadError {}

/// What a load run measured.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadReport {
    /// Clients.
    pub connections: usize,
    /// Sending time, measured.
    pub elapsed: Duration,
    /// Orders answered `201` (paid at once).
    pub paid: u64,
    /// Orders answered `202` (queued).
    pub queued: u64,
    /// Other answers, or none within 10 s: `(what, how many)`.
    pub unexpected: BTreeMap<String, u64>,
    /// Latency percentiles: p50, p99, max.
    pub latency: [Duration; 3],
    /// Payment fault flips: every `--flip` before the load ends.
    pub flips: u32,
    /// Breaker state samples during the load: `(state, samples)`.
    pub states: BTreeMap<String, u64>,
    /// The longest run of consecutive `half_open` samples, as time.
    pub longest_half_open: Duration,
    /// Breaker trips during the run (from `/health`).
    pub trips: u64,
    /// After the load, the time until the breaker was closed and the queue empty; `None`
    /// when that did not happen within `--settle`.
    pub settled_after: Option<Duration>,
    /// Accepted orders charged exactly once.
    pub paid_once: u64,
    /// Accepted orders the payment service never charged.
    pub unpaid: u64,
    /// Accepted orders charged more than once.
    pub paid_twice: u64,
}

impl LoadReport {
    /// Requests per second.
    pub fn rate(&self) -> f64 {
        (self.paid + self.queued + self.unexpected.values().sum::<u64>()) as f64
            / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Whether the run found nothing wrong: no unexpected error, the breaker closed after
    /// the load, every accepted order paid exactly once.
    pub fn passed(&self) -> bool {
        self.unexpected.is_empty()
            && self.settled_after.is_some()
            && self.unpaid == 0
            && self.paid_twice == 0
    }
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total = self.paid + self.queued + self.unexpected.values().sum::<u64>();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        writeln!(
            f,
            "requests            {total} in {:.1} s: {:.0} req/s",
            self.elapsed.as_secs_f64(),
            self.rate()
        )?;
        writeln!(f, "  201 paid          {}", self.paid)?;
        writeln!(f, "  202 queued        {}", self.queued)?;
        writeln!(
            f,
            "  unexpected        {}{}",
            self.unexpected.values().sum::<u64>(),
            if self.unexpected.is_empty() {
                String::new()
            } else {
                format!(" {:?}", self.unexpected)
            }
        )?;
        writeln!(
            f,
            "latency             p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            ms(self.latency[0]),
            ms(self.latency[1]),
            ms(self.latency[2])
        )?;
        let samples: u64 = self.states.values().sum();
        let shares: Vec<String> = self
            .states
            .iter()
            .map(|(s, n)| format!("{s} {:.0}%", 100.0 * *n as f64 / samples.max(1) as f64))
            .collect();
        writeln!(
            f,
            "payment flips       {} (healthy <-> failing)",
            self.flips
        )?;
        writeln!(
            f,
            "breaker             {} ({samples} samples); {} trips; longest half-open {:.2} s",
            shares.join(", "),
            self.trips,
            self.longest_half_open.as_secs_f64()
        )?;
        match self.settled_after {
            Some(d) => writeln!(
                f,
                "after the load      breaker closed and queue empty after {:.2} s",
                d.as_secs_f64()
            )?,
            None => writeln!(
                f,
                "after the load      breaker NOT closed or queue NOT empty in time"
            )?,
        }
        write!(
            f,
            "accepted orders     {} paid exactly once, {} unpaid, {} paid twice",
            self.paid_once, self.unpaid, self.paid_twice
        )
    }
}

/// Runs the load described by `args`; the exit code: 0 when the run passed, 1 when it found
/// a problem or could not run.
pub fn main(args: LoadArgs) -> ExitCode {
    let result = runtime()
        .map_err(|e| LoadError(format!("cannot start the tokio runtime: {e}")))
        .and_then(|rt| rt.block_on(run(&args)));
    match result {
        Ok(report) => {
            println!("{report}");
            if report.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn get_json(client: &HttpClient, url: &str) -> Result<serde_json::Value, String> {
    let response = tokio::time::timeout(
        Duration::from_secs(5),
        client.clone().oneshot(net::get(url)),
    )
    .await
    .map_err(|_| format!("GET {url}: no answer within 5 s"))?
    .map_err(|e| format!("GET {url}: {e}"))?;
    serde_json::from_slice(response.body()).map_err(|e| format!("GET {url}: {e}"))
}

async fn set_fault(client: &HttpClient, payment: &str, mode: &str) -> Result<(), String> {
    let url = format!("{payment}/admin/fault");
    let response = client
        .clone()
        .oneshot(net::post_json(&url, &serde_json::json!({ "mode": mode })))
        .await
        .map_err(|e| format!("POST {url}: {e}"))?;
    if response.status() != StatusCode::OK {
        return Err(format!("POST {url}: {}", response.status()));
    }
    Ok(())
}

/// One client's tally.
#[derive(Default)]
struct ClientTally {
    paid: u64,
    queued: u64,
    accepted: Vec<String>,
    unexpected: BTreeMap<String, u64>,
    latencies: Vec<Duration>,
}

/// One client: orders one after another until `until`.
async fn client_loop(
    client: HttpClient,
    uri: Arc<str>,
    prefix: Arc<str>,
    until: Instant,
) -> ClientTally {
    let mut tally = ClientTally::default();
    let mut n = 0u64;
    while Instant::now() < until {
        let order_id = format!("{prefix}-{n}");
        let request = order_request(&uri, &order_id, n);
        n += 1;
        let start = Instant::now();
        let answer =
            tokio::time::timeout(Duration::from_secs(10), client.clone().oneshot(request)).await;
        tally.latencies.push(start.elapsed());
        let unexpected = match answer {
            Err(_) => "no answer within 10 s".to_owned(),
            Ok(Err(e)) => format!("unreachable: {e}"),
            Ok(Ok(response)) => {
                let reply = serde_json::from_slice::<OrderReply>(response.body()).ok();
                match (response.status(), reply.map(|r| (r.status, r.reason))) {
                    (StatusCode::CREATED, Some((OrderState::Completed, _))) => {
                        tally.paid += 1;
                        tally.accepted.push(order_id);
                        continue;
                    }
                    (StatusCode::ACCEPTED, Some((OrderState::Pending, _))) => {
                        tally.queued += 1;
                        tally.accepted.push(order_id);
                        continue;
                    }
                    (status, Some((_, reason))) => {
                        format!("{} {}", status.as_u16(), reason.unwrap_or_default())
                    }
                    (status, None) => status.as_u16().to_string(),
                }
            }
        };
        *tally.unexpected.entry(unexpected).or_insert(0) += 1;
    }
    tally
}

/// The `q`-quantile of sorted `values`.
fn quantile(values: &[Duration], q: f64) -> Duration {
    if values.is_empty() {
        return Duration::ZERO;
    }
    let i = ((values.len() - 1) as f64 * q).round() as usize;
    values[i.min(values.len() - 1)]
}

/// Runs the load; see the module docs.
///
/// # Errors
///
/// Bad settings, or services that cannot be reached at the start or at the end.
pub async fn run(args: &LoadArgs) -> Result<LoadReport, LoadError> {
    if args.connections == 0 || args.connections > 2000 {
        return Err(LoadError("--connections must be 1 to 2000".into()));
    }
    if args.duration.is_zero() || args.duration > Duration::from_secs(600) {
        return Err(LoadError(
            "--duration must be more than 0 and at most 10m".into(),
        ));
    }
    let orders = args.orders.trim_end_matches('/').to_owned();
    let payment = args.payment.trim_end_matches('/').to_owned();
    let control = net::tcp_client();
    let health_url = format!("{orders}/health");
    let before = get_json(&control, &health_url).await.map_err(LoadError)?;
    let trips_before = before["breaker"]["counts"]["trips"].as_u64().unwrap_or(0);
    set_fault(&control, &payment, "recover")
        .await
        .map_err(LoadError)?;

    // Order ids unique to this run, so that runs against one data dir do not collide.
    let run_id = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let uri: Arc<str> = Arc::from(format!("{orders}/orders"));
    let start = Instant::now();
    let until = start + args.duration;
    let mut clients = JoinSet::new();
    for c in 0..args.connections {
        // One client (so one connection) per loop.
        let prefix: Arc<str> = Arc::from(format!("load-{run_id}-{c}"));
        clients.spawn(client_loop(net::tcp_client(), uri.clone(), prefix, until));
    }

    // The flipper and the health sampler run until the load is over.
    let (done_tx, done) = watch::channel(false);
    // Flips at start + k × flip, for every such time before the load ends.
    let flipper = {
        let (control, payment, flip) = (control.clone(), payment.clone(), args.flip);
        tokio::spawn(async move {
            let mut flips = 0u32;
            if flip.is_zero() {
                return flips;
            }
            loop {
                let at = start + flip * (flips + 1);
                if at >= until {
                    return flips;
                }
                tokio::time::sleep_until(at).await;
                let mode = if flips % 2 == 0 { "fail" } else { "recover" };
                // A failed flip is reported by the count (and the state shares).
                let _ = set_fault(&control, &payment, mode).await;
                flips += 1;
            }
        })
    };
    let sampler = {
        let (control, health_url, mut done) = (control.clone(), health_url.clone(), done.clone());
        tokio::spawn(async move {
            let mut states: BTreeMap<String, u64> = BTreeMap::new();
            let mut half_open_since: Option<Instant> = None;
            let mut longest = Duration::ZERO;
            let mut ticks = tokio::time::interval(Duration::from_millis(50));
            loop {
                tokio::select! {
                    _ = ticks.tick() => {}
                    _ = done.changed() => return (states, longest),
                }
                let Ok(health) = get_json(&control, &health_url).await else {
                    *states.entry("no answer".into()).or_insert(0) += 1;
                    continue;
                };
                let state = health["breaker"]["state"]
                    .as_str()
                    .unwrap_or("none")
                    .to_owned();
                if state == "half_open" {
                    let since = *half_open_since.get_or_insert_with(Instant::now);
                    longest = longest.max(since.elapsed());
                } else {
                    half_open_since = None;
                }
                *states.entry(state).or_insert(0) += 1;
            }
        })
    };

    let mut paid = 0;
    let mut queued = 0;
    let mut accepted = Vec::new();
    let mut unexpected: BTreeMap<String, u64> = BTreeMap::new();
    let mut latencies = Vec::new();
    while let Some(joined) = clients.join_next().await {
        let tally = joined.map_err(|e| LoadError(format!("a client failed: {e}")))?;
        paid += tally.paid;
        queued += tally.queued;
        accepted.extend(tally.accepted);
        latencies.extend(tally.latencies);
        for (what, n) in tally.unexpected {
            *unexpected.entry(what).or_insert(0) += n;
        }
    }
    let elapsed = start.elapsed();
    let _ = done_tx.send(true);
    let flips = flipper.await.unwrap_or(0);
    let (states, longest_half_open) = sampler.await.unwrap_or_default();
    latencies.sort_unstable();

    // Payment healthy; the breaker must close and the queue drain.
    set_fault(&control, &payment, "recover")
        .await
        .map_err(LoadError)?;
    let settle_start = Instant::now();
    let mut settled_after = None;
    let mut trips = 0;
    while settle_start.elapsed() < args.settle {
        let health = get_json(&control, &health_url).await.map_err(LoadError)?;
        trips = health["breaker"]["counts"]["trips"]
            .as_u64()
            .unwrap_or(0)
            .saturating_sub(trips_before);
        if health["breaker"]["state"] == "closed" && health["queue_depth"] == 0 {
            settled_after = Some(settle_start.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let charges = get_json(&control, &format!("{payment}/admin/charges"))
        .await
        .map_err(LoadError)?;
    let ours: HashSet<&str> = accepted.iter().map(String::as_str).collect();
    let (mut paid_once, mut unpaid, mut paid_twice) = (0, 0, 0);
    for id in &accepted {
        match charges[id.as_str()].as_u64() {
            Some(1) => paid_once += 1,
            None | Some(0) => unpaid += 1,
            Some(_) => paid_twice += 1,
        }
    }
    // A charge for an order of this run that was never accepted is a charge for an order
    // the customer was told failed.
    if let Some(all) = charges.as_object() {
        let prefix = format!("load-{run_id}-");
        let stray = all
            .keys()
            .filter(|k| k.starts_with(&prefix) && !ours.contains(k.as_str()))
            .count();
        if stray > 0 {
            *unexpected
                .entry("charged but not accepted".into())
                .or_insert(0) += stray as u64;
        }
    }
    Ok(LoadReport {
        connections: args.connections,
        elapsed,
        paid,
        queued,
        unexpected,
        latency: [
            quantile(&latencies, 0.5),
            quantile(&latencies, 0.99),
            latencies.last().copied().unwrap_or_default(),
        ],
        flips,
        states,
        longest_half_open,
        trips,
        settled_after,
        paid_once,
        unpaid,
        paid_twice,
    })
}
