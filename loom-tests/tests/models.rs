//! Loom models of the cutout core, driving its public API.
//!
//! Built only with `--cfg cutout_loom` (see `../run.sh`): the core then takes its atomics
//! from loom, and loom runs every model under every interleaving of the state word's
//! loads and compare-exchanges (up to `LOOM_MAX_PREEMPTIONS` preemptions).
//!
//! Time comes from a [`ManualClock`], moved only by the model's main thread before it
//! spawns or after it joins, so each model's threads see one fixed time. Listeners count
//! with std types; loom runs its threads one at a time on one OS thread, and no listener
//! blocks, so they never contend.
//!
//! Every model ends with [`Fixture::settled`], which checks what must hold once calls are
//! quiet: the counters add up, every transition was reported exactly once (the generation
//! counts them), `trips` equals the transitions into open, the state is the last
//! transition's target, and no probe slot is held.

#![cfg(cutout_loom)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cutout::{
    Builder, CallError, Cause, CircuitBreaker, Listener, ManualClock, Outcome, OwnedPermit,
    Rejected, SlidingWindow, State, Stats, Transition,
};
use loom::thread;

/// The open time of every model's breaker (constant, no jitter).
const OPEN: Duration = Duration::from_secs(1);
/// The probe lease of every model's breaker (1024 ms once rounded to its 256 ms unit).
const LEASE: Duration = Duration::from_secs(1);

/// Records every transition it is told of.
#[derive(Debug, Default)]
struct Log {
    transitions: Mutex<Vec<Transition>>,
    call_events: bool,
}

impl Listener for Log {
    fn on_transition(&self, _breaker: &str, transition: &Transition) {
        self.transitions
            .lock()
            .expect("no listener panics while holding the log")
            .push(*transition);
    }

    fn wants_call_events(&self) -> bool {
        self.call_events
    }
}

impl Log {
    /// Every transition, in the order they happened.
    ///
    /// Each is reported once, by the thread whose compare-exchange made it, after the write:
    /// a thread preempted between its write and its report may report after a later
    /// transition. The generation orders them (the models never wrap it).
    fn all(&self) -> Vec<Transition> {
        let mut all = self
            .transitions
            .lock()
            .expect("no listener panics while holding the log")
            .clone();
        all.sort_by_key(|t| t.generation);
        all
    }

    fn edges(&self) -> Vec<(State, State, Cause)> {
        self.all().iter().map(|t| (t.from, t.to, t.cause)).collect()
    }

    fn count(&self, cause: impl Fn(&Cause) -> bool) -> usize {
        self.all().iter().filter(|t| cause(&t.cause)).count()
    }
}

struct Fixture {
    breaker: CircuitBreaker,
    clock: ManualClock,
    log: Arc<Log>,
}

impl Fixture {
    /// A breaker with `OPEN`, `LEASE` and the given settings, on a clock at zero.
    fn new(configure: impl FnOnce(Builder) -> Builder) -> Self {
        Self::with_call_events(false, configure)
    }

    /// As [`Fixture::new`]; `call_events` makes the listener ask for per-call events, which
    /// sends every record through the breaker's slow path.
    fn with_call_events(call_events: bool, configure: impl FnOnce(Builder) -> Builder) -> Self {
        let clock = ManualClock::new();
        let log = Arc::new(Log {
            transitions: Mutex::new(Vec::new()),
            call_events,
        });
        let builder = CircuitBreaker::builder()
            .open_duration(OPEN)
            .probe_lease(LEASE)
            .listener(log.clone());
        let breaker = configure(builder)
            .build_with_clock(clock.clone())
            .expect("the models' settings are valid");
        Self {
            breaker,
            clock,
            log,
        }
    }

    /// Trips the breaker (threshold 1) from the main thread and lets the open time pass.
    fn trip_and_wait(&self) {
        assert_eq!(
            self.breaker.call(|| Err::<(), _>("down")),
            Err(CallError::Inner("down"))
        );
        assert_eq!(self.breaker.state(), State::Open);
        self.clock.advance(OPEN);
    }

