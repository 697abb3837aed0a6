//! Schemas of bodies that the handlers read or write as plain JSON rather than through a
//! typed struct: compatibility bodies whose exact error messages need a hand-written
//! parser, function definitions and tasks (built with `json!`), health, and the error
//! bodies of `ApiError`. They describe; they are never used to parse or render. The
//! tests below hold the `json!` builders to them (`deny_unknown_fields`, required fields).

#![allow(dead_code)] // The fields are read by the derives, not by code.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::functions::EnvironmentView;
use runbox_runtime::functions::args::ArgSpec;
use runbox_runtime::result::ResultObject;
use runbox_runtime::sessions::SessionInfo;

/// The error body of runbox's own failures (`ApiError`).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorBody {
    /// The message; for the compatibility messages exactly as API.md gives them.
    pub error: String,
    /// What exactly was wrong (400 `Invalid JSON`, `Invalid parameters`).
    #[serde(default)]
    pub detail: Option<String>,
    /// The request field at fault (`timeout`, `files[0].path`, `context.x`).
    #[serde(default)]
    pub field: Option<String>,
}

/// 403: the token lacks a scope.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScopeErrorBody {
    #[schema(example = "Insufficient scope")]
    pub error: String,
    /// The scope the operation needs.
    #[schema(example = "run")]
    pub required: String,
}

/// 422 of the functions surface.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FunctionRejection {
    /// Always false.
    pub success: bool,
    pub error: RejectionDetail,
}

#[derive(Deserialize, ToSchema)]
pub struct RejectionDetail {
    /// `invalid_definition`, `invalid_args`, `dependency`, or how the code's check failed
    /// (`syntax`, `runtime`, `timeout`, …).
    pub kind: String,
    pub message: String,
    /// The field of the definition at fault.
    #[serde(default)]
    pub field: Option<String>,
    /// The argument at fault.
    #[serde(default)]
    pub argument: Option<String>,
    /// pip's output, for `dependency`.
    #[serde(default)]
    pub log: Option<String>,
    #[serde(default)]
    pub traceback: Option<String>,
    #[serde(default)]
    pub stderr: Option<String>,
}

/// 429 of a function call at its `max_concurrency` (the body API.md fixes).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OverConcurrencyBody {
    /// Always false.
    pub success: bool,
    #[schema(example = "Over Max Concurrency 4")]
    pub message: String,
    /// Always empty.
    pub task_id: String,
}

/// 429 when opening one session too many.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TooManySessionsBody {
    pub error: String,
    pub max_per_subject: u64,
}

/// 429 of the rate limit (`rate_limit.per_minute` requests a minute per token subject).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimitBody {
    #[schema(example = "Rate limit exceeded")]
    pub error: String,
    /// Seconds until the next request is allowed (also in `Retry-After`).
    pub retry_after: u64,
}

/// The body of `POST /runcode` (the original API's).
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"languageType": "python", "variables": {"n": 3}, "code": "print(n * 2)"}))]
pub struct RuncodeBody {
    /// `python` (default) or `bash`; anything else answers 200
    /// `{"error": "Unsupported language"}`.
    #[serde(rename = "languageType", default)]
    pub language_type: Option<String>,
    /// Globals for python, environment variables for bash (values stringified); must be
    /// an object (400 `Invalid variables format`).
    #[serde(default)]
    pub variables: Option<Map<String, Value>>,
    /// The code; when it contains a fenced block (```` ```python ````), only the first
    /// fenced block runs.
    pub code: String,
}

/// The answer of `/runcode`: what the code printed, or what went wrong.
#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
pub enum RuncodeAnswer {
    Output(RuncodeOutput),
    Error(RuncodeError),
}

/// The code ran without writing to stderr.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuncodeOutput {
    /// stdout.
    pub output: String,
    /// Image files the code wrote, by file name: their URLs.
    #[serde(default)]
    pub images: Option<BTreeMap<String, String>>,
}

/// stderr (any output there counts), `Code execution timed out`, `Unsupported language`,
/// or why the run failed.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuncodeError {
    pub error: String,
}

/// The body of `POST /execute`: code to run, or a stored function to call.
#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
pub enum ExecuteBody {
    Code(crate::routes::ExecBody),
    Function(crate::routes::FunctionCallBody),
}

