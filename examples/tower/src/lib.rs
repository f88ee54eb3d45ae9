//! Shared pieces of the tower-cutout examples: a hand-written gRPC service (no protoc) and
//! a flaky dependency.
//!
//! The gRPC service is `quotes.Quotes/Get`, written as tonic-build would write it: prost
//! messages derived by hand, the server on `tonic::server::Grpc`, the client on
//! `tonic::client::Grpc`, both with `tonic_prost::ProstCodec`. Both pieces live in
//! `crates/tower-cutout/tests/support/quote_service.rs`, beside tower-cutout's gRPC tests
//! that use the same service; this crate compiles that file in.

#![forbid(unsafe_code)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    rust_2018_idioms
)]

#[path = "../../../crates/tower-cutout/tests/support/quote_service.rs"]
mod quote;

pub use quote::{Flaky, GET_QUOTE, QuoteReply, QuoteRequest, QuoteServer, get_quote};
