//! One key's breaker and its user count.
//!
//! # The user count, striped
//!
//! A user is a call in flight, a permit or a lease. Every request enters and exits the
//! node, so one shared counter would be a cache line every thread writes twice per request
//! (what made the keyed layer 2.7-3.6x slower per request on two threads than on one).
//! The count is instead split into [`stripes`] cache-line-padded counters: a thread counts
//! itself in on its own stripe (an index it takes once, from a thread-local). A user may
//! count itself out on another stripe (a future moves between threads), so a stripe alone
//! means nothing and may go "negative": only the wrapping sum of all stripes is the number
//! of users.
//!
//! Memory per node: `stripes() * 128` bytes of counters on x86-64 and aarch64 (a
//! [`CachePadded`] counter each; 64 bytes on most other targets), on top of the breaker:
//! 256 bytes on a 2-core machine, at most 2 KiB (16 stripes).
//!
//! # Eviction: a claim flag, checked like Dekker's
//!
//! The node's `claim` is `FREE`, `TENTATIVE` or `RETIRED` (final).
//!
//! - **Enter**: `fetch_add(1)` on the thread's stripe, then load `claim` (both `SeqCst`).
//!   `FREE`: entered. `TENTATIVE`: undo the increment, back off, retry. `RETIRED`: undo
//!   and report it (the registry removes the node and makes a new breaker).
//! - **Claim** (eviction): `FREE -> TENTATIVE` by compare-exchange, then sum the stripes
//!   and read the breaker's state (all `SeqCst`). A sum of zero and a closed breaker make
//!   the claim final (`RETIRED`); anything else puts `FREE` back.
//!
//! Why no user is ever in a retired node: in the single total order of `SeqCst`
//! operations, an entering thread either loads `claim` before the claim was set (then its
//! increment, which precedes that load, precedes every stripe read of the claimer, which
//! sees it) or after (then it backs off and counts nothing). Once `TENTATIVE` is set, no
//! stripe grows except by an increment that is undone before its thread goes on, so each
//! stripe only falls while the claimer reads; the sum it reads, stripe by stripe at
//! different moments, is then at least the number of users left at its last read, and
//! no user can come after. A holder that counts in one more user (a lease clone) goes
//! through the same protocol, so it cannot add to a stripe already read while its own
//! user leaves on one not yet read. Exits are `Release`: the claimer's read of a stripe
//! that saw an exit sees the outcome that user recorded.

#[cfg(cutout_loom)]
use loom::sync::atomic::{AtomicU8, AtomicU64};
#[cfg(not(cutout_loom))]
use std::sync::atomic::{AtomicU8, AtomicU64};
use std::sync::atomic::{AtomicUsize, Ordering};

use crossbeam_utils::CachePadded;
use cutout::{CircuitBreaker, State};

/// Nobody is claiming the node.
const FREE: u8 = 0;
/// An eviction is checking the node; entering threads wait.
const TENTATIVE: u8 = 1;
/// Claimed for eviction, final: no one may enter again.
const RETIRED: u8 = 2;

/// The most stripes a node has.
const MAX_STRIPES: usize = 16;

/// Spins before an entering thread that meets a tentative claim yields its time slice.
const SPINS_BEFORE_YIELD: u32 = 16;

/// The stripes per node: the machine's parallelism, rounded up to a power of two, at most
/// [`MAX_STRIPES`]. Computed once per process.
pub(crate) fn stripes() -> usize {
    static STRIPES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *STRIPES.get_or_init(|| {
        std::thread::available_parallelism()
            .map_or(1, usize::from)
            .next_power_of_two()
            .min(MAX_STRIPES)
    })
}

/// The calling thread's stripe number, taken once per thread (threads number themselves in
/// the order they first enter a node); a node uses it modulo its stripe count.
#[inline]
pub(crate) fn thread_stripe() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static STRIPE: std::cell::Cell<usize> = const { std::cell::Cell::new(usize::MAX) };
    }
    STRIPE.with(|s| {
        let stripe = s.get();
        if stripe != usize::MAX {
            return stripe;
        }
        let stripe = NEXT.fetch_add(1, Ordering::Relaxed) % MAX_STRIPES;
        s.set(stripe);
        stripe
    })
}

