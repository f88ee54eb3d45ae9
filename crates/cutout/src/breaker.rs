//! The breaker: a handle to shared state, permits, calls.

use std::fmt;
use std::future::Future;
use std::mem::ManuallyDrop;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32 as StdAtomicU32, AtomicU64 as StdAtomicU64};
use std::time::Duration;

use crate::clock::{Clock, Elapsed, whole_millis};
use crate::config::Builder;
use crate::config::ConfigError;
use crate::counters::Counters;
use crate::error::{CallError, CompactRejected, Rejected};
use crate::listener::{Listener, Reconfigured, Transition};
use crate::state::{
    self, Acquire, CLOSED_BITS, Cause, Command, MAX_TICK, Outcome, Policy, Record, STATE_WIDTH,
    Snapshot, State, TICK, ticks_to_duration,
};
use crate::sync::{AtomicU64, Ordering, Swap, fence};
use crate::window::{Call, Claim, Window, WindowStats};

/// A circuit breaker. Cheap to clone: clones share one breaker.
///
/// Calls go through [`try_acquire`](Self::try_acquire) (a [`Permit`] whose outcome you
/// record), [`call`](Self::call) for closures, or [`call_async`](Self::call_async) for
/// futures.
///
/// ```
/// use cutout::{CallError, CircuitBreaker, ManualClock, Rejected, State};
/// use std::time::Duration;
///
/// // The seed article's scenario: threshold 2, reset 100 ms, one probe.
/// let clock = ManualClock::new();
/// let breaker = CircuitBreaker::builder()
///     .failure_threshold(2)
///     .open_duration(Duration::from_millis(100))
///     .half_open_max_calls(1)
///     .build_with_clock(clock.clone())?;
///
/// for _ in 0..2 {
///     let _ = breaker.call(|| Err::<(), _>("payment service down"));
/// }
/// assert_eq!(breaker.state(), State::Open);
/// assert!(matches!(
///     breaker.call(|| Ok::<_, &str>(())),
///     Err(CallError::Rejected(Rejected::Open { .. }))
/// ));
///
/// clock.advance(Duration::from_millis(100));
/// assert_eq!(breaker.call(|| Ok::<_, &str>("paid")), Ok("paid"));
/// assert_eq!(breaker.state(), State::Closed);
/// # Ok::<(), cutout::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct CircuitBreaker {
    shared: Arc<Shared>,
}

/// Everything a breaker shares between its clones and permits.
pub(crate) struct Shared {
    /// The state word (see [`crate::state`]).
    word: AtomicU64,
    /// Lifetime call counters, one slot per thread (see `counters`).
    counters: Counters,
    /// Transitions into open (trips and re-opens); written only by transitions.
    trips: StdAtomicU64,
    /// Results from older generations; written only on that slow path.
    stale: StdAtomicU64,
    /// Whether any listener wants per-call events.
    call_events: bool,
    /// Whether any listener wants an event for every recorded outcome.
    record_events: bool,
    /// No window and no outcome events: an outcome that changes nothing needs no more work.
    plain_record: bool,
    /// The live settings: swapped whole by [`CircuitBreaker::reconfigure`], read once per
    /// decision off the closed path.
    policy: Swap<Policy>,
    /// The live settings' failure threshold, mirrored for the inline failure path of
    /// [`record_timed`](Self::record_timed): one relaxed load, where a load of `policy`
    /// costs more than the rest of that path. Stored by `reconfigure` right after `policy`;
    /// the inline path decides with this one value and leaves every trip to the general
    /// path, which reads `policy` whole.
    failure_threshold: StdAtomicU32,
    /// The live settings' probe limit and probe lease ([`state::ProbeSettings`], packed),
    /// mirrored the same way: everything an admission reads of the settings, so that a
    /// probe (or the first call after the open time) loads one word instead of `policy`.
    probe_settings: StdAtomicU64,
    /// The rate policies' sliding window, if any rate is set.
    window: Option<Box<Window>>,
    /// Whether permits are timed (a slow-call rate is set).
    times_calls: bool,
    /// The clock, read as the time since the breaker was built.
    elapsed: Elapsed,
    listeners: Box<[Arc<dyn Listener>]>,
    name: Arc<str>,
}

impl CircuitBreaker {
    /// A builder with the documented defaults (see [`Builder`]).
    pub fn builder() -> Builder {
        Builder::new()
    }

    pub(crate) fn from_parts(builder: Builder, mut policy: Policy, clock: Arc<dyn Clock>) -> Self {
        let (elapsed, origin) = Elapsed::start(clock);
        let mut builder = builder;
        // Listeners that needed the final name (see `Builder::listener_with`).
        for make in std::mem::take(&mut builder.named_listeners) {
            let listener = make(&builder.name);
            builder.listeners.push(listener);
        }
        let call_events = builder.listeners.iter().any(|l| l.wants_call_events());
        let record_events = builder.listeners.iter().any(|l| l.wants_recorded_events());
        if builder.jitter_seed.is_none() {
            // Breakers built together should not jitter in step: mix in the clock reading
            // and a process-wide count.
            static BUILT: StdAtomicU64 = StdAtomicU64::new(0);
            let n = BUILT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            policy.open.seed = (origin.as_nanos() as u64) ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
        let window = policy.window.clone().map(|p| Box::new(Window::new(p)));
        let times_calls = window.as_ref().is_some_and(|w| w.policy.times_calls());
        let plain_record = !record_events && window.is_none();
        Self {
            shared: Arc::new(Shared {
                window,
                times_calls,
                word: AtomicU64::new(Snapshot::INITIAL.0),
                counters: Counters::new(),
                trips: StdAtomicU64::new(0),
                stale: StdAtomicU64::new(0),
                call_events,
                record_events,
                plain_record,
                failure_threshold: StdAtomicU32::new(policy.failure_threshold),
                probe_settings: StdAtomicU64::new(policy.probes().to_word()),
                policy: Swap::new(policy),
                elapsed,
                listeners: builder.listeners.into_boxed_slice(),
                name: builder.name,
            }),
        }
    }

    /// The breaker's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Asks to make a call. `Ok` carries a [`Permit`]: make the call, then
    /// [`record`](Permit::record) its outcome. Dropping the permit without an outcome
    /// records [`Outcome::Ignored`] and releases its slot.
    ///
    /// In the closed state this is one atomic load and no write to the state word.
    ///
    /// ```
    /// use cutout::{CircuitBreaker, Outcome};
    ///
    /// let breaker = CircuitBreaker::builder().build()?;
    /// let permit = breaker.try_acquire()?;
    /// // ... make the call ...
    /// permit.record(Outcome::Success);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn try_acquire(&self) -> Result<Permit<'_>, Rejected> {
        self.try_acquire_compact()
            .map_err(CompactRejected::to_rejected)
    }

    /// Like [`try_acquire`](Self::try_acquire), but the permit owns a handle to the breaker
    /// (for futures that must be `'static`). Costs one reference-count increment.
    #[inline]
    pub fn try_acquire_owned(&self) -> Result<OwnedPermit, Rejected> {
        self.try_acquire_owned_compact()
            .map_err(CompactRejected::to_rejected)
    }

