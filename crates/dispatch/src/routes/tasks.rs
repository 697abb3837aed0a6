//! /tasks: thin handlers over `crate::functions`.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::Extension;
use runbox_runtime::result::ResultObject;

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::functions;
use crate::openapi::{BadRequest, Conflict, Forbidden, NotFound, Task, TaskList, TaskStatus};
use crate::state::AppState;

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
) -> ApiResult<Response> {
    let mut params = params(query)?;
    functions::list_tasks(
        &state,
        &principal,
        params.remove("function"),
        params.remove("status"),
        params.remove("limit"),
    )
    .await
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
        (status = 200, body = Task, description = "With `args` and `result` (null until it has ended)."),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
    ),
)]
pub async fn get(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    functions::get_task(&state, &principal, &id).await
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
        (status = 202, body = Task, description = "Still queued or running."),
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
        None => None,
        Some(text) => Some(text.parse::<f64>().map_err(|_| {
            ApiError::bad_request_because(
                "Invalid parameters",
                format!("wait `{text}` is not a number of seconds"),
            )
        })?),
    };
    functions::task_result(&state, &principal, &id, wait).await
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
        (status = 200, body = Task, description = "The task, now CANCELLED."),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
    ),
)]
pub async fn cancel(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    functions::cancel_task(&state, &principal, &id).await
}
