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

use super::{Call, Counts, Padded};
use crate::sync::{AtomicU64, Ordering};

const COUNT_WIDTH: u32 = 20;
const STAMP_WIDTH: u32 = 64 - COUNT_WIDTH;
const COUNT_MASK: u64 = (1 << COUNT_WIDTH) - 1;
const STAMP_MASK: u64 = (1 << STAMP_WIDTH) - 1;
/// Counts saturate here.
pub(crate) const MAX_BUCKET_COUNT: u64 = COUNT_MASK;
const _: () = assert!(crate::state::MAX_TICK < 1 << (STAMP_WIDTH - 1));

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
// `tick / width` is at most `MAX_TICK`: it fits above the index and the pending bit.
const _: () = assert!(crate::state::MAX_TICK < 1 << (64 - HINT_TINDEX_SHIFT));

/// Where a call at a given tick goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Located {
    stamp: u64,
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
        let (tindex, index) = if now >= start && now - start < self.width {
            (tindex, hint & HINT_INDEX_MASK)
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
            (tindex, index)
        };
        Located {
            stamp: epoch.wrapping_mul(self.len()).wrapping_add(tindex) & STAMP_MASK,
            index: index as usize,
            pending: hint & HINT_PENDING != 0,
        }
    }

    /// Counts a success at tick `now` in `epoch` if that is all there is to do: the bucket
    /// already holds this stamp, and no rate is pending on the minimum volume. Two loads
    /// and one compare-exchange, tried once (none if the bucket is full: the count
    /// saturates); `false` (nothing done) leaves the call to [`record`](Self::record).
    #[inline]
    pub(crate) fn count_success(&self, epoch: u64, now: u64) -> bool {
        let at = self.locate(epoch, now);
        let Some(bucket) = self.buckets.get(at.index) else {
            return false;
        };
        let current = bucket.calls.load(Ordering::Relaxed);
        !at.pending
            && current >> COUNT_WIDTH == at.stamp
            && (current & COUNT_MASK == MAX_BUCKET_COUNT
                || bucket
                    .calls
                    .compare_exchange(current, current + 1, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok())
    }

    /// Records one call at tick `now` in `epoch`. Returns the window's counts when they
    /// may have crossed a threshold: the call failed or was slow, started a new bucket
    /// (older calls may have left), or a rate was pending on the minimum volume.
    #[inline]
    pub(crate) fn record(&self, epoch: u64, call: Call, now: u64) -> Option<Counts> {
        let at = self.locate(epoch, now);
        let bucket = self.buckets.get(at.index)?;
        let added = add(&bucket.calls, at.stamp);
        if added == Added::Late {
            return None;
        }
        if call.failed {
            add(&bucket.failures, at.stamp);
        }
        if call.slow {
            add(&bucket.slow, at.stamp);
        }
        if added == Added::Rolled || call.bits() != 0 || at.pending {
            Some(self.sum(at.stamp))
        } else {
            None
        }
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
    pub(crate) fn counts(&self, epoch: u64, now: u64) -> Counts {
        self.sum(self.locate(epoch, now).stamp)
    }

    /// Sums the counters whose stamps are within the window ending at `stamp`.
    fn sum(&self, stamp: u64) -> Counts {
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
        let mut c = Counts::default();
        for b in self.buckets.iter() {
            c.calls += read(&b.calls);
            c.failures += read(&b.failures);
            c.slow += read(&b.slow);
        }
        c
    }
}

/// Counts one event at `stamp` in `counter`.
#[inline]
fn add(counter: &AtomicU64, stamp: u64) -> Added {
    let mut current = counter.load(Ordering::Relaxed);
    loop {
        let theirs = current >> COUNT_WIDTH;
        let (next, added) = if theirs == stamp {
            if current & COUNT_MASK == MAX_BUCKET_COUNT {
                return Added::Counted;
            }
            (current + 1, Added::Counted)
        } else if current & COUNT_MASK != 0
            && theirs.wrapping_sub(stamp) & STAMP_MASK < 1 << (STAMP_WIDTH - 1)
        {
            // An empty counter holds nothing to protect; a counted one ahead does.
            return Added::Late;
        } else {
            ((stamp << COUNT_WIDTH) | 1, Added::Rolled)
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
    use proptest::prelude::*;

    const F: Call = Call {
        failed: true,
        slow: false,
    };
    const S: Call = Call {
        failed: false,
        slow: false,
    };

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
        assert_eq!(w.record(1, F, 0), Some(c(1, 1, 0)));
        // A success in the same bucket needs no check.
        assert_eq!(w.record(1, S, 5), None);
        assert_eq!(w.counts(1, 39), c(2, 1, 0));
        // At tick 40 the first bucket (0..10) has left the window (10..50).
        assert_eq!(w.counts(1, 40), c(0, 0, 0));
        assert_eq!(w.record(1, S, 40), Some(c(1, 0, 0)));
    }

    #[test]
    fn idle_gaps_of_any_length_leave_nothing() {
        let w = TimeWindow::new(1, 10);
        assert_eq!(w.record(1, F, 3), Some(c(1, 1, 0)));
        for now in [
            13,
            1 << 20,
            crate::state::MAX_TICK - 20,
            crate::state::MAX_TICK,
        ] {
            assert_eq!(w.counts(1, now), c(0, 0, 0), "{now}");
            assert_eq!(w.record(1, F, now), Some(c(1, 1, 0)), "{now}");
        }
        // The clock stands still at its edge: calls accumulate in one bucket, saturating.
        assert_eq!(w.record(1, F, crate::state::MAX_TICK), Some(c(2, 2, 0)));
    }

    #[test]
    fn a_new_epoch_empties_the_window_and_late_results_are_dropped() {
        let w = TimeWindow::new(10, 4);
        assert_eq!(w.record(1, F, 0), Some(c(1, 1, 0)));
        assert_eq!(w.record(1, F, 15), Some(c(2, 2, 0)));
        assert_eq!(w.record(2, S, 16), Some(c(1, 0, 0)));
        assert_eq!(w.counts(2, 16), c(1, 0, 0));
        // A late epoch-1 result finds its bucket taken by epoch 2.
        assert_eq!(w.record(1, F, 17), None);
        assert_eq!(w.counts(2, 17), c(1, 0, 0));
    }

    #[test]
    fn counts_saturate_per_bucket() {
        let counter = AtomicU64::new(0);
        assert_eq!(add(&counter, 7), Added::Rolled);
        counter.store(
            (7 << COUNT_WIDTH) | (MAX_BUCKET_COUNT - 1),
            Ordering::Relaxed,
        );
        assert_eq!(add(&counter, 7), Added::Counted);
        assert_eq!(add(&counter, 7), Added::Counted);
        assert_eq!(
            counter.load(Ordering::Relaxed),
            (7 << COUNT_WIDTH) | MAX_BUCKET_COUNT
        );
        assert_eq!(add(&counter, 6), Added::Late);
        assert_eq!(add(&counter, 8), Added::Rolled);
        assert_eq!(counter.load(Ordering::Relaxed), (8 << COUNT_WIDTH) | 1);
    }

    #[test]
    fn stamps_wrap_modulo_2_44() {
        let w = TimeWindow::new(1, 4);
        let epoch = (STAMP_MASK - 1) / 4; // stamps cross 2^44 within a few ticks
        for now in 0..12 {
            let expected = now.min(3) as u32 + 1;
            assert_eq!(
                w.record(epoch, F, now),
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
                (any::<bool>(), any::<bool>(), 0u64..40, 0u8..30), 0..150),
        ) {
            let w = TimeWindow::new(width, buckets);
                let mut now = 0u64;
            let mut epoch = 1u64;
            let mut history: Vec<(u64, Call)> = Vec::new();
            for (failed, slow, advance, new_epoch) in steps {
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
                let got = w.record(epoch, call, now);
                prop_assert_eq!(w.counts(epoch, now), expected);
                if failed || slow {
                    prop_assert_eq!(got, Some(expected));
                }
            }
        }
    }
}
