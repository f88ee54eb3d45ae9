//! Tracing events, captured by a test layer and asserted exactly: level, target, message and
//! every field, in order.
#![cfg(feature = "tracing")]

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cutout::{CircuitBreaker, ManualClock, Outcome, TracingListener};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

#[derive(Debug, Clone, PartialEq)]
struct Captured {
    level: Level,
    target: String,
    message: String,
    fields: Vec<(String, String)>,
}

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<Captured>>>);

struct Fields<'a>(&'a mut Captured);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.fields.push((field.name().into(), value.into()));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.fields.push((field.name().into(), value.to_string()));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.0.message = format!("{value:?}");
        } else {
            // Any field not recorded as a string or a number shows up marked.
            self.0
                .fields
                .push((field.name().into(), format!("debug:{value:?}")));
        }
    }
}

impl<S: Subscriber> Layer<S> for Capture {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let mut captured = Captured {
            level: *event.metadata().level(),
            target: event.metadata().target().into(),
            message: String::new(),
            fields: Vec::new(),
        };
        event.record(&mut Fields(&mut captured));
        self.0.lock().unwrap().push(captured);
    }
}

fn event(level: Level, message: &str, fields: &[(&str, &str)]) -> Captured {
    Captured {
        level,
        target: "cutout".into(),
        message: message.into(),
        fields: fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

/// Runs `f` with the capture layer as the thread's subscriber; returns what it saw.
fn capture(f: impl FnOnce()) -> Vec<Captured> {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::registry().with(capture.clone());
    tracing::subscriber::with_default(subscriber, f);
    capture.0.lock().unwrap().clone()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn transitions_rejections_and_probes_are_events_with_their_counts() {
    let clock = ManualClock::new();
    let b = CircuitBreaker::builder()
        .name("payments")
        .failure_threshold(2)
        .open_duration(ms(100))
        .tracing()
        .build_with_clock(clock.clone())
        .unwrap();
    let seen = capture(|| {
        b.try_acquire().unwrap().record(Outcome::Success); // outcomes are not logged
        b.try_acquire().unwrap().record(Outcome::Failure);
        clock.advance(ms(5));
        b.try_acquire().unwrap().record(Outcome::Failure); // trip
        assert!(b.try_acquire().is_err());
        clock.advance(ms(100));
        b.try_acquire().unwrap().record(Outcome::Failure); // probe fails: re-open
        clock.advance(ms(100));
        b.try_acquire().unwrap().record(Outcome::Success); // probe succeeds: close
        b.force_open();
        assert!(b.try_acquire().is_err());
        b.reset();
    });

    let (warn, info, debug) = (Level::WARN, Level::INFO, Level::DEBUG);
    let opened = "circuit breaker opened";
    let changed = "circuit breaker state changed";
    let b = ("breaker", "payments");
    assert_eq!(
        seen,
        [
            event(
                warn,
                opened,
                &[
                    b,
                    ("from", "closed"),
                    ("to", "open"),
                    ("cause", "consecutive_failures"),
                    ("failures", "2"),
                    ("generation", "1"),
                    ("at_ms", "5"),
                    ("open_for_ms", "100"),
                ]
            ),
            event(
                debug,
                "call rejected by circuit breaker",
                &[b, ("reason", "open"), ("retry_after_ms", "100")]
            ),
            event(
                info,
                changed,
                &[
                    b,
                    ("from", "open"),
                    ("to", "half_open"),
                    ("cause", "open_time_elapsed"),
                    ("generation", "2"),
                    ("at_ms", "105"),
                ]
            ),
            event(debug, "half-open probe admitted", &[b, ("generation", "2")]),
            event(
                warn,
                opened,
                &[
                    b,
                    ("from", "half_open"),
                    ("to", "open"),
                    ("cause", "probe_failed"),
                    ("backoff", "1"),
                    ("generation", "3"),
                    ("at_ms", "105"),
                    ("open_for_ms", "100"),
                ]
            ),
            event(
                info,
                changed,
                &[
                    b,
                    ("from", "open"),
                    ("to", "half_open"),
                    ("cause", "open_time_elapsed"),
                    ("generation", "4"),
                    ("at_ms", "205"),
                ]
            ),
            event(debug, "half-open probe admitted", &[b, ("generation", "4")]),
            event(
                info,
                changed,
                &[
                    b,
                    ("from", "half_open"),
                    ("to", "closed"),
                    ("cause", "probes_succeeded"),
                    ("successes", "1"),
                    ("generation", "5"),
                    ("at_ms", "205"),
                ]
            ),
            event(
                info,
                changed,
                &[
                    b,
                    ("from", "closed"),
                    ("to", "forced_open"),
                    ("cause", "forced_open"),
                    ("generation", "6"),
                    ("at_ms", "205"),
                ]
            ),
            event(
                debug,
                "call rejected by circuit breaker",
                &[b, ("reason", "forced_open")]
            ),
            event(
                info,
                changed,
                &[
                    b,
                    ("from", "forced_open"),
                    ("to", "closed"),
                    ("cause", "reset"),
                    ("generation", "7"),
                    ("at_ms", "205"),
                ]
            ),
        ]
    );
}

#[test]
fn a_lost_probe_lease_reports_the_probes_lost() {
    let clock = ManualClock::new();
    let b = CircuitBreaker::builder()
        .name("search")
        .failure_threshold(1)
        .half_open_max_calls(2)
        .open_duration(ms(10))
        .probe_lease(ms(256))
        .listener(TracingListener::transitions_only())
        .build_with_clock(clock.clone())
        .unwrap();
    let seen = capture(|| {
        b.try_acquire().unwrap().record(Outcome::Failure);
        clock.advance(ms(10));
        let held = [b.try_acquire().unwrap(), b.try_acquire().unwrap()];
        assert!(b.try_acquire().is_err()); // not logged: transitions only
        clock.advance(ms(512));
        b.try_acquire().unwrap().record(Outcome::Ignored); // lease expired: new period
        drop(held);
    });
    let levels_and_causes: Vec<_> = seen
        .iter()
        .map(|e| (e.level, e.fields[3].1.as_str()))
        .collect();
    assert_eq!(
        levels_and_causes,
        [
            (Level::WARN, "consecutive_failures"),
            (Level::INFO, "open_time_elapsed"),
            (Level::INFO, "probe_lease_expired"),
        ]
    );
    assert_eq!(
        seen[2],
        event(
            Level::INFO,
            "circuit breaker state changed",
            &[
                ("breaker", "search"),
                ("from", "half_open"),
                ("to", "half_open"),
                ("cause", "probe_lease_expired"),
                ("probes_lost", "2"),
                ("generation", "3"),
                ("at_ms", "522"),
            ]
        )
    );
}

#[test]
fn the_tracing_listener_never_asks_for_outcomes() {
    use cutout::Listener;
    let all = TracingListener::new();
    assert!(all.wants_call_events());
    assert!(!all.wants_recorded_events());
    let transitions = TracingListener::transitions_only();
    assert!(!transitions.wants_call_events());
    assert!(!transitions.wants_recorded_events());
}

#[test]
fn a_live_reconfiguration_is_an_info_event() {
    let clock = ManualClock::new();
    let b = CircuitBreaker::builder()
        .name("payments")
        .tracing()
        .build_with_clock(clock.clone())
        .unwrap();
    clock.advance(ms(42));
    let seen = capture(|| {
        b.reconfigure(CircuitBreaker::builder().failure_threshold(9))
            .unwrap();
        // Refused settings change nothing and say nothing.
        assert!(
            b.reconfigure(CircuitBreaker::builder().failure_threshold(0))
                .is_err()
        );
    });
    assert_eq!(
        seen,
        [event(
            Level::INFO,
            "circuit breaker reconfigured",
            &[
                ("breaker", "payments"),
                ("generation", "0"),
                ("at_ms", "42")
            ]
        )]
    );
}
