//! /tasks: the async calls of stored functions, as the runtime keeps them.

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use runbox_runtime::functions::{TaskQuery, TaskResult, TaskStatus, TaskView, MAX_RESULT_WAIT};
use runbox_runtime::result::ResultObject;
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::openapi::{BadRequest, Conflict, Forbidden, NotFound};
use crate::state::AppState;

/// `GET /tasks`.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskList {
    /// Newest first.
    pub tasks: Vec<TaskView>,
}

type Params = Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>;

fn params(query: Params) -> ApiResult<HashMap<String, String>> {
    query
        .map(|Query(params)| params)
        .map_err(|e| ApiError::bad_request_because("Invalid parameters", e.body_text()))
}

/// List tasks
///
/// The caller's tasks (everybody's for an `admin` token), newest first, without args and
/// results.
#[utoipa::path(
    get,
    path = "/tasks",
    operation_id = "list_tasks",
    tag = "tasks",
    security(("bearer" = ["tasks"])),
    params(
        ("function" = Option<String>, Query, description = "Only this function's tasks"),
        ("status" = Option<TaskStatus>, Query, description = "Only tasks in this state (any letter case)"),
        ("limit" = Option<i64>, Query, description = "At most this many (default 100, at most 1000)", minimum = 1),
    ),
    responses(
        (status = 200, body = TaskList),
        (status = 400, response = BadRequest),
        (status = 403, response = Forbidden),
    ),
)]
pub async fn list(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    query: Params,
) -> ApiResult<Json<TaskList>> {
    let mut params = params(query)?;
    let status = match params
        .get("status")
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
    {
        None => None,
        Some(text) => Some(TaskStatus::parse(text).ok_or_else(|| {
            ApiError::bad_request_because(
                "Invalid parameters",
                format!(
                    "status `{text}` is not one of {}",
                    TaskStatus::names().join(", ")
                ),
            )
        })?),
    };
    let limit = match params
        .get("limit")
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
    {
        None => None,
        Some(text) => match text.parse::<i64>() {
            Ok(n) if n >= 1 => Some(n),
            _ => {
                return Err(ApiError::bad_request_because(
                    "Invalid parameters",
                    format!("limit `{text}` is not a number of at least 1"),
                ))
            }
        },
    };
    let query = TaskQuery {
        function: params.remove("function"),
        status,
        limit,
    };
    let tasks = state.runtime.functions().tasks(&principal, query).await?;
    Ok(Json(TaskList { tasks }))
}

/// Show a task
#[utoipa::path(
    get,
    path = "/tasks/{id}",
    operation_id = "get_task",
    tag = "tasks",
    security(("bearer" = ["tasks"])),
    params(("id" = String, Path, description = "The task id")),
    responses(
        (status = 200, body = TaskView, description = "With `args` and `result` (null until it has ended)."),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
    ),
)]
pub async fn get(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Json<TaskView>> {
    Ok(Json(state.runtime.functions().task(&principal, &id).await?))
}

/// Wait for a task's result
///
/// The result object once the task has ended; until then, after waiting up to `wait`
/// seconds, 202 with the task.
#[utoipa::path(
    get,
    path = "/tasks/{id}/result",
    operation_id = "get_task_result",
    tag = "tasks",
    security(("bearer" = ["tasks"])),
    params(
        ("id" = String, Path, description = "The task id"),
        ("wait" = Option<f64>, Query, description = "Seconds to wait for the end (default 0, at most 60)", minimum = 0),
    ),
    responses(
        (status = 200, body = ResultObject, description = "The task has ended."),
        (status = 202, body = TaskView, description = "Still queued or running."),
        (status = 400, response = BadRequest),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
    ),
)]
pub async fn result(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
    query: Params,
) -> ApiResult<Response> {
    let params = params(query)?;
    let wait = match params
        .get("wait")
        .map(|w| w.trim())
        .filter(|w| !w.is_empty())
    {
        None => Duration::ZERO,
        Some(text) => match text.parse::<f64>() {
            // Capped before the conversion: a huge number of seconds would overflow it.
            Ok(seconds) if seconds.is_finite() && seconds >= 0.0 => {
                Duration::from_secs_f64(seconds.min(MAX_RESULT_WAIT.as_secs_f64()))
            }
            Ok(_) => {
                return Err(ApiError::bad_request_because(
                    "Invalid parameters",
                    "wait must be a number of seconds, at least 0",
                ))
            }
            Err(_) => {
                return Err(ApiError::bad_request_because(
                    "Invalid parameters",
                    format!("wait `{text}` is not a number of seconds"),
                ))
            }
        },
    };
    let functions = state.runtime.functions();
    Ok(match functions.task_result(&principal, &id, wait).await? {
        TaskResult::Finished(result) => Json(result).into_response(),
        TaskResult::Pending(task) => (StatusCode::ACCEPTED, Json(task)).into_response(),
    })
}

/// Cancel a task
///
/// Ends a queued or running task as CANCELLED; its sandbox is gone when this answers.
#[utoipa::path(
    delete,
    path = "/tasks/{id}",
    operation_id = "cancel_task",
    tag = "tasks",
    security(("bearer" = ["tasks"])),
    params(("id" = String, Path, description = "The task id")),
    responses(
        (status = 200, body = TaskView, description = "The task, now CANCELLED."),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
    ),
)]
pub async fn cancel(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Json<TaskView>> {
    Ok(Json(
        state
            .runtime
            .functions()
            .cancel_task(&principal, &id)
            .await?,
    ))
}
