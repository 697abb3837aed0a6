//! Tasks as a queue the replicas share. A task is inserted QUEUED with no runner; a
//! replica with room claims one (runner = its replica id, RUNNING) with a conditional
//! update, which on PostgreSQL skips rows another claimer holds (`FOR UPDATE SKIP
//! LOCKED`) so that two claimers never take the same task nor wait for each other. On
//! SQLite, with one replica only, the same statement without the lock clause does it.
//!
//! Replicas hear of new tasks and of cancel requests through `LISTEN/NOTIFY` on
//! PostgreSQL ([`TaskSignals`]); a replica found dead (no heartbeat) is taken over by
//! exactly one peer: whoever removes its row from the registry fails its running tasks
//! in the same transaction.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::postgres::PgListener;

use crate::images::now;
use crate::tasks::{decode_task, TaskRow, TASK_COLUMNS, UNFINISHED};
use crate::text::storable;
use crate::{with_pool, Backend, Pool, Store, StoreError, TaskRecord};

/// What a replica may claim: queued, nobody's, not asked to be cancelled.
const CLAIMABLE: &str = "status = 'QUEUED' AND runner = '' AND NOT cancel_requested";
/// PostgreSQL's channel names are identifiers: at most 63 bytes.
const MAX_CHANNEL_LEN: usize = 63;

impl Store {
    /// Claims the task `id` for `runner` when it is still claimable (the replica that
    /// accepted it tries this first, so an idle replica starts its own task at once).
    pub async fn claim_task(
        &self,
        id: &str,
        runner: &str,
    ) -> Result<Option<TaskRecord>, StoreError> {
        if !storable(id) {
            return Ok(None);
        }
        let sql = format!(
            "UPDATE tasks SET status = 'RUNNING', runner = $2, started_at = $3 \
             WHERE id = $1 AND {CLAIMABLE} RETURNING {TASK_COLUMNS}"
        );
        let row: Option<TaskRow> = with_pool!(self, pool => sqlx::query_as(&sql)
            .bind(id)
            .bind(runner)
            .bind(now())
            .fetch_optional(pool)
            .await)
        .map_err(StoreError::db("claiming a task"))?;
        row.map(decode_task).transpose()
    }

    /// Claims the oldest claimable task for `runner`; `None` when there is none (or
    /// every one is being claimed by another replica right now).
    pub async fn claim_next_task(&self, runner: &str) -> Result<Option<TaskRecord>, StoreError> {
        self.claim_next_task_except(runner, &[]).await
    }

    /// Claims the oldest claimable task for `runner` whose function is not one of
    /// `skip` (functions at their `max_concurrency` across the cluster right now).
    pub async fn claim_next_task_except(
        &self,
        runner: &str,
        skip: &[String],
    ) -> Result<Option<TaskRecord>, StoreError> {
        // One statement is one transaction: the row the subquery picks is locked until
        // the update commits, and a concurrent claimer skips it for the next one.
        let lock = match self.backend() {
            Backend::Postgres => "FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let skipped = if skip.is_empty() {
            String::new()
        } else {
            let places: Vec<String> = (0..skip.len()).map(|i| format!("${}", i + 3)).collect();
            format!("AND function_name NOT IN ({})", places.join(", "))
        };
        let sql = format!(
            "UPDATE tasks SET status = 'RUNNING', runner = $1, started_at = $2 \
             WHERE id = (SELECT id FROM tasks WHERE {CLAIMABLE} {skipped} \
                         ORDER BY created_at, id LIMIT 1 {lock}) \
               AND {CLAIMABLE} RETURNING {TASK_COLUMNS}"
        );
        let row: Option<TaskRow> = with_pool!(self, pool => {
            let mut query = sqlx::query_as(&sql).bind(runner).bind(now());
            for name in skip {
                query = query.bind(name);
            }
            query.fetch_optional(pool).await
        })
        .map_err(StoreError::db("claiming a task"))?;
        row.map(decode_task).transpose()
    }

    /// Gives the task `id`, claimed by `runner` a moment ago, back to the queue
    /// unstarted (its function was at its limit): it keeps its place, oldest first.
    /// False when it is no longer `runner`'s to give back, or when someone asked to
    /// cancel it meanwhile (then the caller ends it).
    pub async fn unclaim_task(&self, id: &str, runner: &str) -> Result<bool, StoreError> {
        const SQL: &str = "UPDATE tasks SET status = 'QUEUED', runner = '', started_at = NULL \
                           WHERE id = $1 AND runner = $2 AND status = 'RUNNING' \
                             AND NOT cancel_requested";
        with_pool!(self, pool => sqlx::query(SQL)
            .bind(id)
            .bind(runner)
            .execute(pool)
            .await
            .map(|r| r.rows_affected() > 0))
        .map_err(StoreError::db("giving a task back to the queue"))
    }

