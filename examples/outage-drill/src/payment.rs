//! The payment service, with a scripted outage.
//!
//! `POST /payments` charges an order once per idempotency key: a repeated key returns the
//! original payment and charges nothing. `GET /health` says whether the service is up.
//!
//! [`PaymentService::script`] overrides the plan at run time with a [`ScriptedFault`] (fail,
//! hang, slow) until it is cleared: `outage-drill serve payment` exposes it as
//! `POST /admin/fault` (see [`crate::serve`]).
//!
//! A [`FaultPlan`] scripts the service's day: healthy, then an outage, then recovered.
//! During the outage every request fails, in one of three ways drawn from the seed, the
//! idempotency key and the attempt number (so a run is reproducible):
//!
//! | fault | share | what the caller sees |
//! |---|---|---|
//! | [`Fault::Error`] | 45 % | a `500` after 50-150 ms |
//! | [`Fault::Hang`] | 45 % | nothing for [`FaultPlan::hang`] (the connection is held open), then a `500` |
//! | [`Fault::ChargeThenHang`] | 10 % | the card **is charged** at once, then nothing for [`FaultPlan::hang`], then a `200` |
//!
//! The last one is the classic double-charge trap: a caller that times out and retries
//! with a new key pays twice. The service counts every request (total and during the
//! outage), the requests in progress, and the charges per order, so the drill can check
//! that no order was paid twice.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::net::Gauge;

/// A charge request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentRequest {
    /// The order being paid.
    pub order_id: String,
    /// One key per order, the same on every retry: the service charges once per key.
    pub idempotency_key: String,
    /// The amount, in cents.
    pub amount_cents: u64,
}

/// A payment made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payment {
    /// The payment's id.
    pub payment_id: String,
    /// The order paid.
    pub order_id: String,
    /// The amount charged, in cents.
    pub amount_cents: u64,
    /// True when this answer repeats an earlier charge for the same idempotency key.
    pub replayed: bool,
}

/// A fault set at run time ([`PaymentService::script`]), for every request from then on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum ScriptedFault {
    /// A `500` at once; nothing is charged.
    Fail,
    /// No answer for `ms` milliseconds (the connection is held open), then a `500`;
    /// nothing is charged.
    Hang {
        /// How long the request is held.
        ms: u64,
    },
    /// Healthy, but each charge takes `ms` milliseconds.
    Slow {
        /// The time a charge takes.
        ms: u64,
    },
}

impl ScriptedFault {
    /// Whether requests fail under this fault (it counts as an outage).
    pub fn fails(self) -> bool {
        !matches!(self, ScriptedFault::Slow { .. })
    }
}

/// Where a moment falls in the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Before the outage.
    Healthy,
    /// During the outage.
    Outage,
    /// After the outage.
    Recovered,
}

/// How one request fails during the outage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// A `500` after the given time.
    Error {
        /// The time before the answer.
        after: Duration,
    },
    /// No answer for [`FaultPlan::hang`], then a `500`.
    Hang,
    /// The charge is made at once, then no answer for [`FaultPlan::hang`], then a `200`.
    ChargeThenHang,
}

/// The script: healthy until `outage_start`, failing for `outage`, then recovered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultPlan {
    /// When the outage begins, from the service's origin.
    pub outage_start: Duration,
    /// How long it lasts.
    pub outage: Duration,
    /// How long a hanging request holds its connection.
    pub hang: Duration,
    /// The seed for latencies and faults.
    pub seed: u64,
}

impl FaultPlan {
    /// When the outage ends.
    pub fn outage_end(&self) -> Duration {
        self.outage_start.saturating_add(self.outage)
    }

    /// The phase at `at` (from the origin).
    ///
    /// ```
    /// use outage_drill::payment::{FaultPlan, Phase};
    /// use std::time::Duration;
    ///
    /// let plan = FaultPlan {
    ///     outage_start: Duration::from_secs(10),
    ///     outage: Duration::from_secs(5),
    ///     hang: Duration::from_secs(3),
    ///     seed: 1,
    /// };
    /// assert_eq!(plan.phase(Duration::from_secs(9)), Phase::Healthy);
    /// assert_eq!(plan.phase(Duration::from_secs(10)), Phase::Outage);
    /// assert_eq!(plan.phase(Duration::from_secs(15)), Phase::Recovered);
    /// ```
    pub fn phase(&self, at: Duration) -> Phase {
        if at < self.outage_start {
            Phase::Healthy
        } else if at < self.outage_end() {
            Phase::Outage
        } else {
            Phase::Recovered
        }
    }

