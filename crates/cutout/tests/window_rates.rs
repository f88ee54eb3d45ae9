//! Rate policies through the public API: thresholds hit exactly, windows that slide, idle
//! gaps of any length, slow calls, the half-open success rate, and one trip per cause.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cutout::{
    Cause, CircuitBreaker, ManualClock, Outcome, SlidingWindow, State, Transition, WindowStats,
};

type Log = Arc<Mutex<Vec<Transition>>>;

fn logged(builder: cutout::Builder, clock: &ManualClock) -> (CircuitBreaker, Log) {
    let log: Log = Arc::default();
    let sink = log.clone();
    let breaker = builder
        .open_duration(Duration::from_secs(1))
        .on_transition(move |t| sink.lock().unwrap().push(*t))
        .build_with_clock(clock.clone())
        .unwrap();
    (breaker, log)
}

fn causes(log: &Log) -> Vec<Cause> {
    log.lock().unwrap().iter().map(|t| t.cause).collect()
}

fn stats(calls: u32, failures: u32, slow: u32) -> Option<WindowStats> {
    let mut w = WindowStats::default();
    w.calls = calls;
    w.failures = failures;
    w.slow = slow;
    Some(w)
}

fn record(b: &CircuitBreaker, outcomes: &[Outcome]) {
    for o in outcomes {
        b.try_acquire().unwrap().record(*o);
    }
}

const S: Outcome = Outcome::Success;
const F: Outcome = Outcome::Failure;
const I: Outcome = Outcome::Ignored;

fn count_breaker(n: u32, rate: f64, minimum: u32) -> (CircuitBreaker, Log, ManualClock) {
    let clock = ManualClock::new();
    let (b, log) = logged(
        CircuitBreaker::builder()
            .failure_threshold(1_000)
            .sliding_window(SlidingWindow::Calls(n))
            .failure_rate(rate)
            .minimum_calls(minimum),
        &clock,
    );
    (b, log, clock)
}

#[test]
fn a_failure_rate_equal_to_the_threshold_trips_once() {
    let (b, log, _) = count_breaker(10, 0.3, 10);
    record(&b, &[F, S, S, F, S, S, S, S, S]);
    assert_eq!(b.window_stats(), stats(9, 2, 0));
    assert_eq!(b.state(), State::Closed);
    // The tenth call makes 3 of 10: exactly 0.3 (which is 0.30000000000000004 * 10 in
    // floats) trips.
    record(&b, &[F]);
    assert_eq!(b.state(), State::Open);
    assert_eq!(
        causes(&log),
        [Cause::FailureRate {
            failures: 3,
            calls: 10
        }]
    );
    let t = log.lock().unwrap()[0];
    assert_eq!((t.from, t.to), (State::Closed, State::Open));
    assert_eq!(t.open_for, Some(Duration::from_secs(1)));
    assert_eq!(b.stats().trips, 1);
    // The window reads empty while the circuit is not closed.
    assert_eq!(b.window_stats(), stats(0, 0, 0));
}

#[test]
fn just_below_the_threshold_does_not_trip() {
    let (b, log, _) = count_breaker(10, 0.31, 10);
    record(&b, &[F, S, S, F, S, S, S, S, S, F]);
    assert_eq!(b.state(), State::Closed);
    assert_eq!(b.window_stats(), stats(10, 3, 0));
    assert!(causes(&log).is_empty());
}

#[test]
fn the_minimum_volume_holds_back_a_trip_until_a_success_reaches_it() {
    let (b, log, _) = count_breaker(20, 0.5, 6);
    record(&b, &[F, F, F, F, F]);
    assert_eq!(
        b.state(),
        State::Closed,
        "5 calls are below the minimum of 6"
    );
    // A success brings the volume to 6 with 5 failures: the rate is above 0.5.
    record(&b, &[S]);
    assert_eq!(
        causes(&log),
        [Cause::FailureRate {
            failures: 5,
            calls: 6
        }]
    );
}

#[test]
fn an_old_failure_leaves_the_window() {
    let (b, log, _) = count_breaker(4, 0.5, 4);
    record(&b, &[F, S, S]);
    // F leaves as the 5th call arrives: S S S F has one failure, not two.
    record(&b, &[S, F]);
    assert_eq!(b.window_stats(), stats(4, 1, 0));
    assert_eq!(b.state(), State::Closed);
    record(&b, &[F]);
    assert_eq!(b.window_stats(), stats(0, 0, 0));
    assert_eq!(
        causes(&log),
        [Cause::FailureRate {
            failures: 2,
            calls: 4
        }]
    );
}

