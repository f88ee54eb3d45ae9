//! The [`KeyedCircuitBreaker`](super::KeyedCircuitBreaker) service's response future.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use cutout_keyed::{KeyedPermit, KeyedRejected};
use pin_project_lite::pin_project;
use tokio::time::Instant;

use super::reject::KeyedReject;
use crate::classify::Classify;
use crate::recording::{IntoRecorder, Recording};

pin_project! {
    /// The response future of the [`KeyedCircuitBreaker`](super::KeyedCircuitBreaker)
    /// service: the inner service's future with the key's permit (none for a request
    /// without a key), or an already-failed rejection.
    ///
    /// The future owns the permit and the hold on the key's breaker, and hands both to the
    /// classifier's [`Recorder`](crate::classify::Recorder) when the inner future finishes:
    /// the breaker stays in the registry until the outcome is recorded (after a gRPC body's
    /// trailers, say). Dropped before then (a cancelled call), it gives the permit back as
    /// [`cutout::Outcome::Ignored`] and then releases the breaker.
    ///
    /// `P` is the permit: a [`KeyedPermit`] from an `Arc` registry, a
    /// [`StaticKeyedPermit`](cutout_keyed::StaticKeyedPermit) from a `&'static` one.
    pub struct ResponseFuture<F, C, R, P = KeyedPermit> {
        // Both permits drop the breaker's permit before their hold on the key's breaker:
        // Ignored is recorded before the breaker may be evicted.
        #[pin]
        inner: Recording<F, P, KeyedRejected, C, R>,
    }
}

impl<F, C, R, P> ResponseFuture<F, C, R, P> {
    /// The inner future; `permit` is `None` for a request without a key.
    #[inline]
    pub(crate) fn called(
        future: F,
        permit: Option<P>,
        slow_deadline: Option<Instant>,
        classifier: C,
        reject: R,
    ) -> Self {
        Self {
            inner: Recording::called(future, permit, slow_deadline, classifier, reject),
        }
    }

    #[inline]
    pub(crate) fn rejected(rejection: KeyedRejected, classifier: C, reject: R) -> Self {
        Self {
            inner: Recording::rejected(rejection, classifier, reject),
        }
    }
}

impl<F, Res, E, C, R, P> Future for ResponseFuture<F, C, R, P>
where
    F: Future<Output = Result<Res, E>>,
    P: IntoRecorder,
    C: Classify<Res, E>,
    R: KeyedReject<C::Response, E>,
{
    type Output = Result<C::Response, R::Error>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project()
            .inner
            .poll_with(cx, |reject, rejection| match rejection {
                KeyedRejected::Breaker(r) => reject.rejected(*r),
                other => reject.no_breaker(other.clone()),
            })
    }
}

impl<F, C, R, P: fmt::Debug> fmt::Debug for ResponseFuture<F, C, R, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.inner, f)
    }
}
