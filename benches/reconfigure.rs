//! Live reconfiguration (`CircuitBreaker::reconfigure`) and the call path, in one run.
//!
//! Group `reconfigure`: the floors (a load, a `fetch_add`), then the closed success call
//! and a closed failure then success on a breaker never reconfigured (`fresh`) and on one
//! reconfigured 1 000 times before the run (`reconfigured`, its settings swapped back and
//! forth between two thresholds). The closed success path does not read the settings, so
//! its two rows must be within the noise of each other; the failure path reads them once
//! per decision. The comparison with the code before reconfiguration existed is an A/B of
//! `core_single_thread` across the two builds (see `benches/README.md`).

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

mod support;

use support::{cases, floor};

fn reconfigured() -> cutout::CircuitBreaker {
    let cb = cases::cutout_closed();
    for i in 0..1_000u32 {
        // The cases' settings (threshold 5, open an hour, one probe), the threshold moved.
        let threshold = if i % 2 == 0 { 6 } else { 5 };
        cb.reconfigure(
            cutout::CircuitBreaker::builder()
                .failure_threshold(threshold)
                .open_duration(Duration::from_secs(3_600))
                .half_open_max_calls(1)
                .success_threshold(1),
        )
        .expect("valid settings");
    }
    cb
}

fn reconfigure(c: &mut Criterion) {
    let mut g = c.benchmark_group("reconfigure");
    let word = floor::word();
    g.bench_function(BenchmarkId::new("floor", "atomic_load"), |b| {
        b.iter(|| floor::load(&word))
    });
    g.bench_function(BenchmarkId::new("floor", "fetch_add"), |b| {
        b.iter(|| floor::fetch_add(&word))
    });
    for (label, cb) in [
        ("fresh", cases::cutout_closed()),
        ("reconfigured", reconfigured()),
    ] {
        assert!(cases::cutout_call_ok(&cb) && cases::cutout_fail_then_ok(&cb));
        g.bench_function(BenchmarkId::new("closed_success", label), |b| {
            b.iter(|| cases::cutout_call_ok(&cb))
        });
        g.bench_function(BenchmarkId::new("closed_fail_then_success", label), |b| {
            b.iter(|| cases::cutout_fail_then_ok(&cb))
        });
    }
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = benches;
    config = config();
    targets = reconfigure
}
criterion_main!(benches);
