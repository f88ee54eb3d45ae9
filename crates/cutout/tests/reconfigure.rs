//! Live reconfiguration (`CircuitBreaker::reconfigure`): each setting's effect on the next
//! decision (on a `ManualClock`), state and permits kept across a change, invalid settings
//! refused with the builder's errors and no change, the listener event, and thread storms
//! that change the settings while calls run, with exact counts.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::Duration;

use cutout::{
    Builder, Cause, CircuitBreaker, ConfigError, Listener, ManualClock, Outcome, Reconfigured,
    Rejected, SlidingWindow, State, Transition,
};

const SECOND: Duration = Duration::from_secs(1);

/// Records reconfigurations and transitions.
#[derive(Debug, Default)]
struct Events {
    reconfigured: Mutex<Vec<Reconfigured>>,
    transitions: Mutex<Vec<Transition>>,
}

impl Listener for Events {
    fn on_reconfigured(&self, _breaker: &str, change: &Reconfigured) {
        self.reconfigured.lock().unwrap().push(*change);
    }
    fn on_transition(&self, _breaker: &str, transition: &Transition) {
        self.transitions.lock().unwrap().push(*transition);
    }
    fn wants_call_events(&self) -> bool {
        false
    }
}

fn breaker(clock: &ManualClock, settings: Builder) -> CircuitBreaker {
    settings.build_with_clock(clock.clone()).unwrap()
}

fn fail(breaker: &CircuitBreaker) {
    breaker.try_acquire().unwrap().record(Outcome::Failure);
}

fn succeed(breaker: &CircuitBreaker) {
    breaker.try_acquire().unwrap().record(Outcome::Success);
}

#[test]
fn a_lower_failure_threshold_trips_on_the_next_failure_with_the_count_kept() {
    let clock = ManualClock::new();
    let b = breaker(&clock, CircuitBreaker::builder().failure_threshold(5));
    for _ in 0..3 {
        fail(&b);
    }
    b.reconfigure(CircuitBreaker::builder().failure_threshold(2))
        .unwrap();
    // The change itself decides nothing: the next outcome does.
    assert_eq!(b.state(), State::Closed);
    assert_eq!(b.stats().consecutive_failures, 3);
    fail(&b);
    assert_eq!(b.state(), State::Open);
    assert_eq!(b.stats().trips, 1);
}

#[test]
fn a_higher_failure_threshold_needs_the_new_count() {
    let clock = ManualClock::new();
    let b = breaker(&clock, CircuitBreaker::builder().failure_threshold(2));
    fail(&b);
    b.reconfigure(CircuitBreaker::builder().failure_threshold(4))
        .unwrap();
    fail(&b);
    fail(&b);
    assert_eq!(b.state(), State::Closed);
    assert_eq!(b.stats().consecutive_failures, 3);
    fail(&b);
    assert_eq!(b.state(), State::Open);
}

#[test]
fn an_open_circuit_keeps_its_deadline_and_the_next_open_time_is_new() {
    let clock = ManualClock::new();
    let b = breaker(
        &clock,
        CircuitBreaker::builder()
            .failure_threshold(1)
            .open_duration(10 * SECOND),
    );
    fail(&b);
    b.reconfigure(
        CircuitBreaker::builder()
            .failure_threshold(1)
            .open_duration(SECOND),
    )
    .unwrap();
    assert_eq!(b.retry_after(), Some(10 * SECOND));
    clock.advance(9 * SECOND);
    assert_eq!(
        b.try_acquire().unwrap_err(),
        Rejected::Open {
            retry_after: SECOND
        }
    );
    clock.advance(SECOND);
    fail(&b); // the probe fails: re-opens for the new 1 s
    assert_eq!(b.state(), State::Open);
    assert_eq!(b.retry_after(), Some(SECOND));
}

