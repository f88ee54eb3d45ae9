//! One key's breaker and its user count.
//!
//! The user count is one `AtomicU64`:
//!
//! ```text
//!  63                               33 32  31                             0
//! +-----------------------------------+---+--------------------------------+
//! |              seq                  | R |             users              |
//! +-----------------------------------+---+--------------------------------+
//! ```
//!
//! | field   | bits   | meaning                                                         |
//! |---------|--------|-----------------------------------------------------------------|
//! | `users` | 0..32  | calls in flight, permits, leases                                |
//! | `R`     | 32     | retired: claimed for eviction, final; no one may enter again    |
//! | `seq`   | 33..64 | bumped by every exit (wraps): lets eviction see that a call came and went |
//!
//! Eviction reads the word (no user, not retired), reads the breaker's state (closed), and
//! sets `R` by compare-exchange on the word it read: the exchange fails if any call entered
//! or exited in between, so the state it saw is the state it retires. A call enters with
//! `fetch_add`; if it finds `R` set, it backs off and the key gets a new breaker.

use std::sync::atomic::{AtomicU64, Ordering};

use cutout::{CircuitBreaker, State};

const USERS_MASK: u64 = (1 << 32) - 1;
const RETIRED: u64 = 1 << 32;
const SEQ_ONE: u64 = 1 << 33;

pub(crate) struct Node {
    pub(crate) breaker: CircuitBreaker,
    users: AtomicU64,
    /// The registry tick at the last use (for least-recently-used eviction).
    seen: AtomicU64,
}

impl Node {
    /// A node with one user: the thread that made it.
    pub(crate) fn entered(breaker: CircuitBreaker, tick: u64) -> Self {
        Node {
            breaker,
            users: AtomicU64::new(1),
            seen: AtomicU64::new(tick),
        }
    }

    /// Counts a user in; `false` if the node is retired (and then counts nothing).
    #[inline]
    pub(crate) fn enter(&self) -> bool {
        let prev = self.users.fetch_add(1, Ordering::Acquire);
        if prev & RETIRED != 0 {
            self.users.fetch_sub(1, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// Counts one more user in for a holder that already is one (never retired then).
    pub(crate) fn enter_held(&self) {
        self.users.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a user out.
    #[inline]
    pub(crate) fn exit(&self) {
        // users - 1, seq + 1: one RMW. A user is in, so the count does not borrow.
        self.users.fetch_add(SEQ_ONE - 1, Ordering::AcqRel);
    }

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
        self.users.load(Ordering::Acquire) & RETIRED != 0
    }

    /// Closed and unused at this moment (a hint; [`retire`](Self::retire) decides).
    pub(crate) fn evictable(&self) -> bool {
        let w = self.users.load(Ordering::Acquire);
        w & (USERS_MASK | RETIRED) == 0 && self.breaker.state() == State::Closed
    }

    /// Claims the node for eviction: only if it has no user and its breaker is closed, with
    /// no call entering or exiting in between. Final once it succeeds.
    pub(crate) fn retire(&self) -> bool {
        let w = self.users.load(Ordering::Acquire);
        if w & (USERS_MASK | RETIRED) != 0 || self.breaker.state() != State::Closed {
            return false;
        }
        self.users
            .compare_exchange(w, w | RETIRED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cutout::{ManualClock, Outcome};

    fn node() -> Node {
        let b = CircuitBreaker::builder()
            .failure_threshold(1)
            .build_with_clock(ManualClock::new())
            .unwrap();
        Node::entered(b, 0)
    }

    #[test]
    fn a_node_with_users_is_not_retired() {
        let n = node();
        assert!(!n.evictable());
        assert!(!n.retire());
        n.exit();
        assert!(n.evictable());
        assert!(n.enter());
        assert!(!n.retire());
        n.exit();
        assert!(n.retire());
        assert!(!n.enter(), "retired is final");
        assert!(!n.retire());
        assert_eq!(n.users.load(Ordering::Relaxed) & USERS_MASK, 0);
    }

    #[test]
    fn an_open_breaker_is_not_retired() {
        let n = node();
        n.breaker.try_acquire().unwrap().record(Outcome::Failure);
        n.exit();
        assert!(!n.evictable());
        assert!(!n.retire());
        assert!(n.enter());
    }

    #[test]
    fn a_call_between_the_look_and_the_claim_fails_the_claim() {
        let n = node();
        n.exit();
        let seen = n.users.load(Ordering::Acquire);
        // A call comes and goes (and trips the breaker) after eviction looked.
        assert!(n.enter());
        n.breaker.try_acquire().unwrap().record(Outcome::Failure);
        n.exit();
        assert_eq!(n.users.load(Ordering::Relaxed) & USERS_MASK, 0);
        assert!(
            n.users
                .compare_exchange(seen, seen | RETIRED, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
        );
        assert!(!n.retire());
    }

    #[test]
    fn the_sequence_wraps_out_of_the_word() {
        let n = node();
        n.users
            .store((!RETIRED & !USERS_MASK) | 1, Ordering::Relaxed);
        n.exit();
        assert_eq!(n.users.load(Ordering::Relaxed), 0);
        assert!(n.retire());
    }
}
