//! No input makes the breaker panic.
//!
//! Any sequence of builder settings, with any values (thresholds of any `u32`, durations
//! from zero to `Duration::MAX`, multipliers and jitter ratios including NaN, infinities
//! and negatives), either builds or returns a typed [`ConfigError`], and the answer agrees
//! with the documented rules. A built breaker then survives any sequence of operations,
//! with its clock moved by anything up to `Duration::MAX` (years of uptime and past the
//! end of its tick range), and its counters keep adding up after every step.

use std::time::Duration;

use cutout::window::{DEFAULT_MINIMUM_CALLS, MAX_WINDOW_BUCKETS, MAX_WINDOW_CALLS};
use cutout::{
    CallError, CircuitBreaker, Clock, ConfigError, MAX_DURATION, ManualClock, MonotonicClock,
    Outcome, OwnedPermit, Rejected, SlidingWindow, State,
};
use proptest::prelude::*;

/// Any duration, weighted toward the edges the builder and the clock care about.
fn duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        Just(Duration::ZERO),
        Just(Duration::from_nanos(1)),
        Just(Duration::from_millis(1)),
        Just(MAX_DURATION),
        Just(MAX_DURATION + Duration::from_nanos(1)),
        Just(Duration::MAX),
        (0u64..10_000).prop_map(Duration::from_millis),
        (0u64..=100 * 365 * 24 * 3600, 0u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s, n)),
        (any::<u64>(), 0u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s, n)),
    ]
}

/// Any float, weighted toward the classes a ratio or a multiplier must refuse.
fn float() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(-0.0),
        Just(0.0),
        Just(1.0),
        Just(f64::MAX),
        Just(f64::MIN_POSITIVE),
        Just(1.0 - f64::EPSILON),
        Just(1.0 + f64::EPSILON),
        -2.0..3.0f64,
        any::<f64>(),
    ]
}

/// Any count, weighted toward the limits.
fn count() -> impl Strategy<Value = u32> {
    prop_oneof![
        Just(0u32),
        Just(1),
        Just(126),
        Just(127),
        Just(128),
        Just(u32::MAX),
        0u32..300,
        any::<u32>(),
    ]
}

/// One builder call.
#[derive(Debug, Clone)]
enum Setting {
    Name(String),
    FailureThreshold(u32),
    SuccessThreshold(u32),
    HalfOpenMaxCalls(u32),
    OpenDuration(Duration),
    Exponential(Duration, f64, Duration),
    Jitter(f64),
    JitterSeed(u64),
    ProbeLease(Duration),
    Window(SlidingWindow),
    FailureRate(f64),
    SlowCallRate(f64, Duration),
    MinimumCalls(u32),
    HalfOpenSuccessRate(f64, u32),
}

/// Any window, weighted toward the limits.
fn window() -> impl Strategy<Value = SlidingWindow> {
    let limit = |max: u32| prop_oneof![Just(max), Just(max + 1), count()];
    prop_oneof![
        limit(MAX_WINDOW_CALLS).prop_map(SlidingWindow::Calls),
        (duration(), limit(MAX_WINDOW_BUCKETS))
            .prop_map(|(span, buckets)| SlidingWindow::Time { span, buckets }),
    ]
}

fn setting() -> impl Strategy<Value = Setting> {
    prop_oneof![
        ".{0,8}".prop_map(Setting::Name),
        count().prop_map(Setting::FailureThreshold),
        count().prop_map(Setting::SuccessThreshold),
        count().prop_map(Setting::HalfOpenMaxCalls),
        duration().prop_map(Setting::OpenDuration),
        (duration(), float(), duration()).prop_map(|(b, m, c)| Setting::Exponential(b, m, c)),
        float().prop_map(Setting::Jitter),
        any::<u64>().prop_map(Setting::JitterSeed),
        duration().prop_map(Setting::ProbeLease),
        window().prop_map(Setting::Window),
        float().prop_map(Setting::FailureRate),
        (float(), duration()).prop_map(|(r, d)| Setting::SlowCallRate(r, d)),
        count().prop_map(Setting::MinimumCalls),
        (float(), count()).prop_map(|(r, n)| Setting::HalfOpenSuccessRate(r, n)),
    ]
}

