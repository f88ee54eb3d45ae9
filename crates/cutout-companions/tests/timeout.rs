//! The adaptive timeout on paused tokio time: exact timeouts from known latencies.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use cutout_companions::timeout::{AdaptiveTimeoutLayer, Elapsed, MAX_TIMEOUT};
use cutout_companions::{BoxError, ConfigError};
use tokio::time::Instant;
use tower::{Service, ServiceBuilder, ServiceExt};

const MS: Duration = Duration::from_millis(1);
const US: Duration = Duration::from_micros(1);

/// A service that sleeps `req` microseconds, then answers `Ok(req)`, or fails at once when
/// `req` is 0.
fn sleeper() -> impl Service<u64, Response = u64, Error = BoxError> + Clone {
    tower::service_fn(|us: u64| async move {
        if us == 0 {
            return Err::<u64, BoxError>("refused".into());
        }
        tokio::time::sleep(Duration::from_micros(us)).await;
        Ok(us)
    })
}

async fn timed<S>(svc: &mut S, us: u64) -> (Result<u64, BoxError>, Duration)
where
    S: Service<u64, Response = u64, Error = BoxError>,
{
    let start = Instant::now();
    let result = svc.ready().await.unwrap().call(us).await;
    (result, start.elapsed())
}

fn elapsed(err: BoxError) -> Elapsed {
    *err.downcast_ref::<Elapsed>()
        .unwrap_or_else(|| panic!("not a timeout: {err}"))
}

fn builder() -> cutout_companions::timeout::AdaptiveTimeoutBuilder {
    AdaptiveTimeoutLayer::builder()
        .percentile(0.99)
        .factor(2.0)
        .floor(MS)
        .ceiling(Duration::from_secs(1))
        .min_samples(20)
        .window(Duration::from_secs(10))
}

#[tokio::test(start_paused = true)]
async fn the_initial_timeout_holds_until_there_are_enough_samples() {
    let layer = builder().initial(300 * MS).build().unwrap();
    let mut svc = ServiceBuilder::new()
        .layer(layer.clone())
        .service(sleeper());
    for n in 0..19 {
        timed(&mut svc, 10_000).await.0.unwrap();
        assert_eq!(layer.current_timeout(), 300 * MS, "after {} samples", n + 1);
    }
    let (err, took) = timed(&mut svc, 400_000).await;
    assert_eq!(elapsed(err.unwrap_err()), Elapsed::new(300 * MS));
    assert_eq!(took, 300 * MS);
    // The 20th success switches to p99 x 2: 10 ms is in the bucket [9.216, 10.24) ms.
    timed(&mut svc, 10_000).await.0.unwrap();
    assert_eq!(layer.current_timeout(), 20_480 * US);
    let stats = layer.stats();
    assert_eq!(stats.timeout, 20_480 * US);
    assert_eq!(stats.quantile, Some(10_240 * US));
    assert_eq!(stats.samples, 20);
    assert_eq!(stats.timeouts, 1);
}

#[tokio::test(start_paused = true)]
async fn the_timeout_follows_the_percentile() {
    let layer = builder().min_samples(100).build().unwrap();
    let mut svc = ServiceBuilder::new()
        .layer(layer.clone())
        .service(sleeper());
    // 99 calls of 1 ms and one of 100 ms: p99 is in the 1 ms bucket [0.96, 1.024) ms.
    for _ in 0..99 {
        timed(&mut svc, 1_000).await.0.unwrap();
    }
    timed(&mut svc, 100_000).await.0.unwrap();
    assert_eq!(layer.stats().quantile, Some(1_024 * US));
    assert_eq!(layer.current_timeout(), 2_048 * US);

    // Under the timeout succeeds; over it times out, at tokio's first millisecond tick at
    // or after the timeout.
    // (A timeout adds no sample; a success does, so it comes last.)
    let (err, took) = timed(&mut svc, 4_000).await;
    assert_eq!(elapsed(err.unwrap_err()).timeout(), 2_048 * US);
    assert_eq!(took, 3 * MS);
    let (ok, took) = timed(&mut svc, 2_000).await;
    assert_eq!(ok.unwrap(), 2_000);
    assert_eq!(took, 2 * MS);
    // Now the 100th of 101 samples is the 2 ms one: [1.92, 2.048) ms.
    assert_eq!(layer.current_timeout(), 4_096 * US);

    // p100 follows the slowest call instead.
    let p100 = builder().percentile(1.0).min_samples(100).build().unwrap();
    let mut svc = ServiceBuilder::new().layer(p100.clone()).service(sleeper());
    for _ in 0..99 {
        timed(&mut svc, 1_000).await.0.unwrap();
    }
    timed(&mut svc, 100_000).await.0.unwrap();
    assert_eq!(p100.stats().quantile, Some(106_496 * US));
    assert_eq!(p100.current_timeout(), 212_992 * US);
}

