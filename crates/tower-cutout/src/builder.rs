//! [`ServiceBuilderExt`]: `ServiceBuilder` methods for the circuit breaker.

use tower::ServiceBuilder;
use tower_layer::Stack;

use crate::CircuitBreakerLayer;

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
    fn circuit_breaker(
        self,
        breaker: cutout::CircuitBreaker,
    ) -> ServiceBuilder<Stack<CircuitBreakerLayer, L>>;
}

impl<L> sealed::Sealed<L> for ServiceBuilder<L> {}

impl<L> ServiceBuilderExt<L> for ServiceBuilder<L> {
    fn circuit_breaker(
        self,
        breaker: cutout::CircuitBreaker,
    ) -> ServiceBuilder<Stack<CircuitBreakerLayer, L>> {
        self.layer(CircuitBreakerLayer::new(breaker))
    }
}
