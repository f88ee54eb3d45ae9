//! With the `metrics` feature: the link-up gauge and the event counters, dropped messages
//! included, reach the installed recorder.

mod support;
use support::settle;

use std::time::Duration;

use cutout::{CircuitBreaker, TokioClock};
use cutout_fleet::{Fleet, MemoryBus};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use metrics_util::{CompositeKey, MetricKind};

fn value(
    snapshotter: &Snapshotter,
    kind: MetricKind,
    name: &str,
    event: Option<&str>,
) -> Option<DebugValue> {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .find(|(key, _, _, _): &(CompositeKey, _, _, _)| {
            key.kind() == kind
                && key.key().name() == name
                && event.is_none_or(|e| {
                    key.key()
                        .labels()
                        .any(|l| l.key() == "event" && l.value() == e)
                })
        })
        .map(|(_, _, _, v)| v)
}

#[tokio::test(start_paused = true)]
async fn the_link_gauge_and_the_dropped_counter_are_exported() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().unwrap();

    let bus = MemoryBus::new();
    let fleet = Fleet::builder().queue(1).start(bus.transport()).unwrap();
    assert!(settle(Duration::from_secs(1), || fleet.link_up()).await);
    assert_eq!(
        value(
            &snapshotter,
            MetricKind::Gauge,
            "cutout_fleet_link_up",
            None
        ),
        Some(DebugValue::Gauge(1.0.into()))
    );

    // Three trips in a row: one queued, two dropped (queue of 1).
    for i in 0..3 {
        let b = CircuitBreaker::builder()
            .name(format!("dep{i}"))
            .failure_threshold(1)
            .listener(fleet.listener())
            .build_with_clock(TokioClock::new())
            .unwrap();
        let _ = b.call(|| Err::<(), _>("down"));
    }
    assert_eq!(
        value(
            &snapshotter,
            MetricKind::Counter,
            "cutout_fleet_events_total",
            Some("dropped_queue_full")
        ),
        Some(DebugValue::Counter(2))
    );
    assert!(settle(Duration::from_secs(1), || fleet.stats().own == 1).await);
    assert_eq!(
        value(
            &snapshotter,
            MetricKind::Counter,
            "cutout_fleet_events_total",
            Some("published")
        ),
        Some(DebugValue::Counter(1))
    );

    bus.set_down(true);
    assert!(settle(Duration::from_secs(1), || !fleet.link_up()).await);
    assert_eq!(
        value(
            &snapshotter,
            MetricKind::Gauge,
            "cutout_fleet_link_up",
            None
        ),
        Some(DebugValue::Gauge(0.0.into()))
    );
}
