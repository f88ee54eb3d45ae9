//! The adaptive timeout's error.

use std::error::Error;
use std::fmt;
use std::time::Duration;

/// The call took longer than the adaptive timeout in force when it started; its future was
/// dropped. A circuit breaker above counts it as a failure (any `Err` is one by default).
///
/// ```
/// use cutout_companions::timeout::Elapsed;
/// use std::time::Duration;
///
/// let e = Elapsed::new(Duration::from_millis(20));
/// assert_eq!(e.timeout(), Duration::from_millis(20));
/// assert_eq!(e.to_string(), "request timed out after 20ms");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed {
    timeout: Duration,
}

impl Elapsed {
    /// A timeout of `timeout`.
    pub const fn new(timeout: Duration) -> Self {
        Self { timeout }
    }

    /// The timeout that elapsed.
    pub const fn timeout(&self) -> Duration {
        self.timeout
    }
}

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "request timed out after {:?}", self.timeout)
    }
}

impl Error for Elapsed {}
