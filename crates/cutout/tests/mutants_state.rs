//! Tests written for mutants of `state.rs` that the other tests let survive (see MUTANTS.md
//! at the repository root).

use std::time::Duration;

use cutout::{CircuitBreaker, MAX_DURATION, ManualClock, Outcome, State};

#[test]
fn state_gauges_and_names() {
    let all = [
        (State::Closed, 0, "closed"),
        (State::Open, 1, "open"),
        (State::HalfOpen, 2, "half_open"),
        (State::ForcedOpen, 3, "forced_open"),
        (State::ForcedClosed, 4, "forced_closed"),
    ];
    for (state, gauge, name) in all {
        assert_eq!(state.as_gauge(), gauge);
        assert_eq!(state.as_str(), name);
        assert_eq!(state.to_string(), name);
    }
}

#[test]
fn outcome_names() {
    assert_eq!(Outcome::Success.as_str(), "success");
    assert_eq!(Outcome::Failure.as_str(), "failure");
    assert_eq!(Outcome::Ignored.as_str(), "ignored");
}

/// The open time after a trip at 1 s, with jitter 0.5 over 60 s, after `cycles` force/reset
/// cycles (each moves the generation on by two).
fn jittered_open_time(seed: u64, cycles: u32) -> Duration {
    open_time(Duration::from_secs(60), 0.5, seed, cycles)
}

/// The open time after a trip at 1 s, with `jitter` over `base`, after `cycles` force/reset
/// cycles.
fn open_time(base: Duration, jitter: f64, seed: u64, cycles: u32) -> Duration {
    let clock = ManualClock::new();
    let breaker = CircuitBreaker::builder()
        .failure_threshold(1)
        .exponential_backoff(base, 2.0, base)
        .jitter(jitter)
        .jitter_seed(seed)
        .build_with_clock(clock.clone())
        .expect("valid");
    for _ in 0..cycles {
        breaker.force_open();
        breaker.reset();
    }
    clock.advance(Duration::from_secs(1));
    breaker
        .try_acquire()
        .expect("closed")
        .record(Outcome::Failure);
    let open_for = breaker.retry_after().expect("open");
    assert!(
        base.mul_f64(1.0 - jitter) <= open_for && open_for <= base,
        "{open_for:?}"
    );
    open_for
}

/// A fixed seed gives the same open times every time; another seed, or the same seed in
/// another generation, gives others.
#[test]
fn jitter_draws_from_seed_and_generation() {
    assert_eq!(jittered_open_time(7, 0), jittered_open_time(7, 0));
    let by_seed: Vec<Duration> = (1..=8).map(|seed| jittered_open_time(seed, 0)).collect();
    assert!(by_seed.iter().any(|t| *t != by_seed[0]), "{by_seed:?}");
    let by_generation: Vec<Duration> = (0..8).map(|cycles| jittered_open_time(7, cycles)).collect();
    assert!(
        by_generation.iter().any(|t| *t != by_generation[0]),
        "{by_generation:?}"
    );
}

/// splitmix64's first output for a state, the published generator the jitter draws from.
fn splitmix64(state: u64) -> u64 {
    let mut z = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// With a fixed seed the open time is reproducible to the millisecond: the base (60 s)
/// shortened by `jitter * r`, with `r` the top 53 bits of splitmix64 of
/// `seed ^ generation << 48 ^ now` (ticks), rounded up.
#[test]
fn jitter_is_splitmix64_of_seed_generation_and_time() {
    // The published first output of splitmix64 seeded with 0.
    assert_eq!(splitmix64(0), 0xE220_A839_7B1D_CDAF);
    // 60 s with jitter 0.5, and the longest open time with full jitter: its 3.15e10
    // ticks show the draw's low bits.
    for (base, jitter) in [(Duration::from_secs(60), 0.5), (MAX_DURATION, 1.0)] {
        let base_ticks = base.as_millis() as f64;
        for seed in [0, 1, 7, 0xDEAD_BEEF, u64::MAX] {
            for cycles in 0..3 {
                // Each cycle moves the generation on by two; the trip makes one more.
                let generation = 1 + 2 * u64::from(cycles);
                let now = 1_000;
                let r = (splitmix64(seed ^ (generation << 48) ^ now) >> 11) as f64
                    / (1u64 << 53) as f64;
                let expected = (base_ticks * (1.0 - jitter * r)).ceil() as u64;
                assert_eq!(
                    open_time(base, jitter, seed, cycles),
                    Duration::from_millis(expected.max(1)),
                    "seed {seed}, generation {generation}"
                );
            }
        }
    }
}
