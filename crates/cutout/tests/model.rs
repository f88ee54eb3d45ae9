//! Random sequences of acquire / record / drop / advance-time / manual commands, run against
//! the breaker and a simple sequential reference model; every answer must match.

use std::time::Duration;

use cutout::{CircuitBreaker, ManualClock, Outcome, OwnedPermit, Rejected, State};
use proptest::prelude::*;

/// The reference: the documented rules, written plainly, with unbounded generations.
#[derive(Debug, Clone)]
struct Model {
    cfg: Cfg,
    now: u64,
    state: State,
    generation: u64,
    failures: u32,
    successes: u32,
    probes: u32,
    backoff: u32,
    deadline: u64,
    lease: u64,
    admitted: u64,
    success_count: u64,
    failure_count: u64,
    ignored: u64,
    rejected: u64,
    trips: u64,
    stale: u64,
}

#[derive(Debug, Clone, Copy)]
struct Cfg {
    failure_threshold: u32,
    success_threshold: u32,
    max_probes: u32,
    base: u64,
    multiplier: u32,
    cap: u64,
    lease: u64,
}

/// The model's answer to an acquire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Admitted,
    Rejected(Rejected),
}

impl Model {
    fn new(cfg: Cfg) -> Self {
        Model {
            cfg,
            now: 0,
            state: State::Closed,
            generation: 0,
            failures: 0,
            successes: 0,
            probes: 0,
            backoff: 0,
            deadline: 0,
            lease: 0,
            admitted: 0,
            success_count: 0,
            failure_count: 0,
            ignored: 0,
            rejected: 0,
            trips: 0,
            stale: 0,
        }
    }

    fn open_time(&self, step: u32) -> u64 {
        let grown = (self.cfg.base as u128) * (self.cfg.multiplier as u128).pow(step);
        grown.min(self.cfg.cap as u128) as u64
    }

    /// Leases are kept in steps of 256 ms, rounded up.
    fn lease_until(&self) -> u64 {
        (self.now + self.cfg.lease).div_ceil(256) * 256
    }

    fn enter(&mut self, state: State) {
        self.state = state;
        self.generation += 1;
        self.failures = 0;
        self.successes = 0;
        self.probes = 0;
    }

    fn open(&mut self, backoff: u32) {
        self.enter(State::Open);
        self.backoff = backoff;
        self.deadline = self.now + self.open_time(backoff);
        self.trips += 1;
    }

    fn half_open_with_probe(&mut self) {
        self.enter(State::HalfOpen);
        self.probes = 1;
        self.lease = self.lease_until();
    }

    /// Returns the answer and, if admitted, the permit's generation.
    fn acquire(&mut self) -> (Answer, u64) {
        let answer = match self.state {
            State::Closed | State::ForcedClosed => Answer::Admitted,
            State::ForcedOpen => Answer::Rejected(Rejected::ForcedOpen),
            State::Open if self.now < self.deadline => Answer::Rejected(Rejected::Open {
                retry_after: Duration::from_millis(self.deadline - self.now),
            }),
            State::Open => {
                self.half_open_with_probe();
                Answer::Admitted
            }
            State::HalfOpen if self.probes < self.cfg.max_probes => {
                self.probes += 1;
                self.lease = self.lease_until();
                Answer::Admitted
            }
            State::HalfOpen if self.now < self.lease => Answer::Rejected(Rejected::HalfOpenFull {
                retry_after: Duration::from_millis(self.lease - self.now),
            }),
            State::HalfOpen => {
                self.half_open_with_probe();
                Answer::Admitted
            }
        };
        match answer {
            Answer::Admitted => self.admitted += 1,
            Answer::Rejected(_) => self.rejected += 1,
        }
        (answer, self.generation)
    }

    fn record(&mut self, generation: u64, outcome: Outcome) {
        match outcome {
            Outcome::Success => self.success_count += 1,
            Outcome::Failure => self.failure_count += 1,
            Outcome::Ignored => self.ignored += 1,
        }
        if generation != self.generation {
            self.stale += 1;
            return;
        }
        match (self.state, outcome) {
            (State::Closed, Outcome::Success) => self.failures = 0,
            (State::Closed, Outcome::Failure) => {
                self.failures += 1;
                if self.failures >= self.cfg.failure_threshold {
                    self.open(0);
                }
            }
            (State::HalfOpen, Outcome::Success) => {
                self.successes += 1;
                self.probes -= 1;
                if self.successes >= self.cfg.success_threshold {
                    self.enter(State::Closed);
                    self.backoff = 0;
                }
            }
            (State::HalfOpen, Outcome::Failure) => self.open((self.backoff + 1).min(31)),
            (State::HalfOpen, Outcome::Ignored) => self.probes -= 1,
            _ => {}
        }
    }