#[test]
fn ignored_calls_and_stale_results_are_not_counted() {
    let (b, log, clock) = count_breaker(4, 0.5, 2);
    let stale = b.try_acquire().unwrap();
    record(&b, &[S, I, I, S]);
    assert_eq!(b.window_stats(), stats(2, 0, 0));
    b.force_open();
    b.reset();
    // The permit is from the generation before the reset: its failure changes nothing.
    stale.record(F);
    assert_eq!(b.window_stats(), stats(0, 0, 0));
    assert_eq!(b.state(), State::Closed);
    clock.advance(Duration::from_secs(1));
    assert_eq!(causes(&log), [Cause::ForcedOpen, Cause::Reset]);
}

#[test]
fn consecutive_failures_and_rates_combine_whichever_comes_first() {
    let clock = ManualClock::new();
    let (b, log) = logged(
        CircuitBreaker::builder()
            .failure_threshold(3)
            .sliding_window(SlidingWindow::Calls(100))
            .failure_rate(0.5)
            .minimum_calls(20),
        &clock,
    );
    record(&b, &[S, F, F, F]);
    assert_eq!(causes(&log), [Cause::ConsecutiveFailures { failures: 3 }]);

    let (b, log) = logged(
        CircuitBreaker::builder()
            .failure_threshold(3)
            .sliding_window(SlidingWindow::Calls(4))
            .failure_rate(0.5)
            .minimum_calls(4),
        &clock,
    );
    record(&b, &[F, S, F, S]);
    assert_eq!(
        causes(&log),
        [Cause::FailureRate {
            failures: 2,
            calls: 4
        }]
    );

    // When one failure reaches both, the consecutive count is judged first; the window
    // then finds the circuit already open and trips nothing more.
    let (b, log) = logged(
        CircuitBreaker::builder()
            .failure_threshold(2)
            .sliding_window(SlidingWindow::Calls(2))
            .failure_rate(1.0)
            .minimum_calls(2),
        &clock,
    );
    record(&b, &[F, F]);
    assert_eq!(causes(&log), [Cause::ConsecutiveFailures { failures: 2 }]);
    assert_eq!(b.stats().trips, 1);
}

#[test]
fn the_window_starts_empty_when_the_circuit_closes_and_on_reset() {
    let (b, log, clock) = count_breaker(4, 0.5, 2);
    record(&b, &[S, F]);
    assert_eq!(b.state(), State::Open);
    clock.advance(Duration::from_secs(1));
    record(&b, &[S]); // the probe closes the circuit
    assert_eq!(b.state(), State::Closed);
    assert_eq!(b.window_stats(), stats(0, 0, 0));
    // The failure before the trip is gone: one failure in two calls is needed afresh.
    record(&b, &[S, S, F]);
    assert_eq!(b.window_stats(), stats(3, 1, 0));
    b.reset();
    assert_eq!(b.window_stats(), stats(0, 0, 0));
    record(&b, &[S, S, F]);
    assert_eq!(b.state(), State::Closed);
    assert_eq!(b.window_stats(), stats(3, 1, 0));
    assert_eq!(
        causes(&log),
        [
            Cause::FailureRate {
                failures: 1,
                calls: 2
            },
            Cause::OpenTimeElapsed,
            Cause::ProbesSucceeded { successes: 1 },
        ]
    );
}

#[test]
fn forced_closed_feeds_no_window() {
    let (b, log, _) = count_breaker(4, 0.5, 1);
    b.force_closed();
    record(&b, &[F, F, F, F]);
    assert_eq!(b.state(), State::ForcedClosed);
    assert_eq!(b.window_stats(), stats(0, 0, 0));
    b.reset();
    record(&b, &[S]);
    assert_eq!(b.window_stats(), stats(1, 0, 0));
    assert_eq!(causes(&log), [Cause::ForcedClosed, Cause::Reset]);
}

fn time_breaker(
    span: Duration,
    buckets: u32,
    rate: f64,
    minimum: u32,
) -> (CircuitBreaker, Log, ManualClock) {
    let clock = ManualClock::new();
    let (b, log) = logged(
        CircuitBreaker::builder()
            .failure_threshold(1_000)
            .sliding_window(SlidingWindow::Time { span, buckets })
            .failure_rate(rate)
            .minimum_calls(minimum),
        &clock,
    );
    (b, log, clock)
}

