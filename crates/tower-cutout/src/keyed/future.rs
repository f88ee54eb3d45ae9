//! The [`KeyedCircuitBreaker`](super::KeyedCircuitBreaker) service's response future.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use cutout_keyed::{KeyedPermit, KeyedRejected};
use pin_project_lite::pin_project;
use tokio::time::Instant;

use super::reject::KeyedReject;
use crate::classify::{Classify, Recorder};

pin_project! {
    /// The response future of the [`KeyedCircuitBreaker`](super::KeyedCircuitBreaker)
    /// service: the inner service's future with the key's permit (none for a request
    /// without a key), or an already-failed rejection.
    ///
    /// The future owns the permit and the hold on the key's breaker, and hands both to the
    /// classifier's [`Recorder`] when the inner future finishes: the breaker stays in the
    /// registry until the outcome is recorded (after a gRPC body's trailers, say). Dropped
    /// before then (a cancelled call), it gives the permit back as
    /// [`cutout::Outcome::Ignored`] and then releases the breaker.
    pub struct ResponseFuture<F, C, R> {
        #[pin]
        kind: Kind<F>,
        // Drops the breaker's permit before the lease (field order): Ignored is recorded
        // before the breaker may be evicted.
        permit: Option<KeyedPermit>,
        slow_deadline: Option<Instant>,
        classifier: C,
        reject: R,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        Called { #[pin] future: F },
        Rejected { rejection: KeyedRejected },
    }
}

impl<F, C, R> ResponseFuture<F, C, R> {
    /// The inner future; `permit` is `None` for a request without a key.
    #[inline]
    pub(crate) fn called(
        future: F,
        permit: Option<KeyedPermit>,
        slow_deadline: Option<Instant>,
        classifier: C,
        reject: R,
    ) -> Self {
        Self {
            kind: Kind::Called { future },
            permit,
            slow_deadline,
            classifier,
            reject,
        }
    }

    #[inline]
    pub(crate) fn rejected(rejection: KeyedRejected, classifier: C, reject: R) -> Self {
        Self {
            kind: Kind::Rejected { rejection },
            permit: None,
            slow_deadline: None,
            classifier,
            reject,
        }
    }
}

impl<F, Res, E, C, R> Future for ResponseFuture<F, C, R>
where
    F: Future<Output = Result<Res, E>>,
    C: Classify<Res, E>,
    R: KeyedReject<C::Response, E>,
{
    type Output = Result<C::Response, R::Error>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        match this.kind.project() {
            KindProj::Called { future } => {
                let result = ready!(future.poll(cx));
                let recorder = match this.permit.take() {
                    Some(permit) => {
                        let slow = match this.slow_deadline {
                            Some(deadline) => Instant::now() > *deadline,
                            None => false,
                        };
                        let (permit, lease) = permit.into_parts();
                        Recorder::keyed(permit, lease, slow)
                    }
                    // No key: the classifier shapes the response; nothing is recorded.
                    None => Recorder::new(None, false),
                };
                Poll::Ready(
                    this.classifier
                        .classify(result, recorder)
                        .map_err(|e| this.reject.inner_error(e)),
                )
            }
            KindProj::Rejected { rejection } => Poll::Ready(match rejection {
                KeyedRejected::Breaker(r) => this.reject.rejected(*r),
                other => this.reject.no_breaker(other.clone()),
            }),
        }
    }
}

impl<F, C, R> fmt::Debug for ResponseFuture<F, C, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("ResponseFuture");
        match &self.kind {
            Kind::Called { .. } => d.field("permit", &self.permit),
            Kind::Rejected { rejection } => d.field("rejected", rejection),
        };
        d.finish_non_exhaustive()
    }
}
