//! [`TickingClock`]: a clock read with one relaxed load of a process-wide tick, which one
//! background thread (`cutout-ticker`) advances while any such clock is alive.
//!
//! The ticker's state is a `Mutex` and a `Condvar` that only clock creation, clock drop and
//! the ticker thread itself take (once per tick); a reading never touches them.

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use super::{Clock, duration_to_nanos, sealed};

/// A clock whose reading is one relaxed atomic load: a process-wide tick that a background
/// thread advances every [`resolution`](Self::resolution) (1 ms by default).
///
/// For many open breakers rejecting at very high rates: an open reject on this clock reads
/// one word of memory where [`MonotonicClock`](crate::MonotonicClock) reads the kernel's
/// coarse clock through the vDSO. It costs what the other clocks do not:
///
/// - **A thread.** The first `TickingClock` made starts one thread, `cutout-ticker`, which
///   wakes every resolution (about 1 000 times a second at 1 ms) to store the precise
///   monotonic time. It is shared by every `TickingClock` in the process, ticks at the
///   finest resolution among those alive, and stops when the last one (and the last breaker
///   built on one) is dropped; a later clock starts it again. Nothing runs while none is
///   alive. Making or dropping a clock takes a short lock; reading one does not.
///   Measured on two 2-core VMs at the default 1 ms: 0.18-0.19 s of CPU per 10 s, some 2%
///   of one core, whatever the number of breakers or the call rate.
/// - **Lag.** A reading is the time of the last tick: behind the precise clock by up to the
///   resolution, and by more while the ticker thread is starved of CPU (a loaded machine,
///   a paused VM). Readings never go backwards and never run ahead of the precise clock.
///   A breaker measures its open time, probe leases and holds between two readings of the
///   tick: an open time ends when the tick has moved by the open duration since the trip,
///   which is late by up to the resolution (or the starvation) in real time, or early by
///   the lag the tick had at the trip. (Every reading is truncated to whole milliseconds
///   by the breaker anyway, on every clock.)
/// - **Everything is coarse.** Like [`CoarseMonotonicClock`](crate::CoarseMonotonicClock),
///   every reading is the tick: the deadlines, a time window's buckets and a slow call's
///   duration, which is measured in whole ticks. Keep a slow-call threshold well above the
///   resolution, or use the default clock.
///
/// The tick counts nanoseconds since a process-wide origin in a `u64` (584 years) and
/// saturates there. No reading, configuration or drop panics or blocks for longer than the
/// short lock; it works the same inside and outside a tokio runtime (the ticker is a std
/// thread).
///
/// ```
/// use cutout::{CircuitBreaker, Rejected, TickingClock};
/// use std::time::Duration;
///
/// let clock = TickingClock::new()?;
/// assert_eq!(clock.resolution(), Duration::from_millis(1));
/// let breaker = CircuitBreaker::builder()
///     .failure_threshold(1)
///     .open_duration(Duration::from_secs(30))
///     .build_with_clock(clock)?;
/// let _ = breaker.call(|| Err::<(), _>("down"));
/// assert!(matches!(breaker.try_acquire(), Err(Rejected::Open { .. })));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct TickingClock {
    /// Shared by the clones; the ticker runs while any lease is alive.
    lease: Arc<Lease>,
}

impl TickingClock {
    /// The resolution of [`new`](Self::new): 1 ms, the breaker's own unit of time.
    pub const DEFAULT_RESOLUTION: Duration = Duration::from_millis(1);
    /// The finest resolution accepted: 100 µs (10 000 wakeups a second).
    pub const MIN_RESOLUTION: Duration = Duration::from_micros(100);
    /// The coarsest resolution accepted: 1 s.
    pub const MAX_RESOLUTION: Duration = Duration::from_secs(1);

    /// A clock on the process-wide tick at [`DEFAULT_RESOLUTION`](Self::DEFAULT_RESOLUTION),
    /// starting the ticker thread if it is not running.
    ///
    /// Fails only if the thread cannot be spawned ([`TickingClockError::Spawn`]).
    pub fn new() -> Result<Self, TickingClockError> {
        Self::with_resolution(Self::DEFAULT_RESOLUTION)
    }

