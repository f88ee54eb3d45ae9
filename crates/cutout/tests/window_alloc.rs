//! A counting global allocator: windows allocate when built, never per call.

// The counting allocator (tests/support) implements an unsafe trait.
#![allow(unsafe_code)]

use std::time::Duration;

use cutout::{CircuitBreaker, ManualClock, Outcome, SlidingWindow, State};

#[path = "support/counting_alloc.rs"]
mod counting_alloc;
use counting_alloc::allocations_in;

#[test]
fn no_call_allocates_with_any_window() {
    for window in [
        SlidingWindow::Calls(16),
        SlidingWindow::Time {
            span: Duration::from_secs(1),
            buckets: 10,
        },
    ] {
        let clock = ManualClock::new();
        let b = CircuitBreaker::builder()
            .failure_threshold(1_000)
            .sliding_window(window)
            .failure_rate(0.5)
            .slow_call_rate(0.9, Duration::from_millis(100))
            .minimum_calls(10)
            .open_duration(Duration::from_millis(100))
            .half_open_success_rate(0.5, 4)
            .on_transition(|_| {})
            .build_with_clock(clock.clone())
            .unwrap();
        b.try_acquire().unwrap().record(Outcome::Success);
        let n = allocations_in(|| {
            for i in 0..1_000 {
                b.try_acquire().unwrap().record(Outcome::Success);
                b.try_acquire_owned().unwrap().record(Outcome::Success);
                b.try_acquire()
                    .unwrap()
                    .record_with_duration(Outcome::Success, Duration::from_millis(i % 200));
                drop(b.try_acquire().unwrap());
                clock.advance(Duration::from_millis(7));
                let _ = b.window_stats();
            }
            while let Ok(p) = b.try_acquire() {
                p.record(Outcome::Failure); // trips on the failure rate
            }
            assert_eq!(b.state(), State::Open);
            clock.advance(Duration::from_millis(100));
            for _ in 0..2 {
                b.try_acquire().unwrap().record(Outcome::Success);
            }
            assert_eq!(b.state(), State::Closed);
            b.reset();
            let _ = b.stats();
        });
        assert_eq!(n, 0, "{window:?}");
    }
}
