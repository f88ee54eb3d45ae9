//! An axum server whose `/quote` route calls a flaky dependency, protected by a circuit
//! breaker. The breaker answers for the route while the dependency is down: `503` with
//! `Retry-After`, without calling the handler (axum needs infallible services, so the
//! rejection is a response, not an error).
//!
//! The example drives itself over loopback and exits:
//! `cargo run -p tower-cutout-examples --example axum_server`

use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::ServiceBuilder;
use tower_cutout::ServiceBuilderExt;
use tower_cutout_examples::Flaky;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    // Made once for the process and borrowed by every request (`leak`): axum clones the
    // route's service per request, and with a `&'static` breaker that copies a pointer;
    // no reference count is written per request.
    let breaker: &'static cutout::CircuitBreaker = cutout::CircuitBreaker::builder()
        .name("quote-route")
        .failure_threshold(3)
        .open_duration(Duration::from_millis(500))
        .on_transition(|t| println!("    breaker: {t}"))
        .build()?
        .leak();
    let dependency = Flaky::default();
    let handler_dependency = dependency.clone();
    let app = Router::new()
        .route(
            "/quote",
            get(move || {
                let dependency = handler_dependency.clone();
                async move {
                    if dependency.hit() {
                        (StatusCode::INTERNAL_SERVER_ERROR, "pricing service down")
                    } else {
                        (StatusCode::OK, "ACME 42.00")
                    }
                }
            }),
        )
        // 5xx and 429 are failures; a rejection is a 503 with Retry-After.
        .layer(ServiceBuilder::new().http_circuit_breaker(breaker));

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    println!("serving http://{addr}/quote");

    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<bytes::Bytes>>();
    let get_quote = async || -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
        let response = client.get(format!("http://{addr}/quote").parse()?).await?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(http::header::RETRY_AFTER)
            .map(|v| format!(" (Retry-After: {})", v.to_str().unwrap_or("?")))
            .unwrap_or_default();
        let body = response.into_body().collect().await?.to_bytes();
        Ok(format!(
            "{status}{retry_after} {:?}",
            String::from_utf8_lossy(&body)
        ))
    };

    println!("1. the dependency is healthy");
    println!("  GET /quote -> {}", get_quote().await?);

    println!("2. the dependency fails: three 500s trip the breaker");
    dependency.set_failing(true);
    for _ in 0..3 {
        println!("  GET /quote -> {}", get_quote().await?);
    }

    println!("3. open: the breaker answers, the handler is not called");
    let hits = dependency.hits();
    for _ in 0..3 {
        println!("  GET /quote -> {}", get_quote().await?);
    }
    println!("  handler calls while open: {}", dependency.hits() - hits);

    println!("4. the dependency recovers; after the open time one probe closes the breaker");
    dependency.set_failing(false);
    tokio::time::sleep(Duration::from_millis(500)).await;
    println!("  GET /quote -> {}", get_quote().await?);
    println!("  GET /quote -> {}", get_quote().await?);

    let stats = breaker.stats();
    println!(
        "done: state {}, {} admitted, {} failures, {} rejected, handler called {} times",
        stats.state,
        stats.admitted,
        stats.failures,
        stats.rejected,
        dependency.hits()
    );
    Ok(())
}
