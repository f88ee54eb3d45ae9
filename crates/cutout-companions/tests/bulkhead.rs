//! Bulkheads: exact admissions, exact rejections, slots freed on completion and on drop.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use cutout_companions::BoxError;
use cutout_companions::bulkhead::{BulkheadFull, BulkheadLayer, KeyedBulkheadLayer};
use futures::FutureExt;
use tokio::sync::oneshot;
use tower::{Service, ServiceBuilder, ServiceExt};

/// A request that completes when its sender fires (or fails if the sender is dropped).
struct Held {
    key: &'static str,
    release: oneshot::Receiver<()>,
}

fn held(key: &'static str) -> (Held, oneshot::Sender<()>) {
    let (tx, rx) = oneshot::channel();
    (Held { key, release: rx }, tx)
}

/// A service that counts calls and answers each request when it is released.
fn counting() -> (
    Arc<AtomicUsize>,
    impl Service<Held, Response = &'static str, Error = BoxError, Future: Send> + Clone,
) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let svc = tower::service_fn(move |req: Held| {
        counter.fetch_add(1, Ordering::SeqCst);
        async move {
            req.release
                .await
                .map_err(|_| "released without an answer")?;
            Ok::<_, BoxError>(req.key)
        }
    });
    (calls, svc)
}

fn full(err: BoxError) -> BulkheadFull {
    *err.downcast_ref::<BulkheadFull>()
        .unwrap_or_else(|| panic!("not a bulkhead rejection: {err}"))
}

#[tokio::test]
async fn admits_up_to_the_limit_and_refuses_the_rest_at_once() {
    let (calls, inner) = counting();
    let mut svc = ServiceBuilder::new()
        .layer(BulkheadLayer::new(2))
        .service(inner);

    let (r1, t1) = held("1");
    let (r2, t2) = held("2");
    let f1 = tokio::spawn(svc.ready().await.unwrap().call(r1));
    let f2 = tokio::spawn(svc.ready().await.unwrap().call(r2));
    for _ in 0..3 {
        let (r, _t) = held("x");
        let err = svc.ready().await.unwrap().call(r).await.unwrap_err();
        assert_eq!(full(err), BulkheadFull::full(2));
    }
    assert_eq!(calls.load(Ordering::SeqCst), 2);

    // One finishes: one more is admitted.
    t1.send(()).unwrap();
    assert_eq!(f1.await.unwrap().unwrap(), "1");
    let (r3, t3) = held("3");
    let f3 = tokio::spawn(svc.ready().await.unwrap().call(r3));
    let (r4, _t4) = held("4");
    assert_eq!(
        full(svc.ready().await.unwrap().call(r4).await.unwrap_err()),
        BulkheadFull::full(2)
    );
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    t2.send(()).unwrap();
    t3.send(()).unwrap();
    assert_eq!(f2.await.unwrap().unwrap(), "2");
    assert_eq!(f3.await.unwrap().unwrap(), "3");
}

