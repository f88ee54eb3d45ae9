//! One drill run: a payment service with a scripted outage, an order service in front of it
//! (with or without the breaker), and the load generator; then the queue drained and
//! everything counted.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use cutout::State;
use tokio::time::Instant;

use crate::load::{self, LoadPlan, OrderRecord, Tally};
use crate::net::{Server, Transport};
use crate::orders::{OpenError, OrderConfig, OrderService, OrderStats};
use crate::payment::{FaultPlan, PaymentService, PaymentStats, Phase};
use crate::queue::QueueError;

/// Everything a drill run needs to know.
#[derive(Debug, Clone, PartialEq)]
pub struct DrillConfig {
    /// How long orders are sent.
    pub duration: Duration,
    /// Orders per second.
    pub rate: u32,
    /// When the payment outage begins, from the start.
    pub outage_start: Duration,
    /// How long the outage lasts.
    pub outage: Duration,
    /// The seed for the payment service's latencies and faults, and the breaker's jitter.
    pub seed: u64,
    /// The order service's timeout for a payment call.
    pub timeout: Duration,
    /// How long a hanging payment request holds its connection.
    pub hang: Duration,
    /// How long to wait, after the load, for the queue to drain.
    pub drain_timeout: Duration,
    /// Consecutive failures that trip the breaker.
    pub failure_threshold: u32,
    /// The breaker's first open time; it doubles on each re-open, up to `open_cap`.
    pub open_base: Duration,
    /// The longest open time.
    pub open_cap: Duration,
    /// TCP on 127.0.0.1 (the drill) or in-memory pipes (the tests, on paused time).
    pub transport: Transport,
    /// Where the queue files go.
    pub data_dir: PathBuf,
}

impl DrillConfig {
    /// The drill's defaults: 30 s at 100 orders/s, a 15 s outage from 8 s on, seed 42,
    /// payment timeout 1 s, hangs of 5 s, breaker threshold 5 and open time 1 s doubling to
    /// 4 s, over TCP, queue files in `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            duration: Duration::from_secs(30),
            rate: 100,
            outage_start: Duration::from_secs(8),
            outage: Duration::from_secs(15),
            seed: 42,
            timeout: Duration::from_secs(1),
            hang: Duration::from_secs(5),
            drain_timeout: Duration::from_secs(30),
            failure_threshold: 5,
            open_base: Duration::from_secs(1),
            open_cap: Duration::from_secs(4),
            transport: Transport::Tcp,
            data_dir: data_dir.into(),
        }
    }

    /// Checks that the settings make a drill: something to send, an outage that ends
    /// before the load does, durations that are not zero.
    ///
    /// ```
    /// use outage_drill::drill::DrillConfig;
    /// use std::time::Duration;
    ///
    /// let mut config = DrillConfig::new("/tmp");
    /// assert!(config.validate().is_ok());
    /// config.outage = Duration::from_secs(60);
    /// assert_eq!(
    ///     config.validate().unwrap_err().to_string(),
    ///     "the outage (8s + 60s) must end before the load does (30s), so that recovery can be seen"
    /// );
    /// ```
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |s: String| Err(ConfigError(s));
        if self.rate == 0 {
            return err("the rate must be at least 1 order per second".into());
        }
        if self.rate > 5000 {
            return err(format!(
                "a rate of {} orders/s is more than this drill drives (at most 5000)",
                self.rate
            ));
        }
        if self.duration.is_zero() {
            return err("the duration must not be zero".into());
        }
        if self.duration > Duration::from_secs(3600) {
            return err("the duration must be at most an hour".into());
        }
        if self.outage.is_zero() {
            return err("the outage must not be zero".into());
        }
        if self.outage_start.saturating_add(self.outage) >= self.duration {
            return err(format!(
                "the outage ({:?} + {:?}) must end before the load does ({:?}), so that recovery can be seen",
                self.outage_start, self.outage, self.duration
            ));
        }
        if self.timeout.is_zero() || self.hang.is_zero() {
            return err("the timeout and the hang time must not be zero".into());
        }
        if self.failure_threshold == 0 {
            return err("the failure threshold must be at least 1".into());
        }
        if self.open_base.is_zero() || self.open_cap < self.open_base {
            return err("the open time must not be zero, and its cap not below it".into());
        }
        Ok(())
    }

    /// The payment service's script.
    pub fn fault_plan(&self) -> FaultPlan {
        FaultPlan {
            outage_start: self.outage_start,
            outage: self.outage,
            hang: self.hang,
            seed: self.seed,
        }
    }

    /// The breaker: trips after `failure_threshold` consecutive failures, stays open
    /// `open_base` doubling per re-open up to `open_cap` with a quarter of jitter (seeded),
    /// and lets one probe through when half-open.
    pub fn breaker(&self) -> cutout::Builder {
        cutout::CircuitBreaker::builder()
            .name("payments")
            .failure_threshold(self.failure_threshold)
            .exponential_backoff(self.open_base, 2.0, self.open_cap)
            .jitter(0.25)
            .jitter_seed(self.seed)
            .half_open_max_calls(1)
            .probe_lease(self.timeout.saturating_mul(2))
    }
}

