//! The state word: everything the breaker decides with, in one `u64`.
//!
//! ```text
//!  63                                18 17       13 12            3 2      0
//! +------------------------------------+-----------+---------------+--------+
//! |          payload (by state)        |  backoff  |  generation   | state  |
//! +------------------------------------+-----------+---------------+--------+
//! ```
//!
//! | field        | bits    | width | meaning                                              | range                  |
//! |--------------|---------|-------|------------------------------------------------------|------------------------|
//! | `state`      | 0..3    | 3     | closed 0, open 1, half-open 2, forced open 3, forced closed 4 | 5..=7 unused   |
//! | `generation` | 3..13   | 10    | bumped by every transition; permits carry it         | wraps modulo 1024      |
//! | `backoff`    | 13..18  | 5     | re-opens since the circuit last closed               | 0..=31, saturates      |
//! | payload      | 18..64  | 46    | depends on `state`, below                            |                        |
//!
//! The payload, by state:
//!
//! | state                  | field       | bits   | width | meaning                                     | range                         |
//! |------------------------|-------------|--------|-------|---------------------------------------------|-------------------------------|
//! | closed, forced closed  | `failures`  | 18..50 | 32    | consecutive failures                        | 0..=threshold                 |
//! | open                   | `deadline`  | 18..58 | 40    | tick at which the open time ends            | 0..=2^40-1 ticks, saturates   |
//! | half-open              | `successes` | 18..25 | 7     | probe successes in this half-open period (see below) | 0..=127              |
//! | half-open              | `probes`    | 25..32 | 7     | probes admitted and not yet reported        | 0..=127                       |
//! | half-open              | `lease`     | 32..64 | 32    | tick, in units of 256 ticks, at which probes still out are given up | 0..=2^32-1, saturates |
//! | forced open            | (none)      |        |       |                                             |                               |
//!
//! Bits 50..64 (closed) and 58..64 (open) are reserved and always zero.
//!
//! **Half-open by rate.** With a half-open success rate (close once `S` of `M` probes
//! succeed; see [`Builder::half_open_success_rate`](crate::Builder::half_open_success_rate))
//! a period must count probe failures too, up to `F = M - S` of them, and the half-open
//! payload has no spare bit. The `successes` field then holds the pair as one number,
//! `successes * (F + 1) + failures`, which is below `S * (F + 1)`; the builder accepts a
//! rate only if that is at most 128 (every `M` up to 21 fits, and larger `M` with a rate
//! near 0 or 1). With `F = 0` (the default) the field is the plain success count.
//!
//! **Time** is kept in ticks of one millisecond since the breaker was built
//! ([`TICK`]). The tick count saturates at [`MAX_TICK`] (2^40 - 1 ms, about 34.8 years of
//! uptime): past that edge the clock stands still, so an open time computed then ends at
//! once and the breaker goes on working as if every open duration were zero. Nothing
//! overflows or panics. The half-open lease has a coarser unit (256 ms, rounded up) so
//! that the probe counts fit beside it.
//!
//! **Generations** wrap modulo 1024. A permit is stale when its generation differs from the
//! word's; a call that outlives exactly a multiple of 1024 transitions would be taken as
//! current. Every transition needs at least one call or one open time, so this needs a
//! call that hangs through 512 open/half-open cycles.
//!
//! Every transition is a pure function `(Snapshot, now) -> (decision, Option<Snapshot>)`
//! (`None`: nothing to write), applied by one compare-exchange loop in the breaker.

use std::fmt;
use std::time::Duration;

pub use crate::outcome::{Cause, Outcome};

/// One tick of the breaker's clock.
pub const TICK: Duration = Duration::from_millis(1);

/// Ticks to time; a tick is one millisecond.
#[inline]
pub(crate) fn ticks_to_duration(ticks: u64) -> Duration {
    const _: () = assert!(TICK.as_nanos() == 1_000_000);
    Duration::from_millis(ticks)
}

pub(crate) const STATE_SHIFT: u32 = 0;
pub(crate) const STATE_WIDTH: u32 = 3;
pub(crate) const GENERATION_SHIFT: u32 = STATE_SHIFT + STATE_WIDTH;
pub(crate) const GENERATION_WIDTH: u32 = 10;
// The window tells apart the generations this field holds, and holds every tick.
const _: () = assert!(GENERATION_WIDTH == crate::window::GENERATION_BITS);
pub(crate) const BACKOFF_SHIFT: u32 = GENERATION_SHIFT + GENERATION_WIDTH;
pub(crate) const BACKOFF_WIDTH: u32 = 5;
pub(crate) const PAYLOAD_SHIFT: u32 = BACKOFF_SHIFT + BACKOFF_WIDTH;

pub(crate) const FAILURES_SHIFT: u32 = PAYLOAD_SHIFT;
pub(crate) const FAILURES_WIDTH: u32 = 32;

pub(crate) const DEADLINE_SHIFT: u32 = PAYLOAD_SHIFT;
pub(crate) const DEADLINE_WIDTH: u32 = 40;

pub(crate) const SUCCESSES_SHIFT: u32 = PAYLOAD_SHIFT;
pub(crate) const SUCCESSES_WIDTH: u32 = 7;
pub(crate) const PROBES_SHIFT: u32 = SUCCESSES_SHIFT + SUCCESSES_WIDTH;
pub(crate) const PROBES_WIDTH: u32 = 7;
pub(crate) const LEASE_SHIFT: u32 = PROBES_SHIFT + PROBES_WIDTH;
pub(crate) const LEASE_WIDTH: u32 = 32;
/// log2 of the lease unit in ticks (256 ticks = 256 ms).
pub(crate) const LEASE_UNIT_SHIFT: u32 = 8;

const _: () = assert!(FAILURES_SHIFT + FAILURES_WIDTH <= 64);
const _: () = assert!(DEADLINE_SHIFT + DEADLINE_WIDTH <= 64);
const _: () = assert!(LEASE_SHIFT + LEASE_WIDTH == 64);
const _: () = assert!(LEASE_UNIT_SHIFT + LEASE_WIDTH == DEADLINE_WIDTH);

