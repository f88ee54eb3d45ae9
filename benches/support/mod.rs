//! What the bench binaries share: the protected call, the floors, the drivers for futures
//! and tower services, the two-thread harness, and (in [`cases`]) every breaker configured
//! as closely to cutout as it allows.
//!
//! Each bench binary uses a part of this module; the rest is dead code there.
#![allow(dead_code)]

pub(crate) mod cases;

/// Criterion's settings for the bench binaries: short by default, so a full run stays
/// within minutes; command-line flags override.
pub(crate) fn short_config() -> criterion::Criterion {
    criterion::Criterion::default()
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(3))
}

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// The id suffix of a two-thread group's row: `1_thread` or `2_threads` (what
/// `bench-report` pairs up).
pub(crate) fn threads_label(threads: usize) -> &'static str {
    if threads == 1 {
        "1_thread"
    } else {
        "2_threads"
    }
}

/// The protected call's error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fail;

impl std::fmt::Display for Fail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("dependency failed")
    }
}

impl std::error::Error for Fail {}

/// The protected call: a direct call that is never inlined. `0` fails, anything else
/// succeeds. Every case, floors included, makes this same call.
#[inline(never)]
pub(crate) fn work(x: u64) -> Result<u64, Fail> {
    if x == 0 { Err(Fail) } else { Ok(x) }
}

/// A succeeding call with an input the optimiser cannot see.
#[inline(always)]
pub(crate) fn ok_call() -> Result<u64, Fail> {
    work(black_box(1))
}

/// A failing call with an input the optimiser cannot see.
#[inline(always)]
pub(crate) fn failing_call() -> Result<u64, Fail> {
    work(black_box(0))
}

/// Polls a future to completion with a no-op waker, spinning while it is pending. Every
/// future here is ready on its first poll unless two threads contend for a lock.
#[inline]
pub(crate) fn poll_now<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        std::hint::spin_loop();
    }
}

/// One request through a tower service: `poll_ready`, `call`, and the response future,
/// all polled with a no-op waker.
#[inline]
pub(crate) fn tower_call<S: tower::Service<u64>>(
    service: &mut S,
    request: u64,
) -> Result<S::Response, S::Error> {
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        match service.poll_ready(&mut cx) {
            Poll::Ready(Ok(())) => break,
            Poll::Ready(Err(e)) => return Err(e),
            Poll::Pending => std::hint::spin_loop(),
        }
    }
    poll_now(service.call(request))
}

/// The bare service: calls [`work`] with the request. `Clone` and `Send`, like the
/// services real stacks wrap.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Work;

impl tower::Service<u64> for Work {
    type Response = u64;
    type Error = Fail;
    type Future = std::future::Ready<Result<u64, Fail>>;

    #[inline]
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Fail>> {
        Poll::Ready(Ok(()))
    }

    #[inline]
    fn call(&mut self, request: u64) -> Self::Future {
        std::future::ready(work(request))
    }
}