#[test]
fn exponential_backoff_set_live_grows_from_the_kept_backoff_step() {
    let clock = ManualClock::new();
    let b = breaker(
        &clock,
        CircuitBreaker::builder()
            .failure_threshold(1)
            .open_duration(SECOND),
    );
    fail(&b); // trip: backoff step 0, 1 s
    clock.advance(SECOND);
    fail(&b); // re-open: step 1, still constant 1 s
    assert_eq!(b.retry_after(), Some(SECOND));
    assert_eq!(b.stats().backoff_step, 1);
    b.reconfigure(
        CircuitBreaker::builder()
            .failure_threshold(1)
            .exponential_backoff(SECOND, 3.0, 20 * SECOND),
    )
    .unwrap();
    clock.advance(SECOND);
    fail(&b); // re-open: step 2, 1 s * 3^2
    assert_eq!(b.retry_after(), Some(9 * SECOND));
    clock.advance(9 * SECOND);
    fail(&b); // step 3: 27 s, capped at 20 s
    assert_eq!(b.retry_after(), Some(20 * SECOND));
}

#[test]
fn jitter_set_live_draws_what_a_breaker_built_with_it_draws() {
    let jittered = || {
        CircuitBreaker::builder()
            .failure_threshold(1)
            .open_duration(100 * SECOND)
            .jitter(0.5)
            .jitter_seed(7)
    };
    let clock = ManualClock::new();
    let live = breaker(
        &clock,
        CircuitBreaker::builder()
            .failure_threshold(1)
            .open_duration(100 * SECOND),
    );
    let built = breaker(&clock, jittered());
    live.reconfigure(jittered()).unwrap();
    clock.advance(Duration::from_millis(1234));
    fail(&live);
    fail(&built);
    let open_for = live.retry_after().unwrap();
    assert_eq!(Some(open_for), built.retry_after());
    assert!(open_for >= 50 * SECOND && open_for <= 100 * SECOND);
    // A seed this jitter actually moves: not the full open time.
    assert_ne!(open_for, 100 * SECOND);
}

#[test]
fn the_jitter_seed_stays_unless_the_settings_set_one() {
    let settings = || {
        CircuitBreaker::builder()
            .failure_threshold(1)
            .open_duration(100 * SECOND)
            .jitter(0.5)
    };
    let clock = ManualClock::new();
    let live = breaker(&clock, settings().jitter_seed(7));
    let built = breaker(&clock, settings().jitter_seed(7));
    live.reconfigure(settings()).unwrap(); // no seed: keeps 7
    fail(&live);
    fail(&built);
    assert_eq!(live.retry_after(), built.retry_after());
}

/// Threshold 1, open 1 s, `max` probes at once, `successes` of them to close.
fn probes(max: u32, successes: u32) -> Builder {
    CircuitBreaker::builder()
        .failure_threshold(1)
        .open_duration(SECOND)
        .half_open_max_calls(max)
        .success_threshold(successes)
}

/// A breaker on [`probes`] settings, opened, its open time ended.
fn half_open_ready(clock: &ManualClock, max: u32, successes: u32) -> CircuitBreaker {
    let b = breaker(clock, probes(max, successes));
    fail(&b);
    clock.advance(SECOND);
    b
}

#[test]
fn a_higher_probe_limit_admits_more_probes_in_the_same_period() {
    let clock = ManualClock::new();
    let b = half_open_ready(&clock, 1, 1);
    let first = b.try_acquire().unwrap();
    assert!(matches!(
        b.try_acquire(),
        Err(Rejected::HalfOpenFull { .. })
    ));
    b.reconfigure(probes(3, 1)).unwrap();
    let second = b.try_acquire().unwrap();
    let third = b.try_acquire().unwrap();
    assert!(matches!(
        b.try_acquire(),
        Err(Rejected::HalfOpenFull { .. })
    ));
    assert_eq!(b.stats().probes_in_flight, 3);
    assert_eq!(
        (first.generation(), second.generation(), third.generation()),
        (2, 2, 2),
        "one half-open period"
    );
    first.record(Outcome::Success);
    assert_eq!(b.state(), State::Closed);
    drop((second, third));
    assert_eq!(b.stats().stale, 2);
}

#[test]
fn a_lower_probe_limit_holds_new_probes_until_the_ones_out_report() {
    let clock = ManualClock::new();
    let b = half_open_ready(&clock, 3, 3);
    let a = b.try_acquire().unwrap();
    let c = b.try_acquire().unwrap();
    b.reconfigure(probes(1, 1)).unwrap();
    assert!(matches!(
        b.try_acquire(),
        Err(Rejected::HalfOpenFull { .. })
    ));
    // The probes in flight are kept and counted: the first success closes at the new
    // success threshold.
    a.record(Outcome::Success);
    assert_eq!(b.state(), State::Closed);
    c.record(Outcome::Success);
    assert_eq!(b.stats().stale, 1);
}

