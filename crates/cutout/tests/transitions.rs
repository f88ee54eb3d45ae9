//! One test per transition and per rule, on a manual clock.

#[path = "support/fixture.rs"]
mod fixture;

use std::sync::Arc;
use std::time::Duration;

use cutout::{CallError, Cause, CircuitBreaker, ManualClock, Outcome, Rejected, State};
use fixture::Fixture;

const MS: Duration = Duration::from_millis(1);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn article() -> cutout::Builder {
    CircuitBreaker::builder()
        .failure_threshold(2)
        .open_duration(ms(100))
        .half_open_max_calls(1)
}

#[test]
fn article_scenario_two_failures_open_then_a_success_closes() {
    let f = Fixture::new(article());
    let err = || Err::<(), _>("payment service down");

    assert_eq!(
        f.breaker.call(err),
        Err(CallError::Inner("payment service down"))
    );
    assert_eq!(f.breaker.state(), State::Closed);
    assert_eq!(
        f.breaker.call(err),
        Err(CallError::Inner("payment service down"))
    );
    assert_eq!(f.breaker.state(), State::Open);

    assert_eq!(
        f.breaker.call(|| Ok::<_, &str>(())),
        Err(CallError::Rejected(Rejected::Open {
            retry_after: ms(100)
        }))
    );

    f.clock.advance(ms(100));
    assert_eq!(f.breaker.call(|| Ok::<_, &str>("paid")), Ok("paid"));
    assert_eq!(f.breaker.state(), State::Closed);
    assert_eq!(
        f.transitions(),
        [
            (
                State::Closed,
                State::Open,
                Cause::ConsecutiveFailures { failures: 2 }
            ),
            (State::Open, State::HalfOpen, Cause::OpenTimeElapsed),
            (
                State::HalfOpen,
                State::Closed,
                Cause::ProbesSucceeded { successes: 1 }
            ),
        ]
    );
}

#[test]
fn closed_success_resets_the_failure_count() {
    let f = Fixture::new(CircuitBreaker::builder().failure_threshold(3));
    f.fail();
    f.fail();
    assert_eq!(f.breaker.stats().consecutive_failures, 2);
    f.succeed();
    assert_eq!(f.breaker.stats().consecutive_failures, 0);
    f.fail();
    f.fail();
    assert_eq!(f.breaker.state(), State::Closed);
    f.fail();
    assert_eq!(f.breaker.state(), State::Open);
    assert_eq!(f.breaker.stats().trips, 1);
}

#[test]
fn closed_ignored_outcome_changes_no_count() {
    let f = Fixture::new(CircuitBreaker::builder().failure_threshold(2));
    f.fail();
    f.breaker.try_acquire().unwrap().record(Outcome::Ignored);
    assert_eq!(f.breaker.stats().consecutive_failures, 1);
    f.fail();
    assert_eq!(f.breaker.state(), State::Open);
}

#[test]
fn open_rejects_with_the_time_left_and_never_reads_as_admitted() {
    let f = Fixture::new(article());
    f.fail();
    f.fail();
    f.clock.advance(ms(40));
    assert_eq!(
        f.breaker.try_acquire().unwrap_err(),
        Rejected::Open {
            retry_after: ms(60)
        }
    );
    assert_eq!(f.breaker.retry_after(), Some(ms(60)));
    f.clock.advance(ms(59));
    assert_eq!(f.breaker.try_acquire().unwrap_err().retry_after(), Some(MS));
    let stats = f.breaker.stats();
    assert_eq!((stats.rejected, stats.admitted), (2, 2));
    assert_eq!(f.breaker.state(), State::Open);
}

#[test]
fn half_open_admits_exactly_max_calls_and_rejects_the_rest() {
    let f = Fixture::new(
        article()
            .half_open_max_calls(3)
            .success_threshold(3)
            .probe_lease(Duration::from_secs(10)),
    );
    f.fail();
    f.fail();
    f.clock.advance(ms(100));
    let probes: Vec<_> = (0..3).map(|_| f.breaker.try_acquire().unwrap()).collect();
    assert_eq!(f.breaker.state(), State::HalfOpen);
    assert_eq!(f.breaker.stats().probes_in_flight, 3);
    // The lease is 10 s from the last admission, rounded up to 256 ms: 10_100 -> 10_240.
    assert_eq!(
        f.breaker.try_acquire().unwrap_err(),
        Rejected::HalfOpenFull {
            retry_after: ms(10_240 - 100)
        }
    );
    for p in probes {
        p.record(Outcome::Success);
    }
    assert_eq!(f.breaker.state(), State::Closed);
    assert_eq!(
        f.transitions().last(),
        Some(&(
            State::HalfOpen,
            State::Closed,
            Cause::ProbesSucceeded { successes: 3 }
        ))
    );
}

