//! Decimal header values without allocation: `&'static str` slices of one const table.
//!
//! The table holds every `n` in `0..=MAX` written as `n` followed by `000`, back to back
//! (`"0000" "1000" "2000" ... "3600000"`, 24 KB): a slice of an entry's digits is `n`
//! (a `Retry-After` in seconds), the whole entry `n * 1000` (a gRPC pushback in
//! milliseconds). Larger values are written at run time (one allocation): clamping them
//! would tell clients to come back before the breaker admits a call. An hour covers the
//! open durations breakers are given; a table to a day would be 680 KB in every binary.

use http::HeaderValue;

/// The largest value the table holds: an hour, in seconds.
pub(crate) const MAX: u64 = 3_600;

/// Digits of the widest entry.
const WIDEST: usize = digits(MAX);

/// `"000"` after each entry.
const SUFFIX: usize = 3;

const fn digits(mut n: u64) -> usize {
    let mut d = 1;
    while n >= 10 {
        n /= 10;
        d += 1;
    }
    d
}

/// The first number with `d` digits (`d >= 1`).
const fn first_with(d: usize) -> u64 {
    if d == 1 { 0 } else { 10u64.pow(d as u32 - 1) }
}

/// Where `n`'s entry starts.
const fn start(n: u64) -> usize {
    let d = digits(n);
    let mut at = 0;
    let mut k = 1;
    while k < d {
        at += (first_with(k + 1) - first_with(k)) as usize * (k + SUFFIX);
        k += 1;
    }
    at + (n - first_with(d)) as usize * (d + SUFFIX)
}

const LEN: usize = start(MAX) + WIDEST + SUFFIX;

static BYTES: [u8; LEN] = {
    let mut table = [b'0'; LEN];
    let mut n = 0;
    while n <= MAX {
        let (at, d) = (start(n), digits(n));
        let (mut i, mut rest) = (d, n);
        while i > 0 {
            i -= 1;
            table[at + i] = b'0' + (rest % 10) as u8;
            rest /= 10;
        }
        // The suffix is already `000`.
        n += 1;
    }
    table
};

static TABLE: &str = match std::str::from_utf8(&BYTES) {
    Ok(table) => table,
    Err(_) => panic!("the table is ASCII digits"),
};

/// `n` in decimal, if `n <= MAX`.
pub(crate) fn number(n: u64) -> Option<&'static str> {
    (n <= MAX).then(|| {
        let at = start(n);
        &TABLE[at..at + digits(n)]
    })
}

/// `n * 1000` in decimal, if `n <= MAX`.
#[cfg(feature = "grpc")]
pub(crate) fn thousands(n: u64) -> Option<&'static str> {
    (n <= MAX).then(|| {
        let at = start(n);
        if n == 0 {
            &TABLE[at..at + 1]
        } else {
            &TABLE[at..at + digits(n) + SUFFIX]
        }
    })
}

/// `n` as a header value: static up to [`MAX`], else one allocation (its bytes).
pub(crate) fn header_value(n: u64) -> HeaderValue {
    match number(n) {
        Some(digits) => HeaderValue::from_static(digits),
        None => written(n),
    }
}

/// `n * 1000` (saturating) as a header value: static for `n` up to [`MAX`], else one
/// allocation.
#[cfg(feature = "grpc")]
pub(crate) fn thousands_header_value(n: u64) -> HeaderValue {
    match thousands(n) {
        Some(digits) => HeaderValue::from_static(digits),
        None => written(n.saturating_mul(1000)),
    }
}

/// `n` written at run time: one allocation (`HeaderValue::from(u64)` makes two).
fn written(mut n: u64) -> HeaderValue {
    let mut buf = [0u8; 20];
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // Digits are valid header bytes; the fallback is never taken.
    HeaderValue::from_bytes(&buf[at..]).unwrap_or_else(|_| HeaderValue::from_static("0"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_entry_is_its_number() {
        for n in 0..=MAX {
            assert_eq!(number(n), Some(n.to_string().as_str()));
            #[cfg(feature = "grpc")]
            assert_eq!(thousands(n), Some((n * 1000).to_string().as_str()));
        }
        assert_eq!(number(MAX + 1), None);
        assert_eq!(number(u64::MAX), None);
        for n in [0, 7, MAX, MAX + 1, 86_400, u64::MAX] {
            assert_eq!(header_value(n), n.to_string().as_str());
            #[cfg(feature = "grpc")]
            assert_eq!(
                thousands_header_value(n),
                n.saturating_mul(1000).to_string().as_str()
            );
        }
        assert_eq!(LEN, 24_097);
    }
}
