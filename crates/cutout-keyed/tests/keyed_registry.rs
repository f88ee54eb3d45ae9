//! The keyed registry: isolation between keys, bounded size, and eviction that never drops
//! a breaker that is open, half-open, forced, or in use.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Barrier};
use std::thread;

use cutout::{CircuitBreaker, ManualClock, Outcome, Rejected, State};
use cutout_keyed::{KeyedBreakers, KeyedCallError, KeyedConfigError, KeyedRejected};
use proptest::prelude::*;

mod support;

use support::{OPEN, registry};

fn fail<K, S>(r: &KeyedBreakers<K, S>, key: &K)
where
    K: std::hash::Hash + Eq + Clone + Send + Sync + 'static,
    S: std::hash::BuildHasher + Send + Sync + 'static,
{
    assert_eq!(
        r.call(key, || Err::<(), _>("down")),
        Err(KeyedCallError::Inner("down"))
    );
}

fn ok<K, S>(r: &KeyedBreakers<K, S>, key: &K)
where
    K: std::hash::Hash + Eq + Clone + Send + Sync + 'static,
    S: std::hash::BuildHasher + Send + Sync + 'static,
{
    assert_eq!(r.call(key, || Ok::<_, ()>(7)), Ok(7));
}

#[test]
fn an_open_host_does_not_affect_another() {
    let clock = ManualClock::new();
    let hosts = registry::<&str>(16, &clock);
    fail(&hosts, &"a");
    assert_eq!(hosts.state(&"a"), Some(State::Open));
    assert_eq!(hosts.state(&"b"), None, "state() creates nothing");
    ok(&hosts, &"b");
    assert_eq!(hosts.state(&"b"), Some(State::Closed));
    assert_eq!(
        hosts.call(&"a", || Ok::<_, ()>(1)),
        Err(KeyedCallError::Rejected(KeyedRejected::Breaker(
            Rejected::Open { retry_after: OPEN }
        )))
    );
    assert_eq!(
        hosts.try_acquire(&"a").unwrap_err().retry_after(),
        Some(OPEN)
    );
    // Each key has its own breaker.
    assert!(
        !hosts
            .lease(&"a")
            .unwrap()
            .ptr_eq(&hosts.lease(&"b").unwrap())
    );
    assert!(
        hosts
            .lease(&"a")
            .unwrap()
            .ptr_eq(&hosts.lease(&"a").unwrap())
    );
    assert_eq!(hosts.len(), 2);
}

#[test]
fn breakers_are_named_per_key_from_the_template() {
    let clock = ManualClock::new();
    let hosts = KeyedBreakers::builder(CircuitBreaker::builder().name("upstream"))
        .name_with(|k: &u16| format!("port-{k}"))
        .build_with_clock(clock.clone())
        .unwrap();
    assert_eq!(hosts.lease(&8080).unwrap().name(), "port-8080");
    let plain = registry::<u8>(4, &clock);
    assert_eq!(plain.lease(&1).unwrap().name(), "default");
    assert_eq!(
        KeyedBreakers::<u8>::builder(CircuitBreaker::builder().failure_threshold(0))
            .build()
            .unwrap_err(),
        KeyedConfigError::Breaker(cutout::ConfigError::ZeroFailureThreshold)
    );
    assert_eq!(
        KeyedBreakers::<u8>::builder(CircuitBreaker::builder())
            .capacity(0)
            .build()
            .unwrap_err(),
        KeyedConfigError::ZeroCapacity
    );
}

#[test]
fn a_custom_hasher_keeps_keys_apart_just_the_same() {
    use std::collections::hash_map::DefaultHasher;
    use std::hash::BuildHasherDefault;
    let clock = ManualClock::new();
    let r = KeyedBreakers::builder(CircuitBreaker::builder().failure_threshold(1))
        .capacity(3)
        .hasher(BuildHasherDefault::<DefaultHasher>::default())
        .build_with_clock(clock.clone())
        .unwrap();
    fail(&r, &"a");
    ok(&r, &"b");
    assert_eq!(r.state(&"a"), Some(State::Open));
    assert_eq!(r.state(&"b"), Some(State::Closed));
    for k in ["c", "d", "e"] {
        ok(&r, &k);
    }
    assert_eq!(r.len(), 3);
    assert_eq!(r.state(&"a"), Some(State::Open));
}

