//! Shared pieces of the tower-cutout examples: a hand-written gRPC service (no protoc), a
//! flaky dependency and an HTTP upstream serving it, and a listener that prints
//! transitions.
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

/// Prints every breaker's transitions, with the breaker's name.
#[derive(Debug)]
pub struct PrintTransitions;

impl cutout::Listener for PrintTransitions {
    fn on_transition(&self, breaker: &str, t: &cutout::Transition) {
        println!("    breaker {breaker}: {t}");
    }

    fn wants_call_events(&self) -> bool {
        false
    }
}

/// Starts an HTTP upstream on 127.0.0.1 that answers `GET /` from `flaky` (`200 {name} ok`
/// or `503 {name} down`); its address.
pub async fn flaky_upstream(
    flaky: Flaky,
    name: &'static str,
) -> Result<std::net::SocketAddr, tower_cutout::error::BoxError> {
    use axum::http::StatusCode;
    let app = axum::Router::new().route(
        "/",
        axum::routing::get(move || async move {
            if flaky.hit() {
                (StatusCode::SERVICE_UNAVAILABLE, format!("{name} down"))
            } else {
                (StatusCode::OK, format!("{name} ok"))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(addr)
}
