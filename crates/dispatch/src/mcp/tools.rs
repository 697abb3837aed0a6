//! The tools: which a caller sees (its scopes decide), their schemas, and calling them.
//! Code runs through the runtime's one way in (`Runtime::start`), like every surface's.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rmcp::model::{
    CallToolResult, ContentBlock, JsonObject, ProgressNotificationParam, ProgressToken, Tool,
};
use rmcp::{Peer, RoleServer};
use runbox_core::{ExecMode, ExecRequest, InputFile, Isolation, Language};
use runbox_runtime::functions::args::specs_from_stored;
use runbox_runtime::functions::{CallRequest, FunctionView};
use runbox_runtime::metrics::Surface;
use runbox_runtime::result::ResultObject;
use runbox_runtime::sessions::Session;
use runbox_runtime::{Job, RunEvent, Runtime, RuntimeError};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::content::tool_result;
use super::notebook::Notebook;
use super::schema;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::exec_body::{check_path, ExecBody, FileBody};

/// Names of the built-in tools; a stored function of one of these names is the tool
/// `function_<name>`.
const BUILT_IN: [&str; 6] = [
    "run_python",
    "run_bash",
    "create_session",
    "end_session",
    "upload_file",
    "download_file",
];

/// Progress messages carry at most this much of the output each.
const PROGRESS_TEXT: usize = 4096;

/// What a tool call has to work with.
pub struct Call<'a> {
    pub runtime: &'a Runtime,
    pub principal: &'a Principal,
    /// The MCP session's notebook; none with the sessionless protocol.
    pub notebook: Option<&'a Notebook>,
    /// Where to send progress, when the client asked for it.
    pub progress: Option<(ProgressToken, Peer<RoleServer>)>,
    /// How many progress notifications the call has sent.
    pub progress_sent: &'a AtomicU64,
    /// Fires when the client cancels the call.
    pub cancel: CancellationToken,
}

pub enum ToolError {
    Unknown,
    /// The tool ran into something the caller should read (a tool error result).
    Failed(String),
}

impl From<RuntimeError> for ToolError {
    fn from(err: RuntimeError) -> Self {
        ToolError::from(ApiError::from(err))
    }
}

impl From<ApiError> for ToolError {
    fn from(err: ApiError) -> Self {
        // The same words the HTTP API answers with, the details a 422 carries included.
        let body = err.body();
        let detail = match &err {
            ApiError::Rejected(rejection) => {
                let mut text = format!("{} ({})", rejection.message, rejection.kind);
                for (name, value) in [
                    ("argument", &rejection.argument),
                    ("field", &rejection.field),
                ] {
                    if let Some(value) = value {
                        text.push_str(&format!("; {name}: {value}"));
                    }
                }
                text
            }
            _ => body["error"]
                .as_str()
                .or_else(|| body["message"].as_str())
                .unwrap_or("failed")
                .to_string(),
        };
        ToolError::Failed(format!("{detail} [{}]", err.status().as_u16()))
    }
}

/// The tools `principal` may use: the code tools with `run`, a tool per stored function
/// with `functions:read`.
pub async fn visible(runtime: &Runtime, principal: &Principal) -> Result<Vec<Tool>, RuntimeError> {
    let mut tools = Vec::new();
    if principal.require("run").is_ok() {
        tools.extend(built_in());
    }
    if principal.require("functions:read").is_ok() {
        for function in runtime.functions().list().await? {
            tools.push(function_tool(&function));
        }
    }
    Ok(tools)
}

fn code_input(language: &str) -> Arc<JsonObject> {
    schema::object(json!({
        "type": "object",
        "properties": {
            "code": {"type": "string", "description": format!("The {language} code.")},
            "timeout": {"type": "number", "exclusiveMinimum": 0, "description": "Seconds (capped by the server's maximum)."},
            "files": {
                "type": "array",
                "description": "Files written into the working directory before the code runs.",
                "items": {
                    "type": "object",
                    "properties": {
                        "path": {"type": "string", "description": "Relative to the working directory."},
                        "content_base64": {"type": "string"}
                    },
                    "required": ["path", "content_base64"]
                }
            },
            "session_id": {"type": "string", "description": "Run in this session (from create_session)."},
            "stateless": {"type": "boolean", "description": "Run in a fresh sandbox, apart from this MCP session's state."}
        },
        "required": ["code"]
    }))
}

