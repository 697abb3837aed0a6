//! The result object of the native surface (API.md), shared by /execute, function calls,
//! tasks and sessions.

use runbox_core::{ExecError, ExecOutcome};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::execution::{Executed, StoredImageRef};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ResultObject {
    pub success: bool,
    /// The value of the trailing expression (or of `result`), or a function's return.
    pub value: Value,
    pub error: Option<ExecError>,
    pub stdout: String,
    pub stderr: String,
    pub exit_code: Option<i64>,
    pub images: Vec<StoredImageRef>,
    pub truncated: bool,
    /// Seconds.
    pub execution_time: f64,
    pub task_id: Option<String>,
}

impl ResultObject {
    pub fn from_executed(executed: Executed) -> Self {
        let Executed { outcome, images } = executed;
        ResultObject {
            success: outcome.error.is_none(),
            value: outcome.value.unwrap_or(Value::Null),
            error: outcome.error,
            stdout: outcome.stdout,
            stderr: outcome.stderr,
            exit_code: outcome.exit_code,
            images,
            truncated: outcome.truncated,
            execution_time: outcome.execution_time.as_secs_f64(),
            task_id: None,
        }
    }

    /// A run that never produced output: a failed dependency environment, a call
    /// cancelled before it started, a task interrupted by a restart.
    pub fn from_error(error: ExecError) -> Self {
        ResultObject::from_executed(Executed {
            outcome: ExecOutcome {
                error: Some(error),
                ..ExecOutcome::default()
            },
            images: Vec::new(),
        })
    }
}
