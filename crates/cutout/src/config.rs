//! Configuration: a builder with defaults from common practice, checked by `build()`.

use std::error::Error;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::breaker::CircuitBreaker;
use crate::clock::{Clock, MonotonicClock};
use crate::listener::{FnTransitionListener, Listener, Transition};
use crate::state::{MAX_PROBES, MAX_TICK, OpenPolicy, Policy, TICK};

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
        if self.success_threshold > self.half_open_max_calls {
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
        Ok(Policy {
            failure_threshold: self.failure_threshold,
            success_threshold: self.success_threshold,
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
