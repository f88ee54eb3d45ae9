//! The retry policy on tower's `Retry`, on paused tokio time: exact attempts, exact waits.

use std::error::Error;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cutout_companions::error::RetryAfter;
use cutout_companions::retry::{Never, RetryPolicy, RetryStats, TpsBudget};
use cutout_companions::{BoxError, ConfigError};
use tokio::time::Instant;
use tower::{Service, ServiceBuilder, ServiceExt};

const MS: Duration = Duration::from_millis(1);

/// A service that records when each attempt started and answers from a script of results
/// (the last one repeats).
#[derive(Clone)]
struct Scripted {
    start: Instant,
    attempts: Arc<Mutex<Vec<Duration>>>,
    script: Arc<dyn Fn(u32) -> Result<u32, BoxError> + Send + Sync>,
}

impl Scripted {
    fn new(script: impl Fn(u32) -> Result<u32, BoxError> + Send + Sync + 'static) -> Self {
        Self {
            start: Instant::now(),
            attempts: Arc::default(),
            script: Arc::new(script),
        }
    }

    fn calls(&self) -> usize {
        self.attempts.lock().unwrap().len()
    }

    fn times(&self) -> Vec<Duration> {
        self.attempts.lock().unwrap().clone()
    }
}

impl Service<u32> for Scripted {
    type Response = u32;
    type Error = BoxError;
    type Future = std::future::Ready<Result<u32, BoxError>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), BoxError>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: u32) -> Self::Future {
        let mut attempts = self.attempts.lock().unwrap();
        let n = attempts.len() as u32;
        attempts.push(self.start.elapsed());
        let _ = req;
        std::future::ready((self.script)(n))
    }
}

/// Every counter, in declaration order.
fn all(s: RetryStats) -> [u64; 8] {
    [
        s.requests,
        s.not_repeatable,
        s.retries,
        s.rejected,
        s.exhausted,
        s.retry_after_too_long,
        s.breaker_open,
        s.budget_exhausted,
    ]
}

fn exact() -> cutout_companions::retry::RetryBuilder {
    RetryPolicy::builder()
        .backoff(100 * MS, Duration::from_secs(1))
        .jitter(0.0)
        .seed(1)
}

async fn call<S>(svc: &mut S, req: u32) -> Result<u32, BoxError>
where
    S: Service<u32, Response = u32, Error = BoxError>,
{
    svc.ready().await?.call(req).await
}

#[tokio::test(start_paused = true)]
async fn retries_transient_failures_with_exponential_backoff() {
    let policy = exact().max_retries(3).build().unwrap();
    let inner = Scripted::new(|_| Err("down".into()));
    let mut svc = ServiceBuilder::new()
        .layer(policy.clone().into_layer())
        .service(inner.clone());

    let err = call(&mut svc, 1).await.unwrap_err();
    assert_eq!(err.to_string(), "down");
    // Attempts at 0, +100 ms, +200 ms, +400 ms.
    assert_eq!(
        inner.times(),
        vec![Duration::ZERO, 100 * MS, 300 * MS, 700 * MS]
    );
    // requests, not_repeatable, retries, rejected, exhausted, too long, open, budget
    assert_eq!(all(policy.stats()), [1, 0, 3, 0, 1, 0, 0, 0]);
}

#[tokio::test(start_paused = true)]
async fn success_after_failures_stops_retrying() {
    let policy = exact().max_retries(5).build().unwrap();
    let inner = Scripted::new(|n| if n < 2 { Err("flaky".into()) } else { Ok(n) });
    let mut svc = ServiceBuilder::new()
        .layer(policy.clone().into_layer())
        .service(inner.clone());
    assert_eq!(call(&mut svc, 1).await.unwrap(), 2);
    assert_eq!(inner.times(), vec![Duration::ZERO, 100 * MS, 300 * MS]);
    assert_eq!(policy.stats().retries, 2);
    assert_eq!(policy.stats().exhausted, 0);
}

