//! What the registry tests share.

use cutout::{CircuitBreaker, ManualClock};
use cutout_keyed::KeyedBreakers;
use std::time::Duration;

/// The open time of every test registry's breakers.
pub(crate) const OPEN: Duration = Duration::from_secs(10);

/// A registry of `capacity` breakers on `clock`, each tripping at the first failure.
pub(crate) fn registry<K: std::hash::Hash + Eq + Clone + Send + Sync + 'static>(
    capacity: usize,
    clock: &ManualClock,
) -> KeyedBreakers<K> {
    KeyedBreakers::builder(
        CircuitBreaker::builder()
            .failure_threshold(1)
            .open_duration(OPEN),
    )
    .capacity(capacity)
    .build_with_clock(clock.clone())
    .unwrap()
}
