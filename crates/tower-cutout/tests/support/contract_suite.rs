//! The tower contract, point by point, on `tower-test` mocks and a manual clock; run by
//! `tests/contract.rs` on an owned breaker handle and by `tests/contract_static.rs` on a
//! `&'static` one (the including file defines `Shared`, the handle type, and `share`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use cutout::{ManualClock, Outcome, State};
use futures::FutureExt;
use tower::{Layer, Service};
use tower_cutout::classify::DefaultClassifier;
use tower_cutout::error::{BoxError, Rejected};
use tower_cutout::reject::RejectWithError;
use tower_cutout::{CircuitBreaker, CircuitBreakerLayer};

use super::counted::Counted;
use super::{Shared, share};
use tower_test::mock;

type Mock = mock::Mock<&'static str, &'static str>;
type Handle = mock::Handle<&'static str, &'static str>;
type SharedLayer = CircuitBreakerLayer<DefaultClassifier, RejectWithError, Shared>;
type Svc = mock::Spawn<CircuitBreaker<Counted<Mock>, DefaultClassifier, RejectWithError, Shared>>;

const OPEN: Duration = Duration::from_secs(10);

fn breaker(clock: &ManualClock) -> Shared {
    share(
        cutout::CircuitBreaker::builder()
            .failure_threshold(2)
            .open_duration(OPEN)
            .build_with_clock(clock.clone())
            .unwrap(),
    )
}

/// A mocked service behind `layer`, with its counters and handle.
fn service(layer: &SharedLayer) -> (Svc, Handle, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let (mock, handle) = mock::pair();
    let counted = Counted::new(mock);
    let (polls, calls) = (counted.polls.clone(), counted.calls.clone());
    (mock::Spawn::new(layer.layer(counted)), handle, polls, calls)
}

/// Polls a future that must be finished.
fn done<F: std::future::Future>(f: F) -> F::Output {
    f.now_or_never().expect("the future should be finished")
}

/// Sends one request through `svc` and answers it with `answer`.
fn roundtrip(
    svc: &mut Svc,
    handle: &mut Handle,
    answer: Result<&'static str, &'static str>,
) -> Result<&'static str, BoxError> {
    assert!(matches!(svc.poll_ready(), Poll::Ready(Ok(()))));
    let fut = svc.call("req");
    let Poll::Ready(Some((req, send))) = handle.poll_request() else {
        panic!("the request should reach the inner service");
    };
    assert_eq!(req, "req");
    match answer {
        Ok(r) => send.send_response(r),
        Err(e) => send.send_error(e),
    }
    done(fut)
}

fn trip(svc: &mut Svc, handle: &mut Handle) {
    for _ in 0..2 {
        let err = roundtrip(svc, handle, Err("boom")).unwrap_err();
        assert_eq!(err.to_string(), "boom");
        assert!(!err.is::<Rejected>());
    }
}

/// The boxed rejection: a `Rejected` is read through its box (moved out, it reads as
/// unknown).
fn rejection(result: Result<&'static str, BoxError>) -> Box<Rejected> {
    result
        .expect_err("expected a rejection")
        .downcast::<Rejected>()
        .expect("expected tower_cutout::error::Rejected")
}

#[test]
fn closed_passes_through_and_records_success() {
    let clock = ManualClock::new();
    let layer = CircuitBreakerLayer::new(breaker(&clock));
    let (mut svc, mut handle, polls, calls) = service(&layer);
    assert_eq!(roundtrip(&mut svc, &mut handle, Ok("ok")).unwrap(), "ok");
    let stats = layer.breaker().stats();
    assert_eq!(
        (
            stats.admitted,
            stats.successes,
            stats.failures,
            stats.ignored
        ),
        (1, 1, 0, 0)
    );
    assert_eq!(
        (polls.load(Ordering::SeqCst), calls.load(Ordering::SeqCst)),
        (1, 1)
    );
}

