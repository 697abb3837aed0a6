//! config.yaml: runbox's own keys plus the keys of the original Flask project, with
//! `RUNBOX_…` environment overrides. Unknown keys and invalid values fail start-up with
//! a message that names the key.
//!
//! Each section lives in its own module, and its `impl Default` is the one place its
//! defaults are written: the section's container-level `#[serde(default)]` fills a key
//! missing from the file from it, and [`Config`] fills a missing section from it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_norway::Value;

use crate::units::HumanDuration;

mod admission;
mod auth;
mod cluster;
mod compat;
mod compat_fold;
mod database;
mod env;
mod error;
mod functions;
mod images;
mod limits;
mod logging;
mod mcp;
mod pip;
mod rate_limit;
mod sandbox;
mod server;
mod sessions;
mod tasks;
mod validate;

pub use admission::AdmissionConfig;
pub use auth::{AuthConfig, StaticToken, StaticTokenEntry, ALL_SCOPES, DEFAULT_STATIC_SCOPES};
pub use cluster::ClusterConfig;
pub use database::DatabaseConfig;
pub use env::ENV_PREFIX;
pub use error::ConfigError;
pub use functions::FunctionsConfig;
pub use images::ImagesConfig;
pub use limits::LimitsConfig;
pub use logging::{LogFormat, LoggingConfig};
pub use mcp::McpConfig;
pub use pip::PipConfig;
pub use rate_limit::RateLimitConfig;
pub use sandbox::{
    EngineAddress, EngineConfig, EngineTls, PoolConfig, PortRange, SandboxConfig, Transport,
    SECCOMP_DOCKER, SECCOMP_RUNBOX,
};
pub use server::ServerConfig;
pub use sessions::SessionsConfig;
pub use tasks::TasksConfig;

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
    #[serde(default)]
    pub mcp: McpConfig,
    #[serde(default)]
    pub cluster: ClusterConfig,

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
        env::apply_overrides(&mut tree, vars, &TOP_LEVEL_KEYS)?;
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
        self.fold_compat_keys()?;
        self.validate()?;
        Ok(self)
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

/// The keys of [`Config`]: a `RUNBOX_…` variable whose first segment is none of them is
/// not config. Checked against the struct by a test.
const TOP_LEVEL_KEYS: [&str; 28] = [
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
    "mcp",
    "cluster",
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
];

#[cfg(test)]
mod reference;
#[cfg(test)]
mod tests;