#[test]
fn a_lower_success_threshold_closes_on_the_next_probe_success() {
    let clock = ManualClock::new();
    let b = half_open_ready(&clock, 3, 3);
    succeed(&b);
    assert_eq!(b.state(), State::HalfOpen);
    assert_eq!(b.stats().half_open_successes, 1);
    b.reconfigure(probes(3, 2)).unwrap();
    assert_eq!(b.state(), State::HalfOpen);
    succeed(&b);
    assert_eq!(b.state(), State::Closed);
}

#[test]
fn a_new_probe_lease_applies_to_the_next_half_open_period() {
    let clock = ManualClock::new();
    let settings = |lease: Duration| {
        CircuitBreaker::builder()
            .failure_threshold(1)
            .open_duration(SECOND)
            .half_open_max_calls(1)
            .probe_lease(lease)
    };
    let b = breaker(&clock, settings(SECOND));
    fail(&b);
    b.reconfigure(settings(10 * SECOND)).unwrap();
    clock.advance(SECOND);
    let probe = b.try_acquire().unwrap();
    // The lease is kept in 256 ms units: 10 s from tick 1 000 ends at 11 008 ms (43 units).
    assert_eq!(
        b.try_acquire().unwrap_err(),
        Rejected::HalfOpenFull {
            retry_after: Duration::from_millis(10_008)
        }
    );
    // Under the old 1 s lease the slot would be free again after 1 024 ms; not now.
    clock.advance(Duration::from_millis(1_100));
    assert!(matches!(
        b.try_acquire(),
        Err(Rejected::HalfOpenFull { .. })
    ));
    clock.advance(Duration::from_millis(8_907));
    assert!(matches!(
        b.try_acquire(),
        Err(Rejected::HalfOpenFull { .. })
    ));
    clock.advance(Duration::from_millis(1));
    let late = b.try_acquire().unwrap();
    assert_eq!(late.generation(), probe.generation() + 1, "a new period");
    drop((probe, late));
}

#[test]
fn a_permit_from_before_the_change_records_under_the_new_settings() {
    let clock = ManualClock::new();
    let b = breaker(&clock, CircuitBreaker::builder().failure_threshold(3));
    let held = b.try_acquire_owned().unwrap();
    fail(&b);
    b.reconfigure(CircuitBreaker::builder().failure_threshold(2))
        .unwrap();
    held.record(Outcome::Failure);
    assert_eq!(b.state(), State::Open);
    let s = b.stats();
    assert_eq!((s.admitted, s.failures, s.stale, s.trips), (2, 2, 0, 1));
}

#[test]
fn invalid_settings_get_the_builders_error_and_change_nothing() {
    let clock = ManualClock::new();
    let b = breaker(
        &clock,
        CircuitBreaker::builder()
            .failure_threshold(2)
            .open_duration(5 * SECOND),
    );
    let invalid = [
        CircuitBreaker::builder().failure_threshold(0),
        CircuitBreaker::builder().half_open_max_calls(0),
        CircuitBreaker::builder().half_open_max_calls(200),
        CircuitBreaker::builder()
            .half_open_max_calls(1)
            .success_threshold(2),
        CircuitBreaker::builder().open_duration(Duration::ZERO),
        CircuitBreaker::builder().exponential_backoff(SECOND, 0.5, 2 * SECOND),
        CircuitBreaker::builder().exponential_backoff(2 * SECOND, 2.0, SECOND),
        CircuitBreaker::builder().jitter(1.5),
        CircuitBreaker::builder().probe_lease(Duration::MAX),
    ];
    for settings in invalid {
        let expected = settings.clone().build().unwrap_err();
        assert_eq!(b.reconfigure(settings), Err(expected));
    }
    // Still threshold 2 and 5 s.
    fail(&b);
    assert_eq!(b.state(), State::Closed);
    fail(&b);
    assert_eq!(b.retry_after(), Some(5 * SECOND));
}

