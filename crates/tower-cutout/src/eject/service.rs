//! One endpoint of the balancer, behind its own breaker.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use cutout::{Outcome, OwnedPermit, State};
use pin_project_lite::pin_project;
use tokio::time::Sleep;
use tower::load::Load;
use tower_service::Service;

use super::guardrail::{Endpoint, Guardrail};

/// An endpoint of an [`Ejection`](super::Ejection): the discovered service behind its own
/// [`cutout::CircuitBreaker`].
///
/// `poll_ready` asks the breaker for a permit first. Admitted (closed, or a free half-open
/// probe slot), it polls the endpoint and holds the permit for the next `call`, whose
/// response future records `Ok` as a success and `Err` as a failure. Rejected, the
/// endpoint is ejected: `poll_ready` stays `Pending`, so the balancer picks the others,
/// and wakes itself when the open time or probe lease ends (at least every recheck
/// interval) or when the [`Guardrail`] lets it through. An endpoint let through takes
/// calls without a permit (its breaker is open: they record nothing) until its breaker
/// admits probes again. Without a tokio runtime to wait on, a rejected endpoint is let
/// through.
pub struct Ejectable<S> {
    inner: S,
    breaker: cutout::CircuitBreaker,
    guardrail: Guardrail,
    endpoint: Arc<Endpoint>,
    recheck: Duration,
    /// The permit `poll_ready` took for the next `call`.
    permit: Option<OwnedPermit>,
    /// `poll_ready` let the next `call` through without a permit.
    let_through: bool,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl<S> Ejectable<S> {
    pub(crate) fn new(
        inner: S,
        breaker: cutout::CircuitBreaker,
        guardrail: Guardrail,
        recheck: Duration,
    ) -> Self {
        let endpoint = guardrail.add();
        Self {
            inner,
            breaker,
            guardrail,
            endpoint,
            recheck,
            permit: None,
            let_through: false,
            sleep: None,
        }
    }

    /// The endpoint's breaker.
    pub fn breaker(&self) -> &cutout::CircuitBreaker {
        &self.breaker
    }

    /// The endpoint's service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Whether the endpoint is ejected now (its breaker rejected the last ask), let through
    /// or not.
    pub fn is_ejected(&self) -> bool {
        self.endpoint.is_ejected()
    }
}

impl<S, Req> Service<Req> for Ejectable<S>
where
    S: Service<Req>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = EjectFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        loop {
            if self.permit.is_some() || self.let_through {
                return self.inner.poll_ready(cx);
            }
            match self.breaker.try_acquire_owned() {
                Ok(permit) => {
                    if self.endpoint.is_ejected()
                        && matches!(self.breaker.state(), State::Closed | State::ForcedClosed)
                    {
                        self.guardrail.restore(&self.endpoint);
                    }
                    self.permit = Some(permit);
                }
                Err(rejection) => {
                    self.guardrail.eject(&self.endpoint);
                    // The waker first, then the question: an ejection elsewhere between
                    // the two wakes this task rather than being missed.
                    self.endpoint.set_waker(cx.waker());
                    if self.guardrail.lets_through(&self.endpoint) {
                        self.let_through = true;
                        continue;
                    }
                    let wait = rejection
                        .retry_after()
                        .map_or(self.recheck, |d| d.min(self.recheck));
                    match crate::wake::poll_sleep(&mut self.sleep, cx, wait) {
                        Some(Poll::Pending) => return Poll::Pending,
                        Some(Poll::Ready(())) => {}
                        None => self.let_through = true,
                    }
                }
            }
        }
    }

    fn call(&mut self, request: Req) -> Self::Future {
        self.let_through = false;
        EjectFuture {
            inner: self.inner.call(request),
            permit: self.permit.take(),
        }
    }
}

impl<S: Load> Load for Ejectable<S> {
    type Metric = S::Metric;

    fn load(&self) -> S::Metric {
        self.inner.load()
    }
}

impl<S> Drop for Ejectable<S> {
    fn drop(&mut self) {
        self.guardrail.remove(&self.endpoint);
    }
}

impl<S: fmt::Debug> fmt::Debug for Ejectable<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ejectable")
            .field("inner", &self.inner)
            .field("breaker", &self.breaker)
            .field("ejected", &self.endpoint.is_ejected())
            .field("reserved", &self.permit.is_some())
            .field("let_through", &self.let_through)
            .finish()
    }
}

pin_project! {
    /// The response future of an [`Ejectable`] endpoint: records the outcome (`Ok` a
    /// success, `Err` a failure) with the permit its `poll_ready` took, if any. Dropped
    /// before it finishes, it gives the permit back as [`Outcome::Ignored`].
    pub struct EjectFuture<F> {
        #[pin]
        inner: F,
        permit: Option<OwnedPermit>,
    }
}

impl<F, T, E> Future for EjectFuture<F>
where
    F: Future<Output = Result<T, E>>,
{
    type Output = Result<T, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        if let Some(permit) = this.permit.take() {
            permit.record(match result {
                Ok(_) => Outcome::Success,
                Err(_) => Outcome::Failure,
            });
        }
        Poll::Ready(result)
    }
}

impl<F> fmt::Debug for EjectFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EjectFuture")
            .field("permit", &self.permit.is_some())
            .finish()
    }
}
