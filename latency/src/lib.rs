//! A latency histogram that the hot path can feed with a few relaxed atomic adds, and a
//! metrics endpoint can read at scrape time. Buckets are fixed (Prometheus style, in
//! seconds) and wide enough for an fsync (100 µs) as well as a delivery receipt (hours),
//! so one type serves every latency of the gateway without configuration.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

/// Upper bounds of the buckets, in microseconds; the last, implicit bucket is +Inf.
const BOUNDS_MICROS: [u64; 22] = [
    100,
    250,
    500,
    1_000,
    2_500,
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    30_000_000,
    60_000_000,
    300_000_000,
    900_000_000,
    3_600_000_000,
    86_400_000_000,
];

/// Counts per bucket (not cumulative), their sum and their number.
#[derive(Debug, Default)]
pub struct LatencyHistogram {
    buckets: [AtomicU64; BOUNDS_MICROS.len() + 1],
    sum_micros: AtomicU64,
    count: AtomicU64,
}

/// What a scrape reads: the count of each bucket by its upper bound in seconds, +Inf
/// last. Not cumulative: encoders (prometheus-client's among them) add them up.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    pub buckets: Vec<(f64, u64)>,
    pub sum_seconds: f64,
    pub count: u64,
}

impl LatencyHistogram {
    pub fn observe(&self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        let index = BOUNDS_MICROS
            .iter()
            .position(|bound| micros <= *bound)
            .unwrap_or(BOUNDS_MICROS.len());
        self.buckets[index].fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Not atomic as a whole: a scrape racing an observation may see the count one ahead
    /// of a bucket, which Prometheus tolerates (the next scrape catches up).
    pub fn snapshot(&self) -> HistogramSnapshot {
        let buckets = self
            .buckets
            .iter()
            .enumerate()
            .map(|(i, bucket)| {
                let bound = BOUNDS_MICROS
                    .get(i)
                    .map_or(f64::INFINITY, |b| *b as f64 / 1e6);
                (bound, bucket.load(Ordering::Relaxed))
            })
            .collect();
        HistogramSnapshot {
            buckets,
            sum_seconds: self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
            count: self.count.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_their_buckets() {
        let h = LatencyHistogram::default();
        h.observe(Duration::from_micros(50));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(1_000_000));
        let s = h.snapshot();
        assert_eq!(s.count, 3);
        assert_eq!(s.buckets[0], (0.0001, 1));
        let le_5ms = s.buckets.iter().find(|(b, _)| *b == 0.005).map(|(_, c)| *c);
        assert_eq!(le_5ms, Some(1));
        assert_eq!(s.buckets.last(), Some(&(f64::INFINITY, 1)));
        assert_eq!(s.buckets.iter().map(|(_, c)| c).sum::<u64>(), 3);
        assert!(s.sum_seconds > 1_000_000.0);
    }
}
