//! An adaptive timeout: the timeout follows the dependency's observed latency.
//!
//! The timeout in force is `clamp(q-quantile of recent latencies * factor, floor, ceiling)`
//! (by default p99 x 2, between 10 ms and 10 s), and the `initial` timeout until
//! `min_samples` latencies have been seen in the last one to two windows. Latencies are
//! counted lock-free in a fixed log-scale histogram of atomics that forgets data older than
//! two windows (see [Memory](#memory)).
//!
//! Only successful calls add a latency. A call that times out adds none: a dependency that
//! suddenly gets slow keeps hitting the timeout learnt from its healthy latency, and the
//! [`Elapsed`] errors trip the circuit breaker above, instead of stretching the timeout
//! until the slowness looks normal. The timeout widens only as slower calls succeed within
//! it, and it can never exceed the ceiling.
//!
//! A call takes its timeout from a cached value, recomputed from the histogram when a
//! sample has arrived since, at most once per millisecond, and when the window turns: a
//! scan of the histogram costs up to a microsecond, a call pays it at most once per
//! millisecond.
//!
//! Time is `tokio::time`: paused time drives the timeouts and the windows in tests.
//! Tokio's timer fires on millisecond ticks, so a timeout of 20.48 ms fires at 21 ms;
//! [`Elapsed::timeout`] reports the timeout computed.
//!
//! # Memory
//!
//! Latencies are counted in microseconds in 240 buckets of `AtomicU64`: one per
//! microsecond below 8 µs, then each power of two split into 8 equal buckets, so a bucket's
//! upper edge (the value a quantile reports) is at most 12.5% above any latency in it;
//! 2^32 µs (71 minutes) and more share the last bucket. There are two sets, one per epoch
//! of one `window`: samples go to the current epoch's set, quantiles read both, and the
//! first thread to see a new epoch clears the set holding data two epochs old (both after
//! a silence of two windows). 3840 bytes per layer, whatever the traffic; no lock. A sample
//! recorded at the very instant of a rotation may be lost.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), cutout_companions::BoxError> {
//! use cutout_companions::timeout::{AdaptiveTimeoutLayer, Elapsed};
//! use std::time::Duration;
//! use tower::{Service, ServiceBuilder, ServiceExt};
//!
//! let timeout = AdaptiveTimeoutLayer::builder()
//!     .percentile(0.99)
//!     .factor(2.0)
//!     .floor(Duration::from_millis(5))
//!     .ceiling(Duration::from_secs(1))
//!     .min_samples(10)
//!     .build()?;
//! let mut svc = ServiceBuilder::new()
//!     .layer(timeout.clone())
//!     .service_fn(|delay_ms: u64| async move {
//!         tokio::time::sleep(Duration::from_millis(delay_ms)).await;
//!         Ok::<_, std::io::Error>(delay_ms)
//!     });
//!
//! assert_eq!(timeout.current_timeout(), Duration::from_secs(1)); // the ceiling, at first
//! for _ in 0..10 {
//!     svc.ready().await?.call(10).await?;
//! }
//! // p99 of 10 ms is the bucket edge 10.24 ms; times 2.
//! assert_eq!(timeout.current_timeout(), Duration::from_micros(20_480));
//! let err = svc.ready().await?.call(500).await.unwrap_err();
//! assert_eq!(err.downcast_ref::<Elapsed>(), Some(&Elapsed::new(Duration::from_micros(20_480))));
//! # Ok(())
//! # }
//! ```

mod error;
mod histogram;

pub use error::Elapsed;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};
use tower_layer::Layer;
use tower_service::Service;

use crate::error::{BoxError, ConfigError, check_range};
use histogram::Histogram;

/// The longest ceiling accepted: 365 days.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// Wraps services in an [`AdaptiveTimeout`]. All services made by one layer, and their
/// clones, share one latency history: make one layer per dependency.
#[derive(Clone)]
pub struct AdaptiveTimeoutLayer {
    tracker: Arc<Tracker>,
}

