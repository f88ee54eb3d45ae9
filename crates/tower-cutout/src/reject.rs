//! What a rejection becomes: an error (the default) or a response.
//!
//! | mode | service error | a rejection is |
//! |---|---|---|
//! | [`RejectWithError`] (default) | [`BoxError`] | `Err(Box<error::Rejected>)` |
//! | `http::ServiceUnavailable` (feature `http`) | the inner error | `503` with `Retry-After` |
//! | `grpc::UnavailableResponse` (feature `grpc`) | the inner error | a gRPC response, `grpc-status: 14` |
//! | `grpc::UnavailableError` (feature `grpc`) | [`BoxError`] | an error tonic reads as `Status::unavailable` |

use crate::error::{BoxError, Rejected};

/// Turns a rejection into the service's output, and the inner service's errors into the
/// service's error type.
pub trait Reject<Res, E> {
    /// The service's error type.
    type Error;

    /// The output for a rejected request.
    fn rejected(&self, rejection: cutout::Rejected) -> Result<Res, Self::Error>;

    /// The service's error for an error of the inner service.
    fn inner_error(&self, error: E) -> Self::Error;
}

/// The default mode: a rejection is an [`error::Rejected`](Rejected) in a [`BoxError`], and
/// the inner service's errors are boxed too.
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
        Err(Box::new(Rejected::new(rejection)))
    }

    #[inline]
    fn inner_error(&self, error: E) -> BoxError {
        error.into()
    }
}