const fn mask(width: u32) -> u64 {
    (1u64 << width) - 1
}

/// The last tick the clock can express (about 34.8 years of uptime); the clock saturates here.
pub const MAX_TICK: u64 = mask(DEADLINE_WIDTH);
const _: () = assert!(MAX_TICK <= crate::window::MAX_TICK_HELD);
/// The largest number of half-open probes the word can count.
pub const MAX_PROBES: u32 = mask(PROBES_WIDTH) as u32;
/// The largest backoff step the word keeps.
pub(crate) const MAX_BACKOFF: u32 = mask(BACKOFF_WIDTH) as u32;
/// Generations wrap at this modulus.
pub(crate) const GENERATION_MASK: u16 = mask(GENERATION_WIDTH) as u16;
const MAX_LEASE: u64 = mask(LEASE_WIDTH);

/// The breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Calls pass; consecutive failures are counted.
    Closed,
    /// Calls are rejected until the open time ends.
    Open,
    /// A bounded number of probe calls pass; their outcomes close or re-open the circuit.
    HalfOpen,
    /// Forced open by [`CircuitBreaker::force_open`](crate::CircuitBreaker::force_open):
    /// every call is rejected until [`reset`](crate::CircuitBreaker::reset).
    ForcedOpen,
    /// Forced closed by [`CircuitBreaker::force_closed`](crate::CircuitBreaker::force_closed):
    /// every call passes and is counted, and nothing trips, until
    /// [`reset`](crate::CircuitBreaker::reset).
    ForcedClosed,
}

impl State {
    const fn to_bits(self) -> u64 {
        match self {
            State::Closed => 0,
            State::Open => 1,
            State::HalfOpen => 2,
            State::ForcedOpen => 3,
            State::ForcedClosed => 4,
        }
    }

    const fn from_bits(bits: u64) -> State {
        match bits {
            1 => State::Open,
            2 => State::HalfOpen,
            3 => State::ForcedOpen,
            4 => State::ForcedClosed,
            // 0, and 5..=7 which no transition writes.
            _ => State::Closed,
        }
    }

    /// The conventional numeric value for a state gauge: 0 closed, 1 open, 2 half-open,
    /// 3 forced open, 4 forced closed.
    pub const fn as_gauge(self) -> u8 {
        self.to_bits() as u8
    }

    /// A lowercase name, stable for use as a metric label: `closed`, `open`, `half_open`,
    /// `forced_open`, `forced_closed`.
    pub const fn as_str(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half_open",
            State::ForcedOpen => "forced_open",
            State::ForcedClosed => "forced_closed",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The bits of `State::Closed`: the hot path compares against this.
pub(crate) const CLOSED_BITS: u64 = State::Closed.to_bits();
/// The state bits of [`State::Open`].
pub(crate) const OPEN_BITS: u64 = State::Open.to_bits();
/// The state bits of [`State::HalfOpen`].
pub(crate) const HALF_OPEN_BITS: u64 = State::HalfOpen.to_bits();

/// A decoded copy of the state word.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Snapshot(pub(crate) u64);

macro_rules! field {
    ($get:ident, $set:ident, $shift:ident, $width:ident) => {
        #[inline]
        pub(crate) const fn $get(self) -> u64 {
            (self.0 >> $shift) & mask($width)
        }

        /// Sets the field; a value wider than the field is cut to its width (callers clamp).
        #[inline]
        #[must_use]
        pub(crate) const fn $set(self, value: u64) -> Self {
            let m = mask($width) << $shift;
            Snapshot((self.0 & !m) | ((value << $shift) & m))
        }
    };
}

impl Snapshot {
    field!(state_bits, with_state_bits, STATE_SHIFT, STATE_WIDTH);
    field!(
        generation_bits,
        with_generation_bits,
        GENERATION_SHIFT,
        GENERATION_WIDTH
    );
    field!(
        backoff_bits,
        with_backoff_bits,
        BACKOFF_SHIFT,
        BACKOFF_WIDTH
    );
    field!(
        failures_bits,
        with_failures_bits,
        FAILURES_SHIFT,
        FAILURES_WIDTH
    );
    field!(
        deadline_bits,
        with_deadline_bits,
        DEADLINE_SHIFT,
        DEADLINE_WIDTH
    );
    field!(
        successes_bits,
        with_successes_bits,
        SUCCESSES_SHIFT,
        SUCCESSES_WIDTH
    );
    field!(probes_bits, with_probes_bits, PROBES_SHIFT, PROBES_WIDTH);
    field!(lease_bits, with_lease_bits, LEASE_SHIFT, LEASE_WIDTH);

    /// The word of a new breaker: closed, generation 0, no failures.
    pub(crate) const INITIAL: Snapshot = Snapshot(0);

    /// A word in `state` with `generation` and `backoff`, and an empty payload.
    #[inline]
    pub(crate) const fn new(state: State, generation: u16, backoff: u32) -> Self {
        Snapshot(0)
            .with_state_bits(state.to_bits())
            .with_generation_bits(generation as u64)
            .with_backoff_bits(backoff as u64)
    }

    #[inline]
    pub(crate) const fn state(self) -> State {
        State::from_bits(self.state_bits())
    }

    #[inline]
    pub(crate) const fn generation(self) -> u16 {
        self.generation_bits() as u16
    }

    #[inline]
    pub(crate) const fn backoff(self) -> u32 {
        self.backoff_bits() as u32
    }

    /// Consecutive failures (closed and forced closed; 0 elsewhere).
    #[inline]
    pub(crate) const fn failures(self) -> u32 {
        match self.state() {
            State::Closed | State::ForcedClosed => self.failures_bits() as u32,
            _ => 0,
        }
    }

    /// The open deadline in ticks (open only).
    #[inline]
    pub(crate) const fn deadline(self) -> Option<u64> {
        match self.state() {
            State::Open => Some(self.deadline_bits()),
            _ => None,
        }
    }

    /// Probe successes so far (half-open; 0 elsewhere).
    #[inline]
    pub(crate) const fn successes(self) -> u32 {
        match self.state() {
            State::HalfOpen => self.successes_bits() as u32,
            _ => 0,
        }
    }

    /// Probes in flight (half-open; 0 elsewhere).
    #[inline]
    pub(crate) const fn probes(self) -> u32 {
        match self.state() {
            State::HalfOpen => self.probes_bits() as u32,
            _ => 0,
        }
    }

    /// The probe lease deadline in ticks (half-open only).
    #[inline]
    pub(crate) const fn lease_deadline(self) -> Option<u64> {
        match self.state() {
            State::HalfOpen => Some(self.lease_bits() << LEASE_UNIT_SHIFT),
            _ => None,
        }
    }

    /// The next generation (wrapping).
    #[inline]
    const fn next_generation(self) -> u16 {
        self.generation().wrapping_add(1) & GENERATION_MASK
    }
}

impl fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Snapshot");
        d.field("state", &self.state())
            .field("generation", &self.generation())
            .field("backoff", &self.backoff());
        match self.state() {
            State::Closed | State::ForcedClosed => d.field("failures", &self.failures()),
            State::Open => d.field("deadline", &self.deadline_bits()),
            State::HalfOpen => d
                .field("successes", &self.successes())
                .field("probes", &self.probes())
                .field("lease", &self.lease_deadline()),
            State::ForcedOpen => &mut d,
        };
        d.field("raw", &format_args!("{:#018x}", self.0)).finish()
    }
}

