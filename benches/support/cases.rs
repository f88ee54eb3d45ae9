//! Every breaker under test, configured as closely to cutout as it allows, and one function
//! per measured path. Each path function returns whether the breaker behaved as the case
//! expects (admitted, rejected, ...), so a bench or the allocation table can check that it
//! measured the state it claims to.
//!
//! The common configuration: trip after 5 consecutive failures; stay open one hour (so an
//! open case never half-opens while measured); one half-open probe; one probe success
//! closes. Where a peer differs, the builder says how.

use std::hint::black_box;
use std::time::Duration;

use cutout::{CircuitBreaker, Clock, ManualClock, MonotonicClock, Outcome, State};

use super::{Fail, Work, failing_call, ok_call, poll_now, tower_call};

/// Consecutive failures that trip every breaker.
pub(crate) const THRESHOLD: u32 = 5;
/// The open time for cases that must stay open.
pub(crate) const HOUR: Duration = Duration::from_secs(3600);

// ---------------------------------------------------------------------------------------
// cutout
// ---------------------------------------------------------------------------------------

fn cutout_builder() -> cutout::Builder {
    CircuitBreaker::builder()
        .failure_threshold(THRESHOLD)
        .open_duration(HOUR)
        .half_open_max_calls(1)
        .success_threshold(1)
}

/// A closed cutout breaker on the default clock.
pub(crate) fn cutout_closed() -> CircuitBreaker {
    cutout_builder().build().expect("valid config")
}

/// An open cutout breaker (open for an hour) on `clock`.
pub(crate) fn cutout_open(clock: impl Clock) -> CircuitBreaker {
    let cb = cutout_builder()
        .build_with_clock(clock)
        .expect("valid config");
    for _ in 0..THRESHOLD {
        let _ = cb.call(failing_call);
    }
    assert_eq!(cb.state(), State::Open);
    cb
}

/// An open cutout breaker on a [`ManualClock`] that never moves.
pub(crate) fn cutout_open_manual() -> CircuitBreaker {
    cutout_open(ManualClock::new())
}

/// An open cutout breaker on the default [`MonotonicClock`].
pub(crate) fn cutout_open_monotonic() -> CircuitBreaker {
    cutout_open(MonotonicClock::new())
}

/// A half-open cutout breaker on a [`ManualClock`] (its clock is returned so it lives on).
pub(crate) fn cutout_half_open_manual() -> (CircuitBreaker, ManualClock) {
    let clock = ManualClock::new();
    let cb = cutout_open(clock.clone());
    clock.advance(HOUR);
    assert!(cutout_probe_ignored(&cb));
    assert_eq!(cb.state(), State::HalfOpen);
    (cb, clock)
}

/// A half-open cutout breaker on the default [`MonotonicClock`]: open for 1 ms, then
/// waited out by spinning until the breaker itself says the open time is over.
pub(crate) fn cutout_half_open_monotonic() -> CircuitBreaker {
    cutout_half_open_on(MonotonicClock::new())
}

/// A half-open cutout breaker on `clock` (a real one): open for 1 ms, then waited out by
/// spinning until the breaker itself says the open time is over.
pub(crate) fn cutout_half_open_on(clock: impl Clock) -> CircuitBreaker {
    let cb = cutout_builder()
        .open_duration(Duration::from_millis(1))
        .build_with_clock(clock)
        .expect("valid config");
    for _ in 0..THRESHOLD {
        let _ = cb.call(failing_call);
    }
    while cb.retry_after() != Some(Duration::ZERO) {
        std::hint::spin_loop();
    }
    assert!(cutout_probe_ignored(&cb));
    assert_eq!(cb.state(), State::HalfOpen);
    cb
}

/// A cutout breaker for the transition cycle: trips on one failure, open for one second of
/// a [`ManualClock`].
pub(crate) fn cutout_cycle() -> (CircuitBreaker, ManualClock) {
    let clock = ManualClock::new();
    let cb = CircuitBreaker::builder()
        .failure_threshold(1)
        .open_duration(Duration::from_secs(1))
        .build_with_clock(clock.clone())
        .expect("valid config");
    (cb, clock)
}