    /// A clock on the process-wide tick, which advances at least every `resolution` while
    /// this clock is alive (the ticker ticks at the finest resolution among the live
    /// clocks).
    ///
    /// ```
    /// use cutout::{TickingClock, TickingClockError};
    /// use std::time::Duration;
    ///
    /// let clock = TickingClock::with_resolution(Duration::from_millis(5))?;
    /// assert_eq!(clock.resolution(), Duration::from_millis(5));
    ///
    /// let err = TickingClock::with_resolution(Duration::ZERO).unwrap_err();
    /// assert!(matches!(err, TickingClockError::ResolutionOutOfRange { .. }));
    /// assert_eq!(err.to_string(), "ticking clock resolution 0ns is outside 100µs..=1s");
    /// # Ok::<(), TickingClockError>(())
    /// ```
    pub fn with_resolution(resolution: Duration) -> Result<Self, TickingClockError> {
        if !(Self::MIN_RESOLUTION..=Self::MAX_RESOLUTION).contains(&resolution) {
            return Err(TickingClockError::ResolutionOutOfRange {
                resolution,
                min: Self::MIN_RESOLUTION,
                max: Self::MAX_RESOLUTION,
            });
        }
        TICKER.register(resolution)?;
        Ok(Self {
            lease: Arc::new(Lease { resolution }),
        })
    }

    /// The resolution this clock asked for (the tick may move more often, if a finer
    /// clock is alive).
    pub fn resolution(&self) -> Duration {
        self.lease.resolution
    }

    /// The tick in nanoseconds since the process-wide origin: one relaxed load.
    #[inline(always)]
    pub(crate) fn nanos() -> u64 {
        TICK.nanos()
    }

    /// The tick in whole milliseconds since the process-wide origin: one relaxed load.
    #[inline(always)]
    pub(crate) fn millis() -> u64 {
        TICK.millis()
    }
}

impl Clock for TickingClock {
    #[inline]
    fn now(&self) -> Duration {
        Duration::from_nanos(Self::nanos())
    }

    fn source(&self) -> sealed::Source {
        sealed::Source::Ticking(self.clone())
    }
}

impl fmt::Debug for TickingClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TickingClock")
            .field("resolution", &self.lease.resolution)
            .field("now", &self.now())
            .finish()
    }
}

/// Why a [`TickingClock`] could not be made.
#[derive(Debug)]
#[non_exhaustive]
pub enum TickingClockError {
    /// A resolution outside [`MIN_RESOLUTION`](TickingClock::MIN_RESOLUTION)`..=`
    /// [`MAX_RESOLUTION`](TickingClock::MAX_RESOLUTION) (zero among them).
    ResolutionOutOfRange {
        /// The value given.
        resolution: Duration,
        /// The finest accepted.
        min: Duration,
        /// The coarsest accepted.
        max: Duration,
    },
    /// The ticker thread could not be spawned (the operating system's error).
    Spawn(io::Error),
}

impl fmt::Display for TickingClockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ResolutionOutOfRange {
                resolution,
                min,
                max,
            } => write!(
                f,
                "ticking clock resolution {resolution:?} is outside {min:?}..={max:?}"
            ),
            Self::Spawn(_) => f.write_str("could not spawn the ticking clock's thread"),
        }
    }
}

impl std::error::Error for TickingClockError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Spawn(e) => Some(e),
            Self::ResolutionOutOfRange { .. } => None,
        }
    }
}

/// The process-wide tick.
static TICK: Tick = Tick::new();

/// The ticker thread's bookkeeping.
static TICKER: Ticker = Ticker {
    leases: Mutex::new(Leases {
        resolutions: Vec::new(),
        running: false,
        started: 0,
    }),
    wake: Condvar::new(),
};

/// The origin of the tick: the first time anyone asked for it.
fn precise_now() -> Duration {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    ORIGIN.get_or_init(Instant::now).elapsed()
}

/// The time since the origin as of the last tick: in nanoseconds, and in whole
/// milliseconds (the breaker's deadlines read these, with no division on the way).
struct Tick {
    nanos: AtomicU64,
    millis: AtomicU64,
}

impl Tick {
    const fn new() -> Self {
        Tick {
            nanos: AtomicU64::new(0),
            millis: AtomicU64::new(0),
        }
    }

