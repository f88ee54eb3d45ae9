//! gRPC: classification by `grpc-status` in headers and trailers, rejections as
//! `UNAVAILABLE`, and real tonic servers and clients over loopback.

mod support;

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use cutout::{ManualClock, State, TokioClock};
use futures::stream;
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use tokio::time::Instant;
use tonic::Code;
use tower::{Layer, Service, ServiceBuilder, ServiceExt};
use tower_cutout::error::{BoxError, Rejected};
use tower_cutout::grpc::{GrpcClassifier, UnavailableError, UnavailableResponse};
use tower_cutout::{CircuitBreakerLayer, ServiceBuilderExt};

use support::quote::{self, QuoteServer};

type TestBody = StreamBody<stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, &'static str>>>>;

/// What the fake server answers.
#[derive(Clone)]
enum Answer {
    /// `grpc-status` in the headers (trailers-only).
    Headers(&'static str),
    /// A message, then trailers with this `grpc-status` (`None`: trailers without one).
    Trailers(Option<&'static str>),
    /// A message and no trailers.
    NoTrailers,
    /// A message, then a broken body.
    BrokenBody,
    /// An HTTP status from a proxy, no gRPC headers.
    Http(u16),
    /// No response at all.
    Error,
}

fn respond(answer: Answer) -> Result<Response<TestBody>, &'static str> {
    let data = Ok(Frame::data(Bytes::from_static(b"\0\0\0\0\0")));
    let mut trailers = HeaderMap::new();
    let (status, headers, frames) = match answer {
        Answer::Headers(code) => (200, Some(code), vec![]),
        Answer::Trailers(code) => {
            if let Some(code) = code {
                trailers.insert("grpc-status", HeaderValue::from_static(code));
            }
            (200, None, vec![data, Ok(Frame::trailers(trailers))])
        }
        Answer::NoTrailers => (200, None, vec![data]),
        Answer::BrokenBody => (200, None, vec![data, Err("connection reset")]),
        Answer::Http(status) => (status, None, vec![]),
        Answer::Error => return Err("connection refused"),
    };
    let mut response = Response::new(StreamBody::new(stream::iter(frames)));
    *response.status_mut() = StatusCode::from_u16(status).unwrap();
    if let Some(code) = headers {
        response
            .headers_mut()
            .insert("grpc-status", HeaderValue::from_static(code));
    }
    Ok(response)
}

fn fake_server() -> impl Service<
    Answer,
    Response = Response<TestBody>,
    Error = &'static str,
    Future = std::future::Ready<Result<Response<TestBody>, &'static str>>,
> + Clone {
    tower::service_fn(|answer| std::future::ready(respond(answer)))
}

fn layer(clock: &ManualClock) -> CircuitBreakerLayer<GrpcClassifier> {
    CircuitBreakerLayer::new(
        cutout::CircuitBreaker::builder()
            .failure_threshold(1_000)
            .build_with_clock(clock.clone())
            .unwrap(),
    )
    .classify(GrpcClassifier::new())
}

fn counts(layer: &CircuitBreakerLayer<GrpcClassifier>) -> (u64, u64, u64) {
    let s = layer.breaker().stats();
    (s.successes, s.failures, s.ignored)
}

#[tokio::test]
async fn a_status_in_the_headers_is_classified_with_the_response() {
    let clock = ManualClock::new();
    let layer = layer(&clock);
    let mut svc = layer.layer(fake_server());
    for (code, expected) in [
        ("14", (0, 1, 0)), // UNAVAILABLE
        ("4", (0, 2, 0)),  // DEADLINE_EXCEEDED
        ("8", (0, 3, 0)),  // RESOURCE_EXHAUSTED
        ("13", (0, 4, 0)), // INTERNAL
        ("2", (0, 5, 0)),  // UNKNOWN
        ("x", (0, 6, 0)),  // unparsable: UNKNOWN
        ("0", (1, 6, 0)),  // OK
        ("5", (2, 6, 0)),  // NOT_FOUND
        ("3", (3, 6, 0)),  // INVALID_ARGUMENT
    ] {
        // Classified before the body is read.
        let response = svc
            .ready()
            .await
            .unwrap()
            .call(Answer::Headers(code))
            .await
            .unwrap();
        assert_eq!(counts(&layer), expected, "grpc-status {code}");
        drop(response);
        assert_eq!(counts(&layer), expected, "grpc-status {code}");
    }
}

#[tokio::test]
async fn a_status_in_the_trailers_is_classified_when_they_arrive() {
    let clock = ManualClock::new();
    let layer = layer(&clock);
    let mut svc = layer.layer(fake_server());
    for (answer, expected) in [
        (Answer::Trailers(Some("0")), (1, 0, 0)),
        (Answer::Trailers(Some("14")), (1, 1, 0)),
        (Answer::Trailers(Some("7")), (2, 1, 0)), // PERMISSION_DENIED
        (Answer::Trailers(None), (2, 2, 0)),      // no status: UNKNOWN
        (Answer::NoTrailers, (2, 3, 0)),          // no status: UNKNOWN
        (Answer::BrokenBody, (2, 4, 0)),          // broken: UNKNOWN
    ] {
        let before = counts(&layer);
        let response = svc
            .ready()
            .await
            .unwrap()
            .call(answer.clone())
            .await
            .unwrap();
        // Nothing recorded until the body ends.
        assert_eq!(counts(&layer), before);
        let _ = response.into_body().collect().await;
        assert_eq!(counts(&layer), expected);
    }
}

#[tokio::test]
async fn a_body_dropped_before_its_trailers_is_ignored() {
    let clock = ManualClock::new();
    let layer = layer(&clock);
    let mut svc = layer.layer(fake_server());
    let response = svc
        .ready()
        .await
        .unwrap()
        .call(Answer::Trailers(Some("14")))
        .await
        .unwrap();
    let mut body = response.into_body();
    let first = body.frame().await.unwrap().unwrap();
    assert!(first.is_data());
    drop(body);
    assert_eq!(counts(&layer), (0, 0, 1));
}

#[tokio::test]
async fn proxy_statuses_and_errors_map_to_grpc_codes() {
    let clock = ManualClock::new();
    let layer = layer(&clock);
    let mut svc = layer.layer(fake_server());
    for (answer, expected) in [
        (Answer::Http(503), (0, 1, 0)), // UNAVAILABLE
        (Answer::Http(429), (0, 2, 0)), // UNAVAILABLE
        (Answer::Http(404), (1, 2, 0)), // UNIMPLEMENTED
        (Answer::Http(401), (2, 2, 0)), // UNAUTHENTICATED
        (Answer::Http(500), (2, 3, 0)), // UNKNOWN
        (Answer::Error, (2, 4, 0)),
    ] {
        let _ = svc.ready().await.unwrap().call(answer).await;
        assert_eq!(counts(&layer), expected);
    }
}

#[tokio::test]
async fn the_failure_codes_are_configurable() {
    let clock = ManualClock::new();
    let layer = CircuitBreakerLayer::new(
        cutout::CircuitBreaker::builder()
            .build_with_clock(clock.clone())
            .unwrap(),
    )
    .classify(GrpcClassifier::none().failure(Code::NotFound));
    let mut svc = layer.layer(fake_server());
    for code in ["5", "14", "0"] {
        let _ = svc
            .ready()
            .await
            .unwrap()
            .call(Answer::Headers(code))
            .await
            .unwrap();
    }
    let s = layer.breaker().stats();
    assert_eq!((s.successes, s.failures), (2, 1));
}

#[tokio::test]
async fn a_server_side_rejection_is_a_trailers_only_unavailable() {
    let clock = ManualClock::new();
    let breaker = cutout::CircuitBreaker::builder()
        .open_duration(Duration::from_secs(3))
        .failure_threshold(1)
        .build_with_clock(clock.clone())
        .unwrap();
    let mut svc = ServiceBuilder::new()
        .layer(
            CircuitBreakerLayer::new(breaker.clone())
                .classify(GrpcClassifier::new())
                .reject_with(UnavailableResponse),
        )
        .service(tower::service_fn(|_: ()| async {
            Ok::<_, Infallible>(tonic::Status::internal("boom").into_http::<tonic::body::Body>())
        }));
    let response = svc.ready().await.unwrap().call(()).await.unwrap();
    assert_eq!(response.headers()["grpc-status"], "13");
    clock.advance(Duration::from_millis(500));
    let response = svc.ready().await.unwrap().call(()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/grpc");
    assert_eq!(response.headers()["grpc-status"], "14");
    // Static values: the kind's message, the pushback in whole seconds rounded up.
    assert_eq!(
        response.headers()["grpc-message"],
        "circuit%20breaker%20is%20open"
    );
    assert_eq!(response.headers()["grpc-retry-pushback-ms"], "3000");
    assert_eq!(
        response.extensions().get::<cutout::Rejected>(),
        Some(&cutout::Rejected::Open {
            retry_after: Duration::from_millis(2_500)
        })
    );
    let status = tonic::Status::from_header_map(response.headers()).unwrap();
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(status.message(), "circuit breaker is open");
}

#[test]
fn a_client_side_rejection_reads_as_status_unavailable() {
    let err: BoxError = match tower_cutout::reject::Reject::<(), &str>::rejected(
        &UnavailableError,
        cutout::Rejected::Open {
            retry_after: Duration::from_secs(2),
        },
    ) {
        Err(e) => e,
        Ok(()) => panic!("a rejection must be an error"),
    };
    assert!(err.is::<Rejected>());
    assert_eq!(err.to_string(), "circuit breaker is open; retry after 2s");
    assert_eq!(
        err.downcast_ref::<Rejected>().unwrap().retry_after(),
        Some(Duration::from_secs(2))
    );
    let in_chain = std::error::Error::source(err.as_ref())
        .and_then(|e| e.downcast_ref::<tonic::Status>())
        .expect("a static status as the source");
    assert_eq!(
        in_chain.message(),
        "circuit breaker is open; retry after 2s"
    );
    // What tonic's client does with a transport service's error: copies the status found
    // in the chain, and moves the error into an `Arc` as its source.
    let status = tonic::Status::from_error(err);
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(status.message(), "circuit breaker is open; retry after 2s");
    assert_eq!(
        status.metadata().get("grpc-retry-pushback-ms").unwrap(),
        "2000"
    );
    let source = std::error::Error::source(&status).expect("the rejection as the source");
    let rejected = source
        .downcast_ref::<Rejected>()
        .expect("a tower_cutout rejection");
    assert_eq!(rejected.reason(), None, "moved away from its box: unknown");
    assert_eq!(rejected.to_string(), "circuit breaker rejected the call");

    // And the conversion for handlers that hold a rejection: the full status.
    let status: tonic::Status = Rejected::boxed(cutout::Rejected::Open {
        retry_after: Duration::from_millis(1_500),
    })
    .into();
    assert_eq!(
        (status.code(), status.message()),
        (
            Code::Unavailable,
            "circuit breaker is open; retry after 1.5s"
        )
    );
    assert_eq!(
        status.metadata().get("grpc-retry-pushback-ms").unwrap(),
        "1500"
    );
    assert_eq!(
        std::error::Error::source(&status).and_then(|e| e.downcast_ref::<cutout::Rejected>()),
        Some(&cutout::Rejected::Open {
            retry_after: Duration::from_millis(1_500)
        })
    );
}

fn tokio_breaker(threshold: u32) -> cutout::CircuitBreaker {
    cutout::CircuitBreaker::builder()
        .failure_threshold(threshold)
        .open_duration(Duration::from_secs(10))
        .build_with_clock(TokioClock::new())
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_tonic_server_behind_the_layer_trips_rejects_without_reaching_the_handler_and_recovers() {
    let start = Instant::now();
    let breaker = tokio_breaker(2);
    let server = QuoteServer::default();
    let (listener, addr) = quote::listen().await;
    let routes = server.clone();
    let layer_breaker = breaker.clone();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .layer(
                ServiceBuilder::new()
                    .grpc_server_circuit_breaker(layer_breaker)
                    .into_inner(),
            )
            .add_service(routes)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
            .await
            .unwrap()
    });
    let mut client = tonic::client::Grpc::new(quote::channel(addr).await);

    assert_eq!(quote::get_quote(&mut client, "ACME").await.unwrap(), 4204);
    server.database.set_failing(true);
    for _ in 0..2 {
        let status = quote::get_quote(&mut client, "ACME").await.unwrap_err();
        assert_eq!(
            (status.code(), status.message()),
            (Code::Unavailable, "quote database down")
        );
    }
    assert_eq!(breaker.state(), State::Open);
    assert_eq!(server.database.hits(), 3);

    for _ in 0..4 {
        let status = quote::get_quote(&mut client, "ACME").await.unwrap_err();
        assert_eq!(status.code(), Code::Unavailable);
        assert_eq!(status.message(), "circuit breaker is open");
        assert_eq!(
            status.metadata().get("grpc-retry-pushback-ms").unwrap(),
            "10000"
        );
    }
    assert_eq!(
        server.database.hits(),
        3,
        "rejections must not reach the handler"
    );

    server.database.set_failing(false);
    tokio::time::advance(Duration::from_secs(10)).await;
    assert_eq!(quote::get_quote(&mut client, "ACME").await.unwrap(), 4204);
    assert_eq!(breaker.state(), State::Closed);
    assert_eq!(server.database.hits(), 4);
    let stats = breaker.stats();
    assert_eq!((stats.successes, stats.failures, stats.rejected), (2, 2, 4));
    assert_eq!(start.elapsed(), Duration::from_secs(10));
}

#[tokio::test(start_paused = true)]
async fn a_tonic_client_behind_the_layer_stops_calling_a_failing_server() {
    let start = Instant::now();
    let breaker = tokio_breaker(3);
    let server = QuoteServer::default();
    let (listener, addr) = quote::listen().await;
    let routes = server.clone();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(routes)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
            .await
            .unwrap()
    });
    let channel = ServiceBuilder::new()
        .grpc_client_circuit_breaker(breaker.clone())
        .service(quote::channel(addr).await);
    let mut client = tonic::client::Grpc::new(channel);

    // Successes come in the trailers: recorded when tonic reads them.
    for _ in 0..2 {
        assert_eq!(quote::get_quote(&mut client, "AB").await.unwrap(), 4202);
    }
    assert_eq!(breaker.stats().successes, 2);
    server.database.set_failing(true);
    for _ in 0..3 {
        let status = quote::get_quote(&mut client, "AB").await.unwrap_err();
        assert_eq!(
            (status.code(), status.message()),
            (Code::Unavailable, "quote database down")
        );
    }
    assert_eq!(breaker.state(), State::Open);
    assert_eq!(server.database.hits(), 5);

    let whole_seconds = |d: Duration| d.as_secs() + u64::from(d.subsec_nanos() > 0);
    for _ in 0..3 {
        let before = whole_seconds(breaker.retry_after().expect("open"));
        let status = quote::get_quote(&mut client, "AB").await.unwrap_err();
        let after = whole_seconds(breaker.retry_after().expect("open"));
        assert_eq!(status.code(), Code::Unavailable);
        // The retry time at the rejection, rounded up to whole seconds, in the message and
        // the pushback.
        let retry = (after..=before)
            .find(|s| status.message() == format!("circuit breaker is open; retry after {s}s"))
            .unwrap_or_else(|| panic!("{:?}, retry {after}..={before} s", status.message()));
        assert_eq!(
            status.metadata().get("grpc-retry-pushback-ms").unwrap(),
            &(retry * 1_000).to_string()
        );
        // tonic moved the rejection into an `Arc`: it is there, of unknown reason.
        let rejected = std::error::Error::source(&status)
            .and_then(|e| e.downcast_ref::<Rejected>())
            .expect("the rejection as the status's source");
        assert_eq!(rejected.retry_after(), None);
    }
    assert_eq!(
        server.database.hits(),
        5,
        "rejected calls must not reach the server"
    );

    server.database.set_failing(false);
    tokio::time::advance(Duration::from_secs(10)).await;
    assert_eq!(quote::get_quote(&mut client, "AB").await.unwrap(), 4202);
    assert_eq!(breaker.state(), State::Closed);
    assert_eq!(server.database.hits(), 6);
    assert_eq!(start.elapsed(), Duration::from_secs(10));
}
