//! Events on [`tracing`](::tracing): transitions at INFO (WARN into open), live
//! reconfigurations at INFO, rejections and probes at DEBUG, all with target `cutout`.

use crate::config::Builder;
use crate::error::Rejected;
use crate::listener::{Listener, Reconfigured, Transition};
use crate::state::{Cause, State};

/// The target of every event, for filters such as `RUST_LOG=cutout=debug`.
pub const TARGET: &str = "cutout";

/// A [`Listener`] that emits [`tracing`](::tracing) events; see
/// [the table in the crate docs](crate#tracing).
///
/// Transitions are emitted at INFO, or WARN when the circuit opens (a trip or a re-open).
/// Rejections and admitted probes are emitted at DEBUG unless made with
/// [`transitions_only`](Self::transitions_only). Outcomes are never emitted, so the
/// closed success path stays at one load whatever the subscriber's level.
///
/// ```
/// use cutout::{CircuitBreaker, Outcome};
///
/// let breaker = CircuitBreaker::builder()
///     .name("payments")
///     .failure_threshold(1)
///     .tracing()
///     .build()?;
/// // WARN cutout: circuit breaker opened breaker="payments" from="closed" to="open"
/// //     cause="consecutive_failures" failures=1 generation=1 at_ms=0 open_for_ms=...
/// breaker.try_acquire()?.record(Outcome::Failure);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TracingListener {
    transitions_only: bool,
}

impl TracingListener {
    /// Transitions, rejections and probes.
    pub const fn new() -> Self {
        TracingListener {
            transitions_only: false,
        }
    }

    /// Transitions only: the breaker then delivers no per-call events to this listener.
    pub const fn transitions_only() -> Self {
        TracingListener {
            transitions_only: true,
        }
    }
}

/// A duration in whole milliseconds, saturating.
fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Listener for TracingListener {
    fn on_transition(&self, breaker: &str, t: &Transition) {
        let (failures, successes, backoff, probes_lost) = match t.cause {
            Cause::ConsecutiveFailures { failures } => (Some(failures), None, None, None),
            Cause::ProbesSucceeded { successes } => (None, Some(successes), None, None),
            Cause::ProbeFailed { backoff } => (None, None, Some(backoff), None),
            Cause::ProbeLeaseExpired { probes_lost } => (None, None, None, Some(probes_lost)),
            _ => (None, None, None, None),
        };
        macro_rules! transition {
            ($level:expr, $message:literal) => {
                ::tracing::event!(
                    target: TARGET,
                    $level,
                    breaker,
                    from = t.from.as_str(),
                    to = t.to.as_str(),
                    cause = t.cause.as_str(),
                    failures,
                    successes,
                    backoff,
                    probes_lost,
                    generation = t.generation,
                    at_ms = millis(t.at),
                    open_for_ms = t.open_for.map(millis),
                    $message
                )
            };
        }
        if t.to == State::Open {
            transition!(::tracing::Level::WARN, "circuit breaker opened");
        } else {
            transition!(::tracing::Level::INFO, "circuit breaker state changed");
        }
    }

    fn on_reconfigured(&self, breaker: &str, change: &Reconfigured) {
        ::tracing::info!(
            target: TARGET,
            breaker,
            generation = change.generation,
            at_ms = millis(change.at),
            "circuit breaker reconfigured"
        );
    }

    fn on_rejected(&self, breaker: &str, rejection: &Rejected) {
        ::tracing::debug!(
            target: TARGET,
            breaker,
            reason = rejection.as_str(),
            retry_after_ms = rejection.retry_after().map(millis),
            "call rejected by circuit breaker"
        );
    }

    fn on_probe_admitted(&self, breaker: &str, generation: u16) {
        ::tracing::debug!(
            target: TARGET,
            breaker,
            generation,
            "half-open probe admitted"
        );
    }

    fn wants_call_events(&self) -> bool {
        !self.transitions_only
    }

    fn wants_recorded_events(&self) -> bool {
        false
    }
}

impl Builder {
    /// Emits this breaker's transitions, rejections and probes as [`tracing`](::tracing)
    /// events ([`TracingListener::new`]).
    #[cfg_attr(docsrs, doc(cfg(feature = "tracing")))]
    pub fn tracing(self) -> Self {
        self.listener(TracingListener::new())
    }
}
