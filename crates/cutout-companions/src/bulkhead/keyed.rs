//! A bulkhead per key, in a bounded map.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::BulkheadFull;
use crate::error::BoxError;

/// Wraps services in a [`KeyedBulkhead`]: at most `max_per_key` calls in flight per key
/// (the key taken from each request by a function), refused at once beyond that with
/// [`BulkheadFull`].
///
/// The layer owns the map of keys: every service it makes, and their clones, share it.
/// The map holds at most `max_keys` keys. A key with no call in flight is dropped from the
/// map when room is needed; a new key arriving while `max_keys` keys are all busy is
/// refused with [`BulkheadFull::too_many_keys`]. Memory is bounded by `max_keys` whatever
/// the keys are. A limit of 0 refuses every call.
///
/// Each call takes a short uncontended-case lock on the map (a lookup, and an insert for a
/// new key) and one compare-exchange on its key's counter; nothing waits.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use cutout_companions::bulkhead::{BulkheadFull, KeyedBulkheadLayer};
/// use tower::{Service, ServiceBuilder, ServiceExt};
///
/// // One call in flight per tenant, at most 1000 tenants tracked.
/// let mut svc = ServiceBuilder::new()
///     .layer(KeyedBulkheadLayer::new(1, 1000, |(tenant, _): &(&'static str, u32)| *tenant))
///     .service_fn(|(_, n): (&str, u32)| async move { Ok::<_, std::io::Error>(n) });
///
/// let a1 = svc.ready().await.unwrap().call(("a", 1));
/// let a2 = svc.ready().await.unwrap().call(("a", 2)).await.unwrap_err();
/// assert_eq!(a2.downcast_ref::<BulkheadFull>(), Some(&BulkheadFull::full(1)));
/// // Tenant "b" has its own slot.
/// assert_eq!(svc.ready().await.unwrap().call(("b", 3)).await.unwrap(), 3);
/// assert_eq!(a1.await.unwrap(), 1);
/// # }
/// ```
pub struct KeyedBulkheadLayer<K, F> {
    shared: Arc<Slots<K>>,
    key: F,
}

impl<K, F> KeyedBulkheadLayer<K, F>
where
    K: Hash + Eq,
{
    /// A keyed bulkhead of `max_per_key` calls per key and at most `max_keys` keys; `key`
    /// names each request's key.
    pub fn new<Req>(max_per_key: usize, max_keys: usize, key: F) -> Self
    where
        F: Fn(&Req) -> K,
    {
        Self {
            shared: Arc::new(Slots {
                max_per_key,
                max_keys,
                map: Mutex::new(HashMap::new()),
            }),
            key,
        }
    }

    /// Keys tracked now (busy keys, and idle ones not yet dropped).
    pub fn tracked_keys(&self) -> usize {
        self.shared.lock().len()
    }

    /// Calls in flight for `key`.
    pub fn in_flight(&self, key: &K) -> usize {
        self.shared
            .lock()
            .get(key)
            .map_or(0, |slot| slot.load(Ordering::Acquire))
    }
}

impl<K, F: Clone> Clone for KeyedBulkheadLayer<K, F> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
            key: self.key.clone(),
        }
    }
}

impl<K, F> fmt::Debug for KeyedBulkheadLayer<K, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedBulkheadLayer")
            .field("max_per_key", &self.shared.max_per_key)
            .field("max_keys", &self.shared.max_keys)
            .finish_non_exhaustive()
    }
}

impl<S, K, F: Clone> Layer<S> for KeyedBulkheadLayer<K, F> {
    type Service = KeyedBulkhead<S, K, F>;

    fn layer(&self, inner: S) -> Self::Service {
        KeyedBulkhead {
            inner,
            shared: self.shared.clone(),
            key: self.key.clone(),
            _key: PhantomData,
        }
    }
}

/// The map of keys to their count of calls in flight.
struct Slots<K> {
    max_per_key: usize,
    max_keys: usize,
    map: Mutex<HashMap<K, Arc<AtomicUsize>>>,
}

impl<K: Hash + Eq> Slots<K> {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, Arc<AtomicUsize>>> {
        // The map is consistent after any panic (no invariant spans two operations).
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn acquire(&self, key: K) -> Result<KeyPermit, BulkheadFull> {
        let slot = {
            let mut map = self.lock();
            if let Some(slot) = map.get(&key) {
                slot.clone()
            } else {
                if map.len() >= self.max_keys {
                    // A slot held only by the map has no call in flight: drop those.
                    map.retain(|_, slot| Arc::strong_count(slot) > 1);
                    if map.len() >= self.max_keys {
                        return Err(BulkheadFull::too_many_keys(self.max_keys));
                    }
                }
                let slot = Arc::new(AtomicUsize::new(0));
                map.insert(key, slot.clone());
                slot
            }
        };
        let max = self.max_per_key;
        match slot.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < max).then_some(n + 1)
        }) {
            Ok(_) => Ok(KeyPermit { slot }),
            Err(_) => Err(BulkheadFull::full(max)),
        }
    }
}

/// One call in flight for a key; released on drop.
struct KeyPermit {
    slot: Arc<AtomicUsize>,
}

impl Drop for KeyPermit {
    fn drop(&mut self) {
        self.slot.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A bulkhead per key. Made by [`KeyedBulkheadLayer`].
pub struct KeyedBulkhead<S, K, F> {
    inner: S,
    shared: Arc<Slots<K>>,
    key: F,
    _key: PhantomData<fn() -> K>,
}

impl<S, K, F> KeyedBulkhead<S, K, F> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The wrapped service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone, K, F: Clone> Clone for KeyedBulkhead<S, K, F> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
            key: self.key.clone(),
            _key: PhantomData,
        }
    }
}

impl<S: fmt::Debug, K, F> fmt::Debug for KeyedBulkhead<S, K, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedBulkhead")
            .field("inner", &self.inner)
            .field("max_per_key", &self.shared.max_per_key)
            .field("max_keys", &self.shared.max_keys)
            .finish_non_exhaustive()
    }
}

impl<S, K, F, Req> Service<Req> for KeyedBulkhead<S, K, F>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    F: Fn(&Req) -> K,
    K: Hash + Eq,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = KeyedResponseFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        match self.shared.acquire((self.key)(&req)) {
            Ok(permit) => KeyedResponseFuture {
                state: State::Admitted {
                    inner: self.inner.call(req),
                    permit: Some(permit),
                },
            },
            Err(full) => KeyedResponseFuture {
                state: State::Rejected { error: full },
            },
        }
    }
}

pin_project! {
    /// The response future of [`KeyedBulkhead`]: holds the key's slot until the inner
    /// future finishes or is dropped.
    pub struct KeyedResponseFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Admitted {
            #[pin]
            inner: F,
            permit: Option<KeyPermit>,
        },
        Rejected {
            error: BulkheadFull,
        },
    }
}

impl<F> fmt::Debug for KeyedResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let admitted = matches!(self.state, State::Admitted { .. });
        f.debug_struct("KeyedResponseFuture")
            .field("admitted", &admitted)
            .finish()
    }
}

impl<F, T, E> Future for KeyedResponseFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Admitted { inner, permit } => {
                let result = std::task::ready!(inner.poll(cx));
                // Free the slot as soon as the call is done, not when the future is dropped.
                permit.take();
                Poll::Ready(result.map_err(Into::into))
            }
            StateProj::Rejected { error } => Poll::Ready(Err(Box::new(*error))),
        }
    }
}
