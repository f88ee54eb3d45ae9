//! The seed article's HTTP client: GET and POST through a circuit breaker, where a `5xx`
//! answer counts as a failure and so does a timeout. Threshold 2, open 100 ms, one probe.
//!
//! The stack is `CircuitBreakerLayer` (with the HTTP classifier) over tower's `Timeout` over
//! hyper-util's client; a local axum server plays the order service. The example exits by
//! itself: `cargo run -p tower-cutout-examples --example http_client`

use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_cutout::CircuitBreakerLayer;
use tower_cutout::error::{BoxError, Rejected};
use tower_cutout::http::HttpClassifier;
use tower_cutout_examples::Flaky;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    // The order service: GET /orders/1, POST /orders, and GET /slow that never answers in
    // time.
    let orders = Flaky::default();
    let (get_orders, post_orders) = (orders.clone(), orders.clone());
    let app = Router::new()
        .route(
            "/orders/1",
            get(move || async move {
                if get_orders.hit() {
                    (StatusCode::INTERNAL_SERVER_ERROR, "database down")
                } else {
                    (StatusCode::OK, r#"{"id":1,"total":4200}"#)
                }
            }),
        )
        .route(
            "/orders",
            axum::routing::post(move || async move {
                if post_orders.hit() {
                    (StatusCode::SERVICE_UNAVAILABLE, "database down")
                } else {
                    (StatusCode::CREATED, r#"{"id":2}"#)
                }
            }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(1)).await;
                "late"
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });

    let layer = CircuitBreakerLayer::from_builder(
        cutout::CircuitBreaker::builder()
            .name("orders")
            .failure_threshold(2)
            .open_duration(Duration::from_millis(100))
            .half_open_max_calls(1)
            .on_transition(|t| println!("    breaker: {t}")),
    )?
    .classify(HttpClassifier::new());
    let breaker = layer.breaker().clone();
    let mut client = ServiceBuilder::new()
        .layer(layer)
        .timeout(Duration::from_millis(200))
        .service(Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>());

    let mut send = async |method: Method, path: &str, body: &'static str| {
        let request = Request::builder()
            .method(method.clone())
            .uri(format!("http://{addr}{path}"))
            .body(Full::new(Bytes::from_static(body.as_bytes())))
            .expect("a valid request");
        let outcome = match client.ready().await {
            Ok(svc) => svc.call(request).await,
            Err(e) => Err(e),
        };
        let shown = match outcome {
            Ok(response) => {
                let status = response.status();
                match response.into_body().collect().await {
                    Ok(body) => format!("{status} {}", String::from_utf8_lossy(&body.to_bytes())),
                    Err(e) => format!("{status} (body failed: {e})"),
                }
            }
            Err(e) if e.is::<Rejected>() => format!("rejected by the breaker: {e}"),
            Err(e) => format!("error: {e}"),
        };
        println!("  {method} {path} -> {shown}");
    };

    println!("1. healthy");
    send(Method::GET, "/orders/1", "").await;
    send(Method::POST, "/orders", r#"{"item":"book"}"#).await;

    println!("2. the order service fails: a 500 and a 503 trip the breaker (threshold 2)");
    orders.set_failing(true);
    send(Method::GET, "/orders/1", "").await;
    send(Method::POST, "/orders", r#"{"item":"book"}"#).await;
    let hits = orders.hits();
    send(Method::GET, "/orders/1", "").await;
    println!("  server calls while open: {}", orders.hits() - hits);

    println!("3. after 100 ms one probe goes through; the service is back, the breaker closes");
    orders.set_failing(false);
    tokio::time::sleep(Duration::from_millis(100)).await;
    send(Method::GET, "/orders/1", "").await;

    println!("4. timeouts are failures too: two requests time out after 200 ms");
    send(Method::GET, "/slow", "").await;
    send(Method::GET, "/slow", "").await;
    send(Method::GET, "/orders/1", "").await;

    let stats = breaker.stats();
    println!(
        "done: state {}, {} successes, {} failures, {} rejected, {} trips",
        stats.state, stats.successes, stats.failures, stats.rejected, stats.trips
    );
    Ok(())
}
