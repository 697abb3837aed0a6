//! Stored functions as endpoints: the registry (definitions with versions, checked in a
//! sandbox), dependency environments, calls (sync and async) with per-function
//! concurrency limits, and the tasks that async calls become.

mod call;
mod definition;
mod tasks;

use std::time::Duration;

use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{Map, Value};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::Principal;
use crate::error::ApiError;
use crate::state::AppState;

pub use call::{call_function, CallRequest};
pub use definition::{
    delete_function, get_function, get_function_version, list_functions, register, Registration,
};
pub use runbox_runtime::functions::RunningCalls;
pub use runbox_runtime::functions::{Environment, EnvironmentView, Environments};
pub use tasks::{
    cancel_task, get_task, list_tasks, recover_interrupted, task_result, terminate_function,
};

/// The functions runtime every handler shares: running calls, environment builds and the
/// background tasks of async calls.
#[derive(Clone)]
pub struct Functions {
    pub running: RunningCalls,
    pub environments: Environments,
    tracker: TaskTracker,
    /// Fires at shutdown: running calls are killed, waiting builds give up.
    shutdown: CancellationToken,
    /// Bumped whenever a task of this server ends, so long-polls wake up.
    finished: watch::Sender<u64>,
}

impl Functions {
    /// `parallel_builds`: `functions.max_parallel_builds`.
    pub fn new(parallel_builds: usize) -> Self {
        let tracker = TaskTracker::new();
        let shutdown = CancellationToken::new();
        Functions {
            running: RunningCalls::default(),
            environments: Environments::new(parallel_builds, tracker.clone(), shutdown.clone()),
            tracker,
            shutdown,
            finished: watch::Sender::new(0),
        }
    }

    /// Lets running tasks finish for up to `grace`, then kills what is left and waits
    /// until every task has recorded how it ended.
    pub async fn shutdown(&self, grace: Duration) {
        self.tracker.close();
        if tokio::time::timeout(grace, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                "stopping the async tasks and environment builds still running at shutdown"
            );
        }
        self.shutdown.cancel();
        if tokio::time::timeout(Duration::from_secs(15), self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("some async tasks did not stop within 15 s");
        }
    }

    pub(crate) fn shutdown_token(&self) -> &CancellationToken {
        &self.shutdown
    }

    fn task_finished(&self) {
        self.finished.send_modify(|generation| *generation += 1);
    }
}

/// `POST /execute {"name", "args"}`: calls the stored function `name` synchronously,
/// exactly like `POST /functions/{name}/call` without `async` — arguments validated first
/// (422 `invalid_args`), 404 for an unknown function, 429 at `max_concurrency`, else 200
/// with the result object. `args` may be null (no arguments).
pub async fn call_stored_function(
    state: &AppState,
    principal: &Principal,
    name: &str,
    args: Value,
) -> Result<Response, ApiError> {
    let args = match args {
        Value::Null => Map::new(),
        Value::Object(args) => args,
        other => {
            return Err(invalid_args(
                None,
                format!(
                    "`args` must be an object of argument names to values, not {}",
                    json_kind(&other)
                ),
            ))
        }
    };
    let request = CallRequest {
        args,
        asynchronous: false,
        version: None,
    };
    call_function(state, principal, name, request).await
}

/// A 422 of the functions surface (rendered by `ApiError`).
pub(crate) fn rejection(
    kind: &'static str,
    message: String,
    extra: Map<String, Value>,
) -> ApiError {
    ApiError::Rejected {
        kind,
        message,
        extra,
    }
}

/// 422 `invalid_args`, naming the argument when there is one.
pub(crate) fn invalid_args(argument: Option<String>, message: String) -> ApiError {
    let mut extra = Map::new();
    if let Some(argument) = argument {
        extra.insert("argument".into(), Value::String(argument));
    }
    rejection("invalid_args", message, extra)
}

pub(crate) fn function_not_found(name: &str) -> ApiError {
    ApiError::NotFound(format!("no function named `{name}`"))
}

pub(crate) fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// A JSON body with a status.
pub(crate) fn reply(status: axum::http::StatusCode, body: Value) -> Response {
    (status, Json(body)).into_response()
}
