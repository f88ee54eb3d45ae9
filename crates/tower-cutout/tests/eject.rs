//! Endpoint ejection in tower's p2c balancer (`tower_cutout::eject`): a sick endpoint gets
//! no request while its breaker is open and exactly its probes when the open time ends;
//! with every endpoint sick, the guardrail keeps the balancer serving. Time is tokio's,
//! paused: it moves only by `tokio::time::advance` (a balancer that waited would move it,
//! which the tests check it never does).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cutout::{CircuitBreaker, State, TokioClock, Transition};
use tower::balance::p2c::Balance;
use tower::discover::ServiceList;
use tower::load::Constant;
use tower::{BoxError, Service, ServiceExt, service_fn};
use tower_cutout::eject::{Ejection, Guardrail, InvalidShare};

const OPEN: Duration = Duration::from_secs(10);
const ALWAYS: fn(u64) -> bool = |_| true;
const NEVER: fn(u64) -> bool = |_| false;

/// An endpoint that counts its calls and fails its `n`th call (from 0) when `fails(n)`.
fn endpoint(
    hits: Arc<AtomicU64>,
    fails: fn(u64) -> bool,
) -> Constant<impl Service<u32, Response = u32, Error = BoxError, Future = impl Send> + Send, u32> {
    Constant::new(
        service_fn(move |req: u32| {
            let n = hits.fetch_add(1, Ordering::Relaxed);
            async move {
                if fails(n) {
                    Err::<u32, BoxError>("endpoint down".into())
                } else {
                    Ok(req)
                }
            }
        }),
        0,
    )
}

/// A balancer over endpoints that fail where `sick` says; each endpoint's breaker is
/// named by its index, trips at `threshold` and has one probe. Returns the balancer, the
/// endpoints' call counts, the breakers (by index), the guardrail, and every transition
/// (breaker name, transition) in order.
#[allow(clippy::type_complexity)]
fn balancer(
    sick: &[bool],
    threshold: u32,
) -> (
    impl Service<u32, Response = u32, Error = BoxError>,
    Vec<Arc<AtomicU64>>,
    Arc<Mutex<Vec<Option<CircuitBreaker>>>>,
    Guardrail,
    Arc<Mutex<Vec<(String, Transition)>>>,
) {
    let hits: Vec<_> = sick.iter().map(|_| Arc::new(AtomicU64::new(0))).collect();
    let endpoints: Vec<_> = sick
        .iter()
        .zip(&hits)
        .map(|(&sick, hits)| endpoint(hits.clone(), if sick { ALWAYS } else { NEVER }))
        .collect();
    let breakers = Arc::new(Mutex::new(vec![None; sick.len()]));
    let log = Arc::new(Mutex::new(Vec::new()));
    let (made, seen) = (breakers.clone(), log.clone());
    let ejection = Ejection::new(ServiceList::new(endpoints), move |key: &usize| {
        let seen = seen.clone();
        let name = key.to_string();
        let breaker = CircuitBreaker::builder()
            .name(name.clone())
            .failure_threshold(threshold)
            .open_duration(OPEN)
            .half_open_max_calls(1)
            .on_transition(move |t| seen.lock().unwrap().push((name.clone(), *t)))
            .build_with_clock(TokioClock::new())?;
        made.lock().unwrap()[*key] = Some(breaker.clone());
        Ok(breaker)
    });
    let guardrail = ejection.guardrail();
    (Balance::new(ejection), hits, breakers, guardrail, log)
}

/// Sends `n` requests one after another; how many succeeded.
async fn send(balancer: &mut impl Service<u32, Response = u32, Error = BoxError>, n: u32) -> u32 {
    let mut ok = 0;
    for i in 0..n {
        let svc = balancer.ready().await.expect("the balancer has endpoints");
        if let Ok(reply) = svc.call(i).await {
            assert_eq!(reply, i);
            ok += 1;
        }
    }
    ok
}

fn hits(counts: &[Arc<AtomicU64>]) -> Vec<u64> {
    counts.iter().map(|h| h.load(Ordering::Relaxed)).collect()
}