    #[inline(always)]
    fn nanos(&self) -> u64 {
        // Relaxed: readers need only this word, and one atomic's loads never see it go
        // back (coherence).
        self.nanos.load(Ordering::Relaxed)
    }

    /// [`nanos`](Self::nanos) in whole milliseconds (stored apart, never behind it by more
    /// than the store between the two).
    #[inline(always)]
    fn millis(&self) -> u64 {
        self.millis.load(Ordering::Relaxed)
    }

    /// Moves the tick to `now` (saturating at `u64::MAX` nanoseconds) unless it already
    /// reads `now` or later; returns the reading after the store.
    fn advance_to(&self, now: Duration) -> u64 {
        let now = duration_to_nanos(now);
        let nanos = self.nanos.fetch_max(now, Ordering::Relaxed).max(now);
        self.millis.fetch_max(nanos / 1_000_000, Ordering::Relaxed);
        nanos
    }
}

/// One registration of a clock (shared by its clones): deregisters on drop.
struct Lease {
    resolution: Duration,
}

impl Drop for Lease {
    fn drop(&mut self) {
        TICKER.deregister(self.resolution);
    }
}

struct Ticker {
    leases: Mutex<Leases>,
    /// Wakes the thread early: when the last lease goes, or a finer one arrives.
    wake: Condvar,
}

struct Leases {
    /// One entry per live lease (a multiset; a process has few).
    resolutions: Vec<Duration>,
    /// Whether a ticker thread is in its loop (at most one is).
    running: bool,
    /// How many ticker threads were started, ever (read by the tests).
    #[cfg_attr(not(test), allow(dead_code))]
    started: u64,
}

impl Leases {
    fn finest(&self) -> Option<Duration> {
        self.resolutions.iter().min().copied()
    }
}

impl Ticker {
    fn lock(&self) -> MutexGuard<'_, Leases> {
        // Nothing panics while holding the lock; a poisoned one is still consistent.
        self.leases.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a lease, starts the thread if it is not running, and brings the tick up to
    /// now (it may be stale from an earlier run).
    fn register(&'static self, resolution: Duration) -> Result<(), TickingClockError> {
        let mut leases = self.lock();
        if leases.running {
            if leases.finest().is_none_or(|finest| resolution < finest) {
                self.wake.notify_one();
            }
        } else {
            thread::Builder::new()
                .name("cutout-ticker".to_owned())
                .spawn(|| TICKER.run())
                .map_err(TickingClockError::Spawn)?;
            leases.running = true;
            leases.started += 1;
        }
        leases.resolutions.push(resolution);
        drop(leases);
        TICK.advance_to(precise_now());
        Ok(())
    }

    fn deregister(&self, resolution: Duration) {
        let mut leases = self.lock();
        if let Some(i) = leases.resolutions.iter().position(|&r| r == resolution) {
            leases.resolutions.swap_remove(i);
        }
        if leases.resolutions.is_empty() {
            self.wake.notify_one();
        }
    }

