//! Which configuration file a command reads.

use std::path::{Path, PathBuf};

use anyhow::Context;
use runbox_core::Config;

pub fn load(explicit: Option<&Path>) -> anyhow::Result<Config> {
    let vars = std::env::vars();
    let chosen: Option<PathBuf> = explicit
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("RUNBOX_CONFIG").map(PathBuf::from))
        .or_else(|| {
            let default = PathBuf::from("config.yaml");
            default.exists().then_some(default)
        });
    match chosen {
        Some(path) => {
            Config::load(&path, vars).with_context(|| "invalid configuration".to_string())
        }
        None => Config::from_yaml_str("", Path::new("(defaults)"), vars)
            .context("invalid configuration"),
    }
}
