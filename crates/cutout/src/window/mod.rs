//! Rate policies: trip on the failure rate or the slow-call rate of the recent calls.
//!
//! Besides consecutive failures, a breaker can watch a *sliding window* of recent calls and
//! trip when, once the window holds at least `minimum_calls` calls,
//!
//! * the share of failures reaches the [failure rate](crate::Builder::failure_rate)
//!   threshold, or
//! * the share of calls slower than a duration reaches the
//!   [slow-call rate](crate::Builder::slow_call_rate) threshold.
//!
//! Every configured policy is checked; the first that says so trips the circuit, through
//! the same compare-exchange as any other transition, so a trip happens once and its
//! listener is called once. A rate *equal* to its threshold trips. Thresholds are kept to
//! millionths and compared in integers (`failures * 1_000_000 >= threshold * calls`), so
//! `0.3` with 10 calls trips at exactly 3 failures.
//!
//! ```
//! use cutout::{Cause, CircuitBreaker, ManualClock, Outcome, SlidingWindow, State};
//! use std::sync::{Arc, Mutex};
//!
//! let causes = Arc::new(Mutex::new(Vec::new()));
//! let log = causes.clone();
//! let breaker = CircuitBreaker::builder()
//!     .failure_threshold(100) // consecutive failures alone would not trip here
//!     .sliding_window(SlidingWindow::Calls(10))
//!     .failure_rate(0.5)
//!     .minimum_calls(10)
//!     .on_transition(move |t| log.lock().unwrap().push(t.cause))
//!     .build_with_clock(ManualClock::new())?;
//! for i in 0..10 {
//!     let outcome = if i % 2 == 0 { Outcome::Failure } else { Outcome::Success };
//!     breaker.try_acquire()?.record(outcome);
//! }
//! assert_eq!(breaker.state(), State::Open);
//! assert_eq!(*causes.lock().unwrap(), [Cause::FailureRate { failures: 5, calls: 10 }]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # The windows
//!
//! * [`SlidingWindow::Calls(n)`](SlidingWindow::Calls): the last `n` calls, a ring of `n`
//!   slots and running totals. Exact in sequential use: the call that falls out of the
//!   window is the one `n` calls back. A call that leaves the window takes its failure
//!   with it.
//! * [`SlidingWindow::Time { span, buckets }`](SlidingWindow::Time): the calls of the last
//!   `span`, in `buckets` buckets of `span / buckets` each (rounded up to whole
//!   milliseconds). The window is the current bucket and the `buckets - 1` before it, so it
//!   covers between `span - span / buckets` and `span` of history. A bucket is recognised
//!   as stale by the time stamp it carries and is reset by the first call that lands in it,
//!   so an idle gap of any length (years, or the clock's saturation after 34.8 years)
//!   leaves nothing behind. Each bucket counts at most 1,048,575 calls, failures and slow
//!   calls (the counts saturate there): use more buckets for heavier traffic.
//!
//! Both are lock-free, cost O(1) per call (the time window sums its buckets only when a
//! call fails, is slow, starts a new bucket, or the rate was already at its threshold
//! below the minimum volume), and use memory fixed by the configuration: 8 bytes a slot,
//! 24 bytes a bucket and a few cache lines besides, never more with traffic (a breaker
//! without a rate policy pays one pointer). In the steady state of a healthy dependency, a
//! count window costs one `fetch_add` per call (its cursor) and two loads, with no clock
//! read, and a time window the clock read and a plain store: each thread counts its
//! successes in the current bucket in its own slot of the breaker's per-thread counters
//! (which are there anyway), and adds them to the bucket's shared count when it moves on
//! to the next bucket. A time window's sum reads the buckets and the slots of the threads
//! that have used the window.
//!
//! # What is counted
//!
//! The window is fed only by calls admitted while the circuit is closed, whose permit is of
//! the current generation, and that end in [`Success`](crate::Outcome::Success) or
//! [`Failure`](crate::Outcome::Failure); ignored calls, half-open probes, calls made while
//! forced closed and stale results are not counted. The window starts empty each time the
//! circuit closes (and on [`reset`](crate::CircuitBreaker::reset)): the first call of a
//! new closed period clears it, lazily, by moving it to a new epoch.
//!
//! # Exactness under concurrency
//!
//! Sequentially, both windows are exact (the tests check them call by call against a
//! reference model). Under concurrency:
//!
//! * the count window's running totals never drift (every slot change is applied to them
//!   exactly once), but when two calls `n` positions apart finish at once, the older may
//!   land last and stay in the window in place of the newer;
//! * in the time window, a call that finishes as its bucket is being rolled over may be
//!   counted in the next bucket or dropped, and a sum racing a thread's move to the next
//!   bucket may count that thread's successes in the last bucket twice, for a moment
//!   (never less than once);
//! * a result that was in flight when the circuit closed and reopened may be dropped, or be
//!   counted in the new closed period's window.
//!
//! Tags are kept in fixed widths: a count-window result delayed across 32,768 window
//! epochs (closes and resets) between two of its steps, or a time-window bucket untouched
//! for 2^44 bucket widths plus epochs, could be taken as current. Like the core's
//! generation wrap, neither happens without a call hanging through that many cycles.

