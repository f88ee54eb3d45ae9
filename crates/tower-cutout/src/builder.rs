//! [`ServiceBuilderExt`]: `ServiceBuilder` methods for the circuit breaker.

use tower::ServiceBuilder;
use tower_layer::Stack;

use crate::CircuitBreakerLayer;
use crate::classify::DefaultClassifier;
#[cfg(feature = "grpc")]
use crate::grpc::{GrpcClassifier, UnavailableError, UnavailableResponse};
use crate::handle::BreakerHandle;
#[cfg(feature = "http")]
use crate::http::{HttpClassifier, ServiceUnavailable};
#[cfg(all(feature = "keyed", feature = "http"))]
use crate::keyed::{Authority, AuthorityKey, HttpKeyedCircuitBreakerLayer};
#[cfg(feature = "keyed")]
use crate::keyed::{KeyedCircuitBreakerLayer, KeyedRegistry};
use crate::reject::RejectWithError;

mod sealed {
    pub trait Sealed<T> {}
}

/// Adds circuit breaker methods to [`tower::ServiceBuilder`]. Sealed: implemented only for
/// `ServiceBuilder`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_cutout::error::BoxError> {
/// use tower::{Service, ServiceBuilder, ServiceExt};
/// use tower_cutout::ServiceBuilderExt;
///
/// let breaker = cutout::CircuitBreaker::builder().build()?;
/// let mut svc = ServiceBuilder::new()
///     .circuit_breaker(breaker)
///     .service_fn(|n: u32| async move { Ok::<_, std::io::Error>(n + 1) });
/// assert_eq!(svc.ready().await?.call(1).await?, 2);
/// # Ok(())
/// # }
/// ```
pub trait ServiceBuilderExt<L>: sealed::Sealed<L> + Sized {
    /// Adds a [`CircuitBreakerLayer`] sharing `breaker` (fail fast, `Err` is a failure).
    /// `breaker` is a [`BreakerHandle`]: a `&'static cutout::CircuitBreaker` (the fast way,
    /// see [`crate::handle`]) or a `cutout::CircuitBreaker`.
    fn circuit_breaker<B: BreakerHandle>(
        self,
        breaker: B,
    ) -> ServiceBuilder<Stack<CircuitBreakerLayer<DefaultClassifier, RejectWithError, B>, L>>;

    /// Adds a [`CircuitBreakerLayer`] sharing `breaker` for HTTP services: `5xx` and `429`
    /// are failures ([`HttpClassifier`]) and a rejection is a `503 Service Unavailable`
    /// response with `Retry-After` ([`ServiceUnavailable`]), so the service stays
    /// infallible (as axum needs).
    #[cfg(feature = "http")]
    #[cfg_attr(docsrs, doc(cfg(feature = "http")))]
    fn http_circuit_breaker<B: BreakerHandle>(
        self,
        breaker: B,
    ) -> ServiceBuilder<Stack<CircuitBreakerLayer<HttpClassifier, ServiceUnavailable, B>, L>>;

    /// Adds a [`CircuitBreakerLayer`] sharing `breaker` for a tonic server: failures by
    /// `grpc-status` ([`GrpcClassifier`]), and a rejection is a gRPC `UNAVAILABLE` response
    /// ([`UnavailableResponse`]).
    #[cfg(feature = "grpc")]
    #[cfg_attr(docsrs, doc(cfg(feature = "grpc")))]
    fn grpc_server_circuit_breaker<B: BreakerHandle>(
        self,
        breaker: B,
    ) -> ServiceBuilder<Stack<CircuitBreakerLayer<GrpcClassifier, UnavailableResponse, B>, L>>;

    /// Adds a [`CircuitBreakerLayer`] sharing `breaker` for a tonic client: failures by
    /// `grpc-status` ([`GrpcClassifier`]), and a rejection is an error the client reports
    /// as `Status::unavailable` ([`UnavailableError`]).
    #[cfg(feature = "grpc")]
    #[cfg_attr(docsrs, doc(cfg(feature = "grpc")))]
    fn grpc_client_circuit_breaker<B: BreakerHandle>(
        self,
        breaker: B,
    ) -> ServiceBuilder<Stack<CircuitBreakerLayer<GrpcClassifier, UnavailableError, B>, L>>;

