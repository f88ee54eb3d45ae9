//! A lock-free circuit breaker: correct under any interleaving, one atomic load on the closed
//! success path.
//!
//! A circuit breaker watches the outcomes of calls to a dependency. After
//! `failure_threshold` consecutive failures it *trips open* and rejects calls at once, so a
//! sick dependency is not hammered while it recovers. When the open time ends, the next call
//! turns it *half-open*: a bounded number of probe calls go through; enough successes
//! *close* it, a failure re-opens it with a longer open time. It can also trip on the
//! failure rate or the slow-call rate of a sliding window of recent calls, and close by the
//! success rate of its probes (see [`window`]).
//!
//! ```
//! use cutout::{CallError, CircuitBreaker, Rejected};
//! use std::time::Duration;
//!
//! let breaker = CircuitBreaker::builder()
//!     .name("payments")
//!     .failure_threshold(5)
//!     .open_duration(Duration::from_secs(30))
//!     .build()?;
//!
//! match breaker.call(|| charge_card(42)) {
//!     Ok(receipt) => println!("paid: {receipt}"),
//!     Err(CallError::Rejected(Rejected::Open { retry_after })) => {
//!         println!("payments are down, queue the order; retry in {retry_after:?}")
//!     }
//!     Err(CallError::Rejected(other)) => println!("not now: {other}"),
//!     Err(CallError::Inner(e)) => println!("payment failed: {e}"),
//! }
//! # fn charge_card(_: u32) -> Result<String, std::io::Error> { Ok("r-1".into()) }
//! # Ok::<(), cutout::ConfigError>(())
//! ```
//!
//! # How it stays correct and cheap
//!
//! The state, the generation, the counts, the backoff step and the open deadline live in one
//! `AtomicU64` (the layout is in [`state`]). Every transition is a pure function of that word
//! and the time, applied by one compare-exchange loop, so a transition happens exactly once
//! and its listener is called exactly once, by the thread that made it. Half-open admits
//! exactly `half_open_max_calls` probes at once. Every permit carries the generation it was
//! admitted in; a result from an older generation changes no state. A permit dropped
//! without an outcome releases its slot as [`Outcome::Ignored`].
//!
//! The closed path reads the word once to admit and once to record a success, and writes
//! nothing when there is nothing to change; it never reads the clock. Lifetime counters are
//! per thread (a cache line each, written with a plain load and store). No lock, no allocation per call, no `unsafe`.
//!
//! # Changing settings live
//!
//! [`CircuitBreaker::reconfigure`] changes a running breaker's thresholds, probe limit and
//! lease, open durations (constant or exponential, backoff, cap, jitter), and the sliding
//! window's rates, minimum calls and slow-call threshold. State, counts and permits in
//! flight carry on. The settings are swapped in whole, without a lock and
//! without a write to shared memory on the call path: each decision reads them once, off
//! the closed path, so it uses either the old settings or the new ones. Invalid settings
//! get the builder's [`ConfigError`] and change nothing. Listeners hear of each change
//! ([`Listener::on_reconfigured`]).
//!
//! ```
//! use cutout::{CircuitBreaker, ManualClock, Outcome, State};
//! use std::time::Duration;
//!
//! let clock = ManualClock::new();
//! let breaker = CircuitBreaker::builder()
//!     .failure_threshold(1)
//!     .open_duration(Duration::from_secs(30))
//!     .half_open_max_calls(1)
//!     .build_with_clock(clock.clone())?;
//! breaker.try_acquire()?.record(Outcome::Failure);
//! assert_eq!(breaker.retry_after(), Some(Duration::from_secs(30)));
//!
//! // Shorter open times and three probes from now on; the current open time stands.
//! breaker.reconfigure(
//!     CircuitBreaker::builder()
//!         .failure_threshold(1)
//!         .open_duration(Duration::from_secs(5))
//!         .half_open_max_calls(3)
//!         .success_threshold(3),
//! )?;
//! clock.advance(Duration::from_secs(30));
//! let probes: Vec<_> = (0..3).map(|_| breaker.try_acquire()).collect::<Result<_, _>>()?;
//! assert!(breaker.try_acquire().is_err()); // the fourth waits
//! drop(probes);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Features
//!
//! | feature | what it adds |
//! |---|---|
//! | `tokio` | [`TokioClock`], driven by `tokio::time::pause()` / `advance()` |
//! | `metrics` | `Builder::metrics` / `observe::MetricsListener`: the metrics below, on the `metrics` 0.24 facade |
//! | `tracing` | `Builder::tracing` / `observe::TracingListener`: the `tracing` events below |
//! | `serde` | `Serialize` for the [`Health`] report of [`CircuitBreaker::health`] |
//!
//! The tower layer, with HTTP and gRPC integrations, is the `tower-cutout` crate.
//!
//! # Observability
//!
//! Events reach [`Listener`]s synchronously, without allocation; a breaker with no listener
//! pays nothing for them. The exporters in [`observe`] are such listeners.
//!
//! ## Metrics
//!
//! With the `metrics` feature, `Builder::metrics` exports these on the `metrics` 0.24
//! facade, to whatever recorder the application installs (Prometheus, StatsD,
//! OpenTelemetry ...). Handles are registered once per breaker, when it is built; every
//! series below exists from then on, at zero.
//!
//! | name | type | labels | unit | meaning |
//! |---|---|---|---|---|
//! | `cutout_state` | gauge | `breaker` | state code | 0 closed, 1 open, 2 half-open, 3 forced open, 4 forced closed ([`State::as_gauge`]); set at every transition, newest generation wins |
//! | `cutout_transitions_total` | counter | `breaker`, `from`, `to` | transitions | one series per pair the state machine makes (16); labels are [`State::as_str`] |
//! | `cutout_trips_total` | counter | `breaker` | transitions | transitions into open: trips from closed and re-opens from half-open |
//! | `cutout_calls_total` | counter | `breaker`, `outcome` | calls | `outcome` is `success`, `failure`, `ignored` (dropped permits included) or `rejected` |
//! | `cutout_probes_total` | counter | `breaker` | calls | half-open probes admitted (also counted in `calls_total` by outcome) |
//!
//! The counters follow the Prometheus conventions (`_total`, lowercase, base units), so an
//! exporter's "recommended naming" leaves them unchanged. The state gauge, transitions and
//! trips are updated at the transition, off the call path. The call counts are the one
//! per-call cost, and `observe::CallCounts` chooses it: `PerCall` (the default of
//! `Builder::metrics`) increments a shared counter per call; `OnPublish` costs the call
//! path nothing and copies the breaker's own per-thread counters into the metrics when the
//! application calls [`CircuitBreaker::publish_stats`] (before a scrape, or on a timer).
//!
//! ## Tracing
//!
//! With the `tracing` feature, `Builder::tracing` emits, with target `cutout`:
//!
//! | event | level | message | fields |
//! |---|---|---|---|
//! | transition into open | WARN | `circuit breaker opened` | `breaker`, `from`, `to`, `cause`, the cause's count (`failures`, `backoff`), `generation`, `at_ms`, `open_for_ms` |
//! | any other transition | INFO | `circuit breaker state changed` | as above; counts `successes`, `probes_lost` where the cause has them |
//! | reconfiguration ([`CircuitBreaker::reconfigure`]) | INFO | `circuit breaker reconfigured` | `breaker`, `generation`, `at_ms` |
//! | rejection | DEBUG | `call rejected by circuit breaker` | `breaker`, `reason` ([`Rejected::as_str`]), `retry_after_ms` (absent when forced open) |
//! | probe admitted | DEBUG | `half-open probe admitted` | `breaker`, `generation` |
//!
//! Outcomes are not logged: the closed success path stays at one load.
//!
//! ## Health
//!
//! [`CircuitBreaker::health`] returns a [`Health`] report (name, state, status `ok` or
//! `degraded`, `retry_after_ms`, counts), serializable with the `serde` feature.

