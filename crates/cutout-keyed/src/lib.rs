//! A circuit breaker per key: per host, per endpoint, per tenant.
//!
//! [`KeyedBreakers`] maps keys to [`cutout::CircuitBreaker`]s, each built on first use from
//! one template [`Builder`]. One sick host trips its own breaker; the others keep going.
//!
//! ```
//! use cutout::{CircuitBreaker, ManualClock, Outcome, State};
//! use cutout_keyed::KeyedBreakers;
//!
//! let hosts = KeyedBreakers::builder(CircuitBreaker::builder().failure_threshold(2))
//!     .capacity(1_000)
//!     .name_with(|host: &String| format!("upstream:{host}"))
//!     .build_with_clock(ManualClock::new())?;
//!
//! let a = "a.example".to_string();
//! let b = "b.example".to_string();
//! for _ in 0..2 {
//!     let _ = hosts.call(&a, || Err::<(), _>("connection refused"));
//! }
//! assert_eq!(hosts.state(&a), Some(State::Open));
//! assert_eq!(hosts.call(&b, || Ok::<_, &str>("fine")).unwrap(), "fine");
//! assert_eq!(hosts.state(&b), Some(State::Closed));
//! # Ok::<(), cutout_keyed::KeyedConfigError>(())
//! ```
//!
//! # Bounded, and eviction that never loses protection
//!
//! The registry holds at most [`capacity`](KeyedBuilder::capacity) breakers. When a new key
//! arrives at a full registry, the breakers used least recently are evicted, a batch of an
//! eighth of the capacity at a time (so the sweep, O(capacity), is paid once per
//! `capacity / 8` new keys). [`evict_idle`](KeyedBreakers::evict_idle), called on a timer,
//! evicts every breaker not used since its previous call. An evicted key gets a fresh
//! breaker when it is next used.
//!
//! A breaker is evicted only if it is **closed** and **nothing holds it**: no call in
//! flight, no [`KeyedPermit`] or [`StaticKeyedPermit`], no [`Lease`] or [`StaticLease`].
//! Each breaker carries a user count, striped per thread; eviction claims a breaker by
//! marking every stripe (no one enters a marked stripe), summing the counts the marks
//! return, and reading the breaker's state after them; any user, or a state other than
//! closed, rolls the claim back. So a breaker that is open, half-open, forced, or busy is
//! never dropped, and no outcome is ever recorded on a dropped one, whatever the
//! interleaving (a loom model checks the protocol: `loom-tests/tests/keyed_node.rs`). If
//! every breaker is like that, a new key is refused with [`KeyedRejected::Full`] rather
//! than growing the registry. Under concurrency, threads inserting at once may each add
//! one breaker before seeing the registry full, so the length can exceed the capacity by
//! the number of such threads for a moment.
//!
//! # Why papaya
//!
//! Lookups are the hot path and are almost all reads. [`papaya`]'s map is lock-free, and a
//! read writes no shared cache line (its guard is thread-local); `dashmap` takes a shard
//! read lock per lookup (an atomic write on a line all threads share, which is what ruins
//! scaling on two threads), and `moka` evicts on its own schedule with no way to keep a
//! breaker that is open or busy. papaya's conditional `remove_if` is what makes eviction
//! exact: a key is removed only if it still maps to the breaker that was claimed.
//!
//! # Costs
//!
//! [`call`](KeyedBreakers::call) is a hash, a lock-free lookup (papaya's read guard writes
//! only the calling thread's own slot), and two atomic updates of the breaker's user count
//! around the breaker's own call. Each thread also remembers the last key it entered and
//! its breaker, in a slot of its own in the registry: calling the same key again skips the
//! hash and the lookup (a key comparison, then the user count). A slot takes a new key
//! when it is empty or has missed 16 times in a row, at one clone of the key and of the
//! breaker's `Arc`; a thread cycling through many keys pays a few nanoseconds a call for
//! the check (benches/README.md, runs 25-30). An evicted breaker that a
//! thread still remembers stays allocated, out of the registry, until that thread
//! remembers another key. The count is **striped**: one cache-line-padded counter
//! per stripe, and a thread counts itself in and out on its own stripe (a call that moves
//! threads may count out on another; only the sum matters), so threads calling through
//! one key write no line in common. A stripe per core (the machine's parallelism rounded
//! up to a power of two, at most 16) costs 128 bytes per breaker each on x86-64: 256 bytes
//! per breaker on 2 cores, at most 2 KiB.
//!
//! [`try_acquire`] and [`lease`](KeyedBreakers::lease) (which the thread's slot serves
//! too) also write reference counts, so that the permit or lease can outlive the lookup
//! (across an `.await`): the key's registry entry's, and for a permit the breaker's own.
//! Those are lines every thread writes, twice per call. A registry that
//! lives for the whole process avoids them: [`leak`](KeyedBreakers::leak) it (or keep it
//! in a `static`) and use [`try_acquire_static`](KeyedBreakers::try_acquire_static) and
//! [`lease_static`](KeyedBreakers::lease_static), whose permit and lease borrow the key's
//! breaker; the closed path then writes only the calling thread's own lines.
//!
//! Nothing allocates per call once a key's breaker exists. The map is sized for the
//! capacity when the registry is built (up to 65 536 breakers; about 18 KB of table for
//! the default 1 024), so that lookups stay short however full the registry gets.
//!
//! [`try_acquire`]: KeyedBreakers::try_acquire

