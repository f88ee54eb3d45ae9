//! Time sources.
//!
//! A breaker reads time only on its slow paths (open, half-open, a trip); the closed path
//! never does, unless a rate policy needs the time of each call (a time window, or a
//! slow-call rate). Every constructor that reads time has a `*_with_clock` twin, and tests drive
//! the breaker with a [`ManualClock`] that moves only when told to.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

mod ticking;
pub use ticking::{TickingClock, TickingClockError};

/// A monotonic source of time.
///
/// [`now`](Clock::now) returns the time elapsed since an origin of the clock's choosing; the
/// breaker only ever subtracts two readings. Readings must never go backwards; a clock that
/// does anyway is treated as standing still (the breaker saturates, it never panics).
///
/// # Example
///
/// ```
/// use cutout::{Clock, ManualClock};
/// use std::time::Duration;
///
/// let clock = ManualClock::new();
/// let start = clock.now();
/// clock.advance(Duration::from_millis(250));
/// assert_eq!(clock.now() - start, Duration::from_millis(250));
/// ```
pub trait Clock: Send + Sync + 'static {
    /// The time elapsed since this clock's origin.
    fn now(&self) -> Duration;

    /// How a breaker may read this clock without a virtual call: the built-in clocks say
    /// what they are; every other clock is read through [`now`](Clock::now). Its type
    /// cannot be named outside this crate, so other clocks keep the default.
    #[doc(hidden)]
    fn source(&self) -> sealed::Source {
        sealed::Source::Dyn
    }
}

pub(crate) mod sealed {
    use std::sync::Arc;
    use std::sync::atomic::AtomicU64;

    /// What a clock is, for the breaker's direct reads (see `Clock::source`).
    #[derive(Debug)]
    pub enum Source {
        /// A [`MonotonicClock`](super::MonotonicClock): read its clock directly (on
        /// Linux, CLOCK_MONOTONIC from the vDSO; elsewhere `Instant::now()`).
        Monotonic,
        /// A [`CoarseMonotonicClock`](super::CoarseMonotonicClock): on Linux,
        /// CLOCK_MONOTONIC_COARSE from the vDSO; elsewhere as `Monotonic`.
        Coarse,
        /// A [`ManualClock`](super::ManualClock): load its nanoseconds.
        Manual(Arc<AtomicU64>),
        /// A [`TickingClock`](super::TickingClock): load the process-wide tick (the clock
        /// keeps the ticker running).
        Ticking(super::TickingClock),
        /// Any other clock: call [`Clock::now`](super::Clock::now).
        Dyn,
    }
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> Duration {
        (**self).now()
    }

    fn source(&self) -> sealed::Source {
        (**self).source()
    }
}

/// The default clock: [`std::time::Instant`], measured from the clock's creation.
///
/// A breaker on this clock reads the same monotonic clock directly (on Linux,
/// CLOCK_MONOTONIC from the vDSO, without `Instant`'s out-of-line arithmetic), from the
/// moment the breaker was built.
///
/// Its state machine's deadlines (the end of the open time, a probe's lease, a remote
/// hold) are read at the kernel's tick instead: on Linux, CLOCK_MONOTONIC_COARSE, the same
/// clock as of the last timer tick, which costs a few nanoseconds where a precise reading
/// costs 20-50 on a VM. That is what an open breaker reads on every rejection, and a
/// half-open one on every probe. An open time then ends up to one tick late (1-4 ms,
/// `CONFIG_HZ`). A time window's buckets and a slow call's duration keep the precise
/// reading. (Elsewhere than Linux, both are `Instant::now()`.)
#[derive(Debug, Clone, Copy)]
pub struct MonotonicClock {
    origin: Instant,
}

impl MonotonicClock {
    /// A clock whose origin is now.
    pub fn new() -> Self {
        Self {
            origin: Instant::now(),
        }
    }
}

impl Default for MonotonicClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for MonotonicClock {
    #[inline]
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    fn source(&self) -> sealed::Source {
        sealed::Source::Monotonic
    }
}