#[tokio::test(start_paused = true)]
async fn backoff_is_capped() {
    let policy = RetryPolicy::builder()
        .backoff(100 * MS, 250 * MS)
        .multiplier(3.0)
        .jitter(0.0)
        .max_retries(4)
        .build()
        .unwrap();
    let inner = Scripted::new(|_| Err("down".into()));
    let mut svc = ServiceBuilder::new()
        .layer(policy.into_layer())
        .service(inner.clone());
    call(&mut svc, 1).await.unwrap_err();
    // Waits 100, 250 (300 capped), 250, 250.
    assert_eq!(
        inner.times(),
        vec![Duration::ZERO, 100 * MS, 350 * MS, 600 * MS, 850 * MS]
    );
}

async fn jittered_times(seed: u64) -> Vec<Duration> {
    let policy = RetryPolicy::builder()
        .backoff(100 * MS, Duration::from_secs(10))
        .jitter(0.5)
        .max_retries(4)
        .seed(seed)
        .build()
        .unwrap();
    let inner = Scripted::new(|_| Err("down".into()));
    let mut svc = ServiceBuilder::new()
        .layer(policy.into_layer())
        .service(inner.clone());
    for req in 0..3 {
        call(&mut svc, req).await.unwrap_err();
    }
    inner.times()
}

#[tokio::test(start_paused = true)]
async fn jitter_is_seeded_and_within_bounds() {
    let a = jittered_times(42).await;
    let b = jittered_times(42).await;
    let c = jittered_times(43).await;
    assert_eq!(a, b, "same seed, same waits");
    assert_ne!(a, c, "another seed, other waits");
    assert_eq!(a.len(), 15);
    for request in a.chunks(5) {
        for (n, pair) in request.windows(2).enumerate() {
            let wait = pair[1] - pair[0];
            let full = 100 * MS * (1 << n);
            assert!(
                wait >= full / 2 && wait <= full,
                "retry {n}: {wait:?} of {full:?}"
            );
        }
    }
    // Two requests of one policy do not wait in step.
    let first: Vec<_> = a[..5].windows(2).map(|w| w[1] - w[0]).collect();
    let second: Vec<_> = a[5..10].windows(2).map(|w| w[1] - w[0]).collect();
    assert_ne!(first, second);
}

/// An error that wraps another, to check that rejections are found deep in the chain.
#[derive(Debug)]
struct Wrapped(BoxError);

impl fmt::Display for Wrapped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "wrapped: {}", self.0)
    }
}

impl Error for Wrapped {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(self.0.as_ref())
    }
}