#[test]
fn a_time_window_slides_bucket_by_bucket() {
    // 10 buckets of 1 s.
    let (b, log, clock) = time_breaker(Duration::from_secs(10), 10, 0.5, 4);
    record(&b, &[F, S, S]);
    clock.advance(Duration::from_secs(5));
    record(&b, &[S, S]);
    assert_eq!(b.window_stats(), stats(5, 1, 0));
    // At 9.999 s the first bucket (0..1 s) is still in; at 10 s it has left.
    clock.advance(Duration::from_millis(4_999));
    assert_eq!(b.window_stats(), stats(5, 1, 0));
    clock.advance(Duration::from_millis(1));
    assert_eq!(b.window_stats(), stats(2, 0, 0));
    record(&b, &[F]);
    assert_eq!(b.state(), State::Closed);
    // 2 of 4: had the old failure stayed, 3 of 7 would not trip.
    record(&b, &[F]);
    assert_eq!(b.state(), State::Open);
    assert_eq!(
        causes(&log),
        [Cause::FailureRate {
            failures: 2,
            calls: 4
        }]
    );
}

#[test]
fn successes_leaving_a_time_window_let_the_next_call_trip() {
    let (b, log, clock) = time_breaker(Duration::from_secs(4), 4, 0.5, 3);
    record(&b, &[S, S, S, S]);
    clock.advance(Duration::from_secs(3));
    record(&b, &[F, F, F]);
    assert_eq!(b.window_stats(), stats(7, 3, 0));
    assert_eq!(b.state(), State::Closed);
    // At 4 s the successes have left; the next call, a success, finds 3 failures in 4.
    clock.advance(Duration::from_secs(1));
    record(&b, &[S]);
    assert_eq!(
        causes(&log),
        [Cause::FailureRate {
            failures: 3,
            calls: 4
        }]
    );
}

#[test]
fn idle_gaps_of_any_length_leave_nothing_stuck() {
    for gap in [
        Duration::from_secs(365 * 24 * 3600),
        Duration::from_secs(50 * 365 * 24 * 3600),
        Duration::MAX,
    ] {
        let (b, log, clock) = time_breaker(Duration::from_secs(10), 10, 0.5, 3);
        record(&b, &[F, S, S]);
        assert_eq!(b.window_stats(), stats(3, 1, 0), "{gap:?}");
        clock.advance(gap);
        assert_eq!(b.window_stats(), stats(0, 0, 0), "{gap:?}");
        record(&b, &[S, F]);
        assert_eq!(b.state(), State::Closed, "{gap:?}");
        record(&b, &[F]);
        assert_eq!(b.state(), State::Open, "{gap:?}");
        assert_eq!(
            causes(&log),
            [Cause::FailureRate {
                failures: 2,
                calls: 3
            }],
            "{gap:?}"
        );
        // The clock stands still at its edge, and the breaker goes on working.
        clock.advance(gap);
        record(&b, &[S]);
        assert_eq!(b.state(), State::Closed, "{gap:?}");
        assert_eq!(b.window_stats(), stats(0, 0, 0), "{gap:?}");
        record(&b, &[S, S]);
        assert_eq!(b.window_stats(), stats(2, 0, 0), "{gap:?}");
    }
    // A count window has no time in it at all.
    let (b, _, clock) = count_breaker(3, 0.5, 3);
    record(&b, &[F, S]);
    clock.advance(Duration::MAX);
    record(&b, &[S]);
    assert_eq!(b.window_stats(), stats(3, 1, 0));
}

fn slow_breaker(rate: f64, minimum: u32) -> (CircuitBreaker, Log, ManualClock) {
    let clock = ManualClock::new();
    let (b, log) = logged(
        CircuitBreaker::builder()
            .sliding_window(SlidingWindow::Calls(10))
            .slow_call_rate(rate, Duration::from_millis(100))
            .minimum_calls(minimum),
        &clock,
    );
    (b, log, clock)
}

#[test]
fn a_call_is_slow_only_when_strictly_slower_than_the_threshold() {
    let (b, log, clock) = slow_breaker(0.5, 2);
    let p = b.try_acquire().unwrap();
    clock.advance(Duration::from_millis(100));
    p.record(S);
    assert_eq!(b.window_stats(), stats(1, 0, 0));
    let p = b.try_acquire().unwrap();
    clock.advance(Duration::from_nanos(100_000_001));
    p.record(F); // slow, whatever the outcome
    assert_eq!(causes(&log), [Cause::SlowCallRate { slow: 1, calls: 2 }]);
}

