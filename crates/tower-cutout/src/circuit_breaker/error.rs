//! Errors of the [`CircuitBreaker`](crate::CircuitBreaker) service.

use std::error::Error;
use std::fmt;
use std::time::Duration;

use crate::tagged::{self, Code, Slot};

/// A boxed error: what the service returns in the default mode (a rejection or the inner
/// service's error), as tower's own middleware does.
pub type BoxError = Box<dyn Error + Send + Sync>;

/// The circuit breaker refused the request: the inner service was not called.
///
/// The default mode returns it boxed in a [`BoxError`]; find it with `err.is::<Rejected>()`
/// or `err.downcast_ref::<Rejected>()`, and read [`reason`](Self::reason) and
/// [`retry_after`](Self::retry_after) through the box or a reference to it.
///
/// # Zero-sized: read it where it is
///
/// A rejection allocates nothing: on 64-bit targets `Rejected` is zero-sized, and the
/// rejection (its kind and `retry_after`, in whole milliseconds rounded up) is the address
/// its `Box` points at, which a `Box` of a zero-sized type may be (no memory is behind it,
/// and dropping it frees nothing). So read it *through the box or a reference to the boxed
/// value*: a `Rejected` moved out of its box (`*boxed`), or an error moved into another
/// allocation (tonic's `Status::from_error` moves its argument into an `Arc`), is at
/// another address and reads as a rejection of unknown reason: [`reason`](Self::reason)
/// and [`retry_after`](Self::retry_after) are `None`, and it displays as "circuit breaker
/// rejected the call". It never reads as a wrong rejection. Make one with
/// [`Rejected::boxed`]. `retry_after` saturates at `2^49 - 1` ms (about 17 800 years).
/// On other targets the box allocates and holds the rejection.
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
/// assert_eq!(rejected.reason(), Some(cutout::Rejected::ForcedOpen));
/// assert_eq!(rejected.retry_after(), None);
/// # Ok(())
/// # }
/// ```
pub struct Rejected {
    slot: Slot,
}

/// The kinds a [`Rejected`] codes (`Code::kind`).
const OPEN: u8 = 0;
const HALF_OPEN_FULL: u8 = 1;
const FORCED_OPEN: u8 = 2;
/// A variant of the `#[non_exhaustive]` [`cutout::Rejected`] this crate does not know.
const OTHER: u8 = 3;

impl Rejected {
    /// `reason`, boxed: no allocation on 64-bit targets (see [above](Self)).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_cutout::error::{BoxError, Rejected};
    ///
    /// let open = cutout::Rejected::Open { retry_after: Duration::from_millis(1_500) };
    /// let err: BoxError = Rejected::boxed(open);
    /// let rejected = err.downcast_ref::<Rejected>().unwrap();
    /// assert_eq!(rejected.reason(), Some(open));
    /// assert_eq!(rejected.retry_after(), Some(Duration::from_millis(1_500)));
    /// assert_eq!(err.to_string(), "circuit breaker is open; retry after 1.5s");
    /// ```
    #[inline]
    pub fn boxed(reason: cutout::Rejected) -> Box<Self> {
        Self::coded(reason, false)
    }

    /// A rejection whose source is its `tonic::Status` (see [`crate::grpc::UnavailableError`]).
    #[cfg(feature = "grpc")]
    pub(crate) fn boxed_with_status(reason: cutout::Rejected) -> Box<Self> {
        Self::coded(reason, true)
    }

    #[inline]
    fn coded(reason: cutout::Rejected, with_status: bool) -> Box<Self> {
        let (kind, payload) = match reason {
            cutout::Rejected::Open { retry_after } => (OPEN, millis_rounded_up(retry_after)),
            cutout::Rejected::HalfOpenFull { retry_after } => {
                (HALF_OPEN_FULL, millis_rounded_up(retry_after))
            }
            cutout::Rejected::ForcedOpen => (FORCED_OPEN, 0),
            _ => (OTHER, 0),
        };
        tagged::boxed(Code::new(kind, with_status, payload), |slot| Self { slot })
    }

    /// [`boxed`](Self::boxed) (`with_status`: [`boxed_with_status`](Self::boxed_with_status))
    /// from the breaker's one-word refusal: its kind and milliseconds as they are, with no
    /// `Duration` between.
    #[inline]
    pub(crate) fn boxed_compact(
        rejection: cutout::CompactRejected,
        with_status: bool,
    ) -> Box<Self> {
        let (kind, payload) = match (rejection.state(), rejection.retry_after_millis()) {
            (cutout::State::Open, Some(ms)) => (OPEN, ms),
            (cutout::State::HalfOpen, Some(ms)) => (HALF_OPEN_FULL, ms),
            (cutout::State::ForcedOpen, _) => (FORCED_OPEN, 0),
            _ => (OTHER, 0),
        };
        tagged::boxed(Code::new(kind, with_status, payload), |slot| Self { slot })
    }