    /// Records that the task `id` is to be cancelled (for the replica that runs it);
    /// false when it has already ended.
    pub async fn request_task_cancel(&self, id: &str) -> Result<bool, StoreError> {
        if !storable(id) {
            return Ok(false);
        }
        let sql = format!(
            "UPDATE tasks SET cancel_requested = TRUE WHERE id = $1 AND status IN {UNFINISHED}"
        );
        with_pool!(self, pool => sqlx::query(&sql)
            .bind(id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected() > 0))
        .map_err(StoreError::db("asking to cancel a task"))
    }

    /// Ends the task `id` CANCELLED with `result` while nobody has claimed it; false
    /// when it is no longer queued (a replica runs it, or it has ended).
    pub async fn cancel_queued_task(&self, id: &str, result: &Value) -> Result<bool, StoreError> {
        if !storable(id) {
            return Ok(false);
        }
        const SQL: &str = "UPDATE tasks SET status = 'CANCELLED', result = $2, \
                           reason = 'cancelled', finished_at = $3 \
                           WHERE id = $1 AND status = 'QUEUED'";
        with_pool!(self, pool => sqlx::query(SQL)
            .bind(id)
            .bind(result.to_string())
            .bind(now())
            .execute(pool)
            .await
            .map(|r| r.rows_affected() > 0))
        .map_err(StoreError::db("cancelling a queued task"))
    }

    /// The ids of the tasks `runner` runs that someone asked to cancel.
    pub async fn cancel_requests_for(&self, runner: &str) -> Result<Vec<String>, StoreError> {
        const SQL: &str = "SELECT id FROM tasks \
                           WHERE runner = $1 AND status = 'RUNNING' AND cancel_requested";
        let rows: Vec<(String,)> = with_pool!(self, pool => sqlx::query_as(SQL)
            .bind(runner)
            .fetch_all(pool)
            .await)
        .map_err(StoreError::db("reading cancel requests"))?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }

    /// Takes over the replica `id`: removes it from the registry, when it has been
    /// silent since before `silent_since` (always, when `None`), and fails the tasks it
    /// ran (FAILED, `interrupted`) in the same transaction. `Some(failed tasks)` for the
    /// one caller that removed it; `None` when it was not there or not silent (alive
    /// again, or another replica took it over first).
    pub async fn take_over_replica(
        &self,
        id: &str,
        silent_since: Option<DateTime<Utc>>,
    ) -> Result<Option<u64>, StoreError> {
        const FORGET: &str =
            "DELETE FROM replicas WHERE id = $1 AND ($2 IS NULL OR heartbeat_at < $2)";
        let fail = format!(
            "UPDATE tasks SET status = 'FAILED', reason = 'interrupted', finished_at = $2 \
             WHERE runner = $1 AND status IN {UNFINISHED}"
        );
        with_pool!(self, pool => async {
            let mut tx = pool.begin().await?;
            let removed = sqlx::query(FORGET)
                .bind(id)
                .bind(silent_since)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if removed == 0 {
                tx.rollback().await?;
                return Ok::<_, sqlx::Error>(None);
            }
            let failed = sqlx::query(&fail)
                .bind(id)
                .bind(now())
                .execute(&mut *tx)
                .await?
                .rows_affected();
            tx.commit().await?;
            Ok(Some(failed))
        }
        .await)
        .map_err(StoreError::db("taking over a replica"))
    }

    /// Fails (`interrupted`) the unfinished tasks of runners the registry does not know:
    /// a replica leaves the registry only after its tasks have ended, so these are the
    /// leftovers of a replica that died before it was registered, or of a server that
    /// ran its own tasks before they were a queue. Returns how many.
    pub async fn fail_orphaned_tasks(&self) -> Result<u64, StoreError> {
        let sql = format!(
            "UPDATE tasks SET status = 'FAILED', reason = 'interrupted', finished_at = $1 \
             WHERE status IN {UNFINISHED} AND runner <> '' \
               AND runner NOT IN (SELECT id FROM replicas)"
        );
        with_pool!(self, pool => sqlx::query(&sql)
            .bind(now())
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))
        .map_err(StoreError::db("failing orphaned tasks"))
    }

    /// How this store's replicas signal each other about tasks.
    pub async fn task_signals(&self) -> Result<TaskSignals, StoreError> {
        let channel = match &self.pool {
            Pool::Sqlite(_) => None,
            Pool::Postgres(pool) => {
                let (schema,): (String,) = sqlx::query_as("SELECT current_schema()::text")
                    .fetch_one(pool)
                    .await
                    .map_err(StoreError::db("naming the task channel"))?;
                Some(channel_name(&schema))
            }
        };
        Ok(TaskSignals {
            store: self.clone(),
            channel,
        })
    }
}

