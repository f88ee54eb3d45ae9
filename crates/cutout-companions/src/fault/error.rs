//! The error a fault injection layer makes.

use std::error::Error;
use std::fmt;

/// What kind of fault was injected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FaultKind {
    /// A [`Rule::error`](super::Rule::error) fired.
    Error,
    /// The call fell in a [`Rule::outage`](super::Rule::outage) window.
    Outage,
}

impl FaultKind {
    /// A lowercase name, stable for metric labels: `error`, `outage`.
    pub const fn as_str(&self) -> &'static str {
        match self {
            FaultKind::Error => "error",
            FaultKind::Outage => "outage",
        }
    }
}

/// A failure made up by a [`FaultInjection`](super::FaultInjection) layer; the inner service
/// was not called. A circuit breaker above counts it as a failure, like a real one.
///
/// ```
/// use cutout_companions::fault::{FaultKind, InjectedFault};
///
/// let e = InjectedFault::new(FaultKind::Outage);
/// assert_eq!(e.kind(), FaultKind::Outage);
/// assert_eq!(e.to_string(), "injected fault: outage");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InjectedFault {
    kind: FaultKind,
}

impl InjectedFault {
    /// A fault of `kind`.
    pub const fn new(kind: FaultKind) -> Self {
        Self { kind }
    }

    /// Its kind.
    pub const fn kind(&self) -> FaultKind {
        self.kind
    }
}

impl fmt::Display for InjectedFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "injected fault: {}", self.kind.as_str())
    }
}

impl Error for InjectedFault {}
