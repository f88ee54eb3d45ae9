//! The companions composed with tower-cutout's breaker, on paused tokio time, counting the
//! calls that reach the dependency exactly.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use cutout::{State, TokioClock};
use cutout_companions::BoxError;
use cutout_companions::bulkhead::{BulkheadFull, BulkheadLayer};
use cutout_companions::classify::IgnoreLocalRejections;
use cutout_companions::fault::{FaultInjectionLayer, FaultKind, InjectedFault, Rule};
use cutout_companions::retry::RetryPolicy;
use cutout_companions::timeout::{AdaptiveTimeoutLayer, Elapsed};
use tokio::time::Instant;
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_cutout::CircuitBreakerLayer;
use tower_cutout::error::Rejected;

const MS: Duration = Duration::from_millis(1);
const SEC: Duration = Duration::from_secs(1);

fn breaker(threshold: u32, open: Duration) -> cutout::CircuitBreaker {
    cutout::CircuitBreaker::builder()
        .failure_threshold(threshold)
        .open_duration(open)
        .build_with_clock(TokioClock::new())
        .unwrap()
}

/// The dependency: counts calls, sleeps `latency_ms`, fails while `failing` is set.
#[derive(Clone, Default)]
struct Dependency {
    calls: Arc<AtomicUsize>,
    /// Calls whose future ran to the end (a call whose future was dropped before its
    /// first poll is in `calls` only).
    served: Arc<AtomicUsize>,
    failing: Arc<AtomicBool>,
    latency_ms: Arc<AtomicU64>,
}

impl Dependency {
    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn service(
        &self,
    ) -> impl Service<u32, Response = u32, Error = BoxError, Future: Send> + Clone + use<> {
        let dep = self.clone();
        tower::service_fn(move |req: u32| {
            dep.calls.fetch_add(1, Ordering::SeqCst);
            let fail = dep.failing.load(Ordering::SeqCst);
            let latency = Duration::from_millis(dep.latency_ms.load(Ordering::SeqCst));
            let served = dep.served.clone();
            async move {
                if !latency.is_zero() {
                    tokio::time::sleep(latency).await;
                }
                served.fetch_add(1, Ordering::SeqCst);
                if fail {
                    Err::<u32, BoxError>("dependency down".into())
                } else {
                    Ok(req)
                }
            }
        })
    }
}

async fn call<S>(svc: &mut S, req: u32) -> Result<u32, BoxError>
where
    S: Service<u32, Response = u32, Error = BoxError>,
{
    svc.ready().await?.call(req).await
}

