//! cutout beside the other Rust breakers and the floors, in one run.
//!
//! Peers: failsafe 1.3, recloser 1.4, breaker 2.0, tower-resilience 0.13 (its circuit
//! breaker layer). Each is configured as closely to cutout as it allows; where they differ
//! is written beside their builders in `support/cases.rs` and in `benches/README.md`.
//!
//! Groups (ids are the breaker's name, or `floor_*`):
//! - `peers_closed_success`, `peers_closed_fail_then_success`, `peers_open_reject`,
//!   `peers_half_open_probe`: one thread, the breaker's own call API.
//! - `peers_tower_closed_success`, `peers_tower_open_reject`: a request through a tower
//!   stack (`poll_ready`, `call`, the response future, polled with a no-op waker).
//! - `peers_two_threads_closed_success`: one shared breaker (tower: one clone per thread),
//!   1 and 2 threads, `iter_custom`; the time per call seen by each thread.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

mod support;

use support::{Work, cases, floor, on_threads, threads_label};

fn closed_success(c: &mut Criterion) {
    let mut g = c.benchmark_group("peers_closed_success");
    let word = floor::word();
    g.bench_function("floor_load_call", |b| b.iter(|| floor::load_call(&word)));
    g.bench_function("floor_load_call_load", |b| {
        b.iter(|| floor::load_call_load(&word))
    });
    g.bench_function("floor_fetch_add", |b| b.iter(|| floor::fetch_add(&word)));

    let cutout = cases::cutout_closed();
    assert!(cases::cutout_call_ok(&cutout));
    g.bench_function("cutout", |b| b.iter(|| cases::cutout_call_ok(&cutout)));

    let failsafe = cases::failsafe_closed();
    assert!(cases::failsafe_call_ok(&failsafe));
    g.bench_function("failsafe", |b| {
        b.iter(|| cases::failsafe_call_ok(&failsafe))
    });

    let recloser = cases::recloser_closed();
    assert!(cases::recloser_call_ok(&recloser));
    g.bench_function("recloser", |b| {
        b.iter(|| cases::recloser_call_ok(&recloser))
    });

    let breaker = cases::breaker_closed();
    assert!(cases::breaker_call_ok(&breaker));
    g.bench_function("breaker", |b| b.iter(|| cases::breaker_call_ok(&breaker)));
    g.finish();
}

fn closed_fail_then_success(c: &mut Criterion) {
    let mut g = c.benchmark_group("peers_closed_fail_then_success");
    let word = floor::word();
    assert!(floor::fail_then_success_cas(&word));
    g.bench_function("floor_two_cas", |b| {
        b.iter(|| floor::fail_then_success_cas(&word))
    });
    let cutout = cases::cutout_closed();
    assert!(cases::cutout_fail_then_ok(&cutout));
    g.bench_function("cutout", |b| b.iter(|| cases::cutout_fail_then_ok(&cutout)));

    let failsafe = cases::failsafe_closed();
    assert!(cases::failsafe_fail_then_ok(&failsafe));
    g.bench_function("failsafe", |b| {
        b.iter(|| cases::failsafe_fail_then_ok(&failsafe))
    });

    let recloser = cases::recloser_closed();
    assert!(cases::recloser_fail_then_ok(&recloser));
    g.bench_function("recloser", |b| {
        b.iter(|| cases::recloser_fail_then_ok(&recloser))
    });

    let breaker = cases::breaker_closed();
    assert!(cases::breaker_fail_then_ok(&breaker));
    g.bench_function("breaker", |b| {
        b.iter(|| cases::breaker_fail_then_ok(&breaker))
    });
    g.finish();
}

fn open_reject(c: &mut Criterion) {
    let mut g = c.benchmark_group("peers_open_reject");
    g.bench_function("floor_instant_now", |b| b.iter(floor::instant_now));

    let cutout = cases::cutout_open_monotonic();
    g.bench_function("cutout", |b| b.iter(|| cases::cutout_reject(&cutout)));
    let cutout_manual = cases::cutout_open_manual();
    g.bench_function("cutout_manual_clock", |b| {
        b.iter(|| cases::cutout_reject(&cutout_manual))
    });

    let failsafe = cases::failsafe_open();
    assert!(cases::failsafe_reject(&failsafe));
    g.bench_function("failsafe", |b| b.iter(|| cases::failsafe_reject(&failsafe)));

    let recloser = cases::recloser_open();
    g.bench_function("recloser", |b| b.iter(|| cases::recloser_reject(&recloser)));

    let breaker = cases::breaker_open();
    assert!(cases::breaker_reject(&breaker));
    g.bench_function("breaker", |b| b.iter(|| cases::breaker_reject(&breaker)));
    g.finish();
}

