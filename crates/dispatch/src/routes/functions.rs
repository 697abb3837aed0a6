//! /functions and /submit: thin handlers over `crate::functions`.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::Extension;
use serde_json::Value;

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::functions::{self, CallRequest, Registration};
use crate::routes::body_rejection;
use crate::state::AppState;

/// The body as JSON; an empty body is `null`.
pub(crate) fn json_body(body: Result<Bytes, BytesRejection>) -> ApiResult<Value> {
    let body = body.map_err(body_rejection)?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request_because("Invalid JSON", e.to_string()))
}

/// POST /functions and POST /submit.
pub async fn create(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    principal.require("functions:write")?;
    let body = json_body(body)?;
    functions::register(&state, &principal, Registration::Create, body).await
}

/// PUT /functions/{name}.
pub async fn put(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    principal.require("functions:write")?;
    let body = json_body(body)?;
    functions::register(&state, &principal, Registration::NewVersion { name }, body).await
}

pub async fn list(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> ApiResult<Response> {
    principal.require("functions:read")?;
    functions::list_functions(&state).await
}

pub async fn get(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    principal.require("functions:read")?;
    functions::get_function(&state, &name).await
}

pub async fn get_version(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path((name, version)): Path<(String, String)>,
) -> ApiResult<Response> {
    principal.require("functions:read")?;
    let version = version
        .parse::<i64>()
        .map_err(|_| ApiError::NotFound(format!("function `{name}` has no version {version}")))?;
    functions::get_function_version(&state, &name, version).await
}

pub async fn delete(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    principal.require("functions:write")?;
    functions::delete_function(&state, &name).await
}

/// POST /functions/{name}/call.
pub async fn call(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    principal.require("run")?;
    let request = CallRequest::parse(json_body(body)?)?;
    functions::call_function(&state, &principal, &name, request).await
}

/// POST /functions/{name}/terminate.
pub async fn terminate(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    principal.require("functions:write")?;
    functions::terminate_function(&state, &name).await
}
