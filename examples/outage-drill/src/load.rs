//! The load generator: orders at a fixed rate for a fixed time (an open loop: a slow answer
//! does not slow the sending down, as with real customers).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http::StatusCode;
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};
use tower::ServiceExt;

use crate::net::{self, HttpClient};
use crate::orders::{OrderReply, OrderRequest, OrderState};

/// How much load, for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadPlan {
    /// Orders per second.
    pub rate: u32,
    /// How long to send.
    pub duration: Duration,
    /// How long a customer waits for an answer before giving up.
    pub patience: Duration,
}

impl LoadPlan {
    /// The number of orders the plan sends: `rate × duration`, rounded down.
    ///
    /// ```
    /// use outage_drill::load::LoadPlan;
    /// use std::time::Duration;
    ///
    /// let plan = LoadPlan { rate: 40, duration: Duration::from_millis(2500), patience: Duration::from_secs(5) };
    /// assert_eq!(plan.orders(), 100);
    /// ```
    pub fn orders(&self) -> u64 {
        (u128::from(self.rate) * self.duration.as_millis() / 1000) as u64
    }
}

/// What a customer got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// `201 completed` (or `200`, for an order answered before).
    Completed,
    /// `202 pending`, with the reason given.
    Pending(String),
    /// An error answer, or none at all, with the reason.
    Failed(String),
}

/// One order sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRecord {
    /// Its id.
    pub order_id: String,
    /// When it was sent, from the origin.
    pub sent_at: Duration,
    /// How long the answer took.
    pub latency: Duration,
    /// The answer.
    pub answer: Answer,
}

/// A live count of answers, for the progress line.
#[derive(Debug, Default)]
pub struct Tally {
    /// Orders sent.
    pub sent: AtomicU64,
    /// Answered completed.
    pub completed: AtomicU64,
    /// Answered pending.
    pub pending: AtomicU64,
    /// Answered failed (or not answered).
    pub failed: AtomicU64,
}

/// The order id of the `n`-th order.
pub fn order_id(n: u64) -> String {
    format!("o-{n:06}")
}

/// `POST uri` with the `n`-th order of a run: `order_id`, an amount of 10.00 to 99.99.
pub fn order_request(
    uri: &str,
    order_id: &str,
    n: u64,
) -> http::Request<http_body_util::Full<bytes::Bytes>> {
    net::post_json(
        uri,
        &OrderRequest {
            order_id: order_id.to_owned(),
            amount_cents: 1000 + n % 9000,
        },
    )
}

/// Sends `plan.orders()` orders to `orders_uri` (the order service's base URI) through
/// `client`, one every `1 / rate`, starting now; returns one record per order, in order.
/// Times are measured from `origin`.
pub async fn run(
    client: HttpClient,
    orders_uri: &str,
    plan: LoadPlan,
    origin: Instant,
    tally: Arc<Tally>,
) -> Vec<OrderRecord> {
    run_with_ids(client, orders_uri, plan, origin, tally, order_id).await
}

/// [`run`], with the `n`-th order's id from `ids` (several order services sharing one
/// payment service need ids of their own).
pub async fn run_with_ids(
    client: HttpClient,
    orders_uri: &str,
    plan: LoadPlan,
    origin: Instant,
    tally: Arc<Tally>,
    ids: impl Fn(u64) -> String + Send + Sync + 'static,
) -> Vec<OrderRecord> {
    let ids = Arc::new(ids);
    let total = plan.orders();
    let uri: Arc<str> = Arc::from(format!("{}/orders", orders_uri.trim_end_matches('/')));
    let period = Duration::from_secs(1) / plan.rate.max(1);
    let mut ticks = tokio::time::interval(period);
    // An open loop: if the sender falls behind, catch up rather than send fewer orders.
    ticks.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let mut sent = JoinSet::new();
    for n in 0..total {
        ticks.tick().await;
        let client = client.clone();
        let uri = uri.clone();
        let tally = tally.clone();
        let ids = ids.clone();
        sent.spawn(async move {
            let order_id = ids(n);
            let request = order_request(&uri, &order_id, n);
            let start = Instant::now();
            tally.sent.fetch_add(1, Ordering::Relaxed);
            let answer = match tokio::time::timeout(plan.patience, client.oneshot(request)).await {
                Err(_) => Answer::Failed("no answer".into()),
                Ok(Err(e)) => Answer::Failed(format!("unreachable: {e}")),
                Ok(Ok(response)) => {
                    let status = response.status();
                    let parsed = serde_json::from_slice::<OrderReply>(response.body()).ok();
                    match (status, parsed) {
                        (StatusCode::CREATED | StatusCode::OK, Some(r))
                            if r.status == OrderState::Completed =>
                        {
                            Answer::Completed
                        }
                        (StatusCode::ACCEPTED, Some(r)) if r.status == OrderState::Pending => {
                            Answer::Pending(r.reason.unwrap_or_default())
                        }
                        (_, Some(r)) => {
                            Answer::Failed(r.reason.unwrap_or_else(|| status.as_u16().to_string()))
                        }
                        (_, None) => Answer::Failed(status.as_u16().to_string()),
                    }
                }
            };
            let counter = match answer {
                Answer::Completed => &tally.completed,
                Answer::Pending(_) => &tally.pending,
                Answer::Failed(_) => &tally.failed,
            };
            counter.fetch_add(1, Ordering::Relaxed);
            OrderRecord {
                order_id,
                sent_at: start.saturating_duration_since(origin),
                latency: start.elapsed(),
                answer,
            }
        });
    }
    let mut records = Vec::with_capacity(total as usize);
    while let Some(joined) = sent.join_next().await {
        if let Ok(record) = joined {
            records.push(record);
        }
    }
    records.sort_by(|a, b| a.order_id.cmp(&b.order_id));
    records
}
