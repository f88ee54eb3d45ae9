//! `outage-drill serve payment` and `outage-drill serve orders`: the drill's two services as
//! long-lived processes on loopback, to drive by hand with curl (see the README section "Run
//! the services yourself") and to crash in the chaos tests.
//!
//! ```text
//! outage-drill serve payment --port 8090
//! outage-drill serve orders --port 8080 --payment http://127.0.0.1:8090 --data ./orders-data
//! ```
//!
//! Each prints one line when it listens (`payment: listening on http://127.0.0.1:8090`) and
//! one when it stops, and stops cleanly on Ctrl-C or SIGTERM: it stops accepting, closes its
//! connections, stops the queue worker and closes the queue file. Port 0 picks a free port;
//! the line says which.
//!
//! The payment service adds admin routes to [`PaymentService::router`]'s `POST /payments`
//! and `GET /health`:
//!
//! | route | what |
//! |---|---|
//! | `POST /admin/fault` `{"mode": "fail"}` | every payment fails with a `500` at once |
//! | `POST /admin/fault` `{"mode": "hang", "ms": 5000}` | every payment hangs `ms`, then `500` |
//! | `POST /admin/fault` `{"mode": "slow", "ms": 300}` | payments succeed, each after `ms` |
//! | `POST /admin/fault` `{"mode": "recover"}` | healthy again |
//! | `GET /admin/stats` | requests, charges, replays, orders charged twice, peak in progress |
//! | `GET /admin/charges` | `{"order id": charges}` for every order charged |
//!
//! The order service is [`OrderService`] with its breaker (the drill's settings, see
//! [`DrillConfig::breaker`]) and its queue in `DIR/orders.redb`.

use std::fmt;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use axum::extract::State as AxumState;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use tokio::time::Instant;
use tower::ServiceExt;

use crate::cli::{parse_duration, runtime, stop_signal};
use crate::drill::DrillConfig;
use crate::net::{self, Server};
use crate::orders::{OpenError, OrderConfig, OrderService, error_chain};
use crate::payment::{FaultPlan, PaymentService, ScriptedFault};
use crate::queue::QueueError;

/// The service to run.
#[derive(Debug, clap::Subcommand)]
pub enum Service {
    /// The payment service: `POST /payments`, `GET /health`, and `/admin/fault` to break it.
    Payment(PaymentArgs),
    /// The order service: `POST /orders`, `GET /orders/{id}`, `GET /health`, `GET /metrics`.
    Orders(OrdersArgs),
}

/// `serve payment` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct PaymentArgs {
    /// The port on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 8090)]
    pub port: u16,
    /// Seed for the charge latencies (2-8 ms).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

/// `serve orders` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct OrdersArgs {
    /// The port on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// The payment service's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8090")]
    pub payment: String,
    /// The directory of the durable queue (`orders.redb`); created if missing. Restart on
    /// the same directory to pay what was queued.
    #[arg(long)]
    pub data: PathBuf,
    /// The timeout of a payment call.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Consecutive failures that trip the breaker.
    #[arg(long, default_value_t = 5)]
    pub failure_threshold: u32,
    /// Queued orders the worker pays at once.
    #[arg(long, default_value_t = 8)]
    pub drain_concurrency: usize,
}

/// Why a service could not start.
#[derive(Debug)]
pub enum ServeError {
    /// Another process listens on the port.
    PortInUse(SocketAddr),
    /// The listener could not be bound for another reason.
    Bind(SocketAddr, std::io::Error),
    /// `--payment` is not an `http://host:port` URL.
    PaymentUrl(String),
    /// A bad breaker setting.
    Config(String),
    /// The data directory cannot be made or is not a directory.
    DataDir(PathBuf, std::io::Error),
    /// The queue file in the data directory cannot be opened (not writable, not a queue,
    /// or open in another order service).
    Queue(PathBuf, QueueError),
    /// The tokio runtime could not start.
    Runtime(std::io::Error),
}

impl fmt::Display for ServeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServeError::PortInUse(addr) => write!(
                f,
                "port {} on {} is in use by another process; pick another with --port (0: any free port)",
                addr.port(),
                addr.ip()
            ),
            ServeError::Bind(addr, e) => write!(f, "cannot listen on {addr}: {e}"),
            ServeError::PaymentUrl(url) => write!(
                f,
                "--payment `{url}` is not a URL like http://127.0.0.1:8090"
            ),
            ServeError::Config(e) => write!(f, "breaker settings: {e}"),
            ServeError::DataDir(dir, e) => {
                write!(f, "data dir {} is unusable: {e}", dir.display())
            }
            ServeError::Queue(path, e) => write!(
                f,
                "data dir: cannot open the queue {} ({}); is another order service using it, or is it not writable?",
                path.display(),
                error_chain(e)
            ),
            ServeError::Runtime(e) => write!(f, "cannot start the tokio runtime: {e}"),
        }
    }
}

