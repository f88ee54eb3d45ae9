//! tower-cutout: what the layer adds to a ready service.
//!
//! Each request goes through `ready().await` and `call().await`, driven by polling one
//! future with a no-op waker (every future here is ready at once), so no runtime overhead
//! swamps the numbers. The bare service is `tower::service_fn` returning
//! `std::future::ready`.
//!
//! Groups (ids say what is compared):
//! - Printed first: allocations per request, and the fastest of many interleaved batches
//!   for `bare`, `cutout`, a floor layer (the least any layer holding an owned permit
//!   does), tower's `ConcurrencyLimit` and `LoadShed`, and the core's permits: on a shared
//!   machine the fastest batch is the one no other process disturbed. `direct` rows drive
//!   the service by hand (`poll_ready`, `call`, the future), without the `ServiceExt::ready`
//!   future; then one and two threads at once (a spinning barrier before every batch, so
//!   the threads really overlap), each on its own clone of one service.
//! - `tower_layer_closed_success`: `bare` vs `cutout` (defaults; `service_fn_direct`:
//!   driven by hand), `cutout_http` (the
//!   HTTP classifier and 503 mode on `http::Response`), `cutout_slow_call` (a slow-call
//!   threshold: one `tokio::time::Instant` read per call), `cutout_backpressure`.
//! - `tower_layer_open_reject`: the rejection path (default mode boxes the error).
//! - `tower_layer_permit`: the core's permits alone, borrowed vs owned (the owned one is
//!   an `Arc` increment and decrement: what the layer pays for a `'static` future).
//! - `tower_layer_two_threads`: one breaker, one service clone per thread, `iter_custom`;
//!   the time per call each thread sees. The owned permit's `Arc` count is shared.
//! - `tower_layer_keyed`: `cutout` vs `cutout_keyed` (the keyed layer, one fixed key in a
//!   registry of 1 001) vs `cutout_keyed_static` (the same on a `&'static` registry), and `bare` vs `cutout_http` vs `cutout_keyed_http` on
//!   `http::Request`s (keyed by their authority); prints its own fastest-batch table first.
//!
//! Allocations per request are counted by a counting global allocator and printed before
//! the benchmarks run (`stats_alloc`; it only adds work to allocations, which the measured
//! closed paths do not make).

use std::alloc::System;
use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::Barrier;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use cutout::Outcome;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tower::{Layer, Service, ServiceExt};
use tower_cutout::CircuitBreakerLayer;
use tower_cutout::http::{HttpClassifier, ServiceUnavailable};
use tower_cutout::reject::RejectWithCallError;

mod support;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// The bare service: ready at once, answers at once.
fn bare() -> impl Service<
    u64,
    Response = u64,
    Error = Infallible,
    Future = std::future::Ready<Result<u64, Infallible>>,
> + Clone
+ Send
+ 'static {
    tower::service_fn(|x: u64| std::future::ready(Ok::<_, Infallible>(x.wrapping_add(1))))
}

/// The bare HTTP service: a `200` with an empty body.
fn bare_http() -> impl Service<
    u64,
    Response = http::Response<()>,
    Error = Infallible,
    Future = std::future::Ready<Result<http::Response<()>, Infallible>>,
> + Clone
+ Send
+ 'static {
    tower::service_fn(|_: u64| std::future::ready(Ok::<_, Infallible>(http::Response::new(()))))
}

/// One request: `ready().await` then `call().await`, polled with a no-op waker.
///
/// Never inlined, for every row alike: inlined into criterion's loop, a small stack (the
/// bare service, the floor layers) folds into the caller while a larger one (tower-cutout)
/// stays a call whose result comes back through memory and is read back at once, a
/// store-forwarding stall of several nanoseconds that is the driver's, not the layer's.
/// Out of line, every row pays the same call and return.
#[inline(never)]
fn request<S: Service<u64>>(svc: &mut S, x: u64) -> Result<S::Response, S::Error> {
    let mut future = pin!(async move { svc.ready().await?.call(x).await });
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        std::hint::spin_loop();
    }
}

fn breaker() -> cutout::CircuitBreaker {
    cutout::CircuitBreaker::builder()
        .failure_threshold(5)
        .open_duration(Duration::from_secs(3_600))
        .build()
        .expect("valid settings")
}

fn layer() -> CircuitBreakerLayer {
    CircuitBreakerLayer::new(breaker())
}

/// The floor layers: the least any layer whose response future holds a cutout permit does
/// (acquire in `poll_ready`, record `Success` when the inner future is done, errors boxed,
/// as cutout's default mode does; no classification, no modes), over either handle, written
/// by hand. `HandFloor<S, &'static CircuitBreaker>` holds a `Permit<'static>` (no reference
/// count: the least a layer whose future is `'static` can do);
/// `HandFloor<S, CircuitBreaker>` an `OwnedPermit` (an `Arc` increment and decrement).
struct HandFloor<S, H: FloorHandle> {
    inner: S,
    breaker: H,
    permit: Option<H::Permit>,
}

