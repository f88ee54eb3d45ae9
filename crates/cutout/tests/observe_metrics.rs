//! Metrics through a real Prometheus exporter, scraped over HTTP on 127.0.0.1: the exact
//! series and values after a trip and after a recovery, on a manual clock.
#![cfg(feature = "metrics")]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use cutout::observe::CallCounts;
use cutout::{CircuitBreaker, Listener, ManualClock, Outcome, State, Transition};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

/// Serves `GET /metrics` (the handle's render) on an ephemeral port of 127.0.0.1.
async fn serve(handle: PrometheusHandle) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let handle = handle.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let handle = handle.clone();
                    async move {
                        let response = if req.uri().path() == "/metrics" {
                            Response::builder()
                                .header("content-type", "text/plain; version=0.0.4")
                                .body(Full::new(Bytes::from(handle.render())))
                        } else {
                            Response::builder()
                                .status(StatusCode::NOT_FOUND)
                                .body(Full::new(Bytes::new()))
                        };
                        Ok::<_, Infallible>(response.unwrap())
                    }
                });
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await
            });
        }
    });
    addr
}

/// Scrapes `http://addr/metrics` with a hyper client; returns the body.
async fn scrape(addr: SocketAddr) -> String {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let request = Request::get("/metrics")
        .header("host", addr.to_string())
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; version=0.0.4"
    );
    let body = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(body.to_vec()).unwrap()
}

/// The non-empty lines, sorted: the exporter orders series by hash, not by name.
fn lines(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    lines.sort();
    lines
}

fn recorder() -> (PrometheusRecorder, PrometheusHandle) {
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    (recorder, handle)
}

/// The value of the one sample line that starts with `series`.
fn sample(handle: &PrometheusHandle, series: &str) -> f64 {
    let text = handle.render();
    let values: Vec<f64> = text
        .lines()
        .filter_map(|l| l.strip_prefix(series))
        .map(|v| v.trim().parse().unwrap())
        .collect();
    assert_eq!(values.len(), 1, "one {series} in\n{text}");
    values[0]
}

const HELP: &str = r#"
# HELP cutout_calls_total Calls through a circuit breaker, by outcome (success, failure, ignored, rejected).
# TYPE cutout_calls_total counter
# HELP cutout_transitions_total Circuit breaker state transitions, by from and to state.
# TYPE cutout_transitions_total counter
# HELP cutout_trips_total Circuit breaker transitions into open (trips and re-opens).
# TYPE cutout_trips_total counter
# HELP cutout_probes_total Half-open probe calls admitted.
# TYPE cutout_probes_total counter
# HELP cutout_state Circuit breaker state: 0 closed, 1 open, 2 half-open, 3 forced open, 4 forced closed.
# TYPE cutout_state gauge
"#;

const AFTER_TRIP: &str = r#"
cutout_state{breaker="payments"} 1
cutout_trips_total{breaker="payments"} 1
cutout_probes_total{breaker="payments"} 0
cutout_calls_total{breaker="payments",outcome="success"} 1
cutout_calls_total{breaker="payments",outcome="failure"} 2
cutout_calls_total{breaker="payments",outcome="ignored"} 1
cutout_calls_total{breaker="payments",outcome="rejected"} 1
cutout_transitions_total{breaker="payments",from="closed",to="open"} 1
cutout_transitions_total{breaker="payments",from="open",to="half_open"} 0
cutout_transitions_total{breaker="payments",from="half_open",to="closed"} 0
cutout_transitions_total{breaker="payments",from="half_open",to="open"} 0
cutout_transitions_total{breaker="payments",from="half_open",to="half_open"} 0
cutout_transitions_total{breaker="payments",from="closed",to="forced_open"} 0
cutout_transitions_total{breaker="payments",from="open",to="forced_open"} 0
cutout_transitions_total{breaker="payments",from="half_open",to="forced_open"} 0
cutout_transitions_total{breaker="payments",from="forced_closed",to="forced_open"} 0
cutout_transitions_total{breaker="payments",from="closed",to="forced_closed"} 0
cutout_transitions_total{breaker="payments",from="open",to="forced_closed"} 0
cutout_transitions_total{breaker="payments",from="half_open",to="forced_closed"} 0
cutout_transitions_total{breaker="payments",from="forced_open",to="forced_closed"} 0
cutout_transitions_total{breaker="payments",from="open",to="closed"} 0
cutout_transitions_total{breaker="payments",from="forced_open",to="closed"} 0
cutout_transitions_total{breaker="payments",from="forced_closed",to="closed"} 0
"#;

