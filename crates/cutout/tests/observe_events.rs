//! The typed events: every kind is delivered exactly once with the data that caused it, a
//! listener can take rejections without outcomes, names are final at build time, and no event
//! allocates.

// The counting allocator (tests/support) implements an unsafe trait.
#![allow(unsafe_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cutout::{Cause, CircuitBreaker, Listener, ManualClock, Outcome, Rejected, State, Transition};

#[path = "support/counting_alloc.rs"]
mod counting_alloc;
use counting_alloc::allocations_in;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[derive(Debug, Clone, PartialEq)]
enum Event {
    Transitioned(String, Fields),
    Rejection(String, Rejected),
    Probe(String, u16),
    Recorded(String, Outcome, bool),
}

/// Logs every event; `recorded` says whether it wants outcome events.
struct Log {
    events: Mutex<Vec<Event>>,
    recorded: bool,
}

impl Log {
    fn new(recorded: bool) -> Arc<Self> {
        Arc::new(Log {
            events: Mutex::new(Vec::new()),
            recorded,
        })
    }

    fn take(&self) -> Vec<Event> {
        std::mem::take(&mut *self.events.lock().unwrap())
    }
}

impl Listener for Log {
    fn on_transition(&self, breaker: &str, t: &Transition) {
        let fields = (t.from, t.to, t.cause, t.generation, t.at, t.open_for);
        let e = Event::Transitioned(breaker.into(), fields);
        self.events.lock().unwrap().push(e);
    }
    fn on_rejected(&self, breaker: &str, r: &Rejected) {
        let e = Event::Rejection(breaker.into(), *r);
        self.events.lock().unwrap().push(e);
    }
    fn on_probe_admitted(&self, breaker: &str, generation: u16) {
        let e = Event::Probe(breaker.into(), generation);
        self.events.lock().unwrap().push(e);
    }
    fn on_recorded(&self, breaker: &str, outcome: Outcome, stale: bool) {
        let e = Event::Recorded(breaker.into(), outcome, stale);
        self.events.lock().unwrap().push(e);
    }
    fn wants_recorded_events(&self) -> bool {
        self.recorded
    }
}

/// A transition's public fields, in order: from, to, cause, generation, at, open_for.
type Fields = (State, State, Cause, u16, Duration, Option<Duration>);

fn transition(
    from: State,
    to: State,
    cause: Cause,
    generation: u16,
    at: u64,
    open_for: Option<u64>,
) -> Event {
    let fields = (from, to, cause, generation, ms(at), open_for.map(ms));
    Event::Transitioned("pay".into(), fields)
}

fn breaker(clock: &ManualClock, listener: Arc<Log>) -> CircuitBreaker {
    CircuitBreaker::builder()
        .name("pay")
        .failure_threshold(2)
        .half_open_max_calls(2)
        .success_threshold(2)
        .open_duration(ms(100))
        .listener(listener)
        .build_with_clock(clock.clone())
        .unwrap()
}

#[test]
fn every_event_carries_the_counts_that_caused_it() {
    let clock = ManualClock::new();
    let log = Log::new(true);
    let b = breaker(&clock, log.clone());

    b.try_acquire().unwrap().record(Outcome::Success);
    b.try_acquire().unwrap().record(Outcome::Failure);
    let late = b.try_acquire().unwrap(); // admitted in generation 0
    clock.advance(ms(5));
    b.try_acquire().unwrap().record(Outcome::Failure); // trips at 5 ms
    assert_eq!(
        b.try_acquire().unwrap_err(),
        Rejected::Open {
            retry_after: ms(100)
        }
    );
    late.record(Outcome::Success); // stale
    clock.advance(ms(100));
    let p1 = b.try_acquire().unwrap(); // open -> half-open, probe 1
    let p2 = b.try_acquire().unwrap(); // probe 2
    assert!(matches!(
        b.try_acquire(),
        Err(Rejected::HalfOpenFull { .. })
    ));
    p1.record(Outcome::Success);
    p2.record(Outcome::Success); // closes

    use Event::*;
    let name = || String::from("pay");
    assert_eq!(
        log.take(),
        [
            Recorded(name(), Outcome::Success, false),
            Recorded(name(), Outcome::Failure, false),
            transition(
                State::Closed,
                State::Open,
                Cause::ConsecutiveFailures { failures: 2 },
                1,
                5,
                Some(100)
            ),
            Recorded(name(), Outcome::Failure, false),
            Rejection(
                name(),
                cutout::Rejected::Open {
                    retry_after: ms(100)
                }
            ),
            Recorded(name(), Outcome::Success, true),
            transition(
                State::Open,
                State::HalfOpen,
                Cause::OpenTimeElapsed,
                2,
                105,
                None
            ),
            Probe(name(), 2),
            Probe(name(), 2),
            Rejection(
                name(),
                // The lease (30 s) ends at 30_105 ms, rounded up to 256 ms units: 30_208.
                cutout::Rejected::HalfOpenFull {
                    retry_after: ms(30_103)
                }
            ),
            Recorded(name(), Outcome::Success, false),
            transition(
                State::HalfOpen,
                State::Closed,
                Cause::ProbesSucceeded { successes: 2 },
                3,
                105,
                None
            ),
            Recorded(name(), Outcome::Success, false),
        ]
    );
    let stats = b.stats();
    assert_eq!(
        (
            stats.admitted,
            stats.probes,
            stats.rejected,
            stats.trips,
            stats.stale
        ),
        (6, 2, 2, 1, 1)
    );
}