#[tokio::test]
async fn clones_share_the_limit_and_drops_free_slots() {
    let (calls, inner) = counting();
    let mut a = ServiceBuilder::new()
        .layer(BulkheadLayer::new(1))
        .service(inner);
    let mut b = a.clone();

    let (r1, _t1) = held("1");
    let pending = a.ready().await.unwrap().call(r1);
    let (r2, _t2) = held("2");
    assert_eq!(
        full(b.ready().await.unwrap().call(r2).await.unwrap_err()),
        BulkheadFull::full(1)
    );
    // A cancelled call gives its slot back.
    drop(pending);
    let (r3, t3) = held("3");
    let f3 = b.ready().await.unwrap().call(r3);
    t3.send(()).unwrap();
    assert_eq!(f3.await.unwrap(), "3");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn services_of_one_layer_share_its_limit() {
    let layer = BulkheadLayer::new(2);
    let (calls, inner) = counting();
    let mut a = ServiceBuilder::new()
        .layer(layer.clone())
        .service(inner.clone());
    let mut b = ServiceBuilder::new().layer(layer.clone()).service(inner);
    assert_eq!((layer.max_concurrent(), layer.available()), (2, 2));

    let (r1, t1) = held("1");
    let f1 = a.ready().await.unwrap().call(r1);
    let (r2, _t2) = held("2");
    let _f2 = b.ready().await.unwrap().call(r2);
    assert_eq!(layer.available(), 0);
    let (r3, _t3) = held("3");
    assert_eq!(
        full(a.ready().await.unwrap().call(r3).await.unwrap_err()),
        BulkheadFull::full(2)
    );
    t1.send(()).unwrap();
    assert_eq!(f1.await.unwrap(), "1");
    // `a` was refused while it waited in the semaphore's queue (tower's `ConcurrencyLimit`
    // asked for a permit): the freed slot went to `a`, which holds it for its next call.
    assert_eq!(layer.available(), 0);
    let (r4, t4) = held("4");
    let f4 = a.ready().await.unwrap().call(r4);
    t4.send(()).unwrap();
    assert_eq!(f4.await.unwrap(), "4");
    assert_eq!(layer.available(), 1);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_zero_bulkhead_refuses_everything_and_errors_pass_through() {
    let (calls, inner) = counting();
    let mut svc = ServiceBuilder::new()
        .layer(BulkheadLayer::new(0))
        .service(inner);
    let (r, _t) = held("x");
    assert_eq!(
        full(svc.ready().await.unwrap().call(r).await.unwrap_err()),
        BulkheadFull::full(0)
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0);

    // The inner service's own errors are handed on unchanged.
    let (_, inner) = counting();
    let mut svc = ServiceBuilder::new()
        .layer(BulkheadLayer::new(1))
        .service(inner);
    let (r, t) = held("x");
    drop(t);
    let err = svc.ready().await.unwrap().call(r).await.unwrap_err();
    assert_eq!(err.to_string(), "released without an answer");
    assert!(!err.is::<BulkheadFull>());
}

fn keyed(
    max_per_key: usize,
    max_keys: usize,
) -> KeyedBulkheadLayer<&'static str, fn(&Held) -> &'static str> {
    KeyedBulkheadLayer::new(max_per_key, max_keys, (|h: &Held| h.key) as fn(&Held) -> _)
}

#[tokio::test]
async fn keyed_limits_each_key_on_its_own() {
    let (calls, inner) = counting();
    let layer = keyed(2, 100);
    let mut svc = ServiceBuilder::new().layer(layer.clone()).service(inner);

    let mut a = Vec::new();
    for _ in 0..2 {
        let (r, t) = held("a");
        a.push((svc.ready().await.unwrap().call(r), t));
    }
    let (r, _t) = held("a");
    assert_eq!(
        full(svc.ready().await.unwrap().call(r).await.unwrap_err()),
        BulkheadFull::full(2)
    );
    assert_eq!(layer.in_flight(&"a"), 2);

    // Another key is not affected.
    let (r, t) = held("b");
    let b = svc.ready().await.unwrap().call(r);
    t.send(()).unwrap();
    assert_eq!(b.await.unwrap(), "b");
    assert_eq!(layer.in_flight(&"b"), 0);

    // Finishing one "a" frees one "a" slot.
    let (f, t) = a.pop().unwrap();
    t.send(()).unwrap();
    assert_eq!(f.await.unwrap(), "a");
    assert_eq!(layer.in_flight(&"a"), 1);
    let (r, t) = held("a");
    let again = svc.ready().await.unwrap().call(r);
    t.send(()).unwrap();
    assert_eq!(again.await.unwrap(), "a");
    assert_eq!(calls.load(Ordering::SeqCst), 4);
    drop(a);
    assert_eq!(layer.in_flight(&"a"), 0);
}

#[tokio::test]
async fn keyed_map_is_bounded_and_evicts_idle_keys() {
    let (calls, inner) = counting();
    let layer = keyed(1, 2);
    let mut svc = ServiceBuilder::new().layer(layer.clone()).service(inner);

    let (ra, ta) = held("a");
    let fa = svc.ready().await.unwrap().call(ra);
    let (rb, _tb) = held("b");
    let _fb = svc.ready().await.unwrap().call(rb);
    assert_eq!(layer.tracked_keys(), 2);

    // Two busy keys: a third key is refused.
    let (rc, _tc) = held("c");
    let err = svc.ready().await.unwrap().call(rc).await.unwrap_err();
    assert_eq!(full(err), BulkheadFull::too_many_keys(2));
    assert_eq!(
        BulkheadFull::too_many_keys(2).to_string(),
        "bulkhead is full: 2 keys tracked, all busy"
    );

    // "a" finishes and is idle: "c" takes its place.
    ta.send(()).unwrap();
    assert_eq!(fa.await.unwrap(), "a");
    let (rc, tc) = held("c");
    let fc = svc.ready().await.unwrap().call(rc);
    assert_eq!(layer.tracked_keys(), 2);
    assert_eq!(layer.in_flight(&"a"), 0);
    assert_eq!(layer.in_flight(&"c"), 1);
    tc.send(()).unwrap();
    assert_eq!(fc.await.unwrap(), "c");
    assert_eq!(calls.load(Ordering::SeqCst), 3);

    // Thousands of distinct keys, one at a time: the map never holds more than 2.
    let (_, inner) = counting();
    let layer = KeyedBulkheadLayer::new(1, 2, |n: &(u32, ())| n.0);
    let mut svc = ServiceBuilder::new()
        .layer(layer.clone())
        .service(tower::service_fn(|_: (u32, ())| async {
            Ok::<_, BoxError>(())
        }));
    for n in 0..5_000 {
        svc.ready().await.unwrap().call((n, ())).await.unwrap();
        assert!(layer.tracked_keys() <= 2);
    }
    drop(inner);
}

#[tokio::test]
async fn keyed_zero_limits_refuse_everything() {
    let (calls, inner) = counting();
    let mut per_key_zero = ServiceBuilder::new()
        .layer(keyed(0, 10))
        .service(inner.clone());
    let (r, _t) = held("a");
    assert_eq!(
        full(
            per_key_zero
                .ready()
                .await
                .unwrap()
                .call(r)
                .await
                .unwrap_err()
        ),
        BulkheadFull::full(0)
    );
    let mut no_keys = ServiceBuilder::new().layer(keyed(1, 0)).service(inner);
    let (r, _t) = held("a");
    assert_eq!(
        full(no_keys.ready().await.unwrap().call(r).await.unwrap_err()),
        BulkheadFull::too_many_keys(0)
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[test]
fn keyed_slots_add_up_under_threads() {
    // Four threads hammer one key with limit 3 through a current-thread runtime each:
    // in flight never exceeds 3 and ends at 0.
    let layer = KeyedBulkheadLayer::new(3, 8, |_: &u32| "k");
    let peak = Arc::new(AtomicUsize::new(0));
    let now = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let layer = layer.clone();
            let (peak, now) = (peak.clone(), now.clone());
            std::thread::spawn(move || {
                let mut svc = ServiceBuilder::new()
                    .layer(layer)
                    .service(tower::service_fn(move |_: u32| {
                        let (peak, now) = (peak.clone(), now.clone());
                        async move {
                            let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                            peak.fetch_max(n, Ordering::SeqCst);
                            now.fetch_sub(1, Ordering::SeqCst);
                            Ok::<_, BoxError>(())
                        }
                    }));
                let (mut admitted, mut refused) = (0, 0);
                for i in 0..2_000 {
                    let ready = svc.ready().now_or_never().expect("ready at once").unwrap();
                    match ready.call(i).now_or_never().expect("done at once") {
                        Ok(()) => admitted += 1,
                        Err(e) => {
                            assert!(e.is::<BulkheadFull>());
                            refused += 1;
                        }
                    }
                }
                (admitted, refused)
            })
        })
        .collect();
    let (admitted, refused) = threads
        .into_iter()
        .map(|t| t.join().unwrap())
        .fold((0, 0), |(a, r), (a2, r2)| (a + a2, r + r2));
    assert_eq!(admitted + refused, 8_000);
    assert!(admitted > 0);
    assert!(peak.load(Ordering::SeqCst) <= 3);
    assert_eq!(layer.in_flight(&"k"), 0);
    assert_eq!(layer.tracked_keys(), 1);
}
