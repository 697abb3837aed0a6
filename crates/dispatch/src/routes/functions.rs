//! /functions and /submit: thin handlers over `crate::functions`.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use runbox_runtime::functions::{
    CallRequest, FunctionDeleted, FunctionView, Registration, TaskAccepted, Terminated,
};
use runbox_runtime::result::ResultObject;
use runbox_runtime::Job;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::openapi::{
    BadRequest, CallBody, Conflict, Forbidden, FunctionRegistration, FunctionRejected, NotFound,
    OverConcurrency, Overloaded, PayloadTooLarge, Unavailable,
};
use crate::routes::json::body_rejection;
use crate::state::AppState;

/// `GET /functions`.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FunctionList {
    pub functions: Vec<FunctionView>,
}

/// The body as JSON; an empty body is `null`.
pub(crate) fn json_body(body: Result<Bytes, BytesRejection>) -> ApiResult<Value> {
    let body = body.map_err(body_rejection)?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request_because("Invalid JSON", e.to_string()))
}

/// Store a new function
///
/// The definition is checked before it is stored: its dependencies are installed (once
/// per set, into a cached environment image), and its code is loaded in a sandbox of that
/// environment, where it must define a callable of the function's name whose signature
/// agrees with `args`. The answer waits for both.
#[utoipa::path(
    post,
    path = "/functions",
    operation_id = "create_function",
    tag = "functions",
    security(("bearer" = ["functions:write"])),
    request_body = FunctionRegistration,
    responses(
        (status = 201, body = FunctionView, description = "Stored as version 1."),
        (status = 400, response = BadRequest),
        (status = 403, response = Forbidden),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = 422, response = FunctionRejected),
        (status = 503, response = Unavailable),
        (status = 504, response = Overloaded),
    ),
)]
pub async fn create(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let body = json_body(body)?;
    register(&state, &principal, Registration::Create, body).await
}

async fn register(
    state: &AppState,
    principal: &Principal,
    registration: Registration,
    body: Value,
) -> ApiResult<Response> {
    let registered = state
        .runtime
        .functions()
        .register(principal, registration, body)
        .await?;
    let status = if registered.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(registered.function)).into_response())
}

/// Store a new function (alias)
///
/// The same as `POST /functions`.
#[utoipa::path(
    post,
    path = "/submit",
    operation_id = "submit_function",
    tag = "functions",
    security(("bearer" = ["functions:write"])),
    request_body = FunctionRegistration,
    responses(
        (status = 201, body = FunctionView, description = "Stored as version 1."),
        (status = 400, response = BadRequest),
        (status = 403, response = Forbidden),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = 422, response = FunctionRejected),
        (status = 503, response = Unavailable),
        (status = 504, response = Overloaded),
    ),
)]
pub async fn submit(
    state: State<AppState>,
    principal: Extension<Principal>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    create(state, principal, body).await
}

/// Store a new version of a function
///
/// Checked like `POST /functions`; older versions stay readable, calls use the latest.
#[utoipa::path(
    put,
    path = "/functions/{name}",
    operation_id = "put_function",
    tag = "functions",
    security(("bearer" = ["functions:write"])),
    params(("name" = String, Path, description = "The function's name")),
    request_body = FunctionRegistration,
    responses(
        (status = 200, body = FunctionView, description = "Stored as a new version."),
        (status = 201, body = FunctionView, description = "There was no function of that name: stored as version 1."),
        (status = 400, response = BadRequest),
        (status = 403, response = Forbidden),
        (status = 413, response = PayloadTooLarge),
        (status = 422, response = FunctionRejected),
        (status = 503, response = Unavailable),
        (status = 504, response = Overloaded),
    ),
)]
pub async fn put(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let body = json_body(body)?;
    register(&state, &principal, Registration::NewVersion { name }, body).await
}

/// List functions
///
/// The latest version of each, without code.
#[utoipa::path(
    get,
    path = "/functions",
    operation_id = "list_functions",
    tag = "functions",
    security(("bearer" = ["functions:read"])),
    responses(
        (status = 200, body = FunctionList),
        (status = 403, response = Forbidden),
    ),
)]
pub async fn list(State(state): State<AppState>) -> ApiResult<Json<FunctionList>> {
    let functions = state.runtime.functions().list().await?;
    Ok(Json(FunctionList { functions }))
}

