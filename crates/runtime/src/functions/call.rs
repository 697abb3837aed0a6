//! Calling a stored function: arguments are validated and a concurrency slot is taken
//! before anything else happens (422 / 429 cost no sandbox); then the environment is
//! made sure of, admission is waited for, and the function runs in a fresh sandbox of
//! its environment image under its own timeout.

use std::time::Duration;

use runbox_core::numbers;
use runbox_core::{ErrorKind, ExecError, ExecMode, ExecRequest, FunctionCall, Isolation, Language};
use runbox_sandbox::{DependencySet, RunOptions};
use runbox_store::FunctionVersion;
use serde_json::{Map, Value};
use tokio::sync::oneshot;

use super::running::CallSlot;
use super::{args, function_not_found, invalid_args, json_kind, Environment, Functions, Need};
use crate::admission::Admitted;
use crate::cluster::leases::{ClusterLeases, Lease};
use crate::error::RuntimeError;
use crate::metrics::Surface;
use crate::result::Executed;

/// The body of `POST /functions/{name}/call`.
#[derive(Clone, Debug, Default)]
pub struct CallRequest {
    pub args: Map<String, Value>,
    /// `"async": true`: answer 202 with a task id at once.
    pub asynchronous: bool,
    /// Call this version instead of the latest.
    pub version: Option<i64>,
}

impl CallRequest {
    /// An empty body is a call without arguments.
    pub fn parse(body: Value) -> Result<CallRequest, RuntimeError> {
        let mut fields = match body {
            Value::Null => return Ok(CallRequest::default()),
            Value::Object(fields) => fields,
            other => {
                return Err(invalid_args(
                    None,
                    format!("the body must be a JSON object, not {}", json_kind(&other)),
                ))
            }
        };
        if let Some(unknown) = fields
            .keys()
            .find(|k| !matches!(k.as_str(), "args" | "async" | "version"))
        {
            return Err(invalid_args(
                None,
                format!("unknown field `{unknown}` (known: args, async, version)"),
            ));
        }
        let args = match fields.remove("args") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(args)) => args,
            Some(other) => {
                return Err(invalid_args(
                    None,
                    format!(
                        "`args` must be an object of argument names to values, not {}",
                        json_kind(&other)
                    ),
                ))
            }
        };
        if let Some(inexact) = numbers::find_inexact_in(&args) {
            let argument = inexact
                .path
                .split(['.', '['])
                .next()
                .unwrap_or_default()
                .to_string();
            return Err(invalid_args(
                Some(argument),
                format!("argument `{}`: {}", inexact.path, inexact.message),
            ));
        }
        let asynchronous = match fields.remove("async") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(flag)) => flag,
            Some(_) => return Err(invalid_args(None, "`async` must be true or false".into())),
        };
        let version = match fields.remove("version") {
            None | Some(Value::Null) => None,
            Some(value) => match value.as_i64() {
                Some(version) if version >= 1 => Some(version),
                _ => {
                    return Err(invalid_args(
                        None,
                        "`version` must be a version number (1, 2, …)".into(),
                    ))
                }
            },
        };
        Ok(CallRequest {
            args,
            asynchronous,
            version,
        })
    }
}

/// A call that passed validation and holds its concurrency slot.
pub(crate) struct Prepared {
    pub function: FunctionVersion,
    pub args: Map<String, Value>,
    pub timeout: Duration,
    /// The function's isolation, raised to the caller's floor.
    pub isolation: Isolation,
    pub slot: CallSlot,
    /// The call's place under `max_concurrency` across the replicas.
    pub lease: Option<Lease>,
}

impl Prepared {
    /// Gives the call's place under `max_concurrency` back and waits until the store
    /// has it (dropping the lease gives it back in the background): whoever hears of
    /// this call next finds the place free.
    pub(crate) async fn give_back_lease(&mut self) {
        if let Some(lease) = self.lease.take() {
            lease.release().await;
        }
    }
}

/// How a call gets its run slot.
pub(crate) enum Admit<'a> {
    /// A sync call: waits at most `admission.max_wait`, then 504.
    Bounded,
    /// A task this replica claimed with a slot in hand (a task waits in the queue, not
    /// here); its `started_at` is set once its sandbox is there.
    Claimed {
        task_id: &'a str,
        admitted: Admitted,
    },
}

/// How a run ended, when it did not fail in runbox itself.
pub(crate) enum Ran {
    Finished(Box<Executed>),
    /// The call was cancelled before it started.
    Cancelled,
}