    #[inline]
    fn code(&self) -> Option<Code> {
        tagged::read(&self.slot)
    }

    /// The breaker's reason, with its state; `retry_after` in whole milliseconds, rounded
    /// up. `None` when read away from its box (see [above](Self)).
    #[inline]
    pub fn reason(&self) -> Option<cutout::Rejected> {
        let code = self.code()?;
        let retry_after = Duration::from_millis(code.payload);
        match code.kind {
            OPEN => Some(cutout::Rejected::Open { retry_after }),
            HALF_OPEN_FULL => Some(cutout::Rejected::HalfOpenFull { retry_after }),
            FORCED_OPEN => Some(cutout::Rejected::ForcedOpen),
            _ => None,
        }
    }

    /// How long until the breaker may admit a call: the rest of the open time, or of a full
    /// half-open period's probe lease, in whole milliseconds rounded up. `None` when the
    /// circuit was forced open, or when read away from its box (see [above](Self)).
    #[inline]
    pub fn retry_after(&self) -> Option<Duration> {
        self.reason().and_then(|r| r.retry_after())
    }

    /// Whether the source is the rejection's `tonic::Status`.
    #[cfg(feature = "grpc")]
    fn has_status(&self) -> bool {
        self.code().is_some_and(|c| c.flag)
    }
}

/// `d` in whole milliseconds, rounded up (a client told to wait 0 ms while 0.3 ms remain
/// would be rejected again), saturating.
#[inline]
fn millis_rounded_up(d: Duration) -> u64 {
    let ms = d.as_millis() + u128::from(d.subsec_nanos() % 1_000_000 != 0);
    u64::try_from(ms).unwrap_or(u64::MAX)
}

impl From<cutout::Rejected> for Box<Rejected> {
    fn from(reason: cutout::Rejected) -> Self {
        Rejected::boxed(reason)
    }
}

impl fmt::Debug for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rejected")
            .field("reason", &self.reason())
            .finish()
    }
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.reason() {
            Some(reason) => fmt::Display::fmt(&reason, f),
            None => f.write_str("circuit breaker rejected the call"),
        }
    }
}

