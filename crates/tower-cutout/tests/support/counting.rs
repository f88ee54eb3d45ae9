//! Allocation counting for the `*_alloc` test binaries: installs `stats_alloc`'s counting
//! allocator as the binary's global allocator, drives a request with a no-op waker, counts
//! the allocations of a closure, and gives the bare services the layers wrap. The binaries have no harness (one thread), so
//! nothing else allocates while they count.
//!
//! Include with `#[path = "support/counting.rs"] mod counting;`.

#![allow(dead_code, unreachable_pub)]

use std::alloc::System;
use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tower::{Service, ServiceExt};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Runs per count, after as many warm-up runs.
pub const CALLS: usize = 1_000;

/// `ready().await` then `call().await`, polled with a no-op waker.
pub fn send<R, S: Service<R>>(svc: &mut S, request: R) -> Result<S::Response, S::Error> {
    let mut future = pin!(async move { svc.ready().await?.call(request).await });
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
    }
}

/// Allocations over `CALLS` runs of `f` (each must return `true`), after as many warm-up
/// runs.
pub fn allocations(mut f: impl FnMut() -> bool) -> usize {
    for _ in 0..CALLS {
        assert!(f());
    }
    let region = Region::new(GLOBAL);
    for _ in 0..CALLS {
        assert!(f());
    }
    region.change().allocations
}

/// Allocations per run of `f`, which must be the same in every run.
pub fn per_call(f: impl FnMut() -> bool) -> usize {
    let total = allocations(f);
    assert_eq!(total % CALLS, 0, "{total} allocations over {CALLS} runs");
    total / CALLS
}

/// The bare service: answers `x + 1` at once.
pub fn bare() -> impl Service<
    u64,
    Response = u64,
    Error = Infallible,
    Future = std::future::Ready<Result<u64, Infallible>>,
> + Clone {
    tower::service_fn(|x: u64| std::future::ready(Ok::<_, Infallible>(x + 1)))
}

/// The bare HTTP service: answers an empty `200` at once.
pub fn bare_http() -> impl Service<
    u64,
    Response = http::Response<()>,
    Error = Infallible,
    Future = std::future::Ready<Result<http::Response<()>, Infallible>>,
> + Clone {
    tower::service_fn(|_: u64| std::future::ready(Ok::<_, Infallible>(http::Response::new(()))))
}