const AFTER_RECOVERY: &str = r#"
cutout_state{breaker="payments"} 0
cutout_trips_total{breaker="payments"} 1
cutout_probes_total{breaker="payments"} 1
cutout_calls_total{breaker="payments",outcome="success"} 2
cutout_calls_total{breaker="payments",outcome="failure"} 2
cutout_calls_total{breaker="payments",outcome="ignored"} 1
cutout_calls_total{breaker="payments",outcome="rejected"} 1
cutout_transitions_total{breaker="payments",from="closed",to="open"} 1
cutout_transitions_total{breaker="payments",from="open",to="half_open"} 1
cutout_transitions_total{breaker="payments",from="half_open",to="closed"} 1
cutout_transitions_total{breaker="payments",from="half_open",to="open"} 0
cutout_transitions_total{breaker="payments",from="half_open",to="half_open"} 0
cutout_transitions_total{breaker="payments",from="closed",to="forced_open"} 0
cutout_transitions_total{breaker="payments",from="open",to="forced_open"} 0
cutout_transitions_total{breaker="payments",from="half_open",to="forced_open"} 0
cutout_transitions_total{breaker="payments",from="forced_closed",to="forced_open"} 0
cutout_transitions_total{breaker="payments",from="closed",to="forced_closed"} 0
cutout_transitions_total{breaker="payments",from="open",to="forced_closed"} 0
cutout_transitions_total{breaker="payments",from="half_open",to="forced_closed"} 0
cutout_transitions_total{breaker="payments",from="forced_open",to="forced_closed"} 0
cutout_transitions_total{breaker="payments",from="open",to="closed"} 0
cutout_transitions_total{breaker="payments",from="forced_open",to="closed"} 0
cutout_transitions_total{breaker="payments",from="forced_closed",to="closed"} 0
"#;

fn expected(samples: &str) -> Vec<String> {
    lines(&format!("{HELP}{samples}"))
}

#[tokio::test]
async fn a_trip_and_a_recovery_scraped_over_http() {
    let (recorder, handle) = recorder();
    let clock = ManualClock::new();
    let breaker = metrics::with_local_recorder(&recorder, || {
        CircuitBreaker::builder()
            .metrics() // before `name`: registered under the final name anyway
            .name("payments")
            .failure_threshold(2)
            .open_duration(Duration::from_millis(100))
            .build_with_clock(clock.clone())
            .unwrap()
    });
    let addr = serve(handle.clone()).await;
    let state = r#"cutout_state{breaker="payments"}"#;
    assert_eq!(sample(&handle, state), 0.0, "closed from the start");

    breaker.try_acquire().unwrap().record(Outcome::Success);
    drop(breaker.try_acquire().unwrap());
    breaker.try_acquire().unwrap().record(Outcome::Failure);
    assert_eq!(sample(&handle, state), 0.0);
    breaker.try_acquire().unwrap().record(Outcome::Failure);
    assert_eq!(sample(&handle, state), 1.0, "open after the trip");
    assert!(breaker.try_acquire().is_err());
    assert_eq!(lines(&scrape(addr).await), expected(AFTER_TRIP));

    clock.advance(Duration::from_millis(100));
    let probe = breaker.try_acquire().unwrap();
    assert_eq!(
        sample(&handle, state),
        2.0,
        "half-open while the probe runs"
    );
    probe.record(Outcome::Success);
    assert_eq!(sample(&handle, state), 0.0, "closed after the probe");
    assert_eq!(lines(&scrape(addr).await), expected(AFTER_RECOVERY));
}

