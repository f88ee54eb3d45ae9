//! Loom models of cutout-keyed's striped user count and eviction claim (crates/cutout-keyed
//! src/node.rs, the real code under `--cfg cutout_loom`): a user enters on one stripe and
//! exits on another while an evictor claims the node. Never is a node claimed while a user
//! is in, and no increment is lost: once everyone is out the count is zero and, unless
//! retired, the node can be claimed.

#![cfg(cutout_loom)]

use std::sync::Arc;

use cutout::{CircuitBreaker, ManualClock, Outcome, State};
use cutout_keyed::model::ModelNode;
use loom::sync::atomic::{AtomicU8, Ordering};
use loom::thread;

/// The user's progress, as the evictor may see it.
const OUT: u8 = 0;
const IN: u8 = 1;
const DONE: u8 = 2;

/// A node with no user (its maker entered on stripe 0 and left).
fn idle_node(threshold: u32) -> Arc<ModelNode> {
    let breaker = CircuitBreaker::builder()
        .failure_threshold(threshold)
        .build_with_clock(ManualClock::new())
        .expect("valid settings");
    let node = ModelNode::entered(breaker);
    node.exit_on(0);
    Arc::new(node)
}

/// One user enters on stripe 0, records `outcome`, and exits on stripe 1 (its future
/// moved threads); one evictor claims the node.
fn enter_record_exit_against_a_claim(outcome: Outcome, threshold: u32) {
    loom::model(move || {
        let node = idle_node(threshold);
        let phase = Arc::new(AtomicU8::new(OUT));
        let user = {
            let (node, phase) = (node.clone(), phase.clone());
            thread::spawn(move || {
                if !node.enter_on(0) {
                    return false;
                }
                phase.store(IN, Ordering::SeqCst);
                node.breaker()
                    .try_acquire()
                    .expect("closed")
                    .record(outcome);
                phase.store(DONE, Ordering::SeqCst);
                node.exit_on(1);
                true
            })
        };
        let evictor = {
            let (node, phase) = (node.clone(), phase.clone());
            thread::spawn(move || {
                let claimed = node.retire();
                if claimed {
                    assert_ne!(
                        phase.load(Ordering::SeqCst),
                        IN,
                        "claimed while a user is in"
                    );
                }
                claimed
            })
        };
        let entered = user.join().expect("no model thread panics");
        let claimed = evictor.join().expect("no model thread panics");
        assert_eq!(node.users(), 0, "an increment was lost or left behind");
        assert_eq!(node.retired(), claimed);
        if !entered {
            assert!(claimed, "a user is refused only by a final claim");
        }
        let stats = node.breaker().stats();
        assert_eq!(stats.admitted, u64::from(entered));
        if claimed && entered {
            // The user was out before the claim: its outcome is on the breaker, and the
            // breaker the claim saw closed is closed.
            assert_eq!(node.breaker().state(), State::Closed);
        }
        if !claimed {
            // Nothing holds it: a later claim takes it if it is closed.
            assert_eq!(
                node.retire(),
                node.breaker().state() == State::Closed,
                "a count that never went back to zero"
            );
        }
    });
}

#[test]
fn a_user_and_an_evictor_never_meet_on_a_success() {
    enter_record_exit_against_a_claim(Outcome::Success, 1);
}

#[test]
fn a_user_that_trips_the_breaker_keeps_it_from_eviction() {
    // The failure opens the breaker (threshold 1): a claim after it must fail.
    enter_record_exit_against_a_claim(Outcome::Failure, 1);
}

#[test]
fn a_holder_counting_one_more_user_in_is_never_claimed() {
    // The holder (entered on stripe 0) counts a second user in on stripe 0 too (a lease
    // clone), then the first user leaves on stripe 1 (it moved threads) and the second on
    // stripe 0: the claim, which reads stripe 0 and then stripe 1, must not miss the clone
    // on stripe 0 and see only the exit on stripe 1 (a sum of zero while held).
    loom::model(|| {
        let breaker = CircuitBreaker::builder()
            .build_with_clock(ManualClock::new())
            .expect("valid settings");
        let node = Arc::new(ModelNode::entered(breaker));
        let phase = Arc::new(AtomicU8::new(IN));
        let holder = {
            let (node, phase) = (node.clone(), phase.clone());
            thread::spawn(move || {
                assert!(node.enter_on(0), "a held node is never retired");
                node.exit_on(1);
                phase.store(DONE, Ordering::SeqCst);
                node.exit_on(0);
            })
        };
        let evictor = {
            let (node, phase) = (node.clone(), phase.clone());
            thread::spawn(move || {
                let claimed = node.retire();
                if claimed {
                    assert_eq!(phase.load(Ordering::SeqCst), DONE, "claimed while held");
                }
                claimed
            })
        };
        holder.join().expect("no model thread panics");
        let claimed = evictor.join().expect("no model thread panics");
        assert_eq!(node.users(), 0);
        assert_eq!(node.retired(), claimed);
        if !claimed {
            assert!(node.retire());
        }
    });
}