/// The kernel's coarse monotonic clock: on Linux, `CLOCK_MONOTONIC_COARSE` read through the
/// vDSO, which returns the time of the last timer tick without reading the hardware counter.
/// Elsewhere the same clock as [`MonotonicClock`].
///
/// A reading costs a few nanoseconds instead of the 20-50 of `Instant::now()` on a VM, but
/// moves in steps of one kernel tick (1-4 ms, `CONFIG_HZ`; `clock_getres` tells). The
/// default [`MonotonicClock`] already reads its deadlines (open time, probe leases) this
/// way; this clock reads everything coarsely, so a time window's buckets also shift by up
/// to a tick and a slow call's duration is measured in whole ticks: for breakers with a
/// time window on a hot closed path and no slow-call rate near the tick.
/// [`TickingClock`] goes one step further: one load of a tick that a background thread
/// advances.
///
/// ```
/// use cutout::{CircuitBreaker, CoarseMonotonicClock, Rejected};
/// use std::time::Duration;
///
/// let breaker = CircuitBreaker::builder()
///     .failure_threshold(1)
///     .open_duration(Duration::from_secs(30))
///     .build_with_clock(CoarseMonotonicClock::new())?;
/// let _ = breaker.call(|| Err::<(), _>("down"));
/// assert!(matches!(breaker.try_acquire(), Err(Rejected::Open { .. })));
/// # Ok::<(), cutout::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct CoarseMonotonicClock {
    origin: mono::Origin<true>,
}

impl CoarseMonotonicClock {
    /// A clock whose origin is now.
    pub fn new() -> Self {
        Self {
            origin: mono::Origin::now(),
        }
    }
}

impl Default for CoarseMonotonicClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for CoarseMonotonicClock {
    #[inline]
    fn now(&self) -> Duration {
        Duration::from_nanos(self.origin.elapsed_nanos())
    }

    fn source(&self) -> sealed::Source {
        sealed::Source::Coarse
    }
}

/// A clock for tests: it starts at zero and moves only when [`advance`](Self::advance) or
/// [`set`](Self::set) is called. Clones share one time.
///
/// Time is kept in whole nanoseconds in a `u64` (about 584 years); moving it further
/// saturates.
///
/// ```
/// use cutout::{Clock, ManualClock};
/// use std::time::Duration;
///
/// let clock = ManualClock::new();
/// let shared = clock.clone();
/// clock.advance(Duration::from_secs(3));
/// assert_eq!(shared.now(), Duration::from_secs(3));
/// ```
#[derive(Clone, Default)]
pub struct ManualClock {
    nanos: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock standing at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves the clock forward by `by` (saturating at the end of its range).
    pub fn advance(&self, by: Duration) {
        let by = duration_to_nanos(by);
        let mut current = self.nanos.load(Ordering::Acquire);
        loop {
            let next = current.saturating_add(by);
            match self.nanos.compare_exchange_weak(
                current,
                next,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return,
                Err(actual) => current = actual,
            }
        }
    }

    /// Sets the clock to `to`, if that is not earlier than its current time (a monotonic
    /// clock never goes back). Returns whether it moved.
    pub fn set(&self, to: Duration) -> bool {
        let to = duration_to_nanos(to);
        self.nanos.fetch_max(to, Ordering::AcqRel) < to
    }
}

impl Clock for ManualClock {
    #[inline]
    fn now(&self) -> Duration {
        Duration::from_nanos(self.nanos.load(Ordering::Acquire))
    }

    fn source(&self) -> sealed::Source {
        sealed::Source::Manual(self.nanos.clone())
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManualClock")
            .field("now", &self.now())
            .finish()
    }
}

fn duration_to_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// A clock on [`tokio::time::Instant`], so `tokio::time::pause()` and `advance()` drive the
/// breaker in tests. Its origin is the moment it was created.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use cutout::{Clock, TokioClock};
/// use std::time::Duration;
///
/// let clock = TokioClock::new();
/// tokio::time::advance(Duration::from_secs(5)).await;
/// assert_eq!(clock.now(), Duration::from_secs(5));
/// # }
/// ```
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    origin: tokio::time::Instant,
}