/// A setting that makes no drill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// Without or with the breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A plain timeout: a failed payment is a failed order.
    WithoutBreaker,
    /// Timeout and breaker: a failed or rejected payment is a queued order.
    WithBreaker,
}

impl Mode {
    /// `without breaker` or `with breaker`.
    pub fn label(self) -> &'static str {
        match self {
            Mode::WithoutBreaker => "without breaker",
            Mode::WithBreaker => "with breaker",
        }
    }

    fn file(self) -> &'static str {
        match self {
            Mode::WithoutBreaker => "orders-without-breaker.redb",
            Mode::WithBreaker => "orders-with-breaker.redb",
        }
    }
}

/// A drill run that could not be made.
#[derive(Debug)]
pub enum DrillError {
    /// A bad setting.
    Config(ConfigError),
    /// A server could not start, or the data directory is unusable.
    Io(std::io::Error),
    /// The order service could not start.
    Open(OpenError),
    /// The queue could not be read at the end.
    Queue(QueueError),
}

impl fmt::Display for DrillError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DrillError::Config(e) => e.fmt(f),
            DrillError::Io(e) => write!(f, "i/o: {e}"),
            DrillError::Open(e) => write!(f, "order service: {e}"),
            DrillError::Queue(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for DrillError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DrillError::Config(e) => Some(e),
            DrillError::Io(e) => Some(e),
            DrillError::Open(e) => Some(e),
            DrillError::Queue(e) => Some(e),
        }
    }
}

/// A look at a run in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Which run.
    pub mode: Mode,
    /// Time since the run started.
    pub elapsed: Duration,
    /// The payment service's phase.
    pub phase: Phase,
    /// The breaker's state, when there is one.
    pub breaker: Option<State>,
    /// Orders sent so far.
    pub sent: u64,
    /// Answered completed.
    pub completed: u64,
    /// Answered pending.
    pub pending: u64,
    /// Answered failed.
    pub failed: u64,
    /// Orders in the queue now.
    pub queued: u64,
    /// True once the load is over and the queue is draining.
    pub draining: bool,
}

/// Everything one run measured.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// Which run.
    pub mode: Mode,
    /// The settings.
    pub config: DrillConfig,
    /// One record per order sent.
    pub records: Vec<OrderRecord>,
    /// What the payment service counted.
    pub payment: PaymentStats,
    /// What the order service counted.
    pub orders: OrderStats,
    /// Charges per order id, from the payment service's ledger.
    pub charges: HashMap<String, u32>,
    /// Orders paid from the queue, with their payment ids, from the order service's queue
    /// file.
    pub completions: HashMap<String, String>,
    /// The breaker's state changes, from the start.
    pub changes: Vec<(Duration, State)>,
    /// The most connections the payment service held open at once.
    pub peak_connections: u64,
    /// When the queue was empty again after the load, from the start.
    pub drained_at: Option<Duration>,
    /// How long the run took.
    pub wall: Duration,
}

