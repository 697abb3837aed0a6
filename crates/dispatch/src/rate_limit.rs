//! Requests per subject, as a token bucket: a subject may make `rate_limit.burst`
//! requests at once, then `rate_limit.per_minute` a minute. Beyond that: 429 with
//! `Retry-After`. Runs after authentication (the subject is the principal's), so only
//! authenticated requests spend tokens and unauthenticated ones cannot fill the table.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use runbox_core::config::RateLimitConfig;

use crate::auth::Principal;
use crate::error::ApiError;

/// Above this many subjects, buckets that have refilled completely are dropped (a full
/// bucket is the same as no bucket).
const PRUNE_ABOVE: usize = 1024;

pub struct RateLimiter {
    /// Tokens added per second.
    rate: f64,
    /// Tokens a bucket holds at most.
    capacity: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl RateLimiter {
    /// `None` when the limit is off (`per_minute: 0`).
    pub fn from_config(config: &RateLimitConfig) -> Option<Arc<RateLimiter>> {
        if config.per_minute == 0 {
            return None;
        }
        let burst = if config.burst == 0 {
            config.per_minute / 6
        } else {
            config.burst
        };
        Some(Arc::new(RateLimiter {
            rate: f64::from(config.per_minute) / 60.0,
            capacity: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }))
    }

    /// Takes a token of `subject`'s bucket, or says how long until one is there.
    pub fn check(&self, subject: &str, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() > PRUNE_ABOVE {
            buckets.retain(|_, bucket| self.refilled(bucket, now) < self.capacity);
        }
        let bucket = buckets.entry(subject.to_string()).or_insert(Bucket {
            tokens: self.capacity,
            updated: now,
        });
        bucket.tokens = self.refilled(bucket, now);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / self.rate))
        }
    }

    fn refilled(&self, bucket: &Bucket, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        (bucket.tokens + elapsed * self.rate).min(self.capacity)
    }
}

/// Middleware behind `require_bearer` on the routes that run or manage work.
pub async fn limit_rate(
    State(limiter): State<Arc<RateLimiter>>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if let Some(principal) = request.extensions().get::<Principal>() {
        if let Err(wait) = limiter.check(&principal.subject, Instant::now()) {
            let retry_after = wait.as_secs_f64().ceil().max(1.0) as u64;
            tracing::info!(subject = %principal.subject, retry_after, "rate limited");
            return Err(ApiError::RateLimited { retry_after });
        }
    }
    Ok(next.run(request).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(per_minute: u32, burst: u32) -> Arc<RateLimiter> {
        RateLimiter::from_config(&RateLimitConfig { per_minute, burst }).expect("enabled")
    }

    #[test]
    fn off_when_per_minute_is_zero() {
        assert!(RateLimiter::from_config(&RateLimitConfig::default()).is_none());
    }

    #[test]
    fn a_burst_then_the_sustained_rate() {
        let limiter = limiter(60, 3);
        let start = Instant::now();
        for _ in 0..3 {
            assert!(limiter.check("alice", start).is_ok());
        }
        let wait = limiter
            .check("alice", start)
            .expect_err("the burst is spent");
        assert!(
            wait <= Duration::from_secs(1) && wait > Duration::ZERO,
            "{wait:?}"
        );
        // One token a second comes back.
        assert!(limiter
            .check("alice", start + Duration::from_secs(1))
            .is_ok());
        assert!(limiter
            .check("alice", start + Duration::from_secs(1))
            .is_err());
        // After a long pause the bucket is full again, never fuller.
        let later = start + Duration::from_secs(3600);
        for _ in 0..3 {
            assert!(limiter.check("alice", later).is_ok());
        }
        assert!(limiter.check("alice", later).is_err());
    }

    #[test]
    fn subjects_have_buckets_of_their_own() {
        let limiter = limiter(60, 1);
        let now = Instant::now();
        assert!(limiter.check("alice", now).is_ok());
        assert!(limiter.check("alice", now).is_err());
        assert!(limiter.check("bob", now).is_ok());
    }

    #[test]
    fn the_default_burst_is_a_sixth_of_a_minute() {
        let limiter = limiter(60, 0);
        let now = Instant::now();
        let allowed = (0..20).filter(|_| limiter.check("a", now).is_ok()).count();
        assert_eq!(allowed, 10);
        let slow = self::limiter(2, 0);
        assert!(slow.check("a", now).is_ok());
        assert!(
            slow.check("a", now).is_err(),
            "at least one, at most the burst"
        );
    }

    #[test]
    fn full_buckets_are_pruned() {
        let limiter = limiter(600, 1);
        let now = Instant::now();
        for i in 0..=PRUNE_ABOVE {
            let _ = limiter.check(&format!("s{i}"), now);
        }
        let later = now + Duration::from_secs(60);
        let _ = limiter.check("last", later);
        let count = limiter.buckets.lock().map(|b| b.len()).unwrap_or(0);
        assert_eq!(count, 1);
    }
}
