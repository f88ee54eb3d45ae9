//! Thread storms: several threads hammer one breaker with mixed outcomes while one of them
//! moves the manual clock; the counts must come out exact.
//!
//! Each storm checks, once its threads are joined:
//! - the lifetime counters equal the sums the threads kept themselves, and add up
//!   (`admitted == successes + failures + ignored`, `admitted + rejected == attempts`);
//! - every transition was reported exactly once: the reports chain by generation with no
//!   gap, their number is the breaker's generation, and `trips` equals the reports into open;
//! - no more than `half_open_max_calls` probes of one half-open period were ever out at
//!   once (a gauge per generation, raised after admission and lowered before release), and
//!   every slot is back at the end;
//! - the per-call events (rejections, probes, outcomes, stale outcomes) match the counters.
//!
//! The storms are sized to run in well under a second each in a debug build. The clock
//! moves 1 ms per two calls of one thread (25 s in all), so the number of open periods,
//! and so of transitions, stays below 1024 (checked): generations never wrap, and a
//! generation names one half-open period.

use std::cell::Cell;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::Duration;

use cutout::{
    CircuitBreaker, Listener, ManualClock, Outcome, OwnedPermit, Rejected, State, Stats, Transition,
};

const THREADS: usize = 4;
const CALLS_PER_THREAD: u64 = 50_000;
/// The clock moves 1 ms every this many calls of the first thread.
const CLOCK_EVERY: u64 = 2;
/// Calls per phase; one phase in four is an outage, the last phase is healthy.
const PHASE: u64 = 2_500;
const MAX_PROBES: u32 = 3;
const LEASE: Duration = Duration::from_millis(512);
const OPEN_CAP: Duration = Duration::from_millis(80);

thread_local! {
    /// The generation of the probe this thread was just admitted as, set by the listener
    /// (listeners run on the admitting thread, inside `try_acquire`).
    static PROBE: Cell<Option<u16>> = const { Cell::new(None) };
}

/// Watches every event.
#[derive(Debug, Default)]
struct Watch {
    /// Whether it asks for the per-call events; without them, records of closed calls
    /// with nothing to change take the breaker's one-load path.
    call_events: bool,
    transitions: Mutex<Vec<Transition>>,
    rejected: AtomicU64,
    probes: AtomicU64,
    recorded: AtomicU64,
    stale: AtomicU64,
}

impl Listener for Watch {
    fn on_transition(&self, _breaker: &str, transition: &Transition) {
        self.transitions
            .lock()
            .expect("no listener panics holding the lock")
            .push(*transition);
    }

    fn on_rejected(&self, _breaker: &str, _rejection: &Rejected) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
    }

    fn on_probe_admitted(&self, _breaker: &str, generation: u16) {
        self.probes.fetch_add(1, Ordering::Relaxed);
        PROBE.with(|p| {
            assert_eq!(
                p.replace(Some(generation)),
                None,
                "one probe event per admission"
            )
        });
    }

    fn on_recorded(&self, _breaker: &str, _outcome: Outcome, stale: bool) {
        self.recorded.fetch_add(1, Ordering::Relaxed);
        if stale {
            self.stale.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn wants_call_events(&self) -> bool {
        self.call_events
    }
}

/// What one thread did, by its own count.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    attempts: u64,
    admitted: u64,
    rejected: u64,
    successes: u64,
    failures: u64,
    ignored: u64,
    probes: u64,
}

impl Tally {
    fn add(&mut self, o: &Tally) {
        self.attempts += o.attempts;
        self.admitted += o.admitted;
        self.rejected += o.rejected;
        self.successes += o.successes;
        self.failures += o.failures;
        self.ignored += o.ignored;
        self.probes += o.probes;
    }
}

/// xorshift64*: a small deterministic generator per thread.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

/// Probes out per generation, and the most ever seen.
struct Gauge {
    by_generation: Vec<AtomicU32>,
    max: AtomicU32,
}

impl Gauge {
    fn new() -> Self {
        Self {
            by_generation: (0..1024).map(|_| AtomicU32::new(0)).collect(),
            max: AtomicU32::new(0),
        }
    }

    fn raise(&self, generation: u16) {
        let now = self.by_generation[usize::from(generation)].fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(now, Ordering::Relaxed);
        assert!(
            now <= MAX_PROBES,
            "{now} probes out in generation {generation}"
        );
    }

    fn lower(&self, generation: u16) {
        self.by_generation[usize::from(generation)].fetch_sub(1, Ordering::SeqCst);
    }
}

/// A permit this thread holds on to for a while (a slow call), with its probe generation.
struct Held {
    permit: OwnedPermit,
    probe: Option<u16>,
    release_at: u64,
    outcome: Option<Outcome>,
}

struct Storm {
    breaker: CircuitBreaker,
    clock: ManualClock,
    watch: Arc<Watch>,
    gauge: Gauge,
}

