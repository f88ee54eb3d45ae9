//! Lock-free latency tracking: two log-scale histograms of atomics, one per epoch.
//!
//! ```text
//! bucket index:  0 .. 7 | 8 .. 15  | 16 .. 23 | ... | 232 .. 239
//! covers (µs):   0 .. 7 | 8 .. 15  | 16 .. 31 | ... | 2^31 .. 2^32 (and above)
//! width (µs):    1      | 1        | 2        | ... | 2^28
//! ```
//!
//! Latencies are counted in microseconds. Below 8 µs each microsecond has a bucket; above,
//! each power of two is split into 8 equal buckets, so a bucket's upper edge is at most
//! 12.5% above any latency in it. Latencies of 2^32 µs (71 minutes) and more share the last
//! bucket. [`BUCKETS`] buckets of `AtomicU64`, two sets: 3840 bytes, whatever the traffic.
//!
//! **Decay.** Time is cut into epochs of one `window`. Samples go to the set of the current
//! epoch; percentiles read the current and the previous epoch together, so they cover the
//! last one to two windows. The first thread to see a new epoch moves the epoch number
//! forward with one compare-exchange and clears the set that now holds data two epochs old
//! (both sets after a silence of two windows or more). A sample from the previous epoch
//! (its thread read the clock just before the turn) goes to the previous set; an older one
//! is dropped. A sample recorded by another thread at the instant of a turn may land in the
//! set being cleared, and be lost or (rarely) counted in the new epoch; nothing else is
//! approximate, and nothing locks.

use std::sync::atomic::{AtomicU64, Ordering};

/// Sub-buckets per power of two, as a power of two.
pub(crate) const SUB_BITS: u32 = 3;
const SUB: usize = 1 << SUB_BITS;
/// The highest power of two with its own buckets: latencies up to 2^(MAX_EXP+1) µs.
const MAX_EXP: u32 = 31;
/// Buckets per set.
pub(crate) const BUCKETS: usize = SUB + (MAX_EXP - SUB_BITS + 1) as usize * SUB;

/// The bucket of a latency of `us` microseconds.
#[inline]
pub(crate) fn bucket(us: u64) -> usize {
    if us < SUB as u64 {
        return us as usize;
    }
    let exp = 63 - us.leading_zeros();
    if exp > MAX_EXP {
        return BUCKETS - 1;
    }
    let sub = (us >> (exp - SUB_BITS)) as usize & (SUB - 1);
    SUB + (exp - SUB_BITS) as usize * SUB + sub
}

/// The exclusive upper edge of bucket `i`, in microseconds.
#[inline]
pub(crate) fn upper_edge(i: usize) -> u64 {
    if i < SUB {
        return i as u64 + 1;
    }
    let i = i.min(BUCKETS - 1) - SUB;
    let exp = (i / SUB) as u32 + SUB_BITS;
    let sub = (i % SUB) as u64;
    (SUB as u64 + sub + 1) << (exp - SUB_BITS)
}

/// One epoch's counts.
struct Set {
    total: AtomicU64,
    buckets: Box<[AtomicU64]>,
}

