use cutout_keyed::DefaultHashBuilder;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use cutout::Clock;
use cutout_keyed::{KeyedBreakers, KeyedBuilder, KeyedConfigError};
use tower_layer::Layer;

use super::registry::KeyedRegistry;
use super::service::KeyedCircuitBreaker;
use crate::classify::DefaultClassifier;
use crate::reject::RejectWithError;

/// Wraps services in a [`KeyedCircuitBreaker`]: a breaker per key, the key taken from each
/// request. Config only: cheap to clone.
///
/// Every service this layer makes, and every clone of those services, shares the layer's
/// one registry: a `&'static` [`KeyedBreakers`] (the fast way, see [`KeyedRegistry`]) or
/// one behind an [`Arc`]. [`new`](Self::new) shares a registry you built (and can watch,
/// lease and evict from); [`from_builder`](Self::from_builder) builds one behind an `Arc`,
/// once, in the constructor.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_cutout::error::BoxError> {
/// use cutout_keyed::KeyedBreakers;
/// use tower::{Service, ServiceBuilder, ServiceExt};
/// use tower_cutout::{error::Rejected, keyed::KeyedCircuitBreakerLayer};
///
/// /// A job for a tenant's backend.
/// struct Job { tenant: u32, fail: bool }
///
/// let layer = KeyedCircuitBreakerLayer::from_builder(
///     KeyedBreakers::builder(cutout::CircuitBreaker::builder().failure_threshold(1))
///         .capacity(10_000),
///     |job: &Job| Some(job.tenant),
/// )?;
/// let mut svc = ServiceBuilder::new()
///     .layer(layer.clone())
///     .service_fn(|job: Job| async move { if job.fail { Err("backend down") } else { Ok(job.tenant) } });
///
/// assert!(svc.ready().await?.call(Job { tenant: 1, fail: true }).await.is_err());
/// // Tenant 1's breaker is open; tenant 2's is not.
/// let err = svc.ready().await?.call(Job { tenant: 1, fail: false }).await.unwrap_err();
/// assert!(err.is::<Rejected>());
/// assert_eq!(svc.ready().await?.call(Job { tenant: 2, fail: false }).await?, 2);
/// assert_eq!(layer.registry().state(&1), Some(cutout::State::Open));
/// # Ok(())
/// # }
/// ```
pub struct KeyedCircuitBreakerLayer<
    K,
    X,
    C = DefaultClassifier,
    R = RejectWithError,
    H = DefaultHashBuilder,
    G = Arc<KeyedBreakers<K, H>>,
> {
    pub(crate) config: Config<K, X, C, R, H, G>,
}

/// The settings a layer hands to each service it makes.
pub(crate) struct Config<K, X, C, R, H, G> {
    pub(crate) registry: G,
    pub(crate) extractor: X,
    pub(crate) classifier: C,
    pub(crate) reject: R,
    pub(crate) slow_call_threshold: Option<Duration>,
    pub(crate) _types: PhantomData<fn() -> (K, H)>,
}

impl<K, X: Clone, C: Clone, R: Clone, H, G: Clone> Clone for Config<K, X, C, R, H, G> {
    fn clone(&self) -> Self {
        Self {
            registry: self.registry.clone(),
            extractor: self.extractor.clone(),
            classifier: self.classifier.clone(),
            reject: self.reject.clone(),
            slow_call_threshold: self.slow_call_threshold,
            _types: PhantomData,
        }
    }
}

impl<K, X, C, R, H, G> Config<K, X, C, R, H, G> {
    pub(crate) fn debug(&self, d: &mut fmt::DebugStruct<'_, '_>) {
        d.field("key", &std::any::type_name::<K>())
            .field("extractor", &std::any::type_name::<X>())
            .field("classifier", &std::any::type_name::<C>())
            .field("reject", &std::any::type_name::<R>())
            .field("slow_call_threshold", &self.slow_call_threshold);
    }
}

impl<K, X, H, G> KeyedCircuitBreakerLayer<K, X, DefaultClassifier, RejectWithError, H, G>
where
    G: KeyedRegistry<K, Hasher = H>,
{
    /// A layer whose services share `registry`, keying requests with `extractor`. `Err` is
    /// a failure, rejections are errors ([`error::Rejected`](crate::error::Rejected) from a
    /// key's breaker, [`NoBreaker`](super::error::NoBreaker) from a full registry).
    ///
    /// `registry` is a `&'static KeyedBreakers` (the fast way: from
    /// [`KeyedBreakers::leak`] or a `static`; a service clone copies a pointer and a call
    /// writes no reference count) or an `Arc<KeyedBreakers>`; see [`KeyedRegistry`].
    pub const fn new(registry: G, extractor: X) -> Self {
        Self {
            config: Config {
                registry,
                extractor,
                classifier: DefaultClassifier,
                reject: RejectWithError,
                slow_call_threshold: None,
                _types: PhantomData,
            },
        }
    }
}

