//! Tasks: async calls run in background tokio tasks of this server and recorded in the
//! database, where they outlive the server as records. Each task ends exactly once (the
//! store's conditional updates): DONE, FAILED, TIMEOUT or CANCELLED; tasks a dead server
//! left QUEUED or RUNNING are FAILED with reason `interrupted` at the next start.

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::response::Response;
use runbox_core::{ErrorKind, ExecError};
use runbox_runtime::result::ResultObject;
use runbox_store::{NewTask, Store, TaskFilter, TaskRecord, TaskStatus};
use serde_json::{json, Value};

use super::call::{self, cancelled_result, Admit, Prepared, Ran};
use super::{function_not_found, reply};
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Long-polls wait at most this long, whatever `wait` asks.
pub const MAX_RESULT_WAIT: Duration = Duration::from_secs(60);
/// How often a long-poll looks at the database for tasks another server runs.
const POLL_EVERY: Duration = Duration::from_millis(500);
/// How long DELETE /tasks/{id} and terminate wait for a killed sandbox to be gone.
const CANCEL_WAIT: Duration = Duration::from_secs(10);
const DEFAULT_LIST_LIMIT: i64 = 100;
const MAX_LIST_LIMIT: i64 = 1000;

/// Records the task (QUEUED) and starts it in the background.
pub(crate) async fn spawn(
    state: &AppState,
    principal: &Principal,
    prepared: Prepared,
    task_id: String,
) -> ApiResult<()> {
    let new = NewTask {
        id: task_id.clone(),
        function_name: prepared.function.name.clone(),
        function_version: prepared.function.version,
        args: Value::Object(prepared.args.clone()),
        subject: principal.subject.clone(),
        runner: runbox_runtime::instance_name(&state.config),
    };
    state.store.insert_task(&new).await?;
    let state = state.clone();
    state.functions.tracker.clone().spawn(async move {
        run_task(&state, prepared, &task_id).await;
    });
    Ok(())
}

async fn run_task(state: &AppState, prepared: Prepared, task_id: &str) {
    let ran = call::run(state, &prepared, Admit::Queued { task_id }).await;
    let cancelled = prepared.slot.cancel.is_cancelled();
    let shutting_down = state.functions.shutdown_token().is_cancelled();
    let (status, result, reason) = match ran {
        Ok(Ran::Finished(mut result)) => {
            result.task_id = Some(task_id.to_string());
            let (status, reason) = match &result.error {
                None => (TaskStatus::Done, None),
                Some(_) if cancelled && shutting_down => {
                    (TaskStatus::Failed, Some("interrupted".to_string()))
                }
                Some(_) if cancelled => (TaskStatus::Cancelled, Some("cancelled".to_string())),
                Some(error) if error.kind == ErrorKind::Timeout => {
                    (TaskStatus::Timeout, Some("timeout".to_string()))
                }
                Some(error) => (TaskStatus::Failed, Some(error.kind.as_str().to_string())),
            };
            (status, Some(*result), reason)
        }
        Ok(Ran::Cancelled) if shutting_down => (
            TaskStatus::Failed,
            Some(interrupted_result(task_id)),
            Some("interrupted".to_string()),
        ),
        Ok(Ran::Cancelled) => {
            let mut result = cancelled_result("the task was cancelled before it started");
            result.task_id = Some(task_id.to_string());
            (
                TaskStatus::Cancelled,
                Some(result),
                Some("cancelled".to_string()),
            )
        }
        Err(err) => {
            tracing::warn!(task = %task_id, error = %err, "task failed in runbox");
            (TaskStatus::Failed, None, Some(format!("error: {err}")))
        }
    };
    let result = result.map(|r| serde_json::to_value(r).unwrap_or(Value::Null));
    if let Err(err) = state
        .store
        .finish_task(task_id, status, result.as_ref(), reason.as_deref())
        .await
    {
        tracing::error!(task = %task_id, error = %err, "cannot record how a task ended");
    }
    tracing::info!(task = %task_id, function = %prepared.function.name, %status, "task ended");
    // The slot goes (and with it the `done` signal fires) only after the record is final.
    drop(prepared);
    state.functions.task_finished();
}

