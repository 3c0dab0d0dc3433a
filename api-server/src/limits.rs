//! Per-identity rate limiting: a token bucket per caller (`burst` requests, refilled at `per_second`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use crate::error::ApiError;

/// Buckets by identity.
pub struct RateLimiter {
    burst: f64,
    per_second: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimiter {
    /// `burst` requests at once, `per_second` sustained.
    pub fn new(burst: u32, per_second: f64) -> Self {
        Self { burst: f64::from(burst.max(1)), per_second: per_second.max(0.001), buckets: Mutex::new(HashMap::new()) }
    }

    /// Takes one token for `who`, or says how many seconds to wait.
    pub fn check(&self, who: &str) -> Result<(), ApiError> {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().map_err(|_| ApiError::Internal)?;
        // Forget idle callers so the map stays bounded by the active ones.
        if buckets.len() > 10_000 {
            let (burst, rate) = (self.burst, self.per_second);
            buckets.retain(|_, (tokens, at)| *tokens + now.duration_since(*at).as_secs_f64() * rate < burst);
        }
        let (tokens, at) = buckets.entry(who.to_string()).or_insert((self.burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * self.per_second).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            let wait = ((1.0 - *tokens) / self.per_second).ceil().max(1.0);
            Err(ApiError::RateLimited(wait as u64))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_are_allowed_then_limited_per_identity() {
        let l = RateLimiter::new(3, 0.5);
        for _ in 0..3 {
            assert!(l.check("a").is_ok());
        }
        assert!(matches!(l.check("a"), Err(ApiError::RateLimited(2))));
        assert!(l.check("b").is_ok(), "other callers are not affected");
    }
}