impl Set {
    fn new() -> Self {
        Self {
            total: AtomicU64::new(0),
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    fn clear(&self) {
        for b in self.buckets.iter() {
            b.store(0, Ordering::Relaxed);
        }
        self.total.store(0, Ordering::Release);
    }
}

/// Two epochs of latency counts; see the [module docs](self).
pub(crate) struct Histogram {
    /// The epoch whose samples go to `sets[epoch % 2]`.
    epoch: AtomicU64,
    sets: [Set; 2],
}

impl Histogram {
    pub(crate) fn new() -> Self {
        Self {
            epoch: AtomicU64::new(0),
            sets: [Set::new(), Set::new()],
        }
    }

    /// Moves to epoch `now` if it is later than the current one; returns the current epoch
    /// (never earlier than `now`).
    #[inline]
    pub(crate) fn advance(&self, now: u64) -> u64 {
        let mut current = self.epoch.load(Ordering::Acquire);
        loop {
            if now <= current {
                return current;
            }
            match self
                .epoch
                .compare_exchange(current, now, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    // The set of epoch `now` held epoch `now - 2`: clear it. After a longer
                    // silence, the other one is stale too.
                    self.sets[(now % 2) as usize].clear();
                    if now - current >= 2 {
                        self.sets[((now + 1) % 2) as usize].clear();
                    }
                    return now;
                }
                // Another thread moved it, maybe not as far: look again.
                Err(actual) => current = actual,
            }
        }
    }

    /// Counts one latency of `us` microseconds in epoch `now`. A sample from the previous
    /// epoch (a thread that read the clock just before another turned the epoch) goes to the
    /// previous set; an older one is dropped.
    #[inline]
    pub(crate) fn record(&self, now: u64, us: u64) {
        let current = self.advance(now);
        if current.saturating_sub(now) > 1 {
            return;
        }
        let set = &self.sets[(now % 2) as usize];
        set.buckets[bucket(us)].fetch_add(1, Ordering::Relaxed);
        set.total.fetch_add(1, Ordering::Release);
    }

    /// Samples in the current and previous epoch, as of epoch `now`.
    pub(crate) fn count(&self, now: u64) -> u64 {
        self.advance(now);
        self.sets[0].total.load(Ordering::Acquire) + self.sets[1].total.load(Ordering::Acquire)
    }

    /// The upper edge, in microseconds, of the bucket holding the `q`-quantile of the
    /// current and previous epoch (`q` in `(0, 1]`), with the number of samples it was
    /// taken from; `None` with fewer than `min_samples` samples.
    pub(crate) fn quantile(&self, now: u64, q: f64, min_samples: u64) -> Option<(u64, u64)> {
        let total = self.count(now);
        if total < min_samples.max(1) {
            return None;
        }
        // The rank of the q-quantile sample, 1-based: ceil(q * total), at least 1. The
        // tolerance keeps float noise (0.7 * 10 = 7.000000000000001) from adding a rank.
        let rank = ((q * total as f64 - 1e-9).ceil() as u64).clamp(1, total);
        let mut seen = 0u64;
        let mut highest = None;
        for i in 0..BUCKETS {
            let n = self.sets[0].buckets[i].load(Ordering::Relaxed)
                + self.sets[1].buckets[i].load(Ordering::Relaxed);
            if n == 0 {
                continue;
            }
            highest = Some(i);
            seen += n;
            if seen >= rank {
                return Some((upper_edge(i), total));
            }
        }
        // Counts read mid-rotation may not add up to `total`: use the highest sample seen.
        highest.map(|i| (upper_edge(i), total))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_edges() {
        assert_eq!(BUCKETS, 240);
        for us in 0..8 {
            assert_eq!(bucket(us), us as usize);
            assert_eq!(upper_edge(us as usize), us + 1);
        }
        assert_eq!(bucket(8), 8);
        assert_eq!(bucket(15), 15);
        assert_eq!(bucket(16), 16);
        assert_eq!(bucket(17), 16);
        assert_eq!(bucket(18), 17);
        assert_eq!(upper_edge(16), 18);
        // 10 ms lands in [9216, 10240) µs.
        assert_eq!(bucket(10_000), 89);
        assert_eq!(upper_edge(89), 10_240);
        assert_eq!(upper_edge(88), 9_216);
        // The top: everything from 2^32 µs on shares the last bucket.
        assert_eq!(bucket((1 << 32) - 1), BUCKETS - 1);
        assert_eq!(bucket(1 << 32), BUCKETS - 1);
        assert_eq!(bucket(u64::MAX), BUCKETS - 1);
        assert_eq!(upper_edge(BUCKETS - 1), 1 << 32);
        assert_eq!(upper_edge(usize::MAX), 1 << 32);
    }

    #[test]
    fn every_value_is_below_its_upper_edge_and_within_an_eighth() {
        let mut us = 1u64;
        while us < (1 << 32) {
            let edge = upper_edge(bucket(us));
            assert!(us < edge, "{us} < {edge}");
            assert!(edge - us <= us / 8 + 1, "{us}: edge {edge}");
            // The previous bucket ends at or below the value.
            let b = bucket(us);
            if b > 0 {
                assert!(upper_edge(b - 1) <= us, "{us}");
            }
            us = us * 9 / 8 + 1;
        }
    }

    #[test]
    fn quantiles() {
        let h = Histogram::new();
        assert_eq!(h.quantile(0, 0.99, 1), None);
        for _ in 0..99 {
            h.record(0, 1_000);
        }
        h.record(0, 100_000);
        // 99 samples of 1 ms and one of 100 ms: p99 is the 99th sample, p100 the 100th.
        assert_eq!(h.quantile(0, 0.99, 100), Some((1_024, 100)));
        assert_eq!(h.quantile(0, 1.0, 100), Some((106_496, 100)));
        assert_eq!(h.quantile(0, 0.5, 101), None);
    }

    #[test]
    fn threads_count_exactly_within_an_epoch() {
        let h = std::sync::Arc::new(Histogram::new());
        let threads: Vec<_> = (0..4u64)
            .map(|t| {
                let h = h.clone();
                std::thread::spawn(move || {
                    for i in 0..25_000u64 {
                        h.record(0, 1_000 * (1 + (i + t) % 10));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(h.count(0), 100_000);
        // 10% of the samples at each of 1..10 ms: p50 is the 5 ms bucket's edge.
        assert_eq!(h.quantile(0, 0.5, 1), Some((5_120, 100_000)));
        assert_eq!(h.quantile(0, 1.0, 1), Some((10_240, 100_000)));
    }

    #[test]
    fn rotations_under_threads_never_overcount() {
        let h = std::sync::Arc::new(Histogram::new());
        let threads: Vec<_> = (0..4u64)
            .map(|_| {
                let h = h.clone();
                std::thread::spawn(move || {
                    for i in 0..20_000u64 {
                        // The epoch moves forward every 1000 samples of each thread.
                        h.record(i / 1_000, 100);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        // Epochs 18 and 19 hold at most 4 threads x 2000 samples, give or take the few
        // that a writer racing a rotation puts in the set being cleared (at most one per
        // other thread per rotation).
        let n = h.count(19);
        assert!(n > 0 && n <= 8_000 + 3 * 19, "{n}");
        assert_eq!(h.quantile(19, 1.0, 1).map(|q| q.0), Some(104));
    }

    #[test]
    fn late_samples_go_to_the_previous_epoch_or_nowhere() {
        let h = Histogram::new();
        h.record(5, 1_000);
        h.record(4, 2_000); // the previous epoch: counted there
        h.record(3, 4_000); // older: dropped
        assert_eq!(h.count(5), 2);
        assert_eq!(h.quantile(5, 1.0, 1), Some((2_048, 2)));
        // At epoch 6 only epoch 5's sample is left.
        assert_eq!(h.count(6), 1);
        assert_eq!(h.quantile(6, 1.0, 1), Some((1_024, 1)));
    }

    #[test]
    fn epochs_decay() {
        let h = Histogram::new();
        h.record(0, 1_000);
        h.record(1, 2_000);
        // Epoch 1 reads epochs 0 and 1.
        assert_eq!(h.count(1), 2);
        // Epoch 2 drops epoch 0.
        assert_eq!(h.count(2), 1);
        assert_eq!(h.quantile(2, 1.0, 1), Some((2_048, 1)));
        // A silence of two epochs drops everything.
        h.record(2, 3_000);
        assert_eq!(h.count(4), 0);
        // An old epoch reads the current state, it does not go back.
        assert_eq!(h.count(3), 0);
        h.record(4, 500);
        assert_eq!(h.quantile(0, 1.0, 1), Some((512, 1)));
    }
}
