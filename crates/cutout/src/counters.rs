//! Lifetime counters, sharded so the closed path never writes a contended cache line.
//!
//! Each thread is given a shard index once (round robin); its increments go to that shard's
//! cache line. A read sums every shard. Sums are exact once calls are quiet; during traffic
//! a read may see one counter ahead of another.

use std::sync::atomic::AtomicUsize;

use crate::state::Outcome;
use crate::sync::{AtomicU64, Ordering};

/// Shards per breaker: enough for the threads of most machines to land on distinct lines.
#[cfg(not(cutout_loom))]
const SHARDS: usize = 16;
#[cfg(cutout_loom)]
const SHARDS: usize = 1;

#[derive(Debug, Default)]
#[repr(align(128))]
struct Shard {
    admitted: AtomicU64,
    successes: AtomicU64,
    failures: AtomicU64,
    ignored: AtomicU64,
    rejected: AtomicU64,
}

/// Totals of the lifetime counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Totals {
    pub(crate) admitted: u64,
    pub(crate) successes: u64,
    pub(crate) failures: u64,
    pub(crate) ignored: u64,
    pub(crate) rejected: u64,
}

#[derive(Debug)]
pub(crate) struct Counters {
    shards: Box<[Shard]>,
}

static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static SHARD_INDEX: usize =
        NEXT_SHARD.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % SHARDS;
}

impl Counters {
    pub(crate) fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Shard::default()).collect(),
        }
    }

    #[inline]
    fn shard(&self) -> &Shard {
        let i = SHARD_INDEX.try_with(|i| *i).unwrap_or(0);
        // `i < SHARDS == self.shards.len()`; `get` keeps the path panic-free regardless.
        self.shards.get(i).unwrap_or(&self.shards[0])
    }

    #[inline]
    pub(crate) fn admitted(&self) {
        self.shard().admitted.fetch_add(1, Ordering::Relaxed);
    }

    #[inline]
    pub(crate) fn rejected(&self) {
        self.shard().rejected.fetch_add(1, Ordering::Relaxed);
    }

    #[inline]
    pub(crate) fn recorded(&self, outcome: Outcome) {
        let shard = self.shard();
        let counter = match outcome {
            Outcome::Success => &shard.successes,
            Outcome::Failure => &shard.failures,
            Outcome::Ignored => &shard.ignored,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn totals(&self) -> Totals {
        let mut t = Totals::default();
        for s in self.shards.iter() {
            t.admitted += s.admitted.load(Ordering::Relaxed);
            t.successes += s.successes.load(Ordering::Relaxed);
            t.failures += s.failures.load(Ordering::Relaxed);
            t.ignored += s.ignored.load(Ordering::Relaxed);
            t.rejected += s.rejected.load(Ordering::Relaxed);
        }
        t
    }
}
