//! A lock-free circuit breaker: correct under any interleaving, one atomic load on the closed
//! success path.
//!
//! A circuit breaker watches the outcomes of calls to a dependency. After
//! `failure_threshold` consecutive failures it *trips open* and rejects calls at once, so a
//! sick dependency is not hammered while it recovers. When the open time ends, the next call
//! turns it *half-open*: a bounded number of probe calls go through; enough successes
//! *close* it, a failure re-opens it with a longer open time.
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
//! sharded per thread. No lock, no allocation per call, no `unsafe`.
//!
//! # Features
//!
//! | feature | what it adds |
//! |---|---|
//! | `tokio` | [`TokioClock`], driven by `tokio::time::pause()` / `advance()` |
//!
//! The tower layer, with HTTP and gRPC integrations, is the `tower-cutout` crate.

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
pub mod state;
mod sync;

pub use breaker::{CircuitBreaker, OwnedPermit, Permit, Stats};
#[cfg(feature = "tokio")]
pub use clock::TokioClock;
pub use clock::{Clock, ManualClock, MonotonicClock};
pub use config::{Builder, ConfigError, MAX_DURATION, OpenDuration};
pub use error::{CallError, Rejected};
pub use listener::{Listener, Transition};
pub use state::{Cause, Outcome, State};