/// A handle the hand-written floor takes its permits from.
trait FloorHandle: Clone {
    type Permit: FloorPermit;
    fn take(&self) -> Option<Self::Permit>;
}

trait FloorPermit {
    fn success(self);
}

impl FloorHandle for &'static cutout::CircuitBreaker {
    type Permit = cutout::Permit<'static>;
    #[inline]
    fn take(&self) -> Option<Self::Permit> {
        let breaker: &'static cutout::CircuitBreaker = self;
        breaker.try_acquire().ok()
    }
}

impl FloorPermit for cutout::Permit<'static> {
    #[inline]
    fn success(self) {
        self.record(Outcome::Success)
    }
}

impl FloorHandle for cutout::CircuitBreaker {
    type Permit = cutout::OwnedPermit;
    #[inline]
    fn take(&self) -> Option<Self::Permit> {
        self.try_acquire_owned().ok()
    }
}

impl FloorPermit for cutout::OwnedPermit {
    #[inline]
    fn success(self) {
        self.record(Outcome::Success)
    }
}

struct HandFloorFuture<F, P> {
    future: F,
    permit: Option<P>,
}

impl<T, E, F, P: FloorPermit + Unpin> Future for HandFloorFuture<F, P>
where
    E: Into<tower_cutout::error::BoxError>,
    F: Future<Output = Result<T, E>> + Unpin,
{
    type Output = Result<T, tower_cutout::error::BoxError>;

    #[inline]
    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let out = std::task::ready!(std::pin::Pin::new(&mut self.future).poll(cx));
        if let Some(permit) = self.permit.take() {
            permit.success();
        }
        Poll::Ready(out.map_err(Into::into))
    }
}

impl<S: Service<u64>, H: FloorHandle> Service<u64> for HandFloor<S, H>
where
    S::Future: Unpin,
    S::Error: Into<tower_cutout::error::BoxError>,
    H::Permit: Unpin,
{
    type Response = S::Response;
    type Error = tower_cutout::error::BoxError;
    type Future = HandFloorFuture<S::Future, H::Permit>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if self.permit.is_none() {
            self.permit = self.breaker.take();
        }
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline]
    fn call(&mut self, request: u64) -> Self::Future {
        HandFloorFuture {
            future: self.inner.call(request),
            permit: self.permit.take(),
        }
    }
}

/// A clone starts without a permit, as a layer's clones do.
impl<S: Clone, H: FloorHandle> Clone for HandFloor<S, H> {
    fn clone(&self) -> Self {
        HandFloor {
            inner: self.inner.clone(),
            breaker: self.breaker.clone(),
            permit: None,
        }
    }
}

/// The floor of a rejection through a layer, written by hand: `poll_ready` asks the
/// `&'static` breaker and keeps the one-word rejection, `call` returns a future that is
/// the rejection (a typed error, no allocation); no classifier, no modes, no reserved
/// permit. What any layer that fails fast from `poll_ready` must do.
struct HandRejectFloor<S> {
    inner: S,
    breaker: &'static cutout::CircuitBreaker,
    permit: Option<cutout::Permit<'static>>,
    rejection: Option<cutout::CompactRejected>,
}

enum HandRejectFuture<F> {
    Called(F, Option<cutout::Permit<'static>>),
    Rejected(cutout::CompactRejected),
}

impl<T, E, F> Future for HandRejectFuture<F>
where
    F: Future<Output = Result<T, E>> + Unpin,
{
    type Output = Result<T, cutout::CallError<E>>;

    #[inline]
    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut *self {
            HandRejectFuture::Called(future, permit) => {
                let out = std::task::ready!(std::pin::Pin::new(future).poll(cx));
                if let Some(permit) = permit.take() {
                    permit.record(Outcome::Success);
                }
                Poll::Ready(out.map_err(cutout::CallError::Inner))
            }
            HandRejectFuture::Rejected(rejection) => {
                Poll::Ready(Err(cutout::CallError::Rejected(rejection.to_rejected())))
            }
        }
    }
}

impl<S: Service<u64>> Service<u64> for HandRejectFloor<S>
where
    S::Future: Unpin,
{
    type Response = S::Response;
    type Error = cutout::CallError<S::Error>;
    type Future = HandRejectFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if self.permit.is_none() && self.rejection.is_none() {
            match self.breaker.try_acquire_compact() {
                Ok(permit) => self.permit = Some(permit),
                Err(rejection) => {
                    self.rejection = Some(rejection);
                    return Poll::Ready(Ok(()));
                }
            }
        }
        self.inner.poll_ready(cx).map_err(cutout::CallError::Inner)
    }

    #[inline]
    fn call(&mut self, request: u64) -> Self::Future {
        match self.rejection.take() {
            Some(rejection) => HandRejectFuture::Rejected(rejection),
            None => HandRejectFuture::Called(self.inner.call(request), self.permit.take()),
        }
    }
}