    /// The fault for the `attempt`-th request (from 0) with `key` during the outage.
    pub fn fault(&self, key: &str, attempt: u32) -> Fault {
        let r = mix(self.seed, key, attempt);
        match r % 100 {
            0..45 => Fault::Error {
                after: Duration::from_millis(50 + (r >> 8) % 101),
            },
            45..90 => Fault::Hang,
            _ => Fault::ChargeThenHang,
        }
    }

    /// The time a healthy charge takes: 2-8 ms.
    pub fn service_time(&self, key: &str, attempt: u32) -> Duration {
        Duration::from_millis(2 + (mix(self.seed ^ 0x5EED, key, attempt) % 7))
    }
}

/// A reproducible 64-bit draw from the seed, a key and an attempt number.
fn mix(seed: u64, key: &str, attempt: u32) -> u64 {
    // FNV-1a over the key, then splitmix64's finaliser.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed;
    for b in key.bytes().chain(attempt.to_le_bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// What the payment service counted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PaymentStats {
    /// Requests received.
    pub requests: u64,
    /// Requests received during the outage: calls that reached the failing service.
    pub requests_during_outage: u64,
    /// Charges made (one per idempotency key at most).
    pub charges: u64,
    /// Answers that repeated an earlier charge (a retry with the same key).
    pub replays: u64,
    /// Orders charged more than once (must be zero).
    pub orders_charged_twice: u64,
    /// The most requests in progress at once.
    pub peak_in_progress: u64,
    /// When each request arrived, from the origin, and in which phase.
    pub arrivals: Vec<(Duration, Phase)>,
}

#[derive(Debug, Default)]
struct Ledger {
    /// Payment by idempotency key.
    by_key: HashMap<String, Payment>,
    /// Charges per order id (more than one would be a double charge).
    charges_per_order: HashMap<String, u32>,
    /// Requests seen per key, for the fault draw.
    attempts: HashMap<String, u32>,
    arrivals: Vec<(Duration, Phase)>,
    next_id: u64,
}

#[derive(Debug)]
struct Shared {
    plan: FaultPlan,
    origin: Instant,
    ledger: Mutex<Ledger>,
    requests: AtomicU64,
    requests_during_outage: AtomicU64,
    replays: AtomicU64,
    in_progress: Arc<Gauge>,
    /// A fault set at run time, which overrides the plan while set.
    scripted: Mutex<Option<ScriptedFault>>,
}

/// The payment service: cheap to clone, clones share one ledger.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use outage_drill::payment::{FaultPlan, PaymentService};
/// use std::time::Duration;
///
/// let plan = FaultPlan {
///     outage_start: Duration::from_secs(10),
///     outage: Duration::from_secs(5),
///     hang: Duration::from_secs(3),
///     seed: 7,
/// };
/// let payment = PaymentService::new(plan, tokio::time::Instant::now());
/// let router = payment.router(); // serve it with outage_drill::net::Server
/// assert_eq!(payment.stats().requests, 0);
/// # drop(router);
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct PaymentService {
    shared: Arc<Shared>,
}

impl PaymentService {
    /// A service following `plan`, whose times count from `origin`.
    pub fn new(plan: FaultPlan, origin: Instant) -> Self {
        Self {
            shared: Arc::new(Shared {
                plan,
                origin,
                ledger: Mutex::new(Ledger::default()),
                requests: AtomicU64::new(0),
                requests_during_outage: AtomicU64::new(0),
                replays: AtomicU64::new(0),
                in_progress: Arc::new(Gauge::default()),
                scripted: Mutex::new(None),
            }),
        }
    }

    /// The plan.
    pub fn plan(&self) -> &FaultPlan {
        &self.shared.plan
    }

    /// The phase now.
    pub fn phase(&self) -> Phase {
        self.shared.phase_at(self.shared.origin.elapsed()).1
    }

    /// The routes: `POST /payments`, `GET /health`.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/payments", post(pay))
            .route("/health", get(health))
            .with_state(self.shared.clone())
    }

    /// What the service counted so far.
    pub fn stats(&self) -> PaymentStats {
        let ledger = self.shared.ledger();
        PaymentStats {
            requests: self.shared.requests.load(Ordering::SeqCst),
            requests_during_outage: self.shared.requests_during_outage.load(Ordering::SeqCst),
            charges: ledger.by_key.len() as u64,
            replays: self.shared.replays.load(Ordering::SeqCst),
            orders_charged_twice: ledger
                .charges_per_order
                .values()
                .filter(|&&n| n > 1)
                .count() as u64,
            peak_in_progress: self.shared.in_progress.peak(),
            arrivals: ledger.arrivals.clone(),
        }
    }

    /// Sets a fault that overrides the plan from now on (`None`: follow the plan again).
    /// Requests already in progress keep the fault they started with.
    pub fn script(&self, fault: Option<ScriptedFault>) {
        *self
            .shared
            .scripted
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = fault;
    }

    /// The fault set with [`script`](Self::script), if any.
    pub fn scripted(&self) -> Option<ScriptedFault> {
        *self
            .shared
            .scripted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Charges per order id, for every order charged at least once.
    pub fn charges(&self) -> HashMap<String, u32> {
        self.shared.ledger().charges_per_order.clone()
    }

    /// How many times `order_id` was charged.
    pub fn charges_for(&self, order_id: &str) -> u32 {
        self.shared
            .ledger()
            .charges_per_order
            .get(order_id)
            .copied()
            .unwrap_or(0)
    }

    /// The requests in progress now and at the peak.
    pub fn in_progress(&self) -> &Arc<Gauge> {
        &self.shared.in_progress
    }
}

impl Shared {
    /// The scripted fault, if any, and the phase at `at`: a scripted fault that fails is an
    /// outage, one that does not is healthy; without one, the plan says.
    fn phase_at(&self, at: Duration) -> (Option<ScriptedFault>, Phase) {
        let scripted = *self.scripted.lock().unwrap_or_else(|e| e.into_inner());
        let phase = match scripted {
            Some(fault) if fault.fails() => Phase::Outage,
            Some(_) => Phase::Healthy,
            None => self.plan.phase(at),
        };
        (scripted, phase)
    }

    fn ledger(&self) -> MutexGuard<'_, Ledger> {
        // A panic while holding the lock cannot leave the ledger half-written (every
        // update is a single insert), so a poisoned lock is still a good ledger.
        self.ledger.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Charges once per key; returns the payment and whether it repeats an earlier one.
    fn charge(&self, request: &PaymentRequest) -> Result<Payment, Conflict> {
        let mut ledger = self.ledger();
        if let Some(existing) = ledger.by_key.get(&request.idempotency_key) {
            if existing.order_id != request.order_id
                || existing.amount_cents != request.amount_cents
            {
                return Err(Conflict);
            }
            self.replays.fetch_add(1, Ordering::SeqCst);
            return Ok(Payment {
                replayed: true,
                ..existing.clone()
            });
        }
        ledger.next_id += 1;
        let payment = Payment {
            payment_id: format!("pay-{:06}", ledger.next_id),
            order_id: request.order_id.clone(),
            amount_cents: request.amount_cents,
            replayed: false,
        };
        ledger
            .by_key
            .insert(request.idempotency_key.clone(), payment.clone());
        *ledger
            .charges_per_order
            .entry(request.order_id.clone())
            .or_insert(0) += 1;
        Ok(payment)
    }
}

/// The key was used before for a different order or amount.
struct Conflict;

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}

