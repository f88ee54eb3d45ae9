//! Every invalid rate setting is a typed error from `build()`, with a readable message.

use std::time::Duration;

use cutout::window::{MAX_WINDOW_BUCKETS, MAX_WINDOW_CALLS};
use cutout::{CircuitBreaker, ConfigError, MAX_DURATION, SlidingWindow};

fn err(b: cutout::Builder) -> ConfigError {
    b.build().unwrap_err()
}

fn time(span: Duration, buckets: u32) -> SlidingWindow {
    SlidingWindow::Time { span, buckets }
}

#[test]
fn every_invalid_rate_setting_is_a_typed_error() {
    let b = CircuitBreaker::builder;
    let ms = Duration::from_millis;
    for bad in [0.0, -0.5, 1.5, f64::NAN, f64::INFINITY, 1e-9] {
        match err(b().failure_rate(bad)) {
            ConfigError::InvalidRate {
                setting: "failure rate",
                value,
            } => assert!(value == bad || (value.is_nan() && bad.is_nan())),
            other => panic!("{bad}: {other:?}"),
        }
    }
    assert_eq!(
        err(b().slow_call_rate(2.0, ms(10))),
        ConfigError::InvalidRate {
            setting: "slow-call rate",
            value: 2.0
        }
    );
    assert_eq!(
        err(b().slow_call_rate(0.5, Duration::MAX)),
        ConfigError::DurationTooLong {
            setting: "slow-call threshold",
            value: Duration::MAX,
            max: MAX_DURATION
        }
    );
    assert_eq!(
        err(b()
            .failure_rate(0.5)
            .sliding_window(SlidingWindow::Calls(0))),
        ConfigError::ZeroCount {
            setting: "window calls"
        }
    );
    assert_eq!(
        err(b()
            .failure_rate(0.5)
            .sliding_window(SlidingWindow::Calls(MAX_WINDOW_CALLS + 1))),
        ConfigError::CountTooLarge {
            setting: "window calls",
            value: MAX_WINDOW_CALLS + 1,
            max: MAX_WINDOW_CALLS
        }
    );
    assert_eq!(
        err(b().failure_rate(0.5).sliding_window(time(ms(10), 0))),
        ConfigError::ZeroCount {
            setting: "window buckets"
        }
    );
    assert_eq!(
        err(b()
            .failure_rate(0.5)
            .sliding_window(time(ms(100_000), MAX_WINDOW_BUCKETS + 1))),
        ConfigError::CountTooLarge {
            setting: "window buckets",
            value: MAX_WINDOW_BUCKETS + 1,
            max: MAX_WINDOW_BUCKETS
        }
    );
    assert_eq!(
        err(b()
            .failure_rate(0.5)
            .sliding_window(time(Duration::ZERO, 1))),
        ConfigError::ZeroDuration {
            setting: "window span"
        }
    );
    assert_eq!(
        err(b().failure_rate(0.5).sliding_window(time(Duration::MAX, 1))),
        ConfigError::DurationTooLong {
            setting: "window span",
            value: Duration::MAX,
            max: MAX_DURATION
        }
    );
    assert_eq!(
        err(b().failure_rate(0.5).sliding_window(time(ms(9), 10))),
        ConfigError::BucketsNarrowerThanTick {
            span: ms(9),
            buckets: 10
        }
    );
    assert_eq!(
        err(b().failure_rate(0.5).minimum_calls(0)),
        ConfigError::ZeroCount {
            setting: "minimum calls"
        }
    );
    assert_eq!(
        err(b()
            .failure_rate(0.5)
            .sliding_window(SlidingWindow::Calls(10))
            .minimum_calls(11)),
        ConfigError::MinimumCallsAboveWindow {
            minimum_calls: 11,
            window: 10
        }
    );
    assert_eq!(
        err(b().sliding_window(SlidingWindow::Calls(10))),
        ConfigError::WindowWithoutRate
    );
    assert_eq!(err(b().minimum_calls(5)), ConfigError::WindowWithoutRate);
    assert_eq!(
        err(b().half_open_success_rate(0.0, 10)),
        ConfigError::InvalidRate {
            setting: "half-open success rate",
            value: 0.0
        }
    );
    assert_eq!(
        err(b().half_open_success_rate(0.5, 0)),
        ConfigError::ZeroCount {
            setting: "half-open probes"
        }
    );
    // 11 of 22: 11 * 12 = 132 states do not fit the 7-bit field.
    assert_eq!(
        err(b().half_open_success_rate(0.5, 22)),
        ConfigError::HalfOpenRateDoesNotFit {
            probes: 22,
            successes: 11
        }
    );
}