#[test]
fn half_open_success_below_threshold_frees_its_slot() {
    let f2 = Fixture::new(article().half_open_max_calls(2).success_threshold(2));
    f2.fail();
    f2.fail();
    f2.clock.advance(ms(100));
    f2.succeed();
    let stats = f2.breaker.stats();
    assert_eq!(
        (
            stats.state,
            stats.half_open_successes,
            stats.probes_in_flight
        ),
        (State::HalfOpen, 1, 0)
    );
    f2.succeed();
    assert_eq!(f2.breaker.state(), State::Closed);
}

#[test]
fn probe_failure_reopens_with_growing_backoff_capped_and_reset_on_close() {
    let f = Fixture::new(
        CircuitBreaker::builder()
            .failure_threshold(1)
            .exponential_backoff(ms(100), 2.0, ms(350)),
    );
    f.fail();
    assert_eq!(f.breaker.retry_after(), Some(ms(100)));
    let mut expected = vec![];
    for open_for in [200, 350, 350] {
        f.clock.advance(f.breaker.retry_after().unwrap());
        f.fail(); // the probe fails
        assert_eq!(f.breaker.state(), State::Open);
        assert_eq!(f.breaker.retry_after(), Some(ms(open_for)));
        expected.push(open_for);
    }
    assert_eq!(f.breaker.stats().backoff_step, 3);
    let opens: Vec<_> = f
        .log
        .lock()
        .unwrap()
        .iter()
        .filter(|t| t.to == State::Open)
        .map(|t| t.open_for.unwrap().as_millis() as u64)
        .collect();
    assert_eq!(opens, [100, 200, 350, 350]);
    assert_eq!(
        f.transitions()[2],
        (
            State::HalfOpen,
            State::Open,
            Cause::ProbeFailed { backoff: 1 }
        )
    );

    f.clock.advance(ms(350));
    f.succeed();
    assert_eq!(f.breaker.state(), State::Closed);
    assert_eq!(f.breaker.stats().backoff_step, 0);
    f.fail();
    assert_eq!(
        f.breaker.retry_after(),
        Some(ms(100)),
        "backoff resets on close"
    );
    assert_eq!(f.breaker.stats().trips, 5);
}

#[test]
fn ignored_and_dropped_probes_release_their_slot_without_counting() {
    let f = Fixture::new(article());
    f.fail();
    f.fail();
    f.clock.advance(ms(100));
    f.breaker.try_acquire().unwrap().record(Outcome::Ignored);
    assert_eq!(f.breaker.stats().probes_in_flight, 0);
    drop(f.breaker.try_acquire().unwrap());
    let stats = f.breaker.stats();
    assert_eq!(
        (
            stats.state,
            stats.probes_in_flight,
            stats.half_open_successes,
            stats.ignored
        ),
        (State::HalfOpen, 0, 0, 2)
    );
    f.succeed();
    assert_eq!(f.breaker.state(), State::Closed);
}

#[test]
fn a_panicking_call_releases_its_slot_as_ignored() {
    let f = Fixture::new(article());
    f.fail();
    f.fail();
    f.clock.advance(ms(100));
    let breaker = f.breaker.clone();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        breaker.call(|| -> Result<(), ()> { panic!("probe blew up") })
    }));
    assert!(result.is_err());
    let stats = f.breaker.stats();
    assert_eq!(
        (stats.state, stats.probes_in_flight, stats.ignored),
        (State::HalfOpen, 0, 1)
    );
}

#[test]
fn a_probe_that_never_reports_is_given_up_after_its_lease() {
    let f = Fixture::new(article().probe_lease(ms(1_000)));
    f.fail();
    f.fail();
    f.clock.advance(ms(100));
    let hung = f.breaker.try_acquire().unwrap();
    // Lease: 100 + 1000 = 1100 ms, rounded up to 1280.
    f.clock.advance(ms(1_179));
    assert_eq!(
        f.breaker.try_acquire().unwrap_err(),
        Rejected::HalfOpenFull { retry_after: MS }
    );
    f.clock.advance(MS);
    let fresh = f.breaker.try_acquire().unwrap();
    assert_ne!(fresh.generation(), hung.generation());
    assert_eq!(
        f.transitions().last(),
        Some(&(
            State::HalfOpen,
            State::HalfOpen,
            Cause::ProbeLeaseExpired { probes_lost: 1 }
        ))
    );
    // The late result is stale: it neither closes nor re-opens the circuit.
    hung.record(Outcome::Failure);
    let stats = f.breaker.stats();
    assert_eq!(
        (stats.state, stats.probes_in_flight, stats.stale),
        (State::HalfOpen, 1, 1)
    );
    fresh.record(Outcome::Success);
    assert_eq!(f.breaker.state(), State::Closed);
}

