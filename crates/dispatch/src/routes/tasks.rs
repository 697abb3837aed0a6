//! /tasks: thin handlers over `crate::functions`.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::Extension;

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::functions;
use crate::state::AppState;

type Params = Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>;

fn params(query: Params) -> ApiResult<HashMap<String, String>> {
    query
        .map(|Query(params)| params)
        .map_err(|e| ApiError::bad_request_because("Invalid parameters", e.body_text()))
}

/// GET /tasks?function=&status=&limit=.
pub async fn list(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    query: Params,
) -> ApiResult<Response> {
    principal.require("tasks")?;
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

pub async fn get(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    principal.require("tasks")?;
    functions::get_task(&state, &principal, &id).await
}

/// GET /tasks/{id}/result?wait=N.
pub async fn result(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
    query: Params,
) -> ApiResult<Response> {
    principal.require("tasks")?;
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

pub async fn cancel(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    principal.require("tasks")?;
    functions::cancel_task(&state, &principal, &id).await
}
