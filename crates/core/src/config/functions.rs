//! `functions:` the builds of stored functions' environments.

use serde::{Deserialize, Serialize};

use crate::units::{ByteSize, HumanDuration};

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct FunctionsConfig {
    /// A dependency install (pip in a build container) that takes longer fails.
    pub build_timeout: HumanDuration,
    /// Memory of the container that installs a function's dependencies (building wheels
    /// needs more than running code does).
    pub build_memory: ByteSize,
    /// Environment builds running at once; more wait (their status reads `building`).
    pub max_parallel_builds: usize,
}

impl Default for FunctionsConfig {
    fn default() -> Self {
        FunctionsConfig {
            build_timeout: HumanDuration::secs(600),
            build_memory: ByteSize::mib(2048),
            max_parallel_builds: 2,
        }
    }
}