#[cfg(feature = "tokio")]
impl TokioClock {
    /// A clock whose origin is tokio's now.
    pub fn new() -> Self {
        Self {
            origin: tokio::time::Instant::now(),
        }
    }
}

#[cfg(feature = "tokio")]
impl Default for TokioClock {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(feature = "tokio")]
impl Clock for TokioClock {
    fn now(&self) -> Duration {
        tokio::time::Instant::now().saturating_duration_since(self.origin)
    }
}

/// A breaker's reading of its clock: the time since the breaker was built. The built-in
/// clocks are read directly (CLOCK_MONOTONIC through the vDSO, or one load), others
/// through [`Clock::now`].
pub(crate) struct Elapsed {
    source: Reading,
}

enum Reading {
    Monotonic {
        origin: mono::Origin<false>,
    },
    Coarse {
        origin: mono::Origin<true>,
    },
    Manual {
        nanos: Arc<AtomicU64>,
        origin: u64,
    },
    Ticking {
        origin: u64,
        /// The origin in whole milliseconds (rounded down).
        origin_millis: u64,
        /// Kept alive: the ticker runs while a clock is.
        _clock: TickingClock,
    },
    Dyn {
        clock: Arc<dyn Clock>,
        origin: Duration,
    },
}

impl Elapsed {
    /// Starts measuring on `clock` now; also returns the clock's reading at the start.
    pub(crate) fn start(clock: Arc<dyn Clock>) -> (Elapsed, Duration) {
        let reading = clock.now();
        let source = match clock.source() {
            sealed::Source::Monotonic => Reading::Monotonic {
                origin: mono::Origin::now(),
            },
            sealed::Source::Coarse => Reading::Coarse {
                origin: mono::Origin::now(),
            },
            sealed::Source::Manual(nanos) => {
                let origin = nanos.load(Ordering::Acquire);
                Reading::Manual { nanos, origin }
            }
            sealed::Source::Ticking(clock) => Reading::Ticking {
                origin: duration_to_nanos(reading),
                origin_millis: duration_to_nanos(reading) / 1_000_000,
                _clock: clock,
            },
            sealed::Source::Dyn => Reading::Dyn {
                clock,
                origin: reading,
            },
        };
        (Elapsed { source }, reading)
    }

    /// The time since the start.
    #[inline]
    pub(crate) fn now(&self) -> Duration {
        match &self.source {
            Reading::Monotonic { origin } => Duration::from_nanos(origin.elapsed_nanos()),
            Reading::Coarse { origin } => Duration::from_nanos(origin.elapsed_nanos()),
            Reading::Manual { nanos, origin } => {
                Duration::from_nanos(nanos.load(Ordering::Acquire).saturating_sub(*origin))
            }
            Reading::Ticking { origin, .. } => {
                Duration::from_nanos(TickingClock::nanos().saturating_sub(*origin))
            }
            Reading::Dyn { clock, origin } => clock.now().saturating_sub(*origin),
        }
    }

    /// Whole milliseconds since the start, saturating at `u64::MAX`. The built-in clocks
    /// inline (a time window reads this on the closed path); other clocks are one call.
    #[inline(always)]
    pub(crate) fn millis(&self) -> u64 {
        match &self.source {
            // Whole nanoseconds: one division by a constant, no `Duration`.
            Reading::Monotonic { origin } => origin.elapsed_nanos() / 1_000_000,
            Reading::Coarse { origin } => origin.elapsed_nanos() / 1_000_000,
            Reading::Manual { nanos, origin } => {
                nanos.load(Ordering::Acquire).saturating_sub(*origin) / 1_000_000
            }
            // One relaxed load of a static, already in milliseconds (the origin rounded
            // down to a whole millisecond, as the default clock's deadlines do).
            Reading::Ticking { origin_millis, .. } => {
                TickingClock::millis().saturating_sub(*origin_millis)
            }
            Reading::Dyn { .. } => self.millis_of_dyn(),
        }
    }

