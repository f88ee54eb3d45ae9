use std::fmt;
use std::time::Duration;

use cutout::{Builder, Clock, ConfigError};
use tower_layer::Layer;

use super::service::CircuitBreaker;
use crate::classify::DefaultClassifier;
use crate::handle::BreakerHandle;
use crate::reject::RejectWithError;

/// How often a service in backpressure mode looks at the breaker again while it waits, at
/// most: a half-open slot or a manual reset can free it before the deadline it knows of.
pub const DEFAULT_RECHECK_INTERVAL: Duration = Duration::from_secs(1);

/// Wraps services in a [`CircuitBreaker`] service. Config only: cheap to clone.
///
/// Every service this layer makes, and every clone of those services, shares the layer's one
/// breaker (a [`cutout::CircuitBreaker`] is a handle to shared state). A layer made from a
/// [`Builder`] builds its breaker once, in the constructor; `layer()` never builds one. To
/// give two routes separate breakers, make two layers.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_cutout::error::BoxError> {
/// use std::time::Duration;
/// use tower::{Service, ServiceBuilder, ServiceExt};
/// use tower_cutout::{CircuitBreakerLayer, error::Rejected};
///
/// let layer = CircuitBreakerLayer::from_builder(
///     cutout::CircuitBreaker::builder()
///         .name("inventory")
///         .failure_threshold(2)
///         .open_duration(Duration::from_secs(10)),
/// )?;
/// let mut svc = ServiceBuilder::new()
///     .layer(layer.clone())
///     .service_fn(|fail: bool| async move {
///         if fail { Err("inventory down") } else { Ok("in stock") }
///     });
///
/// assert_eq!(svc.ready().await?.call(false).await?, "in stock");
/// for _ in 0..2 {
///     assert_eq!(svc.ready().await?.call(true).await.unwrap_err().to_string(), "inventory down");
/// }
/// // Tripped: the next call is rejected without reaching the service.
/// let err = svc.ready().await?.call(false).await.unwrap_err();
/// assert!(err.is::<Rejected>());
/// assert_eq!(layer.breaker().state(), cutout::State::Open);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct CircuitBreakerLayer<
    C = DefaultClassifier,
    R = RejectWithError,
    B = cutout::CircuitBreaker,
> {
    pub(crate) config: Config<C, R, B>,
}

/// The settings a layer hands to each service it makes.
#[derive(Clone)]
pub(crate) struct Config<C, R, B = cutout::CircuitBreaker> {
    pub(crate) breaker: B,
    pub(crate) classifier: C,
    pub(crate) reject: R,
    pub(crate) slow_call_threshold: Option<Duration>,
    pub(crate) backpressure: bool,
    pub(crate) recheck_interval: Duration,
}

impl<C, R, B: BreakerHandle> Config<C, R, B> {
    pub(crate) fn debug(&self, d: &mut fmt::DebugStruct<'_, '_>) {
        d.field("breaker", self.breaker.breaker())
            .field("classifier", &std::any::type_name::<C>())
            .field("reject", &std::any::type_name::<R>())
            .field("slow_call_threshold", &self.slow_call_threshold)
            .field("backpressure", &self.backpressure)
            .field("recheck_interval", &self.recheck_interval);
    }
}

impl<B> Config<DefaultClassifier, RejectWithError, B> {
    pub(crate) const fn new(breaker: B) -> Self {
        Self {
            breaker,
            classifier: DefaultClassifier,
            reject: RejectWithError,
            slow_call_threshold: None,
            backpressure: false,
            recheck_interval: DEFAULT_RECHECK_INTERVAL,
        }
    }
}

impl<B: BreakerHandle> CircuitBreakerLayer<DefaultClassifier, RejectWithError, B> {
    /// A layer whose services share `breaker` (and share it with anyone else holding a
    /// handle to it). Fail fast, `Err` is a failure, rejections are
    /// [`error::Rejected`](crate::error::Rejected) errors.
    ///
    /// `breaker` is a [`BreakerHandle`]: a `&'static cutout::CircuitBreaker` (from
    /// [`cutout::CircuitBreaker::leak`] or a `static`) is the fast way, with no reference
    /// count per request; a [`cutout::CircuitBreaker`] handle works everywhere else. See
    /// [`crate::handle`].
    pub const fn new(breaker: B) -> Self {
        Self {
            config: Config::new(breaker),
        }
    }
}