#[test]
fn a_result_from_an_earlier_cycle_changes_no_state() {
    let f = Fixture::new(article());
    let slow = f.breaker.try_acquire().unwrap(); // admitted while closed
    f.fail();
    f.fail();
    f.clock.advance(ms(100));
    let probe = f.breaker.try_acquire().unwrap(); // half-open now
    slow.record(Outcome::Success); // a success from the closed cycle must not close it
    assert_eq!(f.breaker.state(), State::HalfOpen);
    assert_eq!(f.breaker.stats().half_open_successes, 0);
    probe.record(Outcome::Failure);
    assert_eq!(f.breaker.state(), State::Open);

    // A stale failure cannot re-trip a closed circuit either.
    let old = f.breaker.try_acquire_owned().unwrap_err();
    assert!(matches!(old, Rejected::Open { .. }));
    let f2 = Fixture::new(article());
    let stale_failure = f2.breaker.try_acquire().unwrap();
    f2.breaker.force_open();
    f2.breaker.reset();
    stale_failure.record(Outcome::Failure);
    assert_eq!(f2.breaker.stats().consecutive_failures, 0);
    assert_eq!(f2.breaker.stats().stale, 1);
}

#[test]
fn force_open_rejects_until_reset() {
    let f = Fixture::new(article());
    f.breaker.force_open();
    assert_eq!(f.breaker.try_acquire().unwrap_err(), Rejected::ForcedOpen);
    f.clock.advance(Duration::from_secs(3600));
    assert_eq!(f.breaker.try_acquire().unwrap_err(), Rejected::ForcedOpen);
    assert_eq!(f.breaker.retry_after(), None);
    f.breaker.force_open(); // no second transition
    f.breaker.reset();
    f.succeed();
    assert_eq!(
        f.transitions(),
        [
            (State::Closed, State::ForcedOpen, Cause::ForcedOpen),
            (State::ForcedOpen, State::Closed, Cause::Reset),
        ]
    );
    assert_eq!(f.breaker.stats().trips, 0);
}

#[test]
fn force_closed_admits_everything_counts_and_never_trips() {
    let f = Fixture::new(article());
    f.breaker.force_closed();
    for _ in 0..10 {
        f.fail();
    }
    let stats = f.breaker.stats();
    assert_eq!(
        (stats.state, stats.failures, stats.admitted, stats.trips),
        (State::ForcedClosed, 10, 10, 0)
    );
    f.breaker.reset();
    assert_eq!(f.breaker.state(), State::Closed);
    assert_eq!(f.breaker.stats().consecutive_failures, 0);
}

#[test]
fn reset_closes_an_open_circuit_and_clears_closed_failures() {
    let f = Fixture::new(article().failure_threshold(3));
    f.fail();
    f.breaker.reset(); // closed: clears the count, no transition
    assert_eq!(f.breaker.stats().consecutive_failures, 0);
    assert!(f.transitions().is_empty());
    f.fail();
    f.fail();
    f.fail();
    f.breaker.reset();
    assert_eq!(f.breaker.state(), State::Closed);
    assert_eq!(
        f.transitions().last(),
        Some(&(State::Open, State::Closed, Cause::Reset))
    );
}

#[test]
fn years_of_uptime_then_a_day_long_open_time() {
    let day = Duration::from_secs(24 * 3600);
    let f = Fixture::new(article().open_duration(day));
    f.clock.advance(Duration::from_secs(10 * 365 * 24 * 3600)); // ten years
    f.fail();
    f.fail();
    assert_eq!(f.breaker.retry_after(), Some(day));
    f.clock.advance(day - MS);
    assert_eq!(
        f.breaker.try_acquire().unwrap_err(),
        Rejected::Open { retry_after: MS }
    );
    f.clock.advance(MS);
    f.succeed();
    assert_eq!(f.breaker.state(), State::Closed);
    assert_eq!(
        f.log.lock().unwrap()[0].at,
        Duration::from_secs(10 * 365 * 24 * 3600)
    );
}

#[test]
fn past_the_tick_range_time_saturates_and_the_breaker_still_recovers() {
    let f = Fixture::new(article().open_duration(Duration::from_secs(60)));
    // 40 years: beyond the 2^40 ms (34.8 years) tick range.
    f.clock.advance(Duration::from_secs(40 * 365 * 24 * 3600));
    f.fail();
    f.fail();
    assert_eq!(f.breaker.state(), State::Open);
    // The clock stands still at the edge, so the open time has already ended.
    assert_eq!(f.breaker.retry_after(), Some(Duration::ZERO));
    f.succeed();
    assert_eq!(f.breaker.state(), State::Closed);
    f.clock.advance(Duration::MAX); // saturates, no panic
    f.fail();
    f.fail();
    f.succeed();
    assert_eq!(f.breaker.state(), State::Closed);
}

