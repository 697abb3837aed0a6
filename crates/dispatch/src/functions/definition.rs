//! Registering, reading and deleting stored functions. A registration is checked before
//! it is stored: the body's shape here, the dependencies by building their environment,
//! and the code inside a sandbox of that environment (it must load and define a
//! callable of the function's name, whose signature must agree with `args`).

use std::time::Duration;

use axum::http::StatusCode;
use axum::response::Response;
use runbox_core::units::human_seconds;
use runbox_core::{ErrorKind, ExecMode, ExecRequest, Language};
use runbox_runtime::functions::args::{self, ArgSpec};
use runbox_runtime::functions::{Environment, Need};
use runbox_runtime::RuntimeError;
use runbox_sandbox::{DependencySet, RunOptions};
use runbox_store::{FunctionVersion, NewFunctionVersion};
use serde_json::{json, Map, Value};

use super::{function_not_found, json_kind, rejection, reply};
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

const MAX_CODE_BYTES: usize = 1024 * 1024;
const MAX_TIMEOUT_SECONDS: f64 = 86_400.0;
const FIELDS: [&str; 7] = [
    "name",
    "code",
    "description",
    "dependencies",
    "args",
    "max_concurrency",
    "timeout",
];

/// POST /functions (a new name) or PUT /functions/{name} (a new version, or version 1).
#[derive(Clone, Debug)]
pub enum Registration {
    Create,
    NewVersion { name: String },
}

/// A registration body that passed the shape checks.
struct Definition {
    name: String,
    code: String,
    description: String,
    dependencies: DependencySet,
    args: Option<Vec<ArgSpec>>,
    max_concurrency: Option<i64>,
    timeout_ms: Option<i64>,
}

pub async fn register(
    state: &AppState,
    principal: &Principal,
    registration: Registration,
    body: Value,
) -> ApiResult<Response> {
    let definition = parse(body, &registration)?;
    if matches!(registration, Registration::Create)
        && state
            .store
            .function(&definition.name, None)
            .await?
            .is_some()
    {
        return Err(conflict(&definition.name));
    }
    let image = match state
        .functions
        .environments
        .ensure(
            &state.runtime.runner,
            &definition.dependencies,
            Need::Registration,
        )
        .await?
    {
        Environment::Ready { image } => image,
        Environment::Failed { message, log } => {
            let mut extra = Map::new();
            extra.insert("log".into(), Value::String(log));
            return Err(rejection("dependency", message, extra));
        }
        Environment::Unbuildable { message } => {
            return Err(RuntimeError::EnvironmentUnbuildable(message).into())
        }
    };
    let parameters = check_code(state, &definition, image).await?;
    let specs = args::reconcile(&definition.name, definition.args.clone(), &parameters)
        .map_err(|e| invalid_definition("args", e.argument, e.message))?;
    let new = NewFunctionVersion {
        name: definition.name.clone(),
        code: definition.code,
        description: definition.description,
        dependencies: definition.dependencies.requirements().to_vec(),
        args: args::specs_to_json(&specs),
        parameters,
        max_concurrency: definition.max_concurrency,
        timeout_ms: definition.timeout_ms,
        created_by: principal.subject.clone(),
    };
    let (stored, created) = match registration {
        Registration::Create => match state.store.create_function(&new).await? {
            Some(stored) => (stored, true),
            None => return Err(conflict(&new.name)),
        },
        Registration::NewVersion { .. } => state.store.put_function_version(&new).await?,
    };
    tracing::info!(function = %stored.name, version = stored.version, subject = %principal.subject, "function stored");
    let mut body = definition_json(&stored);
    body.insert("env".into(), env_json(state, &stored).await?);
    body.insert(
        "running".into(),
        json!(state.functions.running.running(&stored.name)),
    );
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(reply(status, Value::Object(body)))
}

