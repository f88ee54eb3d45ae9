//! The count window: the last `n` calls.
//!
//! A ring of `n` slots, a cursor, and running totals:
//!
//! ```text
//! slot (one AtomicU64 each)          totals (one AtomicU64)
//!  63                    2 1  0        63      48 47    32 31    16 15     0
//! +-----------------------+----+     +----------+-------+--------+--------+
//! |        epoch          |bits|     | slow     |failures| calls |  tag   |
//! +-----------------------+----+     +----------+-------+--------+--------+
//! ```
//!
//! | field (slot)  | bits  | meaning                                                     |
//! |---------------|-------|-------------------------------------------------------------|
//! | `bits`        | 0..2  | bit 0 failed, bit 1 slow                                    |
//! | `epoch`       | 2..64 | the window epoch the call belongs to; another epoch's slot is empty |
//!
//! | field (totals) | bits   | meaning                                                   |
//! |----------------|--------|-----------------------------------------------------------|
//! | `tag`          | 0..16  | the epoch the totals count, modulo 2^16                   |
//! | `calls`        | 16..32 | filled slots, a signed 16-bit count                       |
//! | `failures`     | 32..48 | failed calls in the slots, signed 16-bit                  |
//! | `slow`         | 48..64 | slow calls in the slots, signed 16-bit                    |
//!
//! A call takes the next slot from the cursor (one `fetch_add`; the last call of each lap
//! of `n` takes `n` back off, so the cursor stays below `2n` but for stragglers, and its
//! residue modulo `n` is always the call's ordinal's), and replaces that slot. If the slot already holds the same outcome in the same epoch (the steady
//! state of a healthy dependency: a success replaces a success), nothing else is written.
//! Otherwise the slot is replaced by compare-exchange and the difference is added to the
//! totals. Every slot change is added exactly once, so the totals never drift; they may be
//! ahead of or behind a slot change for a moment (hence signed counts, read clamped at 0).
//!
//! A new epoch empties the window: slots of another epoch count as empty, and the totals
//! are restarted by the first change of the new epoch (their tag is behind). A result from
//! an older epoch never overwrites a newer slot and is dropped by the totals.

use super::{Call, Counts, Padded};
use crate::sync::{AtomicU64, Ordering};

const TAG_WIDTH: u32 = 16;
const COUNT_WIDTH: u32 = 16;
const CALLS_SHIFT: u32 = TAG_WIDTH;
const FAILURES_SHIFT: u32 = CALLS_SHIFT + COUNT_WIDTH;
const SLOW_SHIFT: u32 = FAILURES_SHIFT + COUNT_WIDTH;
const _: () = assert!(SLOW_SHIFT + COUNT_WIDTH == 64);
const TAG_MASK: u64 = (1 << TAG_WIDTH) - 1;
const BITS_WIDTH: u32 = 2;
const BITS_MASK: u64 = (1 << BITS_WIDTH) - 1;

/// Running totals, decoded. Counts are signed: they may run ahead of a slot change for a
/// moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Totals {
    tag: u16,
    calls: i16,
    failures: i16,
    slow: i16,
}

impl Totals {
    fn unpack(w: u64) -> Self {
        Totals {
            tag: (w & TAG_MASK) as u16,
            calls: (w >> CALLS_SHIFT) as u16 as i16,
            failures: (w >> FAILURES_SHIFT) as u16 as i16,
            slow: (w >> SLOW_SHIFT) as u16 as i16,
        }
    }

    fn pack(self) -> u64 {
        self.tag as u64
            | (self.calls as u16 as u64) << CALLS_SHIFT
            | (self.failures as u16 as u64) << FAILURES_SHIFT
            | (self.slow as u16 as u64) << SLOW_SHIFT
    }

    fn counts(self) -> Counts {
        Counts {
            calls: self.calls.max(0) as u32,
            failures: self.failures.max(0) as u32,
            slow: self.slow.max(0) as u32,
        }
    }
}

/// The totals tag of `epoch`.
fn tag(epoch: u64) -> u16 {
    (epoch & TAG_MASK) as u16
}

/// A change to the totals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Delta {
    calls: i16,
    failures: i16,
    slow: i16,
}

pub(crate) struct CountWindow {
    cursor: Padded<AtomicU64>,
    totals: Padded<AtomicU64>,
    slots: Box<[AtomicU64]>,
}

