//! How a circuit breaker should count what the companions below it return.
//!
//! Below a breaker, an [`Elapsed`](crate::timeout::Elapsed) timeout and an
//! [`InjectedFault`](crate::fault::InjectedFault) are the dependency's failures: the
//! default classification (`Err` is a failure) counts them. A full bulkhead is not: the
//! dependency was never called, this process was shedding its own load. Counting it would
//! let a burst of local traffic trip the breaker for a healthy dependency.

use cutout::Outcome;

use crate::error::{BoxError, is_load_shed};

/// A breaker classification for stacks with a bulkhead below the breaker: `Ok` is a
/// success; a bulkhead rejection ([`BulkheadFull`](crate::bulkhead::BulkheadFull), tower's
/// `Overloaded`) is ignored; any other `Err` (a timeout, an injected fault, the service's
/// own error) is a failure.
///
/// ```
/// use cutout::Outcome;
/// use cutout_companions::{BoxError, bulkhead::BulkheadFull, classify::IgnoreLocalRejections};
///
/// let full: Result<(), BoxError> = Err(Box::new(BulkheadFull::full(8)));
/// let down: Result<(), BoxError> = Err("connection refused".into());
/// assert_eq!(IgnoreLocalRejections::outcome(&full), Outcome::Ignored);
/// assert_eq!(IgnoreLocalRejections::outcome(&down), Outcome::Failure);
/// assert_eq!(IgnoreLocalRejections::outcome(&Ok::<_, BoxError>(())), Outcome::Success);
///
/// let layer = tower_cutout::CircuitBreakerLayer::new(cutout::CircuitBreaker::builder().build()?)
///     .classify(IgnoreLocalRejections);
/// # let _ = layer;
/// # Ok::<(), cutout::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IgnoreLocalRejections;

impl IgnoreLocalRejections {
    /// The outcome of `result`: `Success` for `Ok`, `Ignored` for a bulkhead rejection,
    /// `Failure` for any other `Err`. For classifier closures that add their own cases.
    ///
    /// ```
    /// use cutout::Outcome;
    /// use cutout_companions::{BoxError, classify::IgnoreLocalRejections};
    ///
    /// // Also ignore the caller's own mistakes.
    /// let classify = |r: &Result<u16, BoxError>| match r {
    ///     Ok(400) => Outcome::Ignored,
    ///     other => IgnoreLocalRejections::outcome(other),
    /// };
    /// assert_eq!(classify(&Ok(400)), Outcome::Ignored);
    /// assert_eq!(classify(&Ok(200)), Outcome::Success);
    /// ```
    #[inline]
    pub fn outcome<Res>(result: &Result<Res, BoxError>) -> Outcome {
        match result {
            Ok(_) => Outcome::Success,
            Err(e) if is_load_shed(e.as_ref()) => Outcome::Ignored,
            Err(_) => Outcome::Failure,
        }
    }
}

impl<Res> tower_cutout::classify::Classify<Res, BoxError> for IgnoreLocalRejections {
    type Response = Res;

    #[inline]
    fn classify(
        &self,
        result: Result<Res, BoxError>,
        recorder: tower_cutout::classify::Recorder,
    ) -> Result<Res, BoxError> {
        recorder.record(Self::outcome(&result));
        result
    }
}
