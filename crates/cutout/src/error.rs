//! Errors: a rejection by the breaker, and a call's error (rejected or inner).

use std::error::Error;
use std::fmt;
use std::num::NonZeroU64;
use std::time::Duration;

use crate::state::{MAX_TICK, State, ticks_to_duration};

/// The breaker refused a call.
///
/// ```
/// use cutout::{CircuitBreaker, Outcome, Rejected};
/// use std::time::Duration;
///
/// let breaker = CircuitBreaker::builder()
///     .failure_threshold(1)
///     .open_duration(Duration::from_secs(10))
///     .build()?;
/// breaker.try_acquire()?.record(Outcome::Failure);
/// match breaker.try_acquire() {
///     Err(Rejected::Open { retry_after }) => assert!(retry_after <= Duration::from_secs(10)),
///     other => panic!("expected open, got {other:?}"),
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Rejected {
    /// The circuit is open (the seed article's `ErrCircuitBreakerOpen`).
    Open {
        /// Time left until the open time ends.
        retry_after: Duration,
    },
    /// The circuit is half-open and every probe slot is taken (the seed article's
    /// `ErrTooManyRequests`).
    HalfOpenFull {
        /// Time left, at the latest, until a slot frees: the end of the probe lease.
        retry_after: Duration,
    },
    /// The circuit was forced open and stays open until reset.
    ForcedOpen,
}

impl Rejected {
    /// How long to wait before trying again, where the breaker knows (`None` when forced
    /// open).
    pub fn retry_after(&self) -> Option<Duration> {
        match *self {
            Rejected::Open { retry_after } | Rejected::HalfOpenFull { retry_after } => {
                Some(retry_after)
            }
            Rejected::ForcedOpen => None,
        }
    }

    /// A lowercase name, stable for use as a metric label: `open`, `half_open_full`,
    /// `forced_open`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Rejected::Open { .. } => "open",
            Rejected::HalfOpenFull { .. } => "half_open_full",
            Rejected::ForcedOpen => "forced_open",
        }
    }
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejected::Open { retry_after } => {
                write!(f, "circuit breaker is open; retry after {retry_after:?}")
            }
            Rejected::HalfOpenFull { retry_after } => write!(
                f,
                "circuit breaker is half-open and its probe slots are taken; retry after \
                 {retry_after:?}"
            ),
            Rejected::ForcedOpen => f.write_str("circuit breaker is forced open"),
        }
    }
}

impl Error for Rejected {}

/// A [`Rejected`] packed in one word, for code that stores a rejection and hands it on
/// before anyone reads it: a tower service that reserves the rejection in `poll_ready`
/// and returns it from its response future, say.
///
/// [`Rejected`] is 24 bytes, and its `Duration` has a 32-bit field: built in one place
/// and copied as whole words through a service and a future, it stalls the processor's
/// store forwarding (measured at ~8 ns a rejection, more than the breaker's whole
/// decision). This is 8 bytes, copied whole, and `Option<CompactRejected>` is too. Get
/// one from [`CircuitBreaker::try_acquire_compact`](crate::CircuitBreaker::try_acquire_compact)
/// and expand it with [`to_rejected`](Self::to_rejected) (or `Rejected::from`) where the
/// rejection is read.
///
/// `retry_after` is kept in whole milliseconds (the breaker's tick) up to about 34 years
/// (2^40 ms); [`From<Rejected>`](#impl-From%3CRejected%3E-for-CompactRejected) rounds a
/// finer `Duration` up to the next millisecond and saturates a longer one there.
///
/// ```
/// use std::time::Duration;
/// use cutout::{CircuitBreaker, CompactRejected, Outcome, Rejected};
///
/// let breaker = CircuitBreaker::builder()
///     .failure_threshold(1)
///     .open_duration(Duration::from_secs(10))
///     .build()?;
/// breaker.try_acquire()?.record(Outcome::Failure);
/// let compact: CompactRejected = breaker.try_acquire_compact().unwrap_err();
/// assert_eq!(std::mem::size_of::<Option<CompactRejected>>(), 8);
/// assert!(compact.retry_after().unwrap() <= Duration::from_secs(10));
/// assert!(matches!(compact.to_rejected(), Rejected::Open { .. }));
/// assert_eq!(CompactRejected::from(compact.to_rejected()), compact);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CompactRejected(NonZeroU64);

impl CompactRejected {
    /// Set in every value: the word is never zero (so `Option` needs no tag).
    const MARK: u64 = 1 << 63;
    const OPEN: u64 = 0;
    const HALF_OPEN_FULL: u64 = 1;
    const FORCED: u64 = 2;
    pub(crate) const FORCED_OPEN: CompactRejected = CompactRejected::pack(Self::FORCED, 0);

