//! The keyed layer: a breaker per key, on `tower-test` mocks and a manual clock, and real
//! axum and hyper stacks over loopback on paused tokio time. Run by `tests/keyed.rs` on an
//! `Arc` registry and by `tests/keyed_static.rs` on a `&'static` one (the including file
//! defines `Shared<K>`, the registry handle type, and `share`).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use super::counted::Counted;
use super::{Shared, share};
use axum::Router;
use axum::extract::Request as AxumRequest;
use axum::routing::get;
use cutout::{ManualClock, Outcome, State, TokioClock};
use cutout_keyed::{KeyedBreakers, KeyedRejected};
use futures::FutureExt;
use http::header::{HOST, RETRY_AFTER};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::time::Instant;
use tower::{Layer, Service, ServiceBuilder, ServiceExt};
use tower_cutout::ServiceBuilderExt;
use tower_cutout::classify::{Classify, Recorder};
use tower_cutout::error::{BoxError, Rejected};
use tower_cutout::http::{HttpClassifier, ServiceUnavailable};
use tower_cutout::keyed::error::NoBreaker;
use tower_cutout::keyed::{
    Authority, AuthorityKey, KeyExtractor, KeyedCircuitBreaker, KeyedCircuitBreakerLayer,
};
use tower_test::mock;

const OPEN: Duration = Duration::from_secs(10);

type Registry = Shared<AuthorityKey>;

fn registry(clock: &ManualClock, threshold: u32, capacity: usize) -> Registry {
    share(
        KeyedBreakers::builder(
            cutout::CircuitBreaker::builder()
                .failure_threshold(threshold)
                .open_duration(OPEN),
        )
        .capacity(capacity)
        .build_with_clock(clock.clone())
        .unwrap(),
    )
}

fn key(authority: &'static str) -> AuthorityKey {
    AuthorityKey::from_static(authority)
}

fn get_req(uri: &str) -> Request<()> {
    Request::get(uri).body(()).unwrap()
}

/// Answers at once: `Err` for the path `/fail`, else `Ok` with the path.
fn answering() -> impl Service<
    Request<()>,
    Response = String,
    Error = &'static str,
    Future = std::future::Ready<Result<String, &'static str>>,
> + Clone {
    tower::service_fn(|req: Request<()>| {
        std::future::ready(match req.uri().path() {
            "/fail" => Err("connection refused"),
            path => Ok(path.to_owned()),
        })
    })
}

/// Polls a future that must be finished.
fn done<F: std::future::Future>(f: F) -> F::Output {
    f.now_or_never().expect("the future should be finished")
}

/// Readies `svc` (at once) and sends `request`; the response must be ready at once too.
fn send<S: Service<Request<()>>>(svc: &mut S, uri: &str) -> Result<S::Response, S::Error> {
    done(svc.ready()).ok().expect("ready at once");
    done(svc.call(get_req(uri)))
}

#[test]
fn a_failing_host_trips_its_own_breaker_while_others_reach_the_service() {
    let clock = ManualClock::new();
    let hosts = registry(&clock, 2, 100);
    let inner = Counted::new(answering());
    let mut svc = KeyedCircuitBreaker::new(inner.clone(), hosts.clone(), Authority::new());

    for _ in 0..2 {
        let err = send(&mut svc, "http://a.example/fail").unwrap_err();
        assert_eq!(err.to_string(), "connection refused");
    }
    assert_eq!(hosts.state(&key("a.example")), Some(State::Open));
    assert_eq!(inner.calls(), 2);

    // A is rejected without reaching the service; B is served.
    for _ in 0..3 {
        let err = send(&mut svc, "http://a.example/ok").unwrap_err();
        let rejected = err.downcast_ref::<Rejected>().expect("a rejection");
        assert_eq!(
            rejected.reason(),
            Some(cutout::Rejected::Open { retry_after: OPEN })
        );
        assert_eq!(send(&mut svc, "http://b.example/ok").unwrap(), "/ok");
    }
    assert_eq!(inner.calls(), 2 + 3, "only B's calls reach the service");
    assert_eq!(hosts.state(&key("b.example")), Some(State::Closed));
    assert_eq!(hosts.len(), 2);
    let a = hosts.lease(&key("a.example")).unwrap().stats();
    assert_eq!((a.successes, a.failures, a.rejected, a.trips), (0, 2, 3, 1));
    let b = hosts.lease(&key("b.example")).unwrap().stats();
    assert_eq!((b.successes, b.failures, b.rejected), (3, 0, 0));
}

