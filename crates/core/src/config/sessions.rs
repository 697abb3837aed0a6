//! `sessions:` the lifetimes and number of interactive sessions.

use serde::{Deserialize, Serialize};

use crate::units::HumanDuration;

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionsConfig {
    /// A session nobody used for this long is ended (a request may ask for less).
    pub idle_timeout: HumanDuration,
    /// No session lives longer than this, used or not.
    pub max_lifetime: HumanDuration,
    /// Live sessions one subject may hold; one more is answered 429.
    pub max_per_subject: usize,
}

impl Default for SessionsConfig {
    fn default() -> Self {
        SessionsConfig {
            idle_timeout: HumanDuration::secs(600),
            max_lifetime: HumanDuration::secs(3600),
            max_per_subject: 4,
        }
    }
}
