//! The order service: takes orders, pays them through the payment service, queues what it
//! cannot pay now.
//!
//! | route | answer |
//! |---|---|
//! | `POST /orders` `{"order_id", "amount_cents"}` | `201 {"status": "completed", "payment_id"}` (paid now), `202 {"status": "pending", "reason"}` (queued), `200` with the answer it already has for an order id seen before, or, without a breaker, `502`/`504 {"status": "failed", "reason"}` |
//! | `GET /orders/{id}` | `200 {"status": "completed", "payment_id"}` or `200 {"status": "pending", "reason": "queued"}`; `404` for an order it does not know |
//! | `GET /health` | [`Health`]: `{"status": "healthy" \| "degraded", "breaker": {...}, "last_failure", "queue_depth"}`; degraded while the breaker is open or half-open |
//! | `GET /metrics` | Prometheus text |
//!
//! The order id is the customer's idempotency key: an order id is paid at most once, with
//! the payment idempotency key [`idempotency_key`] derives from it.
//!
//! Payment calls go through a hyper client wrapped in a timeout and, when
//! [`OrderConfig::breaker`] is set, a circuit breaker. With the breaker, an order whose
//! payment is rejected (circuit open) or fails is written to the durable [`Queue`] and
//! answered `202 pending`; a worker pays the queue once payments go through again, with the
//! idempotency key the order was first tried with, so nothing is lost or paid twice.
//! Without the breaker (the "before" of the drill) a failed payment is a failed order.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::State as AxumState;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use cutout::observe::CallCounts;
use cutout::{CircuitBreaker, Rejected, State};
use metrics::{Counter, Gauge};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use tower::util::BoxCloneSyncService;
use tower::{ServiceBuilder, ServiceExt};
use tower_cutout::CircuitBreakerLayer;
use tower_cutout::http::HttpClassifier;

use crate::net::{self, HttpClient};
use crate::payment::{Payment, PaymentRequest};
use crate::queue::{OrderStatus, Pushed, Queue, QueueError};

/// An order, as customers send it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderRequest {
    /// The order id, unique per order.
    pub order_id: String,
    /// The amount, in cents.
    pub amount_cents: u64,
}

/// The order service's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderReply {
    /// The order id.
    pub order_id: String,
    /// `completed`, `pending` or `failed`.
    pub status: OrderState,
    /// The payment, when completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_id: Option<String>,
    /// Why it is pending or failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Where an order stands, as answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderState {
    /// Paid.
    Completed,
    /// Queued; it will be paid.
    Pending,
    /// Not taken.
    Failed,
}

/// Settings of an order service.
#[derive(Debug, Clone)]
pub struct OrderConfig {
    /// The payment service's base URI, such as `http://127.0.0.1:8080`.
    pub payment_uri: String,
    /// How long a payment call may take.
    pub timeout: Duration,
    /// The breaker around payment calls; `None` for the unprotected "before".
    pub breaker: Option<cutout::Builder>,
    /// The queue's file.
    pub queue_path: PathBuf,
    /// Queued orders the worker pays at once.
    pub drain_concurrency: usize,
}

/// What the order service counted since it started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct OrderStats {
    /// Orders paid while the customer waited.
    pub completed: u64,
    /// Orders queued (answered `202 pending`).
    pub queued: u64,
    /// Queued orders the worker paid.
    pub drained: u64,
    /// Orders answered `failed`.
    pub failed: u64,
    /// Payment calls the breaker rejected without calling.
    pub rejected: u64,
    /// Orders waiting in the queue now.
    pub pending: u64,
}

/// Why a payment call did not pay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayError {
    /// The breaker refused the call; payment was not called.
    Rejected(Rejected),
    /// No answer within the timeout.
    Timeout,
    /// Payment answered with an error status.
    Status(u16),
    /// Payment could not be reached.
    Unreachable(String),
    /// Payment answered something that is not a payment.
    BadReply,
}

