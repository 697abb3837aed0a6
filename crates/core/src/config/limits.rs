//! `limits:` what one run may use and return.

use serde::{Deserialize, Serialize};

use crate::units::{ByteSize, HumanDuration};

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    #[serde(default = "default_memory")]
    pub memory: ByteSize,
    #[serde(default = "default_cpus")]
    pub cpus: f64,
    /// Wall-clock timeout of a run when the request names none.
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
    /// The largest timeout a request may ask for.
    #[serde(default = "default_max_timeout")]
    pub max_timeout: HumanDuration,
    /// stdout and stderr are each cut at this size (`truncated: true`).
    #[serde(default = "default_output_bytes")]
    pub output_bytes: ByteSize,
    /// A run that writes more than this in all is stopped (`output_limit`).
    #[serde(default = "default_output_kill_bytes")]
    pub output_kill_bytes: ByteSize,
    /// Images returned by one run, in all.
    #[serde(default = "default_image_bytes")]
    pub image_bytes: ByteSize,
    /// Input files sent with one request, in all.
    #[serde(default = "default_file_bytes")]
    pub file_bytes: ByteSize,
}

fn default_memory() -> ByteSize {
    ByteSize::mib(512)
}
fn default_cpus() -> f64 {
    1.0
}
fn default_timeout() -> HumanDuration {
    HumanDuration::secs(30)
}
fn default_max_timeout() -> HumanDuration {
    HumanDuration::secs(300)
}
fn default_output_bytes() -> ByteSize {
    ByteSize::mib(1)
}
fn default_output_kill_bytes() -> ByteSize {
    ByteSize::mib(256)
}
fn default_image_bytes() -> ByteSize {
    ByteSize::mib(16)
}
fn default_file_bytes() -> ByteSize {
    ByteSize::mib(8)
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            memory: default_memory(),
            cpus: default_cpus(),
            timeout: default_timeout(),
            max_timeout: default_max_timeout(),
            output_bytes: default_output_bytes(),
            output_kill_bytes: default_output_kill_bytes(),
            image_bytes: default_image_bytes(),
            file_bytes: default_file_bytes(),
        }
    }
}