impl std::error::Error for ServeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ServeError::Bind(_, e) | ServeError::DataDir(_, e) | ServeError::Runtime(e) => Some(e),
            ServeError::Queue(_, e) => Some(e),
            ServeError::PortInUse(_) | ServeError::PaymentUrl(_) | ServeError::Config(_) => None,
        }
    }
}

/// Runs `service` until Ctrl-C or SIGTERM; the process's exit code: 0 after a clean stop,
/// 1 when the service could not start (the reason on stderr).
pub fn main(service: Service) -> ExitCode {
    let result = runtime()
        .map_err(ServeError::Runtime)
        .and_then(|rt| match service {
            Service::Payment(args) => rt.block_on(serve_payment(args, stop_signal())),
            Service::Orders(args) => rt.block_on(serve_orders(args, stop_signal())),
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Prints a line on stdout at once (the tests and scripts wait for it).
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

async fn listen(router: Router, port: u16) -> Result<Server, ServeError> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    Server::bind(router, addr).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            ServeError::PortInUse(addr)
        } else {
            ServeError::Bind(addr, e)
        }
    })
}

/// Serves the payment service on `args.port` until `stop` resolves.
///
/// # Errors
///
/// When the port cannot be bound.
pub async fn serve_payment(
    args: PaymentArgs,
    stop: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    // No scripted outage: healthy until told otherwise through /admin/fault.
    let plan = FaultPlan {
        outage_start: Duration::MAX,
        outage: Duration::ZERO,
        hang: Duration::from_secs(30),
        seed: args.seed,
    };
    let payment = PaymentService::new(plan, Instant::now());
    let admin = Router::new()
        .route("/admin/fault", get(current_fault).post(set_fault))
        .route("/admin/stats", get(payment_stats))
        .route("/admin/charges", get(payment_charges))
        .with_state(payment.clone());
    let server = listen(payment.router().merge(admin), args.port).await?;
    say(&format!("payment: listening on {}", server.base_uri()));
    stop.await;
    server.shutdown().await;
    let stats = payment.stats();
    say(&format!(
        "payment: stopped after {} requests, {} charges, {} replays",
        stats.requests, stats.charges, stats.replays
    ));
    Ok(())
}

/// `{"fault": null}` or `{"fault": {"mode": "hang", "ms": 5000}}`.
fn fault_reply(fault: Option<ScriptedFault>) -> Response {
    Json(serde_json::json!({ "fault": fault })).into_response()
}

async fn current_fault(AxumState(payment): AxumState<PaymentService>) -> Response {
    fault_reply(payment.scripted())
}

async fn set_fault(
    AxumState(payment): AxumState<PaymentService>,
    body: axum::body::Bytes,
) -> Response {
    let fault = match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(v) if v["mode"] == "recover" => None,
        Ok(v) => match serde_json::from_value::<ScriptedFault>(v) {
            Ok(fault) => Some(fault),
            Err(_) => return bad_fault(),
        },
        Err(_) => return bad_fault(),
    };
    payment.script(fault);
    fault_reply(fault)
}

fn bad_fault() -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(serde_json::json!({
            "error": "expected {\"mode\": \"fail\"}, {\"mode\": \"hang\", \"ms\": N}, {\"mode\": \"slow\", \"ms\": N} or {\"mode\": \"recover\"}"
        })),
    )
        .into_response()
}

async fn payment_stats(AxumState(payment): AxumState<PaymentService>) -> Response {
    let s = payment.stats();
    Json(serde_json::json!({
        "requests": s.requests,
        "requests_while_failing": s.requests_during_outage,
        "charges": s.charges,
        "replays": s.replays,
        "orders_charged_twice": s.orders_charged_twice,
        "peak_in_progress": s.peak_in_progress,
        "fault": payment.scripted(),
    }))
    .into_response()
}

async fn payment_charges(AxumState(payment): AxumState<PaymentService>) -> Response {
    let charges: std::collections::BTreeMap<String, u32> = payment.charges().into_iter().collect();
    Json(charges).into_response()
}

