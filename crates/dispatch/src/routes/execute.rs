//! `POST /execute`: ad-hoc code in a fresh sandbox (or in a session when the body names
//! one), answered with the result object or streamed as server-sent events; or, with
//! the `{"name", "args"}` shape, a call of a stored function.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::Extension;
use runbox_core::Language;
use runbox_runtime::functions::CallRequest;
use runbox_runtime::metrics::Surface;
use runbox_runtime::result::ResultObject;
use runbox_runtime::Job;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::auth::Principal;
use crate::error::ApiResult;
use crate::exec_body::ExecBody;
use crate::openapi::{
    BadRequest, Conflict, Forbidden, FunctionRejected, Gone, NotFound, OverConcurrency, Overloaded,
    PayloadTooLarge, StreamEvent, Unavailable,
};
use crate::routes::functions::call_function;
use crate::routes::json::{from_object, json_object};
use crate::routes::sessions::run_in_session;
use crate::routes::stream::{self, wants_stream, OnDisconnect};
use crate::state::AppState;

/// The stored-function shape of the body: a synchronous call, exactly like
/// `POST /functions/{name}/call` (chosen when the body has `name` and no `code`).
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"name": "my_function", "args": {"count": 10}}))]
pub(crate) struct FunctionCallBody {
    /// The stored function.
    name: String,
    /// Its arguments by name; validated against its definition (422 `invalid_args`).
    #[serde(default)]
    args: Option<Map<String, Value>>,
}

// The handler tells the two shapes apart by their keys, so that each gets its own exact
// messages; this type only describes the choice.
/// The body of `POST /execute`: code to run, or a stored function to call.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub(crate) enum ExecuteBody {
    Code(ExecBody),
    Function(FunctionCallBody),
}

/// Run code, or call a stored function
///
/// Two shapes of body: code (`code`, with `language`, `context`, `timeout`, `files`,
/// `env`, `session_id`) runs in a fresh sandbox — or in the session `session_id` names;
/// `{"name", "args"}` (no `code`) calls a stored function synchronously, exactly like
/// `POST /functions/{name}/call`.
///
/// With `Accept: text/event-stream` or `"stream": true`, code runs as a stream of
/// server-sent events instead:
///
/// * `stdout`, `stderr`: `{"data": "…"}` (`StreamOutputEvent`), as the code writes;
/// * `display`: one `OutputView` per notebook output (a figure shown, `display(obj)`,
///   the value's rich representation), as it is made, in order with the output;
/// * `image`: one `StoredImageRef` per image the code wrote, after the run;
/// * `result`: the `ResultObject`, last;
/// * `error`: instead of `result` when runbox itself failed once the stream had begun
///   (`StreamErrorEvent`: the error body plus the `status` it would have had).
///
/// Overload is still answered 504 before the stream begins. Closing the stream cancels
/// a one-shot run (its sandbox is removed at once); a session's execution finishes.
#[utoipa::path(
    post,
    path = "/execute",
    tag = "execute",
    security(("bearer" = ["run"])),
    request_body(content = ExecuteBody, examples(
        ("code" = (summary = "Code with a context", value = json!({"code": "result = x + y", "context": {"x": 10, "y": 20}, "timeout": 5.0}))),
        ("bash" = (summary = "A bash script", value = json!({"code": "echo $GREETING", "language": "bash", "env": {"GREETING": "hi"}}))),
        ("function" = (summary = "A stored function", value = json!({"name": "my_function", "args": {"count": 10}}))),
    )),
    responses(
        (status = 200, description = "The result object; user-code failures are `success: false`.",
         content(
            (ResultObject = "application/json"),
            (StreamEvent = "text/event-stream", example = json!("event: stdout\ndata: {\"data\":\"hi\\n\"}\n\nevent: result\ndata: {\"success\":true,…}\n\n")),
         )),
        (status = 400, response = BadRequest),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 410, response = Gone),
        (status = 413, response = PayloadTooLarge),
        (status = 422, response = FunctionRejected),
        (status = 429, response = OverConcurrency),
        (status = 503, response = Unavailable),
        (status = 504, response = Overloaded),
    ),
)]
pub async fn post_execute(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let fields = json_object(body, false)?;
    if !fields.contains_key("code") && fields.contains_key("name") {
        let body: FunctionCallBody = from_object(fields)?;
        let call = CallRequest {
            args: body.args.unwrap_or_default(),
            ..CallRequest::default()
        };
        return call_function(&state, &principal, body.name, call).await;
    }
    let body: ExecBody = from_object(fields)?;
    let stream = wants_stream(&headers, body.stream);
    if let Some(session_id) = body.session_id.clone() {
        return run_in_session(state, &principal, &session_id, body, stream).await;
    }
    let request = body.into_request(&state.config, Language::Python)?;
    let job = Job::OneShot {
        surface: Surface::Execute,
        request,
    };
    let run = state.runtime.start(&principal, job).await?;
    stream::answer(run, stream, OnDisconnect::Cancel).await
}