/// Closed, `call` with a success.
#[inline]
pub(crate) fn cutout_call_ok(cb: &CircuitBreaker) -> bool {
    cb.call(ok_call).is_ok()
}

/// Closed, a permit, the call, its outcome recorded.
#[inline]
pub(crate) fn cutout_permit_ok(cb: &CircuitBreaker) -> bool {
    match cb.try_acquire() {
        Ok(permit) => {
            let result = ok_call();
            permit.record(if result.is_ok() {
                Outcome::Success
            } else {
                Outcome::Failure
            });
            result.is_ok()
        }
        Err(_) => false,
    }
}

/// Closed, a failure then a success (so the breaker never trips): two calls.
#[inline]
pub(crate) fn cutout_fail_then_ok(cb: &CircuitBreaker) -> bool {
    let failed = matches!(cb.call(failing_call), Err(cutout::CallError::Inner(Fail)));
    let succeeded = cb.call(ok_call).is_ok();
    failed & succeeded
}

/// Open: `call` is rejected without running the call.
#[inline]
pub(crate) fn cutout_reject(cb: &CircuitBreaker) -> bool {
    matches!(cb.call(ok_call), Err(cutout::CallError::Rejected(_)))
}

/// Half-open: a probe is admitted, makes the call and records `Ignored`, which releases its
/// slot and keeps the circuit half-open (a success would close it).
#[inline]
pub(crate) fn cutout_probe_ignored(cb: &CircuitBreaker) -> bool {
    match cb.try_acquire() {
        Ok(permit) => {
            let ok = ok_call().is_ok();
            permit.record(Outcome::Ignored);
            ok
        }
        Err(_) => false,
    }
}

/// A full cycle on a breaker from [`cutout_cycle`]: a failure trips it, one second passes,
/// a probe succeeds and closes it. Three transitions.
#[inline]
pub(crate) fn cutout_trip_probe_close(cb: &CircuitBreaker, clock: &ManualClock) -> bool {
    let failed = matches!(cb.call(failing_call), Err(cutout::CallError::Inner(Fail)));
    clock.advance(Duration::from_secs(1));
    let probed = cb.call(ok_call).is_ok();
    failed & probed
}

// ---------------------------------------------------------------------------------------
// failsafe 1.3: a parking_lot mutex around the state and the policy.
// Same: 5 consecutive failures, constant one-hour backoff.
// Differs: no probe limit (half-open admits every call) and any success in half-open
// closes it, so there is no steady half-open state to measure.
// ---------------------------------------------------------------------------------------

/// failsafe's breaker with a consecutive-failures policy and a constant backoff.
pub(crate) type Failsafe = failsafe::StateMachine<
    failsafe::failure_policy::ConsecutiveFailures<failsafe::backoff::Constant>,
    (),
>;

/// A closed failsafe breaker.
pub(crate) fn failsafe_closed() -> Failsafe {
    failsafe::Config::new()
        .failure_policy(failsafe::failure_policy::consecutive_failures(
            THRESHOLD,
            failsafe::backoff::constant(HOUR),
        ))
        .build()
}

/// An open failsafe breaker.
pub(crate) fn failsafe_open() -> Failsafe {
    use failsafe::CircuitBreaker as _;
    let cb = failsafe_closed();
    for _ in 0..THRESHOLD {
        let _ = cb.call(failing_call);
    }
    assert!(!cb.is_call_permitted());
    cb
}

/// Closed, `call` with a success.
#[inline]
pub(crate) fn failsafe_call_ok(cb: &Failsafe) -> bool {
    use failsafe::CircuitBreaker as _;
    cb.call(ok_call).is_ok()
}

/// Closed, a failure then a success.
#[inline]
pub(crate) fn failsafe_fail_then_ok(cb: &Failsafe) -> bool {
    use failsafe::CircuitBreaker as _;
    let failed = matches!(cb.call(failing_call), Err(failsafe::Error::Inner(Fail)));
    let succeeded = cb.call(ok_call).is_ok();
    failed & succeeded
}

/// Open: rejected.
#[inline]
pub(crate) fn failsafe_reject(cb: &Failsafe) -> bool {
    use failsafe::CircuitBreaker as _;
    matches!(cb.call(ok_call), Err(failsafe::Error::Rejected))
}

