//! A trip signal shared across the instances of a service, for [`cutout`] breakers: when
//! enough other instances see a dependency fail, this one stops calling it too, without a
//! network hop per call and without depending on the server that carries the signal.
//!
//! ```
//! use cutout::{CircuitBreaker, State};
//! use cutout_fleet::{Fleet, MemoryBus};
//! use std::time::Duration;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let bus = MemoryBus::new(); // or RedisTransport / NatsTransport
//! let fleet = Fleet::builder().quorum(1).start(bus.transport())?;
//! let payments = CircuitBreaker::builder()
//!     .name("payments")
//!     .failure_threshold(5)
//!     .open_duration(Duration::from_secs(30))
//!     .listener(fleet.listener()) // publishes this instance's trips
//!     .build()?;
//! fleet.attach(&payments); // lets other instances' trips hold it open
//! assert_eq!(payments.state(), State::Closed);
//! # Ok(()) }
//! ```
//!
//! # Design
//!
//! Every instance keeps its own breakers and decides on its own evidence, as before. The
//! fleet adds one thing: a *trip signal*.
//!
//! - **Sending.** [`FleetListener`], a breaker listener, sees each transition from closed to
//!   open caused by the breaker's own evidence and puts a small message (breaker name,
//!   origin instance id, epoch, how long it is open, time to live, cause) into a bounded
//!   queue with `try_send`: a full queue drops the message and counts it. A background task
//!   publishes the queue, each publish within a timeout.
//! - **Receiving.** A second task subscribes and, when at least `quorum` distinct other
//!   instances (default 2) tripped the same breaker within the `window`, holds the local
//!   breaker of that name open with [`CircuitBreaker::hold_open`](cutout::CircuitBreaker::hold_open) for the sender's open time,
//!   at most [`max_hold`](FleetBuilder::max_hold) and never longer than the local breaker's
//!   own open duration.
//! - **The call path is untouched.** A hold is a write of the breaker's state word through
//!   the same compare-exchange loop as every transition (closed to open, cause
//!   [`Cause::Remote`](cutout::Cause::Remote)); the call path reads that word as it always
//!   does: one atomic load on the closed success path, no lock, no await, no network. The
//!   benchmark `fleet` group in `benches/` measures a breaker with and without the fleet
//!   listener side by side.
//! - **Remote signals only open.** A hold never closes a breaker, never shortens an open
//!   time, and leaves half-open and forced states alone: when the hold ends, the instance
//!   probes on its own and closes on its own evidence.
//!
//! # Failure modes it guards against
//!
//! | failure | guard |
//! |---|---|
//! | one sick instance (its own network, a bad deploy) poisons the fleet | the quorum: distinct origins within a window; 1 only if you want to follow any instance |
//! | signals echo forever | a hold is cause `Remote`, and the listener never publishes those; an instance ignores its own messages (by instance id) |
//! | replayed or reordered messages | per origin, an epoch that only grows (it starts at the process's start time in microseconds, so it grows across restarts of an instance with a fixed id); an older or equal epoch is ignored |
//! | clocks that disagree across hosts | only relative durations are sent (hold, time to live); each receiver measures them on its own clock from when it got the message |
//! | an old message held in a queue | the time to live is counted down while the message waits in the sender's queue, and the message is dropped when it runs out |
//! | a fleet that holds everything open | [`max_remote_share`](FleetBuilder::max_remote_share): remote signals hold at most this share of a keyed registry's keys at once (default 50%, like Envoy's max ejection percent) |
//! | the server down, slow or unreachable | the call path never touches it; the queue drops when full; each publish and subscribe has a timeout; the receiver subscribes again with exponential backoff; local breakers go on unchanged |
//! | a publish that never returns | the publish timeout drops the message; the queue then drops on `try_send`; calls are not affected |
//!
//! An operator's [`Fleet::force_open`] forces a breaker open here and, on purpose, holds the
//! same breaker open on every other instance without a quorum.
//!
//! # How it scales with the fleet size
//!
//! With `N` instances and a failure threshold `T`, without the signal a dead dependency
//! receives about `N x T` failing calls before every instance has stopped calling it, and
//! each open period ends with `N` sets of probes at once. With the signal and quorum `q`, the
//! first `q` instances to trip spend `T` failures each; the others stop at the first message
//! that completes the quorum, having spent what they sent in the meantime (the publish
//! latency times their call rate): about `q x T + (N - q) x r x latency` calls. That is the
//! ideal; what an instance sends before any trip is known (calls already in flight, retries
//! of its own, its own half-open probes, which the signal leaves alone on purpose) is a
//! floor per instance that the signal cannot remove. The outage drill's `fleet` mode
//! measures it at 2, 4 and 8 instances (the README's table): there every instance sees the
//! outage at once and the floor is about 9 calls each, so at 8 instances the signal takes
//! the calls from about 100 to about 78 and every instance stops within 0.4 s instead of
//! 0.9 s; the saving grows with `N`, and is largest where failures reach the instances one
//! by one. Messages per trip grow as `N` (one publish each, fan-out by the server), so the
//! signal stays cheap for fleets of tens to hundreds of instances; a fleet of thousands
//! would want a quorum above 2 and a channel per dependency.
//!
//! # Transports
//!
//! | feature | transport | client crate |
//! |---|---|---|
//! | (always) | [`MemoryBus`] / [`MemoryTransport`]: in process, for tests | tokio |
//! | `redis` | [`RedisTransport`]: Redis pub/sub | `redis` (tokio) |
//! | `nats` | [`NatsTransport`]: NATS subjects | `async-nats` |
//!
//! Any pub/sub implements [`Transport`]: subscribe (a stream that ends when the link is lost)
//! and publish.
//!
//! # Observability
//!
//! [`Fleet::stats`] and [`Fleet::link_up`] always; with the `metrics` feature, the gauge
//! `cutout_fleet_link_up` (1 while subscribed) and the counter `cutout_fleet_events_total`
//! with label `event` (`published`, `dropped_queue_full`, `dropped_publish`,
//! `dropped_unsendable`, `received`, `own`, `stale`, `expired`, `invalid`, `held`,
//! `capped`, `subscribed`); with the `tracing` feature, link changes (INFO up, WARN down)
//! and holds (DEBUG) with target `cutout_fleet`.

#![forbid(unsafe_code)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    rust_2018_idioms
)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod fleet;
mod message;
#[cfg(feature = "nats")]
mod nats;
mod quorum;
#[cfg(feature = "redis")]
mod redis;
mod transport;

pub use fleet::{Fleet, FleetBuilder, FleetConfigError, FleetListener, FleetStats};
pub use message::{DecodeError, MAX_NAME_LEN, PREFIX, Signal, SignalCause};
#[cfg(feature = "nats")]
pub use nats::NatsTransport;
#[cfg(feature = "redis")]
pub use redis::RedisTransport;
pub use transport::{Incoming, MemoryBus, MemoryTransport, Transport, TransportError};