#[test]
fn a_rejection_resolves_at_once_and_never_calls_the_inner_service() {
    let clock = ManualClock::new();
    let hosts = registry(&clock, 1, 100);
    hosts.lease(&key("a.example")).unwrap().force_open();
    let (mock, mut handle) = mock::pair::<Request<()>, String>();
    let inner = Counted::new(mock);
    let mut svc = mock::Spawn::new(KeyedCircuitBreaker::new(
        inner.clone(),
        hosts.clone(),
        Authority::new(),
    ));

    // `poll_ready` is the inner service's own.
    handle.allow(0);
    assert!(svc.poll_ready().is_pending());
    handle.allow(1);
    assert!(matches!(svc.poll_ready(), Poll::Ready(Ok(()))));
    let err = done(svc.call(get_req("http://a.example/"))).unwrap_err();
    assert_eq!(err.to_string(), "circuit breaker is forced open");
    assert!(err.is::<Rejected>());
    assert_eq!(inner.calls(), 0);
    assert!(
        handle.poll_request().is_pending(),
        "no request reached the mock"
    );
    assert_eq!(inner.polls.load(Ordering::SeqCst), 2);
}

#[test]
fn a_host_recovers_after_the_open_time() {
    let clock = ManualClock::new();
    let hosts = registry(&clock, 1, 100);
    let inner = Counted::new(answering());
    let mut svc = KeyedCircuitBreaker::new(inner.clone(), hosts.clone(), Authority::new());

    send(&mut svc, "http://a.example/fail").unwrap_err();
    clock.advance(OPEN - Duration::from_millis(1));
    let err = send(&mut svc, "http://a.example/ok").unwrap_err();
    assert_eq!(
        err.downcast_ref::<Rejected>().unwrap().retry_after(),
        Some(Duration::from_millis(1))
    );
    assert_eq!(inner.calls(), 1);
    clock.advance(Duration::from_millis(1));
    assert_eq!(send(&mut svc, "http://a.example/ok").unwrap(), "/ok");
    assert_eq!(inner.calls(), 2);
    assert_eq!(hosts.state(&key("a.example")), Some(State::Closed));
}

#[test]
fn a_dropped_response_future_frees_the_half_open_probe_slot() {
    let clock = ManualClock::new();
    let hosts = registry(&clock, 1, 100);
    let (mock, mut handle) = mock::pair::<Request<()>, String>();
    let inner = Counted::new(mock);
    let mut svc = mock::Spawn::new(KeyedCircuitBreaker::new(
        inner.clone(),
        hosts.clone(),
        Authority::new(),
    ));
    handle.allow(10);
    let a = key("a.example");
    hosts.try_acquire(&a).unwrap().record(Outcome::Failure);
    clock.advance(OPEN);

    assert!(svc.poll_ready().is_ready());
    let probe = svc.call(get_req("http://a.example/"));
    assert_eq!(inner.calls(), 1);
    assert_eq!(hosts.state(&a), Some(State::HalfOpen));
    // The one probe slot is taken.
    assert!(svc.poll_ready().is_ready());
    let err = done(svc.call(get_req("http://a.example/"))).unwrap_err();
    assert!(matches!(
        err.downcast_ref::<Rejected>().unwrap().reason(),
        Some(cutout::Rejected::HalfOpenFull { .. })
    ));
    assert_eq!(inner.calls(), 1);

    // Cancelled: neither a success nor a failure, and the slot is free again.
    drop(probe);
    assert_eq!(hosts.state(&a), Some(State::HalfOpen));
    let stats = hosts.lease(&a).unwrap().stats();
    assert_eq!((stats.successes, stats.failures), (0, 1));
    assert!(svc.poll_ready().is_ready());
    let mut probe = svc.call(get_req("http://a.example/"));
    assert_eq!(inner.calls(), 2);
    let (_, send_response) = handle.next_request().now_or_never().unwrap().unwrap();
    let (_, send_response2) = handle.next_request().now_or_never().unwrap().unwrap();
    drop(send_response);
    send_response2.send_response("fine".to_owned());
    assert_eq!(done(&mut probe).unwrap(), "fine");
    assert_eq!(hosts.state(&a), Some(State::Closed));
}

