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

/// `sandbox.seccomp` naming runbox's own profile.
pub const SECCOMP_RUNBOX: &str = "runbox";
/// `sandbox.seccomp` naming the engine's default profile.
pub const SECCOMP_DOCKER: &str = "docker";

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

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SandboxConfig {
    /// The image sandboxes run; empty: the image built from docker/ (tag compiled in).
    pub image: String,
    /// Base of the built image: `auto` (python:3.12-slim when present, else the
    /// debootstrapped `runbox-base:bookworm`) or an image name.
    pub base_image: String,
    /// Build the sandbox image at start-up when it is missing.
    pub build_missing_image: bool,
    pub transport: Transport,
    pub port_range: PortRange,
    pub pool: PoolConfig,
    /// Modules the agent of a pooled sandbox imports before it is handed out.
    pub preload: Vec<String>,
    /// OCI runtime of the `standard` isolation tier (e.g. `crun`); empty: the engine's
    /// default.
    pub runtime: String,
    /// OCI runtime of the `strong` isolation tier (gVisor's `runsc`); runs that ask for
    /// it are refused when the engine has no runtime of this name.
    pub strong_runtime: String,
    /// The seccomp profile of sandboxes and environment builds: `runbox` (runbox's own,
    /// stricter than the engine's), `docker` (the engine's default), or the path of a
    /// profile in Docker's JSON format.
    pub seccomp: String,
    pub pids_limit: i64,
    pub workdir_size: ByteSize,
    /// Size of /tmp, and of /dev/shm.
    pub tmp_size: ByteSize,
    /// How long a new container may take until its agent answers.
    pub startup_timeout: HumanDuration,
    /// Distinguishes the containers of several runbox servers on one engine; empty: a
    /// name derived from the data dir.
    pub instance: String,
    /// The http transport's sandboxes may reach the host's services: only for an
    /// engine where runbox cannot install its netfilter rules, and an operator who
    /// closes the host another way (or accepts that it is open).
    pub allow_host_network_access: bool,
    /// The Docker engines sandboxes run on; empty: the one local engine (DOCKER_HOST or
    /// the default socket).
    pub engines: Vec<EngineConfig>,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            image: String::new(),
            base_image: "auto".into(),
            build_missing_image: true,
            transport: Transport::default(),
            port_range: PortRange {
                start: 18000,
                end: 18999,
            },
            pool: PoolConfig::default(),
            preload: vec!["numpy".into(), "matplotlib".into()],
            runtime: String::new(),
            strong_runtime: "runsc".into(),
            seccomp: SECCOMP_RUNBOX.into(),
            pids_limit: 128,
            workdir_size: ByteSize::mib(64),
            tmp_size: ByteSize::mib(64),
            startup_timeout: HumanDuration::secs(20),
            instance: String::new(),
            allow_host_network_access: false,
            engines: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PoolConfig {
    /// Warm containers kept ready; 0 creates every sandbox on demand.
    pub size: usize,
    /// How many containers the refill creates at once.
    pub refill_parallelism: usize,
    /// Warm pools of other images (e.g. a function's environment image), by image name.
    pub images: std::collections::BTreeMap<String, usize>,
    /// Warm sandboxes of the `strong` tier (when the engine offers it); 0: they start on
    /// demand.
    pub strong_size: usize,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            size: 2,
            refill_parallelism: 2,
            images: Default::default(),
            strong_size: 0,
        }
    }
}

/// One Docker engine of `sandbox.engines`: where it listens, how runbox proves itself
/// to it, how many sandboxes it may hold at once, and what it offers.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EngineConfig {
    /// Names the engine in /health, /metrics, logs and errors; unique.
    pub name: String,
    /// `unix:///path/to/docker.sock`, or `tcp://HOST:PORT` (which needs `tls`).
    pub host: String,
    /// Mutual TLS for a `tcp://` engine: the CA that signed the engine's certificate,
    /// and runbox's client certificate and key (PEM files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<EngineTls>,
    /// Sandboxes (runs and sessions) the engine holds at once; at least 1.
    #[serde(default = "default_engine_capacity")]
    pub capacity: usize,
    /// Warm sandboxes kept on this engine; absent: `sandbox.pool.size`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool_size: Option<usize>,
    /// Free-form facts shown in /health (e.g. `runtime: runsc`).
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EngineTls {
    pub ca: String,
    pub cert: String,
    pub key: String,
}

fn default_engine_capacity() -> usize {
    8
}

/// How an engine of `sandbox.engines` is reached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EngineAddress {
    /// The path of a unix socket.
    Unix(String),
    /// `HOST:PORT` of a TLS endpoint.
    Tcp { host: String, port: u16 },
}

impl EngineAddress {
    /// Reads `unix:///path` or `tcp://HOST:PORT`; why not, otherwise.
    pub fn parse(host: &str) -> Result<EngineAddress, String> {
        let host = host.trim();
        if let Some(path) = host.strip_prefix("unix://") {
            if !path.starts_with('/') {
                return Err(format!(
                    "`{host}`: a unix socket needs an absolute path (unix:///…)"
                ));
            }
            return Ok(EngineAddress::Unix(path.to_string()));
        }
        if let Some(rest) = host.strip_prefix("tcp://") {
            let rest = rest.trim_end_matches('/');
            let Some((name, port)) = rest.rsplit_once(':') else {
                return Err(format!(
                    "`{host}`: tcp:// needs HOST:PORT, e.g. tcp://10.0.0.2:2376"
                ));
            };
            let port = port
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("`{host}`: `{port}` is not a port"))?;
            if name.is_empty() || name.contains('/') || name.contains('@') {
                return Err(format!("`{host}`: `{name}` is not a host name or address"));
            }
            return Ok(EngineAddress::Tcp {
                host: name.to_string(),
                port,
            });
        }
        Err(format!(
            "`{host}`: the scheme must be unix:// (a local socket) or tcp:// (with tls)"
        ))
    }
}