    /// Like [`try_acquire`](Self::try_acquire), with the rejection packed in one word
    /// ([`CompactRejected`]): for middleware that keeps the rejection (in a service, then
    /// a response future) before anyone reads it.
    #[inline]
    pub fn try_acquire_compact(&self) -> Result<Permit<'_>, CompactRejected> {
        let generation = self.shared.acquire()?;
        Ok(Permit {
            shared: &self.shared,
            ticket: Ticket::new(generation, self.shared.start()),
        })
    }

    /// Like [`try_acquire_owned`](Self::try_acquire_owned), with the rejection packed in
    /// one word ([`CompactRejected`]).
    #[inline]
    pub fn try_acquire_owned_compact(&self) -> Result<OwnedPermit, CompactRejected> {
        let generation = self.shared.acquire()?;
        Ok(OwnedPermit {
            shared: Some(self.shared.clone()),
            ticket: Ticket::new(generation, self.shared.start()),
        })
    }

    /// Runs `f` if the breaker admits it; `Err` is a failure, `Ok` a success. A panic in `f`
    /// records nothing but releases the slot (as [`Outcome::Ignored`]).
    #[inline(always)]
    pub fn call<T, E>(&self, f: impl FnOnce() -> Result<T, E>) -> Result<T, CallError<E>> {
        self.call_with(default_classify, f)
    }

    /// Runs `f` if the breaker admits it, and records the outcome `classify` gives its
    /// result.
    ///
    /// ```
    /// use cutout::{CallError, CircuitBreaker, Outcome};
    ///
    /// let breaker = CircuitBreaker::builder().failure_threshold(1).build()?;
    /// // A "not found" is the caller's problem, not the dependency's: ignore it.
    /// let classify = |r: &Result<u32, &str>| match r {
    ///     Err(e) if *e == "not found" => Outcome::Ignored,
    ///     Ok(_) => Outcome::Success,
    ///     Err(_) => Outcome::Failure,
    /// };
    /// assert_eq!(breaker.call_with(classify, || Err("not found")), Err(CallError::Inner("not found")));
    /// assert_eq!(breaker.state(), cutout::State::Closed);
    /// # Ok::<(), cutout::ConfigError>(())
    /// ```
    #[inline(always)]
    pub fn call_with<T, E>(
        &self,
        classify: impl FnOnce(&Result<T, E>) -> Outcome,
        f: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, CallError<E>> {
        let permit = self.try_acquire()?;
        let result = f();
        permit.record(classify(&result));
        result.map_err(CallError::Inner)
    }

    /// Awaits `future` if the breaker admits it; `Err` is a failure, `Ok` a success. The
    /// permit is taken when the returned future is first polled. Dropping the returned
    /// future before it finishes (a cancelled call) releases the slot and records
    /// [`Outcome::Ignored`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use cutout::CircuitBreaker;
    ///
    /// let breaker = CircuitBreaker::builder().build().unwrap();
    /// let paid = breaker.call_async(async { Ok::<_, std::io::Error>("paid") }).await;
    /// assert_eq!(paid.unwrap(), "paid");
    /// # }
    /// ```
    pub async fn call_async<T, E>(
        &self,
        future: impl Future<Output = Result<T, E>>,
    ) -> Result<T, CallError<E>> {
        self.call_async_with(default_classify, future).await
    }

    /// Awaits `future` if the breaker admits it, and records the outcome `classify` gives its
    /// result. See [`call_async`](Self::call_async).
    pub async fn call_async_with<T, E>(
        &self,
        classify: impl FnOnce(&Result<T, E>) -> Outcome,
        future: impl Future<Output = Result<T, E>>,
    ) -> Result<T, CallError<E>> {
        let permit = self.try_acquire()?;
        let result = future.await;
        permit.record(classify(&result));
        result.map_err(CallError::Inner)
    }

    /// The current state. A circuit whose open time has ended reads as
    /// [`State::Open`] until a call arrives and turns it half-open.
    pub fn state(&self) -> State {
        self.shared.load().state()
    }

    /// How long until an open circuit ends its open time, or a full half-open circuit's probe
    /// lease ends; `None` otherwise.
    pub fn retry_after(&self) -> Option<Duration> {
        let s = self.shared.load();
        let until = s.deadline().or(match s.state() {
            State::HalfOpen if s.probes() >= self.shared.policy.load().half_open_max_calls => {
                s.lease_deadline()
            }
            _ => None,
        })?;
        Some(ticks_to_duration(
            until.saturating_sub(self.shared.now_ticks()),
        ))
    }

    /// Forces the circuit open: every call is rejected with [`Rejected::ForcedOpen`] until
    /// [`reset`](Self::reset). Permits out at the time become stale.
    pub fn force_open(&self) {
        self.shared.command(Command::ForceOpen);
    }

    /// Forces the circuit closed: every call is admitted and counted, nothing trips, until
    /// [`reset`](Self::reset).
    pub fn force_closed(&self) {
        self.shared.command(Command::ForceClosed);
    }

    /// Holds the circuit open for `hold` from now, on a signal from outside this breaker
    /// (another instance's trip, relayed by the `cutout-fleet` crate), capped at the
    /// breaker's own base open duration.
    ///
    /// A closed circuit trips open (one transition, cause [`Cause::Remote`], generation
    /// bumped so permits out become stale); an open one ends its open time no sooner than
    /// `now + hold` (no transition). It never closes a circuit, never shortens an open time,
    /// and leaves half-open (recovery follows the breaker's own probes) and the forced
    /// states alone. One compare-exchange loop, like every transition; the call path is
    /// unchanged. Returns whether the state word changed.
    ///
    /// ```
    /// use cutout::{CircuitBreaker, ManualClock, State};
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let breaker = CircuitBreaker::builder()
    ///     .open_duration(Duration::from_secs(10))
    ///     .build_with_clock(clock.clone())?;
    /// assert!(breaker.hold_open(Duration::from_secs(60)));
    /// assert_eq!(breaker.state(), State::Open);
    /// // Capped at the breaker's own open duration.
    /// assert_eq!(breaker.retry_after(), Some(Duration::from_secs(10)));
    /// # Ok::<(), cutout::ConfigError>(())
    /// ```
    pub fn hold_open(&self, hold: Duration) -> bool {
        let hold = duration_to_ticks(hold).min(self.shared.policy.load().open.base_ticks);
        if hold == 0 {
            return false;
        }
        let now = self.shared.now_ticks();
        let until = now.saturating_add(hold);
        let (cause, prev, written) = self
            .shared
            .update(self.shared.load(), |s| state::hold_open(s, until));
        if let (Some(cause), Some(next)) = (cause, written) {
            self.shared.transitioned(prev, next, cause, now);
        }
        written.is_some()
    }

    /// Closes the circuit with a clean slate: no failures, no backoff. Ends a forced state.
    pub fn reset(&self) {
        self.shared.command(Command::Reset);
        if let Some(window) = &self.shared.window {
            window.clear();
        }
    }

    /// Changes the settings of the running breaker to those of `settings`, keeping its state,
    /// counts and permits in flight: thresholds, probe limits and lease, open durations
    /// (constant or exponential, backoff, cap, jitter), and the sliding window's rates,
    /// minimum calls and slow-call threshold. Only the settings are read from
    /// `settings`; its name, listeners, metrics and tracing are the breaker's own and stay.
    /// The jitter seed stays unless `settings` sets one.
    ///
    /// The change is one atomic swap: every decision (admit, record, trip, open time) is
    /// made under either the old settings or the new ones, never a mix, and the next
    /// decision after `reconfigure` returns uses the new ones. Nothing on the call path takes
    /// a lock or writes shared memory for it; the closed success path does not read the
    /// settings at all. Counts keep their meaning: a circuit closed with 4 consecutive
    /// failures trips on the next failure if the new threshold is at most 5; an open
    /// circuit keeps the deadline it was given, and the next open time is computed with
    /// the new durations.
    ///
    /// New window rates are judged at once against the window's counts: a closed circuit
    /// whose window already breaks the new rates trips in `reconfigure`, as the next call
    /// would have tripped it. A call judged by the window reads the rates after its count
    /// lands, behind a fence that pairs with one in `reconfigure`, so a call racing the
    /// change is judged under the new rates by one of the two (a loom model checks it).
    ///
    /// Invalid settings return the [`ConfigError`] the builder would, and change nothing.
    /// The settings that shape the live counts cannot change on a running breaker and
    /// return [`ConfigError::NotReconfigurable`]: adding or removing the rate window
    /// (`setting: "window"`), its shape (`"sliding window"`), turning the slow-call rate on
    /// or off (`"slow-call rate"`), and the half-open success rate's tolerated failures
    /// (`"half-open success rate"`). On success every listener gets
    /// [`Listener::on_reconfigured`].
    ///
    /// ```
    /// use cutout::{CircuitBreaker, ConfigError, ManualClock, Outcome, State};
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let breaker = CircuitBreaker::builder()
    ///     .failure_threshold(5)
    ///     .build_with_clock(clock.clone())?;
    /// for _ in 0..2 {
    ///     breaker.try_acquire()?.record(Outcome::Failure);
    /// }
    /// // Tighter: the third consecutive failure now trips, for 10 s.
    /// breaker.reconfigure(
    ///     CircuitBreaker::builder()
    ///         .failure_threshold(3)
    ///         .open_duration(Duration::from_secs(10)),
    /// )?;
    /// assert_eq!(breaker.stats().consecutive_failures, 2); // the count was kept
    /// breaker.try_acquire()?.record(Outcome::Failure);
    /// assert_eq!(breaker.state(), State::Open);
    /// assert_eq!(breaker.retry_after(), Some(Duration::from_secs(10)));
    ///
    /// // Invalid settings change nothing.
    /// assert_eq!(
    ///     breaker.reconfigure(CircuitBreaker::builder().failure_threshold(0)),
    ///     Err(ConfigError::ZeroFailureThreshold)
    /// );
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn reconfigure(&self, settings: Builder) -> Result<(), ConfigError> {
        let mut policy = settings.policy()?;
        let current = self.shared.policy.load();
        match (&policy.window, &current.window) {
            (None, None) => {}
            (Some(new), Some(old)) if new.shape != old.shape => {
                return Err(ConfigError::NotReconfigurable {
                    setting: "sliding window",
                });
            }
            (Some(new), Some(old)) if new.slow_rate.is_some() != old.slow_rate.is_some() => {
                // Whether permits are timed is decided when the breaker is built.
                return Err(ConfigError::NotReconfigurable {
                    setting: "slow-call rate",
                });
            }
            (Some(_), Some(_)) => {}
            _ => return Err(ConfigError::NotReconfigurable { setting: "window" }),
        }
        if policy.probe_failures_allowed != current.probe_failures_allowed {
            // The half-open payload encodes successes with this radix (see `state`).
            return Err(ConfigError::NotReconfigurable {
                setting: "half-open success rate",
            });
        }
        if settings.jitter_seed.is_none() {
            policy.open.seed = current.open.seed;
        }
        drop(current);
        let failure_threshold = policy.failure_threshold;
        let probes = policy.probes().to_word();
        self.shared.policy.store(policy);
        self.shared
            .failure_threshold
            .store(failure_threshold, Ordering::Relaxed);
        self.shared.probe_settings.store(probes, Ordering::Relaxed);
        let change = Reconfigured {
            generation: self.shared.load().generation(),
            at: ticks_to_duration(self.shared.now_ticks()),
        };
        for l in self.shared.listeners.iter() {
            l.on_reconfigured(&self.shared.name, &change);
        }
        if let Some(window) = &self.shared.window {
            self.shared.rejudge(window);
        }
        Ok(())
    }

    /// The counts in the sliding window of the rate policies, or `None` if no rate is set.
    /// The window counts the current closed period only: it reads empty while the circuit
    /// is not closed, and starts empty each time it closes. See [`window`](crate::window).
    pub fn window_stats(&self) -> Option<WindowStats> {
        let window = self.shared.window.as_ref()?;
        let s = self.shared.load();
        if s.state() != State::Closed {
            return Some(WindowStats::default());
        }
        let now = if window.policy.needs_time() {
            self.shared.window_ticks()
        } else {
            0
        };
        Some(
            window
                .counts(s.generation(), now, &self.shared.counters)
                .into(),
        )
    }

    /// A snapshot of the state and the lifetime counters.
    ///
    /// ```
    /// use cutout::{CircuitBreaker, Outcome};
    ///
    /// let breaker = CircuitBreaker::builder().build()?;
    /// breaker.try_acquire()?.record(Outcome::Success);
    /// drop(breaker.try_acquire()?);
    /// let stats = breaker.stats();
    /// assert_eq!((stats.admitted, stats.successes, stats.ignored), (2, 1, 1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn stats(&self) -> Stats {
        let s = self.shared.load();
        let totals = self.shared.counters.totals();
        Stats {
            state: s.state(),
            generation: s.generation(),
            consecutive_failures: s.failures(),
            half_open_successes: s.successes()
                / (self.shared.policy.load().probe_failures_allowed + 1),
            probes_in_flight: s.probes(),
            backoff_step: s.backoff(),
            retry_after: self.retry_after(),
            admitted: totals.admitted,
            successes: totals.successes,
            failures: totals.failures,
            ignored: totals.ignored,
            rejected: totals.rejected,
            trips: self.shared.trips.load(std::sync::atomic::Ordering::Relaxed),
            stale: self.shared.stale.load(std::sync::atomic::Ordering::Relaxed),
            probes: totals.probes,
        }
    }

    /// Takes a [`stats`](Self::stats) snapshot, sends it to every listener
    /// ([`Listener::on_stats`]) and returns it. Call it where counts are exported on a
    /// schedule: before rendering a metrics scrape, or from a periodic task. Sums the
    /// per-thread counters once; nothing on the call path changes.
    ///
    /// ```
    /// use cutout::{CircuitBreaker, Listener, Outcome, Stats};
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// use std::sync::Arc;
    ///
    /// #[derive(Default)]
    /// struct Successes(AtomicU64);
    ///
    /// impl Listener for Successes {
    ///     fn on_stats(&self, _breaker: &str, stats: &Stats) {
    ///         self.0.store(stats.successes, Ordering::Relaxed);
    ///     }
    ///     fn wants_call_events(&self) -> bool {
    ///         false
    ///     }
    /// }
    ///
    /// let exported = Arc::new(Successes::default());
    /// let breaker = CircuitBreaker::builder().listener(exported.clone()).build()?;
    /// breaker.try_acquire()?.record(Outcome::Success);
    /// assert_eq!(breaker.publish_stats().successes, 1);
    /// assert_eq!(exported.0.load(Ordering::Relaxed), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn publish_stats(&self) -> Stats {
        let stats = self.stats();
        for l in self.shared.listeners.iter() {
            l.on_stats(&self.shared.name, &stats);
        }
        stats
    }

    /// The breaker's clock reading, since the breaker was built.
    pub fn elapsed(&self) -> Duration {
        self.shared.elapsed.now()
    }

    /// Turns this handle into a `&'static CircuitBreaker` that lives until the process
    /// ends (the handle is never dropped, so neither is the breaker).
    ///
    /// A `&'static` breaker's [`try_acquire`](Self::try_acquire) gives a
    /// `Permit<'static>`, which a `'static` future can hold with no reference count: a
    /// per-request clone copies a pointer, and recording writes nothing shared unless the
    /// state changes. Use it for breakers made once at start-up (a `static` built in a
    /// `std::sync::LazyLock` works the same way); each call leaks one handle.
    ///
    /// ```
    /// use cutout::{CircuitBreaker, Outcome};
    ///
    /// let breaker: &'static CircuitBreaker = CircuitBreaker::builder().build()?.leak();
    /// let permit: cutout::Permit<'static> = breaker.try_acquire()?;
    /// std::thread::spawn(move || permit.record(Outcome::Success)).join().unwrap();
    /// assert_eq!(breaker.stats().successes, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn leak(self) -> &'static CircuitBreaker {
        Box::leak(Box::new(self))
    }

    /// Whether `self` and `other` are handles to one breaker.
    pub fn ptr_eq(&self, other: &CircuitBreaker) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }
}

