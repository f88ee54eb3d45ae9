//! Fault injection on paused tokio time: seeded, scheduled, exact.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cutout_companions::fault::{FaultInjectionLayer, FaultKind, FaultStats, InjectedFault, Rule};
use cutout_companions::{BoxError, ConfigError};
use tokio::time::Instant;
use tower::{Service, ServiceBuilder, ServiceExt};

const MS: Duration = Duration::from_millis(1);
const SEC: Duration = Duration::from_secs(1);

/// A service that counts calls and records when each one was first polled.
#[derive(Clone)]
struct Counted {
    start: Instant,
    calls: Arc<AtomicUsize>,
    polled_at: Arc<std::sync::Mutex<Vec<Duration>>>,
}

impl Counted {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            calls: Arc::default(),
            polled_at: Arc::default(),
        }
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl Service<u32> for Counted {
    type Response = u32;
    type Error = BoxError;
    type Future = std::pin::Pin<Box<dyn Future<Output = Result<u32, BoxError>> + Send>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), BoxError>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: u32) -> Self::Future {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let (start, polled_at) = (self.start, self.polled_at.clone());
        Box::pin(async move {
            polled_at.lock().unwrap().push(start.elapsed());
            Ok(req)
        })
    }
}

fn kind(err: BoxError) -> FaultKind {
    err.downcast_ref::<InjectedFault>()
        .unwrap_or_else(|| panic!("not injected: {err}"))
        .kind()
}

fn counters(s: FaultStats) -> [u64; 5] {
    [s.calls, s.errors, s.outages, s.delayed, s.passed]
}

#[tokio::test(start_paused = true)]
async fn a_disabled_layer_is_a_pass_through() {
    let layer = FaultInjectionLayer::disabled();
    let inner = Counted::new();
    let mut svc = ServiceBuilder::new()
        .layer(layer.clone())
        .service(inner.clone());
    let start = Instant::now();
    for n in 0..100 {
        assert_eq!(svc.ready().await.unwrap().call(n).await.unwrap(), n);
    }
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert_eq!(inner.calls(), 100);
    assert_eq!(counters(layer.stats()), [0; 5]);
    assert!(!layer.is_enabled());
    layer.set_enabled(true); // no plan: stays off
    assert!(!layer.is_enabled());
    // Default is disabled too.
    assert!(!FaultInjectionLayer::default().is_enabled());
}

#[tokio::test(start_paused = true)]
async fn errors_fail_without_calling_the_inner_service() {
    let layer = FaultInjectionLayer::builder()
        .rule(Rule::error(1.0))
        .build()
        .unwrap();
    let inner = Counted::new();
    let mut svc = ServiceBuilder::new()
        .layer(layer.clone())
        .service(inner.clone());
    for n in 0..10 {
        let err = svc.ready().await.unwrap().call(n).await.unwrap_err();
        assert_eq!(kind(err), FaultKind::Error);
    }
    assert_eq!(inner.calls(), 0);
    assert_eq!(counters(layer.stats()), [10, 10, 0, 0, 0]);

    // Switched off at run time: a pass-through; back on: failing again.
    layer.set_enabled(false);
    assert_eq!(svc.ready().await.unwrap().call(7).await.unwrap(), 7);
    layer.set_enabled(true);
    assert!(svc.ready().await.unwrap().call(8).await.is_err());
    assert_eq!(inner.calls(), 1);
    assert_eq!(counters(layer.stats()), [11, 11, 0, 0, 0]);
}

async fn pattern(seed: u64, p: f64, n: u32) -> Vec<bool> {
    let layer = FaultInjectionLayer::builder()
        .seed(seed)
        .rule(Rule::error(p))
        .build()
        .unwrap();
    let mut svc = ServiceBuilder::new().layer(layer).service(Counted::new());
    let mut failed = Vec::new();
    for i in 0..n {
        failed.push(svc.ready().await.unwrap().call(i).await.is_err());
    }
    failed
}

#[tokio::test(start_paused = true)]
async fn probabilities_are_seeded_and_reproducible() {
    let a = pattern(1, 0.25, 4_000).await;
    assert_eq!(a, pattern(1, 0.25, 4_000).await, "same seed, same faults");
    assert_ne!(
        a,
        pattern(2, 0.25, 4_000).await,
        "another seed, other faults"
    );
    let failures = a.iter().filter(|f| **f).count();
    // Binomial(4000, 0.25): mean 1000, sd 27; six sd either way.
    assert!((838..=1162).contains(&failures), "{failures} failures");
    // Probability 0 never fires, 1 always does.
    assert!(pattern(3, 0.0, 1_000).await.iter().all(|f| !f));
    assert!(pattern(3, 1.0, 1_000).await.iter().all(|f| *f));
}