mod count;
mod time;

pub(crate) use time::MAX_TICK_HELD;

use std::fmt;
use std::time::Duration;

use crate::counters::{Counters, LocalCount};
use crate::outcome::Cause;
use crate::sync::{AtomicU64, Ordering};

pub(crate) use count::CountWindow;
pub(crate) use time::TimeWindow;

/// The calls a rate is measured over; see [the module docs](crate::window).
///
/// ```
/// use cutout::{CircuitBreaker, SlidingWindow};
/// use std::time::Duration;
///
/// let by_calls = CircuitBreaker::builder()
///     .sliding_window(SlidingWindow::Calls(100))
///     .failure_rate(0.5)
///     .build()?;
/// let by_time = CircuitBreaker::builder()
///     .sliding_window(SlidingWindow::Time { span: Duration::from_secs(10), buckets: 10 })
///     .failure_rate(0.5)
///     .minimum_calls(50)
///     .build()?;
/// # Ok::<(), cutout::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SlidingWindow {
    /// The last `n` calls (1 to [`MAX_WINDOW_CALLS`]).
    Calls(u32),
    /// The calls of the last `span`, kept in `buckets` buckets (1 to [`MAX_WINDOW_BUCKETS`],
    /// each at least one millisecond wide).
    Time {
        /// How far back the window reaches.
        span: Duration,
        /// How many buckets the span is cut into: more buckets slide more smoothly.
        buckets: u32,
    },
}

impl Default for SlidingWindow {
    /// The last 100 calls.
    fn default() -> Self {
        SlidingWindow::Calls(100)
    }
}

/// The largest count window: the running totals keep 16-bit signed counts.
pub const MAX_WINDOW_CALLS: u32 = 1 << 14;
/// The most buckets a time window may have.
pub const MAX_WINDOW_BUCKETS: u32 = 1 << 12;
/// The minimum volume used when none is set: 20 calls, or the whole window if a count
/// window is smaller.
pub const DEFAULT_MINIMUM_CALLS: u32 = 20;

/// The counts in a breaker's window, from
/// [`CircuitBreaker::window_stats`](crate::CircuitBreaker::window_stats).
///
/// ```
/// use cutout::{CircuitBreaker, ManualClock, Outcome, SlidingWindow, WindowStats};
///
/// let breaker = CircuitBreaker::builder()
///     .sliding_window(SlidingWindow::Calls(4))
///     .failure_rate(0.9)
///     .build_with_clock(ManualClock::new())?;
/// for outcome in [Outcome::Failure, Outcome::Success, Outcome::Success] {
///     breaker.try_acquire()?.record(outcome);
/// }
/// let w = breaker.window_stats().unwrap();
/// assert_eq!((w.calls, w.failures, w.slow), (3, 1, 0));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct WindowStats {
    /// Calls in the window.
    pub calls: u32,
    /// Failures among them.
    pub failures: u32,
    /// Calls among them slower than the slow-call threshold.
    pub slow: u32,
}

/// Counts read from a window (sequentially exact; see the module docs under concurrency).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) calls: u32,
    pub(crate) failures: u32,
    pub(crate) slow: u32,
}

impl From<Counts> for WindowStats {
    fn from(c: Counts) -> Self {
        WindowStats {
            calls: c.calls,
            failures: c.failures,
            slow: c.slow,
        }
    }
}

