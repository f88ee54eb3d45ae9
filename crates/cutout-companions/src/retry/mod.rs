//! Breaker-aware, budgeted retries on tower's own [`Retry`](tower::retry::Retry) middleware.
//!
//! [`RetryPolicy`] is a [`tower::retry::Policy`]: tower's `Retry` service drives the
//! attempts, this crate writes no retry loop. The policy decides, for each finished attempt:
//!
//! 1. **Was it transient?** A [`Classify`] gives a [`Verdict`]. A rejection by a circuit
//!    breaker or a bulkhead is never retried ([`classify_error`] finds
//!    `tower_cutout::error::Rejected`, `cutout::Rejected` and `cutout::CallError::Rejected`
//!    anywhere in a boxed error's chain).
//! 2. **Is there an attempt left?** At most [`max_retries`](RetryBuilder::max_retries).
//! 3. **Does the wait fit?** A failure that asks for a wait (`Retry-After`, a
//!    [`RetryAfter`](crate::error::RetryAfter) error) longer than
//!    [`max_retry_after`](RetryBuilder::max_retry_after) is not retried; a shorter one is
//!    waited out in full.
//! 4. **Is the breaker open?** With a [breaker handle](RetryBuilder::breaker), a failure is
//!    not retried while that breaker is open (the retry would only be rejected).
//! 5. **Is there budget?** A [`TpsBudget`] (by default 20% of requests on top of 3 retries
//!    a second, over 10 s, as Envoy's and failsafe-go's budgets do) caps retries across all
//!    requests, so retries cannot multiply the load on a struggling dependency.
//!
//! Only requests that a [`Repeat`] can copy are ever retried: by default any `Clone`
//! request, [`RepeatIf`] for a predicate, and `IdempotentRequests` for HTTP (feature
//! `http`).
//!
//! The wait before retry `n` (`n = 0` for the first) is exponential with jitter:
//! `d = min(max_backoff, base * multiplier^n)`, shortened at random to a uniform point of
//! `[d * (1 - jitter), d]`, and never shorter than the failure's `retry_after`. Waits use
//! `tokio::time`, so paused time drives them in tests. Jitter comes from a seeded generator:
//! the same [seed](RetryBuilder::seed) and the same order of requests give the same waits.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), cutout_companions::BoxError> {
//! use cutout_companions::retry::RetryPolicy;
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use std::sync::Arc;
//! use std::time::Duration;
//! use tower::{Service, ServiceBuilder, ServiceExt};
//!
//! let policy = RetryPolicy::builder()
//!     .max_retries(2)
//!     .backoff(Duration::from_millis(100), Duration::from_secs(1))
//!     .build()?;
//! let calls = Arc::new(AtomicU32::new(0));
//! let counter = calls.clone();
//! let mut svc = ServiceBuilder::new()
//!     .layer(policy.clone().into_layer())
//!     .service_fn(move |req: u32| {
//!         let n = counter.fetch_add(1, Ordering::SeqCst);
//!         async move {
//!             // Fails twice, then works.
//!             if n < 2 { Err::<u32, cutout_companions::BoxError>("flaky".into()) } else { Ok(req) }
//!         }
//!     });
//! assert_eq!(svc.ready().await?.call(7).await?, 7);
//! assert_eq!(calls.load(Ordering::SeqCst), 3);
//! assert_eq!(policy.stats().retries, 2);
//! # Ok(())
//! # }
//! ```

mod classify;
#[cfg(feature = "http")]
mod http;
mod repeat;

pub use classify::{Classify, TransientErrors, Verdict, classify_error};
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub use http::{IDEMPOTENCY_KEY, IdempotentRequests, RetryableStatus, retry_after_header};
pub use repeat::{Cloned, Never, Repeat, RepeatIf};
pub use tower::retry::budget::{Budget, TpsBudget};

use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Sleep;
use tower::retry::RetryLayer;

use crate::error::{ConfigError, check_range};
use crate::rng::{GAMMA, SplitMix64, mix};