/// The hand-written floor over `breaker`, on `inner`.
fn hand_floor<S, H: FloorHandle>(inner: S, breaker: H) -> HandFloor<S, H> {
    HandFloor {
        inner,
        breaker,
        permit: None,
    }
}

/// Allocations and bytes per call of `f`, over 10 000 calls after as many warm-up calls.
fn allocations(mut f: impl FnMut()) -> (f64, f64) {
    const CALLS: u32 = 10_000;
    for _ in 0..CALLS {
        f();
    }
    let region = Region::new(GLOBAL);
    for _ in 0..CALLS {
        f();
    }
    let change = region.change();
    (
        change.allocations as f64 / f64::from(CALLS),
        change.bytes_allocated as f64 / f64::from(CALLS),
    )
}

fn print_allocations() {
    let mut bare = bare();
    let mut cutout = layer().layer(self::bare());
    let mut http = layer()
        .classify(HttpClassifier::new())
        .reject_with(ServiceUnavailable)
        .layer(bare_http());
    let open = layer();
    open.breaker().force_open();
    let mut rejecting = open.layer(self::bare());
    let open_http = layer()
        .classify(HttpClassifier::new())
        .reject_with(ServiceUnavailable);
    open_http.breaker().force_open();
    let mut rejecting_http = open_http.layer(bare_http());
    let rows = [
        (
            "bare",
            "closed success",
            allocations(|| {
                black_box(request(&mut bare, 1).is_ok());
            }),
        ),
        (
            "cutout",
            "closed success",
            allocations(|| {
                black_box(request(&mut cutout, 1).is_ok());
            }),
        ),
        (
            "cutout_http",
            "closed success",
            allocations(|| {
                black_box(request(&mut http, 1).is_ok());
            }),
        ),
        (
            "cutout",
            "open reject (boxed error)",
            allocations(|| {
                black_box(request(&mut rejecting, 1).is_err());
            }),
        ),
        (
            "cutout_http",
            "open reject (503 response)",
            allocations(|| {
                black_box(request(&mut rejecting_http, 1).is_ok());
            }),
        ),
    ];
    println!("\n| stack | path | allocations/request | bytes/request |");
    println!("|---|---|---|---|");
    for (stack, path, (allocs, bytes)) in rows {
        println!("| {stack} | {path} | {allocs} | {bytes} |");
    }
    println!();
}

/// The fastest per-call time of `f` over `rounds` batches of `calls` calls. On a shared
/// machine the mean includes other processes' time slices; the fastest batch is the one
/// that ran undisturbed.
fn fastest(rounds: u32, calls: u32, f: &mut dyn FnMut()) -> f64 {
    let mut best = f64::INFINITY;
    for _ in 0..rounds {
        let start = Instant::now();
        for _ in 0..calls {
            f();
        }
        best = best.min(start.elapsed().as_nanos() as f64 / f64::from(calls));
    }
    best
}

/// One request driven by hand, as a load balancer or `Buffer` worker does: `poll_ready`
/// until ready, `call`, then the response future (no `ServiceExt::ready` future around it).
#[inline]
fn direct<S: Service<u64>>(svc: &mut S, x: u64) -> Result<S::Response, S::Error> {
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        match svc.poll_ready(&mut cx) {
            Poll::Ready(Ok(())) => break,
            Poll::Ready(Err(e)) => return Err(e),
            Poll::Pending => std::hint::spin_loop(),
        }
    }
    let mut future = pin!(svc.call(x));
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        std::hint::spin_loop();
    }
}

/// The per-call time each of `threads` threads sees when they run at once, each on its own
/// clone of `svc`: `rounds` batches of `calls` requests (the threads meet at a barrier
/// before every batch); a batch takes as long as its slowest thread, and the fastest batch
/// counts.
fn fastest_on_threads<S>(threads: usize, rounds: u32, calls: u32, svc: &S) -> f64
where
    S: Service<u64> + Clone + Send,
{
    // A spinning barrier: a sleeping one wakes the other thread too late to overlap.
    let arrived = AtomicUsize::new(0);
    let per_thread: Vec<Vec<f64>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let mut svc = svc.clone();
                let arrived = &arrived;
                scope.spawn(move || {
                    (0..rounds as usize)
                        .map(|round| {
                            arrived.fetch_add(1, Ordering::AcqRel);
                            while arrived.load(Ordering::Acquire) < threads * (round + 1) {
                                std::hint::spin_loop();
                            }
                            let start = Instant::now();
                            for _ in 0..calls {
                                black_box(direct(&mut svc, black_box(1)).is_ok());
                            }
                            start.elapsed().as_nanos() as f64 / f64::from(calls)
                        })
                        .collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("bench thread"))
            .collect()
    });
    (0..rounds as usize)
        .map(|round| per_thread.iter().map(|t| t[round]).fold(0.0, f64::max))
        .fold(f64::INFINITY, f64::min)
}

