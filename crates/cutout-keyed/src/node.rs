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
//! # Eviction: a claim bit in every stripe
//!
//! Each stripe counts in units of two; its low bit is the claim bit. The node's `claim` is
//! `FREE`, `TENTATIVE` or `RETIRED` (final), and says which eviction owns the bits.
//!
//! - **Enter**: `fetch_add(2)` on the thread's stripe. If the value before had no claim
//!   bit: entered, and that one read-modify-write is the whole fast path. Otherwise undo
//!   the add and look at `claim`: `RETIRED`, report it (the registry removes the node and
//!   makes a new breaker); `TENTATIVE`, wait (spin, then yield) until the bit clears or
//!   the claim becomes final.
//! - **Claim** (eviction): `FREE -> TENTATIVE` by compare-exchange (one eviction at a
//!   time), then `fetch_or(1)` on every stripe, summing the counts those return, then read
//!   the breaker's state. A sum of zero and a closed breaker make the claim final
//!   (`RETIRED`; the bits stay set, so no one enters again); anything else clears the bits
//!   and puts `FREE` back.
//!
//! Why no user is ever in a retired node, with no fence and no `SeqCst`: every step that
//! matters is a read-modify-write of one stripe, and those are totally ordered per stripe.
//! An entry on a stripe either comes before the claim's `fetch_or` there (then that
//! `fetch_or` returns it, counted) or after (then it sees the bit and counts nothing for
//! good). So every user counted in a stripe the claim has not marked yet is found when it
//! is marked, and a user's exit read on one stripe is never missing its entry on another:
//! the sum the claim reads is at least the number of users at its last mark, and none can
//! come after. A holder that counts in one more user (a lease clone) goes through the
//! same entry. Exits are `Release` and the marks `AcqRel`: a mark that sees an exit sees
//! the outcome that user recorded before it, so the state read after the marks is the
//! state the last user left.
//!
//! This differs from a Dekker pair (a store to a flag and loads of the counters, both
//! `SeqCst`): that needs either `SeqCst` fences, which put a full barrier on every entry,
//! or `SeqCst` accesses, which loom does not model (it treats them as acquire/release and
//! finds a false counterexample), so the loom model could not check it.

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

/// A stripe's claim bit (set by an eviction checking the node, on every stripe).
const MARK: u64 = 1;
/// One user in a stripe's count.
const USER: u64 = 2;

/// The most stripes a node has.
const MAX_STRIPES: usize = 16;