impl AdaptiveTimeoutLayer {
    /// A builder with the defaults in [`AdaptiveTimeoutBuilder`].
    pub fn builder() -> AdaptiveTimeoutBuilder {
        AdaptiveTimeoutBuilder::default()
    }

    /// The timeout computed from the histogram now. Calls get the same value, refreshed at
    /// most once per millisecond of tokio time (and at once when the window turns).
    pub fn current_timeout(&self) -> Duration {
        self.tracker.timeout_at(Instant::now())
    }

    /// What the layer has seen.
    pub fn stats(&self) -> AdaptiveTimeoutStats {
        self.tracker.stats(Instant::now())
    }
}

impl fmt::Debug for AdaptiveTimeoutLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdaptiveTimeoutLayer")
            .field("config", &self.tracker.config)
            .finish_non_exhaustive()
    }
}

impl<S> Layer<S> for AdaptiveTimeoutLayer {
    type Service = AdaptiveTimeout<S>;

    fn layer(&self, inner: S) -> AdaptiveTimeout<S> {
        AdaptiveTimeout {
            inner,
            tracker: self.tracker.clone(),
        }
    }
}

/// A snapshot of an adaptive timeout, from [`AdaptiveTimeoutLayer::stats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct AdaptiveTimeoutStats {
    /// The timeout a call starting now would get.
    pub timeout: Duration,
    /// The observed quantile (the upper edge of its histogram bucket), once there are
    /// enough samples.
    pub quantile: Option<Duration>,
    /// Latencies counted in the current and previous window.
    pub samples: u64,
    /// Calls that timed out, since the layer was built.
    pub timeouts: u64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Config {
    percentile: f64,
    factor: f64,
    floor: Duration,
    ceiling: Duration,
    initial: Duration,
    min_samples: u64,
    window: Duration,
}

/// The shared latency history.
struct Tracker {
    config: Config,
    /// `config.window` in nanoseconds (at least 1 ms, at most `u64::MAX`).
    window_nanos: u64,
    origin: Instant,
    histogram: Histogram,
    timeouts: AtomicU64,
    /// The timeout calls get, in nanoseconds, as last computed.
    cached: AtomicU64,
    /// The millisecond (since `origin`) it was computed in, plus one; 0 before the first.
    cached_at: AtomicU64,
    /// The epoch it was computed in.
    cached_epoch: AtomicU64,
    /// Whether a sample arrived since it was computed.
    dirty: AtomicBool,
}

impl Tracker {
    fn new(config: Config) -> Self {
        Self {
            window_nanos: u64::try_from(config.window.as_nanos()).unwrap_or(u64::MAX),
            config,
            origin: Instant::now(),
            histogram: Histogram::new(),
            timeouts: AtomicU64::new(0),
            cached: AtomicU64::new(0),
            cached_at: AtomicU64::new(0),
            cached_epoch: AtomicU64::new(0),
            dirty: AtomicBool::new(false),
        }
    }

    /// The timeout for a call starting at `now`: the cached one, unless a sample arrived
    /// and it is from an earlier millisecond, or the window turned since. A scan of the
    /// histogram costs up to a microsecond; this caps it at one per millisecond.
    #[inline]
    fn timeout_for_call(&self, now: Instant) -> Duration {
        let nanos = self.nanos(now);
        let ms = (nanos / 1_000_000).min(u64::MAX - 1);
        let epoch = self.epoch_of(nanos);
        let at = self.cached_at.load(Ordering::Acquire);
        if at != 0
            && self.cached_epoch.load(Ordering::Relaxed) == epoch
            && (at - 1 == ms || !self.dirty.load(Ordering::Relaxed))
        {
            return Duration::from_nanos(self.cached.load(Ordering::Relaxed));
        }
        self.refresh(now, ms, epoch)
    }

