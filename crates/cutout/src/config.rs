//! Configuration: a builder with defaults from common practice, checked by `build()`.

use std::error::Error;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::breaker::CircuitBreaker;
use crate::clock::{Clock, MonotonicClock};
use crate::listener::{FnTransitionListener, Listener, Transition};
use crate::state::{MAX_PROBES, MAX_TICK, OpenPolicy, Policy, TICK};
use crate::window::{
    DEFAULT_MINIMUM_CALLS, MAX_WINDOW_BUCKETS, MAX_WINDOW_CALLS, Ppm, Shape, SlidingWindow,
    WindowPolicy,
};

/// The longest duration any setting accepts: 365 days. Open times, their cap and the
/// probe lease must fit the tick range with room to spare for years of uptime.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// How long the circuit stays open.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OpenDuration {
    /// The same time after every trip.
    Constant(Duration),
    /// `base * multiplier^n` after the n-th re-open without an intervening close (n = 0 on
    /// the trip from closed), capped at `cap`, then shortened by up to `jitter` of itself
    /// (uniform over `[d * (1 - jitter), d]`). The growth resets when the circuit closes.
    Exponential {
        /// The first open time.
        base: Duration,
        /// The growth per re-open, at least 1.
        multiplier: f64,
        /// The longest open time, at least `base`.
        cap: Duration,
        /// The fraction of the open time that may be cut at random, in `0.0..=1.0`.
        jitter: f64,
    },
}