#[tokio::test(start_paused = true)]
async fn retries_stop_at_the_open_breaker_and_never_reach_the_dependency() {
    let dep = Dependency::default();
    dep.failing.store(true, Ordering::SeqCst);
    let breaker = breaker(2, 10 * SEC);
    let policy = RetryPolicy::builder()
        .max_retries(3)
        .backoff(100 * MS, SEC)
        .jitter(0.0)
        .build()
        .unwrap();
    let mut svc = ServiceBuilder::new()
        .layer(policy.clone().into_layer())
        .layer(CircuitBreakerLayer::new(breaker.clone()))
        .service(dep.service());

    // Attempt 1 fails, retry 1 fails and trips the breaker, retry 2 is rejected by it:
    // the rejection ends the request.
    let start = Instant::now();
    let err = call(&mut svc, 1).await.unwrap_err();
    assert!(err.is::<Rejected>(), "{err}");
    assert_eq!(start.elapsed(), 300 * MS);
    assert_eq!(dep.calls(), 2);
    assert_eq!(breaker.state(), State::Open);

    // While open: every request is rejected at once, none is retried, none reaches the
    // dependency.
    for n in 0..20 {
        let start = Instant::now();
        let err = call(&mut svc, n).await.unwrap_err();
        assert!(err.is::<Rejected>());
        assert_eq!(start.elapsed(), Duration::ZERO);
    }
    assert_eq!(dep.calls(), 2);
    let stats = policy.stats();
    assert_eq!((stats.requests, stats.retries, stats.rejected), (21, 2, 21));
    assert_eq!(breaker.stats().rejected, 21);

    // After the open time, the dependency is back: the probe closes the circuit.
    dep.failing.store(false, Ordering::SeqCst);
    tokio::time::sleep(10 * SEC).await;
    assert_eq!(call(&mut svc, 7).await.unwrap(), 7);
    assert_eq!(breaker.state(), State::Closed);
    assert_eq!(dep.calls(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_breaker_aware_policy_does_not_even_wait_for_the_rejection() {
    let dep = Dependency::default();
    dep.failing.store(true, Ordering::SeqCst);
    let breaker = breaker(2, 10 * SEC);
    let policy = RetryPolicy::builder()
        .max_retries(3)
        .backoff(100 * MS, SEC)
        .jitter(0.0)
        .breaker(&breaker)
        .build()
        .unwrap();
    let mut svc = ServiceBuilder::new()
        .layer(policy.clone().into_layer())
        .layer(CircuitBreakerLayer::new(breaker.clone()))
        .service(dep.service());

    // The failure that trips the breaker is returned as it is, with no backoff after it.
    let start = Instant::now();
    let err = call(&mut svc, 1).await.unwrap_err();
    assert_eq!(err.to_string(), "dependency down");
    assert_eq!(start.elapsed(), 100 * MS);
    assert_eq!(dep.calls(), 2);
    for n in 0..20 {
        assert!(call(&mut svc, n).await.unwrap_err().is::<Rejected>());
    }
    assert_eq!(dep.calls(), 2);
    let stats = policy.stats();
    assert_eq!(
        (stats.retries, stats.breaker_open, stats.rejected),
        (1, 1, 20)
    );
}

#[tokio::test(start_paused = true)]
async fn the_adaptive_timeout_trips_the_breaker_on_a_slow_dependency() {
    let dep = Dependency::default();
    dep.latency_ms.store(10, Ordering::SeqCst);
    let breaker = breaker(3, 30 * SEC);
    let timeout = AdaptiveTimeoutLayer::builder()
        .percentile(0.99)
        .factor(2.0)
        .floor(MS)
        .ceiling(SEC)
        .min_samples(20)
        .build()
        .unwrap();
    let mut svc = ServiceBuilder::new()
        .layer(CircuitBreakerLayer::new(breaker.clone()))
        .layer(timeout.clone())
        .service(dep.service());

    // Healthy: 10 ms calls teach a timeout of p99 (10.24 ms) x 2.
    for n in 0..20 {
        assert_eq!(call(&mut svc, n).await.unwrap(), n);
    }
    assert_eq!(timeout.current_timeout(), Duration::from_micros(20_480));

    // The dependency turns slow (500 ms): three calls time out at 21 ms (tokio's tick
    // after 20.48 ms) and trip the breaker.
    dep.latency_ms.store(500, Ordering::SeqCst);
    for _ in 0..3 {
        let start = Instant::now();
        let err = call(&mut svc, 0).await.unwrap_err();
        assert_eq!(
            err.downcast_ref::<Elapsed>(),
            Some(&Elapsed::new(Duration::from_micros(20_480)))
        );
        assert_eq!(start.elapsed(), 21 * MS);
    }
    assert_eq!(breaker.state(), State::Open);
    assert_eq!(dep.calls(), 23);

    // Open: rejected at once, the dependency gets nothing.
    for _ in 0..10 {
        assert!(call(&mut svc, 0).await.unwrap_err().is::<Rejected>());
    }
    assert_eq!(dep.calls(), 23);
    // The timeouts taught the timeout nothing.
    assert_eq!(timeout.current_timeout(), Duration::from_micros(20_480));
    assert_eq!(timeout.stats().timeouts, 3);

    // Recovered by the end of the open time: the probe closes the circuit.
    dep.latency_ms.store(10, Ordering::SeqCst);
    tokio::time::sleep(30 * SEC).await;
    assert_eq!(call(&mut svc, 5).await.unwrap(), 5);
    assert_eq!(breaker.state(), State::Closed);
    assert_eq!(dep.calls(), 24);
}

#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Ok,
    Outage,
    Timeout,
    Rejected,
}

#[tokio::test(start_paused = true)]
async fn injected_latency_trips_the_breaker_through_the_adaptive_timeout() {
    let dep = Dependency::default();
    let breaker = breaker(3, 5 * SEC);
    let timeout = AdaptiveTimeoutLayer::builder()
        .floor(50 * MS)
        .ceiling(SEC)
        .min_samples(5)
        .build()
        .unwrap();
    let chaos = FaultInjectionLayer::builder()
        .rule(Rule::latency(1.0, 500 * MS).during(10 * SEC, 20 * SEC))
        .build()
        .unwrap();
    let mut svc = ServiceBuilder::new()
        .layer(CircuitBreakerLayer::new(breaker.clone()))
        .layer(timeout.clone())
        .layer(chaos.clone())
        .service(dep.service());

    let start = Instant::now();
    let mut seen = Vec::new();
    for second in 0..30u32 {
        tokio::time::sleep_until(start + second * SEC).await;
        seen.push(match call(&mut svc, second).await {
            Ok(_) => Seen::Ok,
            Err(e) if e.is::<Rejected>() => Seen::Rejected,
            Err(e) => {
                assert_eq!(e.downcast_ref::<Elapsed>(), Some(&Elapsed::new(50 * MS)));
                Seen::Timeout
            }
        });
    }
    let mut expected = Vec::new();
    expected.extend((0..10).map(|_| Seen::Ok)); // instant calls: the timeout is the floor
    expected.extend((10..13).map(|_| Seen::Timeout)); // +500 ms: 3 timeouts trip it at 12.05 s
    expected.extend((13..18).map(|_| Seen::Rejected)); // open until 17.05 s
    expected.push(Seen::Timeout); // 18: the probe is delayed too: re-opened until 23.05 s
    expected.extend((19..24).map(|_| Seen::Rejected));
    expected.extend((24..30).map(|_| Seen::Ok)); // 24: the delays are over; closed
    assert_eq!(seen, expected);
    assert_eq!(breaker.state(), State::Closed);
    assert_eq!(timeout.stats().timeouts, 4);
    // The four delayed calls were made but dropped before their first poll.
    assert_eq!(dep.calls(), 20);
    assert_eq!(dep.served.load(Ordering::SeqCst), 16);
    let faults = chaos.stats();
    assert_eq!((faults.calls, faults.delayed, faults.passed), (20, 4, 20));
}

#[tokio::test(start_paused = true)]
async fn an_injected_outage_trips_the_breaker_and_it_recovers_after() {
    let dep = Dependency::default();
    let breaker = breaker(3, 5 * SEC);
    let chaos = FaultInjectionLayer::builder()
        .seed(1)
        .rule(Rule::outage().during(10 * SEC, 20 * SEC))
        .build()
        .unwrap();
    let mut svc = ServiceBuilder::new()
        .layer(CircuitBreakerLayer::new(breaker.clone()))
        .layer(chaos.clone())
        .service(dep.service());

    // One call a second for 30 s.
    let start = Instant::now();
    let mut seen = Vec::new();
    for second in 0..30u32 {
        tokio::time::sleep_until(start + second * SEC).await;
        seen.push(match call(&mut svc, second).await {
            Ok(_) => Seen::Ok,
            Err(e) if e.is::<Rejected>() => Seen::Rejected,
            Err(e) => {
                let fault = e.downcast_ref::<InjectedFault>().expect("injected");
                assert_eq!(fault.kind(), FaultKind::Outage);
                Seen::Outage
            }
        });
    }
    let mut expected = Vec::new();
    expected.extend((0..10).map(|_| Seen::Ok)); // 0-9: healthy
    expected.extend((10..13).map(|_| Seen::Outage)); // 10-12: the outage trips it (at 12)
    expected.extend((13..17).map(|_| Seen::Rejected)); // 13-16: open for 5 s
    expected.push(Seen::Outage); // 17: the probe meets the outage: re-opened
    expected.extend((18..22).map(|_| Seen::Rejected)); // 18-21: open again
    expected.extend((22..30).map(|_| Seen::Ok)); // 22: the probe succeeds; closed
    assert_eq!(seen, expected);

    assert_eq!(breaker.state(), State::Closed);
    assert_eq!(breaker.stats().trips, 2);
    assert_eq!(dep.calls(), 18);
    let faults = chaos.stats();
    assert_eq!((faults.calls, faults.outages, faults.passed), (22, 4, 18));
}

#[tokio::test(start_paused = true)]
async fn a_full_bulkhead_does_not_trip_the_breaker() {
    let dep = Dependency::default();
    dep.latency_ms.store(1_000, Ordering::SeqCst);
    let breaker = breaker(1, 10 * SEC);
    let mut svc = ServiceBuilder::new()
        .layer(CircuitBreakerLayer::new(breaker.clone()).classify(IgnoreLocalRejections))
        .layer(BulkheadLayer::new(1))
        .service(dep.service());

    let slow = tokio::spawn(svc.ready().await.unwrap().call(1));
    for _ in 0..5 {
        let err = call(&mut svc, 2).await.unwrap_err();
        assert_eq!(
            err.downcast_ref::<BulkheadFull>(),
            Some(&BulkheadFull::full(1))
        );
    }
    // Five local rejections, threshold 1: still closed.
    assert_eq!(breaker.state(), State::Closed);
    assert_eq!(breaker.stats().ignored, 5);
    assert_eq!(slow.await.unwrap().unwrap(), 1);
    assert_eq!(dep.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn the_recommended_stack_end_to_end() {
    let dep = Dependency::default();
    let breaker = breaker(3, 5 * SEC);
    let retry = RetryPolicy::builder()
        .max_retries(3)
        .backoff(100 * MS, SEC)
        .jitter(0.0)
        .breaker(&breaker)
        .build()
        .unwrap();
    let timeout = AdaptiveTimeoutLayer::builder()
        .ceiling(2 * SEC)
        .build()
        .unwrap();
    let chaos = FaultInjectionLayer::builder()
        .seed(3)
        .rule(Rule::error(1.0).during(Duration::ZERO, SEC))
        .build()
        .unwrap();
    let mut svc = ServiceBuilder::new()
        .layer(retry.clone().into_layer())
        .layer(CircuitBreakerLayer::new(breaker.clone()).classify(IgnoreLocalRejections))
        .layer(BulkheadLayer::new(8))
        .layer(timeout)
        .layer(chaos.clone())
        .service(dep.service());

    // In the fault window: three injected errors (the first attempt and two retries) trip
    // the breaker; the policy sees it open and stops; the dependency was never called.
    let start = Instant::now();
    let err = call(&mut svc, 1).await.unwrap_err();
    assert!(err.is::<InjectedFault>(), "{err}");
    assert_eq!(start.elapsed(), 300 * MS);
    assert_eq!(breaker.state(), State::Open);
    assert_eq!(chaos.stats().errors, 3);
    assert_eq!(dep.calls(), 0);

    // Open: rejected, not retried, the layers below see nothing.
    for n in 0..10 {
        assert!(call(&mut svc, n).await.unwrap_err().is::<Rejected>());
    }
    assert_eq!(chaos.stats().calls, 3);

    // After the open time (and the fault window): served.
    tokio::time::sleep(5 * SEC).await;
    assert_eq!(call(&mut svc, 9).await.unwrap(), 9);
    assert_eq!(breaker.state(), State::Closed);
    assert_eq!(dep.calls(), 1);
    let stats = retry.stats();
    assert_eq!(
        (
            stats.requests,
            stats.retries,
            stats.breaker_open,
            stats.rejected
        ),
        (12, 2, 1, 10)
    );
}
