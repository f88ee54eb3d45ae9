//! The cutout outage drill: the seed article's Black Friday, on one machine, measured.
//!
//! A payment service fails in the middle of a steady stream of orders. Without a breaker,
//! the order service keeps calling it: every order waits for the timeout, connections pile
//! up at the failing service, and every order during the outage fails. With the breaker,
//! the circuit trips after a few failures, orders are queued in a durable [`queue`] and
//! answered `202 pending` at once, the failing service sees a handful of probes, and when it
//! recovers the circuit closes by itself and the queue drains, each order paid exactly once.
//!
//! ```text
//! cargo run --release -p outage-drill -- drill
//! cargo run --release -p outage-drill -- drill --duration 60s --rate 200 --outage-start 10s --outage 30s --seed 7
//! ```
//!
//! Each run starts a payment service and an order service in-process on `127.0.0.1:0` and
//! sends orders at a fixed rate (an open loop, like customers). The payment service is
//! healthy, then fails for the outage (a seeded mix of slow `500`s, connections held open
//! past the caller's timeout, and charges whose answer never arrives), then recovers. The
//! first run has no breaker: a payment call that fails or times out is a failed order (no
//! retry; a retry loop would only add calls to the failing service). The second run puts
//! `tower_cutout::CircuitBreakerLayer` around the same client: a rejected or failed call
//! queues the order durably and answers `202 pending`, and a worker pays the queue, with
//! each order's idempotency key, once calls go through again.
//!
//! The table compares the two runs: calls that reached the failing service, order latency
//! while it was down, the time from its recovery to the circuit closing, what happened to
//! every order (completed, queued then completed, failed, lost, paid twice, checked against
//! the payment service's own ledger) and the connections held open to it. The SVG shows
//! both runs over time: orders per second by answer, requests reaching payment, the
//! breaker's open and half-open periods and the outage.
//!
//! | module | what |
//! |---|---|
//! | [`payment`] | the payment service (axum) and its scripted outage |
//! | [`orders`] | the order service (axum): hyper client, timeout, breaker, queue worker |
//! | [`queue`] | the durable queue (redb) |
//! | [`load`] | the fixed-rate load generator |
//! | [`drill`] | one run, without or with the breaker |
//! | [`fleet`] | `outage-drill fleet`: several instances, without and with the trip signal over Redis |
//! | [`report`] | the before/after table and the SVG timeline |
//! | [`net`] | serving and calling over TCP or in-memory pipes |
//! | [`serve`] | `serve payment` / `serve orders`: the services as long-lived processes |
//! | [`load_run`] | `load`: a bounded load run against the running services |
//! | [`cli`] | what the subcommands share: duration flags, runtime, stop signal |

#![forbid(unsafe_code)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    rust_2018_idioms
)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod cli;
pub mod drill;
pub mod fleet;
pub mod load;
pub mod load_run;
pub mod net;
pub mod orders;
pub mod payment;
pub mod queue;
pub mod report;
pub mod serve;