impl fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("name", &self.shared.name)
            .field("state", &self.shared.load())
            .field("policy", &*self.shared.policy.load())
            .finish_non_exhaustive()
    }
}

/// The default classification: `Ok` is a success, `Err` a failure.
pub(crate) fn default_classify<T, E>(result: &Result<T, E>) -> Outcome {
    match result {
        Ok(_) => Outcome::Success,
        Err(_) => Outcome::Failure,
    }
}

/// Time since the origin to ticks, saturating at `MAX_TICK`.
fn duration_to_ticks(elapsed: Duration) -> u64 {
    whole_millis(elapsed).min(MAX_TICK)
}

/// How long a call took, as far as the breaker knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timing {
    /// Not timed.
    Untimed,
    /// Started at this many [`Ticket::START_UNIT_NANOS`] since the origin, plus one
    /// (never 0).
    Since(u64),
    /// Took this long, as the caller measured.
    Took(Duration),
}

/// What a permit carries besides its breaker, in one word: the generation it was admitted
/// in (the low `GENERATION_WIDTH` bits) and, when calls are timed, its start (above them:
/// units of [`START_UNIT_NANOS`](Self::START_UNIT_NANOS) since the origin, plus one; 0 when
/// untimed).
///
/// One word, so that moving a permit (from a tower service's reserved slot into its
/// response future, say) is one 8-byte copy: two words written one by one and read back as
/// one 16-byte load stall the processor's store forwarding, several nanoseconds a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ticket(u64);