#[test]
fn settings_that_shape_the_live_counts_are_refused_and_change_nothing() {
    let clock = ManualClock::new();
    let b = breaker(&clock, CircuitBreaker::builder().failure_threshold(2));
    assert_eq!(
        b.reconfigure(CircuitBreaker::builder().failure_rate(0.5)),
        Err(ConfigError::NotReconfigurable { setting: "window" })
    );
    assert_eq!(
        b.reconfigure(CircuitBreaker::builder().half_open_success_rate(0.5, 4)),
        Err(ConfigError::NotReconfigurable {
            setting: "half-open success rate"
        })
    );
    let windowed = breaker(
        &clock,
        CircuitBreaker::builder()
            .failure_rate(0.5)
            .sliding_window(SlidingWindow::Calls(10)),
    );
    assert_eq!(
        windowed.reconfigure(
            CircuitBreaker::builder()
                .failure_rate(0.5)
                .sliding_window(SlidingWindow::Calls(20))
        ),
        Err(ConfigError::NotReconfigurable {
            setting: "sliding window"
        })
    );
    assert_eq!(
        windowed.reconfigure(
            CircuitBreaker::builder()
                .slow_call_rate(0.5, SECOND)
                .sliding_window(SlidingWindow::Calls(10))
        ),
        Err(ConfigError::NotReconfigurable {
            setting: "slow-call rate"
        })
    );
    assert_eq!(
        windowed.reconfigure(CircuitBreaker::builder()),
        Err(ConfigError::NotReconfigurable { setting: "window" })
    );
    // The same window with other rates and thresholds is fine.
    windowed
        .reconfigure(
            CircuitBreaker::builder()
                .failure_rate(0.8)
                .minimum_calls(3)
                .sliding_window(SlidingWindow::Calls(10))
                .failure_threshold(1),
        )
        .unwrap();
    fail(&b);
    assert_eq!(b.state(), State::Closed, "still threshold 2");
    assert_eq!(
        ConfigError::NotReconfigurable { setting: "window" }.to_string(),
        "window cannot change on a running breaker"
    );
}

#[test]
fn listeners_hear_each_change_once_and_no_refused_one() {
    let clock = ManualClock::new();
    let events = Arc::new(Events::default());
    let b = breaker(
        &clock,
        CircuitBreaker::builder()
            .failure_threshold(1)
            .listener(events.clone()),
    );
    fail(&b);
    clock.advance(Duration::from_millis(250));
    b.reconfigure(CircuitBreaker::builder().failure_threshold(3))
        .unwrap();
    assert!(
        b.reconfigure(CircuitBreaker::builder().failure_threshold(0))
            .is_err()
    );
    {
        let seen = events.reconfigured.lock().unwrap();
        assert_eq!(seen.len(), 1);
        assert_eq!(
            (seen[0].generation, seen[0].at),
            (1, Duration::from_millis(250))
        );
    }
    // The change started no transition.
    assert_eq!(events.transitions.lock().unwrap().len(), 1);
    // And the breaker's name and listeners stay: the settings' own are not taken.
    b.reconfigure(CircuitBreaker::builder().name("other"))
        .unwrap();
    assert_eq!(events.reconfigured.lock().unwrap().len(), 2);
    assert_eq!(b.name(), "default");
}

const THREADS: u64 = 4;
const CALLS: u64 = 20_000;