#[tokio::test(start_paused = true)]
async fn the_sick_endpoint_gets_only_its_probes_while_open() {
    let (mut balancer, counts, breakers, guardrail, _log) = balancer(&[false, false, true], 3);
    let start = tokio::time::Instant::now();
    let sick = || breakers.lock().unwrap()[2].clone().unwrap();

    // Until the sick endpoint trips: it takes exactly its 3 failures.
    let mut sent = 0;
    while breakers.lock().unwrap()[2]
        .as_ref()
        .is_none_or(|b| b.state() != State::Open)
    {
        send(&mut balancer, 1).await;
        sent += 1;
        assert!(sent < 1_000, "the sick endpoint was never picked");
    }
    assert_eq!(counts[2].load(Ordering::Relaxed), 3);

    // Open: 300 requests, none to the sick endpoint, all served.
    let before = hits(&counts);
    assert_eq!(send(&mut balancer, 300).await, 300);
    let during = hits(&counts);
    assert_eq!(during[2] - before[2], 0, "no request while open");
    assert_eq!((during[0] - before[0]) + (during[1] - before[1]), 300);
    assert_eq!((guardrail.ejected(), guardrail.let_through()), (1, 0));
    assert_eq!(
        tokio::time::Instant::now(),
        start,
        "the balancer never waited"
    );

    // The open time ends: exactly one probe (it fails and re-opens), then nothing again.
    tokio::time::advance(OPEN).await;
    assert_eq!(send(&mut balancer, 300).await, 299);
    let after = hits(&counts);
    assert_eq!(after[2] - during[2], 1, "exactly the one probe");
    assert_eq!(sick().stats().probes, 1);
    assert_eq!(sick().state(), State::Open);
    assert_eq!(sick().stats().trips, 2);

    // A second open period: still only its probe.
    tokio::time::advance(OPEN).await;
    assert_eq!(send(&mut balancer, 300).await, 299);
    assert_eq!(hits(&counts)[2] - after[2], 1);
    assert_eq!(sick().stats().probes, 2);
}

#[tokio::test(start_paused = true)]
async fn a_recovered_endpoint_closes_on_its_probe_and_takes_calls_again() {
    // Endpoint 2 fails its first 3 calls, then recovers.
    let hits: Vec<_> = (0..3).map(|_| Arc::new(AtomicU64::new(0))).collect();
    let endpoints = vec![
        endpoint(hits[0].clone(), NEVER),
        endpoint(hits[1].clone(), NEVER),
        endpoint(hits[2].clone(), |n| n < 3),
    ];
    let ejection = Ejection::new(ServiceList::new(endpoints), |_: &usize| {
        CircuitBreaker::builder()
            .failure_threshold(3)
            .open_duration(OPEN)
            .build_with_clock(TokioClock::new())
    });
    let guardrail = ejection.guardrail();
    let mut balancer = Balance::new(ejection);
    while hits[2].load(Ordering::Relaxed) < 3 {
        send(&mut balancer, 1).await;
    }
    // The endpoint is marked ejected when the balancer next polls it.
    assert_eq!(guardrail.ejected(), 0);
    send(&mut balancer, 1).await;
    assert_eq!(guardrail.ejected(), 1);
    send(&mut balancer, 100).await;
    assert_eq!(hits[2].load(Ordering::Relaxed), 3);
    tokio::time::advance(OPEN).await;
    assert_eq!(send(&mut balancer, 300).await, 300);
    assert_eq!(guardrail.ejected(), 0, "closed and restored");
    assert!(hits[2].load(Ordering::Relaxed) > 4, "takes calls again");
}