impl Storm {
    fn new(call_events: bool) -> Arc<Self> {
        let clock = ManualClock::new();
        let watch = Arc::new(Watch {
            call_events,
            ..Watch::default()
        });
        let breaker = CircuitBreaker::builder()
            .failure_threshold(4)
            .half_open_max_calls(MAX_PROBES)
            .success_threshold(2)
            .exponential_backoff(Duration::from_millis(20), 2.0, OPEN_CAP)
            .jitter(0.5)
            .jitter_seed(11)
            .probe_lease(LEASE)
            .listener(watch.clone())
            .build_with_clock(clock.clone())
            .expect("valid settings");
        Arc::new(Self {
            breaker,
            clock,
            watch,
            gauge: Gauge::new(),
        })
    }

    fn release(&self, held: Held, tally: &mut Tally) {
        if let Some(g) = held.probe {
            self.gauge.lower(g);
        }
        match held.outcome {
            Some(outcome) => {
                match outcome {
                    Outcome::Success => tally.successes += 1,
                    Outcome::Failure => tally.failures += 1,
                    Outcome::Ignored => tally.ignored += 1,
                }
                held.permit.record(outcome);
            }
            None => {
                tally.ignored += 1;
                drop(held.permit);
            }
        }
    }

    /// One thread's share: mixed outcomes, now and then a slow call held across several
    /// of its own calls; `moves_clock` advances the clock 1 ms every `CLOCK_EVERY` calls.
    fn run(&self, seed: u64, moves_clock: bool) -> Tally {
        let mut rng = Rng(seed);
        let mut tally = Tally::default();
        let mut slow: Option<Held> = None;
        for i in 0..CALLS_PER_THREAD {
            if moves_clock && i % CLOCK_EVERY == 0 {
                self.clock.advance(Duration::from_millis(1));
            }
            if slow.as_ref().is_some_and(|h| h.release_at <= i) {
                let held = slow.take().expect("checked above");
                self.release(held, &mut tally);
            }
            tally.attempts += 1;
            let permit = match self.breaker.try_acquire_owned() {
                Ok(permit) => permit,
                Err(rejection) => {
                    tally.rejected += 1;
                    assert_eq!(PROBE.with(Cell::get), None);
                    // A rejection's time to wait is measured from the caller's clock
                    // reading, which may be older than the deadline it is refused by:
                    // its size is checked by the single-threaded tests, not here.
                    assert!(matches!(
                        rejection,
                        Rejected::Open { .. }
                            | Rejected::HalfOpenFull { .. }
                            | Rejected::ForcedOpen
                    ));
                    continue;
                }
            };
            tally.admitted += 1;
            if !self.watch.call_events && i % 8 == 0 {
                // No probe events to count with: read the slots the word holds.
                let held = self.breaker.stats().probes_in_flight;
                assert!(held <= MAX_PROBES, "{held} probes in flight");
            }
            let probe = PROBE.with(Cell::take);
            if let Some(g) = probe {
                assert_eq!(g, permit.generation());
                tally.probes += 1;
                self.gauge.raise(g);
            }
            // One phase in four is an outage: most calls fail. Otherwise a few do.
            let outage = (i / PHASE) % 4 == 1;
            let roll = rng.below(100);
            let fail_below = if outage { 85 } else { 3 };
            let outcome = match roll {
                r if r < fail_below => Some(Outcome::Failure),
                r if r < 90 => Some(Outcome::Success),
                90..95 => Some(Outcome::Ignored),
                _ => None,
            };
            let held = Held {
                permit,
                probe,
                release_at: i,
                outcome,
            };
            if slow.is_none() && roll % 7 == 0 {
                // A slow call: reported after some more of this thread's calls, perhaps
                // after its lease ran out or its generation ended.
                slow = Some(Held {
                    release_at: i + 1 + rng.below(1_000),
                    ..held
                });
            } else {
                self.release(held, &mut tally);
            }
        }
        if let Some(held) = slow.take() {
            self.release(held, &mut tally);
        }
        tally
    }