#[test]
fn many_distinct_keys_stay_within_the_capacity() {
    let clock = ManualClock::new();
    let r = registry::<u64>(1_000, &clock);
    for key in 0..100_000u64 {
        ok(&r, &key);
        assert!(r.len() <= 1_000, "{} breakers after key {key}", r.len());
    }
    assert_eq!(r.evicted(), 100_000 - r.len() as u64);
    // Sweeps evict an eighth at a time: between 7/8 of the capacity and the capacity.
    assert!(r.len() >= 875, "{}", r.len());
}

#[test]
fn eviction_never_drops_an_open_half_open_or_forced_breaker() {
    let clock = ManualClock::new();
    let r = registry::<String>(4, &clock);
    fail(&r, &"open".to_string());
    fail(&r, &"half".to_string());
    r.lease(&"forced".to_string()).unwrap().force_open();
    clock.advance(OPEN);
    // A probe out: half-open, and the permit is dropped at once (ignored), so the breaker
    // is held by nothing, yet half-open.
    drop(r.try_acquire(&"half".to_string()).unwrap());
    assert_eq!(r.state(&"half".to_string()), Some(State::HalfOpen));
    // "open" reads open until a call arrives, even though its open time has ended.
    for i in 0..100 {
        ok(&r, &format!("k{i}"));
        assert!(r.len() <= 4);
    }
    assert_eq!(r.state(&"open".to_string()), Some(State::Open));
    assert_eq!(r.state(&"half".to_string()), Some(State::HalfOpen));
    assert_eq!(r.state(&"forced".to_string()), Some(State::ForcedOpen));
    // With every slot but one protected, new keys take turns in the last one.
    assert_eq!(r.len(), 4);
    assert_eq!(r.evicted(), 99);

    // All four protected: a new key is refused, not added.
    fail(&r, &"k99".to_string());
    assert_eq!(
        r.call(&"new".to_string(), || Ok::<_, ()>(())),
        Err(KeyedCallError::Rejected(KeyedRejected::Full {
            capacity: 4
        }))
    );
    assert_eq!(r.len(), 4);
    // Once one recovers, there is room again.
    clock.advance(OPEN);
    ok(&r, &"k99".to_string());
    ok(&r, &"new".to_string());
    assert_eq!(r.state(&"k99".to_string()), None);
    assert_eq!(r.state(&"new".to_string()), Some(State::Closed));
}

#[test]
fn eviction_never_drops_a_breaker_in_use() {
    let clock = ManualClock::new();
    let r = registry::<u32>(2, &clock);
    let permit = r.try_acquire(&1).unwrap();
    let lease = r.lease(&2).unwrap();
    // Both held: nothing can be evicted.
    assert_eq!(
        r.try_acquire(&3).unwrap_err(),
        KeyedRejected::Full { capacity: 2 }
    );
    // A call in flight holds its breaker too: inside key 1's call (permit dropped first),
    // key 3 cannot take its place.
    drop(permit);
    let inner = r.call(&1, || {
        let nested = r.call(&3, || Ok::<_, ()>(()));
        Ok::<_, ()>(nested)
    });
    assert_eq!(
        inner,
        Ok(Err(KeyedCallError::Rejected(KeyedRejected::Full {
            capacity: 2
        })))
    );
    // The permit's failure lands on the breaker it came from, which is still the key's.
    let permit = r.try_acquire(&1).unwrap();
    let breaker = permit.breaker().clone();
    assert_eq!(
        r.try_acquire(&4).unwrap_err(),
        KeyedRejected::Full { capacity: 2 }
    );
    permit.record(Outcome::Failure);
    assert!(breaker.ptr_eq(&r.lease(&1).unwrap()));
    assert_eq!(r.state(&1), Some(State::Open));
    assert!(lease.ptr_eq(&r.lease(&2).unwrap()));
    drop(lease);
    // Now key 2 is closed and free: it makes way.
    ok(&r, &5);
    assert_eq!(r.state(&2), None);
    assert_eq!(r.state(&1), Some(State::Open));
}