/// One server-sent event of a streamed run. `data` is JSON: a `StreamOutputEvent` for
/// `stdout` and `stderr` (as the code writes), a `StoredImageRef` for each `image`, the
/// `ResultObject` for `result` (the last event), or a `StreamErrorEvent` for `error`
/// (instead of `result`, when runbox itself failed once the stream had begun). Comment
/// lines keep the connection alive while the code is silent.
#[derive(Deserialize, ToSchema)]
pub struct StreamEvent {
    pub event: StreamEventName,
    #[schema(content_media_type = "application/json")]
    pub data: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum StreamEventName {
    Stdout,
    Stderr,
    Image,
    Result,
    Error,
}

/// `stdout` and `stderr` events of a stream: output as the code writes it.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StreamOutputEvent {
    pub data: String,
}

/// The `error` event: runbox itself failed after the stream had begun. The error body
/// with the status the request would have had.
#[derive(Deserialize, ToSchema)]
pub struct StreamErrorEvent {
    pub error: String,
    pub status: u16,
}

/// A function definition, as `POST /functions` and `PUT /functions/{name}` take it.
/// Unknown fields are refused (422).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "name": "add",
    "code": "def add(x: int, y: int = 1):\n    return x + y\n",
    "description": "Adds two numbers",
    "args": {"x": "int", "y": {"type": "int", "required": false, "default": 1}},
    "max_concurrency": 4,
    "timeout": 30
}))]
pub struct FunctionRegistration {
    /// A Python identifier (at most 100 characters) that the code defines as a callable;
    /// with PUT, optional and equal to the path's name.
    #[serde(default)]
    pub name: Option<String>,
    /// Python source, at most 1 MiB; checked in a sandbox before it is stored.
    pub code: String,
    #[serde(default)]
    pub description: Option<String>,
    /// pip requirements (`pandas==2.2.*`), installed once into a cached environment image
    /// keyed by the sorted set; at most 100, no pip options.
    #[serde(default)]
    pub dependencies: Option<Vec<String>>,
    /// The arguments: `{"count": "int"}` or a list of specs; when absent, the signature
    /// of the callable decides.
    #[serde(default)]
    pub args: Option<ArgsDeclaration>,
    /// Calls running at once; one more answers 429.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 1000000)]
    pub max_concurrency: Option<i64>,
    /// Seconds a call may run (capped by `limits.max_timeout`).
    #[serde(default)]
    #[schema(exclusive_minimum = 0, maximum = 86400)]
    pub timeout: Option<f64>,
}

/// Either argument names to types (or to specs), or a list of specs.
#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
pub enum ArgsDeclaration {
    ByName(BTreeMap<String, ArgDeclaration>),
    List(Vec<ArgSpecInput>),
}

#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
pub enum ArgDeclaration {
    /// `int`, `float`, `str`, `bool`, `list`, `dict` or `any`.
    Type(String),
    Spec(ArgSpecInput),
}

/// One argument as a definition declares it.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ArgSpecInput {
    /// Required in the list form; in the by-name form, equal to the key when given.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub required: Option<bool>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub default: Option<Value>,
}

/// A stored function. `code` is left out of lists; `env` and `running` are shown for
/// the latest version, `versions` by `GET /functions/{name}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Function {
    pub name: String,
    pub version: i64,
    pub description: String,
    #[serde(default)]
    pub code: Option<String>,
    /// Normalised pip requirements.
    pub dependencies: Vec<String>,
    #[schema(value_type = Vec<ArgSpec>)]
    pub args: Vec<Value>,
    #[schema(required = true)]
    pub max_concurrency: Option<i64>,
    /// Seconds.
    #[schema(required = true)]
    pub timeout: Option<f64>,
    pub created_at: DateTime<Utc>,
    /// The token subject that stored this version.
    pub created_by: String,
    /// The dependency environment.
    #[serde(default)]
    #[schema(value_type = Option<EnvironmentView>)]
    pub env: Option<Value>,
    /// Calls running now in this server.
    #[serde(default)]
    pub running: Option<u64>,
    /// Every version, oldest first.
    #[serde(default)]
    pub versions: Option<Vec<FunctionVersionSummary>>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FunctionVersionSummary {
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    pub description: String,
    pub dependencies: Vec<String>,
}

/// `GET /functions`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FunctionList {
    pub functions: Vec<Function>,
}

/// `DELETE /functions/{name}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FunctionDeleted {
    /// The function's name.
    pub deleted: String,
    /// How many versions went.
    pub versions: u64,
}