    /// What must hold once every call is done; `attempts` is every acquire ever made.
    fn settled(&self, attempts: u64) -> Stats {
        let s = self.breaker.stats();
        let log = self.log.all();
        assert_eq!(
            s.admitted,
            s.successes + s.failures + s.ignored,
            "every admitted call reports one outcome: {s:?}"
        );
        assert_eq!(s.admitted + s.rejected, attempts, "{s:?}");
        assert_eq!(
            usize::from(s.generation),
            log.len(),
            "one generation per transition, each reported once: {s:?} {log:?}"
        );
        assert_eq!(
            s.trips,
            log.iter().filter(|t| t.to == State::Open).count() as u64,
            "{s:?} {log:?}"
        );
        assert_eq!(
            s.state,
            log.last().map_or(State::Closed, |t| t.to),
            "{s:?} {log:?}"
        );
        assert_eq!(s.probes_in_flight, 0, "every slot back: {s:?}");
        for pair in log.windows(2) {
            assert_eq!(pair[0].to, pair[1].from, "transitions chain: {log:?}");
            assert_eq!(pair[0].generation + 1, pair[1].generation, "{log:?}");
        }
        s
    }
}

/// The edges of one trip on the failure rate, `failures` of `calls`.
fn rate_trip(failures: u32, calls: u32) -> [(State, State, Cause); 1] {
    [(
        State::Closed,
        State::Open,
        Cause::FailureRate { failures, calls },
    )]
}

/// Runs `f` under loom with at most `max` preemptions (fewer if `LOOM_MAX_PREEMPTIONS`
/// says so): for the models whose threads touch a window's atomics besides the state word,
/// where each preemption more multiplies the run time many times over.
fn model_with_at_most(max: usize, f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(builder.preemption_bound.map_or(max, |b| b.min(max)));
    builder.check(f);
}