impl PayError {
    /// Whether payment refused the charge for good: a `4xx` other than `429` (a retry
    /// would be refused again, so the order is not queued, or leaves the queue).
    pub fn is_refusal(&self) -> bool {
        matches!(self, PayError::Status(s) if PayError::refusal(*s))
    }

    fn refusal(status: u16) -> bool {
        (400..500).contains(&status) && status != 429
    }

    /// The [`reason`](Self::reason)s of payment calls that went out and failed.
    pub const REASONS: [&'static str; 5] = [
        "payment_timeout",
        "payment_refused",
        "payment_error",
        "payment_unreachable",
        "payment_bad_reply",
    ];

    /// A short stable name, used in answers and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            PayError::Rejected(Rejected::Open { .. }) => "circuit_open",
            PayError::Rejected(Rejected::HalfOpenFull { .. }) => "circuit_half_open",
            PayError::Rejected(_) => "circuit_forced_open",
            PayError::Timeout => "payment_timeout",
            PayError::Status(s) if PayError::refusal(*s) => "payment_refused",
            PayError::Status(_) => "payment_error",
            PayError::Unreachable(_) => "payment_unreachable",
            PayError::BadReply => "payment_bad_reply",
        }
    }
}

/// A breaker state change, stamped with tokio's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateChange {
    /// When.
    pub at: Instant,
    /// The new state.
    pub to: State,
}

struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    completed: Counter,
    queued: Counter,
    drained: Counter,
    failed: Counter,
    rejected: Counter,
    queue_depth: Gauge,
    payment_failures: [Counter; PayError::REASONS.len()],
}

impl Metrics {
    fn new() -> Self {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let (completed, queued, drained, failed, rejected, queue_depth) =
            metrics::with_local_recorder(&recorder, || {
                metrics::describe_counter!("orders_total", "Orders answered, by result.");
                metrics::describe_counter!(
                    "orders_drained_total",
                    "Queued orders paid by the worker."
                );
                metrics::describe_counter!(
                    "payment_calls_rejected_total",
                    "Payment calls the circuit breaker refused without calling."
                );
                metrics::describe_gauge!("order_queue_depth", "Orders waiting for payment.");
                metrics::describe_counter!(
                    "payment_call_failures_total",
                    "Payment calls that went out and failed, by reason."
                );
                (
                    metrics::counter!("orders_total", "result" => "completed"),
                    metrics::counter!("orders_total", "result" => "pending"),
                    metrics::counter!("orders_drained_total"),
                    metrics::counter!("orders_total", "result" => "failed"),
                    metrics::counter!("payment_calls_rejected_total"),
                    metrics::gauge!("order_queue_depth"),
                )
            });
        let payment_failures = metrics::with_local_recorder(&recorder, || {
            PayError::REASONS
                .map(|reason| metrics::counter!("payment_call_failures_total", "reason" => reason))
        });
        Self {
            recorder,
            handle,
            completed,
            queued,
            drained,
            failed,
            rejected,
            queue_depth,
            payment_failures,
        }
    }
}

struct Shared {
    /// The payment client wrapped in the breaker (if any) and the timeout.
    payment: HttpClient,
    payment_uri: String,
    breaker: Option<CircuitBreaker>,
    queue: Queue,
    drain_concurrency: usize,
    /// Orders whose payment is being tried right now, live or by the worker.
    in_flight: Mutex<HashSet<String>>,
    changes: Arc<Mutex<Vec<StateChange>>>,
    wake: Notify,
    metrics: Metrics,
    stats: Mutex<OrderStats>,
    last_failure: Mutex<Option<LastFailure>>,
}

