//! The wake-up of a service whose `poll_ready` waits on its breaker (backpressure mode, an
//! ejected endpoint).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

/// Sleeps `wait` (at least 1 ms) on `sleep`, made on the first wait and reset after;
/// `Ready` when the time has come. `None` when there is no tokio runtime to sleep on.
pub(crate) fn poll_sleep(
    sleep: &mut Option<Pin<Box<Sleep>>>,
    cx: &mut Context<'_>,
    wait: Duration,
) -> Option<Poll<()>> {
    let deadline = Instant::now()
        .checked_add(wait.max(Duration::from_millis(1)))
        .unwrap_or_else(far_future);
    let sleep = match sleep {
        Some(sleep) => {
            sleep.as_mut().reset(deadline);
            sleep
        }
        None => {
            tokio::runtime::Handle::try_current().ok()?;
            sleep.insert(Box::pin(tokio::time::sleep_until(deadline)))
        }
    };
    Some(sleep.as_mut().poll(cx))
}

/// A deadline no wait reaches (about 30 years), as tokio uses for "never".
fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400 * 365 * 30)
}
