//! Threads hammer breakers with rate policies: one trip, one listener call, and running
//! totals that never drift.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use cutout::{Cause, CircuitBreaker, ManualClock, Outcome, SlidingWindow, State};

const THREADS: usize = 4;

fn storm(threads: usize, f: impl Fn(usize) + Sync) {
    let barrier = Barrier::new(threads);
    thread::scope(|s| {
        for t in 0..threads {
            let (barrier, f) = (&barrier, &f);
            s.spawn(move || {
                barrier.wait();
                f(t);
            });
        }
    });
}

#[test]
fn count_window_totals_never_drift_under_contention() {
    for n in [1, 3, 64] {
        let breaker = CircuitBreaker::builder()
            .failure_threshold(u32::MAX)
            .sliding_window(SlidingWindow::Calls(n))
            .failure_rate(1.0)
            .slow_call_rate(1.0, Duration::from_millis(10))
            .minimum_calls(n)
            .build_with_clock(ManualClock::new())
            .unwrap();
        storm(THREADS, |t| {
            for i in 0..20_000usize {
                // Never all failures or all slow in any n calls of one thread, but threads
                // interleave arbitrarily: a trip may happen; then stop.
                let outcome = if (i + t) % 3 == 0 {
                    Outcome::Failure
                } else {
                    Outcome::Success
                };
                let took = Duration::from_millis(if (i + t) % 2 == 0 { 11 } else { 1 });
                match breaker.try_acquire() {
                    Ok(p) => p.record_with_duration(outcome, took),
                    Err(_) => return,
                }
            }
        });
        if breaker.state() != State::Closed {
            breaker.reset();
        }
        // Quiet now: n plain successes must leave exactly n calls, no failure, nothing
        // slow. Any drift in the totals would show here.
        for _ in 0..n {
            breaker
                .try_acquire()
                .unwrap()
                .record_with_duration(Outcome::Success, Duration::ZERO);
        }
        let w = breaker.window_stats().unwrap();
        assert_eq!((w.calls, w.failures, w.slow), (n, 0, 0), "window of {n}");
        // And one failure counts as exactly one (in a window of 1, that is a rate of 1).
        breaker.try_acquire().unwrap().record(Outcome::Failure);
        if n == 1 {
            assert_eq!(breaker.state(), State::Open);
        } else {
            let w = breaker.window_stats().unwrap();
            assert_eq!((w.calls, w.failures, w.slow), (n, 1, 0), "window of {n}");
        }
    }
}

#[test]
fn a_failure_rate_storm_trips_once_and_tells_the_listener_once() {
    for window in [
        SlidingWindow::Calls(50),
        SlidingWindow::Time {
            span: Duration::from_secs(10),
            buckets: 10,
        },
    ] {
        let transitions = Arc::new(AtomicU32::new(0));
        let seen = transitions.clone();
        let rate_trips = Arc::new(AtomicU32::new(0));
        let rate_seen = rate_trips.clone();
        let clock = ManualClock::new();
        let breaker = CircuitBreaker::builder()
            .failure_threshold(u32::MAX)
            .sliding_window(window)
            .failure_rate(0.5)
            .minimum_calls(50)
            .open_duration(Duration::from_secs(60))
            .on_transition(move |t| {
                seen.fetch_add(1, Ordering::Relaxed);
                if matches!(t.cause, Cause::FailureRate { .. }) {
                    rate_seen.fetch_add(1, Ordering::Relaxed);
                }
            })
            .build_with_clock(clock.clone())
            .unwrap();
        let admitted = AtomicU32::new(0);
        storm(THREADS, |t| {
            for i in 0..5_000 {
                let Ok(p) = breaker.try_acquire() else {
                    continue;
                };
                admitted.fetch_add(1, Ordering::Relaxed);
                p.record(if (i + t) % 2 == 0 {
                    Outcome::Failure
                } else {
                    Outcome::Success
                });
            }
        });
        assert_eq!(breaker.state(), State::Open, "{window:?}");
        assert_eq!(transitions.load(Ordering::Relaxed), 1, "{window:?}");
        assert_eq!(rate_trips.load(Ordering::Relaxed), 1, "{window:?}");
        let stats = breaker.stats();
        assert_eq!(stats.trips, 1, "{window:?}");
        assert_eq!(stats.admitted, admitted.load(Ordering::Relaxed) as u64);
        assert_eq!(stats.admitted, stats.successes + stats.failures);
        assert_eq!(
            stats.rejected,
            THREADS as u64 * 5_000 - stats.admitted,
            "{window:?}"
        );
    }
}

/// In a time window, each thread counts its successes in a bucket on its own and adds them
/// to the bucket when it moves on: racing threads, then new threads (which take over the
/// old threads' slots) in the next bucket, must leave every call counted exactly once, and
/// each bucket must leave the window whole.
#[test]
fn time_window_counts_every_call_of_racing_threads_exactly() {
    let clock = ManualClock::new();
    let breaker = CircuitBreaker::builder()
        .failure_threshold(u32::MAX)
        .sliding_window(SlidingWindow::Time {
            span: Duration::from_secs(10),
            buckets: 10,
        })
        .failure_rate(0.9)
        .minimum_calls(10)
        .build_with_clock(clock.clone())
        .unwrap();
    let calls_per_thread = 10_000;
    for _bucket in 0..2 {
        storm(THREADS, |_| {
            for i in 0..calls_per_thread {
                let outcome = if i % 10 == 0 {
                    Outcome::Failure
                } else {
                    Outcome::Success
                };
                breaker.try_acquire().unwrap().record(outcome);
            }
        });
        clock.advance(Duration::from_secs(1));
    }
    let per_bucket = (THREADS * calls_per_thread) as u32;
    let w = breaker.window_stats().unwrap();
    assert_eq!((w.calls, w.failures), (2 * per_bucket, per_bucket / 5));
    // At 10 s the window is 1 s to 11 s: the first bucket (0 s to 1 s) has left.
    clock.advance(Duration::from_secs(8));
    let w = breaker.window_stats().unwrap();
    assert_eq!((w.calls, w.failures), (per_bucket, per_bucket / 10));
    clock.advance(Duration::from_secs(1));
    let w = breaker.window_stats().unwrap();
    assert_eq!((w.calls, w.failures), (0, 0));
    assert_eq!(breaker.state(), State::Closed);
}
