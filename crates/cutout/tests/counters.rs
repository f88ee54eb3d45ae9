//! The lifetime counters are per thread (see `src/counters.rs`): every count must survive
//! its thread, short-lived threads must not lose or double counts, and a permit dropped
//! while its thread is being torn down must be counted without a panic.

use std::cell::RefCell;
use std::sync::{Arc, Barrier};

use cutout::{CircuitBreaker, Outcome, OwnedPermit};

#[test]
fn counts_from_many_short_lived_threads_add_up_exactly() {
    let breaker = CircuitBreaker::builder().build().unwrap();
    for _ in 0..50 {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let breaker = breaker.clone();
                std::thread::spawn(move || {
                    for i in 0..100 {
                        let permit = breaker.try_acquire().unwrap();
                        match i % 4 {
                            0 => drop(permit),
                            1 => permit.record(Outcome::Ignored),
                            _ => permit.record(Outcome::Success),
                        }
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    }
    let stats = breaker.stats();
    assert_eq!(stats.admitted, 20_000);
    assert_eq!(stats.successes, 10_000);
    assert_eq!(stats.ignored, 10_000);
    assert_eq!(stats.failures, 0);
}

#[test]
fn more_threads_than_slots_still_count_exactly() {
    // Far more threads alive at once than a breaker has slots of its own: the rest share
    // one slot with atomic adds.
    let breaker = CircuitBreaker::builder()
        .failure_threshold(u32::MAX)
        .build()
        .unwrap();
    let threads = 300;
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (breaker, barrier) = (breaker.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                for _ in 0..10 {
                    let _ = breaker.call(|| Err::<(), _>("down"));
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let stats = breaker.stats();
    assert_eq!(stats.admitted, 3_000);
    assert_eq!(stats.failures, 3_000);
}

thread_local! {
    /// Holds a permit until the thread's thread-locals are destroyed.
    static HELD: RefCell<Option<OwnedPermit>> = const { RefCell::new(None) };
}

#[test]
fn a_permit_dropped_during_thread_teardown_is_counted() {
    let breaker = CircuitBreaker::builder().build().unwrap();
    for i in 0..20 {
        let b = breaker.clone();
        std::thread::spawn(move || {
            // Thread-local destructors run in reverse order of first use (on the platforms
            // CI runs): touching `HELD` first makes the permit drop after the thread has
            // given its counter slot back; touching it last, before.
            if i % 2 == 0 {
                HELD.with(|_| ());
            }
            b.try_acquire().unwrap().record(Outcome::Success);
            let permit = b.try_acquire_owned().unwrap();
            HELD.with(|held| *held.borrow_mut() = Some(permit));
        })
        .join()
        .expect("no panic while the thread is torn down");
    }
    let stats = breaker.stats();
    assert_eq!(stats.admitted, 40);
    assert_eq!(stats.successes, 20);
    assert_eq!(stats.ignored, 20);
}
