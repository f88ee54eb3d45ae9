//! The time window: the calls of the last `buckets` bucket widths.
//!
//! Each bucket is three tagged counters (calls, failures, slow calls), one `AtomicU64`
//! each:
//!
//! ```text
//!  63                                        20 19                 0
//! +--------------------------------------------+--------------------+
//! |                 stamp                      |       count        |
//! +--------------------------------------------+--------------------+
//! ```
//!
//! | field   | bits   | width | meaning                                            | range                  |
//! |---------|--------|-------|----------------------------------------------------|------------------------|
//! | `count` | 0..20  | 20    | events in the bucket                               | 0..=1,048,575, saturates |
//! | `stamp` | 20..64 | 44    | `epoch * buckets + tick / width`, modulo 2^44      | wraps                  |
//!
//! A call at tick `now` goes to bucket `(now / width) % buckets` with stamp
//! `epoch * buckets + now / width`. A counter whose stamp is behind is stale: the call
//! replaces it with `(stamp, 1)` by compare-exchange (the lazy reset); a counter whose
//! stamp is ahead belongs to a later call, and this one is dropped. The window at stamp
//! `s` sums the counters whose stamp is within `buckets - 1` behind `s`. A new epoch moves
//! every stamp `buckets` ahead, so the previous epoch's buckets all fall out of the window
//! at once. An idle gap of any length leaves only stale stamps behind (the tick count
//! saturates at 2^40, far inside the stamp's 44 bits).
//!
//! Counters are independent: under concurrency a call's failure may be counted a moment
//! after its call.
//!
//! # Successes counted per thread
//!
//! Most calls are successes in the bucket the last call was in, and the rate cannot cross
//! a threshold on them (unless it is pending on the minimum volume, which the hint word
//! tells). A thread with a slot of its own in the breaker's per-thread counters (see
//! `crate::counters`) counts those in its slot's [`LocalCount`]: a word of the same format
//! as a bucket's counter, written with a plain store, so a healthy dependency's calls write
//! no shared line. The count also keeps the epoch and the first tick of its bucket, so such
//! a success is told by two comparisons, without locating its bucket (no hint, no
//! multiplication). The thread's first call in a bucket goes to the bucket's shared counter
//! (it may start the bucket, and then the window is judged), adds what the thread counted
//! in its last bucket to that bucket's shared counter (dropped if that bucket has moved
//! on), and points the thread's count at the new bucket. A sum adds the counts of every
//! thread that has used one, by their stamps like any counter. A thread without a slot
//! (more threads than slots) counts each success with one compare-exchange of the shared
//! counter instead.

use super::{Call, Counts, Padded};
use crate::counters::{Counters, LocalCount};
use crate::sync::{AtomicU64, Ordering};

const COUNT_WIDTH: u32 = 20;
const STAMP_WIDTH: u32 = 64 - COUNT_WIDTH;
const COUNT_MASK: u64 = (1 << COUNT_WIDTH) - 1;
const STAMP_MASK: u64 = (1 << STAMP_WIDTH) - 1;
/// Counts saturate here.
pub(crate) const MAX_BUCKET_COUNT: u64 = COUNT_MASK;

#[derive(Debug, Default)]
struct Bucket {
    calls: AtomicU64,
    failures: AtomicU64,
    slow: AtomicU64,
}

/// What adding to a counter did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Added {
    /// Added to the current bucket (or it was full).
    Counted,
    /// The counter was stale and this call started it afresh.
    Rolled,
    /// The counter belongs to a later stamp: this call was dropped.
    Late,
}

pub(crate) struct TimeWindow {
    width: u64,
    buckets: Box<[Bucket]>,
    /// What every call reads first, in one word:
    ///
    /// * bits 13..: `tick / width` of the bucket last located, and bits 0..12 its index:
    ///   a call in the same bucket finds it with a multiplication instead of two
    ///   divisions. Moved once per bucket width, by one compare-exchange that may lose a
    ///   race: a stale hint only costs the divisions.
    /// * bit 12, `pending`: set while a rate is at its threshold below the minimum volume;
    ///   successes must then be judged too, since one may bring the volume to the minimum.
    ///   Kept across hint moves.
    hint: Padded<AtomicU64>,
}

