//! Errors of the [`CircuitBreaker`](crate::CircuitBreaker) service.

use std::error::Error;
use std::fmt;
use std::time::Duration;

/// A boxed error: what the service returns in the default mode (a rejection or the inner
/// service's error), as tower's own middleware does.
pub type BoxError = Box<dyn Error + Send + Sync>;

/// The circuit breaker refused the request: the inner service was not called.
///
/// The default mode returns it boxed in a [`BoxError`]; find it with `err.is::<Rejected>()`
/// or `err.downcast_ref::<Rejected>()`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_cutout::error::BoxError> {
/// use tower::{Service, ServiceExt};
/// use tower_cutout::{CircuitBreakerLayer, error::Rejected};
///
/// let breaker = cutout::CircuitBreaker::builder().build()?;
/// breaker.force_open();
/// let mut svc = tower::ServiceBuilder::new()
///     .layer(CircuitBreakerLayer::new(breaker))
///     .service_fn(|req: u32| async move { Ok::<_, std::io::Error>(req) });
///
/// let err = svc.ready().await?.call(7).await.unwrap_err();
/// assert!(err.is::<Rejected>());
/// assert_eq!(err.to_string(), "circuit breaker is forced open");
/// let rejected = err.downcast_ref::<Rejected>().unwrap();
/// assert_eq!(rejected.retry_after(), None);
/// # Ok(())
/// # }
/// ```
pub struct Rejected {
    reason: cutout::Rejected,
    /// The gRPC form of the rejection, given as the error's source so that tonic's client
    /// (which looks for a `Status` in the source chain) reports `UNAVAILABLE`.
    #[cfg(feature = "grpc")]
    status: Option<tonic::Status>,
}

impl Rejected {
    pub(crate) fn new(reason: cutout::Rejected) -> Self {
        Self {
            reason,
            #[cfg(feature = "grpc")]
            status: None,
        }
    }

    /// A rejection whose source is its `tonic::Status` (see [`crate::grpc::UnavailableError`]).
    #[cfg(feature = "grpc")]
    pub(crate) fn with_status(reason: cutout::Rejected) -> Self {
        Self {
            reason,
            status: Some(crate::grpc::unavailable(reason)),
        }
    }

    /// How long until the breaker may admit a call: the rest of the open time, or of a full
    /// half-open period's probe lease. `None` when the circuit was forced open.
    pub fn retry_after(&self) -> Option<Duration> {
        self.reason.retry_after()
    }

    /// The breaker's reason, with its state.
    pub fn reason(&self) -> cutout::Rejected {
        self.reason
    }
}

impl fmt::Debug for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rejected")
            .field("reason", &self.reason)
            .finish()
    }
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.reason, f)
    }
}

impl Error for Rejected {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        #[cfg(feature = "grpc")]
        if let Some(status) = &self.status {
            return Some(status);
        }
        None
    }
}

impl From<cutout::Rejected> for Rejected {
    fn from(reason: cutout::Rejected) -> Self {
        Self::new(reason)
    }
}
