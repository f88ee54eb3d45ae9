//! Errors of the [`KeyedCircuitBreaker`](super::KeyedCircuitBreaker) service.
//!
//! A key's breaker refusing a request is the unkeyed layer's
//! [`error::Rejected`](crate::error::Rejected); a key that could not get a breaker at all
//! (the registry is full of breakers it may not evict) is a [`NoBreaker`].

use std::error::Error;
use std::fmt;

use cutout_keyed::KeyedRejected;

/// The request's key could not get a breaker: the registry is full of breakers that are
/// open, half-open or in use (see [`KeyedRejected::Full`]). The inner service was not
/// called.
///
/// The default mode returns it boxed in a [`BoxError`](crate::error::BoxError); find it
/// with `err.is::<NoBreaker>()`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_cutout::error::BoxError> {
/// use std::sync::Arc;
/// use tower::{Service, ServiceExt, service_fn};
/// use tower_cutout::keyed::{KeyedCircuitBreaker, error::NoBreaker};
///
/// let hosts = Arc::new(
///     cutout_keyed::KeyedBreakers::builder(cutout::CircuitBreaker::builder())
///         .capacity(1)
///         .build()?,
/// );
/// hosts.lease(&"a")?.force_open(); // "a" is open: it may not be evicted
/// let mut svc = KeyedCircuitBreaker::new(
///     service_fn(|host: &'static str| async move { Ok::<_, std::io::Error>(host) }),
///     hosts,
///     |host: &&'static str| Some(*host),
/// );
/// let err = svc.ready().await?.call("b").await.unwrap_err();
/// assert!(err.is::<NoBreaker>());
/// assert_eq!(
///     err.downcast_ref::<NoBreaker>().unwrap().reason(),
///     &cutout_keyed::KeyedRejected::Full { capacity: 1 },
/// );
/// # Ok(())
/// # }
/// ```
pub struct NoBreaker {
    reason: KeyedRejected,
    /// The gRPC form, given as the error's source so that tonic's client reports
    /// `UNAVAILABLE` (see [`crate::grpc::UnavailableError`]).
    #[cfg(feature = "grpc")]
    status: Option<tonic::Status>,
}

impl NoBreaker {
    pub(crate) fn new(reason: KeyedRejected) -> Self {
        Self {
            reason,
            #[cfg(feature = "grpc")]
            status: None,
        }
    }

    /// A refusal whose source is its `tonic::Status`.
    #[cfg(feature = "grpc")]
    pub(crate) fn with_status(reason: KeyedRejected) -> Self {
        let status = tonic::Status::unavailable(reason.to_string());
        Self {
            reason,
            status: Some(status),
        }
    }

    /// Why the key got no breaker (in practice always [`KeyedRejected::Full`]).
    pub fn reason(&self) -> &KeyedRejected {
        &self.reason
    }
}

impl fmt::Debug for NoBreaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NoBreaker")
            .field("reason", &self.reason)
            .finish()
    }
}

impl fmt::Display for NoBreaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.reason, f)
    }
}

impl Error for NoBreaker {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        #[cfg(feature = "grpc")]
        if let Some(status) = &self.status {
            return Some(status);
        }
        None
    }
}

#[cfg(feature = "grpc")]
impl From<NoBreaker> for tonic::Status {
    /// `Status::unavailable`, with the refusal as its source.
    fn from(no_breaker: NoBreaker) -> Self {
        let mut status = tonic::Status::unavailable(no_breaker.reason.to_string());
        status.set_source(std::sync::Arc::new(NoBreaker::new(no_breaker.reason)));
        status
    }
}
