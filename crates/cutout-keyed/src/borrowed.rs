//! A `'static` registry's lease and permit, which borrow the key's node from the map
//! instead of cloning its `Arc`: no reference count is written per call.
//!
//! One of the crate's two modules with `unsafe` code (with `cache.rs`, which hands out the
//! entered node): one pointer cast, in [`KeyedBreakers::try_acquire_static`]. Everything
//! else here is safe code on top of it.
#![allow(unsafe_code)]

use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::ops::Deref;
use std::time::Duration;

use cutout::{CircuitBreaker, Outcome, Permit};

use crate::node::Node;
use crate::{KeyedBreakers, KeyedRejected};

impl<K, S> KeyedBreakers<K, S>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    S: BuildHasher + Send + Sync + 'static,
{
    /// Moves the registry to the heap for the rest of the process and returns a
    /// `&'static` reference to it, like [`CircuitBreaker::leak`]. A `'static` registry
    /// hands out [`StaticKeyedPermit`]s and [`StaticLease`]s, which borrow the key's breaker
    /// instead of cloning reference counts: a call writes only the calling thread's own
    /// stripe of the breaker's user count (see the [crate docs](crate#costs)). A `static`
    /// in a `std::sync::LazyLock` works the same way. Each call leaks one registry: make it
    /// once, at start-up.
    ///
    /// ```
    /// use cutout::{CircuitBreaker, Outcome};
    /// use cutout_keyed::KeyedBreakers;
    ///
    /// let hosts = KeyedBreakers::builder(CircuitBreaker::builder()).build()?.leak();
    /// let permit = hosts.try_acquire_static(&"a.example")?;
    /// std::thread::spawn(move || permit.record(Outcome::Success)).join().unwrap();
    /// assert_eq!(hosts.lease_static(&"a.example")?.stats().successes, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn leak(self) -> &'static Self {
        Box::leak(Box::new(self))
    }

    /// Asks `key`'s breaker for a permit that borrows it from this `'static` registry (no
    /// reference count; `'static`, for futures and tasks): the `&'static` counterpart of
    /// [`try_acquire`](Self::try_acquire). The breaker is held until the permit records or
    /// is dropped.
    pub fn try_acquire_static(&'static self, key: &K) -> Result<StaticKeyedPermit, KeyedRejected> {
        let lease = self.lease_static(key)?;
        let breaker: *const CircuitBreaker = &lease.node.breaker;
        // SAFETY: `breaker` points into the node `lease` holds: it stays valid while
        // `lease` lives (see `lease_static`), and the permit is declared before the lease
        // in `StaticKeyedPermit`, so it is dropped (or consumed by `record`) first. The
        // permit is never handed out apart from its lease.
        let breaker: &'static CircuitBreaker = unsafe { &*breaker };
        let permit = breaker.try_acquire()?;
        Ok(StaticKeyedPermit { permit, lease })
    }

    /// A handle to `key`'s breaker (created if needed) that keeps it from being evicted
    /// while it lives, borrowed from this `'static` registry (no reference count): the
    /// `&'static` counterpart of [`lease`](Self::lease).
    pub fn lease_static(&'static self, key: &K) -> Result<StaticLease, KeyedRejected> {
        // The node stays allocated until the `StaticLease` made here exits it (its drop, the
        // lease's last use of it):
        // - `enter_held` counted a user in, so `Node::retire` fails until that user exits
        //   (a node with a user is never claimed; node.rs shows why under any interleaving).
        // - The map removes a key's node only once it is claimed (`remove_claimed`, and
        //   `enter`'s cleanup of a retired node); it never replaces one (`try_insert`) and
        //   is never cleared. So the key keeps mapping to this node's `Arc` while the lease
        //   lives, and papaya frees a value only after it is removed.
        // - The registry is `'static`, so the map itself is never dropped: the reference
        //   `enter_held` returns lives as long.
        let node: &'static Node = self.enter_held(key)?;
        Ok(StaticLease { node })
    }
}

/// A handle to one key's breaker in a `'static` registry, from
/// [`KeyedBreakers::lease_static`]: keeps it in the registry while it lives, and derefs to
/// the [`CircuitBreaker`]. Holding it writes no reference count.
pub struct StaticLease {
    node: &'static Node,
}

impl Deref for StaticLease {
    type Target = CircuitBreaker;

    fn deref(&self) -> &CircuitBreaker {
        &self.node.breaker
    }
}

impl Clone for StaticLease {
    fn clone(&self) -> Self {
        self.node.enter_held();
        StaticLease { node: self.node }
    }
}

impl Drop for StaticLease {
    #[inline]
    fn drop(&mut self) {
        self.node.exit();
    }
}

impl fmt::Debug for StaticLease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("StaticLease")
            .field(&self.node.breaker)
            .finish()
    }
}

/// A permit from one key's breaker in a `'static` registry, from
/// [`KeyedBreakers::try_acquire_static`]: a [`Permit<'static>`] that also holds the key's
/// breaker in the registry until it records or is dropped (a dropped permit records
/// [`Outcome::Ignored`], and then releases the breaker). Writes no reference count.
#[must_use = "a permit records Ignored when dropped; record the call's outcome"]
pub struct StaticKeyedPermit {
    // Dropped before `lease` (fields drop in order): the permit records (or gives itself
    // back as Ignored) while the breaker is held. `permit` borrows from `lease`'s node, so
    // it is never handed out on its own.
    permit: Permit<'static>,
    lease: StaticLease,
}

impl StaticKeyedPermit {
    /// Records the call's outcome.
    #[inline]
    pub fn record(self, outcome: Outcome) {
        // The lease (the rest of `self`) is dropped after the record.
        self.permit.record(outcome);
    }

    /// Records the call's outcome and how long it took; see
    /// [`cutout::Permit::record_with_duration`].
    pub fn record_with_duration(self, outcome: Outcome, took: Duration) {
        self.permit.record_with_duration(outcome, took);
    }

    /// Records the call's outcome; if it opens the circuit, the circuit stays open at least
    /// `retry_after`. See [`cutout::Permit::record_with_retry_after`].
    pub fn record_with_retry_after(self, outcome: Outcome, retry_after: Duration) {
        self.permit.record_with_retry_after(outcome, retry_after);
    }

    /// The breaker this permit came from.
    pub fn breaker(&self) -> &CircuitBreaker {
        &self.lease
    }
}

impl fmt::Debug for StaticKeyedPermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticKeyedPermit")
            .field("permit", &self.permit)
            .finish_non_exhaustive()
    }
}