/// A retry policy for tower's [`Retry`](tower::retry::Retry) middleware; see the
/// [module docs](self). Clones share their settings, budget and counters.
///
/// `C` classifies results ([`TransientErrors`] by default), `R` copies requests that may be
/// repeated ([`Cloned`] by default).
#[derive(Clone)]
pub struct RetryPolicy<C = TransientErrors, R = Cloned> {
    shared: Arc<Shared>,
    classify: C,
    repeat: R,
    /// Retries made so far for the request this clone serves (tower clones the policy per
    /// request).
    attempt: u32,
    /// The jitter stream of the request this clone serves.
    rng: SplitMix64,
}

struct Shared {
    max_retries: u32,
    base: Duration,
    multiplier: f64,
    max_backoff: Duration,
    jitter: f64,
    max_retry_after: Duration,
    seed: u64,
    budget: Arc<dyn Budget + Send + Sync>,
    breaker: Option<cutout::CircuitBreaker>,
    counters: Counters,
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    not_repeatable: AtomicU64,
    retries: AtomicU64,
    rejected: AtomicU64,
    exhausted: AtomicU64,
    retry_after_too_long: AtomicU64,
    breaker_open: AtomicU64,
    budget_exhausted: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// What a [`RetryPolicy`] has done, from [`RetryPolicy::stats`]. Every transient failure
/// that was not retried is counted under exactly one reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryStats {
    /// Requests seen (each one deposits into the budget).
    pub requests: u64,
    /// Requests that the [`Repeat`] refused to copy: never retried.
    pub not_repeatable: u64,
    /// Retries made.
    pub retries: u64,
    /// Results rejected by a breaker or a bulkhead: not retried.
    pub rejected: u64,
    /// Transient failures with no attempt left.
    pub exhausted: u64,
    /// Transient failures that asked for a wait above `max_retry_after`.
    pub retry_after_too_long: u64,
    /// Transient failures not retried because the breaker was open.
    pub breaker_open: u64,
    /// Transient failures not retried because the budget was spent.
    pub budget_exhausted: u64,
}

impl RetryPolicy {
    /// A builder with the defaults in [`RetryBuilder`].
    pub fn builder() -> RetryBuilder {
        RetryBuilder::default()
    }
}

impl<C, R> RetryPolicy<C, R> {
    /// Classifies results with `classify` (for example
    /// `RetryableStatus` for HTTP, feature `http`).
    pub fn classify<C2>(self, classify: C2) -> RetryPolicy<C2, R> {
        RetryPolicy {
            shared: self.shared,
            classify,
            repeat: self.repeat,
            attempt: self.attempt,
            rng: self.rng,
        }
    }

    /// Copies repeatable requests with `repeat` (for example
    /// `IdempotentRequests` for HTTP, feature `http`).
    pub fn repeat<R2>(self, repeat: R2) -> RetryPolicy<C, R2> {
        RetryPolicy {
            shared: self.shared,
            classify: self.classify,
            repeat,
            attempt: self.attempt,
            rng: self.rng,
        }
    }

    /// Repeats only the cloneable requests for which `safe` is true.
    ///
    /// ```
    /// use cutout_companions::retry::RetryPolicy;
    ///
    /// let policy = RetryPolicy::builder().build()?.repeat_if(|cmd: &&str| cmd.starts_with("GET"));
    /// # let _ = policy;
    /// # Ok::<(), cutout_companions::ConfigError>(())
    /// ```
    pub fn repeat_if<P>(self, safe: P) -> RetryPolicy<C, RepeatIf<P>> {
        self.repeat(RepeatIf(safe))
    }

    /// Tower's retry layer with this policy.
    pub fn into_layer(self) -> RetryLayer<Self> {
        RetryLayer::new(self)
    }

    /// The counters, shared by every clone.
    pub fn stats(&self) -> RetryStats {
        let c = &self.shared.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        RetryStats {
            requests: get(&c.requests),
            not_repeatable: get(&c.not_repeatable),
            retries: get(&c.retries),
            rejected: get(&c.rejected),
            exhausted: get(&c.exhausted),
            retry_after_too_long: get(&c.retry_after_too_long),
            breaker_open: get(&c.breaker_open),
            budget_exhausted: get(&c.budget_exhausted),
        }
    }

    /// The budget the policy draws on.
    pub fn budget(&self) -> &Arc<dyn Budget + Send + Sync> {
        &self.shared.budget
    }

