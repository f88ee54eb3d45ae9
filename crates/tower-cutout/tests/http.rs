//! HTTP: the status classifier, upstream `Retry-After`, the `503` rejection response, and
//! real axum and hyper stacks over loopback.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use cutout::{ManualClock, State, TokioClock};
use futures::FutureExt;
use http::header::RETRY_AFTER;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::time::Instant;
use tower::{Layer, Service, ServiceBuilder, ServiceExt};
use tower_cutout::error::Rejected;
use tower_cutout::http::{HttpClassifier, ServiceUnavailable};
use tower_cutout::{CircuitBreakerLayer, ServiceBuilderExt};

fn breaker(clock: &ManualClock, threshold: u32) -> cutout::CircuitBreaker {
    cutout::CircuitBreaker::builder()
        .failure_threshold(threshold)
        .open_duration(Duration::from_secs(5))
        .build_with_clock(clock.clone())
        .unwrap()
}

/// A service answering each request with the status (and headers) it asks for: the request
/// body is ignored, the URI path is `/{status}` and an optional `?retry-after=...`.
fn echo_status() -> impl Service<
    Request<()>,
    Response = Response<String>,
    Error = &'static str,
    Future = std::future::Ready<Result<Response<String>, &'static str>>,
> + Clone {
    tower::service_fn(|req: Request<()>| {
        let path = req.uri().path().trim_start_matches('/');
        if path == "error" {
            return std::future::ready(Err("connection refused"));
        }
        let mut response = Response::new(String::new());
        *response.status_mut() = StatusCode::from_bytes(path.as_bytes()).unwrap();
        if let Some(v) = req
            .uri()
            .query()
            .and_then(|q| q.strip_prefix("retry-after="))
        {
            let v = v.replace("%20", " ");
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_str(&v).unwrap());
        }
        std::future::ready(Ok(response))
    })
}

fn send<S>(svc: &mut S, uri: &str) -> Result<Response<String>, S::Error>
where
    S: Service<Request<()>, Response = Response<String>>,
{
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    assert!(svc.poll_ready(&mut cx).is_ready());
    svc.call(Request::get(uri).body(()).unwrap())
        .now_or_never()
        .expect("ready services answer at once")
}

#[test]
fn five_hundreds_and_429_are_failures_other_statuses_are_not() {
    let clock = ManualClock::new();
    let layer = CircuitBreakerLayer::new(breaker(&clock, 100)).classify(HttpClassifier::new());
    let mut svc = layer.layer(echo_status());
    for path in [
        "/200", "/204", "/301", "/400", "/404", "/499", "/500", "/503", "/599", "/429", "/error",
    ] {
        let _ = send(&mut svc, path);
    }
    let stats = layer.breaker().stats();
    // 500, 503, 599, 429 and the transport error.
    assert_eq!((stats.successes, stats.failures), (6, 5));
}

#[test]
fn the_failure_set_is_configurable() {
    let clock = ManualClock::new();
    let classifier = HttpClassifier::none()
        .failure(StatusCode::REQUEST_TIMEOUT)
        .failure(StatusCode::BAD_GATEWAY)
        .failure(StatusCode::OK) // outside 400..=599: stays a success
        .not_failure(StatusCode::BAD_GATEWAY);
    let layer = CircuitBreakerLayer::new(breaker(&clock, 100)).classify(classifier);
    let mut svc = layer.layer(echo_status());
    for path in ["/200", "/408", "/500", "/502", "/429"] {
        let _ = send(&mut svc, path);
    }
    let stats = layer.breaker().stats();
    assert_eq!((stats.successes, stats.failures), (4, 1));
}

fn open_retry_after(layer: &CircuitBreakerLayer<HttpClassifier>) -> Duration {
    match layer.breaker().try_acquire() {
        Err(cutout::Rejected::Open { retry_after }) => retry_after,
        other => panic!("expected open, got {other:?}"),
    }
}