// ---------------------------------------------------------------------------------------
// recloser 1.4: crossbeam-epoch state, a spin-locked ring buffer of outcomes.
// Same: it trips when every outcome in a ring of 5 failed (= 5 consecutive failures);
// one-hour open wait.
// Differs: it counts a failure rate over a ring, not a streak; no probe limit. For a
// steady half-open state its half-open error-rate threshold is set below zero, so a
// success never closes it (a ring of 1 outcome: every probe is evaluated).
// ---------------------------------------------------------------------------------------

fn recloser_builder() -> recloser::RecloserBuilder {
    recloser::Recloser::custom()
        .closed_len(THRESHOLD as usize)
        .error_rate_closed(1.0)
        .half_open_len(1)
        .error_rate_half_open(0.5)
        .open_wait(HOUR)
}

/// A closed recloser.
pub(crate) fn recloser_closed() -> recloser::Recloser {
    recloser_builder().build()
}

/// An open recloser. Its ring evaluates nothing until it is full, so a fresh one trips on
/// the sixth failure; once full, on five in a row.
pub(crate) fn recloser_open() -> recloser::Recloser {
    let cb = recloser_closed();
    for _ in 0..=THRESHOLD {
        let _ = cb.call(failing_call);
    }
    assert!(recloser_reject(&cb));
    cb
}

/// A recloser that stays half-open on successes (see the section comment).
pub(crate) fn recloser_half_open() -> recloser::Recloser {
    let cb = recloser_builder()
        .error_rate_half_open(-2.0)
        .open_wait(Duration::ZERO)
        .build();
    for _ in 0..=THRESHOLD {
        let _ = cb.call(failing_call);
    }
    // The open wait is zero: the next call turns it half-open.
    assert!(recloser_call_ok(&cb));
    cb
}

/// Closed (or half-open), `call` with a success.
#[inline]
pub(crate) fn recloser_call_ok(cb: &recloser::Recloser) -> bool {
    cb.call(ok_call).is_ok()
}

/// Closed, a failure then a success.
#[inline]
pub(crate) fn recloser_fail_then_ok(cb: &recloser::Recloser) -> bool {
    let failed = matches!(cb.call(failing_call), Err(recloser::Error::Inner(Fail)));
    let succeeded = cb.call(ok_call).is_ok();
    failed & succeeded
}

/// Open: rejected.
#[inline]
pub(crate) fn recloser_reject(cb: &recloser::Recloser) -> bool {
    matches!(cb.call(ok_call), Err(recloser::Error::Rejected))
}

// ---------------------------------------------------------------------------------------
// breaker 2.0: a parking_lot RwLock around the state machine; `call` is async only (its
// future is polled once here, with a no-op waker).
// Same: 5 consecutive failures (the window-rate rule is disabled), one-hour open wait,
// one half-open probe.
// Differs: for a steady half-open state its success threshold is u32::MAX and its open
// wait zero.
// ---------------------------------------------------------------------------------------

fn breaker_config() -> breaker::CircuitBreakerConfigBuilder {
    breaker::CircuitBreakerConfig::builder()
        .consecutive_failures(THRESHOLD)
        .failure_rate_threshold(0.0)
        .half_open_max_calls(1)
        .success_threshold(1)
        .wait_duration(HOUR)
}

/// A closed `breaker` breaker.
pub(crate) fn breaker_closed() -> breaker::CircuitBreaker {
    breaker::CircuitBreaker::new(breaker_config().build())
}

/// An open `breaker` breaker.
pub(crate) fn breaker_open() -> breaker::CircuitBreaker {
    let cb = breaker_closed();
    for _ in 0..THRESHOLD {
        let _ = poll_now(cb.call(|| async { failing_call() }));
    }
    assert!(cb.is_open());
    cb
}

/// A `breaker` breaker that stays half-open on successes.
pub(crate) fn breaker_half_open() -> breaker::CircuitBreaker {
    let cb = breaker::CircuitBreaker::new(
        breaker_config()
            .success_threshold(u32::MAX)
            .wait_duration(Duration::ZERO)
            .build(),
    );
    for _ in 0..THRESHOLD {
        let _ = poll_now(cb.call(|| async { failing_call() }));
    }
    assert!(breaker_call_ok(&cb));
    assert!(cb.is_half_open());
    cb
}

