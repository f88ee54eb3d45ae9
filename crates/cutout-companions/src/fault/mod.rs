//! Fault injection for tests and drills: errors, added latency and outage windows, by
//! probability and schedule, reproducible from a seed.
//!
//! A [`FaultInjectionLayer`] holds a list of [`Rule`]s. Each rule is active during a window
//! of time since the layer was built (always, by default) and fires with its probability.
//! For each call, every rule draws one number from a generator seeded by the layer's seed
//! and the call's index (0, 1, 2, ... in the order calls reach the layer), so the same seed
//! and the same order of calls inject the same faults. Then the call:
//!
//! 1. waits the sum of the delays of the latency rules that fired (the inner future is
//!    made at `call` and first polled after the wait);
//! 2. fails with [`InjectedFault`] if an error or outage rule fired, without calling the
//!    inner service;
//! 3. otherwise goes to the inner service.
//!
//! Off unless configured: [`FaultInjectionLayer::disabled`] (also `Default`) makes a
//! pass-through that reads no clock and draws nothing, and a built layer can be switched
//! off and on at run time with [`set_enabled`](FaultInjectionLayer::set_enabled).
//!
//! Time is `tokio::time`: paused time drives the schedule and the delays in tests.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), cutout_companions::BoxError> {
//! use cutout_companions::fault::{FaultInjectionLayer, FaultKind, InjectedFault, Rule};
//! use std::time::Duration;
//! use tower::{Service, ServiceBuilder, ServiceExt};
//!
//! let chaos = FaultInjectionLayer::builder()
//!     .seed(7)
//!     .rule(Rule::latency(1.0, Duration::from_millis(100)))           // every call +100 ms
//!     .rule(Rule::outage().during(Duration::from_secs(10), Duration::from_secs(20)))
//!     .build()?;
//! let mut svc = ServiceBuilder::new()
//!     .layer(chaos.clone())
//!     .service_fn(|req: u32| async move { Ok::<_, std::io::Error>(req) });
//!
//! let start = tokio::time::Instant::now();
//! assert_eq!(svc.ready().await?.call(1).await?, 1);
//! assert_eq!(start.elapsed(), Duration::from_millis(100));
//!
//! tokio::time::advance(Duration::from_secs(10)).await; // inside the outage
//! let err = svc.ready().await?.call(2).await.unwrap_err();
//! assert_eq!(err.downcast_ref::<InjectedFault>().map(|f| f.kind()), Some(FaultKind::Outage));
//!
//! tokio::time::advance(Duration::from_secs(10)).await; // after it
//! assert_eq!(svc.ready().await?.call(3).await?, 3);
//! assert_eq!(chaos.stats().outages, 1);
//! # Ok(())
//! # }
//! ```

mod error;
mod service;

pub use error::{FaultKind, InjectedFault};
pub use service::{FaultInjection, ResponseFuture};

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;
use tower_layer::Layer;

use crate::error::{ConfigError, check_range};
use crate::rng::{SplitMix64, mix};

/// What a [`Rule`] does when it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Fail the call with [`FaultKind::Error`].
    Error,
    /// Delay the call by this much.
    Latency(Duration),
    /// Fail the call with [`FaultKind::Outage`].
    Outage,
}

/// One fault, its probability, and the window of time (since the layer was built) in
/// which it is active.
///
/// ```
/// use cutout_companions::fault::{Fault, Rule};
/// use std::time::Duration;
///
/// let slow_minute = Rule::latency(0.5, Duration::from_millis(300))
///     .during(Duration::from_secs(60), Duration::from_secs(120));
/// assert_eq!(slow_minute.fault(), Fault::Latency(Duration::from_millis(300)));
/// assert!(!slow_minute.is_active(Duration::from_secs(59)));
/// assert!(slow_minute.is_active(Duration::from_secs(60)));
/// assert!(!slow_minute.is_active(Duration::from_secs(120)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rule {
    fault: Fault,
    probability: f64,
    from: Duration,
    until: Option<Duration>,
}

impl Rule {
    /// Fails a call with probability `p` (in `0.0..=1.0`).
    pub const fn error(p: f64) -> Self {
        Self::new(Fault::Error, p)
    }

    /// Delays a call by `delay` with probability `p`.
    pub const fn latency(p: f64, delay: Duration) -> Self {
        Self::new(Fault::Latency(delay), p)
    }

    /// Fails every call: use with [`during`](Self::during) for an outage window.
    pub const fn outage() -> Self {
        Self::new(Fault::Outage, 1.0)
    }

    const fn new(fault: Fault, probability: f64) -> Self {
        Self {
            fault,
            probability,
            from: Duration::ZERO,
            until: None,
        }
    }

    /// Active only from `from` (inclusive) to `until` (exclusive) after the layer was built.
    pub const fn during(mut self, from: Duration, until: Duration) -> Self {
        self.from = from;
        self.until = Some(until);
        self
    }

    /// Active from `from` after the layer was built, with no end.
    pub const fn starting_at(mut self, from: Duration) -> Self {
        self.from = from;
        self
    }

    /// What the rule does.
    pub const fn fault(&self) -> Fault {
        self.fault
    }

    /// Its probability.
    pub const fn probability(&self) -> f64 {
        self.probability
    }

    /// Whether the rule is active `elapsed` after the layer was built.
    pub fn is_active(&self, elapsed: Duration) -> bool {
        elapsed >= self.from && self.until.is_none_or(|until| elapsed < until)
    }
}

/// What fault injection has done, from [`FaultInjectionLayer::stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FaultStats {
    /// Calls seen while enabled.
    pub calls: u64,
    /// Calls failed by an error rule.
    pub errors: u64,
    /// Calls failed by an outage rule.
    pub outages: u64,
    /// Calls delayed (whether they then failed or not).
    pub delayed: u64,
    /// Calls passed to the inner service.
    pub passed: u64,
}