    /// Whole milliseconds since the start, for the state machine's deadlines: on a
    /// [`MonotonicClock`], its coarse twin (see there); on the other clocks, [`millis`](Self::millis).
    ///
    /// The clocks an open or half-open breaker reads in production are tested one by one
    /// (a `match` here compiles to a jump table, an indirect branch on every rejection);
    /// the test clocks go out of line.
    #[inline(always)]
    pub(crate) fn deadline_millis(&self) -> u64 {
        if let Reading::Monotonic { origin } = &self.source {
            return origin.elapsed_coarse_millis();
        }
        if let Reading::Ticking { origin_millis, .. } = &self.source {
            return TickingClock::millis().saturating_sub(*origin_millis);
        }
        if let Reading::Coarse { origin } = &self.source {
            return origin.elapsed_coarse_millis();
        }
        self.millis_out_of_line()
    }

    /// [`millis`](Self::millis), not inlined: the rest of [`deadline_millis`](Self::deadline_millis).
    #[inline(never)]
    fn millis_out_of_line(&self) -> u64 {
        self.millis()
    }

    #[inline(never)]
    fn millis_of_dyn(&self) -> u64 {
        whole_millis(self.now())
    }

    /// Which clock this reads, for `Debug` and the tests.
    fn kind(&self) -> &'static str {
        match self.source {
            Reading::Monotonic { .. } => "monotonic",
            Reading::Coarse { .. } => "coarse",
            Reading::Manual { .. } => "manual",
            Reading::Ticking { .. } => "ticking",
            Reading::Dyn { .. } => "dyn",
        }
    }
}

/// The monotonic clock `Instant` reads (`COARSE`: its coarse twin), as nanoseconds since an
/// origin.
mod mono {
    /// Linux: CLOCK_MONOTONIC, the clock of `Instant::now()` (or CLOCK_MONOTONIC_COARSE),
    /// read through the vDSO by rustix; the nanoseconds are computed inline (no `Timespec`
    /// normalisation, no `Option`).
    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[derive(Debug, Clone, Copy)]
    pub(super) struct Origin<const COARSE: bool> {
        nanos: i64,
        /// `nanos` in whole milliseconds (rounded down), for the coarse readings.
        millis: u64,
    }

    #[cfg(any(target_os = "linux", target_os = "android"))]
    impl<const COARSE: bool> Origin<COARSE> {
        #[inline]
        fn read() -> i64 {
            let id = if COARSE {
                rustix::time::ClockId::MonotonicCoarse
            } else {
                rustix::time::ClockId::Monotonic
            };
            let t = rustix::time::clock_gettime(id);
            t.tv_sec
                .saturating_mul(1_000_000_000)
                .saturating_add(t.tv_nsec)
        }

        pub(super) fn now() -> Self {
            let nanos = Self::read();
            Origin {
                nanos,
                millis: u64::try_from(nanos).unwrap_or(0) / 1_000_000,
            }
        }

        /// Nanoseconds since the origin (0 if the clock reads earlier, which it never
        /// should).
        #[inline]
        pub(super) fn elapsed_nanos(self) -> u64 {
            u64::try_from(Self::read().saturating_sub(self.nanos)).unwrap_or(0)
        }

        /// Nanoseconds since the origin on the coarse twin of the clock (the same clock as
        /// of the last kernel tick: up to a tick behind; 0 while it reads before the
        /// origin).
        #[cfg(test)]
        pub(super) fn elapsed_coarse_nanos(self) -> u64 {
            u64::try_from(Origin::<true>::read().saturating_sub(self.nanos)).unwrap_or(0)
        }

