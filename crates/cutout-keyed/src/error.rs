//! Errors: a refused key, a refused or failed call, a refused configuration.

use std::error::Error;
use std::fmt;
use std::time::Duration;

use cutout::{ConfigError, Rejected};

/// The registry refused a call.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum KeyedRejected {
    /// The key's breaker refused it (open, half-open and full, forced open).
    Breaker(Rejected),
    /// The key has no breaker, and the registry is full of breakers it may not evict
    /// (open, half-open, forced, or in use).
    Full {
        /// The registry's capacity.
        capacity: usize,
    },
    /// The key's breaker could not be built. The template is checked when the registry is
    /// built, so this does not happen; it is here so that nothing panics if it did.
    Config(ConfigError),
}

impl KeyedRejected {
    /// How long to wait before trying again, where the breaker knows.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            KeyedRejected::Breaker(r) => r.retry_after(),
            _ => None,
        }
    }
}

impl From<Rejected> for KeyedRejected {
    fn from(r: Rejected) -> Self {
        KeyedRejected::Breaker(r)
    }
}

impl fmt::Display for KeyedRejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyedRejected::Breaker(r) => r.fmt(f),
            KeyedRejected::Full { capacity } => write!(
                f,
                "no breaker for this key: the registry holds {capacity} breakers that are open, \
                 half-open or in use"
            ),
            KeyedRejected::Config(e) => write!(f, "the key's breaker could not be built: {e}"),
        }
    }
}

impl Error for KeyedRejected {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            KeyedRejected::Breaker(r) => Some(r),
            KeyedRejected::Config(e) => Some(e),
            KeyedRejected::Full { .. } => None,
        }
    }
}

/// The error of a call made through a key's breaker.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyedCallError<E> {
    /// Refused; the call did not run.
    Rejected(KeyedRejected),
    /// The call ran and returned this error.
    Inner(E),
}

impl<E> From<KeyedRejected> for KeyedCallError<E> {
    fn from(r: KeyedRejected) -> Self {
        KeyedCallError::Rejected(r)
    }
}

impl<E: fmt::Display> fmt::Display for KeyedCallError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyedCallError::Rejected(r) => r.fmt(f),
            KeyedCallError::Inner(e) => e.fmt(f),
        }
    }
}

impl<E: Error + 'static> Error for KeyedCallError<E> {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            KeyedCallError::Rejected(r) => Some(r),
            KeyedCallError::Inner(e) => Some(e),
        }
    }
}

/// A registry setting `build()` refused.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum KeyedConfigError {
    /// The template builder is invalid.
    Breaker(ConfigError),
    /// `capacity(0)`.
    ZeroCapacity,
}

impl From<ConfigError> for KeyedConfigError {
    fn from(e: ConfigError) -> Self {
        KeyedConfigError::Breaker(e)
    }
}

impl fmt::Display for KeyedConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyedConfigError::Breaker(e) => e.fmt(f),
            KeyedConfigError::ZeroCapacity => f.write_str("capacity must be at least 1"),
        }
    }
}

impl Error for KeyedConfigError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            KeyedConfigError::Breaker(e) => Some(e),
            KeyedConfigError::ZeroCapacity => None,
        }
    }
}
