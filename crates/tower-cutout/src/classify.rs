//! Classification: which results count as failures.
//!
//! Most classifiers look at a finished call: pass a closure
//! `Fn(&Result<Response, Error>) -> cutout::Outcome`. A classifier that must look further,
//! into a response body's trailers (gRPC) or at an upstream `Retry-After`, implements
//! [`Classify`] and records the outcome through a [`Recorder`] when it knows it.

use std::fmt;
use std::time::Duration;

use cutout::{Outcome, OwnedPermit, Permit};

/// Classifies a call's result as a success, a failure, or neither, and records it.
///
/// The simple form is a closure over the finished call,
/// `Fn(&Result<Response, Error>) -> cutout::Outcome`:
///
/// ```
/// use cutout::Outcome;
/// use tower_cutout::CircuitBreakerLayer;
///
/// let breaker = cutout::CircuitBreaker::builder().build()?;
/// // "Not found" is the caller's problem, not the dependency's.
/// let layer = CircuitBreakerLayer::new(breaker).classify(|r: &Result<u16, std::io::Error>| match r {
///     Ok(404) => Outcome::Ignored,
///     Ok(status) if *status >= 500 => Outcome::Failure,
///     Ok(_) => Outcome::Success,
///     Err(_) => Outcome::Failure,
/// });
/// # let _ = layer;
/// # Ok::<(), cutout::ConfigError>(())
/// ```
///
/// The full form receives the result and a [`Recorder`] holding the call's permit, and
/// returns the response the service hands on. It may record later than the response: move
/// the recorder into the response (a body that records when its trailers arrive, as
/// [`GrpcClassifier`](crate::grpc::GrpcClassifier) does), or record with an upstream's
/// retry-after. A recorder dropped without a record gives the permit back as
/// [`Outcome::Ignored`].
///
/// ```
/// use cutout::Outcome;
/// use tower_cutout::classify::{Classify, Recorder};
///
/// /// Responses are status codes; 503 is a failure.
/// #[derive(Clone)]
/// struct Status503;
///
/// impl<E> Classify<u16, E> for Status503 {
///     type Response = u16;
///
///     fn classify(&self, result: Result<u16, E>, recorder: Recorder) -> Result<u16, E> {
///         recorder.record(match &result {
///             Ok(503) | Err(_) => Outcome::Failure,
///             Ok(_) => Outcome::Success,
///         });
///         result
///     }
/// }
/// ```
pub trait Classify<Res, E> {
    /// The response the service returns.
    type Response;

    /// Classifies `result`, now or later, through `recorder`.
    fn classify(&self, result: Result<Res, E>, recorder: Recorder) -> Result<Self::Response, E>;
}

impl<F, Res, E> Classify<Res, E> for F
where
    F: Fn(&Result<Res, E>) -> Outcome,
{
    type Response = Res;

    #[inline]
    fn classify(&self, result: Result<Res, E>, recorder: Recorder) -> Result<Res, E> {
        recorder.record(self(&result));
        result
    }
}

/// The default classification: `Ok` is a success, `Err` a failure.
///
/// ```
/// use cutout::Outcome;
/// use tower_cutout::classify::DefaultClassifier;
///
/// assert_eq!(DefaultClassifier::outcome(&Ok::<_, ()>(1)), Outcome::Success);
/// assert_eq!(DefaultClassifier::outcome(&Err::<u8, _>("down")), Outcome::Failure);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DefaultClassifier;

impl DefaultClassifier {
    /// `Success` for `Ok`, `Failure` for `Err`.
    #[inline]
    pub fn outcome<Res, E>(result: &Result<Res, E>) -> Outcome {
        match result {
            Ok(_) => Outcome::Success,
            Err(_) => Outcome::Failure,
        }
    }
}

impl<Res, E> Classify<Res, E> for DefaultClassifier {
    type Response = Res;

    #[inline(always)]
    fn classify(&self, result: Result<Res, E>, recorder: Recorder) -> Result<Res, E> {
        recorder.record(Self::outcome(&result));
        result
    }
}

