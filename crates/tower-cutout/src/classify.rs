//! Classification: which results count as failures.
//!
//! Most classifiers look at a finished call: implement [`Classify`] (or pass a closure
//! `Fn(&Result<Response, Error>) -> cutout::Outcome`). A classifier that must look further,
//! into a response body's trailers (gRPC) or at an upstream `Retry-After`, implements
//! [`ClassifyCall`] and records the outcome through a [`Recorder`] when it knows it; every
//! [`Classify`] is a [`ClassifyCall`] that records at once.

use std::fmt;

use cutout::{Outcome, OwnedPermit};

/// Classifies a finished call as a success, a failure, or neither.
///
/// Implemented for closures:
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
pub trait Classify<Res, E> {
    /// The outcome of a call that returned `result`.
    fn classify(&self, result: &Result<Res, E>) -> Outcome;
}

impl<F, Res, E> Classify<Res, E> for F
where
    F: Fn(&Result<Res, E>) -> Outcome,
{
    #[inline]
    fn classify(&self, result: &Result<Res, E>) -> Outcome {
        self(result)
    }
}

/// The default classification: `Ok` is a success, `Err` a failure.
///
/// ```
/// use cutout::Outcome;
/// use tower_cutout::classify::{Classify, DefaultClassifier};
///
/// assert_eq!(DefaultClassifier.classify(&Ok::<_, ()>(1)), Outcome::Success);
/// assert_eq!(DefaultClassifier.classify(&Err::<u8, _>("down")), Outcome::Failure);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DefaultClassifier;

impl<Res, E> Classify<Res, E> for DefaultClassifier {
    #[inline]
    fn classify(&self, result: &Result<Res, E>) -> Outcome {
        match result {
            Ok(_) => Outcome::Success,
            Err(_) => Outcome::Failure,
        }
    }
}

/// Records a call's outcome, possibly later than the call's response (every [`Classify`] is
/// one that records at once).
///
/// `classify_call` receives the inner service's result and a [`Recorder`] holding the call's
/// permit, and returns the response the service hands on; it may move the recorder into the
/// response (a body that records when its trailers arrive). A recorder dropped without a
/// record releases the permit as [`Outcome::Ignored`].
pub trait ClassifyCall<Res, E> {
    /// The response the service returns.
    type Response;

    /// Classifies `result`, now or later, through `recorder`.
    fn classify_call(
        &self,
        result: Result<Res, E>,
        recorder: Recorder,
    ) -> Result<Self::Response, E>;
}

impl<C, Res, E> ClassifyCall<Res, E> for C
where
    C: Classify<Res, E>,
{
    type Response = Res;

    #[inline]
    fn classify_call(&self, result: Result<Res, E>, recorder: Recorder) -> Result<Res, E> {
        recorder.record(self.classify(&result));
        result
    }
}

/// Holds a call's permit until its outcome is known; see [`ClassifyCall`].
///
/// If the call was slower than the layer's
/// [slow-call threshold](crate::CircuitBreakerLayer::slow_call_threshold), every outcome is
/// recorded as a [`Outcome::Failure`]. Dropping the recorder records [`Outcome::Ignored`].
#[must_use = "a recorder records Ignored when dropped"]
pub struct Recorder {
    permit: Option<OwnedPermit>,
    slow: bool,
}

impl Recorder {
    #[inline]
    pub(crate) fn new(permit: Option<OwnedPermit>, slow: bool) -> Self {
        Self { permit, slow }
    }

    /// Whether the call was slower than the slow-call threshold (its outcome will be a
    /// failure whatever is recorded).
    pub fn is_slow(&self) -> bool {
        self.slow
    }

    /// Records the call's outcome (a failure if the call was slow).
    #[inline]
    pub fn record(mut self, outcome: Outcome) {
        if let Some(permit) = self.permit.take() {
            permit.record(self.adjust(outcome));
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
