//! Tasks: async calls recorded in the database, where the replicas share them as a queue
//! (`queue`) and where they outlive every server as records. The replica that accepts a
//! task runs it at once when it has room; otherwise the first replica with room claims
//! it. Each task ends exactly once (the store's conditional updates): DONE, FAILED,
//! TIMEOUT or CANCELLED; the tasks of a replica that died are FAILED with reason
//! `interrupted` (`takeover`).

use std::time::{Duration, Instant};

use runbox_core::{ErrorKind, ExecError};
use runbox_store::{NewTask, TaskFilter, TaskRecord, TaskSignal};
use serde_json::Value;

use super::views::{TaskAccepted, TaskStatus, TaskView, Terminated};
use super::{function_not_found, Admit, CallRequest, Functions, Prepared, Ran};
use crate::auth::Principal;
use crate::error::RuntimeError;
use crate::result::{Executed, ResultObject};

/// Long-polls wait at most this long, whatever `wait` asks.
pub const MAX_RESULT_WAIT: Duration = Duration::from_secs(60);
/// How often a long-poll looks at the database for tasks another server runs.
const POLL_EVERY: Duration = Duration::from_millis(500);
/// How long cancelling a task and terminating a function wait for a killed sandbox
/// to be gone (or for the replica that runs the task to record its end).
const CANCEL_WAIT: Duration = Duration::from_secs(10);
/// How often a cancel looks at the record of a task another replica stops.
const CANCEL_POLL: Duration = Duration::from_millis(100);
const DEFAULT_LIST_LIMIT: i64 = 100;
const MAX_LIST_LIMIT: i64 = 1000;

/// Which tasks to list.
#[derive(Clone, Debug, Default)]
pub struct TaskQuery {
    pub function: Option<String>,
    pub status: Option<TaskStatus>,
    /// At most this many (default 100, capped at 1000).
    pub limit: Option<i64>,
}

/// What a long-poll for a task's result found.
pub enum TaskResult {
    /// The task has ended: its result object (as recorded).
    Finished(Value),
    /// Still queued or running when the wait was over.
    Pending(TaskView),
}

impl Functions {
    /// An async call: checked like a sync one (404, 422, 429), recorded QUEUED, and
    /// started here at once when this replica has room, else left to the first replica
    /// that has.
    pub async fn enqueue(
        &self,
        principal: &Principal,
        name: &str,
        call: &CallRequest,
    ) -> Result<TaskAccepted, RuntimeError> {
        principal.require("run")?;
        principal.require("tasks")?;
        let task_id = uuid::Uuid::new_v4().to_string();
        let mut prepared = self.prepare(name, call, Some(&task_id)).await?;
        prepared.isolation = prepared.isolation.at_least(&principal.isolation);
        let new = NewTask {
            id: task_id.clone(),
            function_name: prepared.function.name.clone(),
            function_version: prepared.function.version,
            args: Value::Object(prepared.args.clone()),
            subject: principal.subject.clone(),
            isolation: prepared.isolation.name().to_string(),
        };
        self.runner.store.insert_task(&new).await?;
        self.start_here_or_queue(prepared, &task_id).await;
        Ok(TaskAccepted {
            success: true,
            message: String::new(),
            task_id,
        })
    }

    /// Claims the task just accepted when a run slot is free here (an idle replica
    /// starts its own task without a round of signals); else tells every replica that
    /// a task waits.
    async fn start_here_or_queue(&self, mut prepared: Prepared, task_id: &str) {
        if self.claims() {
            if let Some(admitted) = self.runner.admission.try_admit() {
                let store = &self.runner.store;
                match store.claim_task(task_id, &self.queue.replica_id).await {
                    Ok(Some(_)) => {
                        self.spawn_task(prepared, admitted, task_id.to_string());
                        return;
                    }
                    // Cancelled already: nothing is left to run.
                    Ok(None) => {
                        prepared.give_back_lease().await;
                        return;
                    }
                    Err(err) => {
                        tracing::warn!(task = %task_id, error = %err, "cannot claim a task just accepted");
                    }
                }
            }
        }
        // A queued task holds no slot of the function: whoever claims it takes one, and
        // its lease across the replicas. The lease checked at acceptance goes back before
        // the caller hears the task was accepted, so that its next call (a second task of
        // a `max_concurrency: 1` function) does not find it still held.
        prepared.give_back_lease().await;
        drop(prepared);
        if let Err(err) = self.queue.signals.send(&TaskSignal::Queued).await {
            tracing::warn!(error = %err, "cannot tell the other replicas that a task waits");
        }
        self.wake_queue();
    }

