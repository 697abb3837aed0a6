//! Argument specs of stored functions: both shapes of API.md (`{"count": "int"}` and a
//! list of `{name, type, required, description, default}`), their agreement with the
//! signature the code check reported, and the validation of call arguments, which
//! happens before any sandbox starts.

use runbox_core::numbers;
use serde::Serialize;
use serde_json::{json, Map, Value};

const MAX_ARGS: usize = 100;

/// The type of an argument (definitions also accept `integer`, `number`, `string`,
/// `boolean`, `array` and `object`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ArgType {
    Int,
    Float,
    Str,
    Bool,
    List,
    Dict,
    Any,
}

impl ArgType {
    /// The spec's names, plus the JSON-Schema and Python spellings people also write.
    fn parse(text: &str) -> Option<Self> {
        Some(match text.trim().to_ascii_lowercase().as_str() {
            "int" | "integer" => ArgType::Int,
            "float" | "number" => ArgType::Float,
            "str" | "string" => ArgType::Str,
            "bool" | "boolean" => ArgType::Bool,
            "list" | "array" => ArgType::List,
            "dict" | "object" => ArgType::Dict,
            "any" => ArgType::Any,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ArgType::Int => "int",
            ArgType::Float => "float",
            ArgType::Str => "str",
            ArgType::Bool => "bool",
            ArgType::List => "list",
            ArgType::Dict => "dict",
            ArgType::Any => "any",
        }
    }

    fn accepts(self, value: &Value) -> bool {
        match self {
            // Python ints have no size limit; neither has the JSON text runbox keeps.
            ArgType::Int => value.as_number().is_some_and(numbers::is_integer),
            // JSON does not tell 3 from 3.0; an int is a fine float.
            ArgType::Float => value.is_number(),
            ArgType::Str => value.is_string(),
            ArgType::Bool => value.is_boolean(),
            ArgType::List => value.is_array(),
            ArgType::Dict => value.is_object(),
            ArgType::Any => true,
        }
    }
}

/// How a JSON value is named in error messages.
fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(n) if !numbers::is_integer(n) => "float",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

/// One argument of a stored function.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ArgSpec {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: ArgType,
    pub required: bool,
    pub description: String,
    /// The default value, absent when the argument has none (null is Python's `None`:
    /// in Rust, `Some(Value::Null)`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
}

/// What is wrong with a definition's `args` or a call's arguments, and which argument.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArgError {
    pub argument: Option<String>,
    pub message: String,
}

impl ArgError {
    fn of(argument: &str, message: String) -> Self {
        ArgError {
            argument: Some(argument.to_string()),
            message,
        }
    }

    fn general(message: impl Into<String>) -> Self {
        ArgError {
            argument: None,
            message: message.into(),
        }
    }
}

/// The `args` of a definition in either shape; `None` when it declares none (then the
/// signature decides).
pub fn parse_specs(value: &Value) -> Result<Option<Vec<ArgSpec>>, ArgError> {
    let specs = match value {
        Value::Null => return Ok(None),
        Value::Object(map) => map
            .iter()
            .map(|(name, spec)| match spec {
                Value::String(kind) => spec_from_type(name, kind),
                Value::Object(fields) => spec_from_fields(Some(name), fields),
                _ => Err(ArgError::of(
                    name,
                    format!("argument `{name}`: give a type name (e.g. \"int\") or an object with `type`"),
                )),
            })
            .collect::<Result<Vec<_>, _>>()?,
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(index, item)| match item {
                Value::Object(fields) => spec_from_fields(None, fields),
                _ => Err(ArgError::general(format!(
                    "args[{index}] must be an object {{\"name\", \"type\", \"required\", \"description\", \"default\"}}"
                ))),
            })
            .collect::<Result<Vec<_>, _>>()?,
        _ => {
            return Err(ArgError::general(
                "`args` must be an object ({\"count\": \"int\"}) or a list of argument specs",
            ))
        }
    };
    if specs.len() > MAX_ARGS {
        return Err(ArgError::general(format!(
            "at most {MAX_ARGS} arguments can be declared"
        )));
    }
    for (index, spec) in specs.iter().enumerate() {
        if specs[..index].iter().any(|s| s.name == spec.name) {
            return Err(ArgError::of(
                &spec.name,
                format!("argument `{}` is declared twice", spec.name),
            ));
        }
    }
    Ok(Some(specs))
}