#[test]
fn every_transition_is_reported_once_with_its_generation() {
    let f = Fixture::new(article());
    f.fail();
    f.fail();
    f.clock.advance(ms(100));
    f.fail();
    f.clock.advance(ms(100));
    f.succeed();
    let log = f.log.lock().unwrap();
    let generations: Vec<u16> = log.iter().map(|t| t.generation).collect();
    assert_eq!(generations, [1, 2, 3, 4, 5]);
    assert_eq!(log[0].at, Duration::ZERO);
    assert_eq!(log[1].at, ms(100));
    assert_eq!(
        log[0].to_string(),
        "closed -> open (consecutive_failures), open for 100ms"
    );
}

#[test]
fn stats_add_up() {
    let f = Fixture::new(article());
    f.succeed();
    f.fail();
    drop(f.breaker.try_acquire().unwrap());
    f.fail();
    let _ = f.breaker.try_acquire();
    let _ = f.breaker.try_acquire();
    let s = f.breaker.stats();
    assert_eq!(
        (
            s.admitted,
            s.successes,
            s.failures,
            s.ignored,
            s.rejected,
            s.trips,
            s.stale
        ),
        (4, 1, 2, 1, 2, 1, 0)
    );
    assert_eq!(s.admitted, s.successes + s.failures + s.ignored);
}

#[test]
fn clones_share_one_breaker() {
    let f = Fixture::new(article());
    let other = f.breaker.clone();
    assert!(other.ptr_eq(&f.breaker));
    other.try_acquire().unwrap().record(Outcome::Failure);
    f.fail();
    assert_eq!(other.state(), State::Open);
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_future_releases_its_probe_slot() {
    let f = Fixture::new(article());
    f.fail();
    f.fail();
    f.clock.advance(ms(100));
    {
        let call = f
            .breaker
            .call_async(std::future::pending::<Result<(), ()>>());
        let timed_out = tokio::time::timeout(Duration::from_secs(1), call).await;
        assert!(timed_out.is_err());
    }
    let stats = f.breaker.stats();
    assert_eq!(
        (stats.state, stats.probes_in_flight, stats.ignored),
        (State::HalfOpen, 0, 1)
    );
    let paid = f.breaker.call_async(async { Ok::<_, ()>("paid") }).await;
    assert_eq!(paid, Ok("paid"));
    assert_eq!(f.breaker.state(), State::Closed);
}

#[cfg(feature = "tokio")]
#[tokio::test(start_paused = true)]
async fn tokio_paused_time_drives_the_breaker() {
    let breaker = article()
        .build_with_clock(cutout::TokioClock::new())
        .unwrap();
    for _ in 0..2 {
        let _ = breaker.call_async(async { Err::<(), _>("down") }).await;
    }
    assert_eq!(
        breaker.try_acquire().unwrap_err(),
        Rejected::Open {
            retry_after: ms(100)
        }
    );
    tokio::time::advance(ms(100)).await;
    assert_eq!(breaker.call_async(async { Ok::<_, ()>(1) }).await, Ok(1));
    assert_eq!(breaker.state(), State::Closed);
}

/// A manual clock that counts how often it is read.
#[derive(Clone, Default)]
struct CountingClock {
    inner: ManualClock,
    reads: Arc<std::sync::atomic::AtomicU64>,
}

impl cutout::Clock for CountingClock {
    fn now(&self) -> Duration {
        self.reads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.inner.now()
    }
}

#[test]
fn the_clock_is_read_only_when_time_matters() {
    let clock = CountingClock::default();
    let reads = || clock.reads.load(std::sync::atomic::Ordering::Relaxed);
    let breaker = article()
        .failure_threshold(3)
        .build_with_clock(clock.clone())
        .unwrap();
    let built = reads();
    breaker.try_acquire().unwrap().record(Outcome::Success);
    breaker.try_acquire().unwrap().record(Outcome::Failure);
    breaker.try_acquire().unwrap().record(Outcome::Failure);
    breaker.try_acquire().unwrap().record(Outcome::Success);
    assert_eq!(
        reads() - built,
        0,
        "closed calls under the threshold read no clock"
    );
    for _ in 0..3 {
        breaker.try_acquire().unwrap().record(Outcome::Failure);
    }
    assert_eq!(reads() - built, 1, "the trip reads the clock once");
    assert_eq!(breaker.retry_after(), Some(ms(100)));
}