/// The settings after a sequence of calls, as the documented rules see them.
#[derive(Debug, Clone)]
struct Expected {
    failure_threshold: u32,
    success_threshold: u32,
    half_open_max_calls: u32,
    base: Duration,
    multiplier: f64,
    cap: Duration,
    jitter: f64,
    probe_lease: Duration,
    window: Option<SlidingWindow>,
    failure_rate: Option<f64>,
    slow_call_rate: Option<(f64, Duration)>,
    minimum_calls: Option<u32>,
    half_open_success_rate: Option<(f64, u32)>,
}

/// A rate threshold in millionths, if it is a valid one: in `(0, 1]` and at least one
/// millionth once rounded.
fn ppm(rate: f64) -> Option<u64> {
    if rate.is_nan() || rate <= 0.0 || rate > 1.0 {
        return None;
    }
    let ppm = (rate * 1e6).round() as u64;
    (ppm >= 1).then_some(ppm)
}

/// A duration's zero or too-long error, if any.
fn duration_errors(setting: &'static str, d: Duration) -> Vec<ConfigError> {
    if d.is_zero() {
        vec![ConfigError::ZeroDuration { setting }]
    } else if d > MAX_DURATION {
        vec![ConfigError::DurationTooLong {
            setting,
            value: d,
            max: MAX_DURATION,
        }]
    } else {
        vec![]
    }
}

impl Expected {
    /// The documented defaults.
    fn defaults() -> Self {
        Self {
            failure_threshold: 5,
            success_threshold: 1,
            half_open_max_calls: 1,
            base: Duration::from_secs(5),
            multiplier: 2.0,
            cap: Duration::from_secs(60),
            jitter: 0.5,
            probe_lease: Duration::from_secs(30),
            window: None,
            failure_rate: None,
            slow_call_rate: None,
            minimum_calls: None,
            half_open_success_rate: None,
        }
    }

    fn apply(&mut self, s: &Setting) {
        match *s {
            Setting::Name(_) | Setting::JitterSeed(_) => {}
            Setting::FailureThreshold(n) => self.failure_threshold = n,
            Setting::SuccessThreshold(n) => self.success_threshold = n,
            Setting::HalfOpenMaxCalls(n) => self.half_open_max_calls = n,
            Setting::OpenDuration(d) => {
                (self.base, self.multiplier, self.cap, self.jitter) = (d, 1.0, d, 0.0)
            }
            Setting::Exponential(b, m, c) => {
                (self.base, self.multiplier, self.cap, self.jitter) = (b, m, c, 0.0)
            }
            Setting::Jitter(j) => self.jitter = j,
            Setting::ProbeLease(d) => self.probe_lease = d,
            Setting::Window(w) => self.window = Some(w),
            Setting::FailureRate(r) => self.failure_rate = Some(r),
            Setting::SlowCallRate(r, d) => self.slow_call_rate = Some((r, d)),
            Setting::MinimumCalls(n) => self.minimum_calls = Some(n),
            Setting::HalfOpenSuccessRate(r, n) => self.half_open_success_rate = Some((r, n)),
        }
    }

