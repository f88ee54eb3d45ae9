//! A `'static` registry (`KeyedBreakers::leak`): its leases and permits borrow the key's
//! breaker, and hold it against eviction exactly as the `Arc` path's do; a thread storm
//! with an evicting thread loses no outcome and never drops an open breaker.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;

use cutout::{CircuitBreaker, Listener, ManualClock, Outcome, State};
use cutout_keyed::{KeyedBreakers, KeyedRejected};

mod support;

use support::{OPEN, registry};

fn leaked(capacity: usize, clock: &ManualClock) -> &'static KeyedBreakers<u32> {
    registry(capacity, clock).leak()
}

#[test]
fn a_dropped_static_permit_records_ignored_and_then_its_breaker_can_be_evicted() {
    let clock = ManualClock::new();
    let r = leaked(4, &clock);
    let permit = r.try_acquire_static(&1).unwrap();
    let breaker = permit.breaker().clone();
    assert_eq!(r.evict_idle(), 0, "used since the start");
    assert_eq!(
        r.evict_idle(),
        0,
        "idle a whole period, but held by the permit"
    );
    assert_eq!(r.len(), 1);
    drop(permit);
    let stats = breaker.stats();
    assert_eq!((stats.admitted, stats.ignored), (1, 1));
    assert_eq!(r.evict_idle(), 1, "released: idle for a whole period");
    assert_eq!(r.state(&1), None);
    assert_eq!(r.evicted(), 1);
    // The key gets a new breaker when it is next used.
    let again = r.lease_static(&1).unwrap();
    assert!(!again.ptr_eq(&breaker));
}

#[test]
fn a_static_lease_and_its_clones_hold_the_breaker_until_the_last_goes() {
    let clock = ManualClock::new();
    let r = leaked(4, &clock);
    let lease = r.lease_static(&1).unwrap();
    let copy = lease.clone();
    assert_eq!(r.evict_idle(), 0);
    drop(lease);
    assert_eq!(r.evict_idle(), 0, "the clone still holds it");
    assert!(copy.ptr_eq(&r.lease_static(&1).unwrap()));
    drop(copy);
    assert_eq!(
        r.evict_idle(),
        0,
        "used (by the lease above) since the previous call"
    );
    assert_eq!(r.evict_idle(), 1);
}

#[test]
fn a_static_permit_records_on_its_keys_breaker_and_a_rejection_holds_nothing() {
    let clock = ManualClock::new();
    let r = leaked(4, &clock);
    let permit = r.try_acquire_static(&1).unwrap();
    // On another thread: the permit is `'static` and `Send`.
    thread::spawn(move || permit.record(Outcome::Failure))
        .join()
        .unwrap();
    assert_eq!(r.state(&1), Some(State::Open));
    assert!(matches!(
        r.try_acquire_static(&1),
        Err(KeyedRejected::Breaker(cutout::Rejected::Open { .. }))
    ));
    // Open: never evicted, whatever the sweeps; a rejected call holds nothing, so the
    // breaker becomes evictable once it closes.
    assert_eq!(r.evict_idle() + r.evict_idle(), 0);
    clock.advance(OPEN);
    r.try_acquire_static(&1).unwrap().record(Outcome::Success);
    assert_eq!(r.state(&1), Some(State::Closed));
    assert_eq!(r.evict_idle(), 0);
    assert_eq!(r.evict_idle(), 1);
}

/// Counts the outcomes recorded on one breaker (one instance: a key evicted and used again
/// gets a new breaker and a new listener).
#[derive(Default)]
struct Counts {
    successes: AtomicU64,
    failures: AtomicU64,
}

struct Counting(Arc<Counts>);

impl Listener for Counting {
    fn on_recorded(&self, _breaker: &str, outcome: Outcome, _stale: bool) {
        match outcome {
            Outcome::Success => self.0.successes.fetch_add(1, Ordering::Relaxed),
            Outcome::Failure => self.0.failures.fetch_add(1, Ordering::Relaxed),
            _ => 0,
        };
    }
}

