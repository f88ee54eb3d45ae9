//! Allocations per call, for every breaker and path the benches measure, counted by a
//! counting global allocator (`stats_alloc`). Prints a markdown table; exits with status 1
//! if any cutout path allocates, or if a tower-cutout rejection allocates more than the
//! floor of its output (the `floor` rows, measured in the same run: an `http::Response`
//! with the same headers and extension, built by hand; the error modes' floor is 0).
//!
//! `cargo bench -p cutout-benches --bench alloc` (or `cargo test ... --benches`, which runs
//! it the same way).

use std::alloc::System;
use std::convert::Infallible;
use std::hint::black_box;
use std::sync::Arc;

use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

mod support;

use support::{Work, cases};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Calls per measurement, after as many warm-up calls (thread-locals, lazy statics and
/// epoch registration happen in the warm-up).
const CALLS: u32 = 10_000;

struct Row {
    breaker: &'static str,
    path: &'static str,
    allocs: f64,
    bytes: f64,
    as_expected: bool,
    /// The most allocations allowed: 0 for cutout's own paths, the floor row's for a
    /// tower-cutout rejection; `None`, not checked (the peers).
    ceiling: Option<f64>,
}

fn count(breaker: &'static str, path: &'static str, mut f: impl FnMut() -> bool) -> Row {
    let mut as_expected = true;
    for _ in 0..CALLS {
        as_expected &= black_box(f());
    }
    let region = Region::new(GLOBAL);
    for _ in 0..CALLS {
        as_expected &= black_box(f());
    }
    let change = region.change();
    Row {
        breaker,
        path,
        allocs: change.allocations as f64 / f64::from(CALLS),
        bytes: change.bytes_allocated as f64 / f64::from(CALLS),
        as_expected,
        ceiling: (breaker == "cutout").then_some(0.0),
    }
}

/// A tower-cutout row, checked against `ceiling` (a floor row's allocations, or 0).
fn at_most(ceiling: f64, row: Row) -> Row {
    Row {
        ceiling: Some(ceiling),
        ..row
    }
}

/// A service answering `200` with an empty `http::Response`.
fn bare_http() -> impl tower::Service<
    u64,
    Response = http::Response<()>,
    Error = Infallible,
    Future = std::future::Ready<Result<http::Response<()>, Infallible>>,
> {
    tower::service_fn(|_: u64| std::future::ready(Ok(http::Response::new(()))))
}

/// The floor of a response mode: a `503` with `headers` (static values) inserted and, if
/// `extension`, a `cutout::Rejected` in its extensions, built by hand.
fn response_floor(headers: &[(http::HeaderName, &'static str)], extension: bool) -> bool {
    let mut response = http::Response::new(());
    *response.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
    for (name, value) in headers {
        response
            .headers_mut()
            .insert(name.clone(), http::HeaderValue::from_static(value));
    }
    if extension {
        response
            .extensions_mut()
            .insert(cutout::Rejected::ForcedOpen);
    }
    black_box(response).status() == http::StatusCode::SERVICE_UNAVAILABLE
}

/// The 503 mode's row: an open rejection answered with `Retry-After`, held to `floor`.
fn open_503<S>(stack: &'static str, svc: &mut S, floor: f64) -> Row
where
    S: tower::Service<u64, Response = http::Response<()>>,
{
    at_most(
        floor,
        count(stack, "open reject, 503 with Retry-After", || {
            support::tower_call(svc, black_box(1))
                .is_ok_and(|r| r.headers().contains_key(http::header::RETRY_AFTER))
        }),
    )
}

/// The rejection rows of every tower-cutout mode, each with the floor row it is held to,
/// on an open breaker (its rejections carry `retry_after`).
fn tower_rejections(rows: &mut Vec<Row>) {
    use tower::Layer;
    use tower_cutout::CircuitBreakerLayer;
    use tower_cutout::grpc::{GrpcClassifier, UnavailableError, UnavailableResponse};
    use tower_cutout::http::{HttpClassifier, ServiceUnavailable};
    use tower_cutout::keyed::KeyedCircuitBreakerLayer;
    use tower_cutout::reject::RejectWithCallError;

    const FLOOR: &str = "floor: http::Response";
    let retry_after = [(http::header::RETRY_AFTER, "3600")];
    let grpc = [
        (http::header::CONTENT_TYPE, "application/grpc"),
        (http::HeaderName::from_static("grpc-status"), "14"),
        (http::HeaderName::from_static("grpc-message"), "m"),
        (
            http::HeaderName::from_static("grpc-retry-pushback-ms"),
            "3600000",
        ),
    ];
    let one_header = count(FLOOR, "one header inserted", || {
        response_floor(&retry_after, false)
    });
    let extension = count(FLOOR, "one extension inserted", || {
        response_floor(&[], true)
    });
    let one_header_extension = count(FLOOR, "one header and one extension", || {
        response_floor(&retry_after, true)
    });
    let grpc_floor = count(FLOOR, "four headers and one extension", || {
        response_floor(&grpc, true)
    });
    let (http_floor, no_breaker_floor) = (one_header_extension.allocs, extension.allocs);
    let grpc_floor_allocs = grpc_floor.allocs;
    rows.extend([one_header, extension, one_header_extension, grpc_floor]);

    let open = cases::tower_cutout_open().breaker().clone();
    let layer = CircuitBreakerLayer::new(open);
    const TOWER: &str = "tower: tower-cutout";
    // The default mode (boxed error): the `open reject` row above.
    let mut svc = layer.clone().reject_with(RejectWithCallError).layer(Work);
    rows.push(at_most(
        0.0,
        count(TOWER, "open reject, typed error", || {
            matches!(
                support::tower_call(&mut svc, black_box(1)),
                Err(cutout::CallError::Rejected(_))
            )
        }),
    ));
    let mut svc = layer
        .clone()
        .classify(HttpClassifier::new())
        .reject_with(ServiceUnavailable)
        .layer(bare_http());
    rows.push(open_503(TOWER, &mut svc, http_floor));
    let mut svc = layer
        .clone()
        .classify(GrpcClassifier::new())
        .reject_with(UnavailableResponse)
        .layer(bare_http());
    rows.push(at_most(
        grpc_floor_allocs,
        count(TOWER, "open reject, gRPC response", || {
            support::tower_call(&mut svc, black_box(1))
                .is_ok_and(|r| r.headers()["grpc-status"] == "14")
        }),
    ));
    let mut svc = layer.reject_with(UnavailableError).layer(Work);
    rows.push(at_most(
        0.0,
        count(TOWER, "open reject, gRPC error", || {
            support::tower_call(&mut svc, black_box(1))
                .is_err_and(|e| e.is::<tower_cutout::error::Rejected>())
        }),
    ));

    // The keyed layer: a full registry of two open breakers; key 1 is open, key 3 gets none.
    let hosts = Arc::new(
        cutout_keyed::KeyedBreakers::<u64>::builder(
            cutout::CircuitBreaker::builder()
                .failure_threshold(1)
                .open_duration(std::time::Duration::from_secs(3600)),
        )
        .capacity(2)
        .build()
        .unwrap(),
    );
    for key in [1, 2] {
        hosts
            .try_acquire(&key)
            .unwrap()
            .record(cutout::Outcome::Failure);
    }
    let keyed = KeyedCircuitBreakerLayer::new(hosts, |x: &u64| Some(*x));
    const KEYED: &str = "tower: tower-cutout keyed";
    let mut svc = keyed.clone().layer(Work);
    rows.push(at_most(
        0.0,
        count(KEYED, "open reject, boxed error (default)", || {
            support::tower_call(&mut svc, black_box(1))
                .is_err_and(|e| e.is::<tower_cutout::error::Rejected>())
        }),
    ));
    rows.push(at_most(
        0.0,
        count(KEYED, "no breaker (registry full), boxed error", || {
            support::tower_call(&mut svc, black_box(3))
                .is_err_and(|e| e.is::<tower_cutout::keyed::error::NoBreaker>())
        }),
    ));
    let mut svc = keyed
        .clone()
        .classify(HttpClassifier::new())
        .reject_with(ServiceUnavailable)
        .layer(bare_http());
    rows.push(open_503(KEYED, &mut svc, http_floor));
    rows.push(at_most(
        no_breaker_floor,
        count(KEYED, "no breaker (registry full), 503", || {
            support::tower_call(&mut svc, black_box(3))
                .is_ok_and(|r| r.status() == http::StatusCode::SERVICE_UNAVAILABLE)
        }),
    ));
    let mut svc = keyed.reject_with(UnavailableError).layer(Work);
    rows.push(at_most(
        0.0,
        count(KEYED, "no breaker (registry full), gRPC error", || {
            support::tower_call(&mut svc, black_box(3))
                .is_err_and(|e| e.is::<tower_cutout::keyed::error::NoBreaker>())
        }),
    ));
}

fn main() {
    let mut rows = Vec::new();

    // cutout
    let cb = cases::cutout_closed();
    rows.push(count("cutout", "closed success (call)", || {
        cases::cutout_call_ok(&cb)
    }));
    rows.push(count("cutout", "closed success (permit)", || {
        cases::cutout_permit_ok(&cb)
    }));
    rows.push(count("cutout", "closed failure then success", || {
        cases::cutout_fail_then_ok(&cb)
    }));
    let open = cases::cutout_open_monotonic();
    rows.push(count("cutout", "open reject (monotonic clock)", || {
        cases::cutout_reject(&open)
    }));
    let open = cases::cutout_open_manual();
    rows.push(count("cutout", "open reject (manual clock)", || {
        cases::cutout_reject(&open)
    }));
    let (half_open, _clock) = cases::cutout_half_open_manual();
    rows.push(count("cutout", "half-open probe (manual clock)", || {
        cases::cutout_probe_ignored(&half_open)
    }));
    let half_open = cases::cutout_half_open_monotonic();
    rows.push(count("cutout", "half-open probe (monotonic clock)", || {
        cases::cutout_probe_ignored(&half_open)
    }));
    let (cycle, clock) = cases::cutout_cycle();
    rows.push(count(
        "cutout",
        "trip, probe, close (3 transitions)",
        || cases::cutout_trip_probe_close(&cycle, &clock),
    ));

    // failsafe
    let cb = cases::failsafe_closed();
    rows.push(count("failsafe", "closed success", || {
        cases::failsafe_call_ok(&cb)
    }));
    rows.push(count("failsafe", "closed failure then success", || {
        cases::failsafe_fail_then_ok(&cb)
    }));
    let open = cases::failsafe_open();
    rows.push(count("failsafe", "open reject", || {
        cases::failsafe_reject(&open)
    }));

    // recloser
    let cb = cases::recloser_closed();
    rows.push(count("recloser", "closed success", || {
        cases::recloser_call_ok(&cb)
    }));
    rows.push(count("recloser", "closed failure then success", || {
        cases::recloser_fail_then_ok(&cb)
    }));
    let open = cases::recloser_open();
    rows.push(count("recloser", "open reject", || {
        cases::recloser_reject(&open)
    }));
    let half_open = cases::recloser_half_open();
    rows.push(count("recloser", "half-open probe", || {
        cases::recloser_call_ok(&half_open)
    }));

    // breaker
    let cb = cases::breaker_closed();
    rows.push(count("breaker", "closed success", || {
        cases::breaker_call_ok(&cb)
    }));
    rows.push(count("breaker", "closed failure then success", || {
        cases::breaker_fail_then_ok(&cb)
    }));
    let open = cases::breaker_open();
    rows.push(count("breaker", "open reject", || {
        cases::breaker_reject(&open)
    }));
    let half_open = cases::breaker_half_open();
    rows.push(count("breaker", "half-open probe", || {
        cases::breaker_call_ok(&half_open)
    }));

    // tower stacks
    let mut bare = Work;
    rows.push(count("tower: bare service", "closed success", || {
        cases::tower_ok(&mut bare)
    }));
    let mut tower_cutout = cases::tower_cutout_closed();
    rows.push(count("tower: tower-cutout", "closed success", || {
        cases::tower_ok(&mut tower_cutout)
    }));
    let mut tower_cutout = cases::tower_cutout_open();
    rows.push(at_most(
        0.0,
        count("tower: tower-cutout", "open reject", || {
            cases::tower_cutout_reject(&mut tower_cutout)
        }),
    ));
    tower_rejections(&mut rows);
    let mut resilience = cases::resilience_closed();
    rows.push(count("tower: tower-resilience", "closed success", || {
        cases::tower_ok(&mut resilience)
    }));
    let mut resilience = cases::resilience_open();
    rows.push(count("tower: tower-resilience", "open reject", || {
        cases::resilience_reject(&mut resilience)
    }));

    println!("| breaker | path | allocations / call | bytes / call |");
    println!("|---|---|---:|---:|");
    let mut ok = true;
    for row in &rows {
        println!(
            "| {} | {} | {:.2} | {:.1} |",
            row.breaker, row.path, row.allocs, row.bytes
        );
        if !row.as_expected {
            eprintln!(
                "{} / {}: the breaker was not in the expected state",
                row.breaker, row.path
            );
            ok = false;
        }
        if let Some(ceiling) = row.ceiling.filter(|c| row.allocs > *c) {
            eprintln!(
                "{} / {}: {} allocations, more than its floor's {ceiling}",
                row.breaker, row.path, row.allocs
            );
            ok = false;
        }
    }
    if ok {
        println!("\nalloc: {} passed, 0 failed", rows.len());
    } else {
        std::process::exit(1);
    }
}
