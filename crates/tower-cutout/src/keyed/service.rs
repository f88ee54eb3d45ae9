use cutout_keyed::DefaultHashBuilder;
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use cutout_keyed::KeyedBreakers;
use tokio::time::Instant;
use tower_service::Service;

use super::extract::KeyExtractor;
use super::future::ResponseFuture;
use super::layer::{Config, KeyedCircuitBreakerLayer};
use super::registry::KeyedRegistry;
use super::reject::KeyedReject;
use crate::classify::{Classify, DefaultClassifier};
use crate::reject::RejectWithError;

/// A service guarded by a breaker per key (see [the module docs](super)).
///
/// `call` takes the request's key from the extractor, asks that key's breaker in the
/// registry for a permit, and either calls the inner service (the response future holds the
/// permit and the key's breaker until the outcome is recorded) or returns an already-failed
/// response future without calling it. A request without a key is passed through
/// unprotected. `poll_ready` is the inner service's: fail fast only.
///
/// Clones share the registry. [`new`](Self::new) shares an existing registry; a
/// [`KeyedCircuitBreakerLayer`] shares its one registry with every service it makes.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_cutout::error::BoxError> {
/// use std::sync::Arc;
/// use tower::{Service, ServiceExt, service_fn};
/// use tower_cutout::keyed::KeyedCircuitBreaker;
///
/// let hosts = Arc::new(
///     cutout_keyed::KeyedBreakers::builder(cutout::CircuitBreaker::builder().failure_threshold(1))
///         .build()?,
/// );
/// // Requests are (host, path); the host is the key.
/// let mut svc = KeyedCircuitBreaker::new(
///     service_fn(|(host, path): (&'static str, &'static str)| async move {
///         if host == "down.example" { Err("connection refused") } else { Ok(path.len()) }
///     }),
///     hosts.clone(),
///     |req: &(&'static str, &'static str)| Some(req.0),
/// );
/// assert!(svc.ready().await?.call(("down.example", "/a")).await.is_err());
/// assert_eq!(svc.ready().await?.call(("up.example", "/abc")).await?, 4);
/// assert_eq!(hosts.state(&"down.example"), Some(cutout::State::Open));
/// assert_eq!(hosts.state(&"up.example"), Some(cutout::State::Closed));
/// # Ok(())
/// # }
/// ```
pub struct KeyedCircuitBreaker<
    S,
    K,
    X,
    C = DefaultClassifier,
    R = RejectWithError,
    H = DefaultHashBuilder,
    G = Arc<KeyedBreakers<K, H>>,
> {
    inner: S,
    config: Config<K, X, C, R, H, G>,
}

impl<S, K, X, H, G> KeyedCircuitBreaker<S, K, X, DefaultClassifier, RejectWithError, H, G>
where
    G: KeyedRegistry<K, Hasher = H>,
{
    /// Wraps `inner`, sharing `registry` (a `&'static KeyedBreakers`, the fast way, or an
    /// `Arc<KeyedBreakers>`; see [`KeyedRegistry`]), keying requests with `extractor`.
    /// `Err` is a failure, rejections are errors; use a [`KeyedCircuitBreakerLayer`] for
    /// the other settings.
    pub fn new(inner: S, registry: G, extractor: X) -> Self {
        Self::from_config(
            inner,
            KeyedCircuitBreakerLayer::new(registry, extractor).config,
        )
    }

    /// A layer sharing `registry`; see [`KeyedCircuitBreakerLayer::new`].
    pub const fn layer(
        registry: G,
        extractor: X,
    ) -> KeyedCircuitBreakerLayer<K, X, DefaultClassifier, RejectWithError, H, G> {
        KeyedCircuitBreakerLayer::new(registry, extractor)
    }
}

impl<S, K, X, C, R, H, G> KeyedCircuitBreaker<S, K, X, C, R, H, G> {
    pub(crate) fn from_config(inner: S, config: Config<K, X, C, R, H, G>) -> Self {
        Self { inner, config }
    }

    /// The registry this service shares.
    pub fn registry(&self) -> &G {
        &self.config.registry
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, K, X, C, R, H, G, Req> Service<Req> for KeyedCircuitBreaker<S, K, X, C, R, H, G>
where
    S: Service<Req>,
    X: KeyExtractor<Req, Key = K>,
    G: KeyedRegistry<K>,
    C: Classify<S::Response, S::Error> + Clone,
    R: KeyedReject<C::Response, S::Error> + Clone,
{
    type Response = C::Response;
    type Error = R::Error;
    type Future = ResponseFuture<S::Future, C, R, G::Permit>;

    /// The inner service's readiness: the key, and so the breaker, is known only in
    /// `call`.
    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        match self.inner.poll_ready(cx) {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(())),
            Poll::Ready(Err(e)) => Poll::Ready(Err(self.config.reject.inner_error(e))),
            Poll::Pending => Poll::Pending,
        }
    }

    #[inline]
    fn call(&mut self, request: Req) -> Self::Future {
        let Some(key) = self.config.extractor.extract(&request) else {
            return self.unprotected(request);
        };
        match self.config.registry.acquire(&key) {
            Ok(permit) => {
                let slow_deadline = match self.config.slow_call_threshold {
                    None => None,
                    Some(threshold) => Instant::now().checked_add(threshold),
                };
                ResponseFuture::called(
                    self.inner.call(request),
                    Some(permit),
                    slow_deadline,
                    self.config.classifier.clone(),
                    self.config.reject.clone(),
                )
            }
            Err(rejection) => ResponseFuture::rejected(
                rejection,
                self.config.classifier.clone(),
                self.config.reject.clone(),
            ),
        }
    }
}

impl<S, K, X, C: Clone, R: Clone, H, G> KeyedCircuitBreaker<S, K, X, C, R, H, G> {
    /// A request without a key: called with no breaker.
    #[cold]
    #[inline(never)]
    fn unprotected<Req, P>(&mut self, request: Req) -> ResponseFuture<S::Future, C, R, P>
    where
        S: Service<Req>,
    {
        ResponseFuture::called(
            self.inner.call(request),
            None,
            None,
            self.config.classifier.clone(),
            self.config.reject.clone(),
        )
    }
}

impl<S: Clone, K, X: Clone, C: Clone, R: Clone, H, G: Clone> Clone
    for KeyedCircuitBreaker<S, K, X, C, R, H, G>
{
    /// A clone shares the registry.
    fn clone(&self) -> Self {
        Self::from_config(self.inner.clone(), self.config.clone())
    }
}

impl<S: fmt::Debug, K, X, C, R, H, G> fmt::Debug for KeyedCircuitBreaker<S, K, X, C, R, H, G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("KeyedCircuitBreaker");
        d.field("inner", &self.inner);
        self.config.debug(&mut d);
        d.finish_non_exhaustive()
    }
}
