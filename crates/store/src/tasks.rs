//! Async function calls. A task is QUEUED when accepted (with no runner), RUNNING once a
//! replica has claimed it (see `task_queue`), and ends DONE, FAILED, TIMEOUT or
//! CANCELLED exactly once: every transition is a conditional update, so a cancel and a
//! finishing run can race without one overwriting the other.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::images::now;
use crate::text::{refuse_nul, storable};
use crate::{with_pool, Store, StoreError};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TaskStatus {
    Queued,
    Running,
    Done,
    Failed,
    Timeout,
    Cancelled,
}

impl TaskStatus {
    pub const ALL: [TaskStatus; 6] = [
        TaskStatus::Queued,
        TaskStatus::Running,
        TaskStatus::Done,
        TaskStatus::Failed,
        TaskStatus::Timeout,
        TaskStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Queued => "QUEUED",
            TaskStatus::Running => "RUNNING",
            TaskStatus::Done => "DONE",
            TaskStatus::Failed => "FAILED",
            TaskStatus::Timeout => "TIMEOUT",
            TaskStatus::Cancelled => "CANCELLED",
        }
    }

    /// Accepts any letter case.
    pub fn parse(text: &str) -> Option<Self> {
        let upper = text.trim().to_ascii_uppercase();
        TaskStatus::ALL.into_iter().find(|s| s.as_str() == upper)
    }

    pub fn is_finished(self) -> bool {
        !matches!(self, TaskStatus::Queued | TaskStatus::Running)
    }
}

