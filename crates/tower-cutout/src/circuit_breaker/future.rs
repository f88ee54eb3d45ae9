//! The [`CircuitBreaker`](crate::CircuitBreaker) service's response future.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use cutout::OwnedPermit;
use pin_project_lite::pin_project;
use tokio::time::Instant;

use crate::classify::{Classify, Recorder};
use crate::reject::Reject;

pin_project! {
    /// The response future of the [`CircuitBreaker`](crate::CircuitBreaker) service: the
    /// inner service's future with the call's permit, or an already-failed rejection.
    ///
    /// The future owns the permit and records the outcome when the inner future finishes;
    /// dropping it before then (a cancelled call) gives the permit back as
    /// [`cutout::Outcome::Ignored`].
    pub struct ResponseFuture<F, C, R> {
        #[pin]
        kind: Kind<F>,
        permit: Option<OwnedPermit>,
        slow_deadline: Option<Instant>,
        classifier: C,
        reject: R,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        Called { #[pin] future: F },
        Rejected { rejection: cutout::Rejected },
    }
}

impl<F, C, R> ResponseFuture<F, C, R> {
    #[inline]
    pub(crate) fn called(
        future: F,
        permit: OwnedPermit,
        slow_deadline: Option<Instant>,
        classifier: C,
        reject: R,
    ) -> Self {
        Self {
            kind: Kind::Called { future },
            permit: Some(permit),
            slow_deadline,
            classifier,
            reject,
        }
    }

    #[inline]
    pub(crate) fn rejected(rejection: cutout::Rejected, classifier: C, reject: R) -> Self {
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
    R: Reject<C::Response, E>,
{
    type Output = Result<C::Response, R::Error>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        match this.kind.project() {
            KindProj::Called { future } => {
                let result = ready!(future.poll(cx));
                let slow = match this.slow_deadline {
                    Some(deadline) => Instant::now() > *deadline,
                    None => false,
                };
                let recorder = Recorder::new(this.permit.take(), slow);
                Poll::Ready(
                    this.classifier
                        .classify(result, recorder)
                        .map_err(|e| this.reject.inner_error(e)),
                )
            }
            KindProj::Rejected { rejection } => Poll::Ready(this.reject.rejected(*rejection)),
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