// Two modules allow `unsafe`: `cache`, the per-thread lookup cache, which hands out the
// entered node as a plain reference, and `borrowed`, the `&'static` registry's permit,
// which borrows its breaker from the node; see their SAFETY comments.
#![deny(unsafe_code)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    rust_2018_idioms
)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod borrowed;
mod cache;
mod error;
mod node;

use std::fmt;
use std::future::Future;
use std::hash::{BuildHasher, Hash};
use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use cutout::{
    Builder, CallError, CircuitBreaker, Clock, MonotonicClock, Outcome, OwnedPermit, State,
};
use papaya::Guard;

pub use borrowed::{StaticKeyedPermit, StaticLease};
pub use error::{KeyedCallError, KeyedConfigError, KeyedRejected};
use node::Node;
#[cfg(cutout_loom)]
#[doc(hidden)]
pub use node::model;

/// The default capacity.
pub const DEFAULT_CAPACITY: usize = 1024;

/// The most sweeps one insertion makes while other threads' sweeps and insertions race it.
const MAX_SWEEPS: usize = 4;

/// The largest capacity the map is sized for when built (about 1.2 MB of table); a larger
/// registry grows its table as keys arrive.
const PRESIZE_MAX: usize = 1 << 16;

type NameFn<K> = Arc<dyn Fn(&K) -> String + Send + Sync>;

/// The registry's default hasher: foldhash's `quality` hasher, seeded at random once per
/// process (and per registry).
///
/// Chosen by measurement (benches/README.md, issue 15's section): a lookup among 1 000 keys
/// took 43-59 ns with it against 65-78 ns with the standard library's SipHash (fastest
/// tenth of criterion's samples, three runs on a loaded 2-core VM). Its seed keeps an outsider from choosing
/// colliding keys offline, and the registry is bounded, but it makes no claim to
/// SipHash's resistance to an attacker who can time many lookups; where keys come from
/// untrusted input and that matters, pass `std::hash::RandomState::new()` to
/// [`KeyedBuilder::hasher`].
pub type DefaultHashBuilder = foldhash::quality::RandomState;

/// Breakers by key, built on first use from one template, bounded in number.
///
/// See [the crate docs](crate) for eviction and costs.
pub struct KeyedBreakers<K, S = DefaultHashBuilder> {
    map: papaya::HashMap<K, Arc<Node>, S>,
    template: Builder,
    clock: Arc<dyn Clock>,
    name: Option<NameFn<K>>,
    capacity: usize,
    /// A logical clock for recency: bumped by each sweep and each `evict_idle`.
    tick: AtomicU64,
    /// The tick of the previous `evict_idle`.
    idle_mark: AtomicU64,
    evicted: AtomicU64,
    /// Each thread's last key and node (see `cache.rs`).
    cache: cache::ThreadCache<K>,
}

