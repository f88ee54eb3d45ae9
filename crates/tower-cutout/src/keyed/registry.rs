//! How a keyed service holds its registry: [`KeyedRegistry`].

use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;

use cutout_keyed::{KeyedBreakers, KeyedPermit, KeyedRejected, StaticKeyedPermit};

use crate::recording::IntoRecorder;

pub(crate) mod sealed {
    use super::*;

    /// What the keyed service needs of a registry handle; sealed, so the permit type stays
    /// internal.
    pub trait Registry<K>: Clone {
        /// The registry's hasher.
        type Hasher;

        /// The permit a response future holds until its call finishes (it also holds the
        /// key's breaker in the registry).
        type Permit: IntoRecorder + fmt::Debug;

        /// Asks `key`'s breaker for a permit.
        fn acquire(&self, key: &K) -> Result<Self::Permit, KeyedRejected>;
    }
}

/// A handle through which a [`KeyedCircuitBreaker`](super::KeyedCircuitBreaker) service
/// reaches its registry. Sealed; the two implementations:
///
/// | handle | a service clone | a call's permit | shared writes per request (closed) |
/// |---|---|---|---|
/// | `&'static KeyedBreakers<K, H>` (fast; [`KeyedBreakers::leak`] or a `static`) | copies a pointer | [`StaticKeyedPermit`] | none |
/// | `Arc<KeyedBreakers<K, H>>` | a reference-count increment | [`KeyedPermit`] | two reference counts, twice each |
///
/// Either way the key's user count is striped per thread, so holding the key's breaker
/// during a call writes only the calling thread's stripe.
pub trait KeyedRegistry<K>: sealed::Registry<K> {}

impl<K, G: sealed::Registry<K>> KeyedRegistry<K> for G {}

impl<K, H> sealed::Registry<K> for Arc<KeyedBreakers<K, H>>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    H: BuildHasher + Send + Sync + 'static,
{
    type Hasher = H;
    type Permit = KeyedPermit;

    #[inline]
    fn acquire(&self, key: &K) -> Result<KeyedPermit, KeyedRejected> {
        self.try_acquire(key)
    }
}

impl<K, H> sealed::Registry<K> for &'static KeyedBreakers<K, H>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    H: BuildHasher + Send + Sync + 'static,
{
    type Hasher = H;
    type Permit = StaticKeyedPermit;

    #[inline]
    fn acquire(&self, key: &K) -> Result<StaticKeyedPermit, KeyedRejected> {
        // `*self` is the `&'static` reference the permit borrows from.
        let &registry = self;
        registry.try_acquire_static(key)
    }
}