#[test]
fn owned_permits_async_calls_and_reported_durations_are_timed() {
    let (b, log, clock) = slow_breaker(0.8, 4);
    let owned = b.try_acquire_owned().unwrap();
    clock.advance(Duration::from_millis(150));
    owned.record(S);
    let t = clock.clone();
    let r = b.call(|| {
        t.advance(Duration::from_millis(101));
        Ok::<_, ()>(())
    });
    assert_eq!(r, Ok(()));
    b.try_acquire()
        .unwrap()
        .record_with_duration(S, Duration::from_secs(3));
    assert_eq!(b.window_stats(), stats(3, 0, 3));
    // A reported duration wins over the permit's own clock.
    let p = b.try_acquire().unwrap();
    clock.advance(Duration::from_secs(1));
    p.record_with_duration(S, Duration::from_millis(1));
    assert_eq!(b.window_stats(), stats(4, 0, 3));
    assert_eq!(b.state(), State::Closed);
    b.try_acquire_owned()
        .unwrap()
        .record_with_duration(F, Duration::from_millis(101));
    assert_eq!(causes(&log), [Cause::SlowCallRate { slow: 4, calls: 5 }]);
}

#[test]
fn without_a_slow_call_rate_durations_are_not_looked_at() {
    let (b, _, clock) = count_breaker(4, 1.0, 4);
    let p = b.try_acquire().unwrap();
    clock.advance(Duration::from_secs(60));
    p.record_with_duration(S, Duration::MAX);
    assert_eq!(b.window_stats(), stats(1, 0, 0));
}

#[test]
fn failure_and_slow_rates_together() {
    let clock = ManualClock::new();
    let (b, log) = logged(
        CircuitBreaker::builder()
            .failure_threshold(100)
            .sliding_window(SlidingWindow::Time {
                span: Duration::from_secs(1),
                buckets: 4,
            })
            .failure_rate(0.5)
            .slow_call_rate(0.5, Duration::from_millis(10))
            .minimum_calls(4),
        &clock,
    );
    let slow = Duration::from_millis(11);
    b.try_acquire().unwrap().record_with_duration(F, slow);
    b.try_acquire().unwrap().record_with_duration(S, slow);
    record(&b, &[S]);
    assert_eq!(b.window_stats(), stats(3, 1, 2));
    record(&b, &[S]);
    assert_eq!(causes(&log), [Cause::SlowCallRate { slow: 2, calls: 4 }]);
}

#[test]
fn half_open_closes_by_the_success_rate_of_its_probes() {
    let clock = ManualClock::new();
    let (b, log) = logged(
        CircuitBreaker::builder()
            .failure_threshold(1)
            .half_open_max_calls(3)
            .half_open_success_rate(0.8, 10), // 8 of 10: up to 2 failures tolerated
        &clock,
    );
    record(&b, &[F]);
    clock.advance(Duration::from_secs(1));
    record(&b, &[F, S, S, F, S, S, S, S, I]);
    assert_eq!(b.state(), State::HalfOpen);
    assert_eq!(b.stats().half_open_successes, 6);
    record(&b, &[S]);
    assert_eq!(b.state(), State::HalfOpen);
    record(&b, &[S]);
    assert_eq!(b.state(), State::Closed);
    assert_eq!(
        causes(&log)[2],
        Cause::ProbeSuccessRate {
            successes: 8,
            failures: 2
        }
    );

    // A third failure re-opens, with backoff.
    record(&b, &[F]);
    clock.advance(Duration::from_secs(1));
    record(&b, &[F, S, F, S]);
    assert_eq!(b.state(), State::HalfOpen);
    record(&b, &[F]);
    assert_eq!(b.state(), State::Open);
    assert_eq!(causes(&log)[5], Cause::ProbeFailed { backoff: 1 });
    assert_eq!(causes(&log).len(), 6);
}

#[test]
fn half_open_rate_admits_probes_at_most_max_calls_at_a_time() {
    let clock = ManualClock::new();
    let (b, _) = logged(
        CircuitBreaker::builder()
            .failure_threshold(1)
            .half_open_max_calls(2)
            .half_open_success_rate(0.5, 6),
        &clock,
    );
    record(&b, &[F]);
    clock.advance(Duration::from_secs(1));
    let p1 = b.try_acquire().unwrap();
    let p2 = b.try_acquire().unwrap();
    assert!(b.try_acquire().is_err());
    p1.record(F);
    let p3 = b.try_acquire().unwrap();
    assert!(b.try_acquire().is_err());
    p2.record(S);
    p3.record(F);
    assert_eq!(b.state(), State::HalfOpen);
    assert_eq!(b.stats().probes_in_flight, 0);
    record(&b, &[S, S]);
    assert_eq!(b.state(), State::Closed);
}