/// One measured case: a request (or a permit) per call.
type Case = Box<dyn FnMut()>;

/// Bare and layered stacks measured in alternation, fastest batch of each: what the layer
/// adds, with the noise of a loaded machine filtered out.
fn print_fastest() {
    const ROUNDS: u32 = 400;
    const CALLS: u32 = 2_000;
    let mut bare_svc = bare();
    let mut cutout = layer().layer(bare());
    let mut bare_http_svc = bare_http();
    let mut http = layer()
        .classify(HttpClassifier::new())
        .reject_with(ServiceUnavailable)
        .layer(bare_http());
    let mut floor = hand_floor(bare(), breaker());
    let mut limit = tower::limit::ConcurrencyLimitLayer::new(1_000).layer(bare());
    let mut load_shed = tower::load_shed::LoadShedLayer::new().layer(bare());
    let breaker = breaker();
    let mut floor_direct = hand_floor(bare(), breaker.clone());
    let mut bare_direct = bare();
    let mut cutout_direct = layer().layer(bare());
    let mut cases: Vec<(&str, Case)> = vec![
        (
            "bare service_fn",
            Box::new(move || {
                black_box(request(&mut bare_svc, black_box(1)).is_ok());
            }),
        ),
        (
            "cutout service_fn",
            Box::new(move || {
                black_box(request(&mut cutout, black_box(1)).is_ok());
            }),
        ),
        (
            "bare http_response",
            Box::new(move || {
                black_box(request(&mut bare_http_svc, black_box(1)).is_ok());
            }),
        ),
        (
            "cutout_http http_response",
            Box::new(move || {
                black_box(request(&mut http, black_box(1)).is_ok());
            }),
        ),
        (
            "bare service_fn, direct",
            Box::new(move || {
                black_box(direct(&mut bare_direct, black_box(1)).is_ok());
            }),
        ),
        (
            "cutout service_fn, direct",
            Box::new(move || {
                black_box(direct(&mut cutout_direct, black_box(1)).is_ok());
            }),
        ),
        (
            "floor: owned permit layer",
            Box::new(move || {
                black_box(request(&mut floor, black_box(1)).is_ok());
            }),
        ),
        (
            "floor, direct",
            Box::new(move || {
                black_box(direct(&mut floor_direct, black_box(1)).is_ok());
            }),
        ),
        (
            "tower ConcurrencyLimit",
            Box::new(move || {
                black_box(request(&mut limit, black_box(1)).is_ok());
            }),
        ),
        (
            "tower LoadShed",
            Box::new(move || {
                black_box(request(&mut load_shed, black_box(1)).is_ok());
            }),
        ),
        (
            "core borrowed permit",
            Box::new({
                let breaker = breaker.clone();
                move || {
                    if let Ok(p) = black_box(&breaker).try_acquire() {
                        p.record(Outcome::Success)
                    }
                }
            }),
        ),
        (
            "core owned permit",
            Box::new(move || {
                if let Ok(p) = black_box(&breaker).try_acquire_owned() {
                    p.record(Outcome::Success)
                }
            }),
        ),
    ];
    let mut best = vec![f64::INFINITY; cases.len()];
    // Alternate in small slices so every case sees the same machine.
    for _ in 0..ROUNDS / 20 {
        for (i, (_, f)) in cases.iter_mut().enumerate() {
            best[i] = best[i].min(fastest(20, CALLS, f.as_mut()));
        }
    }
    println!("| case | fastest batch, ns/call |");
    println!("|---|---|");
    for ((name, _), ns) in cases.iter().zip(&best) {
        println!("| {name} | {ns:.2} |");
    }
    println!(
        "cutout adds {:.2} ns (service_fn), {:.2} ns (http::Response), {:.2} ns (driven \
         directly); the floor layer adds {:.2} ns, ConcurrencyLimit {:.2} ns, LoadShed {:.2} ns; \
         an owned permit costs {:.2} ns more than a borrowed one\n",
        best[1] - best[0],
        best[3] - best[2],
        best[5] - best[4],
        best[6] - best[0],
        best[8] - best[0],
        best[9] - best[0],
        best[11] - best[10]
    );
    println!("| threads | bare, direct | cutout, direct (ns/call each thread sees) |");
    println!("|---|---|---|");
    let (bare_svc, cutout) = (bare(), layer().layer(bare()));
    for threads in [1, 2] {
        let (mut bare_ns, mut cutout_ns) = (f64::INFINITY, f64::INFINITY);
        for _ in 0..10 {
            bare_ns = bare_ns.min(fastest_on_threads(threads, 10, 50_000, &bare_svc));
            cutout_ns = cutout_ns.min(fastest_on_threads(threads, 10, 50_000, &cutout));
        }
        println!("| {threads} | {bare_ns:.2} | {cutout_ns:.2} |");
    }
    println!();
}

