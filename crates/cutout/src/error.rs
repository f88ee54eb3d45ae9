//! Errors: a rejection by the breaker, and a call's error (rejected or inner).

use std::error::Error;
use std::fmt;
use std::time::Duration;

/// The breaker refused a call.
///
/// ```
/// use cutout::{CircuitBreaker, Outcome, Rejected};
/// use std::time::Duration;
///
/// let breaker = CircuitBreaker::builder()
///     .failure_threshold(1)
///     .open_duration(Duration::from_secs(10))
///     .build()?;
/// breaker.try_acquire()?.record(Outcome::Failure);
/// match breaker.try_acquire() {
///     Err(Rejected::Open { retry_after }) => assert!(retry_after <= Duration::from_secs(10)),
///     other => panic!("expected open, got {other:?}"),
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Rejected {
    /// The circuit is open (the seed article's `ErrCircuitBreakerOpen`).
    Open {
        /// Time left until the open time ends.
        retry_after: Duration,
    },
    /// The circuit is half-open and every probe slot is taken (the seed article's
    /// `ErrTooManyRequests`).
    HalfOpenFull {
        /// Time left, at the latest, until a slot frees: the end of the probe lease.
        retry_after: Duration,
    },
    /// The circuit was forced open and stays open until reset.
    ForcedOpen,
}

impl Rejected {
    /// How long to wait before trying again, where the breaker knows (`None` when forced
    /// open).
    pub fn retry_after(&self) -> Option<Duration> {
        match *self {
            Rejected::Open { retry_after } | Rejected::HalfOpenFull { retry_after } => {
                Some(retry_after)
            }
            Rejected::ForcedOpen => None,
        }
    }

    /// A lowercase name, stable for use as a metric label: `open`, `half_open_full`,
    /// `forced_open`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Rejected::Open { .. } => "open",
            Rejected::HalfOpenFull { .. } => "half_open_full",
            Rejected::ForcedOpen => "forced_open",
        }
    }
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejected::Open { retry_after } => {
                write!(f, "circuit breaker is open; retry after {retry_after:?}")
            }
            Rejected::HalfOpenFull { retry_after } => write!(
                f,
                "circuit breaker is half-open and its probe slots are taken; retry after \
                 {retry_after:?}"
            ),
            Rejected::ForcedOpen => f.write_str("circuit breaker is forced open"),
        }
    }
}

impl Error for Rejected {}

/// The error of a call made through the breaker: rejected, or the call's own error.
///
/// ```
/// use cutout::{CallError, CircuitBreaker};
///
/// let breaker = CircuitBreaker::builder().build()?;
/// let result: Result<(), CallError<&str>> = breaker.call(|| Err("boom"));
/// assert!(matches!(result, Err(CallError::Inner("boom"))));
/// # Ok::<(), cutout::ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError<E> {
    /// The breaker refused the call; it did not run.
    Rejected(Rejected),
    /// The call ran and returned this error.
    Inner(E),
}

impl<E> CallError<E> {
    /// The rejection, if the breaker refused the call.
    pub fn rejected(&self) -> Option<&Rejected> {
        match self {
            CallError::Rejected(r) => Some(r),
            CallError::Inner(_) => None,
        }
    }

    /// The call's own error, if it ran.
    pub fn into_inner(self) -> Option<E> {
        match self {
            CallError::Rejected(_) => None,
            CallError::Inner(e) => Some(e),
        }
    }
}

impl<E> From<Rejected> for CallError<E> {
    fn from(r: Rejected) -> Self {
        CallError::Rejected(r)
    }
}

impl<E: fmt::Display> fmt::Display for CallError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Rejected(r) => r.fmt(f),
            CallError::Inner(e) => e.fmt(f),
        }
    }
}

impl<E: Error + 'static> Error for CallError<E> {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            CallError::Rejected(r) => Some(r),
            CallError::Inner(e) => Some(e),
        }
    }
}