#[test]
fn an_upstream_retry_after_lengthens_the_open_time_it_causes() {
    let cases: [(&str, Duration); 7] = [
        // A 503 or 429 with seconds: honoured.
        ("/503?retry-after=120", Duration::from_secs(120)),
        ("/429?retry-after=60", Duration::from_secs(60)),
        // Above the maximum: capped.
        ("/503?retry-after=86400", Duration::from_secs(300)),
        // Shorter than the open time: the open time stands.
        ("/503?retry-after=1", Duration::from_secs(5)),
        // Malformed, or a date long past: ignored.
        ("/503?retry-after=soon", Duration::from_secs(5)),
        (
            "/503?retry-after=Wed,%2021%20Oct%202015%2007:28:00%20GMT",
            Duration::from_secs(5),
        ),
        // Not a 429 or 503: the header means nothing.
        ("/500?retry-after=120", Duration::from_secs(5)),
    ];
    for (path, open) in cases {
        let clock = ManualClock::new();
        let layer = CircuitBreakerLayer::new(breaker(&clock, 1))
            .classify(HttpClassifier::new().honor_retry_after(Duration::from_secs(300)));
        let mut svc = layer.layer(echo_status());
        let _ = send(&mut svc, path);
        assert_eq!(open_retry_after(&layer), open, "{path}");
    }
}

#[test]
fn retry_after_is_ignored_unless_asked_for_or_unless_it_trips() {
    let clock = ManualClock::new();
    let layer = CircuitBreakerLayer::new(breaker(&clock, 1)).classify(HttpClassifier::new());
    let _ = send(&mut layer.layer(echo_status()), "/503?retry-after=120");
    assert_eq!(open_retry_after(&layer), Duration::from_secs(5));

    // Threshold 2: the first hinted failure does not trip, so its hint is dropped.
    let layer = CircuitBreakerLayer::new(breaker(&clock, 2))
        .classify(HttpClassifier::new().honor_retry_after(Duration::from_secs(300)));
    let mut svc = layer.layer(echo_status());
    let _ = send(&mut svc, "/503?retry-after=120");
    let _ = send(&mut svc, "/500");
    assert_eq!(open_retry_after(&layer), Duration::from_secs(5));
}

#[test]
fn a_rejection_is_a_503_with_retry_after_in_whole_seconds_rounded_up() {
    let clock = ManualClock::new();
    let layer = CircuitBreakerLayer::new(breaker(&clock, 1))
        .classify(HttpClassifier::new())
        .reject_with(ServiceUnavailable);
    let mut svc = layer.layer(echo_status());
    assert_eq!(
        send(&mut svc, "/500").unwrap().status(),
        StatusCode::INTERNAL_SERVER_ERROR
    );
    clock.advance(Duration::from_millis(1_500));
    let response = send(&mut svc, "/200").unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()[RETRY_AFTER], "4"); // 3.5 s left
    assert_eq!(
        response.extensions().get::<cutout::Rejected>(),
        Some(&cutout::Rejected::Open {
            retry_after: Duration::from_millis(3_500)
        })
    );
    assert_eq!(response.body(), "");
    // The inner service's errors pass through as they are.
    layer.breaker().reset();
    assert_eq!(send(&mut svc, "/error").unwrap_err(), "connection refused");
    // Forced open: no retry-after to give.
    layer.breaker().force_open();
    let response = send(&mut svc, "/200").unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().get(RETRY_AFTER).is_none());
}

/// A flaky dependency behind an axum route: counts the requests that reach it.
#[derive(Clone, Default)]
struct Flaky {
    failing: Arc<AtomicBool>,
    hits: Arc<AtomicUsize>,
}

async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

fn client() -> Client<hyper_util::client::legacy::connect::HttpConnector, Full<bytes::Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

async fn get_status(
    client: &Client<hyper_util::client::legacy::connect::HttpConnector, Full<bytes::Bytes>>,
    addr: SocketAddr,
) -> (StatusCode, Option<String>, String) {
    let response = client
        .get(format!("http://{addr}/quote").parse().unwrap())
        .await
        .unwrap();
    let status = response.status();
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .map(|v| v.to_str().unwrap().to_owned());
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        retry_after,
        String::from_utf8(body.to_vec()).unwrap(),
    )
}

