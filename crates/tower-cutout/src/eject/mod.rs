//! Endpoint ejection in tower's balancer: a breaker per endpoint of a
//! [`tower::balance::p2c::Balance`], so the balancer routes around sick endpoints.
//!
//! [`Ejection`] wraps a [`tower::discover::Discover`] (any stream of
//! [`Change`]s) and puts each discovered endpoint behind its own
//! [`cutout::CircuitBreaker`] (an [`Ejectable`]):
//!
//! - **Closed**: the endpoint is ready when its service is; `Ok` responses are successes,
//!   `Err` failures.
//! - **Open**: the endpoint is *ejected*. Its `poll_ready` is `Pending`, so p2c picks among
//!   the others, and it wakes itself when the open time ends.
//! - **Half-open**: the endpoint is ready only while it holds a probe slot. It takes exactly
//!   its breaker's `half_open_max_calls` probes; their outcomes close the breaker or open it
//!   again.
//! - **Guardrail**: at most a share of the endpoints (default 50%, like Envoy's max
//!   ejection percent) is ejected at once. Past it, the least recently ejected are let
//!   through and take calls again, so the balancer keeps serving when every endpoint is
//!   sick. See [`Guardrail`].
//!
//! A healthy endpoint's `poll_ready` costs one breaker permit (one load of the breaker's
//! state and one reference count) and one load of its ejection mark; the guardrail's lock
//! is taken only when an endpoint is ejected, restored, added or removed.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), tower::BoxError> {
//! use std::time::Duration;
//! use tower::balance::p2c::Balance;
//! use tower::discover::ServiceList;
//! use tower::load::Constant;
//! use tower::{Service, ServiceExt, service_fn};
//! use tower_cutout::eject::Ejection;
//!
//! // Three endpoints; the one at index 2 always fails.
//! let endpoints = (0..3).map(|i: usize| {
//!     Constant::new(
//!         service_fn(move |req: u32| async move {
//!             if i == 2 { Err::<u32, tower::BoxError>("down".into()) } else { Ok(req + 1) }
//!         }),
//!         0,
//!     )
//! });
//! let ejection = Ejection::new(ServiceList::new(endpoints), |_key: &usize| {
//!     cutout::CircuitBreaker::builder()
//!         .failure_threshold(1)
//!         .open_duration(Duration::from_secs(30))
//!         .build_with_clock(cutout::TokioClock::new())
//! });
//! let guardrail = ejection.guardrail();
//! let mut balancer = Balance::new(ejection);
//!
//! let mut failed = 0;
//! for n in 0..100 {
//!     match balancer.ready().await?.call(n).await {
//!         Ok(reply) => assert_eq!(reply, n + 1),
//!         Err(_) => failed += 1,
//!     }
//! }
//! // The sick endpoint failed once, tripped its breaker, and was routed around.
//! assert_eq!(failed, 1);
//! assert_eq!((guardrail.endpoints(), guardrail.ejected(), guardrail.let_through()), (3, 1, 0));
//! # Ok(())
//! # }
//! ```

mod guardrail;
mod service;

use std::error::Error;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use futures_core::{Stream, TryStream};
use pin_project_lite::pin_project;
use tower::BoxError;
pub use tower::discover::Change;

pub use guardrail::Guardrail;
pub use service::{EjectFuture, Ejectable};

use crate::DEFAULT_RECHECK_INTERVAL;

/// The share of endpoints that may be ejected at once by default (Envoy's default max
/// ejection percent).
pub const DEFAULT_MAX_EJECTED_SHARE: f64 = 0.5;

/// A max ejected share that is not a number in `0.0..=1.0`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InvalidShare(pub f64);

impl fmt::Display for InvalidShare {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "max ejected share must be a number in 0.0..=1.0, got {}",
            self.0
        )
    }
}

impl Error for InvalidShare {}

