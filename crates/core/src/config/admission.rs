//! `admission:` how many runs execute at once and how long the rest wait.

use serde::{Deserialize, Serialize};

use crate::units::HumanDuration;

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AdmissionConfig {
    /// Runs executing at once; further requests wait.
    #[serde(default = "default_max_concurrent")]
    pub max_concurrent_runs: usize,
    /// How long a request waits for a free slot before 504.
    #[serde(default = "default_max_wait")]
    pub max_wait: HumanDuration,
}

fn default_max_concurrent() -> usize {
    8
}
fn default_max_wait() -> HumanDuration {
    HumanDuration::secs(10)
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        AdmissionConfig {
            max_concurrent_runs: default_max_concurrent(),
            max_wait: default_max_wait(),
        }
    }
}