impl<K: Hash + Eq, S: BuildHasher> fmt::Debug for KeyedBreakers<K, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedBreakers")
            .field("len", &self.map.len())
            .field("capacity", &self.capacity)
            .field("evicted", &self.evicted.load(Ordering::Relaxed))
            .field("template", &self.template)
            .finish_non_exhaustive()
    }
}

/// Configures a [`KeyedBreakers`].
#[must_use]
pub struct KeyedBuilder<K, S = DefaultHashBuilder> {
    template: Builder,
    capacity: usize,
    name: Option<NameFn<K>>,
    hasher: S,
}

impl<K, S> fmt::Debug for KeyedBuilder<K, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedBuilder")
            .field("template", &self.template)
            .field("capacity", &self.capacity)
            .field("name_with", &self.name.is_some())
            .finish()
    }
}

impl<K, S> KeyedBuilder<K, S>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    S: BuildHasher + Send + Sync + 'static,
{
    /// The most breakers kept at once (default [`DEFAULT_CAPACITY`]; at least 1).
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self
    }

    /// Names each key's breaker (for listeners, metrics and health); by default every
    /// breaker has the template's name. Listeners added with
    /// [`Builder::listener_with`] are made per key, with this name.
    pub fn name_with(mut self, name: impl Fn(&K) -> String + Send + Sync + 'static) -> Self {
        self.name = Some(Arc::new(name));
        self
    }

    /// Hashes keys with `hasher` instead of the default ([`DefaultHashBuilder`], foldhash's
    /// `quality` hasher with a per-process random seed). Pass
    /// `std::hash::RandomState::new()` (SipHash-1-3) for the standard library's stronger
    /// resistance to chosen-key collisions, at about 15 ns more per lookup.
    pub fn hasher<H: BuildHasher + Send + Sync + 'static>(self, hasher: H) -> KeyedBuilder<K, H> {
        KeyedBuilder {
            template: self.template,
            capacity: self.capacity,
            name: self.name,
            hasher,
        }
    }

    /// Checks the template and builds the registry on the [`MonotonicClock`].
    pub fn build(self) -> Result<KeyedBreakers<K, S>, KeyedConfigError> {
        self.build_with_clock(MonotonicClock::new())
    }

    /// Checks the template and builds the registry; every key's breaker runs on `clock`.
    pub fn build_with_clock(
        self,
        clock: impl Clock,
    ) -> Result<KeyedBreakers<K, S>, KeyedConfigError> {
        if self.capacity == 0 {
            return Err(KeyedConfigError::ZeroCapacity);
        }
        let clock: Arc<dyn Clock> = Arc::new(clock);
        // Every key's breaker is this template with another name: check it once.
        self.template.clone().build_with_clock(clock.clone())?;
        Ok(KeyedBreakers {
            // Sized for the capacity up front (up to a limit): the table stays sparse, so
            // lookups probe a slot or two, and it never resizes while the registry fills.
            map: papaya::HashMap::with_capacity_and_hasher(
                self.capacity.min(PRESIZE_MAX),
                self.hasher,
            ),
            template: self.template,
            clock,
            name: self.name,
            capacity: self.capacity,
            tick: AtomicU64::new(1),
            idle_mark: AtomicU64::new(0),
            evicted: AtomicU64::new(0),
            cache: cache::ThreadCache::new(),
        })
    }
}

impl<K: Hash + Eq + Clone + Send + Sync + 'static> KeyedBreakers<K> {
    /// A builder for breakers made from `template`.
    pub fn builder(template: Builder) -> KeyedBuilder<K> {
        KeyedBuilder {
            template,
            capacity: DEFAULT_CAPACITY,
            name: None,
            hasher: DefaultHashBuilder::default(),
        }
    }
}