/// The last payment call that went out and failed (a rejection by the breaker is not one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LastFailure {
    /// [`PayError::reason`].
    pub reason: &'static str,
    /// What went wrong, in words.
    pub detail: String,
    /// When, in milliseconds since the Unix epoch.
    pub at_unix_ms: u64,
}
/// A running order service: its routes and its queue worker.
///
/// Build it with [`OrderService::open`], serve [`router`](Self::router) with
/// [`net::Server`], and stop it with [`shutdown`](Self::shutdown), which also closes the
/// queue file so that another instance can open it.
pub struct OrderService {
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    worker: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for OrderService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrderService")
            .field("payment_uri", &self.shared.payment_uri)
            .field("breaker", &self.shared.breaker)
            .field("queue", &self.shared.queue.path())
            .finish_non_exhaustive()
    }
}

/// Why an order service could not start.
#[derive(Debug)]
pub enum OpenError {
    /// A bad breaker setting.
    Config(cutout::ConfigError),
    /// The queue could not be opened.
    Queue(QueueError),
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenError::Config(e) => write!(f, "breaker settings: {e}"),
            OpenError::Queue(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for OpenError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            OpenError::Config(e) => Some(e),
            OpenError::Queue(e) => Some(e),
        }
    }
}

impl OrderService {
    /// Opens the queue, builds the breaker (on tokio's clock) and starts the queue worker.
    /// `payment` must reach `config.payment_uri`. Must be called inside a tokio runtime.
    ///
    /// # Errors
    ///
    /// A bad breaker setting, or a queue file that cannot be opened.
    pub fn open(config: OrderConfig, payment: HttpClient) -> Result<OrderService, OpenError> {
        let metrics = Metrics::new();
        let changes = Arc::new(Mutex::new(Vec::new()));
        let breaker = match config.breaker {
            Some(builder) => {
                let log = changes.clone();
                // The breaker's own metrics (cutout's `metrics` feature) register their
                // handles at build time, here against this service's recorder; the call
                // counts are published from the breaker's counters at each scrape.
                let built = metrics::with_local_recorder(&metrics.recorder, || {
                    builder
                        .metrics_with(CallCounts::OnPublish)
                        .on_transition(move |t| {
                            lock(&log).push(StateChange {
                                at: Instant::now(),
                                to: t.to,
                            })
                        })
                        .build_with_clock(cutout::TokioClock::new())
                });
                Some(built.map_err(OpenError::Config)?)
            }
            None => None,
        };
        // The stack: breaker (fail fast, 5xx and 429 are failures) around a timeout around
        // the pooled hyper client. A timeout is an error, and so a failure, to the breaker.
        let payment: HttpClient = match &breaker {
            Some(breaker) => BoxCloneSyncService::new(
                ServiceBuilder::new()
                    .layer(
                        CircuitBreakerLayer::new(breaker.clone()).classify(HttpClassifier::new()),
                    )
                    .timeout(config.timeout)
                    .service(payment),
            ),
            None => BoxCloneSyncService::new(
                ServiceBuilder::new()
                    .timeout(config.timeout)
                    .service(payment),
            ),
        };
        let queue = Queue::open(&config.queue_path).map_err(OpenError::Queue)?;
        let shared = Arc::new(Shared {
            payment,
            payment_uri: config.payment_uri.trim_end_matches('/').to_owned(),
            breaker,
            queue,
            drain_concurrency: config.drain_concurrency.max(1),
            in_flight: Mutex::new(HashSet::new()),
            changes,
            wake: Notify::new(),
            metrics,
            stats: Mutex::new(OrderStats::default()),
            last_failure: Mutex::new(None),
        });
        let (stop, stopped) = watch::channel(false);
        let worker = tokio::spawn(drain(shared.clone(), stopped));
        Ok(OrderService {
            shared,
            stop,
            worker: Some(worker),
        })
    }