    /// Every error the rules call for; empty when the settings are valid.
    fn errors(&self) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        if self.failure_threshold == 0 {
            errors.push(ConfigError::ZeroFailureThreshold);
        }
        if self.success_threshold == 0 {
            errors.push(ConfigError::ZeroSuccessThreshold);
        }
        if self.half_open_max_calls == 0 {
            errors.push(ConfigError::ZeroHalfOpenMaxCalls);
        }
        if self.half_open_max_calls > 127 {
            errors.push(ConfigError::TooManyHalfOpenCalls {
                requested: self.half_open_max_calls,
                max: 127,
            });
        }
        if let Some((rate, probes)) = self.half_open_success_rate {
            match ppm(rate) {
                None => errors.push(ConfigError::InvalidRate {
                    setting: "half-open success rate",
                    value: rate,
                }),
                Some(_) if probes == 0 => errors.push(ConfigError::ZeroCount {
                    setting: "half-open probes",
                }),
                Some(ppm) => {
                    let successes = (ppm * u64::from(probes)).div_ceil(1_000_000);
                    let failures = u64::from(probes) - successes;
                    if successes * (failures + 1) > 128 {
                        errors.push(ConfigError::HalfOpenRateDoesNotFit {
                            probes,
                            successes: successes as u32,
                        });
                    }
                }
            }
        }
        if self.half_open_success_rate.is_none()
            && self.success_threshold > self.half_open_max_calls
        {
            errors.push(ConfigError::SuccessThresholdAboveHalfOpenMaxCalls {
                success_threshold: self.success_threshold,
                half_open_max_calls: self.half_open_max_calls,
            });
        }
        for (setting, d) in [
            ("open duration", self.base),
            ("open duration cap", self.cap),
            ("probe lease", self.probe_lease),
        ] {
            errors.extend(duration_errors(setting, d));
        }
        if self.cap < self.base {
            errors.push(ConfigError::CapBelowBase {
                base: self.base,
                cap: self.cap,
            });
        }
        if !self.multiplier.is_finite() || self.multiplier < 1.0 {
            errors.push(ConfigError::InvalidMultiplier(self.multiplier));
        }
        if self.jitter.is_nan() || !(0.0..=1.0).contains(&self.jitter) {
            errors.push(ConfigError::InvalidJitter(self.jitter));
        }
        errors.extend(self.window_errors());
        errors
    }

    /// The errors of the rate policies and their window.
    fn window_errors(&self) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        if let Some(rate) = self.failure_rate
            && ppm(rate).is_none()
        {
            errors.push(ConfigError::InvalidRate {
                setting: "failure rate",
                value: rate,
            });
        }
        if let Some((rate, slower_than)) = self.slow_call_rate {
            if ppm(rate).is_none() {
                errors.push(ConfigError::InvalidRate {
                    setting: "slow-call rate",
                    value: rate,
                });
            }
            if slower_than > MAX_DURATION {
                errors.push(ConfigError::DurationTooLong {
                    setting: "slow-call threshold",
                    value: slower_than,
                    max: MAX_DURATION,
                });
            }
        }
        if self.failure_rate.is_none() && self.slow_call_rate.is_none() {
            if self.window.is_some() || self.minimum_calls.is_some() {
                errors.push(ConfigError::WindowWithoutRate);
            }
            return errors;
        }
        let window = self.window.unwrap_or(SlidingWindow::Calls(100));
        let default_minimum = match window {
            SlidingWindow::Calls(0) => {
                errors.push(ConfigError::ZeroCount {
                    setting: "window calls",
                });
                return errors;
            }
            SlidingWindow::Calls(n) if n > MAX_WINDOW_CALLS => {
                errors.push(ConfigError::CountTooLarge {
                    setting: "window calls",
                    value: n,
                    max: MAX_WINDOW_CALLS,
                });
                return errors;
            }
            SlidingWindow::Calls(n) => n.min(DEFAULT_MINIMUM_CALLS),
            SlidingWindow::Time { buckets: 0, .. } => {
                errors.push(ConfigError::ZeroCount {
                    setting: "window buckets",
                });
                return errors;
            }
            SlidingWindow::Time { buckets, .. } if buckets > MAX_WINDOW_BUCKETS => {
                errors.push(ConfigError::CountTooLarge {
                    setting: "window buckets",
                    value: buckets,
                    max: MAX_WINDOW_BUCKETS,
                });
                return errors;
            }
            SlidingWindow::Time { span, buckets } => {
                let span_errors = duration_errors("window span", span);
                if !span_errors.is_empty() {
                    errors.extend(span_errors);
                    return errors;
                }
                let span_ticks = span.as_nanos().div_ceil(1_000_000);
                if span_ticks < u128::from(buckets) {
                    errors.push(ConfigError::BucketsNarrowerThanTick { span, buckets });
                    return errors;
                }
                DEFAULT_MINIMUM_CALLS
            }
        };
        match (self.minimum_calls.unwrap_or(default_minimum), window) {
            (0, _) => errors.push(ConfigError::ZeroCount {
                setting: "minimum calls",
            }),
            (minimum_calls, SlidingWindow::Calls(n)) if minimum_calls > n => {
                errors.push(ConfigError::MinimumCallsAboveWindow {
                    minimum_calls,
                    window: n,
                })
            }
            _ => {}
        }
        errors
    }
}

