//! Lifetime counters, one cache line per thread, so the call path never does an atomic
//! read-modify-write.
//!
//! # Design
//!
//! Every thread that counts is given a small process-wide id (0, 1, 2, ... with ids of
//! exited threads reused, smallest first, so ids stay dense). A breaker keeps a fixed array
//! of [`Slot`]s, twice the machine's parallelism (at least 16, at most 1024; 2 KiB on a
//! machine of up to 8 CPUs), allocated when the breaker is built: memory is fixed by the
//! machine, never by traffic. Only the thread holding id `i` writes slot `i`, so an
//! increment is a plain load and store (no `lock`-prefixed instruction, no contended
//! line), and a read sums every slot.
//!
//! A slot outlives its thread: when a thread exits, its id goes back to the pool (the lock
//! on the pool orders the old thread's last write before the next owner's first), and the
//! next thread given that id adds to the same counts, so nothing is lost.
//!
//! A thread with no slot of its own counts with `fetch_add` on one shared slot: threads
//! whose id is past the array (more threads alive at once than slots), and a thread that
//! counts while it is being torn down (a permit dropped by another thread-local's
//! destructor after the id was returned). Every path is panic-free.
//!
//! Sums are exact once calls are quiet; during traffic a read may see one counter ahead of
//! another.
//!
//! A slot also holds its thread's count of successes in a time window's current bucket
//! ([`LocalCount`], used by `window::time`), in the same line: the slot has room, and the
//! thread writes it on the same call.
//!
//! Why not the `thread_local` crate, which keeps per-object thread-local values the same
//! way: its first use on a thread registers a destructor and panics if that happens during
//! thread teardown, and a breaker must count a permit dropped there without panicking.
//!
//! Under `--cfg cutout_loom` the counters are one slot of loom atomics updated with
//! `fetch_add` (loom models threads of its own, and the per-thread ids are plain
//! thread-locals it cannot see).

use crate::outcome::Outcome;
use crate::sync::{AtomicU64, Ordering};

#[cfg(cutout_loom)]
pub(crate) use one_slot::Counters;
#[cfg(not(cutout_loom))]
pub(crate) use per_thread::{Counters, thread_index};

/// Under loom no thread has an id (see the module docs).
#[cfg(cutout_loom)]
pub(crate) fn thread_index() -> Option<usize> {
    None
}

/// One thread's counts (or the shared slot's), indexed by [`Counter`], and its share of a
/// time window (see [`LocalCount`]). Aligned to 128 bytes, not 64: the adjacent-line
/// prefetcher fetches lines in pairs, and two threads writing neighbouring 64-byte slots
/// measured 1.84x the one-thread cost per call.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Slot {
    counts: [AtomicU64; 6],
    /// Unused under loom, whose one shared slot has no owner.
    #[cfg_attr(cutout_loom, allow(dead_code))]
    window: LocalCount,
}

/// A thread's own count of successes in one time-window bucket, so that the steady state of
/// a time window writes no shared line (see `window::time`). `word` has the window's counter
/// format (the bucket's stamp above the count) and is read by the window's sums; `index` is
/// the bucket it belongs to. Only the owner of the slot writes either, with plain stores;
/// the shared slot's is never used.
#[derive(Debug, Default)]
pub(crate) struct LocalCount {
    pub(crate) word: AtomicU64,
    pub(crate) index: AtomicU64,
    /// The window's epoch when `word` was pointed at its bucket (0, never an epoch, until
    /// then) and the bucket's first tick: a success in that epoch before the bucket's
    /// end counts in `word` without locating its bucket.
    pub(crate) epoch: AtomicU64,
    pub(crate) start: AtomicU64,
}

/// A lifetime counter: its index in a [`Slot`].
#[derive(Debug, Clone, Copy)]
enum Counter {
    /// Admitted calls that were not probes (`Probes` counts the others: see `add_to`).
    AdmittedNotProbe = 0,
    Successes = 1,
    Failures = 2,
    Ignored = 3,
    Rejected = 4,
    Probes = 5,
}

