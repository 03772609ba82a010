//! Token bucket used for per-session submit caps (server) and uplink throughput caps.

use std::time::{Duration, Instant};

/// Below this a rate is treated as this: one token per ~11.6 days. It keeps every wait a
/// finite `Duration` that an `Instant` can be moved by (1e-12/s would mean 31,700 years).
pub const MIN_RATE: f64 = 1e-6;
/// Above this a rate (and a burst) is treated as this: unlimited in practice, and finite.
pub const MAX_RATE: f64 = 1e12;

/// Refills `rate` tokens per second up to `burst`.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// `rate` per second; `burst` defaults to one second's worth (at least 1).
    ///
    /// Never panics: `rate` is clamped to [`MIN_RATE`, `MAX_RATE`] (NaN and zero or
    /// negative rates become `MIN_RATE`); config loading should refuse such values.
    pub fn new(rate: f64) -> Self {
        let burst = rate.max(1.0);
        Self::with_burst(rate, burst)
    }

    pub fn with_burst(rate: f64, burst: f64) -> Self {
        // clamp keeps a NaN, which would poison every refill: it gets the bound instead.
        let rate = if rate.is_nan() {
            MIN_RATE
        } else {
            rate.clamp(MIN_RATE, MAX_RATE)
        };
        let burst = if burst.is_nan() {
            1.0
        } else {
            burst.clamp(1.0, MAX_RATE)
        };
        Self {
            rate,
            burst,
            tokens: burst,
            last: Instant::now(),
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.last = now;
    }

    /// Take one token if there is one.
    pub fn try_take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// How long until one token is available (zero if one is).
    pub fn wait_time(&mut self, now: Instant) -> Duration {
        self.refill(now);
        if self.tokens >= 1.0 {
            Duration::ZERO
        } else {
            // At most 1/MIN_RATE seconds; try_ keeps even a surprise from panicking.
            Duration::try_from_secs_f64((1.0 - self.tokens) / self.rate)
                .unwrap_or(Duration::from_secs_f64(1.0 / MIN_RATE))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_bursts_and_refills() {
        let start = Instant::now();
        let mut bucket = TokenBucket::with_burst(10.0, 2.0);
        assert!(bucket.try_take(start));
        assert!(bucket.try_take(start));
        assert!(!bucket.try_take(start));
        assert!(bucket.wait_time(start) > Duration::ZERO);
        assert!(bucket.try_take(start + Duration::from_millis(100)));
        assert!(!bucket.try_take(start + Duration::from_millis(100)));
    }

    #[test]
    fn tiny_huge_and_odd_rates_do_not_panic() {
        let now = Instant::now();
        for rate in [
            1e-12,
            f64::MIN_POSITIVE,
            5e-324,
            0.0,
            -1.0,
            f64::NAN,
            -f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            1e300,
            f64::MAX,
        ] {
            let mut bucket = TokenBucket::new(rate);
            assert!(
                bucket.try_take(now),
                "rate {rate}: the first token is there"
            );
            let wait = bucket.wait_time(now);
            assert!(
                wait <= Duration::from_secs_f64(1.0 / MIN_RATE),
                "rate {rate}"
            );
            // What the uplink does with it: a deadline that must not overflow.
            let _ = now + wait;
            let _ = bucket.try_take(now + Duration::from_secs(3600));
        }
        // A tiny rate waits about as long as the clamped one, not forever.
        let mut odd = TokenBucket::with_burst(1.0, f64::NAN);
        assert!(odd.try_take(now) && !odd.try_take(now));
        let mut slow = TokenBucket::new(1e-12);
        slow.try_take(now);
        assert!(slow.wait_time(now) > Duration::from_secs(24 * 3600));
    }
}