impl Error for Rejected {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        #[cfg(feature = "grpc")]
        if self.has_status() {
            return Some(crate::grpc::static_status(self.reason().as_ref()));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOURS: Duration = Duration::from_secs(5 * 3600);

    fn every_rejection() -> Vec<cutout::Rejected> {
        let mut all = vec![cutout::Rejected::ForcedOpen];
        for retry_after in [
            Duration::ZERO,
            Duration::from_millis(1),
            Duration::from_millis(999),
            HOURS,
        ] {
            all.push(cutout::Rejected::Open { retry_after });
            all.push(cutout::Rejected::HalfOpenFull { retry_after });
        }
        all
    }

    #[test]
    fn every_rejection_round_trips_through_its_box() {
        for reason in every_rejection() {
            let boxed = Rejected::boxed(reason);
            assert_eq!(boxed.reason(), Some(reason));
            assert_eq!(boxed.retry_after(), reason.retry_after());
            assert_eq!(boxed.to_string(), reason.to_string());
            assert_eq!(
                format!("{boxed:?}"),
                format!("Rejected {{ reason: Some({reason:?}) }}")
            );
            assert!(boxed.source().is_none());
            let via_from: Box<Rejected> = reason.into();
            assert_eq!(via_from.reason(), Some(reason));
        }
    }

    #[test]
    fn it_downcasts_through_a_box_error() {
        for reason in every_rejection() {
            let err: BoxError = Rejected::boxed(reason);
            assert!(err.is::<Rejected>());
            assert_eq!(
                err.downcast_ref::<Rejected>().unwrap().reason(),
                Some(reason)
            );
            assert_eq!(err.to_string(), reason.to_string());
            let back: Box<Rejected> = err.downcast().unwrap();
            assert_eq!(back.reason(), Some(reason));
            // Behind a reference to the box, as a wrapper holding it would lend it.
            let wrapped: &(dyn Error + 'static) = &*back;
            assert_eq!(
                wrapped.downcast_ref::<Rejected>().unwrap().retry_after(),
                reason.retry_after()
            );
        }
    }

    #[test]
    fn retry_after_is_whole_milliseconds_rounded_up_and_saturates() {
        let open =
            |retry_after| Rejected::boxed(cutout::Rejected::Open { retry_after }).retry_after();
        assert_eq!(
            open(Duration::from_nanos(1)),
            Some(Duration::from_millis(1))
        );
        assert_eq!(
            open(Duration::from_micros(1_500)),
            Some(Duration::from_millis(2))
        );
        assert_eq!(
            open(Duration::from_millis(1_500)),
            Some(Duration::from_millis(1_500))
        );
        let max = Duration::from_millis(crate::tagged::MAX_PAYLOAD);
        assert_eq!(open(Duration::MAX), Some(max));
        assert_eq!(open(Duration::from_secs(u64::MAX / 1000)), Some(max));
        assert!(max > Duration::from_secs(17_000 * 365 * 24 * 3600));
    }

    #[test]
    #[cfg(target_pointer_width = "64")]
    fn a_rejection_moved_out_of_its_box_reads_as_unknown() {
        for reason in every_rejection() {
            let moved: Rejected = *Rejected::boxed(reason);
            assert_eq!(moved.reason(), None);
            assert_eq!(moved.retry_after(), None);
            assert_eq!(moved.to_string(), "circuit breaker rejected the call");
            assert_eq!(format!("{moved:?}"), "Rejected { reason: None }");
            // Into another allocation, as `Arc::from(Box<dyn Error>)` does.
            let err: BoxError = Rejected::boxed(reason);
            let shared: std::sync::Arc<dyn Error + Send + Sync> = err.into();
            assert_eq!(shared.downcast_ref::<Rejected>().unwrap().reason(), None);
        }
    }

    #[test]
    fn the_compact_form_codes_what_the_expanded_form_codes() {
        for reason in every_rejection() {
            let compact = cutout::CompactRejected::from(reason);
            for with_status in [false, true] {
                let direct = Rejected::boxed_compact(compact, with_status);
                let expanded = Rejected::coded(compact.to_rejected(), with_status);
                assert_eq!(direct.code(), expanded.code(), "{reason:?}");
                assert_eq!(direct.reason(), Some(reason), "{reason:?}");
            }
        }
    }

    #[test]
    #[cfg(target_pointer_width = "64")]
    fn it_is_zero_sized() {
        assert_eq!(size_of::<Rejected>(), 0);
        assert_eq!(size_of::<Box<Rejected>>(), size_of::<usize>());
    }

    #[test]
    #[cfg(feature = "grpc")]
    fn the_grpc_form_has_a_static_status_as_its_source() {
        for reason in every_rejection() {
            let boxed = Rejected::boxed_with_status(reason);
            assert_eq!(boxed.reason(), Some(reason));
            let status = boxed
                .source()
                .and_then(|s| s.downcast_ref::<tonic::Status>())
                .unwrap();
            assert_eq!(status.code(), tonic::Code::Unavailable);
            let again = Rejected::boxed_with_status(reason);
            let same = again
                .source()
                .unwrap()
                .downcast_ref::<tonic::Status>()
                .unwrap();
            assert!(std::ptr::eq(status, same), "one status per kind and second");
        }
        // The time in whole seconds, rounded up: 1.2 s and 2 s share a status; past an hour,
        // the kind's status without a time.
        let status_of = |reason| {
            let boxed = Rejected::boxed_with_status(reason);
            let status: *const tonic::Status = boxed
                .source()
                .and_then(|s| s.downcast_ref::<tonic::Status>())
                .unwrap();
            // Compared as addresses: the statuses are statics, they outlive the box.
            status
        };
        let open = |ms| cutout::Rejected::Open {
            retry_after: Duration::from_millis(ms),
        };
        assert_eq!(status_of(open(1_200)), status_of(open(2_000)));
        assert_ne!(status_of(open(2_000)), status_of(open(2_001)));
        let late = crate::grpc::static_status(Some(&open(2_000)));
        assert_eq!(late.message(), "circuit breaker is open; retry after 2s");
        assert_eq!(
            late.metadata().get("grpc-retry-pushback-ms").unwrap(),
            "2000"
        );
        let beyond = crate::grpc::static_status(Some(&open(3_600_001)));
        assert_eq!(beyond.message(), "circuit breaker is open");
        assert!(beyond.metadata().get("grpc-retry-pushback-ms").is_none());
        assert_eq!(
            status_of(open(3_600_001)),
            status_of(open(u64::MAX)),
            "one status past an hour"
        );
    }
}
