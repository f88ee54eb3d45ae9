//! A health report: what a `/health` endpoint or a readiness probe shows for one breaker.

use std::fmt;

use crate::breaker::{CircuitBreaker, Stats};
use crate::state::State;

/// Whether a breaker lets calls through normally.
///
/// `Degraded` while the circuit is open, half-open or forced open: calls are (or may be)
/// refused. `Ok` while closed or forced closed. With the `serde` feature it serializes as
/// `"ok"` or `"degraded"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum HealthStatus {
    /// Closed or forced closed: calls pass.
    Ok,
    /// Open, half-open or forced open: calls are refused, or only probes pass.
    Degraded,
}

impl HealthStatus {
    /// The status of a breaker in `state`.
    ///
    /// ```
    /// use cutout::{HealthStatus, State};
    ///
    /// assert_eq!(HealthStatus::of(State::HalfOpen), HealthStatus::Degraded);
    /// assert_eq!(HealthStatus::of(State::ForcedClosed), HealthStatus::Ok);
    /// ```
    pub const fn of(state: State) -> Self {
        match state {
            State::Closed | State::ForcedClosed => HealthStatus::Ok,
            State::Open | State::HalfOpen | State::ForcedOpen => HealthStatus::Degraded,
        }
    }

    /// `"ok"` or `"degraded"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Ok => "ok",
            HealthStatus::Degraded => "degraded",
        }
    }
}

impl fmt::Display for HealthStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The counts in a [`Health`] report: the breaker's lifetime counters (see [`Stats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct HealthCounts {
    /// Consecutive failures counted while closed.
    pub consecutive_failures: u32,
    /// Calls admitted.
    pub admitted: u64,
    /// Outcomes recorded as successes.
    pub successes: u64,
    /// Outcomes recorded as failures.
    pub failures: u64,
    /// Outcomes recorded as ignored (dropped permits included).
    pub ignored: u64,
    /// Calls rejected.
    pub rejected: u64,
    /// Transitions into open.
    pub trips: u64,
    /// Half-open probes admitted.
    pub probes: u64,
    /// Outcomes from an older generation, which changed no state.
    pub stale: u64,
}

impl From<&Stats> for HealthCounts {
    fn from(s: &Stats) -> Self {
        HealthCounts {
            consecutive_failures: s.consecutive_failures,
            admitted: s.admitted,
            successes: s.successes,
            failures: s.failures,
            ignored: s.ignored,
            rejected: s.rejected,
            trips: s.trips,
            probes: s.probes,
            stale: s.stale,
        }
    }
}

/// A breaker's health, from [`CircuitBreaker::health`]. With the `serde` feature it
/// serializes to JSON like this (field order as shown; `retry_after_ms` is `null` when the
/// breaker gives no retry time):
///
/// ```json
/// {"name":"payments","state":"open","status":"degraded","retry_after_ms":5000,
///  "counts":{"consecutive_failures":0,"admitted":7,"successes":2,"failures":5,"ignored":0,
///            "rejected":3,"trips":1,"probes":0,"stale":0}}
/// ```
///
/// `state` is one of `closed`, `open`, `half_open`, `forced_open`, `forced_closed`
/// ([`State::as_str`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct Health {
    /// The breaker's name.
    pub name: String,
    /// The state.
    #[cfg_attr(feature = "serde", serde(serialize_with = "serialize_state"))]
    pub state: State,
    /// `ok` or `degraded`, from the state.
    pub status: HealthStatus,
    /// Milliseconds until the open time ends (open), or until the probe lease ends (half-open
    /// with every probe slot taken); `None` otherwise. See
    /// [`CircuitBreaker::retry_after`].
    pub retry_after_ms: Option<u64>,
    /// The lifetime counters.
    pub counts: HealthCounts,
}

#[cfg(feature = "serde")]
fn serialize_state<S: serde::Serializer>(state: &State, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(state.as_str())
}

impl Health {
    /// Whether the status is [`HealthStatus::Ok`].
    pub fn is_ok(&self) -> bool {
        self.status == HealthStatus::Ok
    }
}

impl CircuitBreaker {
    /// A health report: name, state, status (`ok`, or `degraded` while open, half-open or
    /// forced open), retry time and lifetime counts. Sums the per-thread counters once; meant
    /// for health endpoints, not for the call path.
    ///
    /// ```
    /// use cutout::{CircuitBreaker, HealthStatus, ManualClock, Outcome, State};
    /// use std::time::Duration;
    ///
    /// let breaker = CircuitBreaker::builder()
    ///     .name("payments")
    ///     .failure_threshold(1)
    ///     .open_duration(Duration::from_secs(5))
    ///     .build_with_clock(ManualClock::new())?;
    /// breaker.try_acquire()?.record(Outcome::Failure);
    ///
    /// let health = breaker.health();
    /// assert_eq!(health.name, "payments");
    /// assert_eq!(health.state, State::Open);
    /// assert_eq!(health.status, HealthStatus::Degraded);
    /// assert_eq!(health.retry_after_ms, Some(5_000));
    /// assert_eq!((health.counts.failures, health.counts.trips), (1, 1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn health(&self) -> Health {
        let stats = self.stats();
        Health {
            name: self.name().to_owned(),
            state: stats.state,
            status: HealthStatus::of(stats.state),
            retry_after_ms: stats
                .retry_after
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            counts: HealthCounts::from(&stats),
        }
    }
}