    /// The backoff before retry `n` (`n = 0` for the first) with no jitter:
    /// `min(max_backoff, base * multiplier^n)`.
    ///
    /// ```
    /// use cutout_companions::retry::RetryPolicy;
    /// use std::time::Duration;
    ///
    /// let policy = RetryPolicy::builder()
    ///     .backoff(Duration::from_millis(100), Duration::from_millis(350))
    ///     .build()?;
    /// assert_eq!(policy.backoff(0), Duration::from_millis(100));
    /// assert_eq!(policy.backoff(1), Duration::from_millis(200));
    /// assert_eq!(policy.backoff(2), Duration::from_millis(350));
    /// assert_eq!(policy.backoff(500), Duration::from_millis(350));
    /// # Ok::<(), cutout_companions::ConfigError>(())
    /// ```
    pub fn backoff(&self, n: u32) -> Duration {
        let s = &self.shared;
        let exp = i32::try_from(n).unwrap_or(i32::MAX);
        let secs = s.base.as_secs_f64() * s.multiplier.powi(exp);
        Duration::try_from_secs_f64(secs)
            .unwrap_or(s.max_backoff)
            .min(s.max_backoff)
    }

    /// Whether the breaker handle (if any) says a retry would be rejected now.
    fn breaker_refuses(&self) -> bool {
        let Some(breaker) = &self.shared.breaker else {
            return false;
        };
        match breaker.state() {
            cutout::State::ForcedOpen => true,
            // An open circuit whose time is up admits the next call as a probe.
            cutout::State::Open => breaker.retry_after().is_none_or(|d| !d.is_zero()),
            // Half-open with every probe slot taken.
            cutout::State::HalfOpen => breaker.retry_after().is_some(),
            _ => false,
        }
    }

    fn decide(&mut self, verdict: Verdict) -> Option<Sleep> {
        let s = &self.shared;
        let retry_after = match verdict {
            Verdict::Done => return None,
            Verdict::Rejected => {
                bump(&s.counters.rejected);
                return None;
            }
            Verdict::Transient { retry_after } => retry_after,
        };
        if self.attempt >= s.max_retries {
            bump(&s.counters.exhausted);
            return None;
        }
        if retry_after.is_some_and(|d| d > s.max_retry_after) {
            bump(&s.counters.retry_after_too_long);
            return None;
        }
        if self.breaker_refuses() {
            bump(&s.counters.breaker_open);
            return None;
        }
        // Last, so that a token is spent only on a retry that happens.
        if !s.budget.withdraw() {
            bump(&s.counters.budget_exhausted);
            return None;
        }
        let backoff = self.backoff(self.attempt);
        let cut =
            Duration::try_from_secs_f64(backoff.as_secs_f64() * s.jitter * self.rng.next_f64())
                .unwrap_or(Duration::ZERO);
        let wait = backoff
            .saturating_sub(cut)
            .max(retry_after.unwrap_or(Duration::ZERO));
        self.attempt += 1;
        bump(&s.counters.retries);
        Some(tokio::time::sleep(wait))
    }
}

impl<C, R, Req, Res, E> tower::retry::Policy<Req, Res, E> for RetryPolicy<C, R>
where
    C: Classify<Res, E>,
    R: Repeat<Req>,
{
    type Future = Sleep;

    fn retry(&mut self, _req: &mut Req, result: &mut Result<Res, E>) -> Option<Sleep> {
        let verdict = self.classify.classify(result);
        self.decide(verdict)
    }

    fn clone_request(&mut self, req: &Req) -> Option<Req> {
        if self.attempt == 0 {
            // A new request: tower calls this on the service's policy before cloning it
            // into the request's future; later calls come from that clone, with
            // `attempt > 0`.
            let s = &self.shared;
            let n = s.counters.requests.fetch_add(1, Ordering::Relaxed);
            s.budget.deposit();
            self.rng = SplitMix64::new(mix(s.seed ^ n.wrapping_mul(GAMMA)));
            let copy = self.repeat.repeat(req);
            if copy.is_none() {
                bump(&s.counters.not_repeatable);
            }
            copy
        } else {
            self.repeat.repeat(req)
        }
    }
}

