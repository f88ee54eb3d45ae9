//! What the receiver decides about each signal: the guardrails and the quorum, as plain
//! bookkeeping on the receiver's own clock (no wall-clock time from another host).

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::message::{Signal, SignalCause};

/// What became of one received signal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Our own message, echoed back by the server.
    OwnMessage,
    /// No newer than the last message taken from its origin.
    Stale,
    /// Its time to live was zero.
    Expired,
    /// Counted; the quorum is not reached yet.
    Counted { origins: usize },
    /// The quorum is reached (or the signal is a forced open): hold the breaker for `hold`.
    Hold { hold: Duration, origins: usize },
}

#[derive(Debug, Clone, Copy)]
struct Report {
    origin: u64,
    until: Instant,
}

/// The receiver's memory: the newest epoch per origin, the live reports per breaker.
#[derive(Debug)]
pub(crate) struct Quorum {
    own_origin: u64,
    quorum: usize,
    window: Duration,
    max_hold: Duration,
    /// Origin -> (newest epoch taken, when).
    epochs: HashMap<u64, (u64, Instant)>,
    /// Breaker -> reports that still count.
    reports: HashMap<String, Vec<Report>>,
}

/// The most origins remembered for their epochs; past it, the longest silent are forgotten.
const MAX_ORIGINS: usize = 4096;

impl Quorum {
    pub(crate) fn new(
        own_origin: u64,
        quorum: usize,
        window: Duration,
        max_hold: Duration,
    ) -> Self {
        Quorum {
            own_origin,
            quorum,
            window,
            max_hold,
            epochs: HashMap::new(),
            reports: HashMap::new(),
        }
    }

    pub(crate) fn on_signal(&mut self, signal: &Signal, now: Instant) -> Verdict {
        if signal.origin == self.own_origin {
            return Verdict::OwnMessage;
        }
        match self.epochs.get(&signal.origin) {
            Some(&(epoch, _)) if signal.epoch <= epoch => return Verdict::Stale,
            _ => {}
        }
        self.remember_epoch(signal.origin, signal.epoch, now);
        if signal.ttl.is_zero() {
            return Verdict::Expired;
        }
        let until = now + signal.ttl.min(self.window);
        let reports = self.reports.entry(signal.breaker.clone()).or_default();
        reports.retain(|r| r.until > now && r.origin != signal.origin);
        reports.push(Report {
            origin: signal.origin,
            until,
        });
        let origins = reports.len();
        if origins >= self.quorum || signal.cause == SignalCause::ForcedOpen {
            Verdict::Hold {
                hold: signal.hold.min(self.max_hold),
                origins,
            }
        } else {
            Verdict::Counted { origins }
        }
    }

    /// Forgets reports that no longer count and breakers with none; call now and then.
    pub(crate) fn prune(&mut self, now: Instant) {
        self.reports.retain(|_, reports| {
            reports.retain(|r| r.until > now);
            !reports.is_empty()
        });
    }

    fn remember_epoch(&mut self, origin: u64, epoch: u64, now: Instant) {
        if self.epochs.len() >= MAX_ORIGINS && !self.epochs.contains_key(&origin) {
            if let Some(oldest) = self
                .epochs
                .iter()
                .min_by_key(|(_, (_, seen))| *seen)
                .map(|(o, _)| *o)
            {
                self.epochs.remove(&oldest);
            }
        }
        self.epochs.insert(origin, (epoch, now));
    }