/// Runs the drill once in `mode`. `progress` is called four times a second.
///
/// # Errors
///
/// A bad setting, a server that cannot start, or a queue file that cannot be opened.
pub async fn run(
    config: &DrillConfig,
    mode: Mode,
    progress: &mut (dyn FnMut(&Progress) + Send),
) -> Result<RunReport, DrillError> {
    config.validate().map_err(DrillError::Config)?;
    std::fs::create_dir_all(&config.data_dir).map_err(DrillError::Io)?;
    let queue_path = config.data_dir.join(mode.file());
    match std::fs::remove_file(&queue_path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(DrillError::Io(e)),
    }

    let origin = Instant::now();
    let payment = PaymentService::new(config.fault_plan(), origin);
    let payment_server = Server::start(payment.router(), config.transport)
        .await
        .map_err(DrillError::Io)?;
    let orders = OrderService::open(
        OrderConfig {
            payment_uri: payment_server.base_uri(),
            timeout: config.timeout,
            breaker: (mode == Mode::WithBreaker).then(|| config.breaker()),
            queue_path,
            drain_concurrency: 16,
        },
        payment_server.client(),
    )
    .map_err(DrillError::Open)?;
    let order_server = Server::start(orders.router(), config.transport)
        .await
        .map_err(DrillError::Io)?;

    let tally = Arc::new(Tally::default());
    let plan = LoadPlan {
        rate: config.rate,
        duration: config.duration,
        patience: config
            .timeout
            .saturating_mul(10)
            .max(Duration::from_secs(10)),
    };
    let look = |draining: bool| Progress {
        mode,
        elapsed: origin.elapsed(),
        phase: payment.phase(),
        breaker: orders.breaker().map(|b| b.state()),
        sent: tally.sent.load(Ordering::Relaxed),
        completed: tally.completed.load(Ordering::Relaxed),
        pending: tally.pending.load(Ordering::Relaxed),
        failed: tally.failed.load(Ordering::Relaxed),
        queued: orders.queue().pending_len().unwrap_or(0),
        draining,
    };
    let mut ticks = tokio::time::interval(Duration::from_millis(250));
    let orders_uri = order_server.base_uri();
    let load = load::run(
        order_server.client(),
        &orders_uri,
        plan,
        origin,
        tally.clone(),
    );
    tokio::pin!(load);
    let records = loop {
        tokio::select! {
            records = &mut load => break records,
            _ = ticks.tick() => progress(&look(false)),
        }
    };

    // Drain: wait until the queue is empty, or give up after the drain timeout.
    let deadline = Instant::now() + config.drain_timeout;
    let drained_at = loop {
        let p = look(true);
        progress(&p);
        if p.queued == 0 {
            break Some(origin.elapsed());
        }
        if Instant::now() >= deadline {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    let completions = orders
        .queue()
        .completed()
        .map_err(DrillError::Queue)?
        .into_iter()
        .collect();
    let changes = orders
        .state_changes()
        .into_iter()
        .map(|c| (c.at.saturating_duration_since(origin), c.to))
        .collect();
    let order_stats = orders.stats();
    let charges = records
        .iter()
        .map(|r| (r.order_id.clone(), payment.charges_for(&r.order_id)))
        .collect();
    order_server.shutdown().await;
    orders.shutdown().await;
    let peak_connections = payment_server.connections().peak();
    payment_server.shutdown().await;
    Ok(RunReport {
        mode,
        config: config.clone(),
        records,
        payment: payment.stats(),
        orders: order_stats,
        charges,
        completions,
        changes,
        peak_connections,
        drained_at,
        wall: origin.elapsed(),
    })
}