#[tokio::test(start_paused = true)]
async fn an_axum_route_trips_rejects_without_reaching_the_handler_and_recovers() {
    let start = Instant::now();
    let breaker = cutout::CircuitBreaker::builder()
        .failure_threshold(3)
        .open_duration(Duration::from_secs(10))
        .build_with_clock(TokioClock::new())
        .unwrap();
    let flaky = Flaky::default();
    let state = flaky.clone();
    let app = Router::new()
        .route(
            "/quote",
            get(move || {
                let state = state.clone();
                async move {
                    state.hits.fetch_add(1, Ordering::SeqCst);
                    if state.failing.load(Ordering::SeqCst) {
                        (StatusCode::INTERNAL_SERVER_ERROR, "dependency down")
                    } else {
                        (StatusCode::OK, "42")
                    }
                }
            }),
        )
        .layer(ServiceBuilder::new().http_circuit_breaker(breaker.clone()));
    let addr = serve(app).await;
    let client = client();

    assert_eq!(
        get_status(&client, addr).await,
        (StatusCode::OK, None, "42".into())
    );
    flaky.failing.store(true, Ordering::SeqCst);
    for _ in 0..3 {
        let (status, _, body) = get_status(&client, addr).await;
        assert_eq!(
            (status, body.as_str()),
            (StatusCode::INTERNAL_SERVER_ERROR, "dependency down")
        );
    }
    assert_eq!(breaker.state(), State::Open);
    assert_eq!(flaky.hits.load(Ordering::SeqCst), 4);

    for _ in 0..5 {
        let rejected = get_status(&client, addr).await;
        assert_eq!(
            rejected,
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Some("10".into()),
                String::new()
            )
        );
    }
    assert_eq!(
        flaky.hits.load(Ordering::SeqCst),
        4,
        "rejections must not reach the handler"
    );

    flaky.failing.store(false, Ordering::SeqCst);
    tokio::time::advance(Duration::from_secs(10)).await;
    assert_eq!(
        get_status(&client, addr).await,
        (StatusCode::OK, None, "42".into())
    );
    assert_eq!(breaker.state(), State::Closed);
    assert_eq!(flaky.hits.load(Ordering::SeqCst), 5);
    let stats = breaker.stats();
    assert_eq!(
        (stats.successes, stats.failures, stats.rejected, stats.trips),
        (2, 3, 5, 1)
    );
    // Only the explicit advance moved the clock.
    assert_eq!(start.elapsed(), Duration::from_secs(10));
}

