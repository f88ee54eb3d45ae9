//! Durability and exactly-once: a restart of the order service during the outage keeps its
//! queue, and a charge whose answer was lost is not made twice. Paused tokio time, in-memory
//! pipes.

use std::time::Duration;

use outage_drill::load::{self, Answer, LoadPlan};
use outage_drill::net::{self, Server, Transport};
use outage_drill::orders::{self, OrderConfig, OrderReply, OrderRequest, OrderService, OrderState};
use outage_drill::payment::{Fault, FaultPlan, PaymentService};
use outage_drill::queue::Queue;
use tokio::time::Instant;
use tower::ServiceExt;

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

fn breaker() -> cutout::Builder {
    cutout::CircuitBreaker::builder()
        .name("payments")
        .failure_threshold(3)
        .exponential_backoff(Duration::from_millis(500), 2.0, Duration::from_secs(2))
        .jitter_seed(1)
}

async fn start_orders(
    payment: &Server,
    queue_path: &std::path::Path,
) -> Result<(OrderService, Server), Box<dyn std::error::Error + Send + Sync>> {
    let orders = OrderService::open(
        OrderConfig {
            payment_uri: payment.base_uri(),
            timeout: Duration::from_secs(1),
            breaker: Some(breaker()),
            queue_path: queue_path.to_path_buf(),
            drain_concurrency: 4,
        },
        payment.client(),
    )?;
    let server = Server::start(orders.router(), Transport::Memory).await?;
    Ok((orders, server))
}

/// Waits, on paused time, until `f` holds; fails after `limit`.
async fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> Result<(), String> {
    let deadline = Instant::now() + limit;
    while !f() {
        if Instant::now() >= deadline {
            return Err(format!("condition not met within {limit:?}"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn queued_orders_survive_a_restart_and_drain_exactly_once() -> TestResult {
    let dir = tempfile::tempdir()?;
    let queue_path = dir.path().join("orders.redb");
    let origin = Instant::now();
    // Payment is down from the start, for 6 s.
    let payment = PaymentService::new(
        FaultPlan {
            outage_start: Duration::ZERO,
            outage: Duration::from_secs(6),
            hang: Duration::from_secs(3),
            seed: 7,
        },
        origin,
    );
    let payment_server = Server::start(payment.router(), Transport::Memory).await?;

    // 40 orders during the outage: every one is queued.
    let (first, first_server) = start_orders(&payment_server, &queue_path).await?;
    let records = load::run(
        first_server.client(),
        &first_server.base_uri(),
        LoadPlan {
            rate: 20,
            duration: Duration::from_secs(2),
            patience: Duration::from_secs(10),
        },
        origin,
        Default::default(),
    )
    .await;
    assert_eq!(records.len(), 40);
    assert!(
        records
            .iter()
            .all(|r| matches!(r.answer, Answer::Pending(_))),
        "{records:?}"
    );
    assert_eq!(first.stats().queued, 40);

    // The order service goes away mid-outage.
    assert!(origin.elapsed() < Duration::from_secs(6));
    first_server.shutdown().await;
    first.shutdown().await;

    // The file still holds all 40 (in the order they were queued: a call that failed slowly
    // queued its order later).
    let queue = Queue::open(&queue_path)?;
    let mut waiting: Vec<String> = queue.oldest(100)?.into_iter().map(|o| o.order_id).collect();
    waiting.sort();
    let sent: Vec<String> = records.iter().map(|r| r.order_id.clone()).collect();
    assert_eq!(waiting, sent);
    drop(queue);

    // A new instance on the same file drains it once payment is back.
    let (second, second_server) = start_orders(&payment_server, &queue_path).await?;
    assert_eq!(second.stats().pending, 40);
    wait_until(Duration::from_secs(60), || second.stats().pending == 0).await?;
    assert!(
        origin.elapsed() >= Duration::from_secs(6),
        "drained before payment recovered"
    );
    assert_eq!(second.stats().drained, 40);
    for id in &sent {
        assert_eq!(payment.charges_for(id), 1, "{id}");
    }
    let stats = payment.stats();
    assert_eq!((stats.charges, stats.orders_charged_twice), (40, 0));
    let done = second.queue().completed()?;
    assert_eq!(done.len(), 40);
    let mut drained: Vec<String> = done.into_iter().map(|(id, _)| id).collect();
    drained.sort();
    assert_eq!(drained, sent);

    // Health is back to ok, nothing pending.
    let response = second_server
        .client()
        .oneshot(net::get(&format!("{}/health", second_server.base_uri())))
        .await?;
    let health: serde_json::Value = serde_json::from_slice(response.body())?;
    assert_eq!(health["status"], "healthy");
    assert_eq!(health["queue_depth"], 0);
    assert_eq!(health["breaker"]["state"], "closed");

    second_server.shutdown().await;
    second.shutdown().await;
    payment_server.shutdown().await;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_charge_whose_answer_was_lost_is_not_made_twice() -> TestResult {
    let dir = tempfile::tempdir()?;
    let plan = FaultPlan {
        outage_start: Duration::ZERO,
        outage: Duration::from_secs(3),
        hang: Duration::from_secs(5),
        seed: 11,
    };
    // An order whose first payment attempt is charged, then hangs past the caller's timeout.
    let order_id = (0..10_000)
        .map(load::order_id)
        .find(|id| plan.fault(&orders::idempotency_key(id), 0) == Fault::ChargeThenHang)
        .ok_or("no such order under this seed")?;
    let origin = Instant::now();
    let payment = PaymentService::new(plan, origin);
    let payment_server = Server::start(payment.router(), Transport::Memory).await?;
    let (orders, server) = start_orders(&payment_server, &dir.path().join("q.redb")).await?;

    let response = server
        .client()
        .oneshot(net::post_json(
            &format!("{}/orders", server.base_uri()),
            &OrderRequest {
                order_id: order_id.clone(),
                amount_cents: 4200,
            },
        ))
        .await?;
    assert_eq!(response.status(), http::StatusCode::ACCEPTED);
    let reply: OrderReply = serde_json::from_slice(response.body())?;
    assert_eq!(reply.status, OrderState::Pending);
    assert_eq!(reply.reason.as_deref(), Some("payment_timeout"));
    // The card was charged although the order service never heard back.
    assert_eq!(payment.charges_for(&order_id), 1);

    wait_until(Duration::from_secs(30), || orders.stats().pending == 0).await?;
    // Paid by the worker with the same key: the original payment, no second charge.
    assert_eq!(payment.charges_for(&order_id), 1);
    let stats = payment.stats();
    assert!(stats.replays >= 1, "{stats:?}");
    assert_eq!(stats.orders_charged_twice, 0);
    let done = orders.queue().completed()?;
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].0, order_id);
    assert_eq!(done[0].1, "pay-000001");

    server.shutdown().await;
    orders.shutdown().await;
    payment_server.shutdown().await;
    Ok(())
}
