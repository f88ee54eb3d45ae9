//! Allocations per request through the keyed layer, counted by a counting global allocator
//! (`stats_alloc`): none on the admitted path once a key has its breaker, whether the key is
//! a `u64` or an `http::Request`'s authority, and the registry an `Arc` or `&'static`. One test, no harness, so nothing else
//! allocates while it counts.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use cutout::{ManualClock, Outcome};
use cutout_keyed::KeyedBreakers;
use tower::Layer;
use tower_cutout::http::{HttpClassifier, ServiceUnavailable};
use tower_cutout::keyed::{Authority, AuthorityKey, KeyedCircuitBreakerLayer};

#[path = "support/counting.rs"]
mod counting;

use counting::{CALLS, allocations, bare, send};

fn registry<K: std::hash::Hash + Eq + Clone + Send + Sync + 'static>(
    clock: &ManualClock,
    capacity: usize,
) -> Arc<KeyedBreakers<K>> {
    Arc::new(
        KeyedBreakers::builder(
            cutout::CircuitBreaker::builder()
                .failure_threshold(1)
                .open_duration(Duration::from_secs(1)),
        )
        .capacity(capacity)
        .build_with_clock(clock.clone())
        .unwrap(),
    )
}

fn main() {
    let clock = ManualClock::new();

    let hosts = registry::<u64>(&clock, 16);
    let mut svc =
        KeyedCircuitBreakerLayer::new(hosts.clone(), |x: &u64| Some(*x % 4)).layer(bare());
    let closed = allocations(|| send(&mut svc, 1).is_ok());
    assert_eq!(closed, 0, "closed success, u64 key, default mode");

    // The same on a `&'static` registry: the future holds a `StaticKeyedPermit`.
    let leaked = Arc::into_inner(registry::<u64>(&clock, 16)).unwrap().leak();
    let mut svc = KeyedCircuitBreakerLayer::new(leaked, |x: &u64| Some(*x % 4)).layer(bare());
    let closed_static = allocations(|| send(&mut svc, 1).is_ok());
    assert_eq!(
        closed_static, 0,
        "closed success, u64 key, 'static registry"
    );

    let uri: http::Uri = "http://api.example:8080/v1".parse().unwrap();
    let get = || {
        let mut request = http::Request::new(());
        *request.uri_mut() = uri.clone();
        request
    };
    let hosts = registry::<AuthorityKey>(&clock, 16);
    let mut svc = KeyedCircuitBreakerLayer::new(hosts.clone(), Authority::new())
        .classify(HttpClassifier::new())
        .reject_with(ServiceUnavailable)
        .layer(tower::service_fn(|_: http::Request<()>| {
            std::future::ready(Ok::<_, Infallible>(http::Response::new(())))
        }));
    let closed_http = allocations(|| send(&mut svc, get()).is_ok());
    assert_eq!(closed_http, 0, "closed success, Authority key, HTTP mode");

    // Rejections: the default mode's boxed error is zero-sized, as the unkeyed layer's
    // (every mode: `reject_alloc.rs`).
    let hosts = registry::<u64>(&clock, 16);
    hosts.lease(&1).unwrap().force_open();
    let mut svc = KeyedCircuitBreakerLayer::new(hosts.clone(), |x: &u64| Some(*x)).layer(bare());
    let rejected = allocations(|| send(&mut svc, 1).is_err());
    assert_eq!(rejected, 0, "rejection, default mode");

    // A full registry (every breaker open) refuses a new key: a zero-sized boxed error, and
    // the sweep that finds nothing to evict allocates nothing.
    let hosts = registry::<u64>(&clock, 2);
    for key in [1, 2] {
        hosts.try_acquire(&key).unwrap().record(Outcome::Failure);
    }
    let mut svc = KeyedCircuitBreakerLayer::new(hosts.clone(), |x: &u64| Some(*x)).layer(bare());
    let full = allocations(|| send(&mut svc, 3).is_err());
    assert_eq!(full, 0, "refused key, default mode");

    // A new key each call, evicting an old one now and then: the cost of a key's breaker.
    let hosts = registry::<u64>(&clock, 1_000);
    let mut svc = KeyedCircuitBreakerLayer::new(hosts.clone(), |x: &u64| Some(*x)).layer(bare());
    let mut key = 0;
    let new_keys = allocations(|| {
        key += 1;
        send(&mut svc, key).is_ok()
    });

    println!("allocations per request through the keyed layer (over {CALLS}):");
    println!("  closed success, u64 key:              {}", closed / CALLS);
    println!(
        "  the same, 'static registry:           {}",
        closed_static / CALLS
    );
    println!(
        "  closed success, Authority, HTTP mode: {}",
        closed_http / CALLS
    );
    println!(
        "  rejection, default mode:              {}",
        rejected / CALLS
    );
    println!("  refused, registry full:               {}", full / CALLS);
    println!(
        "  a new key each call (evicting):       {:.2}",
        new_keys as f64 / CALLS as f64
    );
}