/// A setting `build()` refused.
///
/// Each variant names the setting; none of them panics or is silently clamped.
///
/// ```
/// use cutout::{CircuitBreaker, ConfigError};
///
/// let err = CircuitBreaker::builder().failure_threshold(0).build().unwrap_err();
/// assert_eq!(err, ConfigError::ZeroFailureThreshold);
/// assert_eq!(err.to_string(), "failure threshold must be at least 1");
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ConfigError {
    /// `failure_threshold(0)`.
    ZeroFailureThreshold,
    /// `success_threshold(0)`.
    ZeroSuccessThreshold,
    /// `half_open_max_calls(0)`.
    ZeroHalfOpenMaxCalls,
    /// More half-open probes than the state word counts.
    TooManyHalfOpenCalls {
        /// The value given.
        requested: u32,
        /// The largest accepted.
        max: u32,
    },
    /// A success threshold no half-open period could reach.
    SuccessThresholdAboveHalfOpenMaxCalls {
        /// The success threshold given.
        success_threshold: u32,
        /// The half-open probe limit given.
        half_open_max_calls: u32,
    },
    /// A duration that is zero where time must pass.
    ZeroDuration {
        /// The setting.
        setting: &'static str,
    },
    /// A duration above [`MAX_DURATION`].
    DurationTooLong {
        /// The setting.
        setting: &'static str,
        /// The value given.
        value: Duration,
        /// The largest accepted.
        max: Duration,
    },
    /// An exponential cap below its base.
    CapBelowBase {
        /// The base given.
        base: Duration,
        /// The cap given.
        cap: Duration,
    },
    /// A multiplier below 1 or not finite.
    InvalidMultiplier(f64),
    /// A jitter ratio outside `0.0..=1.0` or not a number.
    InvalidJitter(f64),
    /// A rate threshold that is not a number in `(0, 1]` (at least one millionth).
    InvalidRate {
        /// The setting.
        setting: &'static str,
        /// The value given.
        value: f64,
    },
    /// A count that must be at least 1.
    ZeroCount {
        /// The setting.
        setting: &'static str,
    },
    /// A count above what the setting supports.
    CountTooLarge {
        /// The setting.
        setting: &'static str,
        /// The value given.
        value: u32,
        /// The largest accepted.
        max: u32,
    },
    /// A time window whose buckets would be narrower than one millisecond.
    BucketsNarrowerThanTick {
        /// The window's span.
        span: Duration,
        /// The buckets asked for.
        buckets: u32,
    },
    /// A minimum volume a count window could never hold.
    MinimumCallsAboveWindow {
        /// The minimum volume given.
        minimum_calls: u32,
        /// The count window's size.
        window: u32,
    },
    /// A sliding window or minimum volume set without any rate to use it.
    WindowWithoutRate,
    /// A half-open success rate whose successes and tolerated failures do not fit the
    /// state word: `successes * (probes - successes + 1)` must be at most 128.
    HalfOpenRateDoesNotFit {
        /// The probes given.
        probes: u32,
        /// The successes the rate needs among them.
        successes: u32,
    },
    /// [`CircuitBreaker::reconfigure`](crate::CircuitBreaker::reconfigure) was asked to
    /// change a setting that shapes the breaker's live counts, which a running breaker
    /// keeps: `setting` names it.
    NotReconfigurable {
        /// The setting.
        setting: &'static str,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::ZeroFailureThreshold => {
                f.write_str("failure threshold must be at least 1")
            }
            ConfigError::ZeroSuccessThreshold => {
                f.write_str("success threshold must be at least 1")
            }
            ConfigError::ZeroHalfOpenMaxCalls => {
                f.write_str("half-open max calls must be at least 1")
            }
            ConfigError::TooManyHalfOpenCalls { requested, max } => {
                write!(
                    f,
                    "half-open max calls is {requested}, at most {max} are supported"
                )
            }
            ConfigError::SuccessThresholdAboveHalfOpenMaxCalls {
                success_threshold,
                half_open_max_calls,
            } => write!(
                f,
                "success threshold {success_threshold} is above half-open max calls \
                 {half_open_max_calls}"
            ),
            ConfigError::ZeroDuration { setting } => write!(f, "{setting} must not be zero"),
            ConfigError::DurationTooLong {
                setting,
                value,
                max,
            } => write!(f, "{setting} is {value:?}, at most {max:?} is supported"),
            ConfigError::CapBelowBase { base, cap } => {
                write!(f, "open duration cap {cap:?} is below its base {base:?}")
            }
            ConfigError::InvalidMultiplier(m) => {
                write!(
                    f,
                    "open duration multiplier {m} must be finite and at least 1"
                )
            }
            ConfigError::InvalidJitter(j) => {
                write!(f, "jitter {j} must be between 0 and 1")
            }
            ConfigError::InvalidRate { setting, value } => write!(
                f,
                "{setting} {value} must be above 0 (at least one millionth) and at most 1"
            ),
            ConfigError::ZeroCount { setting } => write!(f, "{setting} must be at least 1"),
            ConfigError::CountTooLarge {
                setting,
                value,
                max,
            } => write!(f, "{setting} is {value}, at most {max} are supported"),
            ConfigError::BucketsNarrowerThanTick { span, buckets } => write!(
                f,
                "a window of {span:?} cannot hold {buckets} buckets of at least 1ms"
            ),
            ConfigError::MinimumCallsAboveWindow {
                minimum_calls,
                window,
            } => write!(
                f,
                "minimum calls {minimum_calls} is above the window of {window} calls"
            ),
            ConfigError::WindowWithoutRate => f.write_str(
                "a sliding window or minimum calls was set without a failure or slow-call rate",
            ),
            ConfigError::HalfOpenRateDoesNotFit { probes, successes } => write!(
                f,
                "a half-open success rate of {successes} in {probes} probes does not fit; \
                 successes * (failures tolerated + 1) must be at most 128"
            ),
            ConfigError::NotReconfigurable { setting } => {
                write!(f, "{setting} cannot change on a running breaker")
            }
        }
    }
}

impl Error for ConfigError {}