    pub(super) async fn run_task(&self, prepared: Prepared, admit: Admit<'_>, task_id: &str) {
        let ran = self.run(&prepared, admit).await;
        let cancelled = prepared.slot.cancel.is_cancelled();
        let shutting_down = self.shutdown.is_cancelled();
        let (status, result, reason) = match ran {
            Ok(Ran::Finished(executed)) => {
                let mut result = ResultObject::from_executed(*executed);
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
                (status, Some(result), reason)
            }
            Ok(Ran::Cancelled) if shutting_down => (
                TaskStatus::Failed,
                Some(interrupted_result(task_id)),
                Some("interrupted".to_string()),
            ),
            Ok(Ran::Cancelled) => (
                TaskStatus::Cancelled,
                Some(task_result_of(
                    Executed::cancelled("the task was cancelled before it started"),
                    task_id,
                )),
                Some("cancelled".to_string()),
            ),
            Err(err) => {
                tracing::warn!(task = %task_id, error = %err, "task failed in runbox");
                (TaskStatus::Failed, None, Some(format!("error: {err}")))
            }
        };
        let result = result.map(|r| serde_json::to_value(r).unwrap_or(Value::Null));
        // The lease goes back before the record says the task ended: a caller that sees
        // it ended and calls the function again finds its place free. It is given back
        // before the queue is looked at, too, so that a task of the same function
        // waiting for it can be claimed now.
        let mut prepared = prepared;
        prepared.give_back_lease().await;
        if let Err(err) = self
            .runner
            .store
            .finish_task(task_id, status.into(), result.as_ref(), reason.as_deref())
            .await
        {
            tracing::error!(task = %task_id, error = %err, "cannot record how a task ended");
        }
        tracing::info!(task = %task_id, function = %prepared.function.name, status = status.as_str(), "task ended");
        // The slot goes (and with it the `done` signal fires) only after the record is final.
        drop(prepared);
        self.task_finished();
        // Its run slot is free again: the next queued task may have it.
        self.wake_queue();
    }

    /// The task, when it exists and `principal` may see it (its subject, or an
    /// admin); someone else's task is as unknown as a missing one.
    async fn visible_task(
        &self,
        principal: &Principal,
        id: &str,
    ) -> Result<TaskRecord, RuntimeError> {
        self.runner
            .store
            .task(id)
            .await?
            .filter(|task| task.subject == principal.subject || principal.is_admin())
            .ok_or_else(|| RuntimeError::NotFound(format!("no task `{id}`")))
    }

    /// One task, with its args and result.
    pub async fn task(&self, principal: &Principal, id: &str) -> Result<TaskView, RuntimeError> {
        let task = self.visible_task(principal, id).await?;
        Ok(TaskView::with_result(&task))
    }

    /// The caller's tasks (everybody's for an admin), newest first, without args and
    /// results.
    pub async fn tasks(
        &self,
        principal: &Principal,
        query: TaskQuery,
    ) -> Result<Vec<TaskView>, RuntimeError> {
        let filter = TaskFilter {
            function_name: query.function.filter(|f| !f.trim().is_empty()),
            status: query.status.map(Into::into),
            subject: (!principal.is_admin()).then(|| principal.subject.clone()),
            limit: query
                .limit
                .map_or(DEFAULT_LIST_LIMIT, |n| n.clamp(1, MAX_LIST_LIMIT)),
        };
        let tasks = self.runner.store.list_tasks(&filter).await?;
        Ok(tasks.iter().map(TaskView::summary).collect())
    }

    /// The result object once the task has ended; until then, after waiting up to
    /// `wait` (at most [`MAX_RESULT_WAIT`]), the task itself.
    pub async fn task_result(
        &self,
        principal: &Principal,
        id: &str,
        wait: Duration,
    ) -> Result<TaskResult, RuntimeError> {
        let deadline = Instant::now() + wait.min(MAX_RESULT_WAIT);
        let mut finished = self.finished.subscribe();
        loop {
            finished.mark_unchanged();
            let task = self.visible_task(principal, id).await?;
            if task.status.is_finished() {
                let result = task.result.clone().unwrap_or_else(|| {
                    serde_json::to_value(synthesized_result(&task)).unwrap_or(Value::Null)
                });
                return Ok(TaskResult::Finished(result));
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(TaskResult::Pending(TaskView::summary(&task)));
            }
            let nap = (deadline - now).min(POLL_EVERY);
            tokio::select! {
                _ = finished.changed() => {}
                () = tokio::time::sleep(nap) => {}
            }
        }
    }