/// `n` threads each make one call that fails; the breaker trips at 2.
fn threads_fail_at_once(call_events: bool) {
    loom::model(move || {
        let f = Fixture::with_call_events(call_events, |b| b.failure_threshold(2));
        let handles: Vec<_> = (0..3)
            .map(|_| {
                let breaker = f.breaker.clone();
                thread::spawn(move || breaker.call(|| Err::<(), _>(())))
            })
            .collect();
        let mut admitted = 0;
        for h in handles {
            match h.join().expect("no model thread panics") {
                Err(CallError::Inner(())) => admitted += 1,
                Err(CallError::Rejected(Rejected::Open { retry_after })) => {
                    assert_eq!(retry_after, OPEN)
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        // The first two failures trip it; the rejected calls came after the trip.
        assert!(admitted >= 2, "{admitted}");
        assert_eq!(
            f.log.edges(),
            [(
                State::Closed,
                State::Open,
                Cause::ConsecutiveFailures { failures: 2 }
            )]
        );
        let s = f.settled(3);
        assert_eq!(s.trips, 1);
        assert_eq!(s.admitted, admitted);
        assert_eq!(s.failures, admitted);
        // A failure admitted before the trip and reported after it is stale.
        assert_eq!(s.stale, admitted - 2);
        assert_eq!(s.rejected, 3 - admitted);
    });
}

#[test]
fn threads_failing_at_once_trip_exactly_once() {
    threads_fail_at_once(false);
}

#[test]
fn threads_failing_at_once_trip_exactly_once_with_call_events() {
    threads_fail_at_once(true);
}

/// Three callers race for two probe slots; nobody reports while they race.
#[test]
fn half_open_admits_exactly_n_racing_callers() {
    loom::model(|| {
        let f = Fixture::new(|b| {
            b.failure_threshold(1)
                .half_open_max_calls(2)
                .success_threshold(2)
        });
        f.trip_and_wait();
        let handles: Vec<_> = (0..3)
            .map(|_| {
                let breaker = f.breaker.clone();
                thread::spawn(move || breaker.try_acquire_owned())
            })
            .collect();
        let mut permits: Vec<OwnedPermit> = Vec::new();
        let mut rejected = 0;
        for h in handles {
            match h.join().expect("no model thread panics") {
                Ok(p) => permits.push(p),
                Err(Rejected::HalfOpenFull { retry_after }) => {
                    // Lease: 1000 ms from t = 1000, rounded up to 2048.
                    assert_eq!(retry_after, Duration::from_millis(1048));
                    rejected += 1;
                }
                Err(other) => panic!("unexpected {other}"),
            }
        }
        assert_eq!((permits.len(), rejected), (2, 1));
        assert!(permits.iter().all(|p| p.generation() == 2));
        let s = f.breaker.stats();
        assert_eq!((s.state, s.probes_in_flight), (State::HalfOpen, 2));
        assert_eq!(f.log.count(|c| *c == Cause::OpenTimeElapsed), 1);

        // One probe succeeds, one is dropped (cancelled): both slots come back.
        permits.pop().expect("two permits").record(Outcome::Success);
        drop(permits);
        let s = f.settled(4);
        assert_eq!((s.state, s.half_open_successes), (State::HalfOpen, 1));
        assert_eq!((s.successes, s.failures, s.ignored), (1, 1, 1));
    });
}

/// Three threads each take a probe (two slots) and finish it differently: success,
/// failure, drop. No more than two are ever in flight, and every slot comes back.
#[test]
fn half_open_probes_finish_fail_or_drop() {
    loom::model(|| {
        let f = Fixture::new(|b| {
            b.failure_threshold(1)
                .half_open_max_calls(2)
                .success_threshold(2)
        });
        f.trip_and_wait();
        let in_flight = Arc::new(AtomicUsize::new(0));
        let finishes: [Option<Outcome>; 3] = [Some(Outcome::Success), Some(Outcome::Failure), None];
        let handles: Vec<_> = finishes
            .into_iter()
            .map(|finish| {
                let breaker = f.breaker.clone();
                let in_flight = in_flight.clone();
                thread::spawn(move || {
                    let Ok(permit) = breaker.try_acquire() else {
                        return false;
                    };
                    // Counted after admission, uncounted before release: never above the
                    // probes the breaker holds.
                    let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                    assert!(now <= 2, "{now} probes in flight");
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                    match finish {
                        Some(outcome) => permit.record(outcome),
                        None => drop(permit),
                    }
                    true
                })
            })
            .collect();
        let admitted: Vec<bool> = handles
            .into_iter()
            .map(|h| h.join().expect("no model thread panics"))
            .collect();
        let s = f.settled(4);
        // Only the failing probe can re-open; nothing else moves the state.
        if admitted[1] {
            assert_eq!(s.state, State::Open);
            assert_eq!(s.backoff_step, 1);
            assert_eq!(
                f.log.edges().last(),
                Some(&(
                    State::HalfOpen,
                    State::Open,
                    Cause::ProbeFailed { backoff: 1 }
                ))
            );
        } else {
            assert_eq!(s.state, State::HalfOpen);
            assert_eq!(s.trips, 1);
        }
        assert_eq!(
            s.admitted,
            1 + admitted.iter().filter(|a| **a).count() as u64
        );
    });
}

/// Two probes out (two slots, one success closes); their success and failure race.
/// Exactly one decides, the other is stale.
#[test]
fn success_and_failure_race_in_half_open() {
    loom::model(|| {
        let f = Fixture::new(|b| {
            b.failure_threshold(1)
                .half_open_max_calls(2)
                .success_threshold(1)
        });
        f.trip_and_wait();
        let p1 = f.breaker.try_acquire_owned().expect("first probe");
        let p2 = f.breaker.try_acquire_owned().expect("second probe");
        let a = thread::spawn(move || p1.record(Outcome::Success));
        let b = thread::spawn(move || p2.record(Outcome::Failure));
        a.join().expect("no model thread panics");
        b.join().expect("no model thread panics");
        let s = f.settled(3);
        assert_eq!(s.stale, 1);
        match s.state {
            State::Closed => {
                assert_eq!(
                    f.log.edges().last(),
                    Some(&(
                        State::HalfOpen,
                        State::Closed,
                        Cause::ProbesSucceeded { successes: 1 }
                    ))
                );
                assert_eq!((s.trips, s.backoff_step), (1, 0));
            }
            State::Open => {
                assert_eq!(
                    f.log.edges().last(),
                    Some(&(
                        State::HalfOpen,
                        State::Open,
                        Cause::ProbeFailed { backoff: 1 }
                    ))
                );
                assert_eq!((s.trips, s.backoff_step), (2, 1));
            }
            other => panic!("unexpected {other}"),
        }
    });
}

/// The only probe's lease has run out. Its late result races a new caller, which gives
/// the probe up. `late` is the late result.
fn lease_expiry_races_late_result(late: Outcome) {
    loom::model(move || {
        let f = Fixture::new(|b| b.failure_threshold(1).half_open_max_calls(1));
        f.trip_and_wait();
        let probe = f.breaker.try_acquire_owned().expect("the probe");
        // The lease ends at 2048 ms; now is 3000 ms.
        f.clock.advance(Duration::from_secs(2));
        let a = thread::spawn(move || probe.record(late));
        let breaker = f.breaker.clone();
        let b = thread::spawn(move || match breaker.try_acquire() {
            Ok(p) => {
                p.record(Outcome::Success);
                true
            }
            Err(Rejected::Open { .. }) => false,
            Err(other) => panic!("unexpected {other}"),
        });
        a.join().expect("no model thread panics");
        let b_admitted = b.join().expect("no model thread panics");
        let s = f.settled(3);
        let expired = f
            .log
            .count(|c| *c == Cause::ProbeLeaseExpired { probes_lost: 1 });
        // Given up first: the late result is stale, whatever it says.
        assert_eq!(s.stale, expired as u64);
        match (expired, late) {
            (1, _) => {
                assert!(b_admitted);
                assert_eq!(s.state, State::Closed);
                assert_eq!(s.trips, 1);
            }
            (0, Outcome::Success) => {
                // The late success closed it; the new caller went through closed.
                assert!(b_admitted);
                assert_eq!(s.state, State::Closed);
                assert_eq!(s.generation, 3);
            }
            (0, Outcome::Failure) => {
                // The late failure re-opened it (for another second): the caller is refused.
                assert!(!b_admitted);
                assert_eq!((s.state, s.trips, s.backoff_step), (State::Open, 2, 1));
            }
            other => panic!("unexpected {other:?}"),
        }
    });
}

#[test]
fn lease_expiry_races_late_success() {
    lease_expiry_races_late_result(Outcome::Success);
}

#[test]
fn lease_expiry_races_late_failure() {
    lease_expiry_races_late_result(Outcome::Failure);
}

/// Two results from generation 0 (closed, before a trip) race a probe that moves the
/// breaker through half-open. Neither changes any state: a counted failure would re-open,
/// a counted success would close (two successes needed, one real).
#[test]
fn old_generation_results_race_transitions() {
    loom::model(|| {
        let f = Fixture::new(|b| {
            b.failure_threshold(1)
                .half_open_max_calls(2)
                .success_threshold(2)
        });
        let old_failure = f.breaker.try_acquire_owned().expect("closed admits");
        let old_success = f.breaker.try_acquire_owned().expect("closed admits");
        f.trip_and_wait();
        let a = thread::spawn(move || old_failure.record(Outcome::Failure));
        let b = thread::spawn(move || old_success.record(Outcome::Success));
        let breaker = f.breaker.clone();
        let c = thread::spawn(move || breaker.call(|| Ok::<_, ()>(())));
        a.join().expect("no model thread panics");
        b.join().expect("no model thread panics");
        assert_eq!(c.join().expect("no model thread panics"), Ok(()));
        let s = f.settled(4);
        assert_eq!(s.stale, 2);
        assert_eq!(
            (s.state, s.half_open_successes, s.trips),
            (State::HalfOpen, 1, 1)
        );
        assert_eq!(
            f.log.edges(),
            [
                (
                    State::Closed,
                    State::Open,
                    Cause::ConsecutiveFailures { failures: 1 }
                ),
                (State::Open, State::HalfOpen, Cause::OpenTimeElapsed),
            ]
        );
    });
}

/// `force_open` then `reset` race a failing and a succeeding call (threshold 1).
#[test]
fn force_open_and_reset_race_traffic() {
    loom::model(|| {
        let f = Fixture::new(|b| b.failure_threshold(1));
        let breaker = f.breaker.clone();
        let admin = thread::spawn(move || {
            breaker.force_open();
            breaker.reset();
        });
        let calls: Vec<_> = [false, true]
            .into_iter()
            .map(|ok| {
                let breaker = f.breaker.clone();
                thread::spawn(move || breaker.call(|| if ok { Ok(()) } else { Err(()) }))
            })
            .collect();
        admin.join().expect("no model thread panics");
        let mut rejected = 0;
        for h in calls {
            match h.join().expect("no model thread panics") {
                Ok(()) | Err(CallError::Inner(())) => {}
                Err(CallError::Rejected(Rejected::ForcedOpen | Rejected::Open { .. })) => {
                    rejected += 1
                }
                Err(other) => panic!("unexpected {other:?}"),
            }
        }
        let s = f.settled(2);
        assert_eq!(s.rejected, rejected);
        let edges = f.log.edges();
        // The admin's two transitions happen exactly once each, in order.
        assert_eq!(f.log.count(|c| *c == Cause::ForcedOpen), 1);
        assert_eq!(f.log.count(|c| *c == Cause::Reset), 1);
        // A trip can only come from the one failing call.
        assert!(s.trips <= 1);
        match s.state {
            State::Closed => assert_eq!(
                edges.last(),
                Some(&(State::ForcedOpen, State::Closed, Cause::Reset))
            ),
            State::Open => assert_eq!(
                edges.last(),
                Some(&(
                    State::Closed,
                    State::Open,
                    Cause::ConsecutiveFailures { failures: 1 }
                ))
            ),
            other => panic!("unexpected {other}"),
        }
    });
}

/// `force_closed` races a thread failing twice (threshold 1): once forced closed, nothing
/// trips, and forced closed is where it ends.
#[test]
fn force_closed_races_failures() {
    loom::model(|| {
        let f = Fixture::new(|b| b.failure_threshold(1));
        let breaker = f.breaker.clone();
        let admin = thread::spawn(move || breaker.force_closed());
        let breaker = f.breaker.clone();
        let caller = thread::spawn(move || {
            [(); 2].map(|()| match breaker.call(|| Err::<(), _>(())) {
                Err(CallError::Inner(())) => true,
                Err(CallError::Rejected(Rejected::Open { .. })) => false,
                other => panic!("unexpected {other:?}"),
            })
        });
        admin.join().expect("no model thread panics");
        let admitted = caller.join().expect("no model thread panics");
        let s = f.settled(2);
        assert_eq!((s.state, s.consecutive_failures), (State::ForcedClosed, 0));
        assert_eq!(f.log.count(|c| *c == Cause::ForcedClosed), 1);
        // The first call is always admitted. It trips the breaker only if it reports
        // before the force; the second is refused only if it also comes before the force.
        assert!(admitted[0]);
        assert_eq!(s.rejected, u64::from(!admitted[1]));
        if !admitted[1] {
            assert_eq!(s.trips, 1);
        }
        // The first failure trips (reported before the force), is stale (admitted before,
        // reported after) or counts nothing (admitted after); the second is never stale.
        assert!(s.trips + s.stale <= 1, "{s:?}");
    });
}

/// Closed traffic of every kind from two threads, one of them resetting: the counters add
/// up and a failure never trips below the threshold.
#[test]
fn closed_counters_add_up() {
    loom::model(|| {
        let f = Fixture::new(|b| b.failure_threshold(3));
        let breaker = f.breaker.clone();
        let a = thread::spawn(move || {
            assert_eq!(breaker.call(|| Err::<(), _>(())), Err(CallError::Inner(())));
            breaker.reset();
            drop(breaker.try_acquire().expect("closed admits"));
        });
        let breaker = f.breaker.clone();
        let b = thread::spawn(move || {
            assert_eq!(breaker.call(|| Err::<(), _>(())), Err(CallError::Inner(())));
            assert_eq!(breaker.call(|| Ok::<_, ()>(7)), Ok(7));
        });
        a.join().expect("no model thread panics");
        b.join().expect("no model thread panics");
        let s = f.settled(4);
        assert_eq!(
            (s.successes, s.failures, s.ignored, s.rejected),
            (1, 2, 1, 0)
        );
        assert_eq!((s.state, s.trips, s.generation), (State::Closed, 0, 0));
        // Each failure is followed, in its own thread, by a reset or a success, which
        // clears the count whatever came between.
        assert_eq!(s.consecutive_failures, 0, "{s:?}");
    });
}

/// Three calls race into a count window of two slots (failure rate 100 %, minimum 2): one
/// failure can never fill it with failures, so nothing trips. Then the window is flushed
/// sequentially: its running totals must come out exact, so none of the racing changes was
/// lost or counted twice.
#[test]
fn count_window_totals_survive_racing_calls() {
    model_with_at_most(2, || {
        let f = Fixture::new(|b| {
            b.failure_threshold(100)
                .sliding_window(SlidingWindow::Calls(2))
                .failure_rate(1.0)
                .minimum_calls(2)
        });
        let handles: Vec<_> = [false, true, true]
            .into_iter()
            .map(|ok| {
                let breaker = f.breaker.clone();
                thread::spawn(move || breaker.call(|| if ok { Ok(()) } else { Err(()) }).is_ok())
            })
            .collect();
        for h in handles {
            h.join().expect("no model thread panics");
        }
        assert_eq!(f.breaker.state(), State::Closed);
        let w = f.breaker.window_stats().expect("a rate is set");
        assert_eq!(w.calls, 2, "{w:?}");
        assert!(w.failures <= 1, "{w:?}");
        for _ in 0..2 {
            assert_eq!(f.breaker.call(|| Ok::<_, ()>(())), Ok(()));
        }
        let w = f.breaker.window_stats().expect("a rate is set");
        assert_eq!((w.calls, w.failures), (2, 0));
        for _ in 0..2 {
            assert_eq!(
                f.breaker.call(|| Err::<(), _>(())),
                Err(CallError::Inner(()))
            );
        }
        assert_eq!(f.log.edges(), rate_trip(2, 2));
        f.settled(7);
    });
}

/// Two failures race into a count window (rate 50 %, minimum 2): the rate trips the
/// breaker exactly once, on both failures.
#[test]
fn failure_rate_trips_exactly_once() {
    model_with_at_most(2, || {
        let f = Fixture::new(|b| {
            b.failure_threshold(100)
                .sliding_window(SlidingWindow::Calls(4))
                .failure_rate(0.5)
                .minimum_calls(2)
        });
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let breaker = f.breaker.clone();
                thread::spawn(move || breaker.call(|| Err::<(), _>(())))
            })
            .collect();
        for h in handles {
            // One failure alone is below the minimum: both are admitted.
            assert_eq!(
                h.join().expect("no model thread panics"),
                Err(CallError::Inner(()))
            );
        }
        assert_eq!(f.log.edges(), rate_trip(2, 2));
        let s = f.settled(2);
        assert_eq!((s.state, s.trips, s.stale), (State::Open, 1, 0));
    });
}

/// A success and a failure race into one time-window bucket that a first success started
/// (rate 50 %, minimum 3): the success may take the inline path (one compare-exchange of
/// the bucket's count) or, when it sees the failure's pending rate, the judged path. Either
/// way both are counted exactly once and nothing trips; the next failure, two of four,
/// trips exactly once.
#[test]
fn time_window_counts_a_racing_success_and_failure_once() {
    model_with_at_most(2, || {
        let f = Fixture::new(|b| {
            b.failure_threshold(100)
                .sliding_window(SlidingWindow::Time {
                    span: Duration::from_secs(2),
                    buckets: 2,
                })
                .failure_rate(0.5)
                .minimum_calls(3)
        });
        assert_eq!(f.breaker.call(|| Ok::<_, ()>(())), Ok(()));
        let handles: Vec<_> = [true, false]
            .into_iter()
            .map(|ok| {
                let breaker = f.breaker.clone();
                thread::spawn(move || breaker.call(|| if ok { Ok(()) } else { Err(()) }).is_ok())
            })
            .collect();
        let oks: Vec<bool> = handles
            .into_iter()
            .map(|h| h.join().expect("no model thread panics"))
            .collect();
        assert_eq!(oks, [true, false]);
        assert_eq!(f.breaker.state(), State::Closed);
        let w = f.breaker.window_stats().expect("a rate is set");
        assert_eq!((w.calls, w.failures), (3, 1));
        assert_eq!(
            f.breaker.call(|| Err::<(), _>(())),
            Err(CallError::Inner(()))
        );
        assert_eq!(f.log.edges(), rate_trip(2, 4));
        f.settled(4);
    });
}

/// A result of a closed period races the next closed period's calls. Whatever the result
/// does (dropped, or counted in the new window), it must not empty the new period's window:
/// the two failures of the new period must trip it (rate 50 %, minimum 2).
#[test]
fn old_closed_result_does_not_empty_the_new_window() {
    model_with_at_most(2, || {
        let f = Fixture::new(|b| {
            b.failure_threshold(100)
                .sliding_window(SlidingWindow::Calls(4))
                .failure_rate(0.5)
                .minimum_calls(2)
        });
        // Closed generation 2; the window has not been fed since generation 0.
        f.breaker.force_open();
        f.breaker.reset();
        let old = f.breaker.try_acquire_owned().expect("closed admits");
        let a = thread::spawn(move || old.record(Outcome::Success));
        let breaker = f.breaker.clone();
        let b = thread::spawn(move || {
            // Closed generation 4, then two failures in it.
            breaker.force_open();
            breaker.reset();
            for _ in 0..2 {
                assert_eq!(breaker.call(|| Err::<(), _>(())), Err(CallError::Inner(())));
            }
        });
        a.join().expect("no model thread panics");
        b.join().expect("no model thread panics");
        let s = f.settled(3);
        assert_eq!((s.state, s.trips), (State::Open, 1), "{:?}", f.log.edges());
    });
}

/// Two failures race over the count window's lap boundary (two slots, the cursor one call
/// in): one takes the lap's last slot and takes the lap back off the cursor, the other
/// takes the next lap's first slot before or after that. They must land in the two
/// different slots, replacing the success (rate 100 %, minimum 2: the breaker trips once,
/// on both), and the cursor must come out on the ring: after a reset, a success and two
/// failures trip it again only once the second failure has pushed the success out.
#[test]
fn count_window_cursor_wraps_under_racing_calls() {
    model_with_at_most(2, || {
        let f = Fixture::new(|b| {
            b.failure_threshold(100)
                .sliding_window(SlidingWindow::Calls(2))
                .failure_rate(1.0)
                .minimum_calls(2)
        });
        assert_eq!(f.breaker.call(|| Ok::<_, ()>(())), Ok(()));
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let breaker = f.breaker.clone();
                thread::spawn(move || breaker.call(|| Err::<(), _>(())))
            })
            .collect();
        for h in handles {
            assert_eq!(
                h.join().expect("no model thread panics"),
                Err(CallError::Inner(()))
            );
        }
        let two_of_two = Cause::FailureRate {
            failures: 2,
            calls: 2,
        };
        assert_eq!(f.log.edges(), [(State::Closed, State::Open, two_of_two)]);
        f.breaker.reset();
        assert_eq!(f.breaker.call(|| Ok::<_, ()>(())), Ok(()));
        assert_eq!(
            f.breaker.call(|| Err::<(), _>(())),
            Err(CallError::Inner(()))
        );
        let w = f.breaker.window_stats().expect("a rate is set");
        assert_eq!((w.calls, w.failures), (2, 1));
        assert_eq!(f.breaker.state(), State::Closed);
        assert_eq!(
            f.breaker.call(|| Err::<(), _>(())),
            Err(CallError::Inner(()))
        );
        assert_eq!(f.breaker.state(), State::Open);
        assert_eq!(
            f.log.edges().last(),
            Some(&(State::Closed, State::Open, two_of_two))
        );
        f.settled(6);
    });
}

