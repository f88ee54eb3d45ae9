//! What a rejection becomes: an error (the default) or a response.
//!
//! | mode | service error | a rejection is | allocations per rejection |
//! |---|---|---|---:|
//! | [`RejectWithError`] (default) | [`BoxError`] | `Err(Box<error::Rejected>)` | 0 |
//! | [`RejectWithCallError`] | [`cutout::CallError<E>`] | `Err(CallError::Rejected(..))` | 0 |
//! | `http::ServiceUnavailable` (feature `http`) | the inner error | `503` with `Retry-After` | 5 (3 forced open): the floor |
//! | `grpc::UnavailableResponse` (feature `grpc`) | the inner error | a gRPC response, `grpc-status: 14` | 5: the floor |
//! | `grpc::UnavailableError` (feature `grpc`) | [`BoxError`] | an error tonic reads as `Status::unavailable` | 0 |
//!
//! The error modes allocate nothing: [`error::Rejected`](Rejected) is zero-sized on 64-bit
//! targets, its box points at an address that codes the rejection (read it through the box;
//! see its docs), and the gRPC error's `Status` is a static one per kind of rejection and whole
//! second of retry time (made on first use; past an hour, one per kind without the time). A
//! response mode's header values are static (`Retry-After` and the gRPC pushback up to an
//! hour; one more allocation above), so it allocates what an `http::Response` with those
//! headers and the [`cutout::Rejected`] in its extensions needs, its floor: the header map's
//! index and entries on the first insert (2), the extensions' map, its table and the boxed
//! value (3). `tests/reject_alloc.rs` and `benches/alloc.rs` measure each mode beside its
//! floor.

use crate::error::{BoxError, Rejected};

/// Turns a rejection into the service's output, and the inner service's errors into the
/// service's error type.
pub trait Reject<Res, E> {
    /// The service's error type.
    type Error;

    /// The output for a rejected request.
    fn rejected(&self, rejection: cutout::Rejected) -> Result<Res, Self::Error>;

    /// The output for a rejected request, from the breaker's one-word refusal, which is
    /// what the service holds. By default it is expanded and given to
    /// [`rejected`](Self::rejected); a mode that only writes the refusal out (a kind and a
    /// number of milliseconds) can read it as it is
    /// ([`state`](cutout::CompactRejected::state),
    /// [`retry_after_millis`](cutout::CompactRejected::retry_after_millis)) and skip the
    /// `Duration` both ways, as the built-in error modes do.
    #[inline]
    fn rejected_compact(&self, rejection: cutout::CompactRejected) -> Result<Res, Self::Error> {
        self.rejected(rejection.to_rejected())
    }

    /// The service's error for an error of the inner service.
    fn inner_error(&self, error: E) -> Self::Error;
}

/// The default mode: a rejection is an [`error::Rejected`](Rejected) in a [`BoxError`]
/// (zero-sized: no allocation), and the inner service's errors are boxed too.
///
/// ```
/// use tower_cutout::{error::{BoxError, Rejected}, reject::{Reject, RejectWithError}};
///
/// let out: Result<(), BoxError> =
///     Reject::<(), std::io::Error>::rejected(&RejectWithError, cutout::Rejected::ForcedOpen);
/// assert!(out.unwrap_err().is::<Rejected>());
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RejectWithError;

impl<Res, E> Reject<Res, E> for RejectWithError
where
    E: Into<BoxError>,
{
    type Error = BoxError;

    #[inline]
    fn rejected(&self, rejection: cutout::Rejected) -> Result<Res, BoxError> {
        Err(Rejected::boxed(rejection))
    }

    #[inline]
    fn rejected_compact(&self, rejection: cutout::CompactRejected) -> Result<Res, BoxError> {
        Err(Rejected::boxed_compact(rejection, false))
    }

    #[inline]
    fn inner_error(&self, error: E) -> BoxError {
        error.into()
    }
}

/// A rejection is a [`cutout::CallError::Rejected`] and an inner error a
/// [`cutout::CallError::Inner`]: a typed error, matched rather than downcast, that allocates
/// nothing (as the default mode's zero-sized boxed error does not either); pick this mode
/// where the service's error type may be the inner error's own (it implements
/// `std::error::Error` when the inner error does), or to keep the rejection as a value
/// that can be moved and stored.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), cutout::ConfigError> {
/// use std::time::Duration;
/// use tower::{Service, ServiceBuilder, ServiceExt};
/// use tower_cutout::{CircuitBreakerLayer, reject::RejectWithCallError};
///
/// let breaker = cutout::CircuitBreaker::builder()
///     .failure_threshold(1)
///     .open_duration(Duration::from_secs(30))
///     .build()?
///     .leak();
/// let mut svc = ServiceBuilder::new()
///     .layer(CircuitBreakerLayer::new(breaker).reject_with(RejectWithCallError))
///     .service_fn(|_: ()| async { Err::<(), _>(std::io::Error::other("down")) });
///
/// let err = svc.ready().await.unwrap().call(()).await.unwrap_err();
/// assert!(matches!(err, cutout::CallError::Inner(_)));
/// match svc.ready().await.unwrap().call(()).await.unwrap_err() {
///     cutout::CallError::Rejected(rejected) => {
///         assert!(rejected.retry_after().unwrap() <= Duration::from_secs(30));
///     }
///     other => panic!("not rejected: {other}"),
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RejectWithCallError;

impl<Res, E> Reject<Res, E> for RejectWithCallError {
    type Error = cutout::CallError<E>;

    #[inline]
    fn rejected(&self, rejection: cutout::Rejected) -> Result<Res, cutout::CallError<E>> {
        Err(cutout::CallError::Rejected(rejection))
    }

    #[inline]
    fn inner_error(&self, error: E) -> cutout::CallError<E> {
        cutout::CallError::Inner(error)
    }
}