impl<K, X, H>
    KeyedCircuitBreakerLayer<K, X, DefaultClassifier, RejectWithError, H, Arc<KeyedBreakers<K, H>>>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    H: BuildHasher + Send + Sync + 'static,
{
    /// A layer with a new registry built from `builder`, once, now; its services share it.
    pub fn from_builder(
        builder: KeyedBuilder<K, H>,
        extractor: X,
    ) -> Result<Self, KeyedConfigError> {
        Ok(Self::new(Arc::new(builder.build()?), extractor))
    }

    /// Like [`from_builder`](Self::from_builder), every key's breaker on `clock` (use
    /// [`cutout::TokioClock`] so that `tokio::time::pause()` drives the breakers in tests).
    pub fn from_builder_with_clock(
        builder: KeyedBuilder<K, H>,
        extractor: X,
        clock: impl Clock,
    ) -> Result<Self, KeyedConfigError> {
        Ok(Self::new(
            Arc::new(builder.build_with_clock(clock)?),
            extractor,
        ))
    }
}

impl<K, X, C, R, H, G> KeyedCircuitBreakerLayer<K, X, C, R, H, G> {
    /// The registry the layer's services share.
    pub fn registry(&self) -> &G {
        &self.config.registry
    }

    /// Classifies results with `classifier`, as
    /// [`CircuitBreakerLayer::classify`](crate::CircuitBreakerLayer::classify) does: a
    /// closure `Fn(&Result<Response, Error>) -> cutout::Outcome`, or any
    /// [`Classify`](crate::classify::Classify) (such as the HTTP and gRPC classifiers).
    pub fn classify<C2>(self, classifier: C2) -> KeyedCircuitBreakerLayer<K, X, C2, R, H, G> {
        let c = self.config;
        KeyedCircuitBreakerLayer {
            config: Config {
                registry: c.registry,
                extractor: c.extractor,
                classifier,
                reject: c.reject,
                slow_call_threshold: c.slow_call_threshold,
                _types: PhantomData,
            },
        }
    }

    /// Turns rejections into the output `reject` makes: any [`KeyedReject`] mode (every
    /// mode of [`crate::reject`] is one).
    ///
    /// [`KeyedReject`]: super::KeyedReject
    pub fn reject_with<R2>(self, reject: R2) -> KeyedCircuitBreakerLayer<K, X, C, R2, H, G> {
        let c = self.config;
        KeyedCircuitBreakerLayer {
            config: Config {
                registry: c.registry,
                extractor: c.extractor,
                classifier: c.classifier,
                reject,
                slow_call_threshold: c.slow_call_threshold,
                _types: PhantomData,
            },
        }
    }

    /// Counts a call whose response takes longer than `threshold` (from `call` to the
    /// response, on `tokio::time::Instant`) as a failure, whatever the classifier says.
    /// Costs one clock read per keyed call.
    pub fn slow_call_threshold(mut self, threshold: Duration) -> Self {
        self.config.slow_call_threshold = Some(threshold);
        self
    }
}

impl<K, X: Clone, C: Clone, R: Clone, H, G: Clone> Clone
    for KeyedCircuitBreakerLayer<K, X, C, R, H, G>
{
    fn clone(&self) -> Self {
        Self {
            config: self.config.clone(),
        }
    }
}

impl<S, K, X: Clone, C: Clone, R: Clone, H, G: Clone> Layer<S>
    for KeyedCircuitBreakerLayer<K, X, C, R, H, G>
{
    type Service = KeyedCircuitBreaker<S, K, X, C, R, H, G>;

    fn layer(&self, inner: S) -> Self::Service {
        KeyedCircuitBreaker::from_config(inner, self.config.clone())
    }
}

impl<K, X, C, R, H, G> fmt::Debug for KeyedCircuitBreakerLayer<K, X, C, R, H, G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("KeyedCircuitBreakerLayer");
        self.config.debug(&mut d);
        d.finish_non_exhaustive()
    }
}
