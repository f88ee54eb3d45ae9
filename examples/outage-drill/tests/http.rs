//! The order service's HTTP surface over real TCP on 127.0.0.1: orders, repeats, bad input,
//! health (ok / degraded) and Prometheus metrics. Real time, well under a second.

use std::time::Duration;

use http::StatusCode;
use outage_drill::net::{self, HttpClient, Server, Transport};
use outage_drill::orders::{OrderConfig, OrderReply, OrderRequest, OrderService, OrderState};
use outage_drill::payment::{FaultPlan, PaymentService};
use tokio::time::Instant;
use tower::ServiceExt;

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

async fn post_order(
    client: &HttpClient,
    base: &str,
    order_id: &str,
    amount_cents: u64,
) -> Result<(StatusCode, OrderReply), Box<dyn std::error::Error + Send + Sync>> {
    let response = client
        .clone()
        .oneshot(net::post_json(
            &format!("{base}/orders"),
            &OrderRequest {
                order_id: order_id.to_owned(),
                amount_cents,
            },
        ))
        .await?;
    Ok((response.status(), serde_json::from_slice(response.body())?))
}

async fn get(
    client: &HttpClient,
    url: String,
) -> Result<(StatusCode, String), Box<dyn std::error::Error + Send + Sync>> {
    let response = client.clone().oneshot(net::get(&url)).await?;
    Ok((
        response.status(),
        String::from_utf8(response.body().to_vec())?,
    ))
}