const HINT_INDEX_WIDTH: u32 = 12;
const HINT_INDEX_MASK: u64 = (1 << HINT_INDEX_WIDTH) - 1;
const HINT_PENDING: u64 = 1 << HINT_INDEX_WIDTH;
const HINT_TINDEX_SHIFT: u32 = HINT_INDEX_WIDTH + 1;
const _: () = assert!(super::MAX_WINDOW_BUCKETS as u64 <= 1 << HINT_INDEX_WIDTH);
/// The largest tick a time window holds: a stamp keeps a spare top bit, and `tick / width`
/// fits above the hint's index and pending bit. The state word's ticks end below it
/// (`state` asserts it).
pub(crate) const MAX_TICK_HELD: u64 = {
    let stamp = (1u64 << (STAMP_WIDTH - 1)) - 1;
    let hint = (1u64 << (64 - HINT_TINDEX_SHIFT)) - 1;
    if stamp < hint { stamp } else { hint }
};

/// Where a call at a given tick goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Located {
    stamp: u64,
    /// The bucket's first tick.
    start: u64,
    index: usize,
    /// The pending bit, as read with the hint.
    pending: bool,
}

impl std::fmt::Debug for TimeWindow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimeWindow")
            .field("width_ticks", &self.width)
            .field("buckets", &self.buckets.len())
            .finish_non_exhaustive()
    }
}

impl TimeWindow {
    /// `buckets` buckets of `width` ticks each (both at least 1; 0 is taken as 1).
    pub(crate) fn new(width: u64, buckets: u32) -> Self {
        TimeWindow {
            width: width.max(1),
            buckets: (0..buckets.max(1)).map(|_| Bucket::default()).collect(),
            // Bucket 0 (ticks 0..width) at index 0, nothing pending: true from the start.
            hint: Padded(AtomicU64::new(0)),
        }
    }

    fn len(&self) -> u64 {
        self.buckets.len() as u64
    }

    /// The stamp of tick `now` in `epoch`, its bucket, and whether a rate is pending.
    #[inline]
    fn locate(&self, epoch: u64, now: u64) -> Located {
        let hint = self.hint.0.load(Ordering::Relaxed);
        let tindex = hint >> HINT_TINDEX_SHIFT;
        // tindex < 2^40 and width < 2^36: the product does not overflow.
        let start = tindex.saturating_mul(self.width);
        let (tindex, index, start) = if now >= start && now - start < self.width {
            (tindex, hint & HINT_INDEX_MASK, start)
        } else {
            let tindex = now / self.width;
            let index = tindex % self.len();
            let moved = (tindex << HINT_TINDEX_SHIFT) | (hint & HINT_PENDING) | index;
            // One try: a racing move or pending change wins, and this call's bucket is
            // found again by division next time.
            let _ = self
                .hint
                .0
                .compare_exchange(hint, moved, Ordering::Relaxed, Ordering::Relaxed);
            // At most `now`: no overflow.
            (tindex, index, tindex * self.width)
        };
        Located {
            stamp: epoch.wrapping_mul(self.len()).wrapping_add(tindex) & STAMP_MASK,
            start,
            index: index as usize,
            pending: hint & HINT_PENDING != 0,
        }
    }

    /// Counts a success in the calling thread's own count (see [`LocalCount`]) if that is
    /// all there is to do: the count is for this epoch's bucket of tick `now()`, it is not
    /// full, and no rate is pending on the minimum volume. A load and a plain store; no
    /// division, and the clock is read only when the epoch matches.
    ///
    /// `false` (nothing done) leaves the call to [`record`](Self::record), which points
    /// the count at the call's bucket.
    #[inline(always)]
    pub(crate) fn count_own(
        &self,
        epoch: u64,
        now: impl FnOnce() -> u64,
        local: &LocalCount,
    ) -> bool {
        // Only this thread writes its count. `epoch` and `start` are set with `word`, by
        // `record`: a count never pointed at a bucket has epoch 0, which no window has.
        if local.epoch.load(Ordering::Relaxed) != epoch
            || self.hint.0.load(Ordering::Relaxed) & HINT_PENDING != 0
            || now().wrapping_sub(local.start.load(Ordering::Relaxed)) >= self.width
        {
            return false;
        }
        let mine = local.word.load(Ordering::Relaxed);
        if mine & COUNT_MASK == MAX_BUCKET_COUNT {
            return false;
        }
        local.word.store(mine + 1, Ordering::Relaxed);
        true
    }