/// A fleet's remote hold (`hold_open`) races a local failure that trips the breaker: exactly
/// one transition into open, whoever wins, and the loser changes nothing (a failure admitted
/// before the hold is stale; one admitted after is rejected).
#[test]
fn remote_hold_races_a_local_trip() {
    loom::model(|| {
        let f = Fixture::new(|b| b.failure_threshold(1));
        let breaker = f.breaker.clone();
        let remote = thread::spawn(move || breaker.hold_open(OPEN));
        let breaker = f.breaker.clone();
        let local = thread::spawn(move || breaker.call(|| Err::<(), _>(())));
        let held = remote.join().expect("no model thread panics");
        let called = local.join().expect("no model thread panics");
        let edges = f.log.edges();
        assert_eq!(edges.len(), 1, "{edges:?}");
        let (from, to, cause) = edges[0];
        assert_eq!((from, to), (State::Closed, State::Open));
        match cause {
            // The hold won; the failure was stale or rejected.
            Cause::Remote => assert!(held),
            // The trip won; the hold only lengthened the open time, or found it long enough.
            Cause::ConsecutiveFailures { failures: 1 } => {
                assert_eq!(called, Err(CallError::Inner(())))
            }
            other => panic!("unexpected {other:?}"),
        }
        let s = f.settled(1);
        assert_eq!(s.trips, 1);
        assert_eq!(s.state, State::Open);
    });
}