/// The numbers the transitions need, in ticks.
#[derive(Debug, Clone)]
pub(crate) struct Policy {
    pub(crate) failure_threshold: u32,
    pub(crate) success_threshold: u32,
    pub(crate) half_open_max_calls: u32,
    pub(crate) probe_lease_ticks: u64,
    pub(crate) open: OpenPolicy,
    /// Probe failures a half-open period tolerates (0: the first failure re-opens). When
    /// not 0, the `successes` field holds `successes * (allowed + 1) + failures`.
    pub(crate) probe_failures_allowed: u32,
    /// The rate policies' window, if any.
    pub(crate) window: Option<crate::window::WindowPolicy>,
}

impl Policy {
    /// The two settings an admission reads.
    #[inline]
    pub(crate) fn probes(&self) -> ProbeSettings {
        ProbeSettings {
            max_calls: self.half_open_max_calls,
            lease_ticks: self.probe_lease_ticks,
        }
    }
}

/// What [`acquire`] needs of the settings: the half-open probe limit and the probe lease.
/// Small enough for one word, so the breaker keeps a copy beside its settings cell and an
/// admission reads no more than that word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProbeSettings {
    /// Probes admitted at once (at most [`MAX_PROBES`]).
    pub(crate) max_calls: u32,
    /// The probe lease, in ticks (at most [`MAX_TICK`]).
    pub(crate) lease_ticks: u64,
}

impl ProbeSettings {
    const CALLS_BITS: u32 = 8;

    /// Packed in one word: the lease above the probe limit.
    #[inline]
    pub(crate) fn to_word(self) -> u64 {
        (self.lease_ticks.min(MAX_TICK) << Self::CALLS_BITS) | u64::from(self.max_calls)
    }

    #[inline]
    pub(crate) fn from_word(word: u64) -> ProbeSettings {
        ProbeSettings {
            max_calls: (word & mask(Self::CALLS_BITS)) as u32,
            lease_ticks: word >> Self::CALLS_BITS,
        }
    }
}

const _: () = assert!(MAX_PROBES < 1 << ProbeSettings::CALLS_BITS);
const _: () = assert!(DEADLINE_WIDTH + ProbeSettings::CALLS_BITS <= 64);

/// How long each open period lasts, in ticks.
#[derive(Debug, Clone)]
pub(crate) struct OpenPolicy {
    pub(crate) base_ticks: u64,
    pub(crate) multiplier: f64,
    pub(crate) cap_ticks: u64,
    pub(crate) jitter: f64,
    pub(crate) seed: u64,
}

impl OpenPolicy {
    /// The open time for backoff step `step`, with jitter drawn from `(seed, generation, now)`.
    ///
    /// `base * multiplier^step`, capped, then shortened by up to `jitter` of itself:
    /// uniform over `[d * (1 - jitter), d]`, never below one tick.
    pub(crate) fn open_ticks(&self, step: u32, generation: u16, now: u64) -> u64 {
        // The base and cap are at most MAX_TICK (validated), so f64 holds them exactly
        // enough and the product is finite: powi of a finite multiplier >= 1 may be
        // infinite, which `min` with the cap clears.
        let grown = self.base_ticks as f64 * self.multiplier.powi(step as i32);
        let capped = if grown.is_nan() {
            self.cap_ticks as f64
        } else {
            grown.min(self.cap_ticks as f64)
        };
        let jittered = if self.jitter > 0.0 {
            let r = unit_random(self.seed ^ ((generation as u64) << 48) ^ now);
            capped * (1.0 - self.jitter * r)
        } else {
            capped
        };
        // `as` saturates for floats; the ceiling keeps a 1.5 ms time from shrinking.
        (jittered.ceil() as u64).clamp(1, MAX_TICK)
    }
}

/// A uniform number in `[0, 1)` from a seed (splitmix64).
fn unit_random(seed: u64) -> f64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// What an acquire decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub(crate) enum Acquire {
    /// Admitted in `generation`; `cause` is set when this acquire also made a transition.
    Admitted {
        generation: u16,
        probe: bool,
        cause: Option<Cause>,
    },
    /// Rejected; the open or lease deadline, if any, is `until` (ticks).
    RejectedOpen {
        until: u64,
    },
    RejectedHalfOpenFull {
        until: u64,
    },
    RejectedForcedOpen,
}

/// What recording an outcome decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub(crate) enum Record {
    /// The outcome changed the counts (or nothing needed to change).
    Counted { cause: Option<Cause> },
    /// The permit came from an older generation: nothing changes.
    Stale,
}

