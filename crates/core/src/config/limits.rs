//! `limits:` what one run may use and return.

use serde::{Deserialize, Serialize};

use crate::units::{ByteSize, HumanDuration};

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    pub memory: ByteSize,
    pub cpus: f64,
    /// Wall-clock timeout of a run when the request names none.
    pub timeout: HumanDuration,
    /// The largest timeout a request may ask for.
    pub max_timeout: HumanDuration,
    /// stdout and stderr are each cut at this size (`truncated: true`).
    pub output_bytes: ByteSize,
    /// A run that writes more than this in all is stopped (`output_limit`).
    pub output_kill_bytes: ByteSize,
    /// Images returned by one run, in all: image files and the raster images of its
    /// notebook outputs together.
    pub image_bytes: ByteSize,
    /// The text of one run's notebook outputs (HTML tables, reprs, SVG …), in all; an
    /// item cut to fit says `truncated`.
    pub outputs_bytes: ByteSize,
    /// Input files sent with one request, in all.
    pub file_bytes: ByteSize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            memory: ByteSize::mib(512),
            cpus: 1.0,
            timeout: HumanDuration::secs(30),
            max_timeout: HumanDuration::secs(300),
            output_bytes: ByteSize::mib(1),
            output_kill_bytes: ByteSize::mib(256),
            image_bytes: ByteSize::mib(16),
            outputs_bytes: ByteSize::mib(1),
            file_bytes: ByteSize::mib(8),
        }
    }
}