#[test]
fn a_cancelled_call_gives_its_permit_back_and_then_its_key_can_be_evicted() {
    let clock = ManualClock::new();
    let hosts = registry(&clock, 1, 100);
    let (mock, mut handle) = mock::pair::<Request<()>, String>();
    let mut svc = mock::Spawn::new(KeyedCircuitBreaker::new(
        mock,
        hosts.clone(),
        Authority::new(),
    ));
    handle.allow(1);
    let a = key("a.example");
    assert!(svc.poll_ready().is_ready());
    let call = svc.call(get_req("http://a.example/"));
    let breaker = (*hosts.lease(&a).unwrap()).clone();
    assert_eq!(hosts.evict_idle(), 0, "used since the start");
    assert_eq!(
        hosts.evict_idle(),
        0,
        "idle a whole period, but a call is in flight"
    );
    assert_eq!(hosts.state(&a), Some(State::Closed));

    // Cancelled before the inner service answered: Ignored, then the breaker is released.
    drop(call);
    let stats = breaker.stats();
    assert_eq!(
        (
            stats.admitted,
            stats.successes,
            stats.failures,
            stats.ignored
        ),
        (1, 0, 0, 1)
    );
    assert_eq!(
        hosts.evict_idle(),
        1,
        "released and idle for a whole period"
    );
    assert_eq!(hosts.state(&a), None);
    assert_eq!(hosts.evicted(), 1);
}

#[test]
fn a_hundred_thousand_keys_stay_within_the_capacity() {
    let clock = ManualClock::new();
    let hosts = registry(&clock, 5, 1_000);
    let inner = Counted::new(answering());
    let mut svc = KeyedCircuitBreaker::new(inner.clone(), hosts.clone(), Authority::new());
    let mut longest = 0;
    for i in 0..100_000 {
        assert_eq!(
            send(&mut svc, &format!("http://h{i}.example/ok")).unwrap(),
            "/ok"
        );
        longest = longest.max(hosts.len());
    }
    assert_eq!(inner.calls(), 100_000);
    assert!(longest <= 1_000, "the registry grew to {longest}");
    assert_eq!(hosts.evicted() + hosts.len() as u64, 100_000);
    assert!(hosts.len() > 800, "evicts in batches of an eighth, not all");
}

/// A classifier that leaves the outcome for later: the response comes with its recorder.
#[derive(Clone)]
struct Later;

impl<Res, E> Classify<Res, E> for Later {
    type Response = (Res, Recorder);

    fn classify(&self, result: Result<Res, E>, recorder: Recorder) -> Result<(Res, Recorder), E> {
        result.map(|r| (r, recorder))
    }
}

#[test]
fn a_key_with_a_call_in_flight_is_never_evicted() {
    let clock = ManualClock::new();
    let hosts = registry(&clock, 1, 16);
    let layer = KeyedCircuitBreakerLayer::new(hosts.clone(), Authority::new());
    let (mock, mut handle) = mock::pair::<Request<()>, String>();
    let mut slow = mock::Spawn::new(layer.clone().classify(Later).layer(mock));
    // Another service from the same layer shares the registry and floods it with keys.
    let mut fast = layer.layer(answering());
    handle.allow(2);

    // One call waits for its response, another has its response but not yet its outcome.
    assert!(slow.poll_ready().is_ready());
    let mut waiting = slow.call(get_req("http://waiting.example/"));
    assert!(slow.poll_ready().is_ready());
    let mut recording = slow.call(get_req("http://recording.example/"));
    let (_, reply) = handle.next_request().now_or_never().unwrap().unwrap();
    let (_, reply2) = handle.next_request().now_or_never().unwrap().unwrap();
    reply2.send_response("body".to_owned());
    let (body, recorder) = done(&mut recording).unwrap();
    assert_eq!(body, "body");
    drop(recording);

    for i in 0..1_000 {
        send(&mut fast, &format!("http://flood{i}.example/ok")).unwrap();
        assert!(hosts.len() <= 16);
    }
    assert!(hosts.evicted() >= 1_000 - 16);
    assert_eq!(hosts.state(&key("waiting.example")), Some(State::Closed));
    assert_eq!(hosts.state(&key("recording.example")), Some(State::Closed));

    // Both outcomes land on the registry's breakers: a failure trips each.
    reply.send_response("late".to_owned());
    let (body, waited) = done(&mut waiting).unwrap();
    assert_eq!(body, "late");
    waited.record(Outcome::Failure);
    recorder.record(Outcome::Failure);
    assert_eq!(hosts.state(&key("waiting.example")), Some(State::Open));
    assert_eq!(hosts.state(&key("recording.example")), Some(State::Open));
    // Open breakers are not evicted either.
    for i in 0..1_000 {
        send(&mut fast, &format!("http://again{i}.example/ok")).unwrap();
    }
    assert_eq!(hosts.state(&key("waiting.example")), Some(State::Open));
    assert_eq!(hosts.state(&key("recording.example")), Some(State::Open));
}

