//! The tower examples' hand-written gRPC service, `quotes.Quotes/Get` (prost messages
//! derived by hand, tonic's generic server and client, no protoc), defined in
//! `quote_service.rs` (which the tower examples compile in too, so both run one
//! definition); and helpers to serve it on 127.0.0.1.
//!
//! `QuoteServer` answers 4200 cents plus one per letter of the symbol, or `UNAVAILABLE`
//! while its `database` fails (`database.set_failing`); `database.hits()` counts the calls
//! that reached the handler.

use std::net::SocketAddr;

#[path = "quote_service.rs"]
mod service;

pub use service::{QuoteServer, get_quote};

/// A listener on 127.0.0.1, any port.
pub async fn listen() -> (tokio::net::TcpListener, SocketAddr) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

pub async fn channel(addr: SocketAddr) -> tonic::transport::Channel {
    tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}