/// One finished call, as the window sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Call {
    pub(crate) failed: bool,
    pub(crate) slow: bool,
}

impl Call {
    const FAILED: u64 = 1;
    const SLOW: u64 = 2;

    #[inline]
    pub(crate) fn bits(self) -> u64 {
        ((self.failed as u64) * Self::FAILED) | ((self.slow as u64) * Self::SLOW)
    }
}

/// A threshold in millionths: `ratio` rounded to the nearest millionth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ppm(pub(crate) u32);

impl Ppm {
    pub(crate) const ONE: u64 = 1_000_000;

    /// `None` unless `ratio` is a number in `(0, 1]` that rounds to at least one millionth.
    pub(crate) fn from_ratio(ratio: f64) -> Option<Ppm> {
        if !(ratio > 0.0 && ratio <= 1.0) {
            return None;
        }
        let ppm = (ratio * Self::ONE as f64).round();
        (ppm >= 1.0).then_some(Ppm(ppm as u32))
    }

    /// Whether `part / whole` is at least this threshold (`whole > 0`).
    #[inline]
    pub(crate) fn reached(self, part: u32, whole: u32) -> bool {
        part as u64 * Self::ONE >= self.0 as u64 * whole as u64
    }

    /// The fewest of `whole` that reach this threshold: `ceil(threshold * whole)`.
    pub(crate) fn needed(self, whole: u32) -> u32 {
        (self.0 as u64 * whole as u64).div_ceil(Self::ONE) as u32
    }
}

/// The shape of a window, in ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    Calls(u32),
    Time { width_ticks: u64, buckets: u32 },
}

/// Everything a breaker needs to keep and judge its window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WindowPolicy {
    pub(crate) shape: Shape,
    pub(crate) failure_rate: Option<Ppm>,
    pub(crate) slow_rate: Option<Ppm>,
    /// Calls slower than this (strictly) are slow.
    pub(crate) slow_threshold: Duration,
    pub(crate) minimum_calls: u32,
}

/// What the window's counts say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Trip, for this cause.
    Trip(Cause),
    /// A rate is at its threshold, but the window has fewer calls than the minimum.
    Pending,
    /// Every rate is below its threshold.
    Below,
}

impl WindowPolicy {
    /// Judge `c` (failures and slow calls are cut to `calls`, which concurrency may leave
    /// behind for a moment).
    pub(crate) fn judge(&self, c: Counts) -> Verdict {
        if c.calls == 0 {
            return Verdict::Below;
        }
        let failures = c.failures.min(c.calls);
        let slow = c.slow.min(c.calls);
        let failing = self
            .failure_rate
            .is_some_and(|t| t.reached(failures, c.calls));
        let slowing = self.slow_rate.is_some_and(|t| t.reached(slow, c.calls));
        if !(failing || slowing) {
            Verdict::Below
        } else if c.calls < self.minimum_calls {
            Verdict::Pending
        } else if failing {
            Verdict::Trip(Cause::FailureRate {
                failures,
                calls: c.calls,
            })
        } else {
            Verdict::Trip(Cause::SlowCallRate {
                slow,
                calls: c.calls,
            })
        }
    }

    /// Whether the window needs the time of each call.
    pub(crate) fn needs_time(&self) -> bool {
        matches!(self.shape, Shape::Time { .. })
    }

    /// Whether calls must be timed.
    pub(crate) fn times_calls(&self) -> bool {
        self.slow_rate.is_some()
    }
}

/// A breaker's window: the policy and the counters.
pub(crate) struct Window {
    pub(crate) policy: WindowPolicy,
    /// No slow-call rate: [`claim`](Window::claim) can settle a call from its outcome
    /// alone.
    quick: bool,
    control: Control,
    kind: Kind,
}

/// What [`Window::claim`] did with a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Claim {
    /// Recorded: a count window's slot already held the same result, so no count
    /// changed, or a time window counted the success in its current bucket.
    Done,
    /// The count window's slot at `index` is the call's, in `epoch`: [`Window::record`]
    /// finishes the call there.
    Slot { epoch: u64, index: usize },
    /// Nothing done: [`Window::record`] does it all.
    Nothing,
}

enum Kind {
    Calls(CountWindow),
    Time(TimeWindow),
}