/// The body of `POST /functions/{name}/call`; may be empty (no arguments). Unknown
/// fields are refused (422).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"args": {"count": 10}, "async": false}))]
pub struct CallBody {
    /// Arguments by name, validated against the definition before any sandbox starts.
    #[serde(default)]
    pub args: Option<Map<String, Value>>,
    /// Answer 202 with a task id at once (needs the `tasks` scope too).
    #[serde(rename = "async", default)]
    pub asynchronous: Option<bool>,
    /// Call this version instead of the latest.
    #[serde(default)]
    #[schema(minimum = 1)]
    pub version: Option<i64>,
}

/// 202 of an async call.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskAccepted {
    /// Always true.
    pub success: bool,
    /// Always empty.
    pub message: String,
    pub task_id: String,
}

/// `POST /functions/{name}/terminate`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Terminated {
    pub success: bool,
    /// Calls ended (sync calls answer a `killed` result; tasks end CANCELLED).
    pub terminated: u64,
    pub task_ids: Vec<String>,
}

/// The state of a task.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum TaskStatus {
    Queued,
    Running,
    Done,
    Failed,
    Timeout,
    Cancelled,
}

/// An async call. `args` and `result` are shown for one task, not in lists.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Task {
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
    #[serde(default)]
    pub args: Option<Map<String, Value>>,
    /// The result object once the task has ended (null before, or when none was recorded).
    #[serde(default)]
    pub result: Option<ResultObject>,
}

/// `GET /tasks`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskList {
    /// Newest first.
    pub tasks: Vec<Task>,
}

/// `GET /sessions`.
#[derive(ToSchema)]
pub struct SessionList {
    /// The caller's sessions, oldest first (ended ones included while they answer 410).
    pub sessions: Vec<SessionInfo>,
}

/// `DELETE /sessions/{id}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionDeleted {
    pub id: String,
    /// Always true.
    pub deleted: bool,
}

/// The language of a session.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SessionLanguage {
    Python,
}

/// `GET /health`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Health {
    /// `ok`, or `degraded` (answered with 503) when Docker or the database is not answering.
    #[schema(pattern = "^(ok|degraded)$")]
    pub status: String,
    pub docker: DockerHealth,
    pub database: DatabaseHealth,
    pub pool: PoolHealth,
    pub runtime: RuntimeHealth,
    /// Host ports leased to sandboxes (http transport).
    pub port_leases: u64,
    /// Runs executing now.
    pub running: u64,
    /// Live sessions.
    pub sessions: u64,
    /// The sandbox image.
    pub image: String,
    pub version: String,
    pub builds: BuildsHealth,
}

/// Dependency environments.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BuildsHealth {
    /// The Docker engine's last failure to build an environment (answered 503 to its
    /// registration or call), until a build works again; `null` when there is none.
    #[schema(required = true)]
    pub engine_failure: Option<EngineFailureHealth>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EngineFailureHealth {
    pub message: String,
    /// When it happened (RFC 3339).
    pub at: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DockerHealth {
    pub reachable: bool,
    #[schema(required = true)]
    pub version: Option<String>,
    #[schema(required = true)]
    pub api_version: Option<String>,
    #[schema(required = true)]
    pub error: Option<String>,
}

/// The OCI runtime of the sandboxes (`sandbox.runtime`).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuntimeHealth {
    /// `default`, or the configured runtime (e.g. `runsc`).
    pub name: String,
    /// Whether the engine has the configured runtime (null when it did not say in time);
    /// absent for the default runtime. `false` makes the status `degraded`.
    #[serde(default)]
    pub installed: Option<bool>,
    /// The runtimes the engine has; absent for the default runtime.
    #[serde(default)]
    pub known: Option<Vec<String>>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DatabaseHealth {
    pub ok: bool,
    /// `sqlite` or `postgres`.
    pub backend: String,
    #[schema(required = true)]
    pub error: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PoolHealth {
    /// Warm sandboxes ready, over every pool.
    pub ready: u64,
    pub target: u64,
    /// Sandboxes running code now.
    pub in_use: u64,
    /// Containers this server owns now: pooled, running, starting or being removed.
    pub live_containers: u64,
    pub pools: Vec<PoolState>,
}

/// One warm pool (one per image).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PoolState {
    pub image: String,
    pub ready: u64,
    /// Ready sandboxes that have the configured modules (`sandbox.preload`) imported.
    pub preloaded: u64,
    pub target: u64,
    pub starting: u64,
    /// In the last few seconds a request found the pool empty, or took its last sandbox
    /// while another was in use; refills skip the preload until the pressure is over.
    pub under_pressure: bool,
    /// The last refill failure while the pool is failing.
    #[schema(required = true)]
    pub last_error: Option<String>,
}