    /// The kind in the low 2 bits, the ticks (at most `MAX_TICK`, 40 bits) above them.
    #[inline]
    const fn pack(kind: u64, ticks: u64) -> CompactRejected {
        let ticks = if ticks < MAX_TICK { ticks } else { MAX_TICK };
        match NonZeroU64::new(Self::MARK | (ticks << 2) | kind) {
            Some(word) => CompactRejected(word),
            // Never: `MARK` is set.
            None => CompactRejected(NonZeroU64::MAX),
        }
    }

    /// Open, `left` ticks to go.
    #[inline]
    pub(crate) const fn open(left: u64) -> CompactRejected {
        Self::pack(Self::OPEN, left)
    }

    /// Half-open with every probe slot taken, `left` ticks to the end of the lease.
    #[inline]
    pub(crate) const fn half_open_full(left: u64) -> CompactRejected {
        Self::pack(Self::HALF_OPEN_FULL, left)
    }

    /// The word an out-of-line admission returns: a generation (below 2^16, `MARK` clear)
    /// or this refusal. One register, where a `Result` would go through memory.
    #[inline]
    pub(crate) const fn admission(self) -> u64 {
        self.0.get()
    }

    /// The refusal in an admission word (see [`admission`](Self::admission)), or `None`
    /// for a generation.
    #[inline]
    pub(crate) const fn from_admission(word: u64) -> Option<CompactRejected> {
        if word & Self::MARK == 0 {
            return None;
        }
        match NonZeroU64::new(word) {
            Some(word) => Some(CompactRejected(word)),
            None => None,
        }
    }

    #[inline]
    fn kind(self) -> u64 {
        self.0.get() & 3
    }

    #[inline]
    fn ticks(self) -> u64 {
        (self.0.get() & !Self::MARK) >> 2
    }

    /// The rejection, expanded.
    #[inline]
    pub fn to_rejected(self) -> Rejected {
        let retry_after = ticks_to_duration(self.ticks());
        match self.kind() {
            Self::OPEN => Rejected::Open { retry_after },
            Self::HALF_OPEN_FULL => Rejected::HalfOpenFull { retry_after },
            _ => Rejected::ForcedOpen,
        }
    }

    /// See [`Rejected::retry_after`].
    #[inline]
    pub fn retry_after(self) -> Option<Duration> {
        match self.kind() {
            Self::OPEN | Self::HALF_OPEN_FULL => Some(ticks_to_duration(self.ticks())),
            _ => None,
        }
    }

    /// [`retry_after`](Self::retry_after) in whole milliseconds, as kept (no `Duration`):
    /// for middleware that writes it out as a number.
    ///
    /// ```
    /// use std::time::Duration;
    /// use cutout::{CompactRejected, Rejected};
    ///
    /// let open = CompactRejected::from(Rejected::Open { retry_after: Duration::from_micros(1_500) });
    /// assert_eq!(open.retry_after_millis(), Some(2)); // rounded up when packed
    /// assert_eq!(CompactRejected::from(Rejected::ForcedOpen).retry_after_millis(), None);
    /// ```
    #[inline]
    pub fn retry_after_millis(self) -> Option<u64> {
        match self.kind() {
            Self::OPEN | Self::HALF_OPEN_FULL => Some(self.ticks()),
            _ => None,
        }
    }

    /// The state that refused: [`State::Open`], [`State::HalfOpen`] (every probe slot
    /// taken) or [`State::ForcedOpen`]; the variant [`to_rejected`](Self::to_rejected)
    /// gives, without building it.
    ///
    /// ```
    /// use std::time::Duration;
    /// use cutout::{CompactRejected, Rejected, State};
    ///
    /// let full = Rejected::HalfOpenFull { retry_after: Duration::from_secs(1) };
    /// assert_eq!(CompactRejected::from(full).state(), State::HalfOpen);
    /// assert_eq!(CompactRejected::from(Rejected::ForcedOpen).state(), State::ForcedOpen);
    /// ```
    #[inline]
    pub fn state(self) -> State {
        match self.kind() {
            Self::OPEN => State::Open,
            Self::HALF_OPEN_FULL => State::HalfOpen,
            _ => State::ForcedOpen,
        }
    }
}

impl From<CompactRejected> for Rejected {
    #[inline]
    fn from(compact: CompactRejected) -> Rejected {
        compact.to_rejected()
    }
}

impl From<Rejected> for CompactRejected {
    /// Packs `rejected`; `retry_after` is rounded up to whole milliseconds and saturates
    /// at 2^40 - 1 ms (about 34 years).
    fn from(rejected: Rejected) -> CompactRejected {
        fn ticks(d: Duration) -> u64 {
            u64::try_from(d.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX)
        }
        match rejected {
            Rejected::Open { retry_after } => Self::open(ticks(retry_after)),
            Rejected::HalfOpenFull { retry_after } => Self::half_open_full(ticks(retry_after)),
            Rejected::ForcedOpen => Self::FORCED_OPEN,
        }
    }
}

impl fmt::Debug for CompactRejected {
    /// As the [`Rejected`] it packs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.to_rejected(), f)
    }
}

impl fmt::Display for CompactRejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.to_rejected(), f)
    }
}