impl Ticket {
    /// The start's unit: 256 ns, so 54 bits hold 146 years of uptime; a slow call's
    /// duration is measured to this unit (the start rounded up: never longer than it was).
    const START_UNIT_NANOS: u64 = 256;
    /// The largest start (a breaker older than 146 years saturates here).
    const MAX_START: u64 = (1 << (64 - state::GENERATION_WIDTH)) - 1;

    #[inline]
    fn new(generation: u16, started: u64) -> Ticket {
        Ticket(
            (started.min(Self::MAX_START) << state::GENERATION_WIDTH)
                | (u64::from(generation) & ((1 << state::GENERATION_WIDTH) - 1)),
        )
    }

    /// The latest start a ticket holds, as a time since the origin.
    fn latest_start() -> Duration {
        Duration::from_nanos((Self::MAX_START - 1) * Self::START_UNIT_NANOS)
    }

    #[inline]
    fn generation(self) -> u16 {
        (self.0 & ((1 << state::GENERATION_WIDTH) - 1)) as u16
    }

    #[inline]
    fn timing(self) -> Timing {
        Timing::from_start(self.0 >> state::GENERATION_WIDTH)
    }
}

impl Timing {
    /// From a permit's start (0: untimed).
    #[inline]
    fn from_start(started: u64) -> Timing {
        if started == 0 {
            Timing::Untimed
        } else {
            Timing::Since(started)
        }
    }
}

impl Shared {
    #[inline]
    fn load(&self) -> Snapshot {
        Snapshot(self.word.load(Ordering::Acquire))
    }

    /// Ticks since the breaker was built, saturating at `MAX_TICK`, for the state
    /// machine's deadlines (on a `MonotonicClock`, its coarse twin: see there).
    #[inline]
    fn now_ticks(&self) -> u64 {
        // A tick is one millisecond.
        const _: () = assert!(TICK.as_nanos() == 1_000_000);
        self.elapsed.deadline_millis().min(MAX_TICK)
    }

    /// Now in ticks, for a time window's buckets: the clock's precise reading (see
    /// [`MonotonicClock`](crate::MonotonicClock) for the coarse one of
    /// [`now_ticks`](Self::now_ticks)).
    #[inline]
    fn window_ticks(&self) -> u64 {
        self.elapsed.millis().min(MAX_TICK)
    }

    /// The hot path: one load; closed admits without a write.
    #[inline]
    fn acquire(&self) -> Result<u16, CompactRejected> {
        let s = self.load();
        if s.state_bits() == CLOSED_BITS {
            self.counters.admitted();
            return Ok(s.generation());
        }
        let admitted = self.acquire_slow(s);
        match CompactRejected::from_admission(admitted) {
            Some(refusal) => Err(refusal),
            None => Ok(admitted as u16),
        }
    }

    #[cold]
    #[inline(never)]
    fn acquire_slow(&self, s: Snapshot) -> u64 {
        // Forced open rejects whatever the time: no clock read.
        if s.state() == State::ForcedOpen {
            return self.reject(CompactRejected::FORCED_OPEN).admission();
        }
        let now = self.now_ticks();
        // Open and before the deadline, the common case while open: a rejection that
        // changes nothing, decided without the general transition.
        if let Some(until) = state::open_rejects(s, now) {
            return self.reject(CompactRejected::open(until - now)).admission();
        }
        // Half-open with a probe slot free, the steady case while probing: one
        // compare-exchange, without the general transition (a lost race takes it below).
        if let Some(next) = state::take_probe(s, now, self.probe_settings()) {
            if self
                .word
                .compare_exchange(s.0, next.0, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                self.probe_admitted(s.generation());
                return u64::from(s.generation());
            }
        }
        match self.acquire_general(s, now) {
            Ok(generation) => u64::from(generation),
            Err(refusal) => refusal.admission(),
        }
    }