#[test]
fn open_rejects_without_polling_or_calling_the_inner_service() {
    let clock = ManualClock::new();
    let layer = CircuitBreakerLayer::new(breaker(&clock));
    let (mut svc, mut handle, polls, calls) = service(&layer);
    trip(&mut svc, &mut handle);
    assert_eq!(layer.breaker().state(), State::Open);
    let (polls_before, calls_before) = (polls.load(Ordering::SeqCst), calls.load(Ordering::SeqCst));

    // The inner service would be Pending if it were polled.
    handle.allow(0);
    clock.advance(Duration::from_secs(4));
    for _ in 0..3 {
        assert!(matches!(svc.poll_ready(), Poll::Ready(Ok(()))));
        let rejected = rejection(done(svc.call("req")));
        assert_eq!(rejected.retry_after(), Some(Duration::from_secs(6)));
        assert_eq!(
            rejected.reason(),
            Some(cutout::Rejected::Open {
                retry_after: Duration::from_secs(6)
            })
        );
        assert_eq!(
            rejected.to_string(),
            "circuit breaker is open; retry after 6s"
        );
    }
    assert_eq!(polls.load(Ordering::SeqCst), polls_before);
    assert_eq!(calls.load(Ordering::SeqCst), calls_before);
    assert!(handle.poll_request().is_pending());
    assert_eq!(layer.breaker().stats().rejected, 3);
}

#[test]
fn poll_ready_never_fails_because_of_the_breaker() {
    let clock = ManualClock::new();
    let breaker = breaker(&clock);
    breaker.force_open();
    let layer = CircuitBreakerLayer::new(breaker);
    let (mut svc, mut handle, polls, _) = service(&layer);
    handle.allow(0);
    assert!(matches!(svc.poll_ready(), Poll::Ready(Ok(()))));
    // Ready stays ready until `call`.
    assert!(matches!(svc.poll_ready(), Poll::Ready(Ok(()))));
    let rejected = rejection(done(svc.call("req")));
    assert_eq!(rejected.retry_after(), None);
    assert_eq!(rejected.to_string(), "circuit breaker is forced open");
    assert_eq!(polls.load(Ordering::SeqCst), 0);
}

#[test]
fn half_open_slot_reserved_by_poll_ready_is_returned_when_the_service_is_dropped() {
    let clock = ManualClock::new();
    let layer = CircuitBreakerLayer::new(breaker(&clock));
    let (mut first, mut handle, _, _) = service(&layer);
    trip(&mut first, &mut handle);
    clock.advance(OPEN);

    // `poll_ready` takes the only probe slot.
    assert!(matches!(first.poll_ready(), Poll::Ready(Ok(()))));
    let stats = layer.breaker().stats();
    assert_eq!((stats.state, stats.probes_in_flight), (State::HalfOpen, 1));

    // Another service of the layer is turned away while the slot is reserved.
    let (mut second, mut second_handle, _, second_calls) = service(&layer);
    assert!(matches!(second.poll_ready(), Poll::Ready(Ok(()))));
    let rejected = rejection(done(second.call("req")));
    assert!(matches!(
        rejected.reason(),
        Some(cutout::Rejected::HalfOpenFull { .. })
    ));
    assert_eq!(second_calls.load(Ordering::SeqCst), 0);

    // The call never comes: dropping the service gives the slot back.
    drop(first);
    let stats = layer.breaker().stats();
    assert_eq!(
        (stats.state, stats.probes_in_flight, stats.ignored),
        (State::HalfOpen, 0, 1)
    );

    // The slot is free for the next probe, which closes the circuit.
    assert_eq!(
        roundtrip(&mut second, &mut second_handle, Ok("ok")).unwrap(),
        "ok"
    );
    assert_eq!(layer.breaker().state(), State::Closed);
}

