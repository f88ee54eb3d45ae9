//! What observability costs on the closed success path.
//!
//! `call(|| Ok(()))` on a closed breaker, one thread and two threads, with:
//! - `no_listener`: the baseline (also run with the `observe` feature off, to compare builds);
//! - `recorded_noop`: a listener that takes every outcome and does nothing (the cost of the
//!   out-of-line outcome path alone);
//! - `metrics_per_call`: `Builder::metrics()`, a real Prometheus recorder installed;
//! - `metrics_on_publish`: `metrics_with(CallCounts::OnPublish)`;
//! - `tracing`: `Builder::tracing()` (rejections and probes only; none on this path).
//!
//! Run: `cargo bench -p cutout-benches --bench observe --features observe`, and without
//! `--features observe` for the build without the features.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use cutout::CircuitBreaker;

fn breakers() -> Vec<(&'static str, CircuitBreaker)> {
    #[cfg_attr(not(feature = "observe"), allow(unused_mut))]
    let mut all = vec![(
        "no_listener",
        CircuitBreaker::builder().name("bench").build().unwrap(),
    )];
    #[cfg(feature = "observe")]
    {
        use cutout::observe::CallCounts;
        use cutout::{Listener, Outcome};

        struct RecordedNoop;
        impl Listener for RecordedNoop {
            fn on_recorded(&self, _: &str, outcome: Outcome, stale: bool) {
                black_box((outcome, stale));
            }
        }

        all.extend([
            (
                "recorded_noop",
                CircuitBreaker::builder()
                    .name("noop")
                    .listener(RecordedNoop)
                    .build()
                    .unwrap(),
            ),
            (
                "metrics_per_call",
                CircuitBreaker::builder()
                    .name("per_call")
                    .metrics()
                    .build()
                    .unwrap(),
            ),
            (
                "metrics_on_publish",
                CircuitBreaker::builder()
                    .name("on_publish")
                    .metrics_with(CallCounts::OnPublish)
                    .build()
                    .unwrap(),
            ),
            (
                "tracing",
                CircuitBreaker::builder()
                    .name("tracing")
                    .tracing()
                    .build()
                    .unwrap(),
            ),
        ]);
    }
    all
}

#[inline]
fn call(b: &CircuitBreaker) {
    black_box(b.call(|| black_box(Ok::<_, ()>(())))).ok();
}

fn single_thread(c: &mut Criterion, breakers: &[(&'static str, CircuitBreaker)]) {
    let mut group = c.benchmark_group("observe/closed_success/1_thread");
    for (name, b) in breakers {
        group.bench_function(BenchmarkId::from_parameter(name), |bench| {
            bench.iter(|| call(b))
        });
    }
    group.finish();
}

fn two_threads(c: &mut Criterion, breakers: &[(&'static str, CircuitBreaker)]) {
    let mut group = c.benchmark_group("observe/closed_success/2_threads");
    for (name, b) in breakers {
        group.bench_function(BenchmarkId::from_parameter(name), |bench| {
            // Per-call time seen by each thread while both call the same breaker.
            bench.iter_custom(|iters| {
                let start = std::sync::Barrier::new(2);
                let times: Vec<Duration> = std::thread::scope(|s| {
                    let run = || {
                        start.wait();
                        let t = Instant::now();
                        for _ in 0..iters {
                            call(b);
                        }
                        t.elapsed()
                    };
                    let other = s.spawn(run);
                    let mine = run();
                    vec![mine, other.join().unwrap()]
                });
                times.iter().sum::<Duration>() / 2
            })
        });
    }
    group.finish();
}

/// Interleaved rounds: every round times each breaker for `BATCH` calls per thread, in
/// rotating order, so load from other processes hits every variant alike. Prints the minimum
/// and median ns/call per variant and their ratios to `no_listener`, for one thread and for
/// two threads calling the same breaker. Runs only under `cargo bench`.
fn interleaved(breakers: &[(&'static str, CircuitBreaker)]) {
    const ROUNDS: usize = 300;
    const BATCH: u32 = 20_000;
    for threads in [1, 2] {
        let mut samples = vec![Vec::with_capacity(ROUNDS); breakers.len()];
        for round in 0..ROUNDS {
            for k in 0..breakers.len() {
                let i = (round + k) % breakers.len();
                let b = &breakers[i].1;
                let start = std::sync::Barrier::new(threads);
                let run = || {
                    start.wait();
                    let t = Instant::now();
                    for _ in 0..BATCH {
                        call(b);
                    }
                    t.elapsed()
                };
                let elapsed = if threads == 1 {
                    run()
                } else {
                    std::thread::scope(|s| {
                        let other = s.spawn(run);
                        let mine = run();
                        mine.max(other.join().unwrap())
                    })
                };
                samples[i].push(elapsed.as_secs_f64() * 1e9 / f64::from(BATCH));
            }
        }
        let stats: Vec<(f64, f64)> = samples
            .iter_mut()
            .map(|s| {
                s.sort_by(f64::total_cmp);
                (s[0], s[s.len() / 2])
            })
            .collect();
        let (base_min, base_median) = stats[0];
        println!(
            "\ninterleaved, {threads} thread(s), {ROUNDS} rounds x {BATCH} calls per thread (ns/call):"
        );
        println!(
            "{:<20} {:>8} {:>8} {:>10} {:>10}",
            "variant", "min", "median", "min/base", "med/base"
        );
        for ((name, _), (min, median)) in breakers.iter().zip(&stats) {
            println!(
                "{name:<20} {min:>8.2} {median:>8.2} {:>10.2} {:>10.2}",
                min / base_min,
                median / base_median
            );
        }
    }
}

fn benches(c: &mut Criterion) {
    #[cfg(feature = "observe")]
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .unwrap();
    let breakers = breakers();
    if std::env::args().any(|a| a == "--bench") {
        interleaved(&breakers);
    }
    single_thread(c, &breakers);
    two_threads(c, &breakers);
    #[cfg(feature = "observe")]
    {
        // The recorder is real: per-call counts went through it.
        let text = handle.render();
        assert!(
            text.lines().any(|l| l
                .starts_with(r#"cutout_calls_total{breaker="per_call",outcome="success"}"#)
                && !l.ends_with(" 0")),
            "{text}"
        );
    }
}

criterion_group! {
    name = observe;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = benches
}
criterion_main!(observe);