/// Acquire in any state but closed (closed admits without a write and is inlined in the
/// breaker; it is handled here too so the model and loom can use one function).
/// If `s` is open and its open time has not ended at `now`, the deadline: an acquire is
/// rejected and nothing changes. The breaker checks this first, before [`acquire`], to
/// reject without the general path.
#[inline]
pub(crate) fn open_rejects(s: Snapshot, now: u64) -> Option<u64> {
    let deadline = s.deadline_bits();
    (s.state_bits() == OPEN_BITS && now < deadline).then_some(deadline)
}

/// Inlined into its one caller (the breaker's out-of-line slow path): returned through the
/// stack, its result was written with narrow stores and read back whole, a store-forwarding
/// stall on every half-open probe.
#[inline(always)]
pub(crate) fn acquire(s: Snapshot, now: u64, p: ProbeSettings) -> (Acquire, Option<Snapshot>) {
    match s.state() {
        State::Closed | State::ForcedClosed => (
            Acquire::Admitted {
                generation: s.generation(),
                probe: false,
                cause: None,
            },
            None,
        ),
        State::ForcedOpen => (Acquire::RejectedForcedOpen, None),
        State::Open => {
            if let Some(until) = open_rejects(s, now) {
                return (Acquire::RejectedOpen { until }, None);
            }
            let generation = s.next_generation();
            let next = half_open_with_probe(generation, s.backoff(), now, p);
            (
                Acquire::Admitted {
                    generation,
                    probe: true,
                    cause: Some(Cause::OpenTimeElapsed),
                },
                Some(next),
            )
        }
        State::HalfOpen => {
            if let Some(next) = take_probe(s, now, p) {
                return (
                    Acquire::Admitted {
                        generation: s.generation(),
                        probe: true,
                        cause: None,
                    },
                    Some(next),
                );
            }
            let probes = s.probes_bits();
            let lease = s.lease_bits() << LEASE_UNIT_SHIFT;
            if now < lease {
                return (Acquire::RejectedHalfOpenFull { until: lease }, None);
            }
            let generation = s.next_generation();
            let next = half_open_with_probe(generation, s.backoff(), now, p);
            (
                Acquire::Admitted {
                    generation,
                    probe: true,
                    cause: Some(Cause::ProbeLeaseExpired {
                        probes_lost: probes as u32,
                    }),
                },
                Some(next),
            )
        }
    }
}

/// If `s` is half-open with a probe slot free at `now`, the word that takes the slot (and
/// renews the lease): the steady half-open case of [`acquire`], which the breaker tries
/// first, with one compare-exchange and without the general transition.
#[inline(always)]
pub(crate) fn take_probe(s: Snapshot, now: u64, p: ProbeSettings) -> Option<Snapshot> {
    let probes = s.probes_bits();
    (s.state_bits() == HALF_OPEN_BITS && probes < u64::from(p.max_calls)).then(|| {
        s.with_probes_bits(probes + 1)
            .with_lease_bits(lease_units(now, p))
    })
}

/// If `s` is half-open in `generation` with a probe in flight, the word that gives one
/// probe's slot back: what [`record_ignored`] writes there, which the breaker tries first.
#[inline(always)]
pub(crate) fn give_back_probe(s: Snapshot, generation: u16) -> Option<Snapshot> {
    let probes = s.probes_bits();
    (s.state_bits() == HALF_OPEN_BITS && s.generation() == generation && probes > 0)
        .then(|| s.with_probes_bits(probes - 1))
}

fn half_open_with_probe(generation: u16, backoff: u32, now: u64, p: ProbeSettings) -> Snapshot {
    Snapshot::new(State::HalfOpen, generation, backoff)
        .with_successes_bits(0)
        .with_probes_bits(1)
        .with_lease_bits(lease_units(now, p))
}

/// `now + lease` in lease units, rounded up, saturating.
fn lease_units(now: u64, p: ProbeSettings) -> u64 {
    // Both terms at most `MAX_TICK` (2^40): the sum and the rounding cannot overflow. (The
    // probe waits on this chain before its compare-exchange: no saturating steps.)
    const _: () = assert!(MAX_TICK < 1 << 62);
    const _: () = assert!(MAX_TICK >> LEASE_UNIT_SHIFT == MAX_LEASE);
    let until = now.min(MAX_TICK) + p.lease_ticks.min(MAX_TICK);
    ((until + (1 << LEASE_UNIT_SHIFT) - 1) >> LEASE_UNIT_SHIFT).min(MAX_LEASE)
}