impl<C, R> fmt::Debug for RetryPolicy<C, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.shared;
        f.debug_struct("RetryPolicy")
            .field("max_retries", &s.max_retries)
            .field("base", &s.base)
            .field("multiplier", &s.multiplier)
            .field("max_backoff", &s.max_backoff)
            .field("jitter", &s.jitter)
            .field("max_retry_after", &s.max_retry_after)
            .field("breaker", &s.breaker.as_ref().map(|b| b.name().to_owned()))
            .field("classify", &std::any::type_name::<C>())
            .field("repeat", &std::any::type_name::<R>())
            .field("stats", &self.stats())
            .finish()
    }
}

/// The budget settings, kept until `build()` checks them.
#[derive(Clone)]
enum BudgetConfig {
    Tps {
        ttl: Duration,
        min_per_sec: u32,
        retry_percent: f32,
    },
    Shared(Arc<dyn Budget + Send + Sync>),
}

/// Builds a [`RetryPolicy`].
///
/// | setting | default | meaning |
/// |---|---|---|
/// | [`max_retries`](Self::max_retries) | 2 | retries per request, after the first attempt |
/// | [`backoff`](Self::backoff) | 50 ms, capped at 2 s | the first wait, and the longest |
/// | [`multiplier`](Self::multiplier) | 2.0 | the growth of the wait per retry |
/// | [`jitter`](Self::jitter) | 0.5 | the fraction of a wait that may be cut at random |
/// | [`max_retry_after`](Self::max_retry_after) | 30 s | the longest `Retry-After` waited out |
/// | [`budget`](Self::budget) | 10 s window, 3/s, 20% | tower's [`TpsBudget`] |
/// | [`breaker`](Self::breaker) | none | skip retries while this breaker is open |
/// | [`seed`](Self::seed) | random | the jitter generator's seed |
#[derive(Clone)]
#[must_use]
pub struct RetryBuilder {
    max_retries: u32,
    base: Duration,
    max_backoff: Duration,
    multiplier: f64,
    jitter: f64,
    max_retry_after: Duration,
    budget: BudgetConfig,
    breaker: Option<cutout::CircuitBreaker>,
    seed: Option<u64>,
}

impl Default for RetryBuilder {
    fn default() -> Self {
        Self {
            max_retries: 2,
            base: Duration::from_millis(50),
            max_backoff: Duration::from_secs(2),
            multiplier: 2.0,
            jitter: 0.5,
            max_retry_after: Duration::from_secs(30),
            budget: BudgetConfig::Tps {
                ttl: Duration::from_secs(10),
                min_per_sec: 3,
                retry_percent: 0.2,
            },
            breaker: None,
            seed: None,
        }
    }
}

impl RetryBuilder {
    /// Retries per request after the first attempt (0 turns retries off).
    pub fn max_retries(mut self, n: u32) -> Self {
        self.max_retries = n;
        self
    }

    /// The wait before the first retry, and the longest wait (`base <= max`; a zero base
    /// retries at once).
    pub fn backoff(mut self, base: Duration, max: Duration) -> Self {
        self.base = base;
        self.max_backoff = max;
        self
    }

    /// The growth of the wait per retry, finite and at least 1.
    pub fn multiplier(mut self, multiplier: f64) -> Self {
        self.multiplier = multiplier;
        self
    }

    /// The fraction of each wait that may be cut at random, in `0.0..=1.0` (0: exact
    /// waits).
    pub fn jitter(mut self, jitter: f64) -> Self {
        self.jitter = jitter;
        self
    }

    /// The longest wait a failure may ask for (`Retry-After`) and still be retried.
    pub fn max_retry_after(mut self, max: Duration) -> Self {
        self.max_retry_after = max;
        self
    }

    /// A new [`TpsBudget`] for this policy and its clones: each request deposits, each
    /// retry withdraws; `retry_percent` of requests (0.2 = 20%, up to 1000.0) may be
    /// retried on top of `min_per_sec` retries a second, counted over `ttl` (1 s to 60 s).
    pub fn budget(mut self, ttl: Duration, min_per_sec: u32, retry_percent: f32) -> Self {
        self.budget = BudgetConfig::Tps {
            ttl,
            min_per_sec,
            retry_percent,
        };
        self
    }