#[inline]
fn backoff(spins: &mut u32) {
    #[cfg(cutout_loom)]
    {
        let _ = spins;
        loom::thread::yield_now();
    }
    #[cfg(not(cutout_loom))]
    {
        if *spins < SPINS_BEFORE_YIELD {
            *spins += 1;
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
}

/// One key's breaker with its striped user count and its claim flag.
pub(crate) struct Node {
    pub(crate) breaker: CircuitBreaker,
    claim: AtomicU8,
    /// The registry tick at the last use (for least-recently-used eviction).
    seen: AtomicU64,
    /// A power-of-two number of counters; see the module docs.
    users: Box<[CachePadded<AtomicU64>]>,
}

impl Node {
    /// A node with one user: the calling thread, which made it.
    pub(crate) fn entered(breaker: CircuitBreaker, tick: u64) -> Self {
        Self::entered_on(breaker, tick, stripes(), thread_stripe())
    }

    /// A node of `stripes` counters (a power of two) with one user, counted on `stripe`.
    pub(crate) fn entered_on(
        breaker: CircuitBreaker,
        tick: u64,
        stripes: usize,
        stripe: usize,
    ) -> Self {
        debug_assert!(stripes.is_power_of_two());
        let node = Node {
            breaker,
            claim: AtomicU8::new(FREE),
            seen: AtomicU64::new(tick),
            users: (0..stripes)
                .map(|_| CachePadded::new(AtomicU64::new(0)))
                .collect(),
        };
        // Not shared yet: nothing can claim it before this count.
        node.slot(stripe).fetch_add(1, Ordering::Relaxed);
        node
    }

    #[inline]
    fn slot(&self, stripe: usize) -> &AtomicU64 {
        // A power of two: the mask keeps the index in range.
        &self.users[stripe & (self.users.len() - 1)]
    }

    /// Counts a user in on the calling thread's stripe; `false` if the node is retired (and
    /// then counts nothing).
    #[inline]
    pub(crate) fn enter(&self) -> bool {
        self.enter_on(thread_stripe())
    }

    /// Counts a user in on `stripe`; see [`enter`](Self::enter).
    #[inline]
    pub(crate) fn enter_on(&self, stripe: usize) -> bool {
        let slot = self.slot(stripe);
        let mut spins = 0;
        loop {
            slot.fetch_add(1, Ordering::SeqCst);
            match self.claim.load(Ordering::SeqCst) {
                FREE => return true,
                claim => {
                    slot.fetch_sub(1, Ordering::Relaxed);
                    if claim == RETIRED {
                        return false;
                    }
                    // An eviction is checking the node: it will find a user (or not) and
                    // decide within a few loads.
                    backoff(&mut spins);
                }
            }
        }
    }

    /// Counts one more user in for a holder that already is one. A held node is never
    /// retired; the protocol is [`enter`](Self::enter)'s all the same (see the module
    /// docs: an increment must not slip past a claim that is reading the stripes).
    pub(crate) fn enter_held(&self) {
        let entered = self.enter();
        debug_assert!(entered, "a held node is never retired");
    }

    /// Counts a user out on the calling thread's stripe.
    #[inline]
    pub(crate) fn exit(&self) {
        self.exit_on(thread_stripe());
    }

    /// Counts a user out on `stripe`, whichever stripe it came in on.
    #[inline]
    pub(crate) fn exit_on(&self, stripe: usize) {
        self.slot(stripe).fetch_sub(1, Ordering::Release);
    }

    /// Users in (the wrapping sum of the stripes); exact only when nothing enters or exits.
    fn users(&self) -> u64 {
        self.users.iter().fold(0u64, |sum, slot| {
            sum.wrapping_add(slot.load(Ordering::SeqCst))
        })
    }

    /// Notes a use at registry tick `tick`: a read, and a write only when the tick moved.
    #[inline]
    pub(crate) fn touch(&self, tick: u64) {
        if self.seen.load(Ordering::Relaxed) != tick {
            self.seen.store(tick, Ordering::Relaxed);
        }
    }

    pub(crate) fn seen(&self) -> u64 {
        self.seen.load(Ordering::Relaxed)
    }

    /// Claimed for eviction: final; the claimer (or anyone who sees it) removes it.
    pub(crate) fn retired(&self) -> bool {
        self.claim.load(Ordering::Acquire) == RETIRED
    }

    /// Closed, unclaimed and unused at this moment (a hint; [`retire`](Self::retire)
    /// decides).
    pub(crate) fn evictable(&self) -> bool {
        self.claim.load(Ordering::Acquire) == FREE
            && self.users() == 0
            && self.breaker.state() == State::Closed
    }

    /// Claims the node for eviction: only if no other claim is under way, it has no user
    /// and its breaker is closed. Final once it succeeds: no one enters again.
    pub(crate) fn retire(&self) -> bool {
        if self
            .claim
            .compare_exchange(FREE, TENTATIVE, Ordering::SeqCst, Ordering::Relaxed)
            .is_err()
        {
            return false;
        }
        let claimed = self.users() == 0 && self.breaker.state() == State::Closed;
        self.claim
            .store(if claimed { RETIRED } else { FREE }, Ordering::SeqCst);
        claimed
    }
}

/// The node's protocol, for the loom models in `loom-tests/` (built only with
/// `--cfg cutout_loom`): a node whose stripes the caller names.
#[cfg(cutout_loom)]
#[doc(hidden)]
#[allow(missing_docs, missing_debug_implementations)]
pub mod model {
    use super::*;

    pub struct ModelNode(Node);

    impl ModelNode {
        /// A node of two stripes with one user on stripe 0.
        pub fn entered(breaker: CircuitBreaker) -> Self {
            Self(Node::entered_on(breaker, 0, 2, 0))
        }
        pub fn breaker(&self) -> &CircuitBreaker {
            &self.0.breaker
        }
        pub fn enter_on(&self, stripe: usize) -> bool {
            self.0.enter_on(stripe)
        }
        pub fn exit_on(&self, stripe: usize) {
            self.0.exit_on(stripe)
        }
        pub fn retire(&self) -> bool {
            self.0.retire()
        }
        pub fn retired(&self) -> bool {
            self.0.retired()
        }
        pub fn users(&self) -> u64 {
            self.0.users()
        }
    }
}

#[cfg(all(test, not(cutout_loom)))]
mod tests {
    use super::*;
    use cutout::{ManualClock, Outcome};

    fn node() -> Node {
        let b = CircuitBreaker::builder()
            .failure_threshold(1)
            .build_with_clock(ManualClock::new())
            .unwrap();
        // Four stripes whatever the machine, so that the tests can use several.
        Node::entered_on(b, 0, 4, 0)
    }

    #[test]
    fn the_stripes_are_a_power_of_two_at_most_sixteen() {
        let n = stripes();
        assert!(n.is_power_of_two() && n <= MAX_STRIPES, "{n}");
        assert_eq!(thread_stripe(), thread_stripe(), "taken once per thread");
        assert_eq!(node().users.len(), 4);
    }

    #[test]
    fn a_node_with_users_on_several_stripes_is_not_retired() {
        let n = node();
        assert!(!n.evictable());
        assert!(!n.retire());
        assert!(!n.retired(), "a failed claim rolls back");
        // Entered on stripe 0, exits on stripe 3 (a future moved threads): stripe 0 holds
        // 1 and stripe 3 holds -1, and only the sum, 0, counts.
        n.exit_on(3);
        assert_eq!(n.slot(3).load(Ordering::Relaxed), u64::MAX);
        assert_eq!(n.users(), 0);
        assert!(n.evictable());
        // Two users on two stripes; one leaves on a third.
        assert!(n.enter_on(1));
        assert!(n.enter_on(2));
        n.exit_on(0);
        assert_eq!(n.users(), 1);
        assert!(!n.retire());
        // A stripe index past the count wraps onto a stripe (mask).
        n.exit_on(5);
        assert_eq!(n.users(), 0);
        assert!(n.retire());
        assert!(n.retired());
        assert!(!n.enter_on(2), "retired is final");
        assert!(!n.retire());
        assert_eq!(n.users(), 0, "a refused entry counts nothing");
    }

    #[test]
    fn an_open_breaker_is_not_retired() {
        let n = node();
        n.breaker.try_acquire().unwrap().record(Outcome::Failure);
        n.exit_on(1);
        assert!(!n.evictable());
        assert!(!n.retire());
        assert!(!n.retired());
        assert!(n.enter_on(0));
    }

    #[test]
    fn a_tentative_claim_that_finds_a_user_rolls_back_and_lets_users_in() {
        let n = node();
        // A claim in progress, as `retire` sets it before it sums.
        n.claim.store(TENTATIVE, Ordering::SeqCst);
        assert!(!n.evictable());
        assert!(!n.retired());
        // The claimer sums: one user (the node's maker), so it rolls back.
        assert_eq!(n.users(), 1);
        n.claim.store(FREE, Ordering::SeqCst);
        // `retire` itself does the same, and leaves the flag free.
        assert!(!n.retire());
        assert_eq!(n.claim.load(Ordering::Relaxed), FREE);
        assert!(n.enter_on(2));
        assert_eq!(n.users(), 2);
    }

    #[test]
    fn an_entry_waits_out_a_tentative_claim_and_then_enters() {
        let n = std::sync::Arc::new(node());
        n.exit_on(0);
        n.claim.store(TENTATIVE, Ordering::SeqCst);
        let entering = {
            let n = n.clone();
            std::thread::spawn(move || n.enter_on(1))
        };
        // Whatever the entering thread has done so far, it counted nothing for good.
        while n.slot(1).load(Ordering::SeqCst) != 0 {
            std::hint::spin_loop();
        }
        n.claim.store(FREE, Ordering::SeqCst);
        assert!(
            entering.join().unwrap(),
            "entered once the claim rolled back"
        );
        assert_eq!(n.users(), 1);
        assert!(!n.retire());
    }

    #[test]
    fn a_call_between_the_look_and_the_claim_fails_the_claim() {
        let n = node();
        n.exit_on(0);
        assert!(n.evictable(), "eviction looks: closed and unused");
        // A call comes in after the look: the claim finds it.
        assert!(n.enter_on(1));
        assert!(!n.retire());
        // It trips the breaker and leaves: the claim finds the breaker open.
        n.breaker.try_acquire().unwrap().record(Outcome::Failure);
        n.exit_on(2);
        assert_eq!(n.users(), 0);
        assert!(!n.retire());
        assert!(!n.retired());
    }
}
