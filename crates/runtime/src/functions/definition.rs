//! The shape of a function definition, as `POST /functions` and `PUT /functions/{name}`
//! take it: every field checked before anything is built or run for it (422
//! `invalid_definition` naming the field, and the argument for `args`).

use runbox_core::Isolation;
use runbox_sandbox::DependencySet;
use serde_json::Value;

use super::args::{self, ArgSpec};
use super::json_kind;
use crate::error::{Rejection, RuntimeError};

const MAX_CODE_BYTES: usize = 1024 * 1024;
const MAX_TIMEOUT_SECONDS: f64 = 86_400.0;
const FIELDS: [&str; 8] = [
    "name",
    "code",
    "description",
    "dependencies",
    "args",
    "max_concurrency",
    "timeout",
    "isolation",
];

/// POST /functions (a new name) or PUT /functions/{name} (a new version, or version 1).
#[derive(Clone, Debug)]
pub enum Registration {
    Create,
    NewVersion { name: String },
}

/// A registration body that passed the shape checks.
pub(crate) struct Definition {
    pub name: String,
    pub code: String,
    pub description: String,
    pub dependencies: DependencySet,
    pub args: Option<Vec<ArgSpec>>,
    pub max_concurrency: Option<i64>,
    pub timeout_ms: Option<i64>,
    /// The isolation its calls (and the check of its code) run under.
    pub isolation: Isolation,
}

pub(crate) fn parse(body: Value, registration: &Registration) -> Result<Definition, RuntimeError> {
    let Value::Object(mut fields) = body else {
        return Err(invalid_definition(
            "",
            None,
            format!("the body must be a JSON object, not {}", json_kind(&body)),
        ));
    };
    if let Some(unknown) = fields.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(invalid_definition(
            unknown,
            None,
            format!("unknown field `{unknown}` (known: {})", FIELDS.join(", ")),
        ));
    }
    let name = match (fields.remove("name"), registration) {
        (Some(Value::String(name)), Registration::Create) => name,
        (None | Some(Value::Null), Registration::Create) => {
            return Err(invalid_definition(
                "name",
                None,
                "`name` is required".into(),
            ))
        }
        (None | Some(Value::Null), Registration::NewVersion { name }) => name.clone(),
        (Some(Value::String(given)), Registration::NewVersion { name }) if &given == name => given,
        (Some(Value::String(given)), Registration::NewVersion { name }) => {
            return Err(invalid_definition(
                "name",
                None,
                format!("`name` is `{given}` but the path names `{name}`"),
            ))
        }
        (Some(_), _) => {
            return Err(invalid_definition(
                "name",
                None,
                "`name` must be a string".into(),
            ))
        }
    };
    if !args::is_identifier(&name) {
        return Err(invalid_definition(
            "name",
            None,
            format!("`{name}` is not a valid function name (a Python identifier: letters, digits and _, at most 100)"),
        ));
    }
    let code = match fields.remove("code") {
        Some(Value::String(code)) if !code.trim().is_empty() => code,
        Some(Value::String(_)) | None | Some(Value::Null) => {
            return Err(invalid_definition(
                "code",
                None,
                "`code` is required".into(),
            ))
        }
        Some(_) => {
            return Err(invalid_definition(
                "code",
                None,
                "`code` must be a string".into(),
            ))
        }
    };
    if code.contains('\0') {
        return Err(invalid_definition(
            "code",
            None,
            "`code` must not contain NUL characters".into(),
        ));
    }
    if code.len() > MAX_CODE_BYTES {
        return Err(invalid_definition(
            "code",
            None,
            format!("`code` is larger than {MAX_CODE_BYTES} bytes"),
        ));
    }
    let description = match fields.remove("description") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(text)) if !text.contains('\0') => text,
        Some(Value::String(_)) => {
            return Err(invalid_definition(
                "description",
                None,
                "`description` must not contain NUL characters".into(),
            ))
        }
        Some(_) => {
            return Err(invalid_definition(
                "description",
                None,
                "`description` must be a string".into(),
            ))
        }
    };
    let dependencies = match fields.remove("dependencies") {
        None | Some(Value::Null) => DependencySet::default(),
        Some(Value::Array(items)) => {
            let mut list = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    Value::String(requirement) => list.push(requirement),
                    other => {
                        return Err(invalid_definition(
                            "dependencies",
                            None,
                            format!(
                                "`dependencies` must list requirement strings, not {}",
                                json_kind(&other)
                            ),
                        ))
                    }
                }
            }
            DependencySet::parse(&list)
                .map_err(|e| invalid_definition("dependencies", None, e.to_string()))?
        }
        Some(_) => {
            return Err(invalid_definition(
                "dependencies",
                None,
                "`dependencies` must be a list of requirements such as \"pandas==2.2.*\"".into(),
            ))
        }
    };
    let args = args::parse_specs(fields.get("args").unwrap_or(&Value::Null))
        .map_err(|e| invalid_definition("args", e.argument, e.message))?;
    let max_concurrency = match fields.remove("max_concurrency") {
        None | Some(Value::Null) => None,
        Some(value) => match value.as_i64() {
            Some(n) if (1..=1_000_000).contains(&n) => Some(n),
            _ => {
                return Err(invalid_definition(
                    "max_concurrency",
                    None,
                    "`max_concurrency` must be a whole number of at least 1".into(),
                ))
            }
        },
    };
    let timeout_ms = match fields.remove("timeout") {
        None | Some(Value::Null) => None,
        Some(value) => match value.as_f64() {
            Some(seconds) if seconds > 0.0 && seconds <= MAX_TIMEOUT_SECONDS => {
                Some((seconds * 1000.0).ceil() as i64)
            }
            _ => {
                return Err(invalid_definition(
                    "timeout",
                    None,
                    format!("`timeout` must be a number of seconds above 0 and at most {MAX_TIMEOUT_SECONDS}"),
                ))
            }
        },
    };
    let isolation = match fields.remove("isolation") {
        None | Some(Value::Null) => Isolation::Standard,
        Some(Value::String(text)) => Isolation::parse(&text).ok_or_else(|| {
            invalid_definition(
                "isolation",
                None,
                format!("`{text}` is not standard, strong or a runtime's name"),
            )
        })?,
        Some(_) => {
            return Err(invalid_definition(
                "isolation",
                None,
                "`isolation` must be a string: standard, strong or a runtime's name".into(),
            ))
        }
    };
    Ok(Definition {
        name,
        code,
        description,
        dependencies,
        args,
        max_concurrency,
        timeout_ms,
        isolation,
    })
}

/// 422 `invalid_definition` naming the field (and the argument, for `args`).
pub(crate) fn invalid_definition(
    field: &str,
    argument: Option<String>,
    message: String,
) -> RuntimeError {
    Rejection {
        field: (!field.is_empty()).then(|| field.to_string()),
        argument,
        ..Rejection::new("invalid_definition", message)
    }
    .into()
}
