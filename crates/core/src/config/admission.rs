//! `admission:` how many runs execute at once and how long the rest wait.

use serde::{Deserialize, Serialize};

use crate::units::HumanDuration;

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdmissionConfig {
    /// Runs executing at once; further requests wait.
    pub max_concurrent_runs: usize,
    /// How long a request waits for a free slot before 504.
    pub max_wait: HumanDuration,
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        AdmissionConfig {
            max_concurrent_runs: 8,
            max_wait: HumanDuration::secs(10),
        }
    }
}