#[tokio::test(start_paused = true)]
async fn rejections_are_never_retried() {
    let open = cutout::Rejected::Open {
        retry_after: Duration::from_secs(1),
    };
    let rejections: Vec<fn(cutout::Rejected) -> BoxError> = vec![
        |r| tower_cutout::error::Rejected::boxed(r),
        |r| Box::new(r),
        |r| Box::new(cutout::CallError::<std::io::Error>::Rejected(r)),
        |r| Box::new(Wrapped(tower_cutout::error::Rejected::boxed(r))),
        |r| Box::new(Wrapped(Box::new(Wrapped(Box::new(r))))),
        |_| Box::new(cutout_companions::bulkhead::BulkheadFull::full(4)),
        |_| Box::new(tower::load_shed::error::Overloaded::new()),
    ];
    let count = rejections.len() as u64;
    let policy = exact().max_retries(3).build().unwrap();
    for make in rejections {
        let inner = Scripted::new(move |_| Err(make(open)));
        let mut svc = ServiceBuilder::new()
            .layer(policy.clone().into_layer())
            .service(inner.clone());
        let start = Instant::now();
        call(&mut svc, 1).await.unwrap_err();
        assert_eq!(inner.calls(), 1);
        assert_eq!(start.elapsed(), Duration::ZERO);
    }
    assert_eq!(all(policy.stats()), [count, 0, 0, count, 0, 0, 0, 0]);
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_waited_out_in_full() {
    let policy = exact().max_retries(2).build().unwrap();
    let inner = Scripted::new(|n| match n {
        0 => Err(Box::new(RetryAfter::new(Duration::from_secs(3), "slow down")) as BoxError),
        // A wait shorter than the backoff: the backoff wins.
        1 => Err(Box::new(RetryAfter::new(10 * MS, "again"))),
        _ => Ok(n),
    });
    let mut svc = ServiceBuilder::new()
        .layer(policy.into_layer())
        .service(inner.clone());
    assert_eq!(call(&mut svc, 1).await.unwrap(), 2);
    assert_eq!(
        inner.times(),
        vec![Duration::ZERO, 3000 * MS, 3200 * MS],
        "waits: max(100 ms, 3 s), then max(200 ms, 10 ms)"
    );
}

#[tokio::test(start_paused = true)]
async fn retry_after_above_the_max_is_not_retried() {
    let policy = exact()
        .max_retries(2)
        .max_retry_after(Duration::from_secs(5))
        .build()
        .unwrap();
    let inner = Scripted::new(|_| {
        Err(Box::new(RetryAfter::new(Duration::from_secs(6), "come back later")) as BoxError)
    });
    let mut svc = ServiceBuilder::new()
        .layer(policy.clone().into_layer())
        .service(inner.clone());
    let err = call(&mut svc, 1).await.unwrap_err();
    assert_eq!(err.to_string(), "come back later (retry after 6s)");
    assert_eq!(inner.calls(), 1);
    assert_eq!(policy.stats().retry_after_too_long, 1);
    assert_eq!(policy.stats().retries, 0);
}

#[tokio::test(start_paused = true)]
async fn only_repeatable_requests_are_retried() {
    let policy = exact()
        .max_retries(2)
        .build()
        .unwrap()
        .repeat_if(|req: &u32| req % 2 == 0);
    let inner = Scripted::new(|_| Err("down".into()));
    let mut svc = ServiceBuilder::new()
        .layer(policy.clone().into_layer())
        .service(inner.clone());
    call(&mut svc, 1).await.unwrap_err(); // odd: not safe to repeat
    assert_eq!(inner.calls(), 1);
    call(&mut svc, 2).await.unwrap_err(); // even: 1 + 2 retries
    assert_eq!(inner.calls(), 4);
    let stats = policy.stats();
    assert_eq!(
        (stats.requests, stats.not_repeatable, stats.retries),
        (2, 1, 2)
    );

    let never = exact().build().unwrap().repeat(Never);
    let inner = Scripted::new(|_| Err("down".into()));
    let mut svc = ServiceBuilder::new()
        .layer(never.clone().into_layer())
        .service(inner.clone());
    call(&mut svc, 2).await.unwrap_err();
    assert_eq!(inner.calls(), 1);
    assert_eq!(never.stats().not_repeatable, 1);
}

#[tokio::test(start_paused = true)]
async fn zero_retries_never_retries() {
    let policy = exact().max_retries(0).build().unwrap();
    let inner = Scripted::new(|_| Err("down".into()));
    let mut svc = ServiceBuilder::new()
        .layer(policy.clone().into_layer())
        .service(inner.clone());
    call(&mut svc, 1).await.unwrap_err();
    assert_eq!(inner.calls(), 1);
    assert_eq!(policy.stats().exhausted, 1);
}

#[tokio::test(start_paused = true)]
async fn budget_allows_a_fifth_of_requests() {
    // No reserve: 20% of requests, one retry per five deposits.
    let policy = exact()
        .max_retries(1)
        .budget(Duration::from_secs(10), 0, 0.2)
        .build()
        .unwrap();
    let retried = Arc::new(Mutex::new(Vec::new()));
    let inner = Scripted::new(|_| Err("down".into()));
    let mut svc = ServiceBuilder::new()
        .layer(policy.clone().into_layer())
        .service(inner.clone());
    for req in 0..10 {
        let before = inner.calls();
        call(&mut svc, req).await.unwrap_err();
        if inner.calls() - before == 2 {
            retried.lock().unwrap().push(req);
        }
    }
    assert_eq!(*retried.lock().unwrap(), vec![4, 9]);
    assert_eq!(inner.calls(), 12);
    let stats = policy.stats();
    assert_eq!(
        (stats.requests, stats.retries, stats.budget_exhausted),
        (10, 2, 8)
    );
}

#[tokio::test(start_paused = true)]
async fn default_budget_is_three_a_second_plus_twenty_percent() {
    // The default: a reserve of 3 retries a second over 10 s (30 retries), and one more
    // per five requests. 40 requests failing at once: the reserve and the deposits pay
    // for 38 retries (the 38th and 39th find 3 and 4 of the 5 units a retry costs).
    let policy = RetryPolicy::builder()
        .max_retries(1)
        .jitter(0.0)
        .build()
        .unwrap();
    let inner = Scripted::new(|_| Err("down".into()));
    let mut svc = ServiceBuilder::new()
        .layer(policy.clone().into_layer())
        .service(inner.clone());
    for req in 0..40 {
        call(&mut svc, req).await.unwrap_err();
    }
    let stats = policy.stats();
    assert_eq!(
        (stats.requests, stats.retries, stats.budget_exhausted),
        (40, 38, 2)
    );
    assert_eq!(inner.calls(), 78);
}

#[tokio::test(start_paused = true)]
async fn a_shared_budget_spans_policies() {
    // 50%: a retry costs two requests' deposits.
    let budget = Arc::new(TpsBudget::new(Duration::from_secs(10), 0, 0.5));
    let a = exact()
        .max_retries(1)
        .shared_budget(budget.clone())
        .build()
        .unwrap();
    let b = exact()
        .max_retries(1)
        .shared_budget(budget)
        .build()
        .unwrap();
    let inner = Scripted::new(|_| Err("down".into()));
    let mut svc_a = ServiceBuilder::new()
        .layer(a.clone().into_layer())
        .service(inner.clone());
    let mut svc_b = ServiceBuilder::new()
        .layer(b.clone().into_layer())
        .service(inner.clone());
    // a's request alone cannot pay for a retry; with b's deposit, b's retry is paid.
    call(&mut svc_a, 1).await.unwrap_err();
    call(&mut svc_b, 2).await.unwrap_err();
    assert_eq!(inner.calls(), 3);
    assert_eq!((a.stats().retries, a.stats().budget_exhausted), (0, 1));
    assert_eq!((b.stats().retries, b.stats().budget_exhausted), (1, 0));
}

#[tokio::test(start_paused = true)]
async fn breaker_handle_skips_retries_while_open() {
    let clock = cutout::ManualClock::new();
    let breaker = cutout::CircuitBreaker::builder()
        .failure_threshold(1)
        .open_duration(Duration::from_secs(10))
        .build_with_clock(clock.clone())
        .unwrap();
    let policy = exact().max_retries(3).breaker(&breaker).build().unwrap();
    let inner = Scripted::new(|_| Err("down".into()));
    let mut svc = ServiceBuilder::new()
        .layer(policy.clone().into_layer())
        .service(inner.clone());

    // Closed: retried as usual.
    call(&mut svc, 1).await.unwrap_err();
    assert_eq!(inner.calls(), 4);

    // Open: the failure is not retried, no backoff is waited, no budget is spent.
    breaker
        .try_acquire()
        .unwrap()
        .record(cutout::Outcome::Failure);
    assert_eq!(breaker.state(), cutout::State::Open);
    let start = Instant::now();
    call(&mut svc, 2).await.unwrap_err();
    assert_eq!(inner.calls(), 5);
    assert_eq!(start.elapsed(), Duration::ZERO);

    // Open, but its time is up: the next call would be admitted as a probe, so retry.
    clock.advance(Duration::from_secs(10));
    call(&mut svc, 3).await.unwrap_err();
    assert_eq!(inner.calls(), 6 + 3);

    // Forced open: never.
    breaker.force_open();
    call(&mut svc, 4).await.unwrap_err();
    assert_eq!(inner.calls(), 10);
    let stats = policy.stats();
    assert_eq!(
        (stats.retries, stats.breaker_open, stats.exhausted),
        (6, 2, 2)
    );
}

#[test]
fn bad_settings_are_refused() {
    let b = RetryPolicy::builder;
    let cases: Vec<(cutout_companions::retry::RetryBuilder, ConfigError)> = vec![
        (
            b().jitter(-0.1),
            ConfigError::OutOfRange {
                setting: "jitter",
                value: -0.1,
            },
        ),
        (
            b().multiplier(0.5),
            ConfigError::OutOfRange {
                setting: "multiplier",
                value: 0.5,
            },
        ),
        (
            b().multiplier(f64::INFINITY),
            ConfigError::OutOfRange {
                setting: "multiplier",
                value: f64::INFINITY,
            },
        ),
        (
            b().backoff(Duration::from_secs(2), Duration::from_secs(1)),
            ConfigError::Inverted {
                low: "base backoff",
                low_value: Duration::from_secs(2),
                high: "max backoff",
                high_value: Duration::from_secs(1),
            },
        ),
        (
            b().budget(Duration::from_millis(999), 3, 0.2),
            ConfigError::DurationOutOfRange {
                setting: "budget ttl",
                value: Duration::from_millis(999),
                min: Duration::from_secs(1),
                max: Duration::from_secs(60),
            },
        ),
        (
            b().budget(Duration::from_secs(61), 3, 0.2),
            ConfigError::DurationOutOfRange {
                setting: "budget ttl",
                value: Duration::from_secs(61),
                min: Duration::from_secs(1),
                max: Duration::from_secs(60),
            },
        ),
        (
            b().budget(Duration::from_secs(10), 3, 1000.5),
            ConfigError::OutOfRange {
                setting: "budget retry percent",
                value: 1000.5,
            },
        ),
        (
            b().budget(Duration::from_secs(10), u32::MAX, 0.2),
            ConfigError::OutOfRange {
                setting: "budget min per second",
                value: f64::from(u32::MAX),
            },
        ),
    ];
    for (builder, expected) in cases {
        assert_eq!(builder.build().unwrap_err(), expected);
    }
    // NaN is refused too (and never equal to itself, so matched by shape).
    assert!(matches!(
        b().jitter(f64::NAN).build(),
        Err(ConfigError::OutOfRange { setting: "jitter", value }) if value.is_nan()
    ));
    assert!(matches!(
        b().budget(Duration::from_secs(10), 3, f32::NAN).build(),
        Err(ConfigError::OutOfRange {
            setting: "budget retry percent",
            ..
        })
    ));
    // The edges are accepted.
    b().jitter(0.0).build().unwrap();
    b().jitter(1.0).multiplier(1.0).build().unwrap();
    b().backoff(Duration::ZERO, Duration::ZERO).build().unwrap();
    b().budget(Duration::from_secs(1), 0, 0.0).build().unwrap();
    b().budget(Duration::from_secs(60), 1000, 1000.0)
        .build()
        .unwrap();
}

#[test]
fn huge_backoffs_saturate() {
    let policy = RetryPolicy::builder()
        .backoff(Duration::from_secs(1), Duration::MAX)
        .multiplier(1e300)
        .build()
        .unwrap();
    assert_eq!(policy.backoff(0), Duration::from_secs(1));
    assert_eq!(policy.backoff(5), Duration::MAX);
    assert_eq!(policy.backoff(u32::MAX), Duration::MAX);
    assert!(format!("{policy:?}").contains("max_retries: 2"));
}