    fn command(&mut self, target: State) {
        if self.state == target {
            self.failures = 0;
            return;
        }
        self.enter(target);
        self.backoff = 0;
    }
}

#[derive(Debug, Clone)]
enum Op {
    Acquire,
    Record(usize, Outcome),
    Drop(usize),
    Advance(u64),
    ForceOpen,
    ForceClosed,
    Reset,
}

fn outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        3 => Just(Outcome::Success),
        3 => Just(Outcome::Failure),
        1 => Just(Outcome::Ignored),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => Just(Op::Acquire),
        8 => (any::<usize>(), outcome()).prop_map(|(i, o)| Op::Record(i, o)),
        1 => any::<usize>().prop_map(Op::Drop),
        4 => prop_oneof![0u64..50, 50u64..400, 400u64..3_000].prop_map(Op::Advance),
        1 => Just(Op::ForceOpen),
        1 => Just(Op::ForceClosed),
        1 => Just(Op::Reset),
    ]
}

fn cfg() -> impl Strategy<Value = Cfg> {
    (1u32..5, 1u32..4, 10u64..200, 1u32..4, 0u64..8, 1u64..2_000).prop_flat_map(
        |(failure_threshold, max_probes, base, multiplier, cap_factor, lease)| {
            (1..=max_probes).prop_map(move |success_threshold| Cfg {
                failure_threshold,
                success_threshold,
                max_probes,
                base,
                multiplier,
                cap: base * (1 + cap_factor),
                lease,
            })
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn breaker_matches_the_reference_model(cfg in cfg(), ops in prop::collection::vec(op(), 1..200)) {
        let clock = ManualClock::new();
        let breaker = CircuitBreaker::builder()
            .failure_threshold(cfg.failure_threshold)
            .success_threshold(cfg.success_threshold)
            .half_open_max_calls(cfg.max_probes)
            .exponential_backoff(
                Duration::from_millis(cfg.base),
                cfg.multiplier as f64,
                Duration::from_millis(cfg.cap),
            )
            .probe_lease(Duration::from_millis(cfg.lease))
            .build_with_clock(clock.clone())
            .unwrap();
        let mut model = Model::new(cfg);
        let mut permits: Vec<(OwnedPermit, u64)> = Vec::new();

        for (step, op) in ops.into_iter().enumerate() {
            match op {
                Op::Acquire => {
                    let (expected, generation) = model.acquire();
                    match breaker.try_acquire_owned() {
                        Ok(p) => {
                            prop_assert_eq!(expected, Answer::Admitted, "step {}", step);
                            permits.push((p, generation));
                        }
                        Err(r) => prop_assert_eq!(expected, Answer::Rejected(r), "step {}", step),
                    }
                }
                Op::Record(i, outcome) if !permits.is_empty() => {
                    let (p, generation) = permits.swap_remove(i % permits.len());
                    model.record(generation, outcome);
                    p.record(outcome);
                }
                Op::Drop(i) if !permits.is_empty() => {
                    let (p, generation) = permits.swap_remove(i % permits.len());
                    model.record(generation, Outcome::Ignored);
                    drop(p);
                }
                Op::Record(..) | Op::Drop(_) => {}
                Op::Advance(ms) => {
                    model.now += ms;
                    clock.advance(Duration::from_millis(ms));
                }
                Op::ForceOpen => {
                    model.command(State::ForcedOpen);
                    breaker.force_open();
                }
                Op::ForceClosed => {
                    model.command(State::ForcedClosed);
                    breaker.force_closed();
                }
                Op::Reset => {
                    model.command(State::Closed);
                    breaker.reset();
                }
            }
            let s = breaker.stats();
            prop_assert_eq!(s.state, model.state, "step {}", step);
            prop_assert_eq!(s.generation as u64, model.generation % 1024);
            prop_assert_eq!(s.consecutive_failures, model.failures);
            prop_assert_eq!(s.half_open_successes, model.successes);
            prop_assert_eq!(s.probes_in_flight, model.probes);
            prop_assert!(s.probes_in_flight <= cfg.max_probes);
            if matches!(s.state, State::Open | State::HalfOpen) {
                prop_assert_eq!(s.backoff_step, model.backoff);
            }
            prop_assert_eq!(
                (s.admitted, s.successes, s.failures, s.ignored, s.rejected, s.trips, s.stale),
                (model.admitted, model.success_count, model.failure_count, model.ignored,
                 model.rejected, model.trips, model.stale)
            );
        }
        drop(permits);
        let s = breaker.stats();
        prop_assert_eq!(s.admitted, s.successes + s.failures + s.ignored);
        prop_assert_eq!(s.probes_in_flight, 0);
    }
}
