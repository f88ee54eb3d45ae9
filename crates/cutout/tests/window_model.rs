//! Random call sequences against a plain reference model of the rate policies: after every
//! step the breaker's window counts and its trips (with their causes) must match.
//!
//! The model keeps every call of the closed period in a list and judges after every call
//! by the documented rules; the breaker keeps a ring or buckets and judges only when a
//! rate may have risen. Sequentially the two must agree exactly.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cutout::{Cause, CircuitBreaker, ManualClock, Outcome, SlidingWindow, State};
use proptest::prelude::*;

const SLOW_THRESHOLD: Duration = Duration::from_millis(50);

#[derive(Debug, Clone, Copy)]
enum Shape {
    Calls(u32),
    Time { width: u64, buckets: u32 },
}

#[derive(Debug, Clone, Copy)]
struct Cfg {
    shape: Shape,
    failure_threshold: u32,
    /// In millionths.
    failure_rate: Option<u32>,
    slow_rate: Option<u32>,
    minimum_calls: u32,
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Call { outcome: Outcome, slow: bool },
    Advance(u64),
    Reset,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Counts {
    calls: u32,
    failures: u32,
    slow: u32,
}

struct Model {
    cfg: Cfg,
    now: u64,
    consecutive: u32,
    /// (tick, failed, slow) of the closed period's calls.
    history: Vec<(u64, bool, bool)>,
}

impl Model {
    fn counts(&self) -> Counts {
        let in_window: Vec<&(u64, bool, bool)> = match self.cfg.shape {
            Shape::Calls(n) => self.history.iter().rev().take(n as usize).collect(),
            Shape::Time { width, buckets } => self
                .history
                .iter()
                .filter(|(t, _, _)| t / width + buckets as u64 > self.now / width)
                .collect(),
        };
        Counts {
            calls: in_window.len() as u32,
            failures: in_window.iter().filter(|c| c.1).count() as u32,
            slow: in_window.iter().filter(|c| c.2).count() as u32,
        }
    }

    fn reached(ppm: Option<u32>, part: u32, whole: u32) -> bool {
        ppm.is_some_and(|t| part as u64 * 1_000_000 >= t as u64 * whole as u64)
    }

    /// A finished call; returns the trip it causes, if any.
    fn call(&mut self, failed: bool, slow: bool) -> Option<Cause> {
        self.consecutive = if failed { self.consecutive + 1 } else { 0 };
        if self.consecutive >= self.cfg.failure_threshold {
            return Some(Cause::ConsecutiveFailures {
                failures: self.consecutive,
            });
        }
        self.history.push((self.now, failed, slow));
        let c = self.counts();
        if c.calls < self.cfg.minimum_calls {
            return None;
        }
        if Self::reached(self.cfg.failure_rate, c.failures, c.calls) {
            return Some(Cause::FailureRate {
                failures: c.failures,
                calls: c.calls,
            });
        }
        if Self::reached(self.cfg.slow_rate, c.slow, c.calls) {
            return Some(Cause::SlowCallRate {
                slow: c.slow,
                calls: c.calls,
            });
        }
        None
    }

    fn reset(&mut self) {
        self.consecutive = 0;
        self.history.clear();
    }
}

fn cfg() -> impl Strategy<Value = Cfg> {
    let rate = prop_oneof![
        Just(None),
        Just(Some(250_000)),
        Just(Some(500_000)),
        Just(Some(600_000)),
        Just(Some(1_000_000)),
    ];
    let shape = prop_oneof![
        (1u32..9).prop_map(Shape::Calls),
        (1u64..6, 1u32..6).prop_map(|(width, buckets)| Shape::Time { width, buckets }),
    ];
    (shape, 1u32..8, rate.clone(), rate, 1u32..9).prop_map(
        |(shape, failure_threshold, failure_rate, slow_rate, minimum)| {
            let (failure_rate, slow_rate) = match (failure_rate, slow_rate) {
                (None, None) => (Some(500_000), None),
                rates => rates,
            };
            let minimum_calls = match shape {
                Shape::Calls(n) => minimum.min(n),
                Shape::Time { .. } => minimum,
            };
            Cfg {
                shape,
                failure_threshold,
                failure_rate,
                slow_rate,
                minimum_calls,
            }
        },
    )
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (
            prop_oneof![Just(Outcome::Success), Just(Outcome::Failure), Just(Outcome::Ignored)],
            any::<bool>()
        )
            .prop_map(|(outcome, slow)| Op::Call { outcome, slow }),
        3 => (0u64..8).prop_map(Op::Advance),
        1 => Just(Op::Advance(1 << 40)),
        1 => Just(Op::Reset),
    ]
}

