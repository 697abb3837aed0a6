//! The shapes of the keys of the original Flask "Code Interpreter API" config.yaml that
//! are more than a scalar. `compat_fold.rs` folds them into runbox's own keys.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceLimits {
    /// "2g", "500m"; empty keeps runbox's limit (runbox never runs unlimited).
    #[serde(default)]
    pub memory: Option<StringOrNumber>,
    /// "1.5"; empty keeps runbox's limit.
    #[serde(default)]
    pub cpus: Option<StringOrNumber>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresBlock {
    pub user: String,
    #[serde(default)]
    pub password: String,
    pub db: String,
    #[serde(default = "default_pg_host")]
    pub host: String,
    #[serde(default)]
    pub port: Option<StringOrNumber>,
}

fn default_pg_host() -> String {
    "localhost".into()
}

/// The original wrote numbers as strings (`port: "5432"`, `cpus: "1.5"`); take both.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(untagged)]
pub enum StringOrNumber {
    Number(f64),
    Text(String),
}

impl StringOrNumber {
    pub(super) fn text(&self) -> String {
        match self {
            StringOrNumber::Number(n) if n.fract() == 0.0 => format!("{}", *n as i64),
            StringOrNumber::Number(n) => n.to_string(),
            StringOrNumber::Text(t) => t.trim().to_string(),
        }
    }
}
