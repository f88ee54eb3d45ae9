//! Shared by the paused-time tests.

use std::time::Duration;

/// Lets the paused runtime run (each sleep auto-advances the clock by 1 ms when idle) until
/// `done` holds, for at most `limit` of paused time. Returns whether it held.
pub(crate) async fn settle(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let start = tokio::time::Instant::now();
    loop {
        if done() {
            return true;
        }
        if start.elapsed() >= limit {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}