fn closed_success(c: &mut Criterion) {
    print_allocations();
    // Only when benchmarking (`cargo bench` passes `--bench`), not in `cargo test --benches`,
    // and not when a filter names one group (`--bench tower_layer_...`, as under a profiler).
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--bench")
        && !args
            .iter()
            .any(|a| a.starts_with("tower_layer") || a.starts_with("tower_floor"))
    {
        print_fastest();
    }
    let mut g = c.benchmark_group("tower_layer_closed_success");

    let mut svc = bare();
    g.bench_function(BenchmarkId::new("bare", "service_fn"), |b| {
        b.iter(|| request(&mut svc, black_box(1)))
    });

    let mut svc = layer().layer(bare());
    assert_eq!(request(&mut svc, 1).ok(), Some(2));
    g.bench_function(BenchmarkId::new("cutout", "service_fn"), |b| {
        b.iter(|| request(&mut svc, black_box(1)))
    });

    let mut svc = bare();
    g.bench_function(BenchmarkId::new("bare", "service_fn_direct"), |b| {
        b.iter(|| direct(&mut svc, black_box(1)))
    });

    let mut svc = layer().layer(bare());
    g.bench_function(BenchmarkId::new("cutout", "service_fn_direct"), |b| {
        b.iter(|| direct(&mut svc, black_box(1)))
    });

    let mut svc = bare_http();
    g.bench_function(BenchmarkId::new("bare", "http_response"), |b| {
        b.iter(|| request(&mut svc, black_box(1)))
    });

    let mut svc = layer()
        .classify(HttpClassifier::new())
        .reject_with(ServiceUnavailable)
        .layer(bare_http());
    g.bench_function(BenchmarkId::new("cutout_http", "http_response"), |b| {
        b.iter(|| request(&mut svc, black_box(1)))
    });

    let mut svc = layer()
        .slow_call_threshold(Duration::from_secs(1))
        .layer(bare());
    // A runtime context is not needed: tokio::time::Instant without a paused clock is
    // std's Instant.
    g.bench_function(BenchmarkId::new("cutout_slow_call", "service_fn"), |b| {
        b.iter(|| request(&mut svc, black_box(1)))
    });

    let mut svc = layer().backpressure().layer(bare());
    g.bench_function(BenchmarkId::new("cutout_backpressure", "service_fn"), |b| {
        b.iter(|| request(&mut svc, black_box(1)))
    });
    g.finish();
}

fn open_reject(c: &mut Criterion) {
    let mut g = c.benchmark_group("tower_layer_open_reject");
    let open = layer();
    open.breaker().force_open();
    let mut svc = open.layer(bare());
    assert!(request(&mut svc, 1).is_err());
    g.bench_function(BenchmarkId::new("cutout", "boxed_error"), |b| {
        b.iter(|| request(&mut svc, black_box(1)))
    });
    let open = layer()
        .classify(HttpClassifier::new())
        .reject_with(ServiceUnavailable);
    open.breaker().force_open();
    let mut svc = open.layer(bare_http());
    g.bench_function(BenchmarkId::new("cutout_http", "503_response"), |b| {
        b.iter(|| request(&mut svc, black_box(1)))
    });
    g.finish();
}

fn permits(c: &mut Criterion) {
    let mut g = c.benchmark_group("tower_layer_permit");
    let breaker = breaker();
    g.bench_function(BenchmarkId::new("core", "borrowed_permit"), |b| {
        b.iter(|| {
            if let Ok(p) = black_box(&breaker).try_acquire() {
                p.record(Outcome::Success)
            }
        })
    });
    g.bench_function(BenchmarkId::new("core", "owned_permit"), |b| {
        b.iter(|| {
            if let Ok(p) = black_box(&breaker).try_acquire_owned() {
                p.record(Outcome::Success)
            }
        })
    });
    g.finish();
}

/// Runs `per_thread(iters)` on `threads` threads at once; the mean of their times.
fn on_threads<S: Clone + Send + 'static>(
    threads: usize,
    iters: u64,
    svc: &S,
    per_call: fn(&mut S),
) -> Duration {
    let barrier = std::sync::Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let mut svc = svc.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                let start = Instant::now();
                for _ in 0..iters {
                    per_call(&mut svc);
                }
                start.elapsed()
            })
        })
        .collect();
    let total: Duration = handles
        .into_iter()
        .map(|h| h.join().expect("bench thread"))
        .sum();
    total / threads as u32
}

