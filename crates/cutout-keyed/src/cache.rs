//! The per-thread lookup cache: each thread remembers, in a slot of its own in the
//! registry, the last key it entered and that key's node. A thread calling the same key
//! again (a worker serving one hot tenant or host) enters the node straight from its slot:
//! a key comparison and the node's entry, with no hash, no map probe and no epoch guard
//! (papaya's guard ends with an atomic swap, which is a full barrier on x86-64: one of the
//! three a lookup made, and the one this removes along with the hash and probe).
//!
//! # Why a cached node is safe to use
//!
//! A slot holds an `Arc` of the node, so the node's memory outlives any eviction while it
//! is cached. Entering it goes through the node's own protocol ([`Node::enter`]): a
//! retired node refuses (retirement is final), and then the lookup goes to the map. A
//! node that accepts was not retired, and is not until this user exits; the map removes
//! a key's node only once it is retired and never replaces one, so the map still holds it
//! and it stays allocated while the user is in, whatever happens to the slot meanwhile.
//! That is the same argument as for the map's own lookups (see `borrowed.rs`), which is
//! why [`KeyedBreakers::enter_held`] can hand out a plain reference either way.
//!
//! # Why a slot needs no lock
//!
//! A slot is indexed by [`cutout::thread_index`]: no two live threads hold the same index,
//! and an index passes from one thread to the next through a lock (so the old holder's
//! writes happen before the new holder's reads). So only one thread touches a slot at a
//! time, and it does so without an atomic. Within that thread a call may reenter the
//! registry: a key's `Eq` and `Clone` are user code, and so is a breaker's listener
//! dropped with the last `Arc` of an evicted node. So a slot is marked busy while the
//! thread compares or replaces its key, and a reentrant call that finds it busy takes the
//! map's way without touching it; an entry the slot lets go of is dropped after the mark
//! is cleared. (A key's `Eq` or `Clone` that panics leaves the mark set: the slot then
//! stays out of use, and that thread index takes the map's way from then on.)
//!
//! # What it costs
//!
//! One cache-line-padded slot per thread index up to a limit (twice the machine's
//! parallelism, at least 16, at most 256): 2 KiB on a 2-core machine. Threads past the
//! limit, and threads being torn down, use the map every time. A miss takes the map's way
//! and counts itself; the slot takes the missed key only when it is empty or after
//! [`MISSES_BEFORE_REPLACING`] misses in a row (a hit clears the count). Replacing
//! clones the key and the node's `Arc` (a reference count written on the node's line, and
//! an allocation for keys that own heap memory, such as `String`) and drops the old ones:
//! a thread that cycles through many keys pays that once in so many calls, not on every
//! call, and a thread with a hot key keeps it through the odd other key. An evicted breaker
//! stays allocated (out of the registry, never used again) until the slot that cached it
//! caches another key, or the registry is dropped.
#![allow(unsafe_code)]

use std::cell::UnsafeCell;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crossbeam_utils::CachePadded;

use crate::node::Node;
use crate::{KeyedBreakers, KeyedRejected};

/// The most slots a registry's cache has.
const MAX_SLOTS: usize = 256;

/// Misses in a row after which a slot forgets its key for the one just missed.
const MISSES_BEFORE_REPLACING: u32 = 16;

/// One slot per thread index (see the module docs).
pub(crate) struct ThreadCache<K> {
    slots: Box<[CachePadded<Slot<K>>]>,
}

struct Slot<K>(UnsafeCell<Entry<K>>);

struct Entry<K> {
    /// The thread is comparing or replacing the key (a reentrant call keeps off).
    busy: bool,
    /// Misses since the last hit or replacement.
    misses: u32,
    cached: Option<(K, Arc<Node>)>,
}

// SAFETY: a slot is only touched by the thread holding its index (the module docs show
// why), and its contents move between threads (the next holder of the index, or the thread
// that drops the registry): `K` and `Arc<Node>` are `Send`.
unsafe impl<K: Send> Sync for Slot<K> {}

/// What the calling thread's slot says about a key.
pub(crate) enum Lookup<'a> {
    /// The slot held the key, and its node let the caller in.
    Entered(&'a Node),
    /// The map's way. `take`: the slot is empty, or held the key with a node since
    /// evicted, so it takes the key now; otherwise it holds another key (or is busy, or
    /// the thread has none).
    Missed { take: bool },
}

impl<K: Eq> ThreadCache<K> {
    pub(crate) fn new() -> Self {
        let slots = std::thread::available_parallelism()
            .map_or(8, usize::from)
            .saturating_mul(2)
            .clamp(16, MAX_SLOTS);
        ThreadCache {
            slots: (0..slots)
                .map(|_| {
                    CachePadded::new(Slot(UnsafeCell::new(Entry {
                        busy: false,
                        misses: 0,
                        cached: None,
                    })))
                })
                .collect(),
        }
    }

