//! The fleet on the in-memory transport, with tokio's paused clock: quorum, time to live,
//! epochs, self-filtering, the cap, forced open, a bus that goes down and comes back, and a
//! publish that never returns.

mod support;
use support::settle;

use std::sync::Arc;
use std::time::Duration;

use cutout::{Cause, CircuitBreaker, Outcome, State, TokioClock};
use cutout_fleet::{Fleet, FleetBuilder, MemoryBus, Signal, SignalCause, Transport};
use cutout_keyed::KeyedBreakers;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

const OPEN: Duration = Duration::from_secs(10);

/// One instance: a fleet and its "payments" breaker (threshold 2, open 10 s), attached.
struct Instance {
    fleet: Fleet,
    breaker: CircuitBreaker,
    causes: Arc<std::sync::Mutex<Vec<Cause>>>,
}

fn instance(bus: &MemoryBus, builder: FleetBuilder, id: u64) -> Instance {
    let fleet = builder.instance_id(id).start(bus.transport()).unwrap();
    let causes = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = causes.clone();
    let breaker = CircuitBreaker::builder()
        .name("payments")
        .failure_threshold(2)
        .open_duration(OPEN)
        .listener(fleet.listener())
        .on_transition(move |t| log.lock().unwrap().push(t.cause))
        .build_with_clock(TokioClock::new())
        .unwrap();
    fleet.attach(&breaker);
    Instance {
        fleet,
        breaker,
        causes,
    }
}

impl Instance {
    fn trip(&self) {
        for _ in 0..2 {
            let _ = self.breaker.call(|| Err::<(), _>("payment service down"));
        }
        assert_eq!(self.breaker.state(), State::Open);
    }

    fn causes(&self) -> Vec<Cause> {
        self.causes.lock().unwrap().clone()
    }
}

/// `N` instances on `bus` (ids 1 to `N`), once every one has subscribed.
async fn fleet_of<const N: usize>(bus: &MemoryBus, config: FleetBuilder) -> [Instance; N] {
    let all: [Instance; N] = std::array::from_fn(|i| instance(bus, config.clone(), i as u64 + 1));
    assert!(settle(ms(100), || all.iter().all(|i| i.fleet.link_up())).await);
    all
}

#[tokio::test(start_paused = true)]
async fn quorum_1_holds_the_others_and_the_sender_ignores_its_own_echo() {
    let bus = MemoryBus::new();
    let config = Fleet::builder().quorum(1);
    let [a, b, c] = fleet_of(&bus, config).await;

    a.trip();
    assert!(
        settle(ms(50), || b.breaker.state() == State::Open
            && c.breaker.state() == State::Open)
        .await
    );
    assert_eq!(b.causes(), [Cause::Remote]);
    assert_eq!(c.causes(), [Cause::Remote]);
    // Held for the sender's open time, capped by the receiver's own: 10 s.
    let left = b.breaker.retry_after().unwrap();
    assert!(left > ms(9_900) && left <= OPEN, "{left:?}");
    assert!(settle(ms(50), || a.fleet.stats().own == 1).await);
    let (sa, sb) = (a.fleet.stats(), b.fleet.stats());
    assert_eq!((sa.published, sa.holds, sa.own), (1, 0, 1));
    // A hold is never published again: no echo.
    assert_eq!((sb.published, sb.holds, sb.received), (0, 1, 1));
    // The sender's own breaker was not touched by its own message.
    assert_eq!(a.causes(), [Cause::ConsecutiveFailures { failures: 2 }]);
}

#[tokio::test(start_paused = true)]
async fn quorum_2_needs_two_distinct_origins_within_the_window() {
    let bus = MemoryBus::new();
    let config = Fleet::builder().quorum(2).window(ms(1_000));
    let [a, b, c] = fleet_of(&bus, config).await;

    a.trip();
    assert!(settle(ms(50), || c.fleet.stats().received == 1).await);
    // One origin is not a quorum.
    assert_eq!(c.breaker.state(), State::Closed);
    // A's breaker recovers and trips again: still one origin.
    tokio::time::advance(OPEN).await;
    a.breaker.try_acquire().unwrap().record(Outcome::Success);
    assert_eq!(a.breaker.state(), State::Closed);
    a.trip();
    assert!(settle(ms(50), || c.fleet.stats().received == 2).await);
    assert_eq!(c.breaker.state(), State::Closed);
    // A second origin within the window: C is held.
    b.trip();
    assert!(settle(ms(50), || c.breaker.state() == State::Open).await);
    assert_eq!(c.causes(), [Cause::Remote]);
    // B counts A only: A's report from the second trip is in its window.
    assert_eq!(b.fleet.stats().holds, 0);
}