#[test]
fn clones_and_every_service_of_a_layer_share_one_registry() {
    let clock = ManualClock::new();
    let layer = KeyedCircuitBreakerLayer::from_builder_with_clock(
        KeyedBreakers::builder(cutout::CircuitBreaker::builder().failure_threshold(2)),
        Authority::new(),
        clock.clone(),
    )
    .unwrap();
    let mut one = layer.layer(answering());
    let mut two = layer.clone().layer(answering());
    let mut three = two.clone();
    send(&mut one, "http://a.example/fail").unwrap_err();
    send(&mut two, "http://a.example/fail").unwrap_err();
    assert!(
        send(&mut three, "http://a.example/ok")
            .unwrap_err()
            .is::<Rejected>()
    );
    assert!(std::ptr::eq(&**one.registry(), &**three.registry()));
    assert!(std::ptr::eq(&**layer.registry(), &**two.registry()));
    assert_eq!(layer.registry().len(), 1);
}

#[test]
fn a_full_registry_refuses_new_keys_without_calling_the_service() {
    let clock = ManualClock::new();
    let hosts = registry(&clock, 1, 2);
    let inner = Counted::new(answering());
    let mut svc = KeyedCircuitBreaker::new(inner.clone(), hosts.clone(), Authority::new());
    send(&mut svc, "http://a.example/fail").unwrap_err();
    send(&mut svc, "http://b.example/fail").unwrap_err();

    let err = send(&mut svc, "http://c.example/ok").unwrap_err();
    let no_breaker = err.downcast_ref::<NoBreaker>().expect("no breaker");
    assert_eq!(
        no_breaker.reason(),
        Some(KeyedRejected::Full { capacity: 2 })
    );
    assert_eq!(
        err.to_string(),
        "no breaker for this key: the registry holds 2 breakers that are open, half-open or in use"
    );
    assert!(!err.is::<Rejected>());
    assert_eq!(inner.calls(), 2);

    // Once a breaker closes again it may be evicted, and the new key gets one.
    clock.advance(OPEN);
    send(&mut svc, "http://a.example/ok").unwrap();
    assert_eq!(send(&mut svc, "http://c.example/ok").unwrap(), "/ok");
    assert_eq!(hosts.state(&key("a.example")), None, "evicted for c");
    assert_eq!(hosts.state(&key("b.example")), Some(State::Open));
}

fn http_service(
    status: StatusCode,
) -> impl Service<
    Request<()>,
    Response = Response<String>,
    Error = Infallible,
    Future = std::future::Ready<Result<Response<String>, Infallible>>,
> + Clone {
    tower::service_fn(move |req: Request<()>| {
        let mut response = Response::new(req.uri().path().to_owned());
        if req.uri().host() == Some("sick.example") {
            *response.status_mut() = status;
        }
        std::future::ready(Ok(response))
    })
}

#[test]
fn the_503_mode_answers_rejections_and_a_full_registry() {
    let clock = ManualClock::new();
    let hosts = registry(&clock, 2, 2);
    let inner = Counted::new(http_service(StatusCode::BAD_GATEWAY));
    let mut svc = KeyedCircuitBreakerLayer::new(hosts.clone(), Authority::new())
        .classify(HttpClassifier::new())
        .reject_with(ServiceUnavailable)
        .layer(inner.clone());

    for _ in 0..2 {
        let response = send(&mut svc, "http://sick.example/").unwrap();
        assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    }
    clock.advance(Duration::from_millis(2_500));
    let response = send(&mut svc, "http://sick.example/").unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()[RETRY_AFTER], "8");
    assert_eq!(
        response.extensions().get::<cutout::Rejected>(),
        Some(&cutout::Rejected::Open {
            retry_after: Duration::from_millis(7_500)
        })
    );
    assert_eq!(response.body(), "");
    assert_eq!(inner.calls(), 2);
    assert_eq!(
        send(&mut svc, "http://well.example/x").unwrap().body(),
        "/x"
    );

    // Full: sick is open, well is in use.
    let _held = hosts.lease(&key("well.example")).unwrap();
    let response = send(&mut svc, "http://new.example/").unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers().get(RETRY_AFTER), None);
    assert_eq!(
        response.extensions().get::<KeyedRejected>(),
        Some(&KeyedRejected::Full { capacity: 2 })
    );
    assert_eq!(inner.calls(), 3);
}

