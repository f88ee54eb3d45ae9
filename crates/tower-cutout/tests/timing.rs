//! Backpressure and slow calls, on paused tokio time (the breaker runs on `TokioClock`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use cutout::{State, TokioClock};
use futures::poll;
use tokio::time::Instant;
use tower::{Layer, Service, ServiceExt};
use tower_cutout::CircuitBreakerLayer;
use tower_cutout::error::Rejected;

/// A service that fails for 0 and echoes otherwise, after `delay_ms` = the request, and
/// counts `poll_ready` and `call`.
#[derive(Clone, Default)]
struct Dependency {
    polls: Arc<AtomicUsize>,
    calls: Arc<AtomicUsize>,
}

impl Service<u64> for Dependency {
    type Response = u64;
    type Error = &'static str;
    type Future = std::pin::Pin<Box<dyn Future<Output = Result<u64, &'static str>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.polls.fetch_add(1, Ordering::SeqCst);
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, delay_ms: u64) -> Self::Future {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            if delay_ms == 0 {
                Err("down")
            } else {
                Ok(delay_ms)
            }
        })
    }
}

fn layer(threshold: u32, open: Duration) -> CircuitBreakerLayer {
    CircuitBreakerLayer::from_builder_with_clock(
        cutout::CircuitBreaker::builder()
            .failure_threshold(threshold)
            .open_duration(open),
        TokioClock::new(),
    )
    .unwrap()
}

#[tokio::test(start_paused = true)]
async fn backpressure_is_pending_until_the_open_time_ends_and_wakes_itself() {
    let layer = layer(1, Duration::from_secs(10))
        .backpressure()
        .recheck_interval(Duration::from_secs(60));
    let dep = Dependency::default();
    let mut svc = layer.layer(dep.clone());
    assert_eq!(
        svc.ready()
            .await
            .unwrap()
            .call(0)
            .await
            .unwrap_err()
            .to_string(),
        "down"
    );
    assert_eq!(layer.breaker().state(), State::Open);
    let polls = dep.polls.load(Ordering::SeqCst);

    let start = Instant::now();
    {
        let mut ready = svc.ready();
        assert!(poll!(&mut ready).is_pending());
        tokio::time::advance(Duration::from_millis(9_999)).await;
        assert!(poll!(&mut ready).is_pending());
        // Waiting polls neither the inner service nor counts a rejection.
        assert_eq!(dep.polls.load(Ordering::SeqCst), polls);
        assert_eq!(layer.breaker().stats().rejected, 0);
        // The wake-up at the deadline: nothing but the timer drives it.
        ready.await.unwrap();
    }
    assert_eq!(start.elapsed(), Duration::from_secs(10));
    assert_eq!(layer.breaker().state(), State::HalfOpen);
    assert_eq!(svc.call(5).await.unwrap(), 5);
    assert_eq!(layer.breaker().state(), State::Closed);
    assert_eq!(dep.calls.load(Ordering::SeqCst), 2);
    assert_eq!(layer.breaker().stats().rejected, 0);
}

#[tokio::test(start_paused = true)]
async fn backpressure_rechecks_a_forced_open_breaker() {
    let layer = layer(1, Duration::from_secs(10))
        .backpressure()
        .recheck_interval(Duration::from_secs(1));
    let mut svc = layer.layer(Dependency::default());
    layer.breaker().force_open();
    let breaker = layer.breaker().clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(2_500)).await;
        breaker.reset();
    });
    let start = Instant::now();
    svc.ready().await.unwrap();
    // Rechecks at 1 s, 2 s, 3 s: the reset at 2.5 s is seen at 3 s.
    assert_eq!(start.elapsed(), Duration::from_secs(3));
    assert_eq!(svc.call(1).await.unwrap(), 1);
}

#[tokio::test(start_paused = true)]
async fn backpressure_waits_for_a_half_open_slot() {
    let layer = layer(1, Duration::from_secs(10))
        .backpressure()
        .recheck_interval(Duration::from_millis(500));
    let mut prober = layer.layer(Dependency::default());
    let mut waiter = layer.layer(Dependency::default());
    assert!(prober.ready().await.unwrap().call(0).await.is_err());
    tokio::time::advance(Duration::from_secs(10)).await;

    // The prober reserves the only probe slot; the waiter waits.
    prober.ready().await.unwrap();
    let start = Instant::now();
    let probe = tokio::spawn(prober.call(1_200));
    waiter.ready().await.unwrap();
    // The probe closes the circuit at 1.2 s; the waiter looks again every 0.5 s.
    assert_eq!(start.elapsed(), Duration::from_millis(1_500));
    assert_eq!(probe.await.unwrap().unwrap(), 1_200);
    assert_eq!(layer.breaker().state(), State::Closed);
    assert_eq!(waiter.call(3).await.unwrap(), 3);
}

