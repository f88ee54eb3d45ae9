//! Metrics on the [`metrics`](::metrics) facade: the application installs the recorder
//! (Prometheus, StatsD, OpenTelemetry ...), this module only registers and updates handles.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use ::metrics::{Counter, Gauge};

use crate::breaker::Stats;
use crate::config::Builder;
use crate::error::Rejected;
use crate::listener::{Listener, Transition};
use crate::state::{Outcome, State};

/// The state gauge's name.
pub const STATE: &str = "cutout_state";
/// The transitions counter's name.
pub const TRANSITIONS: &str = "cutout_transitions_total";
/// The trips counter's name.
pub const TRIPS: &str = "cutout_trips_total";
/// The calls counter's name.
pub const CALLS: &str = "cutout_calls_total";
/// The probes counter's name.
pub const PROBES: &str = "cutout_probes_total";

/// The `(from, to)` pairs the state machine can make, each given a series at zero when the
/// handles are registered.
pub(crate) const TRANSITION_PAIRS: [(State, State); 16] = {
    use State::*;
    [
        (Closed, Open),
        (Open, HalfOpen),
        (HalfOpen, Closed),
        (HalfOpen, Open),
        (HalfOpen, HalfOpen),
        (Closed, ForcedOpen),
        (Open, ForcedOpen),
        (HalfOpen, ForcedOpen),
        (ForcedClosed, ForcedOpen),
        (Closed, ForcedClosed),
        (Open, ForcedClosed),
        (HalfOpen, ForcedClosed),
        (ForcedOpen, ForcedClosed),
        (Open, Closed),
        (ForcedOpen, Closed),
        (ForcedClosed, Closed),
    ]
};

/// The `outcome` label values of [`CALLS`], in index order.
const OUTCOMES: [&str; 4] = ["success", "failure", "ignored", "rejected"];
const REJECTED: usize = 3;

/// Where the call counts (`cutout_calls_total`, `cutout_probes_total`) come from.
///
/// Transitions, trips and the state gauge are always updated at the transition, off the
/// call path. The call counts are the only per-call numbers, so they are the only choice.
///
/// Measured with `benches/observe.rs` (closed success, `call(|| Ok(()))`, one thread, a
/// real Prometheus recorder, minimum over interleaved rounds on a loaded 2-core VM): no
/// listener 5.1 ns/call; `OnPublish` 5.1 ns (no measurable difference); `PerCall` 17-19 ns
/// (an out-of-line listener call, about 2.5 ns, plus a shared atomic increment through the
/// facade). With two threads on one breaker, `PerCall` was 1.8x the no-listener time, as
/// both threads write one counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum CallCounts {
    /// Each call increments its counter as it is recorded or rejected: always current, and
    /// no cooperation needed, at the price of one shared atomic increment (and the
    /// out-of-line outcome path) per call. The default.
    #[default]
    PerCall,
    /// The counters are set from the breaker's own per-thread counters whenever the
    /// application calls [`CircuitBreaker::publish_stats`](crate::CircuitBreaker::publish_stats)
    /// (before rendering a scrape, or every few seconds): the call path pays nothing, and
    /// the counts are as fresh as the last publish.
    OnPublish,
}

/// The handles of one breaker, registered once.
struct Handles {
    state: Gauge,
    /// Indexed `[from][to]` by [`State::as_gauge`]; `None` for pairs the state machine
    /// does not make.
    transitions: [[Option<Counter>; 5]; 5],
    trips: Counter,
    /// Indexed like [`OUTCOMES`].
    calls: [Counter; 4],
    probes: Counter,
    /// The generation whose state the gauge shows: transitions reach listeners in any
    /// order across threads, and only a newer generation may set the gauge.
    shown: Mutex<u16>,
    breaker: Arc<str>,
}

