//! `RUNBOX_<KEY>` environment overrides. Nested keys join with a double underscore:
//! `RUNBOX_SANDBOX__TRANSPORT=http` sets `sandbox.transport`. Values are read as YAML
//! scalars (`8` is a number, `true` a boolean, `[a, b]` a list). Variables whose first
//! segment is not a top-level key are not config (e.g. `RUNBOX_CONFIG`) and are ignored;
//! a wrong nested key fails like a wrong key in the file.

use serde_norway::{Mapping, Value};

use super::ConfigError;

pub const ENV_PREFIX: &str = "RUNBOX_";

/// Shortcuts kept for operators who expect them.
const ALIASES: [(&str, &str); 1] = [("JWT_SECRET", "auth__jwt_secret")];

pub(super) fn apply_overrides(
    tree: &mut Value,
    vars: impl IntoIterator<Item = (String, String)>,
    top_level_keys: &[&str],
) -> Result<(), ConfigError> {
    let mut overrides: Vec<(String, String)> = vars
        .into_iter()
        .filter_map(|(name, value)| {
            let rest = name.strip_prefix(ENV_PREFIX)?;
            let key = ALIASES
                .iter()
                .find(|(alias, _)| *alias == rest)
                .map_or_else(|| rest.to_ascii_lowercase(), |(_, key)| key.to_string());
            let first = key.split("__").next().unwrap_or_default().to_string();
            top_level_keys
                .contains(&first.as_str())
                .then_some((name, key))
                .map(|(name, key)| (format!("{name}={value}"), key))
        })
        .collect();
    // Deterministic order so that a parent and a child override compose predictably.
    overrides.sort_by(|a, b| a.1.cmp(&b.1));
    for (assignment, key) in overrides {
        let (var, raw) = assignment.split_once('=').unwrap_or((&assignment, ""));
        let value = parse_scalar(raw).map_err(|message| ConfigError::Env {
            var: var.to_string(),
            message,
        })?;
        set_path(tree, &key.split("__").collect::<Vec<_>>(), value).map_err(|message| {
            ConfigError::Env {
                var: var.to_string(),
                message,
            }
        })?;
    }
    Ok(())
}

fn parse_scalar(raw: &str) -> Result<Value, String> {
    if raw.is_empty() {
        return Ok(Value::String(String::new()));
    }
    match serde_norway::from_str::<Value>(raw) {
        // A value that YAML reads as a mapping (e.g. "a: b") is taken literally.
        Ok(Value::Mapping(_)) | Err(_) => Ok(Value::String(raw.to_string())),
        Ok(value) => Ok(value),
    }
}

fn set_path(tree: &mut Value, path: &[&str], value: Value) -> Result<(), String> {
    let Some((last, parents)) = path.split_last() else {
        return Err("names no key".into());
    };
    let mut node = tree;
    for segment in parents {
        if !node.is_mapping() {
            *node = Value::Mapping(Mapping::new());
        }
        let Value::Mapping(map) = node else {
            return Err(format!("`{segment}` is not a section"));
        };
        node = map
            .entry(Value::String(segment.to_string()))
            .or_insert_with(|| Value::Mapping(Mapping::new()));
    }
    if node.is_null() {
        *node = Value::Mapping(Mapping::new());
    }
    match node {
        Value::Mapping(map) => {
            map.insert(Value::String(last.to_string()), value);
            Ok(())
        }
        _ => Err(format!("the parent of `{last}` is not a section")),
    }
}