    #[cold]
    fn refresh(&self, now: Instant, ms: u64, epoch: u64) -> Duration {
        // Cleared first: a sample arriving during the scan marks it stale again.
        self.dirty.store(false, Ordering::Relaxed);
        let timeout = self.timeout_at(now);
        let nanos = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX);
        self.cached.store(nanos, Ordering::Relaxed);
        self.cached_epoch.store(epoch, Ordering::Relaxed);
        self.cached_at.store(ms + 1, Ordering::Release);
        timeout
    }

    /// Nanoseconds since `origin` (saturating after 584 years).
    #[inline]
    fn nanos(&self, now: Instant) -> u64 {
        let since = now.saturating_duration_since(self.origin);
        u64::try_from(since.as_nanos()).unwrap_or(u64::MAX)
    }

    #[inline]
    fn epoch(&self, now: Instant) -> u64 {
        self.epoch_of(self.nanos(now))
    }

    #[inline]
    fn epoch_of(&self, nanos: u64) -> u64 {
        nanos / self.window_nanos
    }

    fn quantile(&self, now: Instant) -> Option<Duration> {
        let c = &self.config;
        self.histogram
            .quantile(self.epoch(now), c.percentile, c.min_samples)
            .map(|(us, _)| Duration::from_micros(us))
    }

    fn timeout_at(&self, now: Instant) -> Duration {
        let c = &self.config;
        match self.quantile(now) {
            None => c.initial,
            Some(q) => Duration::try_from_secs_f64(q.as_secs_f64() * c.factor)
                .unwrap_or(c.ceiling)
                .clamp(c.floor, c.ceiling),
        }
    }

    fn record(&self, now: Instant, latency: Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.histogram.record(self.epoch(now), us);
        // Written only when it changes, so busy callers do not fight over the line.
        if !self.dirty.load(Ordering::Relaxed) {
            self.dirty.store(true, Ordering::Relaxed);
        }
    }

    fn stats(&self, now: Instant) -> AdaptiveTimeoutStats {
        AdaptiveTimeoutStats {
            timeout: self.timeout_at(now),
            quantile: self.quantile(now),
            samples: self.histogram.count(self.epoch(now)),
            timeouts: self.timeouts.load(Ordering::Relaxed),
        }
    }
}

/// Builds an [`AdaptiveTimeoutLayer`].
///
/// | setting | default | meaning |
/// |---|---|---|
/// | [`percentile`](Self::percentile) | 0.99 | the latency quantile followed, in `(0, 1]` |
/// | [`factor`](Self::factor) | 2.0 | the timeout as a multiple of that quantile, at least 1 |
/// | [`floor`](Self::floor) | 10 ms | the shortest timeout |
/// | [`ceiling`](Self::ceiling) | 10 s | the longest timeout, at most [`MAX_TIMEOUT`] |
/// | [`initial`](Self::initial) | the ceiling | the timeout until there are enough samples |
/// | [`min_samples`](Self::min_samples) | 20 | samples needed before the quantile is used |
/// | [`window`](Self::window) | 10 s | the epoch length: data older than two windows is forgotten |
#[derive(Debug, Clone)]
#[must_use]
pub struct AdaptiveTimeoutBuilder {
    percentile: f64,
    factor: f64,
    floor: Duration,
    ceiling: Duration,
    initial: Option<Duration>,
    min_samples: u64,
    window: Duration,
}

impl Default for AdaptiveTimeoutBuilder {
    fn default() -> Self {
        Self {
            percentile: 0.99,
            factor: 2.0,
            floor: Duration::from_millis(10),
            ceiling: Duration::from_secs(10),
            initial: None,
            min_samples: 20,
            window: Duration::from_secs(10),
        }
    }
}

impl AdaptiveTimeoutBuilder {
    /// The latency quantile the timeout follows, in `(0, 1]` (0.99 is p99).
    pub fn percentile(mut self, q: f64) -> Self {
        self.percentile = q;
        self
    }

    /// The timeout as a multiple of the quantile, finite and at least 1.
    pub fn factor(mut self, factor: f64) -> Self {
        self.factor = factor;
        self
    }

    /// The shortest timeout.
    pub fn floor(mut self, floor: Duration) -> Self {
        self.floor = floor;
        self
    }

    /// The longest timeout (not zero).
    pub fn ceiling(mut self, ceiling: Duration) -> Self {
        self.ceiling = ceiling;
        self
    }