async fn pay(State(shared): State<Arc<Shared>>, body: axum::body::Bytes) -> Response {
    let _in_progress = shared.in_progress.enter();
    let at = shared.origin.elapsed();
    let (scripted, phase) = shared.phase_at(at);
    shared.requests.fetch_add(1, Ordering::SeqCst);
    if phase == Phase::Outage {
        shared.requests_during_outage.fetch_add(1, Ordering::SeqCst);
    }
    let Ok(request) = serde_json::from_slice::<PaymentRequest>(&body) else {
        shared.ledger().arrivals.push((at, phase));
        return error(
            StatusCode::BAD_REQUEST,
            "expected order_id, idempotency_key, amount_cents",
        );
    };
    let attempt = {
        let mut ledger = shared.ledger();
        ledger.arrivals.push((at, phase));
        let n = ledger
            .attempts
            .entry(request.idempotency_key.clone())
            .or_insert(0);
        let attempt = *n;
        *n = n.saturating_add(1);
        attempt
    };
    match scripted {
        Some(ScriptedFault::Fail) => {
            return error(StatusCode::INTERNAL_SERVER_ERROR, "ledger unavailable");
        }
        Some(ScriptedFault::Hang { ms }) => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            return error(StatusCode::INTERNAL_SERVER_ERROR, "ledger timed out");
        }
        Some(ScriptedFault::Slow { .. }) | None => {}
    }
    if phase == Phase::Outage {
        match shared.plan.fault(&request.idempotency_key, attempt) {
            Fault::Error { after } => {
                tokio::time::sleep(after).await;
                return error(StatusCode::INTERNAL_SERVER_ERROR, "ledger unavailable");
            }
            Fault::Hang => {
                tokio::time::sleep(shared.plan.hang).await;
                return error(StatusCode::INTERNAL_SERVER_ERROR, "ledger timed out");
            }
            Fault::ChargeThenHang => {
                let charged = shared.charge(&request);
                tokio::time::sleep(shared.plan.hang).await;
                return match charged {
                    Ok(payment) => Json(payment).into_response(),
                    Err(Conflict) => error(StatusCode::CONFLICT, "idempotency key reused"),
                };
            }
        }
    }
    let service_time = match scripted {
        Some(ScriptedFault::Slow { ms }) => Duration::from_millis(ms),
        _ => shared.plan.service_time(&request.idempotency_key, attempt),
    };
    tokio::time::sleep(service_time).await;
    match shared.charge(&request) {
        Ok(payment) => Json(payment).into_response(),
        Err(Conflict) => error(
            StatusCode::CONFLICT,
            "idempotency key reused for another order or amount",
        ),
    }
}