    /// The routes: `POST /orders`, `GET /orders/{id}`, `GET /health`, `GET /metrics`.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/orders", post(take_order))
            .route("/orders/{id}", get(order_status))
            .route("/health", get(health))
            .route("/metrics", get(render_metrics))
            .with_state(self.shared.clone())
    }

    /// The breaker, when there is one.
    pub fn breaker(&self) -> Option<&CircuitBreaker> {
        self.shared.breaker.as_ref()
    }

    /// The queue.
    pub fn queue(&self) -> &Queue {
        &self.shared.queue
    }

    /// The breaker's state changes so far.
    pub fn state_changes(&self) -> Vec<StateChange> {
        lock(&self.shared.changes).clone()
    }

    /// What the service counted so far.
    pub fn stats(&self) -> OrderStats {
        let mut stats = *lock(&self.shared.stats);
        stats.pending = self.shared.queue.pending_len().unwrap_or(0);
        stats
    }

    /// Stops the worker and waits for it. Serve the router with a [`net::Server`] and shut
    /// that down first: once both are down the queue file is closed.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(worker) = self.worker.take() {
            let _ = worker.await;
        }
    }
}

impl Drop for OrderService {
    fn drop(&mut self) {
        if let Some(worker) = self.worker.take() {
            worker.abort();
        }
    }
}

/// Locks a mutex whose data stays valid across a panic (every update is one statement).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn reply(status: StatusCode, reply: OrderReply) -> Response {
    (status, Json(reply)).into_response()
}

impl Shared {
    fn count(&self, f: impl FnOnce(&mut OrderStats)) {
        f(&mut lock(&self.stats));
    }

    /// Pays one order: one call through the breaker and the timeout.
    async fn pay(&self, order_id: &str, key: &str, amount_cents: u64) -> Result<Payment, PayError> {
        let request = net::post_json(
            &format!("{}/payments", self.payment_uri),
            &PaymentRequest {
                order_id: order_id.to_owned(),
                idempotency_key: key.to_owned(),
                amount_cents,
            },
        );
        let result = match self.payment.clone().oneshot(request).await {
            Ok(response) if response.status().is_success() => {
                serde_json::from_slice::<Payment>(response.body()).map_err(|_| PayError::BadReply)
            }
            Ok(response) => Err(PayError::Status(response.status().as_u16())),
            Err(e) => {
                // Read through the box (a moved-out `Rejected` has no reason).
                if let Some(reason) = e
                    .downcast_ref::<tower_cutout::error::Rejected>()
                    .and_then(tower_cutout::error::Rejected::reason)
                {
                    self.metrics.rejected.increment(1);
                    self.count(|s| s.rejected += 1);
                    Err(PayError::Rejected(reason))
                } else if e.is::<tower::timeout::error::Elapsed>() {
                    Err(PayError::Timeout)
                } else {
                    Err(PayError::Unreachable(error_chain(&*e)))
                }
            }
        };
        if let Err(e) = &result {
            self.note_failure(e);
        }
        result
    }

    /// Counts a payment call that went out and failed, and remembers it as the last one.
    fn note_failure(&self, e: &PayError) {
        let reason = e.reason();
        let Some(i) = PayError::REASONS.iter().position(|r| *r == reason) else {
            return; // a rejection: the call never went out
        };
        self.metrics.payment_failures[i].increment(1);
        let detail = match e {
            PayError::Timeout => "no answer within the timeout".to_owned(),
            PayError::Status(s) => format!("payment answered {s}"),
            PayError::Unreachable(why) => why.clone(),
            PayError::BadReply => "payment answered something that is not a payment".to_owned(),
            PayError::Rejected(r) => r.to_string(),
        };
        let at_unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        *lock(&self.last_failure) = Some(LastFailure {
            reason,
            detail,
            at_unix_ms,
        });
    }

    /// Claims `order_id` for one payment attempt; `None` when another attempt holds it.
    fn claim(self: &Arc<Self>, order_id: &str) -> Option<Claim> {
        lock(&self.in_flight)
            .insert(order_id.to_owned())
            .then(|| Claim {
                shared: self.clone(),
                order_id: order_id.to_owned(),
            })
    }
}

/// An error and its sources, `: `-separated (hyper's "client error (Connect)" says little
/// without its source).
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        // Wrappers that print their source already (QueueError does) are not repeated.
        let next = s.to_string();
        if !text.ends_with(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}

