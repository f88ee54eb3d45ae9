//! HTTP retries: idempotent requests only, retryable statuses, `Retry-After`.
#![cfg(feature = "http")]

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cutout_companions::BoxError;
use cutout_companions::retry::{IdempotentRequests, RetryPolicy, RetryableStatus};
use http::{Method, Request, Response, StatusCode};
use tokio::time::Instant;
use tower::{Service, ServiceBuilder, ServiceExt};

const MS: Duration = Duration::from_millis(1);

type Script = Arc<dyn Fn(u32) -> Response<String> + Send + Sync>;

/// Records (time, method) per attempt; answers from a script by attempt number.
#[derive(Clone)]
struct Upstream {
    start: Instant,
    log: Arc<Mutex<Vec<(Duration, Method)>>>,
    script: Script,
}

impl Upstream {
    fn new(script: impl Fn(u32) -> Response<String> + Send + Sync + 'static) -> Self {
        Self {
            start: Instant::now(),
            log: Arc::default(),
            script: Arc::new(script),
        }
    }

    fn times(&self) -> Vec<Duration> {
        self.log.lock().unwrap().iter().map(|(t, _)| *t).collect()
    }
}

impl Service<Request<String>> for Upstream {
    type Response = Response<String>;
    type Error = BoxError;
    type Future = std::future::Ready<Result<Response<String>, BoxError>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), BoxError>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<String>) -> Self::Future {
        let mut log = self.log.lock().unwrap();
        let n = log.len() as u32;
        log.push((self.start.elapsed(), req.method().clone()));
        std::future::ready(Ok((self.script)(n)))
    }
}

fn status(code: u16) -> Response<String> {
    Response::builder()
        .status(code)
        .body(String::new())
        .unwrap()
}

fn status_after(code: u16, retry_after: &str) -> Response<String> {
    Response::builder()
        .status(code)
        .header("retry-after", retry_after)
        .body(String::new())
        .unwrap()
}

fn policy() -> RetryPolicy<RetryableStatus, IdempotentRequests> {
    RetryPolicy::builder()
        .max_retries(2)
        .backoff(100 * MS, Duration::from_secs(1))
        .jitter(0.0)
        .max_retry_after(Duration::from_secs(30))
        .build_http()
        .unwrap()
}

async fn send(
    policy: &RetryPolicy<RetryableStatus, IdempotentRequests>,
    upstream: &Upstream,
    req: Request<String>,
) -> StatusCode {
    let mut svc = ServiceBuilder::new()
        .layer(policy.clone().into_layer())
        .service(upstream.clone());
    svc.ready().await.unwrap().call(req).await.unwrap().status()
}

fn get() -> Request<String> {
    Request::get("/items/1").body(String::new()).unwrap()
}

#[tokio::test(start_paused = true)]
async fn idempotent_requests_are_retried_on_retryable_statuses() {
    for code in [429, 502, 503, 504] {
        let policy = policy();
        let upstream = Upstream::new(move |n| if n == 0 { status(code) } else { status(200) });
        assert_eq!(
            send(&policy, &upstream, get()).await,
            StatusCode::OK,
            "{code}"
        );
        assert_eq!(upstream.times(), vec![Duration::ZERO, 100 * MS], "{code}");
    }
    for code in [200, 400, 404, 500, 501] {
        let policy = policy();
        let upstream = Upstream::new(move |_| status(code));
        assert_eq!(send(&policy, &upstream, get()).await.as_u16(), code);
        assert_eq!(upstream.times().len(), 1, "{code} is not retried");
    }
}