#[tokio::test(start_paused = true)]
async fn floor_and_ceiling_clamp_the_timeout() {
    let layer = builder()
        .floor(10 * MS)
        .ceiling(50 * MS)
        .min_samples(1)
        .build()
        .unwrap();
    let mut svc = ServiceBuilder::new()
        .layer(layer.clone())
        .service(sleeper());
    timed(&mut svc, 100).await.0.unwrap(); // p99 x 2 = 0.208 ms
    assert_eq!(layer.current_timeout(), 10 * MS);

    let layer = builder()
        .floor(10 * MS)
        .ceiling(50 * MS)
        .min_samples(1)
        .build()
        .unwrap();
    let mut svc = ServiceBuilder::new()
        .layer(layer.clone())
        .service(sleeper());
    timed(&mut svc, 40_000).await.0.unwrap(); // p99 x 2 = 81.92 ms
    assert_eq!(layer.current_timeout(), 50 * MS);
}

#[tokio::test(start_paused = true)]
async fn errors_and_timeouts_add_no_sample() {
    let layer = builder().min_samples(1).initial(5 * MS).build().unwrap();
    let mut svc = ServiceBuilder::new()
        .layer(layer.clone())
        .service(sleeper());
    let (err, _) = timed(&mut svc, 0).await;
    assert_eq!(err.unwrap_err().to_string(), "refused");
    let (err, took) = timed(&mut svc, 900_000).await;
    assert_eq!(elapsed(err.unwrap_err()), Elapsed::new(5 * MS));
    assert_eq!(took, 5 * MS);
    let stats = layer.stats();
    assert_eq!((stats.samples, stats.timeouts), (0, 1));
    assert_eq!(stats.quantile, None);
    // A slow dependency keeps hitting the timeout learnt while it was fast.
    timed(&mut svc, 1_000).await.0.unwrap();
    assert_eq!(layer.current_timeout(), 2_048 * US);
    for _ in 0..10 {
        let (err, took) = timed(&mut svc, 500_000).await;
        assert_eq!(elapsed(err.unwrap_err()).timeout(), 2_048 * US);
        assert_eq!(took, 3 * MS, "2.048 ms, on tokio's millisecond tick");
    }
    assert_eq!(layer.current_timeout(), 2_048 * US);
    assert_eq!(layer.stats().timeouts, 11);
}

