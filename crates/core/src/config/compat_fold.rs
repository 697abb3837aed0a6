//! The keys of the original Flask "Code Interpreter API" config.yaml, folded into
//! runbox's own (`Config::resolve` calls this before validating).

use super::compat::StringOrNumber;
use super::{Config, ConfigError};
use crate::units::{parse_byte_size, HumanDuration};

impl Config {
    /// Folds the original's keys into runbox's: when one is present it overrides
    /// runbox's own key, so that an old config keeps working.
    pub(super) fn fold_compat_keys(&mut self) -> Result<(), ConfigError> {
        let config = self;
        if let Some(domain) = config.domain.as_deref().map(str::trim) {
            if !domain.is_empty() {
                // The original served its links as https://<domain>/image/…
                config.server.public_url = if domain.contains("://") {
                    domain.to_string()
                } else {
                    format!("https://{domain}")
                };
            }
        }
        if let Some(image) = config.interpreter_image.as_deref().map(str::trim) {
            if !image.is_empty() {
                // The original ran its own server inside this image; runbox builds its agent
                // on top of it instead, so the image is the base of the sandbox image.
                config.sandbox.base_image = image.to_string();
            }
        }
        if let Some(port) = config.scheduler_port {
            config.server.port = port;
        }
        if let Some(host) = config.host.as_deref().map(str::trim) {
            if !host.is_empty() {
                config.server.host = host.to_string();
            }
        }
        if let Some(range) = config.interpreter_port_range {
            config.sandbox.port_range = range;
        }
        if let Some(limits) = &config.resource_limits {
            if let Some(memory) = limits.memory.as_ref().map(StringOrNumber::text) {
                if !memory.is_empty() {
                    config.limits.memory = parse_byte_size(&memory)
                        .map_err(|m| ConfigError::key("resource_limits.memory", m))?;
                }
            }
            if let Some(cpus) = limits.cpus.as_ref().map(StringOrNumber::text) {
                if !cpus.is_empty() {
                    config.limits.cpus = cpus.parse().map_err(|_| {
                        ConfigError::key(
                            "resource_limits.cpus",
                            format!("`{cpus}` is not a number"),
                        )
                    })?;
                }
            }
        }
        if let Some(timeout) = config.timeout_seconds {
            config.limits.timeout = timeout;
            if config.limits.max_timeout < timeout {
                config.limits.max_timeout = HumanDuration(timeout.get());
            }
        }
        if let Some(pg) = &config.postgres {
            if config.database.url.trim().is_empty() {
                let port = pg
                    .port
                    .as_ref()
                    .map(StringOrNumber::text)
                    .filter(|p| !p.is_empty())
                    .unwrap_or_else(|| "5432".into());
                port.parse::<u16>().map_err(|_| {
                    ConfigError::key("postgres.port", format!("`{port}` is not a port number"))
                })?;
                config.database.url = format!(
                    "postgres://{}:{}@{}:{}/{}",
                    url_escape(&pg.user),
                    url_escape(&pg.password),
                    pg.host,
                    port,
                    url_escape(&pg.db)
                );
            }
        }
        if let Some(mode) = config.mode.as_deref().map(str::trim) {
            if !matches!(mode, "" | "docker" | "podman") {
                return Err(ConfigError::key(
                    "mode",
                    format!("`{mode}` is not supported; runbox drives a Docker-compatible engine (docker or podman)"),
                ));
            }
        }
        Ok(())
    }
}

fn url_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}