impl<K, S> KeyedBreakers<K, S>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    S: BuildHasher + Send + Sync + 'static,
{
    /// Runs `f` through `key`'s breaker; `Err` is a failure, `Ok` a success. See
    /// [`CircuitBreaker::call`].
    pub fn call<T, E>(
        &self,
        key: &K,
        f: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, KeyedCallError<E>> {
        let node = self.enter_held(key)?;
        let _exit = Exit(node);
        node.breaker.call(f).map_err(KeyedCallError::from)
    }

    /// Runs `f` through `key`'s breaker, recording the outcome `classify` gives its result.
    /// See [`CircuitBreaker::call_with`].
    pub fn call_with<T, E>(
        &self,
        key: &K,
        classify: impl FnOnce(&Result<T, E>) -> Outcome,
        f: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, KeyedCallError<E>> {
        let node = self.enter_held(key)?;
        let _exit = Exit(node);
        node.breaker
            .call_with(classify, f)
            .map_err(KeyedCallError::from)
    }

    /// Awaits `future` through `key`'s breaker; `Err` is a failure, `Ok` a success. The
    /// key's breaker is held (not evictable) until the future finishes or is dropped.
    pub async fn call_async<T, E>(
        &self,
        key: &K,
        future: impl Future<Output = Result<T, E>>,
    ) -> Result<T, KeyedCallError<E>> {
        let permit = self.try_acquire(key)?;
        let result = future.await;
        permit.record(match result {
            Ok(_) => Outcome::Success,
            Err(_) => Outcome::Failure,
        });
        result.map_err(KeyedCallError::Inner)
    }

    /// Asks `key`'s breaker for a permit that owns its handles (`'static`, for futures and
    /// tasks). The breaker is held until the permit records or is dropped.
    ///
    /// ```
    /// use cutout::{CircuitBreaker, Outcome};
    /// use cutout_keyed::KeyedBreakers;
    ///
    /// let tenants = KeyedBreakers::builder(CircuitBreaker::builder()).build()?;
    /// let permit = tenants.try_acquire(&42u64)?;
    /// // ... make the call for tenant 42 ...
    /// permit.record(Outcome::Success);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_acquire(&self, key: &K) -> Result<KeyedPermit, KeyedRejected> {
        let lease = self.lease(key)?;
        let permit = lease.try_acquire_owned()?;
        Ok(KeyedPermit { permit, lease })
    }

    /// A handle to `key`'s breaker (created if needed) that keeps it from being evicted
    /// while it lives: for settings and manual control (`force_open`, `reset`) or many
    /// calls in a row.
    pub fn lease(&self, key: &K) -> Result<Lease, KeyedRejected> {
        let node = self.enter_owned(key)?;
        Ok(Lease { node })
    }

    /// The state of `key`'s breaker, if it has one; creates nothing.
    pub fn state(&self, key: &K) -> Option<State> {
        self.map.pin().get(key).map(|node| node.breaker.state())
    }

    /// Breakers in the registry.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the registry holds no breaker.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most breakers kept at once.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Breakers evicted so far.
    pub fn evicted(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }

    /// Evicts every breaker not used since the previous call of `evict_idle` (and closed,
    /// and not held); returns how many. Call it on a timer: a key idle for a whole period
    /// loses its breaker.
    ///
    /// ```
    /// use cutout::CircuitBreaker;
    /// use cutout_keyed::KeyedBreakers;
    ///
    /// let hosts = KeyedBreakers::builder(CircuitBreaker::builder()).build()?;
    /// hosts.call(&"a", || Ok::<_, std::io::Error>(()))?;
    /// assert_eq!(hosts.evict_idle(), 0); // used since the start
    /// assert_eq!(hosts.evict_idle(), 1); // not used since the previous call
    /// assert!(hosts.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn evict_idle(&self) -> usize {
        let now = self.tick.fetch_add(1, Ordering::AcqRel) + 1;
        let mark = self.idle_mark.swap(now, Ordering::AcqRel);
        let guard = self.map.guard();
        let idle: Vec<(K, Arc<Node>)> = self
            .map
            .iter(&guard)
            .filter(|(_, node)| node.seen() < mark)
            .map(|(k, node)| (k.clone(), Arc::clone(node)))
            .collect();
        idle.iter()
            .filter(|(key, node)| self.evict(key, node, &guard))
            .count()
    }