    /// [`acquire_slow`](Self::acquire_slow) past its steady cases: the general transition
    /// (the open time over, a probe's lease run out, a lost race).
    #[inline(never)]
    fn acquire_general(&self, s: Snapshot, now: u64) -> Result<u16, CompactRejected> {
        let (decision, prev, written) =
            self.update(s, |s| state::acquire(s, now, self.probe_settings()));
        match decision {
            Acquire::Admitted {
                generation,
                probe,
                cause,
            } => {
                if let (Some(cause), Some(next)) = (cause, written) {
                    self.transitioned(prev, next, cause, now);
                }
                if probe {
                    self.probe_admitted(generation);
                } else {
                    self.counters.admitted();
                }
                Ok(generation)
            }
            rejected => {
                let refusal = match rejected {
                    Acquire::RejectedOpen { until } => {
                        CompactRejected::open(until.saturating_sub(now))
                    }
                    Acquire::RejectedHalfOpenFull { until } => {
                        CompactRejected::half_open_full(until.saturating_sub(now))
                    }
                    _ => CompactRejected::FORCED_OPEN,
                };
                Err(self.reject(refusal))
            }
        }
    }

    /// Counts an admitted probe and tells the listeners that want per-call events.
    #[inline]
    fn probe_admitted(&self, generation: u16) {
        self.counters.admitted_probe();
        if self.call_events {
            self.notify_probe_admitted(generation);
        }
    }

    #[inline(never)]
    fn notify_probe_admitted(&self, generation: u16) {
        for l in self.listeners.iter() {
            l.on_probe_admitted(&self.name, generation);
        }
    }

    /// The live probe limit and lease (see `probe_settings`).
    #[inline]
    fn probe_settings(&self) -> state::ProbeSettings {
        state::ProbeSettings::from_word(
            self.probe_settings
                .load(std::sync::atomic::Ordering::Relaxed),
        )
    }

    /// Counts a rejection and tells the listeners that want per-call events.
    #[inline]
    fn reject(&self, refusal: CompactRejected) -> CompactRejected {
        self.counters.rejected();
        if self.call_events {
            self.notify_rejected(refusal);
        }
        refusal
    }

    #[inline(never)]
    fn notify_rejected(&self, refusal: CompactRejected) {
        let rejection = refusal.to_rejected();
        for l in self.listeners.iter() {
            l.on_rejected(&self.name, &rejection);
        }
    }

    /// Records an outcome. Closed with nothing to change (a success with no failures
    /// counted, or an ignored call) is one load and no write to the state word.
    #[inline]
    fn record(&self, generation: u16, outcome: Outcome) {
        self.record_timed(generation, outcome, Timing::Untimed);
    }

    /// [`record`](Self::record), feeding the sliding window (if any) with the call's time.
    ///
    /// The common case inline: closed, same generation, nothing to change in the word, no
    /// listener that wants outcomes, and no window, or a count window whose claim settles
    /// the success. A time window's success with nothing else to do is one out-of-line
    /// call ([`record_window_success`](Self::record_window_success)); the rest goes to
    /// [`record_rest`](Self::record_rest).
    #[inline(always)]
    fn record_timed(&self, generation: u16, outcome: Outcome, timing: Timing) {
        let local = self.counters.recorded(outcome);
        let s = self.load();
        // Closed, same generation, and (success with no failures, or ignored): no write.
        let current = s.0 & ((1 << (STATE_WIDTH + state::GENERATION_WIDTH)) - 1)
            == (generation as u64) << state::GENERATION_SHIFT;
        let unchanged = current
            && (outcome == Outcome::Ignored
                || (outcome == Outcome::Success && s.failures_bits() == 0));
        if !(unchanged && self.plain_record) {
            if outcome == Outcome::Ignored && !current {
                // Not closed in the permit's generation. A probe given back (a cancelled
                // call, say), the steady case while probing, is one compare-exchange here;
                // a lost race and the rest (a stale permit) take the general path. No
                // time window to feed: windows count closed calls only.
                if let Some(next) = state::give_back_probe(s, generation) {
                    if self
                        .word
                        .compare_exchange(s.0, next.0, Ordering::AcqRel, Ordering::Acquire)
                        .is_ok()
                    {
                        if self.record_events {
                            self.notify_recorded(Outcome::Ignored, false);
                        }
                        return;
                    }
                }
                return self.record_slow(s, generation, Outcome::Ignored, None);
            }
            if current && self.plain_record && outcome != Outcome::Ignored {
                // Closed, no window, no listener for outcomes: a failure under the threshold
                // or the success that clears the failures is one compare-exchange, inline.
                // What `state::record` would write; anything else (a trip, a lost race)
                // takes the general path below.
                let failures = s.failures_bits();
                let next = if outcome == Outcome::Success {
                    Some(s.with_failures_bits(0))
                } else if failures + 1 < u64::from(self.failure_threshold.load(Ordering::Relaxed)) {
                    Some(s.with_failures_bits(failures + 1))
                } else {
                    None
                };
                if let Some(next) = next {
                    if self
                        .word
                        .compare_exchange(s.0, next.0, Ordering::AcqRel, Ordering::Acquire)
                        .is_ok()
                    {
                        return;
                    }
                }
            }
            if unchanged && !self.record_events && outcome == Outcome::Success {
                if let Some(window) = &self.window {
                    if window.policy.needs_time() {
                        // A time window's steady state: a success in the bucket of the
                        // thread's last call, counted in its own slot, inline.
                        if let Some(local) = local {
                            if window.claim_own_success(generation, || self.window_ticks(), local) {
                                return;
                            }
                        }
                        return self.record_window_success(window, generation, timing);
                    }
                    // A count window's steady state ends in the claim, inline: no clock.
                    let claimed = window.claim_count(generation, false);
                    if claimed != Claim::Done {
                        self.feed(window, generation, outcome, timing, claimed);
                    }
                    return;
                }
            }
            self.record_rest(s, unchanged, current, generation, outcome, timing);
        }
    }

    /// A success with nothing to write to the word and no one to tell, that the thread's
    /// own count did not take: only the time window to feed (the thread's first call in a
    /// bucket, or a thread without a slot). Out of line, so that the closed path does not
    /// carry the window's code.
    #[inline(never)]
    fn record_window_success(&self, window: &Window, generation: u16, timing: Timing) {
        let claimed = window.claim(generation, false, || self.window_ticks(), &self.counters);
        if claimed != Claim::Done {
            self.feed(window, generation, Outcome::Success, timing, claimed);
        }
    }

    /// The part of [`record_timed`](Self::record_timed) past the common case.
    #[inline(never)]
    fn record_rest(
        &self,
        s: Snapshot,
        unchanged: bool,
        current: bool,
        generation: u16,
        outcome: Outcome,
        timing: Timing,
    ) {
        if !unchanged {
            self.record_slow(s, generation, outcome, None);
        } else if self.record_events {
            // Nothing to change in the word: only the listeners to tell.
            self.notify_recorded(outcome, false);
        }
        if let Some(window) = &self.window {
            if current && outcome != Outcome::Ignored {
                // The steady state of a count window (the call's slot already holds its
                // result) ends in the claim: no clock read, no call.
                let claimed = window.claim(
                    generation,
                    outcome == Outcome::Failure,
                    || self.window_ticks(),
                    &self.counters,
                );
                if claimed != Claim::Done {
                    self.feed(window, generation, outcome, timing, claimed);
                }
            }
        }
    }

