use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use cutout::State;
use tokio::time::{Instant, Sleep};
use tower_service::Service;

use super::future::ResponseFuture;
use super::layer::{CircuitBreakerLayer, Config};
use crate::classify::{Classify, DefaultClassifier};
use crate::handle::BreakerHandle;
use crate::reject::{Reject, RejectWithError};

/// A service guarded by a circuit breaker (a [`cutout::CircuitBreaker`]).
///
/// A rejected request never reaches the inner service, and `poll_ready` never fails
/// because of the breaker: in fail-fast mode (the default) the rejection comes from `call`
/// as an already-failed response future; in backpressure mode `poll_ready` waits. While the
/// circuit is open the inner service's `poll_ready` is not polled either.
///
/// `poll_ready` takes the breaker's permit (a half-open probe slot, when half-open) and
/// holds it for the next `call`, which hands it to the response future; the future records
/// the outcome when the response arrives. A permit whose `call` never comes is given back
/// when the service is dropped, and a response future dropped before it finishes gives its
/// permit back as [`cutout::Outcome::Ignored`].
///
/// Clones share the breaker (each clone has its own reservation).
/// [`new`](Self::new) shares an existing breaker; a [`CircuitBreakerLayer`] shares its one
/// breaker with every service it makes.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_cutout::error::BoxError> {
/// use tower::{Service, ServiceExt, service_fn};
///
/// let breaker = cutout::CircuitBreaker::builder().failure_threshold(1).build()?;
/// let mut svc = tower_cutout::CircuitBreaker::new(
///     service_fn(|n: u32| async move { if n == 0 { Err("zero") } else { Ok(n * 2) } }),
///     breaker.clone(),
/// );
/// assert_eq!(svc.ready().await?.call(21).await?, 42);
/// assert!(svc.ready().await?.call(0).await.is_err());
/// assert_eq!(breaker.state(), cutout::State::Open);
/// # Ok(())
/// # }
/// ```
pub struct CircuitBreaker<S, C = DefaultClassifier, R = RejectWithError, B = cutout::CircuitBreaker>
where
    B: BreakerHandle,
{
    inner: S,
    config: Config<C, R, B>,
    /// The permit `poll_ready` took for the next `call` (a probe slot when half-open).
    permit: Option<B::Permit>,
    /// The rejection `poll_ready` decided for the next `call` (fail fast). Never set
    /// together with `permit`.
    rejection: Option<cutout::CompactRejected>,
    /// `poll_ready` returned `Ready(Ok)` and `call` has not come yet: its decision must
    /// stand (a ready service stays ready).
    ready: bool,
    /// Backpressure mode's wake-up, made on the first wait and reset after.
    sleep: Option<Pin<Box<Sleep>>>,
}

impl<S, B: BreakerHandle> CircuitBreaker<S, DefaultClassifier, RejectWithError, B> {
    /// Wraps `inner`, sharing `breaker` with every other holder of a handle to it. Fail
    /// fast, `Err` is a failure, rejections are [`error::Rejected`](crate::error::Rejected)
    /// errors; use a [`CircuitBreakerLayer`] for the other settings. A
    /// `&'static cutout::CircuitBreaker` is the fast handle (see [`crate::handle`]).
    pub fn new(inner: S, breaker: B) -> Self {
        Self::from_config(inner, Config::new(breaker))
    }
}

impl<S> CircuitBreaker<S> {
    /// A layer sharing `breaker`; see [`CircuitBreakerLayer::new`].
    pub const fn layer(breaker: cutout::CircuitBreaker) -> CircuitBreakerLayer {
        CircuitBreakerLayer::new(breaker)
    }
}

impl<S, C, R, B: BreakerHandle> CircuitBreaker<S, C, R, B> {
    pub(crate) fn from_config(inner: S, config: Config<C, R, B>) -> Self {
        Self {
            inner,
            config,
            permit: None,
            rejection: None,
            ready: false,
            sleep: None,
        }
    }

    /// The breaker this service shares.
    pub fn breaker(&self) -> &cutout::CircuitBreaker {
        self.config.breaker.breaker()
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service; a reserved permit is given back.
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// In backpressure mode: how long to wait before asking the breaker, if it would
    /// reject now. Reads the state without asking for a permit (no rejection is counted).
    fn wait_time(&self) -> Option<Duration> {
        let breaker = self.config.breaker.breaker();
        let recheck = self.config.recheck_interval;
        match breaker.state() {
            State::Closed | State::ForcedClosed => None,
            State::ForcedOpen => Some(recheck),
            State::Open | State::HalfOpen => breaker
                .retry_after()
                .filter(|d| !d.is_zero())
                .map(|d| d.min(recheck)),
        }
    }

    /// Sleeps `wait`; `Ready` when the time has come. `None` when there is no tokio
    /// runtime to sleep on.
    fn poll_sleep(&mut self, cx: &mut Context<'_>, wait: Duration) -> Option<Poll<()>> {
        crate::wake::poll_sleep(&mut self.sleep, cx, wait)
    }
}

impl<S, C, R, B, Req> Service<Req> for CircuitBreaker<S, C, R, B>
where
    S: Service<Req>,
    B: BreakerHandle,
    C: Classify<S::Response, S::Error> + Clone,
    R: Reject<C::Response, S::Error> + Clone,
{
    type Response = C::Response;
    type Error = R::Error;
    type Future = ResponseFuture<S::Future, C, R, B::Permit>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // The hot path: nothing reserved, fail fast.
        if self.permit.is_none() && self.rejection.is_none() && !self.config.backpressure {
            match self.config.breaker.acquire() {
                Ok(permit) => {
                    self.permit = Some(permit);
                    return self.poll_inner(cx);
                }
                Err(rejection) => {
                    // While open, the inner service is not polled.
                    self.rejection = Some(rejection);
                    self.ready = true;
                    return Poll::Ready(Ok(()));
                }
            }
        }
        self.poll_ready_slow(cx)
    }