    /// The timeout until there are enough samples, between the floor and the ceiling (by
    /// default the ceiling).
    pub fn initial(mut self, initial: Duration) -> Self {
        self.initial = Some(initial);
        self
    }

    /// Samples needed in the last one to two windows before the quantile is used (at
    /// least 1).
    pub fn min_samples(mut self, n: u64) -> Self {
        self.min_samples = n;
        self
    }

    /// The epoch length (at least 1 ms): the quantile covers the last one to two windows.
    pub fn window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// Checks the settings and builds the layer. Its windows start now (tokio's clock).
    pub fn build(self) -> Result<AdaptiveTimeoutLayer, ConfigError> {
        check_range("percentile", self.percentile, f64::MIN_POSITIVE, 1.0)?;
        check_range("factor", self.factor, 1.0, f64::MAX)?;
        if self.ceiling.is_zero() {
            return Err(ConfigError::Zero { setting: "ceiling" });
        }
        if self.ceiling > MAX_TIMEOUT {
            return Err(ConfigError::DurationOutOfRange {
                setting: "ceiling",
                value: self.ceiling,
                min: Duration::from_nanos(1),
                max: MAX_TIMEOUT,
            });
        }
        if self.floor > self.ceiling {
            return Err(ConfigError::Inverted {
                low: "floor",
                low_value: self.floor,
                high: "ceiling",
                high_value: self.ceiling,
            });
        }
        let initial = self.initial.unwrap_or(self.ceiling);
        if initial < self.floor {
            return Err(ConfigError::Inverted {
                low: "floor",
                low_value: self.floor,
                high: "initial",
                high_value: initial,
            });
        }
        if initial > self.ceiling {
            return Err(ConfigError::Inverted {
                low: "initial",
                low_value: initial,
                high: "ceiling",
                high_value: self.ceiling,
            });
        }
        if self.min_samples == 0 {
            return Err(ConfigError::Zero {
                setting: "min samples",
            });
        }
        if self.window < Duration::from_millis(1) {
            return Err(ConfigError::DurationOutOfRange {
                setting: "window",
                value: self.window,
                min: Duration::from_millis(1),
                max: Duration::MAX,
            });
        }
        Ok(AdaptiveTimeoutLayer {
            tracker: Arc::new(Tracker::new(Config {
                percentile: self.percentile,
                factor: self.factor,
                floor: self.floor,
                ceiling: self.ceiling,
                initial,
                min_samples: self.min_samples,
                window: self.window,
            })),
        })
    }
}

/// A timeout that follows observed latency. Made by [`AdaptiveTimeoutLayer`].
#[derive(Clone)]
pub struct AdaptiveTimeout<S> {
    inner: S,
    tracker: Arc<Tracker>,
}

impl<S> AdaptiveTimeout<S> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The wrapped service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: fmt::Debug> fmt::Debug for AdaptiveTimeout<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdaptiveTimeout")
            .field("inner", &self.inner)
            .field("config", &self.tracker.config)
            .finish()
    }
}

impl<S, Req> Service<Req> for AdaptiveTimeout<S>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let start = Instant::now();
        let timeout = self.tracker.timeout_for_call(start);
        ResponseFuture {
            inner: self.inner.call(req),
            sleep: tokio::time::sleep_until(start + timeout),
            start,
            timeout,
            tracker: self.tracker.clone(),
        }
    }
}

pin_project! {
    /// The response future of [`AdaptiveTimeout`].
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        #[pin]
        sleep: Sleep,
        start: Instant,
        timeout: Duration,
        tracker: Arc<Tracker>,
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl<F, T, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(result) = this.inner.poll(cx) {
            if result.is_ok() {
                let now = Instant::now();
                this.tracker
                    .record(now, now.saturating_duration_since(*this.start));
            }
            return Poll::Ready(result.map_err(Into::into));
        }
        match this.sleep.poll(cx) {
            Poll::Ready(()) => {
                this.tracker.timeouts.fetch_add(1, Ordering::Relaxed);
                Poll::Ready(Err(Box::new(Elapsed::new(*this.timeout))))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}