    /// The permit's start time: [`Ticket::START_UNIT_NANOS`] since the origin plus one when
    /// calls are timed, 0 otherwise (no clock read).
    #[inline]
    fn start(&self) -> u64 {
        if self.times_calls {
            self.start_now()
        } else {
            0
        }
    }

    #[inline(never)]
    fn start_now(&self) -> u64 {
        // Rounded up: a call's measured duration is at most its own, so rounding never
        // makes a call slow.
        let units = self
            .elapsed
            .now()
            .as_nanos()
            .div_ceil(u128::from(Ticket::START_UNIT_NANOS));
        u64::try_from(units)
            .unwrap_or(Ticket::MAX_START - 1)
            .min(Ticket::MAX_START - 1)
            + 1
    }

    /// Feeds the sliding window one call of the closed `generation`, after
    /// [`Window::claim`] left it `claimed`; trips the circuit if a rate policy says so,
    /// through the same compare-exchange as every transition.
    #[inline(never)]
    fn feed(
        &self,
        window: &Window,
        generation: u16,
        outcome: Outcome,
        timing: Timing,
        claimed: Claim,
    ) {
        let p = &window.policy;
        let timed_now = p.times_calls() && matches!(timing, Timing::Since(_));
        let since = (p.needs_time() || timed_now).then(|| self.elapsed.now());
        let slow = p.times_calls() && {
            // The live threshold (the window's shape is its own).
            let threshold = self
                .policy
                .load()
                .window
                .as_ref()
                .unwrap_or(p)
                .slow_threshold;
            match timing {
                Timing::Untimed => false,
                Timing::Took(took) => took > threshold,
                Timing::Since(start) => since.is_some_and(|now| {
                    // `start <= MAX_START`: times the unit, at most 2^62 ns. Past the latest
                    // start a ticket holds (146 years), `now` saturates with it.
                    let started = Duration::from_nanos((start - 1) * Ticket::START_UNIT_NANOS);
                    now.min(Ticket::latest_start()).saturating_sub(started) > threshold
                }),
            }
        };
        let now = since.map_or(0, duration_to_ticks);
        let call = Call {
            failed: outcome == Outcome::Failure,
            slow,
        };
        let still_current = || {
            let s = self.load();
            s.state() == State::Closed && s.generation() == generation
        };
        if let Some(cause) = window.record(
            generation,
            call,
            now,
            claimed,
            &self.counters,
            |counts| {
                // The live rates, read after this call's count landed and a fence: a
                // `reconfigure` swaps the rates, fences, then judges the counts
                // (`rejudge`), so either it sees this count or this sees its rates.
                fence(Ordering::SeqCst);
                let policy = self.policy.load();
                policy.window.as_ref().unwrap_or(p).judge(counts)
            },
            still_current,
        ) {
            let now = if since.is_some() {
                now
            } else {
                self.now_ticks()
            };
            self.trip(generation, cause, now, &self.policy.load());
        }
    }

    /// Trips the closed `generation` for a rate `cause`, if it is still current.
    fn trip(&self, generation: u16, cause: Cause, now: u64, policy: &Policy) {
        let (decision, prev, written) = self.update(self.load(), |s| {
            state::trip(s, generation, cause, now, policy)
        });
        if let (Some(cause), Some(next)) = (decision, written) {
            self.transitioned(prev, next, cause, now);
        }
    }

    /// After the rates changed: judges the closed window under the live rates now, and
    /// trips if they say so (as the next call would).
    fn rejudge(&self, window: &Window) {
        // After the swap, before reading the counts: pairs with the fence in `feed`.
        fence(Ordering::SeqCst);
        let s = self.load();
        if s.state() != State::Closed {
            return;
        }
        let policy = self.policy.load();
        let Some(rates) = policy.window.as_ref() else {
            return;
        };
        let now = self.now_ticks();
        let at = if window.policy.needs_time() { now } else { 0 };
        if let Some(cause) = window.judge_now(s.generation(), at, &self.counters, rates) {
            self.trip(s.generation(), cause, now, &policy);
        }
    }

    /// Records an outcome with an upstream's retry-after: if it opens the circuit, the open
    /// time lasts at least `retry_after`.
    #[cold]
    #[inline(never)]
    fn record_with_retry_after(
        &self,
        generation: u16,
        outcome: Outcome,
        retry_after: Duration,
        timing: Timing,
    ) {
        self.counters.recorded(outcome);
        let s = self.load();
        self.record_slow(s, generation, outcome, Some(retry_after));
        if let Some(window) = &self.window {
            if s.0 & ((1 << (STATE_WIDTH + state::GENERATION_WIDTH)) - 1)
                == (generation as u64) << state::GENERATION_SHIFT
                && outcome != Outcome::Ignored
            {
                self.feed(window, generation, outcome, timing, Claim::Nothing);
            }
        }
    }