/// Show a function
///
/// The latest definition with its environment, the calls running now and every version.
#[utoipa::path(
    get,
    path = "/functions/{name}",
    operation_id = "get_function",
    tag = "functions",
    security(("bearer" = ["functions:read"])),
    params(("name" = String, Path, description = "The function's name")),
    responses(
        (status = 200, body = FunctionView),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
    ),
)]
pub async fn get(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<FunctionView>> {
    Ok(Json(state.runtime.functions().get(&name).await?))
}

/// Show one version of a function
#[utoipa::path(
    get,
    path = "/functions/{name}/versions/{version}",
    operation_id = "get_function_version",
    tag = "functions",
    security(("bearer" = ["functions:read"])),
    params(
        ("name" = String, Path, description = "The function's name"),
        ("version" = i64, Path, description = "1, 2, …", minimum = 1),
    ),
    responses(
        (status = 200, body = FunctionView),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
    ),
)]
pub async fn get_version(
    State(state): State<AppState>,
    Path((name, version)): Path<(String, String)>,
) -> ApiResult<Json<FunctionView>> {
    let version = version
        .parse::<i64>()
        .map_err(|_| ApiError::NotFound(format!("function `{name}` has no version {version}")))?;
    Ok(Json(
        state.runtime.functions().version(&name, version).await?,
    ))
}

/// Delete a function
///
/// Every version goes; calls already running finish.
#[utoipa::path(
    delete,
    path = "/functions/{name}",
    operation_id = "delete_function",
    tag = "functions",
    security(("bearer" = ["functions:write"])),
    params(("name" = String, Path, description = "The function's name")),
    responses(
        (status = 200, body = FunctionDeleted),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
    ),
)]
pub async fn delete(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<FunctionDeleted>> {
    Ok(Json(state.runtime.functions().delete(&name).await?))
}

/// Call a function
///
/// Arguments are validated and a concurrency slot is taken before any sandbox starts.
/// The function runs in a fresh sandbox of its environment under its own timeout. With
/// `"async": true` the call becomes a task (`GET /tasks/{id}`).
#[utoipa::path(
    post,
    path = "/functions/{name}/call",
    operation_id = "call_function",
    tag = "functions",
    security(("bearer" = ["run"])),
    params(("name" = String, Path, description = "The function's name")),
    request_body(content = Option<CallBody>, description = "May be empty: no arguments."),
    responses(
        (status = 200, body = ResultObject, description = "The call ran; its return value is `value`."),
        (status = 202, body = TaskAccepted, description = "`async`: the task is queued."),
        (status = 400, response = BadRequest),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 413, response = PayloadTooLarge),
        (status = 422, response = FunctionRejected),
        (status = 429, response = OverConcurrency),
        (status = 503, response = Unavailable),
        (status = 504, response = Overloaded),
    ),
)]
pub async fn call(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let call = CallRequest::parse(json_body(body)?)?;
    call_function(&state, &principal, name, call).await
}

/// A call of a stored function (also `POST /execute` with a name): 200 with the result
/// object, or 202 with a task id for `async`.
pub(crate) async fn call_function(
    state: &AppState,
    principal: &Principal,
    function: String,
    call: CallRequest,
) -> ApiResult<Response> {
    if call.asynchronous {
        let accepted = state
            .runtime
            .functions()
            .enqueue(principal, &function, &call)
            .await?;
        return Ok((StatusCode::ACCEPTED, Json(accepted)).into_response());
    }
    let run = state
        .runtime
        .start(principal, Job::Call { function, call })
        .await?;
    let executed = run.finish(None).await?;
    Ok(Json(ResultObject::from_executed(executed)).into_response())
}

/// Terminate a function's calls
///
/// Ends every call of the function running in this server (sync calls answer a `killed`
/// result, tasks end CANCELLED) and waits until their sandboxes are gone.
#[utoipa::path(
    post,
    path = "/functions/{name}/terminate",
    operation_id = "terminate_function",
    tag = "functions",
    security(("bearer" = ["functions:write"])),
    params(("name" = String, Path, description = "The function's name")),
    responses(
        (status = 200, body = Terminated),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
    ),
)]
pub async fn terminate(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<Terminated>> {
    Ok(Json(state.runtime.functions().terminate(&name).await?))
}
