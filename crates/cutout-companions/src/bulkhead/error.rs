//! The bulkhead's rejection.

use std::error::Error;
use std::fmt;

/// A bulkhead refused the call: its concurrency limit was reached (or, for a
/// [keyed bulkhead](super::KeyedBulkheadLayer), it already tracks its maximum of keys and
/// all of them are busy). The inner service was not called.
///
/// Services return it boxed; find it with `err.is::<BulkheadFull>()` or
/// [`is_load_shed`](crate::error::is_load_shed).
///
/// ```
/// use cutout_companions::bulkhead::BulkheadFull;
///
/// let full = BulkheadFull::full(4);
/// assert_eq!(full.limit(), 4);
/// assert!(!full.is_too_many_keys());
/// assert_eq!(full.to_string(), "bulkhead is full: 4 calls in flight");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BulkheadFull {
    limit: usize,
    too_many_keys: bool,
}

impl BulkheadFull {
    /// A bulkhead with `limit` calls in flight.
    pub const fn full(limit: usize) -> Self {
        Self {
            limit,
            too_many_keys: false,
        }
    }

    /// A keyed bulkhead that tracks `max_keys` busy keys and cannot take a new one.
    pub const fn too_many_keys(max_keys: usize) -> Self {
        Self {
            limit: max_keys,
            too_many_keys: true,
        }
    }

    /// The limit that was reached: calls in flight (per key, for a keyed bulkhead), or keys
    /// tracked when [`is_too_many_keys`](Self::is_too_many_keys).
    pub const fn limit(&self) -> usize {
        self.limit
    }

    /// Whether the keyed bulkhead ran out of keys rather than of calls.
    pub const fn is_too_many_keys(&self) -> bool {
        self.too_many_keys
    }
}

impl fmt::Display for BulkheadFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.too_many_keys {
            write!(f, "bulkhead is full: {} keys tracked, all busy", self.limit)
        } else {
            write!(f, "bulkhead is full: {} calls in flight", self.limit)
        }
    }
}

impl Error for BulkheadFull {}