/// Threads make `CALLS` calls each with outcome `outcome` while another thread swaps the
/// settings between `a` and `b` until they finish. Halfway through, each caller waits until
/// the settings have changed at least twice, so changes land among the calls however the
/// threads are scheduled. Returns the breaker, the number of changes and the rejections the
/// threads saw.
fn storm(
    settings: impl Fn() -> Builder + Sync,
    a: impl Fn(Builder) -> Builder + Send + Sync,
    b: impl Fn(Builder) -> Builder + Send + Sync,
    outcome: Outcome,
) -> (CircuitBreaker, Arc<Events>, u64, u64) {
    let events = Arc::new(Events::default());
    let breaker = settings()
        .listener(events.clone())
        .build_with_clock(ManualClock::new())
        .unwrap();
    let done = AtomicBool::new(false);
    let rejected = AtomicU64::new(0);
    let changed = AtomicU64::new(0);
    let start = Barrier::new(THREADS as usize + 1);
    let changes = thread::scope(|s| {
        let swapper = s.spawn(|| {
            start.wait();
            let mut changes = 0u64;
            while !done.load(Ordering::Acquire) {
                let next = if changes % 2 == 0 {
                    a(settings())
                } else {
                    b(settings())
                };
                breaker.reconfigure(next).unwrap();
                changes += 1;
                changed.store(changes, Ordering::Release);
            }
            changes
        });
        let callers: Vec<_> = (0..THREADS)
            .map(|_| {
                s.spawn(|| {
                    start.wait();
                    for call in 0..CALLS {
                        if call == CALLS / 2 {
                            while changed.load(Ordering::Acquire) < 2 {
                                thread::yield_now();
                            }
                        }
                        match breaker.try_acquire() {
                            Ok(p) => p.record(outcome),
                            Err(_) => {
                                rejected.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                })
            })
            .collect();
        for c in callers {
            c.join().unwrap();
        }
        done.store(true, Ordering::Release);
        swapper.join().unwrap()
    });
    let rejected = rejected.into_inner();
    (breaker, events, changes, rejected)
}

#[test]
fn storm_of_successes_loses_nothing_across_changes() {
    let (b, events, changes, rejected) = storm(
        CircuitBreaker::builder,
        |s| s.failure_threshold(1).half_open_max_calls(2),
        |s| s.failure_threshold(9).open_duration(3 * SECOND),
        Outcome::Success,
    );
    let s = b.stats();
    assert_eq!(rejected, 0);
    assert_eq!(
        (s.admitted, s.successes, s.failures, s.ignored),
        (THREADS * CALLS, THREADS * CALLS, 0, 0)
    );
    assert_eq!(
        (s.state, s.generation, s.trips, s.stale),
        (State::Closed, 0, 0, 0)
    );
    assert!(
        changes >= 2,
        "the callers waited for two changes: {changes}"
    );
    assert_eq!(events.reconfigured.lock().unwrap().len() as u64, changes);
    assert!(events.transitions.lock().unwrap().is_empty());
}

#[test]
fn storm_of_failures_trips_exactly_once_under_either_threshold() {
    // Thresholds swap between 3 and 50 while every call fails; the open time (1 h, both
    // settings) does not end on the manual clock, so the circuit trips once and stays open.
    let (b, events, changes, rejected) = storm(
        || CircuitBreaker::builder().open_duration(3_600 * SECOND),
        |s| s.failure_threshold(3),
        |s| s.failure_threshold(50),
        Outcome::Failure,
    );
    let s = b.stats();
    assert_eq!((s.state, s.generation, s.trips), (State::Open, 1, 1));
    assert_eq!(s.admitted + s.rejected, THREADS * CALLS);
    assert_eq!(s.rejected, rejected);
    assert_eq!(s.failures, s.admitted);
    // The trip came at the 3rd failure at the earliest and at the 50th at the latest; the
    // calls admitted after it (in flight when it happened, one per thread at most) are
    // stale.
    let counted = s.admitted - s.stale;
    assert!((3..=50).contains(&counted), "{s:?}");
    assert!(s.stale < THREADS, "{s:?}");
    assert!(
        changes >= 2,
        "the callers waited for two changes: {changes}"
    );
    let transitions = events.transitions.lock().unwrap();
    assert_eq!(transitions.len(), 1);
    assert_eq!(
        (transitions[0].from, transitions[0].to),
        (State::Closed, State::Open)
    );
    assert_eq!(transitions[0].open_for, Some(3_600 * SECOND));
}

/// A count window of 10 calls with these rates.
fn count_window(rate: f64, minimum: u32) -> Builder {
    CircuitBreaker::builder()
        .failure_threshold(100)
        .sliding_window(SlidingWindow::Calls(10))
        .failure_rate(rate)
        .minimum_calls(minimum)
}

#[test]
fn a_lower_failure_rate_trips_at_once_when_the_window_already_breaks_it() {
    let clock = ManualClock::new();
    let events = Arc::new(Events::default());
    let b = breaker(&clock, count_window(0.5, 10).listener(events.clone()));
    for i in 0..10 {
        b.try_acquire().unwrap().record(if i % 3 == 0 {
            Outcome::Failure
        } else {
            Outcome::Success
        });
    }
    // 4 failures in 10: below 50%.
    assert_eq!(b.state(), State::Closed);
    assert_eq!(b.window_stats().unwrap().failures, 4);
    b.reconfigure(count_window(0.4, 10)).unwrap();
    assert_eq!(b.state(), State::Open);
    let transitions = events.transitions.lock().unwrap();
    assert_eq!(transitions.len(), 1);
    assert_eq!(
        transitions[0].cause,
        Cause::FailureRate {
            failures: 4,
            calls: 10
        }
    );
    assert_eq!(events.reconfigured.lock().unwrap().len(), 1);
}

#[test]
fn a_higher_failure_rate_keeps_the_circuit_closed_on_the_next_failure() {
    let clock = ManualClock::new();
    let b = breaker(&clock, count_window(0.5, 4));
    for outcome in [Outcome::Failure, Outcome::Success, Outcome::Success] {
        b.try_acquire().unwrap().record(outcome);
    }
    b.reconfigure(count_window(0.75, 4)).unwrap();
    // 2 failures in 4: would trip at 50%, not at 75%.
    fail(&b);
    assert_eq!(b.state(), State::Closed);
    fail(&b);
    fail(&b);
    // 4 in 6: still below 75%; the next makes 5 in 7 (71%), then 6 in 8 (75%) trips.
    fail(&b);
    assert_eq!(b.state(), State::Closed);
    fail(&b);
    assert_eq!(b.state(), State::Open);
}

#[test]
fn minimum_calls_changed_live_decide_the_next_judgement() {
    let clock = ManualClock::new();
    let b = breaker(&clock, count_window(0.5, 5));
    fail(&b);
    fail(&b);
    // Two failures, two calls: the rate is there, the volume is not.
    b.reconfigure(count_window(0.5, 3)).unwrap();
    assert_eq!(b.state(), State::Closed, "2 calls < 3");
    fail(&b);
    assert_eq!(b.state(), State::Open);

    // Lowered to what the window already holds: trips in reconfigure.
    let b = breaker(&clock, count_window(0.5, 5));
    fail(&b);
    fail(&b);
    b.reconfigure(count_window(0.5, 2)).unwrap();
    assert_eq!(b.state(), State::Open);
}

#[test]
fn a_time_window_pending_under_the_new_rates_judges_the_next_success() {
    let clock = ManualClock::new();
    let time_window = |rate: f64, minimum: u32| {
        CircuitBreaker::builder()
            .failure_threshold(100)
            .sliding_window(SlidingWindow::Time {
                span: 10 * SECOND,
                buckets: 10,
            })
            .failure_rate(rate)
            .minimum_calls(minimum)
    };
    // 2 failures in 3 calls: below 90%, so nothing is pending and a success in the
    // thread's bucket is counted on its own fast path, unjudged.
    let b = breaker(&clock, time_window(0.9, 10));
    fail(&b);
    fail(&b);
    succeed(&b);
    assert_eq!(b.state(), State::Closed);
    // At 50% the rate is there but not the volume: pending, so successes are judged.
    b.reconfigure(time_window(0.5, 4)).unwrap();
    assert_eq!(b.state(), State::Closed, "3 calls < 4");
    // The fourth call, a success, reaches the volume at 2 in 4: trips.
    succeed(&b);
    assert_eq!(b.state(), State::Open);
}

#[test]
fn a_new_slow_call_threshold_judges_the_next_call() {
    let clock = ManualClock::new();
    let slow = |threshold: Duration| {
        CircuitBreaker::builder()
            .sliding_window(SlidingWindow::Calls(10))
            .slow_call_rate(0.5, threshold)
            .minimum_calls(1)
    };
    let b = breaker(&clock, slow(SECOND));
    b.reconfigure(slow(2 * SECOND)).unwrap();
    let p = b.try_acquire().unwrap();
    p.record_with_duration(Outcome::Success, Duration::from_millis(1_500));
    assert_eq!(b.state(), State::Closed, "not slow under 2 s");
    let p = b.try_acquire().unwrap();
    p.record_with_duration(Outcome::Success, Duration::from_millis(2_001));
    assert_eq!(b.state(), State::Open, "1 slow in 2");
}