/// A [`Listener`] that exports a breaker's state, transitions and call counts to the
/// [`metrics`](::metrics) facade; see [the table in the crate docs](crate#metrics).
///
/// One listener per breaker: it registers its handles once, labelled with the breaker's
/// name, against the recorder installed at that time (the global one, or a local one from
/// [`metrics::with_local_recorder`](::metrics::with_local_recorder)). The easiest way to
/// attach it is [`Builder::metrics`], which registers under the breaker's final name.
///
/// ```
/// use cutout::{CircuitBreaker, Outcome};
///
/// // With no recorder installed the handles do nothing; install one (for example
/// // `metrics-exporter-prometheus`) before building breakers.
/// let breaker = CircuitBreaker::builder().name("payments").metrics().build()?;
/// breaker.try_acquire()?.record(Outcome::Success);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct MetricsListener {
    handles: Arc<Handles>,
    counts: CallCounts,
}

impl MetricsListener {
    /// Registers the handles for the breaker named `breaker`, counting calls
    /// [`CallCounts::PerCall`]. Every series listed in the crate docs exists from now on,
    /// at zero, and the state gauge reads closed (0).
    pub fn new(breaker: &str) -> Self {
        Self::with_call_counts(breaker, CallCounts::PerCall)
    }

    /// Registers the handles for the breaker named `breaker`, with call counts from `counts`.
    ///
    /// ```
    /// use cutout::observe::{CallCounts, MetricsListener};
    /// use cutout::{CircuitBreaker, Outcome};
    ///
    /// let breaker = CircuitBreaker::builder()
    ///     .name("search")
    ///     .listener(MetricsListener::with_call_counts("search", CallCounts::OnPublish))
    ///     .build()?;
    /// breaker.try_acquire()?.record(Outcome::Success); // no metrics work here
    /// breaker.publish_stats(); // cutout_calls_total{outcome="success"} is now 1
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_call_counts(breaker: &str, counts: CallCounts) -> Self {
        describe();
        let name: Arc<str> = Arc::from(breaker);
        let n = || name.to_string();
        let state = ::metrics::gauge!(STATE, "breaker" => n());
        state.set(f64::from(State::Closed.as_gauge()));
        let mut transitions: [[Option<Counter>; 5]; 5] = Default::default();
        for (from, to) in TRANSITION_PAIRS {
            let counter = ::metrics::counter!(
                TRANSITIONS,
                "breaker" => n(),
                "from" => from.as_str(),
                "to" => to.as_str()
            );
            transitions[usize::from(from.as_gauge())][usize::from(to.as_gauge())] = Some(counter);
        }
        let calls = OUTCOMES
            .map(|outcome| ::metrics::counter!(CALLS, "breaker" => n(), "outcome" => outcome));
        let trips = ::metrics::counter!(TRIPS, "breaker" => n());
        let probes = ::metrics::counter!(PROBES, "breaker" => n());
        MetricsListener {
            handles: Arc::new(Handles {
                state,
                transitions,
                trips,
                calls,
                probes,
                shown: Mutex::new(0),
                breaker: name,
            }),
            counts,
        }
    }

    /// The breaker name the handles are labelled with.
    pub fn breaker(&self) -> &str {
        &self.handles.breaker
    }

    /// Where the call counts come from.
    pub fn call_counts(&self) -> CallCounts {
        self.counts
    }
}

/// Describes the metrics (help text) to the current recorder; recorders keep the first
/// description of a name, so repeating it per breaker is harmless.
fn describe() {
    ::metrics::describe_gauge!(
        STATE,
        "Circuit breaker state: 0 closed, 1 open, 2 half-open, 3 forced open, 4 forced closed."
    );
    ::metrics::describe_counter!(
        TRANSITIONS,
        "Circuit breaker state transitions, by from and to state."
    );
    ::metrics::describe_counter!(
        TRIPS,
        "Circuit breaker transitions into open (trips and re-opens)."
    );
    ::metrics::describe_counter!(
        CALLS,
        "Calls through a circuit breaker, by outcome (success, failure, ignored, rejected)."
    );
    ::metrics::describe_counter!(PROBES, "Half-open probe calls admitted.");
}

