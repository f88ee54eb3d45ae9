//! cutout's paths beside the floors, in one run.
//!
//! - `core_single_thread`: the floors (a load, load + call, load + call + load, a
//!   `fetch_add`), then closed success (`call` and the permit API), closed failure under
//!   the threshold (a failure then a success), open reject and a half-open probe on a
//!   `ManualClock` (no real clock read), and a trip / probe / close cycle.
//! - `core_real_clock`: `Instant::now`, then open reject and the half-open probe on the
//!   default `MonotonicClock`; open reject on `CoarseMonotonicClock`, on `TickingClock`
//!   (one load of a tick a thread advances), and forced open (no clock read).
//! - `core_two_threads`: the same call on one shared breaker from 1 and from 2 threads
//!   (`iter_custom`): the time per call seen by each thread.
//!
//! Ids read `path/variant`; ratios and the table are made by `benches/plot` (see
//! `benches/README.md`). Allocations per call are counted by the `alloc` bench.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

mod support;

use support::{cases, floor, on_threads, threads_label};

fn single_thread(c: &mut Criterion) {
    let mut g = c.benchmark_group("core_single_thread");
    let word = floor::word();
    g.bench_function(BenchmarkId::new("floor", "atomic_load"), |b| {
        b.iter(|| floor::load(&word))
    });
    g.bench_function(BenchmarkId::new("floor", "load_call"), |b| {
        b.iter(|| floor::load_call(&word))
    });
    g.bench_function(BenchmarkId::new("floor", "load_call_load"), |b| {
        b.iter(|| floor::load_call_load(&word))
    });
    g.bench_function(BenchmarkId::new("floor", "fetch_add"), |b| {
        b.iter(|| floor::fetch_add(&word))
    });

    let cb = cases::cutout_closed();
    assert!(cases::cutout_call_ok(&cb) && cases::cutout_permit_ok(&cb));
    g.bench_function(BenchmarkId::new("closed_success", "call"), |b| {
        b.iter(|| cases::cutout_call_ok(&cb))
    });
    g.bench_function(BenchmarkId::new("closed_success", "permit"), |b| {
        b.iter(|| cases::cutout_permit_ok(&cb))
    });
    assert!(cases::cutout_fail_then_ok(&cb));
    g.bench_function(
        BenchmarkId::new("closed_fail_then_success", "two_calls"),
        |b| b.iter(|| cases::cutout_fail_then_ok(&cb)),
    );

    let open = cases::cutout_open_manual();
    assert!(cases::cutout_reject(&open));
    g.bench_function(BenchmarkId::new("open_reject", "manual_clock"), |b| {
        b.iter(|| cases::cutout_reject(&open))
    });

    let (half_open, _clock) = cases::cutout_half_open_manual();
    assert!(cases::cutout_probe_ignored(&half_open));
    g.bench_function(BenchmarkId::new("half_open_probe", "manual_clock"), |b| {
        b.iter(|| cases::cutout_probe_ignored(&half_open))
    });

    let (cycle, clock) = cases::cutout_cycle();
    assert!(cases::cutout_trip_probe_close(&cycle, &clock));
    g.bench_function(BenchmarkId::new("trip_probe_close", "manual_clock"), |b| {
        b.iter(|| cases::cutout_trip_probe_close(&cycle, &clock))
    });
    g.finish();
}

fn real_clock(c: &mut Criterion) {
    let mut g = c.benchmark_group("core_real_clock");
    g.bench_function(BenchmarkId::new("floor", "instant_now"), |b| {
        b.iter(floor::instant_now)
    });

    let open = cases::cutout_open_monotonic();
    assert!(cases::cutout_reject(&open));
    g.bench_function(BenchmarkId::new("open_reject", "monotonic_clock"), |b| {
        b.iter(|| cases::cutout_reject(&open))
    });

    let coarse = cases::cutout_open(cutout::CoarseMonotonicClock::new());
    assert!(cases::cutout_reject(&coarse));
    g.bench_function(
        BenchmarkId::new("open_reject", "coarse_monotonic_clock"),
        |b| b.iter(|| cases::cutout_reject(&coarse)),
    );
    let ticking = cases::cutout_open(cutout::TickingClock::new().expect("ticker thread"));
    assert!(cases::cutout_reject(&ticking));
    g.bench_function(BenchmarkId::new("open_reject", "ticking_clock"), |b| {
        b.iter(|| cases::cutout_reject(&ticking))
    });
    let forced = cases::cutout_closed();
    forced.force_open();
    assert!(cases::cutout_reject(&forced));
    g.bench_function(BenchmarkId::new("open_reject", "forced_open"), |b| {
        b.iter(|| cases::cutout_reject(&forced))
    });

    let half_open = cases::cutout_half_open_monotonic();
    assert!(cases::cutout_probe_ignored(&half_open));
    g.bench_function(
        BenchmarkId::new("half_open_probe", "monotonic_clock"),
        |b| b.iter(|| cases::cutout_probe_ignored(&half_open)),
    );
    g.finish();
}

fn two_threads(c: &mut Criterion) {
    let mut g = c.benchmark_group("core_two_threads");
    for threads in [1, 2] {
        let label = threads_label(threads);

        let word = floor::word();
        g.bench_function(BenchmarkId::new("floor_load_call_load", label), |b| {
            b.iter_custom(|iters| {
                on_threads(threads, iters, || (), |_| floor::load_call_load(&word))
            })
        });
        let counter = floor::word();
        g.bench_function(BenchmarkId::new("floor_shared_fetch_add", label), |b| {
            b.iter_custom(|iters| on_threads(threads, iters, || (), |_| floor::fetch_add(&counter)))
        });

        let cb = cases::cutout_closed();
        g.bench_function(BenchmarkId::new("closed_success", label), |b| {
            b.iter_custom(|iters| on_threads(threads, iters, || (), |_| cases::cutout_call_ok(&cb)))
        });
        g.bench_function(BenchmarkId::new("closed_fail_then_success", label), |b| {
            b.iter_custom(|iters| {
                on_threads(threads, iters, || (), |_| cases::cutout_fail_then_ok(&cb))
            })
        });
        // Each thread fails at most once before its success: never 5 in a row.
        assert_eq!(cb.state(), cutout::State::Closed);

        let open = cases::cutout_open_manual();
        g.bench_function(BenchmarkId::new("open_reject_manual_clock", label), |b| {
            b.iter_custom(|iters| {
                on_threads(threads, iters, || (), |_| cases::cutout_reject(&open))
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = support::short_config();
    targets = single_thread, real_clock, two_threads
}
criterion_main!(benches);
