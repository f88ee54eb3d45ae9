//! Tests written for mutants of `config.rs` that the other tests let survive (see
//! MUTANTS.md at the repository root): every limit is checked on both sides of its edge.

use std::time::Duration;

use cutout::window::{MAX_WINDOW_BUCKETS, MAX_WINDOW_CALLS};
use cutout::{Builder, CircuitBreaker, ConfigError, MAX_DURATION, ManualClock, SlidingWindow};

fn build(b: Builder) -> Result<(), ConfigError> {
    b.build_with_clock(ManualClock::new()).map(drop)
}

fn rate() -> Builder {
    CircuitBreaker::builder().failure_rate(0.5)
}

#[test]
fn max_duration_is_365_days() {
    assert_eq!(MAX_DURATION, Duration::from_secs(31_536_000));
}

/// `successes * (probes - successes + 1)` may be 128, not more.
#[test]
fn half_open_rate_fits_up_to_its_edge() {
    let b = CircuitBreaker::builder;
    // 64 of 65 probes: 64 * 2 = 128.
    assert_eq!(build(b().half_open_success_rate(64.0 / 65.0, 65)), Ok(()));
    // 43 of 45 probes: 43 * 3 = 129.
    assert_eq!(
        build(b().half_open_success_rate(0.9555, 45)),
        Err(ConfigError::HalfOpenRateDoesNotFit {
            probes: 45,
            successes: 43
        })
    );
    // Every probe must succeed: 128 * 1.
    assert_eq!(build(b().half_open_success_rate(1.0, 128)), Ok(()));
    assert_eq!(
        build(b().half_open_success_rate(1.0, 129)),
        Err(ConfigError::HalfOpenRateDoesNotFit {
            probes: 129,
            successes: 129
        })
    );
}

#[test]
fn slow_call_threshold_up_to_max_duration() {
    assert_eq!(build(rate().slow_call_rate(0.5, MAX_DURATION)), Ok(()));
    let over = MAX_DURATION + Duration::from_nanos(1);
    assert_eq!(
        build(rate().slow_call_rate(0.5, over)),
        Err(ConfigError::DurationTooLong {
            setting: "slow-call threshold",
            value: over,
            max: MAX_DURATION
        })
    );
}

#[test]
fn a_window_or_a_minimum_alone_needs_a_rate() {
    let b = CircuitBreaker::builder;
    assert_eq!(
        build(b().sliding_window(SlidingWindow::Calls(10))),
        Err(ConfigError::WindowWithoutRate)
    );
    assert_eq!(
        build(b().minimum_calls(10)),
        Err(ConfigError::WindowWithoutRate)
    );
    assert_eq!(
        build(b().slow_call_rate(0.5, Duration::from_secs(1))),
        Ok(())
    );
}

#[test]
fn count_window_up_to_its_largest() {
    assert_eq!(
        build(rate().sliding_window(SlidingWindow::Calls(MAX_WINDOW_CALLS))),
        Ok(())
    );
    assert_eq!(
        build(rate().sliding_window(SlidingWindow::Calls(MAX_WINDOW_CALLS + 1))),
        Err(ConfigError::CountTooLarge {
            setting: "window calls",
            value: MAX_WINDOW_CALLS + 1,
            max: MAX_WINDOW_CALLS
        })
    );
}

#[test]
fn time_window_up_to_its_most_buckets() {
    let span = Duration::from_secs(3_600);
    assert_eq!(
        build(rate().sliding_window(SlidingWindow::Time {
            span,
            buckets: MAX_WINDOW_BUCKETS
        })),
        Ok(())
    );
    assert_eq!(
        build(rate().sliding_window(SlidingWindow::Time {
            span,
            buckets: MAX_WINDOW_BUCKETS + 1
        })),
        Err(ConfigError::CountTooLarge {
            setting: "window buckets",
            value: MAX_WINDOW_BUCKETS + 1,
            max: MAX_WINDOW_BUCKETS
        })
    );
}

/// Buckets may be one millisecond wide, not less.
#[test]
fn time_window_buckets_of_one_tick() {
    assert_eq!(
        build(rate().sliding_window(SlidingWindow::Time {
            span: Duration::from_millis(10),
            buckets: 10
        })),
        Ok(())
    );
    let span = Duration::from_millis(9);
    assert_eq!(
        build(rate().sliding_window(SlidingWindow::Time { span, buckets: 10 })),
        Err(ConfigError::BucketsNarrowerThanTick { span, buckets: 10 })
    );
}