/// Record `outcome` for a permit admitted in `generation`.
pub(crate) fn record(
    s: Snapshot,
    generation: u16,
    outcome: Outcome,
    now: u64,
    p: &Policy,
) -> (Record, Option<Snapshot>) {
    if s.generation() != generation {
        return (Record::Stale, None);
    }
    let counted = |cause| Record::Counted { cause };
    match (s.state(), outcome) {
        (_, Outcome::Ignored) => ignored(s),
        (State::Closed, Outcome::Success) => {
            if s.failures_bits() == 0 {
                (counted(None), None)
            } else {
                (counted(None), Some(s.with_failures_bits(0)))
            }
        }
        (State::Closed, Outcome::Failure) => {
            let failures = s.failures_bits() + 1;
            if failures >= p.failure_threshold as u64 {
                let generation = s.next_generation();
                let next = open(generation, 0, now, p);
                (
                    counted(Some(Cause::ConsecutiveFailures {
                        failures: failures as u32,
                    })),
                    Some(next),
                )
            } else {
                (counted(None), Some(s.with_failures_bits(failures)))
            }
        }
        (State::HalfOpen, Outcome::Success) => {
            // The successes field holds `successes * radix + failures` (radix 1, the plain
            // count, unless probe failures are tolerated).
            let radix = p.probe_failures_allowed as u64 + 1;
            let code = s.successes_bits();
            let successes = code / radix + 1;
            if successes >= p.success_threshold as u64 {
                let next = Snapshot::new(State::Closed, s.next_generation(), 0);
                let cause = if p.probe_failures_allowed == 0 {
                    Cause::ProbesSucceeded {
                        successes: successes as u32,
                    }
                } else {
                    Cause::ProbeSuccessRate {
                        successes: successes as u32,
                        failures: (code % radix) as u32,
                    }
                };
                (counted(Some(cause)), Some(next))
            } else {
                let next = s
                    .with_successes_bits(code + radix)
                    .with_probes_bits(s.probes_bits().saturating_sub(1));
                (counted(None), Some(next))
            }
        }
        (State::HalfOpen, Outcome::Failure)
            if s.successes_bits() % (p.probe_failures_allowed as u64 + 1)
                < p.probe_failures_allowed as u64 =>
        {
            // A tolerated probe failure: counted, and its slot released.
            let next = s
                .with_successes_bits(s.successes_bits() + 1)
                .with_probes_bits(s.probes_bits().saturating_sub(1));
            (counted(None), Some(next))
        }
        (State::HalfOpen, Outcome::Failure) => {
            let backoff = (s.backoff() + 1).min(MAX_BACKOFF);
            let next = open(s.next_generation(), backoff, now, p);
            (counted(Some(Cause::ProbeFailed { backoff })), Some(next))
        }
        // Forced closed counts nothing toward a trip. Open and forced open admit no
        // permits of their own generation.
        (State::ForcedClosed, _) | (State::Open, _) | (State::ForcedOpen, _) => {
            (counted(None), None)
        }
    }
}

/// [`record`] of [`Outcome::Ignored`], which needs neither the settings nor the time: a
/// probe gives its slot back, and nothing else changes.
pub(crate) fn record_ignored(s: Snapshot, generation: u16) -> (Record, Option<Snapshot>) {
    if s.generation() != generation {
        return (Record::Stale, None);
    }
    ignored(s)
}

fn ignored(s: Snapshot) -> (Record, Option<Snapshot>) {
    let next = match s.state() {
        State::HalfOpen => Some(s.with_probes_bits(s.probes_bits().saturating_sub(1))),
        // Closed: an ignored call changes nothing; the other states as in `record`.
        _ => None,
    };
    (Record::Counted { cause: None }, next)
}

/// Record `outcome` like [`record`]; if that opens the circuit (a trip from closed or a
/// failed probe), its open time ends no sooner than tick `open_until` (an upstream's
/// retry-after), saturating at [`MAX_TICK`]. A hint never shortens an open time, and an
/// outcome that leaves the circuit where it was ignores it.
pub(crate) fn record_with_open_until(
    s: Snapshot,
    generation: u16,
    outcome: Outcome,
    now: u64,
    open_until: u64,
    p: &Policy,
) -> (Record, Option<Snapshot>) {
    let (decision, next) = record(s, generation, outcome, now, p);
    // `record` writes an open word only on a transition into open: open admits no permit
    // of its own generation, so it never counts an outcome in place.
    let next = next.map(|n| match n.deadline() {
        Some(deadline) if deadline < open_until => n.with_deadline_bits(open_until.min(MAX_TICK)),
        _ => n,
    });
    (decision, next)
}

/// Closed -> open for a rate policy's `cause`, decided on the counts of a call admitted in
/// `generation`: only if the circuit is still closed in that generation (so a trip happens
/// once, whoever else decides it).
pub(crate) fn trip(
    s: Snapshot,
    generation: u16,
    cause: Cause,
    now: u64,
    p: &Policy,
) -> (Option<Cause>, Option<Snapshot>) {
    if s.state() != State::Closed || s.generation() != generation {
        return (None, None);
    }
    (Some(cause), Some(open(s.next_generation(), 0, now, p)))
}

fn open(generation: u16, backoff: u32, now: u64, p: &Policy) -> Snapshot {
    let ticks = p.open.open_ticks(backoff, generation, now);
    Snapshot::new(State::Open, generation, backoff)
        .with_deadline_bits(now.saturating_add(ticks).min(MAX_TICK))
}

/// A manual command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Command {
    ForceOpen,
    ForceClosed,
    Reset,
}

/// Apply a manual command. Returns the transition's cause, if the state changed; a reset of
/// a closed breaker only clears its failure count (no transition).
pub(crate) fn command(s: Snapshot, c: Command) -> (Option<Cause>, Option<Snapshot>) {
    let (target, cause) = match c {
        Command::ForceOpen => (State::ForcedOpen, Cause::ForcedOpen),
        Command::ForceClosed => (State::ForcedClosed, Cause::ForcedClosed),
        Command::Reset => (State::Closed, Cause::Reset),
    };
    if s.state() == target {
        if target == State::Closed && s.failures_bits() != 0 {
            return (None, Some(s.with_failures_bits(0)));
        }
        return (None, None);
    }
    (
        Some(cause),
        Some(Snapshot::new(target, s.next_generation(), 0)),
    )
}