/// Builds a [`CircuitBreaker`].
///
/// | setting | default | meaning |
/// |---|---|---|
/// | [`failure_threshold`](Self::failure_threshold) | 5 | consecutive failures that trip the circuit |
/// | [`half_open_max_calls`](Self::half_open_max_calls) | 1 | probes admitted at once when half-open (at most 127) |
/// | [`success_threshold`](Self::success_threshold) | 1 | probe successes that close the circuit (at most `half_open_max_calls`) |
/// | [`open_duration`](Self::open_duration) | exponential: 5 s, x2, cap 60 s, jitter 0.5 | how long the circuit stays open |
/// | [`probe_lease`](Self::probe_lease) | 30 s | how long probes may hold every slot without reporting |
/// | [`name`](Self::name) | `"default"` | the label in events, metrics and health |
/// | [`failure_rate`](Self::failure_rate) | off | failure share of the sliding window that trips the circuit |
/// | [`slow_call_rate`](Self::slow_call_rate) | off | slow-call share of the sliding window that trips the circuit |
/// | [`sliding_window`](Self::sliding_window) | the last 100 calls | the calls the rates are measured over |
/// | [`minimum_calls`](Self::minimum_calls) | 20 (at most the window) | calls the window must hold before a rate trips |
/// | [`half_open_success_rate`](Self::half_open_success_rate) | off | close by the share of successful probes |
///
/// ```
/// use cutout::CircuitBreaker;
/// use std::time::Duration;
///
/// let breaker = CircuitBreaker::builder()
///     .name("payments")
///     .failure_threshold(2)
///     .open_duration(Duration::from_millis(100))
///     .build()?;
/// assert_eq!(breaker.name(), "payments");
/// # Ok::<(), cutout::ConfigError>(())
/// ```
#[derive(Clone)]
#[must_use]
pub struct Builder {
    pub(crate) name: Arc<str>,
    pub(crate) failure_threshold: u32,
    pub(crate) success_threshold: u32,
    pub(crate) half_open_max_calls: u32,
    pub(crate) open: OpenDuration,
    pub(crate) probe_lease: Duration,
    pub(crate) jitter_seed: Option<u64>,
    pub(crate) listeners: Vec<Arc<dyn Listener>>,
    pub(crate) named_listeners: Vec<NamedListener>,
    pub(crate) rates: RateSettings,
}

/// The rate policies' settings, as given (checked by `build()`).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct RateSettings {
    pub(crate) window: Option<SlidingWindow>,
    pub(crate) failure_rate: Option<f64>,
    pub(crate) slow_call_rate: Option<(f64, Duration)>,
    pub(crate) minimum_calls: Option<u32>,
    pub(crate) half_open_success_rate: Option<(f64, u32)>,
}

/// Makes a listener from the breaker's final name, at build time.
pub(crate) type NamedListener = Arc<dyn Fn(&str) -> Arc<dyn Listener> + Send + Sync>;

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("name", &self.name)
            .field("failure_threshold", &self.failure_threshold)
            .field("success_threshold", &self.success_threshold)
            .field("half_open_max_calls", &self.half_open_max_calls)
            .field("open", &self.open)
            .field("probe_lease", &self.probe_lease)
            .field("jitter_seed", &self.jitter_seed)
            .field(
                "listeners",
                &(self.listeners.len() + self.named_listeners.len()),
            )
            .field("rates", &self.rates)
            .finish()
    }
}

impl Default for Builder {
    fn default() -> Self {
        Self {
            name: Arc::from("default"),
            failure_threshold: 5,
            success_threshold: 1,
            half_open_max_calls: 1,
            open: OpenDuration::Exponential {
                base: Duration::from_secs(5),
                multiplier: 2.0,
                cap: Duration::from_secs(60),
                jitter: 0.5,
            },
            probe_lease: Duration::from_secs(30),
            jitter_seed: None,
            listeners: Vec::new(),
            named_listeners: Vec::new(),
            rates: RateSettings::default(),
        }
    }
}

impl Builder {
    /// A builder with the defaults in the table above.
    pub fn new() -> Self {
        Self::default()
    }

    /// The breaker's name, used as the label in events, metrics and health reports.
    pub fn name(mut self, name: impl Into<Arc<str>>) -> Self {
        self.name = name.into();
        self
    }

    /// Consecutive failures that trip the circuit from closed to open (at least 1).
    pub fn failure_threshold(mut self, failures: u32) -> Self {
        self.failure_threshold = failures;
        self
    }

    /// Probe successes in one half-open period that close the circuit (1 to
    /// `half_open_max_calls`).
    pub fn success_threshold(mut self, successes: u32) -> Self {
        self.success_threshold = successes;
        self
    }

    /// Probes admitted at once while half-open (1 to 127). Exact under any interleaving.
    pub fn half_open_max_calls(mut self, calls: u32) -> Self {
        self.half_open_max_calls = calls;
        self
    }

    /// A constant open time.
    pub fn open_duration(mut self, duration: Duration) -> Self {
        self.open = OpenDuration::Constant(duration);
        self
    }