fn builder(settings: &[Setting]) -> cutout::Builder {
    settings
        .iter()
        .fold(CircuitBreaker::builder(), |b, s| match s.clone() {
            Setting::Name(n) => b.name(n),
            Setting::FailureThreshold(n) => b.failure_threshold(n),
            Setting::SuccessThreshold(n) => b.success_threshold(n),
            Setting::HalfOpenMaxCalls(n) => b.half_open_max_calls(n),
            Setting::OpenDuration(d) => b.open_duration(d),
            Setting::Exponential(base, m, cap) => b.exponential_backoff(base, m, cap),
            Setting::Jitter(j) => b.jitter(j),
            Setting::JitterSeed(seed) => b.jitter_seed(seed),
            Setting::ProbeLease(d) => b.probe_lease(d),
            Setting::Window(w) => b.sliding_window(w),
            Setting::FailureRate(r) => b.failure_rate(r),
            Setting::SlowCallRate(r, d) => b.slow_call_rate(r, d),
            Setting::MinimumCalls(n) => b.minimum_calls(n),
            Setting::HalfOpenSuccessRate(r, n) => b.half_open_success_rate(r, n),
        })
}

/// `ConfigError` compared by its Debug text, so NaN payloads compare equal to themselves.
fn same(a: &ConfigError, b: &ConfigError) -> bool {
    format!("{a:?}") == format!("{b:?}")
}

/// A small valid breaker configuration, then any settings on top.
fn valid_settings() -> impl Strategy<Value = Vec<Setting>> {
    (
        1u32..6,
        1u32..4,
        0u32..3,
        prop_oneof![
            duration().prop_map(Setting::OpenDuration),
            (1u64..10_000, 1.0f64..4.0, 0u64..100_000).prop_map(|(b, m, extra)| {
                Setting::Exponential(
                    Duration::from_millis(b),
                    m,
                    Duration::from_millis(b + extra),
                )
            }),
        ],
        prop_oneof![Just(0.0), 0.0f64..=1.0, Just(1.0)],
        duration(),
        rates(),
    )
        .prop_map(|(f, probes, extra, open, jitter, lease, rates)| {
            let clamp = |d: Duration| d.clamp(Duration::from_millis(1), MAX_DURATION);
            let open = match open {
                Setting::OpenDuration(d) => Setting::OpenDuration(clamp(d)),
                other => other,
            };
            let mut settings = vec![
                Setting::FailureThreshold(f),
                Setting::HalfOpenMaxCalls(probes + extra),
                Setting::SuccessThreshold(probes),
                open,
                Setting::Jitter(jitter),
                Setting::ProbeLease(clamp(lease)),
                Setting::JitterSeed(7),
            ];
            settings.extend(rates);
            settings
        })
}

/// Valid rate policies, or none.
fn rates() -> impl Strategy<Value = Vec<Setting>> {
    let rate = || prop_oneof![Just(1.0), Just(1e-6), 0.01f64..=1.0];
    prop_oneof![
        Just(vec![]),
        (rate(), 1u32..50, 1u32..50).prop_map(|(r, n, m)| vec![
            Setting::FailureRate(r),
            Setting::Window(SlidingWindow::Calls(n)),
            Setting::MinimumCalls(m.min(n)),
        ]),
        (rate(), duration(), 1u64..100_000, 1u32..20, 1u32..50).prop_map(
            |(r, slower_than, span, buckets, m)| vec![
                Setting::SlowCallRate(r, slower_than.min(MAX_DURATION)),
                Setting::FailureRate(r),
                Setting::Window(SlidingWindow::Time {
                    span: Duration::from_millis(span.max(u64::from(buckets))),
                    buckets,
                }),
                Setting::MinimumCalls(m),
            ]
        ),
        (rate(), 1u32..8).prop_map(|(r, n)| vec![Setting::HalfOpenSuccessRate(r, n)]),
    ]
    .prop_filter("valid", |settings| {
        let mut e = Expected::defaults();
        settings.iter().for_each(|s| e.apply(s));
        e.errors().is_empty()
    })
}

/// One thing done to a built breaker.
#[derive(Debug, Clone)]
enum Op {
    Acquire,
    Record(usize, Outcome),
    RecordWithRetryAfter(usize, Outcome, Duration),
    RecordWithDuration(usize, Outcome, Duration),
    Drop(usize),
    Call(Outcome),
    Advance(Duration),
    Set(Duration),
    ForceOpen,
    ForceClosed,
    Reset,
    Read,
}

