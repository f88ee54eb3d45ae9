//! A counting global allocator: no call allocates, in any state.

// The counting allocator (tests/support) implements an unsafe trait.
#![allow(unsafe_code)]

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use cutout::{CircuitBreaker, ManualClock, Outcome, State};

#[path = "support/counting_alloc.rs"]
mod counting_alloc;
use counting_alloc::allocations_in;

fn breaker(clock: &ManualClock) -> CircuitBreaker {
    CircuitBreaker::builder()
        .failure_threshold(3)
        .half_open_max_calls(2)
        .success_threshold(2)
        .open_duration(Duration::from_millis(100))
        .on_transition(|_| {})
        .build_with_clock(clock.clone())
        .unwrap()
}

#[test]
fn the_counter_sees_allocations() {
    assert_eq!(
        allocations_in(|| drop(std::hint::black_box(Box::new(1u64)))),
        1
    );
}

#[test]
fn no_call_allocates_in_any_state() {
    let clock = ManualClock::new();
    let b = breaker(&clock);
    // Warm up: the thread's counter id is assigned on first use, and so is its reader slot
    // for the live settings (read by `stats`; once per thread, reused by later threads).
    b.try_acquire().unwrap().record(Outcome::Success);
    b.try_acquire().unwrap().record(Outcome::Failure);
    b.try_acquire().unwrap().record(Outcome::Success);
    let _ = b.stats();

    let n = allocations_in(|| {
        for _ in 0..1_000 {
            b.try_acquire().unwrap().record(Outcome::Success); // closed success
            b.try_acquire().unwrap().record(Outcome::Failure); // closed failure
            b.try_acquire().unwrap().record(Outcome::Success);
            drop(b.try_acquire().unwrap()); // cancelled
            let _ = b.call(|| Ok::<_, ()>(()));
        }
    });
    assert_eq!(n, 0, "closed");

    let n = allocations_in(|| {
        for _ in 0..3 {
            b.try_acquire().unwrap().record(Outcome::Failure); // trip
        }
        assert_eq!(b.state(), State::Open);
        for _ in 0..1_000 {
            assert!(b.try_acquire().is_err()); // open reject
        }
        clock.advance(Duration::from_millis(100));
        let p1 = b.try_acquire().unwrap(); // open -> half-open
        let p2 = b.try_acquire().unwrap();
        assert!(b.try_acquire().is_err()); // half-open full
        p1.record(Outcome::Ignored);
        drop(p2);
        b.try_acquire().unwrap().record(Outcome::Success);
        b.try_acquire().unwrap().record(Outcome::Success); // -> closed
        assert_eq!(b.state(), State::Closed);
        b.force_open();
        assert!(b.try_acquire().is_err());
        b.force_closed();
        b.try_acquire().unwrap().record(Outcome::Failure);
        b.reset();
        let _ = b.stats();
    });
    assert_eq!(n, 0, "open, half-open, transitions, manual control");
}

#[test]
fn owned_permits_and_async_calls_do_not_allocate() {
    let clock = ManualClock::new();
    let b = breaker(&clock);
    b.try_acquire().unwrap().record(Outcome::Success);
    let mut cx = Context::from_waker(Waker::noop());
    let n = allocations_in(|| {
        for _ in 0..1_000 {
            b.try_acquire_owned().unwrap().record(Outcome::Success);
            let call = pin!(b.call_async(async { Ok::<_, ()>(1) }));
            assert_eq!(call.poll(&mut cx), Poll::Ready(Ok(1)));
        }
    });
    assert_eq!(n, 0);
}
