//! Which results are worth retrying.

use std::error::Error;
use std::time::Duration;

use crate::error::{self, BoxError};

/// What a classifier says about one result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing to retry: a success, or a failure that repeating would not fix.
    Done,
    /// A transient failure: retry after the backoff, and no sooner than `retry_after` if the
    /// failure said so.
    Transient {
        /// How long the failure asked us to wait (`Retry-After`), if it did.
        retry_after: Option<Duration>,
    },
    /// A circuit breaker or a bulkhead in this process refused the call. Never retried: the
    /// breaker is open because the dependency is failing, and a full bulkhead means we are
    /// already shedding load.
    Rejected,
}

/// Classifies a finished attempt for the [retry policy](super::RetryPolicy).
///
/// Implemented for closures `Fn(&Result<Res, E>) -> Verdict`; a closure that looks at
/// errors should start from [`classify_error`] so that rejections are never retried:
///
/// ```
/// use cutout_companions::{BoxError, retry::{Classify, Verdict, classify_error}};
///
/// // Retry errors, and responses that say "busy".
/// let classify = |result: &Result<&str, BoxError>| match result {
///     Ok("busy") => Verdict::Transient { retry_after: None },
///     Ok(_) => Verdict::Done,
///     Err(e) => classify_error(e.as_ref()),
/// };
/// assert_eq!(classify.classify(&Ok("busy")), Verdict::Transient { retry_after: None });
/// assert_eq!(classify.classify(&Ok("done")), Verdict::Done);
/// ```
pub trait Classify<Res, E> {
    /// The verdict on `result`.
    fn classify(&self, result: &Result<Res, E>) -> Verdict;
}

impl<F, Res, E> Classify<Res, E> for F
where
    F: Fn(&Result<Res, E>) -> Verdict,
{
    #[inline]
    fn classify(&self, result: &Result<Res, E>) -> Verdict {
        self(result)
    }
}

/// The verdict on an error, from its chain: a breaker rejection or a full bulkhead is
/// [`Verdict::Rejected`]; anything else is [`Verdict::Transient`], waiting at least the
/// chain's [`RetryAfter`](crate::error::RetryAfter) if it has one.
///
/// ```
/// use cutout_companions::{BoxError, retry::{Verdict, classify_error}};
///
/// let rejected: BoxError = tower_cutout::error::Rejected::boxed(cutout::Rejected::ForcedOpen);
/// assert_eq!(classify_error(rejected.as_ref()), Verdict::Rejected);
/// let reset: BoxError = "connection reset".into();
/// assert_eq!(classify_error(reset.as_ref()), Verdict::Transient { retry_after: None });
/// ```
pub fn classify_error(err: &(dyn Error + 'static)) -> Verdict {
    if error::is_breaker_rejection(err) || error::is_load_shed(err) {
        Verdict::Rejected
    } else {
        Verdict::Transient {
            retry_after: error::retry_after(err),
        }
    }
}

/// The default classifier for services whose error is a [`BoxError`] (tower's middleware):
/// every `Ok` is done; an `Err` is judged by [`classify_error`] (rejections are never
/// retried, anything else is transient).
///
/// ```
/// use cutout_companions::{BoxError, retry::{Classify, TransientErrors, Verdict}};
///
/// let reset: BoxError = "connection reset".into();
/// assert_eq!(TransientErrors.classify(&Err::<(), _>(reset)), Verdict::Transient { retry_after: None });
/// assert_eq!(TransientErrors.classify(&Ok::<_, BoxError>(())), Verdict::Done);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TransientErrors;

impl<Res> Classify<Res, BoxError> for TransientErrors {
    #[inline]
    fn classify(&self, result: &Result<Res, BoxError>) -> Verdict {
        match result {
            Ok(_) => Verdict::Done,
            Err(e) => classify_error(e.as_ref()),
        }
    }
}