fn two_threads(c: &mut Criterion) {
    let mut g = c.benchmark_group("tower_layer_two_threads");
    for threads in [1, 2] {
        let svc = bare();
        g.bench_function(BenchmarkId::new("bare", threads), |b| {
            b.iter_custom(|iters| {
                on_threads(threads, iters, &svc, |s| {
                    black_box(request(s, black_box(1)).is_ok());
                })
            })
        });
        let svc = layer().layer(bare());
        g.bench_function(BenchmarkId::new("cutout", threads), |b| {
            b.iter_custom(|iters| {
                on_threads(threads, iters, &svc, |s| {
                    black_box(request(s, black_box(1)).is_ok());
                })
            })
        });
    }
    g.finish();
}

/// The keyed layer (feature `keyed`) beside the unkeyed one: one fixed key, found in a
/// registry of 1 000 breakers (default SipHash hasher). `cutout_keyed_http` keys an
/// `http::Request` by its URI's authority (a reference count, no allocation) and classifies
/// with the HTTP classifier; `bare/http_request` is the same request without a layer.
fn keyed(c: &mut Criterion) {
    use tower_cutout::keyed::{Authority, KeyedCircuitBreakerLayer};

    #[inline]
    fn send<R, S: Service<R>>(svc: &mut S, req: R) -> Result<S::Response, S::Error> {
        let mut future = pin!(async move { svc.ready().await?.call(req).await });
        let mut cx = Context::from_waker(Waker::noop());
        loop {
            if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
                return out;
            }
            std::hint::spin_loop();
        }
    }

    let mut unkeyed = layer().layer(bare());
    let hosts = registry(1_000..2_000u64);
    let mut keyed =
        KeyedCircuitBreakerLayer::new(hosts.clone(), |_: &u64| Some(7u64)).layer(bare());
    assert_eq!(request(&mut keyed, 1).ok(), Some(2));
    assert_eq!(hosts.len(), 1_001);
    let mut keyed_static = keyed_1000_static();
    assert_eq!(request(&mut keyed_static, 1).ok(), Some(2));

    let uri: http::Uri = "http://api.example:8080/v1/quote".parse().expect("a URI");
    let get = |uri: &http::Uri| {
        let mut req = http::Request::new(());
        *req.uri_mut() = uri.clone();
        req
    };
    let http_service = || {
        tower::service_fn(|_: http::Request<()>| {
            std::future::ready(Ok::<_, Infallible>(http::Response::new(())))
        })
    };
    let mut bare_http = http_service();
    let mut unkeyed_http = layer()
        .classify(HttpClassifier::new())
        .reject_with(ServiceUnavailable)
        .layer(http_service());
    let hosts = registry((0..1_000).map(|i| {
        format!("h{i}.example:8080")
            .parse::<tower_cutout::keyed::AuthorityKey>()
            .expect("an authority")
    }));
    let mut keyed_http = KeyedCircuitBreakerLayer::new(hosts.clone(), Authority::new())
        .classify(HttpClassifier::new())
        .reject_with(ServiceUnavailable)
        .layer(http_service());
    assert_eq!(
        send(&mut keyed_http, get(&uri)).map(|r| r.status()).ok(),
        Some(http::StatusCode::OK)
    );
    assert_eq!(hosts.len(), 1_001);

    // The fastest of interleaved batches (see `fastest`), when benchmarking: with no filter
    // or the filter `tower_layer_keyed`, not when a filter names another group or one
    // benchmark (as under a profiler).
    let args: Vec<String> = std::env::args().collect();
    let filtered = args
        .iter()
        .any(|a| a.starts_with("tower_layer") || a.starts_with("tower_floor"));
    if args.iter().any(|a| a == "--bench")
        && (!filtered || args.iter().any(|a| a == "tower_layer_keyed"))
    {
        let mut best = [f64::INFINITY; 5];
        for _ in 0..200 {
            let times = [
                fastest(1, 2_000, &mut || {
                    black_box(request(&mut unkeyed, black_box(1)).is_ok());
                }),
                fastest(1, 2_000, &mut || {
                    black_box(request(&mut keyed, black_box(1)).is_ok());
                }),
                fastest(1, 2_000, &mut || {
                    black_box(send(&mut bare_http, get(black_box(&uri))).is_ok());
                }),
                fastest(1, 2_000, &mut || {
                    black_box(send(&mut unkeyed_http, get(black_box(&uri))).is_ok());
                }),
                fastest(1, 2_000, &mut || {
                    black_box(send(&mut keyed_http, get(black_box(&uri))).is_ok());
                }),
            ];
            for (b, t) in best.iter_mut().zip(times) {
                *b = b.min(t);
            }
        }
        println!("\n| keyed case | fastest batch, ns/call |\n|---|---|");
        let names = [
            "cutout service_fn",
            "cutout_keyed service_fn (fixed u64 key)",
            "bare http_request",
            "cutout_http http_request",
            "cutout_keyed_http http_request (Authority key)",
        ];
        for (name, ns) in names.iter().zip(best) {
            println!("| {name} | {ns:.2} |");
        }
        println!(
            "the keyed layer adds {:.2} ns over the unkeyed one (u64 key), {:.2} ns (HTTP, Authority key)\n",
            best[1] - best[0],
            best[4] - best[3]
        );
    }

    let mut g = c.benchmark_group("tower_layer_keyed");
    g.bench_function(BenchmarkId::new("cutout", "service_fn"), |b| {
        b.iter(|| request(&mut unkeyed, black_box(1)))
    });
    g.bench_function(BenchmarkId::new("cutout_keyed", "fixed_key"), |b| {
        b.iter(|| request(&mut keyed, black_box(1)))
    });
    g.bench_function(BenchmarkId::new("cutout_keyed_static", "fixed_key"), |b| {
        b.iter(|| request(&mut keyed_static, black_box(1)))
    });
    g.bench_function(BenchmarkId::new("bare", "http_request"), |b| {
        b.iter(|| send(&mut bare_http, get(black_box(&uri))))
    });
    g.bench_function(BenchmarkId::new("cutout_http", "http_request"), |b| {
        b.iter(|| send(&mut unkeyed_http, get(black_box(&uri))))
    });
    g.bench_function(
        BenchmarkId::new("cutout_keyed_http", "authority_key"),
        |b| b.iter(|| send(&mut keyed_http, get(black_box(&uri)))),
    );
    g.finish();
}