    /// An exponential open time: `base`, times `multiplier` per re-open, at most `cap`, with
    /// no jitter (add it with [`jitter`](Self::jitter)).
    pub fn exponential_backoff(mut self, base: Duration, multiplier: f64, cap: Duration) -> Self {
        self.open = OpenDuration::Exponential {
            base,
            multiplier,
            cap,
            jitter: 0.0,
        };
        self
    }

    /// The fraction of each open time that may be cut at random (`0.0..=1.0`). Turns a
    /// constant open time into an exponential one with multiplier 1.
    pub fn jitter(mut self, ratio: f64) -> Self {
        self.open = match self.open {
            OpenDuration::Constant(d) => OpenDuration::Exponential {
                base: d,
                multiplier: 1.0,
                cap: d,
                jitter: ratio,
            },
            OpenDuration::Exponential {
                base,
                multiplier,
                cap,
                ..
            } => OpenDuration::Exponential {
                base,
                multiplier,
                cap,
                jitter: ratio,
            },
        };
        self
    }

    /// The seed for jitter; by default one is drawn from the clock and the breaker's address.
    /// Fix it for reproducible open times.
    pub fn jitter_seed(mut self, seed: u64) -> Self {
        self.jitter_seed = Some(seed);
        self
    }

    /// How long half-open probes may hold every slot without any of them reporting. When a
    /// call arrives after that, the probes still out are given up: their slots are taken
    /// back, a new half-open period (a new generation) begins with the arriving call as its
    /// first probe, and the late results, when they come, are stale and change nothing.
    /// Measured in steps of 256 ms, rounded up.
    pub fn probe_lease(mut self, lease: Duration) -> Self {
        self.probe_lease = lease;
        self
    }

    /// The window the [failure rate](Self::failure_rate) and
    /// [slow-call rate](Self::slow_call_rate) are measured over; default the last 100
    /// calls. See [`window`](crate::window).
    pub fn sliding_window(mut self, window: SlidingWindow) -> Self {
        self.rates.window = Some(window);
        self
    }