fn spec_from_type(name: &str, kind: &str) -> Result<ArgSpec, ArgError> {
    check_name(name)?;
    Ok(ArgSpec {
        name: name.to_string(),
        kind: parse_type(name, kind)?,
        required: true,
        description: String::new(),
        default: None,
    })
}

fn spec_from_fields(key: Option<&str>, fields: &Map<String, Value>) -> Result<ArgSpec, ArgError> {
    let name = match (key, fields.get("name")) {
        (Some(key), None) => key.to_string(),
        (Some(key), Some(Value::String(name))) if name == key => key.to_string(),
        (Some(key), Some(_)) => {
            return Err(ArgError::of(
                key,
                format!("argument `{key}`: `name` differs from its key"),
            ))
        }
        (None, Some(Value::String(name))) => name.clone(),
        (None, _) => {
            return Err(ArgError::general(
                "every argument spec needs a `name` (a string)",
            ))
        }
    };
    check_name(&name)?;
    if let Some(unknown) = fields.keys().find(|k| {
        !matches!(
            k.as_str(),
            "name" | "type" | "required" | "description" | "default"
        )
    }) {
        return Err(ArgError::of(
            &name,
            format!("argument `{name}`: unknown field `{unknown}` (known: name, type, required, description, default)"),
        ));
    }
    let kind = match fields.get("type") {
        None | Some(Value::Null) => ArgType::Any,
        Some(Value::String(kind)) => parse_type(&name, kind)?,
        Some(_) => {
            return Err(ArgError::of(
                &name,
                format!("argument `{name}`: `type` must be a string"),
            ))
        }
    };
    let description = match fields.get("description") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(text)) => text.clone(),
        Some(_) => {
            return Err(ArgError::of(
                &name,
                format!("argument `{name}`: `description` must be a string"),
            ))
        }
    };
    let default = fields.get("default").cloned();
    let required = match fields.get("required") {
        None | Some(Value::Null) => default.is_none(),
        Some(Value::Bool(required)) => *required,
        Some(_) => {
            return Err(ArgError::of(
                &name,
                format!("argument `{name}`: `required` must be true or false"),
            ))
        }
    };
    if let Some(default) = &default {
        if required {
            return Err(ArgError::of(
                &name,
                format!("argument `{name}` cannot be required and have a default"),
            ));
        }
        if !(kind.accepts(default) || default.is_null()) {
            return Err(ArgError::of(
                &name,
                format!(
                    "argument `{name}`: the default {} is not {}",
                    short(default),
                    kind.as_str()
                ),
            ));
        }
    }
    Ok(ArgSpec {
        name,
        kind,
        required,
        description,
        default,
    })
}

fn parse_type(name: &str, kind: &str) -> Result<ArgType, ArgError> {
    ArgType::parse(kind).ok_or_else(|| {
        ArgError::of(
            name,
            format!(
                "argument `{name}`: unknown type `{kind}` (known: int, float, str, bool, list, dict, any)"
            ),
        )
    })
}

fn check_name(name: &str) -> Result<(), ArgError> {
    let valid = is_identifier(name) && !name.starts_with("__");
    if valid {
        Ok(())
    } else {
        Err(ArgError::of(
            name,
            format!("`{name}` is not a valid argument name (a Python identifier)"),
        ))
    }
}