#[test]
fn a_listener_can_take_rejections_and_probes_without_outcomes() {
    let clock = ManualClock::new();
    let log = Log::new(false);
    let b = breaker(&clock, log.clone());
    b.try_acquire().unwrap().record(Outcome::Success);
    b.try_acquire().unwrap().record(Outcome::Failure);
    b.try_acquire().unwrap().record(Outcome::Failure);
    assert_eq!(
        b.try_acquire().unwrap_err(),
        Rejected::Open {
            retry_after: ms(100)
        }
    );
    clock.advance(ms(100));
    b.try_acquire().unwrap().record(Outcome::Failure); // re-opens

    use Event::*;
    assert_eq!(
        log.take(),
        [
            transition(
                State::Closed,
                State::Open,
                Cause::ConsecutiveFailures { failures: 2 },
                1,
                0,
                Some(100)
            ),
            Rejection(
                "pay".into(),
                cutout::Rejected::Open {
                    retry_after: ms(100)
                }
            ),
            transition(
                State::Open,
                State::HalfOpen,
                Cause::OpenTimeElapsed,
                2,
                100,
                None
            ),
            Probe("pay".into(), 2),
            transition(
                State::HalfOpen,
                State::Open,
                Cause::ProbeFailed { backoff: 1 },
                3,
                100,
                Some(100)
            ),
        ]
    );
}

/// Counts events in atomics, so delivering them is all that could allocate.
#[derive(Default)]
struct Tally {
    transitions: AtomicU64,
    rejected: AtomicU64,
    probes: AtomicU64,
    recorded: AtomicU64,
}

impl Listener for Tally {
    fn on_transition(&self, _: &str, _: &Transition) {
        self.transitions.fetch_add(1, Ordering::Relaxed);
    }
    fn on_rejected(&self, _: &str, _: &Rejected) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
    }
    fn on_probe_admitted(&self, _: &str, _: u16) {
        self.probes.fetch_add(1, Ordering::Relaxed);
    }
    fn on_recorded(&self, _: &str, _: Outcome, _: bool) {
        self.recorded.fetch_add(1, Ordering::Relaxed);
    }
}

/// One cycle through every state, delivering every kind of event.
fn cycle(b: &CircuitBreaker, clock: &ManualClock) {
    b.try_acquire().unwrap().record(Outcome::Success);
    b.try_acquire().unwrap().record(Outcome::Failure);
    b.try_acquire().unwrap().record(Outcome::Failure); // trip
    assert!(b.try_acquire().is_err());
    clock.advance(ms(100));
    b.try_acquire().unwrap().record(Outcome::Success); // half-open, close
}

#[test]
fn no_event_allocates() {
    let build = |tally: Arc<Tally>, clock: &ManualClock| {
        CircuitBreaker::builder()
            .name("pay")
            .failure_threshold(2)
            .open_duration(ms(100))
            .listener(tally)
            .build_with_clock(clock.clone())
            .unwrap()
    };
    // A first cycle on another breaker does this thread's one-time set-up: its counter id,
    // and the settings cell's reader slot (arc_swap's per-thread node, which it allocates
    // unless an exited thread left one free: whether it does depends on the other tests).
    let warm_clock = ManualClock::new();
    cycle(&build(Arc::default(), &warm_clock), &warm_clock);

    let clock = ManualClock::new();
    let tally = Arc::new(Tally::default());
    let b = build(tally.clone(), &clock);
    let n = allocations_in(|| {
        for _ in 0..100 {
            cycle(&b, &clock);
        }
    });
    assert_eq!(n, 0);
    let count = |c: &AtomicU64| c.load(Ordering::Relaxed);
    assert_eq!(
        (
            count(&tally.transitions),
            count(&tally.rejected),
            count(&tally.probes),
            count(&tally.recorded)
        ),
        (300, 100, 100, 400)
    );
}