/// Runs the code as a module in a sandbox of its environment and asks for the callable's
/// signature; any failure is the registration's 422.
async fn check_code(state: &AppState, definition: &Definition, image: String) -> ApiResult<Value> {
    // Loading the code obeys the function's own limit, as its calls do.
    let timeout = state.config.function_timeout(definition.timeout_ms);
    let mut request = ExecRequest::new(Language::Python, definition.code.clone(), timeout);
    request.mode = ExecMode::Script;
    request.check = Some(definition.name.clone());
    let options = RunOptions {
        image: Some(image),
        ..RunOptions::default()
    };
    let executed = state
        .runtime
        .runner
        .execute(
            runbox_runtime::metrics::Surface::FunctionCheck,
            &request,
            options,
        )
        .await?;
    let outcome = executed.outcome;
    let Some(error) = outcome.error else {
        return Ok(outcome
            .value
            .as_ref()
            .and_then(|v| v.get("parameters"))
            .cloned()
            .unwrap_or(Value::Null));
    };
    let name = &definition.name;
    let message = match error.kind {
        ErrorKind::Syntax => format!("the code is not valid Python: {}", error.message),
        ErrorKind::Runtime if error.message.starts_with("no callable named") => {
            format!("the code defines no callable named `{name}`")
        }
        ErrorKind::Runtime => format!("the code failed while loading: {}", error.message),
        ErrorKind::Timeout => format!(
            "loading the code took longer than {}",
            timeout_name(definition.timeout_ms, timeout)
        ),
        _ => format!("the code could not be loaded: {}", error.message),
    };
    let mut extra = Map::new();
    if let Some(traceback) = error.traceback.filter(|t| !t.is_empty()) {
        extra.insert("traceback".into(), Value::String(traceback));
    }
    if !outcome.stderr.is_empty() {
        extra.insert("stderr".into(), Value::String(outcome.stderr));
    }
    Err(rejection(error.kind.as_str(), message, extra))
}

/// Which limit `timeout` is, in the words of the request and the config.
fn timeout_name(timeout_ms: Option<i64>, timeout: Duration) -> String {
    let seconds = human_seconds(timeout);
    match timeout_ms {
        Some(ms) if u128::from(ms.unsigned_abs()) > timeout.as_millis() => {
            format!("`limits.max_timeout` of {seconds}, which caps the function's `timeout`")
        }
        Some(_) => format!("the function's `timeout` of {seconds}"),
        None => format!("`limits.timeout` of {seconds} (the function sets no `timeout`)"),
    }
}

fn parse(body: Value, registration: &Registration) -> ApiResult<Definition> {
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
    Ok(Definition {
        name,
        code,
        description,
        dependencies,
        args,
        max_concurrency,
        timeout_ms,
    })
}

/// 422 `invalid_definition` naming the field (and the argument, for `args`).
fn invalid_definition(field: &str, argument: Option<String>, message: String) -> ApiError {
    let mut extra = Map::new();
    if !field.is_empty() {
        extra.insert("field".into(), Value::String(field.to_string()));
    }
    if let Some(argument) = argument {
        extra.insert("argument".into(), Value::String(argument));
    }
    rejection("invalid_definition", message, extra)
}

fn conflict(name: &str) -> ApiError {
    ApiError::Conflict(format!(
        "a function named `{name}` already exists; PUT /functions/{name} stores a new version"
    ))
}

/// The stored definition as the API shows it.
pub(crate) fn definition_json(function: &FunctionVersion) -> Map<String, Value> {
    let mut body = Map::new();
    body.insert("name".into(), json!(function.name));
    body.insert("version".into(), json!(function.version));
    body.insert("description".into(), json!(function.description));
    body.insert("code".into(), json!(function.code));
    body.insert("dependencies".into(), json!(function.dependencies));
    body.insert("args".into(), function.args.clone());
    body.insert("max_concurrency".into(), json!(function.max_concurrency));
    body.insert(
        "timeout".into(),
        json!(function.timeout_ms.map(|ms| ms as f64 / 1000.0)),
    );
    body.insert("created_at".into(), json!(function.created_at));
    body.insert("created_by".into(), json!(function.created_by));
    body
}