fn build(cfg: Cfg, clock: &ManualClock) -> (CircuitBreaker, Arc<Mutex<Vec<Cause>>>) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let sink = log.clone();
    let mut b = CircuitBreaker::builder()
        .failure_threshold(cfg.failure_threshold)
        .minimum_calls(cfg.minimum_calls)
        .sliding_window(match cfg.shape {
            Shape::Calls(n) => SlidingWindow::Calls(n),
            Shape::Time { width, buckets } => SlidingWindow::Time {
                span: Duration::from_millis(width * buckets as u64),
                buckets,
            },
        })
        .on_transition(move |t| sink.lock().unwrap().push(t.cause));
    if let Some(ppm) = cfg.failure_rate {
        b = b.failure_rate(ppm as f64 / 1e6);
    }
    if let Some(ppm) = cfg.slow_rate {
        b = b.slow_call_rate(ppm as f64 / 1e6, SLOW_THRESHOLD);
    }
    (b.build_with_clock(clock.clone()).unwrap(), log)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn the_breaker_trips_exactly_when_the_model_does(
        cfg in cfg(),
        ops in proptest::collection::vec(op(), 1..120),
    ) {
        let clock = ManualClock::new();
        let (breaker, log) = build(cfg, &clock);
        let mut model = Model { cfg, now: 0, consecutive: 0, history: Vec::new() };
        let mut expected: Vec<Cause> = Vec::new();
        for (i, op) in ops.iter().enumerate() {
            match *op {
                Op::Call { outcome, slow } => {
                    let permit = breaker.try_acquire().expect("closed");
                    let took = if slow { SLOW_THRESHOLD + Duration::from_millis(1) } else { SLOW_THRESHOLD };
                    permit.record_with_duration(outcome, took);
                    if outcome != Outcome::Ignored {
                        let counted_slow = slow && cfg.slow_rate.is_some();
                        if let Some(cause) = model.call(outcome == Outcome::Failure, counted_slow) {
                            expected.push(cause);
                            // Start over: the breaker is open; a reset closes it afresh.
                            prop_assert_eq!(breaker.state(), State::Open, "step {}: {:?}", i, op);
                            breaker.reset();
                            expected.push(Cause::Reset);
                            model.reset();
                        }
                    }
                }
                Op::Advance(ms) => {
                    clock.advance(Duration::from_millis(ms));
                    model.now = (model.now + ms).min(cutout::state::MAX_TICK);
                }
                Op::Reset => {
                    breaker.reset();
                    model.reset();
                }
            }
            prop_assert_eq!(breaker.state(), State::Closed, "step {}: {:?}", i, op);
            prop_assert_eq!(&*log.lock().unwrap(), &expected, "step {}: {:?}", i, op);
            let w = breaker.window_stats().unwrap();
            let m = model.counts();
            // The model counts slow calls only when a slow-call rate is set; so does the
            // breaker (calls are not timed otherwise).
            prop_assert_eq!((w.calls, w.failures, w.slow), (m.calls, m.failures, m.slow),
                "step {}: {:?}", i, op);
            prop_assert_eq!(breaker.stats().consecutive_failures, model.consecutive);
        }
    }
}