    #[cold]
    #[inline(never)]
    fn record_slow(
        &self,
        s: Snapshot,
        generation: u16,
        outcome: Outcome,
        retry_after: Option<Duration>,
    ) {
        // Only a transition needs the time (an open deadline, the event's timestamp), so the
        // clock is read lazily, at most once: a failure under the threshold reads no clock.
        let clock = std::cell::Cell::new(None);
        let now = || match clock.get() {
            Some(now) => now,
            None => {
                let now = self.now_ticks();
                clock.set(Some(now));
                now
            }
        };
        let (decision, prev, written) = match retry_after {
            // A probe given back (a cancelled call, say): no settings, no time.
            None if outcome == Outcome::Ignored => {
                self.update(s, |s| state::record_ignored(s, generation))
            }
            None => self.update(s, |s| {
                // The time only enters a word that opens the circuit: decide without it,
                // and again with it when the decision opens.
                let policy = self.policy.load();
                let untimed = state::record(s, generation, outcome, 0, &policy);
                match untimed.1 {
                    Some(next) if next.state() == State::Open => {
                        state::record(s, generation, outcome, now(), &policy)
                    }
                    _ => untimed,
                }
            }),
            Some(retry_after) => {
                let now = now();
                let ticks = retry_after.as_nanos().div_ceil(TICK.as_nanos());
                let open_until = now.saturating_add(u64::try_from(ticks).unwrap_or(MAX_TICK));
                self.update(s, |s| {
                    state::record_with_open_until(
                        s,
                        generation,
                        outcome,
                        now,
                        open_until,
                        &self.policy.load(),
                    )
                })
            }
        };
        let stale = decision == Record::Stale;
        if stale {
            self.stale
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        if let (Record::Counted { cause: Some(cause) }, Some(next)) = (decision, written) {
            self.transitioned(prev, next, cause, now());
        }
        if self.record_events {
            self.notify_recorded(outcome, stale);
        }
    }

    /// Tells the listeners about a recorded outcome; out of line, so the closed path stays
    /// small when no listener wants outcomes.
    #[inline(never)]
    fn notify_recorded(&self, outcome: Outcome, stale: bool) {
        for l in self.listeners.iter() {
            l.on_recorded(&self.name, outcome, stale);
        }
    }

    fn command(&self, command: Command) {
        let (cause, prev, written) = self.update(self.load(), |s| state::command(s, command));
        if let (Some(cause), Some(next)) = (cause, written) {
            let now = self.now_ticks();
            self.transitioned(prev, next, cause, now);
        }
    }

    /// The one compare-exchange loop: applies `f` to the current word until the write lands
    /// or `f` decides to write nothing. Returns the decision, the word it was made on, and
    /// the word written (if any).
    #[inline]
    fn update<D>(
        &self,
        mut current: Snapshot,
        mut f: impl FnMut(Snapshot) -> (D, Option<Snapshot>),
    ) -> (D, Snapshot, Option<Snapshot>) {
        loop {
            let (decision, next) = f(current);
            let Some(next) = next else {
                return (decision, current, None);
            };
            match self.word.compare_exchange_weak(
                current.0,
                next.0,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return (decision, current, Some(next)),
                Err(actual) => current = Snapshot(actual),
            }
        }
    }

    /// Called once per transition by the thread whose write made it.
    fn transitioned(&self, prev: Snapshot, next: Snapshot, cause: Cause, now: u64) {
        let open_for = next
            .deadline()
            .map(|d| ticks_to_duration(d.saturating_sub(now)));
        if next.state() == State::Open {
            self.trips
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        if self.listeners.is_empty() {
            return;
        }
        let transition = Transition {
            from: prev.state(),
            to: next.state(),
            cause,
            generation: next.generation(),
            at: ticks_to_duration(now),
            open_for,
        };
        for l in self.listeners.iter() {
            l.on_transition(&self.name, &transition);
        }
    }
}

/// Leave to make one call, from [`CircuitBreaker::try_acquire`]. Record the call's outcome
/// with [`record`](Self::record); dropping the permit records [`Outcome::Ignored`].
///
/// The permit carries the generation it was admitted in: if the breaker has moved on since
/// (tripped, re-opened, been reset), the outcome is counted in the lifetime counters but
/// changes no state.
#[must_use = "a permit records Ignored when dropped; record the call's outcome"]
pub struct Permit<'a> {
    shared: &'a Shared,
    /// The generation and, if calls are timed, the start: one word (see [`Ticket`]).
    ticket: Ticket,
}

impl Permit<'_> {
    /// Records the call's outcome.
    #[inline(always)]
    pub fn record(self, outcome: Outcome) {
        // Not dropped: the fields stay in registers, and `Drop` (which records Ignored)
        // does not run.
        let permit = ManuallyDrop::new(self);
        permit
            .shared
            .record_timed(permit.ticket.generation(), outcome, permit.ticket.timing());
    }

    /// Records the call's outcome and how long it took, as the caller measured it, for the
    /// [slow-call rate](crate::Builder::slow_call_rate) (the permit's own timing is not
    /// used). Without a slow-call rate the duration is not looked at.
    ///
    /// ```
    /// use cutout::{CircuitBreaker, ManualClock, Outcome, State};
    /// use std::time::Duration;
    ///
    /// let breaker = CircuitBreaker::builder()
    ///     .slow_call_rate(0.5, Duration::from_secs(1))
    ///     .minimum_calls(1)
    ///     .build_with_clock(ManualClock::new())?;
    /// let permit = breaker.try_acquire()?;
    /// permit.record_with_duration(Outcome::Success, Duration::from_secs(1)); // not slower
    /// assert_eq!(breaker.state(), State::Closed);
    /// let permit = breaker.try_acquire()?;
    /// permit.record_with_duration(Outcome::Success, Duration::from_millis(1_001));
    /// assert_eq!(breaker.state(), State::Open);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn record_with_duration(self, outcome: Outcome, took: Duration) {
        let permit = ManuallyDrop::new(self);
        permit
            .shared
            .record_timed(permit.ticket.generation(), outcome, Timing::Took(took));
    }

    /// Records the call's outcome with the dependency's own estimate of when to come back
    /// (an HTTP `Retry-After`, a gRPC pushback): if this outcome opens the circuit, it stays
    /// open at least `retry_after` (up to the end of the clock's range), or longer if the
    /// configured open time is longer. An outcome that does not open the circuit ignores
    /// the hint.
    ///
    /// ```
    /// use cutout::{CircuitBreaker, ManualClock, Outcome, Rejected};
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let breaker = CircuitBreaker::builder()
    ///     .failure_threshold(1)
    ///     .open_duration(Duration::from_secs(5))
    ///     .build_with_clock(clock.clone())?;
    /// // "429 Too Many Requests, Retry-After: 120"
    /// breaker.try_acquire()?.record_with_retry_after(Outcome::Failure, Duration::from_secs(120));
    /// assert_eq!(
    ///     breaker.try_acquire().unwrap_err(),
    ///     Rejected::Open { retry_after: Duration::from_secs(120) }
    /// );
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn record_with_retry_after(self, outcome: Outcome, retry_after: Duration) {
        let permit = ManuallyDrop::new(self);
        permit.shared.record_with_retry_after(
            permit.ticket.generation(),
            outcome,
            retry_after,
            permit.ticket.timing(),
        );
    }

    /// The generation this permit was admitted in (wraps modulo 1024).
    pub fn generation(&self) -> u16 {
        self.ticket.generation()
    }
}

impl Drop for Permit<'_> {
    #[inline]
    fn drop(&mut self) {
        self.shared
            .record(self.ticket.generation(), Outcome::Ignored);
    }
}

impl fmt::Debug for Permit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit")
            .field("generation", &self.ticket.generation())
            .finish()
    }
}

/// A [`Permit`] that owns a handle to its breaker, from
/// [`CircuitBreaker::try_acquire_owned`]; `'static`, for futures and tasks.
#[must_use = "a permit records Ignored when dropped; record the call's outcome"]
pub struct OwnedPermit {
    shared: Option<Arc<Shared>>,
    /// The generation and, if calls are timed, the start: one word (see [`Ticket`]).
    ticket: Ticket,
}

impl OwnedPermit {
    /// Records the call's outcome.
    #[inline]
    pub fn record(mut self, outcome: Outcome) {
        if let Some(shared) = self.shared.take() {
            shared.record_timed(self.ticket.generation(), outcome, self.ticket.timing());
        }
    }

    /// Records the call's outcome and how long it took, as the caller measured it; see
    /// [`Permit::record_with_duration`].
    #[inline]
    pub fn record_with_duration(mut self, outcome: Outcome, took: Duration) {
        if let Some(shared) = self.shared.take() {
            shared.record_timed(self.ticket.generation(), outcome, Timing::Took(took));
        }
    }

    /// Records the call's outcome with the dependency's own estimate of when to come back
    /// (an HTTP `Retry-After`, a gRPC pushback): if this outcome opens the circuit, it stays
    /// open at least `retry_after` (up to the end of the clock's range), or longer if the
    /// configured open time is longer. An outcome that does not open the circuit ignores
    /// the hint.
    ///
    /// ```
    /// use cutout::{CircuitBreaker, ManualClock, Outcome, Rejected};
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let breaker = CircuitBreaker::builder()
    ///     .failure_threshold(1)
    ///     .open_duration(Duration::from_secs(5))
    ///     .build_with_clock(clock.clone())?;
    /// // "429 Too Many Requests, Retry-After: 120"
    /// breaker.try_acquire_owned()?.record_with_retry_after(Outcome::Failure, Duration::from_secs(120));
    /// assert_eq!(
    ///     breaker.try_acquire().unwrap_err(),
    ///     Rejected::Open { retry_after: Duration::from_secs(120) }
    /// );
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn record_with_retry_after(mut self, outcome: Outcome, retry_after: Duration) {
        if let Some(shared) = self.shared.take() {
            shared.record_with_retry_after(
                self.ticket.generation(),
                outcome,
                retry_after,
                self.ticket.timing(),
            );
        }
    }

