//! The atomics the breaker uses, from one place.
//!
//! Production code imports its atomics only from here. Under `--cfg cutout_loom` they are
//! loom's, so the loom models in `loom-tests/` check the real state machine; otherwise they
//! are std's. A namespaced cfg is used (not `--cfg loom`) so that tokio and other
//! dependencies are not switched to their own loom builds.

#[cfg(cutout_loom)]
pub(crate) use loom::sync::atomic::{AtomicU64, fence};
#[cfg(not(cutout_loom))]
pub(crate) use std::sync::atomic::{AtomicU64, fence};

pub(crate) use std::sync::atomic::Ordering;

/// A value replaced as a whole while readers hold it: the breaker's live settings.
///
/// Readers get a consistent snapshot without a lock and without a write to shared memory
/// (`arc_swap`'s load borrows a slot of the reading thread's own: allocated on the thread's
/// first read, once, and reused by later threads); a writer swaps the whole value.
///
/// Under `--cfg cutout_loom` it is a std mutex around an `Arc`, held across no loom
/// operation: a load or a swap is one step (linearizable, which is what `arc_swap`
/// guarantees) that the models place between the atomic operations around it, without
/// adding scheduling points to the models that never swap.
#[derive(Debug)]
pub(crate) struct Swap<T> {
    #[cfg(not(cutout_loom))]
    cell: arc_swap::ArcSwap<T>,
    #[cfg(cutout_loom)]
    cell: std::sync::Mutex<std::sync::Arc<T>>,
}

/// A reader's snapshot from [`Swap::load`].
#[cfg(not(cutout_loom))]
pub(crate) struct Snapshot<T>(arc_swap::Guard<std::sync::Arc<T>>);
/// A reader's snapshot from [`Swap::load`].
#[cfg(cutout_loom)]
pub(crate) struct Snapshot<T>(std::sync::Arc<T>);

impl<T> std::ops::Deref for Snapshot<T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> Swap<T> {
    pub(crate) fn new(value: T) -> Self {
        Self {
            #[cfg(not(cutout_loom))]
            cell: arc_swap::ArcSwap::from_pointee(value),
            #[cfg(cutout_loom)]
            cell: std::sync::Mutex::new(std::sync::Arc::new(value)),
        }
    }

    /// The current value.
    #[inline]
    pub(crate) fn load(&self) -> Snapshot<T> {
        #[cfg(not(cutout_loom))]
        return Snapshot(self.cell.load());
        #[cfg(cutout_loom)]
        return Snapshot(self.cell.lock().expect("no panic while swapping").clone());
    }

    /// Replaces the value; readers holding the old one keep it until they drop it.
    pub(crate) fn store(&self, value: T) {
        #[cfg(not(cutout_loom))]
        self.cell.store(std::sync::Arc::new(value));
        #[cfg(cutout_loom)]
        {
            *self.cell.lock().expect("no panic while swapping") = std::sync::Arc::new(value);
        }
    }
}
