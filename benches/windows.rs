//! Rate windows and keyed breakers beside the floors, in one run.
//!
//! - `windows_single_thread`: the floors (`fetch_add`, load + call + load), then a closed
//!   success through a breaker with no window, a count window, a time window (on a
//!   `ManualClock`, so the clock read is a load, and on the real `MonotonicClock`), and a
//!   slow-call rate (timed permits); then one call in ten failing (the window's totals
//!   change) for each window; then keyed lookups (one hot key, 1000 keys round robin, an
//!   owned permit).
//! - `windows_two_threads`: the same calls on one shared breaker or registry from 1 and
//!   from 2 threads (`iter_custom`): the time per call seen by each thread.
//!
//! Ids read `path/variant`. The window's own cost is the difference to `no_window`.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use cutout::{CircuitBreaker, Clock, ManualClock, MonotonicClock, Outcome, SlidingWindow};
use cutout_keyed::KeyedBreakers;

mod support;

use support::{failing_call, floor, ok_call, on_threads, threads_label};

fn with_window(window: Option<SlidingWindow>, clock: impl Clock) -> CircuitBreaker {
    let mut b = CircuitBreaker::builder().failure_threshold(u32::MAX);
    if let Some(window) = window {
        b = b.sliding_window(window).failure_rate(0.5).minimum_calls(20);
    }
    b.build_with_clock(clock).expect("valid")
}

const COUNT: SlidingWindow = SlidingWindow::Calls(100);
const TIME: SlidingWindow = SlidingWindow::Time {
    span: Duration::from_secs(10),
    buckets: 10,
};

/// The time window on the real clock: buckets of 10 ms, so that a bucket sees ~10^5 calls
/// at benchmark rates and never fills (a full bucket stops counting and would hide the
/// bucket's compare-exchange).
const TIME_REAL: SlidingWindow = SlidingWindow::Time {
    span: Duration::from_secs(1),
    buckets: 100,
};

/// Calls between steps of the manual clocks: 1 ms every 1024 calls moves a 1 s bucket on
/// after 1,024,000 calls, before it fills (1,048,575), so every call pays the bucket's
/// compare-exchange as in a real service; the steps cost every row the same.
const CALLS_PER_STEP: u32 = 1024;

/// A breaker to measure and the manual clock the benchmark steps (a detached one for the
/// breaker on the real clock, so that every row runs the same loop).
fn cases() -> Vec<(&'static str, CircuitBreaker, ManualClock)> {
    let manual = |window| {
        let clock = ManualClock::new();
        (with_window(window, clock.clone()), clock)
    };
    let case = |name, (cb, clock)| (name, cb, clock);
    vec![
        case("no_window", manual(None)),
        case("count_window_100", manual(Some(COUNT))),
        case("time_window_10x1s_manual_clock", manual(Some(TIME))),
        (
            "time_window_100x10ms_monotonic_clock",
            with_window(Some(TIME_REAL), MonotonicClock::new()),
            ManualClock::new(),
        ),
        case("slow_call_rate_count_window_manual_clock", {
            let clock = ManualClock::new();
            let cb = CircuitBreaker::builder()
                .sliding_window(COUNT)
                .slow_call_rate(0.5, Duration::from_secs(1))
                .build_with_clock(clock.clone())
                .expect("valid");
            (cb, clock)
        }),
    ]
}

/// Steps `clock` by 1 ms every [`CALLS_PER_STEP`] calls.
#[inline]
fn step_clock(clock: &ManualClock, calls: &mut u32) {
    *calls = calls.wrapping_add(1);
    if *calls % CALLS_PER_STEP == 0 {
        clock.advance(Duration::from_millis(1));
    }
}

#[inline]
fn call_ok(cb: &CircuitBreaker) -> bool {
    cb.call(ok_call).is_ok()
}