impl fmt::Debug for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Window")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl Window {
    pub(crate) fn new(policy: WindowPolicy) -> Self {
        let kind = match policy.shape {
            Shape::Calls(n) => Kind::Calls(CountWindow::new(n)),
            Shape::Time {
                width_ticks,
                buckets,
            } => Kind::Time(TimeWindow::new(width_ticks, buckets)),
        };
        Window {
            quick: policy.slow_rate.is_none(),
            policy,
            control: Control::new(),
            kind,
        }
    }

    /// The fast path of a call of `generation` that `failed` or not, finished at tick
    /// `now()` (read only by a time window). Without a slow-call rate:
    ///
    /// * a count window takes the call's slot, and settles the call there if the slot
    ///   already holds the same result (the steady state: a success replaces a success):
    ///   one load of the epoch, the cursor's `fetch_add` and one load of the slot, no clock;
    /// * a time window settles a success that lands in the bucket the last call found
    ///   current, when no rate waits on the minimum volume: the clock, the hint, and a
    ///   plain increment of the thread's own count in `counters` (a compare-exchange of
    ///   the bucket's count for a thread without one).
    ///
    /// Everything else (a window on another generation, a failure in a time window, a
    /// bucket to roll, a lost race) is left to [`record`](Self::record).
    #[inline]
    pub(crate) fn claim(
        &self,
        generation: u16,
        failed: bool,
        now: impl FnOnce() -> u64,
        counters: &Counters,
    ) -> Claim {
        if !self.quick {
            return Claim::Nothing;
        }
        let Some(epoch) = self.control.peek(generation) else {
            return Claim::Nothing;
        };
        match &self.kind {
            Kind::Calls(w) => Self::claim_slot(w, epoch, failed),
            Kind::Time(w) if !failed => {
                let counted = match counters.local() {
                    Some(local) => w.count_own(epoch, now, local),
                    None => w.count_shared(epoch, now()),
                };
                if counted { Claim::Done } else { Claim::Nothing }
            }
            Kind::Time(_) => Claim::Nothing,
        }
    }

    /// [`claim`](Self::claim) of a success in a time window by a thread with a count of
    /// its own (`local`), for the closed path: small enough to inline; `false` for
    /// anything else.
    #[inline(always)]
    pub(crate) fn claim_own_success(
        &self,
        generation: u16,
        now: impl FnOnce() -> u64,
        local: &LocalCount,
    ) -> bool {
        let Kind::Time(w) = &self.kind else {
            return false;
        };
        self.quick
            && match self.control.peek(generation) {
                Some(epoch) => w.count_own(epoch, now, local),
                None => false,
            }
    }

    /// [`claim`](Self::claim) for a count window only (no clock, small enough to inline
    /// on the closed path); `Claim::Nothing` for a time window.
    #[inline]
    pub(crate) fn claim_count(&self, generation: u16, failed: bool) -> Claim {
        let Kind::Calls(w) = &self.kind else {
            return Claim::Nothing;
        };
        if !self.quick {
            return Claim::Nothing;
        }
        match self.control.peek(generation) {
            Some(epoch) => Self::claim_slot(w, epoch, failed),
            None => Claim::Nothing,
        }
    }

    #[inline]
    fn claim_slot(w: &CountWindow, epoch: u64, failed: bool) -> Claim {
        let call = Call {
            failed,
            slow: false,
        };
        match w.claim(epoch, call) {
            Ok(()) => Claim::Done,
            Err(index) => Claim::Slot { epoch, index },
        }
    }

    /// Feed one call of a closed period of `generation`, finished at tick `now` (read only
    /// by time windows), after [`claim`](Self::claim) left it `claimed` (`Claim::Nothing`
    /// if it was not asked). `still_current` says whether `generation` is still the
    /// breaker's closed generation; it is asked before the window moves to a new epoch.
    /// Returns the cause to trip for, if `judge` (the breaker's live rates, read after the
    /// count landed) says so of the counts.
    #[inline]
    #[expect(
        clippy::too_many_arguments,
        reason = "the call path's inputs, passed in registers; a struct would be built per call"
    )]
    pub(crate) fn record(
        &self,
        generation: u16,
        call: Call,
        now: u64,
        claimed: Claim,
        counters: &Counters,
        judge: impl FnOnce(Counts) -> Verdict,
        still_current: impl Fn() -> bool,
    ) -> Option<Cause> {
        let counts = match (claimed, &self.kind) {
            (Claim::Done, _) => return None,
            (Claim::Slot { epoch, index }, Kind::Calls(w)) => w.record_at(index, epoch, call)?,
            (_, kind) => {
                let epoch = self.control.epoch(generation, still_current)?;
                match kind {
                    Kind::Calls(w) => w.record(epoch, call)?,
                    Kind::Time(w) => w.record(epoch, call, now, counters)?,
                }
            }
        };
        self.follow(judge(counts))
    }

    /// Judges `generation`'s window at tick `now` under `rates` without a call: after the
    /// rates change, what the window says now. Returns the cause to trip for, if any.
    pub(crate) fn judge_now(
        &self,
        generation: u16,
        now: u64,
        counters: &Counters,
        rates: &WindowPolicy,
    ) -> Option<Cause> {
        self.follow(rates.judge(self.counts(generation, now, counters)))
    }

    /// Acts on a verdict: the cause to trip for, if any; otherwise a time window notes
    /// whether a trip is pending.
    #[inline]
    fn follow(&self, verdict: Verdict) -> Option<Cause> {
        match verdict {
            Verdict::Trip(cause) => Some(cause),
            verdict => {
                if let Kind::Time(w) = &self.kind {
                    w.set_pending(verdict == Verdict::Pending);
                }
                None
            }
        }
    }

    /// The counts of `generation`'s window at tick `now` (zero if the window is on another
    /// generation, which it leaves on its first call).
    pub(crate) fn counts(&self, generation: u16, now: u64, counters: &Counters) -> Counts {
        let Some(epoch) = self.control.peek(generation) else {
            return Counts::default();
        };
        match &self.kind {
            Kind::Calls(w) => w.counts(epoch),
            Kind::Time(w) => w.counts(epoch, now, counters),
        }
    }

    /// Empties the window (for a reset of a closed breaker).
    pub(crate) fn clear(&self) {
        self.control.clear();
    }
}