#[test]
fn dropping_the_response_future_releases_the_permit_as_ignored() {
    let clock = ManualClock::new();
    let layer = CircuitBreakerLayer::new(breaker(&clock));
    let (mut svc, mut handle, _, _) = service(&layer);
    trip(&mut svc, &mut handle);
    clock.advance(OPEN);

    assert!(matches!(svc.poll_ready(), Poll::Ready(Ok(()))));
    let fut = svc.call("probe");
    assert_eq!(layer.breaker().stats().probes_in_flight, 1);
    let Poll::Ready(Some((_, send))) = handle.poll_request() else {
        panic!("no request")
    };
    drop(fut);
    let stats = layer.breaker().stats();
    assert_eq!(
        (stats.state, stats.probes_in_flight, stats.ignored),
        (State::HalfOpen, 0, 1)
    );
    // A late answer goes nowhere and changes nothing.
    send.send_response("late");
    assert_eq!(layer.breaker().stats().successes, 0);

    // In the closed state too: a dropped future is ignored, not a success.
    assert_eq!(roundtrip(&mut svc, &mut handle, Ok("ok")).unwrap(), "ok");
    assert_eq!(layer.breaker().state(), State::Closed);
    assert!(matches!(svc.poll_ready(), Poll::Ready(Ok(()))));
    drop(svc.call("cancelled"));
    let stats = layer.breaker().stats();
    assert_eq!(
        (
            stats.admitted,
            stats.ignored,
            stats.successes,
            stats.failures
        ),
        (5, 2, 1, 2)
    );
}

#[test]
fn a_reservation_made_stale_by_a_trip_while_the_inner_service_waits_is_given_back() {
    let clock = ManualClock::new();
    let layer = CircuitBreakerLayer::new(breaker(&clock));
    let (mut svc, mut handle, polls, calls) = service(&layer);
    handle.allow(0);
    assert!(svc.poll_ready().is_pending());
    assert_eq!(layer.breaker().stats().admitted, 1);

    // Meanwhile other callers trip the breaker.
    for _ in 0..2 {
        layer
            .breaker()
            .try_acquire()
            .unwrap()
            .record(Outcome::Failure);
    }
    handle.allow(1);
    assert!(matches!(svc.poll_ready(), Poll::Ready(Ok(()))));
    let rejected = rejection(done(svc.call("req")));
    assert!(matches!(
        rejected.reason(),
        Some(cutout::Rejected::Open { .. })
    ));
    assert_eq!(
        (polls.load(Ordering::SeqCst), calls.load(Ordering::SeqCst)),
        (1, 0)
    );
    let stats = layer.breaker().stats();
    assert_eq!((stats.ignored, stats.rejected, stats.stale), (1, 1, 1));
}

#[test]
fn an_inner_poll_ready_error_passes_through_and_gives_the_permit_back() {
    let clock = ManualClock::new();
    let layer = CircuitBreakerLayer::new(breaker(&clock));
    let (mut svc, mut handle, _, _) = service(&layer);
    handle.send_error("inner broke");
    let Poll::Ready(Err(err)) = svc.poll_ready() else {
        panic!("expected the inner error")
    };
    assert_eq!(err.to_string(), "inner broke");
    assert!(!err.is::<Rejected>());
    let stats = layer.breaker().stats();
    assert_eq!((stats.admitted, stats.ignored, stats.failures), (1, 1, 0));
}

/// A service that answers `Ok(n)` for `n > 0` and `Err` for 0, counting calls.
fn doubler(
    calls: Arc<AtomicUsize>,
) -> impl Service<
    u32,
    Response = u32,
    Error = &'static str,
    Future = std::future::Ready<Result<u32, &'static str>>,
> + Clone {
    tower::service_fn(move |n: u32| {
        calls.fetch_add(1, Ordering::SeqCst);
        std::future::ready(if n == 0 { Err("zero") } else { Ok(n * 2) })
    })
}