#[test]
fn valid_rate_settings_build() {
    let b = CircuitBreaker::builder;
    let ms = Duration::from_millis;
    // Every probe count up to 21 fits, whatever the rate.
    for probes in 1..=21 {
        for rate in [0.01, 0.3, 0.5, 0.77, 1.0] {
            assert!(
                b().half_open_success_rate(rate, probes).build().is_ok(),
                "{rate} of {probes}"
            );
        }
    }
    // Larger counts fit with a rate near 1 (or near 0).
    assert!(b().half_open_success_rate(1.0, 127).build().is_ok());
    assert!(b().half_open_success_rate(0.98, 50).build().is_ok()); // 49 of 50: 49 * 2
    assert!(b().half_open_success_rate(0.01, 100).build().is_ok()); // 1 of 100: 1 * 100
    assert_eq!(
        err(b().half_open_success_rate(0.99, 100)), // 99 * 2
        ConfigError::HalfOpenRateDoesNotFit {
            probes: 100,
            successes: 99
        }
    );
    // The success threshold's bound by half-open max calls does not apply to a rate.
    assert!(
        b().half_open_max_calls(1)
            .half_open_success_rate(0.9, 10)
            .build()
            .is_ok()
    );
    // A count window smaller than the default minimum volume uses the whole window.
    let small = b()
        .failure_rate(1.0)
        .sliding_window(SlidingWindow::Calls(3))
        .build()
        .unwrap();
    assert!(small.window_stats().is_some());
    assert!(
        b().failure_rate(1.0)
            .sliding_window(SlidingWindow::Calls(MAX_WINDOW_CALLS))
            .minimum_calls(MAX_WINDOW_CALLS)
            .build()
            .is_ok()
    );
    assert!(
        b().slow_call_rate(1.0, Duration::ZERO)
            .sliding_window(time(ms(10), 10))
            .build()
            .is_ok()
    );
    assert!(
        b().failure_rate(0.5)
            .sliding_window(time(MAX_DURATION, MAX_WINDOW_BUCKETS))
            .build()
            .is_ok()
    );
    // No rate: no window.
    assert_eq!(b().build().unwrap().window_stats(), None);
}

#[test]
fn messages_name_the_setting() {
    let b = CircuitBreaker::builder;
    let cases = [
        (
            err(b().failure_rate(1.5)),
            "failure rate 1.5 must be above 0 (at least one millionth) and at most 1",
        ),
        (
            err(b().failure_rate(0.5).minimum_calls(0)),
            "minimum calls must be at least 1",
        ),
        (
            err(b()
                .failure_rate(0.5)
                .sliding_window(SlidingWindow::Calls(20_000))),
            "window calls is 20000, at most 16384 are supported",
        ),
        (
            err(b()
                .failure_rate(0.5)
                .sliding_window(time(Duration::from_millis(2), 3))),
            "a window of 2ms cannot hold 3 buckets of at least 1ms",
        ),
        (
            err(b()
                .failure_rate(0.5)
                .sliding_window(SlidingWindow::Calls(4))
                .minimum_calls(5)),
            "minimum calls 5 is above the window of 4 calls",
        ),
        (
            err(b().minimum_calls(3)),
            "a sliding window or minimum calls was set without a failure or slow-call rate",
        ),
        (
            err(b().half_open_success_rate(0.5, 40)),
            "a half-open success rate of 20 in 40 probes does not fit; successes * (failures \
             tolerated + 1) must be at most 128",
        ),
    ];
    for (e, message) in cases {
        assert_eq!(e.to_string(), message);
        let _: &dyn std::error::Error = &e;
    }
}