    #[inline]
    fn call(&mut self, request: Req) -> Self::Future {
        self.ready = false;
        if let Some(permit) = self.permit.take() {
            let slow_deadline = match self.config.slow_call_threshold {
                None => None,
                Some(threshold) => Instant::now().checked_add(threshold),
            };
            ResponseFuture::called(
                self.inner.call(request),
                permit,
                slow_deadline,
                self.config.classifier.clone(),
                self.config.reject.clone(),
            )
        } else if let Some(rejection) = self.rejection.take() {
            self.rejected(rejection)
        } else {
            self.call_unreserved(request)
        }
    }
}

impl<S, C, R, B: BreakerHandle> CircuitBreaker<S, C, R, B> {
    /// Polls the inner service with a permit reserved.
    #[inline]
    fn poll_inner<Req, E>(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), R::Error>>
    where
        S: Service<Req, Error = E>,
        C: Classify<S::Response, E>,
        R: Reject<C::Response, E>,
    {
        match self.inner.poll_ready(cx) {
            Poll::Ready(Ok(())) => {
                self.ready = true;
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => {
                // A failed `poll_ready` ends the service: give the permit back now.
                self.permit = None;
                Poll::Ready(Err(self.config.reject.inner_error(e)))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    /// Everything but a fail-fast `poll_ready` with nothing reserved.
    #[inline(never)]
    fn poll_ready_slow<Req, E>(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), R::Error>>
    where
        S: Service<Req, Error = E>,
        C: Classify<S::Response, E>,
        R: Reject<C::Response, E>,
    {
        loop {
            // Ready once: stay ready until `call`.
            if self.rejection.is_some() {
                return Poll::Ready(Ok(()));
            }
            if self.permit.is_some() {
                // The inner service was not ready last time. If the circuit has opened
                // since, the permit is stale: give it back and ask again.
                if self.ready
                    || !matches!(
                        self.config.breaker.breaker().state(),
                        State::Open | State::ForcedOpen
                    )
                {
                    return self.poll_inner(cx);
                }
                self.permit = None;
            }
            if self.config.backpressure {
                if let Some(wait) = self.wait_time() {
                    match self.poll_sleep(cx, wait) {
                        Some(Poll::Pending) => return Poll::Pending,
                        Some(Poll::Ready(())) => continue,
                        // No runtime to wait on: fail fast.
                        None => {}
                    }
                }
            }
            match self.config.breaker.acquire() {
                Ok(permit) => {
                    self.permit = Some(permit);
                    return self.poll_inner(cx);
                }
                Err(rejection) => {
                    if self.config.backpressure {
                        let recheck = self.config.recheck_interval;
                        let wait = rejection.retry_after().map_or(recheck, |d| d.min(recheck));
                        match self.poll_sleep(cx, wait) {
                            Some(Poll::Pending) => return Poll::Pending,
                            Some(Poll::Ready(())) => continue,
                            None => {}
                        }
                    }
                    self.rejection = Some(rejection);
                    self.ready = true;
                    return Poll::Ready(Ok(()));
                }
            }
        }
    }

    /// The already-failed response future for `rejection`.
    #[cold]
    #[inline(never)]
    fn rejected<F>(&self, rejection: cutout::CompactRejected) -> ResponseFuture<F, C, R, B::Permit>
    where
        C: Clone,
        R: Clone,
    {
        ResponseFuture::rejected(
            rejection,
            self.config.classifier.clone(),
            self.config.reject.clone(),
        )
    }

    /// `call` without `poll_ready`: asks the breaker now.
    #[cold]
    #[inline(never)]
    fn call_unreserved<Req>(&mut self, request: Req) -> ResponseFuture<S::Future, C, R, B::Permit>
    where
        S: Service<Req>,
        C: Clone,
        R: Clone,
    {
        match self.config.breaker.acquire() {
            Ok(permit) => {
                let slow_deadline = match self.config.slow_call_threshold {
                    None => None,
                    Some(threshold) => Instant::now().checked_add(threshold),
                };
                ResponseFuture::called(
                    self.inner.call(request),
                    permit,
                    slow_deadline,
                    self.config.classifier.clone(),
                    self.config.reject.clone(),
                )
            }
            Err(rejection) => self.rejected(rejection),
        }
    }
}

impl<S: Clone, C: Clone, R: Clone, B: BreakerHandle> Clone for CircuitBreaker<S, C, R, B> {
    /// A clone shares the breaker; it has no reservation of its own yet.
    fn clone(&self) -> Self {
        Self::from_config(self.inner.clone(), self.config.clone())
    }
}

impl<S: fmt::Debug, C, R, B: BreakerHandle> fmt::Debug for CircuitBreaker<S, C, R, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("CircuitBreaker");
        d.field("inner", &self.inner);
        self.config.debug(&mut d);
        d.field(
            "slot",
            &match (&self.permit, &self.rejection) {
                (Some(_), _) => "permit",
                (None, Some(_)) => "rejected",
                (None, None) => "empty",
            },
        )
        .field("ready", &self.ready)
        .finish()
    }
}