    /// Looks `key` up in `index`'s slot, entering its node if it holds it.
    #[inline]
    pub(crate) fn enter(&self, index: usize, key: &K) -> Lookup<'_> {
        let Some(slot) = self.slots.get(index) else {
            return Lookup::Missed { take: false };
        };
        let entry = slot.0.get();
        // SAFETY: only the thread holding `index` is here (module docs). The reference
        // into the slot is used only while `busy` keeps a reentrant call (from `K::eq`)
        // out of it, and the writes after it go through the pointer to other fields.
        unsafe {
            if (*entry).busy {
                return Lookup::Missed { take: false };
            }
            (*entry).busy = true;
            let found = match &(*entry).cached {
                None => Lookup::Missed { take: true },
                Some((cached, node)) if cached == key => {
                    if node.enter() {
                        Lookup::Entered(node)
                    } else {
                        Lookup::Missed { take: true }
                    }
                }
                Some(_) => Lookup::Missed { take: false },
            };
            (*entry).busy = false;
            if let Lookup::Entered(node) = found {
                if (*entry).misses != 0 {
                    (*entry).misses = 0;
                }
                // Entered and so not retired: the map holds the node until this user
                // exits (module docs), whatever happens to the slot meanwhile.
                let node: *const Node = node;
                return Lookup::Entered(&*node);
            }
            found
        }
    }

    /// After a miss on `index`'s slot, the map's node for `key` (entered): caches it if
    /// `take`, or once the slot has missed [`MISSES_BEFORE_REPLACING`] times in a row.
    #[inline]
    pub(crate) fn missed(&self, index: usize, key: &K, node: &Arc<Node>, take: bool)
    where
        K: Clone,
    {
        let Some(slot) = self.slots.get(index) else {
            return;
        };
        let entry = slot.0.get();
        // SAFETY: as in `enter`; no reference into the slot is held across `K::clone`.
        let old = unsafe {
            if (*entry).busy {
                return;
            }
            let misses = (*entry).misses + 1;
            if !take && misses < MISSES_BEFORE_REPLACING {
                (*entry).misses = misses;
                return;
            }
            (*entry).busy = true;
            let fresh = (key.clone(), Arc::clone(node));
            let old = (*entry).cached.replace(fresh);
            (*entry).misses = 0;
            (*entry).busy = false;
            old
        };
        // Dropped with the slot let go (the last `Arc` of an evicted node runs its drop).
        drop(old);
    }
}

impl<K, S> KeyedBreakers<K, S>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    S: BuildHasher + Send + Sync + 'static,
{
    /// Finds or creates `key`'s breaker and enters it (counts a user): from the calling
    /// thread's cache when it holds `key`, else from the map (and then maybe caches it).
    /// The node stays valid until the caller exits it (see the module docs).
    #[inline]
    pub(crate) fn enter_held(&self, key: &K) -> Result<&Node, KeyedRejected> {
        let Some(index) = cutout::thread_index() else {
            return self.enter_from_map(key, None);
        };
        match self.cache.enter(index, key) {
            Lookup::Entered(node) => {
                node.touch(self.tick.load(Ordering::Relaxed));
                Ok(node)
            }
            Lookup::Missed { take } => self.enter_from_map(key, Some((index, take))),
        }
    }

    /// [`enter_held`](Self::enter_held), as an `Arc` of its own: for the owned handles
    /// ([`Lease`](crate::Lease)), which the cache serves too (one reference count written,
    /// which an owned handle needs anyway, and no hash, map probe or guard on a hit).
    #[inline]
    pub(crate) fn enter_owned(&self, key: &K) -> Result<Arc<Node>, KeyedRejected> {
        let node: *const Node = self.enter_held(key)?;
        // SAFETY: every node lives in an `Arc` (the map's; the cache holds clones of it),
        // so `node` came from `Arc::as_ptr`. It was entered and so is not retired: the map
        // holds its `Arc` (a strong count of at least one) until this user exits, which
        // the returned `Arc`'s owner does when it is done. One more strong count is that
        // `Arc`'s own.
        Ok(unsafe {
            Arc::increment_strong_count(node);
            Arc::from_raw(node)
        })
    }

    /// The map's way; then tells `index`'s slot of the miss (`true`: take the key now).
    #[inline(never)]
    fn enter_from_map(&self, key: &K, slot: Option<(usize, bool)>) -> Result<&Node, KeyedRejected> {
        let guard = self.map.guard();
        let node = self.enter(key, &guard)?;
        if let Some((index, take)) = slot {
            self.cache.missed(index, key, node, take);
        }
        let node: *const Node = Arc::as_ptr(node);
        // SAFETY: entered and so not retired: the map holds it until this user exits
        // (module docs), and the map lives as long as `self`.
        Ok(unsafe { &*node })
    }
}