    /// Finds or creates `key`'s breaker and enters it (counts a user).
    fn enter<'g>(&'g self, key: &K, guard: &'g impl Guard) -> Result<&'g Arc<Node>, KeyedRejected> {
        loop {
            if let Some(node) = self.map.get(key, guard) {
                if node.enter() {
                    node.touch(self.tick.load(Ordering::Relaxed));
                    return Ok(node);
                }
                // It is being evicted (final): make sure it is gone, then make a new one.
                let _ = self.map.remove_if(key, |_, v| Arc::ptr_eq(v, node), guard);
                continue;
            }
            self.make_room(guard)?;
            let node = Arc::new(Node::entered(
                self.build(key)?,
                self.tick.load(Ordering::Relaxed),
            ));
            // Published already entered, so no sweep can take it before we use it.
            match self.map.try_insert(key.clone(), node, guard) {
                Ok(node) => return Ok(node),
                // Someone else made it first; use theirs.
                Err(_) => continue,
            }
        }
    }

    fn build(&self, key: &K) -> Result<CircuitBreaker, KeyedRejected> {
        let mut builder = self.template.clone();
        if let Some(name) = &self.name {
            builder = builder.name(name(key));
        }
        builder
            .build_with_clock(self.clock.clone())
            .map_err(KeyedRejected::Config)
    }

    /// Makes room for one more breaker, or says the registry is full of breakers it may
    /// not evict.
    fn make_room(&self, guard: &impl Guard) -> Result<(), KeyedRejected> {
        // Threads sweeping at once claim the same candidates, and a claimed breaker stays
        // in the map until its claimer removes it; other threads' insertions can take the
        // room a sweep made. So sweep again (a few times at most) unless a sweep found
        // nothing evictable at all: a key is refused only when the registry is truly full.
        for _ in 0..MAX_SWEEPS {
            if self.map.len() < self.capacity {
                return Ok(());
            }
            if self.sweep(guard) == 0 {
                break;
            }
        }
        if self.map.len() < self.capacity {
            Ok(())
        } else {
            Err(KeyedRejected::Full {
                capacity: self.capacity,
            })
        }
    }

    /// Evicts the least recently used evictable breakers, down to 7/8 of the capacity
    /// (at least one), and removes breakers other threads claimed but have not removed yet;
    /// returns how many breakers it found evictable or claimed, whether or not another
    /// thread took them first (zero: nothing in the registry can go).
    #[cold]
    #[inline(never)]
    fn sweep(&self, guard: &impl Guard) -> usize {
        self.tick.fetch_add(1, Ordering::AcqRel);
        let keep = self.capacity - self.capacity / 8 - 1;
        let target = self.map.len().saturating_sub(keep).max(1);
        let mut candidates: Vec<(u64, K, Arc<Node>)> = Vec::new();
        let mut claimed: Vec<(K, Arc<Node>)> = Vec::new();
        for (key, node) in self.map.iter(guard) {
            if node.retired() {
                claimed.push((key.clone(), Arc::clone(node)));
            } else if node.evictable() {
                candidates.push((node.seen(), key.clone(), Arc::clone(node)));
            }
        }
        // Breakers another thread claimed but has not removed yet (it may be descheduled
        // between the two): remove them for it, so they do not hold the room.
        let mut evicted = 0;
        for (key, node) in &claimed {
            if self.remove_claimed(key, node, guard) {
                evicted += 1;
            }
        }
        candidates.sort_unstable_by_key(|c| c.0);
        for (_, key, node) in &candidates {
            if evicted >= target {
                break;
            }
            if self.evict(key, node, guard) {
                evicted += 1;
            }
        }
        candidates.len() + claimed.len()
    }

    /// Claims `node` for eviction (closed, no user, nothing changed since seen so) and
    /// removes it if `key` still maps to it.
    fn evict(&self, key: &K, node: &Arc<Node>, guard: &impl Guard) -> bool {
        node.retire() && self.remove_claimed(key, node, guard)
    }