/// At start-up: what a dead run of this instance left unfinished.
pub async fn recover_interrupted(
    store: &Store,
    instance: &str,
) -> Result<(), runbox_store::StoreError> {
    let tasks = store.fail_interrupted_tasks(instance).await?;
    if tasks > 0 {
        tracing::warn!(
            tasks,
            "tasks of an earlier run were interrupted; marked FAILED"
        );
    }
    let builds = store.fail_interrupted_builds(instance).await?;
    if builds > 0 {
        tracing::warn!(
            builds,
            "environment builds of an earlier run were interrupted"
        );
    }
    Ok(())
}

/// A task as the API shows it.
fn task_json(task: &TaskRecord, with_result: bool) -> Value {
    let mut body = json!({
        "task_id": task.id,
        "function_name": task.function_name,
        "function_version": task.function_version,
        "status": task.status.as_str(),
        "reason": task.reason,
        "created_at": task.created_at,
        "started_at": task.started_at,
        "finished_at": task.finished_at,
    });
    if with_result {
        body["args"] = task.args.clone();
        body["result"] = task.result.clone().unwrap_or(Value::Null);
    }
    body
}

/// The task, when it exists and `principal` may see it (its subject, or an admin);
/// someone else's task is as unknown as a missing one.
async fn visible_task(state: &AppState, principal: &Principal, id: &str) -> ApiResult<TaskRecord> {
    state
        .store
        .task(id)
        .await?
        .filter(|task| task.subject == principal.subject || principal.scopes.contains("admin"))
        .ok_or_else(|| ApiError::NotFound(format!("no task `{id}`")))
}

pub async fn get_task(state: &AppState, principal: &Principal, id: &str) -> ApiResult<Response> {
    let task = visible_task(state, principal, id).await?;
    Ok(reply(StatusCode::OK, task_json(&task, true)))
}

/// GET /tasks?function=&status=&limit=: the caller's tasks (everybody's for an admin),
/// newest first, without results.
pub async fn list_tasks(
    state: &AppState,
    principal: &Principal,
    function: Option<String>,
    status: Option<String>,
    limit: Option<String>,
) -> ApiResult<Response> {
    let status = match status.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => None,
        Some(text) => Some(TaskStatus::parse(text).ok_or_else(|| {
            ApiError::bad_request_because(
                "Invalid parameters",
                format!(
                    "status `{text}` is not one of {}",
                    TaskStatus::ALL.map(TaskStatus::as_str).join(", ")
                ),
            )
        })?),
    };
    let limit = match limit.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => DEFAULT_LIST_LIMIT,
        Some(text) => match text.parse::<i64>() {
            Ok(n) if n >= 1 => n.min(MAX_LIST_LIMIT),
            _ => {
                return Err(ApiError::bad_request_because(
                    "Invalid parameters",
                    format!("limit `{text}` is not a number of at least 1"),
                ))
            }
        },
    };
    let filter = TaskFilter {
        function_name: function.filter(|f| !f.trim().is_empty()),
        status,
        subject: (!principal.scopes.contains("admin")).then(|| principal.subject.clone()),
        limit,
    };
    let tasks = state.store.list_tasks(&filter).await?;
    let listed: Vec<Value> = tasks.iter().map(|t| task_json(t, false)).collect();
    Ok(reply(StatusCode::OK, json!({"tasks": listed})))
}

/// GET /tasks/{id}/result?wait=N: the result object once the task has ended (200);
/// until then, after waiting up to N seconds (at most 60), the task itself (202).
pub async fn task_result(
    state: &AppState,
    principal: &Principal,
    id: &str,
    wait: Option<f64>,
) -> ApiResult<Response> {
    let wait = match wait {
        None => Duration::ZERO,
        // Capped before the conversion: a huge number of seconds would overflow it.
        Some(seconds) if seconds.is_finite() && seconds >= 0.0 => {
            Duration::from_secs_f64(seconds.min(MAX_RESULT_WAIT.as_secs_f64()))
        }
        Some(_) => {
            return Err(ApiError::bad_request_because(
                "Invalid parameters",
                "wait must be a number of seconds, at least 0",
            ))
        }
    };
    let deadline = Instant::now() + wait;
    let mut finished = state.functions.finished.subscribe();
    loop {
        finished.mark_unchanged();
        let task = visible_task(state, principal, id).await?;
        if task.status.is_finished() {
            let result = task.result.clone().unwrap_or_else(|| {
                serde_json::to_value(synthesized_result(&task)).unwrap_or(Value::Null)
            });
            return Ok(reply(StatusCode::OK, result));
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(reply(StatusCode::ACCEPTED, task_json(&task, false)));
        }
        let nap = (deadline - now).min(POLL_EVERY);
        tokio::select! {
            _ = finished.changed() => {}
            () = tokio::time::sleep(nap) => {}
        }
    }
}

