//! The [`CircuitBreaker`](crate::CircuitBreaker) service's response future.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use cutout::OwnedPermit;
use pin_project_lite::pin_project;
use tokio::time::Instant;

use crate::classify::Classify;
use crate::recording::{IntoRecorder, Recording};
use crate::reject::Reject;

pin_project! {
    /// The response future of the [`CircuitBreaker`](crate::CircuitBreaker) service: the
    /// inner service's future with the call's permit, or an already-failed rejection.
    ///
    /// `P` is the call's permit: a [`cutout::OwnedPermit`] by default, a
    /// `cutout::Permit<'static>` for a `&'static` breaker (see [`crate::handle`]).
    ///
    /// The future owns the permit and records the outcome when the inner future finishes;
    /// dropping it before then (a cancelled call) gives the permit back as
    /// [`cutout::Outcome::Ignored`].
    pub struct ResponseFuture<F, C, R, P = OwnedPermit> {
        #[pin]
        inner: Recording<F, P, cutout::CompactRejected, C, R>,
    }
}

impl<F, C, R, P> ResponseFuture<F, C, R, P> {
    #[inline]
    pub(crate) fn called(
        future: F,
        permit: P,
        slow_deadline: Option<Instant>,
        classifier: C,
        reject: R,
    ) -> Self {
        Self {
            inner: Recording::called(future, Some(permit), slow_deadline, classifier, reject),
        }
    }

    #[inline]
    pub(crate) fn rejected(rejection: cutout::CompactRejected, classifier: C, reject: R) -> Self {
        Self {
            inner: Recording::rejected(rejection, classifier, reject),
        }
    }
}

impl<F, Res, E, C, R, P> Future for ResponseFuture<F, C, R, P>
where
    P: IntoRecorder,
    F: Future<Output = Result<Res, E>>,
    C: Classify<Res, E>,
    R: Reject<C::Response, E>,
{
    type Output = Result<C::Response, R::Error>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project()
            .inner
            .poll_with(cx, |reject, rejection| reject.rejected_compact(*rejection))
    }
}

impl<F, C, R, P: fmt::Debug> fmt::Debug for ResponseFuture<F, C, R, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.inner, f)
    }
}
