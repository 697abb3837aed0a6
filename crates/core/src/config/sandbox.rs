//! `sandbox:` the image, container settings, transport and warm pool of the sandboxes.

use serde::{Deserialize, Serialize};

use crate::units::{ByteSize, HumanDuration};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    #[default]
    Stdio,
    Http,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PortRange {
    pub start: u16,
    pub end: u16,
}

impl PortRange {
    pub fn len(&self) -> usize {
        usize::from(self.end.saturating_sub(self.start)) + 1
    }
    pub fn is_empty(&self) -> bool {
        self.end < self.start
    }
}

fn default_port_range() -> PortRange {
    PortRange {
        start: 18000,
        end: 18999,
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxConfig {
    /// The image sandboxes run; empty: the image built from docker/ (tag compiled in).
    #[serde(default)]
    pub image: String,
    /// Base of the built image: `auto` (python:3.12-slim when present, else the
    /// debootstrapped `runbox-base:bookworm`) or an image name.
    #[serde(default = "default_base_image")]
    pub base_image: String,
    /// Build the sandbox image at start-up when it is missing.
    #[serde(default = "default_true")]
    pub build_missing_image: bool,
    #[serde(default)]
    pub transport: Transport,
    #[serde(default = "default_port_range")]
    pub port_range: PortRange,
    #[serde(default)]
    pub pool: PoolConfig,
    /// Modules the agent of a pooled sandbox imports before it is handed out.
    #[serde(default = "default_preload")]
    pub preload: Vec<String>,
    /// OCI runtime (e.g. `runsc` for gVisor); empty: the engine's default.
    #[serde(default)]
    pub runtime: String,
    #[serde(default = "default_pids")]
    pub pids_limit: i64,
    #[serde(default = "default_workdir_size")]
    pub workdir_size: ByteSize,
    /// Size of /tmp, and of /dev/shm.
    #[serde(default = "default_tmp_size")]
    pub tmp_size: ByteSize,
    /// How long a new container may take until its agent answers.
    #[serde(default = "default_startup_timeout")]
    pub startup_timeout: HumanDuration,
    /// Distinguishes the containers of several runbox servers on one engine; empty: a
    /// name derived from the data dir.
    #[serde(default)]
    pub instance: String,
}

fn default_true() -> bool {
    true
}
fn default_base_image() -> String {
    "auto".into()
}
fn default_preload() -> Vec<String> {
    vec!["numpy".into(), "matplotlib".into()]
}
fn default_pids() -> i64 {
    128
}
fn default_workdir_size() -> ByteSize {
    ByteSize::mib(64)
}
fn default_tmp_size() -> ByteSize {
    ByteSize::mib(64)
}
fn default_startup_timeout() -> HumanDuration {
    HumanDuration::secs(20)
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            image: String::new(),
            base_image: default_base_image(),
            build_missing_image: true,
            transport: Transport::default(),
            port_range: default_port_range(),
            pool: PoolConfig::default(),
            preload: default_preload(),
            runtime: String::new(),
            pids_limit: default_pids(),
            workdir_size: default_workdir_size(),
            tmp_size: default_tmp_size(),
            startup_timeout: default_startup_timeout(),
            instance: String::new(),
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PoolConfig {
    /// Warm containers kept ready; 0 creates every sandbox on demand.
    #[serde(default = "default_pool_size")]
    pub size: usize,
    /// How many containers the refill creates at once.
    #[serde(default = "default_refill_parallelism")]
    pub refill_parallelism: usize,
    /// Warm pools of other images (e.g. a function's environment image), by image name.
    #[serde(default)]
    pub images: std::collections::BTreeMap<String, usize>,
}

fn default_pool_size() -> usize {
    2
}
fn default_refill_parallelism() -> usize {
    2
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            size: default_pool_size(),
            refill_parallelism: default_refill_parallelism(),
            images: Default::default(),
        }
    }
}
