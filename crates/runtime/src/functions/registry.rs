//! Registering, reading and deleting stored functions. A registration is checked before
//! it is stored: the body's shape (`definition.rs`), the dependencies by building their
//! environment, and the code inside a sandbox of that environment (it must load and
//! define a callable of the function's name, whose signature must agree with `args`).

use std::time::Duration;

use runbox_core::units::human_seconds;
use runbox_core::{ErrorKind, ExecMode, ExecRequest, Language};
use runbox_sandbox::{DependencySet, RunOptions};
use runbox_store::{FunctionVersion, NewFunctionVersion};
use serde_json::Value;

use super::definition::{invalid_definition, parse, Definition, Registration};
use super::views::{FunctionDeleted, FunctionVersionSummary, FunctionView, Registered};
use super::{args, function_not_found, Environment, EnvironmentView, Functions, Need};
use crate::auth::Principal;
use crate::error::{Rejection, RuntimeError};
use crate::metrics::Surface;

impl Functions {
    /// Stores a new function (`Registration::Create`) or a new version of one, once its
    /// dependencies are installed and its code has loaded in a sandbox of them.
    pub async fn register(
        &self,
        principal: &Principal,
        registration: Registration,
        body: Value,
    ) -> Result<Registered, RuntimeError> {
        let definition = parse(body, &registration)?;
        let store = &self.runner.store;
        if matches!(registration, Registration::Create)
            && store.function(&definition.name, None).await?.is_some()
        {
            return Err(conflict(&definition.name));
        }
        let image = match self
            .environments
            .ensure(&self.runner, &definition.dependencies, Need::Registration)
            .await?
        {
            Environment::Ready { image } => image,
            Environment::Failed { message, log } => {
                return Err(Rejection {
                    log: Some(log),
                    ..Rejection::new("dependency", message)
                }
                .into())
            }
            Environment::Unbuildable { message } => {
                return Err(RuntimeError::Unavailable(format!(
                    "the dependency environment could not be built: {message}"
                )))
            }
        };
        let parameters = self.check_code(&definition, image).await?;
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
            isolation: definition.isolation.name().to_string(),
        };
        let (stored, created) = match registration {
            Registration::Create => match store.create_function(&new).await? {
                Some(stored) => (stored, true),
                None => return Err(conflict(&new.name)),
            },
            Registration::NewVersion { .. } => store.put_function_version(&new).await?,
        };
        tracing::info!(function = %stored.name, version = stored.version, subject = %principal.subject, "function stored");
        self.functions_changed();
        let mut function = FunctionView::definition(&stored);
        function.env = Some(self.environment_of(&stored).await?);
        function.running = Some(self.running.running(&stored.name) as u64);
        Ok(Registered { function, created })
    }

    /// Runs the code as a module in a sandbox of its environment and asks for the
    /// callable's signature; any failure is the registration's 422.
    async fn check_code(
        &self,
        definition: &Definition,
        image: String,
    ) -> Result<Value, RuntimeError> {
        // Loading the code obeys the function's own limit, as its calls do.
        let timeout = self.runner.config.function_timeout(definition.timeout_ms);
        let mut request = ExecRequest::new(Language::Python, definition.code.clone(), timeout);
        request.mode = ExecMode::Script;
        request.check = Some(definition.name.clone());
        request.isolation = definition.isolation.clone();
        let options = RunOptions {
            image: Some(image),
            ..RunOptions::default()
        };
        let executed = self
            .runner
            .execute(Surface::FunctionCheck, &request, options)
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
        Err(Rejection {
            traceback: error.traceback.filter(|t| !t.is_empty()),
            stderr: (!outcome.stderr.is_empty()).then_some(outcome.stderr),
            ..Rejection::new(error.kind.as_str(), message)
        }
        .into())
    }

    async fn environment_of(
        &self,
        function: &FunctionVersion,
    ) -> Result<EnvironmentView, RuntimeError> {
        let deps = DependencySet::parse(&function.dependencies).unwrap_or_default();
        self.environments.view(&self.runner, &deps).await
    }

    /// The latest version of each function, without code.
    pub async fn list(&self) -> Result<Vec<FunctionView>, RuntimeError> {
        let functions = self.runner.store.list_functions().await?;
        Ok(functions
            .iter()
            .map(|f| FunctionView {
                code: None,
                running: Some(self.running.running(&f.name) as u64),
                ..FunctionView::definition(f)
            })
            .collect())
    }

    /// The latest definition, its environment, running calls and every version.
    pub async fn get(&self, name: &str) -> Result<FunctionView, RuntimeError> {
        let versions = self.runner.store.function_versions(name).await?;
        let Some(latest) = versions.last() else {
            return Err(function_not_found(name));
        };
        let mut function = FunctionView::definition(latest);
        function.env = Some(self.environment_of(latest).await?);
        function.running = Some(self.running.running(name) as u64);
        function.versions = Some(versions.iter().map(FunctionVersionSummary::of).collect());
        Ok(function)
    }

    /// One version (old or the latest) in full.
    pub async fn version(&self, name: &str, version: i64) -> Result<FunctionView, RuntimeError> {
        let store = &self.runner.store;
        match store.function(name, Some(version)).await? {
            Some(function) => Ok(FunctionView::definition(&function)),
            None if store.function(name, None).await?.is_some() => Err(RuntimeError::NotFound(
                format!("function `{name}` has no version {version}"),
            )),
            None => Err(function_not_found(name)),
        }
    }

    /// Deletes every version. Calls already running finish.
    pub async fn delete(&self, name: &str) -> Result<FunctionDeleted, RuntimeError> {
        let deleted = self.runner.store.delete_function(name).await?;
        if deleted == 0 {
            return Err(function_not_found(name));
        }
        tracing::info!(function = %name, versions = deleted, "function deleted");
        self.functions_changed();
        Ok(FunctionDeleted {
            deleted: name.to_string(),
            versions: deleted,
        })
    }
}

fn conflict(name: &str) -> RuntimeError {
    RuntimeError::Conflict(format!(
        "a function named `{name}` already exists; PUT /functions/{name} stores a new version"
    ))
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
