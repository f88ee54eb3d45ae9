//! The keyed layer's tests (`support/keyed_suite.rs`) on a `&'static` registry
//! (`cutout_keyed::KeyedBreakers::leak`): the response future holds a
//! `cutout_keyed::StaticKeyedPermit`, which borrows the key's breaker.

// The suite clones its registry handle (`hosts.clone()`), an `Arc` in `keyed.rs`; here it
// is a `&'static` reference, whose clone is a copy.
#![allow(noop_method_call)]

use std::hash::Hash;

use cutout_keyed::KeyedBreakers;

type Shared<K> = &'static KeyedBreakers<K>;

fn share<K: Hash + Eq + Clone + Send + Sync + 'static>(registry: KeyedBreakers<K>) -> Shared<K> {
    registry.leak()
}

#[path = "support/counted.rs"]
mod counted;
#[path = "support/keyed_suite.rs"]
mod suite;