/// A registry of `others` keys (default hasher), each with a closed breaker, behind an
/// `Arc`.
fn registry<K: std::hash::Hash + Eq + Clone + Send + Sync + 'static>(
    others: impl Iterator<Item = K>,
) -> std::sync::Arc<cutout_keyed::KeyedBreakers<K>> {
    std::sync::Arc::new(registry_of(others))
}

/// A registry of `others` keys (default hasher), each with a closed breaker.
fn registry_of<K: std::hash::Hash + Eq + Clone + Send + Sync + 'static>(
    others: impl Iterator<Item = K>,
) -> cutout_keyed::KeyedBreakers<K> {
    let hosts = cutout_keyed::KeyedBreakers::builder(
        cutout::CircuitBreaker::builder()
            .failure_threshold(5)
            .open_duration(Duration::from_secs(3_600)),
    )
    .capacity(4_096)
    .build()
    .expect("valid settings");
    for key in others {
        assert!(hosts.call(&key, || Ok::<_, Infallible>(())).is_ok());
    }
    hosts
}

/// A breaker that lives until the process ends (the fast handle).
fn leaked() -> &'static cutout::CircuitBreaker {
    breaker().leak()
}

/// The keyed layer on one fixed key of a registry of 1 001.
fn keyed_1000()
-> impl Service<u64, Response = u64, Error = tower_cutout::error::BoxError> + Clone + Send {
    let hosts = registry(1_000..2_000u64);
    let svc =
        tower_cutout::keyed::KeyedCircuitBreakerLayer::new(hosts.clone(), |_: &u64| Some(7u64))
            .layer(bare());
    assert_eq!(hosts.len(), 1_000);
    svc
}

/// The keyed layer on one fixed key of a `&'static` registry of 1 001
/// (`KeyedBreakers::leak`): the future holds a `StaticKeyedPermit`, no reference count.
fn keyed_1000_static()
-> impl Service<u64, Response = u64, Error = tower_cutout::error::BoxError> + Clone + Send {
    let hosts = registry_of(1_000..2_000u64).leak();
    let svc = tower_cutout::keyed::KeyedCircuitBreakerLayer::new(hosts, |_: &u64| Some(7u64))
        .layer(bare());
    assert_eq!(hosts.len(), 1_000);
    svc
}