/// A live reconfiguration races two half-open probes and a failure count. Thread A lowers
/// the failure threshold from 3 to 2 and the probe limit from 2 to 1; threads B and C
/// each ask for a probe of a half-open period. Whatever the order, each decision is made
/// under one whole set of settings: at most 2 probes (the old limit) and at least 1 are
/// admitted, and with the swap before both asks exactly 1; nothing is lost or counted
/// twice, and after the probes succeed (closing at the success threshold 1), two failures
/// trip under the new threshold, exactly once.
#[test]
fn reconfigure_races_half_open_probes() {
    loom::model(|| {
        let f = Fixture::new(|b| {
            b.failure_threshold(1)
                .success_threshold(1)
                .half_open_max_calls(2)
        });
        f.trip_and_wait();
        let swap = {
            let breaker = f.breaker.clone();
            thread::spawn(move || {
                breaker
                    .reconfigure(
                        CircuitBreaker::builder()
                            .open_duration(OPEN)
                            .probe_lease(LEASE)
                            .failure_threshold(2)
                            .success_threshold(1)
                            .half_open_max_calls(1),
                    )
                    .expect("valid settings");
            })
        };
        let probes: Vec<_> = (0..2)
            .map(|_| {
                let breaker = f.breaker.clone();
                thread::spawn(move || breaker.try_acquire_owned().ok())
            })
            .collect();
        swap.join().expect("no model thread panics");
        let permits: Vec<OwnedPermit> = probes
            .into_iter()
            .filter_map(|h| h.join().expect("no model thread panics"))
            .collect();
        assert!((1..=2).contains(&permits.len()), "{}", permits.len());
        for p in permits {
            p.record(Outcome::Success);
        }
        assert_eq!(f.breaker.state(), State::Closed);
        f.breaker
            .try_acquire()
            .expect("closed")
            .record(Outcome::Failure);
        assert_eq!(f.breaker.state(), State::Closed, "the new threshold is 2");
        f.breaker
            .try_acquire()
            .expect("closed")
            .record(Outcome::Failure);
        assert_eq!(f.breaker.state(), State::Open);
        let s = f.settled(5);
        assert_eq!(s.trips, 2);
    });
}