/// What to do with one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Decision {
    pub(crate) delay: Duration,
    pub(crate) fail: Option<FaultKind>,
}

/// A layer's plan and counters, shared by its services.
pub(crate) struct Plan {
    seed: u64,
    rules: Box<[Rule]>,
    origin: Instant,
    enabled: AtomicBool,
    index: AtomicU64,
    errors: AtomicU64,
    outages: AtomicU64,
    delayed: AtomicU64,
    passed: AtomicU64,
}

impl Plan {
    pub(crate) fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    /// Decides the fate of the next call, at `now`, and counts it.
    pub(crate) fn decide(&self, now: Instant) -> Decision {
        let n = self.index.fetch_add(1, Ordering::Relaxed);
        let elapsed = now.saturating_duration_since(self.origin);
        let mut rng = SplitMix64::new(mix(self.seed ^ mix(n)));
        let mut delay = Duration::ZERO;
        let mut fail = None;
        for rule in self.rules.iter() {
            // Every rule draws, active or not, so a rule's rolls do not depend on the
            // others' windows.
            let roll = rng.next_f64();
            if !rule.is_active(elapsed) || roll >= rule.probability {
                continue;
            }
            match rule.fault {
                Fault::Latency(d) => delay = delay.saturating_add(d),
                Fault::Error => {
                    fail.get_or_insert(FaultKind::Error);
                }
                Fault::Outage => {
                    fail.get_or_insert(FaultKind::Outage);
                }
            }
        }
        if !delay.is_zero() {
            self.delayed.fetch_add(1, Ordering::Relaxed);
        }
        match fail {
            Some(FaultKind::Outage) => &self.outages,
            Some(_) => &self.errors,
            None => &self.passed,
        }
        .fetch_add(1, Ordering::Relaxed);
        Decision { delay, fail }
    }
}

/// Wraps services in a [`FaultInjection`]; see the [module docs](self). Clones, and every
/// service the layer makes, share one plan, one schedule and one set of counters.
#[derive(Clone, Default)]
pub struct FaultInjectionLayer {
    plan: Option<Arc<Plan>>,
}

impl FaultInjectionLayer {
    /// A layer that injects nothing: its services are pass-throughs.
    ///
    /// ```
    /// use cutout_companions::fault::FaultInjectionLayer;
    ///
    /// let off = FaultInjectionLayer::disabled();
    /// assert!(!off.is_enabled());
    /// ```
    pub const fn disabled() -> Self {
        Self { plan: None }
    }

    /// A builder: no rules, seed 0, enabled.
    pub fn builder() -> FaultInjectionBuilder {
        FaultInjectionBuilder::default()
    }

    /// Switches injection on or off at run time (no effect on a
    /// [`disabled`](Self::disabled) layer). Switched off, the services are pass-throughs;
    /// the schedule keeps running.
    pub fn set_enabled(&self, enabled: bool) {
        if let Some(plan) = &self.plan {
            plan.enabled.store(enabled, Ordering::Relaxed);
        }
    }

    /// Whether the layer injects faults now.
    pub fn is_enabled(&self) -> bool {
        self.plan.as_ref().is_some_and(|p| p.enabled())
    }

    /// The counters (all zero for a disabled layer).
    pub fn stats(&self) -> FaultStats {
        let Some(p) = &self.plan else {
            return FaultStats::default();
        };
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        FaultStats {
            calls: get(&p.index),
            errors: get(&p.errors),
            outages: get(&p.outages),
            delayed: get(&p.delayed),
            passed: get(&p.passed),
        }
    }
}

impl fmt::Debug for FaultInjectionLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("FaultInjectionLayer");
        match &self.plan {
            None => d.field("enabled", &false),
            Some(p) => d
                .field("enabled", &p.enabled())
                .field("seed", &p.seed)
                .field("rules", &p.rules),
        };
        d.finish()
    }
}

impl<S> Layer<S> for FaultInjectionLayer {
    type Service = FaultInjection<S>;

    fn layer(&self, inner: S) -> FaultInjection<S> {
        FaultInjection::new(inner, self.plan.clone())
    }
}

/// Builds a [`FaultInjectionLayer`].
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct FaultInjectionBuilder {
    seed: u64,
    rules: Vec<Rule>,
}

impl FaultInjectionBuilder {
    /// The seed of the rolls (default 0).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Adds a rule.
    pub fn rule(mut self, rule: Rule) -> Self {
        self.rules.push(rule);
        self
    }

    /// Checks the rules and builds the layer, enabled. The schedule starts now (tokio's
    /// clock): build it inside the runtime whose time drives it.
    pub fn build(self) -> Result<FaultInjectionLayer, ConfigError> {
        for rule in &self.rules {
            check_range("fault probability", rule.probability, 0.0, 1.0)?;
            match rule.until {
                Some(until) if until < rule.from => {
                    return Err(ConfigError::Inverted {
                        low: "fault window start",
                        low_value: rule.from,
                        high: "fault window end",
                        high_value: until,
                    });
                }
                _ => {}
            }
        }
        Ok(FaultInjectionLayer {
            plan: Some(Arc::new(Plan {
                seed: self.seed,
                rules: self.rules.into_boxed_slice(),
                origin: Instant::now(),
                enabled: AtomicBool::new(true),
                index: AtomicU64::new(0),
                errors: AtomicU64::new(0),
                outages: AtomicU64::new(0),
                delayed: AtomicU64::new(0),
                passed: AtomicU64::new(0),
            })),
        })
    }
}