    /// A budget shared with other policies (one budget per dependency, however many
    /// routes call it).
    ///
    /// ```
    /// use cutout_companions::retry::{RetryPolicy, TpsBudget};
    /// use std::sync::Arc;
    /// use std::time::Duration;
    ///
    /// let budget = Arc::new(TpsBudget::new(Duration::from_secs(10), 3, 0.2));
    /// let reads = RetryPolicy::builder().shared_budget(budget.clone()).build()?;
    /// let writes = RetryPolicy::builder().shared_budget(budget).max_retries(1).build()?;
    /// # let _ = (reads, writes);
    /// # Ok::<(), cutout_companions::ConfigError>(())
    /// ```
    pub fn shared_budget(mut self, budget: Arc<dyn Budget + Send + Sync>) -> Self {
        self.budget = BudgetConfig::Shared(budget);
        self
    }

    /// Skips retries while `breaker` is open or its half-open probe slots are full (the
    /// retry would be rejected anyway), without waiting out a backoff or spending budget.
    pub fn breaker(mut self, breaker: &cutout::CircuitBreaker) -> Self {
        self.breaker = Some(breaker.clone());
        self
    }

    /// Seeds the jitter: the same seed and the same order of requests give the same waits.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Builds the policy for HTTP: retries `429`, `502`, `503` and `504` (waiting out
    /// `Retry-After`) and errors, for idempotent requests only (or requests with an
    /// `Idempotency-Key`).
    ///
    /// ```
    /// use cutout_companions::retry::{IdempotentRequests, RetryPolicy, RetryableStatus};
    ///
    /// let policy: RetryPolicy<RetryableStatus, IdempotentRequests> =
    ///     RetryPolicy::builder().max_retries(3).build_http()?;
    /// # let _ = policy;
    /// # Ok::<(), cutout_companions::ConfigError>(())
    /// ```
    #[cfg(feature = "http")]
    #[cfg_attr(docsrs, doc(cfg(feature = "http")))]
    pub fn build_http(
        self,
    ) -> Result<RetryPolicy<RetryableStatus, IdempotentRequests>, ConfigError> {
        Ok(self
            .build()?
            .classify(RetryableStatus::default())
            .repeat(IdempotentRequests))
    }

    /// Checks the settings and builds the policy.
    pub fn build(self) -> Result<RetryPolicy, ConfigError> {
        if self.base > self.max_backoff {
            return Err(ConfigError::Inverted {
                low: "base backoff",
                low_value: self.base,
                high: "max backoff",
                high_value: self.max_backoff,
            });
        }
        check_range("multiplier", self.multiplier, 1.0, f64::MAX)?;
        check_range("jitter", self.jitter, 0.0, 1.0)?;
        let budget: Arc<dyn Budget + Send + Sync> = match self.budget {
            BudgetConfig::Shared(b) => b,
            BudgetConfig::Tps {
                ttl,
                min_per_sec,
                retry_percent,
            } => {
                // TpsBudget::new asserts these; refuse them here instead.
                let (min, max) = (Duration::from_secs(1), Duration::from_secs(60));
                if ttl < min || ttl > max {
                    return Err(ConfigError::DurationOutOfRange {
                        setting: "budget ttl",
                        value: ttl,
                        min,
                        max,
                    });
                }
                check_range("budget retry percent", retry_percent.into(), 0.0, 1000.0)?;
                check_range(
                    "budget min per second",
                    min_per_sec.into(),
                    0.0,
                    f64::from(i32::MAX - 1),
                )?;
                Arc::new(TpsBudget::new(ttl, min_per_sec, retry_percent))
            }
        };
        let seed = self.seed.unwrap_or_else(|| {
            std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish()
        });
        Ok(RetryPolicy {
            shared: Arc::new(Shared {
                max_retries: self.max_retries,
                base: self.base,
                multiplier: self.multiplier,
                max_backoff: self.max_backoff,
                jitter: self.jitter,
                max_retry_after: self.max_retry_after,
                seed,
                budget,
                breaker: self.breaker,
                counters: Counters::default(),
            }),
            classify: TransientErrors,
            repeat: Cloned,
            attempt: 0,
            rng: SplitMix64::new(seed),
        })
    }
}

impl fmt::Debug for RetryBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryBuilder")
            .field("max_retries", &self.max_retries)
            .field("base", &self.base)
            .field("max_backoff", &self.max_backoff)
            .field("multiplier", &self.multiplier)
            .field("jitter", &self.jitter)
            .field("max_retry_after", &self.max_retry_after)
            .field("seed", &self.seed)
            .finish_non_exhaustive()
    }
}
