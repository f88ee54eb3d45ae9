//! Allocations per rejection through tower, in every mode, counted by a counting global
//! allocator (`stats_alloc`), exactly. One test, no harness, so nothing else allocates
//! while it counts.
//!
//! The error modes allocate nothing (a zero-sized boxed error). A response mode allocates
//! what the `http::Response` it answers with needs and nothing more: its floor, measured
//! here by building the same response by hand (the header map's index and entries on the
//! first insert; the extensions' map and the boxed `cutout::Rejected` in it).

use std::sync::Arc;
use std::time::Duration;

use cutout::{ManualClock, Outcome};
use cutout_keyed::{KeyedBreakers, KeyedRejected};
use http::header::{CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderName, HeaderValue, Response, StatusCode};
use tower::Layer;
use tower_cutout::CircuitBreakerLayer;
use tower_cutout::error::Rejected;
use tower_cutout::grpc::{GrpcClassifier, UnavailableError, UnavailableResponse};
use tower_cutout::http::{HttpClassifier, ServiceUnavailable};
use tower_cutout::keyed::KeyedCircuitBreakerLayer;
use tower_cutout::keyed::error::NoBreaker;
use tower_cutout::reject::RejectWithCallError;

#[path = "support/counting.rs"]
mod counting;

use counting::{CALLS, bare, bare_http, per_call, send};

/// A breaker on `clock` that opens for `open` on one failure.
fn breaker(clock: &ManualClock, open: Duration) -> cutout::CircuitBreaker {
    cutout::CircuitBreaker::builder()
        .failure_threshold(1)
        .open_duration(open)
        .build_with_clock(clock.clone())
        .unwrap()
}

/// The breakers a mode is measured on: open for `open` (its rejections carry
/// `retry_after`, constant on the stopped clock), and forced open (none).
fn open_and_forced(clock: &ManualClock, open: Duration) -> [cutout::CircuitBreaker; 2] {
    let tripped = breaker(clock, open);
    tripped.try_acquire().unwrap().record(Outcome::Failure);
    let forced = breaker(clock, open);
    forced.force_open();
    [tripped, forced]
}

