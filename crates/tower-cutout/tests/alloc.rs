//! Allocations per request, counted by a counting global allocator (`stats_alloc`): the
//! layer adds none on the admitted path. One test, no harness, so nothing else allocates
//! while it counts. Rejections in every mode: `reject_alloc.rs`.

use std::time::Duration;

use cutout::{ManualClock, Outcome};
use tower::{Layer, Service};
use tower_cutout::CircuitBreakerLayer;
use tower_cutout::http::{HttpClassifier, ServiceUnavailable};
use tower_cutout::reject::RejectWithCallError;

#[path = "support/counting.rs"]
mod counting;

use counting::{CALLS, allocations, bare, bare_http};

/// One request of `1`.
fn request<S: Service<u64>>(svc: &mut S) -> Result<S::Response, S::Error> {
    counting::send(svc, 1)
}

fn breaker(clock: &ManualClock) -> cutout::CircuitBreaker {
    cutout::CircuitBreaker::builder()
        .failure_threshold(1)
        .open_duration(Duration::from_secs(1))
        .build_with_clock(clock.clone())
        .unwrap()
}

fn main() {
    let clock = ManualClock::new();

    let mut svc = CircuitBreakerLayer::new(breaker(&clock)).layer(bare());
    let closed = allocations(|| request(&mut svc).is_ok());
    assert_eq!(closed, 0, "closed success, default mode");

    let mut svc = CircuitBreakerLayer::new(breaker(&clock))
        .classify(HttpClassifier::new())
        .reject_with(ServiceUnavailable)
        .layer(bare_http());
    let closed_http = allocations(|| request(&mut svc).is_ok());
    assert_eq!(
        closed_http, 0,
        "closed success, HTTP classifier and 503 mode"
    );

    // Half-open probes: trip, let the open time pass, probe (which closes), trip again.
    let layer = CircuitBreakerLayer::new(breaker(&clock));
    let mut svc = layer.layer(bare());
    let probes = allocations(|| {
        layer
            .breaker()
            .try_acquire()
            .unwrap()
            .record(Outcome::Failure);
        clock.advance(Duration::from_secs(1));
        let ok = request(&mut svc).is_ok();
        ok && layer.breaker().state() == cutout::State::Closed
    });
    assert_eq!(probes, 0, "half-open probe that closes the circuit");

    // Rejections: the default mode's boxed error is zero-sized (every mode, with the
    // floors of the response modes: `reject_alloc.rs`).
    let layer = CircuitBreakerLayer::new(breaker(&clock));
    layer.breaker().force_open();
    let mut svc = layer.layer(bare());
    let rejected = allocations(|| request(&mut svc).is_err());
    assert_eq!(rejected, 0, "rejection, default (boxed error) mode");

    // The `&'static` handle: no allocation either, and a typed rejection allocates nothing.
    let mut svc = CircuitBreakerLayer::new(breaker(&clock).leak()).layer(bare());
    let closed_static = allocations(|| request(&mut svc).is_ok());
    assert_eq!(closed_static, 0, "closed success, &'static breaker");

    let open = breaker(&clock).leak();
    open.force_open();
    let mut svc = CircuitBreakerLayer::new(open)
        .reject_with(RejectWithCallError)
        .layer(bare());
    let rejected_typed = allocations(|| {
        matches!(
            request(&mut svc),
            Err(cutout::CallError::Rejected(cutout::Rejected::ForcedOpen))
        )
    });
    assert_eq!(rejected_typed, 0, "rejection, typed error mode");

    let layer = CircuitBreakerLayer::new(breaker(&clock)).reject_with(RejectWithCallError);
    let mut svc = layer.layer(bare());
    layer
        .breaker()
        .try_acquire()
        .unwrap()
        .record(Outcome::Failure);
    let rejected_open_typed = allocations(|| {
        matches!(
            request(&mut svc),
            Err(cutout::CallError::Rejected(cutout::Rejected::Open { .. }))
        )
    });
    assert_eq!(rejected_open_typed, 0, "open rejection, typed error mode");

    println!("allocations per request (over {CALLS}):");
    println!(
        "  closed success, &'static breaker:  {}",
        closed_static / CALLS
    );
    println!(
        "  rejection, typed error mode:       {}",
        rejected_typed / CALLS
    );
    println!("  closed success, default mode:      {}", closed / CALLS);
    println!(
        "  closed success, HTTP mode:         {}",
        closed_http / CALLS
    );
    println!("  half-open probe:                   {}", probes / CALLS);
    println!("  rejection, default mode:           {}", rejected / CALLS);
}
