//! Listeners: synchronous callbacks for what a breaker does.
//!
//! A listener is called by the thread that caused the event, inside the call that caused it:
//! no thread, task, channel or allocation per event. A breaker with no listener that wants
//! per-call events pays one predictable branch for them on the hot path.

use std::fmt;
use std::time::Duration;

use crate::breaker::Stats;
use crate::error::Rejected;
use crate::state::{Cause, Outcome, State};

/// One transition, reported exactly once, by the thread whose compare-exchange made it.
///
/// Reports from different threads may arrive out of order (a thread can be preempted between
/// its compare-exchange and its report); [`generation`](Self::generation) orders them, and
/// [`at`](Self::at) is the reporting thread's clock reading, not a global order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Transition {
    /// The state before.
    pub from: State,
    /// The state after. Equal to `from` for [`Cause::ProbeLeaseExpired`], which starts a new
    /// half-open period.
    pub to: State,
    /// Why.
    pub cause: Cause,
    /// The generation the transition started (wraps modulo 1024).
    pub generation: u16,
    /// The breaker's clock at the transition, since the breaker was built.
    pub at: Duration,
    /// For a transition to open: how long the circuit will stay open.
    pub open_for: Option<Duration>,
}

impl fmt::Display for Transition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} -> {} ({})", self.from, self.to, self.cause.as_str())?;
        if let Some(d) = self.open_for {
            write!(f, ", open for {d:?}")?;
        }
        Ok(())
    }
}

/// A change of a running breaker's settings, from
/// [`CircuitBreaker::reconfigure`](crate::CircuitBreaker::reconfigure), reported once, by
/// the thread that made it, after the new settings are in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Reconfigured {
    /// The breaker's generation when the change landed (the change starts none: state,
    /// counts and permits in flight carry on under the new settings).
    pub generation: u16,
    /// The breaker's clock at the change, since the breaker was built.
    pub at: Duration,
}

/// Receives a breaker's events. Every method has an empty default.
///
/// ```
/// use cutout::{CircuitBreaker, Listener, Outcome, Transition};
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use std::sync::Arc;
///
/// #[derive(Default)]
/// struct Trips(AtomicU32);
///
/// impl Listener for Trips {
///     fn on_transition(&self, _breaker: &str, t: &Transition) {
///         if t.to == cutout::State::Open {
///             self.0.fetch_add(1, Ordering::Relaxed);
///         }
///     }
///     fn wants_call_events(&self) -> bool {
///         false
///     }
/// }
///
/// let trips = Arc::new(Trips::default());
/// let breaker = CircuitBreaker::builder()
///     .failure_threshold(1)
///     .listener(trips.clone())
///     .build()?;
/// breaker.try_acquire()?.record(Outcome::Failure);
/// assert_eq!(trips.0.load(Ordering::Relaxed), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait Listener: Send + Sync + 'static {
    /// A transition, from the thread that made it.
    fn on_transition(&self, breaker: &str, transition: &Transition) {
        let _ = (breaker, transition);
    }

    /// The breaker's settings were changed by
    /// [`CircuitBreaker::reconfigure`](crate::CircuitBreaker::reconfigure).
    fn on_reconfigured(&self, breaker: &str, change: &Reconfigured) {
        let _ = (breaker, change);
    }

    /// A call was rejected.
    fn on_rejected(&self, breaker: &str, rejection: &Rejected) {
        let _ = (breaker, rejection);
    }

    /// A half-open probe was admitted in `generation`.
    fn on_probe_admitted(&self, breaker: &str, generation: u16) {
        let _ = (breaker, generation);
    }

    /// An outcome was recorded. `stale` is true when the permit came from an older
    /// generation, so the outcome changed no state.
    fn on_recorded(&self, breaker: &str, outcome: Outcome, stale: bool) {
        let _ = (breaker, outcome, stale);
    }

    /// A snapshot of the breaker's state and lifetime counters, sent when the application
    /// calls [`CircuitBreaker::publish_stats`](crate::CircuitBreaker::publish_stats): for
    /// listeners that export counts on a schedule (before a scrape, every few seconds)
    /// rather than per call.
    fn on_stats(&self, breaker: &str, stats: &Stats) {
        let _ = (breaker, stats);
    }

    /// Whether this listener wants the per-call events ([`on_rejected`](Self::on_rejected),
    /// [`on_probe_admitted`](Self::on_probe_admitted), [`on_recorded`](Self::on_recorded)).
    /// When no listener does, the breaker skips them without a call. Defaults to `true`.
    fn wants_call_events(&self) -> bool {
        true
    }

    /// Whether this listener wants [`on_recorded`](Self::on_recorded) for every outcome.
    /// Defaults to [`wants_call_events`](Self::wants_call_events).
    ///
    /// Rejections and probes happen off the closed success path, so delivering them costs
    /// that path nothing; an outcome event does: while any listener wants it, every
    /// [`record`](crate::Permit::record) takes the out-of-line path to deliver it. A listener
    /// that wants rejections but not outcomes returns `true` from
    /// [`wants_call_events`](Self::wants_call_events) and `false` here, and keeps the
    /// closed success path at one load.
    fn wants_recorded_events(&self) -> bool {
        self.wants_call_events()
    }
}

impl<L: Listener + ?Sized> Listener for std::sync::Arc<L> {
    fn on_transition(&self, breaker: &str, transition: &Transition) {
        (**self).on_transition(breaker, transition)
    }
    fn on_reconfigured(&self, breaker: &str, change: &Reconfigured) {
        (**self).on_reconfigured(breaker, change)
    }
    fn on_rejected(&self, breaker: &str, rejection: &Rejected) {
        (**self).on_rejected(breaker, rejection)
    }
    fn on_probe_admitted(&self, breaker: &str, generation: u16) {
        (**self).on_probe_admitted(breaker, generation)
    }
    fn on_recorded(&self, breaker: &str, outcome: Outcome, stale: bool) {
        (**self).on_recorded(breaker, outcome, stale)
    }
    fn on_stats(&self, breaker: &str, stats: &Stats) {
        (**self).on_stats(breaker, stats)
    }
    fn wants_call_events(&self) -> bool {
        (**self).wants_call_events()
    }
    fn wants_recorded_events(&self) -> bool {
        (**self).wants_recorded_events()
    }
}

/// A closure called for transitions only.
pub(crate) struct FnTransitionListener<F>(pub(crate) F);

impl<F: Fn(&Transition) + Send + Sync + 'static> Listener for FnTransitionListener<F> {
    fn on_transition(&self, _breaker: &str, transition: &Transition) {
        (self.0)(transition)
    }
    fn wants_call_events(&self) -> bool {
        false
    }
}
