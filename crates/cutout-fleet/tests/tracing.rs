//! With the `tracing` feature: link changes (INFO up, WARN down) and holds (DEBUG) are
//! logged with target `cutout_fleet`.

mod support;
use support::settle;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cutout::{CircuitBreaker, TokioClock};
use cutout_fleet::{Fleet, MemoryBus};

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Buffer {
    fn lines(&self, needle: &str) -> Vec<String> {
        String::from_utf8(self.0.lock().unwrap().clone())
            .unwrap()
            .lines()
            .filter(|l| l.contains(needle))
            .map(str::to_owned)
            .collect()
    }
}

#[tokio::test(start_paused = true)]
async fn link_changes_and_holds_are_logged() {
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    // This test's runtime is single-threaded: the fleet's tasks log on this thread.
    let _guard = tracing::subscriber::set_default(subscriber);

    let bus = MemoryBus::new();
    let a = Fleet::builder()
        .quorum(1)
        .instance_id(1)
        .start(bus.transport())
        .unwrap();
    let b = Fleet::builder()
        .quorum(1)
        .instance_id(2)
        .start(bus.transport())
        .unwrap();
    assert!(settle(Duration::from_secs(1), || a.link_up() && b.link_up()).await);
    let held = CircuitBreaker::builder()
        .name("payments")
        .build_with_clock(TokioClock::new())
        .unwrap();
    b.attach(&held);
    let tripping = CircuitBreaker::builder()
        .name("payments")
        .failure_threshold(1)
        .listener(a.listener())
        .build_with_clock(TokioClock::new())
        .unwrap();
    let _ = tripping.call(|| Err::<(), _>("down"));
    assert!(settle(Duration::from_secs(1), || b.stats().holds == 1).await);
    bus.set_down(true);
    assert!(settle(Duration::from_secs(1), || !a.link_up() && !b.link_up()).await);

    assert_eq!(buffer.lines("INFO cutout_fleet: fleet link up").len(), 2);
    assert_eq!(buffer.lines("WARN cutout_fleet: fleet link down").len(), 2);
    let holds = buffer.lines("fleet hold");
    assert_eq!(holds.len(), 1, "{holds:?}");
    assert!(
        holds[0].contains("DEBUG")
            && holds[0].contains("breaker=\"payments\"")
            && holds[0].contains("result=Held"),
        "{}",
        holds[0]
    );
}
