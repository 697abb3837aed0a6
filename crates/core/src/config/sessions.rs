//! `sessions:` the lifetimes and number of interactive sessions.

use serde::{Deserialize, Serialize};

use crate::units::HumanDuration;

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SessionsConfig {
    /// A session nobody used for this long is ended (a request may ask for less).
    #[serde(default = "default_session_idle")]
    pub idle_timeout: HumanDuration,
    /// No session lives longer than this, used or not.
    #[serde(default = "default_session_lifetime")]
    pub max_lifetime: HumanDuration,
    /// Live sessions one subject may hold; one more is answered 429.
    #[serde(default = "default_sessions_per_subject")]
    pub max_per_subject: usize,
}

fn default_session_idle() -> HumanDuration {
    HumanDuration::secs(600)
}
fn default_session_lifetime() -> HumanDuration {
    HumanDuration::secs(3600)
}
fn default_sessions_per_subject() -> usize {
    4
}

impl Default for SessionsConfig {
    fn default() -> Self {
        SessionsConfig {
            idle_timeout: default_session_idle(),
            max_lifetime: default_session_lifetime(),
            max_per_subject: default_sessions_per_subject(),
        }
    }
}