    /// Checks everything that must hold once the threads are done.
    fn settled(&self, total: &Tally) -> Stats {
        let s = self.breaker.stats();
        assert_eq!(s.admitted + s.rejected, total.attempts, "{s:?}");
        assert_eq!(s.admitted, s.successes + s.failures + s.ignored, "{s:?}");
        assert_eq!(
            (s.admitted, s.rejected, s.successes, s.failures, s.ignored),
            (
                total.admitted,
                total.rejected,
                total.successes,
                total.failures,
                total.ignored
            ),
            "{s:?} {total:?}"
        );
        if self.watch.call_events {
            assert_eq!(self.watch.rejected.load(Ordering::Relaxed), s.rejected);
            assert_eq!(self.watch.probes.load(Ordering::Relaxed), total.probes);
            assert_eq!(self.watch.recorded.load(Ordering::Relaxed), s.admitted);
            assert_eq!(self.watch.stale.load(Ordering::Relaxed), s.stale);
            assert_eq!(total.probes, s.probes, "{s:?}");
        } else {
            assert_eq!(total.probes, 0);
            assert_eq!(self.watch.recorded.load(Ordering::Relaxed), 0);
        }

        let mut log = self
            .watch
            .transitions
            .lock()
            .expect("no listener panicked")
            .clone();
        log.sort_by_key(|t| t.generation);
        assert!(log.len() < 1024, "generations wrapped: {}", log.len());
        assert_eq!(usize::from(s.generation), log.len(), "{s:?}");
        for (i, t) in log.iter().enumerate() {
            assert_eq!(
                usize::from(t.generation),
                i + 1,
                "one report per transition"
            );
        }
        for pair in log.windows(2) {
            assert_eq!(pair[0].to, pair[1].from, "{:?}", pair);
        }
        assert_eq!(
            s.trips,
            log.iter().filter(|t| t.to == State::Open).count() as u64
        );
        assert_eq!(s.state, log.last().map_or(State::Closed, |t| t.to));
        assert_eq!(s.probes_in_flight, 0, "{s:?}");
        for (g, n) in self.gauge.by_generation.iter().enumerate() {
            assert_eq!(n.load(Ordering::Relaxed), 0, "generation {g}");
        }
        assert!(self.gauge.max.load(Ordering::Relaxed) <= MAX_PROBES);
        s
    }
}

/// Runs `THREADS` workers (the first moves the clock) and, if given, `admin` beside them.
fn storm(call_events: bool, admin: Option<fn(&Storm)>) -> (Arc<Storm>, Tally) {
    let storm = Storm::new(call_events);
    let start = Arc::new(Barrier::new(THREADS + usize::from(admin.is_some())));
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let storm = storm.clone();
            let start = start.clone();
            thread::spawn(move || {
                start.wait();
                storm.run(0x9E37_79B9_7F4A_7C15 ^ (t as u64 + 1), t == 0)
            })
        })
        .collect();
    let admin = admin.map(|f| {
        let storm = storm.clone();
        let start = start.clone();
        thread::spawn(move || {
            start.wait();
            f(&storm)
        })
    });
    let mut total = Tally::default();
    for w in workers {
        total.add(&w.join().expect("no worker panics"));
    }
    if let Some(a) = admin {
        a.join().expect("the admin does not panic");
    }
    (storm, total)
}

/// The storm without admin, checked for having gone through every state many times.
fn mixed_outcomes(call_events: bool) {
    let (storm, total) = storm(call_events, None);
    let s = storm.settled(&total);
    // The storm went through every state many times.
    let log = storm.watch.transitions.lock().expect("no panic").clone();
    let count = |f: fn(&Transition) -> bool| log.iter().filter(|t| f(t)).count();
    assert!(s.trips >= 20, "{s:?}");
    assert!(count(|t| t.to == State::HalfOpen) >= 20, "{log:?}");
    assert!(count(|t| t.from == State::HalfOpen && t.to == State::Closed) >= 5);
    assert!(s.stale > 0, "{s:?}");
    assert_eq!(
        total.attempts,
        THREADS as u64 * CALLS_PER_THREAD,
        "{total:?}"
    );
}

#[test]
fn storm_of_mixed_outcomes_counts_exactly() {
    mixed_outcomes(true);
}

#[test]
fn storm_on_the_one_load_paths_counts_exactly() {
    mixed_outcomes(false);
}

#[test]
fn storm_with_manual_commands_counts_exactly() {
    fn admin(storm: &Storm) {
        // 150 commands, spread over the storm by polling the clock the first worker moves.
        let step = Duration::from_millis(CALLS_PER_THREAD / CLOCK_EVERY / 160);
        let mut next = step;
        for i in 0..150 {
            while storm.breaker.elapsed() < next {
                thread::yield_now();
            }
            next += step;
            match i % 3 {
                0 => storm.breaker.force_open(),
                1 => storm.breaker.force_closed(),
                _ => storm.breaker.reset(),
            }
        }
    }
    let (storm, total) = storm(true, Some(admin));
    let s = storm.settled(&total);
    let log = storm.watch.transitions.lock().expect("no panic").clone();
    let forced_open = log
        .iter()
        .filter(|t| t.cause == cutout::Cause::ForcedOpen)
        .count();
    assert_eq!(forced_open, 50, "each force_open is one transition");
    assert_eq!(
        log.iter()
            .filter(|t| t.cause == cutout::Cause::ForcedClosed)
            .count(),
        50
    );
    // A reset after force_closed always transitions (forced closed -> closed).
    assert_eq!(
        log.iter()
            .filter(|t| t.cause == cutout::Cause::Reset)
            .count(),
        50
    );
    // The last command is a reset; traffic may have moved it on, never into a forced state.
    assert!(
        !matches!(s.state, State::ForcedOpen | State::ForcedClosed),
        "{s:?}"
    );
}