/// Checks `--payment`: an `http://` URL with a host (and no path beyond `/`).
fn payment_uri(url: &str) -> Result<String, ServeError> {
    let bad = || ServeError::PaymentUrl(url.to_owned());
    let uri: http::Uri = url.parse().map_err(|_| bad())?;
    if uri.scheme_str() != Some("http") || uri.host().is_none() || uri.path().len() > 1 {
        return Err(bad());
    }
    Ok(url.trim_end_matches('/').to_owned())
}

/// Makes `dir` if needed and checks that it is a directory.
fn data_dir(dir: &Path) -> Result<(), ServeError> {
    if dir.exists() && !dir.is_dir() {
        return Err(ServeError::DataDir(
            dir.to_path_buf(),
            std::io::Error::other("it is a file, not a directory"),
        ));
    }
    std::fs::create_dir_all(dir).map_err(|e| ServeError::DataDir(dir.to_path_buf(), e))?;
    if !dir.is_dir() {
        return Err(ServeError::DataDir(
            dir.to_path_buf(),
            std::io::Error::other("not a directory"),
        ));
    }
    Ok(())
}

/// Serves the order service on `args.port` until `stop` resolves.
///
/// # Errors
///
/// A bad `--payment` URL or breaker setting, an unusable data directory, a port in use. An
/// unreachable payment service is not an error: it is reported on stderr, and the breaker
/// and the queue deal with it.
pub async fn serve_orders(
    args: OrdersArgs,
    stop: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let payment_uri = payment_uri(&args.payment)?;
    if args.failure_threshold == 0 {
        return Err(ServeError::Config(
            "--failure-threshold must be at least 1".into(),
        ));
    }
    if args.timeout.is_zero() {
        return Err(ServeError::Config("--timeout must not be zero".into()));
    }
    data_dir(&args.data)?;
    let queue_path = args.data.join("orders.redb");
    let mut drill = DrillConfig::new(&args.data);
    drill.timeout = args.timeout;
    drill.failure_threshold = args.failure_threshold;
    let client = net::tcp_client();
    let orders = OrderService::open(
        OrderConfig {
            payment_uri: payment_uri.clone(),
            timeout: args.timeout,
            breaker: Some(drill.breaker()),
            queue_path: queue_path.clone(),
            drain_concurrency: args.drain_concurrency,
        },
        client.clone(),
    )
    .map_err(|e| match e {
        OpenError::Config(e) => ServeError::Config(e.to_string()),
        OpenError::Queue(e) => ServeError::Queue(queue_path.clone(), e),
    })?;
    let server = match listen(orders.router(), args.port).await {
        Ok(server) => server,
        Err(e) => {
            orders.shutdown().await;
            return Err(e);
        }
    };
    let queued = orders.stats().pending;
    say(&format!(
        "orders: listening on {} (payment {payment_uri}, queue {}, {queued} orders queued)",
        server.base_uri(),
        queue_path.display()
    ));
    let health = net::get(&format!("{payment_uri}/health"));
    match tokio::time::timeout(Duration::from_secs(2), client.oneshot(health)).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => eprintln!(
            "warning: payment at {payment_uri} is unreachable now ({}); orders are queued until it answers",
            error_chain(&*e)
        ),
        Err(_) => eprintln!(
            "warning: payment at {payment_uri} did not answer within 2 s; orders are queued until it does"
        ),
    }

    // Show the breaker's moves as they happen, until stopped.
    let mut shown = 0;
    let mut ticks = tokio::time::interval(Duration::from_millis(100));
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = ticks.tick() => {
                let changes = orders.state_changes();
                for change in changes.iter().skip(shown) {
                    say(&format!("orders: breaker {}", change.to.as_str()));
                }
                shown = changes.len();
            }
        }
    }
    server.shutdown().await;
    let stats = orders.stats();
    orders.shutdown().await;
    say(&format!(
        "orders: stopped ({} paid at once, {} queued, {} paid from the queue, {} still queued)",
        stats.completed, stats.queued, stats.drained, stats.pending
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payment_urls_are_checked() {
        assert_eq!(
            payment_uri("http://127.0.0.1:8090/").ok().as_deref(),
            Some("http://127.0.0.1:8090")
        );
        for bad in [
            "127.0.0.1:8090",
            "https://127.0.0.1:1",
            "http://h/pay",
            "::",
        ] {
            let err = payment_uri(bad).expect_err(bad);
            assert!(err.to_string().contains("is not a URL like"), "{err}");
        }
    }
}