/// One channel per schema: replicas of different services (or tests) sharing one
/// PostgreSQL server do not wake each other.
fn channel_name(schema: &str) -> String {
    let mut name = if schema == "public" {
        "runbox_tasks".to_string()
    } else {
        format!("runbox_tasks_{schema}")
    };
    if name.len() > MAX_CHANNEL_LEN {
        let mut end = MAX_CHANNEL_LEN;
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        name.truncate(end);
    }
    name
}

/// What replicas tell each other about tasks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TaskSignal {
    /// A task was queued: a replica with room may claim it.
    Queued,
    /// Someone asked to cancel this task: the replica that runs it stops it.
    Cancel(String),
}

impl TaskSignal {
    fn payload(&self) -> String {
        match self {
            TaskSignal::Queued => "queued".to_string(),
            TaskSignal::Cancel(id) => format!("cancel:{id}"),
        }
    }

    /// Anything unknown reads as `Queued`: a needless look at the queue is harmless.
    fn parse(payload: &str) -> TaskSignal {
        match payload.strip_prefix("cancel:") {
            Some(id) => TaskSignal::Cancel(id.to_string()),
            None => TaskSignal::Queued,
        }
    }
}

/// Sends and hears [`TaskSignal`]s: `NOTIFY`/`LISTEN` on PostgreSQL; nothing on SQLite,
/// where the one replica signals itself in memory.
#[derive(Clone, Debug)]
pub struct TaskSignals {
    store: Store,
    channel: Option<String>,
}

impl TaskSignals {
    /// Whether other replicas can hear these signals (PostgreSQL).
    pub fn is_shared(&self) -> bool {
        self.channel.is_some()
    }

    pub async fn send(&self, signal: &TaskSignal) -> Result<(), StoreError> {
        let (Some(channel), Pool::Postgres(pool)) = (&self.channel, &self.store.pool) else {
            return Ok(());
        };
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(channel)
            .bind(signal.payload())
            .execute(pool)
            .await
            .map(|_| ())
            .map_err(StoreError::db("signalling the other replicas"))
    }

    /// A listener on its own connection; `None` on SQLite.
    pub async fn listen(&self) -> Result<Option<TaskListener>, StoreError> {
        let (Some(channel), Pool::Postgres(pool)) = (&self.channel, &self.store.pool) else {
            return Ok(None);
        };
        let mut listener = PgListener::connect_with(pool)
            .await
            .map_err(StoreError::db("listening for task signals"))?;
        listener
            .listen(channel)
            .await
            .map_err(StoreError::db("listening for task signals"))?;
        Ok(Some(TaskListener { listener }))
    }
}

/// Hears the other replicas' (and its own replica's) task signals.
pub struct TaskListener {
    listener: PgListener,
}

impl TaskListener {
    /// The next signal; `Ok(None)` when the connection was lost and made again, so that
    /// signals may have been missed (the caller looks at the queue itself).
    pub async fn next(&mut self) -> Result<Option<TaskSignal>, StoreError> {
        let heard = self
            .listener
            .try_recv()
            .await
            .map_err(StoreError::db("listening for task signals"))?;
        Ok(heard.map(|notification| TaskSignal::parse(notification.payload())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_survive_their_payload() {
        for signal in [TaskSignal::Queued, TaskSignal::Cancel("a-b-c".into())] {
            assert_eq!(TaskSignal::parse(&signal.payload()), signal);
        }
        assert_eq!(TaskSignal::parse("something new"), TaskSignal::Queued);
    }

    #[test]
    fn channel_names_fit_an_identifier() {
        assert_eq!(channel_name("public"), "runbox_tasks");
        assert_eq!(channel_name("svc"), "runbox_tasks_svc");
        let long = channel_name(&"é".repeat(60));
        assert!(long.len() <= MAX_CHANNEL_LEN && long.starts_with("runbox_tasks_é"));
    }
}