fn outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        Just(Outcome::Success),
        Just(Outcome::Failure),
        Just(Outcome::Ignored)
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => Just(Op::Acquire),
        4 => (any::<usize>(), outcome()).prop_map(|(i, o)| Op::Record(i, o)),
        1 => (any::<usize>(), outcome(), duration())
            .prop_map(|(i, o, d)| Op::RecordWithRetryAfter(i, o, d)),
        2 => (any::<usize>(), outcome(), duration())
            .prop_map(|(i, o, d)| Op::RecordWithDuration(i, o, d)),
        1 => any::<usize>().prop_map(Op::Drop),
        3 => outcome().prop_map(Op::Call),
        3 => duration().prop_map(Op::Advance),
        1 => duration().prop_map(Op::Set),
        1 => Just(Op::ForceOpen),
        1 => Just(Op::ForceClosed),
        1 => Just(Op::Reset),
        1 => Just(Op::Read),
    ]
}

/// Reads everything a breaker exposes and checks what must always hold with `held` permits
/// out.
fn check(breaker: &CircuitBreaker, held: usize, calls: u64) {
    let s = breaker.stats();
    assert_eq!(
        s.admitted,
        s.successes + s.failures + s.ignored + held as u64,
        "{s:?}"
    );
    assert_eq!(s.admitted + s.rejected, calls, "{s:?}");
    assert_eq!(s.state, breaker.state());
    assert!(s.probes_in_flight as usize <= held.min(127), "{s:?}");
    assert!(s.trips <= calls, "{s:?}");
    assert_eq!(s.retry_after, breaker.retry_after());
    if let Some(w) = breaker.window_stats() {
        assert!(w.failures <= w.calls && w.slow <= w.calls, "{w:?}");
        if s.state != State::Closed {
            assert_eq!((w.calls, w.failures, w.slow), (0, 0, 0));
        }
    }
}

proptest! {
    // XorShift: the default ChaCha generator dominates the run time in a debug build.
    #![proptest_config(ProptestConfig {
        cases: 1024,
        rng_algorithm: proptest::test_runner::RngAlgorithm::XorShift,
        ..ProptestConfig::default()
    })]

    /// Any settings build, or fail with exactly an error the rules call for.
    #[test]
    fn any_settings_build_or_return_a_typed_error(
        settings in prop::collection::vec(setting(), 0..10),
    ) {
        let mut expected = Expected::defaults();
        for s in &settings {
            expected.apply(s);
        }
        let errors = expected.errors();
        let b = builder(&settings);
        let _ = format!("{b:?}");
        match b.clone().build_with_clock(ManualClock::new()) {
            Ok(breaker) => {
                prop_assert!(errors.is_empty(), "built, but expected one of {errors:?}");
                prop_assert_eq!(breaker.state(), State::Closed);
                check(&breaker, 0, 0);
            }
            Err(e) => {
                prop_assert!(
                    errors.iter().any(|x| same(x, &e)),
                    "{e:?} is not one of {errors:?}"
                );
                // A typed, printable std error.
                let as_error: &dyn std::error::Error = &e;
                prop_assert!(!as_error.to_string().is_empty());
                prop_assert!(as_error.source().is_none());
            }
        }
        // The default clock takes the same decision.
        prop_assert_eq!(b.build().is_ok(), errors.is_empty());
    }

    /// A built breaker survives any operations, with its clock moved by anything up to
    /// `Duration::MAX`, and its counters add up after each one.
    #[test]
    fn a_built_breaker_survives_any_operations(
        settings in valid_settings(),
        start in duration(),
        ops in prop::collection::vec(op(), 0..80),
    ) {
        let clock = ManualClock::new();
        clock.set(start);
        let breaker = builder(&settings)
            .build_with_clock(clock.clone())
            .expect("valid settings build");
        let mut held: Vec<OwnedPermit> = Vec::new();
        let mut calls = 0u64;
        for op in ops {
            match op {
                Op::Acquire => {
                    calls += 1;
                    match breaker.try_acquire_owned() {
                        Ok(p) => held.push(p),
                        Err(r) => {
                            let _ = (r.retry_after(), r.as_str(), r.to_string());
                        }
                    }
                }
                Op::Record(i, o) if !held.is_empty() => {
                    let p = held.swap_remove(i % held.len());
                    let _ = p.generation();
                    p.record(o);
                }
                Op::RecordWithRetryAfter(i, o, d) if !held.is_empty() => {
                    held.swap_remove(i % held.len()).record_with_retry_after(o, d);
                }
                Op::RecordWithDuration(i, o, d) if !held.is_empty() => {
                    held.swap_remove(i % held.len()).record_with_duration(o, d);
                }
                Op::Drop(i) if !held.is_empty() => drop(held.swap_remove(i % held.len())),
                Op::Record(..)
                | Op::RecordWithRetryAfter(..)
                | Op::RecordWithDuration(..)
                | Op::Drop(_) => {}
                Op::Call(o) => {
                    calls += 1;
                    let r = breaker.call_with(|_: &Result<(), ()>| o, || Ok(()));
                    if let Err(CallError::Rejected(r)) = r {
                        let _ = r.to_string();
                    }
                }
                Op::Advance(d) => clock.advance(d),
                Op::Set(d) => {
                    let before = clock.now();
                    // The manual clock keeps whole nanoseconds in a u64 and saturates.
                    let to = Duration::from_nanos(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
                    prop_assert_eq!(clock.set(d), to > before);
                    prop_assert!(clock.now() >= before);
                }
                Op::ForceOpen => breaker.force_open(),
                Op::ForceClosed => breaker.force_closed(),
                Op::Reset => breaker.reset(),
                Op::Read => {
                    let s = breaker.publish_stats();
                    let _ = (breaker.elapsed(), format!("{breaker:?}"));
                    let _ = (s.state.as_str(), s.state.as_gauge(), s.state.to_string());
                }
            }
            check(&breaker, held.len(), calls);
        }
        drop(held);
        check(&breaker, 0, calls);
        prop_assert_eq!(breaker.stats().probes_in_flight, 0);
    }
}