impl std::fmt::Debug for CountWindow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CountWindow")
            .field("size", &self.slots.len())
            .finish_non_exhaustive()
    }
}

impl CountWindow {
    /// A window of the last `size` calls (`1..=MAX_WINDOW_CALLS`, checked by the builder;
    /// 0 is taken as 1).
    pub(crate) fn new(size: u32) -> Self {
        let size = size.max(1) as usize;
        CountWindow {
            cursor: Padded(AtomicU64::new(0)),
            // Tag of epoch 1, the first.
            totals: Padded(AtomicU64::new(1)),
            slots: (0..size).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Records one call in `epoch`. Returns the new counts if they changed, `None` if they
    /// did not (or the call belongs to a past epoch).
    #[inline]
    pub(crate) fn record(&self, epoch: u64, call: Call) -> Option<Counts> {
        self.record_at(self.next_index(), epoch, call)
    }

    /// Takes the next slot for `call` in `epoch`: `Ok(())` if the slot already holds that
    /// result (nothing to change, nothing written but the cursor), or the slot's index for
    /// [`record_at`](Self::record_at) to finish with.
    #[inline]
    pub(crate) fn claim(&self, epoch: u64, call: Call) -> Result<(), usize> {
        let index = self.next_index();
        let new = (epoch << BITS_WIDTH) | call.bits();
        match self.slots.get(index) {
            Some(slot) if slot.load(Ordering::Relaxed) != new => Err(index),
            _ => Ok(()),
        }
    }

    /// Records one call in `epoch` in the slot at `index`, taken from the cursor.
    #[inline]
    pub(crate) fn record_at(&self, index: usize, epoch: u64, call: Call) -> Option<Counts> {
        let slot = self.slots.get(index)?;
        let new = (epoch << BITS_WIDTH) | call.bits();
        let old = slot.load(Ordering::Relaxed);
        if old == new {
            return None;
        }
        self.replace(slot, old, new, epoch, call)
    }

    /// Takes the next slot index: one `fetch_add` on the cursor, whose value is the call's
    /// ordinal minus a multiple of `n`, so its residue modulo `n` is the ordinal's. Below
    /// `n - 1` (all but one call in `n`, sequentially) it is the index itself: no division.
    #[inline]
    fn next_index(&self) -> usize {
        let last = self.slots.len() as u64 - 1;
        let c = self.cursor.0.fetch_add(1, Ordering::Relaxed);
        if c < last {
            return c as usize;
        }
        self.wrap(c, last + 1)
    }

    /// The index of cursor value `c >= n - 1`. The call whose residue is `n - 1`, the last
    /// of its lap, takes `n` back off the cursor (it never goes below zero: the lap's `n`
    /// calls have been counted), keeping it small. Values past `n` (calls that came
    /// before that subtraction landed) take their residue.
    #[cold]
    #[inline(never)]
    fn wrap(&self, c: u64, n: u64) -> usize {
        let index = c % n;
        if index == n - 1 {
            self.cursor.0.fetch_sub(n, Ordering::Relaxed);
        }
        index as usize
    }

    #[inline(never)]
    fn replace(
        &self,
        slot: &AtomicU64,
        mut old: u64,
        new: u64,
        epoch: u64,
        call: Call,
    ) -> Option<Counts> {
        loop {
            if old == new {
                return None;
            }
            if old >> BITS_WIDTH > epoch {
                // A newer epoch owns the slot: this result is stale.
                return None;
            }
            match slot.compare_exchange_weak(old, new, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => break,
                Err(actual) => old = actual,
            }
        }
        let bits = call.bits();
        let delta = if old >> BITS_WIDTH == epoch {
            let was = old & BITS_MASK;
            Delta {
                calls: 0,
                failures: (bits & Call::FAILED) as i16 - (was & Call::FAILED) as i16,
                slow: ((bits & Call::SLOW) >> 1) as i16 - ((was & Call::SLOW) >> 1) as i16,
            }
        } else {
            Delta {
                calls: 1,
                failures: (bits & Call::FAILED) as i16,
                slow: ((bits & Call::SLOW) >> 1) as i16,
            }
        };
        self.apply(epoch, delta)
    }

    /// Adds `delta` to the totals of `epoch`: restarts them if they count an older epoch,
    /// drops the delta if they count a newer one.
    fn apply(&self, epoch: u64, delta: Delta) -> Option<Counts> {
        let tag = tag(epoch);
        let mut current = self.totals.0.load(Ordering::Relaxed);
        loop {
            let t = Totals::unpack(current);
            let base = if t.tag == tag {
                t
            } else if (tag.wrapping_sub(t.tag) as i16) > 0 {
                Totals {
                    tag,
                    calls: 0,
                    failures: 0,
                    slow: 0,
                }
            } else {
                return None;
            };
            let next = Totals {
                tag,
                calls: base.calls.wrapping_add(delta.calls),
                failures: base.failures.wrapping_add(delta.failures),
                slow: base.slow.wrapping_add(delta.slow),
            };
            match self.totals.0.compare_exchange_weak(
                current,
                next.pack(),
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Some(next.counts()),
                Err(actual) => current = actual,
            }
        }
    }

    /// The counts of `epoch` (zero if the totals count another epoch).
    pub(crate) fn counts(&self, epoch: u64) -> Counts {
        let t = Totals::unpack(self.totals.0.load(Ordering::Relaxed));
        if t.tag == tag(epoch) {
            t.counts()
        } else {
            Counts::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::window::test_calls::{F, S, SLOW};
    use proptest::prelude::*;

    fn c(calls: u32, failures: u32, slow: u32) -> Counts {
        Counts {
            calls,
            failures,
            slow,
        }
    }

    #[test]
    fn totals_round_trip_signed_counts() {
        for t in [
            Totals {
                tag: 0,
                calls: 0,
                failures: 0,
                slow: 0,
            },
            Totals {
                tag: u16::MAX,
                calls: -1,
                failures: i16::MAX,
                slow: i16::MIN,
            },
            Totals {
                tag: 7,
                calls: 16_384,
                failures: -3,
                slow: 2,
            },
        ] {
            assert_eq!(Totals::unpack(t.pack()), t);
        }
        let negative = Totals {
            tag: 1,
            calls: 2,
            failures: -1,
            slow: -2,
        };
        assert_eq!(negative.counts(), c(2, 0, 0));
    }

    #[test]
    fn an_old_failure_leaves_the_window() {
        let w = CountWindow::new(3);
        assert_eq!(w.record(1, F), Some(c(1, 1, 0)));
        assert_eq!(w.record(1, S), Some(c(2, 1, 0)));
        assert_eq!(w.record(1, S), Some(c(3, 1, 0)));
        // The failure is three calls back: the next success pushes it out.
        assert_eq!(w.record(1, S), Some(c(3, 0, 0)));
        // A success replacing a success changes nothing and writes nothing.
        assert_eq!(w.record(1, S), None);
        assert_eq!(w.counts(1), c(3, 0, 0));
        assert_eq!(w.record(1, SLOW), Some(c(3, 0, 1)));
    }

    #[test]
    fn a_new_epoch_starts_empty_and_old_results_are_dropped() {
        let w = CountWindow::new(2);
        assert_eq!(w.record(1, F), Some(c(1, 1, 0)));
        assert_eq!(w.record(1, F), Some(c(2, 2, 0)));
        assert_eq!(w.record(2, S), Some(c(1, 0, 0)));
        assert_eq!(w.counts(1), c(0, 0, 0));
        // A late result of epoch 1 does not overwrite epoch 2's slot, nor count.
        assert_eq!(w.record(1, F), None);
        assert_eq!(w.counts(2), c(1, 0, 0));
        // It may take a slot epoch 2 has not reached, but is not counted there.
        let w = CountWindow::new(4);
        assert_eq!(w.record(2, S), Some(c(1, 0, 0)));
        assert_eq!(w.record(1, F), None);
        assert_eq!(w.counts(2), c(1, 0, 0));
        assert_eq!(w.record(2, F), Some(c(2, 1, 0)));
    }

    #[test]
    fn totals_tags_wrap_without_confusion() {
        let w = CountWindow::new(2);
        let e = (1u64 << 16) - 1;
        // Epochs move one at a time; walk them up to the edge of the tag.
        for epoch in 1..e {
            assert_eq!(w.record(epoch, S), Some(c(1, 0, 0)));
        }
        assert_eq!(w.record(e, F), Some(c(1, 1, 0)));
        // The next epoch's tag wraps to 0, which is ahead of 0xffff.
        assert_eq!(w.record(e + 1, F), Some(c(1, 1, 0)));
        assert_eq!(w.counts(e + 1), c(1, 1, 0));
        assert_eq!(w.counts(e), c(0, 0, 0));
    }

    #[test]
    fn the_cursor_walks_the_ring_and_takes_each_lap_back_off() {
        for n in [1u32, 2, 3, 7] {
            let w = CountWindow::new(n);
            for ordinal in 0..5 * n as u64 {
                assert_eq!(w.next_index() as u64, ordinal % n as u64, "n {n}");
                // The lap's last call took the lap back off: the cursor stays on the ring.
                assert_eq!(w.cursor.0.load(Ordering::Relaxed), (ordinal + 1) % n as u64);
            }
        }
    }

    #[test]
    fn stragglers_past_the_lap_take_their_residue() {
        // Calls that took the cursor past `n` before the lap's last call took `n` back off
        // (under concurrency): each takes its ordinal's residue, and only a lap's last
        // call subtracts, once per lap.
        let w = CountWindow::new(3);
        w.cursor.0.store(8, Ordering::Relaxed);
        assert_eq!(w.wrap(3, 3), 0);
        assert_eq!(w.wrap(4, 3), 1);
        assert_eq!(w.cursor.0.load(Ordering::Relaxed), 8);
        assert_eq!(w.wrap(5, 3), 2);
        assert_eq!(w.cursor.0.load(Ordering::Relaxed), 5);
        assert_eq!(w.wrap(2, 3), 2);
        assert_eq!(w.cursor.0.load(Ordering::Relaxed), 2);
        assert_eq!(w.next_index(), 2);
        assert_eq!(w.cursor.0.load(Ordering::Relaxed), 0);
        assert_eq!(w.next_index(), 0);
    }

    #[test]
    fn a_claim_settles_only_a_result_the_slot_already_holds() {
        let w = CountWindow::new(2);
        // Empty slots: each claim leaves its slot to `record_at`.
        assert_eq!(w.claim(1, S), Err(0));
        assert_eq!(w.record_at(0, 1, S), Some(c(1, 0, 0)));
        assert_eq!(w.claim(1, F), Err(1));
        assert_eq!(w.record_at(1, 1, F), Some(c(2, 1, 0)));
        // Slot 0 holds a success of epoch 1: a success is settled by the claim.
        assert_eq!(w.claim(1, S), Ok(()));
        assert_eq!(w.counts(1), c(2, 1, 0));
        // Slot 1 holds a failure: a success is not.
        assert_eq!(w.claim(1, S), Err(1));
        assert_eq!(w.record_at(1, 1, S), Some(c(2, 0, 0)));
        // Slot 0 holds epoch 1's success: epoch 2's success is not the same result.
        assert_eq!(w.claim(2, S), Err(0));
        assert_eq!(w.record_at(0, 2, S), Some(c(1, 0, 0)));
        assert_eq!(w.counts(2), c(1, 0, 0));
    }

    proptest! {
        /// Sequential use against the plain definition: the last `n` calls of the epoch.
        #[test]
        fn matches_the_last_n_calls(
            n in 1u32..12,
            calls in proptest::collection::vec((any::<bool>(), any::<bool>(), 0u8..20), 0..200),
        ) {
            let w = CountWindow::new(n);
            let mut epoch = 1u64;
            let mut history: Vec<Call> = Vec::new();
            for (failed, slow, new_epoch) in calls {
                if new_epoch == 0 {
                    epoch += 1;
                    history.clear();
                }
                let call = Call { failed, slow };
                let before = w.counts(epoch);
                history.push(call);
                let last = &history[history.len().saturating_sub(n as usize)..];
                let expected = c(
                    last.len() as u32,
                    last.iter().filter(|c| c.failed).count() as u32,
                    last.iter().filter(|c| c.slow).count() as u32,
                );
                let got = w.record(epoch, call);
                prop_assert_eq!(w.counts(epoch), expected);
                if expected != before {
                    prop_assert_eq!(got, Some(expected));
                } else {
                    prop_assert!(got.is_none() || got == Some(expected));
                }
            }
        }
    }
}
