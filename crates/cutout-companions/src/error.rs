//! Errors shared by the companions, and helpers that read a boxed error's chain.
//!
//! Tower middleware returns boxed errors (`Box<dyn Error + Send + Sync>`), often wrapped by
//! the layers above. The helpers here walk [`Error::source`] from the outermost error down,
//! so a rejection is found however deep it sits.

use std::error::Error;
use std::fmt;
use std::time::Duration;

/// A boxed error, as tower's middleware returns them.
pub type BoxError = Box<dyn Error + Send + Sync>;

/// A setting a companion's `build()` refused. Nothing is clamped silently and nothing
/// panics.
///
/// ```
/// use cutout_companions::{ConfigError, retry::RetryPolicy};
///
/// let err = RetryPolicy::builder().jitter(1.5).build().unwrap_err();
/// assert_eq!(err, ConfigError::OutOfRange { setting: "jitter", value: 1.5 });
/// assert_eq!(err.to_string(), "jitter is 1.5, outside its range");
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ConfigError {
    /// A number outside its range (a probability, ratio, factor or percentile), or not a
    /// number.
    OutOfRange {
        /// The setting.
        setting: &'static str,
        /// The value given.
        value: f64,
    },
    /// A count or duration that must not be zero.
    Zero {
        /// The setting.
        setting: &'static str,
    },
    /// A lower bound above its upper bound.
    Inverted {
        /// The lower bound's setting.
        low: &'static str,
        /// Its value.
        low_value: Duration,
        /// The upper bound's setting.
        high: &'static str,
        /// Its value.
        high_value: Duration,
    },
    /// A duration outside the range the setting accepts.
    DurationOutOfRange {
        /// The setting.
        setting: &'static str,
        /// The value given.
        value: Duration,
        /// The shortest accepted.
        min: Duration,
        /// The longest accepted.
        max: Duration,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::OutOfRange { setting, value } => {
                write!(f, "{setting} is {value}, outside its range")
            }
            ConfigError::Zero { setting } => write!(f, "{setting} must not be zero"),
            ConfigError::Inverted {
                low,
                low_value,
                high,
                high_value,
            } => write!(
                f,
                "{low} ({low_value:?}) must not be above {high} ({high_value:?})"
            ),
            ConfigError::DurationOutOfRange {
                setting,
                value,
                min,
                max,
            } => write!(
                f,
                "{setting} is {value:?}, it must be between {min:?} and {max:?}"
            ),
        }
    }
}

impl Error for ConfigError {}

/// Checks that `value` is a number in `min..=max`.
pub(crate) fn check_range(
    setting: &'static str,
    value: f64,
    min: f64,
    max: f64,
) -> Result<(), ConfigError> {
    if value.is_finite() && value >= min && value <= max {
        Ok(())
    } else {
        Err(ConfigError::OutOfRange { setting, value })
    }
}

/// A transient error that says how long to wait before trying again (a server's
/// `Retry-After`, a rate limiter's refill time). The [retry policy](crate::retry) waits at
/// least that long, or does not retry when it is longer than its
/// [`max_retry_after`](crate::retry::RetryBuilder::max_retry_after).
///
/// ```
/// use cutout_companions::error::{RetryAfter, retry_after};
/// use std::time::Duration;
///
/// let err: cutout_companions::BoxError =
///     Box::new(RetryAfter::new(Duration::from_secs(2), "rate limited"));
/// assert_eq!(retry_after(err.as_ref()), Some(Duration::from_secs(2)));
/// assert_eq!(err.to_string(), "rate limited (retry after 2s)");
/// ```
#[derive(Debug)]
pub struct RetryAfter {
    after: Duration,
    source: BoxError,
}

impl RetryAfter {
    /// `source`, to be retried no sooner than `after`.
    pub fn new(after: Duration, source: impl Into<BoxError>) -> Self {
        Self {
            after,
            source: source.into(),
        }
    }

    /// How long to wait before trying again.
    pub fn after(&self) -> Duration {
        self.after
    }

    /// The error itself.
    pub fn into_source(self) -> BoxError {
        self.source
    }
}

impl fmt::Display for RetryAfter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (retry after {:?})", self.source, self.after)
    }
}

impl Error for RetryAfter {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(self.source.as_ref())
    }
}

/// The errors in `err`'s chain, outermost first.
pub fn chain<'a>(
    err: &'a (dyn Error + 'static),
) -> impl Iterator<Item = &'a (dyn Error + 'static)> {
    fn source<'e>(e: &&'e (dyn Error + 'static)) -> Option<&'e (dyn Error + 'static)> {
        (*e).source()
    }
    std::iter::successors(Some(err), source)
}

/// Whether a circuit breaker refused the call: a [`tower_cutout::error::Rejected`] or a
/// [`cutout::Rejected`] (also as the source of [`cutout::CallError::Rejected`]) anywhere in
/// the chain.
///
/// ```
/// use cutout_companions::{BoxError, error::is_breaker_rejection};
///
/// let open = cutout::Rejected::ForcedOpen;
/// let from_tower: BoxError = tower_cutout::error::Rejected::boxed(open);
/// let from_core: BoxError = Box::new(cutout::CallError::<std::io::Error>::Rejected(open));
/// let other: BoxError = "connection reset".into();
/// assert!(is_breaker_rejection(from_tower.as_ref()));
/// assert!(is_breaker_rejection(from_core.as_ref()));
/// assert!(!is_breaker_rejection(other.as_ref()));
/// ```
pub fn is_breaker_rejection(err: &(dyn Error + 'static)) -> bool {
    chain(err).any(|e| e.is::<tower_cutout::error::Rejected>() || e.is::<cutout::Rejected>())
}

/// Whether this process's own load shedding refused the call: a
/// [`BulkheadFull`](crate::bulkhead::BulkheadFull) or tower's
/// [`Overloaded`](tower::load_shed::error::Overloaded) anywhere in the chain. The dependency
/// was not called and is not to blame.
///
/// ```
/// use cutout_companions::{BoxError, error::is_load_shed};
///
/// let shed: BoxError = Box::new(tower::load_shed::error::Overloaded::new());
/// assert!(is_load_shed(shed.as_ref()));
/// ```
pub fn is_load_shed(err: &(dyn Error + 'static)) -> bool {
    chain(err).any(|e| {
        e.is::<crate::bulkhead::BulkheadFull>() || e.is::<tower::load_shed::error::Overloaded>()
    })
}

/// The wait an error asks for: the first [`RetryAfter`] in the chain, or a breaker
/// rejection's `retry_after`.
///
/// ```
/// use cutout_companions::{BoxError, error::retry_after};
/// use std::time::Duration;
///
/// let open = cutout::Rejected::Open { retry_after: Duration::from_secs(3) };
/// let err: BoxError = tower_cutout::error::Rejected::boxed(open);
/// assert_eq!(retry_after(err.as_ref()), Some(Duration::from_secs(3)));
/// ```
pub fn retry_after(err: &(dyn Error + 'static)) -> Option<Duration> {
    chain(err).find_map(|e| {
        if let Some(r) = e.downcast_ref::<RetryAfter>() {
            Some(r.after)
        } else if let Some(r) = e.downcast_ref::<tower_cutout::error::Rejected>() {
            r.retry_after()
        } else if let Some(r) = e.downcast_ref::<cutout::Rejected>() {
            r.retry_after()
        } else {
            None
        }
    })
}