/// The window's epoch: the closed generation it counts for, and a counter bumped each time
/// the window is emptied.
///
/// ```text
///  63                                          10 9            0
/// +----------------------------------------------+--------------+
/// |                  epoch                       |  generation  |
/// +----------------------------------------------+--------------+
/// ```
///
/// `epoch` (54 bits) starts at 1, so zeroed slots and buckets belong to no epoch. It grows
/// by one per closed period and per reset: it does not wrap in practice.
#[derive(Debug)]
#[repr(align(128))]
pub(crate) struct Control {
    word: AtomicU64,
}

/// The closed generations the window tells apart: as many as the state word's generation
/// field holds (`state` asserts the two widths are equal; the window names nothing of the
/// state machine's).
pub(crate) const GENERATION_BITS: u32 = 10;
const GENERATION_MASK: u64 = (1 << GENERATION_BITS) - 1;

impl Control {
    fn new() -> Self {
        Control {
            word: AtomicU64::new(1 << GENERATION_BITS),
        }
    }

    /// The epoch for `generation`, moving the window to a new epoch if it was on another
    /// generation and `still_current()` says `generation` is the breaker's; `None` for a
    /// result from a generation that has passed.
    #[inline]
    fn epoch(&self, generation: u16, still_current: impl Fn() -> bool) -> Option<u64> {
        let c = self.word.load(Ordering::Acquire);
        if c & GENERATION_MASK == generation as u64 {
            return Some(c >> GENERATION_BITS);
        }
        self.begin(c, generation, still_current)
    }

    #[cold]
    #[inline(never)]
    fn begin(&self, mut c: u64, generation: u16, still_current: impl Fn() -> bool) -> Option<u64> {
        loop {
            // Asked again after every lost race: the window may have moved to a newer
            // generation since, and then `generation` has passed; moving the window back
            // to it would empty the newer generation's window.
            if !still_current() {
                return None;
            }
            let next = (((c >> GENERATION_BITS) + 1) << GENERATION_BITS) | generation as u64;
            match self
                .word
                .compare_exchange(c, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Some(next >> GENERATION_BITS),
                Err(actual) if actual & GENERATION_MASK == generation as u64 => {
                    return Some(actual >> GENERATION_BITS);
                }
                Err(actual) => c = actual,
            }
        }
    }

