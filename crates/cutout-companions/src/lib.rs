//! Companions for the [`cutout`] circuit breaker, as tower layers: breaker-aware budgeted
//! retries, bulkheads, adaptive timeouts and fault injection.
//!
//! | module | what | built on |
//! |---|---|---|
//! | [`retry`] | a [`Policy`](tower::retry::Policy) that never retries a breaker rejection, honours `Retry-After`, repeats only safe requests, and is capped by a retry budget | tower's `Retry` and `TpsBudget` |
//! | [`bulkhead`] | at most N calls in flight, the rest refused at once; per key, in a bounded map | tower's `ConcurrencyLimit` + `LoadShed` |
//! | [`timeout`] | a timeout that follows observed latency (p99 x 2, clamped), lock-free | `tokio::time` |
//! | [`fault`] | seeded errors, latency and outage windows for tests and drills; off unless configured | `tokio::time` |
//! | [`classify`] | the breaker classification for this stack (a full bulkhead is not a failure) | `tower-cutout` |
//!
//! # The recommended stack
//!
//! From the outside in:
//!
//! ```text
//! retry (budgeted) -> circuit breaker -> bulkhead -> adaptive timeout -> fault injection -> service
//! ```
//!
//! - **Retry, outermost.** Every attempt goes through the breaker, so a retry that meets
//!   an open circuit is rejected at once and the policy stops there; with
//!   [`RetryBuilder::breaker`](retry::RetryBuilder::breaker) it does not even wait out the
//!   backoff. The budget caps retries at a fraction of the traffic, so retries cannot
//!   multiply the load of an outage. A retry inside the breaker would instead hide
//!   failures from it and keep hammering a dependency it should protect.
//! - **Circuit breaker, above the bulkhead.** An open circuit rejects before a bulkhead
//!   slot is taken, so rejections cost nothing. A full bulkhead is this process shedding
//!   its own load, not the dependency failing: classify it as ignored with
//!   [`classify::IgnoreLocalRejections`].
//! - **Bulkhead, above the timeout.** A slot is held at most for the timeout: a hung call
//!   times out and frees its slot instead of holding it forever.
//! - **Adaptive timeout, below the breaker.** A timeout is an `Err` the breaker counts as
//!   a failure, so a dependency that turns slow trips the breaker.
//! - **Fault injection, innermost.** An injected error or delay looks exactly like the
//!   dependency's own to every layer above: delays hit the timeout, errors the breaker and
//!   the retries. Disabled, it is a pass-through.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), cutout_companions::BoxError> {
//! use cutout_companions::bulkhead::BulkheadLayer;
//! use cutout_companions::classify::IgnoreLocalRejections;
//! use cutout_companions::fault::FaultInjectionLayer;
//! use cutout_companions::retry::RetryPolicy;
//! use cutout_companions::timeout::AdaptiveTimeoutLayer;
//! use std::time::Duration;
//! use tower::{Service, ServiceBuilder, ServiceExt};
//! use tower_cutout::CircuitBreakerLayer;
//!
//! let breaker = cutout::CircuitBreaker::builder()
//!     .name("inventory")
//!     .failure_threshold(5)
//!     .open_duration(Duration::from_secs(10))
//!     .build()?;
//! let retry = RetryPolicy::builder().max_retries(2).breaker(&breaker).build()?;
//! let mut svc = ServiceBuilder::new()
//!     .layer(retry.into_layer())
//!     .layer(CircuitBreakerLayer::new(breaker.clone()).classify(IgnoreLocalRejections))
//!     .layer(BulkheadLayer::new(64))
//!     .layer(AdaptiveTimeoutLayer::builder().build()?)
//!     .layer(FaultInjectionLayer::disabled())
//!     .service_fn(|sku: u32| async move { Ok::<_, std::io::Error>(sku * 2) });
//!
//! assert_eq!(svc.ready().await?.call(21).await?, 42);
//! # Ok(())
//! # }
//! ```
//!
//! [`ServiceBuilderExt`] adds `.retry_policy(..)`, `.bulkhead(..)`, `.adaptive_timeout(..)`
//! and `.fault_injection(..)` to `ServiceBuilder`.
//!
//! Every layer's error is a [`BoxError`]; find a rejection with `err.is::<T>()` or the
//! helpers in [`error`], which walk the error's source chain.
//!
//! The layers that wait (retry backoffs, the adaptive timeout, injected delays) use
//! `tokio::time` and need a tokio runtime with its time driver, as tower's own `Timeout`
//! and `Retry` backoffs do. Every shared state is owned by its layer: clone a layer (or the
//! services it made) to share it, build a new one to get a new one.
//!
//! # Features
//!
//! | feature | what it adds |
//! |---|---|
//! | `http` | `retry::IdempotentRequests` (repeat only idempotent methods or requests with an `Idempotency-Key`), `retry::RetryableStatus` (retry 429, 502, 503, 504, waiting out `Retry-After`) |

#![forbid(unsafe_code)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    rust_2018_idioms
)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod builder;
pub mod bulkhead;
pub mod classify;
pub mod error;
pub mod fault;
pub mod retry;
mod rng;
pub mod timeout;

pub use builder::ServiceBuilderExt;
pub use error::{BoxError, ConfigError};
