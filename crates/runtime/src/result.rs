//! The result object of the native surface (API.md), shared by /execute, function calls,
//! tasks and sessions.

use runbox_core::{ErrorKind, ExecError, ExecOutcome};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use crate::image_ref::StoredImageRef;
use crate::outputs::OutputView;

/// A run's outcome with its images stored.
pub struct Executed {
    pub outcome: ExecOutcome,
    pub images: Vec<StoredImageRef>,
    pub outputs: Vec<OutputView>,
}

impl Executed {
    /// A run that never produced output: a failed dependency environment, a call
    /// cancelled before it started, a task interrupted by a restart.
    pub fn failed(error: ExecError) -> Self {
        Executed {
            outcome: ExecOutcome {
                error: Some(error),
                ..ExecOutcome::default()
            },
            images: Vec::new(),
            outputs: Vec::new(),
        }
    }

    /// A call that was cancelled (by `terminate`, `DELETE /tasks/{id}` or shutdown)
    /// before its code started.
    pub fn cancelled(message: &str) -> Self {
        Executed::failed(ExecError::new(ErrorKind::Killed, message))
    }
}

/// What a run produced. A failure of the user's code is `success: false` with `error`
/// set, answered with HTTP 200; failures of runbox itself are 5xx instead.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ResultObject {
    pub success: bool,
    /// The value of the trailing expression (or of the global `result`), or a function's
    /// return value: JSON when it can be encoded, else its `repr()`; null when none.
    pub value: Value,
    pub error: Option<ExecError>,
    /// Capped at `limits.output_bytes` (`truncated` tells).
    pub stdout: String,
    /// Capped at `limits.output_bytes` (`truncated` tells).
    pub stderr: String,
    /// Null when the process did not exit by itself (timeout, kill).
    pub exit_code: Option<i64>,
    /// Image files the code wrote into its working directory, stored and served by URL.
    pub images: Vec<StoredImageRef>,
    /// The run's notebook outputs in the order they were made: figures shown or left
    /// open, objects displayed, the value's rich representation.
    #[serde(default)]
    pub outputs: Vec<OutputView>,
    /// stdout or stderr was cut.
    pub truncated: bool,
    /// Seconds.
    pub execution_time: f64,
    /// The task this result belongs to (async calls), else null.
    pub task_id: Option<String>,
}

impl ResultObject {
    pub fn from_executed(executed: Executed) -> Self {
        let Executed {
            outcome,
            images,
            outputs,
        } = executed;
        ResultObject {
            success: outcome.error.is_none(),
            value: outcome.value.unwrap_or(Value::Null),
            error: outcome.error,
            stdout: outcome.stdout,
            stderr: outcome.stderr,
            exit_code: outcome.exit_code,
            images,
            outputs,
            truncated: outcome.truncated,
            execution_time: outcome.execution_time.as_secs_f64(),
            task_id: None,
        }
    }

    /// A run that never produced output: a failed dependency environment, a call
    /// cancelled before it started, a task interrupted by a restart.
    pub fn from_error(error: ExecError) -> Self {
        ResultObject::from_executed(Executed::failed(error))
    }
}