fn session_input(extra: Value, required: &[&str]) -> Arc<JsonObject> {
    let mut properties = json!({
        "session_id": {"type": "string", "description": "The session (from create_session); within an MCP session, its own by default."}
    });
    if let (Value::Object(all), Value::Object(more)) = (&mut properties, extra) {
        all.extend(more);
    }
    schema::object(json!({"type": "object", "properties": properties, "required": required}))
}

fn built_in() -> Vec<Tool> {
    let result = schema::result_object();
    let mut run_python = Tool::new(
        "run_python",
        "Run Python like a notebook cell: returns what it printed, the value of its last \
         expression, figures shown with plt.show() (as images), tables and other rich \
         outputs. Within an MCP session, variables, imports and files persist between calls.",
        code_input("Python"),
    );
    run_python.output_schema = Some(result.clone());
    let mut run_bash = Tool::new(
        "run_bash",
        "Run a bash script; within an MCP session (or with session_id) in that session's \
         working directory, next to its files; returns what it printed.",
        code_input("bash"),
    );
    run_bash.output_schema = Some(result);
    vec![
        run_python,
        run_bash,
        Tool::new(
            "create_session",
            "Start a Python session whose variables, imports and files persist; pass its \
             session_id to the other tools.",
            schema::object(json!({"type": "object", "properties": {}})),
        ),
        Tool::new(
            "end_session",
            "End a session and remove its sandbox.",
            session_input(json!({}), &["session_id"]),
        ),
        Tool::new(
            "upload_file",
            "Write a file into the session's working directory.",
            session_input(
                json!({
                    "path": {"type": "string", "description": "Relative to the working directory."},
                    "content_base64": {"type": "string", "description": "The content, base64."},
                    "text": {"type": "string", "description": "The content as text (instead of content_base64)."}
                }),
                &["path"],
            ),
        ),
        Tool::new(
            "download_file",
            "Read a file out of the session's working directory.",
            session_input(
                json!({"path": {"type": "string", "description": "Relative to the working directory."}}),
                &["path"],
            ),
        ),
    ]
}

fn function_tool(function: &FunctionView) -> Tool {
    let name = if BUILT_IN.contains(&function.name.as_str()) {
        format!("function_{}", function.name)
    } else {
        function.name.clone()
    };
    let description = if function.description.trim().is_empty() {
        format!("The stored function `{}`.", function.name)
    } else {
        function.description.clone()
    };
    let mut tool = Tool::new(
        name,
        description,
        schema::arguments(&specs_from_stored(&function.args)),
    );
    tool.output_schema = Some(schema::result_object());
    tool
}

pub async fn call(
    call: Call<'_>,
    name: &str,
    arguments: JsonObject,
) -> Result<CallToolResult, ToolError> {
    match name {
        "run_python" => run_code(call, Language::Python, arguments).await,
        "run_bash" => run_code(call, Language::Bash, arguments).await,
        "create_session" => create_session(call).await,
        "end_session" => end_session(call, arguments).await,
        "upload_file" => upload_file(call, arguments).await,
        "download_file" => download_file(call, arguments).await,
        other => call_function(call, other, arguments).await,
    }
}

fn parse<T: for<'de> Deserialize<'de>>(arguments: JsonObject) -> Result<T, ToolError> {
    serde_json::from_value(Value::Object(arguments))
        .map_err(|err| ToolError::Failed(format!("invalid arguments: {err}")))
}

#[derive(Deserialize)]
struct CodeArguments {
    code: String,
    #[serde(default)]
    timeout: Option<f64>,
    #[serde(default)]
    files: Option<Vec<FileBody>>,
    #[serde(default)]
    session_id: Option<String>,
    #[serde(default)]
    stateless: Option<bool>,
}

/// Where a call's code runs.
enum Place {
    Fresh,
    Session(Arc<Session>),
}

