//! The guardrail: how many endpoints may be ejected at once, and which are let through.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;

/// One endpoint's place in the guardrail.
#[derive(Debug, Default)]
pub(crate) struct Endpoint {
    /// 0 while not ejected; else the ejection's order number (1, 2, ...), so that a lower
    /// number was ejected earlier.
    ejected_at: AtomicU64,
    /// The waker of the endpoint's pending `poll_ready`, woken when the guardrail may let
    /// it through.
    waker: Mutex<Option<Waker>>,
}

impl Endpoint {
    /// Whether the endpoint is marked ejected (one load: the healthy path's check).
    #[inline]
    pub(crate) fn is_ejected(&self) -> bool {
        self.ejected_at.load(Ordering::Acquire) != 0
    }

    pub(crate) fn set_waker(&self, waker: &Waker) {
        let mut slot = lock(&self.waker);
        if !slot.as_ref().is_some_and(|w| w.will_wake(waker)) {
            *slot = Some(waker.clone());
        }
    }

    fn wake(&self) {
        if let Some(w) = lock(&self.waker).take() {
            w.wake();
        }
    }
}

/// The endpoints of one balancer and the share of them that may be ejected at once; shared
/// by every endpoint of an [`Ejection`](super::Ejection). Clones share one guardrail.
///
/// An endpoint is *ejected* while its breaker rejects calls (open, or half-open with every
/// probe slot taken). At most `floor(max_share * endpoints)` ejected endpoints are kept out
/// of the balancer; past that, the least recently ejected are *let through*: they report
/// ready and take calls again, as Envoy does past its max ejection percent.
#[derive(Clone)]
pub struct Guardrail {
    inner: Arc<Inner>,
}

struct Inner {
    max_share: f64,
    next: AtomicU64,
    /// Every live endpoint; locked only when an endpoint is added, removed, ejected or
    /// restored, or asks whether it is let through: never on a healthy endpoint's call.
    endpoints: Mutex<Vec<Arc<Endpoint>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // No code panics while holding these locks; a poisoned one still holds valid data.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Guardrail {
    pub(crate) fn new(max_share: f64) -> Self {
        Self {
            inner: Arc::new(Inner {
                max_share,
                next: AtomicU64::new(1),
                endpoints: Mutex::new(Vec::new()),
            }),
        }
    }

    /// The share of endpoints that may be ejected at once.
    pub fn max_share(&self) -> f64 {
        self.inner.max_share
    }

    /// Live endpoints.
    pub fn endpoints(&self) -> usize {
        lock(&self.inner.endpoints).len()
    }

    /// Endpoints ejected now, let through or not: their breaker rejected the endpoint's last
    /// `poll_ready`, and has not admitted it closed since. (An endpoint is marked when the
    /// balancer polls it, so one whose breaker has just opened counts from its next poll.)
    pub fn ejected(&self) -> usize {
        lock(&self.inner.endpoints)
            .iter()
            .filter(|e| e.is_ejected())
            .count()
    }

    /// Ejected endpoints the guardrail lets through now.
    pub fn let_through(&self) -> usize {
        let endpoints = lock(&self.inner.endpoints);
        let ejected = endpoints.iter().filter(|e| e.is_ejected()).count();
        ejected.saturating_sub(self.allowed(endpoints.len()))
    }

    /// How many of `total` endpoints may be ejected at once.
    fn allowed(&self, total: usize) -> usize {
        // max_share is in 0..=1 (checked), so the product is in 0..=total.
        (self.inner.max_share * total as f64).floor() as usize
    }

    pub(crate) fn add(&self) -> Arc<Endpoint> {
        let endpoint = Arc::new(Endpoint::default());
        lock(&self.inner.endpoints).push(endpoint.clone());
        endpoint
    }

    pub(crate) fn remove(&self, endpoint: &Arc<Endpoint>) {
        let mut endpoints = lock(&self.inner.endpoints);
        endpoints.retain(|e| !Arc::ptr_eq(e, endpoint));
        // Fewer endpoints may let more through.
        Self::wake_ejected(&endpoints);
    }

    /// Marks `endpoint` ejected (if it is not already) and wakes the other ejected ones:
    /// one more ejection may let the least recently ejected through.
    pub(crate) fn eject(&self, endpoint: &Endpoint) {
        if endpoint.is_ejected() {
            return;
        }
        let endpoints = lock(&self.inner.endpoints);
        let order = self.inner.next.fetch_add(1, Ordering::Relaxed);
        endpoint.ejected_at.store(order, Ordering::Release);
        Self::wake_ejected(&endpoints);
    }