/// The rows issue 15's targets are taken from, each group measured in one stretch:
/// `tower_floor_closed_success` (what a layer adds over `bare`: the hand-written floors
/// over a `&'static` breaker and over an owned one, tower-cutout on each handle, the keyed
/// layer; `*_clone_per_request` clones the service for every request, as axum does),
/// `tower_floor_open_reject` (the core's rejection beside the layer's, boxed and typed
/// errors; all forced open), and
/// `tower_floor_two_threads` (one shared breaker, one service clone per thread, threads
/// pinned to cores: the per-call time each thread sees).
fn floors(c: &mut Criterion) {
    let mut g = c.benchmark_group("tower_floor_closed_success");
    let mut svc = bare();
    g.bench_function("bare", |b| b.iter(|| request(&mut svc, black_box(1))));
    let mut svc = hand_floor(bare(), leaked());
    g.bench_function("floor_static", |b| {
        b.iter(|| request(&mut svc, black_box(1)))
    });
    let mut svc = hand_floor(bare(), breaker());
    g.bench_function("floor_arc", |b| b.iter(|| request(&mut svc, black_box(1))));
    let mut svc = CircuitBreakerLayer::new(leaked()).layer(bare());
    assert_eq!(request(&mut svc, 1).ok(), Some(2));
    g.bench_function("cutout_static", |b| {
        b.iter(|| request(&mut svc, black_box(1)))
    });
    let mut svc = layer().layer(bare());
    g.bench_function("cutout", |b| b.iter(|| request(&mut svc, black_box(1))));
    let svc = CircuitBreakerLayer::new(leaked()).layer(bare());
    g.bench_function("cutout_static_clone_per_request", |b| {
        b.iter(|| request(&mut svc.clone(), black_box(1)))
    });
    let svc = layer().layer(bare());
    g.bench_function("cutout_clone_per_request", |b| {
        b.iter(|| request(&mut svc.clone(), black_box(1)))
    });
    let mut svc = keyed_1000();
    assert_eq!(request(&mut svc, 1).ok(), Some(2));
    g.bench_function("cutout_keyed_1000_keys", |b| {
        b.iter(|| request(&mut svc, black_box(1)))
    });
    let mut svc = keyed_1000_static();
    assert_eq!(request(&mut svc, 1).ok(), Some(2));
    g.bench_function("cutout_keyed_static_1000_keys", |b| {
        b.iter(|| request(&mut svc, black_box(1)))
    });
    g.finish();

    let mut g = c.benchmark_group("tower_floor_open_reject");
    let mut svc = bare();
    g.bench_function("bare", |b| b.iter(|| request(&mut svc, black_box(1))));
    let open = leaked();
    open.force_open();
    g.bench_function("core", |b| {
        b.iter(|| black_box(black_box(open).try_acquire().is_err()))
    });
    let mut svc = HandRejectFloor {
        inner: bare(),
        breaker: open,
        permit: None,
        rejection: None,
    };
    assert!(matches!(
        request(&mut svc, 1),
        Err(cutout::CallError::Rejected(cutout::Rejected::ForcedOpen))
    ));
    g.bench_function("floor_static_typed_error", |b| {
        b.iter(|| request(&mut svc, black_box(1)))
    });
    let mut svc = CircuitBreakerLayer::new(open).layer(bare());
    assert!(request(&mut svc, 1).is_err());
    g.bench_function("cutout_static", |b| {
        b.iter(|| request(&mut svc, black_box(1)))
    });
    let mut svc = CircuitBreakerLayer::new(open)
        .reject_with(RejectWithCallError)
        .layer(bare());
    assert!(request(&mut svc, 1).is_err());
    g.bench_function("cutout_static_typed_error", |b| {
        b.iter(|| request(&mut svc, black_box(1)))
    });
    let open = layer();
    open.breaker().force_open();
    let mut svc = open.layer(bare());
    g.bench_function("cutout", |b| b.iter(|| request(&mut svc, black_box(1))));
    g.finish();

    let mut g = c.benchmark_group("tower_floor_two_threads");
    fn on<S: Service<u64> + Clone + Send + Sync>(
        g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
        name: &str,
        threads: usize,
        svc: &S,
    ) {
        g.bench_function(
            BenchmarkId::new(name, support::threads_label(threads)),
            |b| {
                b.iter_custom(|iters| {
                    support::on_threads(
                        threads,
                        iters,
                        || svc.clone(),
                        |s| request(s, black_box(1)).is_ok(),
                    )
                })
            },
        );
    }
    let (static_floor, arc_floor) = (hand_floor(bare(), leaked()), hand_floor(bare(), breaker()));
    let (static_layer, arc_layer) = (
        CircuitBreakerLayer::new(leaked()).layer(bare()),
        layer().layer(bare()),
    );
    let (keyed, keyed_static) = (keyed_1000(), keyed_1000_static());
    for threads in [1, 2] {
        on(&mut g, "bare", threads, &bare());
        on(&mut g, "floor_static", threads, &static_floor);
        on(&mut g, "floor_arc", threads, &arc_floor);
        on(&mut g, "cutout_static", threads, &static_layer);
        on(&mut g, "cutout", threads, &arc_layer);
        on(&mut g, "cutout_keyed_1000_keys", threads, &keyed);
        on(
            &mut g,
            "cutout_keyed_static_1000_keys",
            threads,
            &keyed_static,
        );
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = floors, closed_success, open_reject, permits, two_threads, keyed
}
criterion_main!(benches);
