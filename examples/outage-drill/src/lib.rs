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
//! ```
//!
//! | module | what |
//! |---|---|
//! | [`payment`] | the payment service (axum) and its scripted outage |
//! | [`orders`] | the order service (axum): hyper client, timeout, breaker, queue worker |
//! | [`queue`] | the durable queue (redb) |
//! | [`load`] | the fixed-rate load generator |
//! | [`drill`] | one run, without or with the breaker |
//! | [`report`] | the before/after table and the SVG timeline |
//! | [`net`] | serving and calling over TCP or in-memory pipes |

#![forbid(unsafe_code)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    rust_2018_idioms
)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod drill;
pub mod load;
pub mod net;
pub mod orders;
pub mod payment;
pub mod queue;
pub mod report;