impl std::fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct NewTask {
    pub id: String,
    pub function_name: String,
    pub function_version: i64,
    pub args: Value,
    /// Who asked for it; only they (or an admin) see it.
    pub subject: String,
    /// The isolation its run asks for (the function's, raised to the caller's floor),
    /// as the API spells it.
    pub isolation: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TaskRecord {
    pub id: String,
    pub function_name: String,
    pub function_version: i64,
    pub status: TaskStatus,
    pub args: Value,
    /// The result object, once finished (absent for a task interrupted by a crash).
    pub result: Option<Value>,
    /// Why a task did not end DONE (`interrupted`, an error kind, …).
    pub reason: Option<String>,
    pub subject: String,
    /// The replica that claimed it (empty while it is queued).
    pub runner: String,
    pub isolation: String,
    /// Someone asked to cancel it; the replica running it acts on that.
    pub cancel_requested: bool,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// Which tasks `list_tasks` returns, newest first.
#[derive(Clone, Debug, Default)]
pub struct TaskFilter {
    pub function_name: Option<String>,
    pub status: Option<TaskStatus>,
    /// Only this subject's tasks; `None`: everybody's.
    pub subject: Option<String>,
    pub limit: i64,
}

#[derive(sqlx::FromRow)]
pub(crate) struct TaskRow {
    id: String,
    function_name: String,
    function_version: i64,
    status: String,
    args: String,
    result: Option<String>,
    reason: Option<String>,
    subject: String,
    runner: String,
    isolation: String,
    cancel_requested: bool,
    created_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
}

pub(crate) const TASK_COLUMNS: &str =
    "id, function_name, function_version, status, args, result, reason, subject, runner, \
     isolation, cancel_requested, created_at, started_at, finished_at";
pub(crate) const UNFINISHED: &str = "('QUEUED', 'RUNNING')";

impl Store {
    pub async fn insert_task(&self, task: &NewTask) -> Result<TaskRecord, StoreError> {
        refuse_nul("a task id", &task.id)?;
        refuse_nul("a function name", &task.function_name)?;
        refuse_nul("a subject", &task.subject)?;
        refuse_nul("an isolation", &task.isolation)?;
        const SQL: &str = "INSERT INTO tasks (id, function_name, function_version, status, args, \
                           subject, runner, isolation, created_at) \
                           VALUES ($1, $2, $3, 'QUEUED', $4, $5, '', $6, $7)";
        let at = now();
        with_pool!(self, pool => sqlx::query(SQL)
            .bind(&task.id)
            .bind(&task.function_name)
            .bind(task.function_version)
            .bind(task.args.to_string())
            .bind(&task.subject)
            .bind(&task.isolation)
            .bind(at)
            .execute(pool)
            .await
            .map(|_| ()))
        .map_err(StoreError::db("storing a task"))?;
        Ok(TaskRecord {
            id: task.id.clone(),
            function_name: task.function_name.clone(),
            function_version: task.function_version,
            status: TaskStatus::Queued,
            args: task.args.clone(),
            result: None,
            reason: None,
            subject: task.subject.clone(),
            runner: String::new(),
            isolation: task.isolation.clone(),
            cancel_requested: false,
            created_at: at,
            started_at: None,
            finished_at: None,
        })
    }

    /// The claimed task's code has a sandbox now: `started_at` says when its code
    /// started rather than when it was claimed. False when it is no longer running.
    pub async fn mark_task_started(&self, id: &str) -> Result<bool, StoreError> {
        if !storable(id) {
            return Ok(false);
        }
        const SQL: &str = "UPDATE tasks SET started_at = $2 WHERE id = $1 AND status = 'RUNNING'";
        with_pool!(self, pool => sqlx::query(SQL)
            .bind(id)
            .bind(now())
            .execute(pool)
            .await
            .map(|r| r.rows_affected() > 0))
        .map_err(StoreError::db("starting a task"))
    }

    /// Ends a task that has not ended yet; false when it already had (the first end
    /// wins). `status` must be a finished one.
    pub async fn finish_task(
        &self,
        id: &str,
        status: TaskStatus,
        result: Option<&Value>,
        reason: Option<&str>,
    ) -> Result<bool, StoreError> {
        if !status.is_finished() {
            return Err(StoreError::InvalidInput(format!(
                "{status} is not a final task status"
            )));
        }
        if !storable(id) {
            return Ok(false);
        }
        // A task must end even when its reason quotes something unstorable.
        let reason = reason.map(|r| r.replace('\0', "\u{fffd}"));
        let sql = format!(
            "UPDATE tasks SET status = $2, result = $3, reason = $4, finished_at = $5 \
             WHERE id = $1 AND status IN {UNFINISHED}"
        );
        with_pool!(self, pool => sqlx::query(&sql)
            .bind(id)
            .bind(status.as_str())
            .bind(result.map(Value::to_string))
            .bind(reason.as_deref())
            .bind(now())
            .execute(pool)
            .await
            .map(|r| r.rows_affected() > 0))
        .map_err(StoreError::db("finishing a task"))
    }

    pub async fn task(&self, id: &str) -> Result<Option<TaskRecord>, StoreError> {
        if !storable(id) {
            return Ok(None);
        }
        let sql = format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id = $1");
        let row: Option<TaskRow> = with_pool!(self, pool => sqlx::query_as(&sql)
            .bind(id)
            .fetch_optional(pool)
            .await)
        .map_err(StoreError::db("loading a task"))?;
        row.map(decode_task).transpose()
    }

    pub async fn list_tasks(&self, filter: &TaskFilter) -> Result<Vec<TaskRecord>, StoreError> {
        let keys = [&filter.function_name, &filter.subject];
        if keys
            .iter()
            .any(|key| key.as_deref().is_some_and(|k| !storable(k)))
        {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT {TASK_COLUMNS} FROM tasks \
             WHERE ($1 IS NULL OR function_name = $1) \
               AND ($2 IS NULL OR status = $2) \
               AND ($3 IS NULL OR subject = $3) \
             ORDER BY created_at DESC, id DESC LIMIT $4"
        );
        let rows: Vec<TaskRow> = with_pool!(self, pool => sqlx::query_as(&sql)
            .bind(filter.function_name.as_deref())
            .bind(filter.status.map(TaskStatus::as_str))
            .bind(filter.subject.as_deref())
            .bind(filter.limit.max(0))
            .fetch_all(pool)
            .await)
        .map_err(StoreError::db("listing tasks"))?;
        rows.into_iter().map(decode_task).collect()
    }

    /// At start-up: the tasks `runner` had queued or running when it died are FAILED with
    /// reason `interrupted` (the records of servers that ran their own tasks, before
    /// tasks were a queue: their runner is the instance name). Returns how many.
    pub async fn fail_interrupted_tasks(&self, runner: &str) -> Result<u64, StoreError> {
        let sql = format!(
            "UPDATE tasks SET status = 'FAILED', reason = 'interrupted', finished_at = $2 \
             WHERE runner = $1 AND status IN {UNFINISHED}"
        );
        with_pool!(self, pool => sqlx::query(&sql)
            .bind(runner)
            .bind(now())
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))
        .map_err(StoreError::db("failing interrupted tasks"))
    }

    /// How many tasks are in each status (statuses without tasks are left out).
    pub async fn count_tasks_by_status(&self) -> Result<Vec<(TaskStatus, u64)>, StoreError> {
        const SQL: &str = "SELECT status, COUNT(*) FROM tasks GROUP BY status";
        let rows: Vec<(String, i64)> = with_pool!(self, pool => sqlx::query_as(SQL)
            .fetch_all(pool)
            .await)
        .map_err(StoreError::db("counting tasks"))?;
        Ok(rows
            .into_iter()
            .filter_map(|(status, count)| {
                Some((
                    TaskStatus::parse(&status)?,
                    u64::try_from(count).unwrap_or(0),
                ))
            })
            .collect())
    }

    /// Deletes tasks that finished strictly before `cutoff`; returns how many went.
    pub async fn delete_tasks_finished_before(
        &self,
        cutoff: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        const SQL: &str = "DELETE FROM tasks WHERE finished_at < $1";
        with_pool!(self, pool => sqlx::query(SQL)
            .bind(cutoff)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))
        .map_err(StoreError::db("deleting old tasks"))
    }
}

pub(crate) fn decode_task(row: TaskRow) -> Result<TaskRecord, StoreError> {
    let corrupt = |reason: String| StoreError::CorruptRow {
        table: "tasks",
        key: row.id.clone(),
        reason,
    };
    let status = TaskStatus::parse(&row.status)
        .ok_or_else(|| corrupt(format!("unknown status `{}`", row.status)))?;
    let args = serde_json::from_str(&row.args)
        .map_err(|e| corrupt(format!("args is not valid JSON: {e}")))?;
    let result = row
        .result
        .as_deref()
        .map(serde_json::from_str)
        .transpose()
        .map_err(|e| corrupt(format!("result is not valid JSON: {e}")))?;
    Ok(TaskRecord {
        id: row.id,
        function_name: row.function_name,
        function_version: row.function_version,
        status,
        args,
        result,
        reason: row.reason,
        subject: row.subject,
        runner: row.runner,
        isolation: row.isolation,
        cancel_requested: row.cancel_requested,
        created_at: row.created_at,
        started_at: row.started_at,
        finished_at: row.finished_at,
    })
}