    /// The generation this permit was admitted in (wraps modulo 1024).
    pub fn generation(&self) -> u16 {
        self.ticket.generation()
    }
}

impl Drop for OwnedPermit {
    #[inline]
    fn drop(&mut self) {
        if let Some(shared) = self.shared.take() {
            shared.record(self.ticket.generation(), Outcome::Ignored);
        }
    }
}

impl fmt::Debug for OwnedPermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedPermit")
            .field("generation", &self.ticket.generation())
            .finish()
    }
}

/// A snapshot of a breaker, from [`CircuitBreaker::stats`].
///
/// The lifetime counters add up once calls are quiet:
/// `admitted == successes + failures + ignored` (every admitted call reports exactly one
/// outcome, a dropped permit as ignored), and `rejected` counts the calls refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// The state.
    pub state: State,
    /// The current generation (wraps modulo 1024).
    pub generation: u16,
    /// Consecutive failures counted while closed.
    pub consecutive_failures: u32,
    /// Probe successes in the current half-open period.
    pub half_open_successes: u32,
    /// Probes admitted in the current half-open period and not yet reported.
    pub probes_in_flight: u32,
    /// Re-opens since the circuit last closed.
    pub backoff_step: u32,
    /// See [`CircuitBreaker::retry_after`].
    pub retry_after: Option<Duration>,
    /// Calls admitted.
    pub admitted: u64,
    /// Outcomes recorded as successes (stale ones included).
    pub successes: u64,
    /// Outcomes recorded as failures (stale ones included).
    pub failures: u64,
    /// Outcomes recorded as ignored, dropped permits included (stale ones included).
    pub ignored: u64,
    /// Calls rejected.
    pub rejected: u64,
    /// Transitions into open: trips from closed and re-opens from half-open.
    pub trips: u64,
    /// Outcomes from an older generation, which changed no state.
    pub stale: u64,
    /// Half-open probes admitted (each is also counted in `admitted`).
    pub probes: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn ticks_are_whole_milliseconds_saturating(secs in any::<u64>(), nanos in 0u32..1_000_000_000) {
            let d = Duration::new(secs, nanos);
            let expected = u64::try_from(d.as_nanos() / 1_000_000).unwrap_or(u64::MAX).min(MAX_TICK);
            prop_assert_eq!(duration_to_ticks(d), expected);
        }
    }

    #[test]
    fn a_ticket_holds_the_generation_and_the_start_in_one_word() {
        assert_eq!(std::mem::size_of::<Permit<'static>>(), 16);
        assert_eq!(std::mem::size_of::<OwnedPermit>(), 16);
        for generation in [0, 1, 511, 1023] {
            for started in [0, 1, 12_345, Ticket::MAX_START] {
                let t = Ticket::new(generation, started);
                assert_eq!(t.generation(), generation);
                assert_eq!(t.0 >> state::GENERATION_WIDTH, started);
            }
        }
        assert_eq!(Ticket::new(5, 0).timing(), Timing::Untimed);
        assert_eq!(Ticket::new(5, 7).timing(), Timing::Since(7));
        assert_eq!(Ticket::new(5, u64::MAX), Ticket::new(5, Ticket::MAX_START));
        // Generations wrap modulo 2^GENERATION_WIDTH, as in the state word.
        assert_eq!(Ticket::new(1024 + 3, 9).generation(), 3);
    }

    #[test]
    fn a_call_timed_from_an_odd_start_is_slow_only_past_its_threshold() {
        use crate::{ManualClock, SlidingWindow};
        let clock = ManualClock::new();
        let breaker = CircuitBreaker::builder()
            .failure_threshold(100)
            .sliding_window(SlidingWindow::Calls(1))
            .slow_call_rate(1.0, Duration::from_millis(100))
            .minimum_calls(1)
            .build_with_clock(clock.clone())
            .unwrap();
        // A start that is not a whole number of the ticket's units.
        clock.advance(Duration::from_nanos(1_000_000_001));
        let permit = breaker.try_acquire().unwrap();
        clock.advance(Duration::from_millis(100));
        permit.record(Outcome::Success);
        assert_eq!(breaker.state(), State::Closed, "exactly the threshold");
        let permit = breaker.try_acquire().unwrap();
        clock.advance(Duration::from_millis(100) + Duration::from_micros(1));
        permit.record(Outcome::Success);
        assert_eq!(breaker.state(), State::Open, "a microsecond past it");
    }

    #[test]
    fn refusals_become_the_public_rejections() {
        assert_eq!(
            CompactRejected::open(1_500).to_rejected(),
            Rejected::Open {
                retry_after: Duration::from_millis(1_500)
            }
        );
        assert_eq!(
            CompactRejected::half_open_full(0).to_rejected(),
            Rejected::HalfOpenFull {
                retry_after: Duration::ZERO
            }
        );
        assert_eq!(
            CompactRejected::FORCED_OPEN.to_rejected(),
            Rejected::ForcedOpen
        );
        assert_eq!(
            CompactRejected::open(u64::MAX).to_rejected(),
            Rejected::Open {
                retry_after: Duration::from_millis(MAX_TICK)
            }
        );
    }

    /// Counts its readings.
    #[derive(Default)]
    struct CountedClock(std::sync::atomic::AtomicU64);

    impl Clock for CountedClock {
        fn now(&self) -> Duration {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Duration::ZERO
        }
    }

    #[test]
    fn a_forced_open_rejection_reads_no_clock_and_an_open_one_reads_it_once() {
        let clock = Arc::new(CountedClock::default());
        let breaker = CircuitBreaker::builder()
            .failure_threshold(1)
            .build_with_clock(clock.clone())
            .unwrap();
        let reads = || clock.0.load(std::sync::atomic::Ordering::Relaxed);
        breaker.force_open();
        let before = reads();
        for _ in 0..3 {
            assert_eq!(breaker.try_acquire().unwrap_err(), Rejected::ForcedOpen);
        }
        assert_eq!(reads(), before);
        breaker.reset();
        breaker.try_acquire().unwrap().record(Outcome::Failure);
        assert_eq!(breaker.state(), State::Open);
        let before = reads();
        assert!(matches!(breaker.try_acquire(), Err(Rejected::Open { .. })));
        assert_eq!(reads(), before + 1);
    }

    #[test]
    fn ticks_at_the_edges() {
        assert_eq!(duration_to_ticks(Duration::ZERO), 0);
        assert_eq!(duration_to_ticks(Duration::from_nanos(999_999)), 0);
        assert_eq!(duration_to_ticks(Duration::from_millis(1)), 1);
        assert_eq!(duration_to_ticks(Duration::from_millis(MAX_TICK)), MAX_TICK);
        assert_eq!(duration_to_ticks(Duration::MAX), MAX_TICK);
    }
}
