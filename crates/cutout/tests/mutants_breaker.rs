//! Tests written for mutants of `breaker.rs` that the other tests let survive (see
//! MUTANTS.md at the repository root). Each pins one observable behaviour exactly.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cutout::{
    Cause, CircuitBreaker, ManualClock, Outcome, Rejected, SlidingWindow, State, Transition,
};

fn log() -> (
    Arc<Mutex<Vec<Transition>>>,
    impl Fn(&Transition) + Send + Sync + 'static,
) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let push = seen.clone();
    (seen, move |t: &Transition| {
        push.lock().expect("no panic").push(*t)
    })
}

#[test]
fn builder_is_the_default_builder() {
    let b = CircuitBreaker::builder();
    assert_eq!(
        format!("{b:?}"),
        format!("{:?}", cutout::Builder::default())
    );
}

#[test]
fn ptr_eq_tells_clones_from_other_breakers() {
    let a = CircuitBreaker::builder().build().expect("valid");
    let b = CircuitBreaker::builder().build().expect("valid");
    assert!(a.ptr_eq(&a.clone()));
    assert!(!a.ptr_eq(&b));
}

#[test]
fn elapsed_follows_the_clock_from_the_build() {
    let clock = ManualClock::new();
    clock.advance(Duration::from_secs(5));
    let breaker = CircuitBreaker::builder()
        .build_with_clock(clock.clone())
        .expect("valid");
    assert_eq!(breaker.elapsed(), Duration::ZERO);
    clock.advance(Duration::from_millis(1_500));
    assert_eq!(breaker.elapsed(), Duration::from_millis(1_500));
}

/// Breakers built together without a seed draw different jitter.
#[test]
fn unseeded_breakers_do_not_jitter_in_step() {
    let open_times: Vec<Duration> = (0..8)
        .map(|_| {
            let breaker = CircuitBreaker::builder()
                .failure_threshold(1)
                .exponential_backoff(Duration::from_secs(60), 2.0, Duration::from_secs(60))
                .jitter(0.5)
                .build_with_clock(ManualClock::new())
                .expect("valid");
            breaker
                .try_acquire()
                .expect("closed")
                .record(Outcome::Failure);
            breaker.retry_after().expect("open")
        })
        .collect();
    assert!(
        open_times.iter().any(|t| *t != open_times[0]),
        "{open_times:?}"
    );
    assert!(
        open_times
            .iter()
            .all(|t| (Duration::from_secs(30)..=Duration::from_secs(60)).contains(t))
    );
}

/// Half-open: `retry_after` is the lease's end only once every slot is taken.
#[test]
fn retry_after_in_half_open_only_when_full() {
    let clock = ManualClock::new();
    let breaker = CircuitBreaker::builder()
        .failure_threshold(1)
        .half_open_max_calls(2)
        .open_duration(Duration::from_secs(1))
        .probe_lease(Duration::from_millis(1_024))
        .build_with_clock(clock.clone())
        .expect("valid");
    breaker
        .try_acquire()
        .expect("closed")
        .record(Outcome::Failure);
    clock.advance(Duration::from_secs(1));
    let first = breaker.try_acquire().expect("first probe");
    assert_eq!(breaker.state(), State::HalfOpen);
    assert_eq!(breaker.retry_after(), None);
    let second = breaker.try_acquire().expect("second probe");
    // The lease ends at 1000 + 1024 ms, rounded up to 256 ms: 2048 ms.
    assert_eq!(breaker.retry_after(), Some(Duration::from_millis(1_048)));
    drop(first);
    assert_eq!(breaker.retry_after(), None);
    drop(second);
}

#[test]
fn record_with_retry_after_opens_for_at_least_that_long() {
    let breaker = CircuitBreaker::builder()
        .failure_threshold(1)
        .open_duration(Duration::from_secs(1))
        .build_with_clock(ManualClock::new())
        .expect("valid");
    breaker
        .try_acquire()
        .expect("closed")
        .record_with_retry_after(Outcome::Failure, Duration::from_secs(120));
    assert_eq!(
        breaker.try_acquire().map(drop),
        Err(Rejected::Open {
            retry_after: Duration::from_secs(120)
        })
    );
    breaker.reset();
    breaker
        .try_acquire_owned()
        .expect("closed")
        .record_with_retry_after(Outcome::Failure, Duration::from_secs(90));
    assert_eq!(
        breaker.try_acquire().map(drop),
        Err(Rejected::Open {
            retry_after: Duration::from_secs(90)
        })
    );
    let s = breaker.stats();
    assert_eq!((s.failures, s.ignored), (2, 0));
}

