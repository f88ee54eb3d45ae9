//! `CircuitBreaker::hold_open`: a hold from outside (a fleet's trip signal) opens or extends,
//! never closes, never touches half-open or forced states, and is capped at the breaker's own
//! open duration.

#[path = "support/fixture.rs"]
mod fixture;

use std::time::Duration;

use cutout::{Cause, CircuitBreaker, Outcome, Rejected, State};
use fixture::Fixture;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn fixture() -> Fixture {
    Fixture::new(
        CircuitBreaker::builder()
            .failure_threshold(2)
            .success_threshold(1)
            .half_open_max_calls(1)
            .open_duration(ms(1_000)),
    )
}

#[test]
fn a_closed_circuit_trips_once_with_cause_remote() {
    let f = fixture();
    let stale = f.breaker.try_acquire().unwrap();
    assert!(f.breaker.hold_open(ms(300)));
    assert_eq!(f.breaker.state(), State::Open);
    assert_eq!(f.breaker.retry_after(), Some(ms(300)));
    assert_eq!(
        f.transitions(),
        [(State::Closed, State::Open, Cause::Remote)]
    );
    let t = f.log.lock().unwrap()[0];
    assert_eq!(t.open_for, Some(ms(300)));
    assert_eq!(f.breaker.stats().trips, 1);
    assert!(matches!(
        f.breaker.try_acquire(),
        Err(Rejected::Open { retry_after }) if retry_after == ms(300)
    ));
    // A permit from before the hold is stale: its success does not close the circuit.
    stale.record(Outcome::Success);
    assert_eq!(f.breaker.state(), State::Open);
}

#[test]
fn the_hold_is_capped_at_the_breakers_own_open_duration() {
    let f = fixture();
    assert!(f.breaker.hold_open(ms(60_000)));
    assert_eq!(f.breaker.retry_after(), Some(ms(1_000)));
}

#[test]
fn an_open_circuit_is_extended_without_a_transition_and_never_shortened() {
    let f = fixture();
    for _ in 0..2 {
        f.breaker.try_acquire().unwrap().record(Outcome::Failure);
    }
    assert_eq!(f.breaker.retry_after(), Some(ms(1_000)));
    f.clock.advance(ms(800));
    // 200 ms left; a 100 ms hold does not shorten it.
    assert!(!f.breaker.hold_open(ms(100)));
    assert_eq!(f.breaker.retry_after(), Some(ms(200)));
    // A 500 ms hold extends it, without a second trip.
    assert!(f.breaker.hold_open(ms(500)));
    assert_eq!(f.breaker.retry_after(), Some(ms(500)));
    assert_eq!(
        f.transitions(),
        [(
            State::Closed,
            State::Open,
            Cause::ConsecutiveFailures { failures: 2 }
        )]
    );
    assert_eq!(f.breaker.stats().trips, 1);
}

#[test]
fn half_open_and_forced_states_are_left_alone() {
    let f = fixture();
    assert!(f.breaker.hold_open(ms(100)));
    f.clock.advance(ms(100));
    let probe = f.breaker.try_acquire().unwrap();
    assert_eq!(f.breaker.state(), State::HalfOpen);
    assert!(!f.breaker.hold_open(ms(500)));
    assert_eq!(f.breaker.state(), State::HalfOpen);
    // Recovery follows the breaker's own probe.
    probe.record(Outcome::Success);
    assert_eq!(f.breaker.state(), State::Closed);

    f.breaker.force_closed();
    assert!(!f.breaker.hold_open(ms(500)));
    assert_eq!(f.breaker.state(), State::ForcedClosed);
    f.breaker.force_open();
    assert!(!f.breaker.hold_open(ms(500)));
    assert_eq!(f.breaker.state(), State::ForcedOpen);
}

#[test]
fn a_zero_hold_does_nothing_and_huge_holds_do_not_overflow() {
    let f = fixture();
    assert!(!f.breaker.hold_open(Duration::ZERO));
    assert!(!f.breaker.hold_open(Duration::from_micros(999)));
    assert_eq!(f.breaker.state(), State::Closed);
    f.clock.advance(Duration::from_secs(u64::MAX / 4));
    assert!(f.breaker.hold_open(Duration::MAX));
    assert_eq!(f.breaker.state(), State::Open);
}

#[test]
fn remote_has_a_stable_label() {
    assert_eq!(Cause::Remote.as_str(), "remote");
}
