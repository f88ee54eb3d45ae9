//! The health report, as JSON, exactly, in every state.
#![cfg(feature = "serde")]

use std::time::Duration;

use cutout::{CircuitBreaker, HealthStatus, ManualClock, Outcome, State};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn json(b: &CircuitBreaker) -> String {
    serde_json::to_string(&b.health()).unwrap()
}

#[test]
fn health_json_in_every_state() {
    let clock = ManualClock::new();
    let b = CircuitBreaker::builder()
        .name("payments")
        .failure_threshold(2)
        .open_duration(ms(5_000))
        .build_with_clock(clock.clone())
        .unwrap();
    assert_eq!(
        json(&b),
        r#"{"name":"payments","state":"closed","status":"ok","retry_after_ms":null,"counts":{"consecutive_failures":0,"admitted":0,"successes":0,"failures":0,"ignored":0,"rejected":0,"trips":0,"probes":0,"stale":0}}"#
    );

    b.try_acquire().unwrap().record(Outcome::Success);
    drop(b.try_acquire().unwrap());
    b.try_acquire().unwrap().record(Outcome::Failure);
    assert_eq!(
        json(&b),
        r#"{"name":"payments","state":"closed","status":"ok","retry_after_ms":null,"counts":{"consecutive_failures":1,"admitted":3,"successes":1,"failures":1,"ignored":1,"rejected":0,"trips":0,"probes":0,"stale":0}}"#
    );

    b.try_acquire().unwrap().record(Outcome::Failure);
    assert!(b.try_acquire().is_err());
    clock.advance(ms(1_500));
    assert_eq!(
        json(&b),
        r#"{"name":"payments","state":"open","status":"degraded","retry_after_ms":3500,"counts":{"consecutive_failures":0,"admitted":4,"successes":1,"failures":2,"ignored":1,"rejected":1,"trips":1,"probes":0,"stale":0}}"#
    );

    clock.advance(ms(3_500));
    let probe = b.try_acquire().unwrap();
    // One probe slot, taken: the retry time is the end of the probe lease (30 s, in 256 ms
    // units: 5_000 + 30_000 rounds up to 35_072).
    assert_eq!(
        json(&b),
        r#"{"name":"payments","state":"half_open","status":"degraded","retry_after_ms":30072,"counts":{"consecutive_failures":0,"admitted":5,"successes":1,"failures":2,"ignored":1,"rejected":1,"trips":1,"probes":1,"stale":0}}"#
    );

    b.force_open();
    probe.record(Outcome::Success); // stale: the breaker moved on
    assert_eq!(
        json(&b),
        r#"{"name":"payments","state":"forced_open","status":"degraded","retry_after_ms":null,"counts":{"consecutive_failures":0,"admitted":5,"successes":2,"failures":2,"ignored":1,"rejected":1,"trips":1,"probes":1,"stale":1}}"#
    );

    b.force_closed();
    assert_eq!(
        json(&b),
        r#"{"name":"payments","state":"forced_closed","status":"ok","retry_after_ms":null,"counts":{"consecutive_failures":0,"admitted":5,"successes":2,"failures":2,"ignored":1,"rejected":1,"trips":1,"probes":1,"stale":1}}"#
    );
}

#[test]
fn status_follows_state() {
    let cases = [
        (State::Closed, HealthStatus::Ok, "ok"),
        (State::ForcedClosed, HealthStatus::Ok, "ok"),
        (State::Open, HealthStatus::Degraded, "degraded"),
        (State::HalfOpen, HealthStatus::Degraded, "degraded"),
        (State::ForcedOpen, HealthStatus::Degraded, "degraded"),
    ];
    for (state, status, text) in cases {
        assert_eq!(HealthStatus::of(state), status, "{state}");
        assert_eq!(status.to_string(), text);
        assert_eq!(
            serde_json::to_string(&status).unwrap(),
            format!("\"{text}\"")
        );
    }
}

#[test]
fn health_is_ok_only_when_calls_pass() {
    let b = CircuitBreaker::builder()
        .name("inventory")
        .build_with_clock(ManualClock::new())
        .unwrap();
    assert!(b.health().is_ok());
    b.force_open();
    let h = b.health();
    assert!(!h.is_ok());
    assert_eq!((h.name.as_str(), h.state), ("inventory", State::ForcedOpen));
}
