//! The keyed layer's tests (`support/keyed_suite.rs`) on an `Arc` registry: the response
//! future holds a `cutout_keyed::KeyedPermit`.

use std::sync::Arc;

use cutout_keyed::KeyedBreakers;

type Shared<K> = Arc<KeyedBreakers<K>>;

fn share<K>(registry: KeyedBreakers<K>) -> Shared<K> {
    Arc::new(registry)
}

#[path = "support/counted.rs"]
mod counted;
#[path = "support/keyed_suite.rs"]
mod suite;
