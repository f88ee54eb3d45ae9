//! The core both response futures share (the unkeyed layer's and the keyed layer's): the
//! inner service's future with the call's permit, or an already-failed rejection. When the
//! inner future finishes, the permit goes into a [`Recorder`] and the classifier records
//! through it; dropped before then, the permit gives itself back as
//! [`cutout::Outcome::Ignored`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use tokio::time::Instant;

use crate::classify::{Classify, Held, Recorder};
use crate::reject::Reject;

/// A permit a response future holds until its call finishes.
pub trait IntoRecorder {
    /// The recorder the classifier records through (`slow`: the call ran past the layer's
    /// slow-call threshold).
    fn into_recorder(self, slow: bool) -> Recorder;
}

impl IntoRecorder for cutout::OwnedPermit {
    #[inline]
    fn into_recorder(self, slow: bool) -> Recorder {
        Recorder::new(Some(Held::Owned(self)), slow)
    }
}

impl IntoRecorder for cutout::Permit<'static> {
    /// Borrowed from a `'static` breaker: no reference count to carry.
    #[inline]
    fn into_recorder(self, slow: bool) -> Recorder {
        Recorder::new(Some(Held::Static(self)), slow)
    }
}

#[cfg(feature = "keyed")]
impl IntoRecorder for cutout_keyed::KeyedPermit {
    /// The recorder also holds the key's breaker in its registry until it records.
    #[inline]
    fn into_recorder(self, slow: bool) -> Recorder {
        let (permit, lease) = self.into_parts();
        Recorder::keyed(permit, lease, slow)
    }
}

#[cfg(feature = "keyed")]
impl IntoRecorder for cutout_keyed::StaticKeyedPermit {
    /// Borrowed from a `'static` registry: the permit holds the key's breaker itself, with
    /// no reference count, until it records.
    #[inline]
    fn into_recorder(self, slow: bool) -> Recorder {
        Recorder::new(Some(Held::KeyedStatic(self)), slow)
    }
}

pin_project! {
    /// `P` is the permit, `J` the rejection.
    pub(crate) struct Recording<F, P, J, C, R> {
        #[pin]
        kind: Kind<F, J>,
        // Dropped after the inner future: a cancelled call gives its permit back (Ignored)
        // once the inner future is gone.
        permit: Option<P>,
        slow_deadline: Option<Instant>,
        classifier: C,
        reject: R,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, J> {
        Called { #[pin] future: F },
        Rejected { rejection: J },
    }
}

impl<F, P, J, C, R> Recording<F, P, J, C, R> {
    /// The inner future; with no permit, the classifier shapes the response and nothing is
    /// recorded.
    #[inline]
    pub(crate) fn called(
        future: F,
        permit: Option<P>,
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
    pub(crate) fn rejected(rejection: J, classifier: C, reject: R) -> Self {
        Self {
            kind: Kind::Rejected { rejection },
            permit: None,
            slow_deadline: None,
            classifier,
            reject,
        }
    }

    /// Polls the inner future, and classifies and records its result; a rejection becomes
    /// the output `rejected` makes of it with the layer's reject mode.
    #[inline]
    pub(crate) fn poll_with<Res, E>(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        rejected: impl FnOnce(&R, &J) -> Result<C::Response, R::Error>,
    ) -> Poll<Result<C::Response, R::Error>>
    where
        F: Future<Output = Result<Res, E>>,
        P: IntoRecorder,
        C: Classify<Res, E>,
        R: Reject<C::Response, E>,
    {
        let this = self.project();
        match this.kind.project() {
            KindProj::Called { future } => {
                let result = ready!(future.poll(cx));
                let slow = match this.slow_deadline {
                    Some(deadline) => Instant::now() > *deadline,
                    None => false,
                };
                let recorder = match this.permit.take() {
                    Some(permit) => permit.into_recorder(slow),
                    None => Recorder::new(None, slow),
                };
                Poll::Ready(
                    this.classifier
                        .classify(result, recorder)
                        .map_err(|e| this.reject.inner_error(e)),
                )
            }
            KindProj::Rejected { rejection } => Poll::Ready(rejected(this.reject, rejection)),
        }
    }
}

impl<F, P: fmt::Debug, J: fmt::Debug, C, R> fmt::Debug for Recording<F, P, J, C, R> {
    /// Formats as the public `ResponseFuture` that wraps it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("ResponseFuture");
        match &self.kind {
            Kind::Called { .. } => d.field("permit", &self.permit),
            Kind::Rejected { rejection } => d.field("rejected", rejection),
        };
        d.finish_non_exhaustive()
    }
}