#[test]
fn backpressure_without_a_runtime_fails_fast() {
    let clock = cutout::ManualClock::new();
    let breaker = cutout::CircuitBreaker::builder()
        .build_with_clock(clock)
        .unwrap();
    breaker.force_open();
    let dep = Dependency::default();
    let mut svc = CircuitBreakerLayer::new(breaker)
        .backpressure()
        .layer(dep.clone());
    let mut cx = Context::from_waker(std::task::Waker::noop());
    assert!(matches!(svc.poll_ready(&mut cx), Poll::Ready(Ok(()))));
    let err = futures::executor::block_on(svc.call(1)).unwrap_err();
    assert!(err.is::<Rejected>());
    assert_eq!(dep.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test(start_paused = true)]
async fn a_call_slower_than_the_threshold_is_a_failure() {
    let layer = layer(2, Duration::from_secs(10)).slow_call_threshold(Duration::from_millis(100));
    let mut svc = layer.layer(Dependency::default());
    // Exactly at the threshold is not slow.
    assert_eq!(svc.ready().await.unwrap().call(100).await.unwrap(), 100);
    assert_eq!(layer.breaker().stats().failures, 0);
    // Slow successes are failures: two trip the breaker.
    for _ in 0..2 {
        assert_eq!(svc.ready().await.unwrap().call(101).await.unwrap(), 101);
    }
    let stats = layer.breaker().stats();
    assert_eq!(
        (stats.state, stats.successes, stats.failures),
        (State::Open, 1, 2)
    );
}

#[tokio::test(start_paused = true)]
async fn without_a_threshold_slow_calls_are_successes() {
    let layer = layer(1, Duration::from_secs(10));
    let mut svc = layer.layer(Dependency::default());
    assert_eq!(
        svc.ready().await.unwrap().call(60_000).await.unwrap(),
        60_000
    );
    assert_eq!(layer.breaker().state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_load_balancer_routes_around_an_endpoint_whose_breaker_is_open() {
    use tower::balance::p2c::Balance;
    use tower::discover::ServiceList;
    use tower::load::Constant;

    let (sick_calls, healthy_calls) =
        (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let sick_layer = layer(2, Duration::from_secs(10)).backpressure();
    let healthy_layer = layer(2, Duration::from_secs(10)).backpressure();
    /// An endpoint that always fails or always answers, counting its calls.
    fn endpoint(
        calls: Arc<AtomicUsize>,
        sick: bool,
    ) -> impl Service<
        u64,
        Response = &'static str,
        Error = &'static str,
        Future = std::future::Ready<Result<&'static str, &'static str>>,
    > {
        tower::service_fn(move |_: u64| {
            calls.fetch_add(1, Ordering::SeqCst);
            std::future::ready(if sick {
                Err("sick endpoint")
            } else {
                Ok("healthy endpoint")
            })
        })
    }
    let sick = sick_layer.layer(endpoint(sick_calls.clone(), true));
    let healthy = healthy_layer.layer(endpoint(healthy_calls.clone(), false));
    let mut balance = Balance::new(ServiceList::new(vec![
        Constant::new(sick, 0),
        Constant::new(healthy, 0),
    ]));

    let mut errors = 0;
    for i in 0..50 {
        match balance.ready().await.unwrap().call(i).await {
            Ok(answer) => assert_eq!(answer, "healthy endpoint"),
            Err(e) => {
                assert_eq!(e.to_string(), "sick endpoint");
                errors += 1;
            }
        }
    }
    // The sick endpoint got exactly the two calls that tripped its breaker; from then on
    // it was not ready, so the balancer sent everything to the healthy one.
    assert_eq!(sick_calls.load(Ordering::SeqCst), 2);
    assert_eq!(healthy_calls.load(Ordering::SeqCst), 48);
    assert_eq!(errors, 2);
    assert_eq!(sick_layer.breaker().state(), State::Open);
    assert_eq!(sick_layer.breaker().stats().rejected, 0);
}
