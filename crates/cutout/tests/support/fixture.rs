//! A breaker on a manual clock with a transition log, for the tests of transitions.
//!
//! Include with `#[path = "support/fixture.rs"] mod fixture;` and `use fixture::Fixture;`.
//! Each test binary uses a part of it; the rest is dead code there.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use cutout::{Cause, CircuitBreaker, ManualClock, Outcome, State, Transition};

/// A breaker on a manual clock with a transition log.
pub(crate) struct Fixture {
    pub(crate) breaker: CircuitBreaker,
    pub(crate) clock: ManualClock,
    pub(crate) log: Arc<Mutex<Vec<Transition>>>,
}

impl Fixture {
    pub(crate) fn new(builder: cutout::Builder) -> Self {
        let clock = ManualClock::new();
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        let breaker = builder
            .on_transition(move |t| sink.lock().unwrap().push(*t))
            .build_with_clock(clock.clone())
            .unwrap();
        Fixture {
            breaker,
            clock,
            log,
        }
    }

    /// (from, to, cause) of every transition so far.
    pub(crate) fn transitions(&self) -> Vec<(State, State, Cause)> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .map(|t| (t.from, t.to, t.cause))
            .collect()
    }

    pub(crate) fn fail(&self) {
        self.breaker.try_acquire().unwrap().record(Outcome::Failure);
    }

    pub(crate) fn succeed(&self) {
        self.breaker.try_acquire().unwrap().record(Outcome::Success);
    }
}
