//! `functions:` the builds of stored functions' environments.

use serde::{Deserialize, Serialize};

use crate::units::{ByteSize, HumanDuration};

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionsConfig {
    /// A dependency install (pip in a build container) that takes longer fails.
    #[serde(default = "default_build_timeout")]
    pub build_timeout: HumanDuration,
    /// Memory of the container that installs a function's dependencies (building wheels
    /// needs more than running code does).
    #[serde(default = "default_build_memory")]
    pub build_memory: ByteSize,
    /// Environment builds running at once; more wait (their status reads `building`).
    #[serde(default = "default_parallel_builds")]
    pub max_parallel_builds: usize,
}

fn default_build_timeout() -> HumanDuration {
    HumanDuration::secs(600)
}
fn default_build_memory() -> ByteSize {
    ByteSize::mib(2048)
}
fn default_parallel_builds() -> usize {
    2
}

impl Default for FunctionsConfig {
    fn default() -> Self {
        FunctionsConfig {
            build_timeout: default_build_timeout(),
            build_memory: default_build_memory(),
            max_parallel_builds: default_parallel_builds(),
        }
    }
}
