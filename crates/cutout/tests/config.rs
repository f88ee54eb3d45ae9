//! Every invalid setting is a typed error from `build()`.

use std::time::Duration;

use cutout::{CircuitBreaker, ConfigError, MAX_DURATION};

fn err(b: cutout::Builder) -> ConfigError {
    b.build().unwrap_err()
}

#[test]
fn every_invalid_setting_is_a_typed_error() {
    let b = CircuitBreaker::builder;
    let s = Duration::from_secs;
    assert_eq!(
        err(b().failure_threshold(0)),
        ConfigError::ZeroFailureThreshold
    );
    assert_eq!(
        err(b().success_threshold(0)),
        ConfigError::ZeroSuccessThreshold
    );
    assert_eq!(
        err(b().half_open_max_calls(0)),
        ConfigError::ZeroHalfOpenMaxCalls
    );
    assert_eq!(
        err(b().half_open_max_calls(128)),
        ConfigError::TooManyHalfOpenCalls {
            requested: 128,
            max: 127
        }
    );
    assert_eq!(
        err(b().half_open_max_calls(2).success_threshold(3)),
        ConfigError::SuccessThresholdAboveHalfOpenMaxCalls {
            success_threshold: 3,
            half_open_max_calls: 2
        }
    );
    assert_eq!(
        err(b().open_duration(Duration::ZERO)),
        ConfigError::ZeroDuration {
            setting: "open duration"
        }
    );
    assert_eq!(
        err(b().probe_lease(Duration::ZERO)),
        ConfigError::ZeroDuration {
            setting: "probe lease"
        }
    );
    assert_eq!(
        err(b().open_duration(Duration::MAX)),
        ConfigError::DurationTooLong {
            setting: "open duration",
            value: Duration::MAX,
            max: MAX_DURATION
        }
    );
    assert_eq!(
        err(b().exponential_backoff(s(1), 2.0, MAX_DURATION + Duration::from_nanos(1))),
        ConfigError::DurationTooLong {
            setting: "open duration cap",
            value: MAX_DURATION + Duration::from_nanos(1),
            max: MAX_DURATION
        }
    );
    assert_eq!(
        err(b().exponential_backoff(s(10), 2.0, s(5))),
        ConfigError::CapBelowBase {
            base: s(10),
            cap: s(5)
        }
    );
    assert_eq!(
        err(b().exponential_backoff(s(1), 0.5, s(5))),
        ConfigError::InvalidMultiplier(0.5)
    );
    assert_eq!(
        err(b().exponential_backoff(s(1), f64::INFINITY, s(5))),
        ConfigError::InvalidMultiplier(f64::INFINITY)
    );
    assert!(matches!(
        err(b().exponential_backoff(s(1), f64::NAN, s(5))),
        ConfigError::InvalidMultiplier(m) if m.is_nan()
    ));
    assert_eq!(err(b().jitter(1.5)), ConfigError::InvalidJitter(1.5));
    assert_eq!(err(b().jitter(-0.1)), ConfigError::InvalidJitter(-0.1));
    assert!(matches!(err(b().jitter(f64::NAN)), ConfigError::InvalidJitter(j) if j.is_nan()));
}

#[test]
fn errors_read_well_and_are_std_errors() {
    let e: Box<dyn std::error::Error> = Box::new(ConfigError::CapBelowBase {
        base: Duration::from_secs(10),
        cap: Duration::from_secs(5),
    });
    assert_eq!(e.to_string(), "open duration cap 5s is below its base 10s");
    assert_eq!(
        ConfigError::SuccessThresholdAboveHalfOpenMaxCalls {
            success_threshold: 3,
            half_open_max_calls: 2
        }
        .to_string(),
        "success threshold 3 is above half-open max calls 2"
    );
}

#[test]
fn the_edges_that_are_valid_build() {
    let b = CircuitBreaker::builder;
    assert!(b().failure_threshold(u32::MAX).build().is_ok());
    assert!(
        b().half_open_max_calls(127)
            .success_threshold(127)
            .build()
            .is_ok()
    );
    assert!(
        b().open_duration(MAX_DURATION)
            .probe_lease(MAX_DURATION)
            .build()
            .is_ok()
    );
    assert!(b().open_duration(Duration::from_nanos(1)).build().is_ok());
    assert!(
        b().exponential_backoff(Duration::from_millis(1), 1e300, MAX_DURATION)
            .jitter(1.0)
            .build()
            .is_ok()
    );
}

#[test]
fn defaults_are_the_documented_ones() {
    let b = CircuitBreaker::builder().jitter_seed(1).build().unwrap();
    assert_eq!(b.name(), "default");
    let debug = format!("{b:?}");
    for part in [
        "failure_threshold: 5",
        "success_threshold: 1",
        "half_open_max_calls: 1",
        "probe_lease_ticks: 30000",
        "base_ticks: 5000",
        "multiplier: 2.0",
        "cap_ticks: 60000",
        "jitter: 0.5",
    ] {
        assert!(debug.contains(part), "{part} missing from {debug}");
    }
}
