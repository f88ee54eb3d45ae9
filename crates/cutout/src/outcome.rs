//! What a call came to ([`Outcome`]) and why a transition happened ([`Cause`]).
//!
//! A leaf of the crate's modules: the state machine (`state`), the sliding window
//! (`window`) and the lifetime counters (`counters`) all name these, and this module names
//! none of them, so the three import in one direction only (state takes the window's
//! policy, the window takes the counters, and both take these from here). Both are
//! re-exported at the crate root and from [`state`](crate::state).

/// What caused a transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Cause {
    /// Closed -> open: `failures` consecutive failures reached the threshold.
    ConsecutiveFailures {
        /// The consecutive failures counted, equal to the threshold.
        failures: u32,
    },
    /// Open -> half-open: the open time ended and a call arrived.
    OpenTimeElapsed,
    /// Half-open -> closed: `successes` probes succeeded.
    ProbesSucceeded {
        /// The probe successes counted, equal to the success threshold.
        successes: u32,
    },
    /// Half-open -> open: a probe failed.
    ProbeFailed {
        /// The backoff step of the new open period (1 for the first re-open).
        backoff: u32,
    },
    /// Half-open -> half-open: every probe slot was taken and no probe reported for a whole
    /// probe lease, so the probes still out were given up (their late results are stale) and
    /// a new half-open period began.
    ProbeLeaseExpired {
        /// The probes given up.
        probes_lost: u32,
    },
    /// Closed -> open: the failure rate in the sliding window reached its threshold (see
    /// [`Builder::failure_rate`](crate::Builder::failure_rate)).
    FailureRate {
        /// The failures in the window.
        failures: u32,
        /// The calls in the window (at least the minimum volume).
        calls: u32,
    },
    /// Closed -> open: the share of slow calls in the sliding window reached its threshold
    /// (see [`Builder::slow_call_rate`](crate::Builder::slow_call_rate)).
    SlowCallRate {
        /// The slow calls in the window.
        slow: u32,
        /// The calls in the window (at least the minimum volume).
        calls: u32,
    },
    /// Half-open -> closed: enough probes of the half-open period succeeded for the
    /// half-open success rate (see
    /// [`Builder::half_open_success_rate`](crate::Builder::half_open_success_rate)).
    ProbeSuccessRate {
        /// The probe successes, the fewest that reach the rate.
        successes: u32,
        /// The probe failures in the same period (fewer than would miss the rate).
        failures: u32,
    },
    /// Any state -> forced open, by [`force_open`](crate::CircuitBreaker::force_open).
    ForcedOpen,
    /// Any state -> forced closed, by [`force_closed`](crate::CircuitBreaker::force_closed).
    ForcedClosed,
    /// Any state -> closed, by [`reset`](crate::CircuitBreaker::reset).
    Reset,
    /// Closed -> open, held open from outside the breaker by
    /// [`hold_open`](crate::CircuitBreaker::hold_open): another instance's trip signal (the
    /// `cutout-fleet` crate), not this breaker's own evidence.
    Remote,
}

impl Cause {
    /// A lowercase name, stable for use as a metric label.
    pub const fn as_str(&self) -> &'static str {
        match self {
            Cause::ConsecutiveFailures { .. } => "consecutive_failures",
            Cause::OpenTimeElapsed => "open_time_elapsed",
            Cause::ProbesSucceeded { .. } => "probes_succeeded",
            Cause::ProbeFailed { .. } => "probe_failed",
            Cause::ProbeLeaseExpired { .. } => "probe_lease_expired",
            Cause::FailureRate { .. } => "failure_rate",
            Cause::SlowCallRate { .. } => "slow_call_rate",
            Cause::ProbeSuccessRate { .. } => "probe_success_rate",
            Cause::ForcedOpen => "forced_open",
            Cause::ForcedClosed => "forced_closed",
            Cause::Reset => "reset",
            Cause::Remote => "remote",
        }
    }
}

/// The outcome of a call, as the caller classifies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The call succeeded: resets the failure count (closed), counts toward closing
    /// (half-open).
    Success,
    /// The call failed: counts toward a trip (closed), re-opens (half-open).
    Failure,
    /// Neither: the slot is released and nothing is counted toward any threshold. Cancelled
    /// calls (a permit dropped without an outcome) are ignored.
    Ignored,
}

impl Outcome {
    /// A lowercase name, stable for use as a metric label.
    pub const fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Ignored => "ignored",
        }
    }
}