#[test]
fn the_gauge_follows_every_state() {
    let (recorder, handle) = recorder();
    let clock = ManualClock::new();
    let b = metrics::with_local_recorder(&recorder, || {
        CircuitBreaker::builder()
            .name("gauge")
            .failure_threshold(1)
            .open_duration(Duration::from_millis(10))
            .metrics()
            .build_with_clock(clock.clone())
            .unwrap()
    });
    let state = || sample(&handle, r#"cutout_state{breaker="gauge"}"#);
    let mut seen = vec![state()];
    b.try_acquire().unwrap().record(Outcome::Failure);
    seen.push(state());
    clock.advance(Duration::from_millis(10));
    let probe = b.try_acquire().unwrap();
    seen.push(state());
    probe.record(Outcome::Failure); // re-open
    seen.push(state());
    b.force_open();
    seen.push(state());
    b.force_closed();
    seen.push(state());
    b.reset();
    seen.push(state());
    assert_eq!(seen, [0.0, 1.0, 2.0, 1.0, 3.0, 4.0, 0.0]);
    assert_eq!(
        sample(&handle, r#"cutout_trips_total{breaker="gauge"}"#),
        2.0
    );
    assert_eq!(
        sample(
            &handle,
            r#"cutout_transitions_total{breaker="gauge",from="half_open",to="open"}"#
        ),
        1.0
    );
    assert_eq!(
        sample(
            &handle,
            r#"cutout_transitions_total{breaker="gauge",from="forced_closed",to="closed"}"#
        ),
        1.0
    );
}

/// Counts transitions, to check the metrics against.
#[derive(Default)]
struct Transitions(AtomicU64);

impl Listener for Transitions {
    fn on_transition(&self, _: &str, _: &Transition) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    fn wants_call_events(&self) -> bool {
        false
    }
}

#[test]
fn the_gauge_ends_at_the_state_when_threads_race_transitions() {
    let (recorder, handle) = recorder();
    let count = Arc::new(Transitions::default());
    let b = metrics::with_local_recorder(&recorder, || {
        CircuitBreaker::builder()
            .name("race")
            .listener(count.clone())
            .metrics()
            .build()
            .unwrap()
    });
    std::thread::scope(|s| {
        for t in 0..3 {
            let b = &b;
            s.spawn(move || {
                // 480 commands in all: fewer generations than half the wrap (512), so a
                // listener preempted between its transition and its event can never look
                // newer than the last one (the wrap has its own test below).
                for i in 0..160 {
                    match (t + i) % 3 {
                        0 => b.force_open(),
                        1 => b.force_closed(),
                        _ => b.reset(),
                    }
                }
            });
        }
    });
    let gauge = sample(&handle, r#"cutout_state{breaker="race"}"#);
    assert_eq!(gauge, f64::from(b.state().as_gauge()));
    let text = handle.render();
    let transitions: f64 = text
        .lines()
        .filter(|l| l.starts_with(r#"cutout_transitions_total{breaker="race""#))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum();
    assert_eq!(transitions, count.0.load(Ordering::Relaxed) as f64);
}

#[test]
fn on_publish_counts_cost_nothing_per_call_and_are_exact_when_published() {
    let (recorder, handle) = recorder();
    let clock = ManualClock::new();
    let b = metrics::with_local_recorder(&recorder, || {
        CircuitBreaker::builder()
            .name("search")
            .failure_threshold(1)
            .open_duration(Duration::from_millis(10))
            .metrics_with(CallCounts::OnPublish)
            .build_with_clock(clock.clone())
            .unwrap()
    });
    for _ in 0..5 {
        b.try_acquire().unwrap().record(Outcome::Success);
    }
    drop(b.try_acquire().unwrap());
    b.try_acquire().unwrap().record(Outcome::Failure); // trips: live
    assert!(b.try_acquire().is_err());
    clock.advance(Duration::from_millis(10));
    b.try_acquire().unwrap().record(Outcome::Success); // probe, closes

    let calls = |outcome: &str| {
        sample(
            &handle,
            &format!(r#"cutout_calls_total{{breaker="search",outcome="{outcome}"}}"#),
        )
    };
    let probes = || sample(&handle, r#"cutout_probes_total{breaker="search"}"#);
    let all = || {
        (
            calls("success"),
            calls("failure"),
            calls("ignored"),
            calls("rejected"),
            probes(),
        )
    };
    assert_eq!(all(), (0.0, 0.0, 0.0, 0.0, 0.0), "nothing counted per call");
    assert_eq!(
        sample(&handle, r#"cutout_trips_total{breaker="search"}"#),
        1.0,
        "transitions are live"
    );
    assert_eq!(sample(&handle, r#"cutout_state{breaker="search"}"#), 0.0);

    b.publish_stats();
    assert_eq!(all(), (6.0, 1.0, 1.0, 1.0, 1.0));
    b.try_acquire().unwrap().record(Outcome::Success);
    b.publish_stats();
    assert_eq!(all(), (7.0, 1.0, 1.0, 1.0, 1.0));
}

#[test]
fn the_listener_reports_its_name_and_mode() {
    let listener = cutout::MetricsListener::new("inventory");
    assert_eq!(listener.breaker(), "inventory");
    assert_eq!(listener.call_counts(), CallCounts::PerCall);
    assert!(listener.wants_call_events());
    let sampled = cutout::MetricsListener::with_call_counts("inventory", CallCounts::OnPublish);
    assert!(!sampled.wants_call_events());
    assert!(!sampled.wants_recorded_events());
    assert_eq!(State::ForcedClosed.as_gauge(), 4);
}

/// Real transitions of a breaker whose generations wrap: 1100 commands, 1100 transitions.
fn wrapping_transitions() -> Vec<Transition> {
    let log = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = log.clone();
    let b = CircuitBreaker::builder()
        .on_transition(move |t| sink.lock().unwrap().push(*t))
        .build()
        .unwrap();
    for _ in 0..550 {
        b.force_open();
        b.reset();
    }
    log.lock().unwrap().clone()
}

#[test]
fn a_late_transition_event_never_overwrites_a_newer_state() {
    let transitions = wrapping_transitions();
    let (recorder, handle) = recorder();
    let listener = metrics::with_local_recorder(&recorder, || cutout::MetricsListener::new("late"));
    let gauge = || sample(&handle, r#"cutout_state{breaker="late"}"#);
    let (opened, closed) = (&transitions[0], &transitions[1]);
    assert_eq!((opened.generation, opened.to), (1, State::ForcedOpen));
    assert_eq!((closed.generation, closed.to), (2, State::Closed));

    // The two events reach the listener in the wrong order, as racing threads may deliver them.
    listener.on_transition("late", closed);
    listener.on_transition("late", opened);
    assert_eq!(gauge(), 0.0, "the older forced-open event is ignored");

    // Across the wrap of generations (1023 -> 0), newer still wins.
    let before_wrap = transitions.iter().find(|t| t.generation == 1023).unwrap();
    let after_wrap = transitions.iter().find(|t| t.generation == 0).unwrap();
    assert_eq!(
        (before_wrap.to, after_wrap.to),
        (State::ForcedOpen, State::Closed)
    );
    for t in transitions.iter().take_while(|t| t.generation != 1023) {
        listener.on_transition("late", t);
    }
    assert_eq!(gauge(), 0.0, "generation 1022 closed");
    listener.on_transition("late", before_wrap);
    assert_eq!(gauge(), 3.0);
    listener.on_transition("late", after_wrap);
    assert_eq!(gauge(), 0.0);
    listener.on_transition("late", before_wrap);
    assert_eq!(gauge(), 0.0, "1023 is older than 0 after the wrap");
}
