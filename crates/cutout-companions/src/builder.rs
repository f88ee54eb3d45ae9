//! `ServiceBuilder` methods for the companions.

use tower::ServiceBuilder;
use tower::layer::util::Stack;
use tower::retry::RetryLayer;

use crate::bulkhead::BulkheadLayer;
use crate::fault::FaultInjectionLayer;
use crate::retry::RetryPolicy;
use crate::timeout::AdaptiveTimeoutLayer;

mod sealed {
    pub trait Sealed {}
    impl<L> Sealed for tower::ServiceBuilder<L> {}
}

/// Adds the companions to [`tower::ServiceBuilder`], in the order of the
/// [recommended stack](crate#the-recommended-stack). Sealed: implemented for
/// `ServiceBuilder` only.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), cutout_companions::BoxError> {
/// use cutout_companions::ServiceBuilderExt;
/// use cutout_companions::fault::FaultInjectionLayer;
/// use cutout_companions::retry::RetryPolicy;
/// use cutout_companions::timeout::AdaptiveTimeoutLayer;
/// use tower::{ServiceBuilder, ServiceExt};
///
/// let breaker = cutout::CircuitBreaker::builder().build()?;
/// let svc = ServiceBuilder::new()
///     .retry_policy(RetryPolicy::builder().breaker(&breaker).build()?)
///     .layer(tower_cutout::CircuitBreakerLayer::new(breaker)
///         .classify(cutout_companions::classify::IgnoreLocalRejections))
///     .bulkhead(32)
///     .adaptive_timeout(AdaptiveTimeoutLayer::builder().build()?)
///     .fault_injection(FaultInjectionLayer::disabled())
///     .service_fn(|n: u32| async move { Ok::<_, std::io::Error>(n + 1) });
/// assert_eq!(svc.oneshot(41).await?, 42);
/// # Ok(())
/// # }
/// ```
pub trait ServiceBuilderExt<L>: sealed::Sealed + Sized {
    /// Retries through tower's [`Retry`](tower::retry::Retry) with `policy`.
    fn retry_policy<C, R>(
        self,
        policy: RetryPolicy<C, R>,
    ) -> ServiceBuilder<Stack<RetryLayer<RetryPolicy<C, R>>, L>>;

    /// A [bulkhead](crate::bulkhead) of `max_concurrent` calls.
    fn bulkhead(self, max_concurrent: usize) -> ServiceBuilder<Stack<BulkheadLayer, L>>;

    /// An [adaptive timeout](crate::timeout).
    fn adaptive_timeout(
        self,
        layer: AdaptiveTimeoutLayer,
    ) -> ServiceBuilder<Stack<AdaptiveTimeoutLayer, L>>;

    /// [Fault injection](crate::fault).
    fn fault_injection(
        self,
        layer: FaultInjectionLayer,
    ) -> ServiceBuilder<Stack<FaultInjectionLayer, L>>;
}

impl<L> ServiceBuilderExt<L> for ServiceBuilder<L> {
    fn retry_policy<C, R>(
        self,
        policy: RetryPolicy<C, R>,
    ) -> ServiceBuilder<Stack<RetryLayer<RetryPolicy<C, R>>, L>> {
        self.layer(policy.into_layer())
    }

    fn bulkhead(self, max_concurrent: usize) -> ServiceBuilder<Stack<BulkheadLayer, L>> {
        self.layer(BulkheadLayer::new(max_concurrent))
    }

    fn adaptive_timeout(
        self,
        layer: AdaptiveTimeoutLayer,
    ) -> ServiceBuilder<Stack<AdaptiveTimeoutLayer, L>> {
        self.layer(layer)
    }

    fn fault_injection(
        self,
        layer: FaultInjectionLayer,
    ) -> ServiceBuilder<Stack<FaultInjectionLayer, L>> {
        self.layer(layer)
    }
}