#[test]
fn the_least_recently_used_are_evicted_first() {
    let clock = ManualClock::new();
    let r = registry::<u32>(8, &clock);
    for k in 0..8 {
        ok(&r, &k);
    }
    ok(&r, &8); // a sweep: 2 evicted (down to 6, then 8 is added)
    assert_eq!(r.len(), 7);
    let survivors: Vec<u32> = (0..8).filter(|k| r.state(k).is_some()).collect();
    assert_eq!(survivors.len(), 6);
    // Use three of the survivors after the sweep: they are more recent than the rest.
    for k in &survivors[..3] {
        ok(&r, k);
    }
    ok(&r, &9); // 8 breakers: full, no sweep yet
    ok(&r, &10); // a sweep: evicts 2 (8 -> 6, then 10 is added) of the least recent
    for k in &survivors[..3] {
        assert!(r.state(k).is_some(), "recently used {k} was evicted");
    }
    assert_eq!(
        survivors[3..]
            .iter()
            .filter(|k| r.state(k).is_some())
            .count(),
        1
    );
    assert_eq!(r.len(), 7);
}

#[test]
fn idle_keys_are_evicted_after_a_whole_period() {
    let clock = ManualClock::new();
    let r = registry::<u32>(100, &clock);
    for k in 0..10 {
        ok(&r, &k);
    }
    fail(&r, &10);
    assert_eq!(r.evict_idle(), 0, "every key was used this period");
    for k in 0..5 {
        ok(&r, &k);
    }
    let lease = r.lease(&7).unwrap();
    // 5..10 idle for a period, but 7 is held and 10 is open.
    assert_eq!(r.evict_idle(), 4);
    assert_eq!(r.len(), 7);
    assert_eq!(r.state(&10), Some(State::Open));
    drop(lease);
    assert_eq!(r.evict_idle(), 6, "0..5 and 7 idle since; 10 still open");
    assert_eq!(r.len(), 1);
    assert_eq!(r.evicted(), 10);
}

#[test]
fn permits_across_await_points_hold_their_breaker() {
    let clock = ManualClock::new();
    let r = registry::<&str>(1, &clock);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    let mut call = Box::pin(r.call_async(&"a", async { Err::<(), _>("down") }));
    assert_eq!(
        call.as_mut().poll(&mut cx),
        std::task::Poll::Ready(Err(KeyedCallError::Inner("down")))
    );
    drop(call);
    assert_eq!(r.state(&"a"), Some(State::Open));
    assert_eq!(
        r.call(&"b", || Ok::<_, ()>(())),
        Err(KeyedCallError::Rejected(KeyedRejected::Full {
            capacity: 1
        }))
    );
}

