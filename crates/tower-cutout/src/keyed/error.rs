//! Errors of the [`KeyedCircuitBreaker`](super::KeyedCircuitBreaker) service.
//!
//! A key's breaker refusing a request is the unkeyed layer's
//! [`error::Rejected`](crate::error::Rejected); a key that could not get a breaker at all
//! (the registry is full of breakers it may not evict) is a [`NoBreaker`].

use std::error::Error;
use std::fmt;

use cutout_keyed::KeyedRejected;

use crate::tagged::{self, Code, Slot};

/// The request's key could not get a breaker: the registry is full of breakers that are
/// open, half-open or in use (see [`KeyedRejected::Full`]). The inner service was not
/// called.
///
/// The default mode returns it boxed in a [`BoxError`](crate::error::BoxError); find it
/// with `err.is::<NoBreaker>()`. Like [`error::Rejected`](crate::error::Rejected) it is
/// zero-sized on 64-bit targets and allocates nothing: the registry's capacity is the
/// address its box points at, so read it through the box or a reference to it (moved out
/// of its box, it reads as a refusal of unknown reason: [`reason`](Self::reason) is
/// `None`).
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
///     Some(cutout_keyed::KeyedRejected::Full { capacity: 1 }),
/// );
/// # Ok(())
/// # }
/// ```
pub struct NoBreaker {
    slot: Slot,
}

/// The one kind a [`NoBreaker`] codes: [`KeyedRejected::Full`].
const FULL: u8 = 0;

impl NoBreaker {
    /// A refusal of a key because the registry holding `capacity` breakers is full, boxed:
    /// no allocation on 64-bit targets. A capacity above `2^49 - 1` reads as that.
    pub fn boxed(capacity: usize) -> Box<Self> {
        Self::coded(capacity, false)
    }

    /// A refusal whose source is a static `Status::unavailable`.
    #[cfg(feature = "grpc")]
    pub(crate) fn boxed_with_status(capacity: usize) -> Box<Self> {
        Self::coded(capacity, true)
    }

    fn coded(capacity: usize, with_status: bool) -> Box<Self> {
        let capacity = u64::try_from(capacity).unwrap_or(u64::MAX);
        tagged::boxed(Code::new(FULL, with_status, capacity), |slot| Self { slot })
    }

    /// Why the key got no breaker: [`KeyedRejected::Full`]. `None` when read away from its
    /// box.
    pub fn reason(&self) -> Option<KeyedRejected> {
        let code = tagged::read(&self.slot).filter(|c| c.kind == FULL)?;
        Some(KeyedRejected::Full {
            capacity: usize::try_from(code.payload).unwrap_or(usize::MAX),
        })
    }

    /// Whether the source is a static `tonic::Status`.
    #[cfg(feature = "grpc")]
    fn has_status(&self) -> bool {
        tagged::read(&self.slot).is_some_and(|c| c.flag)
    }
}

impl fmt::Debug for NoBreaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NoBreaker")
            .field("reason", &self.reason())
            .finish()
    }
}

impl fmt::Display for NoBreaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.reason() {
            Some(reason) => fmt::Display::fmt(&reason, f),
            None => f.write_str("no breaker for this key"),
        }
    }
}

impl Error for NoBreaker {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        #[cfg(feature = "grpc")]
        if self.has_status() {
            return Some(crate::grpc::no_breaker_status());
        }
        None
    }
}

#[cfg(feature = "grpc")]
impl From<Box<NoBreaker>> for tonic::Status {
    /// `Status::unavailable`, with the [`KeyedRejected`] as its source.
    fn from(no_breaker: Box<NoBreaker>) -> Self {
        match no_breaker.reason() {
            Some(reason) => {
                let mut status = tonic::Status::unavailable(reason.to_string());
                status.set_source(std::sync::Arc::new(reason));
                status
            }
            None => tonic::Status::unavailable("no breaker for this key"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_registry_round_trips_through_its_box() {
        for capacity in [0, 1, 1_000, usize::MAX >> 20] {
            let boxed = NoBreaker::boxed(capacity);
            let reason = KeyedRejected::Full { capacity };
            assert_eq!(boxed.reason(), Some(reason.clone()));
            assert_eq!(boxed.to_string(), reason.to_string());
            assert_eq!(
                format!("{boxed:?}"),
                format!("NoBreaker {{ reason: Some({reason:?}) }}")
            );
            let err: crate::error::BoxError = boxed;
            assert_eq!(
                err.downcast_ref::<NoBreaker>().unwrap().reason(),
                Some(reason)
            );
        }
        // A capacity past the code's payload reads as the largest it holds.
        #[cfg(target_pointer_width = "64")]
        assert_eq!(
            NoBreaker::boxed(usize::MAX).reason(),
            Some(KeyedRejected::Full {
                capacity: crate::tagged::MAX_PAYLOAD as usize
            })
        );
    }

    #[test]
    #[cfg(target_pointer_width = "64")]
    fn a_refusal_moved_out_of_its_box_reads_as_unknown() {
        let moved: NoBreaker = *NoBreaker::boxed(3);
        assert_eq!(moved.reason(), None);
        assert_eq!(moved.to_string(), "no breaker for this key");
        assert_eq!(size_of::<NoBreaker>(), 0);
    }
}