/// A breaker in closed generation 2 (one force/reset cycle) whose failure rate trips at two
/// failures in a window of two.
fn rate_breaker() -> (CircuitBreaker, Arc<Mutex<Vec<Transition>>>) {
    let (seen, push) = log();
    let breaker = CircuitBreaker::builder()
        .failure_threshold(100)
        .sliding_window(SlidingWindow::Calls(2))
        .failure_rate(1.0)
        .minimum_calls(2)
        .on_transition(push)
        .build_with_clock(ManualClock::new())
        .expect("valid");
    breaker.force_open();
    breaker.reset();
    assert_eq!(breaker.stats().generation, 2);
    seen.lock().expect("no panic").clear();
    (breaker, seen)
}

/// Results recorded with a retry-after feed the window like any other, and the trip they
/// cause lasts the retry-after.
#[test]
fn record_with_retry_after_feeds_the_window() {
    let (breaker, seen) = rate_breaker();
    for _ in 0..2 {
        breaker
            .try_acquire()
            .expect("closed")
            .record_with_retry_after(Outcome::Failure, Duration::from_secs(7));
    }
    let t = seen.lock().expect("no panic").clone();
    assert_eq!(t.len(), 1, "{t:?}");
    assert_eq!(
        t[0].cause,
        Cause::FailureRate {
            failures: 2,
            calls: 2
        }
    );
    assert_eq!(breaker.state(), State::Open);
}

/// An ignored result with a retry-after is not a call of the window; nor is a stale one.
#[test]
fn ignored_or_stale_results_with_retry_after_stay_out_of_the_window() {
    let (breaker, _) = rate_breaker();
    breaker
        .try_acquire()
        .expect("closed")
        .record_with_retry_after(Outcome::Ignored, Duration::from_secs(7));
    assert_eq!(breaker.window_stats().map(|w| w.calls), Some(0));
    let stale = breaker.try_acquire_owned().expect("closed");
    breaker.force_open();
    breaker.reset();
    breaker
        .try_acquire()
        .expect("closed")
        .record(Outcome::Success);
    stale.record_with_retry_after(Outcome::Failure, Duration::from_secs(7));
    let w = breaker.window_stats().expect("a rate is set");
    assert_eq!((w.calls, w.failures), (1, 0));
    assert_eq!(breaker.stats().stale, 1);
}

fn slow_breaker(clock: &ManualClock) -> CircuitBreaker {
    CircuitBreaker::builder()
        .failure_threshold(100)
        .sliding_window(SlidingWindow::Calls(1))
        .slow_call_rate(1.0, Duration::from_millis(100))
        .minimum_calls(1)
        .build_with_clock(clock.clone())
        .expect("valid")
}

/// A call's time is measured from its own acquire, not from the breaker's start.
#[test]
fn a_quick_call_late_in_life_is_not_slow() {
    let clock = ManualClock::new();
    let breaker = slow_breaker(&clock);
    clock.advance(Duration::from_secs(10));
    let permit = breaker.try_acquire().expect("closed");
    clock.advance(Duration::from_millis(100));
    permit.record(Outcome::Success);
    assert_eq!(breaker.state(), State::Closed);
    assert_eq!(
        breaker.window_stats().map(|w| (w.calls, w.slow)),
        Some((1, 0))
    );
    let permit = breaker.try_acquire_owned().expect("closed");
    clock.advance(Duration::from_millis(101));
    permit.record(Outcome::Success);
    assert_eq!(breaker.state(), State::Open);
}

/// A given duration equal to the threshold is not slower than it.
#[test]
fn a_duration_equal_to_the_threshold_is_not_slow() {
    let clock = ManualClock::new();
    let breaker = slow_breaker(&clock);
    breaker
        .try_acquire()
        .expect("closed")
        .record_with_duration(Outcome::Success, Duration::from_millis(100));
    assert_eq!(breaker.state(), State::Closed);
    breaker.try_acquire().expect("closed").record_with_duration(
        Outcome::Success,
        Duration::from_millis(100) + Duration::from_nanos(1),
    );
    assert_eq!(breaker.state(), State::Open);
}

/// Timing calls at the very end of the clock's range does not overflow.
#[test]
fn timed_calls_at_the_end_of_the_clock() {
    let clock = ManualClock::new();
    let breaker = slow_breaker(&clock);
    clock.advance(Duration::MAX);
    let permit = breaker.try_acquire().expect("closed");
    permit.record(Outcome::Success);
    assert_eq!(breaker.state(), State::Closed);
}