/// A Python identifier (ASCII letters, digits and `_`, not starting with a digit).
pub fn is_identifier(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The parameters the code check reported for the function (`inspect.signature`).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Parameter {
    name: String,
    kind: String,
    has_default: bool,
}

fn parameters(reported: &Value) -> Option<Vec<Parameter>> {
    reported
        .as_array()?
        .iter()
        .map(|p| {
            Some(Parameter {
                name: p.get("name")?.as_str()?.to_string(),
                kind: p.get("kind")?.as_str()?.to_string(),
                has_default: p.get("has_default")?.as_bool()?,
            })
        })
        .collect()
}

/// Whether the function takes `**kwargs` (or its signature is unknown): then arguments
/// beyond the declared ones are passed on.
pub fn accepts_extra(reported: &Value) -> bool {
    parameters(reported).is_none_or(|ps| ps.iter().any(|p| p.kind == "var_keyword"))
}

/// The specs a registration stores: the declared ones, checked against the signature, or
/// (none declared) one `any` spec per parameter, required when it has no default.
pub fn reconcile(
    function: &str,
    declared: Option<Vec<ArgSpec>>,
    reported: &Value,
) -> Result<Vec<ArgSpec>, ArgError> {
    let Some(parameters) = parameters(reported) else {
        // A builtin or C callable: no signature to compare with.
        return Ok(declared.unwrap_or_default());
    };
    let by_name = |name: &str| parameters.iter().find(|p| p.name == name);
    let takes_kwargs = parameters.iter().any(|p| p.kind == "var_keyword");
    for p in &parameters {
        if p.kind == "positional_only" && !p.has_default {
            return Err(ArgError::of(
                &p.name,
                format!(
                    "parameter `{}` of {function} is positional-only; arguments are passed by name",
                    p.name
                ),
            ));
        }
    }
    let named =
        |p: &&Parameter| matches!(p.kind.as_str(), "positional_or_keyword" | "keyword_only");
    let Some(declared) = declared else {
        return Ok(parameters
            .iter()
            .filter(named)
            .map(|p| ArgSpec {
                name: p.name.clone(),
                kind: ArgType::Any,
                required: !p.has_default,
                description: String::new(),
                default: None,
            })
            .collect());
    };
    for spec in &declared {
        let passable = by_name(&spec.name).is_some_and(|p| named(&p));
        if !passable && !takes_kwargs {
            return Err(ArgError::of(
                &spec.name,
                format!(
                    "argument `{}` is declared but {function}() has no parameter of that name",
                    spec.name
                ),
            ));
        }
    }
    for p in parameters.iter().filter(named).filter(|p| !p.has_default) {
        let covered = declared
            .iter()
            .any(|s| s.name == p.name && (s.required || s.default.is_some()));
        if !covered {
            return Err(ArgError::of(
                &p.name,
                format!(
                    "parameter `{}` of {function}() has no default: declare it in `args` as required or with a default",
                    p.name
                ),
            ));
        }
    }
    Ok(declared)
}

/// Checks a call's arguments against the specs and fills in declared defaults. Returns
/// the arguments the function is called with.
pub fn validate_call(
    function: &str,
    specs: &[ArgSpec],
    accepts_extra: bool,
    args: &Map<String, Value>,
) -> Result<Map<String, Value>, ArgError> {
    if !accepts_extra {
        if let Some(unknown) = args.keys().find(|k| !specs.iter().any(|s| &s.name == *k)) {
            let takes = if specs.is_empty() {
                "no arguments".to_string()
            } else {
                specs
                    .iter()
                    .map(|s| format!("{} ({})", s.name, s.kind.as_str()))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            return Err(ArgError::of(
                unknown,
                format!("unexpected argument `{unknown}`: {function} takes {takes}"),
            ));
        }
    }
    let mut call = args.clone();
    for spec in specs {
        match args.get(&spec.name) {
            Some(value) => {
                if !spec.kind.accepts(value) {
                    return Err(ArgError::of(
                        &spec.name,
                        format!(
                            "argument `{}` must be {}, got {} {}",
                            spec.name,
                            spec.kind.as_str(),
                            json_type(value),
                            short(value)
                        ),
                    ));
                }
            }
            None if spec.required => {
                return Err(ArgError::of(
                    &spec.name,
                    format!(
                        "missing required argument `{}` ({})",
                        spec.name,
                        spec.kind.as_str()
                    ),
                ))
            }
            None => {
                if let Some(default) = &spec.default {
                    call.insert(spec.name.clone(), default.clone());
                }
            }
        }
    }
    Ok(call)
}

/// The stored specs back from their JSON (written by this module).
pub fn specs_from_stored(stored: &Value) -> Vec<ArgSpec> {
    parse_specs(stored).ok().flatten().unwrap_or_default()
}

pub fn specs_to_json(specs: &[ArgSpec]) -> Value {
    serde_json::to_value(specs).unwrap_or_else(|_| json!([]))
}

/// A value quoted in an error message, cut short.
fn short(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 40 {
        format!("{}…", text.chars().take(40).collect::<String>())
    } else {
        text
    }
}

#[cfg(test)]
mod tests;