    /// Trips the circuit when failures make up at least `rate` (in `(0, 1]`) of the calls in
    /// the [sliding window](Self::sliding_window), once it holds
    /// [`minimum_calls`](Self::minimum_calls). Combines with the consecutive-failure
    /// threshold: whichever is reached first trips. The trip's cause is
    /// [`Cause::FailureRate`](crate::Cause::FailureRate).
    ///
    /// ```
    /// use cutout::{CircuitBreaker, ManualClock, Outcome, SlidingWindow, State};
    ///
    /// let breaker = CircuitBreaker::builder()
    ///     .sliding_window(SlidingWindow::Calls(20))
    ///     .failure_rate(0.25)
    ///     .minimum_calls(8)
    ///     .build_with_clock(ManualClock::new())?;
    /// // One failure in four: never two in a row, but a quarter of the calls.
    /// for i in 0..8 {
    ///     let outcome = if i % 4 == 3 { Outcome::Failure } else { Outcome::Success };
    ///     breaker.try_acquire()?.record(outcome);
    /// }
    /// assert_eq!(breaker.state(), State::Open);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn failure_rate(mut self, rate: f64) -> Self {
        self.rates.failure_rate = Some(rate);
        self
    }

    /// Trips the circuit when calls slower than `slower_than` make up at least `rate` (in
    /// `(0, 1]`) of the calls in the [sliding window](Self::sliding_window), once it holds
    /// [`minimum_calls`](Self::minimum_calls). A call is slow when it took strictly longer
    /// than `slower_than`, whatever its outcome. Calls are timed on the breaker's clock from
    /// admission to [`record`](crate::Permit::record) (the permit then reads the clock when
    /// admitted; without a slow-call rate it never does), or report their own time with
    /// [`record_with_duration`](crate::Permit::record_with_duration). The trip's cause is
    /// [`Cause::SlowCallRate`](crate::Cause::SlowCallRate).
    ///
    /// ```
    /// use cutout::{CircuitBreaker, ManualClock, Outcome, State};
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let breaker = CircuitBreaker::builder()
    ///     .slow_call_rate(0.5, Duration::from_millis(200))
    ///     .minimum_calls(2)
    ///     .build_with_clock(clock.clone())?;
    /// let permit = breaker.try_acquire()?;
    /// clock.advance(Duration::from_millis(201));
    /// permit.record(Outcome::Success); // slow
    /// breaker.try_acquire()?.record_with_duration(Outcome::Success, Duration::from_millis(5));
    /// assert_eq!(breaker.state(), State::Open);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn slow_call_rate(mut self, rate: f64, slower_than: Duration) -> Self {
        self.rates.slow_call_rate = Some((rate, slower_than));
        self
    }

    /// The fewest calls the sliding window must hold before a rate can trip the circuit;
    /// default 20, or the whole window if a count window is smaller.
    pub fn minimum_calls(mut self, calls: u32) -> Self {
        self.rates.minimum_calls = Some(calls);
        self
    }

    /// Closes a half-open circuit by rate rather than by
    /// [consecutive successes](Self::success_threshold): out of `probes` probes, it closes
    /// once `ceil(rate * probes)` have succeeded and re-opens once more than the rest have
    /// failed. The decision is made as soon as it is certain, which gives the same answer
    /// as waiting for all `probes`. Ignored probes do not count. Replaces
    /// [`success_threshold`](Self::success_threshold); probes are still admitted at most
    /// [`half_open_max_calls`](Self::half_open_max_calls) at a time. The close's cause is
    /// [`Cause::ProbeSuccessRate`](crate::Cause::ProbeSuccessRate). See
    /// [`state`](crate::state) for how the counts fit the state word (`successes * (probes -
    /// successes + 1)` must be at most 128; any `probes` up to 21 fits).
    ///
    /// ```
    /// use cutout::{Cause, CircuitBreaker, ManualClock, Outcome, State};
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let breaker = CircuitBreaker::builder()
    ///     .failure_threshold(1)
    ///     .open_duration(Duration::from_secs(1))
    ///     .half_open_max_calls(2)
    ///     .half_open_success_rate(0.75, 4) // 3 of 4 probes
    ///     .build_with_clock(clock.clone())?;
    /// breaker.try_acquire()?.record(Outcome::Failure);
    /// clock.advance(Duration::from_secs(1));
    /// breaker.try_acquire()?.record(Outcome::Failure); // tolerated
    /// assert_eq!(breaker.state(), State::HalfOpen);
    /// for _ in 0..3 {
    ///     breaker.try_acquire()?.record(Outcome::Success);
    /// }
    /// assert_eq!(breaker.state(), State::Closed);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn half_open_success_rate(mut self, rate: f64, probes: u32) -> Self {
        self.rates.half_open_success_rate = Some((rate, probes));
        self
    }

    /// Adds a listener for events (transitions, rejections, probes, outcomes). Listeners are
    /// called synchronously by the thread that caused the event.
    pub fn listener(mut self, listener: impl Listener) -> Self {
        self.listeners.push(Arc::new(listener));
        self
    }

    /// Adds a listener made when the breaker is built, from the breaker's final name
    /// (whatever order the builder's methods are called in): for listeners that set up
    /// something per breaker, such as metric handles. `make` is called once per
    /// [`build`](Self::build); the listeners it makes are called after those added with
    /// [`listener`](Self::listener).
    ///
    /// ```
    /// use cutout::{CircuitBreaker, Listener, Transition};
    ///
    /// struct Log(String);
    ///
    /// impl Listener for Log {
    ///     fn on_transition(&self, _breaker: &str, t: &Transition) {
    ///         println!("{}: {t}", self.0);
    ///     }
    ///     fn wants_call_events(&self) -> bool {
    ///         false
    ///     }
    /// }
    ///
    /// let breaker = CircuitBreaker::builder()
    ///     .listener_with(|name| Log(format!("breaker {name}")))
    ///     .name("payments")
    ///     .build()?;
    /// # Ok::<(), cutout::ConfigError>(())
    /// ```
    pub fn listener_with<L: Listener>(
        mut self,
        make: impl Fn(&str) -> L + Send + Sync + 'static,
    ) -> Self {
        self.named_listeners
            .push(Arc::new(move |name: &str| -> Arc<dyn Listener> {
                Arc::new(make(name))
            }));
        self
    }

    /// Adds a listener for transitions only: `f` is called once per transition, by the
    /// thread whose compare-exchange made it.
    ///
    /// ```
    /// use cutout::{CircuitBreaker, Outcome, State};
    /// use std::sync::{Arc, Mutex};
    ///
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let log = seen.clone();
    /// let breaker = CircuitBreaker::builder()
    ///     .failure_threshold(1)
    ///     .on_transition(move |t| log.lock().unwrap().push((t.from, t.to)))
    ///     .build()?;
    /// breaker.try_acquire()?.record(Outcome::Failure);
    /// assert_eq!(*seen.lock().unwrap(), [(State::Closed, State::Open)]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn on_transition(self, f: impl Fn(&Transition) + Send + Sync + 'static) -> Self {
        self.listener(FnTransitionListener(f))
    }

    /// Checks the settings and builds a breaker on the [`MonotonicClock`].
    pub fn build(self) -> Result<CircuitBreaker, ConfigError> {
        self.build_with_clock(MonotonicClock::new())
    }

    /// Checks the settings and builds a breaker on `clock`.
    pub fn build_with_clock(self, clock: impl Clock) -> Result<CircuitBreaker, ConfigError> {
        let policy = self.policy()?;
        Ok(CircuitBreaker::from_parts(self, policy, Arc::new(clock)))
    }

    /// Validates everything and converts durations to ticks.
    pub(crate) fn policy(&self) -> Result<Policy, ConfigError> {
        if self.failure_threshold == 0 {
            return Err(ConfigError::ZeroFailureThreshold);
        }
        if self.success_threshold == 0 {
            return Err(ConfigError::ZeroSuccessThreshold);
        }
        if self.half_open_max_calls == 0 {
            return Err(ConfigError::ZeroHalfOpenMaxCalls);
        }
        if self.half_open_max_calls > MAX_PROBES {
            return Err(ConfigError::TooManyHalfOpenCalls {
                requested: self.half_open_max_calls,
                max: MAX_PROBES,
            });
        }
        let (success_threshold, probe_failures_allowed) = self.half_open_rate()?;
        if self.rates.half_open_success_rate.is_none()
            && self.success_threshold > self.half_open_max_calls
        {
            return Err(ConfigError::SuccessThresholdAboveHalfOpenMaxCalls {
                success_threshold: self.success_threshold,
                half_open_max_calls: self.half_open_max_calls,
            });
        }
        let (base, multiplier, cap, jitter) = match self.open {
            OpenDuration::Constant(d) => (d, 1.0, d, 0.0),
            OpenDuration::Exponential {
                base,
                multiplier,
                cap,
                jitter,
            } => (base, multiplier, cap, jitter),
        };
        let base_ticks = ticks("open duration", base)?;
        let cap_ticks = ticks("open duration cap", cap)?;
        if cap < base {
            return Err(ConfigError::CapBelowBase { base, cap });
        }
        if !(multiplier.is_finite() && multiplier >= 1.0) {
            return Err(ConfigError::InvalidMultiplier(multiplier));
        }
        if !(0.0..=1.0).contains(&jitter) {
            return Err(ConfigError::InvalidJitter(jitter));
        }
        let probe_lease_ticks = ticks("probe lease", self.probe_lease)?;
        let window = self.window_policy()?;
        Ok(Policy {
            failure_threshold: self.failure_threshold,
            success_threshold,
            probe_failures_allowed,
            window,
            half_open_max_calls: self.half_open_max_calls,
            probe_lease_ticks,
            open: OpenPolicy {
                base_ticks,
                multiplier,
                cap_ticks,
                jitter,
                seed: self.jitter_seed.unwrap_or(0),
            },
        })
    }
}