fn half_open_probe(c: &mut Criterion) {
    // failsafe has no steady half-open state (any success closes it, every call is
    // admitted); tower-resilience's half-open admits `permitted_calls_in_half_open` calls
    // per period and then closes or re-opens.
    let mut g = c.benchmark_group("peers_half_open_probe");
    g.bench_function("floor_instant_now", |b| b.iter(floor::instant_now));
    let word = floor::word();
    let coarse = cutout::CoarseMonotonicClock::new();
    assert!(floor::coarse_read_two_cas(&word, &coarse));
    g.bench_function("floor_coarse_read_two_cas", |b| {
        b.iter(|| floor::coarse_read_two_cas(&word, &coarse))
    });

    let cutout = cases::cutout_half_open_monotonic();
    g.bench_function("cutout", |b| {
        b.iter(|| cases::cutout_probe_ignored(&cutout))
    });
    let ticking = cases::cutout_half_open_on(cutout::TickingClock::new().expect("ticker thread"));
    g.bench_function("cutout_ticking_clock", |b| {
        b.iter(|| cases::cutout_probe_ignored(&ticking))
    });
    let (manual, _clock) = cases::cutout_half_open_manual();
    g.bench_function("cutout_manual_clock", |b| {
        b.iter(|| cases::cutout_probe_ignored(&manual))
    });

    let recloser = cases::recloser_half_open();
    g.bench_function("recloser", |b| {
        b.iter(|| cases::recloser_call_ok(&recloser))
    });

    let breaker = cases::breaker_half_open();
    g.bench_function("breaker", |b| b.iter(|| cases::breaker_call_ok(&breaker)));
    g.finish();
}

fn tower_stacks(c: &mut Criterion) {
    let mut g = c.benchmark_group("peers_tower_closed_success");
    let mut bare = Work;
    assert!(cases::tower_ok(&mut bare));
    g.bench_function("bare_service", |b| b.iter(|| cases::tower_ok(&mut bare)));

    let mut tower_cutout = cases::tower_cutout_closed();
    assert!(cases::tower_ok(&mut tower_cutout));
    g.bench_function("tower_cutout", |b| {
        b.iter(|| cases::tower_ok(&mut tower_cutout))
    });

    let mut resilience = cases::resilience_closed();
    assert!(cases::tower_ok(&mut resilience));
    g.bench_function("tower_resilience", |b| {
        b.iter(|| cases::tower_ok(&mut resilience))
    });
    g.finish();

    let mut g = c.benchmark_group("peers_tower_open_reject");
    let mut tower_cutout = cases::tower_cutout_open();
    assert!(cases::tower_cutout_reject(&mut tower_cutout));
    g.bench_function("tower_cutout", |b| {
        b.iter(|| cases::tower_cutout_reject(&mut tower_cutout))
    });
    let mut resilience = cases::resilience_open();
    g.bench_function("tower_resilience", |b| {
        b.iter(|| cases::resilience_reject(&mut resilience))
    });
    g.finish();
}

fn two_threads(c: &mut Criterion) {
    let mut g = c.benchmark_group("peers_two_threads_closed_success");
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

        let cutout = cases::cutout_closed();
        g.bench_function(BenchmarkId::new("cutout", label), |b| {
            b.iter_custom(|iters| {
                on_threads(threads, iters, || (), |_| cases::cutout_call_ok(&cutout))
            })
        });
        let failsafe = cases::failsafe_closed();
        g.bench_function(BenchmarkId::new("failsafe", label), |b| {
            b.iter_custom(|iters| {
                on_threads(
                    threads,
                    iters,
                    || (),
                    |_| cases::failsafe_call_ok(&failsafe),
                )
            })
        });
        let recloser = cases::recloser_closed();
        g.bench_function(BenchmarkId::new("recloser", label), |b| {
            b.iter_custom(|iters| {
                on_threads(
                    threads,
                    iters,
                    || (),
                    |_| cases::recloser_call_ok(&recloser),
                )
            })
        });
        let breaker = cases::breaker_closed();
        g.bench_function(BenchmarkId::new("breaker", label), |b| {
            b.iter_custom(|iters| {
                on_threads(threads, iters, || (), |_| cases::breaker_call_ok(&breaker))
            })
        });

        g.bench_function(BenchmarkId::new("tower_bare_service", label), |b| {
            b.iter_custom(|iters| on_threads(threads, iters, || Work, cases::tower_ok))
        });
        let tower_cutout = cases::tower_cutout_closed();
        g.bench_function(BenchmarkId::new("tower_cutout", label), |b| {
            b.iter_custom(|iters| {
                on_threads(threads, iters, || tower_cutout.clone(), cases::tower_ok)
            })
        });
        let resilience = cases::resilience_closed();
        g.bench_function(BenchmarkId::new("tower_resilience", label), |b| {
            b.iter_custom(|iters| {
                on_threads(threads, iters, || resilience.clone(), cases::tower_ok)
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = support::short_config();
    targets = closed_success, closed_fail_then_success, open_reject, half_open_probe,
        tower_stacks, two_threads
}
criterion_main!(benches);