impl Counter {
    #[inline]
    fn of(outcome: Outcome) -> Counter {
        match outcome {
            Outcome::Success => Counter::Successes,
            Outcome::Failure => Counter::Failures,
            Outcome::Ignored => Counter::Ignored,
        }
    }
}

impl Slot {
    #[inline]
    fn get(&self, counter: Counter) -> &AtomicU64 {
        &self.counts[counter as usize]
    }

    fn add_to(&self, t: &mut Totals) {
        let read = |c| self.get(c).load(Ordering::Relaxed);
        // An admitted probe is counted once, as a probe: admitted = not probes + probes.
        t.admitted += read(Counter::AdmittedNotProbe) + read(Counter::Probes);
        t.successes += read(Counter::Successes);
        t.failures += read(Counter::Failures);
        t.ignored += read(Counter::Ignored);
        t.rejected += read(Counter::Rejected);
        t.probes += read(Counter::Probes);
    }
}

/// Totals of the lifetime counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Totals {
    pub(crate) admitted: u64,
    pub(crate) successes: u64,
    pub(crate) failures: u64,
    pub(crate) ignored: u64,
    pub(crate) rejected: u64,
    pub(crate) probes: u64,
}

#[cfg(not(cutout_loom))]
mod per_thread {
    use std::cell::Cell;
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    use std::sync::atomic::AtomicUsize;
    use std::sync::{Mutex, OnceLock, PoisonError};

    use super::{Counter, LocalCount, Outcome, Slot, Totals};
    use crate::sync::Ordering;

    /// The thread has not asked for an id yet.
    const UNASSIGNED: usize = usize::MAX;
    /// The thread gave its id back (it is exiting).
    const NO_ID: usize = usize::MAX - 1;

    /// The process-wide pool of thread ids: the smallest free id first, so ids stay dense.
    struct Pool {
        next: usize,
        free: BinaryHeap<Reverse<usize>>,
    }

    static POOL: Mutex<Pool> = Mutex::new(Pool {
        next: 0,
        free: BinaryHeap::new(),
    });

    thread_local! {
        /// This thread's id; no destructor, so it can be read at any point of teardown.
        static THREAD_ID: Cell<usize> = const { Cell::new(UNASSIGNED) };
        /// Returns the id to the pool when the thread exits.
        static RELEASE: Release = const { Release };
    }

    struct Release;

    impl Drop for Release {
        fn drop(&mut self) {
            let id = THREAD_ID.try_with(|c| c.replace(NO_ID)).unwrap_or(NO_ID);
            if id < NO_ID {
                let mut pool = POOL.lock().unwrap_or_else(PoisonError::into_inner);
                pool.free.push(Reverse(id));
            }
        }
    }

    #[inline]
    fn current_id() -> usize {
        THREAD_ID.try_with(Cell::get).unwrap_or(NO_ID)
    }

    /// This thread's id, given on first use; `None` once the thread gave it back (it is
    /// exiting). See [`crate::thread_index`].
    #[inline]
    pub(crate) fn thread_index() -> Option<usize> {
        match current_id() {
            UNASSIGNED => Some(assign_id()).filter(|&id| id != NO_ID),
            NO_ID => None,
            id => Some(id),
        }
    }

    /// Gives this thread an id, or `NO_ID` if it is exiting.
    #[cold]
    fn assign_id() -> usize {
        let id = {
            let mut pool = POOL.lock().unwrap_or_else(PoisonError::into_inner);
            match pool.free.pop() {
                Some(Reverse(id)) => id,
                None => {
                    pool.next += 1;
                    pool.next - 1
                }
            }
        };
        // Touching `RELEASE` registers its destructor; if the thread is already past that
        // point, give the id straight back.
        if RELEASE.try_with(|_| ()).is_err() || THREAD_ID.try_with(|c| c.set(id)).is_err() {
            let mut pool = POOL.lock().unwrap_or_else(PoisonError::into_inner);
            pool.free.push(Reverse(id));
            let _ = THREAD_ID.try_with(|c| c.set(NO_ID));
            return NO_ID;
        }
        id
    }

