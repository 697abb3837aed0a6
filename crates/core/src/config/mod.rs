//! config.yaml: runbox's own keys plus the keys of the original Flask project, with
//! `RUNBOX_…` environment overrides. Unknown keys and invalid values fail start-up with
//! a message that names the key.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_norway::Value;

use crate::units::{ByteSize, HumanDuration};

mod compat;
mod env;

pub use env::ENV_PREFIX;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid YAML: {source}")]
    Yaml {
        path: PathBuf,
        source: serde_norway::Error,
    },
    #[error("config key `{key}`: {message}")]
    Key { key: String, message: String },
    #[error("environment variable {var}: {message}")]
    Env { var: String, message: String },
}

impl ConfigError {
    fn key(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::Key {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// The whole configuration as config.yaml spells it. Keys of the original project sit
/// beside runbox's own; [`Config::resolve`] folds them into runbox's keys.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub auth: AuthConfig,
    #[serde(default)]
    pub database: DatabaseConfig,
    /// Where the SQLite file and generated secrets live.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    #[serde(default)]
    pub sandbox: SandboxConfig,
    #[serde(default)]
    pub limits: LimitsConfig,
    #[serde(default)]
    pub admission: AdmissionConfig,
    #[serde(default)]
    pub images: ImagesConfig,
    #[serde(default)]
    pub pip: PipConfig,
    #[serde(default)]
    pub logging: LoggingConfig,
    #[serde(default)]
    pub sessions: SessionsConfig,
    #[serde(default)]
    pub tasks: TasksConfig,
    #[serde(default)]
    pub functions: FunctionsConfig,
    #[serde(default)]
    pub rate_limit: RateLimitConfig,

    // Keys of the original Flask "Code Interpreter API" (see compat.rs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interpreter_image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduler_port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interpreter_port_range: Option<PortRange>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dependencies: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_limits: Option<compat::ResourceLimits>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<HumanDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres: Option<compat::PostgresBlock>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubeconfig_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub k8s_interpreter_yaml: Option<String>,
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("data")
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    #[serde(default = "default_host")]
    pub host: String,
    #[serde(default = "default_port")]
    pub port: u16,
    /// Base of the image URLs handed to clients; empty: `http://<host>:<port>`.
    #[serde(default)]
    pub public_url: String,
    #[serde(default = "default_max_body")]
    pub max_body_bytes: ByteSize,
    /// How long SIGTERM waits for running work before killing what is left.
    #[serde(default = "default_shutdown_grace")]
    pub shutdown_grace: HumanDuration,
    /// A client's request headers must arrive within this, and its body may not pause
    /// longer: a slow or stalled client cannot hold a connection open for ever.
    #[serde(default = "default_client_timeout")]
    pub client_timeout: HumanDuration,
}

fn default_host() -> String {
    "127.0.0.1".into()
}
fn default_port() -> u16 {
    8000
}
fn default_max_body() -> ByteSize {
    ByteSize::mib(16)
}
fn default_shutdown_grace() -> HumanDuration {
    HumanDuration::secs(30)
}
fn default_client_timeout() -> HumanDuration {
    HumanDuration::secs(30)
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            host: default_host(),
            port: default_port(),
            public_url: String::new(),
            max_body_bytes: default_max_body(),
            shutdown_grace: default_shutdown_grace(),
            client_timeout: default_client_timeout(),
        }
    }
}

pub const ALL_SCOPES: [&str; 5] = ["run", "functions:read", "functions:write", "tasks", "admin"];
/// What a static token may do when its entry lists no scopes.
pub const DEFAULT_STATIC_SCOPES: [&str; 4] = ["run", "functions:read", "functions:write", "tasks"];

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    #[serde(default)]
    pub tokens: Vec<StaticToken>,
    /// HS256 secret for JWTs; empty: `RUNBOX_JWT_SECRET`, else a secret generated once
    /// into `<data_dir>/jwt-secret`.
    #[serde(default)]
    pub jwt_secret: String,
}

/// A static token: either a bare string or `{token, subject, scopes}`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(untagged)]
pub enum StaticToken {
    Bare(String),
    Entry(StaticTokenEntry),
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StaticTokenEntry {
    pub token: String,
    #[serde(default)]
    pub subject: Option<String>,
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
}

impl StaticToken {
    pub fn token(&self) -> &str {
        match self {
            StaticToken::Bare(token) => token,
            StaticToken::Entry(entry) => &entry.token,
        }
    }

    /// The subject a request authenticated by this token acts as.
    pub fn subject(&self) -> String {
        match self {
            StaticToken::Entry(StaticTokenEntry {
                subject: Some(subject),
                ..
            }) => subject.clone(),
            // Never echo the secret itself: name the subject after its position-free hash.
            _ => format!("static:{}", short_fingerprint(self.token())),
        }
    }