#[test]
fn requests_without_an_authority_pass_through_unprotected() {
    let clock = ManualClock::new();
    let hosts = registry(&clock, 1, 100);
    let inner = Counted::new(answering());
    let mut svc = KeyedCircuitBreaker::new(inner.clone(), hosts.clone(), Authority::new());
    for _ in 0..5 {
        let err = send(&mut svc, "/fail").unwrap_err();
        assert_eq!(err.to_string(), "connection refused");
    }
    assert_eq!(inner.calls(), 5);
    assert!(hosts.is_empty(), "no breaker was made");

    // A `Host` header that is not an authority is no key either; a valid one is.
    let mut bad_host = get_req("/fail");
    bad_host
        .headers_mut()
        .insert(HOST, "bad host".parse().unwrap());
    assert!(done(svc.call(bad_host)).is_err());
    assert!(hosts.is_empty());
    let mut with_host = get_req("/fail");
    with_host
        .headers_mut()
        .insert(HOST, "A.Example".parse().unwrap());
    assert!(done(svc.call(with_host)).is_err());
    assert_eq!(hosts.state(&key("a.example")), Some(State::Open));

    // With a fallback key, such requests share its breaker.
    let mut guarded = KeyedCircuitBreaker::new(
        inner.clone(),
        hosts.clone(),
        Authority::new().fallback(key("no-authority.invalid")),
    );
    assert_eq!(
        send(&mut guarded, "/fail").unwrap_err().to_string(),
        "connection refused"
    );
    let err = send(&mut guarded, "/ok").unwrap_err();
    assert!(err.is::<Rejected>());
    assert_eq!(inner.calls(), 8);
    assert_eq!(hosts.state(&key("no-authority.invalid")), Some(State::Open));
}

#[test]
fn the_authority_key_is_host_and_port_without_user_info_or_default_port() {
    let extract = |uri: &str| {
        Authority::new()
            .extract(&get_req(uri))
            .map(|a| a.to_string())
    };
    assert_eq!(extract("http://A.Example/").as_deref(), Some("a.example"));
    assert_eq!(
        extract("http://User@A.EXAMPLE:81/").as_deref(),
        Some("a.example:81")
    );
    assert_eq!(
        Authority::new().extract(&get_req("http://A.Example/")),
        Some(key("a.example"))
    );
    assert_eq!(key("A.Example"), key("a.example"));
    assert_eq!(
        key("a.example"),
        "A.EXAMPLE",
        "compared with text case-insensitively"
    );
    assert_eq!(key("a.example:81").host(), "a.example");
    assert_eq!(key("a.example:81").port_u16(), Some(81));
    assert_eq!(
        "u@B.example:80".parse::<AuthorityKey>().unwrap().as_str(),
        "b.example:80"
    );
    assert!("bad host".parse::<AuthorityKey>().is_err());
    assert_eq!(
        AuthorityKey::from(http::uri::Authority::from_static("C.example")).as_authority(),
        "c.example"
    );
    assert_eq!(
        format!("{:?}", key("a.example")),
        "AuthorityKey(\"a.example\")"
    );
    // The scheme's default port, user info and leading zeros of the port are dropped.
    for (uri, want) in [
        ("http://a.example:80/", "a.example"),
        ("https://a.example:443/", "a.example"),
        ("http://a.example:443/", "a.example:443"),
        ("https://a.example:80/", "a.example:80"),
        ("http://user:secret@a.example:8080/", "a.example:8080"),
        ("http://user@a.example/", "a.example"),
        ("http://[::1]:8080/", "[::1]:8080"),
        ("http://[::1]:80/", "[::1]"),
        ("http://a.example:/", "a.example"),
        ("http://a.example:080/", "a.example"),
        ("http://a.example:0/", "a.example:0"),
        ("https://a.example:08443/", "a.example:8443"),
        ("ftp://a.example:80/", "a.example:80"),
    ] {
        assert_eq!(extract(uri).as_deref(), Some(want), "{uri}");
    }
    assert_eq!(extract("/path"), None);
    let mut host = get_req("/path");
    host.headers_mut()
        .insert(HOST, "u@b.example:80".parse().unwrap());
    assert_eq!(
        Authority::new()
            .extract(&host)
            .map(|a| a.to_string())
            .as_deref(),
        Some("b.example:80"),
        "a Host header has no scheme: its port stays"
    );
    // The URI's authority wins over the Host header.
    let mut both = get_req("http://c.example/");
    both.headers_mut()
        .insert(HOST, "d.example".parse().unwrap());
    assert_eq!(Authority::new().extract(&both), Some(key("c.example")));
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

    /// Any authority a URI accepts gives a lowercase key without user info, and a key's own key is
    /// itself; nothing panics.
    #[test]
    fn authority_keys_are_canonical(
        user in proptest::option::of("[a-z:]{0,6}"),
        host in "([A-Za-z0-9.-]{1,12}|\\[[0-9a-f:]{2,10}\\])",
        port in proptest::option::of("[0-9]{0,6}"),
        https in proptest::bool::ANY,
    ) {
        let scheme = if https { "https" } else { "http" };
        let user = user.map(|u| format!("{u}@")).unwrap_or_default();
        let port = port.map(|p| format!(":{p}")).unwrap_or_default();
        let Ok(uri) = format!("{scheme}://{user}{host}{port}/").parse::<http::Uri>() else {
            return Ok(());
        };
        let mut request = Request::new(());
        *request.uri_mut() = uri;
        let key = Authority::new().extract(&request).expect("a URI with an authority has a key");
        proptest::prop_assert!(!key.as_str().contains('@'));
        proptest::prop_assert!(!key.as_str().bytes().any(|b| b.is_ascii_uppercase()));
        let again = Authority::new()
            .extract(&get_req(&format!("{scheme}://{key}/")))
            .expect("a key is an authority");
        proptest::prop_assert_eq!(again.as_str(), key.as_str());
    }
}