    /// Slots per breaker: twice the machine's parallelism, at least 16, at most 1024.
    fn slots_per_breaker() -> usize {
        static SLOTS: OnceLock<usize> = OnceLock::new();
        *SLOTS.get_or_init(|| {
            let cpus = std::thread::available_parallelism().map_or(8, |n| n.get());
            cpus.saturating_mul(2).clamp(16, 1024)
        })
    }

    #[derive(Debug)]
    pub(crate) struct Counters {
        /// `owned[id]` is written only by the thread holding `id`.
        owned: Box<[Slot]>,
        /// For threads whose id has no slot of its own, and exiting threads; `fetch_add`.
        shared: Slot,
        /// One past the highest id whose time-window count was ever used: sums read no
        /// slot beyond it (ids are dense, so usually a few).
        locals_used: AtomicUsize,
    }

    impl Counters {
        pub(crate) fn new() -> Self {
            Self::with_slots(slots_per_breaker())
        }

        /// With `slots` slots (tests that need this thread to have one, whatever ids other
        /// tests hold at the time, use 1024).
        pub(crate) fn with_slots(slots: usize) -> Self {
            Self {
                owned: (0..slots).map(|_| Slot::default()).collect(),
                shared: Slot::default(),
                locals_used: AtomicUsize::new(0),
            }
        }

