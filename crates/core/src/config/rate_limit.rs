//! `rate_limit:` requests per subject.

use serde::{Deserialize, Serialize};

/// Requests per subject, as a token bucket. 0 turns the limit off.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Sustained requests per minute one subject may make; 0: unlimited.
    pub per_minute: u32,
    /// Requests a subject may make at once (the size of its bucket); 0: per_minute / 6.
    pub burst: u32,
}