/// Spins before an entering thread that meets a tentative claim yields its time slice.
#[cfg(not(cutout_loom))]
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
        node.slot(stripe).fetch_add(USER, Ordering::Relaxed);
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
        if slot.fetch_add(USER, Ordering::Acquire) & MARK == 0 {
            return true;
        }
        self.enter_marked(slot)
    }

    /// The entry found its stripe marked by an eviction: waits for it to decide.
    #[cold]
    #[inline(never)]
    fn enter_marked(&self, slot: &AtomicU64) -> bool {
        let mut spins = 0;
        loop {
            // Counted nothing for good: the claim's mark came first on this stripe.
            slot.fetch_sub(USER, Ordering::Relaxed);
            loop {
                if self.claim.load(Ordering::Acquire) == RETIRED {
                    return false;
                }
                if slot.load(Ordering::Relaxed) & MARK == 0 {
                    break;
                }
                // An eviction is checking the node: it finds a user (or not) and decides
                // within a few instructions.
                backoff(&mut spins);
            }
            if slot.fetch_add(USER, Ordering::Acquire) & MARK == 0 {
                return true;
            }
        }
    }

    /// Counts one more user in for a holder that already is one. A held node is never
    /// retired; the protocol is [`enter`](Self::enter)'s all the same (see the module
    /// docs: an entry must not land on a stripe a claim has already read).
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
        self.slot(stripe).fetch_sub(USER, Ordering::Release);
    }

    /// The users a stripe's word counts (times [`USER`]): the wrapping sum of these over
    /// the stripes.
    #[inline]
    fn count(word: u64) -> u64 {
        word & !MARK
    }

    /// Users in (from the wrapping sum of the stripes); exact only when nothing enters or
    /// exits.
    fn users(&self) -> u64 {
        let sum = self.users.iter().fold(0u64, |sum, slot| {
            sum.wrapping_add(Self::count(slot.load(Ordering::Acquire)))
        });
        sum / USER
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
            .compare_exchange(FREE, TENTATIVE, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return false;
        }
        // Mark every stripe; the counts the marks return are the users (see the module
        // docs).
        let sum = self.users.iter().fold(0u64, |sum, slot| {
            sum.wrapping_add(Self::count(slot.fetch_or(MARK, Ordering::AcqRel)))
        });
        if sum == 0 && self.breaker.state() == State::Closed {
            // Final: the marks stay, so every later entry backs off and sees this.
            self.claim.store(RETIRED, Ordering::Release);
            return true;
        }
        for slot in self.users.iter() {
            slot.fetch_and(!MARK, Ordering::Release);
        }
        self.claim.store(FREE, Ordering::Release);
        false
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
        // one user and stripe 3 minus one, and only the sum, 0, counts.
        n.exit_on(3);
        assert_eq!(n.slot(0).load(Ordering::Relaxed), USER);
        assert_eq!(n.slot(3).load(Ordering::Relaxed), 0u64.wrapping_sub(USER));
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
        assert!(
            n.users
                .iter()
                .all(|slot| slot.load(Ordering::Relaxed) & MARK != 0),
            "a final claim leaves every stripe marked"
        );
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
        // The user (the node's maker, on stripe 0) is found by the claim's mark of stripe
        // 0: the claim rolls back, unmarks every stripe and frees the flag.
        assert!(!n.retire());
        assert_eq!(n.claim.load(Ordering::Relaxed), FREE);
        assert!(
            n.users
                .iter()
                .all(|slot| slot.load(Ordering::Relaxed) & MARK == 0)
        );
        assert!(n.enter_on(2));
        assert_eq!(n.users(), 2);
        // An entry on a stripe the claim has not marked yet enters, and is counted when
        // the claim gets there.
        n.exit_on(0);
        n.exit_on(2);
        n.claim.store(TENTATIVE, Ordering::Relaxed);
        assert_eq!(n.slot(0).fetch_or(MARK, Ordering::AcqRel) & !MARK, 0);
        assert!(n.enter_on(1), "stripe 1 is not marked yet");
        assert_eq!(n.slot(1).fetch_or(MARK, Ordering::AcqRel) & !MARK, USER);
    }

    #[test]
    fn an_entry_on_a_marked_stripe_waits_for_the_claim_to_decide() {
        let n = std::sync::Arc::new(node());
        n.exit_on(0);
        // A claim in progress has marked stripe 1.
        n.claim.store(TENTATIVE, Ordering::Relaxed);
        n.slot(1).fetch_or(MARK, Ordering::AcqRel);
        let entering = {
            let n = n.clone();
            std::thread::spawn(move || n.enter_on(1))
        };
        // The claim rolls back: the entry goes in.
        n.slot(1).fetch_and(!MARK, Ordering::Release);
        n.claim.store(FREE, Ordering::Release);
        assert!(
            entering.join().unwrap(),
            "entered once the claim rolled back"
        );
        assert_eq!(n.users(), 1);
        n.exit_on(1);

        // This time the claim becomes final: the waiting entry is refused.
        n.claim.store(TENTATIVE, Ordering::Relaxed);
        n.slot(1).fetch_or(MARK, Ordering::AcqRel);
        let entering = {
            let n = n.clone();
            std::thread::spawn(move || n.enter_on(1))
        };
        n.claim.store(RETIRED, Ordering::Release);
        assert!(!entering.join().unwrap(), "refused by the final claim");
        assert_eq!(n.users(), 0, "the refused entry counted nothing");
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