impl Handles {
    /// Shows `state` if `generation` is the newest seen (generations wrap modulo 1024; a
    /// listener never lags half of that behind).
    fn show(&self, generation: u16, state: State) {
        let mut shown = self.shown.lock().unwrap_or_else(PoisonError::into_inner);
        let ahead = generation.wrapping_sub(*shown) & crate::state::GENERATION_MASK;
        if ahead < (crate::state::GENERATION_MASK / 2) {
            *shown = generation;
            self.state.set(f64::from(state.as_gauge()));
        }
    }
}

impl Listener for MetricsListener {
    fn on_transition(&self, _breaker: &str, t: &Transition) {
        let h = &*self.handles;
        h.show(t.generation, t.to);
        let (from, to) = (usize::from(t.from.as_gauge()), usize::from(t.to.as_gauge()));
        match h.transitions.get(from).and_then(|row| row.get(to)) {
            Some(Some(counter)) => counter.increment(1),
            // A pair the table above does not list: register it now (the state machine
            // makes none, so this path is for safety, not speed).
            _ => ::metrics::counter!(
                TRANSITIONS,
                "breaker" => h.breaker.to_string(),
                "from" => t.from.as_str(),
                "to" => t.to.as_str()
            )
            .increment(1),
        }
        if t.to == State::Open {
            h.trips.increment(1);
        }
    }

    fn on_rejected(&self, _breaker: &str, _rejection: &Rejected) {
        self.handles.calls[REJECTED].increment(1);
    }

    fn on_probe_admitted(&self, _breaker: &str, _generation: u16) {
        self.handles.probes.increment(1);
    }

    fn on_recorded(&self, _breaker: &str, outcome: Outcome, _stale: bool) {
        let i = match outcome {
            Outcome::Success => 0,
            Outcome::Failure => 1,
            Outcome::Ignored => 2,
        };
        self.handles.calls[i].increment(1);
    }

    fn on_stats(&self, _breaker: &str, stats: &Stats) {
        let h = &*self.handles;
        h.show(stats.generation, stats.state);
        if self.counts == CallCounts::OnPublish {
            let [success, failure, ignored, rejected] = &h.calls;
            success.absolute(stats.successes);
            failure.absolute(stats.failures);
            ignored.absolute(stats.ignored);
            rejected.absolute(stats.rejected);
            h.probes.absolute(stats.probes);
        }
    }

    fn wants_call_events(&self) -> bool {
        self.counts == CallCounts::PerCall
    }
}

impl fmt::Debug for MetricsListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricsListener")
            .field("breaker", &self.handles.breaker)
            .field("call_counts", &self.counts)
            .finish_non_exhaustive()
    }
}

impl Builder {
    /// Exports this breaker's metrics ([`MetricsListener`], call counts
    /// [`CallCounts::PerCall`]), labelled with its final name. Handles are registered at
    /// [`build`](Self::build), against the recorder installed then.
    ///
    /// ```
    /// use cutout::CircuitBreaker;
    ///
    /// let breaker = CircuitBreaker::builder().metrics().name("payments").build()?;
    /// # Ok::<(), cutout::ConfigError>(())
    /// ```
    #[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
    pub fn metrics(self) -> Self {
        self.metrics_with(CallCounts::PerCall)
    }

    /// Exports this breaker's metrics with call counts from `counts`; see [`CallCounts`].
    ///
    /// ```
    /// use cutout::observe::CallCounts;
    /// use cutout::CircuitBreaker;
    ///
    /// let breaker = CircuitBreaker::builder()
    ///     .name("search")
    ///     .metrics_with(CallCounts::OnPublish)
    ///     .build()?;
    /// // From the /metrics handler, before rendering:
    /// breaker.publish_stats();
    /// # Ok::<(), cutout::ConfigError>(())
    /// ```
    #[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
    pub fn metrics_with(self, counts: CallCounts) -> Self {
        self.listener_with(move |name| MetricsListener::with_call_counts(name, counts))
    }
}