/// Runs `step` `iters` times on each of `threads` threads at once, each thread with its own
/// state from `init`, and returns the longest thread's time: the wall time of `iters`
/// calls per thread. Thread start-up is outside the timed part (threads meet at a barrier
/// first). Divided by `iters` (criterion does this) it is the cost per call seen by each
/// thread, directly comparable between 1 and 2 threads.
pub(crate) fn on_threads<S, R>(
    threads: usize,
    iters: u64,
    init: impl Fn() -> S + Sync,
    step: impl Fn(&mut S) -> R + Sync,
) -> Duration {
    // A spinning barrier: with a sleeping one (`std::sync::Barrier`) the last thread runs
    // ahead while the others are still being woken, and two threads barely overlap (a
    // shared `fetch_add` then measured the same on 2 threads as on 1).
    let arrived = AtomicUsize::new(0);
    // One thread per core where the OS allows it: two threads left to the scheduler (and
    // under `chrt -f`) were seen taking turns on one core, which hides all contention.
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|i| {
                let core = cores.get(i % cores.len().max(1)).copied();
                let (init, step, arrived) = (&init, &step, &arrived);
                scope.spawn(move || {
                    if let Some(core) = core {
                        core_affinity::set_for_current(core);
                    }
                    let mut state = init();
                    arrived.fetch_add(1, Ordering::AcqRel);
                    // Yielding now and then: under `chrt -f` a thread that only spins can
                    // keep the one it waits for off its CPU.
                    let mut spins = 0u32;
                    while arrived.load(Ordering::Acquire) < threads {
                        spins = spins.wrapping_add(1);
                        if spins % 1024 == 0 {
                            std::thread::yield_now();
                        } else {
                            std::hint::spin_loop();
                        }
                    }
                    let start = Instant::now();
                    for _ in 0..iters {
                        black_box(step(&mut state));
                    }
                    start.elapsed()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a bench thread panicked"))
            .max()
            .unwrap_or_default()
    })
}

/// The floors: what a breaker's paths are measured against. Each makes the same call as
/// the cases, on a word the optimiser cannot see through.
pub(crate) mod floor {
    use std::hint::black_box;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Instant;

    use super::{Fail, failing_call, ok_call};

    /// A word standing in for a breaker's state (closed: low bits zero).
    pub(crate) fn word() -> AtomicU64 {
        AtomicU64::new(1 << 3)
    }

    /// One `Acquire` load.
    #[inline]
    pub(crate) fn load(word: &AtomicU64) -> u64 {
        black_box(word).load(Ordering::Acquire)
    }

    /// A load, a branch on it, the call: the least a breaker's admit can cost.
    #[inline]
    pub(crate) fn load_call(word: &AtomicU64) -> Result<u64, Fail> {
        if black_box(word).load(Ordering::Acquire) & 7 == 0 {
            ok_call()
        } else {
            Err(Fail)
        }
    }

    /// A load to admit, the call, a load to record: the least a closed success can cost.
    #[inline]
    pub(crate) fn load_call_load(word: &AtomicU64) -> Result<u64, Fail> {
        let word = black_box(word);
        if word.load(Ordering::Acquire) & 7 == 0 {
            let result = ok_call();
            if word.load(Ordering::Acquire) & 7 == 0 {
                return result;
            }
        }
        Err(Fail)
    }

    /// A failure then a success through one word, as a breaker that counts consecutive
    /// failures in its state word must at least do: each call loads the word, makes the
    /// call, and writes the new count with a compare-exchange (the failure adds one, the
    /// success after it clears it). Two calls; `true` when both went as expected.
    #[inline]
    pub(crate) fn fail_then_success_cas(word: &AtomicU64) -> bool {
        let word = black_box(word);
        let mut both = true;
        for call in [failing_call as fn() -> Result<u64, Fail>, ok_call] {
            let current = word.load(Ordering::Acquire);
            let result = call();
            let next = if result.is_err() {
                current + 8
            } else {
                current & 7
            };
            both &= word
                .compare_exchange(current, next, Ordering::AcqRel, Ordering::Acquire)
                .is_ok();
        }
        both
    }

    /// One `fetch_add` (relaxed): what a breaker pays per shared counter it bumps.
    #[inline]
    pub(crate) fn fetch_add(word: &AtomicU64) -> u64 {
        black_box(word).fetch_add(8, Ordering::Relaxed)
    }

    /// One read of the real clock.
    #[inline]
    pub(crate) fn instant_now() -> Instant {
        Instant::now()
    }

    /// What a half-open probe limited to a number of calls must at least do: read the
    /// coarse clock (for the probe's lease), take a slot with a compare-exchange, make the
    /// call, give the slot back with another. `true` when both writes landed.
    #[inline]
    pub(crate) fn coarse_read_two_cas(
        word: &AtomicU64,
        clock: &cutout::CoarseMonotonicClock,
    ) -> bool {
        use cutout::Clock;
        let word = black_box(word);
        let current = word.load(Ordering::Acquire);
        let lease = black_box(clock).now().as_millis() as u64;
        let taken = (current & 0xff) | (lease << 8);
        let took = word
            .compare_exchange(current, taken + 1, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        let ok = ok_call().is_ok();
        let gave_back = word
            .compare_exchange(taken + 1, taken, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        took & ok & gave_back
    }
}