pin_project! {
    /// A [`tower::discover::Discover`] whose endpoints each sit behind their own circuit
    /// breaker, made by `make_breaker` from the endpoint's key when it is discovered; hand it
    /// to [`tower::balance::p2c::Balance::new`]. See the [module docs](self).
    ///
    /// A `make_breaker` error (a [`cutout::ConfigError`]) is the discovery's error, and the
    /// balancer's. The endpoints' error types must convert into [`BoxError`] (the
    /// balancer's requirement).
    pub struct Ejection<D, F> {
        #[pin]
        discover: D,
        make_breaker: F,
        guardrail: Guardrail,
        recheck: Duration,
    }
}

impl<D, F> Ejection<D, F> {
    /// Wraps `discover`; at most [`DEFAULT_MAX_EJECTED_SHARE`] of the endpoints is ejected
    /// at once.
    pub fn new(discover: D, make_breaker: F) -> Self {
        Self {
            discover,
            make_breaker,
            guardrail: Guardrail::new(DEFAULT_MAX_EJECTED_SHARE),
            recheck: DEFAULT_RECHECK_INTERVAL,
        }
    }

    /// At most `share` (`0.0..=1.0`) of the endpoints is ejected at once (rounded down:
    /// with 3 endpoints and 0.5, one). 0 ejects none; 1 may eject every endpoint, and
    /// then the balancer waits until one comes back.
    ///
    /// ```
    /// use tower_cutout::eject::{Ejection, InvalidShare};
    ///
    /// let make = |_: &usize| cutout::CircuitBreaker::builder().build();
    /// type Endpoint = tower::util::BoxService<u32, u32, tower::BoxError>;
    /// let endpoints = tower::discover::ServiceList::new::<u32>(Vec::<Endpoint>::new());
    /// let refused = Ejection::new(endpoints, make).max_ejected_share(1.5).err();
    /// assert_eq!(refused, Some(InvalidShare(1.5)));
    /// ```
    pub fn max_ejected_share(mut self, share: f64) -> Result<Self, InvalidShare> {
        if !(0.0..=1.0).contains(&share) {
            return Err(InvalidShare(share));
        }
        self.guardrail = Guardrail::new(share);
        Ok(self)
    }

    /// How long an ejected endpoint waits, at most, before asking its breaker again
    /// (default [`DEFAULT_RECHECK_INTERVAL`]); it also wakes when the open time ends.
    pub fn recheck_interval(mut self, interval: Duration) -> Self {
        self.recheck = interval;
        self
    }

    /// The guardrail every endpoint of this discovery shares: how many endpoints there are,
    /// are ejected, are let through.
    pub fn guardrail(&self) -> Guardrail {
        self.guardrail.clone()
    }
}

impl<D, F, K, S> Stream for Ejection<D, F>
where
    D: TryStream<Ok = Change<K, S>>,
    D::Error: Into<BoxError>,
    F: FnMut(&K) -> Result<cutout::CircuitBreaker, cutout::ConfigError>,
{
    type Item = Result<Change<K, Ejectable<S>>, BoxError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.project();
        let change = match ready!(this.discover.try_poll_next(cx)) {
            None => return Poll::Ready(None),
            Some(Err(e)) => return Poll::Ready(Some(Err(e.into()))),
            Some(Ok(change)) => change,
        };
        Poll::Ready(Some(match change {
            Change::Remove(key) => Ok(Change::Remove(key)),
            Change::Insert(key, service) => match (this.make_breaker)(&key) {
                Ok(breaker) => {
                    let endpoint =
                        Ejectable::new(service, breaker, this.guardrail.clone(), *this.recheck);
                    Ok(Change::Insert(key, endpoint))
                }
                Err(e) => Err(e.into()),
            },
        }))
    }
}

impl<D: fmt::Debug, F> fmt::Debug for Ejection<D, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ejection")
            .field("discover", &self.discover)
            .field("guardrail", &self.guardrail)
            .field("recheck", &self.recheck)
            .finish_non_exhaustive()
    }
}