    /// Adds a [`KeyedCircuitBreakerLayer`] sharing `registry`, keying requests with
    /// `extractor` (`Err` is a failure, rejections are errors).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tower_cutout::error::BoxError> {
    /// use std::sync::Arc;
    /// use tower::{Service, ServiceBuilder, ServiceExt};
    /// use tower_cutout::ServiceBuilderExt;
    ///
    /// let tenants = Arc::new(
    ///     cutout_keyed::KeyedBreakers::builder(cutout::CircuitBreaker::builder()).build()?,
    /// );
    /// let mut svc = ServiceBuilder::new()
    ///     .keyed_circuit_breaker(tenants.clone(), |tenant: &u32| Some(*tenant))
    ///     .service_fn(|tenant: u32| async move { Ok::<_, std::io::Error>(tenant) });
    /// assert_eq!(svc.ready().await?.call(7).await?, 7);
    /// assert_eq!(tenants.state(&7), Some(cutout::State::Closed));
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "keyed")]
    #[cfg_attr(docsrs, doc(cfg(feature = "keyed")))]
    #[allow(clippy::type_complexity)]
    fn keyed_circuit_breaker<K, X, H, G: KeyedRegistry<K, Hasher = H>>(
        self,
        registry: G,
        extractor: X,
    ) -> ServiceBuilder<
        Stack<KeyedCircuitBreakerLayer<K, X, DefaultClassifier, RejectWithError, H, G>, L>,
    >;

    /// Adds a [`KeyedCircuitBreakerLayer`] sharing `registry` for HTTP services: a breaker
    /// per authority ([`Authority`]), `5xx` and `429` are failures ([`HttpClassifier`]), and
    /// a rejection is a `503 Service Unavailable` response ([`ServiceUnavailable`]).
    #[cfg(all(feature = "keyed", feature = "http"))]
    #[cfg_attr(docsrs, doc(cfg(all(feature = "keyed", feature = "http"))))]
    fn http_keyed_circuit_breaker<H, G: KeyedRegistry<AuthorityKey, Hasher = H>>(
        self,
        registry: G,
    ) -> ServiceBuilder<Stack<HttpKeyedCircuitBreakerLayer<H, G>, L>>;
}

impl<L> sealed::Sealed<L> for ServiceBuilder<L> {}

impl<L> ServiceBuilderExt<L> for ServiceBuilder<L> {
    fn circuit_breaker<B: BreakerHandle>(
        self,
        breaker: B,
    ) -> ServiceBuilder<Stack<CircuitBreakerLayer<DefaultClassifier, RejectWithError, B>, L>> {
        self.layer(CircuitBreakerLayer::new(breaker))
    }

    #[cfg(feature = "http")]
    fn http_circuit_breaker<B: BreakerHandle>(
        self,
        breaker: B,
    ) -> ServiceBuilder<Stack<CircuitBreakerLayer<HttpClassifier, ServiceUnavailable, B>, L>> {
        self.layer(
            CircuitBreakerLayer::new(breaker)
                .classify(HttpClassifier::new())
                .reject_with(ServiceUnavailable),
        )
    }

    #[cfg(feature = "grpc")]
    fn grpc_server_circuit_breaker<B: BreakerHandle>(
        self,
        breaker: B,
    ) -> ServiceBuilder<Stack<CircuitBreakerLayer<GrpcClassifier, UnavailableResponse, B>, L>> {
        self.layer(
            CircuitBreakerLayer::new(breaker)
                .classify(GrpcClassifier::new())
                .reject_with(UnavailableResponse),
        )
    }

    #[cfg(feature = "grpc")]
    fn grpc_client_circuit_breaker<B: BreakerHandle>(
        self,
        breaker: B,
    ) -> ServiceBuilder<Stack<CircuitBreakerLayer<GrpcClassifier, UnavailableError, B>, L>> {
        self.layer(
            CircuitBreakerLayer::new(breaker)
                .classify(GrpcClassifier::new())
                .reject_with(UnavailableError),
        )
    }

    #[cfg(feature = "keyed")]
    fn keyed_circuit_breaker<K, X, H, G: KeyedRegistry<K, Hasher = H>>(
        self,
        registry: G,
        extractor: X,
    ) -> ServiceBuilder<
        Stack<KeyedCircuitBreakerLayer<K, X, DefaultClassifier, RejectWithError, H, G>, L>,
    > {
        self.layer(KeyedCircuitBreakerLayer::new(registry, extractor))
    }

    #[cfg(all(feature = "keyed", feature = "http"))]
    fn http_keyed_circuit_breaker<H, G: KeyedRegistry<AuthorityKey, Hasher = H>>(
        self,
        registry: G,
    ) -> ServiceBuilder<Stack<HttpKeyedCircuitBreakerLayer<H, G>, L>> {
        self.layer(
            KeyedCircuitBreakerLayer::new(registry, Authority::new())
                .classify(HttpClassifier::new())
                .reject_with(ServiceUnavailable),
        )
    }
}
