//! An HTTP client with a breaker per upstream host: one sick host trips its own breaker
//! while requests to the others go on. Threshold 2, open 100 ms, at most 64 hosts' breakers.
//!
//! The stack is `KeyedCircuitBreakerLayer` (keyed by each request's authority, the HTTP
//! classifier) over hyper-util's client; two local axum servers play the upstreams "eu" and
//! "us". The example exits by itself:
//! `cargo run -p tower-cutout-examples --example keyed_client`

use std::time::Duration;

use bytes::Bytes;
use cutout_keyed::KeyedBreakers;
use http::Request;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_cutout::error::{BoxError, Rejected};
use tower_cutout::http::HttpClassifier;
use tower_cutout::keyed::error::NoBreaker;
use tower_cutout::keyed::{Authority, AuthorityKey, KeyedCircuitBreakerLayer};
use tower_cutout_examples::{Flaky, PrintTransitions, flaky_upstream};

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let (eu, us) = (Flaky::default(), Flaky::default());
    let eu_addr = flaky_upstream(eu.clone(), "eu").await?;
    let us_addr = flaky_upstream(us.clone(), "us").await?;

    // The fast way: one registry for the process, borrowed by every request (`leak` gives a
    // `&'static KeyedBreakers`): no reference count is written per request.
    let hosts: &'static KeyedBreakers<AuthorityKey> = KeyedBreakers::builder(
        cutout::CircuitBreaker::builder()
            .failure_threshold(2)
            .open_duration(Duration::from_millis(100))
            .listener(PrintTransitions),
    )
    .capacity(64)
    .name_with(|host: &AuthorityKey| host.to_string())
    .build()?
    .leak();
    // Hosts not used for a whole period lose their breaker (an open one never does).
    let sweeper = hosts;
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(60));
        loop {
            every.tick().await;
            sweeper.evict_idle();
        }
    });

    let mut client = ServiceBuilder::new()
        .layer(
            KeyedCircuitBreakerLayer::new(hosts, Authority::new()).classify(HttpClassifier::new()),
        )
        .service(Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>());

    let mut send = async |addr: std::net::SocketAddr| {
        let request = Request::get(format!("http://{addr}/"))
            .body(Full::default())
            .expect("a valid request");
        let outcome = match client.ready().await {
            Ok(svc) => svc.call(request).await,
            Err(e) => Err(e),
        };
        let shown = match outcome {
            Ok(response) => response.status().to_string(),
            Err(e) if e.is::<Rejected>() => format!("rejected by {addr}'s breaker: {e}"),
            Err(e) if e.is::<NoBreaker>() => format!("no breaker free: {e}"),
            Err(e) => format!("error: {e}"),
        };
        println!("  GET {addr} -> {shown}");
    };

    println!("1. both upstreams healthy (eu at {eu_addr}, us at {us_addr})");
    send(eu_addr).await;
    send(us_addr).await;

    println!("2. eu fails: two 503s trip eu's breaker; us is still called");
    eu.set_failing(true);
    send(eu_addr).await;
    send(eu_addr).await;
    let (eu_hits, us_hits) = (eu.hits(), us.hits());
    send(eu_addr).await;
    send(us_addr).await;
    println!(
        "  calls while eu is open: eu {}, us {}",
        eu.hits() - eu_hits,
        us.hits() - us_hits
    );

    println!("3. after 100 ms one probe goes to eu; it is back, its breaker closes");
    eu.set_failing(false);
    tokio::time::sleep(Duration::from_millis(100)).await;
    send(eu_addr).await;

    let state = |addr: std::net::SocketAddr| {
        let key: AuthorityKey = addr.to_string().parse().expect("an authority");
        hosts.state(&key).map_or("none".into(), |s| s.to_string())
    };
    println!(
        "done: {} breakers (capacity {}), eu {}, us {}",
        hosts.len(),
        hosts.capacity(),
        state(eu_addr),
        state(us_addr)
    );
    Ok(())
}