/// One call in ten fails: each call is one step of a ten-step cycle.
#[inline]
fn call_mixed(cb: &CircuitBreaker, step: &mut u64) -> bool {
    *step = if *step == 9 { 0 } else { *step + 1 };
    if *step == 0 {
        cb.call(failing_call).is_err()
    } else {
        cb.call(ok_call).is_ok()
    }
}

fn hosts() -> KeyedBreakers<u64> {
    KeyedBreakers::builder(CircuitBreaker::builder())
        .capacity(4_096)
        .build_with_clock(ManualClock::new())
        .expect("valid")
}

/// A multiply-rotate hasher (FxHash's step): what a trusted-key registry may pick instead
/// of the default SipHash.
#[derive(Debug, Clone, Copy, Default)]
struct Fast;

struct FastHasher(u64);

impl std::hash::Hasher for FastHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(*b as u64);
        }
    }
    fn write_u64(&mut self, x: u64) {
        self.0 = (self.0.rotate_left(5) ^ x).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

impl std::hash::BuildHasher for Fast {
    type Hasher = FastHasher;
    fn build_hasher(&self) -> FastHasher {
        FastHasher(0)
    }
}

#[inline]
fn keyed_call<S: std::hash::BuildHasher + Send + Sync + 'static>(
    hosts: &KeyedBreakers<u64, S>,
    key: u64,
) -> bool {
    hosts.call(&key, ok_call).is_ok()
}

#[inline]
fn keyed_permit(hosts: &KeyedBreakers<u64>, key: u64) -> bool {
    match hosts.try_acquire(&key) {
        Ok(permit) => {
            let ok = ok_call().is_ok();
            permit.record(if ok {
                Outcome::Success
            } else {
                Outcome::Failure
            });
            ok
        }
        Err(_) => false,
    }
}

fn single_thread(c: &mut Criterion) {
    let mut g = c.benchmark_group("windows_single_thread");
    let word = floor::word();
    g.bench_function(BenchmarkId::new("floor", "fetch_add"), |b| {
        b.iter(|| floor::fetch_add(&word))
    });
    g.bench_function(BenchmarkId::new("floor", "load_call_load"), |b| {
        b.iter(|| floor::load_call_load(&word))
    });

    for (name, cb, clock) in cases() {
        assert!(call_ok(&cb));
        let mut calls = 0;
        g.bench_function(BenchmarkId::new("closed_success", name), |b| {
            b.iter(|| {
                step_clock(&clock, &mut calls);
                call_ok(&cb)
            })
        });
    }
    for (name, cb, clock) in cases().into_iter().take(3) {
        let mut step = 0;
        for _ in 0..1_000 {
            call_mixed(&cb, &mut step);
        }
        assert_eq!(cb.state(), cutout::State::Closed);
        let mut calls = 0;
        g.bench_function(BenchmarkId::new("one_in_ten_fails", name), |b| {
            b.iter(|| {
                step_clock(&clock, &mut calls);
                call_mixed(&cb, &mut step)
            })
        });
    }

    let hosts = hosts();
    let plain = CircuitBreaker::builder()
        .build_with_clock(ManualClock::new())
        .expect("valid");
    for key in 0..1_000 {
        assert!(keyed_call(&hosts, key));
    }
    g.bench_function(BenchmarkId::new("keyed", "plain_breaker_call"), |b| {
        b.iter(|| call_ok(&plain))
    });
    g.bench_function(BenchmarkId::new("keyed", "call_one_key"), |b| {
        b.iter(|| keyed_call(&hosts, black_box(7)))
    });
    let mut key = 0u64;
    g.bench_function(BenchmarkId::new("keyed", "call_1000_keys"), |b| {
        b.iter(|| {
            key = if key == 999 { 0 } else { key + 1 };
            keyed_call(&hosts, key)
        })
    });
    g.bench_function(BenchmarkId::new("keyed", "owned_permit_one_key"), |b| {
        b.iter(|| keyed_permit(&hosts, black_box(7)))
    });
    let fast = KeyedBreakers::builder(CircuitBreaker::builder())
        .capacity(4_096)
        .hasher(Fast)
        .build_with_clock(ManualClock::new())
        .expect("valid");
    for key in 0..1_000 {
        assert!(keyed_call(&fast, key));
    }
    g.bench_function(BenchmarkId::new("keyed", "call_one_key_fast_hasher"), |b| {
        b.iter(|| keyed_call(&fast, black_box(7)))
    });
    g.bench_function(
        BenchmarkId::new("keyed", "call_1000_keys_fast_hasher"),
        |b| {
            b.iter(|| {
                key = if key == 999 { 0 } else { key + 1 };
                keyed_call(&fast, key)
            })
        },
    );
    // The candidates for cutout-keyed's default hasher, on the same 1 000 keys.
    fn with_hasher<S: std::hash::BuildHasher + Send + Sync + 'static>(
        hasher: S,
    ) -> KeyedBreakers<u64, S> {
        let hosts = KeyedBreakers::builder(CircuitBreaker::builder())
            .capacity(4_096)
            .hasher(hasher)
            .build_with_clock(ManualClock::new())
            .expect("valid");
        for key in 0..1_000 {
            assert!(keyed_call(&hosts, key));
        }
        hosts
    }
    let sip = with_hasher(std::hash::RandomState::new());
    g.bench_function(BenchmarkId::new("keyed", "call_1000_keys_siphash"), |b| {
        b.iter(|| {
            key = if key == 999 { 0 } else { key + 1 };
            keyed_call(&sip, key)
        })
    });
    let fold_fast = with_hasher(foldhash::fast::RandomState::default());
    g.bench_function(
        BenchmarkId::new("keyed", "call_1000_keys_foldhash_fast"),
        |b| {
            b.iter(|| {
                key = if key == 999 { 0 } else { key + 1 };
                keyed_call(&fold_fast, key)
            })
        },
    );
    let fold_quality = with_hasher(foldhash::quality::RandomState::default());
    g.bench_function(
        BenchmarkId::new("keyed", "call_1000_keys_foldhash_quality"),
        |b| {
            b.iter(|| {
                key = if key == 999 { 0 } else { key + 1 };
                keyed_call(&fold_quality, key)
            })
        },
    );
    g.finish();
}