/// The clocks and the error types never panic on any value.
#[test]
fn clocks_and_errors_take_any_value() {
    let clock = ManualClock::default();
    clock.advance(Duration::MAX);
    assert_eq!(clock.now(), Duration::from_nanos(u64::MAX));
    clock.advance(Duration::MAX);
    assert_eq!(clock.now(), Duration::from_nanos(u64::MAX));
    assert!(!clock.set(Duration::MAX));
    assert!(!clock.set(Duration::ZERO));
    let _ = format!("{clock:?}");

    let m = MonotonicClock::default();
    let a = m.now();
    assert!(m.now() >= a);
    let _ = MonotonicClock::new();

    for retry_after in [Duration::ZERO, Duration::MAX] {
        for r in [
            Rejected::Open { retry_after },
            Rejected::HalfOpenFull { retry_after },
            Rejected::ForcedOpen,
        ] {
            assert!(!r.to_string().is_empty());
            let e: CallError<std::io::Error> = r.into();
            assert_eq!(e.rejected(), Some(&r));
            assert!(std::error::Error::source(&e).is_some());
            assert!(e.into_inner().is_none());
        }
    }
}

/// A breaker whose clock starts at the end of its range still works, and so does one
/// whose clock is pushed past the end while open.
#[test]
fn clock_at_the_end_of_its_range() {
    let clock = ManualClock::new();
    clock.advance(Duration::MAX);
    let breaker = CircuitBreaker::builder()
        .failure_threshold(1)
        .open_duration(MAX_DURATION)
        .build_with_clock(clock.clone())
        .expect("valid");
    assert_eq!(breaker.call(|| Err::<(), _>(())), Err(CallError::Inner(())));
    assert_eq!(breaker.state(), State::Open);

    let clock = ManualClock::new();
    let breaker = CircuitBreaker::builder()
        .failure_threshold(1)
        .open_duration(MAX_DURATION)
        .build_with_clock(clock.clone())
        .expect("valid");
    assert_eq!(breaker.call(|| Err::<(), _>(())), Err(CallError::Inner(())));
    assert!(matches!(
        breaker.try_acquire(),
        Err(Rejected::Open { retry_after }) if retry_after == MAX_DURATION
    ));
    clock.advance(Duration::MAX);
    // Past every deadline: a probe is admitted and closes the circuit.
    assert_eq!(breaker.call(|| Ok::<_, ()>(())), Ok(()));
    assert_eq!(breaker.state(), State::Closed);
    assert_eq!(breaker.retry_after(), None);
}