#[test]
fn threads_never_lose_a_protected_breaker() {
    let clock = ManualClock::new();
    let r = Arc::new(registry::<u32>(16, &clock));
    fail(&r, &1_000_000); // open for the whole storm: the clock does not move
    let held = r.lease(&1_000_001).unwrap();
    const THREADS: usize = 4;
    let barrier = Barrier::new(THREADS);
    thread::scope(|s| {
        for t in 0..THREADS {
            let (r, barrier) = (&r, &barrier);
            s.spawn(move || {
                barrier.wait();
                for i in 0..20_000u32 {
                    let key = (i * 7 + t as u32 * 13) % 500;
                    match r.try_acquire(&key) {
                        Ok(p) => p.record(if i % 50 == 0 {
                            Outcome::Failure
                        } else {
                            Outcome::Success
                        }),
                        Err(KeyedRejected::Breaker(_)) | Err(KeyedRejected::Full { .. }) => {}
                        Err(other) => panic!("{other:?}"),
                    }
                }
            });
        }
    });
    assert_eq!(r.state(&1_000_000), Some(State::Open));
    assert!(held.ptr_eq(&r.lease(&1_000_001).unwrap()));
    // Open breakers created in the storm (failures with threshold 1) are all still there
    // if they are counted at all; every one the registry holds is accounted for.
    assert!(r.len() <= 16 + THREADS, "{}", r.len());
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Call { key: u8, fail: bool },
    Hold { key: u8 },
    Release,
    EvictIdle,
    Advance,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u8..12, prop::bool::weighted(0.2)).prop_map(|(key, fail)| Op::Call { key, fail }),
        2 => (0u8..12).prop_map(|key| Op::Hold { key }),
        2 => Just(Op::Release),
        1 => Just(Op::EvictIdle),
        1 => Just(Op::Advance),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Random use with a small capacity: the registry never holds more than its capacity,
    /// a held breaker is never replaced, and a breaker that is open (and so may not be
    /// evicted) keeps its state.
    #[test]
    fn eviction_keeps_what_it_must(
        capacity in 1usize..6,
        ops in proptest::collection::vec(op(), 1..200),
    ) {
        let clock = ManualClock::new();
        let r = registry::<u8>(capacity, &clock);
        let mut held: Vec<(u8, cutout_keyed::KeyedPermit)> = Vec::new();
        for op in ops {
            let open_before: HashMap<u8, CircuitBreaker> = (0u8..12)
                .filter(|k| r.state(k) == Some(State::Open))
                .map(|k| (k, CircuitBreaker::clone(&r.lease(&k).unwrap())))
                .collect();
            match op {
                Op::Call { key, fail } => {
                    let _ = r.call(&key, || if fail { Err(()) } else { Ok(()) });
                }
                Op::Hold { key } => {
                    if let Ok(p) = r.try_acquire(&key) {
                        held.push((key, p));
                    }
                }
                Op::Release => {
                    if let Some((_, p)) = held.pop() {
                        p.record(Outcome::Success);
                    }
                }
                Op::EvictIdle => {
                    r.evict_idle();
                }
                Op::Advance => clock.advance(OPEN),
            }
            prop_assert!(r.len() <= capacity, "{} > {}", r.len(), capacity);
            for (key, p) in &held {
                prop_assert!(p.breaker().ptr_eq(&r.lease(key).unwrap()), "held {} replaced", key);
            }
            for (key, breaker) in &open_before {
                // Still the same breaker: it may have moved on (a call after the open
                // time), but it was never dropped.
                prop_assert!(breaker.ptr_eq(&r.lease(key).unwrap()), "open {} dropped", key);
            }
        }
    }
}

#[test]
fn a_split_permit_holds_its_breaker_until_the_lease_goes() {
    let clock = ManualClock::new();
    let r = registry::<u8>(1, &clock);
    let (permit, lease) = r.try_acquire(&1).unwrap().into_parts();
    permit.record(Outcome::Success);
    assert_eq!(
        r.call(&2, || Ok::<_, ()>(())),
        Err(KeyedCallError::Rejected(KeyedRejected::Full {
            capacity: 1
        }))
    );
    assert!(lease.ptr_eq(&r.lease(&1).unwrap()));
    drop(lease);
    ok(&r, &2);
    assert_eq!(r.state(&1), None);
}

#[test]
fn threads_churning_keys_are_not_refused_while_breakers_are_evictable() {
    // Each thread holds at most one breaker at a time, so at most THREADS of the 16 are ever
    // in use: every new key can have room. Sweeps racing each other (claiming the same
    // candidates) must not make the registry report itself full.
    let clock = ManualClock::new();
    let r = registry::<u32>(16, &clock);
    const THREADS: usize = 4;
    let barrier = Barrier::new(THREADS);
    let refused: usize = thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let (r, barrier) = (&r, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    let mut refused = 0;
                    for i in 0..50_000u32 {
                        let key = (i + t as u32 * 31) % 64;
                        match r.try_acquire(&key) {
                            Ok(p) => p.record(Outcome::Success),
                            Err(KeyedRejected::Full { .. }) => refused += 1,
                            Err(other) => panic!("{other:?}"),
                        }
                    }
                    refused
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    assert_eq!(refused, 0);
    assert!(r.len() <= 16 + THREADS, "{}", r.len());
}
