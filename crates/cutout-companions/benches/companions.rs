//! What each companion adds to one call, beside the bare service and tower's own middleware.
//!
//! Every call goes through `ready()` + `call()` on a `service_fn` that answers at once; the
//! futures are polled once with `now_or_never` inside an entered current-thread runtime
//! (so timers can be created), single-threaded.
//!
//! - `companions_timeout`: bare, tower's `Timeout`, `AdaptiveTimeout`; and
//!   `current_timeout` alone on an empty and on a warm histogram (the quantile scan).
//! - `companions_bulkhead`: `Bulkhead` (tower's `LoadShed` + `ConcurrencyLimit`) and
//!   `KeyedBulkhead` (one key, and 1000 keys in turn).
//! - `companions_fault`: a disabled layer, and an enabled one whose rule never fires.
//! - `companions_retry`: tower's `Retry` with `RetryPolicy` on the success path.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use cutout_companions::BoxError;
use cutout_companions::bulkhead::{BulkheadLayer, KeyedBulkheadLayer};
use cutout_companions::fault::{FaultInjectionLayer, Rule};
use cutout_companions::retry::RetryPolicy;
use cutout_companions::timeout::AdaptiveTimeoutLayer;
use futures::FutureExt;
use tower::{Service, ServiceBuilder, ServiceExt};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
}

fn bare() -> impl Service<u64, Response = u64, Error = BoxError> + Clone {
    tower::service_fn(|n: u64| std::future::ready(Ok::<_, BoxError>(n)))
}

/// One `ready` + `call`, polled once.
#[inline]
fn once<S: Service<u64, Response = u64, Error = BoxError>>(svc: &mut S, n: u64) -> u64 {
    let ready = svc.ready().now_or_never().expect("ready").expect("ok");
    ready.call(n).now_or_never().expect("done").expect("ok")
}

fn timeout(c: &mut Criterion) {
    let rt = runtime();
    let _entered = rt.enter();
    let mut g = c.benchmark_group("companions_timeout");
    g.bench_function(BenchmarkId::new("floor", "tokio_instant_now"), |b| {
        b.iter(tokio::time::Instant::now)
    });
    g.bench_function(BenchmarkId::new("floor", "std_instant_now"), |b| {
        b.iter(std::time::Instant::now)
    });
    let mut plain = bare();
    g.bench_function(BenchmarkId::new("call", "bare"), |b| {
        b.iter(|| once(&mut plain, black_box(1)))
    });
    let mut tower_timeout = ServiceBuilder::new()
        .timeout(Duration::from_secs(1))
        .service(bare());
    g.bench_function(BenchmarkId::new("call", "tower_timeout"), |b| {
        b.iter(|| once(&mut tower_timeout, black_box(1)))
    });
    let layer = AdaptiveTimeoutLayer::builder().build().unwrap();
    let mut adaptive = ServiceBuilder::new().layer(layer.clone()).service(bare());
    g.bench_function(BenchmarkId::new("call", "adaptive_timeout"), |b| {
        b.iter(|| once(&mut adaptive, black_box(1)))
    });

    let empty = AdaptiveTimeoutLayer::builder().build().unwrap();
    g.bench_function(BenchmarkId::new("current_timeout", "empty"), |b| {
        b.iter(|| black_box(&empty).current_timeout())
    });
    // A warm history: 10 000 latencies spread over 1..100 ms, recorded through a service
    // whose latency is a paused-clock sleep.
    let warm = warm_layer();
    g.bench_function(
        BenchmarkId::new("current_timeout", "warm_10k_1_to_100ms"),
        |b| b.iter(|| black_box(&warm).current_timeout()),
    );
    g.finish();
}

fn warm_layer() -> AdaptiveTimeoutLayer {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async {
        let layer = AdaptiveTimeoutLayer::builder()
            .window(Duration::from_secs(1_000_000))
            .build()
            .unwrap();
        let mut svc = ServiceBuilder::new()
            .layer(layer.clone())
            .service(tower::service_fn(|ms: u64| async move {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Ok::<_, BoxError>(ms)
            }));
        for i in 0..10_000u64 {
            svc.ready().await.unwrap().call(1 + i % 100).await.unwrap();
        }
        layer
    })
}

fn bulkhead(c: &mut Criterion) {
    let rt = runtime();
    let _entered = rt.enter();
    let mut g = c.benchmark_group("companions_bulkhead");
    let mut plain = bare();
    g.bench_function(BenchmarkId::new("call", "bare"), |b| {
        b.iter(|| once(&mut plain, black_box(1)))
    });
    let mut bulkhead = ServiceBuilder::new()
        .layer(BulkheadLayer::new(64))
        .service(bare());
    g.bench_function(BenchmarkId::new("call", "bulkhead"), |b| {
        b.iter(|| once(&mut bulkhead, black_box(1)))
    });
    let mut keyed = ServiceBuilder::new()
        .layer(KeyedBulkheadLayer::new(64, 10_000, |_: &u64| 0u64))
        .service(bare());
    g.bench_function(BenchmarkId::new("call", "keyed_one_key"), |b| {
        b.iter(|| once(&mut keyed, black_box(1)))
    });
    let mut keyed_many = ServiceBuilder::new()
        .layer(KeyedBulkheadLayer::new(64, 10_000, |n: &u64| *n % 1_000))
        .service(bare());
    let mut n = 0u64;
    g.bench_function(BenchmarkId::new("call", "keyed_1000_keys"), |b| {
        b.iter(|| {
            n = n.wrapping_add(1);
            once(&mut keyed_many, n)
        })
    });
    g.finish();
}

fn fault(c: &mut Criterion) {
    let rt = runtime();
    let _entered = rt.enter();
    let mut g = c.benchmark_group("companions_fault");
    let mut plain = bare();
    g.bench_function(BenchmarkId::new("call", "bare"), |b| {
        b.iter(|| once(&mut plain, black_box(1)))
    });
    let mut disabled = ServiceBuilder::new()
        .layer(FaultInjectionLayer::disabled())
        .service(bare());
    g.bench_function(BenchmarkId::new("call", "disabled"), |b| {
        b.iter(|| once(&mut disabled, black_box(1)))
    });
    let quiet = FaultInjectionLayer::builder()
        .rule(Rule::error(0.0))
        .build()
        .unwrap();
    let mut enabled = ServiceBuilder::new().layer(quiet).service(bare());
    g.bench_function(BenchmarkId::new("call", "enabled_never_fires"), |b| {
        b.iter(|| once(&mut enabled, black_box(1)))
    });
    g.finish();
}

fn retry(c: &mut Criterion) {
    let rt = runtime();
    let _entered = rt.enter();
    let mut g = c.benchmark_group("companions_retry");
    let mut plain = bare();
    g.bench_function(BenchmarkId::new("call", "bare"), |b| {
        b.iter(|| once(&mut plain, black_box(1)))
    });
    let policy = RetryPolicy::builder().seed(1).build().unwrap();
    let mut retry = ServiceBuilder::new()
        .layer(policy.into_layer())
        .service(bare());
    g.bench_function(BenchmarkId::new("call", "retry_success"), |b| {
        b.iter(|| once(&mut retry, black_box(1)))
    });
    g.finish();
}

criterion_group!(benches, timeout, bulkhead, fault, retry);
criterion_main!(benches);