/// A live change of the failure rate races the failure that reaches it. Count window of 4,
/// minimum 4, rate 75 %; the window holds a failure and two successes. Thread A lowers the
/// rate to 50 % (and judges the window at once); thread B records a failure, 2 of 4. Under
/// 75 % that is below, under 50 % it trips: whichever judges last under the new rate sees
/// 2 of 4, so the circuit trips in every order, exactly once.
#[test]
fn reconfigured_rate_races_the_failure_that_reaches_it() {
    let settings = |b: Builder, rate: f64| {
        b.failure_threshold(100)
            .sliding_window(SlidingWindow::Calls(4))
            .failure_rate(rate)
            .minimum_calls(4)
    };
    model_with_at_most(2, move || {
        let f = Fixture::new(|b| settings(b, 0.75));
        for outcome in [Outcome::Failure, Outcome::Success, Outcome::Success] {
            f.breaker.try_acquire().expect("closed").record(outcome);
        }
        let change = {
            let breaker = f.breaker.clone();
            thread::spawn(move || {
                let builder = CircuitBreaker::builder()
                    .open_duration(OPEN)
                    .probe_lease(LEASE);
                breaker
                    .reconfigure(settings(builder, 0.5))
                    .expect("valid settings");
            })
        };
        let failure = {
            let breaker = f.breaker.clone();
            thread::spawn(move || breaker.call(|| Err::<(), _>(())))
        };
        change.join().expect("no model thread panics");
        assert_eq!(
            failure.join().expect("no model thread panics"),
            Err(CallError::Inner(()))
        );
        assert_eq!(f.log.edges(), rate_trip(2, 4));
        let s = f.settled(4);
        assert_eq!((s.state, s.trips, s.stale), (State::Open, 1, 0));
    });
}

