//! A client balancing over three loopback upstreams with tower's p2c balancer, a breaker
//! per upstream (`tower_cutout::eject`): upstream "c" fails, its breaker opens, and the
//! balancer routes around it; when the open time ends it gets exactly one probe. Then every
//! upstream fails, and the guardrail (at most 50% ejected) keeps the balancer serving.
//! Threshold 3, open 200 ms, one probe. The example exits by itself:
//! `cargo run -p tower-cutout-examples --example balanced_client`

use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::balance::p2c::Balance;
use tower::discover::ServiceList;
use tower::load::{CompleteOnResponse, PendingRequests};
use tower::{Service, ServiceExt, service_fn};
use tower_cutout::eject::Ejection;
use tower_cutout::error::BoxError;
use tower_cutout_examples::{Flaky, PrintTransitions, flaky_upstream};

const NAMES: [&str; 3] = ["a", "b", "c"];

/// Sends `n` requests through the balancer; how many got a 2xx.
async fn send(
    balancer: &mut impl Service<(), Response = (), Error = BoxError>,
    n: usize,
) -> Result<usize, BoxError> {
    let mut ok = 0;
    for _ in 0..n {
        if balancer.ready().await?.call(()).await.is_ok() {
            ok += 1;
        }
    }
    Ok(ok)
}

fn hits(upstreams: &[Flaky]) -> Vec<usize> {
    upstreams.iter().map(Flaky::hits).collect()
}

fn delta(after: &[usize], before: &[usize]) -> String {
    NAMES
        .iter()
        .zip(after.iter().zip(before))
        .map(|(name, (a, b))| format!("{name} {}", a - b))
        .collect::<Vec<_>>()
        .join(", ")
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let upstreams = [Flaky::default(), Flaky::default(), Flaky::default()];
    let mut addrs = Vec::new();
    for (flaky, name) in upstreams.iter().zip(NAMES) {
        addrs.push(flaky_upstream(flaky.clone(), name).await?);
    }

    // One endpoint per upstream: a GET through a shared hyper client, a non-2xx status an
    // error (the breaker's failure), its load the requests in flight.
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let endpoints = addrs.iter().map(|&addr| {
        let client = client.clone();
        let get = service_fn(move |()| {
            let client = client.clone();
            async move {
                let request = Request::get(format!("http://{addr}/")).body(Full::default())?;
                let status = client.request(request).await?.status();
                if status.is_success() {
                    Ok(())
                } else {
                    Err(BoxError::from(format!("{addr}: {status}")))
                }
            }
        });
        PendingRequests::new(get, CompleteOnResponse::default())
    });
    let ejection = Ejection::new(ServiceList::new(endpoints), |&i: &usize| {
        cutout::CircuitBreaker::builder()
            .name(NAMES[i])
            .failure_threshold(3)
            .open_duration(Duration::from_millis(200))
            .half_open_max_calls(1)
            .listener(PrintTransitions)
            .build_with_clock(cutout::TokioClock::new())
    });
    let guardrail = ejection.guardrail();
    let mut balancer = Balance::new(ejection);

    println!("1. three healthy upstreams");
    let before = hits(&upstreams);
    let ok = send(&mut balancer, 30).await?;
    println!(
        "  30 requests, {ok} ok: {}",
        delta(&hits(&upstreams), &before)
    );

    println!("2. upstream c fails: three failures open its breaker");
    upstreams[2].set_failing(true);
    // Until the balancer finds c ejected (it asks c's breaker when it next polls c).
    for _ in 0..1_000 {
        if guardrail.ejected() == 1 {
            break;
        }
        send(&mut balancer, 1).await?;
    }
    let during = hits(&upstreams);
    let ok = send(&mut balancer, 60).await?;
    println!(
        "  while open: 60 requests, {ok} ok: {} (ejected {} of {})",
        delta(&hits(&upstreams), &during),
        guardrail.ejected(),
        guardrail.endpoints()
    );

    println!("3. the open time ends: c gets one probe, which fails and re-opens it");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = hits(&upstreams);
    let ok = send(&mut balancer, 60).await?;
    println!(
        "  60 requests, {ok} ok: {}",
        delta(&hits(&upstreams), &before)
    );

    println!("4. every upstream fails: at most 50% ejected, the rest let through");
    for flaky in &upstreams {
        flaky.set_failing(true);
    }
    let ok = send(&mut balancer, 30).await?;
    let before = hits(&upstreams);
    let ok2 = send(&mut balancer, 30).await?;
    println!(
        "  30 + 30 requests served ({} ok), the last 30: {} (ejected {}, let through {})",
        ok + ok2,
        delta(&hits(&upstreams), &before),
        guardrail.ejected(),
        guardrail.let_through()
    );
    Ok(())
}