    /// The thread: tick at the finest live resolution until no lease is left.
    fn run(&self) {
        let mut leases = self.lock();
        while let Some(resolution) = leases.finest() {
            TICK.advance_to(precise_now());
            leases = self
                .wake
                .wait_timeout(leases, resolution)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        leases.running = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Elapsed;
    use crate::{CircuitBreaker, Rejected, State};

    /// The tests that make clocks share one ticker: one at a time.
    fn serial() -> MutexGuard<'static, ()> {
        static SERIAL: Mutex<()> = Mutex::new(());
        SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Spins (yielding to the ticker) until `done`, failing after 10 s.
    fn spin_until(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            thread::yield_now();
        }
    }

    /// (running, started) of the ticker.
    fn ticker() -> (bool, u64) {
        let leases = TICKER.lock();
        (leases.running, leases.started)
    }

    /// Threads of this process named `cutout-ticker`.
    #[cfg(target_os = "linux")]
    fn ticker_threads() -> usize {
        std::fs::read_dir("/proc/self/task")
            .expect("procfs")
            .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
            .filter(|name| name.trim_end() == "cutout-ticker")
            .count()
    }

    #[test]
    fn advance_to_keeps_the_max_and_saturates() {
        let tick = Tick::new();
        assert_eq!(tick.advance_to(Duration::from_millis(5)), 5_000_000);
        assert_eq!(tick.nanos(), 5_000_000);
        assert_eq!(tick.millis(), 5);
        // Never backwards.
        assert_eq!(tick.advance_to(Duration::from_millis(3)), 5_000_000);
        assert_eq!(tick.nanos(), 5_000_000);
        assert_eq!(tick.advance_to(Duration::from_nanos(5_000_001)), 5_000_001);
        // Saturates at the end of the range, then stays there.
        assert_eq!(tick.advance_to(Duration::MAX), u64::MAX);
        assert_eq!(tick.advance_to(Duration::from_secs(1)), u64::MAX);
        assert_eq!(tick.nanos(), u64::MAX);
        assert_eq!(tick.millis(), u64::MAX / 1_000_000);
        // A breaker's reading saturates instead of wrapping.
        assert_eq!(
            tick.nanos().saturating_sub(5_000_000) / 1_000_000,
            18_446_744_073_704
        );
    }

    #[test]
    fn resolutions_outside_the_range_are_refused() {
        for resolution in [
            Duration::ZERO,
            Duration::from_nanos(1),
            Duration::from_micros(99),
            Duration::from_millis(1_001),
            Duration::MAX,
        ] {
            match TickingClock::with_resolution(resolution) {
                Err(TickingClockError::ResolutionOutOfRange {
                    resolution: r,
                    min,
                    max,
                }) => {
                    assert_eq!(r, resolution);
                    assert_eq!(min, Duration::from_micros(100));
                    assert_eq!(max, Duration::from_secs(1));
                }
                other => panic!("{resolution:?}: {other:?}"),
            }
        }
        let err = TickingClock::with_resolution(Duration::from_secs(2)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "ticking clock resolution 2s is outside 100µs..=1s"
        );
        assert!(std::error::Error::source(&err).is_none());
    }

    #[test]
    fn readings_never_go_back_nor_lead_the_precise_clock() {
        let _serial = serial();
        let clock = TickingClock::new().expect("ticker");
        let mut last = clock.now();
        let end = precise_now() + Duration::from_millis(30);
        let mut seen = 0;
        loop {
            let reading = clock.now();
            let precise = precise_now();
            assert!(reading <= precise, "{reading:?} ahead of {precise:?}");
            assert!(reading >= last, "{reading:?} after {last:?}");
            seen += usize::from(reading > last);
            last = reading;
            if precise >= end && seen > 0 {
                break;
            }
            assert!(
                precise < end + Duration::from_secs(10),
                "the tick never moved"
            );
        }
    }

    #[test]
    fn the_reading_advances_and_a_breaker_reads_it_with_one_load() {
        let _serial = serial();
        let clock = TickingClock::new().expect("ticker");
        // Made fresh: at most the resolution (and scheduling) behind the precise clock.
        let start = clock.now();
        spin_until("the tick moves", || clock.now() > start);

        let (elapsed, origin) = Elapsed::start(Arc::new(clock.clone()));
        assert_eq!(elapsed.kind(), "ticking");
        let at = TickingClock::nanos();
        spin_until("the tick moves 3 ms", || {
            TickingClock::nanos() >= at + 3_000_000
        });
        // Every reading of the breaker is the tick since its origin.
        let (now, millis, deadline, tick) = (
            elapsed.now(),
            elapsed.millis(),
            elapsed.deadline_millis(),
            TickingClock::nanos(),
        );
        let origin = duration_to_nanos(origin);
        assert!(now >= Duration::from_millis(3), "{now:?}");
        assert!(millis >= 3 && millis <= deadline, "{millis} {deadline}");
        // Deadlines count whole milliseconds of the tick from the origin rounded down to a
        // whole millisecond: the tick's milliseconds since then, which may be one more
        // than the nanoseconds since the origin divided.
        assert!(deadline <= TickingClock::millis() - origin / 1_000_000);
        assert!(deadline <= (tick - origin) / 1_000_000 + 1);
        assert!(now <= Duration::from_nanos(tick - origin));
    }

    #[test]
    fn a_breaker_on_the_tick_trips_rejects_and_half_opens_after_its_open_time() {
        let _serial = serial();
        let clock = TickingClock::new().expect("ticker");
        let breaker = CircuitBreaker::builder()
            .failure_threshold(1)
            .open_duration(Duration::from_millis(5))
            .build_with_clock(clock.clone())
            .expect("valid config");
        let before_trip = clock.now();
        assert!(breaker.call(|| Err::<(), _>("down")).is_err());
        assert_eq!(breaker.state(), State::Open);
        match breaker.try_acquire() {
            Err(Rejected::Open { retry_after }) => {
                assert!(retry_after <= Duration::from_millis(5), "{retry_after:?}")
            }
            other => panic!("expected an open reject, got {other:?}"),
        }
        spin_until("the open time ends", || {
            breaker.retry_after() == Some(Duration::ZERO)
        });
        // Measured on the tick: 5 whole milliseconds of the breaker since the trip, so
        // more than 4 ms of tick since before it.
        let waited = clock.now() - before_trip;
        assert!(waited > Duration::from_millis(4), "{waited:?}");
        let probe = breaker.try_acquire().expect("a half-open probe");
        assert_eq!(breaker.state(), State::HalfOpen);
        probe.record(crate::Outcome::Success);
        assert_eq!(breaker.state(), State::Closed);
    }

    #[test]
    fn the_thread_stops_with_the_last_clock_and_starts_again_with_the_next() {
        let _serial = serial();
        // Earlier tests' clocks are gone: their ticker stops.
        spin_until("no ticker runs", || !ticker().0);
        #[cfg(target_os = "linux")]
        spin_until("no ticker thread is left", || ticker_threads() == 0);
        let (_, started) = ticker();

        let first = TickingClock::with_resolution(Duration::from_millis(2)).expect("ticker");
        let copy = first.clone();
        let second = TickingClock::new().expect("ticker");
        // One thread for all of them.
        assert_eq!(ticker(), (true, started + 1));
        // (The thread names itself once it runs.)
        #[cfg(target_os = "linux")]
        spin_until("the thread runs", || ticker_threads() == 1);
        assert_eq!(TICKER.lock().finest(), Some(Duration::from_millis(1)));
        drop(second);
        assert_eq!(TICKER.lock().finest(), Some(Duration::from_millis(2)));
        drop(first);
        // A clone keeps it running; a breaker on the clock would too.
        assert_eq!(ticker(), (true, started + 1));
        let breaker = CircuitBreaker::builder()
            .build_with_clock(copy)
            .expect("valid config");
        assert_eq!(ticker(), (true, started + 1));
        drop(breaker);
        spin_until("the ticker stops", || !ticker().0);
        assert_eq!(ticker(), (false, started + 1));
        #[cfg(target_os = "linux")]
        spin_until("the thread exits", || ticker_threads() == 0);
        assert_eq!(TICKER.lock().finest(), None);

        // The tick stands still without a thread, and a new clock brings it up to now.
        let stale = TickingClock::nanos();
        let before = duration_to_nanos(precise_now());
        let again = TickingClock::new().expect("ticker");
        assert_eq!(ticker(), (true, started + 2));
        let fresh = TickingClock::nanos();
        assert!(
            stale <= before && before <= fresh,
            "{stale} {before} {fresh}"
        );
        let moved = again.now();
        spin_until("the new ticker ticks", || again.now() > moved);
        drop(again);
        spin_until("the ticker stops again", || !ticker().0);
    }

    #[test]
    fn made_and_dropped_inside_a_tokio_runtime() {
        let _serial = serial();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let clock = TickingClock::new().expect("ticker");
            let start = clock.now();
            let breaker = CircuitBreaker::builder()
                .build_with_clock(clock.clone())
                .expect("valid config");
            // The ticker is a std thread: it moves while this task runs and yields.
            let deadline = Instant::now() + Duration::from_secs(10);
            while clock.now() == start {
                assert!(Instant::now() < deadline, "the tick never moved");
                tokio::task::yield_now().await;
            }
            drop((breaker, clock));
            assert_eq!(TICKER.lock().finest(), None);
        });
    }
}