/// The `&'static` handle (`CircuitBreaker::leak`, what tower-cutout's fast layer holds):
/// two threads race for the one probe slot through copies of the reference, with borrowed
/// `Permit<'static>`s and no reference count. The success's permit is sent to another
/// thread before it records (as a response future moves to another task); the other
/// permit is dropped (a cancelled call). Exactly one probe holds the slot at a time, and
/// the slot always comes back.
#[test]
fn static_handle_permits_race_and_move_between_threads() {
    loom::model(|| {
        let f = Fixture::new(|b| {
            b.failure_threshold(1)
                .half_open_max_calls(1)
                .success_threshold(1)
        });
        f.trip_and_wait();
        let breaker: &'static CircuitBreaker = f.breaker.clone().leak();
        let succeeds = thread::spawn(move || {
            let permit: cutout::Permit<'static> = breaker.try_acquire().ok()?;
            let generation = permit.generation();
            thread::spawn(move || permit.record(Outcome::Success))
                .join()
                .expect("no model thread panics");
            Some(generation)
        });
        let cancelled = thread::spawn(move || match breaker.try_acquire() {
            Ok(permit) => {
                drop(permit);
                true
            }
            Err(Rejected::HalfOpenFull { .. }) => false,
            Err(other) => panic!("unexpected {other}"),
        });
        let succeeded = succeeds.join().expect("no model thread panics");
        let dropped = cancelled.join().expect("no model thread panics");
        let s = f.settled(3);
        match succeeded {
            // The success was a probe of the half-open generation, and closed the circuit.
            Some(generation) => {
                assert_eq!(generation, 2);
                assert_eq!(s.state, State::Closed);
                assert_eq!((s.successes, s.ignored), (1, u64::from(dropped)));
            }
            // Turned away: the other thread held the slot then, and gave it back.
            None => {
                assert!(dropped);
                assert_eq!((s.state, s.probes, s.ignored), (State::HalfOpen, 1, 1));
            }
        }
    });
}