#[test]
fn listener_with_sees_the_final_name_once_per_build() {
    let names = Arc::new(Mutex::new(Vec::new()));
    let seen = names.clone();
    let builder = CircuitBreaker::builder()
        .failure_threshold(1)
        .listener_with(move |name| {
            seen.lock().unwrap().push(name.to_owned());
            Log::new(false)
        })
        .name("inventory");
    let a = builder.clone().build().unwrap();
    let b = builder.name("search").build().unwrap();
    assert_eq!(*names.lock().unwrap(), ["inventory", "search"]);
    assert_eq!((a.name(), b.name()), ("inventory", "search"));
}

#[test]
fn a_breaker_without_listeners_still_counts_probes() {
    let clock = ManualClock::new();
    let b = CircuitBreaker::builder()
        .failure_threshold(1)
        .half_open_max_calls(3)
        .success_threshold(3)
        .open_duration(ms(10))
        .build_with_clock(clock.clone())
        .unwrap();
    b.try_acquire().unwrap().record(Outcome::Failure);
    clock.advance(ms(10));
    let probes: Vec<_> = (0..3).map(|_| b.try_acquire().unwrap()).collect();
    assert!(b.try_acquire().is_err());
    drop(probes);
    let s = b.stats();
    // A probe is an admitted call too (counted once on its way in, summed into both).
    assert_eq!(
        (s.admitted, s.probes, s.failures, s.ignored, s.rejected),
        (4, 3, 1, 3, 1)
    );
}

/// Keeps the last snapshot it was sent.
#[derive(Default)]
struct LastStats(Mutex<Option<(String, cutout::Stats)>>);

impl Listener for LastStats {
    fn on_stats(&self, breaker: &str, stats: &cutout::Stats) {
        *self.0.lock().unwrap() = Some((breaker.to_owned(), *stats));
    }
    fn wants_call_events(&self) -> bool {
        false
    }
}

#[test]
fn publish_stats_sends_the_snapshot_to_every_listener() {
    let (first, second) = (
        Arc::new(LastStats::default()),
        Arc::new(LastStats::default()),
    );
    let b = CircuitBreaker::builder()
        .name("pay")
        .listener(first.clone())
        .listener(second.clone())
        .build_with_clock(ManualClock::new())
        .unwrap();
    b.try_acquire().unwrap().record(Outcome::Success);
    b.try_acquire().unwrap().record(Outcome::Failure);
    assert!(
        first.0.lock().unwrap().is_none(),
        "nothing sent before publish"
    );
    let stats = b.publish_stats();
    assert_eq!((stats.admitted, stats.successes, stats.failures), (2, 1, 1));
    assert_eq!(stats.consecutive_failures, 1);
    for l in [&first, &second] {
        assert_eq!(*l.0.lock().unwrap(), Some(("pay".to_owned(), stats)));
    }
}

#[test]
fn a_probe_given_back_is_told_and_frees_its_slot_and_a_stale_one_changes_nothing() {
    let clock = ManualClock::new();
    let log = Log::new(true);
    let b = breaker(&clock, log.clone());
    for _ in 0..2 {
        b.try_acquire().unwrap().record(Outcome::Failure);
    }
    clock.advance(ms(100));
    let first = b.try_acquire().unwrap(); // open -> half-open (the general path)
    let second = b.try_acquire().unwrap(); // a free slot (the probe shortcut)
    assert!(matches!(
        b.try_acquire(),
        Err(Rejected::HalfOpenFull { .. })
    ));
    drop(second); // given back: one compare-exchange
    assert_eq!(b.stats().probes_in_flight, 1);
    let third = b.try_acquire().unwrap(); // the freed slot
    b.force_open(); // a new generation: both probes are stale now
    drop(first);
    drop(third);
    assert_eq!((b.state(), b.stats().stale), (State::ForcedOpen, 2));
    let events = log.take();
    let name = || "pay".to_string();
    assert_eq!(
        events
            .iter()
            .filter(|e| !matches!(e, Event::Transitioned(..) | Event::Rejection(..)))
            .cloned()
            .collect::<Vec<_>>(),
        [
            Event::Recorded(name(), Outcome::Failure, false),
            Event::Recorded(name(), Outcome::Failure, false),
            Event::Probe(name(), 2),
            Event::Probe(name(), 2),
            Event::Recorded(name(), Outcome::Ignored, false),
            Event::Probe(name(), 2),
            Event::Recorded(name(), Outcome::Ignored, true),
            Event::Recorded(name(), Outcome::Ignored, true),
        ]
    );
}
