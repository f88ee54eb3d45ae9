//! Tower middleware for the [`cutout`] circuit breaker.
//!
//! [`CircuitBreakerLayer`] wraps a service in a [`CircuitBreaker`] service. While the
//! breaker is open, requests are rejected without reaching the inner service, and the inner
//! service's `poll_ready` is not polled: a sick dependency gets no load.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), tower_cutout::error::BoxError> {
//! use std::time::Duration;
//! use tower::{Service, ServiceBuilder, ServiceExt};
//! use tower_cutout::{ServiceBuilderExt, error::Rejected};
//!
//! let breaker = cutout::CircuitBreaker::builder()
//!     .failure_threshold(3)
//!     .open_duration(Duration::from_secs(30))
//!     .build()?;
//! let mut svc = ServiceBuilder::new()
//!     .circuit_breaker(breaker.clone())
//!     .service_fn(|_req: ()| async { Err::<(), _>("dependency down") });
//!
//! for _ in 0..3 {
//!     let err = svc.ready().await?.call(()).await.unwrap_err();
//!     assert_eq!(err.to_string(), "dependency down");
//! }
//! let err = svc.ready().await?.call(()).await.unwrap_err();
//! let rejected = err.downcast_ref::<Rejected>().expect("rejected by the breaker");
//! assert!(rejected.retry_after().unwrap() <= Duration::from_secs(30));
//! # Ok(())
//! # }
//! ```
//!
//! # The tower contract
//!
//! - A rejection never calls the inner service and never returns `Err` from `poll_ready`
//!   (which would tell a caller to throw the service away).
//! - **Fail fast** (default): `poll_ready` is ready at once; `call` returns an already-failed
//!   future. **Backpressure** ([`CircuitBreakerLayer::backpressure`]): `poll_ready` stays
//!   `Pending` until the breaker would admit a call, and wakes itself at the end of the open
//!   time, so a load balancer routes around the endpoint.
//! - `poll_ready` reserves the permit (a half-open probe slot) for the next `call`; a
//!   reservation whose `call` never comes is given back when the service is dropped.
//! - The response future owns the permit; dropping it early gives the permit back as
//!   [`cutout::Outcome::Ignored`].
//!
//! # Sharing
//!
//! A [`cutout::CircuitBreaker`] is a handle: clones share one breaker. Every service a
//! [`CircuitBreakerLayer`] makes shares the layer's breaker, and so do clones of those
//! services. [`CircuitBreakerLayer::new`] and [`CircuitBreaker::new`] share a breaker you
//! built (and can watch); [`CircuitBreakerLayer::from_builder`] builds one, once.
//!
//! The fast way is a `&'static cutout::CircuitBreaker` ([`cutout::CircuitBreaker::leak`],
//! or a `static` in a `std::sync::LazyLock`): the response future then borrows the breaker
//! instead of holding a reference count on it, so no request writes memory other threads
//! share while the circuit is closed (see [`handle`]).
//!
//! # Classification
//!
//! By default `Err` is a failure and `Ok` a success. [`CircuitBreakerLayer::classify`] takes
//! a closure over `&Result<Response, Error>` returning a [`cutout::Outcome`], or any
//! [`classify::Classify`], which may record later (after a body's trailers) or with an
//! upstream's retry-after. [`CircuitBreakerLayer::slow_call_threshold`] counts slow
//! responses as failures.
//!
//! # Features
//!
//! | feature | what it adds |
//! |---|---|
//! | `http` | `http::HttpClassifier` (5xx and 429 are failures, upstream `Retry-After`), `http::ServiceUnavailable` (a rejection is a `503` with `Retry-After`) |
//! | `grpc` | `grpc::GrpcClassifier` (by `grpc-status`, in headers or trailers), rejections as `tonic::Status::unavailable` |
//! | `balance` | `eject::Ejection`: endpoint ejection in tower's p2c balancer, a breaker per endpoint with a guardrail on the share ejected |
//! | `keyed` | `keyed::KeyedCircuitBreakerLayer`: a breaker per key (per host with `keyed::Authority` and `http`), from a bounded `cutout_keyed` registry |

// Denied, not forbidden: `tagged` (the zero-sized boxed errors) is the one module allowed it.
#![deny(unsafe_code)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    rust_2018_idioms
)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod builder;
mod circuit_breaker;
pub mod classify;
#[cfg(feature = "http")]
mod decimal;
#[cfg(feature = "balance")]
#[cfg_attr(docsrs, doc(cfg(feature = "balance")))]
pub mod eject;
#[cfg(feature = "grpc")]
#[cfg_attr(docsrs, doc(cfg(feature = "grpc")))]
pub mod grpc;
pub mod handle;
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub mod http;
#[cfg(feature = "keyed")]
#[cfg_attr(docsrs, doc(cfg(feature = "keyed")))]
pub mod keyed;
mod recording;
pub mod reject;
#[allow(unsafe_code)]
mod tagged;
mod wake;

pub use builder::ServiceBuilderExt;
pub use circuit_breaker::{
    CircuitBreaker, CircuitBreakerLayer, DEFAULT_RECHECK_INTERVAL, error, future,
};
pub use handle::BreakerHandle;
#[cfg(feature = "keyed")]
#[cfg_attr(docsrs, doc(cfg(feature = "keyed")))]
pub use keyed::{KeyedCircuitBreaker, KeyedCircuitBreakerLayer};