#[tokio::test(start_paused = true)]
async fn a_report_stops_counting_after_the_window_or_its_time_to_live() {
    let bus = MemoryBus::new();
    // Window 5 s, but the senders' time to live is 1 s: reports count for 1 s.
    let config = Fleet::builder().quorum(2).window(ms(5_000)).ttl(ms(1_000));
    let [a, b, c] = fleet_of(&bus, config).await;

    a.trip();
    assert!(settle(ms(50), || c.fleet.stats().received == 1).await);
    tokio::time::advance(ms(1_000)).await;
    b.trip();
    assert!(settle(ms(50), || c.fleet.stats().received == 2).await);
    assert_eq!(c.breaker.state(), State::Closed);
    assert_eq!(c.fleet.stats().holds, 0);
}

#[tokio::test(start_paused = true)]
async fn stale_epochs_own_ids_and_garbage_are_ignored() {
    let bus = MemoryBus::new();
    let [_, b] = fleet_of(&bus, Fleet::builder().quorum(1)).await;
    let raw = bus.transport();
    let mut signal = Signal {
        breaker: "other".into(),
        origin: 9,
        epoch: 100,
        hold: ms(500),
        ttl: ms(1_000),
        cause: SignalCause::Trip,
    };
    raw.publish(signal.encode()).await.unwrap();
    // The same epoch again, an older one, our own id, a zero ttl, and garbage.
    raw.publish(signal.encode()).await.unwrap();
    signal.epoch = 99;
    raw.publish(signal.encode()).await.unwrap();
    signal.origin = 2;
    signal.epoch = 1_000;
    signal.breaker = "payments".into();
    raw.publish(signal.encode()).await.unwrap();
    signal.origin = 9;
    signal.epoch = 101;
    signal.ttl = Duration::ZERO;
    raw.publish(signal.encode()).await.unwrap();
    raw.publish(b"not a signal".to_vec()).await.unwrap();
    assert!(settle(ms(50), || b.fleet.stats().received == 6).await);
    let s = b.fleet.stats();
    assert_eq!(
        (s.stale, s.own, s.expired, s.invalid, s.holds),
        (2, 1, 1, 1, 0)
    );
    assert_eq!(b.breaker.state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn remote_signals_hold_at_most_the_capped_share_of_a_registrys_keys() {
    let bus = MemoryBus::new();
    let config = Fleet::builder().quorum(1).max_remote_share(0.5);
    let sender = config
        .clone()
        .instance_id(1)
        .start(bus.transport())
        .unwrap();
    let receiver = config.instance_id(2).start(bus.transport()).unwrap();
    let hosts = Arc::new(
        KeyedBreakers::builder(
            CircuitBreaker::builder()
                .failure_threshold(2)
                .open_duration(OPEN),
        )
        .name_with(|host: &String| format!("host:{host}"))
        .build_with_clock(TokioClock::new())
        .unwrap(),
    );
    receiver.attach_keyed(hosts.clone(), |name| {
        name.strip_prefix("host:").map(str::to_owned)
    });
    let keys: Vec<String> = (0..4).map(|i| format!("h{i}")).collect();
    for k in &keys {
        hosts.call(k, || Ok::<_, ()>(())).unwrap();
    }
    assert!(settle(ms(100), || sender.link_up() && receiver.link_up()).await);

    // The sender's registry trips all four hosts.
    let sending = KeyedBreakers::builder(
        CircuitBreaker::builder()
            .failure_threshold(1)
            .listener(sender.listener()),
    )
    .name_with(|host: &String| format!("host:{host}"))
    .build_with_clock(TokioClock::new())
    .unwrap();
    for k in &keys {
        let _ = sending.call(k, || Err::<(), _>("down"));
    }
    assert!(settle(ms(50), || receiver.stats().received == 4).await);
    let s = receiver.stats();
    assert_eq!((s.holds, s.capped), (2, 2));
    let open = keys
        .iter()
        .filter(|k| hosts.state(k) == Some(State::Open))
        .count();
    assert_eq!(open, 2);
    // A name that is not this registry's is left alone.
    assert_eq!(hosts.len(), 4);
}

#[tokio::test(start_paused = true)]
async fn force_open_is_published_on_purpose_and_holds_without_a_quorum() {
    let bus = MemoryBus::new();
    let config = Fleet::builder().quorum(3);
    let [a, b] = fleet_of(&bus, config).await;
    assert!(a.fleet.force_open(&a.breaker, ms(2_000)));
    assert_eq!(a.breaker.state(), State::ForcedOpen);
    assert!(settle(ms(50), || b.breaker.state() == State::Open).await);
    let left = b.breaker.retry_after().unwrap();
    assert!(left > ms(1_990) && left <= ms(2_000), "{left:?}");
    // The hold ends; B probes on its own evidence and closes.
    tokio::time::advance(ms(2_000)).await;
    b.breaker.try_acquire().unwrap().record(Outcome::Success);
    assert_eq!(b.breaker.state(), State::Closed);
    assert_eq!(
        b.causes(),
        [
            Cause::Remote,
            Cause::OpenTimeElapsed,
            Cause::ProbesSucceeded { successes: 1 }
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_bus_down_leaves_local_breakers_alone_and_they_subscribe_again() {
    let bus = MemoryBus::new();
    let config = Fleet::builder()
        .quorum(1)
        .reconnect_backoff(ms(100), ms(400));
    let [a, b] = fleet_of(&bus, config).await;

    bus.set_down(true);
    assert!(settle(ms(50), || !a.fleet.link_up() && !b.fleet.link_up()).await);
    // Calls go on; the local breaker trips on its own; the signal is dropped and counted.
    assert_eq!(b.breaker.call(|| Ok::<_, ()>(7)), Ok(7));
    a.trip();
    assert!(settle(ms(50), || a.fleet.stats().dropped_publish == 1).await);
    assert_eq!(b.breaker.state(), State::Closed);
    // While down, the receivers retry with backoff (100, 200, 400, 400 ms ...).
    tokio::time::advance(ms(2_000)).await;
    assert!(!b.fleet.link_up());

    bus.set_down(false);
    assert!(settle(ms(1_000), || a.fleet.link_up() && b.fleet.link_up()).await);
    assert_eq!(b.fleet.stats().subscriptions, 2);
    tokio::time::advance(OPEN).await;
    a.breaker.try_acquire().unwrap().record(Outcome::Success);
    a.trip();
    assert!(settle(ms(50), || b.breaker.state() == State::Open).await);
    assert_eq!(b.causes(), [Cause::Remote]);
}

#[tokio::test(start_paused = true)]
async fn a_publish_that_never_returns_leaves_calls_unaffected() {
    let bus = MemoryBus::new();
    let config = Fleet::builder()
        .quorum(1)
        .queue(2)
        .network_timeout(ms(1_000));
    let fleet = config
        .instance_id(1)
        .start(bus.hanging_transport())
        .unwrap();
    assert!(settle(ms(100), || fleet.link_up()).await);
    let breakers: Vec<CircuitBreaker> = (0..6)
        .map(|i| {
            CircuitBreaker::builder()
                .name(format!("dep{i}"))
                .failure_threshold(1)
                .listener(fleet.listener())
                .build_with_clock(TokioClock::new())
                .unwrap()
        })
        .collect();
    // Six trips in a row on this thread: two wait in the queue, four find it full and are
    // dropped at once; every call returns.
    for b in &breakers {
        assert_eq!(
            b.call(|| Err::<(), _>("down")),
            Err(cutout::CallError::Inner("down"))
        );
        assert_eq!(b.state(), State::Open);
    }
    assert_eq!(fleet.stats().dropped_queue_full, 4);
    // The timeout drops each hanging publish in turn, 1 s apart.
    assert!(settle(ms(1_500), || fleet.stats().dropped_publish == 1).await);
    assert_eq!(fleet.stats().dropped_publish, 1);
    assert!(settle(ms(1_000), || fleet.stats().dropped_publish == 2).await);
    // The queue has room again: the next trip is queued, not dropped.
    let late = CircuitBreaker::builder()
        .name("late")
        .failure_threshold(1)
        .listener(fleet.listener())
        .build_with_clock(TokioClock::new())
        .unwrap();
    let _ = late.call(|| Err::<(), _>("down"));
    let s = fleet.stats();
    assert_eq!((s.dropped_queue_full, s.published), (4, 0), "{s:?}");
}

#[test]
fn bad_settings_get_typed_errors_and_start_needs_a_runtime() {
    use cutout_fleet::FleetConfigError as E;
    let bus = MemoryBus::new();
    let cases = [
        (Fleet::builder().quorum(0), E::ZeroQuorum),
        (Fleet::builder().queue(0), E::ZeroQueue),
        (Fleet::builder().ttl(Duration::ZERO), E::ZeroDuration("ttl")),
        (
            Fleet::builder().max_remote_share(1.5),
            E::RemoteShareOutOfRange,
        ),
        (
            Fleet::builder().max_remote_share(f64::NAN),
            E::RemoteShareOutOfRange,
        ),
        (
            Fleet::builder().reconnect_backoff(ms(10), ms(1)),
            E::BackoffOrder,
        ),
        (Fleet::builder(), E::NoRuntime),
    ];
    for (builder, error) in cases {
        assert_eq!(builder.start(bus.transport()).unwrap_err(), error);
    }
}
