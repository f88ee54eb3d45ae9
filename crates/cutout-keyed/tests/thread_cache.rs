//! The per-thread lookup cache: a thread calling its last key again skips the map (seen as
//! no hash computed), with borrowed and owned handles alike; it keeps its key through a
//! few misses, never uses an evicted breaker, frees each breaker once, and a reentrant
//! call from a key's `Eq` takes the map's way.
//!
//! Its own test binary: a thread has a cache slot only while its `cutout::thread_index`
//! is below the slot count (16 here), which a process running thread storms next to these
//! tests could exceed.

use std::cell::Cell;
use std::hash::{BuildHasher, DefaultHasher, Hash, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;

use cutout::{CircuitBreaker, ManualClock};
use cutout_keyed::KeyedBreakers;

/// Counts the hashes the registry computes (each lookup in the map computes one).
#[derive(Clone, Default)]
struct Counting(Arc<AtomicUsize>);

impl Counting {
    fn hashes(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

impl BuildHasher for Counting {
    type Hasher = DefaultHasher;

    fn build_hasher(&self) -> DefaultHasher {
        self.0.fetch_add(1, Ordering::SeqCst);
        DefaultHasher::new()
    }
}

fn registry<K>(hasher: &Counting) -> KeyedBreakers<K, Counting>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
{
    KeyedBreakers::<K>::builder(CircuitBreaker::builder().failure_threshold(5))
        .hasher(hasher.clone())
        .build_with_clock(ManualClock::new())
        .expect("valid config")
}

fn ok<K, S>(r: &KeyedBreakers<K, S>, key: &K)
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    S: BuildHasher + Send + Sync + 'static,
{
    assert_eq!(r.call(key, || Ok::<_, ()>(7)), Ok(7));
}

#[test]
fn a_thread_calling_its_last_key_again_does_not_look_it_up() {
    let hasher = Counting::default();
    let hosts = registry::<u64>(&hasher);
    ok(&hosts, &1);
    let after_first = hasher.hashes();
    assert!(after_first > 0, "the first call looks the key up");
    for _ in 0..3 {
        ok(&hosts, &1);
    }
    assert_eq!(hasher.hashes(), after_first);
    // An owned permit and lease (an `Arc` of the node) take the cache too.
    let permit = hosts.try_acquire(&1).expect("closed");
    permit.record(cutout::Outcome::Success);
    assert_eq!(hosts.lease(&1).expect("held").stats().successes, 5);
    assert_eq!(hasher.hashes(), after_first);
}

/// Counts the breakers alive: each breaker holds one, made when it is built.
struct Alive(Arc<AtomicUsize>);

impl Alive {
    fn new(alive: &Arc<AtomicUsize>) -> Alive {
        alive.fetch_add(1, Ordering::SeqCst);
        Alive(alive.clone())
    }
}

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl cutout::Listener for Alive {
    fn wants_call_events(&self) -> bool {
        false
    }
}

#[test]
fn owned_handles_from_the_cache_hold_the_breaker_and_free_it_once() {
    let hasher = Counting::default();
    let alive = Arc::new(AtomicUsize::new(0));
    let made = alive.clone();
    let hosts = KeyedBreakers::<u64>::builder(
        CircuitBreaker::builder().listener_with(move |_| Alive::new(&made)),
    )
    .hasher(hasher.clone())
    .build_with_clock(ManualClock::new())
    .expect("valid config");
    hosts
        .try_acquire(&1)
        .expect("closed")
        .record(cutout::Outcome::Success);
    let after_first = hasher.hashes();
    let lease = hosts.lease(&1).expect("held");
    let clone = lease.clone();
    let permit = hosts.try_acquire(&1).expect("closed");
    assert_eq!(hasher.hashes(), after_first, "all three from the cache");
    assert_eq!(alive.load(Ordering::SeqCst), 1);

    // Held: not evicted, and the breaker in hand is the registry's.
    assert_eq!((hosts.evict_idle(), hosts.evict_idle()), (0, 0));
    permit.record(cutout::Outcome::Success);
    assert_eq!(clone.stats().successes, 2);
    drop((lease, clone));
    assert_eq!((hosts.evict_idle(), hosts.evicted()), (1, 1));

    // The slot's breaker refuses; the key gets a new one (which the slot then takes), and
    // an owned lease of it is the registry's. (When the evicted one is freed depends on
    // the map's deferred reclamation too, so only the end is counted.)
    let lease = hosts.lease(&1).expect("made anew");
    assert_eq!(lease.stats().successes, 0);
    lease.call(|| Ok::<_, ()>(())).expect("closed");
    assert_eq!(hosts.lease(&1).expect("held").stats().successes, 1);
    assert_eq!(hosts.len(), 1);
    drop(lease);
    drop(hosts);
    // One strong count too many from the cache would keep a breaker alive here (and one
    // too few would free a breaker still in use, before this line).
    assert_eq!(alive.load(Ordering::SeqCst), 0, "every breaker freed");
}

#[test]
fn a_static_registry_s_permits_and_leases_take_the_cache_too() {
    let hasher = Counting::default();
    let hosts: &'static KeyedBreakers<u64, Counting> = registry(&hasher).leak();
    hosts
        .try_acquire_static(&1)
        .expect("closed")
        .record(cutout::Outcome::Success);
    let after_first = hasher.hashes();
    assert!(after_first > 0, "the first permit looks the key up");
    for _ in 0..3 {
        hosts
            .try_acquire_static(&1)
            .expect("closed")
            .record(cutout::Outcome::Success);
    }
    let lease = hosts.lease_static(&1).expect("held");
    assert_eq!(hasher.hashes(), after_first, "no lookup after the first");
    assert_eq!(lease.stats().successes, 4);
}

#[test]
fn the_slot_keeps_its_key_through_fifteen_misses_and_takes_the_sixteenth() {
    let hasher = Counting::default();
    let hosts = registry::<u64>(&hasher);
    ok(&hosts, &1);
    for _ in 0..15 {
        ok(&hosts, &2);
    }
    let before = hasher.hashes();
    ok(&hosts, &1);
    assert_eq!(
        hasher.hashes(),
        before,
        "1 is still cached (and the hit clears the misses)"
    );

    for _ in 0..15 {
        ok(&hosts, &2);
    }
    let before = hasher.hashes();
    ok(&hosts, &2);
    assert!(
        hasher.hashes() > before,
        "the sixteenth miss in a row still looks 2 up"
    );
    let cached = hasher.hashes();
    ok(&hosts, &2);
    assert_eq!(hasher.hashes(), cached, "then caches it");
    ok(&hosts, &1);
    assert!(hasher.hashes() > cached, "1 is no longer cached");
}

#[test]
fn an_evicted_key_gets_a_new_breaker_which_is_cached_in_its_place() {
    let hasher = Counting::default();
    let hosts = registry::<&str>(&hasher);
    assert_eq!(
        hosts
            .call(&"a", || Err::<(), _>("down"))
            .unwrap_err()
            .to_string(),
        "down"
    );
    assert_eq!(hosts.lease(&"a").expect("held").stats().failures, 1);
    assert_eq!(hosts.evict_idle(), 0);
    assert_eq!(hosts.evict_idle(), 1);
    assert_eq!((hosts.len(), hosts.evicted()), (0, 1));

    // The slot still remembers the evicted breaker: it refuses, and the key is looked up
    // and made anew, not served by the old one.
    let before = hasher.hashes();
    ok(&hosts, &"a");
    assert!(hasher.hashes() > before);
    let stats = hosts.lease(&"a").expect("held").stats();
    assert_eq!((stats.failures, stats.successes), (0, 1));
    assert_eq!(hosts.len(), 1);

    let cached = hasher.hashes();
    ok(&hosts, &"a");
    assert_eq!(
        hasher.hashes(),
        cached,
        "the new breaker took the slot at once"
    );
    assert_eq!(hosts.lease(&"a").expect("held").stats().successes, 2);
}

#[test]
fn each_thread_has_a_slot_of_its_own() {
    let hasher = Counting::default();
    let hosts = Arc::new(registry::<u64>(&hasher));
    let warmed = Arc::new(Barrier::new(3));
    let measured = Arc::new(Barrier::new(3));
    let done = Arc::new(Barrier::new(3));
    let workers: Vec<_> = [10u64, 20]
        .into_iter()
        .map(|key| {
            let (hosts, warmed, measured, done) = (
                hosts.clone(),
                warmed.clone(),
                measured.clone(),
                done.clone(),
            );
            thread::spawn(move || {
                ok(&hosts, &key);
                warmed.wait();
                measured.wait();
                for _ in 0..100 {
                    ok(&hosts, &key);
                }
                done.wait();
            })
        })
        .collect();
    warmed.wait();
    let before = hasher.hashes();
    measured.wait();
    done.wait();
    assert_eq!(
        hasher.hashes(),
        before,
        "neither thread looked its key up again"
    );
    for worker in workers {
        worker.join().expect("worker");
    }
    for key in [10, 20] {
        assert_eq!(hosts.lease(&key).expect("held").stats().successes, 101);
    }
}

thread_local! {
    /// When set, the next key comparison calls this registry (once) with key 99.
    static REENTER: Cell<Option<&'static KeyedBreakers<Reentrant, Counting>>> =
        const { Cell::new(None) };
}

/// A key whose `Eq` may call the registry it is a key of.
#[derive(Clone, Debug)]
struct Reentrant(u64);

impl PartialEq for Reentrant {
    fn eq(&self, other: &Self) -> bool {
        if let Some(registry) = REENTER.with(Cell::take) {
            ok(registry, &Reentrant(99));
        }
        self.0 == other.0
    }
}

impl Eq for Reentrant {}

impl Hash for Reentrant {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

#[test]
fn a_key_whose_eq_calls_the_registry_is_served_and_the_slot_kept() {
    let hasher = Counting::default();
    let hosts: &'static KeyedBreakers<Reentrant, Counting> = registry(&hasher).leak();
    ok(hosts, &Reentrant(1));
    // Fifteen misses: one more would make the slot take 99.
    for _ in 0..15 {
        ok(hosts, &Reentrant(99));
    }
    // The comparison with the cached key calls the registry with 99 while the slot is
    // being compared: that call takes the map's way and leaves the slot alone (had it
    // taken 99, the comparison in progress would have entered 99's breaker for key 1).
    REENTER.with(|r| r.set(Some(hosts)));
    ok(hosts, &Reentrant(1));
    assert!(REENTER.with(Cell::get).is_none(), "the comparison ran");
    assert_eq!(
        hosts.lease(&Reentrant(99)).expect("held").stats().successes,
        16
    );
    let before = hasher.hashes();
    ok(hosts, &Reentrant(1));
    assert_eq!(hasher.hashes(), before, "1 is still cached");
    assert_eq!(
        hosts.lease(&Reentrant(1)).expect("held").stats().successes,
        3
    );
}