#[test]
fn a_closure_extractor_keys_any_request_and_none_passes_through() {
    let clock = ManualClock::new();
    let tenants: Shared<u32> = share(
        KeyedBreakers::builder(cutout::CircuitBreaker::builder().failure_threshold(1))
            .build_with_clock(clock.clone())
            .unwrap(),
    );
    let inner = Counted::new(tower::service_fn(|(_, fail): (Option<u32>, bool)| {
        std::future::ready(if fail { Err("down") } else { Ok(()) })
    }));
    let mut svc = KeyedCircuitBreakerLayer::new(tenants.clone(), |r: &(Option<u32>, bool)| r.0)
        .classify(|r: &Result<(), &'static str>| match r {
            Ok(()) => Outcome::Success,
            Err(_) => Outcome::Failure,
        })
        .layer(inner.clone());
    let mut call = |req| {
        done(svc.ready()).ok().unwrap();
        done(svc.call(req))
    };
    assert_eq!(call((Some(1), true)).unwrap_err().to_string(), "down");
    assert!(call((Some(1), false)).unwrap_err().is::<Rejected>());
    assert_eq!(call((Some(2), false)).unwrap(), ());
    assert_eq!(call((None, true)).unwrap_err().to_string(), "down");
    assert_eq!(call((None, false)).unwrap(), ());
    assert_eq!(inner.calls(), 4);
    assert_eq!(tenants.len(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_slow_call_counts_as_a_failure() {
    let hosts: Registry = share(
        KeyedBreakers::builder(cutout::CircuitBreaker::builder().failure_threshold(1))
            .build_with_clock(TokioClock::new())
            .unwrap(),
    );
    let mut svc = KeyedCircuitBreakerLayer::new(hosts.clone(), Authority::new())
        .slow_call_threshold(Duration::from_secs(1))
        .layer(tower::service_fn(|req: Request<()>| async move {
            if req.uri().path() == "/slow" {
                tokio::time::sleep(Duration::from_millis(1_001)).await;
            }
            Ok::<_, Infallible>(())
        }));
    let mut call = async |uri: &str| svc.ready().await.unwrap().call(get_req(uri)).await;
    call("http://a.example/fast").await.unwrap();
    assert_eq!(hosts.state(&key("a.example")), Some(State::Closed));
    call("http://a.example/slow").await.unwrap();
    assert_eq!(hosts.state(&key("a.example")), Some(State::Open));
}

#[test]
fn a_failed_poll_ready_is_the_inner_error() {
    let clock = ManualClock::new();
    let hosts = registry(&clock, 1, 4);
    let (mock, mut handle) = mock::pair::<Request<()>, String>();
    let mut svc = mock::Spawn::new(KeyedCircuitBreaker::new(mock, hosts, Authority::new()));
    handle.send_error("gone");
    match svc.poll_ready() {
        Poll::Ready(Err(e)) => assert_eq!(e.to_string(), "gone"),
        other => panic!("expected the inner error, got {other:?}"),
    }
}

/// A request's answer from an axum server: status, `Retry-After`, body.
async fn fetch(
    client: &Client<hyper_util::client::legacy::connect::HttpConnector, Full<bytes::Bytes>>,
    addr: SocketAddr,
    host: &str,
) -> (StatusCode, Option<String>, String) {
    let request = Request::get(format!("http://{addr}/"))
        .header(HOST, host)
        .body(Full::default())
        .unwrap();
    let response = client.request(request).await.unwrap();
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

async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

fn client() -> Client<hyper_util::client::legacy::connect::HttpConnector, Full<bytes::Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

#[tokio::test(start_paused = true)]
async fn an_axum_server_keys_virtual_hosts_by_their_host_header() {
    let start = Instant::now();
    let hits: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = hits.clone();
    let hosts: Registry = share(
        KeyedBreakers::builder(
            cutout::CircuitBreaker::builder()
                .failure_threshold(2)
                .open_duration(OPEN),
        )
        .build_with_clock(TokioClock::new())
        .unwrap(),
    );
    let app = Router::new()
        .route(
            "/",
            get(move |req: AxumRequest| {
                let seen = seen.clone();
                async move {
                    let host = req.headers()[HOST].to_str().unwrap().to_owned();
                    seen.lock().unwrap().push(host.clone());
                    if host == "sick.example" {
                        (StatusCode::INTERNAL_SERVER_ERROR, "down")
                    } else {
                        (StatusCode::OK, "up")
                    }
                }
            }),
        )
        .layer(ServiceBuilder::new().http_keyed_circuit_breaker(hosts.clone()));
    let addr = serve(app).await;
    let client = client();

    for _ in 0..2 {
        assert_eq!(
            fetch(&client, addr, "sick.example").await,
            (StatusCode::INTERNAL_SERVER_ERROR, None, "down".into())
        );
    }
    for _ in 0..3 {
        assert_eq!(
            fetch(&client, addr, "sick.example").await,
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Some("10".into()),
                String::new()
            )
        );
        assert_eq!(
            fetch(&client, addr, "well.example").await,
            (StatusCode::OK, None, "up".into())
        );
    }
    assert_eq!(
        hits.lock()
            .unwrap()
            .iter()
            .filter(|h| *h == "sick.example")
            .count(),
        2,
        "rejections never reach the handler"
    );
    tokio::time::advance(OPEN).await;
    assert_eq!(
        fetch(&client, addr, "sick.example").await.0,
        StatusCode::INTERNAL_SERVER_ERROR,
        "the half-open probe reaches the handler"
    );
    assert_eq!(hits.lock().unwrap().len(), 2 + 3 + 1);
    assert_eq!(hosts.state(&key("sick.example")), Some(State::Open));
    assert_eq!(hosts.state(&key("well.example")), Some(State::Closed));
    assert_eq!(start.elapsed(), OPEN);
}

#[tokio::test(start_paused = true)]
async fn a_hyper_client_stops_calling_the_failing_server_only() {
    let start = Instant::now();
    let sick_hits = Arc::new(AtomicUsize::new(0));
    let hits = sick_hits.clone();
    let sick = serve(Router::new().route(
        "/",
        get(move || {
            hits.fetch_add(1, Ordering::SeqCst);
            async { (StatusCode::SERVICE_UNAVAILABLE, "busy") }
        }),
    ))
    .await;
    let well = serve(Router::new().route("/", get(|| async { "up" }))).await;

    let layer = KeyedCircuitBreakerLayer::from_builder_with_clock(
        KeyedBreakers::builder(
            cutout::CircuitBreaker::builder()
                .failure_threshold(2)
                .open_duration(OPEN),
        ),
        Authority::new(),
        TokioClock::new(),
    )
    .unwrap()
    .classify(HttpClassifier::new());
    let mut svc = ServiceBuilder::new().layer(layer.clone()).service(client());
    let mut status = async |addr: SocketAddr| -> Result<StatusCode, BoxError> {
        let request = Request::get(format!("http://{addr}/"))
            .body(Full::default())
            .unwrap();
        Ok(svc.ready().await?.call(request).await?.status())
    };

    for _ in 0..2 {
        assert_eq!(status(sick).await.unwrap(), StatusCode::SERVICE_UNAVAILABLE);
    }
    for _ in 0..3 {
        let err = status(sick).await.unwrap_err();
        assert_eq!(
            err.downcast_ref::<Rejected>().unwrap().retry_after(),
            Some(OPEN)
        );
        assert_eq!(status(well).await.unwrap(), StatusCode::OK);
    }
    assert_eq!(sick_hits.load(Ordering::SeqCst), 2);
    let sick_key: AuthorityKey = sick.to_string().parse().unwrap();
    let well_key: AuthorityKey = well.to_string().parse().unwrap();
    assert_eq!(layer.registry().state(&sick_key), Some(State::Open));
    assert_eq!(layer.registry().state(&well_key), Some(State::Closed));
    assert_eq!(start.elapsed(), Duration::ZERO);
}

#[cfg(feature = "grpc")]
#[test]
fn the_grpc_modes_answer_a_full_registry_as_unavailable() {
    use tower_cutout::grpc::{UnavailableError, UnavailableResponse};
    use tower_cutout::keyed::KeyedReject;

    let full = KeyedRejected::Full { capacity: 3 };
    let response: Response<String> =
        KeyedReject::<_, Infallible>::no_breaker(&UnavailableResponse, full.clone()).unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["grpc-status"], "14");
    assert_eq!(response.headers()["content-type"], "application/grpc");
    assert_eq!(response.headers().get("grpc-retry-pushback-ms"), None);
    assert_eq!(response.extensions().get::<KeyedRejected>(), Some(&full));
    let status = tonic::Status::from_header_map(response.headers()).unwrap();
    assert_eq!(
        status.message(),
        "no breaker for this key: the registry is full"
    );

    // The client mode: the static status in the source chain, copied by tonic.
    let err = KeyedReject::<(), BoxError>::no_breaker(&UnavailableError, full.clone()).unwrap_err();
    assert_eq!(
        err.downcast_ref::<NoBreaker>().unwrap().reason(),
        Some(full.clone())
    );
    let status = tonic::Status::from_error(err);
    assert_eq!(status.code(), tonic::Code::Unavailable);
    assert_eq!(
        status.message(),
        "no breaker for this key: the registry is full"
    );
    // tonic moved the error into an `Arc`: away from its box it reads as unknown.
    let source = std::error::Error::source(&status).unwrap();
    assert_eq!(source.downcast_ref::<NoBreaker>().unwrap().reason(), None);

    // The conversion for a handler holding the boxed refusal keeps the reason.
    let converted = tonic::Status::from(
        KeyedReject::<(), BoxError>::no_breaker(
            &tower_cutout::reject::RejectWithError,
            full.clone(),
        )
        .unwrap_err()
        .downcast::<NoBreaker>()
        .unwrap(),
    );
    assert_eq!(converted.code(), tonic::Code::Unavailable);
    assert_eq!(
        std::error::Error::source(&converted).and_then(|e| e.downcast_ref::<KeyedRejected>()),
        Some(&full)
    );
}

#[test]
fn the_layer_and_service_debug_without_bounds_on_their_parts() {
    let clock = ManualClock::new();
    let layer = KeyedCircuitBreakerLayer::new(registry(&clock, 1, 4), Authority::new());
    assert_eq!(
        format!("{layer:?}"),
        "KeyedCircuitBreakerLayer { key: \"tower_cutout::keyed::extract::authority::AuthorityKey\", \
         extractor: \"tower_cutout::keyed::extract::authority::Authority\", \
         classifier: \"tower_cutout::classify::DefaultClassifier\", \
         reject: \"tower_cutout::reject::RejectWithError\", slow_call_threshold: None, .. }"
    );
    let svc = layer.layer(7u8);
    assert!(format!("{svc:?}").starts_with("KeyedCircuitBreaker { inner: 7, key: "));
    assert_eq!(svc.into_inner(), 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_on_two_threads_share_a_small_registry_without_losing_a_call() {
    fn send_sync<T: Send + Sync>(_: &T) {}

    let hosts: Shared<u32> = share(
        KeyedBreakers::builder(cutout::CircuitBreaker::builder().failure_threshold(1_000_000))
            .capacity(16)
            .build_with_clock(ManualClock::new())
            .unwrap(),
    );
    let inner = Counted::new(tower::service_fn(|(key, fail): (u32, bool)| async move {
        tokio::task::yield_now().await;
        if fail { Err("down") } else { Ok(key) }
    }));
    let svc = KeyedCircuitBreakerLayer::new(hosts.clone(), |r: &(u32, bool)| Some(r.0))
        .layer(inner.clone());
    send_sync(&svc);
    let tasks: Vec<_> = (0..8u32)
        .map(|t| {
            let mut svc = svc.clone();
            tokio::spawn(async move {
                // (calls that failed in the service, calls refused for want of a breaker)
                let (mut failed, mut refused) = (0, 0);
                for i in 0..2_000u32 {
                    let key = (t * 7 + i) % 64;
                    let future = svc.ready().await.unwrap().call((key, i % 10 == 0));
                    match future.await {
                        Ok(k) => assert_eq!(k, key),
                        Err(e) if e.is::<NoBreaker>() => refused += 1,
                        Err(e) => {
                            assert_eq!(e.to_string(), "down");
                            failed += 1;
                        }
                    }
                }
                (failed, refused)
            })
        })
        .collect();
    let (mut failed, mut refused) = (0, 0);
    for task in tasks {
        let (f, r) = task.await.unwrap();
        failed += f;
        refused += r;
    }
    // At most 8 of the 16 breakers are ever in use: no key is refused, and every call
    // reached the service.
    assert_eq!(refused, 0);
    assert_eq!(inner.calls(), 8 * 2_000);
    assert_eq!(failed, 8 * 200);
    // At most one breaker over the capacity per thread inserting at once.
    assert!(hosts.len() <= 16 + 2, "{} breakers", hosts.len());
    assert!(hosts.evicted() > 0);
}