        /// Whole milliseconds since the origin (rounded down to a whole millisecond) on the
        /// coarse twin of the clock: up to a tick behind; 0 while it reads before the
        /// origin. The reading's milliseconds are taken from its seconds and nanoseconds
        /// side by side, and the origin's apart from the reading: a short chain after the
        /// read, which is what a half-open probe waits on before its compare-exchange.
        #[inline]
        pub(super) fn elapsed_coarse_millis(self) -> u64 {
            let t = rustix::time::clock_gettime(rustix::time::ClockId::MonotonicCoarse);
            // A monotonic reading is never negative (time since boot), and its nanoseconds
            // are below a second: unsigned arithmetic, which divides in fewer steps.
            let secs = u64::try_from(t.tv_sec).unwrap_or(0);
            let nanos = u64::try_from(t.tv_nsec).unwrap_or(0);
            let millis = secs.saturating_mul(1_000).saturating_add(nanos / 1_000_000);
            millis.saturating_sub(self.millis)
        }
    }

    /// Elsewhere: `Instant`.
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    #[derive(Debug, Clone, Copy)]
    pub(super) struct Origin<const COARSE: bool>(std::time::Instant);

    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    impl<const COARSE: bool> Origin<COARSE> {
        pub(super) fn now() -> Self {
            Origin(std::time::Instant::now())
        }

        #[inline]
        pub(super) fn elapsed_nanos(self) -> u64 {
            u64::try_from(self.0.elapsed().as_nanos()).unwrap_or(u64::MAX)
        }

        /// No coarse twin here: the clock itself.
        #[cfg(test)]
        pub(super) fn elapsed_coarse_nanos(self) -> u64 {
            self.elapsed_nanos()
        }

        /// No coarse twin here: the clock itself, in whole milliseconds.
        #[inline]
        pub(super) fn elapsed_coarse_millis(self) -> u64 {
            self.elapsed_nanos() / 1_000_000
        }
    }
}

/// The whole milliseconds in `d`, saturating at `u64::MAX` (no 128-bit division).
#[inline]
pub(crate) fn whole_millis(d: Duration) -> u64 {
    d.as_secs()
        .saturating_mul(1_000)
        .saturating_add(d.subsec_millis() as u64)
}

