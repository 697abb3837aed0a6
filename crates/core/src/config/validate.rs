//! The checks that keys must pass beyond their types; each failure names its key.

use std::collections::BTreeSet;
use std::path::Path;

use super::auth::ALL_SCOPES;
use super::{Config, ConfigError, EngineAddress, Transport};
use crate::isolation::Isolation;
use crate::units::ByteSize;

impl Config {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
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
        for (index, token) in self.auth.tokens.iter().enumerate() {
            if let Some(isolation) = token.isolation() {
                if Isolation::parse(isolation).is_none() {
                    return Err(ConfigError::key(
                        format!("auth.tokens[{index}].isolation"),
                        format!("`{isolation}` is not standard, strong or a runtime's name"),
                    ));
                }
            }
        }
        if Isolation::parse(&self.sandbox.strong_runtime).is_none() {
            return Err(ConfigError::key(
                "sandbox.strong_runtime",
                "must be a runtime's name",
            ));
        }
        if self.cluster.heartbeat.get().is_zero()
            || self.cluster.dead_after.get() < self.cluster.heartbeat.get() * 2
        {
            return Err(ConfigError::key(
                "cluster.dead_after",
                "must be at least twice cluster.heartbeat (which must be above zero)",
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
        let seccomp = self.sandbox.seccomp.trim();
        if seccomp.is_empty() {
            return Err(ConfigError::key(
                "sandbox.seccomp",
                "must be runbox, docker or the path of a profile",
            ));
        }
        // Sandboxes always run under a filter; an operator who wants fewer denials
        // writes a profile that says which.
        if seccomp == "unconfined" {
            return Err(ConfigError::key(
                "sandbox.seccomp",
                "sandboxes never run unconfined; use docker (the engine's default) or the path of a profile",
            ));
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
        self.validate_engines()
    }

    /// `sandbox.engines`: each entry reachable in a way runbox supports, with its
    /// certificates on disk, room for at least one sandbox, and a name of its own.
    fn validate_engines(&self) -> Result<(), ConfigError> {
        let mut names = BTreeSet::new();
        for (index, engine) in self.sandbox.engines.iter().enumerate() {
            let key = |field: &str| format!("sandbox.engines[{index}].{field}");
            let name = engine.name.trim();
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            {
                return Err(ConfigError::key(
                    key("name"),
                    "must be a name of letters, digits, `-`, `_` or `.`",
                ));
            }
            if !names.insert(name) {
                return Err(ConfigError::key(
                    key("name"),
                    format!("`{name}` names another engine too"),
                ));
            }
            let address = EngineAddress::parse(&engine.host)
                .map_err(|why| ConfigError::key(key("host"), why))?;
            match (&address, &engine.tls) {
                (EngineAddress::Unix(_), Some(_)) => {
                    return Err(ConfigError::key(
                        key("tls"),
                        "a unix socket takes no tls (remove it, or use tcp://)",
                    ));
                }
                (EngineAddress::Tcp { .. }, None) => {
                    return Err(ConfigError::key(
                        key("tls"),
                        "a tcp:// engine needs tls: {ca, cert, key}: an engine API open on \
                         the network without a client certificate is root on its host to \
                         anyone who reaches it",
                    ));
                }
                (EngineAddress::Tcp { .. }, Some(tls)) => {
                    for (field, path) in [("ca", &tls.ca), ("cert", &tls.cert), ("key", &tls.key)] {
                        if path.trim().is_empty() {
                            return Err(ConfigError::key(
                                key(&format!("tls.{field}")),
                                "must be the path of a PEM file",
                            ));
                        }
                        if !Path::new(path).is_file() {
                            return Err(ConfigError::key(
                                key(&format!("tls.{field}")),
                                format!("`{path}` is not a readable file"),
                            ));
                        }
                    }
                    // A sandbox's published port would be on the engine's host, bound
                    // to its loopback, which runbox cannot reach from here.
                    if self.sandbox.transport == Transport::Http {
                        return Err(ConfigError::key(
                            key("host"),
                            "a tcp:// engine works with sandbox.transport: stdio only \
                             (the http transport's ports are bound to the engine host's \
                             loopback)",
                        ));
                    }
                }
                (EngineAddress::Unix(_), None) => {}
            }
            if engine.capacity == 0 {
                return Err(ConfigError::key(key("capacity"), "must be at least 1"));
            }
        }
        Ok(())
    }
}
