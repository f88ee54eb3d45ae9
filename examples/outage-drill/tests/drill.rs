//! The drill, shortened, on paused tokio time over in-memory pipes: the same services, the
//! same client stack, the same breaker, with time that only moves when every task waits.

use std::collections::HashSet;
use std::time::Duration;

use outage_drill::drill::{self, DrillConfig, Mode};
use outage_drill::load::Answer;
use outage_drill::net::Transport;
use outage_drill::report::{self, Summary};

fn short_config(dir: &std::path::Path) -> DrillConfig {
    let mut config = DrillConfig::new(dir);
    config.duration = Duration::from_secs(12);
    config.rate = 50;
    config.outage_start = Duration::from_secs(3);
    config.outage = Duration::from_secs(6);
    config.timeout = Duration::from_secs(1);
    config.hang = Duration::from_secs(3);
    config.drain_timeout = Duration::from_secs(30);
    config.transport = Transport::Memory;
    config
}

#[tokio::test(start_paused = true)]
async fn the_breaker_sheds_the_outage_and_loses_nothing() -> Result<(), Box<dyn std::error::Error>>
{
    let dir = tempfile::tempdir()?;
    let config = short_config(dir.path());
    let without = drill::run(&config, Mode::WithoutBreaker, &mut |_| {}).await?;
    let with = drill::run(&config, Mode::WithBreaker, &mut |_| {}).await?;
    let a = Summary::of(&without);
    let b = Summary::of(&with);
    let sent = 12 * 50;
    let during = 6 * 50;
    assert_eq!((a.sent, b.sent), (sent, sent));
    assert_eq!(
        (a.sent_during_outage, b.sent_during_outage),
        (during, during)
    );

    // Without the breaker every order sent during the outage reached the failing service,
    // waited for it, and failed; the rest completed.
    assert_eq!(a.calls_during_outage, during);
    assert_eq!(a.failed, during);
    assert_eq!(a.completed, sent - during);
    assert_eq!((a.queued_then_completed, a.lost, a.paid_twice), (0, 0, 0));
    assert_eq!(a.p50, config.timeout, "{a:?}");
    assert_eq!(a.p99, config.timeout, "{a:?}");

    // With it: nothing failed, nothing lost, nothing paid twice, every queued order drained.
    assert_eq!((b.failed, b.lost, b.paid_twice), (0, 0, 0), "{b:?}");
    let pending = with
        .records
        .iter()
        .filter(|r| matches!(r.answer, Answer::Pending(_)))
        .count() as u64;
    assert!(pending > 0);
    assert_eq!(b.queued_then_completed, pending);
    assert_eq!(b.completed + b.queued_then_completed, sent);
    assert_eq!(with.orders.pending, 0);
    assert_eq!(with.orders.drained, pending);
    assert!(with.drained_at.is_some());
    // Every order was charged exactly once, by the payment service's own ledger.
    for r in &with.records {
        assert_eq!(with.charges.get(&r.order_id), Some(&1), "{}", r.order_id);
    }
    assert_eq!(with.payment.orders_charged_twice, 0);
    assert_eq!(with.payment.charges, sent);

    // Far fewer calls reached the failing service: less than a fifth (in fact a handful).
    assert!(
        b.calls_during_outage * 5 < a.calls_during_outage,
        "with {} vs without {}",
        b.calls_during_outage,
        a.calls_during_outage
    );
    // Orders rejected by the breaker were answered on the fail-fast path: no waiting at all
    // on paused time (the answer takes a queue write, which takes no tokio time).
    let plan = config.fault_plan();
    let mut rejected = 0;
    for r in &with.records {
        if let Answer::Pending(reason) = &r.answer {
            if reason.starts_with("circuit_") {
                rejected += 1;
                assert_eq!(r.latency, Duration::ZERO, "{r:?}");
            } else {
                // A call that reached the failing service: bounded by the timeout.
                assert!(r.latency <= config.timeout, "{r:?}");
            }
        }
        if plan.phase(r.sent_at) == outage_drill::payment::Phase::Outage {
            assert!(r.latency <= config.timeout, "{r:?}");
        }
    }
    assert!(
        rejected as u64 >= pending * 9 / 10,
        "{rejected} of {pending}"
    );
    assert_eq!(b.p50, Duration::ZERO, "{b:?}");
    // The breaker tripped, and closed again by itself within one capped open time (plus a
    // probe) after payment recovered.
    assert!(b.trips >= 1);
    let recovery = b
        .recovery_to_closed
        .expect("the circuit closed after recovery");
    assert!(recovery <= config.open_cap + config.timeout, "{recovery:?}");
    // Peak connections: the unprotected caller holds about rate x timeout open.
    assert!(
        b.peak_connections * 2 < a.peak_connections,
        "with {} vs without {}",
        b.peak_connections,
        a.peak_connections
    );

    let table = report::table(&without, &with);
    println!("{table}");
    assert!(table.contains("| calls that reached the failing payment service"));
    let svg = report::svg(&without, &with)?;
    assert!(svg.starts_with("<svg"));
    assert!(svg.contains("without breaker:") && svg.contains("with breaker:"));
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn exactly_the_queued_orders_are_drained() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let mut config = short_config(dir.path());
    config.duration = Duration::from_secs(4);
    config.outage_start = Duration::from_secs(1);
    config.outage = Duration::from_secs(2);
    let run = drill::run(&config, Mode::WithBreaker, &mut |_| {}).await?;
    let ids: HashSet<&str> = run.records.iter().map(|r| r.order_id.as_str()).collect();
    assert_eq!(ids.len(), 200);
    let pending: HashSet<&str> = run
        .records
        .iter()
        .filter(|r| matches!(r.answer, Answer::Pending(_)))
        .map(|r| r.order_id.as_str())
        .collect();
    let drained: HashSet<&str> = run.completions.keys().map(String::as_str).collect();
    assert!(!pending.is_empty());
    assert_eq!(pending, drained);
    let completed = run
        .records
        .iter()
        .filter(|r| r.answer == Answer::Completed)
        .count();
    assert_eq!(completed + pending.len(), 200);
    Ok(())
}

#[test]
fn bad_settings_are_refused() {
    let dir = std::env::temp_dir();
    let mut config = short_config(&dir);
    config.rate = 0;
    assert_eq!(
        config.validate().unwrap_err().to_string(),
        "the rate must be at least 1 order per second"
    );
    let mut config = short_config(&dir);
    config.outage = Duration::from_secs(9);
    assert!(
        config
            .validate()
            .unwrap_err()
            .to_string()
            .contains("must end before the load does")
    );
    let mut config = short_config(&dir);
    config.duration = Duration::ZERO;
    assert!(config.validate().is_err());
    let mut config = short_config(&dir);
    config.open_cap = Duration::from_millis(10);
    assert!(config.validate().is_err());
}