async fn health(State(shared): State<Arc<Shared>>) -> Response {
    match shared.phase_at(shared.origin.elapsed()).1 {
        Phase::Outage => error(StatusCode::SERVICE_UNAVAILABLE, "down"),
        _ => Json(serde_json::json!({ "status": "ok" })).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> FaultPlan {
        FaultPlan {
            outage_start: Duration::from_secs(1),
            outage: Duration::from_secs(2),
            hang: Duration::from_secs(3),
            seed: 42,
        }
    }

    #[test]
    fn faults_are_reproducible_and_mixed() {
        let plan = plan();
        let draws: Vec<Fault> = (0..1000)
            .map(|i| plan.fault(&format!("order-{i}"), 0))
            .collect();
        let again: Vec<Fault> = (0..1000)
            .map(|i| plan.fault(&format!("order-{i}"), 0))
            .collect();
        assert_eq!(draws, again);
        let errors = draws
            .iter()
            .filter(|f| matches!(f, Fault::Error { .. }))
            .count();
        let hangs = draws.iter().filter(|f| **f == Fault::Hang).count();
        let charged = draws
            .iter()
            .filter(|f| **f == Fault::ChargeThenHang)
            .count();
        assert_eq!(errors + hangs + charged, 1000);
        // Shares of 45/45/10 per cent, within sampling noise.
        assert!((380..520).contains(&errors), "{errors}");
        assert!((380..520).contains(&hangs), "{hangs}");
        assert!((60..140).contains(&charged), "{charged}");
        for f in draws {
            if let Fault::Error { after } = f {
                assert!((50..=150).contains(&after.as_millis()), "{after:?}");
            }
        }
    }

    #[test]
    fn a_repeated_key_is_charged_once() {
        let service = PaymentService::new(plan(), Instant::now());
        let request = PaymentRequest {
            order_id: "o-1".into(),
            idempotency_key: "order-o-1".into(),
            amount_cents: 1999,
        };
        let first = service.shared.charge(&request).ok().expect("charged");
        let second = service.shared.charge(&request).ok().expect("replayed");
        assert!(!first.replayed);
        assert!(second.replayed);
        assert_eq!(first.payment_id, second.payment_id);
        assert_eq!(service.charges_for("o-1"), 1);
        let stats = service.stats();
        assert_eq!(
            (stats.charges, stats.replays, stats.orders_charged_twice),
            (1, 1, 0)
        );

        let other_amount = PaymentRequest {
            amount_cents: 1,
            ..request.clone()
        };
        assert!(service.shared.charge(&other_amount).is_err());
        // A second key for the same order is a second charge: the ledger sees it.
        let new_key = PaymentRequest {
            idempotency_key: "another".into(),
            ..request
        };
        assert!(service.shared.charge(&new_key).is_ok());
        assert_eq!(service.charges_for("o-1"), 2);
        assert_eq!(service.stats().orders_charged_twice, 1);
    }
}
