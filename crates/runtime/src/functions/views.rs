//! Stored functions and tasks as every surface shows them: these are serialised as they
//! are, and their schemas are what `/openapi.json` describes.

use chrono::{DateTime, Utc};
use runbox_store::{FunctionVersion, TaskRecord};
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::args::ArgSpec;
use super::environments::EnvironmentView;
#[allow(unused_imports)] // Named by a schema attribute only.
use crate::result::ResultObject;

/// A stored function. `code` is left out of lists; `env` and `running` are shown for
/// the latest version, `versions` by `GET /functions/{name}`.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Function)]
pub struct FunctionView {
    pub name: String,
    pub version: i64,
    pub description: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Normalised pip requirements.
    pub dependencies: Vec<String>,
    #[schema(value_type = Vec<ArgSpec>)]
    pub args: Value,
    #[schema(required = true)]
    pub max_concurrency: Option<i64>,
    /// Seconds.
    #[schema(required = true)]
    pub timeout: Option<f64>,
    pub created_at: DateTime<Utc>,
    /// The token subject that stored this version.
    pub created_by: String,
    /// The dependency environment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env: Option<EnvironmentView>,
    /// Calls running now in this server.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub running: Option<u64>,
    /// Every version, oldest first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub versions: Option<Vec<FunctionVersionSummary>>,
    /// The isolation its calls run under: `standard`, `strong`, or an OCI runtime.
    pub isolation: String,
}

impl FunctionView {
    /// The stored definition, code included, without what only the latest version
    /// shows.
    pub(crate) fn definition(function: &FunctionVersion) -> Self {
        FunctionView {
            name: function.name.clone(),
            version: function.version,
            description: function.description.clone(),
            code: Some(function.code.clone()),
            dependencies: function.dependencies.clone(),
            args: function.args.clone(),
            max_concurrency: function.max_concurrency,
            timeout: function.timeout_ms.map(|ms| ms as f64 / 1000.0),
            created_at: function.created_at,
            created_by: function.created_by.clone(),
            env: None,
            running: None,
            versions: None,
            isolation: function.isolation.clone(),
        }
    }
}

#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FunctionVersionSummary {
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    pub description: String,
    pub dependencies: Vec<String>,
}

impl FunctionVersionSummary {
    pub(crate) fn of(function: &FunctionVersion) -> Self {
        FunctionVersionSummary {
            version: function.version,
            created_at: function.created_at,
            created_by: function.created_by.clone(),
            description: function.description.clone(),
            dependencies: function.dependencies.clone(),
        }
    }
}

/// A stored definition and whether it made a new function (rather than a version).
pub struct Registered {
    pub function: FunctionView,
    pub created: bool,
}

/// `DELETE /functions/{name}`.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FunctionDeleted {
    /// The function's name.
    pub deleted: String,
    /// How many versions went.
    pub versions: u64,
}

/// 202 of an async call.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskAccepted {
    /// Always true.
    pub success: bool,
    /// Always empty.
    pub message: String,
    pub task_id: String,
}

/// `POST /functions/{name}/terminate`.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Terminated {
    pub success: bool,
    /// Calls ended (sync calls answer a `killed` result; tasks end CANCELLED).
    pub terminated: u64,
    pub task_ids: Vec<String>,
}

/// The state of a task.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum TaskStatus {
    Queued,
    Running,
    Done,
    Failed,
    Timeout,
    Cancelled,
}

impl TaskStatus {
    /// Any letter case.
    pub fn parse(text: &str) -> Option<Self> {
        runbox_store::TaskStatus::parse(text).map(Into::into)
    }

    /// Every status, for messages.
    pub fn names() -> Vec<&'static str> {
        runbox_store::TaskStatus::ALL
            .map(runbox_store::TaskStatus::as_str)
            .to_vec()
    }

    pub fn as_str(self) -> &'static str {
        runbox_store::TaskStatus::from(self).as_str()
    }
}

impl From<runbox_store::TaskStatus> for TaskStatus {
    fn from(status: runbox_store::TaskStatus) -> Self {
        use runbox_store::TaskStatus as Stored;
        match status {
            Stored::Queued => TaskStatus::Queued,
            Stored::Running => TaskStatus::Running,
            Stored::Done => TaskStatus::Done,
            Stored::Failed => TaskStatus::Failed,
            Stored::Timeout => TaskStatus::Timeout,
            Stored::Cancelled => TaskStatus::Cancelled,
        }
    }
}

impl From<TaskStatus> for runbox_store::TaskStatus {
    fn from(status: TaskStatus) -> Self {
        use runbox_store::TaskStatus as Stored;
        match status {
            TaskStatus::Queued => Stored::Queued,
            TaskStatus::Running => Stored::Running,
            TaskStatus::Done => Stored::Done,
            TaskStatus::Failed => Stored::Failed,
            TaskStatus::Timeout => Stored::Timeout,
            TaskStatus::Cancelled => Stored::Cancelled,
        }
    }
}

/// An async call. `args` and `result` are shown for one task, not in lists.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Task)]
pub struct TaskView {
    pub task_id: String,
    pub function_name: String,
    pub function_version: i64,
    pub status: TaskStatus,
    /// Why it did not end DONE: `interrupted` (the server stopped), `cancelled`,
    /// `timeout`, an error kind, or `error: …` for a failure of runbox.
    #[schema(required = true)]
    pub reason: Option<String>,
    pub created_at: DateTime<Utc>,
    #[schema(required = true)]
    pub started_at: Option<DateTime<Utc>>,
    #[schema(required = true)]
    pub finished_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub args: Option<Map<String, Value>>,
    /// The result object once the task has ended (null before, or when none was recorded).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<ResultObject>)]
    pub result: Option<Value>,
}

impl TaskView {
    /// As lists show it.
    pub(crate) fn summary(task: &TaskRecord) -> Self {
        TaskView {
            task_id: task.id.clone(),
            function_name: task.function_name.clone(),
            function_version: task.function_version,
            status: task.status.into(),
            reason: task.reason.clone(),
            created_at: task.created_at,
            started_at: task.started_at,
            finished_at: task.finished_at,
            args: None,
            result: None,
        }
    }

    /// As one task is shown: with its args and its result (null until it has one).
    pub(crate) fn with_result(task: &TaskRecord) -> Self {
        TaskView {
            args: Some(match &task.args {
                Value::Object(args) => args.clone(),
                _ => Map::new(),
            }),
            result: Some(task.result.clone().unwrap_or(Value::Null)),
            ..TaskView::summary(task)
        }
    }
}