#[tokio::test(start_paused = true)]
async fn with_every_endpoint_sick_the_balancer_keeps_serving() {
    let (mut balancer, counts, breakers, guardrail, log) = balancer(&[true, true, true], 1);
    let start = tokio::time::Instant::now();
    let open = |i: usize| {
        breakers.lock().unwrap()[i]
            .as_ref()
            .is_some_and(|b| b.state() == State::Open)
    };
    // Until all three have tripped.
    let mut sent = 0;
    while !(0..3).all(open) {
        assert_eq!(send(&mut balancer, 1).await, 0);
        sent += 1;
        assert!(sent < 1_000, "an endpoint was never picked");
    }
    // Each tripped on its first call (threshold 1), in the order the log shows. (Once two
    // are ejected, the first is let through and may take more calls before the third
    // trips; those carry no permit.)
    let order: Vec<String> = log.lock().unwrap().iter().map(|(n, _)| n.clone()).collect();
    assert_eq!(order.len(), 3);
    let last: usize = order[2].parse().unwrap();

    // The last is marked ejected when the balancer next polls it, for the next request.
    assert_eq!(send(&mut balancer, 1).await, 0);
    // 50% of 3 endpoints: one stays ejected, the most recently ejected; the two ejected
    // before it are let through and serve every request (with their errors).
    assert_eq!(
        (
            guardrail.endpoints(),
            guardrail.ejected(),
            guardrail.let_through()
        ),
        (3, 3, 2)
    );
    let before = hits(&counts);
    assert_eq!(send(&mut balancer, 200).await, 0);
    let after = hits(&counts);
    assert_eq!(after[last], before[last], "the last ejected stays out");
    assert_eq!(after.iter().sum::<u64>() - before.iter().sum::<u64>(), 200);
    assert_eq!(
        tokio::time::Instant::now(),
        start,
        "the balancer never waited"
    );
    // Calls let through carry no permit: the breakers saw no new outcome.
    for b in breakers.lock().unwrap().iter().flatten() {
        assert_eq!((b.stats().admitted, b.stats().trips), (1, 1));
    }
}

#[tokio::test(start_paused = true)]
async fn a_max_share_of_zero_never_ejects() {
    let hits: Vec<_> = (0..2).map(|_| Arc::new(AtomicU64::new(0))).collect();
    let endpoints = vec![
        endpoint(hits[0].clone(), NEVER),
        endpoint(hits[1].clone(), ALWAYS),
    ];
    let ejection = Ejection::new(ServiceList::new(endpoints), |_: &usize| {
        CircuitBreaker::builder()
            .failure_threshold(1)
            .open_duration(OPEN)
            .build_with_clock(TokioClock::new())
    })
    .max_ejected_share(0.0)
    .unwrap();
    let guardrail = ejection.guardrail();
    let mut balancer = Balance::new(ejection);
    let ok = send(&mut balancer, 200).await;
    let [healthy, sick] = [0, 1].map(|i| hits[i].load(Ordering::Relaxed));
    assert_eq!(healthy + sick, 200);
    assert_eq!(u64::from(ok), healthy);
    assert!(sick > 1, "the open endpoint was let through: {sick}");
    assert_eq!((guardrail.ejected(), guardrail.let_through()), (1, 1));
}

#[test]
fn shares_outside_zero_to_one_are_refused() {
    for share in [-0.1, 1.01, f64::NAN, f64::INFINITY] {
        let list = ServiceList::new(Vec::<
            Constant<tower::util::BoxService<u32, u32, BoxError>, u32>,
        >::new());
        let err = Ejection::new(list, |_: &usize| CircuitBreaker::builder().build())
            .max_ejected_share(share)
            .unwrap_err();
        assert!(err.0.is_nan() && share.is_nan() || err == InvalidShare(share));
        assert!(err.to_string().contains("0.0..=1.0"));
    }
}

#[tokio::test]
async fn a_breaker_config_error_is_the_discovery_error() {
    let hits = Arc::new(AtomicU64::new(0));
    let ejection = Ejection::new(
        ServiceList::new(vec![endpoint(hits, NEVER)]),
        |_: &usize| CircuitBreaker::builder().failure_threshold(0).build(),
    );
    let mut balancer = Balance::new(ejection);
    let err = match balancer.ready().await {
        Ok(_) => panic!("a config error must surface"),
        Err(e) => e,
    };
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err.as_ref());
    let mut found = false;
    while let Some(e) = source {
        found |= e.downcast_ref::<cutout::ConfigError>()
            == Some(&cutout::ConfigError::ZeroFailureThreshold);
        source = e.source();
    }
    assert!(found, "{err}");
}