    #[inline]
    fn peek(&self, generation: u16) -> Option<u64> {
        let c = self.word.load(Ordering::Acquire);
        (c & GENERATION_MASK == generation as u64).then_some(c >> GENERATION_BITS)
    }

    fn clear(&self) {
        self.word.fetch_add(1 << GENERATION_BITS, Ordering::AcqRel);
    }
}

/// Pads a hot atomic to its own cache line pair.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct Padded<T>(pub(crate) T);

/// The calls the window tests feed: a failure, a success, a slow success.
#[cfg(test)]
pub(crate) mod test_calls {
    use super::Call;

    pub(crate) const F: Call = Call {
        failed: true,
        slow: false,
    };
    pub(crate) const S: Call = Call {
        failed: false,
        slow: false,
    };
    pub(crate) const SLOW: Call = Call {
        failed: false,
        slow: true,
    };
}

#[cfg(test)]
mod tests {
    use super::test_calls::{F, S};
    use super::*;

    /// A result of closed generation 2 checks that 2 is current, then (preempted) the
    /// breaker moves on to closed generation 4, whose first call moves the window to 4.
    /// The old result must not move the window back to 2: that would empty generation
    /// 4's window at its next call. (Found by the loom model
    /// `old_closed_result_does_not_empty_the_new_window`.)
    #[test]
    fn an_old_generation_never_moves_the_window_back() {
        let control = Control::new();
        let checks = std::cell::Cell::new(0);
        let moved_on = std::cell::Cell::new(None);
        let epoch = control.epoch(2, || {
            checks.set(checks.get() + 1);
            if checks.get() == 1 {
                // True when asked; meanwhile generation 4 takes the window.
                moved_on.set(control.epoch(4, || true));
                true
            } else {
                false
            }
        });
        assert_eq!(epoch, None);
        let four = moved_on.get().expect("generation 4 took the window");
        assert_eq!(control.peek(4), Some(four));
        assert_eq!(control.peek(2), None);
    }

    fn policy(failure: Option<f64>, slow: Option<f64>, minimum_calls: u32) -> WindowPolicy {
        WindowPolicy {
            shape: Shape::Calls(10),
            failure_rate: failure.and_then(Ppm::from_ratio),
            slow_rate: slow.and_then(Ppm::from_ratio),
            slow_threshold: Duration::from_millis(100),
            minimum_calls,
        }
    }

    fn counts(calls: u32, failures: u32, slow: u32) -> Counts {
        Counts {
            calls,
            failures,
            slow,
        }
    }

