//! Schemas of bodies that no Rust type of runbox parses or renders, described here for
//! `/openapi.json`: request bodies read by hand-written parsers (so that each mistake
//! gets the exact message API.md gives it: the compatibility `/runcode`, function
//! definitions and calls, whose 422s name the field and argument at fault), and the
//! framing of server-sent events, which axum writes. Every response body is the type
//! that renders it.

#![allow(dead_code)] // The fields are read by the derives, not by code.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

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

/// One server-sent event of a streamed run. `data` is JSON: a `StreamOutputEvent` for
/// `stdout` and `stderr` (as the code writes), an `OutputView` for each `display` (as
/// the code shows it), a `StoredImageRef` for each `image`, the
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
    Display,
    Image,
    Result,
    Error,
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

/// The language of a session.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SessionLanguage {
    Python,
}
