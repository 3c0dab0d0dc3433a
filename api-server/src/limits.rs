//! Per-identity rate limiting (`governor`'s GCRA, equivalent to a token bucket per caller: `burst`
//! requests at once, refilled at `per_second`).

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::HashMapStateStore;
use governor::Quota;

use crate::error::ApiError;

/// Callers remembered before the ones whose buckets are full again are forgotten.
const REMEMBERED: usize = 10_000;

/// Buckets by identity.
pub struct RateLimiter {
    limiter: governor::RateLimiter<String, HashMapStateStore<String>, DefaultClock>,
    clock: DefaultClock,
}

impl RateLimiter {
    /// `burst` requests at once, `per_second` sustained (fractions allowed: 0.2 is one every 5 s).
    pub fn new(burst: u32, per_second: f64) -> Self {
        let period = Duration::from_secs_f64(1.0 / per_second.max(0.001));
        let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
        // A period too short to represent means "no limit worth keeping": a million per second.
        let quota = Quota::with_period(period)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::new(1_000_000).unwrap_or(NonZeroU32::MAX)))
            .allow_burst(burst);
        let clock = DefaultClock::default();
        Self { limiter: governor::RateLimiter::new(quota, HashMapStateStore::default(), clock.clone()), clock }
    }

    /// Takes one request's worth for `who`, or says how many seconds to wait.
    pub fn check(&self, who: &str) -> Result<(), ApiError> {
        // Forget idle callers so the map stays bounded by the active ones.
        if self.limiter.len() > REMEMBERED {
            self.limiter.retain_recent();
        }
        match self.limiter.check_key(&who.to_string()) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.clock.now());
                Err(ApiError::RateLimited(wait.as_secs_f64().ceil().max(1.0) as u64))
            }
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

    #[test]
    fn a_fractional_rate_waits_whole_seconds() {
        let l = RateLimiter::new(1, 0.2);
        assert!(l.check("a").is_ok());
        assert!(matches!(l.check("a"), Err(ApiError::RateLimited(5))));
    }
}