    #[test]
    fn ppm_rounds_and_refuses_what_is_not_a_rate() {
        assert_eq!(Ppm::from_ratio(0.5), Some(Ppm(500_000)));
        assert_eq!(Ppm::from_ratio(1.0), Some(Ppm(1_000_000)));
        assert_eq!(Ppm::from_ratio(0.000_000_6), Some(Ppm(1)));
        for bad in [0.0, -0.1, 1.000_001, f64::NAN, f64::INFINITY, 0.000_000_4] {
            assert_eq!(Ppm::from_ratio(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_rate_equal_to_the_threshold_is_reached() {
        // 0.3 * 10 is 3.0000000000000004 in floats; in millionths it is exact.
        let t = Ppm::from_ratio(0.3).unwrap();
        assert!(t.reached(3, 10));
        assert!(!t.reached(2, 10));
        assert_eq!(t.needed(10), 3);
        assert_eq!(Ppm::from_ratio(0.8).unwrap().needed(10), 8);
        assert_eq!(Ppm::from_ratio(0.81).unwrap().needed(10), 9);
        assert!(Ppm(1_000_000).reached(u32::MAX, u32::MAX));
    }

    #[test]
    fn judge_needs_the_minimum_volume() {
        let p = policy(Some(0.5), None, 4);
        assert_eq!(p.judge(counts(0, 0, 0)), Verdict::Below);
        assert_eq!(p.judge(counts(3, 3, 0)), Verdict::Pending);
        assert_eq!(p.judge(counts(3, 1, 0)), Verdict::Below);
        assert_eq!(
            p.judge(counts(4, 2, 0)),
            Verdict::Trip(Cause::FailureRate {
                failures: 2,
                calls: 4
            })
        );
        assert_eq!(p.judge(counts(5, 2, 0)), Verdict::Below);
        // Counts a racing reader saw out of step are cut to the calls.
        assert_eq!(
            p.judge(counts(4, 9, 0)),
            Verdict::Trip(Cause::FailureRate {
                failures: 4,
                calls: 4
            })
        );
    }

    #[test]
    fn judge_checks_every_rate_and_names_the_failure_rate_first() {
        let p = policy(Some(0.5), Some(0.25), 4);
        assert_eq!(
            p.judge(counts(4, 0, 1)),
            Verdict::Trip(Cause::SlowCallRate { slow: 1, calls: 4 })
        );
        assert_eq!(
            p.judge(counts(4, 2, 1)),
            Verdict::Trip(Cause::FailureRate {
                failures: 2,
                calls: 4
            })
        );
        let slow_only = policy(None, Some(1.0), 1);
        assert_eq!(slow_only.judge(counts(9, 9, 8)), Verdict::Below);
        assert_eq!(
            slow_only.judge(counts(9, 9, 9)),
            Verdict::Trip(Cause::SlowCallRate { slow: 9, calls: 9 })
        );
    }

    #[test]
    fn claims_settle_only_unchanged_calls_of_a_count_window() {
        let no_clock = || -> u64 { unreachable!("a count window reads no clock") };
        let p = policy(Some(0.5), None, 2);
        let w = Window::new(p.clone());
        let k = Counters::new();
        // The window is on generation 0, epoch 1.
        assert_eq!(w.claim(3, false, no_clock, &k), Claim::Nothing);
        assert_eq!(
            w.claim(0, false, no_clock, &k),
            Claim::Slot { epoch: 1, index: 0 }
        );
        let claimed = Claim::Slot { epoch: 1, index: 0 };
        assert_eq!(
            w.record(
                0,
                S,
                0,
                claimed,
                &k,
                |c| w.policy.judge(c),
                || unreachable!()
            ),
            None
        );
        assert_eq!(w.counts(0, 0, &k), counts(1, 0, 0));
        for index in 1..10 {
            let claimed = w.claim(0, false, no_clock, &k);
            assert_eq!(claimed, Claim::Slot { epoch: 1, index });
            assert_eq!(
                w.record(
                    0,
                    S,
                    0,
                    claimed,
                    &k,
                    |c| w.policy.judge(c),
                    || unreachable!()
                ),
                None
            );
        }
        // Slot 0 holds a success: the next success is settled by the claim (the count
        // window's own claim does the same, without a clock or the counters).
        assert_eq!(w.claim(0, false, no_clock, &k), Claim::Done);
        assert_eq!(w.claim_count(3, false), Claim::Nothing);
        assert_eq!(w.claim_count(0, false), Claim::Done);
        assert_eq!(
            w.record(
                0,
                S,
                0,
                Claim::Done,
                &k,
                |c| w.policy.judge(c),
                || unreachable!()
            ),
            None
        );
        assert_eq!(w.counts(0, 0, &k), counts(10, 0, 0));
        // Those two claims took slots 0 and 1: the failure below lands in slot 2.
        // A failure in slot 2 of 10: below 50 %.
        let claimed = w.claim(0, true, no_clock, &k);
        assert_eq!(claimed, Claim::Slot { epoch: 1, index: 2 });
        assert_eq!(
            w.record(
                0,
                F,
                0,
                claimed,
                &k,
                |c| w.policy.judge(c),
                || unreachable!()
            ),
            None
        );
        assert_eq!(w.counts(0, 0, &k), counts(10, 1, 0));
        // A claim moves no window to a new generation; `record` does, when asked.
        assert_eq!(
            w.record(3, F, 0, Claim::Nothing, &k, |c| w.policy.judge(c), || true),
            None
        );
        assert_eq!(w.counts(3, 0, &k), counts(1, 1, 0));

        // With a slow-call rate the claim leaves everything to `record`, which needs the
        // call's time.
        let slow = Window::new(policy(None, Some(0.5), 2));
        let k = Counters::new();
        assert_eq!(slow.claim(0, false, no_clock, &k), Claim::Nothing);
    }

    #[test]
    fn claims_count_successes_in_the_current_bucket_of_a_time_window() {
        let w = Window::new(WindowPolicy {
            shape: Shape::Time {
                width_ticks: 10,
                buckets: 2,
            },
            ..policy(Some(0.4), None, 5)
        });
        let k = Counters::new();
        // An empty bucket is started by `record` (it must check the rate: older calls may
        // have left); a failure is always left to `record`.
        assert_eq!(w.claim(0, false, || 3, &k), Claim::Nothing);
        assert_eq!(w.claim_count(0, false), Claim::Nothing);
        assert_eq!(w.claim(0, true, || unreachable!(), &k), Claim::Nothing);
        assert_eq!(
            w.record(
                0,
                S,
                3,
                Claim::Nothing,
                &k,
                |c| w.policy.judge(c),
                || unreachable!()
            ),
            None
        );
        // The same bucket: counted by the claim alone.
        assert_eq!(w.claim(0, false, || 9, &k), Claim::Done);
        assert_eq!(w.counts(0, 9, &k), counts(2, 0, 0));
        // Another generation, or the next bucket: left to `record`.
        assert_eq!(w.claim(1, false, || unreachable!(), &k), Claim::Nothing);
        assert_eq!(w.claim(0, false, || 10, &k), Claim::Nothing);
        assert_eq!(w.counts(0, 9, &k), counts(2, 0, 0));
        // Two failures in four calls, 50 % against 40 %, with a minimum of five: pending.
        // A success must then be judged (it brings the volume to five), so the claim
        // leaves it to `record`.
        assert_eq!(
            w.record(
                0,
                F,
                9,
                Claim::Nothing,
                &k,
                |c| w.policy.judge(c),
                || unreachable!()
            ),
            None
        );
        assert_eq!(
            w.record(
                0,
                F,
                9,
                Claim::Nothing,
                &k,
                |c| w.policy.judge(c),
                || unreachable!()
            ),
            None
        );
        assert_eq!(w.claim(0, false, || 9, &k), Claim::Nothing);
        assert_eq!(
            w.record(
                0,
                S,
                9,
                Claim::Nothing,
                &k,
                |c| w.policy.judge(c),
                || unreachable!()
            ),
            Some(Cause::FailureRate {
                failures: 2,
                calls: 5
            })
        );
    }

    #[test]
    fn claims_a_success_in_the_threads_own_count_of_a_time_window_only() {
        let time = Shape::Time {
            width_ticks: 10,
            buckets: 2,
        };
        let w = Window::new(WindowPolicy {
            shape: time,
            ..policy(Some(0.5), None, 5)
        });
        let k = Counters::with_slots(1024);
        k.admitted(); // gives this thread an id: below 1024, so a slot of its own
        let local = k.local().expect("this thread has a slot");
        // Not yet pointed at a bucket: left to `record`, which points it.
        assert!(!w.claim_own_success(0, || 3, local));
        assert_eq!(
            w.record(
                0,
                S,
                3,
                Claim::Nothing,
                &k,
                |c| w.policy.judge(c),
                || unreachable!()
            ),
            None
        );
        assert!(w.claim_own_success(0, || 9, local));
        assert_eq!(w.counts(0, 9, &k), counts(2, 0, 0));
        // Another generation (no clock read), or the next bucket: nothing done.
        assert!(!w.claim_own_success(1, || unreachable!(), local));
        assert!(!w.claim_own_success(0, || 10, local));
        assert_eq!(w.counts(0, 9, &k), counts(2, 0, 0));
        // A count window, or a time window that times calls (a slow-call rate), never.
        let count = Window::new(policy(Some(0.5), None, 5));
        assert!(!count.claim_own_success(0, || unreachable!(), local));
        let slow = Window::new(WindowPolicy {
            shape: time,
            ..policy(None, Some(0.5), 5)
        });
        assert!(!slow.claim_own_success(0, || unreachable!(), local));
    }

    #[test]
    fn control_moves_to_a_new_epoch_per_generation_and_clear() {
        let c = Control::new();
        assert_eq!(c.epoch(0, || unreachable!()), Some(1));
        assert_eq!(c.epoch(5, || false), None);
        assert_eq!(c.peek(5), None);
        assert_eq!(c.epoch(5, || true), Some(2));
        assert_eq!(c.epoch(5, || unreachable!()), Some(2));
        assert_eq!(c.peek(5), Some(2));
        c.clear();
        assert_eq!(c.peek(5), Some(3));
        assert_eq!(c.epoch(1023, || true), Some(4));
        assert_eq!(c.peek(1023), Some(4));
    }
}