#[test]
fn call_without_poll_ready_asks_the_breaker() {
    let clock = ManualClock::new();
    let calls = Arc::new(AtomicUsize::new(0));
    let mut svc = CircuitBreaker::new(doubler(calls.clone()), breaker(&clock));
    assert_eq!(done(svc.call(2)).unwrap(), 4);
    svc.breaker().force_open();
    let err = done(svc.call(2)).unwrap_err();
    assert!(err.is::<Rejected>());
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[test]
fn services_from_one_layer_trip_together() {
    let clock = ManualClock::new();
    let layer = CircuitBreakerLayer::from_builder_with_clock(
        cutout::CircuitBreaker::builder()
            .failure_threshold(2)
            .open_duration(OPEN),
        clock.clone(),
    )
    .unwrap();
    let (a_calls, b_calls) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut a = layer.layer(doubler(a_calls.clone()));
    let mut b = layer.layer(doubler(b_calls.clone()));
    let mut b_clone = b.clone();
    assert!(a.breaker().ptr_eq(b.breaker()));
    assert!(b.breaker().ptr_eq(layer.breaker()));

    for _ in 0..2 {
        assert!(matches!(a.poll_ready(&mut noop_cx()), Poll::Ready(Ok(()))));
        assert_eq!(done(a.call(0)).unwrap_err().to_string(), "zero");
    }
    // `b` never failed, but shares the tripped breaker; so does its clone.
    for svc in [&mut b, &mut b_clone] {
        assert!(matches!(
            svc.poll_ready(&mut noop_cx()),
            Poll::Ready(Ok(()))
        ));
        assert!(done(svc.call(1)).unwrap_err().is::<Rejected>());
    }
    assert_eq!(
        (
            a_calls.load(Ordering::SeqCst),
            b_calls.load(Ordering::SeqCst)
        ),
        (2, 0)
    );
    assert_eq!(layer.breaker().stats().trips, 1);
}

#[test]
fn the_explicit_constructor_shares_an_existing_breaker() {
    let clock = ManualClock::new();
    let breaker = breaker(&clock);
    let calls = Arc::new(AtomicUsize::new(0));
    let mut svc = CircuitBreaker::new(doubler(calls.clone()), breaker.clone());
    // `Shared` is the breaker or a `&'static` to it: either way, the same breaker.
    let shared: &cutout::CircuitBreaker = std::borrow::Borrow::borrow(&breaker);
    assert!(svc.breaker().ptr_eq(shared));
    breaker.force_open();
    assert!(matches!(
        svc.poll_ready(&mut noop_cx()),
        Poll::Ready(Ok(()))
    ));
    assert!(done(svc.call(1)).unwrap_err().is::<Rejected>());
    breaker.reset();
    assert!(matches!(
        svc.poll_ready(&mut noop_cx()),
        Poll::Ready(Ok(()))
    ));
    assert_eq!(done(svc.call(1)).unwrap(), 2);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(svc.into_inner().clone().call(3).now_or_never(), Some(Ok(6)));
}

#[test]
fn a_closure_classifies_results() {
    let clock = ManualClock::new();
    let layer = CircuitBreakerLayer::new(breaker(&clock)).classify(
        |r: &Result<u32, &'static str>| match r {
            Ok(n) if *n >= 1000 => Outcome::Failure,
            Ok(_) => Outcome::Success,
            Err(_) => Outcome::Ignored,
        },
    );
    let calls = Arc::new(AtomicUsize::new(0));
    let mut svc = layer.layer(doubler(calls.clone()));
    for _ in 0..5 {
        assert!(matches!(
            svc.poll_ready(&mut noop_cx()),
            Poll::Ready(Ok(()))
        ));
        assert_eq!(done(svc.call(0)).unwrap_err().to_string(), "zero");
    }
    assert_eq!(layer.breaker().state(), State::Closed);
    for _ in 0..2 {
        assert!(matches!(
            svc.poll_ready(&mut noop_cx()),
            Poll::Ready(Ok(()))
        ));
        assert_eq!(done(svc.call(500)).unwrap(), 1000);
    }
    assert_eq!(layer.breaker().state(), State::Open);
    let stats = layer.breaker().stats();
    assert_eq!((stats.ignored, stats.failures, stats.successes), (5, 2, 0));
}

fn noop_cx() -> Context<'static> {
    Context::from_waker(std::task::Waker::noop())
}