/// Closed (or half-open), `call` with a success.
#[inline]
pub(crate) fn breaker_call_ok(cb: &breaker::CircuitBreaker) -> bool {
    poll_now(cb.call(|| async { ok_call() })).is_ok()
}

/// Closed, a failure then a success.
#[inline]
pub(crate) fn breaker_fail_then_ok(cb: &breaker::CircuitBreaker) -> bool {
    let failed = matches!(
        poll_now(cb.call(|| async { failing_call() })),
        Err(breaker::CircuitBreakerError::Failure(Fail))
    );
    let succeeded = breaker_call_ok(cb);
    failed & succeeded
}

/// Open: rejected.
#[inline]
pub(crate) fn breaker_reject(cb: &breaker::CircuitBreaker) -> bool {
    matches!(
        poll_now(cb.call(|| async { ok_call() })),
        Err(breaker::CircuitBreakerError::CircuitOpen)
    )
}

// ---------------------------------------------------------------------------------------
// Tower stacks: the bare service, tower-resilience 0.13's circuit breaker layer.
// tower-resilience: 5 consecutive failures, one-hour open wait, one half-open call.
// Differs: a tokio mutex around the circuit, a boxed future per call.
// ---------------------------------------------------------------------------------------

/// The tower-resilience stack.
pub(crate) type ResilienceStack = tower_resilience::circuitbreaker::CircuitBreaker<
    Work,
    tower_resilience::circuitbreaker::DefaultClassifier,
>;

/// A closed tower-resilience stack around [`Work`].
pub(crate) fn resilience_closed() -> ResilienceStack {
    let layer = tower_resilience::circuitbreaker::CircuitBreakerLayer::builder()
        .consecutive_failures(THRESHOLD as usize)
        .permitted_calls_in_half_open(1)
        .wait_duration_in_open(HOUR)
        .build()
        .expect("valid config");
    tower::Layer::layer(&layer, Work)
}

/// An open tower-resilience stack.
pub(crate) fn resilience_open() -> ResilienceStack {
    let mut svc = resilience_closed();
    for _ in 0..THRESHOLD {
        let _ = tower_call(&mut svc, black_box(0));
    }
    assert!(resilience_reject(&mut svc));
    svc
}

/// A request that succeeds through a stack.
#[inline]
pub(crate) fn tower_ok<S: tower::Service<u64>>(svc: &mut S) -> bool {
    tower_call(svc, black_box(1)).is_ok()
}

/// Open: rejected by tower-resilience.
#[inline]
pub(crate) fn resilience_reject(svc: &mut ResilienceStack) -> bool {
    matches!(
        tower_call(svc, black_box(1)),
        Err(tower_resilience::circuitbreaker::CircuitBreakerError::OpenCircuit)
    )
}

// ---------------------------------------------------------------------------------------
// tower-cutout: cutout's layer, defaults (fail fast, `Err` is a failure, rejections and
// inner errors as `BoxError`), on the breaker configured above.
// ---------------------------------------------------------------------------------------

/// The tower-cutout stack.
pub(crate) type CutoutStack = tower_cutout::CircuitBreaker<Work>;

/// A closed tower-cutout stack around [`Work`].
pub(crate) fn tower_cutout_closed() -> CutoutStack {
    tower::Layer::layer(
        &tower_cutout::CircuitBreakerLayer::new(cutout_closed()),
        Work,
    )
}

/// An open tower-cutout stack (default clock).
pub(crate) fn tower_cutout_open() -> CutoutStack {
    let mut svc = tower_cutout_closed();
    for _ in 0..THRESHOLD {
        let _ = tower_call(&mut svc, black_box(0));
    }
    assert_eq!(svc.breaker().state(), State::Open);
    svc
}

/// Open: rejected by tower-cutout.
#[inline]
pub(crate) fn tower_cutout_reject(svc: &mut CutoutStack) -> bool {
    matches!(tower_call(svc, black_box(1)), Err(e) if e.is::<tower_cutout::error::Rejected>())
}