async fn env_json(state: &AppState, function: &FunctionVersion) -> ApiResult<Value> {
    let deps = DependencySet::parse(&function.dependencies).unwrap_or_default();
    let view = state
        .functions
        .environments
        .view(&state.runtime.runner, &deps)
        .await?;
    Ok(serde_json::to_value(view).unwrap_or(Value::Null))
}

/// GET /functions: the latest version of each, without code.
pub async fn list_functions(state: &AppState) -> ApiResult<Response> {
    let functions = state.store.list_functions().await?;
    let listed: Vec<Value> = functions
        .iter()
        .map(|f| {
            let mut body = definition_json(f);
            body.remove("code");
            body.insert(
                "running".into(),
                json!(state.functions.running.running(&f.name)),
            );
            Value::Object(body)
        })
        .collect();
    Ok(reply(StatusCode::OK, json!({"functions": listed})))
}

/// GET /functions/{name}: the latest definition, its environment, running calls and
/// every version.
pub async fn get_function(state: &AppState, name: &str) -> ApiResult<Response> {
    let versions = state.store.function_versions(name).await?;
    let Some(latest) = versions.last() else {
        return Err(function_not_found(name));
    };
    let mut body = definition_json(latest);
    body.insert("env".into(), env_json(state, latest).await?);
    body.insert(
        "running".into(),
        json!(state.functions.running.running(name)),
    );
    let summaries: Vec<Value> = versions
        .iter()
        .map(|v| {
            json!({
                "version": v.version,
                "created_at": v.created_at,
                "created_by": v.created_by,
                "description": v.description,
                "dependencies": v.dependencies,
            })
        })
        .collect();
    body.insert("versions".into(), Value::Array(summaries));
    Ok(reply(StatusCode::OK, Value::Object(body)))
}

/// GET /functions/{name}/versions/{version}: an old (or the latest) version in full.
pub async fn get_function_version(
    state: &AppState,
    name: &str,
    version: i64,
) -> ApiResult<Response> {
    match state.store.function(name, Some(version)).await? {
        Some(function) => Ok(reply(
            StatusCode::OK,
            Value::Object(definition_json(&function)),
        )),
        None if state.store.function(name, None).await?.is_some() => Err(ApiError::NotFound(
            format!("function `{name}` has no version {version}"),
        )),
        None => Err(function_not_found(name)),
    }
}

/// DELETE /functions/{name}: every version goes. Calls already running finish.
pub async fn delete_function(state: &AppState, name: &str) -> ApiResult<Response> {
    let deleted = state.store.delete_function(name).await?;
    if deleted == 0 {
        return Err(function_not_found(name));
    }
    tracing::info!(function = %name, versions = deleted, "function deleted");
    Ok(reply(
        StatusCode::OK,
        json!({"deleted": name, "versions": deleted}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Definitions are built by hand; their description in /openapi.json must fit.
    #[test]
    fn definitions_are_shown_as_the_description_says() {
        let specs = vec![args::ArgSpec {
            name: "x".into(),
            kind: args::ArgType::Int,
            required: false,
            description: String::new(),
            default: Some(json!(1)),
        }];
        let function = FunctionVersion {
            name: "add".into(),
            version: 1,
            code: "def add(x=1): return x".into(),
            description: "adds".into(),
            dependencies: vec!["numpy==2.*".into()],
            args: args::specs_to_json(&specs),
            parameters: Value::Null,
            max_concurrency: None,
            timeout_ms: Some(1500),
            created_by: "someone".into(),
            created_at: chrono::Utc::now(),
        };
        let mut body = definition_json(&function);
        body.insert("running".into(), json!(0));
        let body = Value::Object(body);
        let described: Result<crate::openapi::Function, _> = serde_json::from_value(body.clone());
        if let Err(err) = described {
            panic!("{body} does not fit: {err}");
        }
    }
}