fn two_threads(c: &mut Criterion) {
    let mut g = c.benchmark_group("windows_two_threads");
    for threads in [1, 2] {
        let label = threads_label(threads);
        let shared = AtomicU64::new(0);
        g.bench_function(BenchmarkId::new("floor_shared_fetch_add", label), |b| {
            b.iter_custom(|iters| {
                on_threads(
                    threads,
                    iters,
                    || (),
                    |_| black_box(&shared).fetch_add(1, Ordering::Relaxed),
                )
            })
        });
        for (name, cb, clock) in cases().into_iter().take(3) {
            g.bench_function(
                BenchmarkId::new(format!("closed_success_{name}"), label),
                |b| {
                    b.iter_custom(|iters| {
                        on_threads(
                            threads,
                            iters,
                            || 0u32,
                            |calls| {
                                step_clock(&clock, calls);
                                call_ok(&cb)
                            },
                        )
                    })
                },
            );
        }
        let hosts = hosts();
        for key in 0..1_000 {
            assert!(keyed_call(&hosts, key));
        }
        g.bench_function(BenchmarkId::new("keyed_call_one_key", label), |b| {
            b.iter_custom(|iters| {
                on_threads(threads, iters, || (), |_| keyed_call(&hosts, black_box(7)))
            })
        });
        g.bench_function(BenchmarkId::new("keyed_call_1000_keys", label), |b| {
            b.iter_custom(|iters| {
                on_threads(
                    threads,
                    iters,
                    || 0u64,
                    |key| {
                        *key = if *key == 999 { 0 } else { *key + 1 };
                        keyed_call(&hosts, *key)
                    },
                )
            })
        });
    }
    g.finish();
}

criterion_group!(benches, single_thread, two_threads);
criterion_main!(benches);