/// Holds an order id in `in_flight` until dropped.
struct Claim {
    shared: Arc<Shared>,
    order_id: String,
}

impl Drop for Claim {
    fn drop(&mut self) {
        lock(&self.shared.in_flight).remove(&self.order_id);
    }
}

/// The longest order id accepted, in bytes.
pub const MAX_ORDER_ID: usize = 128;

/// The idempotency key of an order: one per order, the same on every attempt.
pub fn idempotency_key(order_id: &str) -> String {
    format!("order-{order_id}")
}

async fn take_order(
    AxumState(shared): AxumState<Arc<Shared>>,
    body: axum::body::Bytes,
) -> Response {
    let order = match serde_json::from_slice::<OrderRequest>(&body) {
        Ok(order) if (1..=MAX_ORDER_ID).contains(&order.order_id.len()) => order,
        _ => {
            return (
                StatusCode::BAD_REQUEST,
                Json(serde_json::json!({
                    "error": "expected {\"order_id\": a string of 1 to 128 bytes, \"amount_cents\": a number}"
                })),
            )
                .into_response();
        }
    };
    let order_id = order.order_id.clone();
    let pending = |reason: &str| {
        reply(
            StatusCode::ACCEPTED,
            OrderReply {
                order_id: order_id.clone(),
                status: OrderState::Pending,
                payment_id: None,
                reason: Some(reason.to_owned()),
            },
        )
    };
    let failed = |status: StatusCode, reason: &str| {
        reply(
            status,
            OrderReply {
                order_id: order_id.clone(),
                status: OrderState::Failed,
                payment_id: None,
                reason: Some(reason.to_owned()),
            },
        )
    };
    // A repeated order gets the answer it already has.
    match shared.queue.status(&order.order_id) {
        Ok(Some(OrderStatus::Done(done))) => {
            return reply(
                StatusCode::OK,
                OrderReply {
                    order_id: order.order_id,
                    status: OrderState::Completed,
                    payment_id: Some(done.payment_id),
                    reason: None,
                },
            );
        }
        Ok(Some(OrderStatus::Pending(_))) => return pending("queued"),
        Ok(None) => {}
        Err(e) => return failed(StatusCode::INTERNAL_SERVER_ERROR, &storage_reason(&e)),
    }
    let Some(_claim) = shared.claim(&order.order_id) else {
        return (
            StatusCode::CONFLICT,
            Json(serde_json::json!({ "error": "this order is being paid right now" })),
        )
            .into_response();
    };
    let key = idempotency_key(&order.order_id);
    match shared.pay(&order.order_id, &key, order.amount_cents).await {
        Ok(payment) => {
            // The payment service's ledger is the record; this one (not waited for on disk)
            // lets GET /orders/{id} and a repeat answer without calling payment. If it is
            // lost, a repeat is paid with the same key and answered with the same payment.
            let _ = shared
                .queue
                .record_paid(&order.order_id, &payment.payment_id);
            shared.metrics.completed.increment(1);
            shared.count(|s| s.completed += 1);
            // A repeat of an order paid before: payment answered with the original payment.
            let status = if payment.replayed {
                StatusCode::OK
            } else {
                StatusCode::CREATED
            };
            let mut response = reply(
                status,
                OrderReply {
                    order_id: order.order_id.clone(),
                    status: OrderState::Completed,
                    payment_id: Some(payment.payment_id),
                    reason: None,
                },
            );
            if let Ok(location) =
                http::HeaderValue::from_str(&format!("/orders/{}", order.order_id))
            {
                response
                    .headers_mut()
                    .insert(http::header::LOCATION, location);
            }
            response
        }
        Err(e) if shared.breaker.is_some() && !e.is_refusal() => {
            match shared.queue.push(&order.order_id, &key, order.amount_cents) {
                Ok(Pushed::AlreadyDone(done)) => reply(
                    StatusCode::OK,
                    OrderReply {
                        order_id: order.order_id,
                        status: OrderState::Completed,
                        payment_id: Some(done.payment_id),
                        reason: None,
                    },
                ),
                Ok(_) => {
                    shared.metrics.queued.increment(1);
                    shared.count(|s| s.queued += 1);
                    shared.wake.notify_one();
                    pending(e.reason())
                }
                Err(storage) => {
                    shared.metrics.failed.increment(1);
                    shared.count(|s| s.failed += 1);
                    // Not taken: the customer is told, and nothing was accepted.
                    failed(StatusCode::INSUFFICIENT_STORAGE, &storage_reason(&storage))
                }
            }
        }
        Err(e) => {
            shared.metrics.failed.increment(1);
            shared.count(|s| s.failed += 1);
            let status = match e {
                _ if e.is_refusal() => StatusCode::UNPROCESSABLE_ENTITY,
                PayError::Timeout => StatusCode::GATEWAY_TIMEOUT,
                _ => StatusCode::BAD_GATEWAY,
            };
            failed(status, e.reason())
        }
    }
}

