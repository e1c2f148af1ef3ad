//! Per-token request rate limits: a token bucket for each token that authenticates, so one noisy
//! controller slows down itself, not the worker and everyone else on it.
//!
//! A bucket holds up to `burst` requests and refills at `per_s`; a request that finds it empty
//! is answered 429 `rate_limited` with `Retry-After`, before any work is done for it. Buckets are
//! keyed by who the token says the caller is (`operator`, `session:<id>`), never by the token's
//! text. A session's bucket lives as long as the worker (one small entry per session ever seen).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct RateLimiter {
    per_s: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RateLimiter {
    /// `per_s` of 0 admits everything.
    pub fn new(per_s: f64, burst: u32) -> Self {
        Self {
            per_s,
            burst: f64::from(burst.max(1)),
            buckets: Mutex::default(),
        }
    }

    /// Takes one request from `caller`'s bucket, or says how long until one is there.
    pub fn admit(&self, caller: &str) -> Result<(), Duration> {
        self.admit_at(caller, Instant::now())
    }

    fn admit_at(&self, caller: &str, now: Instant) -> Result<(), Duration> {
        if self.per_s <= 0.0 {
            return Ok(());
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        // Looked up by `&str` first: a known caller costs no allocation.
        if !buckets.contains_key(caller) {
            let full = Bucket {
                tokens: self.burst,
                at: now,
            };
            buckets.insert(caller.to_owned(), full);
        }
        let Some(bucket) = buckets.get_mut(caller) else {
            return Ok(());
        };
        let refill = now.saturating_duration_since(bucket.at).as_secs_f64() * self.per_s;
        bucket.tokens = (bucket.tokens + refill).min(self.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        Err(Duration::from_secs_f64((1.0 - bucket.tokens) / self.per_s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_the_rate_holds() {
        let limiter = RateLimiter::new(10.0, 5);
        let start = Instant::now();
        for _ in 0..5 {
            assert!(limiter.admit_at("operator", start).is_ok());
        }
        let wait = limiter.admit_at("operator", start).unwrap_err();
        assert!(wait > Duration::from_millis(90) && wait <= Duration::from_millis(100));
        // Another caller has a bucket of its own.
        assert!(limiter.admit_at("session", start).is_ok());
        // A tenth of a second later, one more.
        let later = start + Duration::from_millis(100);
        assert!(limiter.admit_at("operator", later).is_ok());
        assert!(limiter.admit_at("operator", later).is_err());
        // Refills never exceed the burst.
        let much_later = start + Duration::from_secs(60);
        for _ in 0..5 {
            assert!(limiter.admit_at("operator", much_later).is_ok());
        }
        assert!(limiter.admit_at("operator", much_later).is_err());
    }

    #[test]
    fn a_rate_of_zero_admits_everything() {
        let limiter = RateLimiter::new(0.0, 1);
        for _ in 0..1000 {
            assert!(limiter.admit("operator").is_ok());
        }
    }
}
