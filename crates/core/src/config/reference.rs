//! The configuration reference in README.md is generated from the config struct and the
//! comments of config.yaml, and checked by these tests so that the three cannot drift:
//! a key added to the code must be in config.yaml with a comment and in the README.
//!
//! Regenerate the README's table with
//! `RUNBOX_WRITE_CONFIG_REFERENCE=1 cargo test -p runbox-core config::reference`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_norway::Value;

use super::Config;

const TABLE_HEADER: &str = "| key | default | meaning |";

fn repo_file(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(name)
}

/// Every leaf key of the defaults, dotted, with its default as YAML.
fn default_keys() -> BTreeMap<String, String> {
    let tree = serde_norway::to_value(Config::defaults()).expect("defaults serialize");
    let mut keys = BTreeMap::new();
    flatten("", &tree, &mut keys);
    keys
}

fn flatten(prefix: &str, node: &Value, out: &mut BTreeMap<String, String>) {
    match node {
        Value::Mapping(map) if !map.is_empty() && !prefix.ends_with("pool.images") => {
            for (key, value) in map {
                let key = key.as_str().unwrap_or_default();
                let path = if prefix.is_empty() {
                    key.to_string()
                } else {
                    format!("{prefix}.{key}")
                };
                flatten(&path, value, out);
            }
        }
        leaf => {
            let shown = match leaf {
                Value::String(s) if s.is_empty() => "\"\"".to_string(),
                Value::String(s) => s.clone(),
                Value::Mapping(m) if m.is_empty() => "{}".to_string(),
                Value::Sequence(items) => format!(
                    "[{}]",
                    items
                        .iter()
                        .map(|item| item
                            .as_str()
                            .map_or_else(|| format!("{item:?}"), str::to_string))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                other => serde_norway::to_string(other)
                    .unwrap_or_default()
                    .trim()
                    .replace('\n', " ")
                    .replace("- ", ""),
            };
            out.insert(prefix.to_string(), shown);
        }
    }
}

/// The comment of each key in config.yaml: the text after `#` on its line, continued by
/// comment-only lines below it that are indented further than the key.
fn config_yaml_comments() -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(repo_file("config.yaml")).expect("config.yaml");
    let mut comments = BTreeMap::new();
    let mut stack: Vec<(usize, String)> = Vec::new();
    let mut last_key: Option<(String, usize)> = None;
    for line in text.lines() {
        let indent = line.len() - line.trim_start().len();
        let trimmed = line.trim();
        if trimmed.is_empty() {
            last_key = None;
            continue;
        }
        if let Some(comment) = trimmed.strip_prefix('#') {
            if let Some((key, key_indent)) = &last_key {
                if indent > *key_indent {
                    let entry: &mut String = comments.entry(key.clone()).or_default();
                    entry.push(' ');
                    entry.push_str(comment.trim());
                }
            }
            continue;
        }
        if trimmed.starts_with('-') {
            continue;
        }
        let Some((key, rest)) = trimmed.split_once(':') else {
            continue;
        };
        while stack.last().is_some_and(|(i, _)| *i >= indent) {
            stack.pop();
        }
        let path = stack
            .iter()
            .map(|(_, k)| k.as_str())
            .chain([key.trim()])
            .collect::<Vec<_>>()
            .join(".");
        stack.push((indent, key.trim().to_string()));
        let comment = rest.split_once(" #").map(|(_, c)| c.trim().to_string());
        if let Some(comment) = comment {
            comments.insert(path.clone(), comment);
        }
        last_key = Some((path, indent));
    }
    comments
}

/// The rows of the README's table, generated.
fn generated_rows() -> Vec<String> {
    let comments = config_yaml_comments();
    default_keys()
        .into_iter()
        .map(|(key, default)| {
            let meaning = comments
                .get(&key)
                .map(|c| c.replace('|', "\\|"))
                .unwrap_or_default();
            format!("| `{key}` | `{default}` | {meaning} |")
        })
        .collect()
}

fn readme_rows(readme: &str) -> Vec<String> {
    readme
        .lines()
        .skip_while(|line| line.trim() != TABLE_HEADER)
        .skip(2)
        .take_while(|line| line.starts_with('|'))
        .map(str::to_string)
        .collect()
}

#[test]
fn every_key_is_in_config_yaml_with_a_comment() {
    let comments = config_yaml_comments();
    let missing: Vec<String> = default_keys()
        .into_keys()
        .filter(|key| !comments.contains_key(key) && !key.starts_with("auth.tokens"))
        .collect();
    assert!(
        missing.is_empty(),
        "keys without a commented line in config.yaml: {missing:?}"
    );
}

#[test]
fn the_readme_reference_matches_the_config() {
    let path = repo_file("README.md");
    let readme = std::fs::read_to_string(&path).expect("README.md");
    let generated = generated_rows();
    if std::env::var_os("RUNBOX_WRITE_CONFIG_REFERENCE").is_some() {
        let current = readme_rows(&readme);
        let mut lines: Vec<String> = readme.lines().map(str::to_string).collect();
        let start = lines
            .iter()
            .position(|l| l.trim() == TABLE_HEADER)
            .expect("README has the table header")
            + 2;
        lines.splice(start..start + current.len(), generated.clone());
        std::fs::write(&path, lines.join("\n") + "\n").expect("write README");
        return;
    }
    let current = readme_rows(&readme);
    let stale: Vec<&String> = current
        .iter()
        .filter(|row| !generated.contains(row))
        .collect();
    let missing: Vec<&String> = generated
        .iter()
        .filter(|row| !current.contains(row))
        .collect();
    assert!(
        current == generated,
        "README.md's configuration reference is stale (regenerate it with \
         RUNBOX_WRITE_CONFIG_REFERENCE=1 cargo test -p runbox-core config::reference)\n\
         rows to drop: {stale:#?}\nrows to add: {missing:#?}"
    );
}