impl CircuitBreakerLayer {
    /// A layer with a new breaker built from `builder`, once, now; its services share it.
    pub fn from_builder(builder: Builder) -> Result<Self, ConfigError> {
        Ok(Self::new(builder.build()?))
    }

    /// Like [`from_builder`](Self::from_builder), on `clock` (use [`cutout::TokioClock`] so
    /// that `tokio::time::pause()` drives the breaker in tests).
    pub fn from_builder_with_clock(
        builder: Builder,
        clock: impl Clock,
    ) -> Result<Self, ConfigError> {
        Ok(Self::new(builder.build_with_clock(clock)?))
    }
}

impl<C, R, B: BreakerHandle> CircuitBreakerLayer<C, R, B> {
    /// The breaker the layer's services share.
    pub fn breaker(&self) -> &cutout::CircuitBreaker {
        self.config.breaker.breaker()
    }

    /// Classifies results with `classifier`: a closure
    /// `Fn(&Result<Response, Error>) -> cutout::Outcome`, or any
    /// [`Classify`](crate::classify::Classify) (such as the HTTP and gRPC classifiers).
    pub fn classify<C2>(self, classifier: C2) -> CircuitBreakerLayer<C2, R, B> {
        let c = self.config;
        CircuitBreakerLayer {
            config: Config {
                breaker: c.breaker,
                classifier,
                reject: c.reject,
                slow_call_threshold: c.slow_call_threshold,
                backpressure: c.backpressure,
                recheck_interval: c.recheck_interval,
            },
        }
    }

    /// Turns rejections into the output `reject` makes (see [`crate::reject`]).
    pub fn reject_with<R2>(self, reject: R2) -> CircuitBreakerLayer<C, R2, B> {
        let c = self.config;
        CircuitBreakerLayer {
            config: Config {
                breaker: c.breaker,
                classifier: c.classifier,
                reject,
                slow_call_threshold: c.slow_call_threshold,
                backpressure: c.backpressure,
                recheck_interval: c.recheck_interval,
            },
        }
    }

    /// Counts a call whose response takes longer than `threshold` (from `call` to the
    /// response, measured on `tokio::time::Instant`, so paused time works) as a failure,
    /// whatever the classifier says. Costs one clock read per call.
    pub fn slow_call_threshold(mut self, threshold: Duration) -> Self {
        self.config.slow_call_threshold = Some(threshold);
        self
    }

    /// Fail fast (the default): `poll_ready` is ready at once, and `call` returns an
    /// already-failed response future when the breaker rejects.
    pub fn fail_fast(mut self) -> Self {
        self.config.backpressure = false;
        self
    }

    /// Backpressure: `poll_ready` is `Pending` until the breaker would admit a call, and
    /// wakes itself when the open time ends (or after the
    /// [recheck interval](Self::recheck_interval), if sooner). For load balancers that
    /// route around endpoints that are not ready. While it waits, the inner service's
    /// `poll_ready` is not polled.
    ///
    /// Waiting needs a tokio runtime with its time driver; outside any tokio runtime the
    /// service falls back to failing fast.
    pub fn backpressure(mut self) -> Self {
        self.config.backpressure = true;
        self
    }

    /// In backpressure mode, the longest wait before looking at the breaker again
    /// (default [`DEFAULT_RECHECK_INTERVAL`]). A zero interval is taken as one millisecond.
    pub fn recheck_interval(mut self, interval: Duration) -> Self {
        self.config.recheck_interval = interval;
        self
    }
}

impl<S, C: Clone, R: Clone, B: BreakerHandle> Layer<S> for CircuitBreakerLayer<C, R, B> {
    type Service = CircuitBreaker<S, C, R, B>;

    fn layer(&self, inner: S) -> Self::Service {
        CircuitBreaker::from_config(inner, self.config.clone())
    }
}

impl<C, R, B: BreakerHandle> fmt::Debug for CircuitBreakerLayer<C, R, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("CircuitBreakerLayer");
        self.config.debug(&mut d);
        d.finish()
    }
}