#[tokio::test(start_paused = true)]
async fn old_latencies_are_forgotten() {
    let layer = builder()
        .min_samples(5)
        .window(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut svc = ServiceBuilder::new()
        .layer(layer.clone())
        .service(sleeper());
    for _ in 0..5 {
        timed(&mut svc, 100_000).await.0.unwrap(); // 100 ms: [98.304, 106.496) ms
    }
    assert_eq!(layer.current_timeout(), 212_992 * US);

    // Next window: the old samples still count.
    tokio::time::sleep_until(Instant::now() + Duration::from_secs(10)).await;
    for _ in 0..5 {
        timed(&mut svc, 1_000).await.0.unwrap();
    }
    assert_eq!(layer.stats().samples, 10);
    assert_eq!(layer.current_timeout(), 212_992 * US);

    // The window after: only the 1 ms samples are left.
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(layer.stats().samples, 5);
    assert_eq!(layer.current_timeout(), 2_048 * US);

    // Two quiet windows later: nothing is left, back to the initial timeout (the ceiling).
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert_eq!(layer.stats().samples, 0);
    assert_eq!(layer.current_timeout(), Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn services_of_one_layer_share_one_history() {
    let latency = Arc::new(AtomicU64::new(1_000));
    let layer = builder().min_samples(2).build().unwrap();
    let make = || {
        let latency = latency.clone();
        ServiceBuilder::new()
            .layer(layer.clone())
            .service(tower::service_fn(move |_: ()| {
                let us = latency.load(Ordering::SeqCst);
                async move {
                    tokio::time::sleep(Duration::from_micros(us)).await;
                    Ok::<_, BoxError>(())
                }
            }))
    };
    let (mut a, mut b) = (make(), make());
    a.ready().await.unwrap().call(()).await.unwrap();
    b.ready().await.unwrap().call(()).await.unwrap();
    assert_eq!(layer.stats().samples, 2);
    assert_eq!(layer.current_timeout(), 2_048 * US);
}

#[tokio::test(start_paused = true)]
async fn calls_see_new_samples_from_the_next_millisecond() {
    let layer = builder()
        .min_samples(1)
        .floor(5 * MS)
        .initial(500 * MS)
        .build()
        .unwrap();
    let mut svc = ServiceBuilder::new()
        .layer(layer.clone())
        .service(tower::service_fn(|slow: bool| async move {
            if slow {
                tokio::time::sleep(Duration::from_secs(10)).await;
            }
            Ok::<_, BoxError>(slow)
        }));
    let start = Instant::now();
    // An instant success at t = 0: the history now says "fast" (the floor, 5 ms).
    assert!(!svc.ready().await.unwrap().call(false).await.unwrap());
    assert_eq!(layer.current_timeout(), 5 * MS);
    // A call in the same millisecond still gets the timeout computed in it (500 ms)...
    let err = svc.ready().await.unwrap().call(true).await.unwrap_err();
    assert_eq!(elapsed(err), Elapsed::new(500 * MS));
    assert_eq!(start.elapsed(), 500 * MS);
    // ...a call in a later millisecond gets the new one.
    let err = svc.ready().await.unwrap().call(true).await.unwrap_err();
    assert_eq!(elapsed(err), Elapsed::new(5 * MS));
    assert_eq!(start.elapsed(), 505 * MS);
}

#[test]
fn bad_settings_are_refused() {
    let b = AdaptiveTimeoutLayer::builder;
    let err =
        |builder: cutout_companions::timeout::AdaptiveTimeoutBuilder| builder.build().unwrap_err();
    assert_eq!(
        err(b().percentile(0.0)),
        ConfigError::OutOfRange {
            setting: "percentile",
            value: 0.0
        }
    );
    assert_eq!(
        err(b().percentile(1.01)),
        ConfigError::OutOfRange {
            setting: "percentile",
            value: 1.01
        }
    );
    assert_eq!(
        err(b().factor(0.9)),
        ConfigError::OutOfRange {
            setting: "factor",
            value: 0.9
        }
    );
    assert_eq!(
        err(b().ceiling(Duration::ZERO)),
        ConfigError::Zero { setting: "ceiling" }
    );
    assert_eq!(
        err(b().ceiling(MAX_TIMEOUT + MS)),
        ConfigError::DurationOutOfRange {
            setting: "ceiling",
            value: MAX_TIMEOUT + MS,
            min: Duration::from_nanos(1),
            max: MAX_TIMEOUT,
        }
    );
    assert_eq!(
        err(b().floor(2 * MS).ceiling(MS)),
        ConfigError::Inverted {
            low: "floor",
            low_value: 2 * MS,
            high: "ceiling",
            high_value: MS,
        }
    );
    assert_eq!(
        err(b().floor(2 * MS).initial(MS)),
        ConfigError::Inverted {
            low: "floor",
            low_value: 2 * MS,
            high: "initial",
            high_value: MS,
        }
    );
    assert_eq!(
        err(b().ceiling(MS).initial(2 * MS).floor(Duration::ZERO)),
        ConfigError::Inverted {
            low: "initial",
            low_value: 2 * MS,
            high: "ceiling",
            high_value: MS,
        }
    );
    assert_eq!(
        err(b().min_samples(0)),
        ConfigError::Zero {
            setting: "min samples"
        }
    );
    assert_eq!(
        err(b().window(Duration::from_micros(999))),
        ConfigError::DurationOutOfRange {
            setting: "window",
            value: Duration::from_micros(999),
            min: MS,
            max: Duration::MAX,
        }
    );
    // The edges are accepted.
    b().percentile(1.0)
        .factor(1.0)
        .ceiling(MAX_TIMEOUT)
        .build()
        .unwrap();
    b().floor(MS)
        .ceiling(MS)
        .window(MS)
        .min_samples(1)
        .build()
        .unwrap();
}