impl fmt::Debug for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Elapsed")
            .field("source", &self.kind())
            .field("now", &self.now())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A clock the breaker knows nothing about: read through `now`.
    struct Offset(ManualClock);

    impl Clock for Offset {
        fn now(&self) -> Duration {
            self.0.now() + Duration::from_secs(7)
        }
    }

    #[test]
    fn elapsed_reads_each_clock_from_the_start_in_whole_milliseconds() {
        let manual = ManualClock::new();
        manual.advance(Duration::from_micros(5_500));
        let clocks: [(Arc<dyn Clock>, &str); 3] = [
            (Arc::new(manual.clone()), "manual"),
            // The source is forwarded through an `Arc` of the clock.
            (Arc::new(Arc::new(manual.clone())), "manual"),
            (Arc::new(Offset(manual.clone())), "dyn"),
        ];
        for (clock, expected) in clocks {
            let (elapsed, reading) = Elapsed::start(clock.clone());
            assert_eq!(elapsed.kind(), expected);
            assert_eq!(reading, clock.now());
            assert_eq!((elapsed.now(), elapsed.millis()), (Duration::ZERO, 0));
            manual.advance(Duration::from_micros(2_999_700));
            assert_eq!(elapsed.now(), Duration::from_micros(2_999_700));
            assert_eq!(elapsed.millis(), 2_999);
            manual.advance(Duration::from_micros(300));
            assert_eq!(elapsed.millis(), 3_000);
        }
        // Saturating at the manual clock's edge (u64 nanoseconds).
        let (elapsed, origin) = Elapsed::start(Arc::new(manual.clone()));
        assert_eq!(origin, Duration::from_micros(9_005_500));
        manual.advance(Duration::MAX);
        assert_eq!(elapsed.millis(), (u64::MAX - 9_005_500_000) / 1_000_000);
    }

    #[test]
    fn elapsed_on_the_monotonic_clock_starts_near_zero_and_never_goes_back() {
        let (elapsed, _) = Elapsed::start(Arc::new(MonotonicClock::new()));
        assert_eq!(elapsed.kind(), "monotonic");
        let first = elapsed.now();
        assert!(first < Duration::from_secs(60), "{first:?}");
        assert!(elapsed.now() >= first);
        assert!(elapsed.millis() >= first.as_millis() as u64);
    }

    #[test]
    fn the_coarse_clock_is_read_directly_and_stays_within_a_tick_of_the_precise_one() {
        let (coarse, _) = Elapsed::start(Arc::new(CoarseMonotonicClock::new()));
        let (precise, _) = Elapsed::start(Arc::new(MonotonicClock::new()));
        assert_eq!(coarse.kind(), "coarse");
        let first = coarse.now();
        assert!(coarse.now() >= first);
        // Both started at (about) the same moment: the coarse reading lags the precise one
        // by at most a kernel tick (up to 10 ms at HZ=100), and never leads it by more.
        let (c, p) = (coarse.now(), precise.now());
        assert!(c <= p + Duration::from_millis(10), "{c:?} vs {p:?}");
        assert!(
            p <= c + Duration::from_millis(10) + Duration::from_secs(1),
            "{c:?} vs {p:?}"
        );
        let clock = CoarseMonotonicClock::default();
        let earlier = clock.now();
        assert!(clock.now() >= earlier);
    }

    #[test]
    fn the_default_clock_reads_deadlines_on_its_coarse_twin_and_windows_precisely() {
        let (elapsed, _) = Elapsed::start(Arc::new(MonotonicClock::new()));
        // Read in this order, the coarse reading of the same clock is never ahead: it is
        // the time of the last tick, and the precise read comes after it.
        for _ in 0..1_000 {
            let deadline = elapsed.deadline_millis();
            let precise = elapsed.millis();
            assert!(deadline <= precise, "{deadline} vs {precise}");
        }
        let first = elapsed.deadline_millis();
        assert!(elapsed.deadline_millis() >= first);
        // The other clocks have one reading for both.
        let manual = ManualClock::new();
        let (elapsed, _) = Elapsed::start(Arc::new(manual.clone()));
        manual.advance(Duration::from_millis(1_234));
        assert_eq!(elapsed.deadline_millis(), 1_234);
        assert_eq!(elapsed.millis(), 1_234);
        let (coarse, _) = Elapsed::start(Arc::new(CoarseMonotonicClock::new()));
        let d = coarse.deadline_millis();
        assert!(coarse.millis() >= d);
    }

    /// The deadline reading is the coarse one, not the precise one: it lies between two
    /// coarse readings around it, over 20 ms of spinning (several kernel ticks); the
    /// precise reading, up to a tick ahead, passes the later coarse one in part of every
    /// tick. And the coarse reading moves in ticks (few distinct values over a thousand
    /// reads) where the precise one moves every read.
    #[test]
    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn the_default_clocks_deadline_reading_is_its_coarse_twin() {
        let (elapsed, _) = Elapsed::start(Arc::new(MonotonicClock::new()));
        let Reading::Monotonic { origin } = &elapsed.source else {
            panic!("a MonotonicClock is read directly");
        };
        let coarse_millis = || origin.elapsed_coarse_nanos() / 1_000_000;
        // The deadline reading rounds the origin down to a whole millisecond, so it may
        // read one millisecond more than the coarse nanoseconds divided.
        let coarse_millis_after = || origin.elapsed_coarse_nanos() / 1_000_000 + 1;
        let end = origin.elapsed_nanos() + 20_000_000;
        while origin.elapsed_nanos() < end {
            let before = coarse_millis();
            let deadline = elapsed.deadline_millis();
            let after = coarse_millis_after();
            assert!(
                (before..=after).contains(&deadline),
                "{before} <= {deadline} <= {after}"
            );
        }
        let distinct = |read: &dyn Fn() -> u64| {
            let mut seen: Vec<u64> = (0..1_000).map(|_| read()).collect();
            seen.dedup();
            seen.len()
        };
        let coarse = distinct(&|| origin.elapsed_coarse_nanos());
        let precise = distinct(&|| origin.elapsed_nanos());
        assert!(coarse < 100, "{coarse} distinct coarse readings");
        assert!(precise > coarse, "{precise} precise vs {coarse} coarse");
    }
}
