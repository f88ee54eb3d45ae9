//! The trip signal on the wire: one short line of text.
//!
//! ```text
//! cutout-fleet/1 <origin:16 hex> <epoch> <hold_ms> <ttl_ms> <cause> <breaker name ...>
//! ```
//!
//! Durations are relative (milliseconds); no wall-clock time is ever sent, so hosts whose
//! clocks disagree still agree on what a message means. The name comes last and may hold
//! spaces; it is at most [`MAX_NAME_LEN`] bytes.

use std::fmt;
use std::time::Duration;

/// The first word of every message: the format and its version.
pub const PREFIX: &str = "cutout-fleet/1";

/// The longest breaker name a message carries, in bytes.
pub const MAX_NAME_LEN: usize = 1024;

/// Why an instance sent a signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignalCause {
    /// The sender's breaker tripped from closed on its own evidence. Counts toward the
    /// quorum.
    Trip,
    /// An operator forced the sender's breaker open and published it on purpose
    /// ([`Fleet::force_open`](crate::Fleet::force_open)). Holds the receivers open without a
    /// quorum.
    ForcedOpen,
}

impl SignalCause {
    /// A lowercase name, stable on the wire and as a metric label.
    pub const fn as_str(self) -> &'static str {
        match self {
            SignalCause::Trip => "trip",
            SignalCause::ForcedOpen => "forced_open",
        }
    }
}

/// One instance's trip signal for one breaker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signal {
    /// The breaker's name (for a keyed registry, the name its `name_with` gives the key).
    pub breaker: String,
    /// The sending instance.
    pub origin: u64,
    /// The sender's message counter: strictly increasing per origin, so a receiver ignores
    /// a message no newer than the last one it took from that origin.
    pub epoch: u64,
    /// How long the sender's breaker is open: the longest a receiver holds (never longer
    /// than the receiver's own open duration).
    pub hold: Duration,
    /// How long the message counts, from when a receiver gets it.
    pub ttl: Duration,
    /// Why it was sent.
    pub cause: SignalCause,
}

/// A payload that is not a [`Signal`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// Not UTF-8.
    NotUtf8,
    /// The first word is not [`PREFIX`] (another format, or another version).
    UnknownFormat,
    /// A field is missing.
    Missing(&'static str),
    /// A field does not parse.
    Invalid(&'static str),
    /// The name is empty or longer than [`MAX_NAME_LEN`].
    BadName,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::NotUtf8 => f.write_str("fleet message is not utf-8"),
            DecodeError::UnknownFormat => write!(f, "fleet message does not start with `{PREFIX}`"),
            DecodeError::Missing(field) => write!(f, "fleet message has no `{field}`"),
            DecodeError::Invalid(field) => write!(f, "fleet message has an invalid `{field}`"),
            DecodeError::BadName => write!(
                f,
                "fleet message's breaker name is empty or longer than {MAX_NAME_LEN} bytes"
            ),
        }
    }
}

impl std::error::Error for DecodeError {}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Signal {
    /// The wire form.
    ///
    /// ```
    /// use cutout_fleet::{Signal, SignalCause};
    /// use std::time::Duration;
    ///
    /// let signal = Signal {
    ///     breaker: "payments".into(),
    ///     origin: 0xabc,
    ///     epoch: 7,
    ///     hold: Duration::from_secs(30),
    ///     ttl: Duration::from_secs(10),
    ///     cause: SignalCause::Trip,
    /// };
    /// let bytes = signal.encode();
    /// assert_eq!(bytes, b"cutout-fleet/1 0000000000000abc 7 30000 10000 trip payments");
    /// assert_eq!(Signal::decode(&bytes), Ok(signal));
    /// ```
    pub fn encode(&self) -> Vec<u8> {
        format!(
            "{PREFIX} {:016x} {} {} {} {} {}",
            self.origin,
            self.epoch,
            millis(self.hold),
            millis(self.ttl),
            self.cause.as_str(),
            self.breaker
        )
        .into_bytes()
    }