/// The error of a call made through the breaker: rejected, or the call's own error.
///
/// ```
/// use cutout::{CallError, CircuitBreaker};
///
/// let breaker = CircuitBreaker::builder().build()?;
/// let result: Result<(), CallError<&str>> = breaker.call(|| Err("boom"));
/// assert!(matches!(result, Err(CallError::Inner("boom"))));
/// # Ok::<(), cutout::ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError<E> {
    /// The breaker refused the call; it did not run.
    Rejected(Rejected),
    /// The call ran and returned this error.
    Inner(E),
}

impl<E> CallError<E> {
    /// The rejection, if the breaker refused the call.
    pub fn rejected(&self) -> Option<&Rejected> {
        match self {
            CallError::Rejected(r) => Some(r),
            CallError::Inner(_) => None,
        }
    }

    /// The call's own error, if it ran.
    pub fn into_inner(self) -> Option<E> {
        match self {
            CallError::Rejected(_) => None,
            CallError::Inner(e) => Some(e),
        }
    }
}

impl<E> From<Rejected> for CallError<E> {
    fn from(r: Rejected) -> Self {
        CallError::Rejected(r)
    }
}

impl<E: fmt::Display> fmt::Display for CallError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Rejected(r) => r.fmt(f),
            CallError::Inner(e) => e.fmt(f),
        }
    }
}

impl<E: Error + 'static> Error for CallError<E> {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            CallError::Rejected(r) => Some(r),
            CallError::Inner(e) => Some(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_and_millis_read_what_to_rejected_expands() {
        for refusal in [
            CompactRejected::FORCED_OPEN,
            CompactRejected::open(0),
            CompactRejected::open(1_500),
            CompactRejected::open(MAX_TICK),
            CompactRejected::half_open_full(7),
        ] {
            let expanded = refusal.to_rejected();
            let state = match expanded {
                Rejected::Open { .. } => State::Open,
                Rejected::HalfOpenFull { .. } => State::HalfOpen,
                Rejected::ForcedOpen => State::ForcedOpen,
            };
            assert_eq!(refusal.state(), state, "{refusal:?}");
            assert_eq!(
                refusal.retry_after_millis().map(Duration::from_millis),
                expanded.retry_after(),
                "{refusal:?}"
            );
        }
    }

    #[test]
    fn an_admission_word_is_a_generation_or_a_refusal_never_both() {
        for generation in [0u16, 1, 1023, u16::MAX] {
            assert_eq!(CompactRejected::from_admission(u64::from(generation)), None);
        }
        for refusal in [
            CompactRejected::FORCED_OPEN,
            CompactRejected::open(0),
            CompactRejected::open(MAX_TICK),
            CompactRejected::half_open_full(1_500),
        ] {
            assert_eq!(
                CompactRejected::from_admission(refusal.admission()),
                Some(refusal)
            );
        }
    }

    #[test]
    fn a_compact_rejection_is_one_word_and_expands_to_what_it_packed() {
        assert_eq!(std::mem::size_of::<CompactRejected>(), 8);
        assert_eq!(std::mem::size_of::<Option<CompactRejected>>(), 8);
        let cases = [
            Rejected::Open {
                retry_after: Duration::ZERO,
            },
            Rejected::Open {
                retry_after: Duration::from_millis(1_500),
            },
            Rejected::HalfOpenFull {
                retry_after: Duration::from_millis(1),
            },
            Rejected::HalfOpenFull {
                retry_after: Duration::from_secs(86_400),
            },
            Rejected::ForcedOpen,
        ];
        for rejected in cases {
            let compact = CompactRejected::from(rejected);
            assert_eq!(compact.to_rejected(), rejected);
            assert_eq!(Rejected::from(compact), rejected);
            assert_eq!(compact.retry_after(), rejected.retry_after());
            assert_eq!(compact.to_string(), rejected.to_string());
            assert_eq!(format!("{compact:?}"), format!("{rejected:?}"));
        }
        assert_ne!(
            CompactRejected::from(cases[0]),
            CompactRejected::half_open_full(0)
        );
    }

    #[test]
    fn a_compact_rejection_rounds_up_to_the_millisecond_and_saturates() {
        let open = |retry_after| CompactRejected::from(Rejected::Open { retry_after });
        assert_eq!(
            open(Duration::from_nanos(1)).retry_after(),
            Some(Duration::from_millis(1))
        );
        assert_eq!(
            open(Duration::from_micros(1_500)).retry_after(),
            Some(Duration::from_millis(2))
        );
        let longest = ticks_to_duration(MAX_TICK);
        assert_eq!(open(Duration::MAX).retry_after(), Some(longest));
        assert_eq!(
            open(longest + Duration::from_millis(1)).retry_after(),
            Some(longest)
        );
        assert_eq!(
            CompactRejected::open(u64::MAX),
            CompactRejected::open(MAX_TICK)
        );
        assert_eq!(CompactRejected::FORCED_OPEN.retry_after(), None);
    }
}