#[tokio::test(start_paused = true)]
async fn latency_delays_the_first_poll_of_the_inner_future() {
    let layer = FaultInjectionLayer::builder()
        .rule(Rule::latency(1.0, 250 * MS))
        .rule(Rule::latency(1.0, 50 * MS))
        .build()
        .unwrap();
    let inner = Counted::new();
    let mut svc = ServiceBuilder::new()
        .layer(layer.clone())
        .service(inner.clone());
    let start = Instant::now();
    assert_eq!(svc.ready().await.unwrap().call(1).await.unwrap(), 1);
    assert_eq!(start.elapsed(), 300 * MS, "the delays add up");
    assert_eq!(*inner.polled_at.lock().unwrap(), vec![300 * MS]);
    assert_eq!(counters(layer.stats()), [1, 0, 0, 1, 1]);
}

#[tokio::test(start_paused = true)]
async fn a_delayed_failure_waits_then_fails() {
    let layer = FaultInjectionLayer::builder()
        .rule(Rule::latency(1.0, 2 * SEC))
        .rule(Rule::error(1.0))
        .build()
        .unwrap();
    let inner = Counted::new();
    let mut svc = ServiceBuilder::new()
        .layer(layer.clone())
        .service(inner.clone());
    let start = Instant::now();
    let err = svc.ready().await.unwrap().call(1).await.unwrap_err();
    assert_eq!(kind(err), FaultKind::Error);
    assert_eq!(start.elapsed(), 2 * SEC);
    assert_eq!(inner.calls(), 0);
    assert_eq!(counters(layer.stats()), [1, 1, 0, 1, 0]);
}

#[tokio::test(start_paused = true)]
async fn outage_windows_follow_the_schedule() {
    let layer = FaultInjectionLayer::builder()
        .rule(Rule::outage().during(10 * SEC, 20 * SEC))
        .rule(Rule::error(1.0).starting_at(40 * SEC))
        .build()
        .unwrap();
    let inner = Counted::new();
    let mut svc = ServiceBuilder::new()
        .layer(layer.clone())
        .service(inner.clone());
    let start = Instant::now();
    let mut outcomes = Vec::new();
    for at in [
        0, 9_999, 10_000, 15_000, 19_999, 20_000, 39_999, 40_000, 100_000,
    ] {
        tokio::time::sleep_until(start + at * MS).await;
        let result = svc.ready().await.unwrap().call(0).await;
        outcomes.push((at, result.map_err(kind)));
    }
    assert_eq!(
        outcomes,
        vec![
            (0, Ok(0)),
            (9_999, Ok(0)),
            (10_000, Err(FaultKind::Outage)),
            (15_000, Err(FaultKind::Outage)),
            (19_999, Err(FaultKind::Outage)),
            (20_000, Ok(0)),
            (39_999, Ok(0)),
            (40_000, Err(FaultKind::Error)),
            (100_000, Err(FaultKind::Error)),
        ]
    );
    assert_eq!(inner.calls(), 4);
    assert_eq!(counters(layer.stats()), [9, 2, 3, 0, 4]);
}

#[tokio::test(start_paused = true)]
async fn the_first_rule_that_fires_names_the_fault() {
    let layer = FaultInjectionLayer::builder()
        .rule(Rule::error(1.0))
        .rule(Rule::outage())
        .build()
        .unwrap();
    let mut svc = ServiceBuilder::new()
        .layer(layer.clone())
        .service(Counted::new());
    let err = svc.ready().await.unwrap().call(0).await.unwrap_err();
    // The first rule that fires names the fault.
    assert_eq!(kind(err), FaultKind::Error);
    let stats = layer.stats();
    assert_eq!((stats.errors, stats.outages), (1, 0));
}

#[tokio::test(start_paused = true)]
async fn clones_share_the_schedule_and_the_counters() {
    let layer = FaultInjectionLayer::builder()
        .seed(9)
        .rule(Rule::error(0.5))
        .build()
        .unwrap();
    let mut a = ServiceBuilder::new()
        .layer(layer.clone())
        .service(Counted::new());
    let mut b = a.clone();
    for n in 0..50 {
        let _ = a.ready().await.unwrap().call(n).await;
        let _ = b.ready().await.unwrap().call(n).await;
    }
    let stats = layer.stats();
    assert_eq!(stats.calls, 100);
    assert_eq!(stats.errors + stats.passed, 100);
}

#[test]
fn bad_rules_are_refused() {
    let build = |rule: Rule| {
        FaultInjectionLayer::builder()
            .rule(rule)
            .build()
            .unwrap_err()
    };
    assert_eq!(
        build(Rule::error(1.5)),
        ConfigError::OutOfRange {
            setting: "fault probability",
            value: 1.5
        }
    );
    assert_eq!(
        build(Rule::latency(-0.1, MS)),
        ConfigError::OutOfRange {
            setting: "fault probability",
            value: -0.1
        }
    );
    assert!(matches!(
        build(Rule::error(f64::NAN)),
        ConfigError::OutOfRange { value, .. } if value.is_nan()
    ));
    assert_eq!(
        build(Rule::outage().during(2 * SEC, SEC)),
        ConfigError::Inverted {
            low: "fault window start",
            low_value: 2 * SEC,
            high: "fault window end",
            high_value: SEC,
        }
    );
    // An empty window is allowed (it never fires).
    FaultInjectionLayer::builder()
        .rule(Rule::outage().during(SEC, SEC))
        .build()
        .unwrap();
}