#[test]
fn a_thread_storm_with_an_evicting_thread_loses_no_outcome_and_keeps_the_open_breaker() {
    const THREADS: u32 = 3;
    const CALLS: u32 = 20_000;
    const KEYS: u32 = 6;
    const OPEN_KEY: u32 = 100;
    // Every breaker made, by name, with its counts.
    let made: &'static Mutex<Vec<(String, Arc<Counts>)>> = Box::leak(Box::default());
    let clock = ManualClock::new();
    let r: &'static KeyedBreakers<u32> = KeyedBreakers::builder(
        CircuitBreaker::builder()
            // The storm's breakers stay closed; only OPEN_KEY's is open.
            .failure_threshold(u32::MAX)
            .open_duration(OPEN)
            .listener_with(|name| {
                let counts = Arc::new(Counts::default());
                made.lock().unwrap().push((name.to_owned(), counts.clone()));
                Counting(counts)
            }),
    )
    .capacity(4)
    .name_with(|key: &u32| key.to_string())
    .build_with_clock(clock.clone())
    .unwrap()
    .leak();
    let open = (*r.lease_static(&OPEN_KEY).unwrap()).clone();
    open.force_open();

    let done = AtomicBool::new(false);
    let barrier = Barrier::new(THREADS as usize + 1);
    let (tallies, evictions) = thread::scope(|s| {
        let evictor = s.spawn(|| {
            barrier.wait();
            let mut evicted = 0;
            let mut rounds = 0u32;
            while !done.load(Ordering::Relaxed) && rounds < 10_000_000 {
                evicted += r.evict_idle();
                rounds += 1;
            }
            evicted
        });
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let barrier = &barrier;
                s.spawn(move || {
                    barrier.wait();
                    // (successes, failures) recorded, per key.
                    let mut tally = HashMap::<u32, (u64, u64)>::new();
                    for i in 0..CALLS {
                        let key = (i + t) % KEYS;
                        let permit = match r.try_acquire_static(&key) {
                            Ok(permit) => permit,
                            // Full for a moment: every breaker held by the other threads
                            // or just claimed; no outcome to count.
                            Err(KeyedRejected::Full { .. }) => continue,
                            Err(other) => panic!("{other:?}"),
                        };
                        // Held: the key still maps to this permit's breaker.
                        assert!(r.lease_static(&key).unwrap().ptr_eq(permit.breaker()));
                        let entry = tally.entry(key).or_default();
                        match i % 7 {
                            0 => {
                                permit.record(Outcome::Failure);
                                entry.1 += 1;
                            }
                            1 => drop(permit), // Ignored
                            _ => {
                                permit.record(Outcome::Success);
                                entry.0 += 1;
                            }
                        }
                    }
                    tally
                })
            })
            .collect();
        let tallies: Vec<_> = workers.into_iter().map(|w| w.join().unwrap()).collect();
        done.store(true, Ordering::Relaxed);
        (tallies, evictor.join().unwrap())
    });

    // The open breaker was never evicted: the key still maps to it, and it is open.
    assert!(r.lease_static(&OPEN_KEY).unwrap().ptr_eq(&open));
    assert_eq!(r.state(&OPEN_KEY), Some(State::ForcedOpen));
    assert!(evictions > 0, "the storm evicted breakers");

    // Every outcome recorded landed on exactly one of the key's breakers.
    let made = made.lock().unwrap();
    for key in 0..KEYS {
        let (mut successes, mut failures) = (0, 0);
        for tally in &tallies {
            let (s, f) = tally.get(&key).copied().unwrap_or_default();
            successes += s;
            failures += f;
        }
        let counted = made
            .iter()
            .filter(|(name, _)| *name == key.to_string())
            .fold((0, 0), |(s, f), (_, c)| {
                (
                    s + c.successes.load(Ordering::Relaxed),
                    f + c.failures.load(Ordering::Relaxed),
                )
            });
        assert_eq!(counted, (successes, failures), "key {key}");
        assert!(successes > 0);
    }
    // Breakers made by threads that lost the race to insert them are neither.
    assert!(
        r.evicted() + r.len() as u64 <= made.len() as u64,
        "every breaker in the registry or evicted was made once"
    );
}
