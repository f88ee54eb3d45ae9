//! [`KeyedReject`]: what a request whose key got no breaker becomes.

use cutout_keyed::KeyedRejected;

use super::error::NoBreaker;
use crate::error::BoxError;
use crate::reject::{Reject, RejectWithError};

/// A [`Reject`] mode that also answers requests whose key could not get a breaker (the
/// registry is full of breakers it may not evict: [`KeyedRejected::Full`]).
///
/// A key's breaker refusing a request goes through [`Reject::rejected`], as in the unkeyed
/// layer; only the registry's own refusal comes here. Every mode of [`crate::reject`]
/// implements it:
///
/// | mode | a key's breaker refuses | the key gets no breaker |
/// |---|---|---|
/// | [`RejectWithError`] (default) | `Err(Box<error::Rejected>)` | `Err(Box<`[`NoBreaker`]`>)` |
/// | `http::ServiceUnavailable` | `503` with `Retry-After` | `503` without `Retry-After`, the [`KeyedRejected`] in its extensions |
/// | `grpc::UnavailableResponse` | `grpc-status: 14` | `grpc-status: 14`, no pushback |
/// | `grpc::UnavailableError` | an error tonic's client reports as `Status::unavailable` | a [`NoBreaker`] whose source is a `Status::unavailable` |
///
/// None of them allocates for a refused key beyond what a response's header map and
/// extensions need (see [`crate::reject`]). A key whose breaker could not be built
/// ([`KeyedRejected::Config`], which the registry's checked template rules out) is the
/// [`KeyedRejected`] itself in the error modes (boxed, one allocation: a zero-sized
/// [`NoBreaker`] cannot carry its `ConfigError`).
///
/// A custom mode implements this one method too:
///
/// ```
/// use cutout_keyed::KeyedRejected;
/// use tower_cutout::keyed::KeyedReject;
/// use tower_cutout::reject::Reject;
///
/// /// Rejections become a status code.
/// #[derive(Clone)]
/// struct AsStatus;
///
/// impl<E> Reject<u16, E> for AsStatus {
///     type Error = E;
///     fn rejected(&self, _: cutout::Rejected) -> Result<u16, E> { Ok(503) }
///     fn inner_error(&self, error: E) -> E { error }
/// }
///
/// impl<E> KeyedReject<u16, E> for AsStatus {
///     fn no_breaker(&self, _: KeyedRejected) -> Result<u16, E> { Ok(503) }
/// }
/// ```
pub trait KeyedReject<Res, E>: Reject<Res, E> {
    /// The output for a request whose key could not get a breaker.
    fn no_breaker(&self, rejection: KeyedRejected) -> Result<Res, Self::Error>;
}

impl<Res, E> KeyedReject<Res, E> for RejectWithError
where
    E: Into<BoxError>,
{
    fn no_breaker(&self, rejection: KeyedRejected) -> Result<Res, BoxError> {
        Err(match rejection {
            KeyedRejected::Full { capacity } => NoBreaker::boxed(capacity),
            other => Box::new(other),
        })
    }
}

#[cfg(feature = "http")]
impl<B: Default, E> KeyedReject<http::Response<B>, E> for crate::http::ServiceUnavailable {
    /// A `503 Service Unavailable` with no `Retry-After` (no one knows when a breaker will
    /// free) and the [`KeyedRejected`] in its extensions.
    fn no_breaker(&self, rejection: KeyedRejected) -> Result<http::Response<B>, E> {
        let mut response = http::Response::new(B::default());
        *response.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
        response.extensions_mut().insert(rejection);
        Ok(response)
    }
}

#[cfg(feature = "grpc")]
impl<B: Default, E> KeyedReject<http::Response<B>, E> for crate::grpc::UnavailableResponse {
    /// A trailers-only `UNAVAILABLE` response (no pushback; `grpc-message` "no breaker for
    /// this key: the registry is full"), the [`KeyedRejected`] in its extensions.
    fn no_breaker(&self, rejection: KeyedRejected) -> Result<http::Response<B>, E> {
        let mut response =
            crate::grpc::unavailable_response(crate::grpc::NO_BREAKER_MESSAGE.1, None);
        response.extensions_mut().insert(rejection);
        Ok(response)
    }
}

#[cfg(feature = "grpc")]
impl<Res, E: Into<BoxError>> KeyedReject<Res, E> for crate::grpc::UnavailableError {
    /// A [`NoBreaker`] whose source is a static `Status::unavailable`.
    fn no_breaker(&self, rejection: KeyedRejected) -> Result<Res, BoxError> {
        Err(match rejection {
            KeyedRejected::Full { capacity } => NoBreaker::boxed_with_status(capacity),
            other => Box::new(tonic::Status::unavailable(other.to_string())),
        })
    }
}