#[tokio::test]
async fn orders_health_and_metrics_over_tcp() -> TestResult {
    let dir = tempfile::tempdir()?;
    // Healthy for the whole test.
    let payment = PaymentService::new(
        FaultPlan {
            outage_start: Duration::from_secs(3600),
            outage: Duration::from_secs(1),
            hang: Duration::from_secs(1),
            seed: 3,
        },
        Instant::now(),
    );
    let payment_server = Server::start(payment.router(), Transport::Tcp).await?;
    assert!(
        payment_server
            .local_addr()
            .is_some_and(|a| a.ip().is_loopback())
    );
    let orders = OrderService::open(
        OrderConfig {
            payment_uri: payment_server.base_uri(),
            timeout: Duration::from_secs(2),
            breaker: Some(cutout::CircuitBreaker::builder().name("payments")),
            queue_path: dir.path().join("orders.redb"),
            drain_concurrency: 2,
        },
        payment_server.client(),
    )?;
    let server = Server::start(orders.router(), Transport::Tcp).await?;
    let base = server.base_uri();
    let client = server.client();

    // An order is paid at once; the same order again is paid with the same idempotency key,
    // which payment answers with the original payment: one charge.
    let (status, first) = post_order(&client, &base, "o-1", 1999).await?;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(first.status, OrderState::Completed);
    // GET /orders/{id}: the recorded payment; 404 for an order never seen.
    let (status, body) = get(&client, format!("{base}/orders/o-1")).await?;
    assert_eq!(status, StatusCode::OK);
    let looked_up: OrderReply = serde_json::from_str(&body)?;
    assert_eq!(looked_up, first);
    let (status, _) = get(&client, format!("{base}/orders/never-sent")).await?;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, again) = post_order(&client, &base, "o-1", 1999).await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again.payment_id, first.payment_id);
    assert_eq!(payment.charges_for("o-1"), 1);
    let stats = payment.stats();
    assert_eq!((stats.requests, stats.charges, stats.replays), (2, 1, 1));

    // Bad input is a 400, and never reaches payment.
    let response = client
        .clone()
        .oneshot(net::post_json(&format!("{base}/orders"), &"not an order"))
        .await?;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    for order_id in [String::new(), "x".repeat(129)] {
        let response = client
            .clone()
            .oneshot(net::post_json(
                &format!("{base}/orders"),
                &OrderRequest {
                    order_id,
                    amount_cents: 1,
                },
            ))
            .await?;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    }
    assert_eq!(payment.stats().requests, 2);

    // The same order with another amount: payment refuses the reused key (409). That is
    // final, so the order fails at once (422); it is not queued, and it is not a failure of
    // the payment service to the breaker.
    let (status, refused) = post_order(&client, &base, "o-1", 5).await?;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(refused.status, OrderState::Failed);
    assert_eq!(refused.reason.as_deref(), Some("payment_refused"));
    assert_eq!(orders.stats().pending, 0);
    assert_eq!(payment.charges_for("o-1"), 1);

    let (status, body) = get(&client, format!("{base}/health")).await?;
    assert_eq!(status, StatusCode::OK);
    let health: serde_json::Value = serde_json::from_str(&body)?;
    assert_eq!(health["status"], "healthy");
    // The 409 was a payment call that went out and failed: the last failure.
    assert_eq!(health["last_failure"]["reason"], "payment_refused");
    assert_eq!(health["last_failure"]["detail"], "payment answered 409");
    assert_eq!(health["queue_depth"], 0);
    assert_eq!(health["breaker"]["name"], "payments");
    assert_eq!(health["breaker"]["state"], "closed");

    // Forced open: the order is queued at once and health says degraded.
    let breaker = orders.breaker().ok_or("a breaker")?.clone();
    breaker.force_open();
    let (status, queued) = post_order(&client, &base, "o-2", 2999).await?;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(queued.status, OrderState::Pending);
    assert_eq!(queued.reason.as_deref(), Some("circuit_forced_open"));
    assert_eq!(
        payment.stats().requests,
        3,
        "a rejected call must not reach payment"
    );
    let (_, body) = get(&client, format!("{base}/health")).await?;
    let health: serde_json::Value = serde_json::from_str(&body)?;
    assert_eq!(health["status"], "degraded");
    assert_eq!(health["breaker"]["state"], "forced_open");
    assert_eq!(health["queue_depth"], 1);

    // A queued order that payment will refuse: it must not block the queue.
    let (status, _) = post_order(&client, &base, "o-1", 7).await?;
    assert_eq!(status, StatusCode::ACCEPTED);

    let (status, metrics) = get(&client, format!("{base}/metrics")).await?;
    assert_eq!(status, StatusCode::OK);
    let value = |series: &str| -> Option<f64> {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    };
    assert_eq!(
        value("payment_call_failures_total{reason=\"payment_refused\"}"),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        value("orders_total{result=\"completed\"}"),
        Some(2.0),
        "{metrics}"
    );
    assert_eq!(
        value("orders_total{result=\"pending\"}"),
        Some(2.0),
        "{metrics}"
    );
    assert_eq!(value("order_queue_depth"), Some(2.0), "{metrics}");
    // cutout's own series (the core's `metrics` feature): 3 is forced open; the 409 counted
    // as a success (the payment service answered; it is the caller's mistake).
    assert_eq!(
        value("cutout_state{breaker=\"payments\"}"),
        Some(3.0),
        "{metrics}"
    );
    assert_eq!(
        value("cutout_calls_total{breaker=\"payments\",outcome=\"success\"}"),
        Some(3.0),
        "{metrics}"
    );
    // The order's call, and any the queue worker has tried since (it keeps trying).
    for series in [
        "payment_calls_rejected_total",
        "cutout_calls_total{breaker=\"payments\",outcome=\"rejected\"}",
    ] {
        assert!(
            value(series).is_some_and(|v| v >= 1.0),
            "{series} in {metrics}"
        );
    }

    assert_eq!(
        value("orders_total{result=\"failed\"}"),
        Some(1.0),
        "{metrics}"
    );

    // Reset: the worker pays the queued order (within its one-second idle poll) and sets
    // the refused one aside.
    breaker.reset();
    let deadline = Instant::now() + Duration::from_secs(5);
    while orders.stats().pending > 0 {
        assert!(Instant::now() < deadline, "the queue did not drain");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(payment.charges_for("o-2"), 1);
    assert_eq!(payment.charges_for("o-1"), 1);
    assert_eq!(
        orders.queue().refused()?,
        [("o-1".to_owned(), "payment_refused".to_owned())]
    );
    assert_eq!(orders.stats().drained, 1);
    let (status, paid) = post_order(&client, &base, "o-2", 2999).await?;
    assert_eq!(
        (status, paid.status),
        (StatusCode::OK, OrderState::Completed)
    );

    server.shutdown().await;
    orders.shutdown().await;
    payment_server.shutdown().await;
    Ok(())
}