/// A result object for a task that ended without one (interrupted by a crash, or
/// cancelled by another server).
fn synthesized_result(task: &TaskRecord) -> ResultObject {
    let mut result = match task.reason.as_deref() {
        Some("interrupted") => interrupted_result(&task.id),
        _ => {
            let reason = task.reason.as_deref().unwrap_or("no result was recorded");
            ResultObject::from_error(ExecError::new(
                ErrorKind::Killed,
                format!("the task ended {}: {reason}", task.status),
            ))
        }
    };
    result.task_id = Some(task.id.clone());
    result
}

fn interrupted_result(task_id: &str) -> ResultObject {
    let mut result = ResultObject::from_error(ExecError::new(
        ErrorKind::Killed,
        "interrupted: the server stopped while the task was queued or running",
    ));
    result.task_id = Some(task_id.to_string());
    result
}

/// DELETE /tasks/{id}: ends a queued or running task as CANCELLED; its sandbox is gone
/// when this answers. A finished task answers 409.
pub async fn cancel_task(state: &AppState, principal: &Principal, id: &str) -> ApiResult<Response> {
    let task = visible_task(state, principal, id).await?;
    if task.status.is_finished() {
        return Err(ApiError::Conflict(format!(
            "task `{id}` has already finished ({})",
            task.status
        )));
    }
    let mut result = cancelled_result("the task was cancelled");
    result.task_id = Some(id.to_string());
    let result = serde_json::to_value(result).unwrap_or(Value::Null);
    state
        .store
        .finish_task(id, TaskStatus::Cancelled, Some(&result), Some("cancelled"))
        .await?;
    if let Some(done) = state.functions.running.cancel_task(id) {
        if tokio::time::timeout(CANCEL_WAIT, done.cancelled())
            .await
            .is_err()
        {
            tracing::warn!(task = %id, "a cancelled task is still stopping");
        }
    }
    state.functions.task_finished();
    let task = visible_task(state, principal, id).await?;
    tracing::info!(task = %id, status = %task.status, subject = %principal.subject, "task cancelled");
    Ok(reply(StatusCode::OK, task_json(&task, true)))
}

/// POST /functions/{name}/terminate: ends every call of the function running in this
/// server (sync calls answer a `killed` result, tasks end CANCELLED) and waits until
/// their sandboxes are gone.
pub async fn terminate_function(state: &AppState, name: &str) -> ApiResult<Response> {
    let (done, task_ids) = state.functions.running.cancel_function(name);
    if done.is_empty() && state.store.function(name, None).await?.is_none() {
        return Err(function_not_found(name));
    }
    let all_done = futures::future::join_all(done.iter().map(|d| d.cancelled()));
    if tokio::time::timeout(CANCEL_WAIT, all_done).await.is_err() {
        tracing::warn!(function = %name, "some terminated calls are still stopping");
    }
    tracing::info!(function = %name, terminated = done.len(), "function terminated");
    Ok(reply(
        StatusCode::OK,
        json!({"success": true, "terminated": done.len(), "task_ids": task_ids}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(finished: bool) -> TaskRecord {
        let now = chrono::Utc::now();
        TaskRecord {
            id: "t-1".into(),
            function_name: "add".into(),
            function_version: 2,
            status: if finished {
                TaskStatus::Done
            } else {
                TaskStatus::Queued
            },
            args: json!({"x": 1}),
            result: finished.then(|| {
                let mut result = cancelled_result("for the shape only");
                result.task_id = Some("t-1".into());
                serde_json::to_value(result).expect("json")
            }),
            reason: None,
            subject: "someone".into(),
            runner: "data-1".into(),
            created_at: now,
            started_at: finished.then_some(now),
            finished_at: finished.then_some(now),
        }
    }

    /// The API's task body is built by hand; its description in /openapi.json must fit.
    #[test]
    fn tasks_are_shown_as_the_description_says() {
        for finished in [false, true] {
            for with_result in [false, true] {
                let body = task_json(&task(finished), with_result);
                let described: Result<crate::openapi::Task, _> =
                    serde_json::from_value(body.clone());
                if let Err(err) = described {
                    panic!("{body} does not fit: {err}");
                }
            }
        }
    }
}
