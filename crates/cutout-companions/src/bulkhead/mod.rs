//! Bulkheads: cap the calls in flight to a dependency, and refuse the rest at once.
//!
//! Tower already has the parts: [`ConcurrencyLimit`] holds a semaphore permit per call in
//! flight, and [`LoadShed`] turns "not ready" into an immediate
//! [`tower::load_shed::error::Overloaded`] error instead of a wait. A bulkhead
//! is `LoadShed` over `ConcurrencyLimit`:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! // By hand, with tower alone:
//! let svc = ServiceBuilder::new()
//!     .load_shed()            // outer: refuse when the limit is reached...
//!     .concurrency_limit(16)  // inner: ...instead of waiting for a permit
//!     .service_fn(|req: u32| async move { Ok::<_, std::io::Error>(req) });
//! assert_eq!(svc.oneshot(1).await.unwrap(), 1);
//! # }
//! ```
//!
//! This module adds only what tower lacks:
//!
//! - [`BulkheadLayer`]: exactly that composition, with the rejection turned into the typed
//!   [`BulkheadFull`] (which carries its limit).
//! - [`KeyedBulkheadLayer`]: one fixed-size limit per key (per tenant, per host, per
//!   route), so one noisy key cannot take every slot; the map of keys is bounded.
//!
//! Under a circuit breaker, a full bulkhead says nothing about the dependency: classify it
//! as ignored (see [`crate::classify::IgnoreLocalRejections`]).

mod error;
mod keyed;

pub use error::BulkheadFull;
pub use keyed::{KeyedBulkhead, KeyedBulkheadLayer, KeyedResponseFuture};

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use std::sync::Arc;
use tokio::sync::Semaphore;
use tower::limit::ConcurrencyLimit;
use tower::load_shed::LoadShed;
use tower::load_shed::error::Overloaded;
use tower_layer::Layer;
use tower_service::Service;

use crate::error::BoxError;

/// Wraps services in a [`Bulkhead`]: at most `max_concurrent` calls in flight, the rest
/// refused at once with [`BulkheadFull`].
///
/// The layer owns the limit (one semaphore, as tower's `GlobalConcurrencyLimitLayer`): every
/// service it makes, and their clones, share it. Make one layer per dependency. A limit of
/// 0 refuses every call.
///
/// As with tower's `LoadShed` over `ConcurrencyLimit`, a service refused while the limit was
/// reached stays in the semaphore's queue: the next slot freed is kept for that service's
/// next call (it is not lost; dropping the service gives it back).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use cutout_companions::bulkhead::{BulkheadFull, BulkheadLayer};
/// use tower::{Service, ServiceBuilder, ServiceExt};
///
/// let bulkhead = BulkheadLayer::new(1);
/// let mut svc = ServiceBuilder::new()
///     .layer(bulkhead.clone())
///     .service_fn(|req: u32| async move { Ok::<_, std::io::Error>(req) });
///
/// let first = svc.ready().await.unwrap().call(1); // holds the only slot until it is done
/// assert_eq!(bulkhead.available(), 0);
/// let err = svc.ready().await.unwrap().call(2).await.unwrap_err();
/// assert_eq!(err.downcast_ref::<BulkheadFull>(), Some(&BulkheadFull::full(1)));
/// assert_eq!(first.await.unwrap(), 1);
/// assert_eq!(svc.ready().await.unwrap().call(3).await.unwrap(), 3);
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct BulkheadLayer {
    semaphore: Arc<Semaphore>,
    max_concurrent: usize,
}

impl BulkheadLayer {
    /// A bulkhead of `max_concurrent` calls (at most tokio's
    /// [`Semaphore::MAX_PERMITS`]; more is taken as that many).
    pub fn new(max_concurrent: usize) -> Self {
        let max_concurrent = max_concurrent.min(Semaphore::MAX_PERMITS);
        Self {
            semaphore: Arc::new(Semaphore::new(max_concurrent)),
            max_concurrent,
        }
    }

    /// The limit.
    pub fn max_concurrent(&self) -> usize {
        self.max_concurrent
    }

    /// Slots free now.
    pub fn available(&self) -> usize {
        self.semaphore.available_permits()
    }
}

impl<S> Layer<S> for BulkheadLayer {
    type Service = Bulkhead<S>;

    fn layer(&self, inner: S) -> Bulkhead<S> {
        Bulkhead {
            inner: LoadShed::new(ConcurrencyLimit::with_semaphore(
                inner,
                self.semaphore.clone(),
            )),
            max_concurrent: self.max_concurrent,
        }
    }
}

/// [`LoadShed`] over [`ConcurrencyLimit`], with [`BulkheadFull`] as its rejection. Made by
/// [`BulkheadLayer`].
///
/// It has no `get_ref`/`into_inner`: tower's `LoadShed` gives no access to the service it
/// wraps.
#[derive(Clone)]
pub struct Bulkhead<S> {
    inner: LoadShed<ConcurrencyLimit<S>>,
    max_concurrent: usize,
}

impl<S> Bulkhead<S> {
    /// `inner` with at most `max_concurrent` calls in flight, its own limit.
    pub fn new(inner: S, max_concurrent: usize) -> Self {
        BulkheadLayer::new(max_concurrent).layer(inner)
    }
}

impl<S: fmt::Debug> fmt::Debug for Bulkhead<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bulkhead")
            .field("max_concurrent", &self.max_concurrent)
            .field("inner", &self.inner)
            .finish()
    }
}

impl<S, Req> Service<Req> for Bulkhead<S>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<<LoadShed<ConcurrencyLimit<S>> as Service<Req>>::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, req: Req) -> Self::Future {
        ResponseFuture {
            inner: self.inner.call(req),
            max_concurrent: self.max_concurrent,
        }
    }
}

pin_project! {
    /// The response future of [`Bulkhead`]: tower's, with `Overloaded` turned into
    /// [`BulkheadFull`].
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        max_concurrent: usize,
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("max_concurrent", &self.max_concurrent)
            .finish_non_exhaustive()
    }
}

impl<F, T> Future for ResponseFuture<F>
where
    F: Future<Output = Result<T, BoxError>>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        Poll::Ready(result.map_err(|e| {
            if e.is::<Overloaded>() {
                Box::new(BulkheadFull::full(*this.max_concurrent)) as BoxError
            } else {
                e
            }
        }))
    }
}
