//! What the fleet's trip signal costs on the call path: the same breaker without and with
//! the fleet (its listener added, attached for remote holds, link up on a live subscription),
//! side by side in one run.
//!
//! Rows (`fleet/closed_success/*` and `fleet/open_reject/*`):
//! - `floor`: the protected closure alone, no breaker;
//! - `no_fleet`: a plain breaker;
//! - `fleet_link_up`: the same breaker with `Fleet::listener`, attached, the fleet's
//!   subscription live (in-memory bus) and its two tasks running on a tokio runtime.
//!
//! Run: `cargo bench -p cutout-benches --bench fleet -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use cutout::CircuitBreaker;
use cutout_fleet::{Fleet, MemoryBus};

#[inline]
fn call(b: &CircuitBreaker) {
    black_box(b.call(|| black_box(Ok::<_, ()>(())))).ok();
}

fn benches(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let bus = MemoryBus::new();
    let fleet = runtime.block_on(async {
        let fleet = Fleet::builder().start(bus.transport()).unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !fleet.link_up() {
            assert!(tokio::time::Instant::now() < deadline, "fleet link not up");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        fleet
    });
    let plain = || {
        CircuitBreaker::builder()
            .name("payments")
            .open_duration(Duration::from_secs(3600))
    };
    let no_fleet = plain().build().unwrap();
    let with_fleet = plain().listener(fleet.listener()).build().unwrap();
    fleet.attach(&with_fleet);
    let breakers = [("no_fleet", &no_fleet), ("fleet_link_up", &with_fleet)];

    let mut group = c.benchmark_group("fleet/closed_success");
    group.bench_function(BenchmarkId::from_parameter("floor"), |bench| {
        bench.iter(|| black_box(black_box(Ok::<_, ()>(()))).ok())
    });
    for (name, b) in breakers {
        group.bench_function(BenchmarkId::from_parameter(name), |bench| {
            bench.iter(|| call(b))
        });
    }
    group.finish();

    // Both open (the fleet's by its own trip, which it published once): fail fast.
    let open_plain = plain().build().unwrap();
    let open_fleet = plain().listener(fleet.listener()).build().unwrap();
    fleet.attach(&open_fleet);
    for b in [&open_plain, &open_fleet] {
        for _ in 0..5 {
            let _ = b.call(|| Err::<(), _>(()));
        }
        assert_eq!(b.state(), cutout::State::Open);
    }
    let mut group = c.benchmark_group("fleet/open_reject");
    for (name, b) in [("no_fleet", &open_plain), ("fleet_link_up", &open_fleet)] {
        group.bench_function(BenchmarkId::from_parameter(name), |bench| {
            bench.iter(|| call(b))
        });
    }
    group.finish();

    assert!(fleet.link_up(), "the link stayed up for the whole run");
    drop(fleet);
    drop(runtime);
}

criterion_group!(fleet_benches, benches);
criterion_main!(fleet_benches);