        /// Adds one to `counter` in this thread's slot; returns the slot if the thread has
        /// one of its own.
        #[inline]
        fn bump(&self, counter: Counter) -> Option<&Slot> {
            match self.owned.get(current_id()) {
                // Only this thread writes its slot: a load and a store suffice.
                Some(slot) => {
                    let c = slot.get(counter);
                    c.store(c.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
                    Some(slot)
                }
                None => {
                    self.bump_slow(counter);
                    None
                }
            }
        }

        /// A thread's first count in the process, or a thread with no slot of its own.
        #[cold]
        #[inline(never)]
        fn bump_slow(&self, counter: Counter) {
            match thread_index().and_then(|id| self.owned.get(id)) {
                Some(slot) => {
                    let c = slot.get(counter);
                    c.store(c.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
                }
                None => {
                    self.shared.get(counter).fetch_add(1, Ordering::Relaxed);
                }
            }
        }

        /// An admitted call that is not a probe (see [`admitted_probe`](Self::admitted_probe)).
        #[inline]
        pub(crate) fn admitted(&self) {
            self.bump(Counter::AdmittedNotProbe);
        }

        #[inline]
        pub(crate) fn rejected(&self) {
            self.bump(Counter::Rejected);
        }

        /// An admitted probe: one count, which the totals add to both the admitted calls
        /// and the probes.
        #[inline]
        pub(crate) fn admitted_probe(&self) {
            self.bump(Counter::Probes);
        }

        /// Counts `outcome`; returns this thread's time-window count, as
        /// [`local`](Self::local) does (the same slot, found once).
        #[inline]
        pub(crate) fn recorded(&self, outcome: Outcome) -> Option<&LocalCount> {
            self.bump(Counter::of(outcome)).map(|slot| &slot.window)
        }

        pub(crate) fn totals(&self) -> Totals {
            let mut t = Totals::default();
            self.shared.add_to(&mut t);
            for slot in self.owned.iter() {
                slot.add_to(&mut t);
            }
            t
        }

        /// This thread's time-window count, if it has a slot of its own: only this
        /// thread writes it.
        #[inline]
        pub(crate) fn local(&self) -> Option<&LocalCount> {
            self.owned.get(current_id()).map(|slot| &slot.window)
        }

        /// [`local`](Self::local), for a thread about to point its count at a bucket:
        /// from then on, the sums read it.
        pub(crate) fn local_to_use(&self) -> Option<&LocalCount> {
            let id = current_id();
            let slot = self.owned.get(id)?;
            if self.locals_used.load(Ordering::Acquire) <= id {
                self.locals_used.fetch_max(id + 1, Ordering::AcqRel);
            }
            Some(&slot.window)
        }

        /// The time-window counts of every thread that has used one, for the sums.
        pub(crate) fn locals(&self) -> impl Iterator<Item = &LocalCount> {
            let used = self.locals_used.load(Ordering::Acquire);
            self.owned[..used.min(self.owned.len())]
                .iter()
                .map(|slot| &slot.window)
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn threads_count_exactly_and_reuse_ids() {
            let counters = std::sync::Arc::new(Counters::new());
            for round in 0..3u64 {
                let handles: Vec<_> = (0..4)
                    .map(|_| {
                        let counters = counters.clone();
                        std::thread::spawn(move || {
                            for _ in 0..1_000 {
                                counters.admitted();
                                counters.recorded(Outcome::Success);
                            }
                            counters.rejected();
                            current_id()
                        })
                    })
                    .collect();
                for h in handles {
                    let id = h.join().unwrap();
                    assert!(id < NO_ID, "a counting thread has an id");
                }
                let t = counters.totals();
                assert_eq!(t.admitted, 4_000 * (round + 1));
                assert_eq!(t.successes, 4_000 * (round + 1));
                assert_eq!(t.rejected, 4 * (round + 1));
            }
        }

        #[test]
        fn threads_beyond_the_slots_count_on_the_shared_slot() {
            let counters = std::sync::Arc::new(Counters::new());
            let threads = counters.owned.len() + 8;
            // All alive at once, so at least 8 of them have ids past the owned slots.
            let barrier = std::sync::Arc::new(std::sync::Barrier::new(threads));
            let handles: Vec<_> = (0..threads)
                .map(|_| {
                    let (counters, barrier) = (counters.clone(), barrier.clone());
                    std::thread::spawn(move || {
                        counters.recorded(Outcome::Failure);
                        barrier.wait();
                        counters.recorded(Outcome::Failure);
                    })
                })
                .collect();
            for h in handles {
                h.join().unwrap();
            }
            assert_eq!(counters.totals().failures, 2 * threads as u64);
            assert!(
                counters
                    .shared
                    .get(Counter::Failures)
                    .load(Ordering::Relaxed)
                    >= 16
            );
        }
    }
}

#[cfg(cutout_loom)]
mod one_slot {
    use super::{Counter, LocalCount, Outcome, Slot, Totals};
    use crate::sync::Ordering;

    #[derive(Debug)]
    pub(crate) struct Counters {
        slot: Slot,
    }

    impl Counters {
        pub(crate) fn new() -> Self {
            Self {
                slot: Slot::default(),
            }
        }

        fn bump(&self, counter: Counter) {
            self.slot.get(counter).fetch_add(1, Ordering::Relaxed);
        }

        pub(crate) fn admitted(&self) {
            self.bump(Counter::AdmittedNotProbe);
        }

        pub(crate) fn rejected(&self) {
            self.bump(Counter::Rejected);
        }

        pub(crate) fn admitted_probe(&self) {
            self.bump(Counter::Probes);
        }

        pub(crate) fn recorded(&self, outcome: Outcome) -> Option<&LocalCount> {
            self.bump(Counter::of(outcome));
            None
        }

        pub(crate) fn totals(&self) -> Totals {
            let mut t = Totals::default();
            self.slot.add_to(&mut t);
            t
        }

        /// No thread owns a slot here: every time-window count is shared.
        pub(crate) fn local(&self) -> Option<&LocalCount> {
            None
        }

        pub(crate) fn local_to_use(&self) -> Option<&LocalCount> {
            None
        }

        pub(crate) fn locals(&self) -> impl Iterator<Item = &LocalCount> {
            std::iter::empty()
        }
    }
}