impl Functions {
    /// Checks a call before anything runs for it: the function (and version) exists
    /// (404), its arguments fit the definition (422 `invalid_args`), and a concurrency
    /// slot is free (429). `task_id` names the task an async call becomes.
    pub(crate) async fn prepare(
        &self,
        name: &str,
        request: &CallRequest,
        task_id: Option<&str>,
    ) -> Result<Prepared, RuntimeError> {
        let store = &self.runner.store;
        let Some(function) = store.function(name, request.version).await? else {
            return Err(match request.version {
                Some(version) if store.function(name, None).await?.is_some() => {
                    RuntimeError::NotFound(format!("function `{name}` has no version {version}"))
                }
                _ => function_not_found(name),
            });
        };
        let specs = args::specs_from_stored(&function.args);
        let accepts_extra = args::accepts_extra(&function.parameters);
        let call_args = args::validate_call(&function.name, &specs, accepts_extra, &request.args)
            .map_err(|e| invalid_args(e.argument, e.message))?;
        let limit = function
            .max_concurrency
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX));
        let slot = self
            .running
            .try_enter(name, limit, task_id, &self.shutdown)
            .map_err(|limit| RuntimeError::OverConcurrency { limit })?;
        let lease = match limit {
            Some(limit) => Some(
                self.leases
                    .acquire(
                        &uuid::Uuid::new_v4().to_string(),
                        &ClusterLeases::function(name),
                        limit,
                    )
                    .await?
                    .ok_or(RuntimeError::OverConcurrency { limit })?,
            ),
            None => None,
        };
        let timeout = self.runner.config.function_timeout(function.timeout_ms);
        // Stored by this server's own parse; a value it cannot read asks for the most.
        let isolation = Isolation::parse(&function.isolation).unwrap_or(Isolation::Strong);
        Ok(Prepared {
            function,
            args: call_args,
            timeout,
            isolation,
            slot,
            lease,
        })
    }

    /// Runs a prepared call: its environment, admission, then the run pipeline.
    /// User-code failures, a failed environment and a cancellation are in what it
    /// returns; `Err` is a failure of runbox itself.
    pub(crate) async fn run(
        &self,
        prepared: &Prepared,
        admit: Admit<'_>,
    ) -> Result<Ran, RuntimeError> {
        let cancel = &prepared.slot.cancel;
        let function = &prepared.function;
        let deps = DependencySet::parse(&function.dependencies).unwrap_or_default();
        let environment = tokio::select! {
            environment = self.environments.ensure(&self.runner, &deps, Need::Call) => environment?,
            () = cancel.cancelled() => return Ok(Ran::Cancelled),
        };
        let image = match environment {
            Environment::Ready { image } => image,
            Environment::Failed { message, log } => {
                return Ok(Ran::Finished(Box::new(Executed::failed(ExecError {
                    kind: ErrorKind::Dependency,
                    message,
                    traceback: (!log.is_empty()).then_some(log),
                }))))
            }
            Environment::Unbuildable { message } => {
                return Err(RuntimeError::Unavailable(format!(
                    "the dependency environment could not be built: {message}"
                )))
            }
        };
        let (_admitted, task_id) = match admit {
            Admit::Bounded => (self.runner.admission.admit().await?, None),
            Admit::Claimed { task_id, admitted } => (admitted, Some(task_id)),
        };
        let mut request =
            ExecRequest::new(Language::Python, function.code.clone(), prepared.timeout);
        request.mode = ExecMode::Script;
        request.outputs = true;
        request.isolation = prepared.isolation.clone();
        request.call = Some(FunctionCall {
            function: function.name.clone(),
            args: prepared.args.clone(),
        });
        let (started, sandbox_ready) = oneshot::channel();
        let options = RunOptions {
            image: Some(image),
            cancel: Some(cancel.clone()),
            started: Some(started),
            ..RunOptions::default()
        };
        // A task's `started_at` is when its code got a sandbox: the environment and the
        // container start are not run time.
        let mark_started = async {
            if let (Some(task_id), Ok(())) = (task_id, sandbox_ready.await) {
                if let Err(err) = self.runner.store.mark_task_started(task_id).await {
                    tracing::warn!(task = %task_id, error = %err, "cannot record that a task started");
                }
            }
        };
        let (executed, ()) = tokio::join!(
            self.runner
                .run_admitted(Surface::Function, &request, options),
            mark_started
        );
        Ok(Ran::Finished(Box::new(executed?)))
    }
}