impl Builder {
    /// The success threshold and the probe failures tolerated.
    fn half_open_rate(&self) -> Result<(u32, u32), ConfigError> {
        let Some((rate, probes)) = self.rates.half_open_success_rate else {
            return Ok((self.success_threshold, 0));
        };
        let ppm = Ppm::from_ratio(rate).ok_or(ConfigError::InvalidRate {
            setting: "half-open success rate",
            value: rate,
        })?;
        if probes == 0 {
            return Err(ConfigError::ZeroCount {
                setting: "half-open probes",
            });
        }
        let successes = ppm.needed(probes);
        let failures = probes - successes;
        if successes as u64 * (failures as u64 + 1) > MAX_PROBES as u64 + 1 {
            return Err(ConfigError::HalfOpenRateDoesNotFit { probes, successes });
        }
        Ok((successes, failures))
    }

    /// The checked window policy, if any rate is set.
    fn window_policy(&self) -> Result<Option<WindowPolicy>, ConfigError> {
        let r = &self.rates;
        let failure_rate = r
            .failure_rate
            .map(|rate| {
                Ppm::from_ratio(rate).ok_or(ConfigError::InvalidRate {
                    setting: "failure rate",
                    value: rate,
                })
            })
            .transpose()?;
        let (slow_rate, slow_threshold) = match r.slow_call_rate {
            Some((rate, threshold)) => {
                let ppm = Ppm::from_ratio(rate).ok_or(ConfigError::InvalidRate {
                    setting: "slow-call rate",
                    value: rate,
                })?;
                if threshold > MAX_DURATION {
                    return Err(ConfigError::DurationTooLong {
                        setting: "slow-call threshold",
                        value: threshold,
                        max: MAX_DURATION,
                    });
                }
                (Some(ppm), threshold)
            }
            None => (None, Duration::ZERO),
        };
        if failure_rate.is_none() && slow_rate.is_none() {
            if r.window.is_some() || r.minimum_calls.is_some() {
                return Err(ConfigError::WindowWithoutRate);
            }
            return Ok(None);
        }
        let window = r.window.unwrap_or_default();
        let (shape, default_minimum) = match window {
            SlidingWindow::Calls(0) => {
                return Err(ConfigError::ZeroCount {
                    setting: "window calls",
                });
            }
            SlidingWindow::Calls(n) if n > MAX_WINDOW_CALLS => {
                return Err(ConfigError::CountTooLarge {
                    setting: "window calls",
                    value: n,
                    max: MAX_WINDOW_CALLS,
                });
            }
            SlidingWindow::Calls(n) => (Shape::Calls(n), n.min(DEFAULT_MINIMUM_CALLS)),
            SlidingWindow::Time { buckets: 0, .. } => {
                return Err(ConfigError::ZeroCount {
                    setting: "window buckets",
                });
            }
            SlidingWindow::Time { buckets, .. } if buckets > MAX_WINDOW_BUCKETS => {
                return Err(ConfigError::CountTooLarge {
                    setting: "window buckets",
                    value: buckets,
                    max: MAX_WINDOW_BUCKETS,
                });
            }
            SlidingWindow::Time { span, buckets } => {
                let span_ticks = ticks("window span", span)?;
                if span_ticks < buckets as u64 {
                    return Err(ConfigError::BucketsNarrowerThanTick { span, buckets });
                }
                let width_ticks = span_ticks.div_ceil(buckets as u64);
                (
                    Shape::Time {
                        width_ticks,
                        buckets,
                    },
                    DEFAULT_MINIMUM_CALLS,
                )
            }
        };
        let minimum_calls = r.minimum_calls.unwrap_or(default_minimum);
        if minimum_calls == 0 {
            return Err(ConfigError::ZeroCount {
                setting: "minimum calls",
            });
        }
        match shape {
            Shape::Calls(n) if minimum_calls > n => {
                return Err(ConfigError::MinimumCallsAboveWindow {
                    minimum_calls,
                    window: n,
                });
            }
            _ => {}
        }
        Ok(Some(WindowPolicy {
            shape,
            failure_rate,
            slow_rate,
            slow_threshold,
            minimum_calls,
        }))
    }
}

/// A duration in whole ticks, rounded up; zero and over-long durations are errors.
fn ticks(setting: &'static str, d: Duration) -> Result<u64, ConfigError> {
    if d.is_zero() {
        return Err(ConfigError::ZeroDuration { setting });
    }
    if d > MAX_DURATION {
        return Err(ConfigError::DurationTooLong {
            setting,
            value: d,
            max: MAX_DURATION,
        });
    }
    let t = d.as_nanos().div_ceil(TICK.as_nanos());
    // MAX_DURATION is about 2^35 ticks, far inside the tick range.
    Ok(u64::try_from(t).unwrap_or(MAX_TICK).min(MAX_TICK))
}