    /// Removes `node`, claimed for eviction, if `key` still maps to it; counts it evicted
    /// if this call removed it.
    fn remove_claimed(&self, key: &K, node: &Arc<Node>, guard: &impl Guard) -> bool {
        let removed = matches!(
            self.map.remove_if(key, |_, v| Arc::ptr_eq(v, node), guard),
            Ok(Some(_))
        );
        if removed {
            self.evicted.fetch_add(1, Ordering::Relaxed);
        }
        removed
    }
}

/// Leaves a node (counts a user out) when dropped, also on panic.
struct Exit<'a>(&'a Node);

impl Drop for Exit<'_> {
    fn drop(&mut self) {
        self.0.exit();
    }
}

/// A handle to one key's breaker that keeps it in the registry while it lives; derefs to
/// the [`CircuitBreaker`].
///
/// ```
/// use cutout::{CircuitBreaker, State};
/// use cutout_keyed::KeyedBreakers;
///
/// let hosts = KeyedBreakers::builder(CircuitBreaker::builder()).build()?;
/// let lease = hosts.lease(&"a.example")?;
/// lease.force_open();
/// assert_eq!(hosts.state(&"a.example"), Some(State::ForcedOpen));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Lease {
    node: Arc<Node>,
}

impl Deref for Lease {
    type Target = CircuitBreaker;

    fn deref(&self) -> &CircuitBreaker {
        &self.node.breaker
    }
}

impl Clone for Lease {
    fn clone(&self) -> Self {
        self.node.enter_held();
        Lease {
            node: Arc::clone(&self.node),
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.node.exit();
    }
}

impl fmt::Debug for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Lease").field(&self.node.breaker).finish()
    }
}

/// A permit from one key's breaker, from [`KeyedBreakers::try_acquire`]: an
/// [`OwnedPermit`] that also holds the key's breaker in the registry until it records or
/// is dropped (a dropped permit records [`Outcome::Ignored`]).
#[must_use = "a permit records Ignored when dropped; record the call's outcome"]
pub struct KeyedPermit {
    permit: OwnedPermit,
    // Dropped after `permit` (fields drop in order): a dropped permit's Ignored is
    // recorded before the breaker is released.
    lease: Lease,
}

impl KeyedPermit {
    /// Records the call's outcome.
    pub fn record(self, outcome: Outcome) {
        // The lease (the rest of `self`) is dropped after the record.
        self.permit.record(outcome);
    }

    /// Records the call's outcome and how long it took; see
    /// [`cutout::Permit::record_with_duration`].
    pub fn record_with_duration(self, outcome: Outcome, took: Duration) {
        self.permit.record_with_duration(outcome, took);
    }

    /// The breaker this permit came from.
    pub fn breaker(&self) -> &CircuitBreaker {
        &self.lease
    }

    /// Splits the permit into the breaker's permit and the lease that holds the key's
    /// breaker in the registry, for middleware that records through its own wrapper of an
    /// [`OwnedPermit`] (a tower classifier that records after a body's trailers, say).
    /// Keep the lease until the permit has recorded: once it is dropped, the key's breaker
    /// may be evicted, and a permit recorded after that counts on a breaker the registry no
    /// longer holds.
    ///
    /// ```
    /// use cutout::{CircuitBreaker, Outcome, State};
    /// use cutout_keyed::KeyedBreakers;
    ///
    /// let hosts = KeyedBreakers::builder(CircuitBreaker::builder().failure_threshold(1)).build()?;
    /// let (permit, lease) = hosts.try_acquire(&"a")?.into_parts();
    /// permit.record(Outcome::Failure);
    /// drop(lease);
    /// assert_eq!(hosts.state(&"a"), Some(State::Open));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn into_parts(self) -> (OwnedPermit, Lease) {
        (self.permit, self.lease)
    }
}

impl fmt::Debug for KeyedPermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedPermit")
            .field("permit", &self.permit)
            .finish_non_exhaustive()
    }
}

impl<E> From<CallError<E>> for KeyedCallError<E> {
    fn from(e: CallError<E>) -> Self {
        match e {
            CallError::Rejected(r) => KeyedCallError::Rejected(KeyedRejected::Breaker(r)),
            CallError::Inner(e) => KeyedCallError::Inner(e),
        }
    }
}