/// The floor of a response mode: a `Response` with `headers` (static values) and a
/// `cutout::Rejected` in its extensions, built by hand.
fn floor(headers: &[(HeaderName, &'static str)]) -> usize {
    per_call(|| {
        let mut response = Response::new(());
        *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        for (name, value) in headers {
            response
                .headers_mut()
                .insert(name.clone(), HeaderValue::from_static(value));
        }
        response
            .extensions_mut()
            .insert(cutout::Rejected::ForcedOpen);
        std::hint::black_box(response).status() == StatusCode::SERVICE_UNAVAILABLE
    })
}

struct Row {
    mode: &'static str,
    allocations: usize,
    floor: usize,
}

fn main() {
    let clock = ManualClock::new();
    let mut rows = Vec::new();
    let mut row = |mode, allocations, floor| {
        assert_eq!(allocations, floor, "{mode}: allocations per rejection");
        rows.push(Row {
            mode,
            allocations,
            floor,
        });
    };

    let [open, forced] = open_and_forced(&clock, Duration::from_secs(5));
    let retry_after = Some(Duration::from_secs(5));

    // The default mode: a zero-sized boxed `Rejected`, read back through the box.
    for (breaker, expected, mode) in [
        (&open, retry_after, "boxed error (default), open"),
        (&forced, None, "boxed error (default), forced open"),
    ] {
        let mut svc = CircuitBreakerLayer::new(breaker.clone()).layer(bare());
        let n = per_call(|| {
            send(&mut svc, 1).is_err_and(|e| {
                e.downcast_ref::<Rejected>()
                    .is_some_and(|r| r.reason().is_some() && r.retry_after() == expected)
            })
        });
        row(mode, n, 0);
    }

    let mut svc = CircuitBreakerLayer::new(open.clone())
        .reject_with(RejectWithCallError)
        .layer(bare());
    let n = per_call(|| {
        matches!(
            send(&mut svc, 1),
            Err(cutout::CallError::Rejected(cutout::Rejected::Open { .. }))
        )
    });
    row("typed error (RejectWithCallError), open", n, 0);

    let mut svc = CircuitBreakerLayer::new(open.clone())
        .reject_with(UnavailableError)
        .layer(bare());
    let n = per_call(|| {
        send(&mut svc, 1).is_err_and(|e| {
            e.downcast_ref::<Rejected>()
                .is_some_and(|r| r.retry_after() == retry_after)
                && std::error::Error::source(e.as_ref()).is_some_and(|s| s.is::<tonic::Status>())
        })
    });
    row("gRPC error (UnavailableError), open", n, 0);

    // 503: the floor is a response with one header (`Retry-After`) or none, and the
    // rejection in its extensions.
    let one_header = floor(&[(RETRY_AFTER, "5")]);
    let no_header = floor(&[]);
    for (breaker, floor, header, mode) in [
        (
            &open,
            one_header,
            Some("5"),
            "503 (ServiceUnavailable), open",
        ),
        (
            &forced,
            no_header,
            None,
            "503 (ServiceUnavailable), forced open",
        ),
    ] {
        let mut svc = CircuitBreakerLayer::new(breaker.clone())
            .classify(HttpClassifier::new())
            .reject_with(ServiceUnavailable)
            .layer(bare_http());
        let n = per_call(|| {
            send(&mut svc, 1).is_ok_and(|r| {
                r.status() == StatusCode::SERVICE_UNAVAILABLE
                    && r.headers().get(RETRY_AFTER).map(|v| v.to_str().unwrap()) == header
            })
        });
        row(mode, n, floor);
    }
    // Above the static table (an hour), `Retry-After` is written at run time: one more.
    let [long_open, _] = open_and_forced(&clock, Duration::from_secs(7_200));
    let mut svc = CircuitBreakerLayer::new(long_open)
        .classify(HttpClassifier::new())
        .reject_with(ServiceUnavailable)
        .layer(bare_http());
    let n = per_call(|| send(&mut svc, 1).is_ok_and(|r| r.headers()[RETRY_AFTER] == "7200"));
    row("503, Retry-After above an hour", n, one_header + 1);

    // gRPC response: content type, status, message, and the pushback when known.
    let grpc_headers = [
        (CONTENT_TYPE, "application/grpc"),
        (HeaderName::from_static("grpc-status"), "14"),
        (HeaderName::from_static("grpc-message"), "m"),
        (HeaderName::from_static("grpc-retry-pushback-ms"), "5000"),
    ];
    let four_headers = floor(&grpc_headers);
    let three_headers = floor(&grpc_headers[..3]);
    for (breaker, floor, mode) in [
        (
            &open,
            four_headers,
            "gRPC response (UnavailableResponse), open",
        ),
        (
            &forced,
            three_headers,
            "gRPC response (UnavailableResponse), forced open",
        ),
    ] {
        let mut svc = CircuitBreakerLayer::new(breaker.clone())
            .classify(GrpcClassifier::new())
            .reject_with(UnavailableResponse)
            .layer(bare_http());
        let n = per_call(|| send(&mut svc, 1).is_ok_and(|r| r.headers()["grpc-status"] == "14"));
        row(mode, n, floor);
    }

    // The keyed layer: a key's breaker refusing, and a full registry refusing a new key.
    let registry = |capacity| {
        Arc::new(
            KeyedBreakers::<u64>::builder(
                cutout::CircuitBreaker::builder()
                    .failure_threshold(1)
                    .open_duration(Duration::from_secs(5)),
            )
            .capacity(capacity)
            .build_with_clock(clock.clone())
            .unwrap(),
        )
    };
    let hosts = registry(2);
    for key in [1, 2] {
        hosts.try_acquire(&key).unwrap().record(Outcome::Failure);
    }
    let full = KeyedRejected::Full { capacity: 2 };
    let layer = KeyedCircuitBreakerLayer::new(hosts.clone(), |x: &u64| Some(*x));

    let mut svc = layer.clone().layer(bare());
    let n = per_call(|| {
        send(&mut svc, 1).is_err_and(|e| {
            e.downcast_ref::<Rejected>()
                .is_some_and(|r| r.retry_after() == retry_after)
        })
    });
    row("keyed: boxed error (default), open", n, 0);
    let n = per_call(|| {
        send(&mut svc, 3).is_err_and(|e| {
            e.downcast_ref::<NoBreaker>()
                .is_some_and(|r| r.reason().as_ref() == Some(&full))
        })
    });
    row("keyed: no breaker, boxed error (default)", n, 0);

    let mut svc = layer.clone().reject_with(UnavailableError).layer(bare());
    let n = per_call(|| {
        send(&mut svc, 3).is_err_and(|e| {
            e.is::<NoBreaker>()
                && std::error::Error::source(e.as_ref()).is_some_and(|s| s.is::<tonic::Status>())
        })
    });
    row("keyed: no breaker, gRPC error", n, 0);

    let mut svc = layer
        .clone()
        .classify(HttpClassifier::new())
        .reject_with(ServiceUnavailable)
        .layer(bare_http());
    let n = per_call(|| send(&mut svc, 1).is_ok_and(|r| r.headers()[RETRY_AFTER] == "5"));
    row("keyed: 503, open", n, one_header);
    let n = per_call(|| {
        send(&mut svc, 3).is_ok_and(|r| {
            r.status() == StatusCode::SERVICE_UNAVAILABLE
                && r.extensions().get::<KeyedRejected>() == Some(&full)
        })
    });
    row("keyed: no breaker, 503", n, no_header);

    let mut svc = layer
        .classify(GrpcClassifier::new())
        .reject_with(UnavailableResponse)
        .layer(bare_http());
    let n = per_call(|| send(&mut svc, 3).is_ok_and(|r| r.headers()["grpc-status"] == "14"));
    row("keyed: no breaker, gRPC response", n, three_headers);

    println!("allocations per rejection (over {CALLS}), beside the floor of the same output:");
    println!("| mode | allocations | floor |");
    println!("|---|---:|---:|");
    for r in &rows {
        println!("| {} | {} | {} |", r.mode, r.allocations, r.floor);
    }
    println!(
        "floors: a response with one header and an extension {one_header}, none and an extension {no_header}, four headers {four_headers}, three {three_headers}"
    );
}