    /// Ends a queued or running task as CANCELLED; its sandbox is gone when this
    /// returns, whichever replica runs it. A finished task is a conflict.
    pub async fn cancel_task(
        &self,
        principal: &Principal,
        id: &str,
    ) -> Result<TaskView, RuntimeError> {
        let task = self.visible_task(principal, id).await?;
        if task.status.is_finished() {
            return Err(RuntimeError::Conflict(format!(
                "task `{id}` has already finished ({})",
                task.status
            )));
        }
        let result = task_result_of(Executed::cancelled("the task was cancelled"), id);
        let result = serde_json::to_value(result).unwrap_or(Value::Null);
        let store = &self.runner.store;
        if !store.cancel_queued_task(id, &result).await? {
            // Claimed: by this replica, or by another one that is told to stop it.
            store.request_task_cancel(id).await?;
            if let Some(done) = self.running.cancel_task(id) {
                store
                    .finish_task(
                        id,
                        runbox_store::TaskStatus::Cancelled,
                        Some(&result),
                        Some("cancelled"),
                    )
                    .await?;
                if tokio::time::timeout(CANCEL_WAIT, done.cancelled())
                    .await
                    .is_err()
                {
                    tracing::warn!(task = %id, "a cancelled task is still stopping");
                }
            } else {
                self.cancel_elsewhere(id, &result).await?;
            }
        }
        self.task_finished();
        let task = self.visible_task(principal, id).await?;
        tracing::info!(task = %id, status = %task.status, subject = %principal.subject, "task cancelled");
        Ok(TaskView::with_result(&task))
    }

    /// Asks the replica that runs task `id` to stop it and waits until it has recorded
    /// the end; a runner that does not answer within [`CANCEL_WAIT`] (dead, or cut off)
    /// finds the task CANCELLED with `result` when it comes to record its own end.
    async fn cancel_elsewhere(&self, id: &str, result: &Value) -> Result<(), RuntimeError> {
        let store = &self.runner.store;
        if let Err(err) = self
            .queue
            .signals
            .send(&TaskSignal::Cancel(id.to_string()))
            .await
        {
            tracing::warn!(task = %id, error = %err, "cannot signal a cancel; its runner will find the request");
        }
        let deadline = Instant::now() + CANCEL_WAIT;
        while Instant::now() < deadline {
            let ended = store.task(id).await?.is_none_or(|t| t.status.is_finished());
            if ended {
                return Ok(());
            }
            tokio::time::sleep(CANCEL_POLL).await;
        }
        tracing::warn!(task = %id, "the replica running a cancelled task did not stop it in time");
        store
            .finish_task(
                id,
                runbox_store::TaskStatus::Cancelled,
                Some(result),
                Some("cancelled"),
            )
            .await?;
        Ok(())
    }

    /// Ends every call of the function running in this server (sync calls answer a
    /// `killed` result, tasks end CANCELLED) and waits until their sandboxes are gone.
    pub async fn terminate(&self, name: &str) -> Result<Terminated, RuntimeError> {
        let (done, task_ids) = self.running.cancel_function(name);
        if done.is_empty() && self.runner.store.function(name, None).await?.is_none() {
            return Err(function_not_found(name));
        }
        let all_done = futures::future::join_all(done.iter().map(|d| d.cancelled()));
        if tokio::time::timeout(CANCEL_WAIT, all_done).await.is_err() {
            tracing::warn!(function = %name, "some terminated calls are still stopping");
        }
        tracing::info!(function = %name, terminated = done.len(), "function terminated");
        Ok(Terminated {
            success: true,
            terminated: done.len() as u64,
            task_ids,
        })
    }
}

pub(super) fn task_result_of(executed: Executed, task_id: &str) -> ResultObject {
    let mut result = ResultObject::from_executed(executed);
    result.task_id = Some(task_id.to_string());
    result
}

/// A result object for a task that ended without one (interrupted by a crash, or
/// cancelled by another server).
fn synthesized_result(task: &TaskRecord) -> ResultObject {
    match task.reason.as_deref() {
        Some("interrupted") => interrupted_result(&task.id),
        _ => {
            let reason = task.reason.as_deref().unwrap_or("no result was recorded");
            task_result_of(
                Executed::failed(ExecError::new(
                    ErrorKind::Killed,
                    format!("the task ended {}: {reason}", task.status),
                )),
                &task.id,
            )
        }
    }
}

fn interrupted_result(task_id: &str) -> ResultObject {
    task_result_of(
        Executed::failed(ExecError::new(
            ErrorKind::Killed,
            "interrupted: the server stopped while the task was queued or running",
        )),
        task_id,
    )
}