    /// Counts a success at tick `now` in `epoch` in the shared bucket, for a thread without
    /// a count of its own, if that is all there is to do: the bucket already holds this
    /// stamp and no rate is pending on the minimum volume. One compare-exchange, tried
    /// once (none if the bucket is full: the count saturates).
    ///
    /// `false` (nothing done) leaves the call to [`record`](Self::record).
    #[inline]
    pub(crate) fn count_shared(&self, epoch: u64, now: u64) -> bool {
        let at = self.locate(epoch, now);
        if at.pending {
            return false;
        }
        let Some(bucket) = self.buckets.get(at.index) else {
            return false;
        };
        let current = bucket.calls.load(Ordering::Relaxed);
        current >> COUNT_WIDTH == at.stamp
            && (current & COUNT_MASK == MAX_BUCKET_COUNT
                || bucket
                    .calls
                    .compare_exchange(current, current + 1, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok())
    }

    /// Records one call at tick `now` in `epoch` in the shared bucket, and moves the calling
    /// thread's own count (if it has one) to this bucket, so that its next successes here
    /// are counted by [`count_own`](Self::count_own) alone. Returns the window's
    /// counts when they may have crossed a threshold: the call failed or was slow, started
    /// a new bucket (older calls may have left), or a rate was pending on the minimum
    /// volume.
    #[inline]
    pub(crate) fn record(
        &self,
        epoch: u64,
        call: Call,
        now: u64,
        counters: &Counters,
    ) -> Option<Counts> {
        let at = self.locate(epoch, now);
        let bucket = self.buckets.get(at.index)?;
        let added = add(&bucket.calls, at.stamp, 1);
        if added == Added::Late {
            return None;
        }
        if call.failed {
            add(&bucket.failures, at.stamp, 1);
        }
        if call.slow {
            add(&bucket.slow, at.stamp, 1);
        }
        if let Some(local) = counters.local_to_use() {
            self.move_local(local, epoch, at);
        }
        if added == Added::Rolled || call.bits() != 0 || at.pending {
            Some(self.sum(at.stamp, counters))
        } else {
            None
        }
    }

    /// Points this thread's `local` count at the bucket `at`, first adding what it counted
    /// in another bucket to that bucket's shared count (where it is dropped if the bucket
    /// has moved on, as any late call). A sum racing the move may count those successes
    /// twice, for a moment: never less than once.
    fn move_local(&self, local: &LocalCount, epoch: u64, at: Located) {
        local.epoch.store(epoch, Ordering::Relaxed);
        local.start.store(at.start, Ordering::Relaxed);
        let mine = local.word.load(Ordering::Relaxed);
        if mine >> COUNT_WIDTH == at.stamp {
            return;
        }
        let counted = mine & COUNT_MASK;
        if counted != 0 {
            let index = local.index.load(Ordering::Relaxed) as usize;
            if let Some(bucket) = self.buckets.get(index) {
                add(&bucket.calls, mine >> COUNT_WIDTH, counted);
            }
        }
        local.index.store(at.index as u64, Ordering::Relaxed);
        local.word.store(at.stamp << COUNT_WIDTH, Ordering::Relaxed);
    }

    /// Remembers whether a rate is pending on the minimum volume.
    pub(crate) fn set_pending(&self, pending: bool) {
        let bit = if pending { HINT_PENDING } else { 0 };
        let mut hint = self.hint.0.load(Ordering::Relaxed);
        while hint & HINT_PENDING != bit {
            match self.hint.0.compare_exchange_weak(
                hint,
                (hint & !HINT_PENDING) | bit,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(actual) => hint = actual,
            }
        }
    }

    /// The counts of `epoch`'s window at tick `now`.
    pub(crate) fn counts(&self, epoch: u64, now: u64, counters: &Counters) -> Counts {
        self.sum(self.locate(epoch, now).stamp, counters)
    }

    /// Sums the counters, the shared ones and every thread's own count of successes, whose
    /// stamps are within the window ending at `stamp` (saturating).
    fn sum(&self, stamp: u64, counters: &Counters) -> Counts {
        let n = self.len();
        let read = |counter: &AtomicU64| -> u32 {
            let w = counter.load(Ordering::Relaxed);
            let behind = stamp.wrapping_sub(w >> COUNT_WIDTH) & STAMP_MASK;
            if behind < n {
                (w & COUNT_MASK) as u32
            } else {
                0
            }
        };
        // 4096 full buckets hold more than `u32::MAX` calls: the sums saturate.
        let mut c = Counts::default();
        for b in self.buckets.iter() {
            c.calls = c.calls.saturating_add(read(&b.calls));
            c.failures = c.failures.saturating_add(read(&b.failures));
            c.slow = c.slow.saturating_add(read(&b.slow));
        }
        for local in counters.locals() {
            c.calls = c.calls.saturating_add(read(&local.word));
        }
        c
    }
}

/// Counts `n` (1 to `MAX_BUCKET_COUNT`) events at `stamp` in `counter`, saturating.
#[inline]
fn add(counter: &AtomicU64, stamp: u64, n: u64) -> Added {
    debug_assert!((1..=MAX_BUCKET_COUNT).contains(&n));
    let mut current = counter.load(Ordering::Relaxed);
    loop {
        let theirs = current >> COUNT_WIDTH;
        let (next, added) = if theirs == stamp {
            if current & COUNT_MASK == MAX_BUCKET_COUNT {
                return Added::Counted;
            }
            let count = (current & COUNT_MASK) + n;
            (
                (stamp << COUNT_WIDTH) | count.min(MAX_BUCKET_COUNT),
                Added::Counted,
            )
        } else if current & COUNT_MASK != 0
            && theirs.wrapping_sub(stamp) & STAMP_MASK < 1 << (STAMP_WIDTH - 1)
        {
            // An empty counter holds nothing to protect; a counted one ahead does.
            return Added::Late;
        } else {
            ((stamp << COUNT_WIDTH) | n, Added::Rolled)
        };
        match counter.compare_exchange_weak(current, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return added,
            Err(actual) => current = actual,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::window::test_calls::{F, S};
    use proptest::prelude::*;

    fn c(calls: u32, failures: u32, slow: u32) -> Counts {
        Counts {
            calls,
            failures,
            slow,
        }
    }

    #[test]
    fn buckets_slide_and_old_failures_leave() {
        let w = TimeWindow::new(10, 4);
        let k = Counters::new();
        assert_eq!(w.record(1, F, 0, &k), Some(c(1, 1, 0)));
        // A success in the same bucket needs no check.
        assert_eq!(w.record(1, S, 5, &k), None);
        assert_eq!(w.counts(1, 39, &k), c(2, 1, 0));
        // At tick 40 the first bucket (0..10) has left the window (10..50).
        assert_eq!(w.counts(1, 40, &k), c(0, 0, 0));
        assert_eq!(w.record(1, S, 40, &k), Some(c(1, 0, 0)));
    }

    #[test]
    fn idle_gaps_of_any_length_leave_nothing() {
        let w = TimeWindow::new(1, 10);
        let k = Counters::new();
        assert_eq!(w.record(1, F, 3, &k), Some(c(1, 1, 0)));
        for now in [13, 1 << 20, MAX_TICK_HELD - 20, MAX_TICK_HELD] {
            assert_eq!(w.counts(1, now, &k), c(0, 0, 0), "{now}");
            assert_eq!(w.record(1, F, now, &k), Some(c(1, 1, 0)), "{now}");
        }
        // The clock stands still at its edge: calls accumulate in one bucket, saturating.
        assert_eq!(w.record(1, F, MAX_TICK_HELD, &k), Some(c(2, 2, 0)));
    }

    #[test]
    fn a_new_epoch_empties_the_window_and_late_results_are_dropped() {
        let w = TimeWindow::new(10, 4);
        let k = Counters::new();
        assert_eq!(w.record(1, F, 0, &k), Some(c(1, 1, 0)));
        assert_eq!(w.record(1, F, 15, &k), Some(c(2, 2, 0)));
        assert_eq!(w.record(2, S, 16, &k), Some(c(1, 0, 0)));
        assert_eq!(w.counts(2, 16, &k), c(1, 0, 0));
        // A late epoch-1 result finds its bucket taken by epoch 2.
        assert_eq!(w.record(1, F, 17, &k), None);
        assert_eq!(w.counts(2, 17, &k), c(1, 0, 0));
    }

    #[test]
    fn a_threads_own_count_takes_its_successes_and_moves_with_the_bucket() {
        let w = TimeWindow::new(10, 2);
        let k = Counters::with_slots(1024);
        k.admitted(); // gives this thread an id: below 1024, so a slot of its own
        let local = k.local().expect("this thread has a slot");
        let shared = |index: usize| w.buckets[index].calls.load(Ordering::Relaxed) & COUNT_MASK;
        let mine = || local.word.load(Ordering::Relaxed) & COUNT_MASK;
        // The thread's first call in a bucket goes to the shared count (it starts the
        // bucket) and points the thread's count there.
        assert!(!w.count_own(1, || 0, local));
        assert_eq!(w.record(1, S, 0, &k), Some(c(1, 0, 0)));
        assert!(w.count_own(1, || 3, local));
        assert!(w.count_own(1, || 9, local));
        assert_eq!((shared(0), mine()), (1, 2));
        assert_eq!(w.counts(1, 9, &k), c(3, 0, 0));
        // The next bucket: the thread's count is for the last one, so `record` takes the
        // call, adds the thread's two successes to bucket 0 and points it at bucket 1.
        assert!(!w.count_own(1, || 12, local));
        assert_eq!(w.record(1, F, 12, &k), Some(c(4, 1, 0)));
        assert_eq!((shared(0), shared(1), mine()), (3, 1, 0));
        assert_eq!(local.index.load(Ordering::Relaxed), 1);
        assert!(w.count_own(1, || 19, local));
        assert_eq!(w.counts(1, 19, &k), c(5, 1, 0));
        // At tick 20 bucket 0 leaves; the thread's count (bucket 1) stays to tick 30.
        assert_eq!(w.counts(1, 20, &k), c(2, 1, 0));
        assert_eq!(w.counts(1, 30, &k), c(0, 0, 0));
        // Another epoch's window holds none of it, nor takes the thread's next success.
        assert_eq!(w.counts(2, 19, &k), c(0, 0, 0));
        assert!(!w.count_own(2, || 19, local));
        // Nor does a tick before the bucket's start.
        assert!(!w.count_own(1, || 9, local));
        // A full count of its own sends the thread's successes to the shared count.
        let word = local.word.load(Ordering::Relaxed);
        local.word.store(word | MAX_BUCKET_COUNT, Ordering::Relaxed);
        assert!(!w.count_own(1, || 19, local));
        assert_eq!(w.record(1, S, 19, &k), None);
        assert_eq!((shared(1), mine()), (2, MAX_BUCKET_COUNT));
        // While a rate is pending, every success goes to `record` to be judged.
        local.word.store(word, Ordering::Relaxed);
        w.set_pending(true);
        assert!(!w.count_own(1, || 19, local));
        assert!(!w.count_shared(1, 19));
        w.set_pending(false);
        assert!(w.count_own(1, || 19, local));
        // A thread without a count of its own adds to the bucket's shared count.
        assert!(w.count_shared(1, 19));
        assert_eq!((shared(1), mine()), (3, 2));
    }

    #[test]
    fn counts_saturate_per_bucket() {
        let counter = AtomicU64::new(0);
        assert_eq!(add(&counter, 7, 1), Added::Rolled);
        counter.store(
            (7 << COUNT_WIDTH) | (MAX_BUCKET_COUNT - 1),
            Ordering::Relaxed,
        );
        assert_eq!(add(&counter, 7, 1), Added::Counted);
        assert_eq!(add(&counter, 7, 1), Added::Counted);
        assert_eq!(
            counter.load(Ordering::Relaxed),
            (7 << COUNT_WIDTH) | MAX_BUCKET_COUNT
        );
        assert_eq!(add(&counter, 6, 1), Added::Late);
        assert_eq!(add(&counter, 8, 1), Added::Rolled);
        assert_eq!(counter.load(Ordering::Relaxed), (8 << COUNT_WIDTH) | 1);
        // Several at once, saturating too.
        assert_eq!(add(&counter, 8, 5), Added::Counted);
        assert_eq!(counter.load(Ordering::Relaxed), (8 << COUNT_WIDTH) | 6);
        assert_eq!(add(&counter, 8, MAX_BUCKET_COUNT), Added::Counted);
        assert_eq!(
            counter.load(Ordering::Relaxed),
            (8 << COUNT_WIDTH) | MAX_BUCKET_COUNT
        );
        assert_eq!(add(&counter, 9, 7), Added::Rolled);
        assert_eq!(counter.load(Ordering::Relaxed), (9 << COUNT_WIDTH) | 7);
    }

    #[test]
    fn stamps_wrap_modulo_2_44() {
        let w = TimeWindow::new(1, 4);
        let k = Counters::new();
        let epoch = (STAMP_MASK - 1) / 4; // stamps cross 2^44 within a few ticks
        for now in 0..12 {
            let expected = now.min(3) as u32 + 1;
            assert_eq!(
                w.record(epoch, F, now, &k),
                Some(c(expected, expected, 0)),
                "{now}"
            );
        }
    }

    proptest! {
        /// Sequential use against the plain definition: the calls of the epoch whose
        /// bucket index is within `buckets - 1` of the current one.
        #[test]
        fn matches_the_calls_of_the_last_buckets(
            width in 1u64..20,
            buckets in 1u32..8,
            steps in proptest::collection::vec(
                (any::<bool>(), any::<bool>(), 0u64..40, 0u8..30, 0u8..3), 0..150),
        ) {
            let w = TimeWindow::new(width, buckets);
            let k = Counters::with_slots(1024);
            k.admitted(); // gives this thread an id, and so a slot of its own
            let mut now = 0u64;
            let mut epoch = 1u64;
            let mut history: Vec<(u64, Call)> = Vec::new();
            for (failed, slow, advance, new_epoch, path) in steps {
                now += if advance > 35 { 1_000_000 } else { advance };
                if new_epoch == 0 {
                    epoch += 1;
                    history.clear();
                }
                let call = Call { failed, slow };
                history.push((now, call));
                let current = now / width;
                let in_window: Vec<&Call> = history
                    .iter()
                    .filter(|(t, _)| t / width + buckets as u64 > current)
                    .map(|(_, c)| c)
                    .collect();
                let expected = c(
                    in_window.len() as u32,
                    in_window.iter().filter(|c| c.failed).count() as u32,
                    in_window.iter().filter(|c| c.slow).count() as u32,
                );
                // A success may go by the fast path: the thread's own count (path 1) or
                // the shared bucket's (path 2); what it leaves goes to `record`.
                let counted = call.bits() == 0
                    && match (path, k.local()) {
                        (1, Some(local)) => w.count_own(epoch, || now, local),
                        (2, _) => w.count_shared(epoch, now),
                        _ => false,
                    };
                if counted {
                    prop_assert_eq!(w.counts(epoch, now, &k), expected);
                    continue;
                }
                let got = w.record(epoch, call, now, &k);
                prop_assert_eq!(w.counts(epoch, now, &k), expected);
                if failed || slow {
                    prop_assert_eq!(got, Some(expected));
                }
            }
        }
    }
}