/// A hold from outside (a fleet's trip signal) until tick `until`: closed -> open with
/// that deadline (a transition, [`Cause::Remote`]), or an open period made to end no sooner
/// than `until` (no transition). It never closes a circuit, never shortens an open time, and
/// leaves half-open (the breaker's own probes decide) and the forced states alone.
pub(crate) fn hold_open(s: Snapshot, until: u64) -> (Option<Cause>, Option<Snapshot>) {
    let until = until.min(MAX_TICK);
    match s.state() {
        State::Closed => (
            Some(Cause::Remote),
            Some(
                Snapshot::new(State::Open, s.next_generation(), s.backoff())
                    .with_deadline_bits(until),
            ),
        ),
        State::Open if s.deadline_bits() < until => (None, Some(s.with_deadline_bits(until))),
        _ => (None, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn policy() -> Policy {
        Policy {
            failure_threshold: 3,
            success_threshold: 2,
            half_open_max_calls: 2,
            probe_lease_ticks: 1_000,
            open: OpenPolicy {
                base_ticks: 100,
                multiplier: 2.0,
                cap_ticks: 1_000,
                jitter: 0.0,
                seed: 7,
            },
            probe_failures_allowed: 0,
            window: None,
        }
    }

    proptest! {
        #[test]
        fn fields_round_trip(
            generation in 0u16..=GENERATION_MASK,
            backoff in 0u32..=MAX_BACKOFF,
            failures in any::<u32>(),
            deadline in 0u64..=MAX_TICK,
            successes in 0u64..=127,
            probes in 0u64..=127,
            lease in 0u64..=MAX_LEASE,
        ) {
            let closed = Snapshot::new(State::Closed, generation, backoff).with_failures_bits(failures as u64);
            prop_assert_eq!(closed.state(), State::Closed);
            prop_assert_eq!(closed.generation(), generation);
            prop_assert_eq!(closed.backoff(), backoff);
            prop_assert_eq!(closed.failures(), failures);
            prop_assert_eq!(closed.0 >> (FAILURES_SHIFT + FAILURES_WIDTH), 0);

            let open = Snapshot::new(State::Open, generation, backoff).with_deadline_bits(deadline);
            prop_assert_eq!(open.state(), State::Open);
            prop_assert_eq!(open.generation(), generation);
            prop_assert_eq!(open.backoff(), backoff);
            prop_assert_eq!(open.deadline(), Some(deadline));
            prop_assert_eq!(open.0 >> (DEADLINE_SHIFT + DEADLINE_WIDTH), 0);

            let half = Snapshot::new(State::HalfOpen, generation, backoff)
                .with_successes_bits(successes)
                .with_probes_bits(probes)
                .with_lease_bits(lease);
            prop_assert_eq!(half.state(), State::HalfOpen);
            prop_assert_eq!(half.generation(), generation);
            prop_assert_eq!(half.backoff(), backoff);
            prop_assert_eq!(half.successes() as u64, successes);
            prop_assert_eq!(half.probes() as u64, probes);
            prop_assert_eq!(half.lease_deadline(), Some(lease << LEASE_UNIT_SHIFT));
        }

        #[test]
        fn open_ticks_stay_in_range(
            base in 1u64..=MAX_TICK,
            extra in 0u64..=MAX_TICK,
            multiplier in 1.0f64..1e6,
            jitter in 0.0f64..=1.0,
            step in 0u32..=MAX_BACKOFF,
            generation in any::<u16>(),
            now in any::<u64>(),
        ) {
            let cap = base.saturating_add(extra).min(MAX_TICK);
            let p = OpenPolicy { base_ticks: base, multiplier, cap_ticks: cap, jitter, seed: 1 };
            let t = p.open_ticks(step, generation, now);
            prop_assert!(t >= 1 && t <= cap, "{t} not in 1..={cap}");
            if jitter == 0.0 && step == 0 {
                prop_assert_eq!(t, base);
            }
        }
    }

    #[test]
    fn setters_cut_to_width() {
        let s = Snapshot::INITIAL.with_generation_bits(u64::MAX);
        assert_eq!(s.generation(), GENERATION_MASK);
        assert_eq!(s.state(), State::Closed);
        assert_eq!(s.failures(), 0);
        assert_eq!(s.0, (GENERATION_MASK as u64) << GENERATION_SHIFT);
    }

    #[test]
    fn generation_wraps() {
        let s = Snapshot::new(State::Closed, GENERATION_MASK, 0);
        let (_, next) = command(s, Command::ForceOpen);
        assert_eq!(next.unwrap().generation(), 0);
    }

    #[test]
    fn debug_decodes_every_field() {
        let s = Snapshot::new(State::HalfOpen, 5, 2)
            .with_successes_bits(1)
            .with_probes_bits(2)
            .with_lease_bits(3);
        assert_eq!(
            format!("{s:?}"),
            "Snapshot { state: HalfOpen, generation: 5, backoff: 2, successes: 1, probes: 2, \
             lease: Some(768), raw: 0x000000030404402a }"
        );
    }

    #[test]
    fn exponential_open_time_grows_and_caps() {
        let p = policy().open;
        assert_eq!(p.open_ticks(0, 0, 0), 100);
        assert_eq!(p.open_ticks(1, 0, 0), 200);
        assert_eq!(p.open_ticks(3, 0, 0), 800);
        assert_eq!(p.open_ticks(4, 0, 0), 1_000);
        assert_eq!(p.open_ticks(MAX_BACKOFF, 0, 0), 1_000);
    }

    #[test]
    fn jitter_shortens_within_ratio_and_is_deterministic() {
        let mut p = policy().open;
        p.jitter = 0.5;
        let mut seen = std::collections::BTreeSet::new();
        for now in 0..200 {
            let t = p.open_ticks(0, 1, now);
            assert!((50..=100).contains(&t), "{t}");
            assert_eq!(t, p.open_ticks(0, 1, now));
            seen.insert(t);
        }
        assert!(seen.len() > 20, "jitter should spread: {seen:?}");
    }

    #[test]
    fn probe_settings_pack_into_one_word_and_back() {
        for (max_calls, lease_ticks) in [(1, 0), (MAX_PROBES, MAX_TICK), (3, 30_000), (127, 1)] {
            let p = ProbeSettings {
                max_calls,
                lease_ticks,
            };
            assert_eq!(ProbeSettings::from_word(p.to_word()), p);
        }
        assert_eq!(policy().probes().max_calls, policy().half_open_max_calls);
        assert_eq!(policy().probes().lease_ticks, policy().probe_lease_ticks);
    }

    #[test]
    fn an_ignored_outcome_needs_no_settings_and_matches_record() {
        let p = policy();
        let half_open = Snapshot::new(State::HalfOpen, 7, 0).with_probes_bits(2);
        for s in [
            half_open,
            Snapshot::new(State::Closed, 7, 0).with_failures_bits(2),
            Snapshot::new(State::ForcedClosed, 7, 0),
        ] {
            assert_eq!(
                record_ignored(s, 7),
                record(s, 7, Outcome::Ignored, 0, &p),
                "{s:?}"
            );
            assert_eq!(record_ignored(s, 8), (Record::Stale, None));
        }
        assert_eq!(
            record_ignored(half_open, 7).1.map(|s| s.probes_bits()),
            Some(1)
        );
    }

    proptest! {
        /// The lease's short form is `now + lease`, saturating at the last tick, rounded up
        /// to the lease unit.
        #[test]
        fn lease_units_is_the_saturated_sum_rounded_up(now in any::<u64>(), lease in 0..=MAX_TICK) {
            let p = ProbeSettings { max_calls: 1, lease_ticks: lease };
            let until = now.saturating_add(lease).min(MAX_TICK);
            prop_assert_eq!(
                lease_units(now, p),
                until.div_ceil(1 << LEASE_UNIT_SHIFT).min(MAX_LEASE)
            );
        }
    }

    #[test]
    fn lease_rounds_up_to_its_unit_and_saturates() {
        let p = policy();
        let p = p.probes();
        assert_eq!(lease_units(0, p), 4); // 1000 ms -> 1024
        assert_eq!(lease_units(24, p), 4); // 1024 exactly
        assert_eq!(lease_units(25, p), 5);
        assert_eq!(lease_units(u64::MAX, p), MAX_LEASE);
        // The largest lease is still a tick the saturated clock reaches.
        assert_eq!(
            lease_units(MAX_TICK, p) << LEASE_UNIT_SHIFT,
            MAX_TICK + 1 - 256
        );
    }

    #[test]
    fn a_retry_after_hint_lengthens_only_the_open_time_it_causes() {
        let p = policy();
        // Closed, one failure short of the threshold: the trip opens until the hint.
        let s = Snapshot::new(State::Closed, 4, 0).with_failures_bits(2);
        let (d, next) = record_with_open_until(s, 4, Outcome::Failure, 1_000, 6_000, &p);
        assert_eq!(
            d,
            Record::Counted {
                cause: Some(Cause::ConsecutiveFailures { failures: 3 })
            }
        );
        let next = next.unwrap();
        assert_eq!((next.state(), next.generation()), (State::Open, 5));
        assert_eq!(next.deadline(), Some(6_000));
        // A hint shorter than the open time changes nothing.
        let (_, short) = record_with_open_until(s, 4, Outcome::Failure, 1_000, 1_050, &p);
        assert_eq!(short.unwrap().deadline(), Some(1_100));
        // A failed probe re-opens until the hint.
        let half = Snapshot::new(State::HalfOpen, 7, 1).with_probes_bits(1);
        let (_, next) = record_with_open_until(half, 7, Outcome::Failure, 50, 9_050, &p);
        let next = next.unwrap();
        assert_eq!(
            (next.state(), next.backoff(), next.deadline()),
            (State::Open, 2, Some(9_050))
        );
        // No transition into open: the hint is ignored, exactly as `record`.
        let closed = Snapshot::new(State::Closed, 4, 0);
        assert_eq!(
            record_with_open_until(closed, 4, Outcome::Failure, 0, 9_000, &p),
            record(closed, 4, Outcome::Failure, 0, &p)
        );
        assert_eq!(
            record_with_open_until(half, 7, Outcome::Success, 0, 9_000, &p),
            record(half, 7, Outcome::Success, 0, &p)
        );
        // Stale permits change nothing.
        assert_eq!(
            record_with_open_until(s, 3, Outcome::Failure, 1_000, 6_000, &p),
            (Record::Stale, None)
        );
        // The hint saturates at the end of the tick range.
        let (_, next) = record_with_open_until(s, 4, Outcome::Failure, 0, u64::MAX, &p);
        assert_eq!(next.unwrap().deadline(), Some(MAX_TICK));
    }

    #[test]
    fn half_open_by_rate_tolerates_failures_up_to_the_rest() {
        // 3 of 5 probes: S = 3, F = 2; the field holds successes * 3 + failures.
        let mut p = policy();
        p.success_threshold = 3;
        p.probe_failures_allowed = 2;
        p.half_open_max_calls = 5;
        let half = |code: u64, probes: u64| {
            Snapshot::new(State::HalfOpen, 9, 1)
                .with_successes_bits(code)
                .with_probes_bits(probes)
                .with_lease_bits(4)
        };
        // A failure while fewer than F failed: counted, slot released, still half-open.
        let (d, next) = record(half(0, 2), 9, Outcome::Failure, 10, &p);
        assert_eq!(d, Record::Counted { cause: None });
        assert_eq!(next, Some(half(1, 1)));
        // A success adds the radix.
        let (d, next) = record(half(1, 1), 9, Outcome::Success, 10, &p);
        assert_eq!(d, Record::Counted { cause: None });
        assert_eq!(next, Some(half(4, 0)));
        // The F+1-th failure re-opens, with backoff, as a failed probe.
        let (d, next) = record(half(2, 1), 9, Outcome::Failure, 10, &p);
        assert_eq!(
            d,
            Record::Counted {
                cause: Some(Cause::ProbeFailed { backoff: 2 })
            }
        );
        assert_eq!(next.unwrap().state(), State::Open);
        // The S-th success closes, naming both counts.
        let (d, next) = record(half(2 * 3 + 2, 1), 9, Outcome::Success, 10, &p);
        assert_eq!(
            d,
            Record::Counted {
                cause: Some(Cause::ProbeSuccessRate {
                    successes: 3,
                    failures: 2
                })
            }
        );
        assert_eq!(next, Some(Snapshot::new(State::Closed, 10, 0)));
        // Ignored probes count for nothing.
        let (_, next) = record(half(4, 2), 9, Outcome::Ignored, 10, &p);
        assert_eq!(next, Some(half(4, 1)));
    }

    proptest! {
        /// The breaker's two steady half-open shortcuts write exactly what the general
        /// functions write, and take no word the general functions would not (anything
        /// they decline goes to the general path, so they may decline more).
        #[test]
        fn probe_shortcuts_write_what_the_general_functions_write(
            state in 0u64..5,
            generation in 0u16..=GENERATION_MASK,
            permit_generation in 0u16..=GENERATION_MASK,
            backoff in 0u32..=MAX_BACKOFF,
            payload in any::<u64>(),
            now in 0u64..=MAX_TICK,
            max_calls in 1u32..=MAX_PROBES,
            lease_ticks in 0u64..=MAX_TICK,
        ) {
            let s = Snapshot::new(State::from_bits(state), generation, backoff)
                .with_deadline_bits(payload);
            let p = ProbeSettings { max_calls, lease_ticks };
            if let Some(next) = take_probe(s, now, p) {
                prop_assert_eq!(s.state(), State::HalfOpen);
                prop_assert_eq!(next.probes_bits(), s.probes_bits() + 1);
                prop_assert_eq!(
                    acquire(s, now, p),
                    (Acquire::Admitted { generation, probe: true, cause: None }, Some(next))
                );
            } else if s.state() == State::HalfOpen {
                // Declined only when every slot is taken.
                prop_assert!(s.probes_bits() >= u64::from(max_calls));
            }
            let given_back = give_back_probe(s, permit_generation);
            if let Some(next) = given_back {
                prop_assert_eq!(next.probes_bits() + 1, s.probes_bits());
                prop_assert_eq!(
                    record_ignored(s, permit_generation),
                    (Record::Counted { cause: None }, Some(next))
                );
            } else if s.state() == State::HalfOpen && generation == permit_generation {
                // Declined only with no probe in flight (the general path writes 0 again).
                prop_assert_eq!(s.probes_bits(), 0);
            }
        }

        /// A hold from outside only opens a closed word or lengthens an open one: it never
        /// closes, never shortens, and leaves half-open and the forced states alone.
        #[test]
        fn hold_open_only_opens_or_lengthens(
            state in 0u64..5,
            generation in 0u16..=GENERATION_MASK,
            backoff in 0u32..=MAX_BACKOFF,
            payload in any::<u64>(),
            until in any::<u64>(),
        ) {
            let s = Snapshot::new(State::from_bits(state), generation, backoff)
                .with_deadline_bits(payload);
            let (cause, next) = hold_open(s, until);
            match (s.state(), next) {
                (State::Closed, Some(n)) => {
                    prop_assert_eq!(cause, Some(Cause::Remote));
                    prop_assert_eq!(n.state(), State::Open);
                    prop_assert_eq!(n.generation(), s.next_generation());
                    prop_assert_eq!(n.backoff(), s.backoff());
                    prop_assert_eq!(n.deadline(), Some(until.min(MAX_TICK)));
                }
                (State::Open, Some(n)) => {
                    prop_assert_eq!(cause, None);
                    prop_assert_eq!(n.generation(), s.generation());
                    prop_assert!(n.deadline_bits() > s.deadline_bits());
                    prop_assert_eq!(n.deadline(), Some(until.min(MAX_TICK)));
                }
                (State::Open, None) => {
                    prop_assert_eq!(cause, None);
                    prop_assert!(s.deadline_bits() >= until.min(MAX_TICK));
                }
                (_, next) => {
                    prop_assert_eq!(cause, None);
                    prop_assert_eq!(next, None);
                }
            }
        }
    }

    proptest! {
        /// The early decision gives the same answer as judging all `M` probes: close iff
        /// at least `S` of them succeed.
        #[test]
        fn half_open_by_rate_matches_judging_every_probe(
            s_needed in 1u32..=12,
            f_allowed in 0u32..=9,
            outcomes in proptest::collection::vec(any::<bool>(), 21),
        ) {
            let mut p = policy();
            p.success_threshold = s_needed;
            p.probe_failures_allowed = f_allowed;
            p.half_open_max_calls = 1;
            let m = (s_needed + f_allowed) as usize;
            let expect_close = outcomes[..m].iter().filter(|ok| **ok).count() >= s_needed as usize;
            let mut s = Snapshot::new(State::HalfOpen, 1, 0)
                .with_probes_bits(1)
                .with_lease_bits(4);
            let mut decided = None;
            for ok in &outcomes[..m] {
                let outcome = if *ok { Outcome::Success } else { Outcome::Failure };
                let (_, next) = record(s, 1, outcome, 0, &p);
                let next = next.unwrap();
                if next.state() != State::HalfOpen {
                    decided = Some(next.state() == State::Closed);
                    break;
                }
                s = next.with_probes_bits(1);
            }
            prop_assert_eq!(decided, Some(expect_close));
        }
    }

    #[test]
    fn a_rate_trip_happens_only_from_the_closed_generation_it_judged() {
        let p = policy();
        let closed = Snapshot::new(State::Closed, 4, 0).with_failures_bits(1);
        let cause = Cause::FailureRate {
            failures: 5,
            calls: 10,
        };
        let (c, next) = trip(closed, 4, cause, 50, &p);
        assert_eq!(c, Some(cause));
        let next = next.unwrap();
        assert_eq!(next.state(), State::Open);
        assert_eq!(next.generation(), 5);
        assert_eq!(next.backoff(), 0);
        assert_eq!(next.deadline(), Some(150));
        // Someone else tripped first, or the call was of an older generation: no write.
        assert_eq!(trip(next, 4, cause, 50, &p), (None, None));
        assert_eq!(trip(closed, 3, cause, 50, &p), (None, None));
        let forced = Snapshot::new(State::ForcedClosed, 4, 0);
        assert_eq!(trip(forced, 4, cause, 50, &p), (None, None));
    }

    #[test]
    fn open_deadline_saturates_at_max_tick() {
        let p = policy();
        let s = Snapshot::new(State::Closed, 0, 0).with_failures_bits(2);
        let (_, next) = record(s, 0, Outcome::Failure, MAX_TICK - 10, &p);
        let next = next.unwrap();
        assert_eq!(next.deadline(), Some(MAX_TICK));
        // At the edge, time stands still at MAX_TICK and the open time has ended.
        let (a, _) = acquire(next, MAX_TICK, p.probes());
        assert!(matches!(a, Acquire::Admitted { probe: true, .. }));
    }
}
