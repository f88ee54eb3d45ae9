//! A tonic client behind the circuit breaker layer. The quote server's database goes down;
//! after three `UNAVAILABLE` answers the client's breaker opens and later calls fail at
//! once with `Status::unavailable` (carrying a retry pushback) without reaching the server.
//!
//! The gRPC service is hand-written (prost derive, `tonic::client::Grpc`, no protoc); see
//! `crates/tower-cutout/tests/support/quote_service.rs`. The example starts its own server on loopback and exits:
//! `cargo run -p tower-cutout-examples --example tonic_client`

use std::time::Duration;

use tower::ServiceBuilder;
use tower_cutout::ServiceBuilderExt;
use tower_cutout::error::Rejected;
use tower_cutout_examples::{QuoteServer, get_quote};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let server = QuoteServer::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let routes = server.clone();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(routes)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
            .await
    });
    println!("quote server on {addr}");

    let breaker = cutout::CircuitBreaker::builder()
        .name("quotes-client")
        .failure_threshold(3)
        .open_duration(Duration::from_millis(400))
        .on_transition(|t| println!("    breaker: {t}"))
        .build()?;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
        .connect()
        .await?;
    // Failures by grpc-status (headers or trailers); a rejection reads as UNAVAILABLE.
    let channel = ServiceBuilder::new()
        .grpc_client_circuit_breaker(breaker.clone())
        .service(channel);
    let mut client = tonic::client::Grpc::new(channel);

    let show = |result: Result<u64, tonic::Status>| match result {
        Ok(cents) => format!("OK {cents} cents"),
        Err(status) => {
            let from_breaker = std::error::Error::source(&status)
                .and_then(|e| e.downcast_ref::<Rejected>())
                .is_some();
            let pushback = status
                .metadata()
                .get("grpc-retry-pushback-ms")
                .and_then(|v| v.to_str().ok())
                .map(|ms| format!(", pushback {ms} ms"))
                .unwrap_or_default();
            format!(
                "{:?} {:?}{pushback}{}",
                status.code(),
                status.message(),
                if from_breaker {
                    " [from the breaker]"
                } else {
                    ""
                }
            )
        }
    };

    println!("1. healthy");
    println!(
        "  Get(ACME) -> {}",
        show(get_quote(&mut client, "ACME").await)
    );
    println!("2. the database goes down: three UNAVAILABLE answers trip the breaker");
    server.database.set_failing(true);
    for _ in 0..3 {
        println!(
            "  Get(ACME) -> {}",
            show(get_quote(&mut client, "ACME").await)
        );
    }
    println!("3. open: calls fail at once, the server sees none of them");
    let hits = server.database.hits();
    for _ in 0..3 {
        println!(
            "  Get(ACME) -> {}",
            show(get_quote(&mut client, "ACME").await)
        );
    }
    println!(
        "  server calls while open: {}",
        server.database.hits() - hits
    );
    println!("4. the database recovers; after the open time a probe closes the breaker");
    server.database.set_failing(false);
    tokio::time::sleep(Duration::from_millis(400)).await;
    println!(
        "  Get(ACME) -> {}",
        show(get_quote(&mut client, "ACME").await)
    );

    let stats = breaker.stats();
    println!(
        "done: state {}, {} failures, {} rejected, server called {} times",
        stats.state,
        stats.failures,
        stats.rejected,
        server.database.hits()
    );
    Ok(())
}
