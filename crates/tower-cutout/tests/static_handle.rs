//! The `&'static` breaker handle under concurrency and the way servers use it: services
//! cloned per request (as axum does), futures sent to other threads and cancelled there,
//! a `static` breaker. The point-by-point contract on this handle is in
//! `contract_static.rs`.

use std::sync::{Barrier, LazyLock};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use cutout::{ManualClock, State};
use futures::FutureExt;
use tower::{Layer, Service, ServiceExt};
use tower_cutout::CircuitBreakerLayer;
use tower_cutout::error::{BoxError, Rejected};

fn assert_send_static<T: Send + 'static>(_: &T) {}

/// Fails every request whose number is a multiple of 7.
fn sevens() -> impl Service<
    u64,
    Response = u64,
    Error = &'static str,
    Future = std::future::Ready<Result<u64, &'static str>>,
> + Clone
+ Send
+ Sync
+ 'static {
    tower::service_fn(|n: u64| std::future::ready(if n % 7 == 0 { Err("seven") } else { Ok(n) }))
}

#[test]
fn services_cloned_per_request_on_four_threads_count_every_outcome_once() {
    const THREADS: u64 = 4;
    const REQUESTS: u64 = 700;
    let breaker = cutout::CircuitBreaker::builder()
        .failure_threshold(1_000)
        .build_with_clock(ManualClock::new())
        .unwrap()
        .leak();
    let svc = CircuitBreakerLayer::new(breaker).layer(sevens());
    let start = Barrier::new(THREADS as usize);
    std::thread::scope(|scope| {
        for t in 0..THREADS {
            let (svc, start) = (&svc, &start);
            scope.spawn(move || {
                start.wait();
                for i in 0..REQUESTS {
                    let n = t * REQUESTS + i;
                    // A fresh clone per request, as axum's router makes: it copies the
                    // reference and reserves nothing.
                    let mut per_request = svc.clone();
                    let out = per_request
                        .ready()
                        .now_or_never()
                        .unwrap()
                        .unwrap()
                        .call(n)
                        .now_or_never()
                        .unwrap();
                    assert_eq!(out.is_ok(), n % 7 != 0, "request {n}");
                }
            });
        }
    });
    let stats = breaker.stats();
    let failures = (0..THREADS * REQUESTS).filter(|n| n % 7 == 0).count() as u64;
    assert_eq!(
        (
            stats.state,
            stats.admitted,
            stats.successes,
            stats.failures,
            stats.ignored,
            stats.rejected
        ),
        (
            State::Closed,
            THREADS * REQUESTS,
            THREADS * REQUESTS - failures,
            failures,
            0,
            0
        )
    );
}

#[test]
fn racing_services_reserve_exactly_the_configured_probes_and_give_them_back_on_drop() {
    let clock = ManualClock::new();
    let breaker = cutout::CircuitBreaker::builder()
        .failure_threshold(1)
        .half_open_max_calls(2)
        .open_duration(Duration::from_secs(1))
        .build_with_clock(clock.clone())
        .unwrap()
        .leak();
    let svc = CircuitBreakerLayer::new(breaker).layer(sevens());
    assert_eq!(
        svc.clone()
            .oneshot(7)
            .now_or_never()
            .unwrap()
            .unwrap_err()
            .to_string(),
        "seven"
    );
    assert_eq!(breaker.state(), State::Open);
    clock.advance(Duration::from_secs(1));

    // Eight threads race to reserve a probe in `poll_ready` and hold their services while
    // the main thread looks; then they drop them without calling.
    const THREADS: usize = 8;
    let (tried, looked) = (Barrier::new(THREADS + 1), Barrier::new(THREADS + 1));
    std::thread::scope(|scope| {
        for _ in 0..THREADS {
            let (mut svc, tried, looked) = (svc.clone(), &tried, &looked);
            scope.spawn(move || {
                let mut cx = Context::from_waker(Waker::noop());
                assert!(matches!(svc.poll_ready(&mut cx), Poll::Ready(Ok(()))));
                tried.wait();
                looked.wait();
                drop(svc);
            });
        }
        tried.wait();
        let stats = breaker.stats();
        assert_eq!(
            (stats.state, stats.probes_in_flight, stats.rejected),
            (State::HalfOpen, 2, (THREADS - 2) as u64)
        );
        looked.wait();
    });
    let stats = breaker.stats();
    assert_eq!(
        (
            stats.state,
            stats.probes_in_flight,
            stats.probes,
            stats.ignored
        ),
        (State::HalfOpen, 0, 2, 2)
    );

    // Again, and each calls once every thread has reserved or been refused: exactly two
    // requests reach the inner service.
    let reserved = Barrier::new(THREADS);
    let answered: usize = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                let (mut svc, reserved) = (svc.clone(), &reserved);
                scope.spawn(move || {
                    let mut cx = Context::from_waker(Waker::noop());
                    assert!(matches!(svc.poll_ready(&mut cx), Poll::Ready(Ok(()))));
                    reserved.wait();
                    match svc.call(1).now_or_never().unwrap() {
                        Ok(1) => 1,
                        Ok(other) => panic!("answered {other}"),
                        Err(e) => {
                            let rejected = e.downcast_ref::<Rejected>().expect("a rejection");
                            assert!(matches!(
                                rejected.reason(),
                                Some(cutout::Rejected::HalfOpenFull { .. })
                            ));
                            0
                        }
                    }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    assert_eq!(answered, 2);
    assert_eq!(breaker.stats().probes, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_future_sent_to_another_task_and_aborted_gives_its_probe_back() {
    let clock = ManualClock::new();
    let breaker = cutout::CircuitBreaker::builder()
        .failure_threshold(1)
        .open_duration(Duration::from_secs(1))
        .build_with_clock(clock.clone())
        .unwrap()
        .leak();
    breaker
        .try_acquire()
        .unwrap()
        .record(cutout::Outcome::Failure);
    clock.advance(Duration::from_secs(1));

    // The inner service never answers.
    let never = tower::service_fn(|_: u64| std::future::pending::<Result<u64, BoxError>>());
    let mut svc = CircuitBreakerLayer::new(breaker).layer(never);
    let future = svc.ready().await.unwrap().call(1);
    assert_send_static(&future);
    assert_eq!(breaker.stats().probes_in_flight, 1);
    let task = tokio::spawn(future);
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    let stats = breaker.stats();
    assert_eq!(
        (stats.state, stats.probes_in_flight, stats.ignored),
        (State::HalfOpen, 0, 1)
    );
    // The slot is free again.
    assert!(breaker.try_acquire().is_ok());
}

static INVENTORY: LazyLock<cutout::CircuitBreaker> = LazyLock::new(|| {
    cutout::CircuitBreaker::builder()
        .failure_threshold(1)
        .open_duration(Duration::from_secs(30))
        .build_with_clock(ManualClock::new())
        .expect("valid settings")
});

#[tokio::test]
async fn a_static_breaker_rejects_with_a_downcastable_error() {
    let mut svc = CircuitBreakerLayer::new(&*INVENTORY).layer(sevens());
    assert_eq!(svc.ready().await.unwrap().call(1).await.unwrap(), 1);
    let err = svc.ready().await.unwrap().call(14).await.unwrap_err();
    assert_eq!(err.to_string(), "seven");
    let err = svc.ready().await.unwrap().call(2).await.unwrap_err();
    let rejected = err.downcast_ref::<Rejected>().expect("a rejection");
    assert_eq!(rejected.retry_after(), Some(Duration::from_secs(30)));
    assert!(svc.breaker().ptr_eq(&INVENTORY));
}