#[tokio::test(start_paused = true)]
async fn only_idempotent_or_keyed_requests_are_repeated() {
    let methods = [
        (Method::GET, 3),
        (Method::HEAD, 3),
        (Method::OPTIONS, 3),
        (Method::PUT, 3),
        (Method::DELETE, 3),
        (Method::POST, 1),
        (Method::PATCH, 1),
    ];
    for (method, attempts) in methods {
        let policy = policy();
        let upstream = Upstream::new(|_| status(503));
        let req = Request::builder()
            .method(method.clone())
            .uri("/orders")
            .body("{}".to_owned())
            .unwrap();
        assert_eq!(
            send(&policy, &upstream, req).await,
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(upstream.times().len(), attempts, "{method}");
        assert_eq!(
            policy.stats().not_repeatable,
            u64::from(attempts == 1),
            "{method}"
        );
    }
    // A POST with an idempotency key may be repeated, with its body and headers.
    let policy = policy();
    let upstream = Upstream::new(|n| if n < 2 { status(502) } else { status(201) });
    let req = Request::post("/orders")
        .header("idempotency-key", "order-77")
        .body("{\"sku\":7}".to_owned())
        .unwrap();
    assert_eq!(send(&policy, &upstream, req).await, StatusCode::CREATED);
    let log = upstream.log.lock().unwrap().clone();
    assert_eq!(log.len(), 3);
    assert!(log.iter().all(|(_, m)| m == Method::POST));
}

#[tokio::test(start_paused = true)]
async fn retry_after_seconds_and_dates_are_waited_out() {
    let policy = policy();
    let upstream = Upstream::new(|n| match n {
        0 => status_after(503, "2"),
        _ => status(200),
    });
    assert_eq!(send(&policy, &upstream, get()).await, StatusCode::OK);
    assert_eq!(upstream.times(), vec![Duration::ZERO, 2000 * MS]);

    // A date in the past is no wait: the backoff applies.
    let policy = self::policy();
    let upstream = Upstream::new(|n| match n {
        0 => status_after(429, "Wed, 21 Oct 2015 07:28:00 GMT"),
        _ => status(200),
    });
    assert_eq!(send(&policy, &upstream, get()).await, StatusCode::OK);
    assert_eq!(upstream.times(), vec![Duration::ZERO, 100 * MS]);
}

#[tokio::test(start_paused = true)]
async fn retry_after_beyond_the_max_is_returned_at_once() {
    let policy = policy();
    let upstream = Upstream::new(|_| status_after(429, "120"));
    assert_eq!(
        send(&policy, &upstream, get()).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(upstream.times().len(), 1);
    assert_eq!(policy.stats().retry_after_too_long, 1);
}

#[tokio::test(start_paused = true)]
async fn a_breaker_made_503_is_not_retried() {
    let policy = policy();
    let upstream = Upstream::new(|_| {
        let mut res = status_after(503, "5");
        res.extensions_mut().insert(cutout::Rejected::Open {
            retry_after: Duration::from_secs(5),
        });
        res
    });
    assert_eq!(
        send(&policy, &upstream, get()).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(upstream.times().len(), 1);
    assert_eq!(policy.stats().rejected, 1);
}

#[tokio::test(start_paused = true)]
async fn retries_stop_at_a_breaker_that_answers_503() {
    use tower_cutout::CircuitBreakerLayer;
    use tower_cutout::http::{HttpClassifier, ServiceUnavailable};

    let breaker = cutout::CircuitBreaker::builder()
        .failure_threshold(2)
        .open_duration(Duration::from_secs(10))
        .build_with_clock(cutout::TokioClock::new())
        .unwrap();
    let policy = policy();
    let upstream = Upstream::new(|_| status(503));
    let mut svc = ServiceBuilder::new()
        .layer(policy.clone().into_layer())
        .layer(
            CircuitBreakerLayer::new(breaker.clone())
                .classify(HttpClassifier::new())
                .reject_with(ServiceUnavailable),
        )
        .service(upstream.clone());

    // The upstream's two 503s trip the breaker; the breaker's own 503 (Retry-After: 10)
    // ends the retries.
    let res = svc.ready().await.unwrap().call(get()).await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.headers()["retry-after"], "10");
    assert!(res.extensions().get::<cutout::Rejected>().is_some());
    assert_eq!(upstream.times(), vec![Duration::ZERO, 100 * MS]);

    // While open: answered by the breaker, never retried, the upstream sees nothing.
    for _ in 0..5 {
        let res = svc.ready().await.unwrap().call(get()).await.unwrap();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
    assert_eq!(upstream.times().len(), 2);
    let stats = policy.stats();
    assert_eq!((stats.retries, stats.rejected), (2, 6));
}

#[tokio::test(start_paused = true)]
async fn infallible_services_are_classified_too() {
    let policy = policy();
    let calls = Arc::new(Mutex::new(0u32));
    let counter = calls.clone();
    let mut svc = ServiceBuilder::new().layer(policy.into_layer()).service_fn(
        move |_req: Request<String>| {
            let n = {
                let mut c = counter.lock().unwrap();
                *c += 1;
                *c
            };
            async move { Ok::<_, Infallible>(if n < 3 { status(504) } else { status(200) }) }
        },
    );
    let res = svc.ready().await.unwrap().call(get()).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(*calls.lock().unwrap(), 3);
}

#[tokio::test(start_paused = true)]
async fn errors_of_an_http_service_are_transient_unless_rejections() {
    let policy = policy();
    let calls = Arc::new(Mutex::new(0u32));
    let counter = calls.clone();
    let mut svc = ServiceBuilder::new()
        .layer(policy.clone().into_layer())
        .service_fn(move |_req: Request<String>| {
            let n = {
                let mut c = counter.lock().unwrap();
                *c += 1;
                *c
            };
            async move {
                match n {
                    1 => Err::<Response<String>, BoxError>("connection reset".into()),
                    _ => Err(
                        tower_cutout::error::Rejected::boxed(cutout::Rejected::ForcedOpen)
                            as BoxError,
                    ),
                }
            }
        });
    let err = svc.ready().await.unwrap().call(get()).await.unwrap_err();
    assert!(err.is::<tower_cutout::error::Rejected>());
    assert_eq!(*calls.lock().unwrap(), 2);
    assert_eq!((policy.stats().retries, policy.stats().rejected), (1, 1));
}