    /// Parses the wire form. Never panics, whatever the bytes.
    pub fn decode(bytes: &[u8]) -> Result<Signal, DecodeError> {
        let text = std::str::from_utf8(bytes).map_err(|_| DecodeError::NotUtf8)?;
        let mut fields = text.splitn(7, ' ');
        if fields.next() != Some(PREFIX) {
            return Err(DecodeError::UnknownFormat);
        }
        let mut next = |name: &'static str| fields.next().ok_or(DecodeError::Missing(name));
        let origin =
            u64::from_str_radix(next("origin")?, 16).map_err(|_| DecodeError::Invalid("origin"))?;
        let epoch = next("epoch")?
            .parse()
            .map_err(|_| DecodeError::Invalid("epoch"))?;
        let hold = next("hold")?
            .parse()
            .map_err(|_| DecodeError::Invalid("hold"))?;
        let ttl = next("ttl")?
            .parse()
            .map_err(|_| DecodeError::Invalid("ttl"))?;
        let cause = match next("cause")? {
            "trip" => SignalCause::Trip,
            "forced_open" => SignalCause::ForcedOpen,
            _ => return Err(DecodeError::Invalid("cause")),
        };
        let breaker = next("breaker")?;
        if breaker.is_empty() || breaker.len() > MAX_NAME_LEN {
            return Err(DecodeError::BadName);
        }
        Ok(Signal {
            breaker: breaker.to_owned(),
            origin,
            epoch,
            hold: Duration::from_millis(hold),
            ttl: Duration::from_millis(ttl),
            cause,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signal(name: &str) -> Signal {
        Signal {
            breaker: name.into(),
            origin: u64::MAX,
            epoch: u64::MAX,
            hold: Duration::from_millis(u64::MAX),
            ttl: Duration::ZERO,
            cause: SignalCause::ForcedOpen,
        }
    }

    #[test]
    fn round_trips_at_the_edges_and_with_spaces_in_the_name() {
        for name in ["a", "upstream: b.example /v1", &"x".repeat(MAX_NAME_LEN)] {
            let s = signal(name);
            assert_eq!(Signal::decode(&s.encode()), Ok(s));
        }
    }

    #[test]
    fn a_hold_too_long_for_u64_millis_saturates() {
        let mut s = signal("a");
        s.hold = Duration::MAX;
        assert_eq!(
            Signal::decode(&s.encode()).unwrap().hold,
            Duration::from_millis(u64::MAX)
        );
    }

    #[test]
    fn bad_payloads_get_typed_errors() {
        let cases: [(&[u8], DecodeError); 9] = [
            (b"\xff", DecodeError::NotUtf8),
            (b"", DecodeError::UnknownFormat),
            (b"cutout-fleet/2 1 1 1 1 trip a", DecodeError::UnknownFormat),
            (b"cutout-fleet/1", DecodeError::Missing("origin")),
            (
                b"cutout-fleet/1 zz 1 1 1 trip a",
                DecodeError::Invalid("origin"),
            ),
            (
                b"cutout-fleet/1 1 -1 1 1 trip a",
                DecodeError::Invalid("epoch"),
            ),
            (
                b"cutout-fleet/1 1 1 1 1 close a",
                DecodeError::Invalid("cause"),
            ),
            (
                b"cutout-fleet/1 1 1 1 1 trip",
                DecodeError::Missing("breaker"),
            ),
            (b"cutout-fleet/1 1 1 1 1 trip ", DecodeError::BadName),
        ];
        for (bytes, error) in cases {
            assert_eq!(Signal::decode(bytes), Err(error), "{bytes:?}");
        }
        let long = signal(&"x".repeat(MAX_NAME_LEN + 1)).encode();
        assert_eq!(Signal::decode(&long), Err(DecodeError::BadName));
    }
}