/// `storage: ` and the queue error with its sources, such as `storage: order queue: ...
/// File too large (os error 27)`.
fn storage_reason(e: &QueueError) -> String {
    format!("storage: {}", error_chain(e))
}

async fn order_status(
    AxumState(shared): AxumState<Arc<Shared>>,
    axum::extract::Path(order_id): axum::extract::Path<String>,
) -> Response {
    // Queued (and maybe paid since), or paid while the customer waited.
    let found = match shared.queue.status(&order_id) {
        Ok(None) => shared
            .queue
            .paid(&order_id)
            .map(|paid| paid.map(OrderStatus::Done)),
        other => other,
    };
    let (status, state, payment_id, reason) = match found {
        Ok(Some(OrderStatus::Done(done))) => (
            StatusCode::OK,
            OrderState::Completed,
            Some(done.payment_id),
            None,
        ),
        Ok(Some(OrderStatus::Pending(_))) => (
            StatusCode::OK,
            OrderState::Pending,
            None,
            Some("queued".to_owned()),
        ),
        Ok(None) => {
            return (
                StatusCode::NOT_FOUND,
                Json(serde_json::json!({ "error": "no such order" })),
            )
                .into_response();
        }
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            OrderState::Failed,
            None,
            Some(storage_reason(&e)),
        ),
    };
    reply(
        status,
        OrderReply {
            order_id,
            status: state,
            payment_id,
            reason,
        },
    )
}