#[tokio::test(start_paused = true)]
async fn a_hyper_client_behind_the_layer_stops_calling_a_failing_server() {
    let start = Instant::now();
    let flaky = Flaky::default();
    let state = flaky.clone();
    let app = Router::new().route(
        "/quote",
        get(move || {
            let state = state.clone();
            async move {
                state.hits.fetch_add(1, Ordering::SeqCst);
                if state.failing.load(Ordering::SeqCst) {
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        [(RETRY_AFTER, "30")],
                        "busy",
                    )
                } else {
                    (StatusCode::OK, [(RETRY_AFTER, "0")], "42")
                }
            }
        }),
    );
    let addr = serve(app).await;
    let layer = CircuitBreakerLayer::from_builder_with_clock(
        cutout::CircuitBreaker::builder()
            .failure_threshold(2)
            .open_duration(Duration::from_secs(10)),
        TokioClock::new(),
    )
    .unwrap()
    .classify(HttpClassifier::new().honor_retry_after(Duration::from_secs(60)));
    let mut svc = layer.layer(client());
    let uri = format!("http://{addr}/quote");
    let get = async |svc: &mut _| {
        let svc: &mut tower_cutout::CircuitBreaker<_, _> = svc;
        let request = Request::get(&uri).body(Full::default()).unwrap();
        svc.ready()
            .await
            .unwrap()
            .call(request)
            .await
            .map(|r: Response<_>| r.status())
    };

    assert_eq!(get(&mut svc).await.unwrap(), StatusCode::OK);
    flaky.failing.store(true, Ordering::SeqCst);
    for _ in 0..2 {
        assert_eq!(
            get(&mut svc).await.unwrap(),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
    // Tripped, and open for the server's 30 s rather than the configured 10 s.
    for _ in 0..3 {
        let err = get(&mut svc).await.unwrap_err();
        let rejected = err.downcast_ref::<Rejected>().expect("a rejection");
        assert_eq!(rejected.retry_after(), Some(Duration::from_secs(30)));
    }
    assert_eq!(flaky.hits.load(Ordering::SeqCst), 3);

    flaky.failing.store(false, Ordering::SeqCst);
    tokio::time::advance(Duration::from_secs(29)).await;
    assert!(get(&mut svc).await.unwrap_err().is::<Rejected>());
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(get(&mut svc).await.unwrap(), StatusCode::OK);
    assert_eq!(layer.breaker().state(), State::Closed);
    assert_eq!(flaky.hits.load(Ordering::SeqCst), 4);
    assert_eq!(start.elapsed(), Duration::from_secs(30));
}

#[tokio::test]
async fn an_infallible_axum_stack_needs_no_error_handling() {
    // Compiles only if the layered route stays `Error = Infallible`.
    fn assert_infallible<S: Service<Request<Body>, Error = Infallible>>(_: &S) {}
    let breaker = cutout::CircuitBreaker::builder().build().unwrap();
    let svc = ServiceBuilder::new()
        .http_circuit_breaker(breaker)
        .service(Router::new().route("/", get(|| async { "ok" })));
    assert_infallible(&svc);
    let response = svc
        .oneshot(Request::get("/").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

mod retry_after {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use http::HeaderValue;
    use proptest::prelude::*;
    use tower_cutout::http::parse_retry_after;

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_445_412_400) // Wed, 21 Oct 2015 07:26:40 GMT
    }

    #[test]
    fn every_accepted_form_and_the_malformed_ones() {
        let at = |v: &'static str| parse_retry_after(&HeaderValue::from_static(v), now());
        assert_eq!(at("0"), Some(Duration::ZERO));
        assert_eq!(at(" 42 "), Some(Duration::from_secs(42)));
        assert_eq!(at("007"), Some(Duration::from_secs(7)));
        assert_eq!(
            at("18446744073709551615"),
            Some(Duration::from_secs(u64::MAX))
        );
        assert_eq!(at("18446744073709551616"), None); // overflows u64
        assert_eq!(
            at("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::from_secs(80))
        );
        assert_eq!(
            at("Wednesday, 21-Oct-15 07:28:00 GMT"),
            Some(Duration::from_secs(80))
        );
        assert_eq!(
            at("Wed Oct 21 07:28:00 2015"),
            Some(Duration::from_secs(80))
        );
        for bad in [
            "",
            " ",
            "1.5",
            "+3",
            "-1",
            "3s",
            "soon",
            "Wed, 32 Oct 2015 07:28:00 GMT",
        ] {
            assert_eq!(at(bad), None, "{bad:?}");
        }
        let not_text = HeaderValue::from_bytes(b"\xff\xfe").unwrap();
        assert_eq!(parse_retry_after(&not_text, now()), None);
    }

    proptest! {
        #[test]
        fn any_header_value_parses_or_is_none(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(value) = HeaderValue::from_bytes(&bytes) {
                let _ = parse_retry_after(&value, now());
            }
        }

        #[test]
        fn delay_seconds_round_trip(secs in any::<u64>()) {
            let value = HeaderValue::from(secs);
            prop_assert_eq!(parse_retry_after(&value, now()), Some(Duration::from_secs(secs)));
        }
    }
}