#![forbid(unsafe_code)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    rust_2018_idioms
)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod breaker;
mod clock;
mod config;
mod counters;
mod error;
mod listener;
pub mod observe;
mod outcome;
pub mod state;
mod sync;
pub mod window;

pub use breaker::{CircuitBreaker, OwnedPermit, Permit, Stats};
#[cfg(feature = "tokio")]
pub use clock::TokioClock;
pub use clock::{
    Clock, CoarseMonotonicClock, ManualClock, MonotonicClock, TickingClock, TickingClockError,
};
pub use config::{Builder, ConfigError, MAX_DURATION, OpenDuration};
pub use error::{CallError, CompactRejected, Rejected};
pub use listener::{Listener, Reconfigured, Transition};
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub use observe::MetricsListener;
#[cfg(feature = "tracing")]
#[cfg_attr(docsrs, doc(cfg(feature = "tracing")))]
pub use observe::TracingListener;
pub use observe::{Health, HealthCounts, HealthStatus};
pub use state::{Cause, Outcome, State};
pub use window::{SlidingWindow, WindowStats};

/// The calling thread's index among the threads that use cutout: small and dense (0, 1,
/// 2, ...; an exited thread's index goes to the next thread that asks, smallest first).
/// `None` only while the thread is being torn down, after it gave its index back (and
/// always in the crate's loom build, `--cfg cutout_loom`, whose threads loom models).
///
/// Breakers give each index a slot of its own, which only the thread holding it writes,
/// so their counters need no atomic read-modify-write; other crates of the family do the
/// same with it (cutout-keyed's per-thread lookup cache). The guarantees such code may
/// rely on: no two live threads hold the same index at once, and an index passes from
/// one thread to the next through a lock, so everything the old holder did happens
/// before the new holder's first call that returns it.
///
/// ```
/// let here = cutout::thread_index().expect("a running thread has an index");
/// assert_eq!(cutout::thread_index(), Some(here)); // the same for the thread's lifetime
/// let there = std::thread::spawn(cutout::thread_index).join().unwrap();
/// assert_ne!(there, Some(here));
/// ```
#[inline]
pub fn thread_index() -> Option<usize> {
    counters::thread_index()
}

/// The README's Rust snippets, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;