    #[cfg(test)]
    fn breakers_tracked(&self) -> usize {
        self.reports.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    fn sig(origin: u64, epoch: u64, name: &str) -> Signal {
        Signal {
            breaker: name.into(),
            origin,
            epoch,
            hold: 30 * SEC,
            ttl: 10 * SEC,
            cause: SignalCause::Trip,
        }
    }

    #[test]
    fn quorum_counts_distinct_origins_per_breaker_within_the_window() {
        let t0 = Instant::now();
        let mut q = Quorum::new(1, 2, 5 * SEC, 20 * SEC);
        assert_eq!(
            q.on_signal(&sig(2, 1, "a"), t0),
            Verdict::Counted { origins: 1 }
        );
        // The same origin again is still one origin.
        assert_eq!(
            q.on_signal(&sig(2, 2, "a"), t0),
            Verdict::Counted { origins: 1 }
        );
        // Another breaker does not count toward "a".
        assert_eq!(
            q.on_signal(&sig(3, 1, "b"), t0),
            Verdict::Counted { origins: 1 }
        );
        // A second origin within the window: hold, capped at max_hold.
        assert_eq!(
            q.on_signal(&sig(3, 2, "a"), t0 + 4 * SEC),
            Verdict::Hold {
                hold: 20 * SEC,
                origins: 2
            }
        );
        // Origin 2's report (window 5 s < ttl 10 s) has left the window at t0 + 5 s.
        assert_eq!(
            q.on_signal(&sig(4, 1, "a"), t0 + 5 * SEC),
            Verdict::Hold {
                hold: 20 * SEC,
                origins: 2
            }
        );
        assert_eq!(
            q.on_signal(&sig(5, 1, "a"), t0 + 10 * SEC),
            Verdict::Counted { origins: 1 }
        );
    }

    #[test]
    fn own_stale_and_expired_messages_are_ignored() {
        let t0 = Instant::now();
        let mut q = Quorum::new(1, 1, 5 * SEC, 20 * SEC);
        assert_eq!(q.on_signal(&sig(1, 9, "a"), t0), Verdict::OwnMessage);
        assert!(matches!(
            q.on_signal(&sig(2, 5, "a"), t0),
            Verdict::Hold { .. }
        ));
        assert_eq!(q.on_signal(&sig(2, 5, "a"), t0), Verdict::Stale);
        assert_eq!(q.on_signal(&sig(2, 4, "a"), t0), Verdict::Stale);
        let mut expired = sig(2, 6, "a");
        expired.ttl = Duration::ZERO;
        assert_eq!(q.on_signal(&expired, t0), Verdict::Expired);
    }

    #[test]
    fn a_forced_open_holds_without_a_quorum_and_the_ttl_bounds_a_report() {
        let t0 = Instant::now();
        let mut q = Quorum::new(1, 3, 60 * SEC, 60 * SEC);
        let mut forced = sig(2, 1, "a");
        forced.cause = SignalCause::ForcedOpen;
        forced.hold = 5 * SEC;
        assert_eq!(
            q.on_signal(&forced, t0),
            Verdict::Hold {
                hold: 5 * SEC,
                origins: 1
            }
        );
        // ttl 10 s < window 60 s: origin 2's report is gone at t0 + 10 s.
        assert_eq!(
            q.on_signal(&sig(3, 1, "a"), t0 + 9 * SEC),
            Verdict::Counted { origins: 2 }
        );
        assert_eq!(
            q.on_signal(&sig(4, 1, "a"), t0 + 10 * SEC),
            Verdict::Counted { origins: 2 }
        );
        q.prune(t0 + 30 * SEC);
        assert_eq!(q.breakers_tracked(), 0);
    }

    #[test]
    fn origins_remembered_are_bounded() {
        let t0 = Instant::now();
        let mut q = Quorum::new(0, 1, SEC, SEC);
        for origin in 1..=(MAX_ORIGINS as u64 + 10) {
            q.on_signal(&sig(origin, 1, "a"), t0 + Duration::from_millis(origin));
        }
        assert_eq!(q.epochs.len(), MAX_ORIGINS);
        // The first origins were forgotten, the newest are remembered.
        assert!(!q.epochs.contains_key(&1));
        assert_eq!(
            q.on_signal(&sig(MAX_ORIGINS as u64 + 10, 1, "a"), t0),
            Verdict::Stale
        );
    }
}