    /// Marks `endpoint` healthy again.
    pub(crate) fn restore(&self, endpoint: &Endpoint) {
        if endpoint.is_ejected() {
            let _endpoints = lock(&self.inner.endpoints);
            endpoint.ejected_at.store(0, Ordering::Release);
        }
    }

    /// Whether the ejected `endpoint` is among the least recently ejected that the
    /// guardrail lets through.
    pub(crate) fn lets_through(&self, endpoint: &Endpoint) -> bool {
        let endpoints = lock(&self.inner.endpoints);
        let mine = endpoint.ejected_at.load(Ordering::Acquire);
        if mine == 0 {
            return false;
        }
        // Order numbers are unique: `mine` is among the `over` least recently ejected when
        // fewer than `over` ejections came before it (a count, no list to allocate or sort).
        let (mut ejected, mut earlier) = (0usize, 0usize);
        for at in endpoints
            .iter()
            .map(|e| e.ejected_at.load(Ordering::Acquire))
        {
            if at != 0 {
                ejected += 1;
                earlier += usize::from(at < mine);
            }
        }
        earlier < ejected.saturating_sub(self.allowed(endpoints.len()))
    }

    fn wake_ejected(endpoints: &[Arc<Endpoint>]) {
        for e in endpoints.iter().filter(|e| e.is_ejected()) {
            e.wake();
        }
    }
}

impl fmt::Debug for Guardrail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guardrail")
            .field("max_share", &self.inner.max_share)
            .field("endpoints", &self.endpoints())
            .field("ejected", &self.ejected())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn past_the_share_the_least_recently_ejected_are_let_through() {
        let g = Guardrail::new(0.5);
        let e: Vec<_> = (0..4).map(|_| g.add()).collect();
        // 4 endpoints at 50%: 2 may be ejected.
        g.eject(&e[2]);
        g.eject(&e[0]);
        assert!(!g.lets_through(&e[2]) && !g.lets_through(&e[0]));
        g.eject(&e[3]);
        // Three ejected: the first ejected (e[2]) is let through.
        assert_eq!(
            e.iter().map(|x| g.lets_through(x)).collect::<Vec<_>>(),
            [false, false, true, false]
        );
        g.eject(&e[1]);
        assert_eq!(
            e.iter().map(|x| g.lets_through(x)).collect::<Vec<_>>(),
            [true, false, true, false]
        );
        assert_eq!((g.ejected(), g.let_through()), (4, 2));
        // e[2] recovers: e[0] is still let through, the rest stay out.
        g.restore(&e[2]);
        assert_eq!(
            e.iter().map(|x| g.lets_through(x)).collect::<Vec<_>>(),
            [true, false, false, false]
        );
        // An endpoint leaves: 3 endpoints, 1 may be ejected; e[0] and e[3] go through.
        g.remove(&e[2]);
        assert_eq!(
            e.iter().map(|x| g.lets_through(x)).collect::<Vec<_>>(),
            [true, false, false, true]
        );
        // Marking an ejected endpoint again keeps its place.
        g.eject(&e[0]);
        assert!(g.lets_through(&e[0]));
    }

    #[test]
    fn zero_share_lets_every_ejected_endpoint_through_and_one_ejects_all() {
        let none = Guardrail::new(0.0);
        let a = none.add();
        none.eject(&a);
        assert!(none.lets_through(&a));
        let all = Guardrail::new(1.0);
        let e: Vec<_> = (0..3).map(|_| all.add()).collect();
        for x in &e {
            all.eject(x);
        }
        assert!(e.iter().all(|x| !all.lets_through(x)));
        assert_eq!(all.let_through(), 0);
    }

    #[test]
    fn ejecting_wakes_the_other_ejected_endpoints() {
        use std::sync::atomic::AtomicUsize;
        use std::task::Wake;
        struct Count(AtomicUsize);
        impl Wake for Count {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, Ordering::Relaxed);
            }
        }
        let g = Guardrail::new(0.5);
        let (a, b) = (g.add(), g.add());
        let woken = Arc::new(Count(AtomicUsize::new(0)));
        g.eject(&a);
        a.set_waker(&Waker::from(woken.clone()));
        g.eject(&b);
        assert_eq!(woken.0.load(Ordering::Relaxed), 1);
        assert!(g.lets_through(&a));
    }
}
