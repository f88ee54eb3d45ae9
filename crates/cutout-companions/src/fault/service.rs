//! The fault injection service and its response future.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};
use tower_service::Service;

use super::{Decision, InjectedFault, Plan};
use crate::error::BoxError;

/// Injects faults into calls to the inner service. Made by
/// [`FaultInjectionLayer`](super::FaultInjectionLayer).
#[derive(Clone)]
pub struct FaultInjection<S> {
    inner: S,
    plan: Option<Arc<Plan>>,
}

impl<S> FaultInjection<S> {
    pub(crate) fn new(inner: S, plan: Option<Arc<Plan>>) -> Self {
        Self { inner, plan }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The wrapped service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: fmt::Debug> fmt::Debug for FaultInjection<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultInjection")
            .field("inner", &self.inner)
            .field("enabled", &self.plan.as_ref().is_some_and(|p| p.enabled()))
            .finish()
    }
}

impl<S, Req> Service<Req> for FaultInjection<S>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline]
    fn call(&mut self, req: Req) -> Self::Future {
        let decision = match &self.plan {
            Some(plan) if plan.enabled() => plan.decide(Instant::now()),
            _ => return ResponseFuture::passed(self.inner.call(req)),
        };
        let state = match decision {
            Decision { delay, fail: None } if delay.is_zero() => State::Inner {
                future: self.inner.call(req),
            },
            Decision { delay, fail: None } => State::Delayed {
                sleep: Box::pin(tokio::time::sleep(delay)),
                future: self.inner.call(req),
            },
            Decision {
                delay,
                fail: Some(kind),
            } if delay.is_zero() => State::Failed {
                fault: InjectedFault::new(kind),
            },
            Decision {
                delay,
                fail: Some(kind),
            } => State::DelayedFailure {
                sleep: Box::pin(tokio::time::sleep(delay)),
                fault: InjectedFault::new(kind),
            },
        };
        ResponseFuture { state }
    }
}

pin_project! {
    /// The response future of [`FaultInjection`].
    pub struct ResponseFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        // Untouched.
        Inner { #[pin] future: F },
        // Delayed: the inner future is first polled after the sleep. The sleep is boxed so
        // that the untouched path moves a small future.
        Delayed { sleep: Pin<Box<Sleep>>, #[pin] future: F },
        // Failed after a delay; the inner service was not called.
        DelayedFailure { sleep: Pin<Box<Sleep>>, fault: InjectedFault },
        // Failed at once; the inner service was not called.
        Failed { fault: InjectedFault },
    }
}

impl<F> ResponseFuture<F> {
    fn passed(future: F) -> Self {
        Self {
            state: State::Inner { future },
        }
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Inner { .. } => "inner",
            State::Delayed { .. } => "delayed",
            State::DelayedFailure { .. } => "delayed failure",
            State::Failed { .. } => "failed",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}

impl<F, T, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Inner { future } => future.poll(cx).map_err(Into::into),
            StateProj::Delayed { sleep, future } => {
                ready!(sleep.as_mut().poll(cx));
                future.poll(cx).map_err(Into::into)
            }
            StateProj::DelayedFailure { sleep, fault } => {
                ready!(sleep.as_mut().poll(cx));
                Poll::Ready(Err(Box::new(*fault)))
            }
            StateProj::Failed { fault } => Poll::Ready(Err(Box::new(*fault))),
        }
    }
}