/// The queue worker: pays queued orders, oldest first, while payments go through.
async fn drain(shared: Arc<Shared>, mut stopped: watch::Receiver<bool>) {
    loop {
        if *stopped.borrow() {
            return;
        }
        let batch = shared
            .queue
            .oldest(shared.drain_concurrency)
            .unwrap_or_default();
        if batch.is_empty() {
            tokio::select! {
                _ = shared.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = stopped.changed() => return,
            }
            continue;
        }
        let mut calls = JoinSet::new();
        for order in batch {
            let Some(claim) = shared.claim(&order.order_id) else {
                continue;
            };
            let shared = shared.clone();
            calls.spawn(async move {
                let paid = shared
                    .pay(&order.order_id, &order.idempotency_key, order.amount_cents)
                    .await;
                (claim, order, paid)
            });
        }
        let mut any_failed = calls.is_empty();
        let mut pause: Option<Duration> = None;
        let mut paid = Vec::new();
        let mut refused = Vec::new();
        let mut claims = Vec::new();
        loop {
            tokio::select! {
                joined = calls.join_next() => match joined {
                    Some(Ok((claim, order, result))) => {
                        claims.push(claim);
                        match result {
                            Ok(payment) => paid.push((order, payment.payment_id)),
                            Err(e) if e.is_refusal() => refused.push(order),
                            Err(e) => {
                                any_failed = true;
                                if let PayError::Rejected(r) = e {
                                    if let Some(d) = r.retry_after() {
                                        pause = Some(pause.map_or(d, |p| p.min(d)));
                                    }
                                }
                            }
                        }
                    }
                    Some(Err(_)) => any_failed = true,
                    None => break,
                },
                _ = stopped.changed() => return,
            }
        }
        // One durable transaction for the batch. The claims are held until it commits, so
        // no one pays these orders again meanwhile; if it fails, they stay pending and are
        // paid again with the same keys (answered with the original payments).
        let batch: Vec<(u64, &str, &str)> = paid
            .iter()
            .map(|(o, p)| (o.seq, o.order_id.as_str(), p.as_str()))
            .collect();
        if !batch.is_empty() {
            match shared.queue.complete(&batch) {
                Ok(moved) => {
                    shared.metrics.drained.increment(moved as u64);
                    shared.count(|s| s.drained += moved as u64);
                }
                Err(_) => any_failed = true,
            }
        }
        // Refused for good: out of the way, so that they do not block the queue.
        let gone: Vec<(u64, &str, &str)> = refused
            .iter()
            .map(|o| (o.seq, o.order_id.as_str(), "payment_refused"))
            .collect();
        if !gone.is_empty() && shared.queue.refuse(&gone).is_err() {
            any_failed = true;
        }
        drop(claims);
        if any_failed {
            // Wait for the breaker's retry-after when it gave one, within bounds, so the
            // worker neither spins nor sleeps through a recovery.
            let pause = pause
                .unwrap_or(Duration::from_millis(200))
                .clamp(Duration::from_millis(20), Duration::from_secs(1));
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = stopped.changed() => return,
            }
        }
    }
}

/// The order service's status: `healthy`, or `degraded` while the breaker is open,
/// half-open or forced open (orders are then queued, not paid at once).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceStatus {
    /// Orders are paid as they come.
    Healthy,
    /// Orders are queued.
    Degraded,
}

/// The health report (`GET /health`), serialized like this:
///
/// ```json
/// {"status":"degraded",
///  "breaker":{"name":"payments","state":"open","status":"degraded","retry_after_ms":740,
///             "counts":{"consecutive_failures":0,"failures":5,"rejected":12,"trips":1,...}},
///  "last_failure":{"reason":"payment_error","detail":"payment answered 500","at_unix_ms":1796358845123},
///  "queue_depth":14}
/// ```
#[derive(Debug, Clone, Serialize)]
pub struct Health {
    /// `healthy` or `degraded`.
    pub status: ServiceStatus,
    /// The breaker's report ([`CircuitBreaker::health`]: state, failure counts, retry
    /// time), when there is a breaker.
    pub breaker: Option<cutout::Health>,
    /// The last payment call that went out and failed, if any did.
    pub last_failure: Option<LastFailure>,
    /// Orders waiting in the queue.
    pub queue_depth: u64,
}

async fn health(AxumState(shared): AxumState<Arc<Shared>>) -> Response {
    let breaker = shared.breaker.as_ref().map(CircuitBreaker::health);
    let status = match &breaker {
        Some(b) if !b.is_ok() => ServiceStatus::Degraded,
        _ => ServiceStatus::Healthy,
    };
    Json(Health {
        status,
        breaker,
        last_failure: lock(&shared.last_failure).clone(),
        queue_depth: shared.queue.pending_len().unwrap_or(0),
    })
    .into_response()
}

async fn render_metrics(AxumState(shared): AxumState<Arc<Shared>>) -> Response {
    let m = &shared.metrics;
    m.queue_depth
        .set(shared.queue.pending_len().unwrap_or(0) as f64);
    if let Some(breaker) = &shared.breaker {
        // Sets cutout_calls_total and cutout_probes_total from the breaker's counters.
        breaker.publish_stats();
    }
    (
        [(
            http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        m.handle.render(),
    )
        .into_response()
}