impl Call<'_> {
    /// The session a call names, else the MCP session's notebook when there is one.
    async fn session(&self, named: Option<&str>) -> Result<Option<Arc<Session>>, ToolError> {
        match (named, self.notebook) {
            (Some(id), _) => Ok(Some(self.runtime.session(self.principal, id)?)),
            (None, Some(notebook)) => Ok(Some(notebook.session(self.principal).await?)),
            (None, None) => Ok(None),
        }
    }

    async fn place(&self, arguments: &CodeArguments) -> Result<Place, ToolError> {
        let stateless = arguments.stateless == Some(true) || self.runtime.config().mcp.stateless;
        if stateless {
            return Ok(Place::Fresh);
        }
        Ok(match self.session(arguments.session_id.as_deref()).await? {
            Some(session) => Place::Session(session),
            None => Place::Fresh,
        })
    }

    /// Runs `job`, sending its output as progress when the client asked for it; stops
    /// it when the client cancels the call.
    async fn run(&self, job: Job) -> Result<ResultObject, ToolError> {
        let run = self.runtime.start(self.principal, job).await?;
        let (events, forwarding) = match &self.progress {
            Some((token, peer)) => {
                let (events, received) = mpsc::channel(64);
                (
                    Some(events),
                    Some(forward_progress(
                        received,
                        token.clone(),
                        peer.clone(),
                        self.progress_sent,
                    )),
                )
            }
            None => (None, None),
        };
        let finish = async {
            let executed = run.finish(events).await;
            executed.map(ResultObject::from_executed)
        };
        let forward = async {
            if let Some(forwarding) = forwarding {
                forwarding.await;
            }
        };
        tokio::select! {
            (result, ()) = async { tokio::join!(finish, forward) } => Ok(result?),
            () = self.cancel.cancelled() => Err(ToolError::Failed("the call was cancelled".into())),
        }
    }
}

async fn forward_progress(
    mut received: mpsc::Receiver<RunEvent>,
    token: ProgressToken,
    peer: Peer<RoleServer>,
    sent: &AtomicU64,
) {
    let mut step = 0.0;
    while let Some(event) = received.recv().await {
        let text = match event {
            RunEvent::Stdout(text) => text,
            RunEvent::Stderr(text) => format!("stderr: {text}"),
            RunEvent::Display(output) => format!("({} shown)", output.kind),
        };
        step += 1.0;
        let mut message = text;
        if message.len() > PROGRESS_TEXT {
            let mut cut = PROGRESS_TEXT;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
        }
        let mut progress = ProgressNotificationParam::new(token.clone(), step);
        progress.message = Some(message);
        // A client that stopped listening does not stop the run.
        if peer.notify_progress(progress).await.is_ok() {
            sent.fetch_add(1, Ordering::SeqCst);
        }
    }
}

async fn run_code(
    call: Call<'_>,
    language: Language,
    arguments: JsonObject,
) -> Result<CallToolResult, ToolError> {
    call.principal.require("run")?;
    let arguments: CodeArguments = parse(arguments)?;
    let place = call.place(&arguments).await?;
    let body = ExecBody {
        code: arguments.code,
        language: Some(language.as_str().to_string()),
        context: None,
        timeout: arguments.timeout,
        files: arguments.files,
        env: None,
        stream: None,
        session_id: None,
        isolation: None,
    };
    let request = body.into_request(call.runtime.config(), language)?;
    let job = match place {
        Place::Fresh => Job::OneShot {
            surface: Surface::Mcp,
            request,
        },
        Place::Session(session) => Job::InSession { session, request },
    };
    let result = call.run(job).await?;
    Ok(tool_result(call.runtime, &result).await)
}

async fn create_session(call: Call<'_>) -> Result<CallToolResult, ToolError> {
    call.principal.require("run")?;
    let session = call
        .runtime
        .open_session(call.principal, Language::Python, None, Isolation::Standard)
        .await?;
    let mut result =
        CallToolResult::structured(serde_json::to_value(&session).unwrap_or(Value::Null));
    result.content = vec![ContentBlock::text(format!(
        "session_id: {} (pass it to run_python, upload_file and download_file)",
        session.id
    ))];
    Ok(result)
}

#[derive(Deserialize)]
struct SessionArguments {
    session_id: String,
}

async fn end_session(call: Call<'_>, arguments: JsonObject) -> Result<CallToolResult, ToolError> {
    call.principal.require("run")?;
    let arguments: SessionArguments = parse(arguments)?;
    call.runtime
        .end_session(call.principal, &arguments.session_id)
        .await?;
    Ok(CallToolResult::success(vec![ContentBlock::text(format!(
        "session {} ended",
        arguments.session_id
    ))]))
}

#[derive(Deserialize)]
struct FileArguments {
    path: String,
    #[serde(default)]
    content_base64: Option<String>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    session_id: Option<String>,
}

/// The session a file tool works in: it needs one.
async fn file_session(call: &Call<'_>, named: Option<&str>) -> Result<Arc<Session>, ToolError> {
    call.session(named).await?.ok_or_else(|| {
        ToolError::Failed(
            "no session: call create_session and pass its session_id (or use an MCP session)"
                .into(),
        )
    })
}