    pub fn scopes(&self) -> Vec<String> {
        match self {
            StaticToken::Entry(StaticTokenEntry {
                scopes: Some(scopes),
                ..
            }) => scopes.clone(),
            _ => DEFAULT_STATIC_SCOPES
                .iter()
                .map(|s| s.to_string())
                .collect(),
        }
    }
}

fn short_fingerprint(text: &str) -> String {
    // FNV-1a: stable, dependency-free, and only used to name a subject.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{:08x}", hash >> 32)
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://path` or `postgres://user:pass@host:port/db`; empty: SQLite at
    /// `<data_dir>/runbox.db` (or the `postgres:` block when it is given).
    #[serde(default)]
    pub url: String,
}

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

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ImagesConfig {
    #[serde(default = "default_retention")]
    pub retention: HumanDuration,
    #[serde(default)]
    pub require_auth: bool,
}

fn default_retention() -> HumanDuration {
    HumanDuration::secs(7 * 86400)
}

impl Default for ImagesConfig {
    fn default() -> Self {
        ImagesConfig {
            retention: default_retention(),
            require_auth: false,
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PipConfig {
    /// Alternative package index for image and environment builds.
    #[serde(default)]
    pub index_url: String,
    /// A CA bundle on the host mounted into build containers and set as PIP_CERT
    /// (for TLS-intercepting proxies).
    #[serde(default)]
    pub extra_ca_bundle: String,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Pretty,
    Json,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LoggingConfig {
    #[serde(default)]
    pub format: LogFormat,
    /// A tracing filter such as `info` or `runbox=debug,info`.
    #[serde(default = "default_level")]
    pub level: String,
}

fn default_level() -> String {
    "info".into()
}

impl Default for LoggingConfig {
    fn default() -> Self {
        LoggingConfig {
            format: LogFormat::default(),
            level: default_level(),
        }
    }
}

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

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TasksConfig {
    /// Finished tasks (and their results) are deleted after this.
    #[serde(default = "default_task_retention")]
    pub retention: HumanDuration,
}

fn default_task_retention() -> HumanDuration {
    HumanDuration::secs(7 * 86400)
}

impl Default for TasksConfig {
    fn default() -> Self {
        TasksConfig {
            retention: default_task_retention(),
        }
    }
}

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

/// Requests per subject, as a token bucket. 0 turns the limit off.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Sustained requests per minute one subject may make; 0: unlimited.
    #[serde(default)]
    pub per_minute: u32,
    /// Requests a subject may make at once (the size of its bucket); 0: per_minute / 6.
    #[serde(default)]
    pub burst: u32,
}

impl Config {
    /// Reads `path` (a missing file is an error), applies `RUNBOX_…` overrides from
    /// `vars`, folds the compatibility keys in and validates.
    pub fn load(
        path: &Path,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_yaml_str(&text, path, vars)
    }

    pub fn from_yaml_str(
        text: &str,
        path: &Path,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut tree: Value = if text.trim().is_empty() {
            Value::Mapping(Default::default())
        } else {
            serde_norway::from_str(text).map_err(|source| ConfigError::Yaml {
                path: path.to_path_buf(),
                source,
            })?
        };
        if tree.is_null() {
            tree = Value::Mapping(Default::default());
        }
        env::apply_overrides(&mut tree, vars, &top_level_keys())?;
        let config: Config = serde_path_to_error::deserialize(tree).map_err(|err| {
            let key = err.path().to_string();
            let message = err.into_inner().to_string();
            ConfigError::key(
                if key == "." {
                    "(top level)".into()
                } else {
                    key
                },
                message,
            )
        })?;
        config.resolve()
    }

    /// The defaults, as if config.yaml were empty.
    pub fn defaults() -> Config {
        match Config::from_yaml_str("", Path::new("(defaults)"), Vec::new()) {
            Ok(config) => config,
            Err(err) => unreachable!("the built-in defaults are valid: {err}"),
        }
    }

    fn resolve(mut self) -> Result<Config, ConfigError> {
        compat::fold_into(&mut self)?;
        self.validate()?;
        Ok(self)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.server.host.trim().is_empty() {
            return Err(ConfigError::key("server.host", "must not be empty"));
        }
        let range = self.sandbox.port_range;
        if range.start == 0 || range.end < range.start {
            return Err(ConfigError::key(
                "sandbox.port_range",
                format!(
                    "start ({}) must be at least 1 and not above end ({})",
                    range.start, range.end
                ),
            ));
        }
        if self.limits.memory < ByteSize::mib(16) {
            return Err(ConfigError::key(
                "limits.memory",
                format!("{} is below the 16m that Python needs", self.limits.memory),
            ));
        }
        if !(self.limits.cpus.is_finite() && self.limits.cpus > 0.0 && self.limits.cpus <= 1024.0) {
            return Err(ConfigError::key(
                "limits.cpus",
                format!("{} is not a CPU count between 0 and 1024", self.limits.cpus),
            ));
        }
        if self.limits.timeout.get().is_zero() {
            return Err(ConfigError::key("limits.timeout", "must be above zero"));
        }
        if self.server.client_timeout.get().is_zero() {
            return Err(ConfigError::key(
                "server.client_timeout",
                "must be above zero",
            ));
        }
        if self.limits.max_timeout < self.limits.timeout {
            return Err(ConfigError::key(
                "limits.max_timeout",
                "must not be below limits.timeout",
            ));
        }
        if self.limits.output_kill_bytes < self.limits.output_bytes {
            return Err(ConfigError::key(
                "limits.output_kill_bytes",
                "must not be below limits.output_bytes",
            ));
        }
        if self.admission.max_concurrent_runs == 0 {
            return Err(ConfigError::key(
                "admission.max_concurrent_runs",
                "must be at least 1",
            ));
        }
        if self.functions.build_timeout.get().is_zero() {
            return Err(ConfigError::key(
                "functions.build_timeout",
                "must be above zero",
            ));
        }
        if self.functions.build_memory < ByteSize::mib(64) {
            return Err(ConfigError::key(
                "functions.build_memory",
                format!(
                    "{} is below the 64m that pip needs",
                    self.functions.build_memory
                ),
            ));
        }
        if self.functions.max_parallel_builds == 0 {
            return Err(ConfigError::key(
                "functions.max_parallel_builds",
                "must be at least 1",
            ));
        }
        if self.sandbox.pids_limit < 8 {
            return Err(ConfigError::key("sandbox.pids_limit", "must be at least 8"));
        }
        if self.sandbox.pool.refill_parallelism == 0 {
            return Err(ConfigError::key(
                "sandbox.pool.refill_parallelism",
                "must be at least 1",
            ));
        }
        let url = self.database.url.trim();
        if !url.is_empty()
            && !url.starts_with("sqlite:")
            && !url.starts_with("postgres://")
            && !url.starts_with("postgresql://")
        {
            return Err(ConfigError::key(
                "database.url",
                "must start with sqlite:, postgres:// or postgresql://",
            ));
        }
        let mut seen = BTreeSet::new();
        for (index, token) in self.auth.tokens.iter().enumerate() {
            if token.token().trim().is_empty() {
                return Err(ConfigError::key(
                    format!("auth.tokens[{index}]"),
                    "a token must not be empty",
                ));
            }
            if !seen.insert(token.token()) {
                return Err(ConfigError::key(
                    format!("auth.tokens[{index}]"),
                    "the same token is listed twice",
                ));
            }
            for scope in token.scopes() {
                if !ALL_SCOPES.contains(&scope.as_str()) {
                    return Err(ConfigError::key(
                        format!("auth.tokens[{index}].scopes"),
                        format!("unknown scope `{scope}` (known: {})", ALL_SCOPES.join(", ")),
                    ));
                }
            }
        }
        for (index, module) in self.sandbox.preload.iter().enumerate() {
            let valid = !module.is_empty()
                && module.split('.').all(|part| {
                    !part.is_empty() && part.chars().all(|c| c.is_alphanumeric() || c == '_')
                });
            if !valid {
                return Err(ConfigError::key(
                    format!("sandbox.preload[{index}]"),
                    format!("`{module}` is not a Python module name"),
                ));
            }
        }
        Ok(())
    }

    /// Base of the URLs under which stored images are served.
    pub fn public_base_url(&self) -> String {
        let configured = self.server.public_url.trim().trim_end_matches('/');
        if !configured.is_empty() {
            return configured.to_string();
        }
        let host = match self.server.host.as_str() {
            "0.0.0.0" | "::" | "[::]" => "127.0.0.1",
            other => other,
        };
        format!("http://{host}:{}", self.server.port)
    }

    pub fn database_url(&self) -> String {
        let url = self.database.url.trim();
        if url.is_empty() {
            format!("sqlite://{}", self.data_dir.join("runbox.db").display())
        } else {
            url.to_string()
        }
    }

    pub fn default_timeout(&self) -> Duration {
        self.limits.timeout.get()
    }

    /// A stored function's timeout (its `timeout`, in ms as stored), for its calls and
    /// for loading its code at registration alike.
    pub fn function_timeout(&self, timeout_ms: Option<i64>) -> Duration {
        self.clamp_timeout(timeout_ms.map(|ms| Duration::from_millis(ms.max(1).unsigned_abs())))
    }

    /// Clamps a requested timeout to `limits.max_timeout`.
    pub fn clamp_timeout(&self, requested: Option<Duration>) -> Duration {
        requested
            .filter(|t| !t.is_zero())
            .unwrap_or(self.limits.timeout.get())
            .min(self.limits.max_timeout.get())
    }
}

fn top_level_keys() -> Vec<&'static str> {
    vec![
        "server",
        "auth",
        "database",
        "data_dir",
        "sandbox",
        "limits",
        "admission",
        "images",
        "pip",
        "logging",
        "sessions",
        "tasks",
        "functions",
        "rate_limit",
        "domain",
        "interpreter_image",
        "scheduler_port",
        "host",
        "interpreter_port_range",
        "dependencies",
        "resource_limits",
        "timeout_seconds",
        "postgres",
        "mode",
        "kubeconfig_path",
        "k8s_interpreter_yaml",
    ]
}

#[cfg(test)]
mod reference;
#[cfg(test)]
mod tests;