/// Holds a call's permit until its outcome is known; see [`Classify`].
///
/// If the call was slower than the layer's
/// [slow-call threshold](crate::CircuitBreakerLayer::slow_call_threshold), every outcome is
/// recorded as a [`Outcome::Failure`]. Dropping the recorder records [`Outcome::Ignored`].
#[must_use = "a recorder records Ignored when dropped"]
pub struct Recorder {
    permit: Option<Held>,
    slow: bool,
    /// The keyed layer's hold on the key's breaker: declared after `permit`, so it is
    /// dropped after the permit records (the registry never evicts a breaker mid-call).
    #[cfg(feature = "keyed")]
    _lease: Option<cutout_keyed::Lease>,
}

/// The permit a [`Recorder`] holds: owned (a reference count on the breaker) or borrowed
/// from a `'static` breaker (none).
#[derive(Debug)]
pub(crate) enum Held {
    Owned(OwnedPermit),
    Static(Permit<'static>),
    /// A permit of a `'static` keyed registry: it releases the key's breaker after it
    /// records.
    #[cfg(feature = "keyed")]
    KeyedStatic(cutout_keyed::StaticKeyedPermit),
}

impl Held {
    #[inline(always)]
    fn record(self, outcome: Outcome) {
        match self {
            Held::Static(permit) => permit.record(outcome),
            Held::Owned(permit) => permit.record(outcome),
            #[cfg(feature = "keyed")]
            Held::KeyedStatic(permit) => permit.record(outcome),
        }
    }

    fn record_with_retry_after(self, outcome: Outcome, retry_after: Duration) {
        match self {
            Held::Static(permit) => permit.record_with_retry_after(outcome, retry_after),
            Held::Owned(permit) => permit.record_with_retry_after(outcome, retry_after),
            #[cfg(feature = "keyed")]
            Held::KeyedStatic(permit) => permit.record_with_retry_after(outcome, retry_after),
        }
    }
}

impl Recorder {
    #[inline]
    pub(crate) fn new(permit: Option<Held>, slow: bool) -> Self {
        Self {
            permit,
            slow,
            #[cfg(feature = "keyed")]
            _lease: None,
        }
    }

    /// A recorder that also holds the key's breaker in its registry until it records.
    #[cfg(feature = "keyed")]
    #[inline]
    pub(crate) fn keyed(permit: OwnedPermit, lease: cutout_keyed::Lease, slow: bool) -> Self {
        Self {
            permit: Some(Held::Owned(permit)),
            slow,
            _lease: Some(lease),
        }
    }

    /// Whether the call was slower than the slow-call threshold (its outcome will be a
    /// failure whatever is recorded).
    pub fn is_slow(&self) -> bool {
        self.slow
    }

    /// Records the call's outcome (a failure if the call was slow).
    #[inline(always)]
    pub fn record(self, outcome: Outcome) {
        // Taken apart rather than dropped whole: the permit is spent, and only the keyed
        // layer's lease is left to drop (after the record), with no out-of-line drop of
        // the recorder on the hot path.
        let Recorder {
            permit,
            slow,
            #[cfg(feature = "keyed")]
            _lease,
        } = self;
        if let Some(permit) = permit {
            permit.record(if slow { Outcome::Failure } else { outcome });
        }
    }

    /// Records the call's outcome; if it opens the circuit, the circuit stays open at least
    /// `retry_after` (an upstream's `Retry-After`). See
    /// [`Permit::record_with_retry_after`].
    pub fn record_with_retry_after(mut self, outcome: Outcome, retry_after: Duration) {
        if let Some(permit) = self.permit.take() {
            permit.record_with_retry_after(self.adjust(outcome), retry_after);
        }
    }

    #[inline]
    fn adjust(&self, outcome: Outcome) -> Outcome {
        if self.slow { Outcome::Failure } else { outcome }
    }
}

impl fmt::Debug for Recorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recorder")
            .field("permit", &self.permit)
            .field("slow", &self.slow)
            .finish()
    }
}