async fn upload_file(call: Call<'_>, arguments: JsonObject) -> Result<CallToolResult, ToolError> {
    call.principal.require("run")?;
    let arguments: FileArguments = parse(arguments)?;
    check_path(&arguments.path).map_err(|why| ToolError::Failed(format!("path: {why}")))?;
    let content = match (arguments.content_base64, arguments.text) {
        (Some(encoded), None) => {
            use base64::Engine;
            let compact: String = encoded
                .chars()
                .filter(|c| !c.is_ascii_whitespace())
                .collect();
            base64::engine::general_purpose::STANDARD
                .decode(compact.as_bytes())
                .map_err(|err| ToolError::Failed(format!("content_base64: {err}")))?
        }
        (None, Some(text)) => text.into_bytes(),
        _ => {
            return Err(ToolError::Failed(
                "give exactly one of content_base64 and text".into(),
            ))
        }
    };
    let limit = call.runtime.config().limits.file_bytes.bytes();
    if content.len() as u64 > limit {
        return Err(ToolError::Failed(format!(
            "the file is larger than limits.file_bytes ({limit} bytes)"
        )));
    }
    let session = file_session(&call, arguments.session_id.as_deref()).await?;
    let bytes = content.len();
    let mut request = ExecRequest::new(
        Language::Python,
        "pass",
        call.runtime.config().default_timeout(),
    );
    request.files = vec![InputFile {
        path: arguments.path.clone(),
        content,
    }];
    let result = call.run(Job::InSession { session, request }).await?;
    if !result.success {
        return Ok(tool_result(call.runtime, &result).await);
    }
    Ok(CallToolResult::success(vec![ContentBlock::text(format!(
        "wrote {} ({bytes} bytes)",
        arguments.path
    ))]))
}

async fn download_file(call: Call<'_>, arguments: JsonObject) -> Result<CallToolResult, ToolError> {
    call.principal.require("run")?;
    let arguments: FileArguments = parse(arguments)?;
    check_path(&arguments.path).map_err(|why| ToolError::Failed(format!("path: {why}")))?;
    let session = file_session(&call, arguments.session_id.as_deref()).await?;
    // The path goes in as a string literal (JSON's escapes are Python's), so nothing of
    // it is code, and the session's globals are left as they were.
    let literal = serde_json::to_string(&arguments.path).unwrap_or_default();
    let code = format!(
        "(lambda p: __import__('base64').b64encode(open(p, 'rb').read()).decode())({literal})"
    );
    let mut request = ExecRequest::new(
        Language::Python,
        code,
        call.runtime.config().default_timeout(),
    );
    request.mode = ExecMode::Cell;
    let result = call.run(Job::InSession { session, request }).await?;
    let Some(encoded) = result
        .value
        .as_str()
        .filter(|_| result.success && !result.truncated)
    else {
        if result.truncated {
            return Err(ToolError::Failed(format!(
                "{} is too large to read here (over limits.output_bytes once encoded)",
                arguments.path
            )));
        }
        return Ok(tool_result(call.runtime, &result).await);
    };
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded.as_bytes())
        .unwrap_or_default();
    let mut structured = Map::new();
    structured.insert("path".into(), json!(arguments.path));
    structured.insert("bytes".into(), json!(bytes.len()));
    structured.insert("content_base64".into(), json!(encoded));
    let block = match String::from_utf8(bytes) {
        Ok(text) if !text.contains('\0') => ContentBlock::text(text),
        Ok(_) | Err(_) => match runbox_core::exec::image_mime(&arguments.path) {
            Some(mime) if mime != "image/svg+xml" => ContentBlock::image(encoded.to_string(), mime),
            _ => ContentBlock::text(format!(
                "{} is binary ({} bytes of base64 in the structured content)",
                arguments.path,
                encoded.len()
            )),
        },
    };
    let mut result = CallToolResult::structured(Value::Object(structured));
    result.content = vec![block];
    Ok(result)
}

async fn call_function(
    call: Call<'_>,
    tool: &str,
    arguments: JsonObject,
) -> Result<CallToolResult, ToolError> {
    if call.principal.require("functions:read").is_err() {
        return Err(ToolError::Unknown);
    }
    let function = tool
        .strip_prefix("function_")
        .filter(|name| BUILT_IN.contains(name))
        .unwrap_or(tool);
    let request = CallRequest::parse(json!({"args": Value::Object(arguments)}))?;
    let job = Job::Call {
        function: function.to_string(),
        call: request,
    };
    let result = match call.run(job).await {
        Err(ToolError::Failed(message)) if message.ends_with("[404]") => {
            return Err(ToolError::Unknown)
        }
        other => other?,
    };
    Ok(tool_result(call.runtime, &result).await)
}
